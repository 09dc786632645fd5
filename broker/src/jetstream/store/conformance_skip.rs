//! Skip behaviour both stores must share, run against [`MemStore`] and
//! [`FileStore`] alike (with the harness of the other conformance tests).
//!
//! A skip must leave a store answering exactly like one where the skipped
//! sequences were stored and then removed (nats-server counts them as
//! deletes), except that nothing ever held them: no timestamp, no subject,
//! no removal notice. The random test checks that against a replay that
//! stores and removes filler messages; the others pin the counters, the
//! errors, limits, truncates and (files) reopening.

use super::conformance::{file, mem, Mk, H};
use super::conformance_truncate::truncate_support::{apply, put, view, Op};
use super::*;

conformance!(
    skip_on_a_fresh_store,
    skip_on_a_non_empty_store,
    skip_on_an_emptied_store,
    stores_after_skips_get_the_next_sequence,
    skip_behind_last_is_an_error_and_to_last_a_noop,
    num_deleted_first_and_last_after_skips_and_stores,
    limits_ignore_skipped_sequences,
    truncate_after_skip,
    skips_survive_a_reopen,
    skip_random_ops_match_stored_and_removed_fillers,
);

/// `(msgs, first_seq, last_seq, num_deleted)`.
fn counters(h: &H) -> (u64, u64, u64, u64) {
    let st = h.s.state();
    (st.msgs, st.first_seq, st.last_seq, st.num_deleted)
}

fn skip_on_a_fresh_store(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    h.s.skip_to(0).expect("skip to 0");
    assert_eq!(h.s.state(), StoreState::default());
    h.s.skip_to(5).expect("skip");
    // nats-server's empty stream: first = last + 1, no times.
    let want = StoreState {
        first_seq: 6,
        last_seq: 5,
        ..Default::default()
    };
    assert_eq!(h.s.state(), want);
    assert_eq!(h.s.load(5).expect("load"), None);
    assert_eq!(h.s.load_next("", 0).expect("next"), None);
    assert_eq!(h.s.load_last("").expect("last"), None);
    assert_eq!(h.s.num_pending("", 0), 0);
    assert_eq!(h.s.seq_for_time(0), 6);
    assert!(h.s.subjects_totals("").is_empty());
    assert!(h.s.take_removed().is_empty());
    h.reopen();
    assert_eq!(h.s.state(), want);
    // Again while still empty.
    h.s.skip_to(9).expect("skip");
    assert_eq!(counters(&h), (0, 10, 9, 0));
    h.reopen();
    assert_eq!(counters(&h), (0, 10, 9, 0));
    assert_eq!(h.put_ts("s.a", 100), 10);
    let want = StoreState {
        msgs: 1,
        bytes: h.size("s.a", b"", b"x"),
        first_seq: 10,
        first_ts: 100,
        last_seq: 10,
        last_ts: 100,
        num_deleted: 0,
        num_subjects: 1,
    };
    assert_eq!(h.s.state(), want);
    h.reopen();
    assert_eq!(h.s.state(), want);
    assert_eq!(h.seqs(""), vec![10]);
}

