//! One update's turn: merge it into its match's state and store the result.
//!
//! Runs once the match's previous update is done ([`Link`]), so a match's
//! states are computed and stored in arrival order, one at a time, and the
//! last message of the subject is always the newest state. Steps:
//!
//! 1. if the state is not held, load the subject's last stored message (none:
//!    a new match);
//! 2. if that state already contains this update (its id is among the
//!    applied ids: a redelivery after a crash or reconnect), do nothing: the
//!    stream has it, the MQTT message can be acked;
//! 3. merge, and publish the whole state with the update's `Nats-Msg-Id` and
//!    `Nats-Expected-Last-Subject-Sequence` = the sequence the state was read
//!    at;
//! 4. stored: done. The stream answered "duplicate" (a redelivery it already
//!    has) or "wrong last sequence" (another bridge process wrote the subject
//!    meanwhile, or the state was read from a replica that lagged): the merged
//!    state may not be what the stream holds, so it is dropped and reloaded
//!    from the stream leader; after a wrong last sequence the update is merged
//!    again on top of what the stream has and published again.
//!
//! The stream is the only source of truth, so a restarted bridge, or another
//! bridge taking over, continues exactly where the stored states are.

use std::future::Future;

use async_nats::HeaderMap;
use bytes::Bytes;

use super::held::{Held, LoadKind, StoredMsg, HDR_APPLIED};
use super::store::Link;
use crate::metrics::Metrics;
use crate::payload::{MatchUpdate, StateMessage};

/// What the stream did with a published state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored {
        seq: u64,
    },
    /// A message with this `Nats-Msg-Id` is already stored.
    Duplicate,
    /// The subject's last sequence is not the expected one.
    Conflict,
    /// Not publishable (larger than the server's `max_payload`); logged.
    Dropped,
}

/// The stream, as the state sync needs it. Both calls retry transient
/// failures themselves (NATS down, leader election) until the stream answers.
pub trait Backend {
    /// The last message stored on `subject`, `None` if there is none. It may
    /// be stale (read from a replica that lags) unless `from_leader`; a
    /// publish on a stale state is refused ([`Outcome::Conflict`]).
    fn load_last(
        &self,
        subject: &str,
        from_leader: bool,
    ) -> impl Future<Output = Option<StoredMsg>> + Send;
    /// Publishes (retrying with the same headers and payload) until the
    /// stream decides.
    fn publish(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: Bytes,
    ) -> impl Future<Output = Outcome> + Send;
}

/// One update routed to its match.
#[derive(Debug)]
pub struct UpdateJob {
    pub link: Link,
    pub subject: String,
    pub msg_id: String,
    pub update: MatchUpdate,
}

/// What became of an update (for tests and logs; the metrics are counted here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Stored,
    /// The stream already had it (a redelivery).
    Duplicate,
    /// The held state already contained it; nothing published.
    AlreadyApplied,
    Dropped,
}

/// Runs one update's turn (see the module doc).
pub async fn apply<B: Backend>(backend: &B, metrics: &Metrics, job: UpdateJob) -> Applied {
    let UpdateJob {
        link,
        subject,
        msg_id,
        update,
    } = job;
    let Link { slot, prev, done } = link;
    if let Some(prev) = prev {
        // Err just means the previous update is done (its sender dropped).
        let _ = prev.await;
    }
    let outcome = loop {
        let (loaded, from_leader) = {
            let s = slot.lock();
            (s.held.is_some(), s.reload_from_leader)
        };
        if !loaded {
            let stored = backend.load_last(&subject, from_leader).await;
            let (held, kind) = Held::from_stored(stored, &update);
            metrics.state_loaded(kind);
            if kind == LoadKind::Legacy {
                tracing::info!(%subject, "continuing the match from its v1 message");
            }
            let mut s = slot.lock();
            s.held = Some(held);
            s.reload_from_leader = false;
        }
        let (headers, payload) = {
            let mut guard = slot.lock();
            let slot_state = &mut *guard;
            let Some(held) = slot_state.held.as_mut() else {
                continue;
            };
            if held.has_applied(&msg_id) {
                Metrics::inc(&metrics.redeliveries_skipped);
                break Applied::AlreadyApplied;
            }
            let delta = held.state.merge(&update, slot_state.rev_floor);
            held.note_applied(&msg_id);
            slot_state.rev_floor = slot_state.rev_floor.max(held.state.rev);
            let body = serde_json::to_vec(&StateMessage {
                state: &held.state,
                changed: &delta.changed,
                added: delta.added,
            });
            match body {
                Ok(body) => (headers(&msg_id, held), Bytes::from(body)),
                Err(e) => {
                    // Our own types of JSON values: not expected to happen.
                    tracing::error!(%subject, error = %e, "cannot serialise the match state; update dropped");
                    slot_state.forget();
                    break Applied::Dropped;
                }
            }
        };
        match backend.publish(&subject, headers, payload).await {
            Outcome::Stored { seq } => {
                if let Some(held) = slot.lock().held.as_mut() {
                    held.last_seq = seq;
                }
                Metrics::inc(&metrics.updates_published);
                break Applied::Stored;
            }
            Outcome::Duplicate => {
                slot.lock().forget();
                Metrics::inc(&metrics.duplicates);
                break Applied::Duplicate;
            }
            Outcome::Conflict => {
                slot.lock().forget();
                Metrics::inc(&metrics.state_conflicts);
                tracing::warn!(%subject, msg_id, "the match's stream subject moved on since its state was read (another bridge process, or a lagging replica answered); merging again on the stored state");
            }
            Outcome::Dropped => {
                slot.lock().forget();
                break Applied::Dropped;
            }
        }
    };
    drop(done);
    outcome
}

