//! A replicated stream's Raft snapshot, and how a replica that installs
//! one catches up.
//!
//! Snapshots let a stream's Raft log be purged: without them the log holds
//! every message ever published, long after the stream's limits dropped
//! it. A file stream's snapshot describes its store (first and last
//! sequence) and carries its consumers, not its messages: those are on the
//! replicas' disks already. A replica that has to install one (it fell
//! behind what the leader's log still holds, or its disk was wiped) clears
//! its store and fetches the messages from a peer, at the leader's exact
//! sequences, as nats-server's catch-up does. A memory stream's snapshot
//! carries its messages, since its store does not survive a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::jetstream::store::{ConsumerState, MsgStore, StoredMsg};
use crate::jetstream::stream::Stream;
use crate::raft::network::{CatchupSource, Router};

/// One stored message, at its sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMsg {
    pub seq: u64,
    pub ts: i64,
    pub subject: String,
    pub headers: bytes::Bytes,
    pub payload: bytes::Bytes,
}

impl SnapshotMsg {
    fn size(&self) -> usize {
        // Sequence, time and lengths: a few dozen bytes on the wire.
        self.subject.len() + self.headers.len() + self.payload.len() + 32
    }
}

impl From<StoredMsg> for SnapshotMsg {
    fn from(m: StoredMsg) -> Self {
        SnapshotMsg {
            seq: m.seq,
            ts: m.ts,
            subject: m.subject,
            headers: m.headers,
            payload: m.payload,
        }
    }
}

/// A consumer as the snapshot carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotConsumer {
    pub name: String,
    /// Its configuration as the API writes it (JSON: the configuration's
    /// optional fields are skipped when empty, which postcard cannot read
    /// back).
    pub config: String,
    pub state: ConsumerState,
}

/// The state of a stream at a log index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSnapshot {
    pub first_seq: u64,
    pub last_seq: u64,
    pub consumers: Vec<SnapshotConsumer>,
    /// A memory stream's messages; `None` for file streams, whose
    /// messages are fetched from peers.
    pub msgs: Option<Vec<SnapshotMsg>>,
}

