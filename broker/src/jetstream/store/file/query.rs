//! Filtered queries. The per-subject map narrows a filter to a sequence
//! window (first/last of the matching subjects), and the per-block bloom
//! filters skip blocks that never held any of them, so a sparse subject on a
//! big stream reads only the blocks that may contain it.

use std::collections::HashSet;
use std::ops::ControlFlow;

use super::block::BloomKey;
use super::record::RecordHeader;
use super::FileStore;
use crate::jetstream::store::{filter_is_all, multi_last, StoreError, SubjectMap};

/// Beyond this many matching subjects, blocks are not bloom-checked (the
/// check would cost more than it saves).
const MAX_BLOOM_KEYS: usize = 32;

/// `filter_matches` on raw subject bytes.
fn matches(filter: &str, subject: &[u8]) -> bool {
    filter_is_all(filter) || crate::subject::matches(filter.as_bytes(), subject)
}

impl FileStore {
    /// Calls `f(seq, record)` for each live record with `start <= seq <=
    /// upper` whose subject matches `filter`, in order, until it breaks.
    pub(super) fn scan_matching(
        &self,
        filter: &str,
        start: u64,
        upper: u64,
        mut f: impl FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let (lo, hi, keys) = if filter_is_all(filter) {
            (start, upper, None)
        } else {
            let mut lo = u64::MAX;
            let mut hi = 0;
            let mut keys = Vec::new();
            for (subject, info) in self.subjects.matching(filter) {
                if info.last >= start {
                    lo = lo.min(info.first.max(start));
                    hi = hi.max(info.last);
                    keys.push(BloomKey::new(subject.as_bytes()));
                }
            }
            (
                lo,
                hi.min(upper),
                (keys.len() <= MAX_BLOOM_KEYS).then_some(keys),
            )
        };
        if lo > hi {
            return Ok(());
        }
        let mut bi = self.blocks.partition_point(|b| b.last < lo);
        while bi < self.blocks.len() && self.blocks[bi].first <= hi {
            let b = &self.blocks[bi];
            let skip = b.msgs == 0
                || keys
                    .as_ref()
                    .is_some_and(|k| !k.iter().any(|k| b.bloom.may_contain(*k)));
            if !skip {
                let flow = self.scan_block(bi, lo, hi, |seq, h, rec| {
                    if matches(filter, h.subject(rec)) {
                        f(seq, rec)
                    } else {
                        ControlFlow::Continue(())
                    }
                })?;
                if flow.is_break() {
                    return Ok(());
                }
            }
            bi += 1;
        }
        Ok(())
    }

