//! JetStream file store recovery (`tribune_broker::jetstream::store::
//! FileStore::open`) from whatever a crash or a bad disk leaves in the
//! store's directory.
//!
//! Each run writes messages through the real store API into a fresh
//! directory, closes the store cleanly or "crashes" it (the files exactly as
//! they were before the close's final sync: what a killed process leaves),
//! damages the files, then reopens the store. The input:
//!
//! ```text
//! byte 0   settings: bit 0 = crash instead of a clean close, bits 1-2 =
//!          block size (1024, 1536, 2048, 4096 bytes)
//! byte 1   n: operations that follow (at most 64)
//! n ops    0x00-0xDF  store: subject b & 7, payload (b >> 3) & 7,
//!                     headers b >> 6 (indexes into the tables below)
//!          0xE0-0xEF  remove: the next byte picks the sequence
//!                     (1 + byte % last sequence)
//!          0xF0-0xFF  sync
//! rest     up to 16 corruptions of the files (sorted by name; `file` is
//!          an index into them, modulo their number): kind byte, file byte,
//!          then by kind % 6:
//!          0  xor: offset u16 LE, count byte (1 + c % 16), that many bytes
//!                  XORed into the file at offset % len
//!          1  truncate to u16 LE % (len + 1)
//!          2  append: count byte (1 + c % 64), that many bytes XORed with
//!                  a fixed key stream
//!          3  delete the file
//!          4  zero: offset u16 LE, count byte (1 + c), zeroes written at
//!                  offset % len (a torn write)
//!          5  delete an index file (`file` picks among the .idx files)
//! ```
//!
//! Bytes are XORed in rather than written verbatim so the input never
//! holds a record or index checksum the store compares against: with
//! comparison hints, libFuzzer could otherwise copy one in and forge a
//! record that no store can tell from a real one.
//!
//! Checked, after every reopen that succeeds (failing with an error that
//! names the store's directory is allowed once files are damaged):
//! - recovery never panics and never hangs;
//! - every message `load`, `load_next` and `load_last` return is
//!   byte-for-byte (subject, headers, payload, time) the one written at
//!   that sequence; the last sequence is no later than the last written;
//!   load errors name the store's directory;
//! - when nothing fails to load, the state (msgs, bytes, first sequence
//!   and time, last sequence, subjects, per-subject totals, last sequence
//!   per subject, pending counts) matches what loads, and `load_next`
//!   walks exactly the messages `load` finds;
//! - with no damage, everything is recovered exactly: after a clean close
//!   every live message, and the last sequence; after a crash every message
//!   the last `sync` made durable (and its removals), plus a prefix of the
//!   later messages, with the later removals undone;
//! - the recovered store accepts a new message at `last_seq + 1`, and after
//!   a clean close reopens to the same state and the same answers (nothing
//!   left on disk from before the damage hits a reused sequence).
//!
//! The store lives in `std::env::temp_dir()`; `TMPDIR=/dev/shm` spares the
//! fsyncs and runs it several times faster.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tribune_broker::jetstream::store::{
    file_store_msg_size, FileStore, FileStoreConfig, MsgStore, StoreLimits, StoreState, StoredMsg,
};
use tribune_broker_fuzz::damage::{any_file, damage_files, remove_dir, restore, snapshot, Input};

const SUBJECTS: [&str; 8] = [
    "a",
    "b.c",
    "orders.1",
    "orders.2",
    "k.x.y",
    "a.b.c.d",
    "z",
    "q.long.subject.name",
];
const PAYLOAD_SIZES: [usize; 8] = [0, 1, 5, 40, 120, 300, 700, 1500];
const HEADERS: [&[u8]; 4] = [
    b"",
    b"NATS/1.0\r\n\r\n",
    b"NATS/1.0\r\nX-K: v\r\n\r\n",
    b"NATS/1.0\r\nNats-Msg-Id: 1\r\n\r\n",
];
const BLOCK_SIZES: [u64; 4] = [1024, 1536, 2048, 4096];
const MAX_OPS: usize = 64;
const MAX_CORRUPTIONS: usize = 16;

