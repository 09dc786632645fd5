//! The file store: a stream's messages in append-only block files.
//!
//! Directory layout (all names zero-padded block ids, in append order):
//!
//! * `NNNNNNNNNN.blk` — a block: 8 magic bytes, then records
//!   (see [`record`]: length, sequence, time, subject, headers, payload and a
//!   CRC-32 over all of it). A block is appended to until it would exceed
//!   `block_size`, then sealed (fsynced, index written) and never written
//!   again. Sequences inside a block are contiguous.
//! * `NNNNNNNNNN.idx` — derived index of a sealed block ([`index`]): offsets,
//!   subject bloom filter, subject summary. Rebuilt from the block whenever
//!   it is missing or does not match.
//! * `NNNNNNNNNN.dlog` — the block's delete log ([`dlog`]): removed ranges.
//! * `floor` — "everything below N is gone" plus the last sequence/time,
//!   written atomically by purges so they survive restarts even when every
//!   block is deleted (and by truncates that need it, see [`truncate`], and
//!   by the `sync` after a skip past the last block, see [`skip`]).
//! * `truncate` — the journal of a truncate under way, present only while
//!   one runs (or was interrupted by a crash: opening finishes it).
//!
//! Durability: `store_msg` only buffers; `sync` writes and fsyncs the active
//! block, appends and fsyncs the delete logs touched, and fsyncs the
//! directory when files were created or removed. Sealing a block fsyncs it.
//! Recovery ([`recover`]) truncates a torn tail of the last block and drops
//! any record that fails its checksum or sequence order, so every record that
//! was synced before a crash comes back, in order.
//!
//! Memory: per block only its metadata ([`block::Block`], a few hundred bytes,
//! plus one bit per message for blocks with deletes). Offsets of sealed
//! blocks are read from their index files into a small LRU cache
//! (`cache_blocks` entries). The per-subject map is in RAM, as in nats-server.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::removed::RemovedLog;
use super::subjects::SubjectIndex;
use super::{
    check_subject, filter_is_all, MsgStore, StoreError, StoreLimits, StoreState, StoredMsg,
};

mod active;
mod block;
mod dlog;
mod index;
mod query;
mod read;
mod record;
mod recover;
mod remove;
mod scan;
mod skip;
mod truncate;

use active::ActiveBlock;
use block::{index_path, Block, BloomKey};
use dlog::Floor;
use read::BlockCache;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod truncate_tests;

/// Tuning for a [`FileStore`].
#[derive(Clone, Debug, PartialEq)]
pub struct FileStoreConfig {
    /// Target size of a block file; a block is sealed before a record would
    /// push it past this (a single larger record gets a block of its own).
    /// Between 1 KiB and 1 GiB.
    pub block_size: u64,
    /// How many sealed blocks' offset tables to keep loaded (LRU).
    pub cache_blocks: usize,
}

impl Default for FileStoreConfig {
    fn default() -> Self {
        FileStoreConfig {
            block_size: 8 * 1024 * 1024,
            cache_blocks: 16,
        }
    }
}

/// A stream's messages on disk. See the module docs for the format.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    /// The directory itself, kept open to fsync new and removed entries.
    dir_file: File,
    cfg: FileStoreConfig,
    limits: StoreLimits,
    /// All blocks with data, in sequence order; the last one may be active.
    blocks: Vec<Block>,
    /// Writer state of `blocks.last()`, if it is still being appended to.
    active: Option<ActiveBlock>,
    next_block_id: u64,
    subjects: SubjectIndex,
    msgs: u64,
    bytes: u64,
    first_seq: u64,
    first_ts: i64,
    last_seq: u64,
    last_ts: i64,
    floor: Option<Floor>,
    /// Removals not yet in the delete logs, by block id.
    dlog_pending: BTreeMap<u64, Vec<(u64, u64)>>,
    /// Blocks emptied by removals, unlinked at the next sync (after their
    /// delete logs are durable).
    retired: Vec<u64>,
    /// A file was created or removed since the directory was last fsynced.
    dir_dirty: bool,
    cache: Mutex<BlockCache>,
    removed: RemovedLog,
    /// Set when a write or fsync failed; the store then refuses changes.
    failed: Option<String>,
}

