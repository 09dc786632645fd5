//! Football: `[match id, status, home[7], away[7], half kick-off ts, note]`.
//!
//! home/away: goals, half-time goals, red cards, yellow cards, corners (-1 =
//! no data), extra-time total (the 120-minute score including regular time,
//! 0 until extra time), penalty shoot-out goals. `ts`: is the kick-off of the
//! half in play, 0 when none is; `note`: has only ever been `""`.

use serde_json::{Map, Value};

use super::{bad, int, ints};
use crate::payload::{ElementError, Score, Side};

pub const LEN: usize = 6;
pub const LAYOUT: &str = "[match id, status, home[7], away[7], half kick-off ts, note]";
const SIDE: &str = "goals, half-time goals, red, yellow, corners, extra-time total, penalties";

/// Index of the extra-time total and of the shoot-out in a side's array.
const EXTRA_TIME: usize = 5;
const SHOOTOUT: usize = 6;
/// Status: penalty shoot-out in progress.
const STATUS_SHOOTOUT: i64 = 7;

pub(super) fn parse(a: &[Value], status: i64) -> Result<Score, ElementError> {
    let home = ints(&a[2], "score[2]", 7, SIDE)?;
    let away = ints(&a[3], "score[3]", 7, SIDE)?;
    let ts = int(&a[4], "score[4]", "the kick-off time of the half in play")?;
    let mut extra = Map::new();
    match &a[5] {
        Value::Null => {}
        Value::String(s) if s.is_empty() => {}
        Value::String(_) => {
            extra.insert("note".into(), a[5].clone());
        }
        other => {
            return Err(bad(
                "score[5]",
                format!("is {other}, expected a string (note)"),
            ))
        }
    }
    let shootout = status == STATUS_SHOOTOUT || home[SHOOTOUT] > 0 || away[SHOOTOUT] > 0;
    Ok(Score {
        status_id: Some(status),
        kickoff_ts: Some(ts),
        home: side(home, shootout),
        away: side(away, shootout),
        remaining_s: None,
        serving: None,
        extra,
    })
}

/// The headline is the extra-time total once it is filled in (it includes
/// regular time), else the regular-time goals: the rule the provider's
/// documentation implies and clients use (PROVIDER_FORMAT.md §4).
fn side(detail: Vec<i64>, shootout: bool) -> Side {
    let score = if detail[EXTRA_TIME] > 0 {
        detail[EXTRA_TIME]
    } else {
        detail[0]
    };
    Side {
        score: Some(score),
        penalties: shootout.then_some(detail[SHOOTOUT]),
        detail,
        tiebreaks: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse as parse_score;
    use crate::payload::sport::Sport;
    use serde_json::json;

    fn score(v: serde_json::Value) -> Result<crate::payload::Score, crate::payload::ElementError> {
        parse_score(&v, Sport::Football, "m")
    }

    #[test]
    fn regular_time() {
        let s = score(json!([
            "m",
            4,
            [2, 1, 0, 1, 6, 0, 0],
            [1, 1, 0, 3, 2, 0, 0],
            1767293460,
            ""
        ]))
        .unwrap();
        assert_eq!((s.status_id, s.kickoff_ts), (Some(4), Some(1767293460)));
        assert_eq!((s.home.score, s.away.score), (Some(2), Some(1)));
        assert_eq!((s.home.penalties, s.away.penalties), (None, None));
        assert_eq!(s.home.detail, [2, 1, 0, 1, 6, 0, 0]);
        assert!(s.extra.is_empty() && s.remaining_s.is_none() && s.serving.is_none());
    }

    #[test]
    fn extra_time_and_penalties() {
        // 1-1 after 90, 2-2 after 120, shoot-out 4-3.
        let s = score(json!([
            "m",
            8,
            [1, 0, 0, 0, 3, 2, 4],
            [1, 1, 0, 2, 5, 2, 3],
            0,
            ""
        ]))
        .unwrap();
        assert_eq!((s.home.score, s.away.score), (Some(2), Some(2)));
        assert_eq!((s.home.penalties, s.away.penalties), (Some(4), Some(3)));
        // Shoot-out just started: 0-0 but on.
        let s = score(json!([
            "m",
            7,
            [1, 0, 0, 0, 3, 1, 0],
            [1, 1, 0, 2, 5, 1, 0],
            0,
            ""
        ]))
        .unwrap();
        assert_eq!((s.home.penalties, s.away.penalties), (Some(0), Some(0)));
        assert_eq!((s.home.score, s.away.score), (Some(1), Some(1)));
        // Extra time, the total not filled in yet on one side: regular goals.
        let s = score(json!([
            "m",
            5,
            [2, 1, 0, 0, 3, 3, 0],
            [2, 0, 0, 0, 1, 0, 0],
            1767300000,
            ""
        ]))
        .unwrap();
        assert_eq!((s.home.score, s.away.score), (Some(3), Some(2)));
    }

    #[test]
    fn no_corner_data_and_notes() {
        let s = score(json!([
            "m",
            1,
            [0, 0, 0, 0, -1, 0, 0],
            [0, 0, 0, 0, -1, 0, 0],
            0,
            null
        ]))
        .unwrap();
        assert_eq!(s.home.detail[4], -1);
        assert_eq!(s.kickoff_ts, Some(0));
        let s = score(json!([
            "m",
            1,
            [0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0],
            0,
            "suspended"
        ]))
        .unwrap();
        assert_eq!(s.extra.get("note"), Some(&json!("suspended")));
    }

    #[test]
    fn layout_errors() {
        let cases = [
            (
                json!(["m", 2, [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], 0, ""]),
                "score[2]`: is [0,0,0,0,0], expected 7 integers",
            ),
            (
                json!([
                    "m",
                    2,
                    [0, 0, 0, 0, 0, 0, 0],
                    [0, 0, "x", 0, 0, 0, 0],
                    0,
                    ""
                ]),
                "score[3]`: has \"x\"",
            ),
            (
                json!([
                    "m",
                    2,
                    [0, 0, 0, 0, 0, 0, 0],
                    [0, 0, 0, 0, 0, 0, 0],
                    [1],
                    ""
                ]),
                "score[4]",
            ),
            (
                json!(["m", 2, [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], 0, 5]),
                "score[5]",
            ),
            (
                json!(["m", 2, 431, [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], 0]),
                "score[2]`: is 431",
            ),
        ];
        for (v, want) in cases {
            let err = score(v.clone()).expect_err(&v.to_string());
            assert!(err.to_string().contains(want), "{v}: {err}");
        }
    }
}
