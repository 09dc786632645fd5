//! Merge rules: one [`MatchUpdate`] into the match's [`MatchState`].
//!
//! The provider sends one section per update, each a snapshot of that
//! section (bridge/PROVIDER_FORMAT.md §3, §10). The rules, per section:
//!
//! - `score`: replaced whole (the provider sends the whole score array);
//! - `stats`: merged by `type`, the update's value replacing the held one
//!   (the provider sends all types each time; merging by type also keeps a
//!   type a shorter list left out);
//! - `incidents`, `tlive`: replaced by the update's list. The provider
//!   resends the whole list and corrects entries in place (a scorer added
//!   later, a minute or a side corrected, a duplicate removed), so the latest
//!   list is the truth; accumulating would keep every stale version. Beyond
//!   [`MAX_LIST_ENTRIES`] only the last entries are kept;
//! - `extra`: merged key by key, the update's value replacing the held one.
//!
//! When anything changed, `rev` grows, `updated_at_ms` becomes the update's
//! receive time, and the clock (and `minute`) are derived again from the
//! score at that time (crate::payload::clock). Nothing else moves them, so
//! merging is idempotent: merging the same update again changes nothing, and
//! `rev` only moves when something changed.

use crate::payload::{Added, Clock, Delta, MatchState, MatchUpdate, Section, Stat, SCHEMA_ID};

/// Most entries kept per list (incidents, text-live lines). A football match
/// has well under a few hundred of either; the bound keeps a runaway feed
/// from growing a message past the server's `max_payload`.
pub const MAX_LIST_ENTRIES: usize = 1000;

impl MatchState {
    /// A match nothing is known of yet: revision 0, no score, empty lists.
    pub fn new(sport: &str, match_id: &str, provider: &str) -> MatchState {
        MatchState {
            schema: SCHEMA_ID.to_owned(),
            sport: sport.to_owned(),
            match_id: match_id.to_owned(),
            provider: provider.to_owned(),
            rev: 0,
            updated_at_ms: 0,
            score: None,
            minute: None,
            clock: None,
            stats: Vec::new(),
            incidents: Vec::new(),
            tlive: Vec::new(),
            extra: Default::default(),
        }
    }

    /// Merges `u` into the state. When anything changed, `rev` becomes one
    /// more than the larger of itself and `rev_floor` (the highest revision
    /// already published for this match, see crate::state::sync),
    /// `updated_at_ms` takes the update's receive time and the clock is
    /// derived at that time.
    pub fn merge(&mut self, u: &MatchUpdate, rev_floor: u64) -> Delta {
        let mut delta = Delta::default();
        if let Some(score) = &u.score {
            if self.score.as_ref() != Some(score) {
                self.score = Some(score.clone());
                delta.changed.push(Section::Score);
            }
        }
        if let Some(stats) = &u.stats {
            if merge_stats(&mut self.stats, stats) {
                delta.changed.push(Section::Stats);
            }
        }
        if let Some(incidents) = &u.incidents {
            if let Some(added) = replace_list(&mut self.incidents, incidents) {
                delta.changed.push(Section::Incidents);
                delta.added.incidents = added;
            }
        }
        if let Some(tlive) = &u.tlive {
            if let Some(added) = replace_list(&mut self.tlive, tlive) {
                delta.changed.push(Section::Tlive);
                delta.added.tlive = added;
            }
        }
        let mut extra_changed = false;
        for (k, v) in &u.extra {
            if self.extra.get(k) != Some(v) {
                self.extra.insert(k.clone(), v.clone());
                extra_changed = true;
            }
        }
        if extra_changed {
            delta.changed.push(Section::Extra);
        }
        if !delta.changed.is_empty() {
            self.rev = self.rev.max(rev_floor) + 1;
            self.updated_at_ms = u.received_at_ms;
            self.derive_clock();
        }
        delta
    }

    /// `clock` and `minute` from the score at `updated_at_ms`.
    pub fn derive_clock(&mut self) {
        self.clock = self
            .score
            .as_ref()
            .and_then(|s| Clock::derive(&self.sport, s, self.updated_at_ms));
        self.minute = self.clock.as_ref().and_then(Clock::match_minute);
    }

