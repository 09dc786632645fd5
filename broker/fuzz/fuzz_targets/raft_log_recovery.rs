//! Raft log recovery (`tribune_broker::raft::log::LogStore::open_with`)
//! from whatever a crash or a bad disk leaves in the log's directory.
//!
//! Each run drives a fresh log the way openraft does (appends of entries
//! numbered on from the last, truncations of the uncommitted tail by a new
//! leader, purges of the committed head, votes and committed ids that only
//! grow), closes it cleanly or "crashes" it (the files exactly as they
//! were before the handle was dropped, once a vote saved last, which waits
//! for the file work queued before it, is on disk), damages the files, then
//! reopens it. The copy is only taken at such a quiet point: files read
//! one by one while the writer works would be no state a crash leaves (the
//! log's own order of writes is what makes a crash safe). The input:
//!
//! ```text
//! byte 0   settings: bit 0 = crash instead of a clean close, bits 1-2 =
//!          segment bytes (100, 256, 1024, 64 MiB), bit 3 = no zeros
//!          ahead of the newest record, bit 4 = no entry cache
//! byte 1   n: operations that follow (at most 48)
//! n ops    0x00-0x9F  append 1 + (b & 7) entries, payload size (b >> 3) & 3
//!                     (0, 9, 60, 300 bytes)
//!          0xA0-0xBF  a new leader truncates: the next byte picks the first
//!                     index cut (past the committed one); the term goes up
//!          0xC0-0xDF  purge: the next byte picks the last index purged (at
//!                     most the committed one)
//!          0xE0-0xEF  commit: the next byte picks the committed index
//!          0xF0-0xFF  vote for the current term
//! rest     up to 16 corruptions of the files (sorted by path; `file` is
//!          an index into them, modulo their number): kind byte, file byte,
//!          then the arguments of damage kind % 5 (xor, truncate, append,
//!          delete, zero: `tribune_broker_fuzz::damage::damage_file`)
//! ```
//!
//! Checked, after every reopen that succeeds (failing with an error that
//! names the log's directory is allowed once files are damaged):
//! - recovery never panics and never hangs;
//! - the log holds a contiguous run of entries after its purged id, each
//!   one exactly (log id and payload) the entry last written at its index:
//!   never one a truncation removed, never one that was never written;
//! - the vote is the last one saved, or none once files are damaged; the
//!   committed id is never past the last entry nor past what was saved;
//! - with no damage, everything is recovered exactly: the entries, the
//!   purged id and the vote, and after a clean close the committed id;
//! - the recovered log takes the next entry, and after a clean close
//!   reopens to the same state and entries.
//!
//! The log lives in `std::env::temp_dir()`; `TMPDIR=/dev/shm` spares the
//! fsyncs and runs it several times faster.
#![no_main]

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use openraft::storage::{LogState, RaftLogReader, RaftLogStorage};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
use tribune_broker::raft::log::{wait_closed, LogOptions, LogStore};
use tribune_broker_fuzz::damage::{any_file, damage_files, remove_dir, restore, snapshot, Input};

openraft::declare_raft_types!(
    /// String commands, u64 node ids: all the log needs to know.
    pub TC
);

type Store = LogStore<TC>;

const SEGMENT_BYTES: [u64; 4] = [100, 256, 1024, 64 << 20];
const PAYLOAD_SIZES: [usize; 4] = [0, 9, 60, 300];
const MAX_OPS: usize = 48;
const MAX_CORRUPTIONS: usize = 16;
/// The node that leads every term here: only terms matter to the log.
const NODE: u64 = 1;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        // Timers: the writer arms one to write the committed id later.
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime")
    })
}

/// This process's log directory (emptied before and after each run).
fn log_dir() -> &'static Path {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("tribune-fuzz-raftlog-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create the log directory");
        // Errors name the canonical path.
        d.canonicalize().expect("resolve the log directory")
    })
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, NODE), index)
}

fn payload(index: u64, term: u64, size: usize) -> String {
    let mut s = format!("{index}/{term}:");
    while s.len() < size {
        s.push(char::from(b'a' + ((index + s.len() as u64) % 26) as u8));
    }
    s
}

/// What the log should hold: every entry from index 0 to the last, purged
/// ones included (damage may take the purged id with it), and the state
/// saved beside them.
#[derive(Debug, Clone, PartialEq)]
struct Model {
    term: u64,
    purged: Option<LogId<u64>>,
    /// Entries `0..next_index()`, in order.
    entries: Vec<(LogId<u64>, String)>,
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
}

