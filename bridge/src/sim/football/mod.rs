//! A simulated football match, minute by minute: kick-off, goals (some by
//! penalty, some own goals), cards, corners, substitutions, stoppage time,
//! half-time, extra time and a shoot-out for drawn cup matches, full time;
//! stats for every minute; the incident list corrected in place the way the
//! provider does it (a scorer named minutes later, a minute corrected by
//! one, a goal withdrawn after a VAR review). Codes and shapes from
//! bridge/PROVIDER_FORMAT.md.

pub mod wire;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::sim::people::Player;
pub use wire::{Incident, Line};

/// Incident and stat codes used here (PROVIDER_FORMAT.md §7, §8).
pub mod code {
    pub const GOAL: i64 = 1;
    pub const YELLOW: i64 = 3;
    pub const RED: i64 = 4;
    pub const PENALTY_GOAL: i64 = 8;
    pub const SUBSTITUTION: i64 = 9;
    pub const HALF_TIME: i64 = 11;
    pub const END: i64 = 12;
    pub const OWN_GOAL: i64 = 17;
    pub const INJURY_TIME: i64 = 19;
    pub const VAR: i64 = 28;
    /// Stat types: corners, yellow, red, penalties, shots on / off target,
    /// attacks, dangerous attacks, possession.
    pub const STATS: [i64; 9] = [2, 3, 4, 8, 21, 22, 23, 24, 25];
}

/// Where the match is; each maps to one provider status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    PreMatch,
    FirstHalf,
    HalfTime,
    SecondHalf,
    ExtraTime,
    Penalties,
    Ended,
}

/// Indexes of a side's score array.
const GOALS: usize = 0;
const HT_GOALS: usize = 1;
const REDS: usize = 2;
const YELLOWS: usize = 3;
const CORNERS: usize = 4;
const ET_TOTAL: usize = 5;
const SHOOTOUT: usize = 6;

/// A correction the provider makes to an incident a few minutes later.
#[derive(Debug, Clone)]
struct Pending {
    key: u32,
    due: u32,
    fix: Fix,
}

#[derive(Debug, Clone)]
enum Fix {
    Name(Player),
    MinuteBack,
}

#[derive(Debug, Clone)]
pub struct Match {
    pub id: String,
    pub phase: Phase,
    /// Ticks left before the next phase (pre-match, half-time).
    wait: u32,
    /// The match minute as incidents count it (1-45+s, 46-90+s, 91-120).
    pub minute: i64,
    /// Stoppage minutes of the first and the second half.
    pub stoppage: [i64; 2],
    /// Seconds into the current minute at the last tick (0-30).
    pub jitter: i64,
    pub home: [i64; 7],
    pub away: [i64; 7],
    /// Goals so far, extra time included: the simulator's own count.
    pub goals: [i64; 2],
    penalty_goals: [i64; 2],
    shootout_rounds: u32,
    /// A cup match: a draw goes to extra time and penalties.
    pub cup: bool,
    /// (type, [home, away]) in the order this match sends them.
    pub stats: Vec<(i64, [i64; 2])>,
    pub incidents: Vec<Incident>,
    pub tlive: Vec<Line>,
    pending: Vec<Pending>,
    next_key: u32,
    ticks: u32,
    /// The final score has been sent (the match can be replaced).
    pub final_sent: bool,
}

impl Match {
    pub fn new(rng: &mut StdRng, id: String) -> Match {
        let mut stats: Vec<(i64, [i64; 2])> = code::STATS.iter().map(|t| (*t, [0, 0])).collect();
        stats.shuffle(rng);
        let mut m = Match {
            id,
            phase: Phase::PreMatch,
            wait: rng.random_range(1..=2),
            minute: 0,
            stoppage: [rng.random_range(1..=3), rng.random_range(2..=6)],
            jitter: 0,
            // No corner data before kick-off (-1), as the provider sends it.
            home: [0, 0, 0, 0, -1, 0, 0],
            away: [0, 0, 0, 0, -1, 0, 0],
            goals: [0, 0],
            penalty_goals: [0, 0],
            shootout_rounds: 0,
            cup: rng.random_bool(0.25),
            stats,
            incidents: Vec::new(),
            tlive: Vec::new(),
            pending: Vec::new(),
            next_key: 0,
            ticks: 0,
            final_sent: false,
        };
        m.set_stat(25, [50, 50]);
        m.line("", "Line-ups are out.".into(), 0);
        m
    }

