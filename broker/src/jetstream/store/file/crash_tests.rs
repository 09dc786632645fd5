//! Crash test: a child process (this test binary re-executed with an
//! environment switch) appends, removes and syncs in a loop, printing what
//! each `sync` made durable; the parent SIGKILLs it at random points,
//! reopens the store and checks that everything acknowledged is there (and
//! every acknowledged removal is gone), in order, with the right content.
//! The same directory is reused across kills, so recovery of a recovered
//! store is exercised too.
//!
//! A second pair does the same with truncates in the loop: after a kill the
//! store must be exactly what was acknowledged (plus, possibly, unsynced
//! messages of the current generation), an interrupted truncate must show
//! either the old or the truncated store, and truncated content must never
//! come back under a reused sequence number.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use rand::Rng;

use super::{FileStore, FileStoreConfig};
use crate::jetstream::store::{MsgStore, StoreLimits};

const CHILD_DIR_ENV: &str = "TRIBUNE_STORE_CRASH_CHILD_DIR";
const CHILD_TEST: &str = "jetstream::store::file::crash_tests::crash_child";

fn cfg() -> FileStoreConfig {
    FileStoreConfig {
        block_size: 4096,
        cache_blocks: 4,
    }
}

fn subject(seq: u64) -> String {
    format!("crash.{}", seq % 5)
}

fn content(seq: u64) -> Vec<u8> {
    format!("<{seq}>")
        .repeat((seq % 40) as usize + 1)
        .into_bytes()
}

/// After storing `seq`, the child removes this one (if any).
fn removal_after(seq: u64) -> Option<u64> {
    (seq.is_multiple_of(13) && seq > 5).then(|| seq - 5)
}

/// The child side; a no-op in a normal test run.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let mut s = FileStore::open(Path::new(&dir), StoreLimits::default(), cfg()).expect("open");
    let mut rng = rand::rng();
    let mut out = std::io::stdout().lock();
    loop {
        let mut removed = Vec::new();
        for _ in 0..rng.random_range(1..20) {
            let seq = s.state().last_seq + 1;
            assert_eq!(
                s.store_msg(&subject(seq), b"", &content(seq), seq as i64)
                    .expect("store"),
                seq
            );
            if let Some(r) = removal_after(seq) {
                if s.remove(r).expect("remove") {
                    removed.push(r);
                }
            }
        }
        s.sync().expect("sync");
        for r in removed {
            writeln!(out, "DEL {r}").expect("stdout");
        }
        writeln!(out, "SYNC {}", s.state().last_seq).expect("stdout");
        out.flush().expect("stdout");
    }
}

#[test]
fn sigkill_at_random_points_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current_exe");
    let mut rng = rand::rng();
    let mut acked_last = 0u64;
    let mut acked_removed = BTreeSet::new();
    for round in 0..20 {
        let kill_after = rng.random_range(0..40);
        let mut child = Command::new(&exe)
            .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut syncs = 0;
        let mut killed = false;
        if kill_after == 0 {
            child.kill().expect("kill");
            killed = true;
        }
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("SYNC ") {
                acked_last = acked_last.max(n.parse().expect("seq"));
                syncs += 1;
                if !killed && syncs >= kill_after {
                    // SIGKILL: no destructors, no final sync.
                    child.kill().expect("kill");
                    killed = true;
                }
            } else if let Some(n) = line.strip_prefix("DEL ") {
                acked_removed.insert(n.parse::<u64>().expect("seq"));
            }
        }
        let status = child.wait().expect("wait");
        assert!(
            killed && !status.success(),
            "round {round}: child ended on its own: {status}"
        );

        let s = FileStore::open(dir.path(), StoreLimits::default(), cfg()).expect("reopen");
        let st = s.state();
        assert!(
            st.last_seq >= acked_last,
            "round {round}: last {} < acked {acked_last}",
            st.last_seq
        );
        let mut prev = 0;
        let mut next = 0;
        let mut present = BTreeSet::new();
        while let Some(m) = s.load_next("", next).expect("load_next") {
            assert!(m.seq > prev, "out of order");
            assert_eq!(m.subject, subject(m.seq));
            assert_eq!(m.payload[..], content(m.seq)[..], "seq {} content", m.seq);
            prev = m.seq;
            next = m.seq + 1;
            present.insert(m.seq);
        }
        assert_eq!(present.len() as u64, st.msgs);
        for seq in 1..=acked_last {
            let maybe_removed = (seq + 5).is_multiple_of(13);
            if acked_removed.contains(&seq) {
                assert!(
                    !present.contains(&seq),
                    "round {round}: removed {seq} came back"
                );
            } else if !maybe_removed {
                assert!(
                    present.contains(&seq),
                    "round {round}: acknowledged {seq} lost"
                );
            }
        }
    }
    assert!(acked_last > 0);
    eprintln!(
        "crash test: {acked_last} messages acknowledged, {} removals",
        acked_removed.len()
    );
}

