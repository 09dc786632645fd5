//! The `authorization`, `cluster` and `jetstream` blocks.
//!
//! Sub-options nats-server has but Tribune does not are warnings, like
//! unsupported top-level options, except security options, which are errors.

use std::path::PathBuf;
use std::time::Duration;

use super::apply::{checked_port, listen, Ctx};
use super::value::{Map, Node, Value};
use crate::options::{Options, User};

fn map_or_error<'n>(cx: &mut Ctx, node: &'n Node, msg: &str) -> Option<&'n Map> {
    match &node.value {
        Value::Map(m) => Some(m),
        other => {
            cx.error(&node.pos, format!("{msg}, got {}", other.type_name()));
            None
        }
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub(super) fn authorization(opts: &mut Options, cx: &mut Ctx, key: &str, node: &Node) {
    let Some(map) = map_or_error(cx, node, "Expected map to define authorization") else {
        return;
    };
    let (mut user, mut pass, mut token) = (String::new(), String::new(), String::new());
    let mut timeout = 0f64;
    let mut users: Option<Vec<User>> = None;
    for (k, v) in map.iter() {
        match k.to_ascii_lowercase().as_str() {
            "user" | "username" => user = cx.string(k, v).unwrap_or_default(),
            "pass" | "password" => pass = cx.string(k, v).unwrap_or_default(),
            "token" => token = cx.string(k, v).unwrap_or_default(),
            "timeout" => timeout = auth_timeout(cx, k, v).unwrap_or(timeout),
            "users" => users = Some(parse_users(cx, key, v)),
            "default_permission" | "default_permissions" => {
                opts.default_permissions = super::accounts::permissions(cx, v)
            }
            // Permissions of the single user/password or token user.
            "permissions" => opts.default_permissions = super::accounts::permissions(cx, v),
            "auth_callout" | "auth_hook" => opts.auth_callout = super::callout::auth_callout(cx, v),
            // Admits clients only through a trusted proxy: never ignored.
            "proxy_required" => cx.refuse(&format!("{key}.{k}"), v),
            _ => cx.unknown(k, v),
        }
    }
    if (!user.is_empty() || !pass.is_empty()) && !token.is_empty() {
        cx.error(&node.pos, "Cannot have a user/pass and token");
        return;
    }
    if let Some(users) = &users {
        if !user.is_empty() {
            cx.error(
                &node.pos,
                "Can not have a single user/pass and a users array",
            );
            return;
        }
        if !token.is_empty() {
            cx.error(&node.pos, "Can not have a token and a users array");
            return;
        }
        // NKEY users have no name: they are told apart by their key.
        let mut seen: Vec<&str> = opts
            .users
            .iter()
            .filter(|u| u.nkey.is_none())
            .map(|u| u.username.as_str())
            .collect();
        let mut keys: Vec<&str> = opts
            .users
            .iter()
            .filter_map(|u| u.nkey.as_deref())
            .collect();
        for u in users {
            if let Some(k) = u.nkey.as_deref() {
                if keys.contains(&k) {
                    cx.error(&node.pos, format!("Duplicate nkey {k:?} detected"));
                    return;
                }
                keys.push(k);
                continue;
            }
            if seen.contains(&u.username.as_str()) {
                cx.error(
                    &node.pos,
                    format!("Duplicate user {:?} detected", u.username),
                );
                return;
            }
            seen.push(&u.username);
        }
    }
    opts.username = non_empty(user);
    opts.password = non_empty(pass);
    opts.authorization = non_empty(token);
    if timeout > 0.0 {
        opts.auth_timeout = Duration::from_secs_f64(timeout);
    }
    // The block's default permissions go to its users without their own,
    // as nats-server applies them when it reads the block.
    let mut users = users.unwrap_or_default();
    if let Some(defaults) = &opts.default_permissions {
        for u in users.iter_mut().filter(|u| u.permissions.is_none()) {
            u.permissions = Some(defaults.clone());
        }
    }
    opts.users.extend(users);
}

/// Seconds as an integer or float, or a duration string.
fn auth_timeout(cx: &mut Ctx, k: &str, v: &Node) -> Option<f64> {
    let secs = match &v.value {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::String(s) => match super::parse_go_duration(s) {
            Ok((neg, d)) => d.as_secs_f64() * if neg { -1.0 } else { 1.0 },
            Err(e) => {
                cx.error(
                    &v.pos,
                    format!("error parsing authorization config, 'timeout' {e}"),
                );
                return None;
            }
        },
        _ => {
            cx.error(
                &v.pos,
                "error parsing authorization config, 'timeout' wrong type",
            );
            return None;
        }
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        cx.error(
            &v.pos,
            "error parsing authorization config, 'timeout' out of range",
        );
        return None;
    }
    if secs > 60.0 {
        let shown = match &v.value {
            Value::String(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            _ => secs.to_string(),
        };
        cx.warn_field(&v.pos, k, format!(
            "timeout of {shown} ({secs:.6} seconds) is high, consider keeping it under 60 seconds. possibly caused by unquoted duration; use '1m' instead of 1m, for example"
        ));
    }
    Some(secs)
}

pub(super) fn parse_users(cx: &mut Ctx, block: &str, node: &Node) -> Vec<User> {
    let Some(items) = node.value.as_array() else {
        cx.error(
            &node.pos,
            format!(
                "Expected users field to be an array, got {}",
                node.value.type_name()
            ),
        );
        return Vec::new();
    };
    let mut users = Vec::new();
    for item in items {
        let Some(map) = item.value.as_map() else {
            cx.error(
                &item.pos,
                format!(
                    "Expected user entry to be a map/struct, got {}",
                    item.value.type_name()
                ),
            );
            continue;
        };
        let mut user = User::default();
        let mut nkey = None;
        for (k, v) in map.iter() {
            match k.to_ascii_lowercase().as_str() {
                "user" | "username" => user.username = cx.string(k, v).unwrap_or_default(),
                "pass" | "password" => user.password = cx.string(k, v).unwrap_or_default(),
                // Not in nats-server's users entries: a Tribune shortcut for
                // binding a user to an account before `accounts {}` exists.
                "account" => user.account = cx.string(k, v),
                "nkey" => nkey = Some(v),
                "permission" | "permissions" => {
                    user.permissions = super::accounts::permissions(cx, v)
                }
                "allowed_connection_types" | "connection_types" | "clients" => {
                    let list = super::accounts::strings(cx, k, v).unwrap_or_default();
                    let types = crate::auth::connection_types(&list);
                    if !types.unknown.is_empty() {
                        let quoted: Vec<String> =
                            types.unknown.iter().map(|t| format!("{t:?}")).collect();
                        cx.error(
                            &v.pos,
                            format!("invalid connection types [{}]", quoted.join(" ")),
                        );
                    }
                    user.allowed_connection_types = types.known;
                }
                "authorization" => cx.refuse(&format!("{block}.users.{k}"), v),
                "proxy_required" => cx.refuse(&format!("{block}.users.{k}"), v),
                _ => cx.unknown(k, v),
            }
        }
        if let Some(nk) = nkey {
            if !user.username.is_empty() || !user.password.is_empty() {
                cx.error(&item.pos, "Nkey users do not take usernames or passwords");
                continue;
            }
            match cx.string("nkey", nk) {
                Some(key)
                    if key.starts_with('U') && nkeys::KeyPair::from_public_key(&key).is_ok() =>
                {
                    user.nkey = Some(key);
                    users.push(user);
                }
                Some(key) => cx.error(
                    &nk.pos,
                    format!("Not a valid public nkey for a user: {key:?}"),
                ),
                None => {}
            }
            continue;
        }
        if user.username.is_empty() {
            cx.error(&item.pos, "User entry requires a user");
            continue;
        }
        users.push(user);
    }
    users
}

pub(super) fn cluster(opts: &mut Options, cx: &mut Ctx, key: &str, node: &Node) {
    let Some(map) = map_or_error(cx, node, "Expected map to define cluster") else {
        return;
    };
    let c = &mut opts.cluster;
    for (k, v) in map.iter() {
        match k.to_ascii_lowercase().as_str() {
            "name" => {
                if let Some(name) = cx.string(k, v) {
                    if name.contains(' ') {
                        cx.error(&v.pos, "cluster name cannot contain spaces");
                    } else {
                        c.name = Some(name);
                    }
                }
            }
            "listen" => {
                if let Some((host, port)) = listen(cx, k, v) {
                    c.host = host;
                    c.port = cluster_port(cx, v, port).unwrap_or(c.port);
                }
            }
            "port" => {
                if let Some(p) = cx.int(k, v) {
                    c.port = cluster_port(cx, v, p).unwrap_or(c.port);
                }
            }
            "host" | "net" => {
                if let Some(h) = cx.string(k, v) {
                    c.host = h;
                }
            }
            "routes" => c.routes = routes(cx, k, v),
            "no_advertise" => c.no_advertise = cx.bool(k, v).unwrap_or(c.no_advertise),
            "cluster_advertise" | "advertise" => c.advertise = cx.string(k, v),
            "authorization" => cluster_authorization(cx, k, v, c),
            "discovery" => match crate::discovery::parse_discovery_block(v) {
                Ok(d) => c.discovery = Some(d),
                Err(errs) => cx.errors.extend(errs),
            },
            // Security: routes must not silently run without TLS or permissions.
            "tls" => {
                c.tls =
                    super::tls::tls_block(cx, &format!("{key}.{k}"), v, super::tls::TlsUse::Route)
            }
            "permissions" => cx.refuse(&format!("{key}.{k}"), v),
            "connect_retries" | "connect_backoff" | "pool_size" | "accounts" | "compression"
            | "ping_interval" | "ping_max" | "write_deadline" | "write_timeout" => {
                cx.unsupported(&format!("{key}.{k}"), v)
            }
            _ => cx.unknown(k, v),
        }
    }
    // `listen` may come after `discovery`: resolve the port at the end.
    if let Some(d) = c.discovery.as_mut() {
        if let Err(e) = d.resolve_port(c.port) {
            cx.error(&node.pos, e.to_string());
        }
    }
}

/// `cluster { authorization { user, password, timeout } }`: what peers must
/// present in their route CONNECT.
fn cluster_authorization(
    cx: &mut Ctx,
    key: &str,
    node: &Node,
    c: &mut crate::options::ClusterOptions,
) {
    let Some(map) = map_or_error(cx, node, "Expected map to define cluster authorization") else {
        return;
    };
    for (k, v) in map.iter() {
        match k.to_ascii_lowercase().as_str() {
            "user" | "username" => c.username = cx.string(k, v),
            "pass" | "password" => c.password = cx.string(k, v),
            // Seconds (or a duration string) an accepted route has to send
            // its CONNECT; 0 keeps the default.
            "timeout" => {
                if let Some(secs) = auth_timeout(cx, k, v).filter(|s| *s > 0.0) {
                    c.auth_timeout = Duration::from_secs_f64(secs);
                }
            }
            "users" | "token" | "permissions" => cx.refuse(&format!("cluster.{key}.{k}"), v),
            _ => cx.unknown(k, v),
        }
    }
    if c.username.is_some() != c.password.is_some() {
        cx.error(
            &node.pos,
            "cluster authorization requires both user and password",
        );
    }
}

/// -1 picks a random port (`Some(0)`); 0 leaves clustering off (`None`).
fn cluster_port(cx: &mut Ctx, node: &Node, v: i64) -> Option<Option<u16>> {
    match v {
        -1 => Some(Some(0)),
        0 => Some(None),
        _ => checked_port(cx, node, v).map(Some),
    }
}

fn routes(cx: &mut Ctx, k: &str, v: &Node) -> Vec<String> {
    let Some(items) = v.value.as_array() else {
        cx.type_error(k, v, "array");
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let Some(url) = cx.string(k, item) else {
            continue;
        };
        let url = url.trim().to_string();
        if out.contains(&url) {
            cx.warn_field(
                &item.pos,
                &crate::redact::url(&url),
                "Duplicate route entry detected",
            );
            continue;
        }
        if url.is_empty() || url.chars().any(char::is_whitespace) {
            let shown = crate::redact::url(&url);
            cx.error(&item.pos, format!("error parsing route url [{shown:?}]"));
            continue;
        }
        out.push(url);
    }
    out
}

pub(super) fn set_store_dir(opts: &mut Options, cx: &mut Ctx, node: &Node, dir: String) {
    if cx.store_dir_set {
        cx.error(&node.pos, "Duplicate 'store_dir' configuration");
        return;
    }
    cx.store_dir_set = true;
    opts.jetstream.store_dir = Some(PathBuf::from(dir));
}

/// JetStream options Tribune does not honour and that change what is
/// promised (encryption at rest, the API's subjects, where replicas go):
/// refused at start rather than ignored.
const REFUSED_JS: &[&str] = &[
    "domain",
    "key",
    "ek",
    "encryption_key",
    "prev_key",
    "prev_ek",
    "prev_encryption_key",
    "cipher",
    "tpm",
    "unique_tag",
];

/// Tuning knobs of nats-server's implementation: warned about, ignored.
const UNSUPPORTED_JS: &[&str] = &[
    "strict",
    "extension_hint",
    "max_outstanding_catchup",
    "max_buffered_size",
    "max_buffered_msgs",
    "request_queue_limit",
    "info_queue_limit",
    "meta_compact",
    "meta_compact_size",
    "meta_compact_sync",
    "max_concurrent_io",
];

/// `jetstream: true|false|enabled|disabled` or `jetstream { ... }`.
pub(super) fn jetstream(opts: &mut Options, cx: &mut Ctx, key: &str, node: &Node) {
    match &node.value {
        Value::Bool(b) => opts.jetstream.enabled = *b,
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "enabled" | "enable" => opts.jetstream.enabled = true,
            "disabled" | "disable" => opts.jetstream.enabled = false,
            _ => cx.error(
                &node.pos,
                format!("Expected 'enabled' or 'disabled' for string value, got '{s}'"),
            ),
        },
        Value::Map(map) => {
            let mut enable = true;
            for (k, v) in map.iter() {
                match k.to_ascii_lowercase().as_str() {
                    "store" | "store_dir" | "storedir" => {
                        if let Some(dir) = cx.string(k, v) {
                            set_store_dir(opts, cx, v, dir);
                        }
                    }
                    "max_memory_store" | "max_mem_store" | "max_mem" => {
                        if let Some(n) = storage_size(cx, "max_mem_store", v) {
                            opts.jetstream.max_memory_store = Some(n);
                        }
                    }
                    "max_file_store" | "max_file" => {
                        if let Some(n) = storage_size(cx, "max_file_store", v) {
                            opts.jetstream.max_file_store = Some(n);
                        }
                    }
                    "enable" | "enabled" => enable = cx.bool(k, v).unwrap_or(enable),
                    "sync" | "sync_interval" => match &v.value {
                        Value::String(s) if s.eq_ignore_ascii_case("always") => {
                            opts.jetstream.sync = crate::options::SyncPolicy::Always
                        }
                        _ => {
                            if let Some(d) = cx.duration(k, v) {
                                opts.jetstream.sync = if d.is_zero() {
                                    crate::options::SyncPolicy::Always
                                } else {
                                    crate::options::SyncPolicy::Interval(d)
                                };
                            }
                        }
                    },
                    "limits" => js_limits(opts, cx, &format!("{key}.{k}"), v),
                    lk if REFUSED_JS.contains(&lk) => cx.refuse(&format!("{key}.{k}"), v),
                    lk if UNSUPPORTED_JS.contains(&lk) => cx.unsupported(&format!("{key}.{k}"), v),
                    _ => cx.unknown(k, v),
                }
            }
            opts.jetstream.enabled = enable;
        }
        other => cx.error(
            &node.pos,
            format!(
                "Expected map, bool or string to define JetStream, got {}",
                other.type_name()
            ),
        ),
    }
}

/// `jetstream { limits { ... } }`. `max_ha_assets` (replicated assets per
/// server) and `batch` (atomic batch publishes, which Tribune does not
/// take) are not applied yet, and say so.
fn js_limits(opts: &mut Options, cx: &mut Ctx, path: &str, node: &Node) {
    let Value::Map(map) = &node.value else {
        cx.error(
            &node.pos,
            format!(
                "Expected a map to define JetStreamLimits, got {}",
                node.value.type_name()
            ),
        );
        return;
    };
    let limits = &mut opts.jetstream.limits;
    for (k, v) in map.iter() {
        match k.to_ascii_lowercase().as_str() {
            "max_ack_pending" => {
                if let Some(n) = cx.int(k, v) {
                    limits.max_ack_pending = n.max(0);
                }
            }
            "max_request_batch" => {
                if let Some(n) = cx.int(k, v) {
                    limits.max_request_batch = n.max(0);
                }
            }
            "duplicate_window" => {
                if let Some(d) = cx.duration(k, v) {
                    limits.duplicate_window = d;
                }
            }
            "max_ha_assets" | "batch" => cx.unsupported(&format!("{path}.{k}"), v),
            _ => cx.unknown(k, v),
        }
    }
}

/// An integer (size suffixes already applied by the parser) or a string such
/// as `"8G"`, where only `K M G T` (powers of 1024, upper case) are allowed.
fn storage_size(cx: &mut Ctx, label: &str, v: &Node) -> Option<i64> {
    let parsed = match &v.value {
        Value::Int(i) => Ok(*i),
        Value::String(s) if s.is_empty() => Ok(0),
        Value::String(s) => {
            let (num, suffix) = s.split_at(s.len() - s.chars().last().map_or(0, char::len_utf8));
            let shift = match suffix {
                "K" => Some(10),
                "M" => Some(20),
                "G" => Some(30),
                "T" => Some(40),
                _ => None,
            };
            match (num.parse::<i64>(), shift) {
                (Err(_), _) => Err(format!("strconv.ParseInt: parsing {num:?}: invalid syntax")),
                (Ok(_), None) => Err("sizes defined as strings must end in K, M, G, T".to_string()),
                (Ok(n), Some(sh)) => n
                    .checked_mul(1i64 << sh)
                    .ok_or_else(|| format!("size {s:?} is out of range")),
            }
        }
        _ => Err("must be int64 or string".to_string()),
    };
    parsed
        .map_err(|e| cx.error(&v.pos, format!("{label} {e}")))
        .ok()
}