    /// Sequences (at most `max`) of live messages matching `filter` in
    /// `[start, upper]`.
    pub(super) fn matching_seqs(
        &self,
        filter: &str,
        start: u64,
        upper: u64,
        max: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        self.scan_matching(filter, start, upper, |seq, _| {
            out.push(seq);
            if out.len() >= max {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(out)
    }

    /// The newest live message on `subject` below `before`.
    pub(super) fn find_prev_for_subject(
        &self,
        subject: &str,
        before: u64,
    ) -> Result<Option<u64>, StoreError> {
        let key = BloomKey::new(subject.as_bytes());
        let end = self.blocks.partition_point(|b| b.first < before);
        for bi in (0..end).rev() {
            let b = &self.blocks[bi];
            if b.msgs == 0 || !b.bloom.may_contain(key) {
                continue;
            }
            let mut found = None;
            let _ = self.scan_block(bi, b.first, before - 1, |seq, h, rec| {
                if h.subject(rec) == subject.as_bytes() {
                    found = Some(seq);
                }
                ControlFlow::Continue(())
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// The newest live sequence at or below `upto` of each of `subjects`,
    /// in one backward pass over the blocks (a truncate fixes the subjects'
    /// `last` with it). Every subject must have one: the caller asks only
    /// for subjects the subject map says keep messages there.
    pub(super) fn newest_per_subject(
        &self,
        subjects: Vec<String>,
        upto: u64,
    ) -> Result<SubjectMap<u64>, StoreError> {
        let wanted: Vec<(String, BloomKey)> = subjects
            .into_iter()
            .map(|s| {
                let key = BloomKey::new(s.as_bytes());
                (s, key)
            })
            .collect();
        let n = wanted.len();
        let names: Vec<String> = wanted.iter().map(|(s, _)| s.clone()).collect();
        let found = self.walk_newest(wanted.into_iter().collect(), upto, 0)?;
        if found.len() < n {
            let missing = names.iter().find(|s| !found.contains_key(s.as_str()));
            return Err(StoreError::Corrupt {
                path: self.dir.clone(),
                offset: 0,
                reason: format!(
                    "subject {} should have a message at or below {upto}",
                    missing.map_or("?", String::as_str)
                ),
            });
        }
        Ok(found)
    }

    /// The newest live sequence at or below `upto` of each `wanted` subject
    /// that has one, walking the blocks backward from `upto` and stopping
    /// once every subject is found or the blocks end below `floor` (a lower
    /// bound of the subjects' first sequences). Blocks whose bloom filter
    /// rules out every subject still wanted are not read.
    fn walk_newest(
        &self,
        mut wanted: SubjectMap<BloomKey>,
        upto: u64,
        floor: u64,
    ) -> Result<SubjectMap<u64>, StoreError> {
        let mut found: SubjectMap<u64> = SubjectMap::default();
        let end = self.blocks.partition_point(|b| b.first <= upto);
        for bi in (0..end).rev() {
            let b = &self.blocks[bi];
            if wanted.is_empty() || b.last < floor {
                break;
            }
            let skip = b.msgs == 0
                || wanted.len() <= MAX_BLOOM_KEYS
                    && !wanted.values().any(|k| b.bloom.may_contain(*k));
            if skip {
                continue;
            }
            let mut in_block: SubjectMap<u64> = SubjectMap::default();
            let _ = self.scan_block(bi, b.first.max(floor), upto, |seq, h, rec| {
                if let Ok(s) = std::str::from_utf8(h.subject(rec)) {
                    if wanted.contains_key(s) {
                        match in_block.get_mut(s) {
                            Some(v) => *v = seq,
                            None => {
                                in_block.insert(s.to_owned(), seq);
                            }
                        }
                    }
                }
                ControlFlow::Continue(())
            })?;
            for (s, seq) in in_block {
                wanted.remove(&s);
                found.insert(s, seq);
            }
        }
        Ok(found)
    }

    /// [`crate::jetstream::store::MsgStore::multi_last_seqs`]: the index
    /// answers most subjects; the rest are found in one backward walk from
    /// `up_to` (see [`Self::walk_newest`]).
    pub(super) fn multi_last(
        &self,
        filters: &[String],
        up_to: u64,
        max: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let plan = multi_last::plan(&self.subjects, filters, up_to, max)?;
        let Some(floor) = plan.walk_floor() else {
            return multi_last::finish(plan.found, [], max);
        };
        let wanted: SubjectMap<BloomKey> = plan
            .pending
            .iter()
            .map(|(s, _)| ((*s).to_owned(), BloomKey::new(s.as_bytes())))
            .collect();
        let walked = self.walk_newest(wanted, up_to, floor)?;
        multi_last::finish(plan.found, walked.into_values(), max)
    }

    pub(super) fn count_pending(&self, filter: &str, start: u64) -> u64 {
        if filter_is_all(filter) {
            if start <= self.first_seq {
                return self.msgs;
            }
            let bi = self.blocks.partition_point(|b| b.last < start);
            return self.blocks[bi..].iter().map(|b| b.live_from(start)).sum();
        }
        let mut total = 0;
        let mut straddling: HashSet<&str> = HashSet::new();
        let mut lo = u64::MAX;
        for (subject, info) in self.subjects.matching(filter) {
            if info.last < start {
                continue;
            }
            if info.first >= start {
                total += info.count;
            } else {
                straddling.insert(subject);
                lo = lo.min(info.first);
            }
        }
        if straddling.is_empty() {
            return total;
        }
        // Subjects with messages on both sides of `start`: count the ones
        // before it (they are usually fewer than the ones after).
        let mut before = 0u64;
        let mut before_counts: u64 = 0;
        for s in &straddling {
            before_counts += self.subjects.get(s).map_or(0, |i| i.count);
        }
        let res = self.scan_matching(filter, lo, start - 1, |_, rec| {
            if let Some(h) = RecordHeader::parse(rec) {
                if let Ok(s) = std::str::from_utf8(h.subject(rec)) {
                    if straddling.contains(s) {
                        before += 1;
                    }
                }
            }
            ControlFlow::Continue(())
        });
        if let Err(e) = res {
            tracing::error!(dir = %self.dir.display(), error = %e, "counting pending messages");
        }
        total + before_counts.saturating_sub(before)
    }

    pub(super) fn find_seq_for_time(&self, ts: i64) -> u64 {
        if self.msgs == 0 {
            return self.last_seq + 1;
        }
        if ts <= self.first_ts {
            return self.first_seq;
        }
        let mut bi = self.blocks.partition_point(|b| b.last_ts < ts);
        while bi < self.blocks.len() {
            let b = &self.blocks[bi];
            let mut found = None;
            let res = self.scan_block(bi, b.first, b.last, |seq, h, _| {
                if h.ts >= ts {
                    found = Some(seq);
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            if let Err(e) = res {
                tracing::error!(dir = %self.dir.display(), error = %e, "searching by time");
            }
            if let Some(seq) = found {
                return seq;
            }
            bi += 1;
        }
        self.last_seq + 1
    }
}
