//! `accounts {}`, user `permissions {}` and `default_permissions {}`, in
//! nats-server's syntax:
//!
//! ```text
//! accounts {
//!   APP: {
//!     users: [ {user: app, password: s3cret, permissions: { publish: "sports.>", subscribe: { allow: ["sports.>"], deny: ["sports.admin.>"] } }} ]
//!     exports: [ {stream: "sports.>"}, {service: "svc.>", accounts: [WEB], response_type: stream} ]
//!   }
//!   WEB: {
//!     users: [ {nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4} ]
//!     imports: [ {stream: {account: APP, subject: "sports.>"}}, {service: {account: APP, subject: "svc.time"}, to: "time"} ]
//!   }
//! }
//! system_account: SYS
//! ```

use super::apply::Ctx;
use super::value::{Node, Value};
use crate::limits::{AccountLimits, Limit};
use crate::options::{AccountConfig, ExportKind, Import, Options};
use crate::permissions::{Permissions, ResponsePermission, SubjectPermission};

/// A string or an array of strings (nats-server accepts both for subjects).
pub(super) fn strings(cx: &mut Ctx, key: &str, node: &Node) -> Option<Vec<String>> {
    match &node.value {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items.iter().map(|i| cx.string(key, i)).collect(),
        _ => {
            cx.type_error(key, node, "string or array of strings");
            None
        }
    }
}

/// `publish`/`subscribe`: a subject, a list, or `{ allow, deny }`.
fn subject_permission(cx: &mut Ctx, key: &str, node: &Node) -> Option<SubjectPermission> {
    match &node.value {
        Value::Map(m) => {
            let mut p = SubjectPermission::default();
            for (k, v) in m.iter() {
                match k.to_ascii_lowercase().as_str() {
                    "allow" => p.allow = strings(cx, k, v),
                    "deny" => p.deny = strings(cx, k, v).unwrap_or_default(),
                    _ => cx.unknown(k, v),
                }
            }
            Some(p)
        }
        _ => strings(cx, key, node).map(|allow| SubjectPermission {
            allow: Some(allow),
            deny: Vec::new(),
        }),
    }
}

/// A `permissions {}` block.
pub(super) fn permissions(cx: &mut Ctx, node: &Node) -> Option<Permissions> {
    let Some(map) = node.value.as_map() else {
        cx.error(
            &node.pos,
            format!(
                "Expected permissions to be a map/struct, got {}",
                node.value.type_name()
            ),
        );
        return None;
    };
    let mut p = Permissions::default();
    for (k, v) in map.iter() {
        match k.to_ascii_lowercase().as_str() {
            "pub" | "publish" | "import" => p.publish = subject_permission(cx, k, v),
            "sub" | "subscribe" | "export" => p.subscribe = subject_permission(cx, k, v),
            "publish_allow_responses" | "allow_responses" => match &v.value {
                Value::Bool(true) => p.allow_responses = Some(ResponsePermission::default()),
                Value::Bool(false) => p.allow_responses = None,
                Value::Map(m) => {
                    let mut r = ResponsePermission::default();
                    for (rk, rv) in m.iter() {
                        match rk.to_ascii_lowercase().as_str() {
                            "max" | "max_msgs" | "max_messages" | "max_responses" => {
                                r.max_msgs = cx.int(rk, rv).map_or(r.max_msgs, |n| n.max(0) as u64)
                            }
                            "expires" | "expiration" | "ttl" => {
                                r.expires = cx.duration(rk, rv).unwrap_or(r.expires)
                            }
                            _ => cx.unknown(rk, rv),
                        }
                    }
                    p.allow_responses = Some(r);
                }
                _ => cx.type_error(k, v, "boolean or map"),
            },
            _ => cx.unknown(k, v),
        }
    }
    Some(p.with_response_defaults())
}

fn imports(cx: &mut Ctx, node: &Node) -> Vec<Import> {
    let Some(items) = node.value.as_array() else {
        cx.type_error("imports", node, "array");
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Some(map) = item.value.as_map() else {
            cx.type_error("imports", item, "map");
            continue;
        };
        let mut import: Option<Import> = None;
        let mut to = None;
        for (k, v) in map.iter() {
            match k.to_ascii_lowercase().as_str() {
                kind @ ("stream" | "service") => {
                    let Some(m) = v.value.as_map() else {
                        cx.type_error(k, v, "map with account and subject");
                        continue;
                    };
                    let (mut account, mut subject) = (String::new(), String::new());
                    for (ik, iv) in m.iter() {
                        match ik.to_ascii_lowercase().as_str() {
                            "account" => account = cx.string(ik, iv).unwrap_or_default(),
                            "subject" => subject = cx.string(ik, iv).unwrap_or_default(),
                            _ => cx.unknown(ik, iv),
                        }
                    }
                    let kind = if kind == "stream" {
                        ExportKind::Stream
                    } else {
                        ExportKind::Service
                    };
                    import = Some(Import {
                        kind,
                        account,
                        subject,
                        to: None,
                        activation: None,
                    });
                }
                "prefix" | "to" => to = cx.string(k, v),
                "share" | "allow_trace" => cx.unsupported(&format!("imports.{k}"), v),
                _ => cx.unknown(k, v),
            }
        }
        match import {
            Some(mut i)
                if !i.account.is_empty() && crate::subject::is_valid(i.subject.as_bytes()) =>
            {
                i.to = to;
                out.push(i);
            }
            Some(_) => cx.error(&item.pos, "Import needs an account and a valid subject"),
            None => cx.error(&item.pos, "Import needs a stream or service"),
        }
    }
    out
}

