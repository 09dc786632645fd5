//! The simulated provider: live matches of each sport, in the provider's
//! message shapes (bridge/PROVIDER_FORMAT.md): every message a JSON array,
//! every element `{"id", <one section>}`, all elements of a message carrying
//! the same section kind; football sends `score`, `stats`, `incidents` and
//! `tlive` (whole lists, corrected in place), basketball and tennis `score`.
//!
//! Deterministic for a seed and the times given to [`Feed::next_message`],
//! so tests know exactly what was sent. Every element also carries
//! `update_seq`, a feed-wide counter that is the simulator's own (the
//! provider sends no such key): no two updates are byte-identical, so none
//! is deduplicated downstream and tests can count them.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use super::{basketball, football, people, tennis};

pub const SPORTS: [&str; 3] = ["football", "basketball", "tennis"];

/// A simulated match of any sport.
#[derive(Debug, Clone)]
pub enum SimMatch {
    Football(football::Match),
    Basketball(basketball::Match),
    Tennis(tennis::Match),
}

/// The section an element carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Score,
    Stats,
    Incidents,
    Tlive,
}

impl Part {
    pub fn key(self) -> &'static str {
        match self {
            Part::Score => "score",
            Part::Stats => "stats",
            Part::Incidents => "incidents",
            Part::Tlive => "tlive",
        }
    }
}

impl SimMatch {
    /// A new match of `sport` (one of [`SPORTS`]; anything else is tennis).
    fn new(rng: &mut StdRng, sport: &str) -> SimMatch {
        let id = people::id(rng);
        match sport {
            "football" => SimMatch::Football(football::Match::new(rng, id)),
            "basketball" => SimMatch::Basketball(basketball::Match::new(rng, id)),
            _ => SimMatch::Tennis(tennis::Match::new(rng, id)),
        }
    }

    pub fn sport(&self) -> &'static str {
        match self {
            SimMatch::Football(_) => "football",
            SimMatch::Basketball(_) => "basketball",
            SimMatch::Tennis(_) => "tennis",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            SimMatch::Football(m) => &m.id,
            SimMatch::Basketball(m) => &m.id,
            SimMatch::Tennis(m) => &m.id,
        }
    }

    fn tick(&mut self, rng: &mut StdRng) {
        match self {
            SimMatch::Football(m) => m.tick(rng),
            SimMatch::Basketball(m) => m.tick(rng),
            SimMatch::Tennis(m) => m.tick(rng),
        }
    }

    /// Ended, and its final score sent: time for the next match.
    fn finished(&self) -> bool {
        match self {
            SimMatch::Football(m) => m.finished(),
            SimMatch::Basketball(m) => m.finished(),
            SimMatch::Tennis(m) => m.finished(),
        }
    }

    /// The section's value at time `now` (Unix s).
    pub fn render(&mut self, part: Part, now: i64) -> Value {
        match (self, part) {
            (SimMatch::Football(m), Part::Score) => {
                m.final_sent |= m.phase == football::Phase::Ended;
                m.score_json(now)
            }
            (SimMatch::Football(m), Part::Stats) => m.stats_json(),
            (SimMatch::Football(m), Part::Incidents) => m.incidents_json(),
            (SimMatch::Football(m), Part::Tlive) => m.tlive_json(),
            (SimMatch::Basketball(m), _) => {
                m.final_sent |= m.status == 10;
                m.score_json()
            }
            (SimMatch::Tennis(m), _) => {
                m.final_sent |= m.status == 100;
                m.score_json()
            }
        }
    }
}

/// The section kind of a message of `sport`: football's mix roughly as
/// observed (stats most, then score, incidents, text live); the others only
/// send scores.
fn pick_part(rng: &mut StdRng, sport: &str) -> Part {
    if sport != "football" {
        return Part::Score;
    }
    match rng.random_range(0..100) {
        0..=49 => Part::Stats,
        50..=79 => Part::Score,
        80..=91 => Part::Incidents,
        _ => Part::Tlive,
    }
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
    matches: Vec<SimMatch>,
    sports: Vec<&'static str>,
    batch: usize,
    seq: u64,
    messages: u64,
    malformed_every: u64,
    topic_prefix: String,
    /// The matches as they were when the last message was rendered.
    sent: Vec<SimMatch>,
}

impl Feed {
    /// `matches_per_sport` live matches for each sport in `sports`, each
    /// already some way into its match.
    pub fn new(
        seed: u64,
        sports: &[&'static str],
        matches_per_sport: usize,
        batch: usize,
        malformed_every: u64,
    ) -> Feed {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut matches = Vec::new();
        for sport in sports {
            for _ in 0..matches_per_sport.max(1) {
                let mut m = SimMatch::new(&mut rng, sport);
                for _ in 0..rng.random_range(0..60) {
                    m.tick(&mut rng);
                }
                matches.push(m);
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
            sent: Vec::new(),
        }
    }

    pub fn topic(&self, sport: &str) -> String {
        format!("{}/{sport}/match/v1", self.topic_prefix)
    }

    /// Total valid updates produced so far.
    pub fn updates(&self) -> u64 {
        self.seq
    }

    /// The matches of the last message, as they were when it was rendered,
    /// in its order: the simulator's model of what it sent.
    pub fn sent(&self) -> &[SimMatch] {
        &self.sent
    }

    /// The next message at time `now` (Unix s: football's kick-off times
    /// are computed from it); `max_updates` caps its batch (so a run can
    /// stop at exactly N).
    pub fn next_message(&mut self, max_updates: usize, now: i64) -> Message {
        self.messages += 1;
        self.sent.clear();
        let sport = self.sports[self.rng.random_range(0..self.sports.len())];
        if self.messages.checked_rem(self.malformed_every) == Some(0) {
            return Message {
                topic: self.topic(sport),
                payload: self.malformed_payload(),
                updates: 0,
                malformed: true,
            };
        }
        let part = pick_part(&mut self.rng, sport);
        let candidates: Vec<usize> = (0..self.matches.len())
            .filter(|i| self.matches[*i].sport() == sport)
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
            let m = &mut self.matches[idx];
            m.tick(&mut self.rng);
            let mut element = Map::new();
            element.insert("id".into(), json!(m.id()));
            element.insert(part.key().into(), m.render(part, now));
            element.insert("update_seq".into(), json!(self.seq));
            items.push(Value::Object(element));
            self.sent.push(m.clone());
            if m.finished() {
                // A new match takes the finished one's place, like a real schedule.
                self.matches[idx] = SimMatch::new(&mut self.rng, sport);
            }
        }
        Message {
            topic: self.topic(sport),
            payload: Value::Array(items).to_string().into_bytes(),
            updates: n,
            malformed: false,
        }
    }

    /// Broken payloads of assorted kinds. Each embeds the message
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