fn skip_on_a_non_empty_store(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    // 1 s.a @10, 2 s.b @20, 3 s.a @30.
    for i in 1..=3 {
        h.put_ts(if i % 2 == 1 { "s.a" } else { "s.b" }, i * 10);
    }
    let before = h.s.state();
    h.s.skip_to(10).expect("skip");
    let want = StoreState {
        last_seq: 10,
        num_deleted: 7,
        ..before.clone()
    };
    assert_eq!(h.s.state(), want);
    assert_eq!(h.s.load(5).expect("load"), None);
    assert_eq!(h.s.load(10).expect("load"), None);
    assert_eq!(h.s.load_next("", 4).expect("next"), None);
    assert_eq!(h.s.load_last("").expect("last").map(|m| m.seq), Some(3));
    assert_eq!(h.s.num_pending("", 1), 3);
    assert_eq!(h.s.num_pending("", 4), 0);
    assert_eq!(h.s.seq_for_time(25), 3);
    assert_eq!(h.s.seq_for_time(31), 11);
    assert_eq!(h.s.last_seq_for_subject("s.a"), 3);
    assert!(h.s.take_removed().is_empty());
    h.reopen();
    assert_eq!(h.s.state(), want);
    assert_eq!(h.put_ts("s.b", 40), 11);
    assert_eq!(counters(&h), (4, 1, 11, 7));
    assert_eq!(h.s.state().last_ts, 40);
    assert_eq!(h.seqs(""), vec![1, 2, 3, 11]);
    assert_eq!(h.seqs("s.b"), vec![2, 11]);
    assert_eq!(
        h.s.load_next("s.*", 4).expect("next").map(|m| m.seq),
        Some(11)
    );
    assert_eq!(h.s.load_next("s.a", 4).expect("next"), None);
    assert_eq!(h.s.num_pending("", 4), 1);
    assert_eq!(h.s.num_pending("s.b", 2), 2);
    assert_eq!(h.s.num_pending("s.b", 3), 1);
    assert_eq!(h.s.seq_for_time(31), 11);
    assert_eq!(h.s.seq_for_time(41), 12);
    let want = h.s.state();
    h.reopen();
    assert_eq!(h.s.state(), want);
    assert_eq!(h.seqs(""), vec![1, 2, 3, 11]);
    // The messages before the gap go: first jumps over it.
    for seq in 1..=3 {
        assert!(h.s.remove(seq).expect("remove"));
    }
    assert_eq!(counters(&h), (1, 11, 11, 0));
    h.reopen();
    assert_eq!(counters(&h), (1, 11, 11, 0));
}

fn skip_on_an_emptied_store(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    // Purged.
    for i in 1..=5 {
        h.put_ts("s.a", i);
    }
    assert_eq!(h.s.purge("", 0, 0).expect("purge"), 5);
    assert_eq!(counters(&h), (0, 6, 5, 0));
    h.s.skip_to(20).expect("skip");
    assert_eq!(counters(&h), (0, 21, 20, 0));
    assert_eq!((h.s.state().first_ts, h.s.state().last_ts), (0, 5));
    assert_eq!(h.s.seq_for_time(0), 21);
    h.reopen();
    assert_eq!(counters(&h), (0, 21, 20, 0));
    assert_eq!(h.s.state().last_ts, 5);
    assert_eq!(h.put_ts("s.a", 21), 21);
    assert_eq!(counters(&h), (1, 21, 21, 0));
    h.reopen();
    assert_eq!(counters(&h), (1, 21, 21, 0));
    // Removed one by one.
    h.put_ts("s.b", 22);
    h.put_ts("s.b", 23);
    for seq in 21..=23 {
        assert!(h.s.remove(seq).expect("remove"));
    }
    assert_eq!(counters(&h), (0, 24, 23, 0));
    h.s.skip_to(30).expect("skip");
    assert_eq!(counters(&h), (0, 31, 30, 0));
    h.reopen();
    assert_eq!(counters(&h), (0, 31, 30, 0));
    assert_eq!(h.put_ts("s.c", 31), 31);
    // Purged up to a sequence past the end (nats-server's compact).
    assert_eq!(h.s.purge("", 40, 0).expect("purge"), 1);
    assert_eq!(counters(&h), (0, 40, 39, 0));
    h.s.skip_to(45).expect("skip");
    assert_eq!(counters(&h), (0, 46, 45, 0));
    h.reopen();
    assert_eq!(counters(&h), (0, 46, 45, 0));
    assert_eq!(h.put_ts("s.c", 46), 46);
    assert_eq!(counters(&h), (1, 46, 46, 0));
    assert_eq!(h.seqs(""), vec![46]);
    assert!(h.s.take_removed().is_empty());
}

