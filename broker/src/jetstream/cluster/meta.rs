//! The meta group's replicated state: which streams and consumers exist in
//! the JetStream domain, with which configuration, and on which peers.
//!
//! Every JetStream server of the cluster is a voter. The meta leader
//! validates an API request (create, update, delete), picks peers, and
//! proposes a [`MetaCommand`]; every server applies committed commands in
//! the same order to its [`MetaState`] and, where it is one of the chosen
//! peers, starts or stops its replica (the [`MetaEvent`]s). Configurations
//! travel as nats-server's JSON, inside postcard-framed commands, so the log
//! format does not depend on serde attributes of the config types.
//!
//! The state machine keeps the state in memory and on disk as a snapshot
//! (`snapshot.json`, replaced atomically); on restart it loads the snapshot
//! and openraft replays the log after it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, StorageError, StorageIOError,
    StoredMembership,
};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::jetstream::errors::{self, ApiError};

openraft::declare_raft_types!(
    /// The meta group's Raft types. A node's `addr` is its server name.
    pub MetaTypes:
        D = MetaCommand,
        R = MetaResponse,
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<MetaTypes>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A stream placed in the domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamAssignment {
    pub account: String,
    /// The stream's configuration, nats-server's JSON.
    pub config: String,
    /// The stream's Raft group: one subject token, unique in the domain.
    pub group: String,
    /// Its replicas' node ids, in placement order.
    pub peers: Vec<u64>,
    /// RFC 3339 creation time (the leader's clock when it proposed).
    pub created: String,
    /// Its consumers, by name.
    pub consumers: BTreeMap<String, ConsumerAssignment>,
}

/// A consumer placed on (a subset of) its stream's peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerAssignment {
    pub name: String,
    /// The consumer's configuration, nats-server's JSON.
    pub config: String,
    pub group: String,
    pub peers: Vec<u64>,
    pub created: String,
}

/// A change to the domain, as the meta leader proposes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    CreateStream(StreamAssignment),
    UpdateStream {
        account: String,
        stream: String,
        config: String,
        peers: Vec<u64>,
    },
    DeleteStream {
        account: String,
        stream: String,
    },
    CreateConsumer {
        account: String,
        stream: String,
        consumer: ConsumerAssignment,
    },
    DeleteConsumer {
        account: String,
        stream: String,
        consumer: String,
    },
}

/// What applying a command decided. Commands are validated by the leader
/// before it proposes them; these errors are the races it cannot see
/// (two creates of one name proposed at once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaResponse {
    Ok,
    Error {
        code: u16,
        err_code: u16,
        description: String,
    },
}

impl From<ApiError> for MetaResponse {
    fn from(e: ApiError) -> Self {
        MetaResponse::Error {
            code: e.code,
            err_code: e.err_code,
            description: e.description,
        }
    }
}

impl MetaResponse {
    pub fn into_result(self) -> Result<(), ApiError> {
        match self {
            MetaResponse::Ok => Ok(()),
            MetaResponse::Error {
                code,
                err_code,
                description,
            } => Err(ApiError::new(code, err_code, description)),
        }
    }
}

/// What a server does after applying a command (start, change or stop a
/// replica). Sent for every applied command, also when the log is replayed
/// at start, so the receiver must treat them as idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaEvent {
    StreamAssigned {
        sa: StreamAssignment,
        /// Whether `sa.peers` are still the peers the stream's Raft group
        /// was created with. Only then may a replica without Raft state
        /// initialize the group with them (every first member does the
        /// same, so there is one group). Once the peers changed, the group
        /// has a history its members agree on, and a server that joins
        /// starts empty and is added by the group's leader.
        bootstrap: bool,
    },
    StreamRemoved {
        account: String,
        stream: String,
    },
    ConsumerAssigned {
        account: String,
        stream: String,
        consumer: ConsumerAssignment,
    },
    ConsumerRemoved {
        account: String,
        stream: String,
        consumer: String,
    },
}

/// The domain: streams by (account, name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    pub streams: BTreeMap<String, BTreeMap<String, StreamAssignment>>,
    /// Stream groups whose peers changed since they were created (see
    /// [`MetaEvent::StreamAssigned`]'s `bootstrap`). Kept beside the
    /// assignments rather than in them: assignments are framed with
    /// postcard in the log, which a new field would make unreadable.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub regrouped: BTreeSet<String>,
}

impl MetaState {
    pub fn stream(&self, account: &str, stream: &str) -> Option<&StreamAssignment> {
        self.streams.get(account)?.get(stream)
    }