fn headers(msg_id: &str, held: &Held) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
    h.insert(
        async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
        held.last_seq.to_string().as_str(),
    );
    h.insert(HDR_APPLIED, held.applied_header().as_str());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::normalise::Origin;
    use crate::payload::{normalise_match, MatchMessage};
    use crate::state::store::{Limits, MatchStates};
    use serde_json::{json, Value};
    use std::collections::HashMap;
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// An in-memory stream with JetStream's rules for what the bridge uses:
    /// dedup by `Nats-Msg-Id` (checked first), then the expected last
    /// subject sequence.
    #[derive(Default)]
    struct FakeStream {
        inner: Mutex<Inner>,
    }

    #[derive(Default)]
    struct Inner {
        msgs: Vec<(String, HeaderMap, Bytes)>,
        ids: HashMap<String, u64>,
        /// Scripted: the next N publishes are stored but answered as lost
        /// acks are, by a retry that the stream then calls a duplicate.
        lose_acks: usize,
        /// Scripted: the next N reads that may be stale find nothing, as a
        /// replica that has not seen the subject yet answers.
        stale_reads: usize,
        loads: usize,
    }

    impl FakeStream {
        fn last(&self, subject: &str) -> Option<MatchMessage> {
            let inner = self.inner.lock().unwrap();
            let (_, _, p) = inner.msgs.iter().rev().find(|(s, _, _)| s == subject)?;
            Some(serde_json::from_slice(p).unwrap())
        }

        fn count(&self) -> usize {
            self.inner.lock().unwrap().msgs.len()
        }
    }

    impl Backend for FakeStream {
        async fn load_last(&self, subject: &str, from_leader: bool) -> Option<StoredMsg> {
            let mut inner = self.inner.lock().unwrap();
            inner.loads += 1;
            if !from_leader && inner.stale_reads > 0 {
                inner.stale_reads -= 1;
                return None;
            }
            let (i, (_, h, p)) = inner
                .msgs
                .iter()
                .enumerate()
                .rev()
                .find(|(_, (s, _, _))| s == subject)?;
            let get = |k: &str| h.get(k).map(|v| v.as_str().to_owned());
            Some(StoredMsg {
                seq: i as u64 + 1,
                msg_id: get("Nats-Msg-Id"),
                applied: get(HDR_APPLIED),
                payload: p.clone(),
            })
        }

        async fn publish(&self, subject: &str, headers: HeaderMap, payload: Bytes) -> Outcome {
            let mut inner = self.inner.lock().unwrap();
            let id = headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            if inner.ids.contains_key(&id) {
                return Outcome::Duplicate;
            }
            let expected: u64 = headers
                .get("Nats-Expected-Last-Subject-Sequence")
                .and_then(|v| v.as_str().parse().ok())
                .unwrap_or(0);
            let last = inner
                .msgs
                .iter()
                .enumerate()
                .rev()
                .find(|(_, (s, _, _))| s == subject)
                .map_or(0, |(i, _)| i as u64 + 1);
            if expected != last {
                return Outcome::Conflict;
            }
            inner.msgs.push((subject.into(), headers, payload));
            let seq = inner.msgs.len() as u64;
            inner.ids.insert(id, seq);
            if inner.lose_acks > 0 {
                inner.lose_acks -= 1;
                return Outcome::Duplicate;
            }
            Outcome::Stored { seq }
        }
    }

    const SUBJECT: &str = "sports.football.m1";

    /// A bridge process: its own memory, the shared stream.
    struct Bridge {
        states: MatchStates,
        metrics: Metrics,
    }

    impl Bridge {
        fn new() -> Bridge {
            Bridge {
                states: MatchStates::new(Limits {
                    max_matches: 100,
                    idle_evict: Duration::from_secs(3600),
                    ended_evict: Duration::from_secs(300),
                    ended_status: HashMap::new(),
                }),
                metrics: Metrics::default(),
            }
        }

        async fn feed(&mut self, stream: &FakeStream, id: &str, v: Value) -> Applied {
            let origin = Origin {
                sport: "football",
                provider: "thesports",
                topic: "thesports/football/match/v1",
                received_at_ms: 1,
            };
            let job = UpdateJob {
                link: self.states.link(SUBJECT, Instant::now()),
                subject: SUBJECT.into(),
                msg_id: id.into(),
                update: normalise_match(&v, &origin).unwrap(),
            };
            apply(stream, &self.metrics, job).await
        }
    }

    /// A goal at the last of `minutes`: the provider sends the whole list.
    fn goals(minutes: &[i64]) -> Value {
        let list: Vec<Value> = minutes
            .iter()
            .map(|m| json!({"type": 1, "time": m}))
            .collect();
        json!({"id": "m1", "incidents": list,
               "score": ["m1", 2, [1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], 1_767_293_460, ""]})
    }

    fn score(home: i64) -> Value {
        json!({"id": "m1", "score": ["m1", 4, [home, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], 1_767_296_000, ""]})
    }

    #[tokio::test]
    async fn every_message_is_the_whole_match() {
        let stream = FakeStream::default();
        let mut bridge = Bridge::new();
        assert_eq!(
            bridge.feed(&stream, "a:0", goals(&[10])).await,
            Applied::Stored
        );
        assert_eq!(bridge.feed(&stream, "b:0", score(2)).await, Applied::Stored);
        let last = stream.last(SUBJECT).unwrap();
        assert_eq!(last.state.rev, 2);
        assert_eq!(last.state.incidents.len(), 1, "kept from the first update");
        assert_eq!(last.state.score.unwrap().home.score, Some(2));
        assert_eq!(last.changed, [crate::payload::Section::Score]);
        assert_eq!(stream.inner.lock().unwrap().loads, 1, "loaded once");
    }

    /// A new process (restart or failover) continues from the stored state.
    #[tokio::test]
    async fn a_new_process_continues_from_the_stream() {
        let stream = FakeStream::default();
        let mut first = Bridge::new();
        first.feed(&stream, "a:0", goals(&[10])).await;
        first.feed(&stream, "b:0", score(1)).await;
        let mut second = Bridge::new();
        assert_eq!(second.feed(&stream, "c:0", score(3)).await, Applied::Stored);
        let last = stream.last(SUBJECT).unwrap();
        assert_eq!(last.state.rev, 3);
        assert_eq!(last.state.incidents.len(), 1);
        assert_eq!(last.state.score.unwrap().home.score, Some(3));
    }

    /// After a crash the MQTT broker redelivers what was stored but not
    /// acked. None of it may roll the state back, nothing is republished.
    #[tokio::test]
    async fn redeliveries_after_a_crash_change_nothing() {
        let stream = FakeStream::default();
        let mut first = Bridge::new();
        first.feed(&stream, "a:0", goals(&[10])).await;
        first.feed(&stream, "b:0", score(1)).await;
        first.feed(&stream, "c:0", score(2)).await;
        let before = stream.last(SUBJECT).unwrap();
        let stored = stream.count();

        let mut second = Bridge::new();
        for (id, v) in [("b:0", score(1)), ("c:0", score(2))] {
            assert_eq!(second.feed(&stream, id, v).await, Applied::AlreadyApplied);
        }
        assert_eq!(stream.count(), stored, "nothing republished");
        assert_eq!(second.metrics.redeliveries_skipped.load(Relaxed), 2);
        second
            .feed(&stream, "d:0", json!({"id": "m1", "update_seq": 9}))
            .await;
        let after = stream.last(SUBJECT).unwrap();
        assert_eq!(after.state.score, before.state.score, "no rollback");
        assert_eq!(after.state.rev, before.state.rev + 1);
    }

    /// A redelivery the applied ids do not cover any more is caught by the
    /// stream's dedup; the bridge then reloads rather than keep the merge.
    #[tokio::test]
    async fn a_duplicate_reloads_the_stored_state() {
        let stream = FakeStream::default();
        let mut bridge = Bridge::new();
        bridge.feed(&stream, "old:0", score(1)).await;
        for i in 0..crate::state::held::APPLIED_IDS {
            bridge
                .feed(
                    &stream,
                    &format!("n{i}:0"),
                    json!({"id": "m1", "update_seq": i}),
                )
                .await;
        }
        bridge.feed(&stream, "last:0", score(5)).await;
        let stored = stream.last(SUBJECT).unwrap();
        assert_eq!(
            bridge.feed(&stream, "old:0", score(1)).await,
            Applied::Duplicate
        );
        bridge
            .feed(&stream, "next:0", json!({"id": "m1", "x": 1}))
            .await;
        let last = stream.last(SUBJECT).unwrap();
        assert_eq!(
            last.state.score, stored.state.score,
            "score not rolled back"
        );
        assert!(
            last.state.rev > stored.state.rev + 1,
            "above the revision the duplicate showed core subscribers"
        );
    }

    /// A lost ack (stored, then the retry is a duplicate): reloading finds
    /// this very state, nothing is lost or applied twice.
    #[tokio::test]
    async fn a_lost_ack_reloads_to_the_same_state() {
        let stream = FakeStream::default();
        let mut bridge = Bridge::new();
        bridge.feed(&stream, "a:0", goals(&[10])).await;
        stream.inner.lock().unwrap().lose_acks = 1;
        assert_eq!(
            bridge.feed(&stream, "b:0", goals(&[10, 20])).await,
            Applied::Duplicate
        );
        bridge.feed(&stream, "c:0", score(3)).await;
        let last = stream.last(SUBJECT).unwrap();
        assert_eq!(last.state.incidents.len(), 2);
        assert_eq!(last.state.rev, 3);
        assert_eq!(stream.count(), 3);
    }

    /// A replica that lags answers the read: the stream refuses the state
    /// built on it, and the leader's answer is used instead.
    #[tokio::test]
    async fn a_stale_read_is_caught_and_read_again_from_the_leader() {
        let stream = FakeStream::default();
        Bridge::new().feed(&stream, "a:0", goals(&[10])).await;
        stream.inner.lock().unwrap().stale_reads = 5;
        let mut next = Bridge::new();
        assert_eq!(next.feed(&stream, "b:0", score(2)).await, Applied::Stored);
        assert_eq!(next.metrics.state_conflicts.load(Relaxed), 1);
        let last = stream.last(SUBJECT).unwrap();
        assert_eq!((last.state.rev, last.state.incidents.len()), (2, 1));
        assert_eq!(stream.inner.lock().unwrap().loads, 3);
    }

    /// Another bridge wrote the subject meanwhile: merge again on top of its
    /// state instead of overwriting it.
    #[tokio::test]
    async fn a_conflict_merges_on_top_of_the_other_writer() {
        let stream = FakeStream::default();
        let mut ours = Bridge::new();
        ours.feed(&stream, "a:0", goals(&[10])).await;
        let mut theirs = Bridge::new();
        theirs.feed(&stream, "x:0", goals(&[10, 30])).await;
        assert_eq!(ours.feed(&stream, "b:0", score(4)).await, Applied::Stored);
        assert_eq!(ours.metrics.state_conflicts.load(Relaxed), 1);
        let last = stream.last(SUBJECT).unwrap();
        assert_eq!(last.state.incidents.len(), 2, "their incident kept");
        assert_eq!(last.state.rev, 3);
        // The other writer's update is already in: a later copy is skipped.
        assert_eq!(
            ours.feed(&stream, "x:0", goals(&[10, 30])).await,
            Applied::AlreadyApplied
        );
    }
}
