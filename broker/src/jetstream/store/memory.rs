//! The memory store, for `storage: memory` streams: a `BTreeMap` from
//! sequence to message plus the per-subject map. Byte accounting follows
//! nats-server's `memStoreMsgSize`.

use std::collections::{BTreeMap, HashSet};
use std::ops::RangeInclusive;

use bytes::Bytes;

use super::multi_last;
use super::removed::RemovedLog;
use super::subjects::SubjectIndex;
use super::{
    check_skip, check_subject, check_truncate, filter_is_all, filter_matches, mem_store_msg_size,
    MsgStore, StoreError, StoreLimits, StoreState, StoredMsg, SubjectMap,
};

/// A stream's messages held in RAM.
#[derive(Debug)]
pub struct MemStore {
    limits: StoreLimits,
    msgs: BTreeMap<u64, StoredMsg>,
    subjects: SubjectIndex,
    /// `first_seq`/`last_seq`/`bytes` and timestamps; `msgs` mirrors the map.
    state: StoreState,
    removed: RemovedLog,
}

impl MemStore {
    pub fn new(limits: StoreLimits) -> Self {
        MemStore {
            limits,
            msgs: BTreeMap::new(),
            subjects: SubjectIndex::default(),
            state: StoreState::default(),
            removed: RemovedLog::default(),
        }
    }

    fn size_of(m: &StoredMsg) -> u64 {
        mem_store_msg_size(&m.subject, &m.headers, &m.payload)
    }

    /// Removes `seq` and fixes every counter; returns whether it existed.
    fn remove_internal(&mut self, seq: u64) -> bool {
        let Some(msg) = self.msgs.remove(&seq) else {
            return false;
        };
        self.state.msgs -= 1;
        self.state.bytes = self.state.bytes.saturating_sub(Self::size_of(&msg));
        if let Some(info) = self.subjects.remove(&msg.subject, seq) {
            if info.last == seq {
                // The subject's newest message went (an explicit remove):
                // find the previous one so `last` stays exact.
                let prev = self
                    .msgs
                    .range(..seq)
                    .rev()
                    .find(|(_, m)| m.subject == msg.subject)
                    .map(|(s, _)| *s);
                if let (Some(prev), Some(info)) = (prev, self.subjects.get_mut(&msg.subject)) {
                    info.last = prev;
                }
            }
        }
        if seq == self.state.first_seq {
            self.reset_first();
        }
        true
    }

    fn reset_first(&mut self) {
        match self.msgs.first_key_value() {
            Some((seq, m)) => {
                self.state.first_seq = *seq;
                self.state.first_ts = m.ts;
            }
            None => {
                self.state.first_seq = self.state.last_seq + 1;
                self.state.first_ts = 0;
            }
        }
    }

    fn remove_first_by_limit(&mut self) -> bool {
        let Some(seq) = self.msgs.keys().next().copied() else {
            return false;
        };
        self.remove_internal(seq);
        self.removed.push(seq);
        true
    }

    fn enforce_limits(&mut self, subject: Option<&str>) {
        if let (Some(max), Some(subject)) = (self.limits.max_per_subject(), subject) {
            self.enforce_per_subject(subject, max);
        } else if let Some(max) = self.limits.max_per_subject() {
            let over: Vec<String> = self
                .subjects
                .iter()
                .filter(|(_, i)| i.count > max)
                .map(|(s, _)| s.clone())
                .collect();
            for s in over {
                self.enforce_per_subject(&s, max);
            }
        }
        if let Some(max) = self.limits.max_msgs() {
            while self.state.msgs > max && self.remove_first_by_limit() {}
        }
        if let Some(max) = self.limits.max_bytes() {
            while self.state.bytes > max && self.remove_first_by_limit() {}
        }
    }

    fn enforce_per_subject(&mut self, subject: &str, max: u64) {
        while let Some(info) = self.subjects.get(subject).copied() {
            if info.count <= max {
                break;
            }
            let first = self
                .msgs
                .range(info.first..=info.last)
                .find(|(_, m)| m.subject == subject)
                .map(|(s, _)| *s);
            let Some(seq) = first else { break };
            self.remove_internal(seq);
            self.removed.push(seq);
        }
    }

    /// Removes everything below `seq` (nats-server's Compact).
    fn compact(&mut self, seq: u64) -> u64 {
        if self.state.first_seq > seq {
            return 0;
        }
        if seq > self.state.last_seq {
            // Past the end: an empty store whose next message gets `seq`.
            let purged = self.msgs.len() as u64;
            self.msgs.clear();
            self.subjects.clear();
            self.state.msgs = 0;
            self.state.bytes = 0;
            self.state.first_seq = seq;
            self.state.first_ts = 0;
            self.state.last_seq = seq - 1;
            return purged;
        }
        let doomed: Vec<u64> = self.msgs.range(..seq).map(|(s, _)| *s).collect();
        for s in &doomed {
            self.remove_internal(*s);
        }
        doomed.len() as u64
    }

