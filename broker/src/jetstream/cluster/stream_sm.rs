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
//!
//! Snapshots ([`super::stream_snapshot`]) let openraft purge the log. A
//! snapshot is taken at a checkpoint, so the store always holds what the
//! purged log held. Installing one clears the store and refills it from a
//! peer; `applied.json` says so while it happens (`catching_up`), and a
//! replica restarted mid-way starts the catch-up again before its Raft
//! node runs.

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
use tracing::{error, info, warn};

use super::meta::write_atomically;
use super::stream_snapshot::{self, CatchupClient, CatchupFlag, StreamSnapshot};
use crate::jetstream::errors::ApiError;
use crate::jetstream::ingest::At;
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
    /// (unix nanoseconds). Every replica expires at that time before it
    /// stores them; with no messages, the entry is the leader's expiry.
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
    /// A mirror's messages, each at its origin's sequence and time. (Last:
    /// entries are encoded by position, and older logs must still read.)
    Mirrored { msgs: Vec<MirroredMsg> },
}

/// A mirrored message in a [`StreamEntry::Mirrored`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirroredMsg {
    pub seq: u64,
    pub ts: i64,
    pub subject: String,
    pub headers: bytes::Bytes,
    pub payload: bytes::Bytes,
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
    /// A snapshot (the current one) is being installed: the store is being
    /// refilled and holds nothing reliable until that finishes.
    #[serde(default)]
    catching_up: bool,
}

/// What `snapshot.bin` holds: the current snapshot.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

const SNAPSHOT_FILE: &str = "snapshot.bin";

/// A snapshot installed but not yet filled in.
struct Pending {
    snap: StreamSnapshot,
    /// The snapshot's members other than this server.
    peers: Vec<u64>,
}

impl Pending {
    fn of(file: SnapshotFile, me: u64) -> anyhow::Result<Pending> {
        let snap = StreamSnapshot::decode(&file.data).map_err(anyhow::Error::msg)?;
        Ok(Pending::new(snap, &file.meta, me))
    }

    fn new(snap: StreamSnapshot, meta: &SnapshotMeta<u64, BasicNode>, me: u64) -> Pending {
        let peers = meta
            .last_membership
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| *id != me)
            .collect();
        Pending { snap, peers }
    }
}

/// How often the store is synced and `applied.json` rewritten while
/// entries are being applied.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

pub struct StreamStateMachine {
    stream: Arc<Stream>,
    /// For consumer changes, which start delivery loops.
    server: std::sync::Weak<crate::server::Server>,
    /// File storage: checkpoints are kept (memory streams replay the log
    /// from their last snapshot, which holds their messages).
    durable: bool,
    path: PathBuf,
    snapshot_path: PathBuf,
    snapshot_seq: u64,
    /// Where an installed snapshot's messages come from.
    catchup: CatchupClient,
    catching_up: Arc<CatchupFlag>,
    /// An installed snapshot whose messages are still to be fetched, and
    /// the peers that have them: fetched before anything else is applied
    /// or snapshotted (and by [`Self::resume`] after a restart).
    pending: Option<Pending>,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    checkpointed: Instant,
    /// Whether anything was applied since the last checkpoint.
    dirty: bool,
}

impl StreamStateMachine {
    /// Open the state machine of `stream`, whose Raft files are in `dir`:
    /// roll the store back to the last checkpoint, so openraft's replay
    /// from there rebuilds the rest exactly. A memory stream (empty after
    /// a restart) is refilled from its last snapshot instead.
    pub fn open(
        stream: Arc<Stream>,
        server: std::sync::Weak<crate::server::Server>,
        dir: &Path,
        catchup: CatchupClient,
        catching_up: Arc<CatchupFlag>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
        let path = dir.join("applied.json");
        let snapshot_path = dir.join(SNAPSHOT_FILE);
        let durable = stream.inner.lock().config.storage == crate::jetstream::types::Storage::File;
        let mut sm = StreamStateMachine {
            stream,
            server,
            durable,
            path,
            snapshot_path,
            snapshot_seq: 0,
            catchup,
            catching_up,
            pending: None,
            last_applied: None,
            membership: StoredMembership::default(),
            checkpointed: Instant::now(),
            dirty: false,
        };
        if durable {
            sm.open_file_stream()?;
        } else {
            sm.open_memory_stream()?;
        }
        Ok(sm)
    }

