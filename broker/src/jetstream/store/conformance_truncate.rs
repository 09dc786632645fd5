//! Truncate behaviour both stores must share, run against [`MemStore`] and
//! [`FileStore`] alike (with the harness of the other conformance tests):
//! a truncated store must answer exactly like a store that only ever saw
//! the history the truncate keeps, before and after new messages and, for
//! files, a reopen.

use super::conformance::{file, mem, Mk, H};
use super::*;

conformance!(
    truncate_in_the_middle_is_as_if_never_stored,
    truncate_at_last_is_a_noop_and_beyond_is_an_error,
    truncate_below_first_and_to_zero,
    truncate_after_deletes_and_purges,
    truncate_across_block_boundaries,
    truncate_drops_pending_removal_notices,
    truncate_random_ops_match_replayed_history,
);

pub(super) mod truncate_support {
    //! A store's history as operations, so that "as if the truncated
    //! messages had never been stored" can be checked against a store that
    //! replays only what the truncate keeps. The skip tests compare views
    //! with it too.

    use super::*;

    #[derive(Clone, Debug)]
    pub(in crate::jetstream::store) enum Op {
        Put {
            subject: String,
            headers: bool,
            payload: Vec<u8>,
            ts: i64,
        },
        Remove(u64),
        /// Everything on a subject filter (no keep, no sequence: those
        /// depend on messages above the truncate point).
        Purge(String),
    }

    pub(in crate::jetstream::store) fn put(subject: &str, payload_len: usize, ts: i64) -> Op {
        Op::Put {
            subject: subject.to_owned(),
            headers: payload_len.is_multiple_of(3),
            payload: (0..payload_len)
                .map(|i| (i * 7 + payload_len) as u8)
                .collect(),
            ts,
        }
    }

    pub(in crate::jetstream::store) fn apply(h: &mut H, op: &Op) {
        match op {
            Op::Put {
                subject,
                headers,
                payload,
                ts,
            } => {
                let hdr: &[u8] = if *headers {
                    b"NATS/1.0\r\nX: y\r\n\r\n"
                } else {
                    b""
                };
                h.s.store_msg(subject, hdr, payload, *ts).expect("store");
            }
            Op::Remove(seq) => {
                h.s.remove(*seq).expect("remove");
            }
            Op::Purge(filter) => {
                h.s.purge(filter, 0, 0).expect("purge");
            }
        }
    }

    /// The history a store truncated to `seq` should look like: the first
    /// `seq` puts and what removed any of them.
    pub(super) fn keep_history(ops: &[Op], seq: u64) -> Vec<Op> {
        let mut puts = 0;
        ops.iter()
            .filter(|op| match op {
                Op::Put { .. } => {
                    puts += 1;
                    puts <= seq
                }
                Op::Remove(s) => *s <= seq,
                Op::Purge(_) => true,
            })
            .cloned()
            .collect()
    }

    pub(super) fn replay(mk: Mk, ops: &[Op]) -> H {
        let mut h = mk(StoreLimits::default());
        for op in ops {
            apply(&mut h, op);
        }
        h
    }

    /// Everything a store answers, for comparing two stores that should
    /// hold the same messages.
    #[derive(Debug, PartialEq)]
    pub(in crate::jetstream::store) struct View {
        state: StoreState,
        msgs: Vec<StoredMsg>,
        totals: BTreeMap<String, u64>,
        filters: Vec<FilterView>,
        for_time: Vec<u64>,
    }

    /// What a store answers for one subject or filter.
    #[derive(Debug, PartialEq)]
    pub(in crate::jetstream::store) struct FilterView {
        filter: String,
        last_seq_for_subject: u64,
        load_last: Option<u64>,
        /// `num_pending` and `load_next` from a few starts.
        pending: Vec<u64>,
        next: Vec<Option<u64>>,
    }