    /// The provider's status id for the phase.
    pub fn status(&self) -> i64 {
        match self.phase {
            Phase::PreMatch => 1,
            Phase::FirstHalf => 2,
            Phase::HalfTime => 3,
            Phase::SecondHalf => 4,
            Phase::ExtraTime => 5,
            Phase::Penalties => 7,
            Phase::Ended => 8,
        }
    }

    /// The match minute a reader should see, while a half runs.
    pub fn clock_minute(&self) -> Option<i64> {
        matches!(self.phase, Phase::FirstHalf | Phase::SecondHalf).then_some(self.minute)
    }

    /// Ended, and the final score has been sent.
    pub fn finished(&self) -> bool {
        self.phase == Phase::Ended && self.final_sent
    }

    /// One simulated minute (or one shoot-out round, or a tick of a pause).
    pub fn tick(&mut self, rng: &mut StdRng) {
        self.ticks += 1;
        self.jitter = rng.random_range(0..=30);
        self.apply_corrections();
        match self.phase {
            Phase::PreMatch => {
                if self.wait > 0 {
                    self.wait -= 1;
                } else {
                    self.phase = Phase::FirstHalf;
                    self.minute = 1;
                    self.home[CORNERS] = 0;
                    self.away[CORNERS] = 0;
                    self.line("", "First Half begins.".into(), 0);
                    self.play(rng);
                }
            }
            Phase::FirstHalf => {
                if self.minute >= 45 + self.stoppage[0] {
                    let key = self.key();
                    let end = Incident::new(key, code::HALF_TIME, 0, self.minute, self.phase);
                    self.incidents.push(end);
                    let time = wire::line_time(self.phase, self.minute);
                    let [h, a] = self.goals;
                    self.line(&time, format!("{time} First Half ends, {h}-{a}."), 0);
                    self.phase = Phase::HalfTime;
                    self.wait = 2;
                } else {
                    self.minute += 1;
                    self.play(rng);
                }
            }
            Phase::HalfTime => {
                if self.wait > 0 {
                    self.wait -= 1;
                } else {
                    self.phase = Phase::SecondHalf;
                    self.minute = 46;
                    self.line("", "Second Half begins.".into(), 0);
                    self.play(rng);
                }
            }
            Phase::SecondHalf => {
                if self.minute >= 90 + self.stoppage[1] {
                    if self.cup && self.goals[0] == self.goals[1] {
                        self.phase = Phase::ExtraTime;
                        self.minute = 91;
                        self.home[ET_TOTAL] = self.home[GOALS];
                        self.away[ET_TOTAL] = self.away[GOALS];
                        self.line("", "Extra time begins.".into(), 0);
                        self.play(rng);
                    } else {
                        self.end();
                    }
                } else {
                    self.minute += 1;
                    self.play(rng);
                }
            }
            Phase::ExtraTime => {
                if self.minute >= 120 {
                    if self.goals[0] == self.goals[1] {
                        self.phase = Phase::Penalties;
                        self.line("", "Penalty shoot-out begins.".into(), 0);
                    } else {
                        self.end();
                    }
                } else {
                    self.minute += 1;
                    self.play(rng);
                }
            }
            Phase::Penalties => self.shootout_round(rng),
            Phase::Ended => {}
        }
    }

    fn key(&mut self) -> u32 {
        self.next_key += 1;
        self.next_key
    }

