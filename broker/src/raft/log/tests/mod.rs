//! Tests: openraft's storage suite, recovery after crashes and damage, and
//! the ordering of writes and completions.

mod flush;
mod recovery;
mod sm;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openraft::storage::RaftLogStorage;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, Entry, EntryPayload, LogId, RaftLogReader, StorageError, StorageIOError};
use tempfile::TempDir;

use super::shared::Done;
use super::{LogOptions, LogStore};

openraft::declare_raft_types!(
    /// The type config of these tests: string commands, u64 node ids.
    pub TC
);

type Store = LogStore<TC>;

/// Options that exercise rollover and file reads with a handful of entries.
fn tiny() -> LogOptions {
    LogOptions {
        segment_bytes: 100,
        cache_bytes: 0,
        read_batch_bytes: 64,
        committed_interval: Duration::from_millis(10),
        prealloc_bytes: 1 << 20,
    }
}

struct Builder(LogOptions);

impl StoreBuilder<TC, Store, sm::MemSm, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, Store, sm::MemSm), StorageError<u64>> {
        let io = |e: String| StorageError::from(StorageIOError::write_logs(AnyError::error(e)));
        let dir = tempfile::tempdir().map_err(|e| io(e.to_string()))?;
        let store =
            LogStore::open_with(dir.path(), self.0.clone()).map_err(|e| io(format!("{e:#}")))?;
        Ok((dir, store, sm::MemSm::default()))
    }
}

#[test]
fn openraft_suite_default_options() {
    Suite::test_all(Builder(LogOptions::default())).expect("storage suite");
}

#[test]
fn openraft_suite_tiny_segments_no_cache() {
    Suite::test_all(Builder(tiny())).expect("storage suite");
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    openraft::testing::log_id(term, 1, index)
}

fn entry(term: u64, index: u64) -> Entry<TC> {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(format!("entry {index} of term {term}")),
    }
}

fn entries(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry<TC>> {
    indexes.map(|i| entry(term, i)).collect()
}

/// Opens a new log that begins at index 1. openraft's logs begin at index
/// 0 (its first entry is the initial membership) and a log whose first
/// entries are missing is refused on reopening; these tests number entries
/// from 1, so index 0 counts as purged, as after a snapshot at index 0.
async fn fresh(dir: &Path, opts: LogOptions) -> Store {
    let mut s = Store::open_with(dir, opts).expect("open");
    s.purge(log_id(0, 0)).await.expect("purge index 0");
    s
}

/// Appends and waits until the batch is reported stored.
async fn append(store: &Store, batch: Vec<Entry<TC>>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    store
        .append_batch(
            batch,
            Done::Test(Box::new(move |r| {
                let _ = tx.send(r);
            })),
        )
        .expect("append");
    rx.await.expect("completion").expect("flushed");
}

/// Every live entry, as (log id, payload).
async fn all(store: &mut Store) -> Vec<(LogId<u64>, String)> {
    store
        .try_get_log_entries(..)
        .await
        .expect("read")
        .into_iter()
        .map(|e| {
            let d = match e.payload {
                EntryPayload::Normal(d) => d,
                _ => String::new(),
            };
            (e.log_id, d)
        })
        .collect()
}

async fn last(store: &mut Store) -> (Option<LogId<u64>>, Option<LogId<u64>>) {
    let st = store.get_log_state().await.expect("log state");
    (st.last_purged_log_id, st.last_log_id)
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .expect("list")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

/// How many whole records `bytes` starts with, and where they end.
fn records_in(bytes: &[u8]) -> (usize, usize) {
    let (mut n, mut end) = (0, 0);
    while let Ok((_, len)) = super::record::parse(&bytes[end..]) {
        end += len;
        n += 1;
    }
    (n, end)
}

fn seg_name(first: u64) -> String {
    format!("{first:020}.seg")
}
