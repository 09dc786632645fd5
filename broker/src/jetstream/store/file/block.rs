//! Per-block metadata kept in RAM: sequence/time bounds, live counts, the
//! delete set and a subject bloom filter. A few hundred bytes per block plus
//! one bit per message for blocks that have deletes, whatever the stream's
//! size; the seq -> offset index stays on disk (see `index.rs`).

use std::path::{Path, PathBuf};

/// First bytes of every block file.
pub(crate) const BLOCK_MAGIC: &[u8; 8] = b"TRBLK\x00\x00\x01";

pub(crate) fn block_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:010}.blk"))
}
pub(crate) fn index_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:010}.idx"))
}
pub(crate) fn dlog_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:010}.dlog"))
}

/// Which sequences of a block are deleted: one bit per sequence, allocated
/// only once the block has a delete.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteBits {
    words: Vec<u64>,
    count: u64,
}

impl DeleteBits {
    pub(crate) fn contains(&self, idx: u64) -> bool {
        let w = (idx / 64) as usize;
        self.words
            .get(w)
            .is_some_and(|x| x & (1 << (idx % 64)) != 0)
    }

    /// Marks `idx`; false if it already was.
    pub(crate) fn insert(&mut self, idx: u64) -> bool {
        let w = (idx / 64) as usize;
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let bit = 1 << (idx % 64);
        if self.words[w] & bit != 0 {
            return false;
        }
        self.words[w] |= bit;
        self.count += 1;
        true
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Forgets every index `>= len` (the block was cut to `len` records).
    pub(crate) fn truncate(&mut self, len: u64) {
        let words = len.div_ceil(64) as usize;
        self.words.truncate(words);
        if let Some(last) = self.words.last_mut() {
            let keep = len % 64;
            if keep != 0 {
                *last &= (1u64 << keep) - 1;
            }
        }
        self.count = self.words.iter().map(|w| w.count_ones() as u64).sum();
    }

    /// First index `>= from` and `< end` that is not deleted.
    pub(crate) fn first_clear(&self, from: u64, end: u64) -> Option<u64> {
        let mut i = from;
        while i < end {
            let w = (i / 64) as usize;
            let Some(word) = self.words.get(w) else {
                return Some(i);
            };
            let free = !word & (u64::MAX << (i % 64));
            if free != 0 {
                let idx = w as u64 * 64 + free.trailing_zeros() as u64;
                return (idx < end).then_some(idx);
            }
            i = (w as u64 + 1) * 64;
        }
        None
    }

    /// Number of deleted indexes in `[from, end)`.
    pub(crate) fn count_range(&self, from: u64, end: u64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let mut n = 0;
        let mut i = from;
        while i < end {
            let w = i / 64;
            let Some(word) = self.words.get(w as usize) else {
                break;
            };
            let lo = i % 64;
            let hi = ((w + 1) * 64).min(end) - w * 64;
            let mask = if hi - lo == 64 {
                u64::MAX
            } else {
                ((1u64 << (hi - lo)) - 1) << lo
            };
            n += (word & mask).count_ones() as u64;
            i = (w + 1) * 64;
        }
        n
    }
}

/// Number of 64-bit words in a block's subject bloom filter (4096 bits).
pub(crate) const BLOOM_WORDS: usize = 64;
const BLOOM_BITS: u64 = (BLOOM_WORDS * 64) as u64;

/// A fixed-size bloom filter of the subjects in a block, so that scans for a
/// sparse subject skip blocks that never held it. Hashing is FNV-1a, which is
/// stable across builds (the filter is persisted in the index file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bloom(pub(crate) Box<[u64; BLOOM_WORDS]>);

impl Default for Bloom {
    fn default() -> Self {
        Bloom(Box::new([0; BLOOM_WORDS]))
    }
}

/// The key of a subject in the bloom filters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BloomKey(u64);

impl BloomKey {
    pub(crate) fn new(subject: &[u8]) -> BloomKey {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in subject {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        BloomKey(h)
    }

    fn bits(self) -> [u64; 3] {
        let h1 = self.0;
        let h2 = self.0.rotate_right(29) | 1;
        [
            h1 % BLOOM_BITS,
            h1.wrapping_add(h2) % BLOOM_BITS,
            h1.wrapping_add(h2.wrapping_mul(2)) % BLOOM_BITS,
        ]
    }
}

impl Bloom {
    pub(crate) fn insert(&mut self, key: BloomKey) {
        for b in key.bits() {
            self.0[(b / 64) as usize] |= 1 << (b % 64);
        }
    }

