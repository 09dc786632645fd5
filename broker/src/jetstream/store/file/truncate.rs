//! Truncate: rolling the stream back to a sequence (see
//! [`MsgStore::truncate`](crate::jetstream::store::MsgStore::truncate)).
//!
//! The change spans several files, so it is made atomic with a journal: the
//! `truncate` file, naming the target sequence and the new last timestamp,
//! is made durable first (temp file, fsync, rename, fsync dir). From then on
//! the truncate is committed: when a crash interrupts the steps below,
//! opening the store recovers what they left and runs them again (each one
//! is idempotent), then removes the journal. A crash before the journal is
//! durable leaves the old store, which `truncate` synced first. The journal
//! goes, durably, before `truncate` returns, so it can never come back and
//! cut messages stored after it.
//!
//! The steps, in order:
//! 1. the floor, when it must change: lowered to `seq + 1` when above it
//!    (the next messages reuse those sequences), and told the last sequence
//!    is `seq` when no surviving block ends there (that block was removed
//!    earlier). It is written before any block goes, so no intermediate
//!    state has a last sequence below `seq`;
//! 2. the blocks entirely above `seq` are unlinked, newest first;
//! 3. the block holding `seq + 1` is cut at that record (`set_len`, fsync);
//! 4. the last surviving block's delete log loses its ranges above `seq`
//!    (they would delete the re-stored messages), and its index file, stale
//!    after a cut, is removed (rebuilt on first use);
//! 5. directory fsync; the journal is unlinked and the directory fsynced.
//!
//! Every read (the subjects of the dropped messages, each subject's new
//! newest message, the offset of the cut) happens before the journal is
//! written, so an I/O error there leaves the store as it was. An error after
//! it makes the store refuse changes; the next open finishes the job.

use std::fs::{File, OpenOptions};
use std::ops::ControlFlow;
use std::path::Path;

use super::block::{block_path, dlog_path, index_path};
use super::dlog::{clip_dlog, remove_floor, replace_file, write_floor, Floor};
use super::{remove_file_if_exists, FileStore};
use crate::jetstream::store::{check_truncate, MsgStore, StoreError, SubjectMap};

const JOURNAL_NAME: &str = "truncate";
const JOURNAL_MAGIC: &[u8; 4] = b"TRTC";
const JOURNAL_LEN: usize = 24;

/// What the journal records: enough to finish the truncate from whatever
/// state a crash left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Journal {
    pub seq: u64,
    /// `last_ts` after the truncate (it cannot always be re-derived once
    /// blocks are gone).
    pub last_ts: i64,
}

impl Journal {
    fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(JOURNAL_LEN);
        buf.extend_from_slice(JOURNAL_MAGIC);
        buf.extend_from_slice(&self.seq.to_le_bytes());
        buf.extend_from_slice(&self.last_ts.to_le_bytes());
        let crc = crc32fast::hash(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        buf
    }

    fn decode(buf: &[u8]) -> Option<Journal> {
        if buf.len() != JOURNAL_LEN || &buf[..4] != JOURNAL_MAGIC {
            return None;
        }
        let (body, crc) = buf.split_at(JOURNAL_LEN - 4);
        if u32::from_le_bytes(crc.try_into().ok()?) != crc32fast::hash(body) {
            return None;
        }
        Some(Journal {
            seq: u64::from_le_bytes(body[4..12].try_into().ok()?),
            last_ts: i64::from_le_bytes(body[12..20].try_into().ok()?),
        })
    }
}

/// The journal of an interrupted truncate, if there is one.
pub(crate) fn read_journal(dir: &Path) -> Result<Option<Journal>, StoreError> {
    let path = dir.join(JOURNAL_NAME);
    let buf = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("read truncate journal", &path, e)),
    };
    // Only ever renamed into place after an fsync: a bad one is corruption,
    // and guessing could cut acknowledged messages.
    Journal::decode(&buf).map(Some).ok_or(StoreError::Corrupt {
        path,
        offset: 0,
        reason: "bad truncate journal".into(),
    })
}

