//! Tennis: `[match id, status, serving side, {ft, p1..p5, x1..x5, ...}]`, each
//! value of the object being `[home, away]`: `ft` sets won, `p<n>` games in
//! set n, `x<n>` a further number for set n (tie-break points: inferred).
//! Other keys (`pt`, whose format is unknown) are kept as sent. One client
//! (through a relay) is the only evidence (PROVIDER_FORMAT.md §4).

use serde_json::{Map, Value};

use super::{bad, int, ints};
use crate::payload::{ElementError, Score, Side};

pub const LEN: usize = 4;
pub const LAYOUT: &str = "[match id, status, serving side, {ft, p1..p5, x1..x5}]";
/// Sets in a match at most.
const SETS: usize = 5;

pub(super) fn parse(a: &[Value], status: i64) -> Result<Score, ElementError> {
    let serving = match &a[2] {
        Value::Null => None,
        v => Some(int(v, "score[2]", "the serving side")?),
    };
    let obj = a[3].as_object().ok_or_else(|| {
        bad(
            "score[3]",
            format!(
                "is {}, expected an object of [home, away] pairs (ft, p1..p5, x1..x5)",
                a[3]
            ),
        )
    })?;
    let mut sets: Option<[i64; 2]> = None;
    let mut games: [Option<[i64; 2]>; SETS] = [None; SETS];
    let mut extras: [Option<[i64; 2]>; SETS] = [None; SETS];
    let mut extra = Map::new();
    for (key, v) in obj {
        let slot = match key.as_bytes() {
            b"ft" => &mut sets,
            [b'p', n @ b'1'..=b'5'] => &mut games[usize::from(n - b'1')],
            [b'x', n @ b'1'..=b'5'] => &mut extras[usize::from(n - b'1')],
            _ => {
                extra.insert(key.clone(), v.clone());
                continue;
            }
        };
        let pair = ints(v, &format!("score[3].{key}"), 2, "[home, away]")?;
        *slot = Some([pair[0], pair[1]]);
    }
    // Sets are played in order: p1..pN without a gap.
    let played = games.iter().take_while(|g| g.is_some()).count();
    if let Some(n) = games.iter().skip(played).position(Option::is_some) {
        return Err(bad(
            "score[3]",
            format!("has p{} but no p{}", played + n + 1, played + 1),
        ));
    }
    if let Some(n) = extras.iter().skip(played).position(Option::is_some) {
        return Err(bad(
            "score[3]",
            format!("has x{} but no p{}", played + n + 1, played + n + 1),
        ));
    }
    let any_extra = extras.iter().any(Option::is_some);
    let side = |i: usize| Side {
        score: sets.map(|s| s[i]),
        detail: games[..played].iter().flatten().map(|g| g[i]).collect(),
        penalties: None,
        tiebreaks: if any_extra {
            extras[..played].iter().map(|x| x.map(|x| x[i])).collect()
        } else {
            Vec::new()
        },
    };
    Ok(Score {
        status_id: Some(status),
        kickoff_ts: None,
        home: side(0),
        away: side(1),
        remaining_s: None,
        serving,
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse as parse_score;
    use crate::payload::sport::Sport;
    use serde_json::json;

    fn score(v: serde_json::Value) -> Result<crate::payload::Score, crate::payload::ElementError> {
        parse_score(&v, Sport::Tennis, "t")
    }

    #[test]
    fn sets_games_and_tiebreaks() {
        let s = score(json!(["t", 53, 1, {"ft": [1, 1], "p1": [7, 6], "x1": [7, 5], "p2": [4, 6], "p3": [1, 0]}])).unwrap();
        assert_eq!((s.status_id, s.serving), (Some(53), Some(1)));
        assert_eq!((s.home.score, s.away.score), (Some(1), Some(1)));
        assert_eq!(s.home.detail, [7, 4, 1]);
        assert_eq!(s.away.detail, [6, 6, 0]);
        assert_eq!(s.home.tiebreaks, [Some(7), None, None]);
        assert_eq!(s.away.tiebreaks, [Some(5), None, None]);
        assert!(s.extra.is_empty() && s.kickoff_ts.is_none());
    }

    #[test]
    fn unknown_keys_are_kept_and_an_empty_object_has_no_score() {
        let s = score(json!(["t", 52, 2, {"ft": [1, 0], "p1": [6, 3], "p2": [2, 3], "pt": ["30", "15"], "p6": 1}])).unwrap();
        assert_eq!(s.extra.get("pt"), Some(&json!(["30", "15"])));
        assert_eq!(s.extra.get("p6"), Some(&json!(1)));
        assert!(s.home.tiebreaks.is_empty());
        let s = score(json!(["t", 1, null, {}])).unwrap();
        assert_eq!((s.home.score, s.serving), (None, None));
        assert!(s.home.detail.is_empty());
    }

    #[test]
    fn layout_errors() {
        let cases = [
            (
                json!(["t", 52, 2, [1, 0]]),
                "score[3]`: is [1,0], expected an object",
            ),
            (json!(["t", 52, "home", {}]), "the serving side"),
            (
                json!(["t", 52, 2, {"ft": [1]}]),
                "score[3].ft`: is [1], expected 2 integers",
            ),
            (
                json!(["t", 52, 2, {"p1": [6, 3], "p3": [1, 1]}]),
                "has p3 but no p2",
            ),
            (
                json!(["t", 52, 2, {"p1": [6, 3], "x2": [7, 5]}]),
                "has x2 but no p2",
            ),
            (json!(["t", 52, 2, {"p1": ["a", 3]}]), "score[3].p1"),
            (
                json!(["t", 52, 2, {}, 0]),
                "has 5 entries, expected 4 for tennis",
            ),
        ];
        for (v, want) in cases {
            let err = score(v.clone()).expect_err(&v.to_string());
            assert!(err.to_string().contains(want), "{v}: {err}");
        }
    }
}
