//! File-store specific tests: restarts, torn and corrupt tails, delete
//! durability, index rebuilds and bounded memory.

use std::collections::BTreeMap;
use std::path::Path;

use rand::{Rng, SeedableRng};

use super::record::OVERHEAD;
use super::*;
use crate::jetstream::store::{file_store_msg_size, mem_store_msg_size};

fn cfg(block_size: u64) -> FileStoreConfig {
    FileStoreConfig {
        block_size,
        cache_blocks: 8,
    }
}

fn open(dir: &Path, block_size: u64) -> FileStore {
    FileStore::open(dir, StoreLimits::default(), cfg(block_size)).expect("open")
}

fn payload(seq: u64) -> Vec<u8> {
    format!("payload-{seq}-")
        .repeat((seq % 7) as usize + 1)
        .into_bytes()
}

/// Every live message, by sequence.
fn dump(s: &FileStore) -> BTreeMap<u64, StoredMsg> {
    let mut out = BTreeMap::new();
    let mut next = 0;
    while let Some(m) = s.load_next("", next).expect("load_next") {
        next = m.seq + 1;
        out.insert(m.seq, m);
    }
    out
}

fn block_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "blk"))
        .collect();
    v.sort();
    v
}

#[test]
fn restart_recovers_state_messages_and_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let (state, msgs, totals) = {
        let mut s = open(dir.path(), 2048);
        for i in 0..600u64 {
            let subj = format!("r.{}", rng.random_range(0..9));
            s.store_msg(
                &subj,
                if i.is_multiple_of(5) {
                    b"NATS/1.0\r\n\r\n"
                } else {
                    b""
                },
                &payload(i + 1),
                i as i64,
            )
            .expect("store");
        }
        for _ in 0..150 {
            let seq = rng.random_range(1..=600);
            s.remove(seq).expect("remove");
        }
        s.purge("r.3", 0, 0).expect("purge");
        s.purge("r.4", 0, 2).expect("purge keep");
        s.sync().expect("sync");
        assert!(s.block_count() > 10);
        (s.state(), dump(&s), s.subjects_totals(""))
    };
    let mut s = open(dir.path(), 2048);
    assert_eq!(s.state(), state);
    assert_eq!(dump(&s), msgs);
    assert_eq!(s.subjects_totals(""), totals);
    for i in 0..9 {
        let subj = format!("r.{i}");
        let last = msgs
            .values()
            .filter(|m| m.subject == subj)
            .map(|m| m.seq)
            .max();
        assert_eq!(s.last_seq_for_subject(&subj), last.unwrap_or(0));
    }
    assert_eq!(s.store_msg("r.0", b"", b"after", 0).expect("store"), 601);
    drop(s);
    let s = open(dir.path(), 2048);
    assert_eq!(s.state().last_seq, 601);
    assert_eq!(s.state().msgs, state.msgs + 1);
}

/// Builds a single-block store of `n` messages and returns the block bytes
/// and the offset where the last record starts.
fn single_block(dir: &Path, n: u64) -> (Vec<u8>, usize) {
    let mut s = open(dir, 1 << 20);
    let mut last_start = BLOCK_MAGIC_LEN;
    for seq in 1..=n {
        last_start = s.blocks.last().map_or(BLOCK_MAGIC_LEN, |b| b.len as usize);
        s.store_msg("t.a", b"", &payload(seq), seq as i64)
            .expect("store");
    }
    s.sync().expect("sync");
    drop(s);
    let files = block_files(dir);
    assert_eq!(files.len(), 1);
    (std::fs::read(&files[0]).expect("read"), last_start)
}

const BLOCK_MAGIC_LEN: usize = 8;

fn check_prefix(dir: &Path, expect_last: u64) {
    let s = open(dir, 1 << 20);
    let st = s.state();
    assert_eq!((st.msgs, st.last_seq), (expect_last, expect_last));
    let all = dump(&s);
    assert_eq!(all.len() as u64, expect_last);
    for (seq, m) in &all {
        assert_eq!(m.payload[..], payload(*seq)[..], "seq {seq}");
    }
}

