//! Subject building: `sports.<sport>.<matchId>`.
//!
//! Both tokens come from outside (the MQTT topic and the provider's payload), so
//! they are validated before they get anywhere near a NATS subject: a `.` would
//! add levels, `*` / `>` would turn a publish subject into a wildcard (which the
//! server rejects, failing the whole batch), and whitespace would split the
//! protocol line.

use thiserror::Error;

/// Longest accepted token. Provider ids are ~15 chars; this bounds abuse.
pub const MAX_TOKEN_LEN: usize = 128;

/// Why a token cannot be used in a subject.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("empty")]
    Empty,
    #[error("longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    #[error("contains {0:?}, which is not allowed in a subject token")]
    Forbidden(char),
}

/// Checks one subject token: no `.`, `*`, `>`, whitespace or control characters.
pub fn validate_token(token: &str) -> Result<(), TokenError> {
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    match token
        .chars()
        .find(|c| matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control())
    {
        Some(c) => Err(TokenError::Forbidden(c)),
        None => Ok(()),
    }
}

/// Builds `<prefix>.<sport>.<match_id>` after validating both tokens.
pub fn match_subject(prefix: &str, sport: &str, match_id: &str) -> Result<String, TokenError> {
    validate_token(sport)?;
    validate_token(match_id)?;
    Ok(format!("{prefix}.{sport}.{match_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids() {
        for id in ["l7oqdehe1xy4r51", "123", "a-b_c", "ÄÖ"] {
            assert_eq!(validate_token(id), Ok(()), "{id}");
        }
        assert_eq!(
            match_subject("sports", "football", "abc").as_deref(),
            Ok("sports.football.abc")
        );
    }

    #[test]
    fn rejects_bad_ids() {
        let table = [
            ("", TokenError::Empty),
            ("a.b", TokenError::Forbidden('.')),
            ("*", TokenError::Forbidden('*')),
            ("a>", TokenError::Forbidden('>')),
            ("a b", TokenError::Forbidden(' ')),
            ("a\tb", TokenError::Forbidden('\t')),
            ("a\nb", TokenError::Forbidden('\n')),
            ("a\u{a0}b", TokenError::Forbidden('\u{a0}')),
            ("a\u{0}b", TokenError::Forbidden('\u{0}')),
        ];
        for (id, want) in table {
            assert_eq!(validate_token(id), Err(want), "{id:?}");
        }
        assert_eq!(validate_token(&"x".repeat(129)), Err(TokenError::TooLong));
        assert!(match_subject("sports", "foot.ball", "1").is_err());
    }
}