impl Model {
    fn new() -> Model {
        Model {
            term: 1,
            purged: None,
            entries: Vec::new(),
            vote: None,
            committed: None,
        }
    }
    fn first_index(&self) -> u64 {
        self.purged.map_or(0, |p| p.index + 1)
    }
    fn next_index(&self) -> u64 {
        self.entries.len() as u64
    }
    fn committed_index(&self) -> Option<u64> {
        self.committed.map(|c| c.index)
    }
    /// The entry last written at `index`, purged or not.
    fn at(&self, index: u64) -> Option<&(LogId<u64>, String)> {
        self.entries.get(usize::try_from(index).ok()?)
    }
    /// The entries after `purged`.
    fn after(&self, purged: Option<LogId<u64>>) -> &[(LogId<u64>, String)] {
        let first = purged.map_or(0, |p| p.index + 1) as usize;
        self.entries.get(first..).unwrap_or_default()
    }
}

fn options(settings: u8) -> LogOptions {
    let mut o = LogOptions {
        segment_bytes: SEGMENT_BYTES[usize::from((settings >> 1) & 3)],
        ..LogOptions::default()
    };
    if settings & 8 != 0 {
        o.prealloc_bytes = 0;
    }
    if settings & 16 != 0 {
        o.cache_bytes = 0;
    }
    // The committed id is written as soon as it changes: the runs are short.
    o.committed_interval = Duration::from_millis(1);
    o
}

fn open(dir: &Path, opts: &LogOptions) -> Result<Store, String> {
    LogStore::open_with(dir, opts.clone()).map_err(|e| format!("{e:#}"))
}

fn entry(id: LogId<u64>, data: &str) -> Entry<TC> {
    Entry {
        log_id: id,
        payload: EntryPayload::Normal(data.to_string()),
    }
}

/// Drives the log as openraft would; returns what it should now hold.
fn write_phase(store: &mut Store, inp: &mut Input<'_>) -> Model {
    let mut m = Model::new();
    let n = inp.byte().map_or(0, |b| usize::from(b).min(MAX_OPS));
    for _ in 0..n {
        let Some(b) = inp.byte() else { break };
        match b {
            0x00..=0x9f => {
                let count = 1 + u64::from(b & 7);
                let size = PAYLOAD_SIZES[usize::from((b >> 3) & 3)];
                let first = m.next_index();
                let batch: Vec<(LogId<u64>, String)> = (first..first + count)
                    .map(|i| (log_id(m.term, i), payload(i, m.term, size)))
                    .collect();
                store
                    .append_durably(batch.iter().map(|(id, d)| entry(*id, d)).collect())
                    .unwrap_or_else(|e| panic!("append on a healthy log: {e}"));
                m.entries.extend(batch);
            }
            0xa0..=0xbf => {
                let Some(x) = inp.byte() else { break };
                // Only what is not committed (nor purged) is ever cut.
                let lowest = m
                    .committed_index()
                    .map_or(0, |c| c + 1)
                    .max(m.first_index());
                let next = m.next_index();
                if lowest < next {
                    let cut = lowest + u64::from(x) % (next - lowest);
                    let id = m.at(cut).expect("a live entry").0;
                    runtime()
                        .block_on(store.truncate(id))
                        .unwrap_or_else(|e| panic!("truncate on a healthy log: {e}"));
                    m.entries.truncate(cut as usize);
                }
                m.term += 1;
            }
            0xc0..=0xdf => {
                let Some(x) = inp.byte() else { break };
                let Some(c) = m.committed_index() else {
                    continue;
                };
                let lowest = m.first_index();
                if lowest > c {
                    continue;
                }
                let upto = lowest + u64::from(x) % (c - lowest + 1);
                let id = m.at(upto).expect("a live entry").0;
                runtime()
                    .block_on(store.purge(id))
                    .unwrap_or_else(|e| panic!("purge on a healthy log: {e}"));
                m.purged = Some(id);
            }
            0xe0..=0xef => {
                let Some(x) = inp.byte() else { break };
                let lowest = m.committed_index().map_or(m.first_index(), |c| c + 1);
                let next = m.next_index();
                if lowest >= next {
                    continue;
                }
                let at = lowest + u64::from(x) % (next - lowest);
                let id = m.at(at).expect("a live entry").0;
                runtime()
                    .block_on(store.save_committed(Some(id)))
                    .unwrap_or_else(|e| panic!("save_committed on a healthy log: {e}"));
                m.committed = Some(id);
            }
            0xf0..=0xff => {
                let vote = Vote::new_committed(m.term, NODE);
                runtime()
                    .block_on(store.save_vote(&vote))
                    .unwrap_or_else(|e| panic!("save_vote on a healthy log: {e}"));
                m.vote = Some(vote);
            }
        }
    }
    m
}

/// Applies the corruptions; returns whether any file changed.
fn corrupt(dir: &Path, inp: &mut Input<'_>) -> bool {
    damage_files(dir, inp, MAX_CORRUPTIONS, |kind| (kind % 5, any_file))
}

/// What a reopened log holds.
#[derive(Debug, PartialEq)]
struct Recovered {
    state: (Option<LogId<u64>>, Option<LogId<u64>>),
    entries: Vec<(LogId<u64>, String)>,
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
}

