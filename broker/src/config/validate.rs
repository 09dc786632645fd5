//! Checks that involve more than one option, as nats-server's
//! `validateOptions` does when the server starts.
//!
//! They run at the end of [`super::apply_file`] (so a bad file is reported
//! with positions), and are exposed as [`validate_options`] for after the
//! command-line flags have been layered on top, since a flag can create or fix
//! a conflict.

use std::path::Path;

use super::apply::{is_any, Ctx};
use super::duration::format_go_duration;
use super::value::Map;
use super::ConfigError;
use crate::options::Options;

/// nats-server warns (but starts) above this payload size.
const MAX_PAYLOAD_WARN: usize = 8 * 1024 * 1024;

/// A problem and the option keys it is best reported at.
struct Problem {
    keys: &'static [&'static str],
    message: String,
}

fn problems(opts: &Options, check_no_auth_user: bool) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut push =
        |keys: &'static [&'static str], message: String| out.push(Problem { keys, message });
    if !opts.lame_duck_duration.is_zero() && opts.lame_duck_grace_period >= opts.lame_duck_duration
    {
        push(
            &["lame_duck_grace_period", "lame_duck_duration"],
            format!(
                "lame duck grace period ({}) should be strictly lower than lame duck duration ({})",
                format_go_duration(opts.lame_duck_grace_period),
                format_go_duration(opts.lame_duck_duration)
            ),
        );
    }
    if opts.max_payload > opts.max_pending {
        push(
            &["max_payload", "max_pending"],
            format!(
                "max_payload ({}) cannot be higher than max_pending ({})",
                opts.max_payload, opts.max_pending
            ),
        );
    }
    if opts.server_name.as_deref().is_some_and(|n| n.contains(' ')) {
        push(
            &["server_name"],
            "server name cannot contain spaces".to_string(),
        );
    }
    if opts
        .cluster
        .name
        .as_deref()
        .is_some_and(|n| n.contains(' '))
    {
        push(
            &["cluster"],
            "cluster name cannot contain spaces".to_string(),
        );
    }
    if let Some(ac) = &opts.auth_callout {
        // nats-server logs an unknown auth user and starts anyway; a name
        // that matches no local user would let a client named so skip the
        // callout and still fail locally, or worse, succeed on an open
        // server. Tribune refuses to start.
        for u in &ac.auth_users {
            let known = opts.username.as_deref() == Some(u.as_str())
                || opts
                    .users
                    .iter()
                    .any(|x| &x.username == u || x.nkey.as_deref() == Some(u.as_str()));
            if !known {
                push(
                    &["authorization"],
                    format!("Authorization callout user {u:?} not valid: no such user or nkey"),
                );
            }
        }
        for name in &ac.allowed_accounts {
            if !opts.accounts.iter().any(|a| &a.name == name) {
                push(
                    &["authorization"],
                    format!(
                        "auth_callout allowed account {name:?} not found in configured accounts"
                    ),
                );
            }
        }
    }
    if let (Some(nau), true) = (&opts.no_auth_user, check_no_auth_user) {
        if opts.users.is_empty() {
            push(
                &["no_auth_user"],
                format!("no_auth_user: {nau:?} present, but users/nkeys are not defined"),
            );
        } else if !opts
            .users
            .iter()
            .any(|u| &u.username == nau || u.nkey.as_ref() == Some(nau))
        {
            push(
                &["no_auth_user"],
                format!(
                    "no_auth_user: {nau:?} not present as user or nkey in authorization block or account configuration"
                ),
            );
        }
    }
    for message in super::websocket::problems(opts, check_no_auth_user) {
        push(&["websocket", "ws"], message);
    }
    out
}

/// Cross-option checks for the final options (file plus flags). Returns the
/// messages, worded as nats-server's.
pub fn validate_options(opts: &Options) -> Result<(), Vec<String>> {
    let msgs: Vec<String> = problems(opts, true)
        .into_iter()
        .map(|p| p.message)
        .collect();
    if msgs.is_empty() {
        Ok(())
    } else {
        Err(msgs)
    }
}

/// Runs the checks after a file was applied, locating each problem at the
/// first of its keys present in the file, and adds nats-server's startup
/// warnings.
pub(super) fn check_applied(opts: &Options, root: &Map, file: &Path, cx: &mut Ctx) {
    // Users may also come from `accounts {}`, which we do not read yet, so a
    // no_auth_user naming one of them must not be rejected.
    let has_accounts = root.iter().any(|(k, _)| k.eq_ignore_ascii_case("accounts"));
    for p in problems(opts, !has_accounts) {
        // Already reported with a position by apply.
        let duplicate = cx.errors.iter().any(|e| e.message == p.message);
        if duplicate {
            continue;
        }
        let at = p
            .keys
            .iter()
            .find_map(|k| root.iter().find(|(rk, _)| is_any(rk, &[k])));
        match at {
            Some((_, node)) => cx.error(&node.pos, p.message),
            None => cx.errors.push(ConfigError::in_file(file, p.message)),
        }
    }
    if opts.max_payload > MAX_PAYLOAD_WARN {
        if let Some((_, node)) = root
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("max_payload"))
        {
            cx.warn(&node.pos, "Maximum payloads over 8.00 MB are generally discouraged and could lead to poor performance");
        }
    }
}
