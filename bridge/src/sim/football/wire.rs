//! The simulated football match in the provider's shapes
//! (bridge/PROVIDER_FORMAT.md §4, §7-§9), written from the format reference
//! and not from the bridge's parser, so the two can be checked against each
//! other.

use serde_json::{json, Map, Value};

use super::{Match, Phase};
use crate::sim::people::Player;

/// An incident as the simulator keeps it; rendered with the keys the
/// provider uses for its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    /// The simulator's own handle, for corrections (never sent).
    pub key: u32,
    pub kind: i64,
    /// 0 neutral, 1 home, 2 away.
    pub position: i64,
    /// The match minute, stoppage counted on (45+2 is 47).
    pub time: i64,
    pub player: Option<Player>,
    pub assist: Option<Player>,
    /// Substitution: (in, out).
    pub sub: Option<(Player, Player)>,
    /// Goals: the score after it (home, away).
    pub score: Option<[i64; 2]>,
    pub reason: Option<i64>,
    /// VAR: (var_reason, var_result).
    pub var: Option<[i64; 2]>,
    /// Where a goal was counted (never sent): for a VAR cancellation.
    pub phase: Phase,
}

impl Incident {
    pub fn new(key: u32, kind: i64, position: i64, time: i64, phase: Phase) -> Incident {
        Incident {
            key,
            kind,
            position,
            time,
            player: None,
            assist: None,
            sub: None,
            score: None,
            reason: None,
            var: None,
            phase,
        }
    }

    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("type".into(), json!(self.kind));
        o.insert("position".into(), json!(self.position));
        o.insert("time".into(), json!(self.time));
        if let Some(p) = &self.player {
            o.insert("player_id".into(), json!(p.id));
            o.insert("player_name".into(), json!(p.name));
        }
        if let Some(p) = &self.assist {
            o.insert("assist1_id".into(), json!(p.id));
            o.insert("assist1_name".into(), json!(p.name));
        }
        if let Some((i, out)) = &self.sub {
            o.insert("in_player_id".into(), json!(i.id));
            o.insert("in_player_name".into(), json!(i.name));
            o.insert("out_player_id".into(), json!(out.id));
            o.insert("out_player_name".into(), json!(out.name));
        }
        if let Some([h, a]) = self.score {
            o.insert("home_score".into(), json!(h));
            o.insert("away_score".into(), json!(a));
        }
        if let Some(r) = self.reason {
            o.insert("reason_type".into(), json!(r));
        }
        if let Some([reason, result]) = self.var {
            o.insert("var_reason".into(), json!(reason));
            o.insert("var_result".into(), json!(result));
        }
        Value::Object(o)
    }
}

/// A text-live line: exactly `time`, `data`, `position` (no `type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub time: String,
    pub data: String,
    pub position: i64,
}

impl Line {
    pub fn to_json(&self) -> Value {
        json!({"time": self.time, "data": self.data, "position": self.position})
    }
}

/// A text-live line's `time` for a minute: `67'`, `45'+2'`, `90'+4'`.
pub fn line_time(phase: Phase, minute: i64) -> String {
    match phase {
        Phase::FirstHalf if minute > 45 => format!("45'+{}'", minute - 45),
        Phase::SecondHalf if minute > 90 => format!("90'+{}'", minute - 90),
        _ => format!("{minute}'"),
    }
}

impl Match {
    /// Kick-off of the half in play, as the provider's `score[4]`: the
    /// minute computed from it at `now` is the simulated minute (the
    /// provider's formula: (now - ts) / 60 + 1, + 45 in the second half);
    /// 0 when no half is running. In extra time the same rule is assumed
    /// from minute 91 (what the provider sends there is not known).
    pub fn half_kickoff(&self, now: i64) -> i64 {
        let first = match self.phase {
            Phase::FirstHalf => 1,
            Phase::SecondHalf => 46,
            Phase::ExtraTime => 91,
            _ => return 0,
        };
        now - (self.minute - first) * 60 - self.jitter
    }

    /// `score`: `[id, status, home[7], away[7], half kick-off ts, ""]`.
    pub fn score_json(&self, now: i64) -> Value {
        json!([
            self.id,
            self.status(),
            self.home,
            self.away,
            self.half_kickoff(now),
            ""
        ])
    }

    /// `stats`: all nine types, every time, in the match's own order.
    pub fn stats_json(&self) -> Value {
        Value::Array(
            self.stats
                .iter()
                .map(|(kind, [h, a])| json!({"type": kind, "home": h, "away": a}))
                .collect(),
        )
    }

    /// `incidents`: the whole list, every time.
    pub fn incidents_json(&self) -> Value {
        Value::Array(self.incidents.iter().map(Incident::to_json).collect())
    }

    /// `tlive`: the whole list, every time.
    pub fn tlive_json(&self) -> Value {
        Value::Array(self.tlive.iter().map(Line::to_json).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_lines() {
        assert_eq!(line_time(Phase::FirstHalf, 33), "33'");
        assert_eq!(line_time(Phase::FirstHalf, 47), "45'+2'");
        assert_eq!(line_time(Phase::SecondHalf, 96), "90'+6'");
        assert_eq!(line_time(Phase::ExtraTime, 105), "105'");
    }

    #[test]
    fn incidents_carry_only_their_keys() {
        let mut i = Incident::new(1, 19, 0, 45, Phase::FirstHalf);
        assert_eq!(i.to_json(), json!({"type": 19, "position": 0, "time": 45}));
        i.kind = 9;
        i.position = 1;
        let p = |n: &str| Player {
            id: n.repeat(3),
            name: n.into(),
        };
        i.sub = Some((p("in"), p("out")));
        i.reason = Some(4);
        assert_eq!(
            i.to_json(),
            json!({"type": 9, "position": 1, "time": 45, "in_player_id": "ininin", "in_player_name": "in",
                   "out_player_id": "outoutout", "out_player_name": "out", "reason_type": 4})
        );
    }
}