impl FileStore {
    /// Opens (creating if needed) the store in `dir`, recovering whatever a
    /// crash left behind, and applies `limits`.
    pub fn open(
        dir: &Path,
        limits: StoreLimits,
        cfg: FileStoreConfig,
    ) -> Result<FileStore, StoreError> {
        if !(1024..=(1 << 30)).contains(&cfg.block_size) {
            return Err(StoreError::Config(format!(
                "block_size {} is outside 1 KiB..1 GiB",
                cfg.block_size
            )));
        }
        if cfg.cache_blocks == 0 {
            return Err(StoreError::Config("cache_blocks must be at least 1".into()));
        }
        let mut store = recover::open(dir, cfg)?;
        store.update_limits(limits)?;
        Ok(store)
    }

    /// The directory holding this store's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of block files holding data.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// Number of sealed blocks whose offset table is loaded (bounded by
    /// `cache_blocks`; exposed so tests can check memory stays bounded).
    pub fn loaded_block_indexes(&self) -> usize {
        self.cache.lock().len()
    }

    /// Position in `blocks` of the block holding `seq`.
    fn block_index(&self, seq: u64) -> Option<usize> {
        let i = self.blocks.partition_point(|b| b.last < seq);
        (i < self.blocks.len() && self.blocks[i].holds(seq)).then_some(i)
    }

    fn is_active(&self, bi: usize) -> bool {
        bi + 1 == self.blocks.len()
            && self
                .active
                .as_ref()
                .is_some_and(|a| a.id == self.blocks[bi].id)
    }

    /// Seals the active block (fsync, index file) so the next append starts
    /// a new one.
    fn seal_active(&mut self) -> Result<(), StoreError> {
        let Some(mut active) = self.active.take() else {
            return Ok(());
        };
        active.sync()?;
        if let Some(block) = self.blocks.last() {
            if block.id == active.id && block.records() > 0 {
                let path = index_path(&self.dir, active.id);
                if let Err(e) = active.index_data(block).write(&path) {
                    // Derived data: the block is durable, the index gets
                    // rebuilt on first use.
                    tracing::warn!(path = %path.display(), error = %e, "writing block index failed");
                }
            }
        }
        Ok(())
    }

    /// Makes sure there is an active block with room for `rec_len` bytes.
    /// The active block must also end right before `seq` (sequences in a
    /// block are contiguous; a truncate into a gap can leave the last
    /// sequence beyond the last block, and so does a skip).
    fn ensure_room(&mut self, rec_len: u64, seq: u64) -> Result<(), StoreError> {
        if let (Some(a), Some(b)) = (&self.active, self.blocks.last()) {
            let fits = a.offsets.is_empty() || a.len() + rec_len <= self.cfg.block_size;
            if fits && b.id == a.id && b.last + 1 == seq {
                return Ok(());
            }
        }
        self.seal_active()?;
        let id = self.next_block_id;
        let active = ActiveBlock::create(&self.dir, id)?;
        self.next_block_id += 1;
        self.dir_dirty = true;
        self.blocks.push(Block::new(id, seq));
        self.active = Some(active);
        Ok(())
    }

    /// Records `ranges` of block `id` for its delete log, merging with the
    /// previous range when adjacent.
    fn log_removal(&mut self, id: u64, first: u64, last: u64) {
        let v = self.dlog_pending.entry(id).or_default();
        if let Some(prev) = v.last_mut() {
            if prev.1 + 1 == first {
                prev.1 = last;
                return;
            }
        }
        v.push((first, last));
    }

    fn state_snapshot(&self) -> StoreState {
        StoreState {
            msgs: self.msgs,
            bytes: self.bytes,
            first_seq: self.first_seq,
            first_ts: self.first_ts,
            last_seq: self.last_seq,
            last_ts: self.last_ts,
            num_deleted: if self.msgs > 0 {
                (self.last_seq - self.first_seq + 1).saturating_sub(self.msgs)
            } else {
                0
            },
            num_subjects: self.subjects.len() as u64,
        }
    }
}