fn payloads() -> &'static [Vec<u8>; 8] {
    static P: OnceLock<[Vec<u8>; 8]> = OnceLock::new();
    P.get_or_init(|| {
        std::array::from_fn(|i| {
            (0..PAYLOAD_SIZES[i])
                .map(|k| (k * 31 + i * 17 + 3) as u8)
                .collect()
        })
    })
}

/// This process's store directory (emptied before and after each run).
fn store_dir() -> &'static Path {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        std::env::temp_dir().join(format!("tribune-fuzz-filestore-{}", std::process::id()))
    })
}

/// What was written, and what the last `sync` made durable.
#[derive(Default)]
struct Written {
    msgs: BTreeMap<u64, StoredMsg>,
    live: BTreeSet<u64>,
    last: u64,
    synced_live: BTreeSet<u64>,
    synced_last: u64,
}

fn open(dir: &Path, block_size: u64) -> Result<FileStore, String> {
    let cfg = FileStoreConfig {
        block_size,
        cache_blocks: 2,
    };
    FileStore::open(dir, StoreLimits::default(), cfg).map_err(|e| e.to_string())
}

fn write_phase(store: &mut FileStore, inp: &mut Input<'_>) -> Written {
    let mut w = Written::default();
    let n = inp.byte().map_or(0, |b| usize::from(b).min(MAX_OPS));
    for _ in 0..n {
        let Some(b) = inp.byte() else { break };
        match b {
            0x00..=0xdf => {
                let subject = SUBJECTS[usize::from(b & 7)];
                let payload = &payloads()[usize::from((b >> 3) & 7)];
                let headers = HEADERS[usize::from(b >> 6)];
                let ts = 1_000_000 + w.last as i64 * 7;
                let seq = store
                    .store_msg(subject, headers, payload, ts)
                    .expect("store_msg on a healthy store");
                assert_eq!(seq, w.last + 1, "store_msg skipped a sequence");
                w.last = seq;
                w.live.insert(seq);
                w.msgs.insert(
                    seq,
                    StoredMsg {
                        seq,
                        ts,
                        subject: subject.to_owned(),
                        headers: headers.to_vec().into(),
                        payload: payload.clone().into(),
                    },
                );
            }
            0xe0..=0xef => {
                let Some(x) = inp.byte() else { break };
                if w.last == 0 {
                    continue;
                }
                let seq = 1 + u64::from(x) % w.last;
                let removed = store.remove(seq).expect("remove on a healthy store");
                assert_eq!(removed, w.live.remove(&seq), "remove({seq})");
            }
            0xf0..=0xff => {
                store.sync().expect("sync on a healthy store");
                w.synced_live = w.live.clone();
                w.synced_last = w.last;
            }
        }
    }
    w
}

/// Applies the corruptions; returns whether any file changed.
fn corrupt(dir: &Path, inp: &mut Input<'_>) -> bool {
    damage_files(dir, inp, MAX_CORRUPTIONS, |kind| match kind % 6 {
        // Deletes, among the index files.
        5 => (3, |p| p.extension().is_some_and(|e| e == "idx")),
        k => (k, any_file),
    })
}

/// What a store answers to `load` for every sequence that could exist.
#[derive(Debug, PartialEq)]
enum Answer {
    Msg(StoredMsg),
    None,
    Err,
}

fn check_msg(w: &Written, m: &StoredMsg, what: &str) {
    let want = w.msgs.get(&m.seq);
    assert_eq!(
        Some(m),
        want,
        "{what} returned a message never written at sequence {}",
        m.seq
    );
}