    /// The event that (re)assigns `sa`.
    fn assigned(&self, sa: &StreamAssignment) -> MetaEvent {
        MetaEvent::StreamAssigned {
            sa: sa.clone(),
            bootstrap: !self.regrouped.contains(&sa.group),
        }
    }

    /// Streams placed on `peer`, for placement (least loaded first).
    pub fn streams_on(&self, peer: u64) -> usize {
        self.streams
            .values()
            .flat_map(|s| s.values())
            .filter(|s| s.peers.contains(&peer))
            .count()
    }

    /// Apply one committed command; the same on every server.
    fn apply(&mut self, cmd: MetaCommand) -> (MetaResponse, Option<MetaEvent>) {
        match cmd {
            MetaCommand::CreateStream(sa) => {
                let streams = self.streams.entry(sa.account.clone()).or_default();
                let name = stream_name(&sa.config);
                match streams.get(&name) {
                    Some(old) if old.config == sa.config => (MetaResponse::Ok, None),
                    Some(_) => (errors::stream_name_exist().into(), None),
                    None => {
                        streams.insert(name, sa.clone());
                        // A group name is never reused, but a stale mark
                        // must not stop a new group from forming.
                        self.regrouped.remove(&sa.group);
                        (
                            MetaResponse::Ok,
                            Some(MetaEvent::StreamAssigned {
                                sa,
                                bootstrap: true,
                            }),
                        )
                    }
                }
            }
            MetaCommand::UpdateStream {
                account,
                stream,
                config,
                peers,
            } => match self
                .streams
                .get_mut(&account)
                .and_then(|s| s.get_mut(&stream))
            {
                Some(sa) => {
                    sa.config = config;
                    if sa.peers != peers {
                        self.regrouped.insert(sa.group.clone());
                        // Consumers live in their stream's group: they
                        // move with it.
                        for c in sa.consumers.values_mut() {
                            c.peers.clone_from(&peers);
                        }
                        sa.peers = peers;
                    }
                    let sa = sa.clone();
                    (MetaResponse::Ok, Some(self.assigned(&sa)))
                }
                None => (errors::stream_not_found().into(), None),
            },
            MetaCommand::DeleteStream { account, stream } => {
                let removed = self
                    .streams
                    .get_mut(&account)
                    .and_then(|s| s.remove(&stream));
                if let Some(sa) = &removed {
                    self.regrouped.remove(&sa.group);
                }
                let removed = removed.is_some();
                if self.streams.get(&account).is_some_and(BTreeMap::is_empty) {
                    self.streams.remove(&account);
                }
                if removed {
                    (
                        MetaResponse::Ok,
                        Some(MetaEvent::StreamRemoved { account, stream }),
                    )
                } else {
                    (errors::stream_not_found().into(), None)
                }
            }
            MetaCommand::CreateConsumer {
                account,
                stream,
                consumer,
            } => match self
                .streams
                .get_mut(&account)
                .and_then(|s| s.get_mut(&stream))
            {
                Some(sa) => {
                    sa.consumers.insert(consumer.name.clone(), consumer.clone());
                    (
                        MetaResponse::Ok,
                        Some(MetaEvent::ConsumerAssigned {
                            account,
                            stream,
                            consumer,
                        }),
                    )
                }
                None => (errors::stream_not_found().into(), None),
            },
            MetaCommand::DeleteConsumer {
                account,
                stream,
                consumer,
            } => match self
                .streams
                .get_mut(&account)
                .and_then(|s| s.get_mut(&stream))
            {
                Some(sa) => match sa.consumers.remove(&consumer) {
                    Some(_) => (
                        MetaResponse::Ok,
                        Some(MetaEvent::ConsumerRemoved {
                            account,
                            stream,
                            consumer,
                        }),
                    ),
                    None => (errors::consumer_not_found().into(), None),
                },
                None => (errors::stream_not_found().into(), None),
            },
        }
    }
}

/// The `name` of a stream configuration's JSON ("" if it has none, which
/// the leader never proposes).
fn stream_name(config: &str) -> String {
    #[derive(Deserialize)]
    struct Named {
        #[serde(default)]
        name: String,
    }
    serde_json::from_str::<Named>(config)
        .map(|n| n.name)
        .unwrap_or_default()
}

/// What `snapshot.json` holds.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<u64, BasicNode>,
    state: MetaState,
}

/// A read handle on the applied state, for the API and monitoring.
pub type MetaView = Arc<RwLock<MetaState>>;

