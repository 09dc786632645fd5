//! The matches the bridge holds, in arrival order per match, with bounded
//! memory.
//!
//! The pipeline owns one [`MatchStates`] and calls [`MatchStates::link`] for
//! every update as it arrives, so each update of a match is chained behind the
//! previous one: it is merged and published only once the previous update of
//! the same match is stored (crate::state::sync). Other matches do not wait.
//!
//! Memory: a match is dropped from memory when it ended (its status is in
//! the sport's `ended_status` list) and `ended_evict` has passed since its
//! last update, when it had no update for `idle_evict`, or, beyond
//! `max_matches`, least recently updated first. Dropping costs nothing but a
//! read: a match that comes back is reloaded from its last stored message.
//! A match with an update in flight is never dropped (its next update must
//! see what that one did).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::held::Held;

/// Bounds on what is held.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_matches: usize,
    pub idle_evict: Duration,
    pub ended_evict: Duration,
    /// Status ids meaning "ended", per sport.
    pub ended_status: HashMap<String, Vec<i64>>,
}

/// One match's state, shared by the updates of that match in flight. They
/// take turns (see [`Link`]), so the lock is never contended; it is there
/// because the turns run on different tasks.
#[derive(Debug, Default)]
pub struct Slot {
    inner: Mutex<SlotState>,
}

#[derive(Debug, Default)]
pub struct SlotState {
    /// `None`: not loaded, or dropped after a publish the stream did not
    /// take as is; the next update reloads it from the stream.
    pub held: Option<Held>,
    /// The highest `rev` this process published for the match, stored or
    /// not: a core NATS subscriber sees every publish, so a later state must
    /// carry a higher revision than any it may have seen.
    pub rev_floor: u64,
    /// The next load must read the stream leader: the stream refused what
    /// the held state predicted.
    pub reload_from_leader: bool,
}

impl SlotState {
    /// Drops the held state (it may differ from what the stream holds); the
    /// next update reloads it from the stream leader.
    pub fn forget(&mut self) {
        self.held = None;
        self.reload_from_leader = true;
    }
}

impl Slot {
    pub fn lock(&self) -> MutexGuard<'_, SlotState> {
        // A panic elsewhere cannot leave a half-merged state behind that
        // matters: the state is reloaded on the next failure anyway.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An update's place in its match's queue.
#[derive(Debug)]
pub struct Link {
    pub slot: Arc<Slot>,
    /// Resolves (with an error: the sender is dropped, never sent) when the
    /// previous update of the match is done.
    pub prev: Option<oneshot::Receiver<()>>,
    /// Dropped when this update is done, which releases the next one.
    pub done: oneshot::Sender<()>,
}

#[derive(Debug)]
struct Entry {
    slot: Arc<Slot>,
    /// `done` of the match's latest update: the next update waits on it.
    tail: Option<oneshot::Receiver<()>>,
    /// Key of this entry in the least-recently-updated order.
    tick: u64,
    touched: Instant,
}

impl Entry {
    /// An update of this match is in flight (its [`Link`] holds the slot).
    fn busy(&self) -> bool {
        Arc::strong_count(&self.slot) > 1
    }
}

/// Every match held, keyed by subject.
#[derive(Debug)]
pub struct MatchStates {
    entries: HashMap<Arc<str>, Entry>,
    /// Least recently updated first.
    order: BTreeMap<u64, Arc<str>>,
    tick: u64,
    limits: Limits,
    evicted: u64,
    over_cap_warned: bool,
}

/// How many of the least recently updated matches are looked at for one to
/// drop when the cap is reached (busy ones are skipped).
const EVICT_SCAN: usize = 64;

impl MatchStates {
    pub fn new(limits: Limits) -> MatchStates {
        MatchStates {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            limits,
            evicted: 0,
            over_cap_warned: false,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Matches dropped from memory so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Queues an update of the match published on `subject`, behind the
    /// match's previous update. Call in arrival order.
    pub fn link(&mut self, subject: &str, now: Instant) -> Link {
        let key: Arc<str> = match self.entries.get_key_value(subject) {
            Some((key, e)) => {
                self.order.remove(&e.tick);
                key.clone()
            }
            None => {
                self.make_room();
                Arc::from(subject)
            }
        };
        self.tick += 1;
        let tick = self.tick;
        self.order.insert(tick, key.clone());
        let entry = self.entries.entry(key).or_insert_with(|| Entry {
            slot: Arc::default(),
            tail: None,
            tick,
            touched: now,
        });
        entry.tick = tick;
        entry.touched = now;
        let (done, next) = oneshot::channel();
        let prev = entry.tail.replace(next);
        Link {
            slot: entry.slot.clone(),
            prev,
            done,
        }
    }

    /// Drops ended and idle matches; returns how many.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let doomed: Vec<Arc<str>> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.busy() && self.expired(e, now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &doomed {
            self.evict(key);
        }
        doomed.len()
    }

