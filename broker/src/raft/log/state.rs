//! The in-memory view of one log: segments and their record offsets, the
//! leader id of every index (run-length encoded), and a bounded cache of
//! the newest entries. Every change here is made at once, when openraft
//! calls; the matching file work is described by the returned values and
//! carried out, in order, by the writer.

use std::collections::VecDeque;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::{CommittedLeaderId, Entry, LogId, RaftTypeConfig, Vote};

use super::segment::{self, Segment};

/// One entry in the cache, with its record size and the append batch that
/// wrote it (an entry is only evicted once its batch is on disk).
struct Cached<C: RaftTypeConfig> {
    entry: Entry<C>,
    size: u32,
    seq: u64,
}

/// Bytes of one append batch destined for one segment.
pub(super) struct SegWrite {
    pub file: Arc<File>,
    pub offset: u64,
    /// Range in the batch's encoded bytes.
    pub range: Range<usize>,
    /// The segment file is new: the directory must be fsynced too.
    pub created: bool,
}

/// The file work of a truncation: delete these segments (newest first),
/// then cut the last remaining one.
pub(super) struct Truncation {
    pub delete: Vec<PathBuf>,
    pub cut: Option<(Arc<File>, u64)>,
}

/// The file work of a purge: persist the purged log id, then delete these
/// segments (oldest first).
pub(super) struct Purge {
    pub purged: LogId<u64>,
    pub delete: Vec<PathBuf>,
}

/// Records to read from one segment file: `count` entries from index
/// `first`, in bytes `[offset, offset + len)`.
pub(super) struct FileRead {
    pub file: Arc<File>,
    pub path: PathBuf,
    pub first: u64,
    pub count: u64,
    pub offset: u64,
    pub len: u64,
}

pub(super) struct State<C: RaftTypeConfig> {
    segments: VecDeque<Segment>,
    /// `(first index, leader id)` for every run of entries with the same
    /// leader id, covering at least the live entries.
    leaders: VecDeque<(u64, CommittedLeaderId<u64>)>,
    pub purged: Option<LogId<u64>>,
    pub vote: Option<Vote<u64>>,
    pub committed: Option<LogId<u64>>,
    /// The newest entries, contiguous and ending at the last entry; always
    /// holds every entry not yet known to be on disk.
    cache: VecDeque<Cached<C>>,
    cache_first: u64,
    cache_bytes: usize,
    cache_cap: usize,
    /// Sequence number of the last append batch queued, and of the last one
    /// fsynced.
    appended_seq: u64,
    synced_seq: u64,
}

