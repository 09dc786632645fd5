//! The per-subject map both stores keep in RAM: subject -> count and bounds.
//!
//! Its size is bounded by the number of distinct live subjects (nats-server
//! keeps the same), not by the number of messages.

use std::collections::BTreeMap;

use super::{filter_is_all, filter_matches};

/// What a store knows about one subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SubjectInfo {
    /// Live messages on the subject.
    pub count: u64,
    /// A lower bound on the first live sequence (exact unless the first was
    /// removed since; scans start here).
    pub first: u64,
    /// The exact last live sequence.
    pub last: u64,
}

#[derive(Debug, Default)]
pub(crate) struct SubjectIndex {
    map: super::SubjectMap<SubjectInfo>,
}

impl SubjectIndex {
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }

    pub(crate) fn get(&self, subject: &str) -> Option<&SubjectInfo> {
        self.map.get(subject)
    }

    pub(crate) fn get_mut(&mut self, subject: &str) -> Option<&mut SubjectInfo> {
        self.map.get_mut(subject)
    }

    /// Records a newly stored message (sequences only grow).
    pub(crate) fn add(&mut self, subject: &str, seq: u64) -> u64 {
        if let Some(info) = self.map.get_mut(subject) {
            info.count += 1;
            info.last = seq;
            return info.count;
        }
        self.map.insert(
            subject.to_owned(),
            SubjectInfo {
                count: 1,
                first: seq,
                last: seq,
            },
        );
        1
    }

    /// Merges a summary (recovery): `count` messages between `first` and `last`.
    pub(crate) fn merge(&mut self, subject: &str, count: u64, first: u64, last: u64) {
        match self.map.get_mut(subject) {
            Some(info) => {
                info.count += count;
                info.first = info.first.min(first);
                info.last = info.last.max(last);
            }
            None => {
                self.map
                    .insert(subject.to_owned(), SubjectInfo { count, first, last });
            }
        }
    }

    /// Records a removal. Returns the remaining info, or `None` once the
    /// subject has no messages left (it is then forgotten).
    pub(crate) fn remove(&mut self, subject: &str, seq: u64) -> Option<SubjectInfo> {
        let info = self.map.get_mut(subject)?;
        info.count = info.count.saturating_sub(1);
        if info.count == 0 {
            self.map.remove(subject);
            return None;
        }
        if seq == info.first {
            info.first = seq + 1;
        }
        Some(*info)
    }

    /// Records that the newest `n` messages of `subject` went (a truncate).
    /// Returns the remaining info, whose `last` the caller must then set, or
    /// `None` once the subject has no messages left (it is then forgotten).
    /// `first` stays a valid lower bound: the survivors are older.
    pub(crate) fn drop_newest(&mut self, subject: &str, n: u64) -> Option<&mut SubjectInfo> {
        let info = self.map.get(subject)?;
        if info.count <= n {
            self.map.remove(subject);
            return None;
        }
        let info = self.map.get_mut(subject)?;
        info.count -= n;
        Some(info)
    }

    /// Subjects matching `filter` with their info. A literal filter is a
    /// single lookup; wildcards walk the map.
    pub(crate) fn matching<'a>(&'a self, filter: &'a str) -> Vec<(&'a str, SubjectInfo)> {
        if !filter_is_all(filter) && !crate::subject::has_wildcard_token(filter.as_bytes()) {
            return self
                .map
                .get_key_value(filter)
                .map(|(k, v)| (k.as_str(), *v))
                .into_iter()
                .collect();
        }
        self.map
            .iter()
            .filter(|(k, _)| filter_matches(filter, k))
            .map(|(k, v)| (k.as_str(), *v))
            .collect()
    }

    pub(crate) fn totals(&self, filter: &str) -> BTreeMap<String, u64> {
        self.matching(filter)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.count))
            .collect()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &SubjectInfo)> {
        self.map.iter()
    }
}