fn stores_after_skips_get_the_next_sequence(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    let mut want = Vec::new();
    let mut last = 0;
    // Gaps of every size from 1 to 24 between runs of 1..4 messages (on
    // the file store: many blocks, each starting after a gap).
    for i in 0..60u64 {
        last += 1 + i % 24;
        h.s.skip_to(last).expect("skip");
        for _ in 0..(1 + i % 4) {
            last += 1;
            assert_eq!(h.put("s.a", "payload"), last);
            want.push(last);
        }
        if i % 15 == 14 {
            h.reopen();
        }
    }
    assert_eq!(h.seqs(""), want);
    let n = want.len() as u64;
    assert_eq!(counters(&h), (n, 2, last, last - 1 - n));
    h.reopen();
    assert_eq!(h.seqs(""), want);
    assert_eq!(counters(&h), (n, 2, last, last - 1 - n));
    assert_eq!(h.put("s.b", "x"), last + 1);
}

fn skip_behind_last_is_an_error_and_to_last_a_noop(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    for _ in 0..5 {
        h.put("s.a", "v");
    }
    h.s.remove(5).expect("remove");
    let before = h.s.state();
    h.s.skip_to(5).expect("skip to last");
    assert_eq!(h.s.state(), before);
    assert!(matches!(
        h.s.skip_to(4),
        Err(StoreError::SkipBehindLast { seq: 4, last: 5 })
    ));
    let err = h.s.skip_to(0).expect_err("behind last");
    assert!(
        err.to_string().contains("sequence 0") && err.to_string().contains("is already 5"),
        "{err}"
    );
    assert!(matches!(
        h.s.skip_to(u64::MAX),
        Err(StoreError::SkipToMax { seq: u64::MAX })
    ));
    assert_eq!(h.s.state(), before);
    h.reopen();
    assert_eq!(h.s.state(), before);
    assert_eq!(h.put("s.a", "v"), 6);
    h.s.skip_to(6).expect("skip to last");
    assert_eq!(h.put("s.a", "v"), 7);
    // Just below the largest sequence is fine.
    h.s.skip_to(u64::MAX - 1).expect("skip far");
    assert_eq!(h.s.state().last_seq, u64::MAX - 1);
}

fn num_deleted_first_and_last_after_skips_and_stores(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    for i in 1..=5 {
        h.put_ts("s.a", i);
    }
    h.s.remove(2).expect("remove");
    h.s.skip_to(8).expect("skip");
    // 8 sequences, 4 live: 2 and the skipped 6..=8 count as deleted.
    assert_eq!(counters(&h), (4, 1, 8, 4));
    assert_eq!(h.put_ts("s.b", 9), 9);
    assert_eq!(h.put_ts("s.b", 10), 10);
    h.s.remove(9).expect("remove");
    assert_eq!(counters(&h), (5, 1, 10, 5));
    h.reopen();
    assert_eq!(counters(&h), (5, 1, 10, 5));
    // Purging up to 4 drops 1 and 3: first is 4.
    assert_eq!(h.s.purge("", 4, 0).expect("purge"), 2);
    assert_eq!(counters(&h), (3, 4, 10, 4));
    assert_eq!(h.s.state().first_ts, 4);
    // A huge gap costs nothing per skipped sequence.
    h.s.skip_to(1_000_010).expect("skip");
    assert_eq!(h.put_ts("s.c", 11), 1_000_011);
    assert_eq!(counters(&h), (4, 4, 1_000_011, 1_000_004));
    h.reopen();
    assert_eq!(counters(&h), (4, 4, 1_000_011, 1_000_004));
    assert_eq!(h.seqs(""), vec![4, 5, 10, 1_000_011]);
    assert_eq!(h.s.num_pending("", 11), 1);
    assert_eq!(h.s.seq_for_time(11), 1_000_011);
}