const TRUNC_CHILD_DIR_ENV: &str = "TRIBUNE_STORE_TRUNCATE_CRASH_CHILD_DIR";
const TRUNC_CHILD_TEST: &str = "jetstream::store::file::crash_tests::truncate_crash_child";

/// Content of `seq` as stored by the child generation `tag` (a new one per
/// child run and per truncate, so a resurrected old message is detectable).
fn tagged(tag: &str, seq: u64) -> Vec<u8> {
    format!("{tag}:{seq};")
        .repeat((seq % 20) as usize + 1)
        .into_bytes()
}

/// The child side of the truncate crash test; a no-op in a normal run.
/// Prints `TAG t` (its generation), `RM r` (removed, durable at the next
/// sync), `SYNC n`, and `TRUNC? t` / `TRUNC t tag` around each truncate
/// (which it starts only with everything synced).
#[test]
fn truncate_crash_child() {
    let Ok(dir) = std::env::var(TRUNC_CHILD_DIR_ENV) else {
        return;
    };
    let mut s = FileStore::open(Path::new(&dir), StoreLimits::default(), cfg()).expect("open");
    let mut rng = rand::rng();
    let mut out = std::io::stdout().lock();
    let mut tag = format!("g{}", rng.random::<u32>());
    // The test harness may have left "test ... " on the current line.
    writeln!(out, "\nTAG {tag}").expect("stdout");
    loop {
        for _ in 0..rng.random_range(1..15) {
            let seq = s.state().last_seq + 1;
            let stored = s
                .store_msg(&subject(seq), b"", &tagged(&tag, seq), seq as i64)
                .expect("store");
            assert_eq!(stored, seq);
            if rng.random_range(0..6) == 0 {
                let r = rng.random_range(seq.saturating_sub(10).max(1)..=seq);
                if s.remove(r).expect("remove") {
                    writeln!(out, "RM {r}").expect("stdout");
                }
            }
        }
        s.sync().expect("sync");
        writeln!(out, "SYNC {}", s.state().last_seq).expect("stdout");
        out.flush().expect("stdout");
        if rng.random_range(0..3) == 0 {
            let st = s.state();
            let t = match rng.random_range(0..20) {
                0 => 0,
                1 => st.first_seq.saturating_sub(2),
                _ => rng.random_range(st.last_seq.saturating_sub(40)..=st.last_seq),
            };
            writeln!(out, "TRUNC? {t}").expect("stdout");
            out.flush().expect("stdout");
            s.truncate(t).expect("truncate");
            tag = format!("g{}", rng.random::<u32>());
            writeln!(out, "TRUNC {t} {tag}").expect("stdout");
            out.flush().expect("stdout");
        }
    }
}

/// What the parent knows must be in the store.
#[derive(Clone, Debug, Default)]
struct Model {
    /// Exact content of every live message up to `upto`; every other
    /// sequence up to it is gone.
    known: BTreeMap<u64, Vec<u8>>,
    upto: u64,
    /// Removed, but not yet synced: may or may not be gone.
    maybe_gone: BTreeSet<u64>,
    /// Generation of messages above `upto` (stored, not yet synced).
    tag: String,
}

impl Model {
    fn truncated(&self, t: u64) -> Model {
        let mut m = self.clone();
        m.known.retain(|s, _| *s <= t);
        m.upto = t;
        m
    }