    /// `last_ts` is left out unless `last_ts` says it must match (it
    /// depends on what the store still knows about a removed message).
    pub(in crate::jetstream::store) fn view(h: &H, filters: &[&str], last_ts: bool) -> View {
        let mut state = h.s.state();
        if !last_ts {
            state.last_ts = 0;
        }
        let mut msgs = Vec::new();
        let mut next = 0;
        while let Some(m) = h.s.load_next("", next).expect("load_next") {
            next = m.seq + 1;
            msgs.push(m);
        }
        let st = h.s.state();
        let starts = [
            0,
            1,
            st.first_seq,
            (st.first_seq + st.last_seq) / 2,
            st.last_seq,
            st.last_seq + 1,
        ];
        let filters = filters
            .iter()
            .map(|f| {
                let last = h.s.load_last(f).expect("load_last").map(|m| m.seq);
                let pending = starts.iter().map(|s| h.s.num_pending(f, *s)).collect();
                let next = starts
                    .iter()
                    .map(|s| h.s.load_next(f, *s).expect("load_next").map(|m| m.seq))
                    .collect();
                FilterView {
                    filter: f.to_string(),
                    last_seq_for_subject: h.s.last_seq_for_subject(f),
                    load_last: last,
                    pending,
                    next,
                }
            })
            .collect();
        let for_time = [0, 15, 100, 1000, 5000, i64::MAX]
            .iter()
            .map(|t| h.s.seq_for_time(*t))
            .collect();
        View {
            state,
            msgs,
            totals: h.s.subjects_totals(""),
            filters,
            for_time,
        }
    }

    /// Asserts `h` (truncated to `seq`) answers like `want` (the replayed
    /// history); `last_ts` is compared when message `seq` is live.
    pub(super) fn assert_like(h: &H, want: &H, seq: u64, filters: &[&str], what: &str) {
        let live = want.s.load(seq).expect("load").is_some();
        assert_eq!(
            view(h, filters, live),
            view(want, filters, live),
            "{what} (truncated to {seq})"
        );
    }
}

use truncate_support::{apply, assert_like, keep_history, put, replay, Op};

const T_FILTERS: &[&str] = &["", ">", "t.a", "t.b", "t.c", "t.*", "u.>", "u.x.y", "none"];

fn truncate_in_the_middle_is_as_if_never_stored(mk: Mk) {
    let subjects = ["t.a", "t.b", "u.x.y", "t.a", "t.c"];
    let ops: Vec<Op> = (0..40)
        .map(|i| put(subjects[i % 5], (i * 13) % 50, i as i64 * 10))
        .collect();
    let mut h = replay(mk, &ops);
    h.s.truncate(23).expect("truncate");
    let mut want = replay(mk, &keep_history(&ops, 23));
    assert_like(&h, &want, 23, T_FILTERS, "after truncate");
    let st = h.s.state();
    assert_eq!(
        (st.msgs, st.first_seq, st.last_seq, st.last_ts),
        (23, 1, 23, 220)
    );
    assert_eq!(h.s.load(24).expect("load"), None);
    assert_eq!(h.s.last_seq_for_subject("t.c"), 20);
    // New messages continue at seq + 1, in both.
    for i in 0..5 {
        let op = put(subjects[(i + 2) % 5], i, 1000 + i as i64);
        apply(&mut h, &op);
        apply(&mut want, &op);
    }
    assert_eq!(h.s.state().last_seq, 28);
    assert_like(&h, &want, 28, T_FILTERS, "after new messages");
    h.reopen();
    assert_like(&h, &want, 28, T_FILTERS, "after reopen");
    assert!(h.s.take_removed().is_empty());
}

fn truncate_at_last_is_a_noop_and_beyond_is_an_error(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    assert!(h.s.truncate(0).is_ok());
    assert_eq!(h.s.state(), StoreState::default());
    assert!(matches!(
        h.s.truncate(1),
        Err(StoreError::TruncateBeyondLast { seq: 1, last: 0 })
    ));
    for _ in 0..5 {
        h.put("t.a", "v");
    }
    h.s.remove(5).expect("remove");
    let before = h.s.state();
    h.s.truncate(5).expect("truncate at last");
    assert_eq!(h.s.state(), before);
    let err = h.s.truncate(6).expect_err("beyond last");
    assert!(
        err.to_string().contains("sequence 6") && err.to_string().contains("is 5"),
        "{err}"
    );
    assert_eq!(h.s.state(), before);
    assert_eq!(h.put("t.a", "v"), 6);
}