/// openraft's state machine for the meta group.
pub struct MetaStateMachine {
    dir: PathBuf,
    state: MetaView,
    last_applied: Option<LogId<u64>>,
    last_membership: StoredMembership<u64, BasicNode>,
    events: mpsc::UnboundedSender<MetaEvent>,
    snapshot_seq: u64,
}

impl MetaStateMachine {
    /// Open the state machine in `dir`, loading its snapshot if there is
    /// one. Events for the snapshot's streams are sent at once: they exist.
    pub fn open(
        dir: &Path,
        events: mpsc::UnboundedSender<MetaEvent>,
    ) -> anyhow::Result<(Self, MetaView)> {
        use anyhow::Context;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
        let mut sm = MetaStateMachine {
            dir: dir.to_path_buf(),
            state: MetaView::default(),
            last_applied: None,
            last_membership: StoredMembership::default(),
            events,
            snapshot_seq: 0,
        };
        if let Some(file) = read_snapshot(dir)? {
            sm.last_applied = file.meta.last_log_id;
            sm.last_membership = file.meta.last_membership.clone();
            sm.announce(&file.state);
            *sm.state.write() = file.state;
        }
        let view = sm.state.clone();
        Ok((sm, view))
    }

    fn announce(&self, state: &MetaState) {
        for sa in state.streams.values().flat_map(|s| s.values()) {
            let _ = self.events.send(state.assigned(sa));
        }
    }

    fn snapshot_path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_FILE)
    }
}

/// The state machine's snapshot, in its directory.
pub const SNAPSHOT_FILE: &str = "snapshot.json";

fn read_snapshot(dir: &Path) -> anyhow::Result<Option<SnapshotFile>> {
    use anyhow::Context;
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("could not read {}", path.display())),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .with_context(|| format!("corrupt meta snapshot {}", path.display()))
}

/// Replace `path` with `bytes` so that a crash leaves the old or the new
/// file whole: write a temporary file, fsync it, rename, fsync the directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn io_error(
    e: impl std::error::Error + 'static,
    what: openraft::ErrorSubject<u64>,
) -> StorageError<u64> {
    StorageError::IO {
        source: StorageIOError::new(
            what,
            openraft::ErrorVerb::Write,
            openraft::AnyError::new(&e),
        ),
    }
}

/// Builds a snapshot from a copy of the state taken when openraft asked.
pub struct MetaSnapshotBuilder {
    path: PathBuf,
    state: MetaState,
    meta: SnapshotMeta<u64, BasicNode>,
}

