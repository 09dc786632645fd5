//! Operator mode in the configuration, as nats-server reads it:
//!
//! ```text
//! operator: /etc/nats/op.jwt          # or the JWT inline, or a list
//! system_account: ADB4...             # defaults to the operator's
//! resolver: MEMORY
//! resolver_preload: { ACCOUNT_PUBKEY: "eyJ..." }
//! ```
//!
//! These keys are read after all the others, because their checks
//! (nats-server's `validateTrustedOperators`) look at `accounts {}`, users
//! and `system_account` too. Verified preloaded accounts become account
//! configurations named by their public key, so the server builds them like
//! any configured account. `resolver` directories (`full`, `cache`) and
//! `URL(...)` are refused: running without the accounts they would serve is
//! not an option.

use super::apply::Ctx;
use super::value::{Map, Node, Value};
use crate::operator::{self, verify};
use std::time::Duration;

use crate::operator::store::DeleteMode;
use crate::options::{FullResolverOptions, OperatorOptions, Options, ResolverOptions};

/// Every spelling nats-server accepts for the operator JWTs.
pub(super) const OPERATOR_KEYS: &[&str] = &[
    "operator",
    "operators",
    "roots",
    "root",
    "root_operators",
    "root_operator",
];
const RESOLVER_KEYS: &[&str] = &["resolver", "account_resolver", "accounts_resolver"];
const TRUSTED_KEYS: &[&str] = &["trusted", "trusted_keys"];
const PRELOAD_KEY: &str = "resolver_preload";

/// Is `key` one of the options this module reads?
pub(super) fn is_operator_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    OPERATOR_KEYS.contains(&k.as_str())
        || RESOLVER_KEYS.contains(&k.as_str())
        || TRUSTED_KEYS.contains(&k.as_str())
        || k == PRELOAD_KEY
}

