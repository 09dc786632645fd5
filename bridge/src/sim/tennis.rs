//! A simulated tennis match, one game per tick: sets (statuses 51-55),
//! tie-breaks at 6-6, ended (100). Sent as `[id, status, serving side, {ft,
//! p1..p5, x1..x5}]` (bridge/PROVIDER_FORMAT.md §4): `ft` sets won, `p<n>`
//! games in set n, `x<n>` the tie-break points of a set that had one (that
//! meaning is inferred). `pt` is not sent: its format is not known. Only
//! `score` is sent.

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone)]
pub struct Match {
    pub id: String,
    pub status: i64,
    /// Sets to win: 2 (best of three) or 3 (best of five).
    pub to_win: i64,
    /// Games per set, set 1 first; the last one is being played.
    pub sets: Vec<[i64; 2]>,
    /// Tie-break points of each set that had a tie-break.
    pub tiebreaks: Vec<Option<[i64; 2]>>,
    pub won: [i64; 2],
    /// 1 home, 2 away.
    pub serving: i64,
    wait: u32,
    pub final_sent: bool,
}

impl Match {
    pub fn new(rng: &mut StdRng, id: String) -> Match {
        Match {
            id,
            status: 1,
            to_win: if rng.random_bool(0.3) { 3 } else { 2 },
            sets: Vec::new(),
            tiebreaks: Vec::new(),
            won: [0, 0],
            serving: rng.random_range(1..=2),
            wait: rng.random_range(0..=2),
            final_sent: false,
        }
    }

    pub fn finished(&self) -> bool {
        self.status == 100 && self.final_sent
    }

    /// The set in play, 1-5.
    pub fn set(&self) -> Option<i64> {
        (51..=55).contains(&self.status).then_some(self.status - 50)
    }

    pub fn tick(&mut self, rng: &mut StdRng) {
        match self.status {
            1 => {
                if self.wait > 0 {
                    self.wait -= 1;
                } else {
                    self.status = 51;
                    self.sets.push([0, 0]);
                    self.tiebreaks.push(None);
                }
            }
            51..=55 => self.game(rng),
            _ => {}
        }
    }

    fn game(&mut self, rng: &mut StdRng) {
        let set = self.sets.len() - 1;
        let games = self.sets[set];
        let server = usize::from(self.serving == 2);
        let winner = if games == [6, 6] {
            // Tie-break: first to 7, two clear.
            let w = rng.random_range(0..2usize);
            let lost = rng.random_range(0..=8);
            let won = if lost <= 5 { 7 } else { lost + 2 };
            let mut points = [0, 0];
            points[w] = won;
            points[1 - w] = lost;
            self.tiebreaks[set] = Some(points);
            w
        } else if rng.random_bool(0.64) {
            server
        } else {
            1 - server
        };
        self.sets[set][winner] += 1;
        self.serving = 3 - self.serving;
        let [a, b] = [self.sets[set][winner], self.sets[set][1 - winner]];
        if a >= 6 && a - b >= 2 || a == 7 {
            self.won[winner] += 1;
            if self.won[winner] == self.to_win {
                self.status = 100;
            } else {
                self.status += 1;
                self.sets.push([0, 0]);
                self.tiebreaks.push(None);
            }
        }
    }

    /// `score`: `[id, status, serving side, {ft, p1, x1, p2, ...}]`.
    pub fn score_json(&self) -> Value {
        let mut scores = Map::new();
        scores.insert("ft".into(), json!(self.won));
        for (i, games) in self.sets.iter().enumerate() {
            scores.insert(format!("p{}", i + 1), json!(games));
            if let Some(Some(x)) = self.tiebreaks.get(i) {
                scores.insert(format!("x{}", i + 1), json!(x));
            }
        }
        json!([self.id, self.status, self.serving, scores])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sets_tiebreaks_and_the_end() {
        let mut tiebreaks = 0;
        for seed in 0..60 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut m = Match::new(&mut rng, "t".into());
            for _ in 0..400 {
                m.tick(&mut rng);
            }
            assert_eq!(m.status, 100, "seed {seed}");
            assert_eq!(m.won.iter().max(), Some(&m.to_win));
            for (set, x) in m.sets.iter().zip(&m.tiebreaks) {
                assert_eq!(
                    x.is_some(),
                    set.contains(&7) && set.contains(&6),
                    "{set:?} {x:?}"
                );
                tiebreaks += usize::from(x.is_some());
            }
        }
        assert!(tiebreaks > 0);
    }
}
