//! Removals: single deletes, limit enforcement, expiry and purges.
//!
//! Single removals set the block's delete bit and queue a delete-log entry
//! (durable at the next `sync`). A block left without live messages is
//! retired: its files are unlinked at the next `sync`, once the delete log
//! that covers it is durable. Dropping the oldest messages in bulk drops
//! whole blocks. Purges that remove a prefix (purge all, purge up to a
//! sequence) first write the floor file durably and then unlink whole blocks
//! at once, so they are atomic across crashes.

use super::block::{block_path, dlog_path, index_path};
use super::dlog::{write_floor, Floor};
use super::{remove_file_if_exists, FileStore};
use crate::jetstream::store::{filter_is_all, StoreError};

/// Removals per batch when purging by filter.
const PURGE_BATCH: usize = 4096;

impl FileStore {
    /// Marks `seq` (live, in block `bi`) removed and fixes the counters
    /// except the subject map.
    fn mark_removed(&mut self, bi: usize, seq: u64, size: u64, log: bool) {
        let b = &mut self.blocks[bi];
        if !b.deleted.insert(seq - b.first) {
            return;
        }
        b.msgs -= 1;
        b.bytes = b.bytes.saturating_sub(size);
        let id = b.id;
        self.msgs -= 1;
        self.bytes = self.bytes.saturating_sub(size);
        if log {
            self.log_removal(id, seq, seq);
        }
    }

    /// Removes one message. `by_limit` records it for `take_removed`.
    pub(super) fn remove_one(&mut self, seq: u64, by_limit: bool) -> Result<bool, StoreError> {
        let Some(bi) = self.block_index(seq) else {
            return Ok(false);
        };
        if !self.blocks[bi].is_live(seq) {
            return Ok(false);
        }
        // All reads first, so an I/O error leaves the store untouched.
        let (subject, size, _) = self.record_meta(bi, seq)?;
        let new_last = match self.subjects.get(&subject) {
            Some(i) if i.last == seq && i.count > 1 => self.find_prev_for_subject(&subject, seq)?,
            _ => None,
        };
        self.mark_removed(bi, seq, size, true);
        if by_limit {
            self.removed.push(seq);
        }
        self.subjects.remove(&subject, seq);
        if let (Some(last), Some(info)) = (new_last, self.subjects.get_mut(&subject)) {
            info.last = last;
        }
        if self.blocks[bi].msgs == 0 && bi + 1 < self.blocks.len() {
            self.retire(bi);
        }
        if seq == self.first_seq {
            self.recompute_first();
        }
        Ok(true)
    }

    /// Takes an emptied (not last) block out; its files go at the next sync.
    fn retire(&mut self, bi: usize) {
        let b = self.blocks.remove(bi);
        self.cache.lock().forget(b.id);
        self.log_removal(b.id, b.first, b.last);
        self.retired.push(b.id);
    }

    /// Drops the oldest block whole (it must not be the last one).
    fn drop_front_block(&mut self, by_limit: bool) -> Result<(), StoreError> {
        let (first, last) = (self.blocks[0].first, self.blocks[0].last);
        let live = self.live_records(0, first, last)?;
        for (seq, subject, _) in &live {
            self.subjects.remove(subject, *seq);
            if by_limit {
                self.removed.push(*seq);
            }
        }
        let b = &self.blocks[0];
        self.msgs -= b.msgs;
        self.bytes = self.bytes.saturating_sub(b.bytes);
        self.retire(0);
        self.recompute_first();
        Ok(())
    }

    /// Removes the oldest messages until `done` says enough, whole blocks at
    /// a time where `whole_block_ok` allows.
    fn drop_oldest(
        &mut self,
        by_limit: bool,
        done: impl Fn(&FileStore) -> bool,
        whole_block_ok: impl Fn(&FileStore) -> bool,
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        while self.msgs > 0 && !done(self) {
            if self.blocks.len() > 1 && whole_block_ok(self) {
                n += self.blocks[0].msgs;
                self.drop_front_block(by_limit)?;
            } else if self.remove_one(self.first_seq, by_limit)? {
                n += 1;
            } else {
                return Err(StoreError::Corrupt {
                    path: self.dir.clone(),
                    offset: 0,
                    reason: format!("first sequence {} is not live", self.first_seq),
                });
            }
        }
        Ok(n)
    }