fn truncate_below_first_and_to_zero(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    for i in 0..10 {
        h.put_ts(if i % 2 == 0 { "t.a" } else { "t.b" }, i);
    }
    // A prefix purged: first is 6.
    assert_eq!(h.s.purge("", 6, 0).expect("purge"), 5);
    h.s.truncate(3).expect("truncate");
    let st = h.s.state();
    assert_eq!(
        (
            st.msgs,
            st.bytes,
            st.first_seq,
            st.last_seq,
            st.num_subjects,
            st.num_deleted
        ),
        (0, 0, 4, 3, 0, 0)
    );
    assert!(h.s.subjects_totals("").is_empty());
    assert_eq!(h.s.last_seq_for_subject("t.a"), 0);
    assert_eq!(h.s.load_next("", 0).expect("next"), None);
    assert_eq!(h.s.num_pending("", 0), 0);
    assert_eq!(h.s.seq_for_time(0), 4);
    h.reopen();
    let st = h.s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 4, 3));
    assert_eq!(h.put("t.c", "v"), 4);
    assert_eq!(h.put("t.c", "w"), 5);
    h.reopen();
    let st = h.s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (2, 4, 5));
    assert_eq!(h.seqs(""), vec![4, 5]);
    // A prefix removed one by one: first is 4 + 3.
    for seq in 4..7 {
        h.put("t.d", "x");
        h.s.remove(seq).expect("remove");
    }
    h.s.truncate(5).expect("truncate");
    let st = h.s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 6, 5));
    h.reopen();
    let st = h.s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 6, 5));
    // Truncating to 0 is a reset to the fresh state (nats-server's).
    for _ in 0..20 {
        h.put("t.a", "some payload");
    }
    h.s.truncate(0).expect("truncate to 0");
    assert_eq!(h.s.state(), StoreState::default());
    h.reopen();
    assert_eq!(h.s.state(), StoreState::default());
    assert_eq!(h.put("t.a", "v"), 1);
    h.reopen();
    let st = h.s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (1, 1, 1));
}

fn truncate_after_deletes_and_purges(mk: Mk) {
    let subjects = ["t.a", "t.b", "t.c", "u.x.y"];
    let mut ops: Vec<Op> = (0..60)
        .map(|i| put(subjects[i % 4], 20 + i % 11, i as i64 * 10))
        .collect();
    // Interior removes, the target itself, the next one and a range across.
    for seq in [3, 17, 30, 31, 35, 36, 37, 38, 39, 40, 41, 55] {
        ops.push(Op::Remove(seq));
    }
    ops.push(Op::Purge("t.c".into()));
    let mut h = replay(mk, &ops);
    // 30 is removed: last becomes 30 all the same.
    h.s.truncate(30).expect("truncate");
    let mut want = replay(mk, &keep_history(&ops, 30));
    assert_like(&h, &want, 30, T_FILTERS, "truncated to a removed sequence");
    assert_eq!(h.s.state().last_seq, 30);
    assert_eq!(h.s.subjects_totals("t.c").get("t.c"), None);
    // Removals recorded above 30 do not hide the re-stored messages.
    let mut more = Vec::new();
    for i in 0..15 {
        more.push(put(subjects[i % 4], 5 + i, 2000 + i as i64));
    }
    for op in &more {
        apply(&mut h, op);
        apply(&mut want, op);
    }
    assert_eq!(h.seqs("").iter().filter(|s| **s > 30).count(), 15);
    assert_like(&h, &want, 45, T_FILTERS, "re-stored");
    h.reopen();
    assert_like(&h, &want, 45, T_FILTERS, "re-stored, reopened");
    // Truncating again, into the re-stored part.
    h.s.truncate(33).expect("truncate");
    let mut all = keep_history(&ops, 30);
    all.extend(more);
    let want = replay(mk, &keep_history(&all, 33));
    assert_like(&h, &want, 33, T_FILTERS, "second truncate");
    h.reopen();
    assert_like(&h, &want, 33, T_FILTERS, "second truncate, reopened");
}

