//! The durable Raft log: openraft's [`RaftLogStorage`] over segment files.
//!
//! One [`LogStore`] per Raft group, in a directory of its own:
//!
//! ```text
//! <dir>/log/<first index, 20 digits>.seg   entries, one framed record each
//! <dir>/vote, <dir>/committed, <dir>/purged   small state files
//! ```
//!
//! Records are `[u32 len][u32 crc32][postcard Entry]`; a segment is closed
//! at [`LogOptions::segment_bytes`]. An appended batch is readable at once,
//! and openraft is told it is stored only after it is fdatasynced, by a
//! writer thread that exists while the store has work, so an idle store
//! costs only its files and a busy one writes every waiting batch with one
//! write and one fsync (group commit).
//! The writer keeps zeros on disk ahead of the newest record
//! ([`LogOptions::prealloc_bytes`]), so most of those fsyncs carry no
//! metadata; reopening reads zeros after the last record as the end.
//!
//! Memory per store: the offset of every record (4 bytes an entry), the
//! leader id of every term, and a bounded cache of the newest entries,
//! which is what replication reads; older entries are read from the files.

mod claim;
mod meta;
mod read;
mod record;
mod recover;
mod segment;
mod shared;
mod state;
mod writer;

#[cfg(test)]
mod tests;

use std::fmt::Debug;
use std::fs;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, OptionalSend, RaftLogReader, RaftTypeConfig, StorageError,
    StorageIOError, Vote,
};
use tokio::sync::oneshot;

use claim::Claim;
use shared::{Batch, Done, Op, Shared};

/// Sizes and intervals of a [`LogStore`]; `Default` is what production uses.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// A new segment file is started before a record would take the current
    /// one past this many bytes. Whole segments are what purging deletes.
    pub segment_bytes: u64,
    /// Bytes of the newest entries kept decoded in memory (entries not yet
    /// on disk are kept whatever this says).
    pub cache_bytes: usize,
    /// Most bytes of entries one `limited_get_log_entries` returns (at least
    /// one entry), so one replication message stays bounded.
    pub read_batch_bytes: usize,
    /// While the store is in use, the committed log id is written at most
    /// this often. It is only a hint for re-applying entries at startup, so
    /// a stale value is safe and a write per commit is not worth its fsyncs.
    pub committed_interval: Duration,
    /// Zeros written ahead of the newest record, at most; 0 writes none.
    /// An fdatasync of bytes that overwrite zeros already on disk has no
    /// file size or block map to commit with them, so it skips the
    /// filesystem journal: measured here, 17 KB appends synced in 190 us
    /// and overwrites in 117 us, and three replicas on one disk no longer
    /// queue behind each other's journal commits. The zeros are written
    /// (and synced) along with the append that runs past them, in steps
    /// that grow with the segment up to this size.
    pub prealloc_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 64 << 20,
            cache_bytes: 4 << 20,
            read_batch_bytes: 4 << 20,
            committed_interval: Duration::from_secs(1),
            prealloc_bytes: 1 << 20,
        }
    }
}

/// Segments are kept below this so record offsets fit in `u32`.
const MAX_SEGMENT_BYTES: u64 = 1 << 30;

/// How long `open` waits for an earlier store on the same directory in this
/// process to finish its last writes.
const CLAIM_WAIT: Duration = Duration::from_secs(10);

/// Wait (up to `wait`) until no store of this process has the log in
/// `dir` open, its last writes included, so the directory can be removed
/// without a writer recreating files in it. A directory that does not
/// exist is not open.
pub fn wait_closed(dir: &Path, wait: Duration) -> anyhow::Result<()> {
    let dir = match dir.canonicalize() {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("resolving {}", dir.display())),
    };
    drop(Claim::take(&dir, wait)?);
    Ok(())
}