/// The per-block part of a plan: the block holding `seq + 1` also holds
/// `seq`, so it is cut rather than removed.
struct Cut {
    bi: usize,
    /// Offset of the record `seq + 1`: the block's new length.
    offset: u64,
    /// Live messages and bytes after the cut point.
    msgs: u64,
    bytes: u64,
    /// Time of the record `seq` (live or not): the block's new `last_ts`.
    last_ts: i64,
}

/// Everything a truncate changes, read before anything is changed.
struct Plan {
    /// Blocks from this position on are entirely above `seq` and go.
    drop_from: usize,
    cut: Option<Cut>,
    /// Every live message goes (`seq` is below the first one).
    all: bool,
    /// Live messages and bytes that go.
    msgs: u64,
    bytes: u64,
    /// Per subject: how many of its messages go and, when it keeps some,
    /// its new newest sequence.
    subjects: Vec<(String, u64, Option<u64>)>,
    /// After the truncate the last block ends exactly at `seq`.
    ends_at_seq: bool,
    /// Time of message `seq` when a block still holds its record.
    seq_ts: Option<i64>,
}

/// Test hook: make a truncate stop after its Nth step, as a crash would.
#[cfg(test)]
pub(super) mod crash_hook {
    use std::cell::Cell;

    thread_local! {
        pub(in crate::jetstream::store::file) static STOP_AFTER: Cell<Option<u32>> =
            const { Cell::new(None) };
    }
}

impl FileStore {
    /// [`MsgStore::truncate`](crate::jetstream::store::MsgStore::truncate)
    /// for the file store; see the module docs.
    pub(super) fn truncate_to(&mut self, seq: u64) -> Result<(), StoreError> {
        self.check_failed()?;
        if !check_truncate(seq, self.last_seq)? {
            return Ok(());
        }
        // The state a crash before the commit point returns to must be the
        // whole old one, so whatever was written before becomes durable now.
        self.sync()?;
        let plan = self.plan_truncate(seq)?;
        let last_ts = match (seq, plan.seq_ts) {
            (0, _) => 0,
            (_, Some(ts)) => ts,
            (_, None) => self.last_ts,
        };
        let journal = Journal { seq, last_ts };
        let path = self.dir.join(JOURNAL_NAME);
        let mut step = 0;
        let res = self
            .checkpoint(&mut step)
            .and_then(|_| replace_file(&path, &journal.encode()))
            .and_then(|_| self.sync_dir())
            .and_then(|_| self.apply_truncate(journal, plan, &mut step));
        if let Err(e) = &res {
            // The journal may be durable: carrying on could let a later
            // open cut messages acknowledged after this point.
            tracing::error!(dir = %self.dir.display(), seq, error = %e,
                "truncate failed; store is now read-only until reopened");
            self.failed = Some(e.to_string());
        }
        res
    }

    /// Runs the steps of an interrupted truncate again (recovery).
    pub(super) fn finish_truncate(&mut self, journal: Journal) -> Result<(), StoreError> {
        if journal.seq > self.last_seq {
            // Not expected (the truncate synced first); the floor will carry
            // the last sequence.
            tracing::warn!(dir = %self.dir.display(), seq = journal.seq, last = self.last_seq,
                "store recovered below an interrupted truncate's target");
        }
        let plan = self.plan_truncate(journal.seq)?;
        self.apply_truncate(journal, plan, &mut 0)
    }

