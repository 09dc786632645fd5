//! Sequential record reading over a block: `pread`s in growing chunks (a
//! single-record lookup reads little, a long scan reads big sequential
//! chunks) and yields whole records without per-record allocation.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::record::{RecordHeader, HEADER_LEN};

/// Positional reads; implemented by sealed block files and the active block
/// (whose tail may still sit in its write buffer).
pub(crate) trait ReadAt {
    fn read_full_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<()>;
}

impl ReadAt for File {
    fn read_full_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<()> {
        FileExt::read_exact_at(self, buf, off)
    }
}

const FIRST_CHUNK: usize = 4 * 1024;
const MAX_CHUNK: usize = 256 * 1024;

/// What [`Records::next`] found.
pub(crate) enum Next<'b> {
    /// A record at this offset (framing checked, checksum not).
    Record(u64, RecordHeader, &'b [u8]),
    /// Clean end of the range.
    End,
    /// Bytes at this offset do not frame a record (torn or garbage).
    Malformed(u64),
}

pub(crate) struct Records<'a, R: ReadAt + ?Sized> {
    src: &'a R,
    off: u64,
    end: u64,
    buf: Vec<u8>,
    buf_off: u64,
    chunk: usize,
}

impl<'a, R: ReadAt + ?Sized> Records<'a, R> {
    /// Records in `[start, end)` of `src`; `start` must be a record boundary.
    pub(crate) fn new(src: &'a R, start: u64, end: u64) -> Self {
        Records {
            src,
            off: start,
            end,
            buf: Vec::new(),
            buf_off: start,
            chunk: FIRST_CHUNK,
        }
    }

    fn fill(&mut self, at: u64, want: usize) -> std::io::Result<()> {
        let n = want.min((self.end - at) as usize);
        self.buf.resize(n, 0);
        self.src.read_full_at(&mut self.buf, at)?;
        self.buf_off = at;
        self.chunk = (self.chunk * 2).min(MAX_CHUNK);
        Ok(())
    }

    /// Offset of the next record to be read.
    pub(crate) fn offset(&self) -> u64 {
        self.off
    }

    pub(crate) fn next(&mut self) -> std::io::Result<Next<'_>> {
        if self.off >= self.end {
            return Ok(Next::End);
        }
        let off = self.off;
        if self.end - off < HEADER_LEN as u64 {
            return Ok(Next::Malformed(off));
        }
        let buffered = self.buf_off + self.buf.len() as u64;
        if off < self.buf_off || off + HEADER_LEN as u64 > buffered {
            self.fill(off, self.chunk)?;
        }
        let rel = (off - self.buf_off) as usize;
        let Some(h) = RecordHeader::parse(&self.buf[rel..]) else {
            return Ok(Next::Malformed(off));
        };
        if off + h.len as u64 > self.end {
            return Ok(Next::Malformed(off));
        }
        let rel = if rel + h.len > self.buf.len() {
            self.fill(off, h.len.max(self.chunk))?;
            0
        } else {
            rel
        };
        self.off = off + h.len as u64;
        Ok(Next::Record(off, h, &self.buf[rel..rel + h.len]))
    }
}
