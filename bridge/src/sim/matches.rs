//! Realistic match simulation in the provider's payload shapes.
//!
//! Deterministic for a seed, so tests know exactly what was sent. Each call to
//! [`Feed::next_message`] advances one sport's matches by a tick and returns
//! one MQTT message (topic + JSON payload) carrying 1..=batch match updates.
//! Every update carries `update_seq`, a feed-wide counter, so no two updates
//! are byte-identical (identical ones would be deduplicated downstream, which
//! is correct behaviour but would make counts ambiguous in tests).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

pub const SPORTS: [&str; 3] = ["football", "basketball", "tennis"];

/// thesports football incident codes used here.
mod code {
    pub const GOAL: i64 = 1;
    pub const CORNER: i64 = 2;
    pub const YELLOW: i64 = 3;
    pub const RED: i64 = 4;
    pub const SUBSTITUTION: i64 = 9;
}

const FIRST_NAMES: [&str; 8] = ["A.", "B.", "C.", "D.", "E.", "J.", "L.", "M."];
const SURNAMES: [&str; 10] = [
    "Silva", "Müller", "Rossi", "Dubois", "García", "Smith", "Nowak", "Jensen", "Kovač", "Okafor",
];

#[derive(Debug, Clone)]
struct Match {
    id: String,
    sport: &'static str,
    status: i64,
    minute: i64,
    kickoff: i64,
    /// Per-sport detail arrays (see README: score layouts).
    home: Vec<i64>,
    away: Vec<i64>,
    serving_home: bool,
}

/// One MQTT message from the simulated provider.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// Valid match updates in it (0 for an injected malformed payload).
    pub updates: usize,
    pub malformed: bool,
}

pub struct Feed {
    rng: StdRng,
    matches: Vec<Match>,
    sports: Vec<&'static str>,
    batch: usize,
    seq: u64,
    messages: u64,
    malformed_every: u64,
    topic_prefix: String,
}

