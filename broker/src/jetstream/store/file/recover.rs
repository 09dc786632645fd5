//! Opening a store directory after a clean shutdown or a crash.
//!
//! Blocks are read in id order. The last block is always scanned record by
//! record: the first record that is torn (short, garbage length), fails its
//! checksum or breaks the sequence order ends the valid data, and the file
//! is truncated there (that tail was never synced, so never acknowledged),
//! and delete-log ranges past the cut are dropped (the next messages reuse
//! those sequences in that block).
//! Sealed blocks use their index file when it matches the block and the
//! block has no deletes; otherwise they are scanned too and the index is
//! rewritten. Delete logs and the floor are applied, blocks left without
//! live messages are removed, and files without a block are cleaned up.
//! Last, a truncate that a crash interrupted is finished (see `truncate`).

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use parking_lot::Mutex;

use super::active::ActiveBlock;
use super::block::{block_path, dlog_path, index_path, Block, BloomKey, DeleteBits, BLOCK_MAGIC};
use super::dlog::{clip_dlog, read_dlog, read_floor, truncate_dlog};
use super::index::{IndexData, SubjectSummary};
use super::read::BlockCache;
use super::record::{self, RecordHeader};
use super::scan::{Next, Records};
use super::truncate::read_journal;
use super::{remove_file_if_exists, FileStore, FileStoreConfig, Summaries};
use crate::jetstream::store::removed::RemovedLog;
use crate::jetstream::store::subjects::SubjectIndex;
use crate::jetstream::store::{StoreError, StoreLimits};

/// The result of scanning a block file.
pub(crate) struct BlockScan {
    /// Bytes of valid records (from the start of the file).
    pub valid_len: u64,
    /// Index data for all valid records.
    pub index: IndexData,
    /// Live (not deleted) messages: per-subject summary, count, bytes.
    pub live: Summaries,
    pub live_msgs: u64,
    pub live_bytes: u64,
}

/// Scans a block file, checking framing, checksums and that sequences are
/// contiguous and above `prev_last`. Stops at the first bad record.
pub(crate) fn scan_block_file(
    file: &File,
    path: &Path,
    len: u64,
    prev_last: u64,
) -> Result<BlockScan, StoreError> {
    scan_with_deletes(file, path, len, prev_last, &|_| false)
}

fn scan_with_deletes(
    file: &File,
    path: &Path,
    len: u64,
    prev_last: u64,
    is_deleted: &dyn Fn(u64) -> bool,
) -> Result<BlockScan, StoreError> {
    let mut scan = BlockScan {
        valid_len: 0,
        index: IndexData::default(),
        live: Default::default(),
        live_msgs: 0,
        live_bytes: 0,
    };
    let magic_len = BLOCK_MAGIC.len() as u64;
    if len < magic_len {
        return Ok(scan);
    }
    let mut magic = [0u8; 8];
    file.read_exact_at(&mut magic, 0)
        .map_err(|e| StoreError::io("read block", path, e))?;
    if &magic != BLOCK_MAGIC {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            offset: 0,
            reason: "not a block file (bad magic)".into(),
        });
    }
    scan.valid_len = magic_len;
    let mut expect: Option<u64> = None;
    let mut recs = Records::new(file, magic_len, len);
    loop {
        let next = recs
            .next()
            .map_err(|e| StoreError::io("read block", path, e))?;
        let (off, h, rec) = match next {
            Next::Record(off, h, rec) => (off, h, rec),
            Next::End => break,
            Next::Malformed(off) => {
                tracing::warn!(path = %path.display(), offset = off, "torn or garbage record");
                break;
            }
        };
        let in_order = match expect {
            Some(e) => h.seq == e,
            None => h.seq > prev_last,
        };
        if !in_order || !record::checksum_ok(rec) {
            tracing::warn!(path = %path.display(), offset = off, seq = h.seq,
                in_order, "record fails its checksum or sequence order");
            break;
        }
        let Ok(subject) = std::str::from_utf8(h.subject(rec)) else {
            tracing::warn!(path = %path.display(), offset = off, "subject is not UTF-8");
            break;
        };
        add_record(&mut scan, off, &h, subject, is_deleted(h.seq));
        expect = Some(h.seq + 1);
        scan.valid_len = off + h.len as u64;
    }
    Ok(scan)
}