impl StreamSnapshot {
    /// The state of `stream` now; with its messages when `with_msgs`.
    pub fn take(stream: &Stream, with_msgs: bool) -> Result<StreamSnapshot, String> {
        let consumers = stream
            .consumers
            .read()
            .values()
            .map(|c| {
                Ok(SnapshotConsumer {
                    name: c.name.clone(),
                    config: serde_json::to_string(&c.config())
                        .map_err(|e| format!("consumer {:?}: {e}", c.name))?,
                    state: c.replicated_state(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let inner = stream.inner.lock();
        let state = inner.store.state();
        let msgs = if with_msgs {
            let mut msgs = Vec::with_capacity(usize::try_from(state.msgs).unwrap_or(0));
            let mut seq = state.first_seq;
            while let Some(m) = inner
                .store
                .load_next("", seq)
                .map_err(|e| format!("reading the store: {e}"))?
            {
                seq = m.seq + 1;
                msgs.push(m.into());
            }
            Some(msgs)
        } else {
            None
        };
        Ok(StreamSnapshot {
            first_seq: state.first_seq,
            last_seq: state.last_seq,
            consumers,
            msgs,
        })
    }

    pub fn encode(&self) -> Result<Vec<u8>, String> {
        postcard::to_allocvec(self).map_err(|e| format!("encoding a stream snapshot: {e}"))
    }

    pub fn decode(bytes: &[u8]) -> Result<StreamSnapshot, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("decoding a stream snapshot: {e}"))
    }
}

/// A catch-up request: the messages with sequences `from..=upto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchupRequest {
    pub from: u64,
    pub upto: u64,
}

/// A catch-up answer: messages in order, and the sequence to ask for
/// next (past `upto`: done).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchupReply {
    pub msgs: Vec<SnapshotMsg>,
    pub next: u64,
}

/// Whether a replica is catching up: it serves no catch-up itself then
/// (its store is being refilled).
#[derive(Debug, Default)]
pub struct CatchupFlag(AtomicBool);

impl CatchupFlag {
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::Release);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Serves peers' catch-up requests from this replica's store.
pub struct StreamCatchupSource {
    pub stream: Weak<Stream>,
    pub catching_up: Arc<CatchupFlag>,
}

impl CatchupSource for StreamCatchupSource {
    fn answer(&self, request: &[u8], max: usize) -> Result<Vec<u8>, String> {
        let req: CatchupRequest =
            postcard::from_bytes(request).map_err(|e| format!("bad catch-up request: {e}"))?;
        let stream = self.stream.upgrade().ok_or("the stream is gone")?;
        if self.catching_up.get() {
            return Err("this replica is catching up itself".into());
        }
        let reply = read_range(&stream, req, max)?;
        postcard::to_allocvec(&reply).map_err(|e| format!("encoding a catch-up answer: {e}"))
    }
}

/// The messages of `req` this replica's store holds, up to about `max`
/// bytes. The lock is taken per message, so publishes go on meanwhile.
fn read_range(stream: &Stream, req: CatchupRequest, max: usize) -> Result<CatchupReply, String> {
    let last = stream.inner.lock().store.state().last_seq;
    read_from(last, req, max, |seq| {
        stream
            .inner
            .lock()
            .store
            .load_next("", seq)
            .map_err(|e| format!("reading the store: {e}"))
    })
}

/// The messages of `req` in a store whose last sequence is `last`, read
/// with `load_next`, up to about `max` bytes (at least one message).
/// Refused if the store has not reached `req.upto`: a replica that is
/// itself behind would leave holes where it has not stored yet.
fn read_from(
    last: u64,
    req: CatchupRequest,
    max: usize,
    mut load_next: impl FnMut(u64) -> Result<Option<StoredMsg>, String>,
) -> Result<CatchupReply, String> {
    if last < req.upto {
        return Err(format!(
            "behind: the last sequence here is {last}, {} was asked for",
            req.upto
        ));
    }
    let mut reply = CatchupReply {
        msgs: Vec::new(),
        next: req.from,
    };
    // Postcard's framing of the answer itself.
    let mut bytes = 16;
    while reply.next <= req.upto {
        let Some(m) = load_next(reply.next)?.filter(|m| m.seq <= req.upto) else {
            reply.next = req.upto + 1;
            break;
        };
        let m = SnapshotMsg::from(m);
        if !reply.msgs.is_empty() && bytes + m.size() > max {
            break;
        }
        bytes += m.size();
        reply.next = m.seq + 1;
        reply.msgs.push(m);
    }
    Ok(reply)
}

/// Where a replica fetches what a snapshot describes: its group's peers.
#[derive(Clone)]
pub struct CatchupClient {
    pub router: Arc<Router>,
    pub group: String,
    /// Set when the replica stops: a catch-up in progress gives up.
    pub closed: Arc<AtomicBool>,
}

/// How long one catch-up request may take.
const CATCHUP_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause after every peer failed, before asking again.
const CATCHUP_RETRY: Duration = Duration::from_secs(1);

impl CatchupClient {
    /// Fill `stream`'s store with the messages of `snap` (its store already
    /// reset to just before `snap.first_seq`), from any of `peers` that
    /// has them, until done or the replica stops.
    pub async fn fetch(
        &self,
        stream: &Stream,
        snap: &StreamSnapshot,
        peers: &[u64],
    ) -> Result<(), String> {
        let mut from = snap.first_seq.max(1);
        let mut fetched = 0u64;
        let mut turn = 0usize;
        let mut failures = 0usize;
        while from <= snap.last_seq {
            if self.closed.load(Ordering::Acquire) {
                return Err("the replica stopped while catching up".into());
            }
            if peers.is_empty() {
                return Err("no peer to catch up from".into());
            }
            let peer = peers[turn % peers.len()];
            let req = CatchupRequest {
                from,
                upto: snap.last_seq,
            };
            let body =
                postcard::to_allocvec(&req).map_err(|e| format!("encoding a request: {e}"))?;
            let answer = self
                .router
                .request_catchup(peer, &self.group, &body, CATCHUP_TIMEOUT)
                .await
                .and_then(|b| {
                    postcard::from_bytes::<CatchupReply>(&b)
                        .map_err(|e| format!("bad catch-up answer: {e}"))
                });
            match answer {
                Ok(reply) if reply.next > from => {
                    failures = 0;
                    fetched += reply.msgs.len() as u64;
                    store_fetched(stream, &reply.msgs)?;
                    from = reply.next;
                }
                Ok(_) => {
                    return Err(format!("peer {peer:016x} answered without progress"));
                }
                Err(e) => {
                    debug!(
                        "stream group {}: catch-up from {peer:016x} failed: {e}",
                        self.group
                    );
                    turn += 1;
                    failures += 1;
                    if failures.is_multiple_of(peers.len()) {
                        if failures == peers.len() {
                            warn!(
                                "JetStream stream {:?}: no peer can serve its catch-up yet \
                                 (last: {e}); retrying",
                                stream.name
                            );
                        }
                        tokio::time::sleep(CATCHUP_RETRY).await;
                    }
                }
            }
        }
        info!(
            "JetStream stream {:?}: caught up {fetched} messages up to sequence {}",
            stream.name, snap.last_seq
        );
        Ok(())
    }
}

/// Store fetched messages at their sequences.
pub fn store_fetched(stream: &Stream, msgs: &[SnapshotMsg]) -> Result<(), String> {
    let removed = {
        let mut inner = stream.inner.lock();
        place(&mut *inner.store, msgs)?;
        inner.store.take_removed()
    };
    stream.forget(&removed);
    if !msgs.is_empty() {
        stream.after_store();
    }
    Ok(())
}

/// Store `msgs` in `store`, each at its own sequence, skipping over the
/// sequences in between.
fn place(store: &mut dyn MsgStore, msgs: &[SnapshotMsg]) -> Result<(), String> {
    for m in msgs {
        store
            .skip_to(m.seq.saturating_sub(1))
            .map_err(|e| format!("placing message {}: {e}", m.seq))?;
        let seq = store
            .store_msg(&m.subject, &m.headers, &m.payload, m.ts)
            .map_err(|e| format!("storing message {}: {e}", m.seq))?;
        if seq != m.seq {
            return Err(format!("message {} was stored at sequence {seq}", m.seq));
        }
    }
    Ok(())
}

/// Reset `stream`'s store to hold nothing, positioned so that the next
/// message stored gets `snap.first_seq` (what a snapshot install starts
/// from). Durable when it returns.
pub fn reset_store(stream: &Stream, snap: &StreamSnapshot) -> Result<(), String> {
    let mut inner = stream.inner.lock();
    inner
        .store
        .truncate(0)
        .map_err(|e| format!("clearing the store: {e}"))?;
    inner
        .store
        .skip_to(snap.first_seq.saturating_sub(1))
        .map_err(|e| format!("positioning the store: {e}"))?;
    inner
        .store
        .sync()
        .map_err(|e| format!("syncing the store: {e}"))
}

/// Finish `snap`'s store: past its last message up to its last sequence.
pub fn finish_store(stream: &Stream, snap: &StreamSnapshot) -> Result<(), String> {
    let mut inner = stream.inner.lock();
    inner
        .store
        .skip_to(snap.last_seq)
        .map_err(|e| format!("positioning the store: {e}"))?;
    inner
        .store
        .sync()
        .map_err(|e| format!("syncing the store: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jetstream::store::{MemStore, StoreLimits};

    #[test]
    fn snapshot_round_trips() {
        let snap = StreamSnapshot {
            first_seq: 5,
            last_seq: 9,
            consumers: vec![SnapshotConsumer {
                name: "C".into(),
                config: r#"{"durable_name":"C"}"#.into(),
                state: ConsumerState::default(),
            }],
            msgs: Some(vec![SnapshotMsg {
                seq: 7,
                ts: 1,
                subject: "a.b".into(),
                headers: bytes::Bytes::new(),
                payload: bytes::Bytes::from_static(b"x"),
            }]),
        };
        let back = StreamSnapshot::decode(&snap.encode().unwrap()).unwrap();
        assert_eq!(back, snap);
        assert!(StreamSnapshot::decode(b"\xff\xff").is_err());
    }

    fn msg(seq: u64, payload: usize) -> SnapshotMsg {
        SnapshotMsg {
            seq,
            ts: seq as i64,
            subject: format!("s.{seq}"),
            headers: bytes::Bytes::new(),
            payload: bytes::Bytes::from(vec![b'x'; payload]),
        }
    }

    fn store_with(msgs: &[SnapshotMsg]) -> MemStore {
        let mut store = MemStore::new(StoreLimits::default());
        place(&mut store, msgs).expect("place");
        store
    }

    fn read(store: &MemStore, req: CatchupRequest, max: usize) -> Result<CatchupReply, String> {
        read_from(store.state().last_seq, req, max, |seq| {
            store.load_next("", seq).map_err(|e| e.to_string())
        })
    }

    #[test]
    fn messages_are_placed_at_their_sequences() {
        let msgs = [msg(3, 1), msg(4, 1), msg(9, 1)];
        let store = store_with(&msgs);
        let st = store.state();
        assert_eq!((st.first_seq, st.last_seq, st.msgs), (3, 9, 3));
        assert_eq!(st.num_deleted, 4);
        assert_eq!(store.load(9).unwrap().unwrap().subject, "s.9");
        // A sequence already passed cannot be placed again.
        let mut store = store;
        assert!(place(&mut store, &[msg(5, 1)]).is_err());
    }

    #[test]
    fn a_range_is_read_in_pieces_and_skips_gaps() {
        let msgs: Vec<_> = [2, 3, 7, 8, 12].into_iter().map(|s| msg(s, 100)).collect();
        let store = store_with(&msgs);
        let req = CatchupRequest { from: 1, upto: 10 };
        let first = read(&store, req, 250).unwrap();
        assert_eq!(first.msgs.iter().map(|m| m.seq).collect::<Vec<_>>(), [2]);
        assert_eq!(first.next, 3);
        let mut got = first.msgs;
        let mut next = first.next;
        while next <= req.upto {
            let r = read(&store, CatchupRequest { from: next, ..req }, 1 << 20).unwrap();
            assert!(r.next > next);
            next = r.next;
            got.extend(r.msgs);
        }
        assert_eq!(got.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3, 7, 8]);
        assert_eq!(got, msgs[..4]);
        // One message larger than the limit still goes alone.
        let r = read(&store, CatchupRequest { from: 7, upto: 12 }, 10).unwrap();
        assert_eq!((r.msgs.len(), r.next), (1, 8));
        // An empty tail ends the range.
        let r = read(&store, CatchupRequest { from: 9, upto: 11 }, 1 << 20).unwrap();
        assert!(r.msgs.is_empty());
        assert_eq!(r.next, 12);
    }

    #[test]
    fn a_store_behind_the_range_refuses() {
        let store = store_with(&[msg(1, 1)]);
        let e = read(&store, CatchupRequest { from: 1, upto: 5 }, 1 << 20).unwrap_err();
        assert!(e.contains("behind"), "{e}");
    }
}
