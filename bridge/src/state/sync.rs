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
//!
//! A replayed dead letter ([`Mode::Replay`], crate::replay) takes the same
//! turn with two differences: step 3 merges it by its receive time against
//! the newest update merged ([`Held::merge_replayed`]: whole if it is newer,
//! only the gaps if not), and a merge that changes nothing publishes nothing
//! (unless nothing is stored for the match yet).

use std::future::Future;

use async_nats::HeaderMap;
use bytes::Bytes;

use super::held::{Held, LoadKind, StoredMsg, HDR_APPLIED};
use super::store::Link;
use crate::metrics::Metrics;
use crate::payload::{MatchUpdate, StateMessage};
use crate::process::HDR_RECEIVED;
use crate::sport_metrics::SportId;

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

/// How an update is merged and published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// From the live feed: merged in arrival order, its state published
    /// even when it changed nothing (the MQTT message's id must be stored
    /// for the redelivery rules), its lag observed.
    Live,
    /// A dead letter replayed later (crate::replay): merged by
    /// [`Held::merge_replayed`], published only when it changes the state
    /// (or the match has none stored yet), so replaying it again stores
    /// nothing.
    Replay,
}

/// One update routed to its match.
#[derive(Debug)]
pub struct UpdateJob {
    pub link: Link,
    pub subject: String,
    pub msg_id: String,
    pub update: MatchUpdate,
    pub mode: Mode,
    /// The update's sport in the per-sport metrics.
    pub sport: SportId,
}

/// What became of an update (for tests and logs; the metrics are counted here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Stored,
    /// The stream already had it (a redelivery).
    Duplicate,
    /// The held state already contained it; nothing published.
    AlreadyApplied,
    /// A replay that would not change the state; nothing published.
    Unchanged,
    Dropped,
}