fn add_record(scan: &mut BlockScan, off: u64, h: &RecordHeader, subject: &str, deleted: bool) {
    let idx = &mut scan.index;
    if idx.offsets.is_empty() {
        idx.first_seq = h.seq;
        idx.first_ts = h.ts;
    }
    idx.offsets.push(off as u32);
    idx.last_ts = h.ts;
    idx.bytes += h.nats_size();
    idx.bloom.insert(BloomKey::new(subject.as_bytes()));
    bump(&mut idx.subjects, subject, h.seq);
    if !deleted {
        scan.live_msgs += 1;
        scan.live_bytes += h.nats_size();
        bump(&mut scan.live, subject, h.seq);
    }
}

fn bump(map: &mut Summaries, subject: &str, seq: u64) {
    match map.get_mut(subject) {
        Some(s) => {
            s.count += 1;
            s.last = seq;
        }
        None => {
            map.insert(
                subject.to_owned(),
                SubjectSummary {
                    count: 1,
                    first: seq,
                    last: seq,
                },
            );
        }
    }
}

/// Sorted, merged removal ranges of one block plus the floor.
struct Removals {
    ranges: Vec<(u64, u64)>,
    floor: u64,
}

impl Removals {
    fn contains(&self, seq: u64) -> bool {
        if seq < self.floor {
            return true;
        }
        let i = self.ranges.partition_point(|r| r.1 < seq);
        self.ranges.get(i).is_some_and(|r| r.0 <= seq)
    }
    fn touches(&self, first: u64, last: u64) -> bool {
        first < self.floor || {
            let i = self.ranges.partition_point(|r| r.1 < first);
            self.ranges.get(i).is_some_and(|r| r.0 <= last)
        }
    }
}

/// Reads the index of a sealed block if it is usable as is: it matches the
/// block file and no removal touches the block.
fn usable_index(
    file: &File,
    dir: &Path,
    id: u64,
    len: u64,
    prev_last: u64,
    removals: &Removals,
) -> Option<IndexData> {
    let idx = IndexData::read(&index_path(dir, id), len)?;
    let last = idx.first_seq + idx.offsets.len() as u64 - 1;
    if idx.first_seq <= prev_last || removals.touches(idx.first_seq, last) {
        return None;
    }
    let mut head = [0u8; record::HEADER_LEN];
    file.read_exact_at(&mut head, *idx.offsets.first()? as u64)
        .ok()?;
    let h = RecordHeader::parse(&head)?;
    (h.seq == idx.first_seq).then_some(idx)
}

/// Kinds of files in a store directory, by block id.
#[derive(Default)]
struct Listing {
    blocks: BTreeSet<u64>,
    others: BTreeSet<u64>,
}