/// Checks the recovered store; returns its answers for sequences
/// `0..=w.last + 2`.
fn check_recovered(store: &FileStore, w: &Written, dir: &Path) -> (StoreState, Vec<Answer>) {
    let st = store.state();
    let dir_s = dir.display().to_string();
    assert!(
        st.last_seq <= w.last,
        "last sequence {} was never written (last written {})",
        st.last_seq,
        w.last
    );
    let mut answers = Vec::new();
    let mut loaded = BTreeMap::new();
    let mut errors = 0;
    for seq in 0..=w.last + 2 {
        match store.load(seq) {
            Ok(Some(m)) => {
                assert_eq!(m.seq, seq, "load({seq}) returned sequence {}", m.seq);
                check_msg(w, &m, "load");
                assert!(
                    (st.first_seq..=st.last_seq).contains(&seq),
                    "load({seq}) outside first..last {}..{}",
                    st.first_seq,
                    st.last_seq
                );
                loaded.insert(seq, m.clone());
                answers.push(Answer::Msg(m));
            }
            Ok(None) => answers.push(Answer::None),
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains(&dir_s),
                    "load({seq}) error without the path: {e}"
                );
                errors += 1;
                answers.push(Answer::Err);
            }
        }
    }

    // Walk with load_next.
    let mut walked = Vec::new();
    let mut from = 0;
    let mut walk_failed = false;
    for _ in 0..=w.last + 2 {
        match store.load_next("", from) {
            Ok(Some(m)) => {
                check_msg(w, &m, "load_next");
                assert!(m.seq >= from, "load_next({from}) went back to {}", m.seq);
                from = m.seq + 1;
                walked.push(m);
            }
            Ok(None) => break,
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains(&dir_s), "load_next error without the path: {e}");
                walk_failed = true;
                break;
            }
        }
    }
    if let Ok(Some(m)) = store.load_last("") {
        check_msg(w, &m, "load_last");
    }
    for s in SUBJECTS {
        if let Ok(Some(m)) = store.load_next(s, 0) {
            check_msg(w, &m, "load_next(subject)");
            assert_eq!(m.subject, s, "load_next({s}) returned another subject");
        }
        if let Ok(Some(m)) = store.load_last(s) {
            check_msg(w, &m, "load_last(subject)");
            assert_eq!(m.subject, s, "load_last({s}) returned another subject");
        }
    }
    if errors > 0 || walk_failed {
        return (st, answers);
    }

    // Nothing failed to load: the counters must describe what loads.
    assert_eq!(
        walked,
        loaded.values().cloned().collect::<Vec<_>>(),
        "load_next walk differs from load"
    );
    assert_eq!(st.msgs, loaded.len() as u64, "msgs vs loadable messages");
    let bytes: u64 = loaded
        .values()
        .map(|m| file_store_msg_size(&m.subject, &m.headers, &m.payload))
        .sum();
    assert_eq!(st.bytes, bytes, "bytes vs loadable messages");
    match (loaded.values().next(), loaded.values().next_back()) {
        (Some(first), Some(last)) => {
            assert_eq!((st.first_seq, st.first_ts), (first.seq, first.ts), "first");
            assert!(st.last_seq >= last.seq, "last_seq below a loadable message");
        }
        _ => {
            let want_first = if st.last_seq == 0 { 0 } else { st.last_seq + 1 };
            assert_eq!(st.first_seq, want_first, "first_seq of an empty store");
        }
    }
    assert_eq!(
        store.load_last("").ok().flatten().as_ref(),
        loaded.values().next_back(),
        "load_last"
    );
    let mut per_subject: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for m in loaded.values() {
        let e = per_subject
            .entry(m.subject.clone())
            .or_insert((0, m.seq, 0));
        e.0 += 1;
        e.2 = m.seq;
    }
    assert_eq!(st.num_subjects, per_subject.len() as u64, "num_subjects");
    let totals: BTreeMap<String, u64> = per_subject.iter().map(|(s, v)| (s.clone(), v.0)).collect();
    assert_eq!(store.subjects_totals(">"), totals, "subjects_totals");
    assert_eq!(store.num_pending("", 0), st.msgs, "num_pending");
    for s in SUBJECTS {
        let (count, first, last) = per_subject.get(s).copied().unwrap_or((0, 0, 0));
        assert_eq!(
            store.last_seq_for_subject(s),
            last,
            "last_seq_for_subject({s})"
        );
        assert_eq!(store.num_pending(s, 0), count, "num_pending({s})");
        let next = store.load_next(s, 0).expect("load_next(subject)");
        assert_eq!(
            next.map(|m| m.seq),
            (count > 0).then_some(first),
            "load_next({s})"
        );
        let lastm = store.load_last(s).expect("load_last(subject)");
        assert_eq!(
            lastm.map(|m| m.seq),
            (count > 0).then_some(last),
            "load_last({s})"
        );
    }
    (st, answers)
}

