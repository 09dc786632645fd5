//! Bookkeeping of sequences removed by limits and expiry, so the consumer
//! layer can learn about them without diffing store states.

use std::ops::RangeInclusive;

/// Removed sequences, coalesced into ranges as they arrive.
#[derive(Debug, Default)]
pub(crate) struct RemovedLog {
    ranges: Vec<RangeInclusive<u64>>,
}

impl RemovedLog {
    pub(crate) fn push(&mut self, seq: u64) {
        self.push_range(seq, seq);
    }

    pub(crate) fn push_range(&mut self, first: u64, last: u64) {
        if first > last {
            return;
        }
        if let Some(prev) = self.ranges.last_mut() {
            if *prev.end() + 1 == first {
                *prev = *prev.start()..=last;
                return;
            }
        }
        self.ranges.push(first..=last);
    }

    /// Forgets removals above `seq` (a truncate is about to reuse those
    /// sequence numbers).
    pub(crate) fn truncate(&mut self, seq: u64) {
        self.ranges.retain_mut(|r| {
            if *r.start() > seq {
                return false;
            }
            if *r.end() > seq {
                *r = *r.start()..=seq;
            }
            true
        });
    }

    /// Hands out the ranges sorted and merged, leaving the log empty.
    pub(crate) fn take(&mut self) -> Vec<RangeInclusive<u64>> {
        let mut ranges = std::mem::take(&mut self.ranges);
        ranges.sort_by_key(|r| *r.start());
        let mut out: Vec<RangeInclusive<u64>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match out.last_mut() {
                Some(prev) if *r.start() <= prev.end().saturating_add(1) => {
                    let end = (*prev.end()).max(*r.end());
                    *prev = *prev.start()..=end;
                }
                _ => out.push(r),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_and_sorts() {
        let mut log = RemovedLog::default();
        log.push(5);
        log.push(6);
        log.push(1);
        log.push_range(2, 3);
        log.push(9);
        assert_eq!(log.take(), vec![1..=3, 5..=6, 9..=9]);
        assert!(log.take().is_empty());
    }

    #[test]
    fn truncate_drops_and_clips() {
        let mut log = RemovedLog::default();
        log.push_range(8, 12);
        log.push_range(1, 3);
        log.push(20);
        log.truncate(10);
        assert_eq!(log.take(), vec![1..=3, 8..=10]);
        log.push(4);
        log.truncate(3);
        assert!(log.take().is_empty());
    }
}