impl RaftSnapshotBuilder<MetaTypes> for MetaSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<MetaTypes>, StorageError<u64>> {
        let data = serde_json::to_vec(&self.state)
            .map_err(|e| io_error(e, openraft::ErrorSubject::StateMachine))?;
        let file = SnapshotFile {
            meta: self.meta.clone(),
            state: std::mem::take(&mut self.state),
        };
        let bytes = serde_json::to_vec(&file)
            .map_err(|e| io_error(e, openraft::ErrorSubject::StateMachine))?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| io_error(e, openraft::ErrorSubject::StateMachine))?
            .map_err(|e| io_error(e, openraft::ErrorSubject::StateMachine))?;
        Ok(Snapshot {
            meta: file.meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<MetaTypes> for MetaStateMachine {
    type SnapshotBuilder = MetaSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<MetaResponse>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<MetaTypes>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut out = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => out.push(MetaResponse::Ok),
                EntryPayload::Membership(m) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    out.push(MetaResponse::Ok);
                }
                EntryPayload::Normal(cmd) => {
                    let (resp, event) = self.state.write().apply(cmd);
                    if let Some(ev) = event {
                        let _ = self.events.send(ev);
                    }
                    out.push(resp);
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        let last = self.last_applied;
        let id = match last {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.snapshot_seq),
            None => format!("--{}", self.snapshot_seq),
        };
        MetaSnapshotBuilder {
            path: self.snapshot_path(),
            state: self.state.read().clone(),
            meta: SnapshotMeta {
                last_log_id: last,
                last_membership: self.last_membership.clone(),
                snapshot_id: id,
            },
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let state: MetaState =
            serde_json::from_slice(snapshot.get_ref()).map_err(|e| StorageError::IO {
                source: StorageIOError::new(
                    openraft::ErrorSubject::Snapshot(Some(meta.signature())),
                    openraft::ErrorVerb::Read,
                    openraft::AnyError::new(&e),
                ),
            })?;
        let file = SnapshotFile {
            meta: meta.clone(),
            state,
        };
        let bytes = serde_json::to_vec(&file)
            .map_err(|e| io_error(e, openraft::ErrorSubject::StateMachine))?;
        let path = self.snapshot_path();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| io_error(e, openraft::ErrorSubject::StateMachine))?
            .map_err(|e| io_error(e, openraft::ErrorSubject::StateMachine))?;
        // What disappeared with the snapshot is removed; what it holds is
        // (re)assigned.
        let old = std::mem::replace(&mut *self.state.write(), file.state.clone());
        for (account, streams) in &old.streams {
            for name in streams.keys() {
                if file.state.stream(account, name).is_none() {
                    let _ = self.events.send(MetaEvent::StreamRemoved {
                        account: account.clone(),
                        stream: name.clone(),
                    });
                }
            }
        }
        self.announce(&file.state);
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<MetaTypes>>, StorageError<u64>> {
        let dir = self.dir.clone();
        let file = tokio::task::spawn_blocking(move || read_snapshot(&dir))
            .await
            .map_err(|e| io_error(e, openraft::ErrorSubject::StateMachine))?
            .map_err(|e| StorageError::IO {
                source: StorageIOError::new(
                    openraft::ErrorSubject::StateMachine,
                    openraft::ErrorVerb::Read,
                    openraft::AnyError::error(format!("{e:#}")),
                ),
            })?;
        let Some(file) = file else { return Ok(None) };
        let data = serde_json::to_vec(&file.state)
            .map_err(|e| io_error(e, openraft::ErrorSubject::StateMachine))?;
        Ok(Some(Snapshot {
            meta: file.meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(account: &str, name: &str, peers: &[u64]) -> StreamAssignment {
        StreamAssignment {
            account: account.into(),
            config: format!(r#"{{"name":"{name}","subjects":["{name}.>"],"num_replicas":3}}"#),
            group: format!("S-{name}"),
            peers: peers.to_vec(),
            created: "2026-12-04T00:00:00Z".into(),
            consumers: BTreeMap::new(),
        }
    }

    #[test]
    fn create_is_idempotent_and_conflicts_are_refused() {
        let mut st = MetaState::default();
        let sa = assignment("APP", "S", &[1, 2, 3]);
        let (r, ev) = st.apply(MetaCommand::CreateStream(sa.clone()));
        assert_eq!(r, MetaResponse::Ok);
        assert_eq!(
            ev,
            Some(MetaEvent::StreamAssigned {
                sa: sa.clone(),
                bootstrap: true
            })
        );
        // The same create again (a retried request): fine, nothing to do.
        assert_eq!(
            st.apply(MetaCommand::CreateStream(sa.clone())),
            (MetaResponse::Ok, None)
        );
        let mut other = sa.clone();
        other.config = r#"{"name":"S","subjects":["x"]}"#.into();
        let (r, ev) = st.apply(MetaCommand::CreateStream(other));
        assert_eq!(r.into_result().unwrap_err().err_code, 10058);
        assert_eq!(ev, None);
        assert_eq!(st.streams_on(2), 1);
        assert_eq!(st.streams_on(4), 0);
    }

    #[test]
    fn consumers_and_deletes() {
        let mut st = MetaState::default();
        st.apply(MetaCommand::CreateStream(assignment(
            "APP",
            "S",
            &[1, 2, 3],
        )));
        let ca = ConsumerAssignment {
            name: "C".into(),
            config: r#"{"durable_name":"C"}"#.into(),
            group: "C-S-C".into(),
            peers: vec![1, 2, 3],
            created: "2026-12-04T00:00:00Z".into(),
        };
        let (r, _) = st.apply(MetaCommand::CreateConsumer {
            account: "APP".into(),
            stream: "S".into(),
            consumer: ca,
        });
        assert_eq!(r, MetaResponse::Ok);
        assert!(st.stream("APP", "S").unwrap().consumers.contains_key("C"));
        let del = |c: &str| MetaCommand::DeleteConsumer {
            account: "APP".into(),
            stream: "S".into(),
            consumer: c.into(),
        };
        assert_eq!(st.apply(del("C")).0, MetaResponse::Ok);
        assert_eq!(
            st.apply(del("C")).0.into_result().unwrap_err().err_code,
            10014
        );
        let (r, ev) = st.apply(MetaCommand::DeleteStream {
            account: "APP".into(),
            stream: "S".into(),
        });
        assert_eq!(r, MetaResponse::Ok);
        assert!(matches!(ev, Some(MetaEvent::StreamRemoved { .. })));
        assert!(st.streams.is_empty());
    }

    #[test]
    fn new_peers_mark_the_group_regrouped_and_move_its_consumers() {
        let mut st = MetaState::default();
        let sa = assignment("APP", "S", &[1, 2, 3]);
        st.apply(MetaCommand::CreateStream(sa.clone()));
        st.apply(MetaCommand::CreateConsumer {
            account: "APP".into(),
            stream: "S".into(),
            consumer: ConsumerAssignment {
                name: "C".into(),
                config: r#"{"durable_name":"C"}"#.into(),
                group: "C-S-C".into(),
                peers: vec![1, 2, 3],
                created: "2026-12-04T00:00:00Z".into(),
            },
        });
        let update = |peers: &[u64]| MetaCommand::UpdateStream {
            account: "APP".into(),
            stream: "S".into(),
            config: sa.config.clone(),
            peers: peers.to_vec(),
        };
        // Same peers (a configuration change): still the founding members.
        let (_, ev) = st.apply(update(&[1, 2, 3]));
        assert!(matches!(
            ev,
            Some(MetaEvent::StreamAssigned {
                bootstrap: true,
                ..
            })
        ));
        let (r, ev) = st.apply(update(&[1, 3, 4]));
        assert_eq!(r, MetaResponse::Ok);
        let Some(MetaEvent::StreamAssigned {
            sa: moved,
            bootstrap,
        }) = ev
        else {
            panic!("no assignment event: {ev:?}");
        };
        assert!(!bootstrap);
        assert_eq!(moved.peers, vec![1, 3, 4]);
        assert_eq!(moved.consumers["C"].peers, vec![1, 3, 4]);
        assert!(st.regrouped.contains(&sa.group));
        // Back to the first peers: the group still has a history.
        let (_, ev) = st.apply(update(&[1, 2, 3]));
        assert!(matches!(
            ev,
            Some(MetaEvent::StreamAssigned {
                bootstrap: false,
                ..
            })
        ));
        st.apply(MetaCommand::DeleteStream {
            account: "APP".into(),
            stream: "S".into(),
        });
        assert!(st.regrouped.is_empty());
    }

    #[test]
    fn a_snapshot_without_regrouped_groups_still_loads() {
        // Written before groups could change their peers.
        let old = r#"{"streams":{}}"#;
        let st: MetaState = serde_json::from_str(old).unwrap();
        assert!(st.regrouped.is_empty());
        // And an empty set is not written, so older servers read ours.
        assert_eq!(serde_json::to_string(&st).unwrap(), old);
    }

    #[tokio::test]
    async fn snapshot_survives_a_restart_and_installs_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (mut sm, view) = MetaStateMachine::open(dir.path(), tx.clone()).unwrap();
        let log_id = LogId::new(openraft::CommittedLeaderId::new(1, 7), 5);
        let entry = Entry::<MetaTypes> {
            log_id,
            payload: EntryPayload::Normal(MetaCommand::CreateStream(assignment("A", "S", &[7]))),
        };
        let out = sm.apply(vec![entry]).await.unwrap();
        assert_eq!(out, vec![MetaResponse::Ok]);
        assert!(matches!(
            rx.try_recv(),
            Ok(MetaEvent::StreamAssigned { .. })
        ));
        assert!(view.read().stream("A", "S").is_some());
        let mut builder = sm.get_snapshot_builder().await;
        let snap = builder.build_snapshot().await.unwrap();
        assert_eq!(snap.meta.last_log_id, Some(log_id));
        drop(sm);

        // Reopened: the state and the applied log id come back, and the
        // stream is announced again for the server to start its replica.
        let (mut sm, view) = MetaStateMachine::open(dir.path(), tx.clone()).unwrap();
        assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id));
        assert!(view.read().stream("A", "S").is_some());
        assert!(matches!(
            rx.try_recv(),
            Ok(MetaEvent::StreamAssigned { .. })
        ));
        let current = sm.get_current_snapshot().await.unwrap().unwrap();

        // Installed on an empty peer.
        let other = tempfile::tempdir().unwrap();
        let (tx2, mut rx2) = mpsc::unbounded_channel();
        let (mut sm2, view2) = MetaStateMachine::open(other.path(), tx2).unwrap();
        sm2.install_snapshot(&current.meta, current.snapshot)
            .await
            .unwrap();
        assert_eq!(*view2.read(), *view.read());
        assert_eq!(sm2.applied_state().await.unwrap().0, Some(log_id));
        assert!(matches!(
            rx2.try_recv(),
            Ok(MetaEvent::StreamAssigned { .. })
        ));
    }
}
