//! A replicated stream's state machine: committed Raft entries applied to
//! the replica's message store.
//!
//! The leader proposes batches of published messages with its clock; each
//! replica applies them with the same checks (duplicates, expected
//! sequences, limits) to the same state, so every replica assigns the same
//! sequences and the leader's apply decides the publish acks.
//!
//! Apply does not fsync the store: the Raft log already holds the batch on
//! a quorum's disks. Instead, about once a second the store is synced and
//! `applied.json` records the last applied log id and stream sequence. On
//! restart the store is rolled back to that sequence (what was written
//! after it may or may not have survived) and openraft re-applies the log
//! from there, so a replica never holds a message twice or misses one.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use tracing::{error, warn};

use super::meta::write_atomically;
use crate::jetstream::errors::ApiError;
use crate::jetstream::stream::{Published, Stream};

openraft::declare_raft_types!(
    /// A replicated stream's Raft types.
    pub StreamTypes:
        D = StreamEntry,
        R = StreamResponse,
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<StreamTypes>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// One published message in a proposed batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposedMsg {
    pub subject: String,
    pub headers: bytes::Bytes,
    pub payload: bytes::Bytes,
}

/// A change to a replicated stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamEntry {
    /// Messages published to the leader, in arrival order, at its time
    /// (unix nanoseconds).
    Msgs { ts: i64, msgs: Vec<ProposedMsg> },
    /// `$JS.API.STREAM.PURGE` with this request body.
    Purge { request: bytes::Bytes },
    /// `$JS.API.STREAM.MSG.DELETE` with this request body.
    DeleteMsg { request: bytes::Bytes },
    /// A consumer create or delete: the API subject after `$JS.API.`
    /// (ephemeral consumers named by the leader) and the request body.
    Consumer { api: String, request: bytes::Bytes },
    /// A consumer's delivery and ack state, as the leader has it.
    ConsumerState {
        name: String,
        state: crate::jetstream::store::ConsumerState,
    },
}

/// What applying an entry decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamResponse {
    /// Nothing to answer (blank and membership entries).
    #[default]
    None,
    /// Per message of a batch: `(seq, duplicate)` or why it was refused.
    Published(Vec<Result<(u64, bool), ApiError>>),
    /// An API request's answer body, or its error.
    Api(Result<Vec<u8>, ApiError>),
}

/// What `applied.json` records: the store holds exactly the effects of
/// the log up to `log_id`, and its last sequence was `last_seq`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Applied {
    log_id: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    last_seq: u64,
}

/// How often the store is synced and `applied.json` rewritten while
/// entries are being applied.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

pub struct StreamStateMachine {
    stream: Arc<Stream>,
    /// For consumer changes, which start delivery loops.
    server: std::sync::Weak<crate::server::Server>,
    /// File storage: checkpoints are kept (memory streams replay the log).
    durable: bool,
    path: PathBuf,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    checkpointed: Instant,
    /// Whether anything was applied since the last checkpoint.
    dirty: bool,
}

impl StreamStateMachine {
    /// Open the state machine of `stream`, whose Raft files are in `dir`:
    /// roll the store back to the last checkpoint, so openraft's replay
    /// from there rebuilds the rest exactly.
    pub fn open(
        stream: Arc<Stream>,
        server: std::sync::Weak<crate::server::Server>,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
        let path = dir.join("applied.json");
        // A memory stream starts empty after a restart: the whole log is
        // replayed into it, and it records no checkpoint.
        let durable = stream.inner.lock().config.storage == crate::jetstream::types::Storage::File;
        if !durable {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("could not remove {}", path.display()))
                }
            }
        }
        let applied: Option<Applied> = match std::fs::read(&path) {
            Ok(b) => Some(
                serde_json::from_slice(&b)
                    .with_context(|| format!("corrupt checkpoint {}", path.display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("could not read {}", path.display())),
        };
        let target = applied.as_ref().map_or(0, |a| a.last_seq);
        {
            let mut inner = stream.inner.lock();
            let last = inner.store.state().last_seq;
            if last > target {
                warn!(
                    "JetStream stream {:?}: rolling back from sequence {last} to the checkpoint at \
                     {target}; the Raft log replays the rest",
                    stream.name
                );
                inner
                    .store
                    .truncate(target)
                    .with_context(|| format!("rolling back stream {:?}", stream.name))?;
                inner
                    .store
                    .sync()
                    .context("syncing the rolled-back store")?;
            }
        }
        stream.rebuild_dedup();
        Ok(StreamStateMachine {
            stream,
            server,
            durable,
            path,
            last_applied: applied.as_ref().and_then(|a| a.log_id),
            membership: applied.map(|a| a.membership).unwrap_or_default(),
            checkpointed: Instant::now(),
            dirty: false,
        })
    }

    /// Run an API request's handler on this replica's stream.
    fn api(
        &self,
        f: impl FnOnce(&Arc<crate::jetstream::JsAccount>, &str) -> Result<Vec<u8>, ApiError>,
    ) -> Result<Vec<u8>, ApiError> {
        match self.stream.account.upgrade() {
            Some(acc) => f(&acc, &self.stream.name),
            None => Err(crate::jetstream::errors::stream_not_found()),
        }
    }

    /// Sync the store and record what it holds.
    fn checkpoint(&mut self) -> Result<(), String> {
        if !self.durable {
            self.dirty = false;
            return Ok(());
        }
        let last_seq = {
            let mut inner = self.stream.inner.lock();
            inner
                .store
                .sync()
                .map_err(|e| format!("syncing the store: {e}"))?;
            inner.store.state().last_seq
        };
        let applied = Applied {
            log_id: self.last_applied,
            membership: self.membership.clone(),
            last_seq,
        };
        let bytes = serde_json::to_vec(&applied).map_err(|e| e.to_string())?;
        write_atomically(&self.path, &bytes)
            .map_err(|e| format!("writing {}: {e}", self.path.display()))?;
        self.checkpointed = Instant::now();
        self.dirty = false;
        Ok(())
    }
}

