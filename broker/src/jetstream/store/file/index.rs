//! The per-block index file (`NNNNNNNNNN.idx`), written when a block is
//! sealed. It is derived data: it holds the seq -> offset table (so a read
//! needs one `pread` of the index instead of a block scan), the block's
//! subject bloom filter and a per-subject summary (so a restart does not
//! have to scan blocks without deletes). A missing, corrupt or stale index
//! (one whose recorded block length differs from the block file) is rebuilt
//! from the block.
//!
//! ```text
//! magic "TRIDX001" | block_len u64 | first_seq u64 | count u32
//! | first_ts i64 | last_ts i64 | bytes u64 | bloom 64 x u64
//! | offsets count x u32
//! | nsubj u32 | nsubj x (len u16, subject, count u64, first u64, last u64)
//! | crc32 u32 of everything before
//! ```

use crate::jetstream::store::SubjectMap;
use std::io::Write;
use std::path::Path;

use super::block::{Bloom, BLOOM_WORDS};

const MAGIC: &[u8; 8] = b"TRIDX001";

/// Per-subject summary of the records in one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SubjectSummary {
    pub count: u64,
    pub first: u64,
    pub last: u64,
}

/// Everything an index file holds.
#[derive(Debug, Default)]
pub(crate) struct IndexData {
    pub block_len: u64,
    pub first_seq: u64,
    pub first_ts: i64,
    pub last_ts: i64,
    pub bytes: u64,
    pub bloom: Bloom,
    pub offsets: Vec<u32>,
    pub subjects: SubjectMap<SubjectSummary>,
}

impl IndexData {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(600 + self.offsets.len() * 4 + self.subjects.len() * 40);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.block_len.to_le_bytes());
        out.extend_from_slice(&self.first_seq.to_le_bytes());
        out.extend_from_slice(&(self.offsets.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.first_ts.to_le_bytes());
        out.extend_from_slice(&self.last_ts.to_le_bytes());
        out.extend_from_slice(&self.bytes.to_le_bytes());
        for w in self.bloom.0.iter() {
            out.extend_from_slice(&w.to_le_bytes());
        }
        for o in &self.offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        out.extend_from_slice(&(self.subjects.len() as u32).to_le_bytes());
        for (s, sum) in &self.subjects {
            out.extend_from_slice(&(s.len() as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(&sum.count.to_le_bytes());
            out.extend_from_slice(&sum.first.to_le_bytes());
            out.extend_from_slice(&sum.last.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes an index file's bytes; `None` if anything is off.
    pub(crate) fn decode(buf: &[u8]) -> Option<IndexData> {
        if buf.len() < 4 {
            return None;
        }
        let (body, crc) = buf.split_at(buf.len() - 4);
        if u32::from_le_bytes(crc.try_into().ok()?) != crc32fast::hash(body) {
            return None;
        }
        let mut r = Reader(body);
        if r.take(8)? != MAGIC {
            return None;
        }
        let block_len = r.u64()?;
        let first_seq = r.u64()?;
        let count = r.u32()? as usize;
        let first_ts = r.u64()? as i64;
        let last_ts = r.u64()? as i64;
        let bytes = r.u64()?;
        let mut bloom = Bloom::default();
        for w in bloom.0.iter_mut().take(BLOOM_WORDS) {
            *w = r.u64()?;
        }
        if r.0.len() < count * 4 {
            return None;
        }
        let mut offsets = Vec::with_capacity(count);
        for _ in 0..count {
            offsets.push(r.u32()?);
        }
        let nsubj = r.u32()? as usize;
        let mut subjects =
            SubjectMap::with_capacity_and_hasher(nsubj.min(count), Default::default());
        for _ in 0..nsubj {
            let len = r.u16()? as usize;
            let s = std::str::from_utf8(r.take(len)?).ok()?.to_owned();
            let sum = SubjectSummary {
                count: r.u64()?,
                first: r.u64()?,
                last: r.u64()?,
            };
            subjects.insert(s, sum);
        }
        if !r.0.is_empty() {
            return None;
        }
        Some(IndexData {
            block_len,
            first_seq,
            first_ts,
            last_ts,
            bytes,
            bloom,
            offsets,
            subjects,
        })
    }

    /// Reads `path`; `None` when missing, corrupt or not for a block of
    /// `block_len` bytes starting at `first_seq` (stale).
    pub(crate) fn read(path: &Path, block_len: u64) -> Option<IndexData> {
        let buf = std::fs::read(path).ok()?;
        let idx = IndexData::decode(&buf)?;
        (idx.block_len == block_len && !idx.offsets.is_empty()).then_some(idx)
    }

    /// Writes the index via a temporary file and rename, so readers never see
    /// a half-written one under the real name. Not fsynced: it is derived
    /// data, and a lost or torn one is rebuilt.
    pub(crate) fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("idx.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&self.encode())?;
        drop(f);
        std::fs::rename(&tmp, path)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let mut idx = IndexData {
            block_len: 1000,
            first_seq: 5,
            first_ts: 1,
            last_ts: 2,
            bytes: 300,
            offsets: vec![8, 60, 120],
            ..Default::default()
        };
        idx.subjects.insert(
            "a".into(),
            SubjectSummary {
                count: 3,
                first: 5,
                last: 7,
            },
        );
        let buf = idx.encode();
        let back = IndexData::decode(&buf).expect("decode");
        assert_eq!(back.offsets, idx.offsets);
        assert_eq!(back.subjects, idx.subjects);
        for cut in 0..buf.len() {
            assert!(IndexData::decode(&buf[..cut]).is_none());
        }
    }
}
