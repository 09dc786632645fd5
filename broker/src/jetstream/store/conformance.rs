//! Behaviour both stores must share (nats-server semantics), run against
//! [`MemStore`] and [`FileStore`] alike.

use std::time::Duration;

use super::*;

/// A store under test plus what keeps its files alive.
pub(super) struct H {
    pub(super) s: Box<dyn MsgStore>,
    file: bool,
    limits: StoreLimits,
    dir: Option<tempfile::TempDir>,
}

impl H {
    pub(super) fn size(&self, subject: &str, hdr: &[u8], payload: &[u8]) -> u64 {
        if self.file {
            file_store_msg_size(subject, hdr, payload)
        } else {
            mem_store_msg_size(subject, hdr, payload)
        }
    }
    pub(super) fn put(&mut self, subject: &str, payload: &str) -> u64 {
        self.s
            .store_msg(subject, b"", payload.as_bytes(), 0)
            .expect("store")
    }
    pub(super) fn put_ts(&mut self, subject: &str, ts: i64) -> u64 {
        self.s.store_msg(subject, b"", b"x", ts).expect("store")
    }
    /// Closes and reopens a file store (what a restart shows); a no-op for
    /// memory.
    pub(super) fn reopen(&mut self) {
        let Some(dir) = &self.dir else { return };
        let placeholder: Box<dyn MsgStore> = Box::new(MemStore::new(StoreLimits::default()));
        drop(std::mem::replace(&mut self.s, placeholder));
        self.s =
            Box::new(FileStore::open(dir.path(), self.limits.clone(), file_cfg()).expect("reopen"));
    }
    pub(super) fn seqs(&self, filter: &str) -> Vec<u64> {
        let mut out = Vec::new();
        let mut next = 0;
        while let Some(m) = self.s.load_next(filter, next).expect("load_next") {
            out.push(m.seq);
            next = m.seq + 1;
        }
        out
    }
}

pub(super) fn mem(limits: StoreLimits) -> H {
    H {
        s: Box::new(MemStore::new(limits.clone())),
        file: false,
        limits,
        dir: None,
    }
}

/// Small blocks so that every test crosses block boundaries.
fn file_cfg() -> FileStoreConfig {
    FileStoreConfig {
        block_size: 1024,
        cache_blocks: 4,
    }
}

pub(super) fn file(limits: StoreLimits) -> H {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = FileStore::open(dir.path(), limits.clone(), file_cfg()).expect("open");
    H {
        s: Box::new(s),
        file: true,
        limits,
        dir: Some(dir),
    }
}

pub(super) type Mk = fn(StoreLimits) -> H;

/// Runs each named test against both stores; the conformance modules
/// declared after this one use it too (`#[macro_use]`).
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod mem_store {
            $(#[test] fn $name() { super::$name(super::mem) })*
        }
        mod file_store {
            $(#[test] fn $name() { super::$name(super::file) })*
        }
    };
}

conformance!(
    fresh_state,
    store_and_load,
    purge_all_like_nats,
    purge_fresh_store,
    interior_and_front_removes,
    subject_filters,
    last_seq_for_subject_after_removing_the_last,
    filtered_purges,
    compact_purges,
    max_msgs_limit,
    max_bytes_limit,
    per_subject_limit,
    max_age_expiry,
    max_msg_size_and_bad_subjects,
    update_limits_applies_immediately,
    seq_for_time,
    many_blocks_random_ops_match_model,
);

fn fresh_state(mk: Mk) {
    let h = mk(StoreLimits::default());
    assert_eq!(h.s.state(), StoreState::default());
    assert_eq!(h.s.load(1).expect("load"), None);
    assert_eq!(h.s.load_next("", 0).expect("next"), None);
    assert_eq!(h.s.load_last(">").expect("last"), None);
    assert_eq!(h.s.seq_for_time(5), 1);
}

