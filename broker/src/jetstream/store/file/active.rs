//! The block being appended to: an in-process write buffer in front of the
//! file (flushed with `pwrite` in large chunks, fsynced only by `sync`), and
//! the block's seq -> offset table and subject summary kept in RAM until the
//! block is sealed and its index file written.

use crate::jetstream::store::SubjectMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::block::{block_path, Block, BLOCK_MAGIC};
use super::index::{IndexData, SubjectSummary};
use super::record;
use super::scan::ReadAt;
use crate::jetstream::store::StoreError;

/// Buffered bytes that trigger a write to the file (not an fsync).
const FLUSH_AT: usize = 256 * 1024;

#[derive(Debug)]
pub(crate) struct ActiveBlock {
    pub id: u64,
    pub path: PathBuf,
    pub file: File,
    /// Bytes already written to the file.
    pub flushed: u64,
    /// Bytes appended but not yet written.
    pub pending: Vec<u8>,
    /// Offset of each record, by `seq - block.first`.
    pub offsets: Vec<u32>,
    /// Per-subject summary of all records (for the index file).
    pub subjects: SubjectMap<SubjectSummary>,
    /// nats-server byte count of all records (for the index file).
    pub bytes_all: u64,
    /// Written to since the last fsync.
    pub dirty: bool,
}

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to
/// disk, without waiting. Otherwise a block's bytes stay dirty in the page
/// cache until its fsync, and the fsync that seals a full 8 MiB block
/// stalls the appends behind it for milliseconds (measured on the R3
/// publish bench: median p99 ack time 14.4 ms without this, 10.6 ms with
/// it, rate unchanged). Best effort: an error only means the fsync does
/// that work later.
fn start_writeback(file: &File, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a plain system call on a descriptor `file` keeps open for the
    // duration of the call; no memory is passed.
    let _ = unsafe {
        nix::libc::sync_file_range(
            std::os::fd::AsRawFd::as_raw_fd(file),
            offset,
            len,
            nix::libc::SYNC_FILE_RANGE_WRITE,
        )
    };
}

impl ActiveBlock {
    /// Creates a new, empty block file (its magic still buffered).
    pub(crate) fn create(dir: &Path, id: u64) -> Result<ActiveBlock, StoreError> {
        let path = block_path(dir, id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io("create block", &path, e))?;
        let mut pending = Vec::with_capacity(FLUSH_AT + 4096);
        pending.extend_from_slice(BLOCK_MAGIC);
        Ok(ActiveBlock {
            id,
            path,
            file,
            flushed: 0,
            pending,
            offsets: Vec::new(),
            subjects: SubjectMap::default(),
            bytes_all: 0,
            dirty: true,
        })
    }

    pub(crate) fn len(&self) -> u64 {
        self.flushed + self.pending.len() as u64
    }

    /// Appends one record (already validated by the caller).
    pub(crate) fn append(
        &mut self,
        seq: u64,
        ts: i64,
        subject: &str,
        headers: &[u8],
        payload: &[u8],
    ) -> Result<(), StoreError> {
        self.offsets.push(self.len() as u32);
        record::encode(&mut self.pending, seq, ts, subject, headers, payload);
        self.bytes_all += crate::jetstream::store::file_store_msg_size(subject, headers, payload);
        match self.subjects.get_mut(subject) {
            Some(s) => {
                s.count += 1;
                s.last = seq;
            }
            None => {
                self.subjects.insert(
                    subject.to_owned(),
                    SubjectSummary {
                        count: 1,
                        first: seq,
                        last: seq,
                    },
                );
            }
        }
        if self.pending.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes buffered bytes to the file (no fsync).
    pub(crate) fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file
            .write_all_at(&self.pending, self.flushed)
            .map_err(|e| StoreError::io("write block", &self.path, e))?;
        start_writeback(&self.file, self.flushed, self.pending.len() as u64);
        self.flushed += self.pending.len() as u64;
        self.pending.clear();
        self.dirty = true;
        Ok(())
    }

    /// Flushes and fsyncs if anything was written since the last fsync.
    pub(crate) fn sync(&mut self) -> Result<(), StoreError> {
        self.flush()?;
        if self.dirty {
            self.file
                .sync_data()
                .map_err(|e| StoreError::io("fsync block", &self.path, e))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// The index file contents for this block.
    pub(crate) fn index_data(&self, block: &Block) -> IndexData {
        IndexData {
            block_len: self.len(),
            first_seq: block.first,
            first_ts: block.first_ts,
            last_ts: block.last_ts,
            bytes: self.bytes_all,
            bloom: block.bloom.clone(),
            offsets: self.offsets.clone(),
            subjects: self.subjects.clone(),
        }
    }
}

impl ReadAt for ActiveBlock {
    fn read_full_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<()> {
        let end = off + buf.len() as u64;
        if end > self.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past the end of the active block",
            ));
        }
        let from_file = self.flushed.saturating_sub(off).min(buf.len() as u64) as usize;
        if from_file > 0 {
            self.file.read_exact_at(&mut buf[..from_file], off)?;
        }
        if from_file < buf.len() {
            let p = (off + from_file as u64 - self.flushed) as usize;
            let n = buf.len() - from_file;
            buf[from_file..].copy_from_slice(&self.pending[p..p + n]);
        }
        Ok(())
    }
}