    pub(super) fn enforce_limits(&mut self, subject: Option<&str>) -> Result<(), StoreError> {
        if let Some(max) = self.limits.max_per_subject() {
            match subject {
                Some(s) => self.enforce_per_subject(s, max)?,
                None => {
                    let over: Vec<String> = self
                        .subjects
                        .iter()
                        .filter(|(_, i)| i.count > max)
                        .map(|(s, _)| s.clone())
                        .collect();
                    for s in over {
                        self.enforce_per_subject(&s, max)?;
                    }
                }
            }
        }
        if let Some(max) = self.limits.max_msgs() {
            self.drop_oldest(
                true,
                |s| s.msgs <= max,
                |s| s.msgs - s.blocks[0].msgs >= max,
            )?;
        }
        if let Some(max) = self.limits.max_bytes() {
            self.drop_oldest(
                true,
                |s| s.bytes <= max,
                |s| s.bytes.saturating_sub(s.blocks[0].bytes) >= max,
            )?;
        }
        Ok(())
    }

    fn enforce_per_subject(&mut self, subject: &str, max: u64) -> Result<(), StoreError> {
        while let Some(info) = self.subjects.get(subject).copied() {
            if info.count <= max {
                break;
            }
            let first = self.matching_seqs(subject, info.first, info.last, 1)?;
            let Some(&seq) = first.first() else {
                return Err(StoreError::Corrupt {
                    path: self.dir.clone(),
                    offset: 0,
                    reason: format!("subject {subject} has no message to drop"),
                });
            };
            self.remove_one(seq, true)?;
        }
        Ok(())
    }

    pub(super) fn expire_before(&mut self, now: i64) -> Result<u64, StoreError> {
        if self.limits.max_age.is_zero() {
            return Ok(0);
        }
        let age = self.limits.max_age.as_nanos().min(i64::MAX as u128) as i64;
        let cutoff = now.saturating_sub(age);
        self.drop_oldest(
            true,
            |s| s.first_ts > cutoff,
            |s| s.blocks[0].last_ts <= cutoff,
        )
    }

    /// nats-server's PurgeEx.
    pub(super) fn purge_ex(
        &mut self,
        filter: &str,
        seq: u64,
        keep: u64,
    ) -> Result<u64, StoreError> {
        if seq == 1 {
            return Ok(0);
        }
        if filter_is_all(filter) {
            if keep == 0 && seq == 0 {
                return self.compact(self.last_seq + 1);
            }
            if seq > 1 {
                return self.compact(seq);
            }
            // Keep the newest `keep`: drop the oldest.
            if keep >= self.msgs {
                return Ok(0);
            }
            let n = self.msgs - keep;
            let target = keep;
            return self
                .drop_oldest(
                    false,
                    |s| s.msgs <= target,
                    |s| s.msgs - s.blocks[0].msgs >= target,
                )
                .map(|d| d.min(n));
        }
        let total: u64 = self
            .subjects
            .matching(filter)
            .iter()
            .map(|(_, i)| i.count)
            .sum();
        if total == 0 || keep > 0 && keep >= total {
            return Ok(0);
        }
        let max = if keep > 0 { total - keep } else { u64::MAX };
        let upper = if seq > 0 { seq - 1 } else { u64::MAX };
        let mut purged = 0;
        let mut cursor = 0;
        while purged < max {
            let batch = (max - purged).min(PURGE_BATCH as u64) as usize;
            let seqs = self.matching_seqs(filter, cursor, upper, batch)?;
            let Some(&last) = seqs.last() else { break };
            for s in seqs {
                if self.remove_one(s, false)? {
                    purged += 1;
                }
            }
            cursor = last + 1;
        }
        Ok(purged)
    }