    fn purge_all(&mut self) -> u64 {
        let purged = self.msgs.len() as u64;
        self.msgs.clear();
        self.subjects.clear();
        self.state.msgs = 0;
        self.state.bytes = 0;
        self.state.first_seq = self.state.last_seq + 1;
        self.state.first_ts = 0;
        purged
    }

    /// Drops every message above `seq` (checked by the caller: below
    /// `last_seq`). See [`MsgStore::truncate`].
    fn truncate_to(&mut self, seq: u64) {
        self.removed.truncate(seq);
        if seq == 0 {
            self.msgs.clear();
            self.subjects.clear();
            self.state = StoreState::default();
            return;
        }
        let gone = self.msgs.split_off(&(seq + 1));
        let mut dropped: SubjectMap<u64> = SubjectMap::default();
        for m in gone.into_values() {
            self.state.msgs -= 1;
            self.state.bytes = self.state.bytes.saturating_sub(Self::size_of(&m));
            match dropped.get_mut(m.subject.as_str()) {
                Some(n) => *n += 1,
                None => {
                    dropped.insert(m.subject, 1);
                }
            }
        }
        let mut unresolved: HashSet<String> = HashSet::new();
        for (subject, n) in dropped {
            if self.subjects.drop_newest(&subject, n).is_some() {
                unresolved.insert(subject);
            }
        }
        // One backward pass finds the new newest message of every subject
        // that keeps some (they all have one at or below `seq`).
        for (s, m) in self.msgs.iter().rev() {
            if unresolved.is_empty() {
                break;
            }
            if unresolved.remove(m.subject.as_str()) {
                if let Some(info) = self.subjects.get_mut(&m.subject) {
                    info.last = *s;
                }
            }
        }
        if let Some(m) = self.msgs.get(&seq) {
            self.state.last_ts = m.ts;
        }
        self.state.last_seq = seq;
        self.reset_first();
    }

    /// The lowest sequence a scan for `filter` from `start` must look at, and
    /// the highest worth looking at; `None` when nothing can match.
    fn scan_bounds(&self, filter: &str, start: u64) -> Option<(u64, u64)> {
        if filter_is_all(filter) {
            return Some((start, u64::MAX));
        }
        let mut lo = u64::MAX;
        let mut hi = 0;
        for (_, info) in self.subjects.matching(filter) {
            if info.last >= start {
                lo = lo.min(info.first.max(start));
                hi = hi.max(info.last);
            }
        }
        (lo <= hi).then_some((lo, hi))
    }
}