fn find<'a>(root: &'a Map, names: &[&str]) -> Option<(&'a str, &'a Node)> {
    root.iter()
        .filter(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
        .last()
}

/// Read the operator-mode options of `root` into `opts`, after every other
/// top-level option has been applied.
pub(super) fn apply(opts: &mut Options, cx: &mut Ctx, root: &Map) {
    let operators = find(root, OPERATOR_KEYS).map(|(k, n)| (n, operator_jwts(cx, k, n)));
    let trusted = find(root, TRUSTED_KEYS).map(|(k, n)| (n, trusted_keys(cx, k, n)));
    let resolver = find(root, RESOLVER_KEYS).and_then(|(k, n)| resolver(cx, k, n));
    let preload = find(root, &[PRELOAD_KEY]).map(|(_, n)| preloads(cx, n));
    let at = match (&operators, &trusted) {
        (Some((n, _)), _) | (None, Some((n, _))) => (*n).clone(),
        (None, None) => return,
    };
    let ops = operators.map(|(_, o)| o).unwrap_or_default();
    let mut problem = |msg: &str| cx.error(&at.pos, msg.to_string());
    if !ops.is_empty() {
        if resolver.is_none() {
            problem("operators require an account resolver to be configured");
        }
        if !opts.accounts.is_empty() {
            problem("operators do not allow Accounts to be configured directly");
        }
        if !opts.users.is_empty() {
            problem("operators do not allow users to be configured directly");
        }
        if trusted.is_some() {
            problem("conflicting options for 'TrustedKeys' and 'TrustedOperators'");
        }
        if opts.auth_callout.is_some() {
            problem("operators do not allow authorization callouts to be configured directly");
        }
        match &opts.system_account {
            Some(sys) => {
                let named: Vec<&str> = ops
                    .iter()
                    .map(|o| o.nats.system_account.as_str())
                    .filter(|s| !s.is_empty())
                    .collect();
                if !named.is_empty() && !named.contains(&sys.as_str()) {
                    problem("system_account in config and operator JWT must be identical");
                }
            }
            None => {
                opts.system_account = ops
                    .first()
                    .map(|o| o.nats.system_account.clone())
                    .filter(|s| !s.is_empty());
            }
        }
    }
    for op in &ops {
        if let Err(e) = check_server_version(op, crate::server::NATS_COMPAT_VERSION) {
            cx.error(&at.pos, e);
        }
    }
    let trusted_keys = match trusted {
        Some((_, keys)) if ops.is_empty() => keys,
        _ => verify::trusted_keys(&ops),
    };
    for key in &trusted_keys {
        if !verify::is_public_key(key, nkeys::KeyPairType::Operator) {
            cx.error(
                &at.pos,
                format!("trusted Keys {key:?} are required to be a valid public operator nkey"),
            );
        }
    }
    let preload = preload.unwrap_or_default();
    for (key, token) in &preload {
        match verify::account(key, token, &trusted_keys) {
            Ok(claims) => opts.accounts.push(operator::account_config(&claims)),
            Err(e) => cx
                .warnings
                .push(format!("Preloaded account [{key}] not valid: {e}")),
        }
    }
    opts.operator = Some(OperatorOptions {
        trusted_keys,
        preload,
        resolver: resolver.unwrap_or_default(),
    });
}

/// `major.minor.patch` as three numbers.
fn version(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.trim_start_matches('v').splitn(3, '.');
    let mut next = || parts.next()?.parse::<u64>().ok();
    Some((next()?, next()?, next()?))
}

/// An operator's `assert_server_version` against the version this server
/// reports, refused in nats-server's words when the operator wants newer.
fn check_server_version(
    op: &tribune_auth::jwt::OperatorClaims,
    server: &str,
) -> Result<(), String> {
    let want = op.nats.assert_server_version.as_str();
    if want.is_empty() {
        return Ok(());
    }
    let sub = &op.std.sub;
    let (Some(w), Some(have)) = (version(want), version(server)) else {
        return Err(format!(
            "operator {sub} expects version {want} got error instead: invalid version"
        ));
    };
    if w.0 != have.0 {
        if w.0 > have.0 {
            return Err(format!(
                "operator {sub} expected major version {} > server major version {}",
                w.0, have.0
            ));
        }
        return Ok(());
    }
    if w.1 != have.1 {
        if w.1 > have.1 {
            return Err(format!(
                "operator {sub} expected minor version {} > server minor version {}",
                w.1, have.1
            ));
        }
        return Ok(());
    }
    if w.2 > have.2 {
        return Err(format!(
            "operator {sub} expected update version {} > server update version {}",
            w.2, have.2
        ));
    }
    Ok(())
}

/// `operator`: a path to a JWT file or a JWT inline, or a list of them.
fn operator_jwts(cx: &mut Ctx, key: &str, node: &Node) -> Vec<tribune_auth::jwt::OperatorClaims> {
    let items: Vec<&Node> = match &node.value {
        Value::String(_) => vec![node],
        Value::Array(items) => items.iter().collect(),
        _ => {
            let t = node.value.type_name();
            cx.error(
                &node.pos,
                format!("error parsing operators: unsupported type {t}"),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for item in items {
        let Some(source) = cx.string(key, item) else {
            continue;
        };
        match read_operator(&source) {
            Ok(op) => out.push(op),
            Err(e) => cx.error(&item.pos, format!("error parsing operator JWT: {e}")),
        }
    }
    out
}

/// An operator JWT from a file, or inline when no such file exists and the
/// text looks like a JWT, as nats-server decides.
fn read_operator(source: &str) -> Result<tribune_auth::jwt::OperatorClaims, String> {
    let text = match std::fs::read_to_string(source) {
        Ok(text) => text,
        Err(_) if source.starts_with("eyJ") => source.to_string(),
        Err(e) => return Err(format!("open {source}: {e}")),
    };
    verify::operator(verify::undecorate(&text))
}

fn trusted_keys(cx: &mut Ctx, key: &str, node: &Node) -> Vec<String> {
    super::accounts::strings(cx, key, node).unwrap_or_default()
}

/// `resolver`: `MEMORY`, or a map for the directory resolver
/// (`type: full`). `URL(...)` and `type: cache` are refused.
fn resolver(cx: &mut Ctx, key: &str, node: &Node) -> Option<ResolverOptions> {
    match &node.value {
        Value::String(s) => {
            let s = s.trim();
            if s.eq_ignore_ascii_case("MEM") || s.eq_ignore_ascii_case("MEMORY") {
                return Some(ResolverOptions::Memory);
            }
            if s.to_ascii_uppercase().starts_with("URL") {
                cx.error(
                    &node.pos,
                    format!(
                        "{key} {s:?} is not supported by tribune-broker; use MEMORY or a full directory resolver"
                    ),
                );
            } else {
                cx.error(&node.pos, RESOLVER_SHAPE.to_string());
            }
            None
        }
        Value::Map(m) => full_resolver(cx, key, node, m),
        _ => {
            cx.error(
                &node.pos,
                format!(
                    "error parsing operator resolver, wrong type {}",
                    node.value.type_name()
                ),
            );
            None
        }
    }
}

const RESOLVER_SHAPE: &str = "error parsing account resolver, should be MEM or  URL(\"url\") or a map containing dir and type state=[FULL|CACHE])";

/// `resolver { type, dir, allow_delete, hard_delete, limit, interval,
/// timeout, ttl }`, with nats-server's checks and words.
fn full_resolver(cx: &mut Ctx, key: &str, node: &Node, m: &Map) -> Option<ResolverOptions> {
    let string = |cx: &mut Ctx, k: &str| m.get(k).and_then(|n| cx.string(k, n));
    let kind = string(cx, "type").unwrap_or_default();
    let dir = string(cx, "dir").unwrap_or_default();
    let del = m
        .get("allow_delete")
        .and_then(|n| cx.bool("allow_delete", n));
    let hard = m.get("hard_delete").and_then(|n| cx.bool("hard_delete", n));
    let limit = m.get("limit").and_then(|n| cx.int("limit", n));
    let duration = |cx: &mut Ctx, k: &str| m.get(k).and_then(|n| cx.duration(k, n));
    let ttl = duration(cx, "ttl");
    let interval = duration(cx, "interval");
    let timeout = duration(cx, "timeout");
    match kind.to_ascii_uppercase().as_str() {
        "FULL" => {}
        "MEM" | "MEMORY" => return Some(ResolverOptions::Memory),
        "CACHE" => {
            cx.error(
                &node.pos,
                format!(
                    "{key} of type \"cache\" is not supported by tribune-broker; use type: full"
                ),
            );
            return None;
        }
        _ => {
            cx.error(&node.pos, RESOLVER_SHAPE.to_string());
            return None;
        }
    }
    if dir.is_empty() {
        cx.error(
            &node.pos,
            "dir has no value and needs to point to a directory",
        );
        return None;
    }
    if std::fs::metadata(&dir).is_ok_and(|md| !md.is_dir()) {
        cx.error(&node.pos, "dir needs to point to an accessible directory");
        return None;
    }
    if ttl.is_some_and(|t| !t.is_zero()) {
        cx.error(&node.pos, "FULL does not accept ttl");
    }
    if hard.is_some() && del != Some(true) {
        cx.error(&node.pos, "hard_delete has no effect without delete");
    }
    if timeout.is_some_and(|t| t.is_zero()) {
        cx.error(
            &node.pos,
            format!("Fetch timeout {:?} is too smal", Duration::ZERO),
        );
    }
    let mut full = FullResolverOptions::new(dir.into());
    full.delete = match (del, hard) {
        (Some(true), Some(true)) => DeleteMode::Remove,
        (Some(true), _) => DeleteMode::Rename,
        _ => DeleteMode::Refuse,
    };
    full.limit = limit.and_then(|l| usize::try_from(l).ok()).unwrap_or(0);
    if let Some(i) = interval.filter(|i| !i.is_zero()) {
        full.interval = i;
    }
    if let Some(t) = timeout.filter(|t| !t.is_zero()) {
        full.timeout = t;
    }
    Some(ResolverOptions::Full(full))
}

/// `resolver_preload`: account public key → account JWT. A value that is
/// not an account JWT at all is an error; one that does not verify is
/// warned about when it is checked against the trusted keys.
fn preloads(cx: &mut Ctx, node: &Node) -> Vec<(String, String)> {
    let Some(map) = node.value.as_map() else {
        cx.error(
            &node.pos,
            "preload should be a map of account_public_key:account_jwt",
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, v) in map.iter() {
        let Some(token) = v.value.as_str() else {
            cx.error(&v.pos, "preload map value should be a string JWT");
            continue;
        };
        let token = token.trim();
        if tribune_auth::jwt::decode_verified::<tribune_auth::jwt::AccountClaims>(token).is_err() {
            cx.error(&v.pos, "invalid account JWT");
            continue;
        }
        out.push((key.to_string(), token.to_string()));
    }
    out
}

#[cfg(test)]
#[path = "operator_tests.rs"]
mod tests;
