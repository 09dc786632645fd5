//! Merge rules: one partial [`MatchUpdate`] into the match's [`MatchState`].
//!
//! The provider sends what changed, and often resends whole lists (every
//! incident so far with each new one). The rules, per section:
//!
//! - `score`: each of `status_id`, `kickoff_ts`, `home`, `away` is replaced
//!   when the update carries it (a side with an empty `detail` is not
//!   carried), so a score without a kick-off time keeps the one known;
//! - `stats`: merged by `type`, the update's value replacing the held one;
//! - `incidents`, `tlive`: accumulated in arrival order without duplicates:
//!   the k-th copy of an entry in the update is added only if the state holds
//!   fewer than k copies, so a resent list adds nothing and two identical
//!   corners in one list are both kept;
//! - `extra`: merged key by key, the update's value replacing the held one.
//!
//! Merging is idempotent: merging the same update again changes nothing, and
//! `rev` only moves when something changed.

use std::collections::HashMap;

use super::fingerprint::Fingerprint;
use crate::payload::{
    Added, Delta, MatchState, MatchUpdate, Score, Section, Side, Stat, TextLive, SCHEMA_ID,
};

/// Most entries kept per list (incidents, text-live lines). A football match
/// has well under a few hundred of either; the bound keeps a runaway feed
/// from growing a message past the server's `max_payload`. Beyond it the
/// oldest entries are dropped.
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
            stats: Vec::new(),
            incidents: Vec::new(),
            tlive: Vec::new(),
            extra: Default::default(),
        }
    }

    /// Merges `u` into the state. When anything changed, `rev` becomes one
    /// more than the larger of itself and `rev_floor` (the highest revision
    /// already published for this match, see crate::state::sync) and
    /// `updated_at_ms` takes the update's receive time.
    pub fn merge(&mut self, u: &MatchUpdate, rev_floor: u64) -> Delta {
        let mut delta = Delta::default();
        if let Some(score) = &u.score {
            if merge_score(&mut self.score, score) {
                delta.changed.push(Section::Score);
            }
        }
        if let Some(stats) = &u.stats {
            if merge_stats(&mut self.stats, stats) {
                delta.changed.push(Section::Stats);
            }
        }
        if let Some(incidents) = &u.incidents {
            let added = merge_list(&mut self.incidents, incidents);
            if added > 0 {
                let tail = &self.incidents[self.incidents.len() - added..];
                raise(&mut self.minute, tail.iter().filter_map(|i| i.time));
                delta.changed.push(Section::Incidents);
            }
            delta.added.incidents = added;
        }
        if let Some(tlive) = &u.tlive {
            let added = merge_list(&mut self.tlive, tlive);
            if added > 0 {
                let tail = &self.tlive[self.tlive.len() - added..];
                raise(&mut self.minute, tail.iter().filter_map(text_minute));
                delta.changed.push(Section::Tlive);
            }
            delta.added.tlive = added;
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
        }
        delta
    }
}

impl MatchState {
    /// Merges an update the provider sent *before* the newest update already
    /// merged (a dead letter replayed after a parser fix, crate::replay):
    /// only what the state does not know yet goes in, nothing it holds is
    /// overwritten, since what it holds came later.
    ///
    /// - `score`: a field the state has no value for (`status_id`,
    ///   `kickoff_ts`, a side without `detail`), or the whole score if none;
    /// - `stats`: types the state has none of;
    /// - `incidents`, `tlive`: accumulated as always (the duplicate rule
    ///   keeps what is held); an entry the live feed missed is appended;
    /// - `extra`: keys the state does not have.
    ///
    /// `rev` moves as in [`MatchState::merge`]; `updated_at_ms` never goes
    /// back (it stays the newer update's time).
    pub fn merge_late(&mut self, u: &MatchUpdate, rev_floor: u64) -> Delta {
        let late = self.gaps(u);
        let updated = self.updated_at_ms;
        let delta = self.merge(&late, rev_floor);
        self.updated_at_ms = self.updated_at_ms.max(updated);
        delta
    }

