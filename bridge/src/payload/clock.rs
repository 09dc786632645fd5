//! The match clock from the provider's score (bridge/PROVIDER_FORMAT.md §5, §6).
//!
//! The feed carries no running minute: football sends the kick-off time of
//! the half in play, basketball the seconds left in the quarter, tennis the
//! set (in the status) and the games. [`Clock::derive`] turns those into a
//! clock as of a given time, a pure function of the score and that time, so
//! a state's clock is the same wherever it is computed (the merge computes it
//! at the state's `updated_at_ms`).

use super::sport::Sport;
use super::{Clock, Score};

/// A half whose kick-off is longer ago than this has a wrong or stale
/// timestamp (a half lasts ~50 minutes, with a long stoppage ~60): no minute
/// is derived from it rather than a nonsensical one.
const MAX_HALF_SECS: i64 = 3 * 3600;

/// Football: the minutes of one half.
const HALF_MINUTES: i64 = 45;

impl Clock {
    /// The clock of a match of `sport` with this score, at `at_ms` (Unix ms);
    /// `None` when the status has no clock (not started, a break, ended, an
    /// unknown status) or the sport is not supported.
    pub fn derive(sport: &str, score: &Score, at_ms: u64) -> Option<Clock> {
        let status = score.status_id?;
        match Sport::from_name(sport)? {
            Sport::Football => football(status, score.kickoff_ts, at_ms),
            Sport::Basketball => basketball(status, score.remaining_s),
            Sport::Tennis => tennis(status, score),
        }
    }

    /// Football: the minute as the provider's incidents count it, stoppage
    /// included (45+2 is 47).
    pub fn match_minute(&self) -> Option<i64> {
        Some(self.minute? + self.stoppage.unwrap_or(0))
    }

    /// Short human form, as of the clock's time, without what the status
    /// name already says: `67'`, `45+2'`; `7:11` (left in the quarter);
    /// `game 6, away serving`.
    pub fn text(&self, sport: &str) -> String {
        match Sport::from_name(sport) {
            Some(Sport::Football) => match (self.minute, self.stoppage.unwrap_or(0)) {
                (Some(m), 0) => format!("{m}'"),
                (Some(m), s) => format!("{m}+{s}'"),
                (None, _) => String::new(),
            },
            Some(Sport::Basketball) => match self.remaining_s {
                Some(s) if s >= 0 => format!("{}:{:02}", s / 60, s % 60),
                _ => String::new(),
            },
            Some(Sport::Tennis) => {
                let serving = match self.serving {
                    Some(1) => Some("home serving"),
                    Some(2) => Some("away serving"),
                    _ => None,
                };
                match (self.game, serving) {
                    (Some(g), Some(s)) => format!("game {g}, {s}"),
                    (Some(g), None) => format!("game {g}"),
                    (None, Some(s)) => s.to_owned(),
                    (None, None) => String::new(),
                }
            }
            None => String::new(),
        }
    }
}

/// 2 first half, 4 second half carry a kick-off time; 5 extra time and 7
/// penalties are periods without a known clock (what `score[4]` holds in
/// extra time is not known).
fn football(status: i64, kickoff_ts: Option<i64>, at_ms: u64) -> Option<Clock> {
    let (period, offset) = match status {
        2 => (1, Some(0)),
        4 => (2, Some(HALF_MINUTES)),
        5 => (3, None),
        7 => (4, None),
        _ => return None,
    };
    let mut clock = Clock {
        period: Some(period),
        ..Clock::default()
    };
    let Some(offset) = offset else {
        return Some(clock);
    };
    clock.offset = Some(offset);
    let now = i64::try_from(at_ms / 1000).unwrap_or(i64::MAX);
    let Some(ts) = kickoff_ts.filter(|ts| *ts > 0) else {
        return Some(clock);
    };
    let elapsed = now.saturating_sub(ts);
    if elapsed > MAX_HALF_SECS {
        return Some(clock);
    }
    // The provider's formula: (now - ts) / 60 + 1 (+ 45 in the second half).
    // A timestamp slightly ahead of our clock counts as the kick-off minute.
    let raw = elapsed.max(0) / 60 + 1 + offset;
    let end = offset + HALF_MINUTES;
    clock.minute = Some(raw.min(end));
    clock.stoppage = Some((raw - end).max(0));
    clock.kickoff_ts = Some(ts);
    clock.running = true;
    Some(clock)
}

/// 2/4/6/8 quarters in play, 3/5/7 the breaks after quarters 1-3 (the clock
/// shows the quarter just ended), 9 overtime.
fn basketball(status: i64, remaining_s: Option<i64>) -> Option<Clock> {
    let period = match status {
        2 | 3 => 1,
        4 | 5 => 2,
        6 | 7 => 3,
        8 => 4,
        9 => 5,
        _ => return None,
    };
    Some(Clock {
        period: Some(period),
        remaining_s,
        ..Clock::default()
    })
}

