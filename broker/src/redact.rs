//! Secrets out of what the server prints: passwords in URLs, and
//! passwords, tokens, nkeys and signatures in traced CONNECT lines.
//!
//! Logs and monitoring output are read by more people than the
//! configuration, and shipped to more places. Both redactions follow
//! nats-server's, so log lines stay the same across the two servers: a URL
//! keeps its user and shows its password as `xxxxx` (Go's
//! `url.URL.Redacted`), and a CONNECT trace shows each secret's value as
//! `[REDACTED]`.
//!
//! A leaf module: it imports nothing from the crate.

use std::borrow::Cow;

/// What a secret's value is replaced with in a traced CONNECT.
pub const REDACTED: &str = "[REDACTED]";

/// What a URL's password is replaced with.
pub const URL_PASSWORD: &str = "xxxxx";

/// `url` with the password of its userinfo replaced by `xxxxx`:
/// `nats-route://ruser:secret@host:6222/` becomes
/// `nats-route://ruser:xxxxx@host:6222/`. A URL without a password (no
/// userinfo, or a user alone) comes back unchanged, as from Go. Works on
/// anything URL-shaped, scheme or not, so a string that is not a valid URL
/// loses its password too.
pub fn url(url: &str) -> Cow<'_, str> {
    // A `://` is the scheme's only if nothing before it belongs to an
    // authority or a path: in `u:p@host/x://y` it is part of the path.
    let start = url
        .find("://")
        .filter(|&i| !url[..i].contains([':', '@', '/', '?', '#']))
        .map_or(0, |i| i + 3);
    let rest = &url[start..];
    // The authority ends at the path, query or fragment.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let Some(at) = authority.rfind('@') else {
        return Cow::Borrowed(url);
    };
    let Some(colon) = authority[..at].find(':') else {
        return Cow::Borrowed(url);
    };
    let pass_start = start + colon + 1;
    let pass_end = start + at;
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..pass_start]);
    out.push_str(URL_PASSWORD);
    out.push_str(&url[pass_end..]);
    Cow::Owned(out)
}

/// A CONNECT argument (its JSON) as it may be traced: the values of
/// `pass…` and `auth_token…` fields (any key starting so, as `password`)
/// and of the `nkey`, `sig` and `proxy_sig` fields replaced by
/// `[REDACTED]`. The scan is textual, like nats-server's, so it also covers
/// JSON it could not parse: a value runs to the next `"`, `,`, `}` or line
/// end.
pub fn connect_trace(arg: &[u8]) -> String {
    let text = String::from_utf8_lossy(arg);
    let once = redact_values(&text, prefix_match);
    redact_values(&once, exact_match).into_owned()
}

/// Finds the next secret value at or after a position: its byte span.
type FindValue = fn(&[u8], usize) -> Option<(usize, usize)>;