    /// Merges an update the provider sent *before* the newest update already
    /// merged (a dead letter replayed after a parser fix, crate::replay):
    /// only what the state does not know yet goes in, nothing it holds is
    /// overwritten, since what it holds came later. Every section is a
    /// snapshot, so a held one is newer than the late one:
    ///
    /// - `score`: the late score only if the state has none;
    /// - `stats`: types the state has none of;
    /// - `incidents`, `tlive`: the late list only if the state's is empty
    ///   (a held list is a later snapshot, corrections included; an empty
    ///   one cannot be told from none received, and the late list is then
    ///   the best known);
    /// - `extra`: keys the state does not have.
    ///
    /// `rev` moves as in [`MatchState::merge`]; `updated_at_ms` never goes
    /// back (it stays the newer update's time), and the clock is derived at
    /// it.
    pub fn merge_late(&mut self, u: &MatchUpdate, rev_floor: u64) -> Delta {
        let late = self.gaps(u);
        let updated = self.updated_at_ms;
        let delta = self.merge(&late, rev_floor);
        if updated > self.updated_at_ms {
            self.updated_at_ms = updated;
            self.derive_clock();
        }
        delta
    }

    /// The part of `u` that [`MatchState::merge_late`] may merge.
    fn gaps(&self, u: &MatchUpdate) -> MatchUpdate {
        let mut late = u.clone();
        if self.score.is_some() {
            late.score = None;
        }
        if let Some(stats) = &mut late.stats {
            stats.retain(|s| !self.stats.iter().any(|h| h.kind == s.kind));
        }
        if !self.incidents.is_empty() {
            late.incidents = None;
        }
        if !self.tlive.is_empty() {
            late.tlive = None;
        }
        late.extra.retain(|k, _| !self.extra.contains_key(k));
        late
    }
}

/// Merges `new` into `held` by `type`; whether anything changed. A type the
/// update lists more than once takes its last entry, at the place of its
/// first, and is compared once: comparing each entry in turn would call
/// every resend of such an update a change (each entry replacing the
/// other), moving `rev` with nothing changed.
fn merge_stats(held: &mut Vec<Stat>, new: &[Stat]) -> bool {
    let mut changed = false;
    for (i, first) in new.iter().enumerate() {
        if new[..i].iter().any(|s| s.kind == first.kind) {
            continue;
        }
        let stat = new[i..]
            .iter()
            .rev()
            .find(|s| s.kind == first.kind)
            .unwrap_or(first);
        match held.iter_mut().find(|s| s.kind == stat.kind) {
            Some(cur) if cur == stat => {}
            Some(cur) => {
                *cur = stat.clone();
                changed = true;
            }
            None => {
                held.push(stat.clone());
                changed = true;
            }
        }
    }
    changed
}

/// Replaces `held` by (the last [`MAX_LIST_ENTRIES`] of) `new` if they
/// differ; then returns by how many entries the list grew (0 when it did
/// not: a correction or a removal).
fn replace_list<T: Clone + PartialEq>(held: &mut Vec<T>, new: &[T]) -> Option<usize> {
    let new = &new[new.len().saturating_sub(MAX_LIST_ENTRIES)..];
    if held.as_slice() == new {
        return None;
    }
    let grew = new.len().saturating_sub(held.len());
    held.clear();
    held.extend_from_slice(new);
    Some(grew)
}