    fn line(&mut self, time: &str, data: String, position: i64) {
        self.tlive.push(Line {
            time: time.to_owned(),
            data,
            position,
        });
    }

    fn side(&mut self, i: usize) -> &mut [i64; 7] {
        if i == 0 {
            &mut self.home
        } else {
            &mut self.away
        }
    }

    fn stat(&mut self, kind: i64) -> &mut [i64; 2] {
        let i = self.stats.iter().position(|(k, _)| *k == kind).unwrap_or(0);
        &mut self.stats[i].1
    }

    fn set_stat(&mut self, kind: i64, v: [i64; 2]) {
        *self.stat(kind) = v;
    }

    fn bump_stat(&mut self, kind: i64, side: usize, by: i64) {
        self.stat(kind)[side] += by;
    }

    /// A minute of play: stats move, and maybe something happens.
    fn play(&mut self, rng: &mut StdRng) {
        for side in 0..2 {
            let attacks = rng.random_range(0..=3);
            self.bump_stat(23, side, attacks);
            self.bump_stat(24, side, rng.random_range(0..=attacks.min(2)));
            if rng.random_bool(0.04) {
                self.bump_stat(21, side, 1);
            }
            if rng.random_bool(0.06) {
                self.bump_stat(22, side, 1);
            }
        }
        let home = (self.stat(25)[0] + rng.random_range(-2..=2)).clamp(30, 70);
        self.set_stat(25, [home, 100 - home]);
        if self.minute == 45 && self.phase == Phase::FirstHalf
            || self.minute == 90 && self.phase == Phase::SecondHalf
        {
            let key = self.key();
            let marker = Incident::new(key, code::INJURY_TIME, 0, self.minute, self.phase);
            self.incidents.push(marker);
            let s = self.stoppage[usize::from(self.phase == Phase::SecondHalf)];
            let time = wire::line_time(self.phase, self.minute);
            self.line(&time, format!("{time} {s} minutes of added time."), 0);
        }
        let side = rng.random_range(0..2usize);
        match rng.random_range(0..1000) {
            0..=24 => self.goal(rng, side),
            25..=64 => self.card(rng, side, code::YELLOW, YELLOWS),
            65..=69 => self.card(rng, side, code::RED, REDS),
            70..=159 => {
                self.side(side)[CORNERS] += 1;
                let corners = [self.home[CORNERS], self.away[CORNERS]];
                self.set_stat(2, corners);
                let time = wire::line_time(self.phase, self.minute);
                let who = if side == 0 { "home" } else { "away" };
                self.line(
                    &time,
                    format!("{time} Corner, {who} side."),
                    side as i64 + 1,
                );
            }
            160..=184 if self.phase != Phase::FirstHalf => self.substitution(rng, side),
            185..=199 => self.var_review(),
            _ => {}
        }
    }

    fn goal(&mut self, rng: &mut StdRng, side: usize) {
        let (kind, scorer_side) = match rng.random_range(0..20) {
            0..=1 => (code::PENALTY_GOAL, side),
            2 => (code::OWN_GOAL, side),
            _ => (code::GOAL, side),
        };
        self.goals[scorer_side] += 1;
        let phase = self.phase;
        let s = self.side(scorer_side);
        if phase == Phase::ExtraTime {
            s[ET_TOTAL] += 1;
        } else {
            s[GOALS] += 1;
            if phase == Phase::FirstHalf {
                s[HT_GOALS] += 1;
            }
        }
        if kind == code::PENALTY_GOAL {
            self.penalty_goals[scorer_side] += 1;
            let p = self.penalty_goals;
            self.set_stat(8, p);
        }
        let key = self.key();
        let mut inc = Incident::new(key, kind, scorer_side as i64 + 1, self.minute, phase);
        inc.score = Some(self.goals);
        let scorer = Player::random(rng);
        // The provider often names the scorer only minutes later.
        if rng.random_bool(0.4) {
            let due = self.ticks + rng.random_range(1..=4);
            self.pending.push(Pending {
                key,
                due,
                fix: Fix::Name(scorer.clone()),
            });
        } else {
            inc.player = Some(scorer.clone());
        }
        if kind == code::GOAL && rng.random_bool(0.5) {
            inc.assist = Some(Player::random(rng));
        }
        self.incidents.push(inc);
        self.maybe_minute_fix(rng, key);
        let time = wire::line_time(phase, self.minute);
        let [h, a] = self.goals;
        let what = match kind {
            code::PENALTY_GOAL => "Goal from the penalty spot!",
            code::OWN_GOAL => "Own goal!",
            _ => "Goal!",
        };
        let side_pos = scorer_side as i64 + 1;
        self.line(
            &time,
            format!("{time} {what} {} {h}-{a}.", scorer.name),
            side_pos,
        );
    }

