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
use crate::options::{OperatorOptions, Options};

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
    let resolver = find(root, RESOLVER_KEYS).and_then(|(k, n)| memory_resolver(cx, k, n));
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

/// `resolver`: only `MEMORY` is supported; anything else is refused.
fn memory_resolver(cx: &mut Ctx, key: &str, node: &Node) -> Option<()> {
    match &node.value {
        Value::String(s) => {
            let s = s.trim();
            if s.eq_ignore_ascii_case("MEM") || s.eq_ignore_ascii_case("MEMORY") {
                return Some(());
            }
            if s.to_ascii_uppercase().starts_with("URL") {
                cx.error(
                    &node.pos,
                    format!("{key} {s:?} is not supported by tribune-broker yet; only MEMORY is"),
                );
            } else {
                cx.error(&node.pos, format!("{key} {s:?} is not a resolver"));
            }
            None
        }
        Value::Map(m) => {
            let kind = m
                .get_ignore_case("type")
                .and_then(|n| n.value.as_str())
                .unwrap_or("full");
            cx.error(
                &node.pos,
                format!(
                    "{key} of type {kind:?} is not supported by tribune-broker yet; only MEMORY is"
                ),
            );
            None
        }
        _ => {
            cx.type_error(key, node, "string or map");
            None
        }
    }
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