fn limits_ignore_skipped_sequences(mk: Mk) {
    let limits = StoreLimits {
        max_msgs: 3,
        max_msgs_per_subject: 2,
        ..Default::default()
    };
    let mut h = mk(limits);
    // 1 s.a, 2 s.a, 3 s.b.
    for s in ["s.a", "s.a", "s.b"] {
        h.put(s, "v");
    }
    h.s.skip_to(10).expect("skip");
    assert_eq!(counters(&h), (3, 1, 10, 7));
    assert!(h.s.take_removed().is_empty());
    // The third s.a drops the first one, not a skipped sequence.
    assert_eq!(h.put("s.a", "v"), 11);
    assert_eq!(h.s.take_removed(), vec![1..=1]);
    // Max messages: the oldest live message goes.
    assert_eq!(h.put("s.c", "v"), 12);
    assert_eq!(h.s.take_removed(), vec![2..=2]);
    assert_eq!(counters(&h), (3, 3, 12, 7));
    let totals: Vec<(String, u64)> = h.s.subjects_totals("").into_iter().collect();
    assert_eq!(
        totals,
        vec![("s.a".into(), 1), ("s.b".into(), 1), ("s.c".into(), 1)]
    );
    h.reopen();
    assert_eq!(counters(&h), (3, 3, 12, 7));
    // Max bytes: room for two messages drops the oldest one, 3.
    let size = h.size("s.a", b"", b"v");
    h.s.update_limits(StoreLimits {
        max_bytes: 2 * size as i64,
        ..Default::default()
    })
    .expect("limits");
    assert_eq!(h.s.take_removed(), vec![3..=3]);
    assert_eq!(counters(&h), (2, 11, 12, 0));
    h.s.skip_to(20).expect("skip");
    assert!(h.s.take_removed().is_empty());
    assert_eq!(counters(&h), (2, 11, 20, 8));
    assert_eq!(h.put("s.a", "v"), 21);
    assert_eq!(h.s.take_removed(), vec![11..=11]);
    assert_eq!(counters(&h), (2, 12, 21, 8));
}

fn truncate_after_skip(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    for i in 1..=5 {
        h.put_ts("s.a", i * 10);
    }
    h.s.skip_to(20).expect("skip");
    assert_eq!(h.put_ts("s.b", 210), 21);
    assert_eq!(h.put_ts("s.b", 220), 22);
    h.s.truncate(21).expect("truncate");
    assert_eq!(counters(&h), (6, 1, 21, 15));
    assert_eq!(h.s.state().last_ts, 210);
    // Into the gap: the last sequence is 15 all the same, and the time of
    // the last stored message stays (nothing was stored at 15).
    h.s.truncate(15).expect("truncate");
    assert_eq!(counters(&h), (5, 1, 15, 10));
    assert_eq!(h.s.state().last_ts, 210);
    assert_eq!(h.s.last_seq_for_subject("s.b"), 0);
    h.reopen();
    assert_eq!(counters(&h), (5, 1, 15, 10));
    assert_eq!(h.put_ts("s.b", 160), 16);
    // Back to the message before the skip.
    h.s.truncate(5).expect("truncate");
    assert_eq!(counters(&h), (5, 1, 5, 0));
    assert_eq!(h.s.state().last_ts, 50);
    h.reopen();
    assert_eq!(counters(&h), (5, 1, 5, 0));
    // Below the first message after a skip: empty.
    assert_eq!(h.s.purge("", 4, 0).expect("purge"), 3);
    h.s.skip_to(30).expect("skip");
    h.s.truncate(2).expect("truncate");
    assert_eq!(counters(&h), (0, 3, 2, 0));
    h.reopen();
    assert_eq!(counters(&h), (0, 3, 2, 0));
    assert_eq!(h.put("s.a", "v"), 3);
    // To zero after a skip on a fresh store: the fresh state again.
    let mut h = mk(StoreLimits::default());
    h.s.skip_to(7).expect("skip");
    h.reopen();
    h.s.truncate(0).expect("truncate");
    assert_eq!(h.s.state(), StoreState::default());
    h.reopen();
    assert_eq!(h.s.state(), StoreState::default());
    assert_eq!(h.put("s.a", "v"), 1);
    // A skip after a truncate.
    h.s.skip_to(4).expect("skip");
    assert_eq!(h.put("s.a", "v"), 5);
    h.reopen();
    assert_eq!(h.seqs(""), vec![1, 5]);
}