#[test]
fn torn_tail_at_every_offset_of_the_last_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (full, last_start) = single_block(dir.path(), 20);
    let path = &block_files(dir.path())[0];
    for cut in last_start..full.len() {
        std::fs::write(path, &full[..cut]).expect("write");
        check_prefix(dir.path(), 19);
        // Recovery cut the torn bytes away.
        assert_eq!(
            std::fs::metadata(path).expect("stat").len() as usize,
            last_start
        );
    }
    std::fs::write(path, &full).expect("write");
    check_prefix(dir.path(), 20);
    // After a torn tail the next message reuses the lost sequence.
    std::fs::write(path, &full[..full.len() - 3]).expect("write");
    let mut s = open(dir.path(), 1 << 20);
    assert_eq!(
        s.store_msg("t.a", b"", &payload(20), 20).expect("store"),
        20
    );
    drop(s);
    check_prefix(dir.path(), 20);
}

#[test]
fn torn_tail_at_random_points_garbage_and_flipped_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (full, _) = single_block(dir.path(), 40);
    let path = &block_files(dir.path())[0];
    // Record boundaries, to know how many records survive a cut.
    let mut ends = Vec::new();
    let mut off = BLOCK_MAGIC_LEN;
    for seq in 1..=40 {
        off += OVERHEAD + 3 + payload(seq).len();
        ends.push(off);
    }
    assert_eq!(off, full.len());
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for _ in 0..40 {
        let cut = rng.random_range(0..full.len());
        std::fs::write(path, &full[..cut]).expect("write");
        check_prefix(
            dir.path(),
            ends.iter().filter(|e| **e <= cut).count() as u64,
        );
    }
    // Garbage after the last record (zeros, random bytes, a plausible length).
    for garbage in [
        vec![0u8; 100],
        (0..77).map(|_| rng.random()).collect::<Vec<u8>>(),
        60u32.to_le_bytes().to_vec(),
    ] {
        let mut bytes = full.clone();
        bytes.extend_from_slice(&garbage);
        std::fs::write(path, &bytes).expect("write");
        check_prefix(dir.path(), 40);
        assert_eq!(
            std::fs::metadata(path).expect("stat").len() as usize,
            full.len()
        );
    }
    // A flipped byte anywhere in a record drops it and everything after it
    // in the last block (nothing after it can be trusted to be in order).
    for _ in 0..30 {
        let at = rng.random_range(BLOCK_MAGIC_LEN..full.len());
        let mut bytes = full.clone();
        bytes[at] ^= 1 << rng.random_range(0..8);
        std::fs::write(path, &bytes).expect("write");
        check_prefix(dir.path(), ends.iter().filter(|e| **e <= at).count() as u64);
    }
}

#[test]
fn torn_tail_only_affects_the_last_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut s = open(dir.path(), 1024);
        for seq in 1..=100 {
            s.store_msg("m", b"", &payload(seq), 0).expect("store");
        }
    }
    let files = block_files(dir.path());
    assert!(files.len() > 3);
    let last = files.last().expect("last");
    let bytes = std::fs::read(last).expect("read");
    std::fs::write(last, &bytes[..bytes.len() - 1]).expect("write");
    let s = open(dir.path(), 1024);
    assert_eq!(s.state().last_seq, 99);
    assert_eq!(dump(&s).len(), 99);
}