fn store_and_load(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    let hdr = b"NATS/1.0\r\nA: b\r\n\r\n";
    assert_eq!(h.s.store_msg("a.b", hdr, b"one", 10).expect("store"), 1);
    assert_eq!(h.s.store_msg("a.c", b"", b"two", 20).expect("store"), 2);
    assert_eq!(h.s.store_msg("a.b", b"", b"", 30).expect("store"), 3);
    let m = h.s.load(1).expect("load").expect("present");
    assert_eq!(
        (
            m.seq,
            m.ts,
            m.subject.as_str(),
            &m.headers[..],
            &m.payload[..]
        ),
        (1, 10, "a.b", &hdr[..], &b"one"[..])
    );
    let m = h.s.load(3).expect("load").expect("present");
    assert!(m.payload.is_empty() && m.headers.is_empty());
    assert_eq!(h.s.load(0).expect("load"), None);
    assert_eq!(h.s.load(4).expect("load"), None);
    let st = h.s.state();
    let bytes = h.size("a.b", hdr, b"one") + h.size("a.c", b"", b"two") + h.size("a.b", b"", b"");
    assert_eq!(
        st,
        StoreState {
            msgs: 3,
            bytes,
            first_seq: 1,
            first_ts: 10,
            last_seq: 3,
            last_ts: 30,
            num_deleted: 0,
            num_subjects: 2,
        }
    );
}

fn purge_all_like_nats(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    for _ in 0..3 {
        h.put("foo", "x");
    }
    assert_eq!(h.s.purge("", 0, 0).expect("purge"), 3);
    let st = h.s.state();
    assert_eq!((st.msgs, st.bytes, st.first_seq, st.last_seq), (0, 0, 4, 3));
    assert_eq!(st.num_subjects, 0);
    assert_eq!(h.put("foo", "y"), 4);
    let st = h.s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (1, 4, 4));
}

fn purge_fresh_store(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    assert_eq!(h.s.purge("", 0, 0).expect("purge"), 0);
    let st = h.s.state();
    assert_eq!((st.first_seq, st.last_seq), (1, 0));
}

fn interior_and_front_removes(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    for i in 0..5 {
        h.put("s", &format!("{i}"));
    }
    assert!(h.s.remove(3).expect("remove"));
    assert!(!h.s.remove(3).expect("remove again"));
    assert!(!h.s.remove(99).expect("remove missing"));
    let st = h.s.state();
    assert_eq!(
        (st.msgs, st.first_seq, st.last_seq, st.num_deleted),
        (4, 1, 5, 1)
    );
    assert_eq!(h.s.load(3).expect("load"), None);
    assert!(h.s.remove(1).expect("remove"));
    assert!(h.s.remove(2).expect("remove"));
    let st = h.s.state();
    assert_eq!((st.msgs, st.first_seq, st.num_deleted), (2, 4, 0));
    assert!(h.s.remove(5).expect("remove"));
    assert!(h.s.remove(4).expect("remove"));
    let st = h.s.state();
    assert_eq!((st.msgs, st.bytes, st.first_seq, st.last_seq), (0, 0, 6, 5));
    assert_eq!(h.put("s", "again"), 6);
}