fn skips_survive_a_reopen(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    for i in 1..=3 {
        h.put_ts("s.a", i);
    }
    // The skip is the tail: no message after it.
    h.s.skip_to(50).expect("skip");
    h.s.sync().expect("sync");
    let want = h.s.state();
    h.reopen();
    assert_eq!(h.s.state(), want);
    assert_eq!(counters(&h), (3, 1, 50, 47));
    // Two skips in a row, the second one without a sync of its own.
    h.s.skip_to(60).expect("skip");
    h.s.skip_to(70).expect("skip");
    h.reopen();
    assert_eq!(counters(&h), (3, 1, 70, 67));
    // A message after the skip.
    assert_eq!(h.put_ts("s.b", 4), 71);
    h.s.sync().expect("sync");
    let want = h.s.state();
    h.reopen();
    assert_eq!(h.s.state(), want);
    assert_eq!(h.seqs(""), vec![1, 2, 3, 71]);
    // Emptied, then skipped: the tail again, with nothing before it.
    for seq in [1, 2, 3, 71] {
        assert!(h.s.remove(seq).expect("remove"));
    }
    h.s.skip_to(80).expect("skip");
    h.s.sync().expect("sync");
    let want = h.s.state();
    assert_eq!(counters(&h), (0, 81, 80, 0));
    h.reopen();
    assert_eq!(h.s.state(), want);
    assert_eq!(h.put_ts("s.c", 5), 81);
    h.reopen();
    assert_eq!(counters(&h), (1, 81, 81, 0));
}

const S_FILTERS: &[&str] = &["", ">", "s.a", "s.b", "s.c", "s.*", "u.>", "none"];
const S_SUBJECTS: &[&str] = &["s.a", "s.b", "s.c", "u.x.y", "u.z"];

/// Random puts, removes, purges and skips. The reference stores and
/// removes a filler message for every skipped sequence (at the current
/// last time, so it moves no timestamp): every answer must match.
fn skip_random_ops_match_stored_and_removed_fillers(mk: Mk) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let mut h = mk(StoreLimits::default());
    let mut want = mk(StoreLimits::default());
    let mut skips = 0;
    for round in 0..700 {
        let last = h.s.state().last_seq;
        let op = rng.random_range(0..100);
        if op < 60 {
            let subject = S_SUBJECTS[rng.random_range(0..S_SUBJECTS.len())];
            let op = put(subject, rng.random_range(0..60), round);
            apply(&mut h, &op);
            apply(&mut want, &op);
        } else if op < 75 && last > 0 {
            let op = Op::Remove(rng.random_range(1..=last));
            apply(&mut h, &op);
            apply(&mut want, &op);
        } else if op < 78 {
            let filter = ["", "s.*", "u.>", "s.a"][rng.random_range(0..4)];
            let op = Op::Purge(filter.to_owned());
            apply(&mut h, &op);
            apply(&mut want, &op);
        } else {
            let to = last + rng.random_range(0..25);
            h.s.skip_to(to).expect("skip");
            let ts = want.s.state().last_ts;
            for _ in last..to {
                let seq = want.s.store_msg("filler", b"", b"", ts).expect("filler");
                want.s.remove(seq).expect("remove filler");
            }
            skips += 1;
        }
        assert!(h.s.take_removed().is_empty());
        assert_eq!(
            view(&h, S_FILTERS, true),
            view(&want, S_FILTERS, true),
            "round {round}"
        );
        if round % 50 == 49 {
            h.reopen();
            assert_eq!(
                view(&h, S_FILTERS, true),
                view(&want, S_FILTERS, true),
                "round {round}, reopened"
            );
        }
    }
    assert!(skips > 100);
}