/// Runs one update's turn (see the module doc).
pub async fn apply<B: Backend>(backend: &B, metrics: &Metrics, job: UpdateJob) -> Applied {
    let UpdateJob {
        link,
        subject,
        msg_id,
        update,
        mode,
        sport,
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
            let delta = match mode {
                Mode::Live => held.state.merge(&update, slot_state.rev_floor),
                Mode::Replay => held.merge_replayed(&update, slot_state.rev_floor),
            };
            // A replay that changes nothing stores nothing, unless the
            // match has no stored state at all (then it is the match's first).
            if mode == Mode::Replay && delta.changed.is_empty() && held.last_seq > 0 {
                break Applied::Unchanged;
            }
            held.note_merged(&msg_id, update.received_at_ms);
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
                metrics.sports.published(sport);
                if mode == Mode::Live {
                    let lag = crate::mqtt::now_ms().saturating_sub(update.received_at_ms);
                    metrics.sports.observe_lag_ms(sport, lag);
                }
                break Applied::Stored;
            }
            Outcome::Duplicate => {
                slot.lock().forget();
                Metrics::inc(&metrics.duplicates);
                metrics.sports.duplicate(sport);
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
    h.insert(HDR_RECEIVED, held.received_ms.to_string().as_str());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::normalise::Origin;
    use crate::payload::normalise_match;
    use crate::state::fake::FakeStream;
    use crate::state::store::{Limits, MatchStates};
    use crate::state::APPLIED_IDS;
    use serde_json::{json, Value};
    use std::collections::HashMap;
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::{Duration, Instant};

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
            self.feed_at(stream, id, v, 1, Mode::Live).await
        }

        async fn feed_at(
            &mut self,
            stream: &FakeStream,
            id: &str,
            v: Value,
            received_at_ms: u64,
            mode: Mode,
        ) -> Applied {
            let origin = Origin {
                sport: "football",
                provider: "thesports",
                topic: "thesports/football/match/v1",
                received_at_ms,
            };
            let job = UpdateJob {
                link: self.states.link(SUBJECT, Instant::now()),
                subject: SUBJECT.into(),
                msg_id: id.into(),
                update: normalise_match(&v, &origin).unwrap(),
                mode,
                sport: self.metrics.sports.id(Some("football")),
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

    /// A football score array: status, home and away goals.
    fn fb(status: i64, home: i64, away: i64) -> Value {
        json!([
            "m1",
            status,
            [home, 0, 0, 0, 0, 0, 0],
            [away, 0, 0, 0, 0, 0, 0],
            1_767_296_000,
            ""
        ])
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

    /// A replayed dead letter newer than everything merged goes in whole; an
    /// older one only fills gaps (no rollback), and replaying it again, by
    /// this process or another, stores nothing.
    #[tokio::test]
    async fn replays_merge_by_receive_time_and_store_once() {
        let stream = FakeStream::default();
        let mut live = Bridge::new();
        live.feed_at(&stream, "a:0", score(1), 100, Mode::Live)
            .await;
        // Received at 150, dead-lettered; replayed now: newer than the state.
        let dl = json!({"id": "m1", "score": fb(4, 2, 0), "incidents": [{"type": 1, "time": 30}]});
        let mut replay = Bridge::new();
        assert_eq!(
            replay
                .feed_at(&stream, "d:0", dl.clone(), 150, Mode::Replay)
                .await,
            Applied::Stored
        );
        let last = stream.last(SUBJECT).unwrap();
        assert_eq!(last.state.score.as_ref().unwrap().home.score, Some(2));
        assert_eq!((last.state.rev, last.state.updated_at_ms), (2, 150));

        // Live moves on (the live process's held state is stale: it reloads
        // on the conflict and merges on top of the replay).
        assert_eq!(
            live.feed_at(&stream, "b:0", score(3), 200, Mode::Live)
                .await,
            Applied::Stored
        );
        assert_eq!(live.metrics.state_conflicts.load(Relaxed), 1);
        let last = stream.last(SUBJECT).unwrap();
        assert_eq!(last.state.incidents.len(), 1, "the replayed goal kept");

        // An older dead letter (received at 120): the score and the
        // incident list stay (the held ones are newer snapshots), the stat
        // type the state lacks is added.
        let old = json!({"id": "m1", "score": fb(2, 0, 1), "incidents": [{"type": 3, "time": 20}],
                         "stats": [{"type": 2, "home": 1, "away": 0}]});
        let stored = stream.count();
        assert_eq!(
            Bridge::new()
                .feed_at(&stream, "e:0", old.clone(), 120, Mode::Replay)
                .await,
            Applied::Stored
        );
        let last = stream.last(SUBJECT).unwrap();
        assert_eq!(
            last.state.score.as_ref().unwrap().home.score,
            Some(3),
            "no rollback"
        );
        assert_eq!(last.state.incidents.len(), 1, "the newer list kept");
        assert_eq!(last.state.incidents[0].time, Some(30));
        assert_eq!(last.state.stats.len(), 1, "the missing stat type added");
        assert_eq!((last.state.rev, last.state.updated_at_ms), (4, 200));
        assert_eq!(stream.count(), stored + 1);

        // Both again, from a fresh process (the applied ids cover them) and
        // from one whose applied ids do not (pushed out by later updates).
        let mut again = Bridge::new();
        assert_eq!(
            again
                .feed_at(&stream, "e:0", old.clone(), 120, Mode::Replay)
                .await,
            Applied::AlreadyApplied
        );
        for i in 0..APPLIED_IDS {
            live.feed_at(
                &stream,
                &format!("n{i}:0"),
                json!({"id": "m1", "n": i}),
                300,
                Mode::Live,
            )
            .await;
        }
        let stored = stream.count();
        let mut later = Bridge::new();
        for (id, v, at) in [("d:0", dl, 150), ("e:0", old, 120)] {
            assert_eq!(
                later.feed_at(&stream, id, v, at, Mode::Replay).await,
                Applied::Unchanged,
                "{id}"
            );
        }
        assert_eq!(stream.count(), stored, "nothing stored twice");
    }

    /// The provider resent an older value after the dead letter: the state
    /// did not change (same `updated_at_ms`), but it was merged after the
    /// dead letter, so the replay must not overwrite it.
    #[tokio::test]
    async fn a_resend_after_the_dead_letter_still_wins() {
        let stream = FakeStream::default();
        let mut live = Bridge::new();
        live.feed_at(&stream, "a:0", score(1), 100, Mode::Live)
            .await;
        live.feed_at(&stream, "b:0", score(1), 300, Mode::Live)
            .await;
        let last = stream.last(SUBJECT).unwrap();
        assert_eq!(last.state.updated_at_ms, 100, "the resend changed nothing");
        let dl = json!({"id": "m1", "score": fb(4, 2, 0)});
        assert_eq!(
            Bridge::new()
                .feed_at(&stream, "d:0", dl, 200, Mode::Replay)
                .await,
            Applied::Unchanged
        );
        assert_eq!(stream.last(SUBJECT).unwrap().state.score, last.state.score);
    }

    /// Live traffic is counted per sport, with its receive-to-ack lag.
    #[tokio::test]
    async fn live_updates_count_per_sport() {
        let stream = FakeStream::default();
        let mut bridge = Bridge::new();
        let now = crate::mqtt::now_ms();
        bridge
            .feed_at(&stream, "a:0", score(1), now, Mode::Live)
            .await;
        bridge
            .feed_at(&stream, "a:0", score(1), now, Mode::Live)
            .await;
        let mut text = String::new();
        bridge.metrics.sports.render(&mut text);
        for line in [
            "tribune_bridge_sport_published_total{sport=\"football\"} 1\n",
            "tribune_bridge_sport_lag_seconds_count{sport=\"football\"} 1\n",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        // The redelivery was skipped (already applied), not a duplicate.
        assert!(text.contains("tribune_bridge_sport_duplicates_total{sport=\"football\"} 0\n"));
    }
}