/// Replace every value `find` locates, left to right, without overlaps.
fn redact_values(text: &str, find: FindValue) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some((s, e)) = find(b, from) {
        spans.push((s, e));
        // The value's end is a terminator (or the end): never part of a
        // key, so the next search may start right there.
        from = e.max(s + 1);
    }
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + spans.len() * REDACTED.len());
    let mut last = 0;
    for (s, e) in spans {
        out.push_str(&text[last..s]);
        out.push_str(REDACTED);
        last = e;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

fn is_space(c: u8) -> bool {
    // Go's regexp `\s`: [\t\n\f\r ].
    matches!(c, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// After a key: an optional quote, spaces, `:` or `=`, spaces, an optional
/// quote, then the value up to a terminator. Returns the value's span.
fn value_after_key(b: &[u8], mut i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if b.get(j) == Some(&b'"') {
        j += 1;
    }
    while b.get(j).copied().is_some_and(is_space) {
        j += 1;
    }
    if !matches!(b.get(j), Some(b':' | b'=')) {
        // Without its quote the key is followed by the quote itself, which
        // cannot be a separator: no match either way.
        return None;
    }
    i = j + 1;
    while b.get(i).copied().is_some_and(is_space) {
        i += 1;
    }
    if b.get(i) == Some(&b'"') {
        i += 1;
    }
    let mut end = i;
    while let Some(&c) = b.get(end) {
        if matches!(c, b'"' | b',' | b'\r' | b'\n' | b'}') {
            break;
        }
        end += 1;
    }
    Some((i, end))
}

/// The next `pass…` / `auth_token…` value at or after `from`: the key is
/// followed by the fewest non-space characters that lead to a separator.
fn prefix_match(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut k = from;
    while k < b.len() {
        let rest = &b[k..];
        let key_len = if rest.starts_with(b"auth_token") {
            10
        } else if rest.starts_with(b"pass") {
            4
        } else {
            k += 1;
            continue;
        };
        let mut ext = k + key_len;
        loop {
            if let Some(span) = value_after_key(b, ext) {
                return Some(span);
            }
            match b.get(ext) {
                Some(&c) if !is_space(c) => ext += 1,
                _ => break,
            }
        }
        k += 1;
    }
    None
}

/// The next `nkey` / `sig` / `proxy_sig` value at or after `from`: the
/// exact key, not preceded by a word character (so `sig` inside
/// `proxy_sig` or `mysig` does not count).
fn exact_match(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut k = from;
    while k < b.len() {
        let rest = &b[k..];
        let key_len = [&b"proxy_sig"[..], b"nkey", b"sig"]
            .iter()
            .find(|key| rest.starts_with(key))
            .map(|key| key.len());
        if let Some(n) = key_len {
            let bounded = k == 0 || !is_word(b[k - 1]);
            if bounded {
                if let Some(span) = value_after_key(b, k + n) {
                    return Some(span);
                }
            }
        }
        k += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_only() {
        for (given, want) in [
            (
                "nats-route://ruser:T0pS3cr3t@10.0.1.5:6222/",
                "nats-route://ruser:xxxxx@10.0.1.5:6222/",
            ),
            ("nats://u:p@[::1]:4222", "nats://u:xxxxx@[::1]:4222"),
            ("u:p@host:4222", "u:xxxxx@host:4222"),
            // A password holding '@' or ':' goes whole.
            ("nats://u:a:b@c@h:1/x@y", "nats://u:xxxxx@h:1/x@y"),
            ("nats://h:1/p?q=a:b@c", "nats://h:1/p?q=a:b@c"),
            ("nats://user@h:1", "nats://user@h:1"),
            // A `://` after the authority is not a scheme's (found by the
            // `redact` fuzz target).
            ("u:p@host/x://y", "u:xxxxx@host/x://y"),
            ("u:p@host?q=nats://a:b@c", "u:xxxxx@host?q=nats://a:b@c"),
            (":@h{\"x://y", ":xxxxx@h{\"x://y"),
            ("nats://h:1", "nats://h:1"),
            ("", ""),
        ] {
            assert_eq!(url(given), want, "{given}");
        }
    }

    /// The redactions nats-server's trace makes, on the same inputs.
    #[test]
    fn connect_traces_as_nats_server() {
        for (given, want) in [
            (
                r#"{"verbose":false,"user":"alice","pass":"s3cret","auth_token":"tok"}"#,
                r#"{"verbose":false,"user":"alice","pass":"[REDACTED]","auth_token":"[REDACTED]"}"#,
            ),
            (
                r#"{"password":"pw","name":"app"}"#,
                r#"{"password":"[REDACTED]","name":"app"}"#,
            ),
            (
                r#"{"nkey":"UABC","sig":"c2ln","proxy_sig":"cHM","jwt":"e30"}"#,
                r#"{"nkey":"[REDACTED]","sig":"[REDACTED]","proxy_sig":"[REDACTED]","jwt":"e30"}"#,
            ),
            // Spaces and `=`, as a hand-typed CONNECT may have.
            (
                r#"{ "pass" : "a b" , "auth_token"= "x" }"#,
                r#"{ "pass" : "[REDACTED]" , "auth_token"= "[REDACTED]" }"#,
            ),
            // Not JSON at all: still no secret.
            (r#"{pass:abc}"#, r#"{pass:[REDACTED]}"#),
            // `sig` only as a whole key.
            (
                r#"{"mysig":"keep","tls_required":false}"#,
                r#"{"mysig":"keep","tls_required":false}"#,
            ),
            (r#"{"echo":true}"#, r#"{"echo":true}"#),
            // A route CONNECT.
            (
                r#"{"echo":true,"user":"ruser","pass":"T0pS3cr3t","name":"N"}"#,
                r#"{"echo":true,"user":"ruser","pass":"[REDACTED]","name":"N"}"#,
            ),
            // Seen from nats-server 2.15.1 -DV: the textual scan also takes
            // the value after a key that merely contains `pass`, and
            // non-string values.
            (
                r#"{"verbose":false,"user":"alice","pass":"s3cret","auth_token":"tok","name":"mypassword","lang":"go","nkey":"UAB","sig":"xyz"}"#,
                r#"{"verbose":false,"user":"alice","pass":"[REDACTED]","auth_token":"[REDACTED]","name":"mypassword","lang":"[REDACTED]","nkey":"[REDACTED]","sig":"[REDACTED]"}"#,
            ),
            (
                r#"{"user":"a","pass":123456}"#,
                r#"{"user":"a","pass":[REDACTED]}"#,
            ),
            // An empty password still shows as redacted.
            (r#"{"pass":""}"#, r#"{"pass":"[REDACTED]"}"#),
        ] {
            assert_eq!(connect_trace(given.as_bytes()), want, "{given}");
        }
    }

    #[test]
    fn key_then_separator_after_other_characters() {
        // The key may be followed by more non-space characters before the
        // separator (`pass\S*?`), and the first separator wins.
        assert_eq!(
            connect_trace(br#"{"pass_word":"pw"}"#),
            r#"{"pass_word":"[REDACTED]"}"#
        );
        // A space before any separator: no match for this key.
        assert_eq!(
            connect_trace(br#"{"name":"pass it on"}"#),
            r#"{"name":"pass it on"}"#
        );
    }
}
