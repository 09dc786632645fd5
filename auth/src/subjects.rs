//! The syntax of what configs and claims put into subjects: literal tokens,
//! subjects with wildcards, claim templates and stream names. Pure checks,
//! shared by the config loader and the permission mapping.

use anyhow::{bail, Result};

/// Longest accepted claim value; IdP values are short identifiers.
const MAX_VALUE_LEN: usize = 64;

/// Is `v` a single, literal subject token (no wildcards, dots or whitespace)?
pub fn is_plain_token(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_VALUE_LEN
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A syntactically valid NATS subject (wildcards allowed, `>` only last).
pub fn check_subject(s: &str) -> Result<()> {
    if s.is_empty() {
        bail!("empty subject");
    }
    let toks: Vec<&str> = s.split('.').collect();
    for (i, t) in toks.iter().enumerate() {
        if t.is_empty() {
            bail!("empty token in {s:?}");
        }
        if t.chars().any(char::is_whitespace) {
            bail!("whitespace in {s:?}");
        }
        if t.contains('>') && (*t != ">" || i + 1 != toks.len()) {
            bail!("'>' must be the last token in {s:?}");
        }
        if t.contains('*') && *t != "*" {
            bail!("'*' must be a whole token in {s:?}");
        }
    }
    Ok(())
}

/// A JetStream stream name as nats-server accepts it in an API subject.
pub fn check_stream_name(s: &str) -> Result<()> {
    if s.is_empty()
        || s.len() > 255
        || s.bytes()
            .any(|b| matches!(b, b'.' | b'*' | b'>' | b'/' | b'\\') || b <= b' ' || b == 0x7f)
    {
        bail!("not a valid stream name");
    }
    Ok(())
}

/// A claim subject template: a valid subject with `{value}` as exactly one whole token.
pub fn check_template(t: &str) -> Result<()> {
    if t.matches("{value}").count() != 1 {
        bail!("template {t:?} must contain {{value}} exactly once");
    }
    if !t.split('.').any(|tok| tok == "{value}") {
        bail!("{{value}} must be a whole subject token in {t:?}");
    }
    check_subject(&t.replace("{value}", "x"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_and_template_checks() {
        assert!(check_subject("a.*.>").is_ok());
        assert!(check_subject("a.>.b").is_err());
        assert!(check_subject("a..b").is_err());
        assert!(check_subject("a*.b").is_err());
        assert!(check_template("sports.{value}.>").is_ok());
        assert!(check_template("sports.x{value}.>").is_err());
        assert!(check_template("sports.>").is_err());
    }

    #[test]
    fn stream_names() {
        assert!(check_stream_name("SPORTS").is_ok());
        for bad in ["", "A.B", "A*", "A>", "A B", "a/b"] {
            assert!(check_stream_name(bad).is_err(), "{bad:?}");
        }
    }
}