impl Feed {
    /// `matches_per_sport` live matches for each sport in `sports`.
    pub fn new(
        seed: u64,
        sports: &[&'static str],
        matches_per_sport: usize,
        batch: usize,
        malformed_every: u64,
    ) -> Feed {
        let mut rng = StdRng::seed_from_u64(seed);
        let kickoff = 1_760_000_000 + rng.random_range(0..1_000_000);
        let mut matches = Vec::new();
        for sport in sports {
            for _ in 0..matches_per_sport.max(1) {
                matches.push(new_match(&mut rng, sport, kickoff));
            }
        }
        Feed {
            rng,
            matches,
            sports: sports.to_vec(),
            batch: batch.max(1),
            seq: 0,
            messages: 0,
            malformed_every,
            topic_prefix: "thesports".into(),
        }
    }

    pub fn topic(&self, sport: &str) -> String {
        format!("{}/{sport}/match/v1", self.topic_prefix)
    }

    /// Total valid updates produced so far.
    pub fn updates(&self) -> u64 {
        self.seq
    }

    /// The next message; `max_updates` caps its batch (so a run can stop at exactly N).
    pub fn next_message(&mut self, max_updates: usize) -> Message {
        self.messages += 1;
        let sport = self.sports[self.rng.random_range(0..self.sports.len())];
        if self.messages.checked_rem(self.malformed_every) == Some(0) {
            return Message {
                topic: self.topic(sport),
                payload: self.malformed_payload(),
                updates: 0,
                malformed: true,
            };
        }
        let candidates: Vec<usize> = (0..self.matches.len())
            .filter(|i| self.matches[*i].sport == sport)
            .collect();
        let n = self
            .rng
            .random_range(1..=self.batch)
            .min(candidates.len())
            .min(max_updates.max(1));
        let mut items = Vec::with_capacity(n);
        let start = self.rng.random_range(0..candidates.len());
        for k in 0..n {
            let idx = candidates[(start + k) % candidates.len()];
            self.seq += 1;
            let seq = self.seq;
            let kickoff = self.matches[idx].kickoff;
            let finished = tick(&mut self.rng, &mut self.matches[idx]);
            items.push(render(&mut self.rng, &self.matches[idx], seq));
            if finished {
                // A new match takes the finished one's place, like a real schedule.
                self.matches[idx] = new_match(&mut self.rng, sport, kickoff + 7200);
            }
        }
        // The provider sometimes sends a single object instead of an array.
        let payload = if items.len() == 1 && self.rng.random_bool(0.1) {
            items.pop().unwrap_or(Value::Null)
        } else {
            Value::Array(items)
        };
        Message {
            topic: self.topic(sport),
            payload: payload.to_string().into_bytes(),
            updates: n,
            malformed: false,
        }
    }

    /// Broken payloads of the kinds seen in the wild. Each embeds the message
    /// number so no two are byte-identical (identical ones are deduplicated).
    fn malformed_payload(&mut self) -> Vec<u8> {
        let n = self.messages;
        match self.rng.random_range(0..6) {
            0 => format!("{{\"id\": \"trunc{n}").into_bytes(),
            1 => format!("{{\"code\": 500, \"msg\": \"upstream error\", \"n\": {n}}}").into_bytes(),
            2 => format!("[{{\"id\": \"bad.{n}\"}}]").into_bytes(),
            3 => format!("[{{\"score\": [1, [0], [0]], \"n\": {n}}}]").into_bytes(),
            4 => format!("\"maintenance {n}\"").into_bytes(),
            _ => {
                let mut v = b"\xff\xfe\x00garbage".to_vec();
                v.extend_from_slice(n.to_string().as_bytes());
                v
            }
        }
    }
}

fn match_id(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..15)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn new_match(rng: &mut StdRng, sport: &'static str, kickoff: i64) -> Match {
    let width = match sport {
        "football" => 7, // goals, half-time goals, red, yellow, corners, overtime, penalties
        "basketball" => 5, // q1..q4, overtime
        _ => 6,          // tennis: sets won, games in sets 1..5
    };
    Match {
        id: match_id(rng),
        sport,
        status: 1,
        minute: 0,
        kickoff,
        home: vec![0; width],
        away: vec![0; width],
        serving_home: rng.random_bool(0.5),
    }
}

/// Advances a match by one tick; returns true when it has ended.
fn tick(rng: &mut StdRng, m: &mut Match) -> bool {
    match m.sport {
        "football" => {
            m.minute += 1;
            m.status = match m.minute {
                0 => 1,
                1..=45 => 2,
                46..=47 => 3,
                48..=92 => 4,
                _ => 8,
            };
            m.status == 8
        }
        "basketball" => {
            m.minute += 1;
            let quarter = ((m.minute - 1) / 12).min(3) as usize;
            m.status = 2 + quarter as i64;
            let side = if rng.random_bool(0.5) {
                &mut m.home
            } else {
                &mut m.away
            };
            side[quarter] += rng.random_range(1..=3);
            m.minute >= 48
        }
        _ => {
            // Tennis: each tick is a game in the current set.
            m.status = 2;
            let set = (1 + m.home[0] + m.away[0]) as usize;
            let set = set.min(5);
            let home_wins = rng.random_bool(if m.serving_home { 0.65 } else { 0.35 });
            m.serving_home = !m.serving_home;
            if home_wins {
                m.home[set] += 1
            } else {
                m.away[set] += 1
            }
            let (h, a) = (m.home[set], m.away[set]);
            if (h >= 6 || a >= 6) && (h - a).abs() >= 2 || h == 7 || a == 7 {
                if h > a {
                    m.home[0] += 1
                } else {
                    m.away[0] += 1
                }
            }
            m.home[0] == 3 || m.away[0] == 3
        }
    }
}

fn player(rng: &mut StdRng) -> (String, String) {
    let name = format!(
        "{} {}",
        FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())],
        SURNAMES[rng.random_range(0..SURNAMES.len())]
    );
    (match_id(rng), name)
}

