//! Subject syntax: tokens separated by `.`, with `*` matching one token and
//! `>` matching one or more trailing tokens.
//!
//! The rules follow nats-server exactly, because clients rely on the server
//! accepting and rejecting the same subjects: a token is never empty, it never
//! holds white space, and `>` may only be the last token. A token such as
//! `foo*` is a literal, not a wildcard.

/// Token separator.
pub const TSEP: u8 = b'.';
/// Single-token wildcard.
pub const PWC: u8 = b'*';
/// Full (tail) wildcard.
pub const FWC: u8 = b'>';

#[inline]
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

/// A valid subject, wildcards allowed: what `SUB` accepts.
pub fn is_valid(subject: &[u8]) -> bool {
    if subject.is_empty() {
        return false;
    }
    let mut saw_fwc = false;
    for token in subject.split(|&b| b == TSEP) {
        if token.is_empty() || saw_fwc {
            return false;
        }
        if token.len() > 1 {
            if token.iter().any(|&b| is_space(b)) {
                return false;
            }
            continue;
        }
        match token[0] {
            FWC => saw_fwc = true,
            b if is_space(b) => return false,
            _ => {}
        }
    }
    true
}

/// A valid subject without wildcard tokens: what a pedantic `PUB` requires.
pub fn is_valid_literal(subject: &[u8]) -> bool {
    is_valid(subject) && !has_wildcard_token(subject)
}

/// True when any token is exactly `*` or `>`.
pub fn has_wildcard_token(subject: &[u8]) -> bool {
    subject
        .split(|&b| b == TSEP)
        .any(|t| t.len() == 1 && (t[0] == PWC || t[0] == FWC))
}

/// Does the literal `subject` match the (possibly wildcard) `filter`?
///
/// Used off the hot path (permissions, monitoring filters); routing goes
/// through the sublist trie instead.
pub fn matches(filter: &[u8], subject: &[u8]) -> bool {
    let mut ft = filter.split(|&b| b == TSEP);
    let mut st = subject.split(|&b| b == TSEP);
    loop {
        match (ft.next(), st.next()) {
            (None, None) => return true,
            (Some(f), Some(_)) if f == [FWC] => return true,
            (Some(f), Some(s)) => {
                if f != [PWC] && f != s {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Number of tokens in a subject.
pub fn num_tokens(subject: &[u8]) -> usize {
    if subject.is_empty() {
        0
    } else {
        memchr::memchr_iter(TSEP, subject).count() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_follows_nats_server() {
        for ok in [
            "foo", "foo.bar", "foo.*", "foo.>", "*", ">", "foo*.bar", "*.*.>", "$SYS.x", "a.b*c",
        ] {
            assert!(is_valid(ok.as_bytes()), "{ok} should be valid");
        }
        for bad in [
            "",
            ".",
            "foo.",
            ".foo",
            "foo..bar",
            "foo.>.bar",
            "> .x",
            "foo bar",
            "foo\tbar",
            ">.foo",
            "a. b",
        ] {
            assert!(!is_valid(bad.as_bytes()), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn literal_rejects_wildcard_tokens_only() {
        assert!(is_valid_literal(b"foo.bar"));
        assert!(is_valid_literal(b"foo*.bar>"));
        assert!(!is_valid_literal(b"foo.*"));
        assert!(!is_valid_literal(b"foo.>"));
        assert!(!is_valid_literal(b"foo..bar"));
    }

    #[test]
    fn matching() {
        assert!(matches(b"foo.*", b"foo.bar"));
        assert!(!matches(b"foo.*", b"foo.bar.baz"));
        assert!(matches(b"foo.>", b"foo.bar.baz"));
        assert!(!matches(b"foo.>", b"foo"));
        assert!(matches(b">", b"foo"));
        assert!(matches(b"*.bar", b"foo.bar"));
        assert!(!matches(b"foo.bar", b"foo.baz"));
        assert!(matches(b"foo.bar", b"foo.bar"));
    }

    #[test]
    fn token_count() {
        assert_eq!(num_tokens(b""), 0);
        assert_eq!(num_tokens(b"a"), 1);
        assert_eq!(num_tokens(b"a.b.c"), 3);
    }
}