fn subject_filters(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    let subjects = ["a.1", "a.2", "b.1", "a.1", "c.x.y", "b.2", "a.2"];
    for s in subjects {
        h.put(s, s);
    }
    assert_eq!(h.seqs(""), vec![1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(h.seqs(">"), vec![1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(h.seqs("a.*"), vec![1, 2, 4, 7]);
    assert_eq!(h.seqs("a.1"), vec![1, 4]);
    assert_eq!(h.seqs("b.>"), vec![3, 6]);
    assert_eq!(h.seqs("c.>"), vec![5]);
    assert_eq!(h.seqs("c.*"), Vec::<u64>::new());
    assert_eq!(h.seqs("nope"), Vec::<u64>::new());
    assert_eq!(
        h.s.load_next("a.*", 5).expect("next").map(|m| m.seq),
        Some(7)
    );
    assert_eq!(h.s.load_next("a.*", 8).expect("next"), None);
    assert_eq!(h.s.load_last("a.*").expect("last").map(|m| m.seq), Some(7));
    assert_eq!(h.s.load_last("b.1").expect("last").map(|m| m.seq), Some(3));
    assert_eq!(h.s.load_last("").expect("last").map(|m| m.seq), Some(7));
    let totals = h.s.subjects_totals("a.*");
    assert_eq!(totals.get("a.1"), Some(&2));
    assert_eq!(totals.get("a.2"), Some(&2));
    assert_eq!(totals.len(), 2);
    assert_eq!(h.s.subjects_totals("").len(), 5);
    assert_eq!(h.s.num_pending("", 0), 7);
    assert_eq!(h.s.num_pending("", 5), 3);
    assert_eq!(h.s.num_pending("a.*", 0), 4);
    assert_eq!(h.s.num_pending("a.*", 2), 3);
    assert_eq!(h.s.num_pending("a.*", 5), 1);
    assert_eq!(h.s.num_pending("a.1", 2), 1);
    assert_eq!(h.s.num_pending("b.*", 8), 0);
    h.s.remove(4).expect("remove");
    assert_eq!(h.seqs("a.1"), vec![1]);
    assert_eq!(h.s.num_pending("a.*", 2), 2);
    assert_eq!(h.s.num_pending("", 2), 5);
    assert_eq!(h.s.state().num_subjects, 5);
    h.s.remove(5).expect("remove");
    assert_eq!(h.s.state().num_subjects, 4);
}

fn last_seq_for_subject_after_removing_the_last(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    for s in ["k.a", "k.b", "k.a", "k.b", "k.a"] {
        h.put(s, "v");
    }
    assert_eq!(h.s.last_seq_for_subject("k.a"), 5);
    assert_eq!(h.s.last_seq_for_subject("k.*"), 0);
    h.s.remove(5).expect("remove");
    assert_eq!(h.s.last_seq_for_subject("k.a"), 3);
    assert_eq!(h.s.load_last("k.a").expect("last").map(|m| m.seq), Some(3));
    h.s.remove(3).expect("remove");
    h.s.remove(1).expect("remove");
    assert_eq!(h.s.last_seq_for_subject("k.a"), 0);
    assert_eq!(h.s.last_seq_for_subject("k.b"), 4);
}

fn filtered_purges(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    for i in 0..20 {
        h.put(
            if (i as u64).is_multiple_of(2) {
                "e.x"
            } else {
                "o.x"
            },
            "v",
        );
    }
    // Purge "e.*" below 10: 1,3,5,7,9.
    assert_eq!(h.s.purge("e.*", 10, 0).expect("purge"), 5);
    assert_eq!(h.seqs("e.x"), vec![11, 13, 15, 17, 19]);
    // Keep the newest 2 of "e.x".
    assert_eq!(h.s.purge("e.x", 0, 2).expect("purge"), 3);
    assert_eq!(h.seqs("e.x"), vec![17, 19]);
    assert_eq!(h.s.purge("e.x", 0, 5).expect("purge"), 0);
    // Everything on o.x.
    assert_eq!(h.s.purge("o.x", 0, 0).expect("purge"), 10);
    assert_eq!(h.seqs(""), vec![17, 19]);
    let st = h.s.state();
    assert_eq!(
        (st.msgs, st.first_seq, st.last_seq, st.num_deleted),
        (2, 17, 20, 2)
    );
    assert_eq!(h.s.purge("nothing", 0, 0).expect("purge"), 0);
    // Keep on the whole stream.
    for _ in 0..5 {
        h.put("z", "v");
    }
    assert_eq!(h.s.purge("", 0, 3).expect("purge"), 4);
    assert_eq!(h.seqs(""), vec![23, 24, 25]);
    assert_eq!(h.s.purge(">", 1, 0).expect("purge"), 0);
}

fn compact_purges(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    for _ in 0..10 {
        h.put("a", "v");
    }
    assert_eq!(h.s.purge("", 5, 0).expect("purge"), 4);
    let st = h.s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (6, 5, 10));
    // Already below the first: nothing.
    assert_eq!(h.s.purge("", 3, 0).expect("purge"), 0);
    // Past the end: empty, next message gets that sequence.
    assert_eq!(h.s.purge("", 100, 0).expect("purge"), 6);
    let st = h.s.state();
    assert_eq!(
        (st.msgs, st.bytes, st.first_seq, st.last_seq),
        (0, 0, 100, 99)
    );
    assert_eq!(h.put("a", "v"), 100);
    assert_eq!(h.s.state().first_seq, 100);
}

fn max_msgs_limit(mk: Mk) {
    let mut h = mk(StoreLimits {
        max_msgs: 5,
        ..Default::default()
    });
    for i in 0..50 {
        h.put(&format!("s.{}", i % 3), "payload");
    }
    let st = h.s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (5, 46, 50));
    assert_eq!(h.s.take_removed(), vec![1..=45]);
    assert!(h.s.take_removed().is_empty());
    assert_eq!(h.s.subjects_totals("").values().sum::<u64>(), 5);
}

fn max_bytes_limit(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    let one = h.size("b", b"", &[0; 100]);
    h.s.update_limits(StoreLimits {
        max_bytes: (one * 3) as i64,
        ..Default::default()
    })
    .expect("limits");
    for _ in 0..10 {
        h.s.store_msg("b", b"", &[0; 100], 0).expect("store");
    }
    let st = h.s.state();
    assert_eq!((st.msgs, st.bytes, st.first_seq), (3, one * 3, 8));
    assert_eq!(h.s.take_removed(), vec![1..=7]);
}

fn per_subject_limit(mk: Mk) {
    let mut h = mk(StoreLimits {
        max_msgs_per_subject: 1,
        ..Default::default()
    });
    for i in 0..30 {
        h.put(&format!("kv.{}", i % 3), &format!("v{i}"));
    }
    let st = h.s.state();
    assert_eq!(
        (st.msgs, st.first_seq, st.last_seq, st.num_deleted),
        (3, 28, 30, 0)
    );
    let m = h.s.load_last("kv.1").expect("last").expect("present");
    assert_eq!(&m.payload[..], b"v28");
    assert_eq!(h.s.last_seq_for_subject("kv.2"), 30);
    assert_eq!(h.s.take_removed(), vec![1..=27]);
    // Raising then lowering the limit trims the history.
    h.s.update_limits(StoreLimits {
        max_msgs_per_subject: 3,
        ..Default::default()
    })
    .expect("limits");
    for _ in 0..4 {
        h.put("kv.0", "more");
    }
    assert_eq!(h.s.subjects_totals("kv.0").get("kv.0"), Some(&3));
    h.s.update_limits(StoreLimits {
        max_msgs_per_subject: 1,
        ..Default::default()
    })
    .expect("limits");
    assert_eq!(h.s.subjects_totals("kv.0").get("kv.0"), Some(&1));
    assert_eq!(h.s.state().msgs, 3);
}

fn max_age_expiry(mk: Mk) {
    let sec = 1_000_000_000i64;
    let mut h = mk(StoreLimits {
        max_age: Duration::from_secs(10),
        ..Default::default()
    });
    for t in 0..40 {
        h.put_ts("t", t * sec);
    }
    assert_eq!(h.s.expire(5 * sec).expect("expire"), 0);
    // Older than 10s at t=25: ts <= 15s go (0..=15 -> 16 msgs).
    assert_eq!(h.s.expire(25 * sec).expect("expire"), 16);
    let st = h.s.state();
    assert_eq!((st.msgs, st.first_seq, st.first_ts), (24, 17, 16 * sec));
    assert_eq!(h.s.take_removed(), vec![1..=16]);
    assert_eq!(h.s.expire(1000 * sec).expect("expire"), 24);
    let st = h.s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 41, 40));
}