/// 51-55 set 1-5 in play; 3 in play with the set unknown.
fn tennis(status: i64, score: &Score) -> Option<Clock> {
    let set = match status {
        51..=55 => Some(status - 50),
        3 => None,
        _ => return None,
    };
    let game = set.map(|set| {
        let i = usize::try_from(set - 1).unwrap_or(usize::MAX);
        match (score.home.detail.get(i), score.away.detail.get(i)) {
            (Some(h), Some(a)) => h.saturating_add(*a).saturating_add(1),
            _ => 1,
        }
    });
    Some(Clock {
        period: set,
        game,
        serving: score.serving,
        ..Clock::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Side;

    fn side(detail: &[i64]) -> Side {
        Side {
            score: None,
            detail: detail.to_vec(),
            penalties: None,
            tiebreaks: Vec::new(),
        }
    }

    fn score(status: i64, ts: Option<i64>) -> Score {
        Score {
            status_id: Some(status),
            kickoff_ts: ts,
            home: side(&[]),
            away: side(&[]),
            remaining_s: None,
            serving: None,
            extra: Default::default(),
        }
    }

    const TS: i64 = 1_767_293_460;

    fn at(secs_after_ts: i64) -> u64 {
        ((TS + secs_after_ts) * 1000 + 999) as u64
    }

    #[test]
    fn football_minutes_from_the_half_kickoff() {
        let c = Clock::derive("football", &score(2, Some(TS)), at(0)).unwrap();
        assert_eq!(
            (c.period, c.minute, c.stoppage, c.offset),
            (Some(1), Some(1), Some(0), Some(0))
        );
        assert!(c.running);
        assert_eq!(c.kickoff_ts, Some(TS));
        let c = Clock::derive("football", &score(2, Some(TS)), at(59)).unwrap();
        assert_eq!(c.minute, Some(1));
        let c = Clock::derive("football", &score(2, Some(TS)), at(60)).unwrap();
        assert_eq!(c.minute, Some(2));
        // First-half stoppage: 45+2, which incidents count as 47.
        let c = Clock::derive("football", &score(2, Some(TS)), at(46 * 60 + 5)).unwrap();
        assert_eq!(
            (c.minute, c.stoppage, c.match_minute()),
            (Some(45), Some(2), Some(47))
        );
        assert_eq!(c.text("football"), "45+2'");
        // Second half: + 45.
        let c = Clock::derive("football", &score(4, Some(TS)), at(21 * 60 + 30)).unwrap();
        assert_eq!(
            (c.period, c.minute, c.stoppage),
            (Some(2), Some(67), Some(0))
        );
        assert_eq!(c.text("football"), "67'");
        let c = Clock::derive("football", &score(4, Some(TS)), at(49 * 60)).unwrap();
        assert_eq!((c.minute, c.stoppage), (Some(90), Some(5)));
        // A timestamp a little ahead of our clock: the first minute.
        let c = Clock::derive("football", &score(4, Some(TS)), at(-20)).unwrap();
        assert_eq!(c.minute, Some(46));
    }

    #[test]
    fn football_without_a_minute() {
        for status in [0, 1, 3, 8, 9, 13] {
            assert_eq!(
                Clock::derive("football", &score(status, Some(0)), at(0)),
                None,
                "{status}"
            );
        }
        // In play but no kick-off time (0), or a stale one: the period only.
        for (ts, when) in [
            (Some(0), at(0)),
            (None, at(0)),
            (Some(TS), at(MAX_HALF_SECS + 1)),
        ] {
            let c = Clock::derive("football", &score(2, ts), when).unwrap();
            assert_eq!((c.period, c.minute, c.running), (Some(1), None, false));
            assert_eq!(c.text("football"), "");
        }
        let c = Clock::derive("football", &score(5, Some(TS)), at(60)).unwrap();
        assert_eq!((c.period, c.minute, c.offset), (Some(3), None, None));
        assert_eq!(c.text("football"), "", "the status says extra time");
        let c = Clock::derive("football", &score(7, Some(0)), at(60)).unwrap();
        assert_eq!((c.period, c.text("football").as_str()), (Some(4), ""));
        assert_eq!(c.match_minute(), None);
    }

    #[test]
    fn basketball_quarters_and_breaks() {
        let mut s = score(4, None);
        s.remaining_s = Some(431);
        let c = Clock::derive("basketball", &s, 0).unwrap();
        assert_eq!(
            (c.period, c.remaining_s, c.running),
            (Some(2), Some(431), false)
        );
        assert_eq!(c.text("basketball"), "7:11");
        for (status, period) in [(2, 1), (3, 1), (5, 2), (6, 3), (7, 3), (8, 4), (9, 5)] {
            s.status_id = Some(status);
            assert_eq!(
                Clock::derive("basketball", &s, 0).unwrap().period,
                Some(period)
            );
        }
        s.status_id = Some(9);
        s.remaining_s = Some(118);
        assert_eq!(
            Clock::derive("basketball", &s, 0)
                .unwrap()
                .text("basketball"),
            "1:58"
        );
        for status in [0, 1, 10, 11, 12, 13, 14, 15] {
            s.status_id = Some(status);
            assert_eq!(Clock::derive("basketball", &s, 0), None, "{status}");
        }
    }

    #[test]
    fn tennis_set_game_and_server() {
        let mut s = score(52, None);
        s.home = side(&[6, 2]);
        s.away = side(&[3, 3]);
        s.serving = Some(2);
        let c = Clock::derive("tennis", &s, 0).unwrap();
        assert_eq!((c.period, c.game, c.serving), (Some(2), Some(6), Some(2)));
        assert_eq!(c.text("tennis"), "game 6, away serving");
        // A new set not in the games yet: its first game.
        s.status_id = Some(53);
        assert_eq!(Clock::derive("tennis", &s, 0).unwrap().game, Some(1));
        s.status_id = Some(3);
        let c = Clock::derive("tennis", &s, 0).unwrap();
        assert_eq!((c.period, c.game, c.serving), (None, None, Some(2)));
        assert_eq!(c.text("tennis"), "away serving");
        for status in [0, 1, 2, 100, 20, 27, 14] {
            s.status_id = Some(status);
            assert_eq!(Clock::derive("tennis", &s, 0), None, "{status}");
        }
        assert_eq!(Clock::derive("baseball", &s, 0), None);
    }
}
