//! Reading records: the LRU of loaded sealed-block offset tables, single
//! record loads (one exact-size `pread`) and in-block scans.

use std::fs::File;
use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::Bytes;

use super::block::{block_path, index_path, Block};
use super::index::IndexData;
use super::record::{self, RecordHeader};
use super::scan::{Next, ReadAt, Records};
use super::FileStore;
use crate::jetstream::store::{StoreError, StoredMsg};

/// A sealed block opened for reading, with its offset table.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub file: File,
    pub offsets: Vec<u32>,
}

/// Small most-recently-used-first cache of loaded blocks.
#[derive(Debug)]
pub(crate) struct BlockCache {
    cap: usize,
    entries: Vec<(u64, Arc<Loaded>)>,
}

impl BlockCache {
    pub(crate) fn new(cap: usize) -> Self {
        BlockCache {
            cap,
            entries: Vec::with_capacity(cap),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&mut self, id: u64) -> Option<Arc<Loaded>> {
        let i = self.entries.iter().position(|(b, _)| *b == id)?;
        let e = self.entries.remove(i);
        let l = e.1.clone();
        self.entries.insert(0, e);
        Some(l)
    }

    fn put(&mut self, id: u64, l: Arc<Loaded>) {
        self.entries.retain(|(b, _)| *b != id);
        self.entries.insert(0, (id, l));
        self.entries.truncate(self.cap);
    }

    pub(crate) fn forget(&mut self, id: u64) {
        self.entries.retain(|(b, _)| *b != id);
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

/// Where a block's bytes come from.
enum Src<'a> {
    Active(&'a super::ActiveBlock),
    Sealed(Arc<Loaded>),
}

impl Src<'_> {
    fn offsets(&self) -> &[u32] {
        match self {
            Src::Active(a) => &a.offsets,
            Src::Sealed(l) => &l.offsets,
        }
    }
    fn reader(&self) -> &dyn ReadAt {
        match self {
            Src::Active(a) => *a,
            Src::Sealed(l) => &l.file,
        }
    }
}

impl FileStore {
    /// Opens a sealed block and its offsets: from the index file, or by
    /// scanning the block when the index is missing or stale (and then
    /// rewriting it).
    fn loaded(&self, b: &Block) -> Result<Arc<Loaded>, StoreError> {
        if let Some(l) = self.cache.lock().get(b.id) {
            return Ok(l);
        }
        let path = block_path(&self.dir, b.id);
        let file = File::open(&path).map_err(|e| StoreError::io("open block", &path, e))?;
        let ipath = index_path(&self.dir, b.id);
        let offsets = match IndexData::read(&ipath, b.len) {
            Some(idx) if idx.first_seq == b.first && idx.offsets.len() as u64 == b.records() => {
                idx.offsets
            }
            _ => {
                tracing::info!(path = %ipath.display(), "block index missing or stale; rebuilding");
                let scan = super::recover::scan_block_file(&file, &path, b.len, b.first - 1)?;
                if scan.valid_len != b.len || scan.index.first_seq != b.first {
                    return Err(StoreError::Corrupt {
                        path,
                        offset: scan.valid_len,
                        reason: "block changed since it was opened".into(),
                    });
                }
                if let Err(e) = scan.index.write(&ipath) {
                    tracing::warn!(path = %ipath.display(), error = %e, "writing block index failed");
                }
                scan.index.offsets
            }
        };
        let l = Arc::new(Loaded { file, offsets });
        self.cache.lock().put(b.id, l.clone());
        Ok(l)
    }

    fn src(&self, bi: usize) -> Result<Src<'_>, StoreError> {
        if self.is_active(bi) {
            if let Some(a) = &self.active {
                return Ok(Src::Active(a));
            }
        }
        Ok(Src::Sealed(self.loaded(&self.blocks[bi])?))
    }

    /// `[start, end)` of the record for `seq` in block `bi`.
    fn record_span(&self, src: &Src<'_>, bi: usize, seq: u64) -> Result<(u64, u64), StoreError> {
        let b = &self.blocks[bi];
        let i = (seq - b.first) as usize;
        let offs = src.offsets();
        let corrupt = || StoreError::CorruptMsg {
            path: block_path(&self.dir, b.id),
            seq,
            reason: "offset table does not cover the sequence".into(),
        };
        let start = *offs.get(i).ok_or_else(corrupt)? as u64;
        let end = offs.get(i + 1).map_or(b.len, |o| *o as u64);
        if end <= start {
            return Err(corrupt());
        }
        Ok((start, end))
    }

    /// Offset of the record for `seq` in block `bi` (which holds it).
    pub(super) fn record_offset(&self, bi: usize, seq: u64) -> Result<u64, StoreError> {
        let src = self.src(bi)?;
        Ok(self.record_span(&src, bi, seq)?.0)
    }

    /// Reads the whole record for `seq` (which block `bi` holds).
    pub(super) fn read_record(&self, bi: usize, seq: u64) -> Result<Vec<u8>, StoreError> {
        let src = self.src(bi)?;
        let (start, end) = self.record_span(&src, bi, seq)?;
        let mut buf = vec![0; (end - start) as usize];
        src.reader().read_full_at(&mut buf, start).map_err(|e| {
            StoreError::io("read block", block_path(&self.dir, self.blocks[bi].id), e)
        })?;
        Ok(buf)
    }

    /// Subject, nats byte size and timestamp of `seq`, reading only the
    /// record's head.
    pub(super) fn record_meta(
        &self,
        bi: usize,
        seq: u64,
    ) -> Result<(String, u64, i64), StoreError> {
        let src = self.src(bi)?;
        let (start, end) = self.record_span(&src, bi, seq)?;
        let path = || block_path(&self.dir, self.blocks[bi].id);
        let mut buf = vec![0; ((end - start) as usize).min(record::HEADER_LEN + 256)];
        src.reader()
            .read_full_at(&mut buf, start)
            .map_err(|e| StoreError::io("read block", path(), e))?;
        let bad = |reason: &str| StoreError::CorruptMsg {
            path: path(),
            seq,
            reason: reason.into(),
        };
        let h = RecordHeader::parse(&buf).ok_or_else(|| bad("bad record header"))?;
        if h.seq != seq || h.len as u64 != end - start {
            return Err(bad("record does not match the offset table"));
        }
        if record::HEADER_LEN + h.subj_len > buf.len() {
            buf.resize(record::HEADER_LEN + h.subj_len, 0);
            src.reader()
                .read_full_at(&mut buf, start)
                .map_err(|e| StoreError::io("read block", path(), e))?;
        }
        let subject = std::str::from_utf8(h.subject(&buf))
            .map_err(|_| bad("subject is not UTF-8"))?
            .to_owned();
        Ok((subject, h.nats_size(), h.ts))
    }

    pub(super) fn decode(&self, rec: Bytes) -> Result<StoredMsg, StoreError> {
        let seq = RecordHeader::parse(&rec).map_or(0, |h| h.seq);
        record::decode(rec).map_err(|reason| {
            let path = self
                .block_index(seq)
                .map(|bi| block_path(&self.dir, self.blocks[bi].id))
                .unwrap_or_else(|| self.dir.clone());
            StoreError::CorruptMsg {
                path,
                seq,
                reason: reason.into(),
            }
        })
    }

    /// Loads and verifies `seq` from block `bi`.
    pub(super) fn load_record(&self, bi: usize, seq: u64) -> Result<StoredMsg, StoreError> {
        let msg = self.decode(Bytes::from(self.read_record(bi, seq)?))?;
        if msg.seq != seq {
            return Err(StoreError::CorruptMsg {
                path: block_path(&self.dir, self.blocks[bi].id),
                seq,
                reason: format!("record holds sequence {}", msg.seq),
            });
        }
        Ok(msg)
    }

    /// Calls `f` for each live record of block `bi` in `[from, to]`, in
    /// order, until it breaks. Framing is checked, checksums are not (callers
    /// that return a message decode it, which verifies the checksum).
    pub(super) fn scan_block(
        &self,
        bi: usize,
        from: u64,
        to: u64,
        mut f: impl FnMut(u64, &RecordHeader, &[u8]) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, StoreError> {
        let b = &self.blocks[bi];
        let from = from.max(b.first);
        let to = to.min(b.last);
        // Skip a deleted prefix without reading it.
        let Some(from) = b.first_live_from(from) else {
            return Ok(ControlFlow::Continue(()));
        };
        if from > to {
            return Ok(ControlFlow::Continue(()));
        }
        let src = self.src(bi)?;
        let (start, _) = self.record_span(&src, bi, from)?;
        let path = || block_path(&self.dir, b.id);
        let mut recs = Records::new(src.reader(), start, b.len);
        let mut seq = from;
        while seq <= to {
            let next = recs
                .next()
                .map_err(|e| StoreError::io("read block", path(), e))?;
            match next {
                Next::Record(_, h, rec) => {
                    if h.seq != seq {
                        return Err(StoreError::CorruptMsg {
                            path: path(),
                            seq,
                            reason: format!("found sequence {} while scanning", h.seq),
                        });
                    }
                    if !b.deleted.contains(seq - b.first) && f(seq, &h, rec).is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Next::End | Next::Malformed(_) => {
                    return Err(StoreError::Corrupt {
                        path: path(),
                        offset: recs.offset(),
                        reason: format!("block ends before sequence {seq}"),
                    })
                }
            }
            seq += 1;
        }
        Ok(ControlFlow::Continue(()))
    }
}