impl Drop for StreamStateMachine {
    fn drop(&mut self) {
        if self.dirty {
            if let Err(e) = self.checkpoint() {
                error!(
                    "JetStream stream {:?}: final checkpoint: {e}",
                    self.stream.name
                );
            }
        }
    }
}

fn sm_error(why: String) -> StorageError<u64> {
    StorageError::IO {
        source: StorageIOError::new(
            openraft::ErrorSubject::StateMachine,
            openraft::ErrorVerb::Write,
            openraft::AnyError::error(why),
        ),
    }
}

/// Streams are not snapshotted yet (their groups never ask): a replica
/// that falls behind catches up from the log, which is kept whole.
pub struct NoSnapshots;

impl RaftSnapshotBuilder<StreamTypes> for NoSnapshots {
    async fn build_snapshot(&mut self) -> Result<Snapshot<StreamTypes>, StorageError<u64>> {
        Err(sm_error("stream snapshots are not supported".into()))
    }
}

impl RaftStateMachine<StreamTypes> for StreamStateMachine {
    type SnapshotBuilder = NoSnapshots;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<StreamResponse>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<StreamTypes>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut out = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            self.dirty = true;
            match entry.payload {
                EntryPayload::Blank => out.push(StreamResponse::default()),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    out.push(StreamResponse::default());
                }
                EntryPayload::Normal(StreamEntry::Msgs { ts, msgs }) => {
                    let published: Vec<Published<'_>> = msgs
                        .iter()
                        .map(|m| Published {
                            subject: &m.subject,
                            headers: &m.headers,
                            payload: &m.payload,
                        })
                        .collect();
                    let mut results = Vec::with_capacity(msgs.len());
                    self.stream.apply_published(&published, ts, &mut results);
                    out.push(StreamResponse::Published(results));
                }
                EntryPayload::Normal(StreamEntry::Purge { request }) => {
                    out.push(StreamResponse::Api(self.api(|acc, name| {
                        crate::jetstream::api::stream_purge(acc, name, &request)
                    })));
                }
                EntryPayload::Normal(StreamEntry::DeleteMsg { request }) => {
                    out.push(StreamResponse::Api(self.api(|acc, name| {
                        crate::jetstream::api::msg_delete(acc, name, &request)
                    })));
                }
                EntryPayload::Normal(StreamEntry::Consumer { api, request }) => {
                    let server = self.server.upgrade();
                    out.push(StreamResponse::Api(self.api(|acc, _| {
                        let Some(server) = server else {
                            return Err(crate::jetstream::errors::stream_not_found());
                        };
                        crate::jetstream::api::consumer_change(acc, &server, &api, &request)
                    })));
                }
                EntryPayload::Normal(StreamEntry::ConsumerState { name, state }) => {
                    // The leader's own copy is where the state came from.
                    if self.stream.is_passive() {
                        let c = self.stream.consumers.read().get(&name).cloned();
                        if let Some(c) = c {
                            c.take_state(state);
                        }
                    }
                    out.push(StreamResponse::None);
                }
            }
        }
        if self.checkpointed.elapsed() >= CHECKPOINT_EVERY {
            self.checkpoint().map_err(sm_error)?;
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        NoSnapshots
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Err(sm_error("stream snapshots are not supported".into()))
    }

    async fn install_snapshot(
        &mut self,
        _meta: &SnapshotMeta<u64, BasicNode>,
        _snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        Err(sm_error("stream snapshots are not supported".into()))
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<StreamTypes>>, StorageError<u64>> {
        Ok(None)
    }
}