/// A durable Raft log for one group. Cloning gives another handle on the
/// same log (openraft's log reader).
pub struct LogStore<C>
where
    C: RaftTypeConfig<NodeId = u64, Entry = Entry<C>>,
{
    shared: Arc<Shared<C>>,
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig<NodeId = u64, Entry = Entry<C>>,
{
    /// Opens the log in `dir` (created if missing) with default options.
    /// Blocking: it reads every segment to rebuild the index.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        Self::open_with(dir, LogOptions::default())
    }

    /// Opens the log in `dir` (created if missing). A torn last record is
    /// cut away with a warning; other damage is an error. Waits (up to
    /// 10 s) while a dropped store on the same directory finishes writing.
    pub fn open_with(dir: &Path, opts: LogOptions) -> anyhow::Result<Self> {
        anyhow::ensure!(
            (1..=MAX_SEGMENT_BYTES).contains(&opts.segment_bytes),
            "segment_bytes must be between 1 and {MAX_SEGMENT_BYTES}"
        );
        let existed = dir.exists();
        fs::create_dir_all(dir.join("log"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;
        let log_dir = dir.join("log");
        if !existed {
            if let Some(parent) = dir.parent() {
                meta::sync_dir(parent).with_context(|| format!("syncing {}", parent.display()))?;
            }
        }
        meta::sync_dir(&dir).with_context(|| format!("syncing {}", dir.display()))?;
        let claim = Claim::take(&dir, CLAIM_WAIT)?;
        let state = recover::recover::<C>(&dir, &log_dir, &opts)
            .with_context(|| format!("opening the Raft log in {}", dir.display()))?;
        Ok(LogStore {
            shared: Arc::new(Shared::new(dir, log_dir, opts, state, claim)),
        })
    }

    /// The directory this log lives in.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Bytes of the records after `index` (all of them for `None`), for
    /// monitoring what a snapshot would compact.
    pub fn bytes_after(&self, index: Option<u64>) -> u64 {
        self.shared.inner.lock().log.bytes_after(index)
    }

    /// Appends `entries` and blocks until they are on disk. openraft's
    /// completion callback cannot be made outside openraft, so the recovery
    /// fuzz target (`cargo fuzz` builds with `--cfg fuzzing`) appends
    /// through this instead of [`RaftLogStorage::append`].
    #[cfg(fuzzing)]
    pub fn append_durably(&self, entries: Vec<Entry<C>>) -> std::io::Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let done = Done::Test(Box::new(move |r| {
            let _ = tx.send(r);
        }));
        self.append_batch(entries, done)
            .map_err(std::io::Error::other)?;
        rx.recv()
            .map_err(|_| std::io::Error::other("the Raft log writer went away"))?
    }

    /// Queues a batch for the writer; it is readable on return.
    fn append_batch(
        &self,
        entries: impl IntoIterator<Item = Entry<C>>,
        done: Done<C>,
    ) -> Result<(), String> {
        let mut bytes = Vec::new();
        let mut recs = Vec::new();
        for entry in entries {
            let size = record::encode(&mut bytes, &entry).map_err(|e| format!("{e:#}"))?;
            recs.push((entry, size));
        }
        let mut g = self.shared.inner.lock();
        let g = &mut *g;
        check(g)?;
        let (writes, seq) = g
            .log
            .append(&self.shared.log_dir, self.shared.opts.segment_bytes, recs)
            .map_err(|e| self.shared.fail(g, format!("{e:#}")))?;
        let batch = Batch {
            bytes,
            writes,
            seq,
            done,
        };
        self.shared.enqueue(g, Op::Append(batch))
    }

    /// Entries in `[start, end)`, up to about `limit` bytes.
    async fn read(
        &self,
        start: u64,
        end: u64,
        limit: usize,
    ) -> Result<Vec<Entry<C>>, StorageError<u64>>
    where
        C::D: Clone,
    {
        let (files, cached) = {
            let g = self.shared.inner.lock();
            check(&g).map_err(read_err)?;
            g.log.plan_read(start, end, limit)
        };
        if files.is_empty() {
            return Ok(cached);
        }
        let read = match tokio::runtime::Handle::try_current() {
            Ok(rt) => rt
                .spawn_blocking(move || read::entries::<C>(&files))
                .await
                .map_err(|e| read_err(format!("reading Raft log entries: {e}")))?,
            Err(_) => read::entries::<C>(&files),
        };
        let mut out = read.map_err(|e| read_err(format!("{e:#}")))?;
        out.extend(cached);
        Ok(out)
    }

    /// Queues an op that openraft waits for, and waits for it.
    async fn wait_for(
        &self,
        op: impl FnOnce(oneshot::Sender<std::io::Result<()>>) -> Op<C>,
    ) -> Result<(), String> {
        let rx = {
            let mut g = self.shared.inner.lock();
            check(&g)?;
            let (tx, rx) = oneshot::channel();
            self.shared.enqueue(&mut g, op(tx))?;
            rx
        };
        match rx.await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("the Raft log writer stopped".to_string()),
        }
    }
}

