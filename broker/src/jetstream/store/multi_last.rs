//! "The last message of every subject matching these filters, as of
//! sequence N" ([`MsgStore::multi_last_seqs`]): what a batch direct get with
//! `multi_last` (a web page reading the current score of every match) asks.
//!
//! Both stores answer it from their per-subject index first: a subject whose
//! newest live message is at or below `up_to` is answered by the index alone,
//! and one whose first (lower bound) is above it cannot have an answer. Only
//! the subjects updated after `up_to` need their messages looked at, and each
//! store finds those in one backward walk ([`Plan::pending`]), so a request
//! never reads the whole stream to learn a few hundred last sequences.
//!
//! [`MsgStore::multi_last_seqs`]: super::MsgStore::multi_last_seqs

use std::collections::HashSet;

use super::subjects::{SubjectIndex, SubjectInfo};
use super::StoreError;

/// What the index alone tells about a multi-last request.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    /// Last sequences known from the index (each subject's newest live
    /// message, at or below `up_to`), unsorted.
    pub(crate) found: Vec<u64>,
    /// Subjects whose newest message is above `up_to` but which may have
    /// one at or below it: the store must look for their newest there.
    pub(crate) pending: Vec<(&'a str, SubjectInfo)>,
}

impl Plan<'_> {
    /// The lowest sequence a walk for the pending subjects must reach (their
    /// first sequences are lower bounds), or `None` when nothing is pending.
    pub(crate) fn walk_floor(&self) -> Option<u64> {
        self.pending.iter().map(|(_, i)| i.first).min()
    }
}

/// Whether `filter` can match anything: nats-server's subject tree matches
/// nothing for an empty or malformed filter (where the stores' own filter
/// helpers would read `""` as "everything").
fn usable(filter: &str) -> bool {
    crate::subject::is_valid(filter.as_bytes())
}

/// Sorts out the subjects matching any of `filters` (each subject once)
/// against `up_to`. `max` bounds the answer (0 = unbounded): once more
/// subjects than that are certain to have an answer, the request is refused
/// without looking further, as nats-server refuses it.
pub(crate) fn plan<'a>(
    subjects: &'a SubjectIndex,
    filters: &'a [String],
    up_to: u64,
    max: usize,
) -> Result<Plan<'a>, StoreError> {
    let mut plan = Plan::default();
    let mut seen: HashSet<&str, ahash::RandomState> = HashSet::default();
    for filter in filters.iter().filter(|f| usable(f)) {
        for (subject, info) in subjects.matching(filter) {
            if !seen.insert(subject) {
                continue;
            }
            if info.last <= up_to {
                plan.found.push(info.last);
                if max > 0 && plan.found.len() > max {
                    return Err(StoreError::TooManyResults { max });
                }
            } else if info.first <= up_to {
                plan.pending.push((subject, info));
            }
        }
    }
    Ok(plan)
}

/// The answer: the sequences from the index and from the walk, ascending,
/// held to `max` (0 = unbounded).
pub(crate) fn finish(
    mut found: Vec<u64>,
    walked: impl IntoIterator<Item = u64>,
    max: usize,
) -> Result<Vec<u64>, StoreError> {
    found.extend(walked);
    if max > 0 && found.len() > max {
        return Err(StoreError::TooManyResults { max });
    }
    found.sort_unstable();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(&str, u64, u64, u64)]) -> SubjectIndex {
        let mut idx = SubjectIndex::default();
        for (s, count, first, last) in entries {
            idx.merge(s, *count, *first, *last);
        }
        idx
    }

    #[test]
    fn the_index_answers_what_it_can_and_names_the_rest() {
        let idx = index(&[
            ("s.a", 2, 1, 4),
            ("s.b", 3, 2, 9),
            ("s.c", 1, 7, 7),
            ("t.x", 1, 3, 3),
        ]);
        let filters = vec!["s.*".to_string(), "s.a".to_string(), "t.x".to_string()];
        let p = plan(&idx, &filters, 5, 0).expect("plan");
        let mut found = p.found.clone();
        found.sort_unstable();
        assert_eq!(found, vec![3, 4], "s.a once, t.x; s.c starts after 5");
        assert_eq!(p.pending.len(), 1);
        assert_eq!(p.pending[0].0, "s.b");
        assert_eq!(p.walk_floor(), Some(2));
        assert_eq!(
            finish(p.found, [2], 0).expect("finish"),
            vec![2, 3, 4],
            "sorted, with the walk's answers"
        );
    }

    #[test]
    fn empty_and_malformed_filters_match_nothing() {
        let idx = index(&[("s.a", 1, 1, 1)]);
        for f in ["", "s..a", "s.>.a"] {
            let filters = vec![f.to_string()];
            let p = plan(&idx, &filters, 10, 0).expect("plan");
            assert!(p.found.is_empty() && p.pending.is_empty(), "{f:?}");
        }
        let all = vec![">".to_string()];
        assert_eq!(plan(&idx, &all, 10, 0).expect("plan").found, vec![1]);
    }

    #[test]
    fn more_subjects_than_allowed_is_refused() {
        let idx = index(&[("s.a", 1, 1, 1), ("s.b", 1, 2, 2), ("s.c", 1, 3, 3)]);
        let filters = vec!["s.*".to_string()];
        assert!(matches!(
            plan(&idx, &filters, 10, 2),
            Err(StoreError::TooManyResults { max: 2 })
        ));
        assert_eq!(plan(&idx, &filters, 10, 3).expect("plan").found.len(), 3);
        assert!(matches!(
            finish(vec![1, 2], [3], 2),
            Err(StoreError::TooManyResults { max: 2 })
        ));
    }
}
