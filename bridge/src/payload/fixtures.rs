//! Every provider fixture (bridge/tests/fixtures/provider, described in
//! bridge/PROVIDER_FORMAT.md §11) through the parser, every field checked,
//! then merged into a state with the clock derived.

use serde_json::{json, Value};

use super::normalise::Origin;
use super::{normalise_match, split_payload, Clock, MatchState, MatchUpdate, Score, Side};

/// The fixtures, by file name, with their text.
pub(crate) const FIXTURES: [(&str, &str); 7] = [
    (
        "football-score.json",
        include_str!("../../tests/fixtures/provider/football-score.json"),
    ),
    (
        "football-incidents.json",
        include_str!("../../tests/fixtures/provider/football-incidents.json"),
    ),
    (
        "football-stats.json",
        include_str!("../../tests/fixtures/provider/football-stats.json"),
    ),
    (
        "basketball-score.json",
        include_str!("../../tests/fixtures/provider/basketball-score.json"),
    ),
    (
        "basketball-overtime-detail.json",
        include_str!("../../tests/fixtures/provider/basketball-overtime-detail.json"),
    ),
    (
        "tennis-score.json",
        include_str!("../../tests/fixtures/provider/tennis-score.json"),
    ),
    (
        "tennis-score-tiebreak.json",
        include_str!("../../tests/fixtures/provider/tennis-score-tiebreak.json"),
    ),
];

/// A fixture's updates; the sport is the file name's first word.
pub(crate) fn parse_fixture(name: &str, at_ms: u64) -> Vec<MatchUpdate> {
    let text = FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .unwrap_or_else(|| panic!("no fixture {name}"));
    let sport = name.split('-').next().unwrap_or_default();
    let topic = format!("thesports/{sport}/match/v1");
    let origin = Origin {
        sport,
        provider: "thesports",
        topic: &topic,
        received_at_ms: at_ms,
    };
    split_payload(text.as_bytes())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .iter()
        .map(|e| normalise_match(e, &origin).unwrap_or_else(|err| panic!("{name}: {err}")))
        .collect()
}

fn side(score: i64, detail: &[i64]) -> Side {
    Side {
        score: Some(score),
        detail: detail.to_vec(),
        penalties: None,
        tiebreaks: Vec::new(),
    }
}

fn score(status: i64, kickoff_ts: Option<i64>, home: Side, away: Side) -> Score {
    Score {
        status_id: Some(status),
        kickoff_ts,
        home,
        away,
        remaining_s: None,
        serving: None,
        extra: Default::default(),
    }
}

/// Only the given section is present, and no extra keys.
fn only(u: &MatchUpdate, id: &str, section: &str) {
    assert_eq!(u.match_id, id);
    assert_eq!(
        u.sport,
        u.source_topic.split('/').nth(1).unwrap_or_default()
    );
    assert_eq!(u.provider, "thesports");
    let present = [
        ("score", u.score.is_some()),
        ("stats", u.stats.is_some()),
        ("incidents", u.incidents.is_some()),
        ("tlive", u.tlive.is_some()),
    ];
    for (name, is) in present {
        assert_eq!(is, name == section, "{id}: section {name}");
    }
}

/// Every file in the fixture directory is in [`FIXTURES`] (so a new fixture
/// cannot go untested).
#[test]
fn every_fixture_file_is_tested() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/provider");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("fixture directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    files.sort();
    let mut known: Vec<String> = FIXTURES.iter().map(|(n, _)| n.to_string()).collect();
    known.sort();
    assert_eq!(files, known);
}

#[test]
fn football_score() {
    let u = parse_fixture("football-score.json", 1);
    assert_eq!(u.len(), 3);
    only(&u[0], "q4x7m2kd9wz1p0a", "score");
    assert_eq!(
        u[0].score,
        Some(score(
            4,
            Some(1767293460),
            side(2, &[2, 1, 0, 1, 6, 0, 0]),
            side(1, &[1, 1, 0, 3, 2, 0, 0])
        ))
    );
    only(&u[1], "b8n3r5tj0ye6l2c", "score");
    assert_eq!(
        u[1].score,
        Some(score(
            3,
            Some(0),
            side(0, &[0, 0, 0, 2, 3, 0, 0]),
            side(1, &[1, 1, 0, 0, 1, 0, 0])
        ))
    );
    only(&u[2], "h1v9s4gq7ok3u8e", "score");
    assert_eq!(
        u[2].score,
        Some(score(
            1,
            Some(0),
            side(0, &[0, 0, 0, 0, -1, 0, 0]),
            side(0, &[0, 0, 0, 0, -1, 0, 0])
        ))
    );
    for x in &u {
        assert!(x.extra.is_empty());
    }
}