    /// The part of `u` that [`MatchState::merge_late`] may merge.
    fn gaps(&self, u: &MatchUpdate) -> MatchUpdate {
        let mut late = u.clone();
        if let (Some(held), Some(score)) = (&self.score, &mut late.score) {
            if held.status_id.is_some() {
                score.status_id = None;
            }
            if held.kickoff_ts.is_some() {
                score.kickoff_ts = None;
            }
            for (held, side) in [(&held.home, &mut score.home), (&held.away, &mut score.away)] {
                if !held.detail.is_empty() {
                    // An empty detail is "not carried" (see merge_score).
                    *side = Side {
                        score: None,
                        detail: Vec::new(),
                    };
                }
            }
        }
        if let Some(stats) = &mut late.stats {
            stats.retain(|s| !self.stats.iter().any(|h| h.kind == s.kind));
        }
        late.extra.retain(|k, _| !self.extra.contains_key(k));
        late
    }
}

fn merge_score(held: &mut Option<Score>, new: &Score) -> bool {
    let Some(cur) = held else {
        *held = Some(new.clone());
        return true;
    };
    let mut changed = false;
    if new.status_id.is_some() && cur.status_id != new.status_id {
        cur.status_id = new.status_id;
        changed = true;
    }
    if new.kickoff_ts.is_some() && cur.kickoff_ts != new.kickoff_ts {
        cur.kickoff_ts = new.kickoff_ts;
        changed = true;
    }
    for (cur, new) in [(&mut cur.home, &new.home), (&mut cur.away, &new.away)] {
        if !new.detail.is_empty() && cur != new {
            *cur = new.clone();
            changed = true;
        }
    }
    changed
}

fn merge_stats(held: &mut Vec<Stat>, new: &[Stat]) -> bool {
    let mut changed = false;
    for stat in new {
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

/// Appends the entries of `new` the list does not hold yet (as many copies as
/// `new` has, at most); returns how many were appended, at the end.
fn merge_list<T: Clone + PartialEq + Fingerprint>(held: &mut Vec<T>, new: &[T]) -> usize {
    if new.is_empty() {
        return 0;
    }
    let held_len = held.len();
    let mut index: HashMap<u64, Vec<usize>> = HashMap::with_capacity(held_len);
    for (i, e) in held.iter().enumerate() {
        index.entry(e.fingerprint()).or_default().push(i);
    }
    // Distinct values of `new` seen so far and how many copies of each.
    let mut seen: HashMap<u64, Vec<(usize, usize)>> = HashMap::with_capacity(new.len());
    let mut appended = 0;
    for (j, e) in new.iter().enumerate() {
        let fp = e.fingerprint();
        let copies = seen.entry(fp).or_default();
        let nth = match copies.iter_mut().find(|(first, _)| new[*first] == *e) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                copies.push((j, 1));
                1
            }
        };
        let have = index
            .get(&fp)
            .map_or(0, |ix| ix.iter().filter(|i| held[**i] == *e).count());
        if nth > have {
            held.push(e.clone());
            appended += 1;
        }
    }
    if held.len() > MAX_LIST_ENTRIES {
        let excess = held.len() - MAX_LIST_ENTRIES;
        held.drain(..excess);
        appended = appended.min(held.len());
    }
    appended
}

fn raise(minute: &mut Option<i64>, candidates: impl Iterator<Item = i64>) {
    if let Some(m) = candidates.filter(|m| *m >= 0).max() {
        *minute = Some(minute.map_or(m, |cur| cur.max(m)));
    }
}