    fn plan_truncate(&self, seq: u64) -> Result<Plan, StoreError> {
        // First block with a record above `seq`.
        let first_gone = self.blocks.partition_point(|b| b.last <= seq);
        let cut_bi = self
            .blocks
            .get(first_gone)
            .is_some_and(|b| b.first <= seq)
            .then_some(first_gone);
        let drop_from = cut_bi.map_or(first_gone, |bi| bi + 1);
        let cut = match cut_bi {
            Some(bi) => Some(Cut {
                bi,
                offset: self.record_offset(bi, seq + 1)?,
                msgs: self.blocks[bi].live_from(seq + 1),
                bytes: 0,
                last_ts: self.record_meta(bi, seq)?.2,
            }),
            None => None,
        };
        // The time of `seq` when its record survives, as the last of its
        // block (the cut one, or an untouched one ending there).
        let seq_ts = match (&cut, drop_from.checked_sub(1)) {
            (Some(cut), _) => Some(cut.last_ts),
            (None, Some(bi)) if self.blocks[bi].last == seq => Some(self.blocks[bi].last_ts),
            _ => None,
        };
        let ends_at_seq = seq_ts.is_some();
        let mut plan = Plan {
            drop_from,
            cut,
            all: seq == 0 || seq < self.first_seq,
            msgs: 0,
            bytes: 0,
            subjects: Vec::new(),
            ends_at_seq,
            seq_ts,
        };
        if plan.all {
            plan.msgs = self.msgs;
            plan.bytes = self.bytes;
            if let Some(cut) = &mut plan.cut {
                cut.bytes = self.blocks[cut.bi].bytes;
            }
            return Ok(plan);
        }
        self.plan_subjects(seq, &mut plan)?;
        Ok(plan)
    }

    /// Reads the dropped messages' subjects and sizes, and the newest
    /// remaining message of every subject that keeps some.
    fn plan_subjects(&self, seq: u64, plan: &mut Plan) -> Result<(), StoreError> {
        let from_bi = plan.cut.as_ref().map_or(plan.drop_from, |c| c.bi);
        let mut counts: SubjectMap<u64> = SubjectMap::default();
        for bi in from_bi..self.blocks.len() {
            let mut bad = None;
            let mut bytes = 0;
            let _ = self.scan_block(bi, seq + 1, u64::MAX, |s, h, rec| {
                let Ok(subject) = std::str::from_utf8(h.subject(rec)) else {
                    bad = Some(s);
                    return ControlFlow::Break(());
                };
                match counts.get_mut(subject) {
                    Some(n) => *n += 1,
                    None => {
                        counts.insert(subject.to_owned(), 1);
                    }
                }
                bytes += h.nats_size();
                ControlFlow::Continue(())
            })?;
            if let Some(s) = bad {
                return Err(StoreError::CorruptMsg {
                    path: block_path(&self.dir, self.blocks[bi].id),
                    seq: s,
                    reason: "subject is not UTF-8".into(),
                });
            }
            if let Some(cut) = plan.cut.as_mut().filter(|c| c.bi == bi) {
                cut.bytes = bytes;
            }
            plan.bytes += bytes;
        }
        plan.msgs = counts.values().sum();
        let keep: Vec<String> = counts
            .iter()
            .filter(|(s, n)| self.subjects.get(s).is_some_and(|i| i.count > **n))
            .map(|(s, _)| s.clone())
            .collect();
        let newest = self.newest_per_subject(keep, seq)?;
        plan.subjects = counts
            .into_iter()
            .map(|(s, n)| {
                let last = newest.get(&s).copied();
                (s, n, last)
            })
            .collect();
        Ok(())
    }