/// `accounts { NAME { users, exports, imports } }`.
pub(super) fn accounts(opts: &mut Options, cx: &mut Ctx, node: &Node) {
    let Some(map) = node.value.as_map() else {
        cx.error(
            &node.pos,
            format!(
                "Expected map to define accounts, got {}",
                node.value.type_name()
            ),
        );
        return;
    };
    for (name, v) in map.iter() {
        if name == crate::accounts::GLOBAL_ACCOUNT {
            cx.error(&v.pos, format!("{name:?} is a reserved account name"));
            continue;
        }
        let mut acc = AccountConfig {
            name: name.to_string(),
            ..Default::default()
        };
        // `NAME: {}` or the short form `NAME: []`-less map.
        if let Some(m) = v.value.as_map() {
            for (k, item) in m.iter() {
                match k.to_ascii_lowercase().as_str() {
                    "users" => {
                        let users =
                            super::blocks::parse_users(cx, &format!("accounts.{name}"), item);
                        for mut u in users {
                            u.account = Some(name.to_string());
                            opts.users.push(u);
                        }
                    }
                    "exports" => acc.exports = super::exports::exports(cx, item),
                    "imports" => acc.imports = imports(cx, item),
                    "jetstream" => {
                        acc.jetstream = match &item.value {
                            Value::Bool(b) => Some(*b),
                            Value::String(s)
                                if s.eq_ignore_ascii_case("enabled")
                                    || s.eq_ignore_ascii_case("enable") =>
                            {
                                Some(true)
                            }
                            Value::String(s)
                                if s.eq_ignore_ascii_case("disabled")
                                    || s.eq_ignore_ascii_case("disable") =>
                            {
                                Some(false)
                            }
                            Value::Map(_) => {
                                acc.jetstream_limits =
                                    super::js_limits::account_js_limits(cx, item);
                                Some(true)
                            }
                            _ => {
                                cx.type_error(k, item, "bool, \"enabled\"/\"disabled\" or map");
                                None
                            }
                        }
                    }
                    "default_permissions" => acc.default_permissions = permissions(cx, item),
                    "limits" => acc.limits = account_limits(cx, name, item),
                    "mappings" | "maps" | "nkey" | "msg_trace" | "trace_dest" => {
                        cx.unsupported(&format!("accounts.{name}.{k}"), item)
                    }
                    _ => cx.unknown(k, item),
                }
            }
        } else {
            cx.error(
                &v.pos,
                format!(
                    "Expected map to define account {name:?}, got {}",
                    v.value.type_name()
                ),
            );
            continue;
        }
        // nats-server fills in the defaults when it reads the account,
        // whichever comes first in the block.
        if let Some(defaults) = &acc.default_permissions {
            for u in opts.users.iter_mut() {
                if u.account.as_deref() == Some(name) && u.permissions.is_none() {
                    u.permissions = Some(defaults.clone());
                }
            }
        }
        opts.accounts.push(acc);
    }
}

/// An account's `limits {}`, in nats-server's keys. A negative value is no
/// limit and 0 is zero, as nats-server reads them.
fn account_limits(cx: &mut Ctx, account: &str, node: &Node) -> AccountLimits {
    let mut limits = AccountLimits::default();
    let Some(map) = node.value.as_map() else {
        cx.error(
            &node.pos,
            format!(
                "Expected account limits to be a map/struct, got {}",
                node.value.type_name()
            ),
        );
        return limits;
    };
    for (k, v) in map.iter() {
        let slot = match k.to_ascii_lowercase().as_str() {
            "max_connections" | "max_conn" => &mut limits.max_connections,
            "max_subscriptions" | "max_subs" => &mut limits.conn.subs,
            "max_payload" | "max_pay" => &mut limits.conn.payload,
            // No leaf nodes here, so nothing to limit.
            "max_leafnodes" | "max_leafs" => {
                cx.unsupported(&format!("accounts.{account}.limits.{k}"), v);
                continue;
            }
            _ => {
                if !v.used_as_variable {
                    cx.error(
                        &v.pos,
                        format!("Unknown field {k:?} parsing account limits"),
                    );
                }
                continue;
            }
        };
        if let Some(n) = cx.int(k, v) {
            *slot = Limit::from_jwt(n);
        }
    }
    limits
}
