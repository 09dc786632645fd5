//! File-store specific truncate tests: what a truncate leaves on disk, and
//! that stopping it between any two of its durable steps (as a crash would)
//! recovers either the old or the truncated store. (The shared behaviour is
//! in the conformance tests; SIGKILLs in `crash_tests`.)

use std::collections::BTreeMap;
use std::path::Path;

use super::block::{block_path, dlog_path, index_path};
use super::dlog::{read_dlog, read_floor};
use super::truncate::crash_hook::STOP_AFTER;
use super::*;

fn open(dir: &Path) -> FileStore {
    let cfg = FileStoreConfig {
        block_size: 1024,
        cache_blocks: 4,
    };
    FileStore::open(dir, StoreLimits::default(), cfg).expect("open")
}

/// 100-byte records (30 overhead + 3 subject + 67 payload): ten per 1 KiB
/// block, so block k holds sequences 10k-9..=10k.
fn payload(seq: u64) -> Vec<u8> {
    let mut p = format!("{seq:08}").into_bytes();
    p.resize(67, b'.');
    p
}

fn fill(s: &mut FileStore, n: u64) {
    for _ in 0..n {
        let seq = s.state().last_seq + 1;
        let subject = ["f.a", "f.b", "f.c"][(seq % 3) as usize];
        assert_eq!(
            s.store_msg(subject, b"", &payload(seq), seq as i64 * 10)
                .expect("store"),
            seq
        );
    }
}

/// What a store shows: state, messages, per-subject counts and lasts.
#[derive(Debug, PartialEq)]
struct View {
    state: StoreState,
    msgs: BTreeMap<u64, StoredMsg>,
    totals: BTreeMap<String, u64>,
    lasts: Vec<u64>,
}

fn view(s: &FileStore) -> View {
    let mut msgs = BTreeMap::new();
    let mut next = 0;
    while let Some(m) = s.load_next("", next).expect("load_next") {
        next = m.seq + 1;
        msgs.insert(m.seq, m);
    }
    View {
        state: s.state(),
        msgs,
        totals: s.subjects_totals(""),
        lasts: ["f.a", "f.b", "f.c"]
            .iter()
            .map(|f| s.last_seq_for_subject(f))
            .collect(),
    }
}

fn files(dir: &Path, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .collect();
    v.sort();
    v
}

#[test]
fn cut_clips_the_delete_log_and_drops_later_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let mut s = open(p);
    fill(&mut s, 60);
    for seq in [23, 27, 45] {
        assert!(s.remove(seq).expect("remove"));
    }
    s.sync().expect("sync");
    assert_eq!(s.block_count(), 6);
    s.truncate(25).expect("truncate");
    assert_eq!(
        files(p, ".blk"),
        vec!["0000000001.blk", "0000000002.blk", "0000000003.blk"]
    );
    assert_eq!(
        std::fs::metadata(block_path(p, 3)).expect("stat").len(),
        8 + 5 * 100
    );
    // The cut block's index is stale (rebuilt on use), its delete log keeps
    // only what is at or below 25, and nothing of blocks 4..6 is left.
    assert!(!index_path(p, 3).exists());
    assert_eq!(read_dlog(&dlog_path(p, 3)).expect("dlog").0, vec![(23, 23)]);
    assert_eq!(files(p, ".dlog"), vec!["0000000003.dlog"]);
    assert!(files(p, ".idx").iter().all(|n| n.as_str() < "0000000003"));
    assert!(!p.join("truncate").exists());
    assert!(!p.join("floor").exists());
    let st = s.state();
    assert_eq!((st.msgs, st.last_seq, st.last_ts), (24, 25, 250));
    // The next message starts a new block; sequence 27 is live again.
    assert_eq!(s.store_msg("f.a", b"", b"new", 1).expect("store"), 26);
    assert_eq!(s.store_msg("f.a", b"", b"new", 2).expect("store"), 27);
    assert_eq!(s.block_count(), 4);
    let want = view(&s);
    drop(s);
    let s = open(p);
    assert_eq!(view(&s), want);
    assert_eq!(
        &s.load(27).expect("load").expect("live").payload[..],
        b"new"
    );
    assert_eq!(s.load(23).expect("load"), None);
}

#[test]
fn truncate_into_a_removed_block_remembers_the_last_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let mut s = open(p);
    fill(&mut s, 60);
    for seq in 11..=30 {
        s.remove(seq).expect("remove");
    }
    s.sync().expect("sync");
    // Blocks 2 and 3 emptied and went: no block holds 25.
    assert_eq!(s.block_count(), 4);
    s.truncate(25).expect("truncate");
    assert_eq!(files(p, ".blk"), vec!["0000000001.blk"]);
    let floor = read_floor(p).expect("floor").expect("written");
    assert_eq!((floor.seq, floor.last), (0, 25));
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (10, 1, 25));
    drop(s);
    // Reopened: the last block ends at 10, the next message is 26 all the
    // same, in a block of its own.
    let mut s = open(p);
    assert_eq!(s.state().last_seq, 25);
    assert_eq!(s.store_msg("f.b", b"", b"x", 7).expect("store"), 26);
    assert_eq!(s.store_msg("f.b", b"", b"y", 8).expect("store"), 27);
    let want = view(&s);
    drop(s);
    let mut s = open(p);
    assert_eq!(view(&s), want);
    assert_eq!(s.last_seq_for_subject("f.b"), 27);
    // Back into the gap again, below the floor's last.
    s.truncate(20).expect("truncate");
    let floor = read_floor(p).expect("floor").expect("written");
    assert_eq!((floor.seq, floor.last), (0, 20));
    drop(s);
    let s = open(p);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (10, 1, 20));
}