    fn card(&mut self, rng: &mut StdRng, side: usize, kind: i64, index: usize) {
        self.side(side)[index] += 1;
        let count = [self.home[index], self.away[index]];
        self.set_stat(if kind == code::YELLOW { 3 } else { 4 }, count);
        let key = self.key();
        let mut inc = Incident::new(key, kind, side as i64 + 1, self.minute, self.phase);
        inc.reason = Some([1, 11, 15, 18, 19, 33][rng.random_range(0..6)]);
        let player = Player::random(rng);
        if rng.random_bool(0.25) {
            let due = self.ticks + rng.random_range(1..=3);
            self.pending.push(Pending {
                key,
                due,
                fix: Fix::Name(player.clone()),
            });
        } else {
            inc.player = Some(player.clone());
        }
        self.incidents.push(inc);
        self.maybe_minute_fix(rng, key);
        let time = wire::line_time(self.phase, self.minute);
        let colour = if kind == code::YELLOW {
            "Yellow"
        } else {
            "Red"
        };
        let text = format!("{time} {colour} card for {}.", player.name);
        self.line(&time, text, side as i64 + 1);
    }

    fn substitution(&mut self, rng: &mut StdRng, side: usize) {
        let key = self.key();
        let mut inc = Incident::new(
            key,
            code::SUBSTITUTION,
            side as i64 + 1,
            self.minute,
            self.phase,
        );
        let (on, off) = (Player::random(rng), Player::random(rng));
        inc.sub = Some((on.clone(), off.clone()));
        inc.reason = Some(if rng.random_bool(0.8) { 4 } else { 3 });
        self.incidents.push(inc);
        let time = wire::line_time(self.phase, self.minute);
        let text = format!("{time} Substitution: {} replaces {}.", on.name, off.name);
        self.line(&time, text, side as i64 + 1);
    }

    /// Sometimes the provider corrects an incident's minute by one later.
    fn maybe_minute_fix(&mut self, rng: &mut StdRng, key: u32) {
        if self.minute > 2 && rng.random_bool(0.1) {
            let due = self.ticks + rng.random_range(1..=3);
            self.pending.push(Pending {
                key,
                due,
                fix: Fix::MinuteBack,
            });
        }
    }

    fn apply_corrections(&mut self) {
        let now = self.ticks;
        let (due, later): (Vec<Pending>, Vec<Pending>) =
            self.pending.drain(..).partition(|p| p.due <= now);
        self.pending = later;
        for p in due {
            let Some(inc) = self.incidents.iter_mut().find(|i| i.key == p.key) else {
                continue;
            };
            match p.fix {
                Fix::Name(player) => inc.player = Some(player),
                Fix::MinuteBack => inc.time -= 1,
            }
        }
    }