    fn expired(&self, e: &Entry, now: Instant) -> bool {
        let quiet = now.saturating_duration_since(e.touched);
        if quiet >= self.limits.idle_evict {
            return true;
        }
        if quiet < self.limits.ended_evict {
            return false;
        }
        let slot = e.slot.lock();
        let Some(held) = &slot.held else {
            return false;
        };
        let status = held.state.score.as_ref().and_then(|s| s.status_id);
        match (status, self.limits.ended_status.get(&held.state.sport)) {
            (Some(s), Some(ended)) => ended.contains(&s),
            _ => false,
        }
    }

    /// Below the cap again by dropping least recently updated matches that
    /// have nothing in flight.
    fn make_room(&mut self) {
        while self.entries.len() >= self.limits.max_matches {
            let victim = self
                .order
                .values()
                .take(EVICT_SCAN)
                .find(|k| self.entries.get(*k).is_some_and(|e| !e.busy()))
                .cloned();
            match victim {
                Some(key) => self.evict(&key),
                None => {
                    if !self.over_cap_warned {
                        self.over_cap_warned = true;
                        tracing::warn!(
                            held = self.entries.len(),
                            max_matches = self.limits.max_matches,
                            "every match held has an update in flight; holding more than state.max_matches for now"
                        );
                    }
                    return;
                }
            }
        }
        self.over_cap_warned = false;
    }

    fn evict(&mut self, key: &str) {
        if let Some(e) = self.entries.remove(key) {
            self.order.remove(&e.tick);
            self.evicted += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{MatchState, Score};

    fn limits(max: usize) -> Limits {
        Limits {
            max_matches: max,
            idle_evict: Duration::from_secs(3600),
            ended_evict: Duration::from_secs(300),
            ended_status: HashMap::from([("football".to_owned(), vec![8])]),
        }
    }

    fn with_status(slot: &Slot, sport: &str, status: i64) {
        let mut held = Held::new(sport, "m", "p");
        held.state = MatchState {
            score: Some(Score {
                status_id: Some(status),
                ..Score::default()
            }),
            ..held.state
        };
        slot.lock().held = Some(held);
    }

    #[tokio::test]
    async fn updates_of_a_match_are_chained_in_arrival_order() {
        let mut states = MatchStates::new(limits(10));
        let now = Instant::now();
        let first = states.link("sports.football.a", now);
        let mut second = states.link("sports.football.a", now);
        let other = states.link("sports.football.b", now);
        assert!(first.prev.is_none() && other.prev.is_none());
        assert!(Arc::ptr_eq(&first.slot, &second.slot));
        let mut waiting = second.prev.take().expect("second waits for the first");
        assert!(waiting.try_recv().is_err(), "first still in flight");
        drop(first);
        assert!(waiting.await.is_err(), "released: the sender is dropped");
        assert_eq!(states.len(), 2);
    }

    #[test]
    fn the_cap_drops_the_least_recently_updated_idle_match() {
        let mut states = MatchStates::new(limits(2));
        let t = Instant::now();
        drop(states.link("s.a", t));
        drop(states.link("s.b", t));
        drop(states.link("s.a", t)); // a is now the most recent
        drop(states.link("s.c", t));
        assert_eq!(states.len(), 2);
        assert!(states.entries.contains_key("s.a") && states.entries.contains_key("s.c"));
        assert_eq!(states.evicted(), 1);
        assert_eq!(states.order.len(), 2);
    }

    #[test]
    fn a_match_in_flight_is_never_dropped() {
        let mut states = MatchStates::new(limits(1));
        let t = Instant::now();
        let busy = states.link("s.a", t);
        let other = states.link("s.b", t);
        assert_eq!(
            states.len(),
            2,
            "over the cap rather than drop a busy match"
        );
        assert_eq!(states.sweep(t + Duration::from_secs(7200)), 0);
        drop((busy, other));
        assert_eq!(states.sweep(t + Duration::from_secs(7200)), 2);
        assert!(states.is_empty() && states.order.is_empty());
    }

    #[test]
    fn ended_matches_go_after_the_grace_period_and_idle_ones_later() {
        let mut states = MatchStates::new(limits(10));
        let t = Instant::now();
        for (subject, sport, status) in [
            ("s.ended", "football", 8),
            ("s.live", "football", 4),
            ("s.other", "tennis", 8),
        ] {
            let link = states.link(subject, t);
            with_status(&link.slot, sport, status);
        }
        assert_eq!(states.sweep(t + Duration::from_secs(299)), 0);
        assert_eq!(states.sweep(t + Duration::from_secs(301)), 1);
        assert!(!states.entries.contains_key("s.ended"));
        // An update restarts the clock.
        drop(states.link("s.live", t + Duration::from_secs(1800)));
        assert_eq!(states.sweep(t + Duration::from_secs(3601)), 1);
        assert!(states.entries.contains_key("s.live"));
        assert_eq!(states.evicted(), 2);
    }
}