    /// The steps after the commit point; `step` counts checkpoints.
    fn apply_truncate(
        &mut self,
        journal: Journal,
        plan: Plan,
        step: &mut u32,
    ) -> Result<(), StoreError> {
        let seq = journal.seq;
        self.checkpoint(step)?;
        // 1. The floor.
        if seq > 0 {
            let stale = self.floor.is_some_and(|f| f.seq > seq + 1 || f.last > seq);
            if stale || !plan.ends_at_seq {
                let floor = Floor {
                    seq: self.floor.map_or(0, |f| f.seq.min(seq + 1)),
                    last: seq,
                    last_ts: journal.last_ts,
                };
                write_floor(&self.dir, &self.dir_file, floor)?;
                self.floor = Some(floor);
                self.checkpoint(step)?;
            }
        }
        // 2. Whole blocks, newest first.
        while self.blocks.len() > plan.drop_from {
            if let Some(b) = self.blocks.pop() {
                self.unlink_block_now(b.id)?;
            }
            self.checkpoint(step)?;
        }
        // 3. The block holding `seq + 1`.
        if let Some(cut) = &plan.cut {
            self.cut_block(seq, cut)?;
            self.checkpoint(step)?;
        }
        // 4. The new last block's delete log and index.
        if let Some(b) = self.blocks.last() {
            let (id, active) = (b.id, self.is_active(self.blocks.len() - 1));
            if clip_dlog(&dlog_path(&self.dir, id), seq)? {
                self.dir_dirty = true;
            }
            if plan.cut.is_some() || active {
                remove_file_if_exists(&index_path(&self.dir, id))?;
                self.dir_dirty = true;
            }
            self.checkpoint(step)?;
        }
        if seq == 0 {
            remove_floor(&self.dir)?;
            self.floor = None;
            self.dir_dirty = true;
        }
        // 5. Everything above is durable; then the journal goes.
        self.sync_dir()?;
        self.checkpoint(step)?;
        remove_file_if_exists(&self.dir.join(JOURNAL_NAME))?;
        self.sync_dir()?;

        self.msgs -= plan.msgs.min(self.msgs);
        self.bytes = self.bytes.saturating_sub(plan.bytes);
        if plan.all {
            self.subjects.clear();
        }
        for (subject, n, last) in &plan.subjects {
            if let (Some(info), Some(last)) = (self.subjects.drop_newest(subject, *n), last) {
                info.last = *last;
            }
        }
        self.last_seq = seq;
        self.last_ts = journal.last_ts;
        self.removed.truncate(seq);
        if seq == 0 {
            self.first_seq = 0;
            self.first_ts = 0;
        } else {
            self.recompute_first();
        }
        tracing::debug!(dir = %self.dir.display(), seq, msgs = plan.msgs, "file store truncated");
        Ok(())
    }

    /// Cuts the block holding `seq + 1` there, on disk and in RAM.
    fn cut_block(&mut self, seq: u64, cut: &Cut) -> Result<(), StoreError> {
        let id = self.blocks[cut.bi].id;
        if self.active.as_ref().is_some_and(|a| a.id == id) {
            // It was synced before the plan; appends start a new block.
            self.active = None;
        }
        self.cache.lock().forget(id);
        let path = block_path(&self.dir, id);
        let file: File = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io("open block", &path, e))?;
        file.set_len(cut.offset)
            .and_then(|_| file.sync_all())
            .map_err(|e| StoreError::io("truncate block", &path, e))?;
        let b = &mut self.blocks[cut.bi];
        b.last = seq;
        b.len = cut.offset;
        b.last_ts = cut.last_ts;
        b.msgs -= cut.msgs.min(b.msgs);
        b.bytes = b.bytes.saturating_sub(cut.bytes);
        b.deleted.truncate(b.records());
        Ok(())
    }

    /// A point between two durable steps, where tests can make the truncate
    /// stop as a crash would.
    fn checkpoint(&self, step: &mut u32) -> Result<(), StoreError> {
        *step += 1;
        #[cfg(test)]
        if crash_hook::STOP_AFTER.with(|s| s.get()) == Some(*step) {
            return Err(StoreError::io(
                "truncate step (test crash)",
                &self.dir,
                std::io::Error::other("stopped by the test"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_round_trip_and_corruption() {
        let j = Journal {
            seq: 77,
            last_ts: -3,
        };
        let buf = j.encode();
        assert_eq!(Journal::decode(&buf), Some(j));
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert_eq!(Journal::decode(&bad), None, "flip at {i}");
        }
        assert_eq!(Journal::decode(&buf[..20]), None);
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_journal(dir.path()).expect("read"), None);
        std::fs::write(dir.path().join(JOURNAL_NAME), &buf).expect("write");
        assert_eq!(read_journal(dir.path()).expect("read"), Some(j));
        std::fs::write(dir.path().join(JOURNAL_NAME), b"junk").expect("write");
        assert!(read_journal(dir.path()).is_err());
    }
}
