//! The provider's `score` array, one layout per sport (bridge/PROVIDER_FORMAT.md
//! §4): `[match id, status, <per sport>...]`.
//!
//! Layouts are checked exactly (length, and the kind of every entry), so an
//! array of another sport or a changed layout is refused with a reason that
//! says what was expected, never read into the wrong fields.

mod basketball;
mod football;
mod tennis;

use serde_json::Value;

use super::coerce;
use super::sport::Sport;
use super::{json_kind, ElementError};
use crate::payload::Score;

/// What a sport's score array looks like, for error messages.
fn layout(sport: Sport) -> (usize, &'static str) {
    match sport {
        Sport::Football => (football::LEN, football::LAYOUT),
        Sport::Basketball => (basketball::LEN, basketball::LAYOUT),
        Sport::Tennis => (tennis::LEN, tennis::LAYOUT),
    }
}

/// Reads the `score` of an element whose id is `match_id`.
pub fn parse(v: &Value, sport: Sport, match_id: &str) -> Result<Score, ElementError> {
    let (len, text) = layout(sport);
    let name = sport.name();
    let a = v.as_array().ok_or_else(|| {
        bad(
            "score",
            format!(
                "is a JSON {}, expected the {name} array {text}",
                json_kind(v)
            ),
        )
    })?;
    if a.len() != len {
        return Err(bad(
            "score",
            format!("has {} entries, expected {len} for {name}: {text}", a.len()),
        ));
    }
    let id = match &a[0] {
        Value::String(s) => s.as_str() == match_id,
        Value::Number(n) => n.to_string() == match_id,
        _ => false,
    };
    if !id {
        return Err(bad(
            "score[0]",
            format!("is {}, not the element's id {match_id:?}", a[0]),
        ));
    }
    let status = int(&a[1], "score[1]", "the status id")?;
    match sport {
        Sport::Football => football::parse(a, status),
        Sport::Basketball => basketball::parse(a, status),
        Sport::Tennis => tennis::parse(a, status),
    }
}

fn bad(field: &str, reason: impl Into<String>) -> ElementError {
    ElementError::BadField {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// An integer entry; `what` says what it should have been.
fn int(v: &Value, field: &str, what: &str) -> Result<i64, ElementError> {
    coerce::int(v).ok_or_else(|| bad(field, format!("is {v}, expected an integer ({what})")))
}

/// An array of exactly `len` integers.
fn ints(v: &Value, field: &str, len: usize, what: &str) -> Result<Vec<i64>, ElementError> {
    let a = v.as_array().filter(|a| a.len() == len).ok_or_else(|| {
        bad(
            field,
            format!("is {}, expected {len} integers: {what}", short(v)),
        )
    })?;
    a.iter()
        .map(|x| {
            coerce::int(x)
                .ok_or_else(|| bad(field, format!("has {x}, expected {len} integers: {what}")))
        })
        .collect()
}

/// A value for an error message, cut short (the whole element is in the
/// dead letter anyway).
fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn common_checks_name_the_layout() {
        let cases = [
            (
                json!({"status": 2}),
                "expected the football array [match id",
            ),
            (json!("1-0"), "is a JSON string"),
            (
                json!(["m", 2, [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], 0]),
                "has 5 entries, expected 6 for football",
            ),
            (
                json!(["x", 2, [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], 0, ""]),
                "not the element's id \"m\"",
            ),
            (
                json!([null, 2, [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], 0, ""]),
                "score[0]",
            ),
            (
                json!([
                    "m",
                    "HT",
                    [0, 0, 0, 0, 0, 0, 0],
                    [0, 0, 0, 0, 0, 0, 0],
                    0,
                    ""
                ]),
                "expected an integer (the status id)",
            ),
        ];
        for (v, want) in cases {
            let err = parse(&v, Sport::Football, "m").expect_err(&v.to_string());
            assert!(err.to_string().contains(want), "{v}: {err}");
        }
        // A numeric element id matches a numeric score id.
        let s = parse(
            &json!([42, 1, [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], 0, ""]),
            Sport::Football,
            "42",
        )
        .unwrap();
        assert_eq!(s.status_id, Some(1));
    }

    /// Each sport's array read as another sport's is refused, never mapped.
    #[test]
    fn another_sports_array_is_refused() {
        let football = json!([
            "m",
            4,
            [2, 1, 0, 1, 6, 0, 0],
            [1, 1, 0, 3, 2, 0, 0],
            1767293460,
            ""
        ]);
        let basketball = json!(["m", 4, 431, [27, 22, 0, 0, 0], [24, 25, 0, 0, 0]]);
        let tennis = json!(["m", 52, 2, {"ft": [1, 0], "p1": [6, 3], "p2": [2, 3]}]);
        let all = [
            (Sport::Football, &football),
            (Sport::Basketball, &basketball),
            (Sport::Tennis, &tennis),
        ];
        for (sport, own) in all {
            parse(own, sport, "m").unwrap_or_else(|e| panic!("{sport:?}: {e}"));
            for (other, v) in all {
                if other != sport {
                    let err = parse(v, sport, "m").expect_err(&format!("{other:?} as {sport:?}"));
                    assert!(err.to_string().contains("score"), "{err}");
                }
            }
        }
    }

    #[test]
    fn short_values() {
        assert_eq!(short(&json!([1, 2])), "[1,2]");
        assert!(short(&json!("x".repeat(100))).ends_with('…'));
    }
}
