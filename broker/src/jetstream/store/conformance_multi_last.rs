//! [`MsgStore::multi_last_seqs`] behaviour both stores must share, run
//! against [`MemStore`] and [`FileStore`] alike (small file blocks, so the
//! backward walk crosses block boundaries and bloom filters).
//!
//! The random test checks every answer against a model: the newest live
//! message at or below `up_to` of each matching subject, computed from the
//! messages themselves.

use std::collections::BTreeMap;

use super::conformance::{file, mem, Mk, H};
use super::*;

conformance!(
    last_of_each_subject_in_sequence_order,
    as_of_an_earlier_sequence,
    removed_messages_are_skipped,
    filters_overlap_and_malformed_ones_match_nothing,
    too_many_subjects_are_refused,
    answers_survive_a_reopen,
    multi_last_random_ops_match_model,
);

fn filters(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn multi(h: &H, list: &[&str], up_to: u64) -> Vec<u64> {
    h.s.multi_last_seqs(&filters(list), up_to, 0)
        .expect("multi_last_seqs")
}

/// The scores board of the tests: three football matches updated in turn
/// and a tennis match. Returns the last sequence.
fn scores(h: &mut H) -> u64 {
    for s in [
        "sports.football.a", // 1
        "sports.football.b", // 2
        "sports.tennis.x",   // 3
        "sports.football.a", // 4
        "sports.football.c", // 5
        "sports.football.b", // 6
        "sports.football.a", // 7
    ] {
        h.put(s, "score");
    }
    7
}

fn last_of_each_subject_in_sequence_order(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    assert!(multi(&h, &[">"], 0).is_empty(), "an empty store");
    let last = scores(&mut h);
    assert_eq!(multi(&h, &["sports.football.*"], last), vec![5, 6, 7]);
    assert_eq!(multi(&h, &["sports.>"], last), vec![3, 5, 6, 7]);
    assert_eq!(multi(&h, &["sports.football.b"], last), vec![6]);
    assert!(multi(&h, &["sports.golf.*"], last).is_empty());
}

fn as_of_an_earlier_sequence(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    scores(&mut h);
    // a: 1,4,7  b: 2,6  c: 5  x: 3
    assert_eq!(multi(&h, &["sports.football.*"], 6), vec![4, 5, 6]);
    assert_eq!(multi(&h, &["sports.football.*"], 5), vec![2, 4, 5]);
    assert_eq!(multi(&h, &["sports.football.*"], 3), vec![1, 2]);
    assert_eq!(multi(&h, &["sports.football.*"], 1), vec![1]);
    assert_eq!(multi(&h, &["sports.football.c"], 4), Vec::<u64>::new());
    assert_eq!(multi(&h, &[">"], 100), vec![3, 5, 6, 7], "past the end");
}

fn removed_messages_are_skipped(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    scores(&mut h);
    // The newest of a goes: its previous message answers.
    assert!(h.s.remove(7).expect("remove"));
    assert_eq!(multi(&h, &["sports.football.*"], 7), vec![4, 5, 6]);
    // As of 5, a's answer is 4; once 4 goes too, 1.
    assert!(h.s.remove(4).expect("remove"));
    assert_eq!(multi(&h, &["sports.football.*"], 5), vec![1, 2, 5]);
    // A subject whose messages at or below up_to are all gone is left out.
    assert!(h.s.remove(2).expect("remove"));
    assert_eq!(multi(&h, &["sports.football.*"], 5), vec![1, 5]);
    assert_eq!(h.s.purge("sports.football.a", 0, 0).expect("purge"), 1);
    assert_eq!(multi(&h, &["sports.football.*"], 7), vec![5, 6]);
}

fn filters_overlap_and_malformed_ones_match_nothing(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    let last = scores(&mut h);
    assert_eq!(
        multi(
            &h,
            &["sports.>", "sports.football.*", "sports.tennis.x"],
            last
        ),
        vec![3, 5, 6, 7],
        "each subject once"
    );
    assert!(multi(&h, &[""], last).is_empty(), "empty filter");
    assert!(
        multi(&h, &["sports..a"], last).is_empty(),
        "malformed filter"
    );
    assert_eq!(multi(&h, &["", "sports.tennis.*"], last), vec![3]);
    assert!(multi(&h, &[], last).is_empty(), "no filter");
}

fn too_many_subjects_are_refused(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    for i in 0..5 {
        h.put(&format!("m.{i}"), "x");
    }
    let f = filters(&["m.*"]);
    assert_eq!(h.s.multi_last_seqs(&f, 5, 5).expect("5 of 5").len(), 5);
    assert!(matches!(
        h.s.multi_last_seqs(&f, 5, 4),
        Err(StoreError::TooManyResults { max: 4 })
    ));
    // Only subjects with an answer count: as of 4, m.4 has none.
    assert_eq!(
        h.s.multi_last_seqs(&f, 4, 4).expect("4 of 4"),
        vec![1, 2, 3, 4]
    );
    // Updates after up_to are resolved by the walk and counted too.
    for i in 0..5 {
        h.put(&format!("m.{i}"), "y");
    }
    assert!(matches!(
        h.s.multi_last_seqs(&f, 5, 4),
        Err(StoreError::TooManyResults { max: 4 })
    ));
}

fn answers_survive_a_reopen(mk: Mk) {
    let mut h = mk(StoreLimits::default());
    scores(&mut h);
    assert!(h.s.remove(6).expect("remove"));
    h.s.sync().expect("sync");
    let before = (
        multi(&h, &["sports.>"], 7),
        multi(&h, &["sports.football.*"], 6),
    );
    h.reopen();
    let after = (
        multi(&h, &["sports.>"], 7),
        multi(&h, &["sports.football.*"], 6),
    );
    assert_eq!(before, after);
    assert_eq!(after.1, vec![2, 4, 5]);
}

/// The answer computed from the messages: newest live message at or below
/// `up_to` per subject matching a filter, ascending.
fn model_answer(model: &BTreeMap<u64, String>, list: &[&str], up_to: u64) -> Vec<u64> {
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for (seq, subj) in model.range(..=up_to) {
        let hit = list.iter().any(|f| {
            crate::subject::is_valid(f.as_bytes())
                && crate::subject::matches(f.as_bytes(), subj.as_bytes())
        });
        if hit {
            last.insert(subj, *seq);
        }
    }
    let mut out: Vec<u64> = last.into_values().collect();
    out.sort_unstable();
    out
}

fn multi_last_random_ops_match_model(mk: Mk) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(31);
    let mut h = mk(StoreLimits::default());
    let mut model: BTreeMap<u64, String> = BTreeMap::new();
    let queries: [&[&str]; 5] = [
        &["g.*.*"],
        &["g.football.*"],
        &["g.football.3", "g.tennis.*"],
        &[">"],
        &["g.*.1", "g.football.>"],
    ];
    let sports = ["football", "tennis", "golf"];
    for round in 0..1500 {
        let op = rng.random_range(0..100);
        if op < 80 {
            let subj = format!(
                "g.{}.{}",
                sports[rng.random_range(0..sports.len())],
                rng.random_range(0..12)
            );
            let seq = h.s.store_msg(&subj, b"", b"score", round).expect("store");
            model.insert(seq, subj);
        } else {
            let last = h.s.state().last_seq.max(1);
            let seq = rng.random_range(1..=last);
            assert_eq!(
                h.s.remove(seq).expect("remove"),
                model.remove(&seq).is_some()
            );
        }
        if round % 50 == 49 {
            let last = h.s.state().last_seq;
            for q in queries {
                for up_to in [last, last / 2, last.saturating_sub(3), 1] {
                    assert_eq!(
                        multi(&h, q, up_to),
                        model_answer(&model, q, up_to),
                        "round {round}, {q:?} up to {up_to}"
                    );
                }
            }
        }
    }
}