impl MsgStore for MemStore {
    fn store_msg(
        &mut self,
        subject: &str,
        headers: &[u8],
        payload: &[u8],
        ts: i64,
    ) -> Result<u64, StoreError> {
        check_subject(subject)?;
        self.limits.check_size(headers, payload)?;
        let seq = self.state.last_seq + 1;
        let msg = StoredMsg {
            seq,
            ts,
            subject: subject.to_owned(),
            headers: Bytes::copy_from_slice(headers),
            payload: Bytes::copy_from_slice(payload),
        };
        if self.state.msgs == 0 {
            self.state.first_seq = seq;
            self.state.first_ts = ts;
        }
        self.state.msgs += 1;
        self.state.bytes += Self::size_of(&msg);
        self.state.last_seq = seq;
        self.state.last_ts = ts;
        self.subjects.add(subject, seq);
        self.msgs.insert(seq, msg);
        self.enforce_limits(Some(subject));
        Ok(seq)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn load(&self, seq: u64) -> Result<Option<StoredMsg>, StoreError> {
        Ok(self.msgs.get(&seq).cloned())
    }

    fn load_next(&self, filter: &str, start: u64) -> Result<Option<StoredMsg>, StoreError> {
        let Some((lo, hi)) = self.scan_bounds(filter, start) else {
            return Ok(None);
        };
        Ok(self
            .msgs
            .range(lo..=hi)
            .map(|(_, m)| m)
            .find(|m| filter_matches(filter, &m.subject))
            .cloned())
    }

    fn load_last(&self, filter: &str) -> Result<Option<StoredMsg>, StoreError> {
        if filter_is_all(filter) {
            return Ok(self.msgs.last_key_value().map(|(_, m)| m.clone()));
        }
        let last = self
            .subjects
            .matching(filter)
            .iter()
            .map(|(_, i)| i.last)
            .max();
        Ok(last.and_then(|s| self.msgs.get(&s).cloned()))
    }

    fn remove(&mut self, seq: u64) -> Result<bool, StoreError> {
        Ok(self.remove_internal(seq))
    }

    fn purge(&mut self, filter: &str, seq: u64, keep: u64) -> Result<u64, StoreError> {
        if seq == 1 {
            return Ok(0);
        }
        if filter_is_all(filter) {
            if keep == 0 && seq == 0 {
                return Ok(self.purge_all());
            }
            if seq > 1 {
                return Ok(self.compact(seq));
            }
        }
        let total: u64 = if filter_is_all(filter) {
            self.state.msgs
        } else {
            self.subjects
                .matching(filter)
                .iter()
                .map(|(_, i)| i.count)
                .sum()
        };
        if total == 0 || keep >= total && keep > 0 {
            return Ok(0);
        }
        let max = if keep > 0 { total - keep } else { u64::MAX };
        let upper = if seq > 0 { seq - 1 } else { u64::MAX };
        let doomed: Vec<u64> = self
            .msgs
            .range(..=upper)
            .filter(|(_, m)| filter_matches(filter, &m.subject))
            .map(|(s, _)| *s)
            .take(max.min(usize::MAX as u64) as usize)
            .collect();
        for s in &doomed {
            self.remove_internal(*s);
        }
        Ok(doomed.len() as u64)
    }

    fn state(&self) -> StoreState {
        let mut st = self.state.clone();
        st.num_subjects = self.subjects.len() as u64;
        st.num_deleted = if st.msgs > 0 {
            (st.last_seq - st.first_seq + 1).saturating_sub(st.msgs)
        } else {
            0
        };
        st
    }

    fn subjects_totals(&self, filter: &str) -> BTreeMap<String, u64> {
        self.subjects.totals(filter)
    }

    fn num_pending(&self, filter: &str, start: u64) -> u64 {
        if filter_is_all(filter) {
            if start <= self.state.first_seq {
                return self.state.msgs;
            }
            return self.msgs.range(start..).count() as u64;
        }
        let mut total = 0;
        let mut straddling: HashSet<&str> = HashSet::new();
        let mut hi = 0;
        for (subject, info) in self.subjects.matching(filter) {
            if info.last < start {
                continue;
            }
            if info.first >= start {
                total += info.count;
            } else {
                straddling.insert(subject);
                hi = hi.max(info.last);
            }
        }
        if !straddling.is_empty() {
            total += self
                .msgs
                .range(start..=hi)
                .filter(|(_, m)| straddling.contains(m.subject.as_str()))
                .count() as u64;
        }
        total
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
        let plan = multi_last::plan(&self.subjects, filters, up_to, max)?;
        let Some(floor) = plan.walk_floor() else {
            return multi_last::finish(plan.found, [], max);
        };
        // One backward walk finds the newest message at or below `up_to`
        // of every subject that changed after it.
        let mut wanted: HashSet<&str, ahash::RandomState> =
            plan.pending.iter().map(|(s, _)| *s).collect();
        let mut walked = Vec::with_capacity(wanted.len());
        for (seq, m) in self.msgs.range(floor..=up_to).rev() {
            if wanted.remove(m.subject.as_str()) {
                walked.push(*seq);
                if wanted.is_empty() {
                    break;
                }
            }
        }
        multi_last::finish(plan.found, walked, max)
    }

    fn seq_for_time(&self, ts: i64) -> u64 {
        self.msgs
            .values()
            .find(|m| m.ts >= ts)
            .map_or(self.state.last_seq + 1, |m| m.seq)
    }

    fn update_limits(&mut self, limits: StoreLimits) -> Result<(), StoreError> {
        self.limits = limits;
        self.enforce_limits(None);
        Ok(())
    }

    fn expire(&mut self, now: i64) -> Result<u64, StoreError> {
        if self.limits.max_age.is_zero() {
            return Ok(0);
        }
        let cutoff =
            now.saturating_sub(self.limits.max_age.as_nanos().min(i64::MAX as u128) as i64);
        let mut n = 0;
        while let Some((_, m)) = self.msgs.first_key_value() {
            if m.ts > cutoff {
                break;
            }
            self.remove_first_by_limit();
            n += 1;
        }
        Ok(n)
    }

    fn take_removed(&mut self) -> Vec<RangeInclusive<u64>> {
        self.removed.take()
    }

    fn truncate(&mut self, seq: u64) -> Result<(), StoreError> {
        if check_truncate(seq, self.state.last_seq)? {
            self.truncate_to(seq);
        }
        Ok(())
    }

    fn skip_to(&mut self, seq: u64) -> Result<(), StoreError> {
        if check_skip(seq, self.state.last_seq)? {
            self.state.last_seq = seq;
            if self.msgs.is_empty() {
                self.state.first_seq = seq + 1;
                self.state.first_ts = 0;
            }
        }
        Ok(())
    }

    fn delete(self: Box<Self>) -> Result<(), StoreError> {
        Ok(())
    }
}