#[test]
fn football_incidents() {
    let u = parse_fixture("football-incidents.json", 1);
    assert_eq!(u.len(), 1);
    only(&u[0], "q4x7m2kd9wz1p0a", "incidents");
    let got: Vec<Value> = u[0]
        .incidents
        .iter()
        .flatten()
        .map(|i| serde_json::to_value(i).unwrap_or_default())
        .collect();
    // The published form: modelled keys first-class, the rest under `extra`.
    let want = [
        json!({"type": 3, "position": 2, "time": 9, "player_id": "a1b2c3d4e5f6g7h", "player_name": "R. Okonkwo", "extra": {"reason_type": 1}}),
        json!({"type": 1, "position": 2, "time": 17, "home_score": 0, "away_score": 1}),
        json!({"type": 1, "position": 1, "time": 31, "player_id": "k2l3m4n5o6p7q8r", "player_name": "T. Varga", "home_score": 1, "away_score": 1,
               "extra": {"assist1_id": "s3t4u5v6w7x8y9z", "assist1_name": "M. Lindqvist"}}),
        json!({"type": 19, "position": 0, "time": 45}),
        json!({"type": 11, "position": 0, "time": 47}),
        json!({"type": 9, "position": 1, "time": 46, "extra": {"in_player_id": "c0d1e2f3g4h5i6j", "in_player_name": "P. Haddad",
               "out_player_id": "k2l3m4n5o6p7q8r", "out_player_name": "T. Varga", "reason_type": 4}}),
        json!({"type": 17, "position": 1, "time": 58, "player_id": "u7v8w9x0y1z2a3b", "player_name": "D. Mensah", "home_score": 2, "away_score": 1}),
        json!({"type": 28, "position": 2, "time": 63, "player_id": "e4f5g6h7i8j9k0l", "player_name": "J. Ferreira",
               "extra": {"var_reason": 1, "var_result": 2}}),
        json!({"type": 3, "position": 1, "time": 66, "extra": {"reason_type": 19}}),
    ];
    assert_eq!(got, want);
}

#[test]
fn football_stats() {
    let u = parse_fixture("football-stats.json", 1);
    assert_eq!(u.len(), 2);
    only(&u[0], "q4x7m2kd9wz1p0a", "stats");
    only(&u[1], "b8n3r5tj0ye6l2c", "stats");
    let triples = |u: &MatchUpdate| -> Vec<(i64, i64, i64)> {
        u.stats
            .iter()
            .flatten()
            .map(|s| {
                let n = |x: &Option<serde_json::Number>| {
                    x.as_ref().and_then(|n| n.as_i64()).unwrap_or(-99)
                };
                (s.kind, n(&s.home), n(&s.away))
            })
            .collect()
    };
    assert_eq!(
        triples(&u[0]),
        [
            (23, 88, 71),
            (2, 6, 2),
            (25, 57, 43),
            (3, 1, 3),
            (21, 5, 2),
            (4, 0, 0),
            (24, 40, 29),
            (8, 0, 0),
            (22, 7, 4)
        ]
    );
    assert_eq!(
        triples(&u[1]),
        [
            (2, 3, 1),
            (3, 2, 0),
            (4, 0, 0),
            (8, 0, 1),
            (21, 1, 2),
            (22, 4, 1),
            (23, 39, 44),
            (24, 17, 21),
            (25, 48, 52)
        ]
    );
}

#[test]
fn basketball_score() {
    let u = parse_fixture("basketball-score.json", 1);
    assert_eq!(u.len(), 2);
    only(&u[0], "w5y2c8f1n6j3t0d", "score");
    let mut want = score(
        4,
        None,
        side(49, &[27, 22, 0, 0, 0]),
        side(49, &[24, 25, 0, 0, 0]),
    );
    want.remaining_s = Some(431);
    assert_eq!(u[0].score, Some(want));
    only(&u[1], "m0p4s7v2b9e5h1k", "score");
    let mut want = score(
        5,
        None,
        side(45, &[19, 26, 0, 0, 0]),
        side(43, &[23, 20, 0, 0, 0]),
    );
    want.remaining_s = Some(0);
    assert_eq!(u[1].score, Some(want));
}