#[test]
fn deletes_and_purges_survive_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    {
        let mut s = open(p, 1024);
        for seq in 1..=200 {
            s.store_msg(&format!("d.{}", seq % 4), b"", &payload(seq), 0)
                .expect("store");
        }
        for seq in [5, 6, 7, 50, 199] {
            assert!(s.remove(seq).expect("remove"));
        }
        s.sync().expect("sync");
    }
    let mut s = open(p, 1024);
    for seq in [5, 6, 7, 50, 199] {
        assert_eq!(s.load(seq).expect("load"), None, "{seq} came back");
    }
    assert_eq!(s.state().msgs, 195);
    // Emptying whole blocks removes their files once synced.
    let before = block_files(p).len();
    for seq in 1..=100 {
        s.remove(seq).expect("remove");
    }
    s.sync().expect("sync");
    assert!(block_files(p).len() < before);
    drop(s);
    let mut s = open(p, 1024);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (99, 101, 200));
    // Removing the newest message keeps last_seq across a restart.
    s.remove(200).expect("remove");
    drop(s);
    let mut s = open(p, 1024);
    assert_eq!(s.state().last_seq, 200);
    assert_eq!(s.last_seq_for_subject("d.0"), 196);
    // Purge everything: first = last + 1 survives although no block is left.
    assert_eq!(s.purge("", 0, 0).expect("purge"), 98);
    drop(s);
    assert!(block_files(p).is_empty());
    let mut s = open(p, 1024);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 201, 200));
    assert_eq!(s.store_msg("x", b"", b"", 0).expect("store"), 201);
    // Compact past the end.
    s.purge("", 1000, 0).expect("purge");
    drop(s);
    let mut s = open(p, 1024);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 1000, 999));
    for _ in 0..50 {
        s.store_msg("y", b"", b"0123456789", 0).expect("store");
    }
    // Compact inside the range, across blocks.
    assert_eq!(s.purge("", 1030, 0).expect("purge"), 30);
    drop(s);
    let s = open(p, 1024);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (20, 1030, 1049));
    assert_eq!(
        dump(&s).keys().copied().collect::<Vec<_>>(),
        (1030..1050).collect::<Vec<_>>()
    );
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let want = {
        let mut s = open(p, 1024);
        for seq in 1..=300 {
            s.store_msg(&format!("i.{}", seq % 3), b"", &payload(seq), 0)
                .expect("store");
        }
        dump(&s)
    };
    let idx: Vec<_> = std::fs::read_dir(p)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    assert!(idx.len() > 5);
    std::fs::remove_file(&idx[0]).expect("rm");
    std::fs::write(&idx[1], b"garbage").expect("write");
    let mut bytes = std::fs::read(&idx[2]).expect("read");
    bytes[40] ^= 0xff;
    std::fs::write(&idx[2], &bytes).expect("write");
    let s = open(p, 1024);
    assert_eq!(dump(&s), want);
    assert_eq!(s.subjects_totals("").values().sum::<u64>(), 300);
    assert!(idx[0].exists(), "index not rewritten");
    // Removing an index while open is also survivable (lazy load rebuilds).
    drop(s);
    let s = open(p, 1024);
    for f in &idx {
        std::fs::remove_file(f).expect("rm");
    }
    assert_eq!(dump(&s), want);
}

#[test]
fn memory_stays_bounded_and_sparse_filters_skip_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let n = 200_000u64;
    {
        let mut s = open(p, 16 * 1024);
        for seq in 1..=n {
            let subj = if seq.is_multiple_of(50_000) {
                "rare.x".to_owned()
            } else {
                format!("bulk.{}", seq % 100)
            };
            s.store_msg(&subj, b"", &seq.to_le_bytes(), seq as i64)
                .expect("store");
            if seq.is_multiple_of(10_000) {
                s.sync().expect("sync");
            }
        }
        assert!(s.block_count() > 300, "{} blocks", s.block_count());
        for seq in (1..=n).step_by(997) {
            let m = s.load(seq).expect("load").expect("present");
            assert_eq!(m.payload[..], seq.to_le_bytes());
        }
        assert!(s.loaded_block_indexes() <= 8);
        assert_eq!(s.num_pending("bulk.7", 100_000), 1000);
        assert!(s.loaded_block_indexes() <= 8);
    }
    // Big cache so the count shows which blocks a sparse scan touched.
    let cfg = FileStoreConfig {
        block_size: 16 * 1024,
        cache_blocks: 10_000,
    };
    let s = FileStore::open(p, StoreLimits::default(), cfg).expect("open");
    assert_eq!(s.state().msgs, n);
    // Opening reads only the first message (for its timestamp).
    assert!(s.loaded_block_indexes() <= 1);
    let mut rare = Vec::new();
    let mut next = 0;
    while let Some(m) = s.load_next("rare.*", next).expect("next") {
        rare.push(m.seq);
        next = m.seq + 1;
    }
    assert_eq!(rare, vec![50_000, 100_000, 150_000, 200_000]);
    assert!(
        s.loaded_block_indexes() <= 8,
        "{} blocks loaded for 4 messages",
        s.loaded_block_indexes()
    );
}