#[test]
fn purging_after_a_truncate_into_a_gap_keeps_the_last_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let mut s = open(p);
    fill(&mut s, 60);
    for seq in 11..=30 {
        s.remove(seq).expect("remove");
    }
    s.truncate(25).expect("truncate");
    // The purge rewrites the floor: it must go on remembering 25.
    assert_eq!(s.purge("", 5, 0).expect("purge"), 4);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (6, 5, 25));
    drop(s);
    let mut s = open(p);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (6, 5, 25));
    assert_eq!(s.store_msg("f.a", b"", b"x", 1).expect("store"), 26);
}

#[test]
fn leftover_journal_temp_file_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    fill(&mut open(p), 15);
    std::fs::write(p.join("truncate.tmp"), b"half written").expect("write");
    let s = open(p);
    assert_eq!(s.state().last_seq, 15);
    assert!(!p.join("truncate.tmp").exists());
}

/// A scenario: how to build the store, and where to truncate it.
struct Scenario {
    name: &'static str,
    setup: fn(&mut FileStore),
    seq: u64,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "cut inside a block, removals on both sides",
        setup: |s| {
            fill(s, 60);
            for seq in [23, 27, 41] {
                s.remove(seq).expect("remove");
            }
        },
        seq: 25,
    },
    Scenario {
        name: "at a block boundary",
        setup: |s| fill(s, 60),
        seq: 20,
    },
    Scenario {
        name: "the active block, not synced yet",
        setup: |s| fill(s, 55),
        seq: 53,
    },
    Scenario {
        name: "into blocks removed earlier",
        setup: |s| {
            fill(s, 60);
            for seq in 11..=30 {
                s.remove(seq).expect("remove");
            }
        },
        seq: 25,
    },
    Scenario {
        name: "below a purged prefix",
        setup: |s| {
            fill(s, 60);
            s.purge("", 40, 0).expect("purge");
        },
        seq: 30,
    },
    Scenario {
        name: "to zero",
        setup: |s| {
            fill(s, 35);
            s.remove(3).expect("remove");
        },
        seq: 0,
    },
];

/// The old and the truncated views of a scenario, from an uninterrupted run.
fn reference(sc: &Scenario) -> (View, View) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    (sc.setup)(&mut s);
    let old = view(&s);
    s.truncate(sc.seq).expect("truncate");
    let new = view(&s);
    drop(s);
    assert_eq!(view(&open(dir.path())), new, "{}: reopened", sc.name);
    (old, new)
}

/// Runs the truncate with `STOP_AFTER` at `step`; true when it stopped.
fn stopped_truncate(dir: &Path, sc: &Scenario, step: u32) -> bool {
    let mut s = open(dir);
    (sc.setup)(&mut s);
    STOP_AFTER.with(|h| h.set(Some(step)));
    let res = s.truncate(sc.seq);
    STOP_AFTER.with(|h| h.set(None));
    if res.is_ok() {
        return false;
    }
    assert!(
        s.store_msg("f.z", b"", b"", 0).is_err(),
        "{}: a store whose truncate failed must refuse changes",
        sc.name
    );
    // Dropped without syncing anything (it failed), like a crash.
    true
}

#[test]
fn stopping_at_every_step_recovers_the_old_or_the_truncated_store() {
    for sc in SCENARIOS {
        let (old, new) = reference(sc);
        let mut steps = 0;
        for step in 1.. {
            assert!(step < 100, "{}: truncate never completes", sc.name);
            let dir = tempfile::tempdir().expect("tempdir");
            let p = dir.path();
            if !stopped_truncate(p, sc, step) {
                break;
            }
            steps += 1;
            let mut s = open(p);
            // Step 1 is before the journal is written: nothing happened.
            let want = if step == 1 { &old } else { &new };
            assert_eq!(&view(&s), want, "{}: stopped at step {step}", sc.name);
            assert!(!p.join("truncate").exists(), "{}: journal left", sc.name);
            let next = want.state.last_seq + 1;
            assert_eq!(s.store_msg("f.z", b"", b"after", 1).expect("store"), next);
            drop(s);
            // The journal never comes back to cut what followed.
            let s = open(p);
            assert_eq!(s.state().last_seq, next, "{}: step {step}", sc.name);
            assert_eq!(
                &s.load(next).expect("load").expect("live").payload[..],
                b"after"
            );
        }
        assert!(steps >= 3, "{}: only {steps} steps", sc.name);
    }
}

#[test]
fn a_crash_while_finishing_an_interrupted_truncate_is_finished_later() {
    let sc = &SCENARIOS[0];
    let (_, new) = reference(sc);
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    // Stopped right after the journal was written.
    assert!(stopped_truncate(p, sc, 2));
    // Each open stops its redo one step further, then one completes.
    let cfg = FileStoreConfig {
        block_size: 1024,
        cache_blocks: 4,
    };
    let mut stopped = 0;
    for step in 1..100 {
        STOP_AFTER.with(|h| h.set(Some(step)));
        let res = FileStore::open(p, StoreLimits::default(), cfg.clone());
        STOP_AFTER.with(|h| h.set(None));
        match res {
            Err(_) => stopped += 1,
            Ok(s) => {
                assert_eq!(view(&s), new);
                break;
            }
        }
    }
    assert!(stopped >= 2, "redo stopped only {stopped} times");
    assert!(!p.join("truncate").exists());
    assert_eq!(view(&open(p)), new);
}
