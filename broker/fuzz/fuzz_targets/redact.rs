//! The redactions applied before anything is logged
//! (`tribune_broker::redact`): traced CONNECT lines and URLs with
//! passwords. The input is the CONNECT argument; for `url` it is also read
//! as a string and, split at NUL bytes, as the parts of a URL with a
//! password.
//!
//! Checked for `connect_trace`:
//! - it never panics, and the output is the input (read as UTF-8, lossily)
//!   with some spans replaced by `[REDACTED]`: never more than two per `:`
//!   or `=` in the input (one per pass);
//! - when the input is a JSON object without escapes, no top-level field
//!   named `pass…`/`auth_token…` (letters, digits, `_`), `nkey`, `sig` or
//!   `proxy_sig` whose value is a plain string (no `"`, `,`, `}`, CR or LF:
//!   the characters that end a value in nats-server's textual scan, which
//!   tribune follows) keeps that value in the output. Proven by counting:
//!   once every `[REDACTED]` is turned into `"` (which no such value
//!   contains), the output holds fewer copies of the value than the input,
//!   by at least the number of fields that had it.
//!
//! Checked for `url`: it never panics; its output is the input or the
//! input with one span replaced by `xxxxx`; and for a URL assembled as
//! `scheme://user:password@host/rest` the password is exactly what is
//! replaced.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tribune_broker::redact::{self, REDACTED, URL_PASSWORD};
use tribune_broker_fuzz::occurrences;

fn is_secret_key(k: &str) -> bool {
    let word = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let prefixed = ["pass", "auth_token"]
        .iter()
        .any(|p| k.strip_prefix(p).is_some_and(word));
    prefixed || matches!(k, "nkey" | "sig" | "proxy_sig")
}

fn is_plain(v: &str) -> bool {
    !v.is_empty() && !v.contains(['"', '\\', ',', '}', '\r', '\n'])
}

fn check_connect_trace(input: &[u8]) {
    let out = redact::connect_trace(input);
    let text = String::from_utf8_lossy(input);
    let seps = text.bytes().filter(|b| matches!(b, b':' | b'=')).count();
    assert!(
        out.len() <= text.len() + 2 * seps * REDACTED.len(),
        "output longer than its redactions explain"
    );
    if input.contains(&b'\\') {
        return;
    }
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(input) else {
        return;
    };
    let unmarked = out.replace(REDACTED, "\"");
    let mut secrets: Vec<&str> = map
        .iter()
        .filter(|(k, _)| is_secret_key(k))
        .filter_map(|(_, v)| v.as_str())
        .filter(|v| is_plain(v))
        .collect();
    secrets.sort_unstable();
    for group in secrets.chunk_by(|a, b| a == b) {
        let v = group[0].as_bytes();
        let before = occurrences(input, v);
        let after = occurrences(unmarked.as_bytes(), v);
        assert!(
            after + group.len() <= before,
            "secret {:?} survives in {out:?}",
            group[0]
        );
    }
}

/// `out` is `input` with at most one span replaced by `xxxxx`.
fn check_url_shape(input: &str, out: &str) {
    if out == input {
        return;
    }
    let at = out
        .find(URL_PASSWORD)
        .expect("a changed URL has the password marker");
    // Some occurrence of the marker must be the replaced span.
    let ok = out.match_indices(URL_PASSWORD).any(|(i, _)| {
        let (head, tail) = (&out[..i], &out[i + URL_PASSWORD.len()..]);
        input.starts_with(head) && input.ends_with(tail) && head.len() + tail.len() <= input.len()
    });
    assert!(ok, "{input:?} became {out:?} (marker at {at})");
}

fn check_url(input: &[u8]) {
    let Ok(s) = std::str::from_utf8(input) else {
        return;
    };
    check_url_shape(s, &redact::url(s));

    // A URL from parts: the password is what goes.
    let mut parts = s.split('\0');
    let (Some(scheme), Some(user), Some(pass), Some(host)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let rest = parts.next().unwrap_or("");
    let keep = |s: &str, bad: &[char]| s.chars().filter(|c| !bad.contains(c)).collect::<String>();
    let scheme: String = scheme
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        .collect();
    let user = keep(user, &[':', '@', '/', '?', '#']);
    let pass = keep(pass, &['/', '?', '#']);
    let host = keep(host, &['@', '/', '?', '#']);
    let rest = format!("/{rest}");
    let prefix = if scheme.is_empty() {
        String::new()
    } else {
        format!("{scheme}://")
    };
    let url = format!("{prefix}{user}:{pass}@{host}{rest}");
    let want = format!("{prefix}{user}:{URL_PASSWORD}@{host}{rest}");
    assert_eq!(redact::url(&url), want, "from {url:?}");
    // And without a password it is left alone.
    let url = format!("{prefix}{user}@{host}{rest}");
    assert_eq!(redact::url(&url), url);
}

fuzz_target!(|input: &[u8]| {
    check_connect_trace(input);
    check_url(input);
});