impl<C> Clone for LogStore<C>
where
    C: RaftTypeConfig<NodeId = u64, Entry = Entry<C>>,
{
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::AcqRel);
        LogStore {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C> Drop for LogStore<C>
where
    C: RaftTypeConfig<NodeId = u64, Entry = Entry<C>>,
{
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.released();
        }
    }
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig<NodeId = u64, Entry = Entry<C>>,
    C::D: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<C>>, StorageError<u64>> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => e.saturating_add(1),
            Bound::Excluded(e) => *e,
            Bound::Unbounded => u64::MAX,
        };
        self.read(start, end, usize::MAX).await
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<C>>, StorageError<u64>> {
        self.read(start, end, self.shared.opts.read_batch_bytes)
            .await
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig<NodeId = u64, Entry = Entry<C>>,
    C::D: Clone,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<u64>> {
        let g = self.shared.inner.lock();
        check(&g).map_err(write_err)?;
        Ok(LogState {
            last_purged_log_id: g.log.purged,
            last_log_id: g.log.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let vote = *vote;
        self.wait_for(|tx| Op::Vote(vote, tx))
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::error(e)))?;
        self.shared.inner.lock().log.vote = Some(vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.shared.inner.lock().log.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        let mut g = self.shared.inner.lock();
        let g = &mut *g;
        check(g).map_err(write_err)?;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            self.shared.runtime.get_or_init(|| rt);
        }
        if g.log.committed != committed {
            g.log.committed = committed;
            g.io.committed_dirty = true;
            self.shared.kick(g).map_err(write_err)?;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.shared.inner.lock().log.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.append_batch(entries, Done::Raft(callback))
            .map_err(write_err)
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let work = {
            let mut g = self.shared.inner.lock();
            check(&g).map_err(write_err)?;
            g.log.truncate(log_id.index)
        };
        match work {
            Some(t) => self
                .wait_for(|tx| Op::Truncate(t, tx))
                .await
                .map_err(write_err),
            None => Ok(()),
        }
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut g = self.shared.inner.lock();
        let g = &mut *g;
        check(g).map_err(write_err)?;
        match g.log.purge(log_id) {
            Some(p) => self.shared.enqueue(g, Op::Purge(p)).map_err(write_err),
            None => Ok(()),
        }
    }
}

/// Refuses to go on after an I/O error.
fn check<C: RaftTypeConfig>(g: &shared::Inner<C>) -> Result<(), String> {
    match &g.io.failed {
        Some(why) => Err(format!("the Raft log failed earlier: {why}")),
        None => Ok(()),
    }
}

fn write_err(why: impl ToString) -> StorageError<u64> {
    StorageIOError::write_logs(AnyError::error(why)).into()
}

fn read_err(why: impl ToString) -> StorageError<u64> {
    StorageIOError::read_logs(AnyError::error(why)).into()
}