    pub(crate) fn may_contain(&self, key: BloomKey) -> bool {
        key.bits()
            .iter()
            .all(|b| self.0[(b / 64) as usize] & (1 << (b % 64)) != 0)
    }
}

/// What the store keeps in RAM about one block file.
#[derive(Debug)]
pub(crate) struct Block {
    pub id: u64,
    /// Sequence of the first record; records are contiguous.
    pub first: u64,
    /// Sequence of the last record; `first - 1` while the block is empty.
    pub last: u64,
    /// Valid bytes in the file (for the active block, buffered ones too).
    pub len: u64,
    pub first_ts: i64,
    pub last_ts: i64,
    /// Live messages and their nats-server byte count.
    pub msgs: u64,
    pub bytes: u64,
    pub deleted: DeleteBits,
    pub bloom: Bloom,
}

impl Block {
    pub(crate) fn new(id: u64, first: u64) -> Block {
        Block {
            id,
            first,
            last: first - 1,
            len: BLOCK_MAGIC.len() as u64,
            first_ts: 0,
            last_ts: 0,
            msgs: 0,
            bytes: 0,
            deleted: DeleteBits::default(),
            bloom: Bloom::default(),
        }
    }

    pub(crate) fn records(&self) -> u64 {
        self.last + 1 - self.first
    }

    pub(crate) fn holds(&self, seq: u64) -> bool {
        seq >= self.first && seq <= self.last
    }

    pub(crate) fn is_live(&self, seq: u64) -> bool {
        self.holds(seq) && !self.deleted.contains(seq - self.first)
    }

    /// First live sequence `>= from` in this block.
    pub(crate) fn first_live_from(&self, from: u64) -> Option<u64> {
        let from = from.max(self.first);
        if from > self.last {
            return None;
        }
        self.deleted
            .first_clear(from - self.first, self.records())
            .map(|i| self.first + i)
    }

    /// Live messages with `seq >= from`.
    pub(crate) fn live_from(&self, from: u64) -> u64 {
        if from <= self.first {
            return self.msgs;
        }
        if from > self.last {
            return 0;
        }
        let idx = from - self.first;
        (self.records() - idx) - self.deleted.count_range(idx, self.records())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_bits() {
        let mut d = DeleteBits::default();
        assert_eq!(d.first_clear(0, 10), Some(0));
        for i in 0..130 {
            assert!(d.insert(i));
        }
        assert!(!d.insert(5));
        assert_eq!(d.count(), 130);
        assert_eq!(d.first_clear(0, 200), Some(130));
        assert_eq!(d.first_clear(0, 130), None);
        assert_eq!(d.count_range(100, 140), 30);
        d.truncate(70);
        assert_eq!(d.count(), 70);
        assert!(d.contains(69) && !d.contains(70) && !d.contains(129));
        assert_eq!(d.first_clear(0, 200), Some(70));
        d.truncate(64);
        assert_eq!(d.count(), 64);
        d.truncate(0);
        assert_eq!((d.count(), d.first_clear(0, 10)), (0, Some(0)));
    }

    #[test]
    fn bloom() {
        let mut b = Bloom::default();
        b.insert(BloomKey::new(b"orders.1"));
        assert!(b.may_contain(BloomKey::new(b"orders.1")));
        let misses = (0..1000)
            .filter(|i| b.may_contain(BloomKey::new(format!("x.{i}").as_bytes())))
            .count();
        assert!(misses < 10, "{misses} false positives");
    }
}