/// The minute of a text-live line's `time`: `67'`, `67` and `45+2'` (45)
/// count; anything else (`HT`, a clock like `12:34`) carries no minute.
fn text_minute(t: &TextLive) -> Option<i64> {
    let s = t.time.as_deref()?.trim();
    let s = s.strip_suffix('\'').unwrap_or(s);
    let (minute, added) = match s.split_once('+') {
        Some((m, a)) => (m, Some(a)),
        None => (s, None),
    };
    let digits = |x: &str| !x.is_empty() && x.len() <= 3 && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(minute) || added.is_some_and(|a| !digits(a)) {
        return None;
    }
    minute.parse().ok()
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

    fn goal(time: i64, who: &str) -> Value {
        json!({"type": 1, "position": 1, "time": time, "player_name": who})
    }

    fn fresh() -> MatchState {
        MatchState::new("football", "m1", "thesports")
    }

    #[test]
    fn score_is_replaced_field_by_field() {
        let mut s = fresh();
        let d = s.merge(
            &update(
                json!({"id": "m1", "score": ["m1", 2, [1, 0], [0, 0], 1700000000]}),
                10,
            ),
            0,
        );
        assert_eq!(d.changed, [Section::Score]);
        assert_eq!((s.rev, s.updated_at_ms), (1, 10));
        // No kick-off time in this one: the known one stays.
        s.merge(
            &update(
                json!({"id": "m1", "score": {"status": 4, "home": [2, 1]}}),
                20,
            ),
            0,
        );
        let score = s.score.as_ref().unwrap();
        assert_eq!(score.status_id, Some(4));
        assert_eq!(score.kickoff_ts, Some(1700000000));
        assert_eq!((score.home.score, score.away.score), (Some(2), Some(0)));
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

    #[test]
    fn resent_lists_add_nothing_and_new_entries_are_appended() {
        let mut s = fresh();
        let first = update(json!({"id": "m1", "incidents": [goal(10, "A")]}), 1);
        s.merge(&first, 0);
        // The provider resends the whole list with one more incident.
        let d = s.merge(
            &update(
                json!({"id": "m1", "incidents": [goal(10, "A"), goal(30, "B")]}),
                2,
            ),
            0,
        );
        assert_eq!(d.added.incidents, 1);
        assert_eq!(s.incidents.len(), 2);
        assert_eq!(s.incidents[1].player_name.as_deref(), Some("B"));
        assert_eq!(s.minute, Some(30));
        // The same list again: nothing changes, rev stays.
        let rev = s.rev;
        let d = s.merge(
            &update(
                json!({"id": "m1", "incidents": [goal(10, "A"), goal(30, "B")]}),
                3,
            ),
            0,
        );
        assert!(d.changed.is_empty() && d.added.is_empty());
        assert_eq!((s.rev, s.updated_at_ms), (rev, 2));
    }

    #[test]
    fn identical_entries_in_one_list_are_all_kept() {
        let corner = json!({"type": 2, "position": 1, "time": 23});
        let mut s = fresh();
        s.merge(
            &update(json!({"id": "m1", "incidents": [corner.clone()]}), 1),
            0,
        );
        // The resent list has that corner and a second one in the same minute.
        s.merge(
            &update(
                json!({"id": "m1", "incidents": [corner.clone(), corner.clone()]}),
                2,
            ),
            0,
        );
        assert_eq!(s.incidents.len(), 2);
        s.merge(
            &update(
                json!({"id": "m1", "incidents": [corner.clone(), corner]}),
                3,
            ),
            0,
        );
        assert_eq!(s.incidents.len(), 2);
    }

    /// The property redelivery relies on: a second merge of the same update
    /// leaves the state exactly as the first left it, for every section.
    #[test]
    fn merging_twice_is_merging_once() {
        let updates = [
            json!({"id": "m1", "score": ["m1", 2, [0,0,0,0,1,0,0], [0,0,0,0,0,0,0], 1700000000, ""], "update_seq": 1}),
            json!({"id": "m1", "stats": [{"type": 2, "home": 1, "away": 0}], "update_seq": 2}),
            json!({"id": "m1", "incidents": [goal(12, "A")], "tlive": [{"time": "12'", "data": "Goal!"}]}),
            json!({"id": "m1", "incidents": {"a": goal(12, "A"), "b": {"type": 3, "time": 40}}, "update_seq": 3}),
            json!({"id": "m1", "score": {"status_id": 8}, "tlive": [{"time": "90+3'", "data": "End"}]}),
        ];
        let mut once = fresh();
        let mut twice = fresh();
        for (i, u) in updates.iter().enumerate() {
            let u = update(u.clone(), i as u64 + 1);
            once.merge(&u, 0);
            twice.merge(&u, 0);
            let d = twice.merge(&u, 0);
            assert!(d.changed.is_empty(), "{i}: {:?}", d.changed);
            assert_eq!(once, twice, "after update {i}");
        }
        assert_eq!(once.rev, 5);
        assert_eq!(once.minute, Some(90));
        assert_eq!(once.incidents.len(), 2);
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

    #[test]
    fn minutes_from_text_live() {
        let line = |t: &str| TextLive {
            time: Some(t.into()),
            data: String::new(),
            position: None,
            kind: None,
        };
        assert_eq!(text_minute(&line("67'")), Some(67));
        assert_eq!(text_minute(&line(" 67 ")), Some(67));
        assert_eq!(text_minute(&line("45+2'")), Some(45));
        for t in ["HT", "12:34", "", "'", "45+'", "1234'", "-3'"] {
            assert_eq!(text_minute(&line(t)), None, "{t:?}");
        }
        let mut s = fresh();
        s.merge(
            &update(
                json!({"id": "m1", "incidents": [{"type": 3, "time": 50}], "tlive": [{"time": "12'", "data": "x"}]}),
                1,
            ),
            0,
        );
        assert_eq!(s.minute, Some(50), "the highest minute carried");
    }

    /// A late update fills gaps and adds missed list entries; it never
    /// overwrites what a newer update set, and the time does not go back.
    #[test]
    fn a_late_update_only_fills_gaps() {
        let mut s = fresh();
        s.merge(
            &update(
                json!({"id": "m1", "score": {"status": 4, "home": [2], "away": [1]},
                       "stats": [{"type": 2, "home": 5, "away": 3}], "extra_key": "new",
                       "incidents": [goal(60, "B")]}),
                100,
            ),
            0,
        );
        let before = s.clone();
        let late = update(
            json!({"id": "m1", "score": ["m1", 2, [1], [0], 1700000000],
                   "stats": [{"type": 2, "home": 1, "away": 0}, {"type": 25, "home": 55, "away": 45}],
                   "incidents": [goal(12, "A")], "tlive": [{"time": "12'", "data": "Goal!"}],
                   "extra_key": "old", "other_key": 1}),
            50,
        );
        let d = s.merge_late(&late, 0);
        assert_eq!(
            d.changed,
            [
                Section::Score,
                Section::Stats,
                Section::Incidents,
                Section::Tlive,
                Section::Extra
            ]
        );
        let score = s.score.as_ref().unwrap();
        assert_eq!(score.status_id, Some(4), "newer status kept");
        assert_eq!(
            score.kickoff_ts,
            Some(1700000000),
            "unknown kick-off filled"
        );
        assert_eq!((score.home.score, score.away.score), (Some(2), Some(1)));
        assert_eq!(s.stats.len(), 2);
        assert_eq!(s.stats[0], before.stats[0], "newer stat kept");
        assert_eq!(s.stats[1].kind, 25, "missing stat type added");
        assert_eq!(s.incidents.len(), 2, "the missed goal is appended");
        assert_eq!(s.minute, Some(60));
        assert_eq!(s.extra.get("extra_key"), Some(&json!("new")));
        assert_eq!(s.extra.get("other_key"), Some(&json!(1)));
        assert_eq!((s.rev, s.updated_at_ms), (before.rev + 1, 100));
        // Again: nothing left to fill.
        let after = s.clone();
        assert!(s.merge_late(&late, 0).changed.is_empty());
        assert_eq!(s, after);
        // A match with nothing known takes the whole late update.
        let mut empty = fresh();
        empty.merge_late(&late, 0);
        assert_eq!(empty.score.as_ref().unwrap().status_id, Some(2));
        assert_eq!(empty.updated_at_ms, 50);
    }
}
