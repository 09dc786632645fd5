//! Skips: moving the last sequence forward without storing anything (see
//! [`MsgStore::skip_to`](crate::jetstream::store::MsgStore::skip_to)).
//!
//! A skip changes only counters in RAM. Blocks hold contiguous sequences,
//! so the next message opens a new block starting at `seq + 1` (see
//! `ensure_room`), and from then on that block carries the last sequence
//! and recovery derives everything from the blocks. Only while the skip is
//! the tail of the stream does no block remember the last sequence; that is
//! the case the floor file already covers for purges and for truncates into
//! a gap (its `last`), so `sync` writes the floor then, with no second
//! mechanism. Deferring that write to `sync` keeps a skip as cheap as an
//! append and gives it the same durability: a follower catching up over a
//! stream with many gaps pays no fsync per gap, and a floor write is only
//! ever needed for the skip that is still the tail at the `sync`.
//!
//! The price of contiguous blocks: a message after a skip always starts a
//! new block file, so a catch-up over a stream with many gaps leaves one
//! (possibly small) block per run of messages between gaps.

use super::dlog::{write_floor, Floor};
use super::FileStore;
use crate::jetstream::store::{check_skip, StoreError};

impl FileStore {
    /// [`MsgStore::skip_to`](crate::jetstream::store::MsgStore::skip_to)
    /// for the file store; see the module docs.
    pub(super) fn skip_to_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        self.check_failed()?;
        if !check_skip(seq, self.last_seq)? {
            return Ok(());
        }
        self.last_seq = seq;
        if self.msgs == 0 {
            self.first_seq = seq + 1;
            self.first_ts = 0;
        }
        tracing::trace!(dir = %self.dir.display(), seq, "file store skipped ahead");
        Ok(())
    }

    /// The floor a `sync` must write so that a restart finds `last_seq`:
    /// `Some` when no block ends there and the floor does not remember it
    /// yet, which only a skip leaves behind (purges and truncates write the
    /// floor themselves).
    pub(super) fn skipped_tail_floor(&self) -> Option<Floor> {
        let block_last = self.blocks.last().map_or(0, |b| b.last);
        if self.last_seq <= block_last || self.floor.is_some_and(|f| f.last >= self.last_seq) {
            return None;
        }
        let floor_seq = self.floor.map_or(0, |f| f.seq);
        Some(Floor {
            // An empty store: everything up to the skip is gone, which the
            // floor can say outright (recovery would derive the same first
            // sequence from `last`, this just does not depend on it).
            seq: if self.msgs == 0 {
                floor_seq.max(self.last_seq + 1)
            } else {
                floor_seq
            },
            last: self.last_seq,
            last_ts: self.last_ts,
        })
    }

    /// Writes the floor for a skipped tail, if one is needed (part of
    /// `sync`).
    pub(super) fn persist_skipped_tail(&mut self) -> Result<(), StoreError> {
        if let Some(floor) = self.skipped_tail_floor() {
            write_floor(&self.dir, &self.dir_file, floor)?;
            self.floor = Some(floor);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! What a skip leaves on disk, and what a crash (no final `sync`)
    //! keeps of it. The shared behaviour is in the conformance tests.

    use std::path::Path;

    use super::super::dlog::read_floor;
    use super::super::FileStoreConfig;
    use super::*;
    use crate::jetstream::store::{MsgStore, StoreLimits};

    fn open(dir: &Path) -> FileStore {
        let cfg = FileStoreConfig {
            block_size: 1024,
            cache_blocks: 4,
        };
        FileStore::open(dir, StoreLimits::default(), cfg).expect("open")
    }

    /// Leaves without the final sync of a clean close, as a crash would.
    fn crash(s: FileStore) {
        std::mem::forget(s);
    }

    fn counters(s: &FileStore) -> (u64, u64, u64, u64) {
        let st = s.state();
        (st.msgs, st.first_seq, st.last_seq, st.num_deleted)
    }

    #[test]
    fn the_floor_is_written_at_sync_only_for_a_skipped_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        let mut s = open(p);
        s.store_msg("k.a", b"", b"1", 1).expect("store");
        s.skip_to(10).expect("skip");
        assert_eq!(read_floor(p).expect("floor"), None, "written before sync");
        // A message after the skip before the sync: its block carries the
        // last sequence, no floor needed.
        assert_eq!(s.store_msg("k.a", b"", b"2", 2).expect("store"), 11);
        assert_eq!(s.block_count(), 2);
        s.sync().expect("sync");
        assert_eq!(read_floor(p).expect("floor"), None);
        // Skips and stores alternating, a catch-up over a gappy stream: one
        // block per run, still no floor.
        for i in 0..5u64 {
            s.skip_to(20 + i * 10).expect("skip");
            assert_eq!(
                s.store_msg("k.b", b"", b"x", 3).expect("store"),
                21 + i * 10
            );
        }
        s.sync().expect("sync");
        assert_eq!(read_floor(p).expect("floor"), None);
        assert_eq!(s.block_count(), 7);
        // The tail is a skip: the sync writes the floor, once.
        s.skip_to(99).expect("skip");
        s.sync().expect("sync");
        let floor = read_floor(p).expect("floor").expect("written");
        assert_eq!((floor.seq, floor.last, floor.last_ts), (0, 99, 3));
        assert_eq!(s.skipped_tail_floor(), None);
        drop(s);
        let s = open(p);
        assert_eq!(counters(&s), (7, 1, 99, 92));
        assert_eq!(s.state().last_ts, 3);
    }

    #[test]
    fn an_empty_store_floor_covers_everything_up_to_the_skip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        let mut s = open(p);
        for i in 1..=3 {
            s.store_msg("k.a", b"", b"v", i).expect("store");
        }
        for seq in 1..=3 {
            s.remove(seq).expect("remove");
        }
        s.skip_to(40).expect("skip");
        s.sync().expect("sync");
        let floor = read_floor(p).expect("floor").expect("written");
        assert_eq!((floor.seq, floor.last, floor.last_ts), (41, 40, 3));
        crash(s);
        let mut s = open(p);
        assert_eq!(counters(&s), (0, 41, 40, 0));
        assert_eq!(s.store_msg("k.a", b"", b"v", 4).expect("store"), 41);
    }

    #[test]
    fn a_crash_keeps_what_the_last_sync_made_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        let mut s = open(p);
        for i in 1..=3 {
            s.store_msg("k.a", b"", b"v", i).expect("store");
        }
        s.sync().expect("sync");
        // Not synced: like an unsynced message, the skip may be lost.
        s.skip_to(10).expect("skip");
        crash(s);
        let mut s = open(p);
        assert_eq!(counters(&s), (3, 1, 3, 0));
        // Unsynced messages, a skip at the tail, then a sync: all of it.
        s.store_msg("k.a", b"", b"v", 4).expect("store");
        s.skip_to(10).expect("skip");
        s.sync().expect("sync");
        crash(s);
        let mut s = open(p);
        assert_eq!(counters(&s), (4, 1, 10, 6));
        assert_eq!(s.state().last_ts, 4);
        // A skip, a message after it, a sync: the message is at 21.
        s.skip_to(20).expect("skip");
        assert_eq!(s.store_msg("k.b", b"", b"w", 5).expect("store"), 21);
        s.sync().expect("sync");
        crash(s);
        let mut s = open(p);
        assert_eq!(counters(&s), (5, 1, 21, 16));
        assert_eq!(
            s.load(21).expect("load").map(|m| m.payload),
            Some(bytes::Bytes::from_static(b"w"))
        );
        assert_eq!(s.store_msg("k.b", b"", b"x", 6).expect("store"), 22);
        crash(s);
        // That last message was never synced: gone, 21 is the last again.
        let s = open(p);
        assert_eq!(counters(&s), (5, 1, 21, 16));
    }
}
