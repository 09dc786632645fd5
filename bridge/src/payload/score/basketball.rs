//! Basketball: `[match id, status, seconds remaining, home[5], away[5]]`, the
//! side arrays being points per period `[Q1, Q2, Q3, Q4, OT]`; the score is
//! their sum. Seen on the REST `detail_live` endpoint; that MQTT sends the
//! same shape is inferred (PROVIDER_FORMAT.md §4).

use serde_json::{Map, Value};

use super::{bad, int, ints};
use crate::payload::{ElementError, Score, Side};

pub const LEN: usize = 5;
pub const LAYOUT: &str =
    "[match id, status, seconds remaining, home[Q1..Q4, OT], away[Q1..Q4, OT]]";
const SIDE: &str = "points in Q1, Q2, Q3, Q4, OT";

pub(super) fn parse(a: &[Value], status: i64) -> Result<Score, ElementError> {
    let remaining = int(&a[2], "score[2]", "seconds remaining in the quarter")?;
    let home = side(ints(&a[3], "score[3]", 5, SIDE)?, "score[3]")?;
    let away = side(ints(&a[4], "score[4]", 5, SIDE)?, "score[4]")?;
    Ok(Score {
        status_id: Some(status),
        kickoff_ts: None,
        home,
        away,
        remaining_s: Some(remaining),
        serving: None,
        extra: Map::new(),
    })
}

fn side(detail: Vec<i64>, field: &str) -> Result<Side, ElementError> {
    let score = detail
        .iter()
        .try_fold(0i64, |sum, p| sum.checked_add(*p))
        .ok_or_else(|| bad(field, "points overflow"))?;
    Ok(Side {
        score: Some(score),
        detail,
        penalties: None,
        tiebreaks: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse as parse_score;
    use crate::payload::sport::Sport;
    use serde_json::json;

    #[test]
    fn quarters_sum_to_the_score() {
        let v = json!(["w", 4, 431, [27, 22, 0, 0, 0], [24, 25, 0, 0, 0]]);
        let s = parse_score(&v, Sport::Basketball, "w").unwrap();
        assert_eq!(
            (s.status_id, s.remaining_s, s.kickoff_ts),
            (Some(4), Some(431), None)
        );
        assert_eq!((s.home.score, s.away.score), (Some(49), Some(49)));
        assert_eq!(s.away.detail, [24, 25, 0, 0, 0]);
    }

    #[test]
    fn layout_errors() {
        let cases = [
            (
                json!(["w", 4, [27, 22, 0, 0, 0], [24, 25, 0, 0, 0], 0]),
                "score[2]`: is [27",
            ),
            (
                json!(["w", 4, 431, [27, 22, 0, 0], [24, 25, 0, 0, 0]]),
                "expected 5 integers",
            ),
            (
                json!(["w", 4, 431, [27, 22, 0, 0, 0], {"ft": [1, 2]}]),
                "score[4]",
            ),
            (
                json!(["w", 4, 1, [i64::MAX, 1, 0, 0, 0], [0, 0, 0, 0, 0]]),
                "points overflow",
            ),
            (
                json!(["w", 2, [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], 0, ""]),
                "has 6 entries, expected 5 for basketball",
            ),
        ];
        for (v, want) in cases {
            let err = parse_score(&v, Sport::Basketball, "w").expect_err(&v.to_string());
            assert!(err.to_string().contains(want), "{v}: {err}");
        }
    }
}