fn max_msg_size_and_bad_subjects(mk: Mk) {
    let mut h = mk(StoreLimits {
        max_msg_size: 10,
        ..Default::default()
    });
    assert!(matches!(
        h.s.store_msg("a", b"12345", b"678901", 0),
        Err(StoreError::MsgTooLarge { size: 11, max: 10 })
    ));
    assert_eq!(h.s.store_msg("a", b"12345", b"67890", 0).expect("fits"), 1);
    for bad in ["", "a.*", "a.>", "a..b", "a b"] {
        assert!(
            matches!(
                h.s.store_msg(bad, b"", b"", 0),
                Err(StoreError::InvalidSubject { .. })
            ),
            "{bad:?} accepted"
        );
    }
    assert_eq!(h.s.state().last_seq, 1);
}

fn update_limits_applies_immediately(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    for _ in 0..100 {
        h.put("u", "0123456789");
    }
    h.s.update_limits(StoreLimits {
        max_msgs: 10,
        ..Default::default()
    })
    .expect("limits");
    let st = h.s.state();
    assert_eq!((st.msgs, st.first_seq), (10, 91));
    assert_eq!(h.s.take_removed(), vec![1..=90]);
    assert_eq!(h.seqs("u").len(), 10);
}

fn seq_for_time(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    for t in [10, 20, 30, 40, 50] {
        h.put_ts("t", t);
    }
    assert_eq!(h.s.seq_for_time(0), 1);
    assert_eq!(h.s.seq_for_time(10), 1);
    assert_eq!(h.s.seq_for_time(11), 2);
    assert_eq!(h.s.seq_for_time(50), 5);
    assert_eq!(h.s.seq_for_time(51), 6);
    h.s.remove(2).expect("remove");
    assert_eq!(h.s.seq_for_time(15), 3);
}