    /// Removes everything below `seq` (nats-server's Compact); past the end
    /// it leaves an empty store whose next message gets `seq`.
    fn compact(&mut self, seq: u64) -> Result<u64, StoreError> {
        if self.first_seq > seq {
            return Ok(0);
        }
        let floor = Floor {
            seq,
            // The last sequence may lie beyond every block (a truncate into
            // a gap): keep remembering it.
            last: self.last_seq.max(seq.saturating_sub(1)),
            last_ts: self.last_ts,
        };
        if seq > self.last_seq {
            let purged = self.msgs;
            write_floor(&self.dir, &self.dir_file, floor)?;
            self.floor = Some(floor);
            self.drop_all_blocks()?;
            self.subjects.clear();
            self.msgs = 0;
            self.bytes = 0;
            self.last_seq = seq - 1;
            self.first_seq = seq;
            self.first_ts = 0;
            return Ok(purged);
        }
        // Read what the dropped blocks held before changing anything.
        let whole = self
            .blocks
            .iter()
            .take(self.blocks.len().saturating_sub(1))
            .take_while(|b| b.last < seq)
            .count();
        let mut doomed = Vec::new();
        for bi in 0..whole {
            let b = &self.blocks[bi];
            doomed.extend(self.live_records(bi, b.first, b.last)?);
        }
        let partial = match self.blocks.get(whole) {
            Some(b) if b.first < seq => self.live_records(whole, b.first, seq - 1)?,
            _ => Vec::new(),
        };
        write_floor(&self.dir, &self.dir_file, floor)?;
        self.floor = Some(floor);
        let mut purged = 0;
        for (s, subject, _) in &doomed {
            self.subjects.remove(subject, *s);
        }
        for _ in 0..whole {
            let b = self.blocks.remove(0);
            purged += b.msgs;
            self.msgs -= b.msgs;
            self.bytes = self.bytes.saturating_sub(b.bytes);
            self.unlink_block_now(b.id)?;
        }
        for (s, subject, size) in &partial {
            // The floor covers these: no delete-log entry needed.
            self.mark_removed(0, *s, *size, false);
            self.subjects.remove(subject, *s);
            purged += 1;
        }
        self.recompute_first();
        Ok(purged)
    }

    /// Deletes every block file now (the floor already covers them).
    fn drop_all_blocks(&mut self) -> Result<(), StoreError> {
        self.active = None;
        let ids: Vec<u64> = self.blocks.drain(..).map(|b| b.id).collect();
        for id in ids {
            self.unlink_block_now(id)?;
        }
        self.cache.lock().clear();
        Ok(())
    }

    pub(super) fn unlink_block_now(&mut self, id: u64) -> Result<(), StoreError> {
        if self.active.as_ref().is_some_and(|a| a.id == id) {
            self.active = None;
        }
        self.cache.lock().forget(id);
        self.dlog_pending.remove(&id);
        self.retired.retain(|r| *r != id);
        remove_file_if_exists(&block_path(&self.dir, id))?;
        remove_file_if_exists(&index_path(&self.dir, id))?;
        remove_file_if_exists(&dlog_path(&self.dir, id))?;
        self.dir_dirty = true;
        Ok(())
    }

    /// Re-derives `first_seq`/`first_ts` after the oldest message went.
    pub(super) fn recompute_first(&mut self) {
        for bi in 0..self.blocks.len() {
            let b = &self.blocks[bi];
            if let Some(seq) = b.first_live_from(b.first) {
                self.first_seq = seq;
                self.first_ts = match self.record_meta(bi, seq) {
                    Ok((_, _, ts)) => ts,
                    Err(e) => {
                        tracing::error!(error = %e, seq, "reading first message time");
                        self.blocks[bi].first_ts
                    }
                };
                return;
            }
        }
        self.first_seq = self.last_seq + 1;
        self.first_ts = 0;
    }
}