fn list(dir: &Path) -> Result<Listing, StoreError> {
    let mut out = Listing::default();
    let rd = std::fs::read_dir(dir).map_err(|e| StoreError::io("list directory", dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| StoreError::io("list directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            remove_file_if_exists(&entry.path())?;
            continue;
        }
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        let Ok(id) = stem.parse::<u64>() else {
            continue;
        };
        match ext {
            "blk" => {
                out.blocks.insert(id);
            }
            "idx" | "dlog" => {
                out.others.insert(id);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Recovers the store in `dir` (limits are applied by the caller).
pub(super) fn open(dir: &Path, cfg: FileStoreConfig) -> Result<FileStore, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create directory", dir, e))?;
    let dir_file = File::open(dir).map_err(|e| StoreError::io("open directory", dir, e))?;
    let listing = list(dir)?;
    let floor = read_floor(dir)?;
    let floor_seq = floor.map_or(0, |f| f.seq);

    let mut blocks: Vec<Block> = Vec::new();
    let mut subjects = SubjectIndex::default();
    let mut active: Option<ActiveBlock> = None;
    let mut prev_last = 0;
    let mut dead: Vec<u64> = Vec::new();
    let ids: Vec<u64> = listing.blocks.iter().copied().collect();
    for (i, &id) in ids.iter().enumerate() {
        let is_last = i + 1 == ids.len();
        let path = block_path(dir, id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io("open block", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StoreError::io("stat block", &path, e))?
            .len();
        let dpath = dlog_path(dir, id);
        let (mut ranges, dvalid) = read_dlog(&dpath)?;
        if dpath.exists() && std::fs::metadata(&dpath).map(|m| m.len()).unwrap_or(0) != dvalid {
            tracing::warn!(path = %dpath.display(), "truncating torn delete log");
            truncate_dlog(&dpath, dvalid)?;
        }
        ranges.sort_unstable();
        let removals = Removals {
            ranges: merge(ranges),
            floor: floor_seq,
        };

        let from_index = if is_last {
            None
        } else {
            usable_index(&file, dir, id, len, prev_last, &removals)
        };
        let (index, valid_len, live, live_msgs, live_bytes) = match from_index {
            Some(idx) => {
                let live = idx.subjects.clone();
                let n = idx.offsets.len() as u64;
                let bytes = idx.bytes;
                (idx, len, live, n, bytes)
            }
            None => {
                let scan =
                    scan_with_deletes(&file, &path, len, prev_last, &|s| removals.contains(s))?;
                if scan.valid_len < len {
                    if is_last {
                        tracing::warn!(path = %path.display(), valid = scan.valid_len, len,
                            "truncating torn tail of the last block");
                        file.set_len(scan.valid_len)
                            .and_then(|_| file.sync_all())
                            .map_err(|e| StoreError::io("truncate block", &path, e))?;
                    } else if scan.index.offsets.is_empty() {
                        return Err(StoreError::Corrupt {
                            path,
                            offset: scan.valid_len,
                            reason: "sealed block has no valid record".into(),
                        });
                    } else {
                        tracing::error!(path = %path.display(), valid = scan.valid_len, len,
                            "corrupt records in a sealed block; ignoring the rest of it");
                    }
                }
                if !is_last && !scan.index.offsets.is_empty() {
                    let ipath = index_path(dir, id);
                    let mut idx = scan.index;
                    idx.block_len = scan.valid_len;
                    if let Err(e) = idx.write(&ipath) {
                        tracing::warn!(path = %ipath.display(), error = %e, "writing block index failed");
                    }
                    (
                        idx,
                        scan.valid_len,
                        scan.live,
                        scan.live_msgs,
                        scan.live_bytes,
                    )
                } else {
                    let mut idx = scan.index;
                    idx.block_len = scan.valid_len;
                    (
                        idx,
                        scan.valid_len,
                        scan.live,
                        scan.live_msgs,
                        scan.live_bytes,
                    )
                }
            }
        };
        if index.offsets.is_empty() {
            // A block that never got a complete record (crash right after
            // it was created).
            dead.push(id);
            continue;
        }
        let first = index.first_seq;
        let last = first + index.offsets.len() as u64 - 1;
        if is_last && removals.ranges.last().is_some_and(|r| r.1 > last) {
            // The tail was cut (torn or damaged records): removals logged
            // for the records that went would hit the new messages that
            // reuse their sequences in this block. The directory is fsynced
            // below.
            tracing::warn!(path = %dpath.display(), last,
                "dropping delete-log ranges above the last block's end");
            clip_dlog(&dpath, last)?;
        }
        let mut deleted = DeleteBits::default();
        for s in first..=last.min(floor_seq.saturating_sub(1)) {
            deleted.insert(s - first);
        }
        for &(a, b) in &removals.ranges {
            for s in a.max(first)..=b.min(last) {
                deleted.insert(s - first);
            }
        }
        for (s, sum) in &live {
            subjects.merge(s, sum.count, sum.first, sum.last);
        }
        prev_last = last;
        let block = Block {
            id,
            first,
            last,
            len: valid_len,
            first_ts: index.first_ts,
            last_ts: index.last_ts,
            msgs: live_msgs,
            bytes: live_bytes,
            deleted,
            bloom: index.bloom.clone(),
        };
        if is_last {
            active = Some(ActiveBlock {
                id,
                path,
                file,
                flushed: valid_len,
                pending: Vec::new(),
                offsets: index.offsets,
                subjects: index.subjects,
                bytes_all: index.bytes,
                dirty: false,
            });
        }
        blocks.push(block);
    }

    // Blocks without live messages go, except the last one with records (it
    // remembers the last sequence).
    let keep_last = blocks.len().saturating_sub(1);
    let mut emptied = Vec::new();
    let mut i = 0;
    blocks.retain(|b| {
        let keep = b.msgs > 0 || i == keep_last;
        i += 1;
        if !keep {
            emptied.push(b.id);
        }
        keep
    });
    if active
        .as_ref()
        .is_some_and(|a| blocks.last().is_none_or(|b| b.id != a.id))
    {
        active = None;
    }
    for id in dead.iter().chain(&emptied) {
        remove_file_if_exists(&block_path(dir, *id))?;
        remove_file_if_exists(&index_path(dir, *id))?;
    }
    dir_file
        .sync_all()
        .map_err(|e| StoreError::io("fsync directory", dir, e))?;
    for id in dead.iter().chain(&emptied) {
        remove_file_if_exists(&dlog_path(dir, *id))?;
    }
    for id in listing.others.difference(&listing.blocks) {
        remove_file_if_exists(&index_path(dir, *id))?;
        remove_file_if_exists(&dlog_path(dir, *id))?;
    }

    let next_block_id = listing
        .blocks
        .iter()
        .chain(&listing.others)
        .max()
        .map_or(1, |m| m + 1);
    let msgs = blocks.iter().map(|b| b.msgs).sum();
    let bytes = blocks.iter().map(|b| b.bytes).sum();
    let block_last = blocks.last().map(|b| (b.last, b.last_ts));
    let (last_seq, last_ts) = match (block_last, floor) {
        (Some((l, _)), Some(f)) if l < f.last => (f.last, f.last_ts),
        (Some(x), _) => x,
        (None, Some(f)) => (f.last, f.last_ts),
        (None, None) => (0, 0),
    };
    if block_last.is_some_and(|(l, _)| l != last_seq) {
        // The next message cannot go into the last block: sequences inside
        // a block are contiguous.
        active = None;
    }
    let mut store = FileStore {
        dir: dir.to_owned(),
        dir_file,
        cache: Mutex::new(BlockCache::new(cfg.cache_blocks)),
        cfg,
        limits: StoreLimits::default(),
        blocks,
        active,
        next_block_id,
        subjects,
        msgs,
        bytes,
        first_seq: 0,
        first_ts: 0,
        last_seq,
        last_ts,
        floor,
        dlog_pending: Default::default(),
        retired: Vec::new(),
        dir_dirty: false,
        removed: RemovedLog::default(),
        failed: None,
    };
    if store.last_seq > 0 || store.floor.is_some() {
        store.recompute_first();
    }
    if let Some(journal) = read_journal(dir)? {
        tracing::warn!(dir = %dir.display(), seq = journal.seq,
            "finishing a truncate interrupted by a crash");
        store.finish_truncate(journal)?;
    }
    tracing::debug!(dir = %dir.display(), blocks = store.blocks.len(), msgs = store.msgs,
        first = store.first_seq, last = store.last_seq, "file store opened");
    Ok(store)
}

fn merge(ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(p) if a <= p.1.saturating_add(1) => p.1 = p.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}