    /// Why `present` (with `last_seq`) does not fit this model, if it does not.
    fn mismatch(&self, present: &BTreeMap<u64, Vec<u8>>, last_seq: u64) -> Option<String> {
        if last_seq < self.upto {
            return Some(format!("last {last_seq} < acknowledged {}", self.upto));
        }
        for (seq, want) in &self.known {
            match present.get(seq) {
                Some(got) if got != want => {
                    return Some(format!(
                        "{seq} has other content: {:?}, not {:?}",
                        String::from_utf8_lossy(&got[..got.len().min(24)]),
                        String::from_utf8_lossy(&want[..want.len().min(24)])
                    ))
                }
                None if !self.maybe_gone.contains(seq) => {
                    return Some(format!("acknowledged {seq} lost"))
                }
                _ => {}
            }
        }
        for (seq, got) in present {
            if self.known.contains_key(seq) {
                continue;
            }
            if *seq <= self.upto {
                return Some(format!("{seq} came back"));
            }
            if *got != tagged(&self.tag, *seq) {
                return Some(format!("unsynced {seq} is not of the current generation"));
            }
        }
        None
    }
}

#[test]
fn sigkill_around_truncates_recovers_old_or_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current_exe");
    let mut rng = rand::rng();
    let mut model = Model::default();
    let (mut truncates, mut mid_truncate_kills) = (0, 0);
    for round in 0..24 {
        // Kill after some syncs, or as soon as the child starts its Nth
        // truncate (somewhere inside it, or just before or after).
        let kill_after_syncs = rng.random_range(1..30);
        let kill_at_truncate = (round % 2 == 0).then(|| rng.random_range(1..6));
        let mut child = Command::new(&exe)
            .args([
                TRUNC_CHILD_TEST,
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(TRUNC_CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let (mut syncs, mut started) = (0, 0);
        let mut pending: Option<u64> = None;
        let mut killed = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut words = line.split_whitespace();
            let (Some(kind), Some(arg)) = (words.next(), words.next()) else {
                continue;
            };
            match kind {
                "TAG" => model.tag = arg.to_owned(),
                "RM" => {
                    model.maybe_gone.insert(arg.parse().expect("seq"));
                }
                "SYNC" => {
                    let n: u64 = arg.parse().expect("seq");
                    for seq in model.upto + 1..=n {
                        model.known.insert(seq, tagged(&model.tag, seq));
                    }
                    model.upto = model.upto.max(n);
                    for r in std::mem::take(&mut model.maybe_gone) {
                        model.known.remove(&r);
                    }
                    syncs += 1;
                }
                "TRUNC?" => {
                    pending = Some(arg.parse().expect("seq"));
                    started += 1;
                }
                "TRUNC" => {
                    let t: u64 = arg.parse().expect("seq");
                    model = model.truncated(t);
                    model.tag = words.next().expect("tag").to_owned();
                    pending = None;
                    truncates += 1;
                }
                _ => {}
            }
            let kill = if let Some(n) = kill_at_truncate {
                kind == "TRUNC?" && started >= n
            } else {
                kind == "SYNC" && syncs >= kill_after_syncs
            };
            if kill && !killed {
                // SIGKILL: no destructors, no final sync.
                child.kill().expect("kill");
                killed = true;
            }
        }
        let status = child.wait().expect("wait");
        assert!(
            killed && !status.success(),
            "round {round}: child ended on its own: {status}"
        );

        let s = FileStore::open(dir.path(), StoreLimits::default(), cfg()).expect("reopen");
        let last_seq = s.state().last_seq;
        let mut present = BTreeMap::new();
        let mut next = 0;
        while let Some(m) = s.load_next("", next).expect("load_next") {
            assert_eq!(m.subject, subject(m.seq));
            next = m.seq + 1;
            present.insert(m.seq, m.payload.to_vec());
        }
        assert_eq!(present.len() as u64, s.state().msgs);
        let old = model.mismatch(&present, last_seq);
        match pending {
            None => assert_eq!(old, None, "round {round}"),
            Some(t) => {
                mid_truncate_kills += 1;
                let new = model.truncated(t).mismatch(&present, last_seq);
                let new = new.or((last_seq != t).then(|| format!("last {last_seq} != {t}")));
                assert!(
                    old.is_none() || new.is_none(),
                    "round {round}: truncate to {t} interrupted: neither old ({old:?}) nor truncated ({new:?})"
                );
            }
        }
        // What was recovered is what the next child starts from.
        model = Model {
            known: present,
            upto: last_seq,
            ..Model::default()
        };
    }
    assert!(truncates > 0);
    eprintln!(
        "truncate crash test: {truncates} truncates acknowledged, {mid_truncate_kills} kills during one"
    );
}