    fn open_file_stream(&mut self) -> anyhow::Result<()> {
        use anyhow::Context;
        let applied: Option<Applied> = match std::fs::read(&self.path) {
            Ok(b) => Some(
                serde_json::from_slice(&b)
                    .with_context(|| format!("corrupt checkpoint {}", self.path.display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(e).with_context(|| format!("could not read {}", self.path.display()))
            }
        };
        if let Some(a) = &applied {
            self.last_applied = a.log_id;
            self.membership = a.membership.clone();
            if a.catching_up {
                let file = read_snapshot(&self.snapshot_path)?.with_context(|| {
                    format!(
                        "{} says a snapshot was being installed, but {} is missing",
                        self.path.display(),
                        self.snapshot_path.display()
                    )
                })?;
                warn!(
                    "JetStream stream {:?}: a restart interrupted its catch-up; starting it again",
                    self.stream.name
                );
                self.pending = Some(Pending::of(file, self.catchup.router.id())?);
                self.catching_up.set(true);
                return Ok(());
            }
        }
        // A snapshot newer than the checkpoint: a crash came between
        // recording it and recording the catch-up; finish the install.
        if let Some(file) = read_snapshot(&self.snapshot_path)? {
            if file.meta.last_log_id > self.last_applied {
                warn!(
                    "JetStream stream {:?}: a restart interrupted a snapshot install; starting \
                     its catch-up again",
                    self.stream.name
                );
                self.last_applied = file.meta.last_log_id;
                self.membership = file.meta.last_membership.clone();
                self.pending = Some(Pending::of(file, self.catchup.router.id())?);
                self.catching_up.set(true);
                return Ok(());
            }
        }
        let target = applied.as_ref().map_or(0, |a| a.last_seq);
        let stream = &self.stream;
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
        stream.rebuild_indexes();
        Ok(())
    }

    /// A memory stream starts empty after a restart: its last snapshot (if
    /// any) refills it, and openraft replays the log after it. It records
    /// no checkpoint.
    fn open_memory_stream(&mut self) -> anyhow::Result<()> {
        use anyhow::Context;
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("could not remove {}", self.path.display()))
            }
        }
        if let Some(file) = read_snapshot(&self.snapshot_path)? {
            let snap = StreamSnapshot::decode(&file.data)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("in {}", self.snapshot_path.display()))?;
            let msgs = snap.msgs.as_deref().unwrap_or_default();
            stream_snapshot::reset_store(&self.stream, &snap).map_err(anyhow::Error::msg)?;
            stream_snapshot::store_fetched(&self.stream, msgs).map_err(anyhow::Error::msg)?;
            stream_snapshot::finish_store(&self.stream, &snap).map_err(anyhow::Error::msg)?;
            self.stream.rebuild_indexes();
            self.install_consumers(&snap);
            self.last_applied = file.meta.last_log_id;
            self.membership = file.meta.last_membership;
        }
        Ok(())
    }

    /// Fetch what an installed snapshot describes, if that is still to
    /// do (after a restart that interrupted it, before the Raft node
    /// starts), until done or the replica stops.
    pub async fn resume(&mut self) -> Result<(), String> {
        self.finish_pending().await
    }

    /// Make the store and consumers what the pending snapshot describes,
    /// then checkpoint: the catch-up is over.
    async fn finish_pending(&mut self) -> Result<(), String> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let result = self.refill(&p).await;
        if let Err(e) = result {
            // Still pending: a later call (or a restart) tries again.
            self.pending = Some(p);
            return Err(e);
        }
        self.install_consumers(&p.snap);
        self.catching_up.set(false);
        self.dirty = true;
        self.checkpoint()
    }

    async fn refill(&mut self, p: &Pending) -> Result<(), String> {
        let snap = &p.snap;
        stream_snapshot::reset_store(&self.stream, snap)?;
        match &snap.msgs {
            Some(msgs) => stream_snapshot::store_fetched(&self.stream, msgs)?,
            None => self.catchup.fetch(&self.stream, snap, &p.peers).await?,
        }
        stream_snapshot::finish_store(&self.stream, snap)?;
        self.stream.rebuild_indexes();
        Ok(())
    }

    /// Create, update or delete this replica's consumers so that they are
    /// the snapshot's, with its delivery and ack state.
    fn install_consumers(&self, snap: &StreamSnapshot) {
        let (Some(server), Some(acc)) = (self.server.upgrade(), self.stream.account.upgrade())
        else {
            return;
        };
        let name = &self.stream.name;
        let here: Vec<String> = self.stream.consumers.read().keys().cloned().collect();
        for gone in here
            .iter()
            .filter(|n| !snap.consumers.iter().any(|c| &c.name == *n))
        {
            acc.delete_consumer(&server, name, gone);
        }
        for sc in &snap.consumers {
            let existing = self.stream.consumers.read().get(&sc.name).cloned();
            let config: serde_json::Value = match serde_json::from_str(&sc.config) {
                Ok(v) => v,
                Err(e) => {
                    error!(
                        "JetStream stream {name:?}: consumer {:?} in a snapshot: {e}",
                        sc.name
                    );
                    continue;
                }
            };
            let same = existing
                .as_ref()
                .and_then(|c| serde_json::to_value(c.config()).ok())
                .is_some_and(|v| v == config);
            if !same {
                let action = if existing.is_some() {
                    "update"
                } else {
                    "create"
                };
                let body = serde_json::json!({
                    "stream_name": name,
                    "config": config,
                    "action": action,
                });
                let api = format!("CONSUMER.CREATE.{name}.{}", sc.name);
                if let Err(e) = crate::jetstream::api::consumer_change(
                    &acc,
                    &server,
                    &api,
                    body.to_string().as_bytes(),
                ) {
                    error!(
                        "JetStream stream {name:?}: could not {action} consumer {:?} from a \
                         snapshot: {}",
                        sc.name, e.description
                    );
                    continue;
                }
            }
            let c = self.stream.consumers.read().get(&sc.name).cloned();
            if let Some(c) = c {
                // An update keeps the pause it had: take the snapshot's.
                let pause = config
                    .get("pause_until")
                    .and_then(serde_json::Value::as_str)
                    .and_then(crate::jetstream::types::parse_rfc3339);
                if c.config().pause_deadline() != pause {
                    c.set_pause(&server, pause);
                    if let Err(e) = acc.save_consumer_meta(&self.stream, &c) {
                        error!(
                            "JetStream stream {name:?}: saving consumer {:?} from a snapshot: {}",
                            sc.name, e.description
                        );
                    }
                }
                c.take_state(sc.state.clone());
            }
        }
    }

    /// Apply a committed batch of messages (published, or a mirror's at
    /// their origin's sequences) at the leader's time `ts`.
    fn apply_msgs<'a>(
        &self,
        msgs: impl ExactSizeIterator<Item = Published<'a>>,
        ts: i64,
    ) -> StreamResponse {
        let mut results = Vec::with_capacity(msgs.len());
        let published: Vec<Published<'a>> = msgs.collect();
        let server = self.server.upgrade();
        self.stream
            .apply_published(server.as_deref(), &published, ts, &mut results);
        StreamResponse::Published(results)
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

    /// Sync the store and record what it holds. Not while a snapshot's
    /// messages are being fetched: `applied.json` then says so, for a
    /// restart to fetch them again.
    fn checkpoint(&mut self) -> Result<(), String> {
        if self.pending.is_some() {
            return Ok(());
        }
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
            catching_up: false,
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

fn read_snapshot(path: &Path) -> anyhow::Result<Option<SnapshotFile>> {
    use anyhow::Context;
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("could not read {}", path.display())),
    };
    postcard::from_bytes(&bytes)
        .map(Some)
        .with_context(|| format!("corrupt stream snapshot {}", path.display()))
}

