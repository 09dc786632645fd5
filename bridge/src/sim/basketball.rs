//! A simulated basketball match: four quarters with breaks (statuses 2-8),
//! overtime while tied (9), ended (10); the clock counts down the quarter.
//! Sent as the REST-derived score array `[id, status, seconds remaining,
//! home[Q1..Q4, OT], away[...]]` (bridge/PROVIDER_FORMAT.md §4; that MQTT
//! uses the same array is inferred). Only `score` is sent: the other
//! sections' basketball shapes are not known.

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

/// Points a team scores in one tick of play, drawn uniformly.
const POINTS: [i64; 8] = [0, 0, 0, 1, 2, 2, 2, 3];
const OVERTIME_SECS: i64 = 300;

#[derive(Debug, Clone)]
pub struct Match {
    pub id: String,
    pub status: i64,
    /// Seconds left in the quarter (or overtime).
    pub remaining: i64,
    /// 600 (FIBA) or 720 (NBA).
    pub quarter_secs: i64,
    /// Points per period `[Q1, Q2, Q3, Q4, OT]`, all overtimes in OT.
    pub home: [i64; 5],
    pub away: [i64; 5],
    /// Points so far: the simulator's own count.
    pub points: [i64; 2],
    wait: u32,
    pub final_sent: bool,
}

impl Match {
    pub fn new(rng: &mut StdRng, id: String) -> Match {
        let quarter_secs = if rng.random_bool(0.5) { 600 } else { 720 };
        Match {
            id,
            status: 1,
            remaining: quarter_secs,
            quarter_secs,
            home: [0; 5],
            away: [0; 5],
            points: [0, 0],
            wait: rng.random_range(0..=2),
            final_sent: false,
        }
    }

    /// The period being played or just ended: 1-4, 5 for overtime.
    pub fn period(&self) -> Option<i64> {
        match self.status {
            2..=8 => Some(self.status / 2),
            9 => Some(5),
            _ => None,
        }
    }

    pub fn finished(&self) -> bool {
        self.status == 10 && self.final_sent
    }

    pub fn tick(&mut self, rng: &mut StdRng) {
        match self.status {
            1 => {
                if self.wait > 0 {
                    self.wait -= 1;
                } else {
                    self.status = 2;
                    self.remaining = self.quarter_secs;
                }
            }
            // Breaks: the next quarter starts.
            3 | 5 | 7 => {
                self.status += 1;
                self.remaining = self.quarter_secs;
            }
            2 | 4 | 6 | 8 | 9 => {
                let period = usize::try_from(self.period().unwrap_or(1) - 1).unwrap_or(0);
                for side in 0..2 {
                    let p = POINTS[rng.random_range(0..POINTS.len())];
                    self.points[side] += p;
                    let periods = if side == 0 {
                        &mut self.home
                    } else {
                        &mut self.away
                    };
                    periods[period] += p;
                }
                self.remaining -= rng.random_range(20..=60);
                if self.remaining <= 0 {
                    self.remaining = 0;
                    self.status = match self.status {
                        8 | 9 if self.points[0] == self.points[1] => {
                            self.remaining = OVERTIME_SECS;
                            9
                        }
                        8 | 9 => 10,
                        s => s + 1,
                    };
                }
            }
            _ => {}
        }
    }

    /// `score`: `[id, status, seconds remaining, home[5], away[5]]`.
    pub fn score_json(&self) -> Value {
        json!([self.id, self.status, self.remaining, self.home, self.away])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn quarters_breaks_and_the_end() {
        let mut overtime = false;
        for seed in 0..60 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut m = Match::new(&mut rng, "b".into());
            let mut statuses = vec![m.status];
            for _ in 0..200 {
                m.tick(&mut rng);
                if statuses.last() != Some(&m.status) {
                    statuses.push(m.status);
                }
                assert_eq!(m.home.iter().sum::<i64>(), m.points[0]);
                assert_eq!(m.away.iter().sum::<i64>(), m.points[1]);
                assert!((0..=m.quarter_secs).contains(&m.remaining));
            }
            assert_eq!(
                statuses[..9],
                [1, 2, 3, 4, 5, 6, 7, 8, statuses[8]],
                "seed {seed}"
            );
            assert_eq!(statuses.last(), Some(&10));
            overtime |= statuses.contains(&9);
            assert_ne!(m.points[0], m.points[1]);
        }
        assert!(overtime, "some match goes to overtime");
    }
}