impl MsgStore for FileStore {
    fn store_msg(
        &mut self,
        subject: &str,
        headers: &[u8],
        payload: &[u8],
        ts: i64,
    ) -> Result<u64, StoreError> {
        self.check_failed()?;
        check_subject(subject)?;
        self.limits.check_size(headers, payload)?;
        let rec_len = record::record_len(subject, headers, payload);
        if rec_len > record::MAX_RECORD {
            return Err(StoreError::MsgTooLarge {
                size: headers.len() + payload.len(),
                max: record::MAX_RECORD - record::OVERHEAD - subject.len(),
            });
        }
        let seq = self.last_seq + 1;
        if let Err(e) = self.ensure_room(rec_len as u64, seq) {
            self.failed = Some(e.to_string());
            return Err(e);
        }
        let (Some(active), Some(block)) = (self.active.as_mut(), self.blocks.last_mut()) else {
            return Err(StoreError::Config(
                "no active block after allocation".into(),
            ));
        };
        if let Err(e) = active.append(seq, ts, subject, headers, payload) {
            // The write buffer and the file may now disagree: fail-stop.
            self.failed = Some(e.to_string());
            return Err(e);
        }
        let size = super::file_store_msg_size(subject, headers, payload);
        if block.records() == 0 {
            block.first_ts = ts;
        }
        block.last = seq;
        block.last_ts = ts;
        block.len = active.len();
        block.msgs += 1;
        block.bytes += size;
        block.bloom.insert(BloomKey::new(subject.as_bytes()));
        if self.msgs == 0 {
            self.first_seq = seq;
            self.first_ts = ts;
        }
        self.msgs += 1;
        self.bytes += size;
        self.last_seq = seq;
        self.last_ts = ts;
        self.subjects.add(subject, seq);
        self.enforce_limits(Some(subject))?;
        Ok(seq)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.check_failed()?;
        let res = self.sync_inner();
        if let Err(e) = &res {
            // After a failed write or fsync the kernel may have dropped the
            // dirty pages, and a retried fsync would report success: stop
            // accepting writes instead of acknowledging data that is gone.
            tracing::error!(dir = %self.dir.display(), error = %e, "file store sync failed; store is now read-only");
            self.failed = Some(e.to_string());
        }
        res
    }

    fn load(&self, seq: u64) -> Result<Option<StoredMsg>, StoreError> {
        match self.block_index(seq) {
            Some(bi) if self.blocks[bi].is_live(seq) => self.load_record(bi, seq).map(Some),
            _ => Ok(None),
        }
    }

    fn load_next(&self, filter: &str, start: u64) -> Result<Option<StoredMsg>, StoreError> {
        let start = start.max(self.first_seq).max(1);
        if filter_is_all(filter) {
            let mut bi = self.blocks.partition_point(|b| b.last < start);
            while bi < self.blocks.len() {
                if let Some(seq) = self.blocks[bi].first_live_from(start) {
                    return self.load_record(bi, seq).map(Some);
                }
                bi += 1;
            }
            return Ok(None);
        }
        let mut found = None;
        self.scan_matching(filter, start, u64::MAX, |_, rec| {
            found = Some(bytes::Bytes::copy_from_slice(rec));
            std::ops::ControlFlow::Break(())
        })?;
        match found {
            Some(rec) => self.decode(rec).map(Some),
            None => Ok(None),
        }
    }

    fn load_last(&self, filter: &str) -> Result<Option<StoredMsg>, StoreError> {
        let seq = if filter_is_all(filter) {
            self.blocks
                .iter()
                .rev()
                .find(|b| b.msgs > 0)
                .and_then(|b| (b.first..=b.last).rev().find(|s| b.is_live(*s)))
        } else {
            self.subjects
                .matching(filter)
                .iter()
                .map(|(_, i)| i.last)
                .max()
        };
        match seq {
            Some(seq) => self.load(seq),
            None => Ok(None),
        }
    }

    fn remove(&mut self, seq: u64) -> Result<bool, StoreError> {
        self.check_failed()?;
        self.remove_one(seq, false)
    }

    fn purge(&mut self, filter: &str, seq: u64, keep: u64) -> Result<u64, StoreError> {
        self.check_failed()?;
        self.purge_ex(filter, seq, keep)
    }

    fn state(&self) -> StoreState {
        self.state_snapshot()
    }

    fn subjects_totals(&self, filter: &str) -> BTreeMap<String, u64> {
        self.subjects.totals(filter)
    }

    fn num_pending(&self, filter: &str, start: u64) -> u64 {
        self.count_pending(filter, start)
    }

    fn last_seq_for_subject(&self, subject: &str) -> u64 {
        self.subjects.get(subject).map_or(0, |i| i.last)
    }