impl<C> State<C>
where
    C: RaftTypeConfig<NodeId = u64, Entry = Entry<C>>,
{
    /// A state over recovered segments (each with at least one record, the
    /// newest holding a live entry) and their leader runs.
    pub fn new(
        segments: VecDeque<Segment>,
        leaders: VecDeque<(u64, CommittedLeaderId<u64>)>,
        purged: Option<LogId<u64>>,
        cache_cap: usize,
    ) -> Self {
        State {
            segments,
            leaders,
            purged,
            vote: None,
            committed: None,
            cache: VecDeque::new(),
            cache_first: 0,
            cache_bytes: 0,
            cache_cap,
            appended_seq: 0,
            synced_seq: 0,
        }
    }

    /// `[first, next)`: the indexes of the live (not purged) entries.
    pub fn live(&self) -> Option<(u64, u64)> {
        let next = self.segments.back()?.next_index();
        let first = self
            .segments
            .front()?
            .first
            .max(self.purged.map_or(0, |p| p.index + 1));
        (first < next).then_some((first, next))
    }

    /// Bytes on disk (or being written) of the records after `index`
    /// (all of them for `None`).
    pub fn bytes_after(&self, index: Option<u64>) -> u64 {
        let from = index.map_or(0, |i| i + 1);
        self.segments
            .iter()
            .filter(|seg| seg.next_index() > from)
            .map(|seg| {
                let (start, end) = seg.span(from.max(seg.first), seg.next_index());
                end - start
            })
            .sum()
    }

    pub fn last_log_id(&self) -> Option<LogId<u64>> {
        match self.live() {
            Some((_, next)) => Some(self.log_id_at(next - 1)),
            None => self.purged,
        }
    }

    /// The log id of the entry at `index`, which must be live.
    fn log_id_at(&self, index: u64) -> LogId<u64> {
        let run = self.leaders.partition_point(|(first, _)| *first <= index);
        let leader_id = match run.checked_sub(1).and_then(|r| self.leaders.get(r)) {
            Some((_, id)) => *id,
            None => CommittedLeaderId::default(),
        };
        LogId { leader_id, index }
    }

    /// Adds a batch of encoded entries (`recs[k].1` is entry k's record
    /// size) at the end of the log, rolling to a new segment before a record
    /// that would take the current one past `segment_bytes`. Returns where
    /// the batch's bytes go and the batch's sequence number. An error after
    /// a change leaves the state unusable; the caller fails the store.
    pub fn append(
        &mut self,
        log_dir: &Path,
        segment_bytes: u64,
        recs: Vec<(Entry<C>, u32)>,
    ) -> anyhow::Result<(Vec<SegWrite>, u64)> {
        let mut expected = self.live().map(|(_, next)| next);
        anyhow::ensure!(
            expected.is_some() || self.segments.is_empty(),
            "internal error: segments left in an empty log"
        );
        // Into an empty log, entries already covered by the purge (a
        // snapshot) are dropped: they would be hidden at once anyway.
        let hidden = match (expected, self.purged) {
            (None, Some(p)) => p.index + 1,
            _ => 0,
        };
        let seq = self.appended_seq + 1;
        let mut writes: Vec<SegWrite> = Vec::with_capacity(1);
        let mut pos = 0usize;
        for (entry, size) in recs {
            let id = entry.log_id;
            if let Some(want) = expected {
                anyhow::ensure!(
                    id.index == want,
                    "append of index {} where {want} is next",
                    id.index
                );
            }
            expected = Some(id.index + 1);
            let range = pos..pos + size as usize;
            pos = range.end;
            if id.index < hidden {
                continue;
            }
            let roll = match self.segments.back() {
                None => true,
                Some(s) => s.end > 0 && s.end + u64::from(size) > segment_bytes,
            };
            if roll {
                self.segments.push_back(segment::create(log_dir, id.index)?);
            }
            let Some(seg) = self.segments.back_mut() else {
                anyhow::bail!("no segment to append to");
            };
            let offset = seg.end;
            let at = u32::try_from(offset)
                .map_err(|_| anyhow::anyhow!("segment {} past 4 GiB", seg.path.display()))?;
            seg.offsets.push(at);
            seg.end += u64::from(size);
            match writes.last_mut() {
                Some(w) if !roll && w.range.end == range.start => w.range.end = range.end,
                _ => writes.push(SegWrite {
                    file: seg.file.clone(),
                    offset,
                    range,
                    created: roll,
                }),
            }
            if self.leaders.back().is_none_or(|(_, l)| *l != id.leader_id) {
                self.leaders.push_back((id.index, id.leader_id));
            }
            if self.cache.is_empty() {
                self.cache_first = id.index;
            }
            self.cache_bytes += size as usize;
            self.cache.push_back(Cached { entry, size, seq });
        }
        self.appended_seq = seq;
        Ok((writes, seq))
    }

    /// Records that the append batches up to `seq` are fsynced, letting the
    /// cache give up their entries.
    pub fn synced(&mut self, seq: u64) {
        self.synced_seq = self.synced_seq.max(seq);
        while self.cache_bytes > self.cache_cap {
            match self.cache.front() {
                Some(c) if c.seq <= self.synced_seq => {
                    self.cache_bytes -= c.size as usize;
                    self.cache.pop_front();
                    self.cache_first += 1;
                }
                _ => break,
            }
        }
    }

    /// Removes the entries from `index` on. `None` when there are none.
    pub fn truncate(&mut self, index: u64) -> Option<Truncation> {
        let next = self.segments.back()?.next_index();
        if index >= next {
            return None;
        }
        let mut delete = Vec::new();
        while let Some(s) = self.segments.pop_back() {
            if s.first < index {
                self.segments.push_back(s);
                break;
            }
            delete.push(s.path);
        }
        let mut cut = None;
        if let Some(s) = self.segments.back_mut() {
            let keep = (index - s.first) as usize;
            if let Some(len) = s.offsets.get(keep).copied() {
                s.offsets.truncate(keep);
                s.end = u64::from(len);
                cut = Some((s.file.clone(), s.end));
            }
        }
        if self.live().is_none() {
            // What is left is purged: drop those files as well.
            delete.extend(self.segments.drain(..).rev().map(|s| s.path));
            cut = None;
            self.leaders.clear();
        } else {
            while self
                .leaders
                .back()
                .is_some_and(|(first, _)| *first >= index)
            {
                self.leaders.pop_back();
            }
        }
        while self.cache_first + self.cache.len() as u64 > index {
            match self.cache.pop_back() {
                Some(c) => self.cache_bytes -= c.size as usize,
                None => break,
            }
        }
        Some(Truncation { delete, cut })
    }

    /// Hides the entries up to `upto` and drops the segments holding only
    /// those. `None` when `upto` is not past the last purge.
    pub fn purge(&mut self, upto: LogId<u64>) -> Option<Purge> {
        if self.purged.is_some_and(|p| p.index >= upto.index) {
            return None;
        }
        self.purged = Some(upto);
        let mut delete = Vec::new();
        while let Some(s) = self.segments.pop_front() {
            if s.next_index() > upto.index + 1 {
                self.segments.push_front(s);
                break;
            }
            delete.push(s.path);
        }
        if self.segments.is_empty() {
            self.leaders.clear();
        }
        while self
            .leaders
            .get(1)
            .is_some_and(|(first, _)| *first <= upto.index + 1)
        {
            self.leaders.pop_front();
        }
        while !self.cache.is_empty() && self.cache_first <= upto.index {
            if let Some(c) = self.cache.pop_front() {
                self.cache_bytes -= c.size as usize;
            }
            self.cache_first += 1;
        }
        Some(Purge {
            purged: upto,
            delete,
        })
    }

    /// What to read for the live entries in `[start, end)`: file spans for
    /// the older ones, clones of the cached newer ones. Stops before the
    /// bytes read would pass `limit`, but returns at least one entry.
    pub fn plan_read(&self, start: u64, end: u64, limit: usize) -> (Vec<FileRead>, Vec<Entry<C>>)
    where
        C::D: Clone,
    {
        let mut files = Vec::new();
        let mut cached = Vec::new();
        let Some((first, next)) = self.live() else {
            return (files, cached);
        };
        let (lo, hi) = (start.max(first), end.min(next));
        let cache_start = if self.cache.is_empty() {
            hi
        } else {
            self.cache_first.min(hi)
        };
        let mut budget = Budget {
            limit,
            used: 0,
            taken: 0,
        };
        let mut i = lo;
        while i < cache_start {
            let s = self.segments.partition_point(|s| s.first <= i);
            let Some(seg) = s.checked_sub(1).and_then(|s| self.segments.get(s)) else {
                break;
            };
            let to = cache_start.min(seg.next_index());
            let mut j = i;
            while j < to {
                let (a, b) = seg.span(j, j + 1);
                if !budget.take(b - a) {
                    break;
                }
                j += 1;
            }
            if j > i {
                let (offset, stop) = seg.span(i, j);
                files.push(FileRead {
                    file: seg.file.clone(),
                    path: seg.path.clone(),
                    first: i,
                    count: j - i,
                    offset,
                    len: stop - offset,
                });
            }
            if j < to || j == i {
                return (files, cached);
            }
            i = j;
        }
        for idx in i.max(cache_start)..hi {
            let Some(c) = self.cache.get((idx - self.cache_first) as usize) else {
                break;
            };
            if !budget.take(u64::from(c.size)) {
                break;
            }
            cached.push(c.entry.clone());
        }
        (files, cached)
    }
}

/// A byte budget for one read.
struct Budget {
    limit: usize,
    used: u64,
    taken: u64,
}

impl Budget {
    /// Whether one more record of `size` bytes fits (the first always does).
    fn take(&mut self, size: u64) -> bool {
        if self.taken > 0 && self.used + size > self.limit as u64 {
            return false;
        }
        self.used += size;
        self.taken += 1;
        true
    }
}