/// With no damage, recovery gives back exactly what was durable.
fn check_exact(st: &StoreState, answers: &[Answer], w: &Written, crash: bool) {
    let live: BTreeSet<u64> = answers
        .iter()
        .filter_map(|a| match a {
            Answer::Msg(m) => Some(m.seq),
            _ => None,
        })
        .collect();
    assert!(
        !answers.contains(&Answer::Err),
        "a message fails to load after an undamaged recovery"
    );
    let want: BTreeSet<u64> = if crash {
        assert!(
            (w.synced_last..=w.last).contains(&st.last_seq),
            "last sequence {} after a crash; synced {}, written {}",
            st.last_seq,
            w.synced_last,
            w.last
        );
        w.synced_live
            .iter()
            .copied()
            .chain(w.synced_last + 1..=st.last_seq)
            .collect()
    } else {
        assert_eq!(st.last_seq, w.last, "last sequence after a clean close");
        w.live.clone()
    };
    assert_eq!(live, want, "live messages after an undamaged recovery");
}

fuzz_target!(|input: &[u8]| {
    let mut inp = Input(input);
    let Some(settings) = inp.byte() else { return };
    let crash = settings & 1 == 1;
    let block_size = BLOCK_SIZES[usize::from((settings >> 1) & 3)];
    let dir = store_dir();
    remove_dir(dir);

    let mut store = open(dir, block_size).expect("open a fresh store");
    let w = write_phase(&mut store, &mut inp);
    if crash {
        let snap = snapshot(dir);
        drop(store);
        restore(dir, &snap);
    } else {
        drop(store);
    }
    let damaged = corrupt(dir, &mut inp);

    let mut store = match open(dir, block_size) {
        Ok(s) => s,
        Err(e) => {
            assert!(damaged, "recovering an undamaged store failed: {e}");
            assert!(
                e.contains(&dir.display().to_string()),
                "recovery error without the path: {e}"
            );
            remove_dir(dir);
            return;
        }
    };
    let (st, mut answers) = check_recovered(&store, &w, dir);
    if !damaged {
        check_exact(&st, &answers, &w, crash);
    }

    // The recovered store takes new messages, and survives another restart.
    let ts = 9_000_000;
    let seq = store
        .store_msg("after.recovery", b"", b"new", ts)
        .unwrap_or_else(|e| panic!("store_msg after recovery: {e}"));
    assert_eq!(seq, st.last_seq + 1, "sequence of the first new message");
    let new = StoredMsg {
        seq,
        ts,
        subject: "after.recovery".into(),
        headers: Vec::new().into(),
        payload: b"new".to_vec().into(),
    };
    assert_eq!(
        store.load(seq).expect("load the new message").as_ref(),
        Some(&new),
        "the new message"
    );
    let st_after = store.state();
    drop(store);
    let store = open(dir, block_size)
        .unwrap_or_else(|e| panic!("reopening a recovered store after a clean close: {e}"));
    assert_eq!(store.state(), st_after, "state across a clean restart");
    let mut w2 = Written {
        last: w.last.max(seq),
        ..Written::default()
    };
    w2.msgs = w.msgs;
    w2.msgs.insert(seq, new.clone());
    let (_, again) = check_recovered(&store, &w2, dir);
    // Same answers for the old sequences (the new one may be among them).
    if let Some(Answer::None) = answers.get(seq as usize) {
        answers[seq as usize] = Answer::Msg(new);
    }
    assert_eq!(
        &again[..answers.len()],
        &answers[..],
        "answers across a clean restart"
    );
    drop(store);
    remove_dir(dir);
});