#[test]
fn dropping_without_sync_flushes_and_delete_removes_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("stream");
    {
        let mut s = open(&p, 1024);
        for seq in 1..=10 {
            s.store_msg("a", b"", &payload(seq), 0).expect("store");
        }
        s.remove(3).expect("remove");
    }
    let s = open(&p, 1024);
    assert_eq!(s.state().msgs, 9);
    Box::new(s).delete().expect("delete");
    assert!(!p.exists());
}

#[test]
fn byte_accounting_matches_nats_server_formulas() {
    // filestore.go fileStoreMsgSize: 22 + subj + msg + 8, plus 4 + hdr when
    // there are headers; memstore.go memStoreMsgSize: subj + hdr + msg + 16.
    assert_eq!(file_store_msg_size("foo", b"", b"hello"), 38);
    assert_eq!(file_store_msg_size("foo", &[0; 12], b"hello"), 54);
    assert_eq!(mem_store_msg_size("foo", &[0; 12], b"hello"), 36);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path(), 1024);
    s.store_msg("foo", b"", b"hello", 0).expect("store");
    s.store_msg("foo", &[b'h'; 12], b"hello", 0).expect("store");
    assert_eq!(s.state().bytes, 38 + 54);
    drop(s);
    assert_eq!(open(dir.path(), 1024).state().bytes, 38 + 54);
}

#[test]
fn bad_config_and_foreign_files_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = FileStoreConfig {
        block_size: 10,
        cache_blocks: 1,
    };
    assert!(matches!(
        FileStore::open(dir.path(), StoreLimits::default(), bad),
        Err(StoreError::Config(_))
    ));
    std::fs::write(dir.path().join("0000000001.blk"), b"definitely not a block").expect("write");
    assert!(matches!(
        FileStore::open(dir.path(), StoreLimits::default(), cfg(1024)),
        Err(StoreError::Corrupt { .. })
    ));
}

/// Found by the `filestore_recovery` fuzz target: a damaged record cut the
/// last block short, but its delete log still held removals of the lost
/// sequences, so the new messages that reused them vanished at the next
/// restart.
#[test]
fn cut_tail_drops_stale_delete_log_ranges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let mut s = open(p, 1 << 20);
    for seq in 1..=6 {
        s.store_msg("t.a", b"", &payload(seq), seq as i64)
            .expect("store");
    }
    for seq in [1, 4, 5] {
        assert!(s.remove(seq).expect("remove"));
    }
    drop(s);
    // Damage record 3: recovery keeps 1..=2 of the only block.
    let path = &block_files(p)[0];
    let mut bytes = std::fs::read(path).expect("read");
    let at = BLOCK_MAGIC_LEN
        + (1..=2)
            .map(|s| OVERHEAD + 3 + payload(s).len())
            .sum::<usize>();
    bytes[at + OVERHEAD] ^= 0x10;
    std::fs::write(path, &bytes).expect("write");
    let mut s = open(p, 1 << 20);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (1, 2, 2));
    for seq in 3..=6 {
        let got = s
            .store_msg("t.b", b"", b"new", 100 + seq as i64)
            .expect("store");
        assert_eq!(got, seq);
    }
    drop(s);
    let s = open(p, 1 << 20);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (5, 2, 6));
    let new: Vec<u64> = dump(&s)
        .values()
        .filter(|m| m.subject == "t.b" && &m.payload[..] == b"new")
        .map(|m| m.seq)
        .collect();
    assert_eq!(new, vec![3, 4, 5, 6], "new messages at reused sequences");
}