/// Random operations on a store with many blocks, checked against a model.
fn many_blocks_random_ops_match_model(mk: Mk) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut h = mk(StoreLimits::default());
    let mut model: BTreeMap<u64, (String, Vec<u8>)> = BTreeMap::new();
    for round in 0..3000 {
        let op = rng.random_range(0..100);
        if op < 70 {
            let subj = format!("m.{}", rng.random_range(0..7));
            let len = rng.random_range(0..60);
            let payload: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let seq = h.s.store_msg(&subj, b"", &payload, round).expect("store");
            model.insert(seq, (subj, payload));
        } else if op < 95 {
            let last = h.s.state().last_seq.max(1);
            let seq = rng.random_range(1..=last);
            assert_eq!(
                h.s.remove(seq).expect("remove"),
                model.remove(&seq).is_some()
            );
        } else {
            let subj = format!("m.{}", rng.random_range(0..7));
            let keep = rng.random_range(0..3);
            let n = h.s.purge(&subj, 0, keep).expect("purge");
            let seqs: Vec<u64> = model
                .iter()
                .filter(|(_, (s, _))| *s == subj)
                .map(|(k, _)| *k)
                .collect();
            let drop = seqs.len().saturating_sub(keep as usize);
            assert_eq!(n as usize, drop);
            for s in &seqs[..drop] {
                model.remove(s);
            }
        }
    }
    let st = h.s.state();
    assert_eq!(st.msgs as usize, model.len());
    let bytes: u64 = model.values().map(|(s, p)| h.size(s, b"", p)).sum();
    assert_eq!(st.bytes, bytes);
    assert_eq!(h.seqs(""), model.keys().copied().collect::<Vec<_>>());
    for i in 0..7 {
        let subj = format!("m.{i}");
        let want: Vec<u64> = model
            .iter()
            .filter(|(_, (s, _))| *s == subj)
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(h.seqs(&subj), want);
        assert_eq!(
            h.s.last_seq_for_subject(&subj),
            want.last().copied().unwrap_or(0)
        );
        let mid = st.last_seq / 2;
        let pending = want.iter().filter(|s| **s >= mid).count() as u64;
        assert_eq!(h.s.num_pending(&subj, mid), pending, "{subj} from {mid}");
    }
    for (seq, (s, p)) in model.iter().step_by(17) {
        let m = h.s.load(*seq).expect("load").expect("present");
        assert_eq!((&m.subject, &m.payload[..]), (s, &p[..]));
    }
    assert_eq!(h.s.num_pending("m.*", 0), model.len() as u64);
}