fn write_snapshot(path: &Path, file: &SnapshotFile) -> Result<(), String> {
    let bytes = postcard::to_allocvec(file).map_err(|e| format!("encoding a snapshot: {e}"))?;
    write_atomically(path, &bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Writes the state taken when openraft asked (at a checkpoint) as the
/// current snapshot.
pub struct StreamSnapshotBuilder {
    path: PathBuf,
    meta: SnapshotMeta<u64, BasicNode>,
    taken: Result<StreamSnapshot, String>,
}

impl RaftSnapshotBuilder<StreamTypes> for StreamSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<StreamTypes>, StorageError<u64>> {
        let snap = std::mem::replace(&mut self.taken, Err("snapshot already built".into()))
            .map_err(sm_error)?;
        let file = SnapshotFile {
            meta: self.meta.clone(),
            data: snap.encode().map_err(sm_error)?,
        };
        let path = self.path.clone();
        let file = tokio::task::spawn_blocking(move || write_snapshot(&path, &file).map(|()| file))
            .await
            .map_err(|e| sm_error(e.to_string()))?
            .map_err(sm_error)?;
        Ok(Snapshot {
            meta: file.meta,
            snapshot: Box::new(Cursor::new(file.data)),
        })
    }
}

impl RaftStateMachine<StreamTypes> for StreamStateMachine {
    type SnapshotBuilder = StreamSnapshotBuilder;

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
        self.finish_pending().await.map_err(sm_error)?;
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
                    // Expiry first, at the leader's time of the entry: every
                    // replica checks the publishes against the same messages.
                    self.stream.expire_replica(ts);
                    let published = msgs.iter().map(|m| Published {
                        subject: &m.subject,
                        headers: &m.headers,
                        payload: &m.payload,
                        at: None,
                    });
                    out.push(self.apply_msgs(published, ts));
                }
                EntryPayload::Normal(StreamEntry::Mirrored { msgs }) => {
                    let ts = msgs.last().map_or(0, |m| m.ts);
                    let published = msgs.iter().map(|m| Published {
                        subject: &m.subject,
                        headers: &m.headers,
                        payload: &m.payload,
                        at: Some(At {
                            seq: m.seq,
                            ts: m.ts,
                        }),
                    });
                    out.push(self.apply_msgs(published, ts));
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

    /// Taken here, between two applies: the store is checkpointed first,
    /// so it holds everything up to the snapshot before the log is purged.
    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let fetched = self.finish_pending().await;
        self.snapshot_seq += 1;
        let snapshot_id = match &self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.snapshot_seq),
            None => format!("--{}", self.snapshot_seq),
        };
        let taken = fetched
            .and_then(|()| self.checkpoint())
            .and_then(|()| StreamSnapshot::take(&self.stream, !self.durable));
        StreamSnapshotBuilder {
            path: self.snapshot_path.clone(),
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.membership.clone(),
                snapshot_id,
            },
            taken,
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// The snapshot is recorded first, then `applied.json` says a catch-up
    /// is under way; the messages are fetched before the next apply. A
    /// crash anywhere resumes it (see [`StreamStateMachine::resume`]).
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let snap = StreamSnapshot::decode(&data).map_err(sm_error)?;
        info!(
            "JetStream stream {:?}: installing a snapshot at sequence {} (log {})",
            self.stream.name,
            snap.last_seq,
            meta.last_log_id.map_or(0, |l| l.index)
        );
        let file = SnapshotFile {
            meta: meta.clone(),
            data,
        };
        write_snapshot(&self.snapshot_path, &file).map_err(sm_error)?;
        if self.durable {
            let intent = Applied {
                log_id: meta.last_log_id,
                membership: meta.last_membership.clone(),
                last_seq: snap.last_seq,
                catching_up: true,
            };
            let bytes = serde_json::to_vec(&intent).map_err(|e| sm_error(e.to_string()))?;
            write_atomically(&self.path, &bytes)
                .map_err(|e| sm_error(format!("writing {}: {e}", self.path.display())))?;
        }
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.pending = Some(Pending::new(snap, meta, self.catchup.router.id()));
        self.catching_up.set(true);
        // A memory stream's snapshot holds its messages: nothing to wait
        // for. A file stream's are fetched by the next apply, so the
        // leader hears at once that the snapshot is taken and goes on
        // replicating the log meanwhile (its answer waits for this).
        if !self.durable {
            self.finish_pending().await.map_err(sm_error)?;
        }
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<StreamTypes>>, StorageError<u64>> {
        let path = self.snapshot_path.clone();
        let file = tokio::task::spawn_blocking(move || read_snapshot(&path))
            .await
            .map_err(|e| sm_error(e.to_string()))?
            .map_err(|e| sm_error(format!("{e:#}")))?;
        Ok(file.map(|f| Snapshot {
            meta: f.meta,
            snapshot: Box::new(Cursor::new(f.data)),
        }))
    }
}