impl Added {
    pub fn is_empty(&self) -> bool {
        self.incidents == 0 && self.tlive == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::normalise::Origin;
    use crate::payload::normalise_match;
    use serde_json::{json, Value};

    fn update(v: Value, at: u64) -> MatchUpdate {
        let origin = Origin {
            sport: "football",
            provider: "thesports",
            topic: "thesports/football/match/v1",
            received_at_ms: at,
        };
        normalise_match(&v, &origin).expect("valid update")
    }

    fn goal(time: i64, who: Option<&str>, position: i64) -> Value {
        let mut g = json!({"type": 1, "position": position, "time": time});
        if let Some(who) = who {
            g["player_name"] = json!(who);
        }
        g
    }

    fn incidents(list: &[Value], at: u64) -> MatchUpdate {
        update(json!({"id": "m1", "incidents": list}), at)
    }

    fn score(status: i64, home: i64, ts: i64) -> Value {
        json!({"id": "m1", "score": ["m1", status, [home, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], ts, ""]})
    }

    fn fresh() -> MatchState {
        MatchState::new("football", "m1", "thesports")
    }

    #[test]
    fn score_is_replaced_whole() {
        let mut s = fresh();
        let d = s.merge(&update(score(2, 1, 1_700_000_000), 10), 0);
        assert_eq!(d.changed, [Section::Score]);
        assert_eq!((s.rev, s.updated_at_ms), (1, 10));
        // Half-time: the kick-off time is 0 now, and that is what is kept.
        s.merge(&update(score(3, 2, 0), 20), 0);
        let sc = s.score.as_ref().unwrap();
        assert_eq!((sc.status_id, sc.kickoff_ts), (Some(3), Some(0)));
        assert_eq!((sc.home.score, sc.away.score), (Some(2), Some(0)));
        assert_eq!(s.rev, 2);
    }

    #[test]
    fn stats_merge_by_type() {
        let mut s = fresh();
        s.merge(&update(json!({"id": "m1", "stats": [{"type": 2, "home": 1, "away": 0}, {"type": 3, "home": 4, "away": 4}]}), 1), 0);
        let d = s.merge(
            &update(
                json!({"id": "m1", "stats": [{"type": 2, "home": 2, "away": 0}, {"type": 9, "home": 1, "away": 1}]}),
                2,
            ),
            0,
        );
        assert_eq!(d.changed, [Section::Stats]);
        let got: Vec<(i64, Option<i64>)> = s
            .stats
            .iter()
            .map(|st| (st.kind, st.home.as_ref().and_then(|n| n.as_i64())))
            .collect();
        assert_eq!(got, [(2, Some(2)), (3, Some(4)), (9, Some(1))]);
    }

    /// A stats list naming one type twice (found by broker/fuzz's
    /// bridge_payload, corpus crash-stat-type-twice): the last entry is the
    /// value, at the first one's place, and a resend of the same update
    /// changes nothing (it used to replace one entry by the other each time,
    /// reporting `stats` changed and moving `rev`).
    #[test]
    fn stat_type_twice_merges_idempotently() {
        let mut s = fresh();
        let u = update(
            json!({"id": "m1", "stats": [
                {"type": 23, "home": 8, "away": 1}, {"type": 21, "home": 1, "away": 2},
                {"type": 23, "home": 39, "away": 44}
            ]}),
            1,
        );
        let d = s.merge(&u, 0);
        assert_eq!(
            (d.changed.as_slice(), s.rev),
            ([Section::Stats].as_slice(), 1)
        );
        let got: Vec<(i64, Option<i64>)> = s
            .stats
            .iter()
            .map(|st| (st.kind, st.home.as_ref().and_then(|n| n.as_i64())))
            .collect();
        assert_eq!(got, [(23, Some(39)), (21, Some(1))]);
        let held = s.clone();
        let d = s.merge(&u, 0);
        assert!(d.changed.is_empty(), "a resend changed {:?}", d.changed);
        assert_eq!(s, held);
    }

    /// The provider's edits of its incident list (PROVIDER_FORMAT.md §10):
    /// each new list is the truth, nothing stale stays behind.
    #[test]
    fn incident_lists_replace_the_held_one() {
        let mut s = fresh();
        let d = s.merge(&incidents(&[goal(17, None, 1)], 1), 0);
        assert_eq!(
            (d.changed.as_slice(), d.added.incidents),
            ([Section::Incidents].as_slice(), 1)
        );
        // The scorer is added later: a correction, not a second goal.
        let d = s.merge(&incidents(&[goal(17, Some("A"), 1)], 2), 0);
        assert_eq!(
            (d.changed.as_slice(), d.added.incidents),
            ([Section::Incidents].as_slice(), 0)
        );
        assert_eq!(s.incidents.len(), 1);
        assert_eq!(s.incidents[0].player_name.as_deref(), Some("A"));
        // The goal was the away side's, and a card arrives in the middle.
        let card = json!({"type": 3, "position": 1, "time": 9});
        s.merge(&incidents(&[card.clone(), goal(17, Some("A"), 2)], 3), 0);
        assert_eq!(s.incidents.len(), 2);
        assert_eq!((s.incidents[0].kind, s.incidents[1].position), (3, Some(2)));
        // A duplicated entry is sent, then removed again.
        let dup = [card.clone(), goal(17, Some("A"), 2), goal(17, Some("A"), 2)];
        assert_eq!(s.merge(&incidents(&dup, 4), 0).added.incidents, 1);
        let d = s.merge(&incidents(&[card, goal(17, Some("A"), 2)], 5), 0);
        assert_eq!(
            (d.changed.as_slice(), d.added.incidents),
            ([Section::Incidents].as_slice(), 0)
        );
        assert_eq!(s.incidents.len(), 2);
        // The same list again: nothing changes, rev stays.
        let (rev, at) = (s.rev, s.updated_at_ms);
        let d = s.merge(
            &incidents(
                &[
                    json!({"type": 3, "position": 1, "time": 9}),
                    goal(17, Some("A"), 2),
                ],
                6,
            ),
            0,
        );
        assert!(d.changed.is_empty() && d.added.is_empty());
        assert_eq!((s.rev, s.updated_at_ms), (rev, at));
        // An empty list is a list: everything was withdrawn.
        let d = s.merge(&incidents(&[], 7), 0);
        assert_eq!(d.changed, [Section::Incidents]);
        assert!(s.incidents.is_empty());
    }

    #[test]
    fn text_live_is_replaced_too() {
        let mut s = fresh();
        let line = |t: &str, d: &str| json!({"time": t, "data": d, "position": 0});
        let d = s.merge(
            &update(
                json!({"id": "m1", "tlive": [line("", "Line-ups are out.")]}),
                1,
            ),
            0,
        );
        assert_eq!(
            (d.changed.as_slice(), d.added.tlive),
            ([Section::Tlive].as_slice(), 1)
        );
        let two = json!({"id": "m1", "tlive": [line("", "Line-ups are out."), line("45'+2'", "45'+2' Corner.")]});
        let d = s.merge(&update(two.clone(), 2), 0);
        assert_eq!(d.added.tlive, 1);
        assert_eq!(s.tlive[1].time.as_deref(), Some("45'+2'"));
        assert!(s.merge(&update(two, 3), 0).changed.is_empty());
    }

    /// The property redelivery relies on: a second merge of the same update
    /// leaves the state exactly as the first left it, for every section.
    #[test]
    fn merging_twice_is_merging_once() {
        let ts = 1_767_293_460u64;
        let updates = [
            json!({"id": "m1", "score": ["m1", 2, [0,0,0,0,1,0,0], [0,0,0,0,0,0,0], ts, ""], "update_seq": 1}),
            json!({"id": "m1", "stats": [{"type": 2, "home": 1, "away": 0}], "update_seq": 2}),
            json!({"id": "m1", "incidents": [goal(12, None, 1)], "tlive": [{"time": "12'", "data": "Goal!", "position": 1}]}),
            json!({"id": "m1", "incidents": [goal(12, Some("A"), 1), {"type": 3, "time": 40}], "update_seq": 3}),
            json!({"id": "m1", "score": ["m1", 8, [1,1,0,0,1,0,0], [0,0,0,0,0,0,0], 0, ""], "tlive": [{"time": "90'+3'", "data": "End"}]}),
        ];
        let mut once = fresh();
        let mut twice = fresh();
        for (i, u) in updates.iter().enumerate() {
            let u = update(u.clone(), (ts + 600 * i as u64) * 1000);
            once.merge(&u, 0);
            twice.merge(&u, 0);
            let d = twice.merge(&u, 0);
            assert!(d.changed.is_empty(), "{i}: {:?}", d.changed);
            assert_eq!(once, twice, "after update {i}");
        }
        assert_eq!(once.rev, 5);
        assert_eq!(once.minute, None, "ended: no clock");
        assert_eq!(once.incidents.len(), 2);
        assert_eq!(once.tlive.len(), 1);
        assert_eq!(once.extra.get("update_seq"), Some(&json!(3)));
    }

    #[test]
    fn rev_grows_past_the_floor_and_only_on_change() {
        let mut s = fresh();
        let u = update(json!({"id": "m1", "update_seq": 1}), 5);
        let d = s.merge(&u, 7);
        assert_eq!(d.changed, [Section::Extra]);
        assert_eq!(s.rev, 8);
        s.merge(&u, 100);
        assert_eq!(s.rev, 8, "nothing changed, so the floor does not matter");
        s.merge(&update(json!({"id": "m1", "update_seq": 2}), 6), 3);
        assert_eq!(s.rev, 9);
    }

    #[test]
    fn lists_are_bounded() {
        let mut s = fresh();
        let many: Vec<Value> = (0..MAX_LIST_ENTRIES + 5)
            .map(|i| json!({"data": format!("line {i}")}))
            .collect();
        let d = s.merge(&update(json!({"id": "m1", "tlive": many}), 1), 0);
        assert_eq!(s.tlive.len(), MAX_LIST_ENTRIES);
        assert_eq!(d.added.tlive, MAX_LIST_ENTRIES);
        assert_eq!(s.tlive[0].data, "line 5");
    }

    /// The clock is the score's at the time of the last change: a stats
    /// update moves it on, a resend that changes nothing does not.
    #[test]
    fn the_clock_follows_the_updates() {
        let ts = 1_767_293_460u64;
        let at = |secs: u64| (ts + secs) * 1000;
        let mut s = fresh();
        s.merge(&update(score(4, 1, ts as i64), at(60)), 0);
        let c = s.clock.clone().unwrap();
        assert_eq!(
            (c.minute, c.kickoff_ts, c.running),
            (Some(47), Some(ts as i64), true)
        );
        assert_eq!(s.minute, Some(47));
        let stats = update(
            json!({"id": "m1", "stats": [{"type": 2, "home": 1, "away": 0}]}),
            at(10 * 60),
        );
        s.merge(&stats, 0);
        assert_eq!(s.minute, Some(56));
        // The same stats later: nothing changed, so neither does the clock.
        let mut later = stats.clone();
        later.received_at_ms = at(20 * 60);
        assert!(s.merge(&later, 0).changed.is_empty());
        assert_eq!((s.minute, s.updated_at_ms), (Some(56), at(10 * 60)));
        // Stoppage time: 90+3, counted as 93.
        s.merge(
            &update(json!({"id": "m1", "update_seq": 1}), at(47 * 60 + 10)),
            0,
        );
        let c = s.clock.clone().unwrap();
        assert_eq!(
            (c.minute, c.stoppage, s.minute),
            (Some(90), Some(3), Some(93))
        );
        // Full time: no clock.
        s.merge(&update(score(8, 1, 0), at(50 * 60)), 0);
        assert_eq!((s.clock.clone(), s.minute), (None, None));
    }

    /// A late update (a replayed dead letter) fills gaps; it never
    /// overwrites what a newer update set, since every section it carries
    /// is an older snapshot, and the time does not go back.
    #[test]
    fn a_late_update_only_fills_gaps() {
        let ts = 1_767_293_460u64;
        let mut s = fresh();
        s.merge(
            &update(
                json!({"id": "m1", "score": ["m1", 4, [2, 1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0], ts, ""],
                       "stats": [{"type": 2, "home": 5, "away": 3}], "extra_key": "new",
                       "incidents": [goal(12, Some("A"), 1), goal(60, Some("B"), 1)]}),
                (ts + 15 * 60) * 1000,
            ),
            0,
        );
        let before = s.clone();
        assert_eq!(before.minute, Some(61));
        let late = update(
            json!({"id": "m1", "score": ["m1", 2, [1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], ts - 3600, ""],
                   "stats": [{"type": 2, "home": 1, "away": 0}, {"type": 25, "home": 55, "away": 45}],
                   "incidents": [goal(12, None, 1)], "tlive": [{"time": "12'", "data": "Goal!", "position": 1}],
                   "extra_key": "old", "other_key": 1}),
            (ts - 40 * 60) * 1000,
        );
        let d = s.merge_late(&late, 0);
        assert_eq!(d.changed, [Section::Stats, Section::Tlive, Section::Extra]);
        assert_eq!(s.score, before.score, "the newer score kept");
        assert_eq!(
            s.incidents, before.incidents,
            "the newer list kept (its corrections too)"
        );
        assert_eq!(
            s.tlive.len(),
            1,
            "no list held: the late one is the best known"
        );
        assert_eq!(s.stats.len(), 2);
        assert_eq!(s.stats[0], before.stats[0], "newer stat kept");
        assert_eq!(s.stats[1].kind, 25, "missing stat type added");
        assert_eq!(s.extra.get("extra_key"), Some(&json!("new")));
        assert_eq!(s.extra.get("other_key"), Some(&json!(1)));
        assert_eq!(
            (s.rev, s.updated_at_ms),
            (before.rev + 1, before.updated_at_ms)
        );
        assert_eq!(
            (&s.clock, s.minute),
            (&before.clock, Some(61)),
            "the clock at the newer time"
        );
        // Again: nothing left to fill.
        let after = s.clone();
        assert!(s.merge_late(&late, 0).changed.is_empty());
        assert_eq!(s, after);
        // A match with nothing known takes the whole late update.
        let mut empty = fresh();
        empty.merge_late(&late, 0);
        assert_eq!(empty.score.as_ref().unwrap().status_id, Some(2));
        assert_eq!(empty.updated_at_ms, late.received_at_ms);
        assert_eq!(empty.minute, Some(21), "20 minutes into the first half");
    }
}