/// A match object as thesports sends it: `id`, `score`, and sometimes
/// `stats`, `incidents`, `tlive`.
fn render(rng: &mut StdRng, m: &Match, seq: u64) -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert("id".into(), json!(m.id));
    obj.insert("update_seq".into(), json!(seq));
    if m.sport == "football" {
        let mut m2 = m.clone();
        let incident = football_event(rng, &mut m2);
        obj.insert(
            "score".into(),
            json!([m.id, m.status, m2.home, m2.away, m.kickoff, ""]),
        );
        if let Some((inc, text)) = incident {
            obj.insert("incidents".into(), json!([inc]));
            obj.insert("tlive".into(), json!([{"time": format!("{}'", m.minute), "data": text, "position": inc["position"], "type": inc["type"]}]));
        }
        if m.minute % 5 == 0 {
            obj.insert(
                "stats".into(),
                json!([
                    {"type": 2, "home": m2.home[4], "away": m2.away[4]},
                    {"type": 25, "home": 50 + rng.random_range(-15..15), "away": 0},
                    {"type": 21, "home": rng.random_range(0..10), "away": rng.random_range(0..10)}
                ]),
            );
        }
    } else {
        obj.insert(
            "score".into(),
            json!([m.id, m.status, m.home, m.away, m.kickoff, ""]),
        );
        if m.sport == "tennis" && rng.random_bool(0.2) {
            obj.insert("stats".into(), json!([{"type": 1, "home": rng.random_range(0..5), "away": rng.random_range(0..5)}]));
        }
    }
    Value::Object(obj)
}

/// Maybe a goal, card or corner this minute. Mutates the score the event is
/// rendered with, so incidents and score agree.
fn football_event(rng: &mut StdRng, m: &mut Match) -> Option<(Value, String)> {
    let roll = rng.random_range(0..100);
    let home = rng.random_bool(0.5);
    let position = if home { 1 } else { 2 };
    let (kind, text) = match roll {
        0..=2 => (code::GOAL, "Goal!"),
        3..=6 => (code::YELLOW, "Yellow card"),
        7 => (code::RED, "Red card"),
        8..=14 => (code::CORNER, "Corner"),
        15..=16 => (code::SUBSTITUTION, "Substitution"),
        _ => return None,
    };
    let side = if home { &mut m.home } else { &mut m.away };
    match kind {
        code::GOAL => {
            side[0] += 1;
            if m.minute <= 45 {
                side[1] += 1;
            }
        }
        code::RED => side[2] += 1,
        code::YELLOW => side[3] += 1,
        code::CORNER => side[4] += 1,
        _ => {}
    }
    let (pid, pname) = player(rng);
    let inc = json!({"type": kind, "position": position, "time": m.minute, "player_id": pid,
                     "player_name": pname, "home_score": m.home[0], "away_score": m.away[0]});
    Some((inc, format!("{} {text} ({})", m.minute, pname)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::normalise::Origin;
    use crate::payload::{normalise_match, split_payload};

    #[test]
    fn deterministic_and_valid() {
        let mut a = Feed::new(7, &SPORTS, 3, 4, 0);
        let mut b = Feed::new(7, &SPORTS, 3, 4, 0);
        let mut total = 0;
        for _ in 0..2000 {
            let (ma, mb) = (a.next_message(usize::MAX), b.next_message(usize::MAX));
            assert_eq!(ma.payload, mb.payload);
            let sport = ma.topic.split('/').nth(1).unwrap().to_owned();
            let entries = split_payload(&ma.payload).unwrap();
            assert_eq!(entries.len(), ma.updates);
            for e in &entries {
                let origin = Origin {
                    sport: &sport,
                    provider: "p",
                    topic: &ma.topic,
                    received_at_ms: 0,
                };
                normalise_match(e, &origin).unwrap();
            }
            total += ma.updates;
        }
        assert_eq!(total as u64, a.updates());
    }

    #[test]
    fn football_has_goals_and_cards() {
        let mut f = Feed::new(1, &["football"], 4, 1, 0);
        let mut kinds = std::collections::HashSet::new();
        for _ in 0..3000 {
            let m = f.next_message(1);
            for e in split_payload(&m.payload).unwrap() {
                for inc in e
                    .get("incidents")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    kinds.insert(inc["type"].as_i64().unwrap());
                }
            }
        }
        for k in [code::GOAL, code::YELLOW, code::RED, code::CORNER] {
            assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
        }
    }

    #[test]
    fn malformed_injection() {
        let mut f = Feed::new(3, &SPORTS, 2, 2, 5);
        let msgs: Vec<_> = (0..20).map(|_| f.next_message(usize::MAX)).collect();
        assert_eq!(msgs.iter().filter(|m| m.malformed).count(), 4);
        assert!(msgs.iter().filter(|m| m.malformed).all(|m| m.updates == 0));
    }
}
