//! A test-only Raft type configuration with an in-memory log and a state
//! machine that keeps every applied payload (the durable log is another
//! module's; this one only has to be correct, not durable).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    EmptyNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, LogState, RaftLogReader,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StoredMembership, Vote,
};
use parking_lot::Mutex;

openraft::declare_raft_types!(
    pub Tc:
        D = Vec<u8>,
        R = (),
        NodeId = u64,
        Node = EmptyNode,
        Entry = Entry<Tc>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

#[derive(Clone, Default)]
pub struct MemLog(Arc<Mutex<LogInner>>);

#[derive(Default)]
struct LogInner {
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    purged: Option<LogId<u64>>,
    entries: BTreeMap<u64, Entry<Tc>>,
}

impl RaftLogReader<Tc> for MemLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<Tc>>, StorageError<u64>> {
        Ok(self
            .0
            .lock()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<Tc> for MemLog {
    type LogReader = MemLog;

    async fn get_log_state(&mut self) -> Result<LogState<Tc>, StorageError<u64>> {
        let g = self.0.lock();
        let last = g
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(g.purged);
        Ok(LogState {
            last_purged_log_id: g.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> MemLog {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.0.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.0.lock().vote)
    }

    async fn save_committed(&mut self, c: Option<LogId<u64>>) -> Result<(), StorageError<u64>> {
        self.0.lock().committed = c;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.0.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, done: LogFlushed<Tc>) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<Tc>> + Send,
        I::IntoIter: Send,
    {
        {
            let mut g = self.0.lock();
            for e in entries {
                g.entries.insert(e.log_id.index, e);
            }
        }
        done.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.0.lock().entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut g = self.0.lock();
        g.purged = Some(log_id);
        g.entries = g.entries.split_off(&(log_id.index + 1));
        Ok(())
    }
}

#[derive(Clone, Default)]
pub struct MemSm(Arc<Mutex<SmInner>>);

#[derive(Default)]
struct SmInner {
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, EmptyNode>,
    data: Vec<Vec<u8>>,
    snapshot: Option<(SnapshotMeta<u64, EmptyNode>, Vec<u8>)>,
    installed: usize,
}

impl MemSm {
    /// Every payload applied, in order.
    pub fn data(&self) -> Vec<Vec<u8>> {
        self.0.lock().data.clone()
    }

    /// Snapshots received from a leader and installed.
    pub fn installed(&self) -> usize {
        self.0.lock().installed
    }
}

fn sm_error(verb: ErrorVerb, e: postcard::Error) -> StorageError<u64> {
    StorageError::from_io_error(ErrorSubject::StateMachine, verb, std::io::Error::other(e))
}

impl RaftSnapshotBuilder<Tc> for MemSm {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Tc>, StorageError<u64>> {
        let mut g = self.0.lock();
        let bytes = postcard::to_stdvec(&g.data).map_err(|e| sm_error(ErrorVerb::Write, e))?;
        let index = g.applied.map(|l| l.index).unwrap_or_default();
        let meta = SnapshotMeta {
            last_log_id: g.applied,
            last_membership: g.membership.clone(),
            snapshot_id: format!("{index}-{}", g.data.len()),
        };
        g.snapshot = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<Tc> for MemSm {
    type SnapshotBuilder = MemSm;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, EmptyNode>), StorageError<u64>> {
        let g = self.0.lock();
        Ok((g.applied, g.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<Tc>> + Send,
        I::IntoIter: Send,
    {
        let mut g = self.0.lock();
        let mut out = Vec::new();
        for e in entries {
            g.applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(d) => g.data.push(d),
                EntryPayload::Membership(m) => {
                    g.membership = StoredMembership::new(Some(e.log_id), m);
                }
            }
            out.push(());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> MemSm {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, EmptyNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let bytes = snapshot.into_inner();
        let data = postcard::from_bytes(&bytes).map_err(|e| sm_error(ErrorVerb::Read, e))?;
        let mut g = self.0.lock();
        g.data = data;
        g.applied = meta.last_log_id;
        g.membership = meta.last_membership.clone();
        g.snapshot = Some((meta.clone(), bytes));
        g.installed += 1;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Tc>>, StorageError<u64>> {
        let g = self.0.lock();
        Ok(g.snapshot.as_ref().map(|(meta, bytes)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(bytes.clone())),
        }))
    }
}