    /// A VAR review withdraws the latest goal if it is recent and nothing
    /// was scored after it: the goal leaves the incident list, the score
    /// goes back, and a VAR entry says why.
    fn var_review(&mut self) {
        let Some(i) = self
            .incidents
            .iter()
            .rposition(|i| matches!(i.kind, code::GOAL | code::PENALTY_GOAL | code::OWN_GOAL))
        else {
            return;
        };
        let goal = &self.incidents[i];
        if goal.phase != self.phase || self.minute - goal.time > 3 {
            return;
        }
        let goal = self.incidents.remove(i);
        self.pending.retain(|p| p.key != goal.key);
        let side = usize::from(goal.position == 2);
        self.goals[side] -= 1;
        let phase = self.phase;
        let s = self.side(side);
        if phase == Phase::ExtraTime {
            s[ET_TOTAL] -= 1;
        } else {
            s[GOALS] -= 1;
            if phase == Phase::FirstHalf {
                s[HT_GOALS] -= 1;
            }
        }
        if goal.kind == code::PENALTY_GOAL {
            self.penalty_goals[side] -= 1;
            let p = self.penalty_goals;
            self.set_stat(8, p);
        }
        let key = self.key();
        let mut var = Incident::new(key, code::VAR, goal.position, self.minute, phase);
        var.player = goal.player.clone();
        var.var = Some([1, 2]);
        self.incidents.push(var);
        let time = wire::line_time(phase, self.minute);
        let [h, a] = self.goals;
        self.line(
            &time,
            format!("{time} VAR: goal disallowed, {h}-{a}."),
            goal.position,
        );
    }

    fn shootout_round(&mut self, rng: &mut StdRng) {
        self.shootout_rounds += 1;
        for side in 0..2 {
            if rng.random_bool(0.75) {
                self.side(side)[SHOOTOUT] += 1;
            }
        }
        let (h, a) = (self.home[SHOOTOUT], self.away[SHOOTOUT]);
        self.line("", format!("Penalties: {h}-{a}."), 0);
        if self.shootout_rounds >= 5 && h != a {
            self.end();
        }
    }

    fn end(&mut self) {
        let key = self.key();
        let end = Incident::new(key, code::END, 0, self.minute, self.phase);
        self.incidents.push(end);
        self.phase = Phase::Ended;
        let [h, a] = self.goals;
        self.line("", format!("Match ends, {h}-{a}."), 0);
    }

    /// The shoot-out score, once there is one.
    pub fn shootout(&self) -> Option<[i64; 2]> {
        let on = self.shootout_rounds > 0 || self.phase == Phase::Penalties;
        on.then_some([self.home[SHOOTOUT], self.away[SHOOTOUT]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A match runs its course: every phase in order, scores consistent.
    #[test]
    fn a_match_runs_to_full_time() {
        for seed in 0..40 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut m = Match::new(&mut rng, "m".into());
            let mut phases = vec![m.phase];
            for _ in 0..400 {
                m.tick(&mut rng);
                if phases.last() != Some(&m.phase) {
                    phases.push(m.phase);
                }
                let total = |s: &[i64; 7]| {
                    if s[ET_TOTAL] > 0 {
                        s[ET_TOTAL]
                    } else {
                        s[GOALS]
                    }
                };
                assert_eq!([total(&m.home), total(&m.away)], m.goals, "seed {seed}");
                assert!(m.home[HT_GOALS] <= m.home[GOALS]);
                let possession = m
                    .stats
                    .iter()
                    .find(|(k, _)| *k == 25)
                    .map(|(_, v)| v[0] + v[1]);
                assert_eq!(possession, Some(100));
            }
            assert_eq!(
                phases[..4],
                [
                    Phase::PreMatch,
                    Phase::FirstHalf,
                    Phase::HalfTime,
                    Phase::SecondHalf
                ]
            );
            assert_eq!(
                phases.last(),
                Some(&Phase::Ended),
                "seed {seed}: {phases:?}"
            );
            assert_eq!(m.incidents.last().map(|i| i.kind), Some(code::END));
            if phases.contains(&Phase::Penalties) {
                let [h, a] = m.shootout().unwrap_or_default();
                assert_ne!(h, a);
            }
        }
    }
}