fn truncate_across_block_boundaries(mk: Mk) {
    // 100-byte file records: ten per 1 KiB block, so block k holds
    // 10k-9..=10k and a truncate to a multiple of 10 drops whole blocks.
    let ops: Vec<Op> = (0..300)
        .map(|i| Op::Put {
            subject: ["t.a", "t.b", "t.c"][i % 3].to_owned(),
            headers: false,
            payload: vec![i as u8; 67],
            ts: i as i64,
        })
        .chain([
            Op::Remove(95),
            Op::Remove(150),
            Op::Remove(151),
            Op::Remove(200),
        ])
        .collect();
    let mut h = replay(mk, &ops);
    let mut history = ops;
    for seq in [295, 250, 200, 155, 150, 99, 91, 90] {
        h.s.truncate(seq).expect("truncate");
        history = keep_history(&history, seq);
        let want = replay(mk, &history);
        assert_like(&h, &want, seq, T_FILTERS, "truncate across blocks");
        if seq % 20 == 0 {
            h.reopen();
            assert_like(&h, &want, seq, T_FILTERS, "reopened");
        }
    }
    let extra: Vec<Op> = (0..35).map(|i| put("t.b", 60, 5000 + i)).collect();
    for op in &extra {
        apply(&mut h, op);
    }
    history.extend(extra);
    let want = replay(mk, &history);
    assert_eq!(h.s.state().last_seq, 125);
    assert_like(&h, &want, 125, T_FILTERS, "continued");
    h.reopen();
    assert_like(&h, &want, 125, T_FILTERS, "continued, reopened");
}

fn truncate_drops_pending_removal_notices(mk: Mk) {
    let mut h = mk(StoreLimits {
        max_msgs_per_subject: 1,
        ..Default::default()
    });
    // 1 a, 2 b, 3 a (drops 1), 4 b (drops 2), 5 a (drops 3).
    for s in ["t.a", "t.b", "t.a", "t.b", "t.a"] {
        h.put(s, "v");
    }
    h.s.truncate(2).expect("truncate");
    // 3 was above the truncate point: its number is about to be reused.
    assert_eq!(h.s.take_removed(), vec![1..=2]);
    let st = h.s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 3, 2));
    assert_eq!(h.put("t.a", "again"), 3);
    assert!(h.s.take_removed().is_empty());
    assert_eq!(h.s.load_last("t.a").expect("last").map(|m| m.seq), Some(3));
}

/// Random puts, removes, purges and truncates, each truncate checked
/// against a store that replays only the history it keeps.
fn truncate_random_ops_match_replayed_history(mk: Mk) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let subjects = ["t.a", "t.b", "t.c", "u.x.y", "u.z"];
    let mut h = mk(StoreLimits::default());
    let mut history: Vec<Op> = Vec::new();
    let mut truncates = 0;
    for round in 0..900 {
        let last = h.s.state().last_seq;
        let op = rng.random_range(0..100);
        if op < 70 {
            let subject = subjects[rng.random_range(0..subjects.len())];
            let op = put(subject, rng.random_range(0..80), round);
            apply(&mut h, &op);
            history.push(op);
        } else if op < 88 && last > 0 {
            let op = Op::Remove(rng.random_range(1..=last));
            apply(&mut h, &op);
            history.push(op);
        } else if op < 90 {
            let op = Op::Purge(subjects[rng.random_range(0..subjects.len())].to_owned());
            apply(&mut h, &op);
            history.push(op);
        } else {
            let seq = match rng.random_range(0..10) {
                0 => 0,
                1 => last,
                _ => rng.random_range(last.saturating_sub(40)..=last),
            };
            h.s.truncate(seq).expect("truncate");
            history = keep_history(&history, seq);
            let want = replay(mk, &history);
            assert_like(&h, &want, seq, T_FILTERS, &format!("round {round}"));
            if truncates % 4 == 0 {
                h.reopen();
                assert_like(
                    &h,
                    &want,
                    seq,
                    T_FILTERS,
                    &format!("round {round}, reopened"),
                );
            }
            truncates += 1;
        }
    }
    assert!(truncates > 50);
}