    fn multi_last_seqs(
        &self,
        filters: &[String],
        up_to: u64,
        max: usize,
    ) -> Result<Vec<u64>, StoreError> {
        self.multi_last(filters, up_to, max)
    }

    fn seq_for_time(&self, ts: i64) -> u64 {
        self.find_seq_for_time(ts)
    }

    fn update_limits(&mut self, limits: StoreLimits) -> Result<(), StoreError> {
        self.limits = limits;
        self.enforce_limits(None)
    }

    fn expire(&mut self, now: i64) -> Result<u64, StoreError> {
        self.expire_before(now)
    }

    fn take_removed(&mut self) -> Vec<RangeInclusive<u64>> {
        self.removed.take()
    }

    fn truncate(&mut self, seq: u64) -> Result<(), StoreError> {
        self.truncate_to(seq)
    }

    fn skip_to(&mut self, seq: u64) -> Result<(), StoreError> {
        self.skip_to_seq(seq)
    }

    fn delete(mut self: Box<Self>) -> Result<(), StoreError> {
        let dir = self.dir.clone();
        // Nothing needs to be durable any more.
        self.active = None;
        self.dlog_pending.clear();
        self.retired.clear();
        self.dir_dirty = false;
        drop(self);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove store directory", &dir, e)),
        }
    }
}

impl FileStore {
    fn sync_inner(&mut self) -> Result<(), StoreError> {
        if let Some(a) = self.active.as_mut() {
            a.sync()?;
        }
        // An entry leaves the pending set only once durable; re-appending
        // after a partial failure is harmless (ranges are idempotent).
        while let Some((&id, ranges)) = self.dlog_pending.first_key_value() {
            if dlog::append_dlog(&block::dlog_path(&self.dir, id), ranges)? {
                self.dir_dirty = true;
            }
            self.dlog_pending.remove(&id);
        }
        self.persist_skipped_tail()?;
        if self.dir_dirty {
            self.sync_dir()?;
        }
        if !self.retired.is_empty() {
            // The delete logs saying "all gone" are durable: the block files
            // can go. Their delete logs go only once the unlinks are durable,
            // so a block can never reappear without its delete log.
            let retired = std::mem::take(&mut self.retired);
            for id in &retired {
                remove_file_if_exists(&block::block_path(&self.dir, *id))?;
                remove_file_if_exists(&index_path(&self.dir, *id))?;
            }
            self.sync_dir()?;
            for id in &retired {
                remove_file_if_exists(&block::dlog_path(&self.dir, *id))?;
            }
            self.dir_dirty = true;
        }
        Ok(())
    }

    /// Refuses changes once a write or fsync has failed.
    fn check_failed(&self) -> Result<(), StoreError> {
        match &self.failed {
            Some(reason) => Err(StoreError::Failed {
                path: self.dir.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn sync_dir(&mut self) -> Result<(), StoreError> {
        self.dir_file
            .sync_all()
            .map_err(|e| StoreError::io("fsync directory", &self.dir, e))?;
        self.dir_dirty = false;
        Ok(())
    }

    /// Live subjects of the records of block `bi` in `[from, to]`, with
    /// their sequences and sizes (for bulk removals).
    fn live_records(
        &self,
        bi: usize,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, String, u64)>, StoreError> {
        let mut out = Vec::new();
        let mut bad = None;
        let _ = self.scan_block(bi, from, to, |seq, h, rec| {
            match std::str::from_utf8(h.subject(rec)) {
                Ok(s) => out.push((seq, s.to_owned(), h.nats_size())),
                Err(_) => bad = Some(seq),
            }
            std::ops::ControlFlow::Continue(())
        })?;
        if let Some(seq) = bad {
            return Err(StoreError::CorruptMsg {
                path: block::block_path(&self.dir, self.blocks[bi].id),
                seq,
                reason: "subject is not UTF-8".into(),
            });
        }
        Ok(out)
    }
}

impl Drop for FileStore {
    /// A clean close makes everything durable; errors can only be logged.
    fn drop(&mut self) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.sync() {
            tracing::error!(dir = %self.dir.display(), error = %e, "syncing file store on close");
        }
    }
}

fn remove_file_if_exists(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove", path, e)),
    }
}

/// Subject summaries merged per subject (recovery helper).
type Summaries = super::SubjectMap<index::SubjectSummary>;