fn read_all(store: &mut Store) -> Recovered {
    runtime().block_on(async {
        let LogState {
            last_purged_log_id,
            last_log_id,
        } = store.get_log_state().await.expect("log state");
        let entries = store
            .try_get_log_entries(..)
            .await
            .expect("read the recovered entries")
            .into_iter()
            .map(|e| {
                let d = match e.payload {
                    EntryPayload::Normal(d) => d,
                    other => panic!("an entry this run never wrote: {other:?}"),
                };
                (e.log_id, d)
            })
            .collect();
        Recovered {
            state: (last_purged_log_id, last_log_id),
            entries,
            vote: store.read_vote().await.expect("read the vote"),
            committed: store.read_committed().await.expect("read the committed id"),
        }
    })
}

/// Checks a recovered log against what was written.
fn check(r: &Recovered, m: &Model, damaged: bool) {
    let (purged, last) = r.state;
    // Contiguous after the purged id, ending at the last log id.
    let first = purged.map_or(0, |p| p.index + 1);
    for (k, (id, _)) in r.entries.iter().enumerate() {
        assert_eq!(
            id.index,
            first + k as u64,
            "entries not contiguous after {purged:?}: {:?}",
            r.entries
        );
    }
    assert_eq!(
        last,
        r.entries.last().map(|e| e.0).or(purged),
        "last log id vs the entries"
    );
    // Each one exactly the entry last written at its index.
    for (id, d) in &r.entries {
        assert_eq!(
            m.at(id.index),
            Some(&(*id, d.clone())),
            "recovered an entry that is not the live one at index {}",
            id.index
        );
    }
    assert!(
        r.vote.is_none() || r.vote == m.vote,
        "vote {:?}, saved {:?}",
        r.vote,
        m.vote
    );
    if let Some(c) = r.committed {
        assert!(
            Some(c.index) <= last.map(|l| l.index),
            "committed {c} past the last entry {last:?}"
        );
        assert!(
            Some(c) <= m.committed,
            "committed {c} past the saved {:?}",
            m.committed
        );
    }
    if !damaged {
        assert_eq!(purged, m.purged, "purged id after an undamaged recovery");
        assert_eq!(
            r.entries,
            m.after(purged),
            "entries after an undamaged recovery"
        );
        assert_eq!(r.vote, m.vote, "vote after an undamaged recovery");
    }
}

fuzz_target!(|input: &[u8]| {
    let mut inp = Input(input);
    let Some(settings) = inp.byte() else { return };
    let crash = settings & 1 == 1;
    let opts = options(settings);
    let dir = log_dir();
    remove_dir(dir);

    let mut store = open(dir, &opts).expect("open a fresh log");
    let mut m = write_phase(&mut store, &mut inp);
    if crash {
        let vote = m.vote.unwrap_or_else(|| Vote::new_committed(m.term, NODE));
        runtime()
            .block_on(store.save_vote(&vote))
            .unwrap_or_else(|e| panic!("save_vote on a healthy log: {e}"));
        m.vote = Some(vote);
        let snap = snapshot(dir);
        drop(store);
        wait_closed(dir, Duration::from_secs(10)).expect("the dropped log closes");
        restore(dir, &snap);
    } else {
        drop(store);
        wait_closed(dir, Duration::from_secs(10)).expect("the dropped log closes");
    }
    let damaged = corrupt(dir, &mut inp);

    let mut store = match open(dir, &opts) {
        Ok(s) => s,
        Err(e) => {
            assert!(damaged, "recovering an undamaged log failed: {e}");
            assert!(
                e.contains(&dir.display().to_string()),
                "recovery error without the path: {e}"
            );
            return;
        }
    };
    let r = read_all(&mut store);
    check(&r, &m, damaged);
    if !damaged && !crash {
        assert_eq!(r.committed, m.committed, "committed id after a clean close");
    }

    // The recovered log takes the next entry, and survives another restart.
    let next = r.state.1.map_or(0, |l| l.index + 1);
    let term = m.term + 1;
    let new = (log_id(term, next), payload(next, term, 20));
    store
        .append_durably(vec![entry(new.0, &new.1)])
        .unwrap_or_else(|e| panic!("append after recovery: {e}"));
    let after = read_all(&mut store);
    let mut want = r.entries.clone();
    want.push(new.clone());
    assert_eq!(
        after.entries, want,
        "entries after appending to the recovered log"
    );
    drop(store);
    wait_closed(dir, Duration::from_secs(10)).expect("the dropped log closes");
    let mut store = open(dir, &opts)
        .unwrap_or_else(|e| panic!("reopening a recovered log after a clean close: {e}"));
    let again = read_all(&mut store);
    assert_eq!(again.state, after.state, "log state across a clean restart");
    assert_eq!(
        again.entries, after.entries,
        "entries across a clean restart"
    );
    assert_eq!(again.vote, after.vote, "vote across a clean restart");
    drop(store);
    wait_closed(dir, Duration::from_secs(10)).expect("the dropped log closes");
    remove_dir(dir);
});