#[test]
fn basketball_overtime() {
    let u = parse_fixture("basketball-overtime-detail.json", 1);
    assert_eq!(u.len(), 1);
    only(&u[0], "g3k6n9q2t5w8z1c", "score");
    let mut want = score(
        9,
        None,
        side(94, &[25, 20, 22, 18, 9]),
        side(92, &[21, 24, 20, 20, 7]),
    );
    want.remaining_s = Some(118);
    assert_eq!(u[0].score, Some(want));
    // Not modelled (seen on REST only): passed through.
    assert_eq!(
        Value::Object(u[0].extra.clone()),
        json!({"timer": [1, 1, 1767297720, 118], "over_time_scores": [[5, 4], [5, 2]]})
    );
}

#[test]
fn tennis_scores() {
    let u = parse_fixture("tennis-score.json", 1);
    assert_eq!(u.len(), 1);
    only(&u[0], "r7u1x4a8d2g6j9m", "score");
    let mut want = score(52, None, side(1, &[6, 2]), side(0, &[3, 3]));
    want.serving = Some(2);
    assert_eq!(u[0].score, Some(want));
    assert!(u[0].extra.is_empty());

    let u = parse_fixture("tennis-score-tiebreak.json", 1);
    assert_eq!(u.len(), 1);
    only(&u[0], "z2c5f8i1l4o7r0u", "score");
    let mut home = side(1, &[7, 4, 1]);
    home.tiebreaks = vec![Some(7), None, None];
    let mut away = side(1, &[6, 6, 0]);
    away.tiebreaks = vec![Some(5), None, None];
    let mut want = score(53, None, home, away);
    want.serving = Some(1);
    assert_eq!(u[0].score, Some(want));
}

/// Merged into a state at a known time: the clock each fixture implies.
#[test]
fn fixture_clocks() {
    let clock_of = |name: &str, index: usize, at_ms: u64| -> (MatchState, Option<Clock>) {
        let u = &parse_fixture(name, at_ms)[index];
        let mut s = MatchState::new(&u.sport, &u.match_id, &u.provider);
        s.merge(u, 0);
        let c = s.clock.clone();
        (s, c)
    };
    // Second half, kick-off of the half at ts: 21.5 minutes later is 67'.
    let at = (1767293460 + 21 * 60 + 30) * 1000;
    let (s, c) = clock_of("football-score.json", 0, at);
    let c = c.expect("a clock in the second half");
    assert_eq!(
        (
            c.period,
            c.minute,
            c.stoppage,
            c.offset,
            c.kickoff_ts,
            c.running
        ),
        (Some(2), Some(67), Some(0), Some(45), Some(1767293460), true)
    );
    assert_eq!(s.minute, Some(67));
    // Half-time and not started: no clock, no minute.
    for i in [1, 2] {
        let (s, c) = clock_of("football-score.json", i, at);
        assert_eq!((c, s.minute), (None, None));
    }
    let (_, c) = clock_of("basketball-score.json", 0, 5);
    let c = c.expect("basketball clock");
    assert_eq!((c.period, c.remaining_s), (Some(2), Some(431)));
    let (_, c) = clock_of("basketball-score.json", 1, 5);
    assert_eq!(
        c.map(|c| (c.period, c.remaining_s)),
        Some((Some(2), Some(0)))
    );
    let (s, c) = clock_of("basketball-overtime-detail.json", 0, 5);
    assert_eq!(
        c.map(|c| (c.period, c.remaining_s)),
        Some((Some(5), Some(118)))
    );
    assert_eq!(s.minute, None);
    let (_, c) = clock_of("tennis-score.json", 0, 5);
    assert_eq!(
        c.map(|c| (c.period, c.game, c.serving)),
        Some((Some(2), Some(6), Some(2)))
    );
    let (_, c) = clock_of("tennis-score-tiebreak.json", 0, 5);
    assert_eq!(
        c.map(|c| (c.period, c.game, c.serving)),
        Some((Some(3), Some(2), Some(1)))
    );
}
