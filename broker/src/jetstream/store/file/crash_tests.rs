//! Crash test: a child process (this test binary re-executed with an
//! environment switch) appends, removes and syncs in a loop, printing what
//! each `sync` made durable; the parent SIGKILLs it at random points,
//! reopens the store and checks that everything acknowledged is there (and
//! every acknowledged removal is gone), in order, with the right content.
//! The same directory is reused across kills, so recovery of a recovered
//! store is exercised too.

use std::collections::BTreeSet;
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
