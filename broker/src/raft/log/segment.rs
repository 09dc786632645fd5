//! Segment files: `<dir>/log/<first index, 20 digits>.seg`, each a run of
//! consecutive records, one log entry per record, and what is kept in
//! memory about one (its record offsets, not its entries).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use openraft::{CommittedLeaderId, LogId};

use super::record::{self, Bad, HEADER};

const SUFFIX: &str = ".seg";

/// The file holding the segment whose first entry has index `first`.
pub(super) fn path(log_dir: &Path, first: u64) -> PathBuf {
    log_dir.join(format!("{first:020}{SUFFIX}"))
}

/// The segment files in `log_dir`, by first index. Files with other names
/// are left alone (with a warning).
pub(super) fn list(log_dir: &Path) -> anyhow::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let rd =
        std::fs::read_dir(log_dir).with_context(|| format!("listing {}", log_dir.display()))?;
    for ent in rd {
        let ent = ent.with_context(|| format!("listing {}", log_dir.display()))?;
        let name = ent.file_name();
        let first = name
            .to_str()
            .and_then(|n| n.strip_suffix(SUFFIX))
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok());
        match first {
            Some(first) => out.push((first, ent.path())),
            None => {
                tracing::warn!(path = %ent.path().display(), "ignoring a file that is not a Raft log segment")
            }
        }
    }
    out.sort_unstable_by_key(|(first, _)| *first);
    Ok(out)
}

/// Creates a new, empty segment file. It must not exist: a name is only
/// reused after the old file was deleted.
pub(super) fn create(log_dir: &Path, first: u64) -> anyhow::Result<Segment> {
    let path = path(log_dir, first);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating Raft log segment {}", path.display()))?;
    Ok(Segment {
        first,
        path,
        file: Arc::new(file),
        offsets: Vec::new(),
        end: 0,
    })
}

/// What is kept in memory about one segment file.
pub(super) struct Segment {
    /// Index of the segment's first record.
    pub first: u64,
    pub path: PathBuf,
    /// Shared with readers and the writer; positioned I/O only, so one
    /// handle serves all of them.
    pub file: Arc<File>,
    /// Where each record starts; record `k` holds index `first + k`.
    /// Segments are capped well below 4 GiB, so `u32` is enough and halves
    /// the index.
    pub offsets: Vec<u32>,
    /// Bytes of records assigned to the file: written, or queued for the
    /// writer.
    pub end: u64,
}

impl Segment {
    /// The index after the segment's last record.
    pub fn next_index(&self) -> u64 {
        self.first + self.offsets.len() as u64
    }

    /// Byte range `[start, end)` of the records with indexes `[from, to)`,
    /// which must lie within the segment.
    pub fn span(&self, from: u64, to: u64) -> (u64, u64) {
        let at = |i: u64| -> u64 {
            match self.offsets.get((i - self.first) as usize) {
                Some(o) => u64::from(*o),
                None => self.end,
            }
        };
        (at(from), at(to))
    }
}

/// The result of reading a segment file from the start.
pub(super) struct Scan {
    pub file: File,
    pub offsets: Vec<u32>,
    /// Leader ids of the records, run-length encoded: `(first index, id)`.
    pub leaders: Vec<(u64, CommittedLeaderId<u64>)>,
    /// End of the last intact record; zeros written ahead of the records
    /// may follow it.
    pub end: u64,
    pub file_len: u64,
    /// Where and why reading stopped before the end of the file.
    pub bad: Option<(u64, Bad)>,
}

/// Reads every record of the segment at `path`, checking checksums and that
/// the records hold consecutive indexes from `first`. Zeros from a record
/// boundary to the end of the file end the scan cleanly (the writer puts
/// them ahead of its appends). A damaged record ends the scan (the caller
/// decides whether that is a torn tail); a record that is intact but holds
/// the wrong entry is an error. Only the log id at the front of each entry
/// is decoded.
pub(super) fn scan(path: &Path, first: u64) -> anyhow::Result<Scan> {
    let ctx = || format!("reading Raft log segment {}", path.display());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(ctx)?;
    let file_len = file.metadata().with_context(ctx)?.len();
    let mut rd = BufReader::with_capacity(1 << 20, &file);
    let mut out = Scan {
        offsets: Vec::new(),
        leaders: Vec::new(),
        end: 0,
        file_len,
        bad: None,
        file: file.try_clone().with_context(ctx)?,
    };
    let mut header = [0u8; HEADER];
    let mut payload = Vec::new();
    while out.end < file_len {
        let left = file_len - out.end;
        if left < HEADER as u64 {
            if !only_zeros(&mut rd, left).with_context(ctx)? {
                out.bad = Some((out.end, Bad::Short));
            }
            break;
        }
        rd.read_exact(&mut header).with_context(ctx)?;
        if header == [0; HEADER] {
            // No record has length 0: the zeros the writer puts ahead of
            // its appends, or a torn record if anything but zeros follows.
            if !only_zeros(&mut rd, left - HEADER as u64).with_context(ctx)? {
                out.bad = Some((out.end, Bad::Checksum));
            }
            break;
        }
        let len = record::payload_len(&header).unwrap_or(u32::MAX);
        if u64::from(len) > left - HEADER as u64 {
            out.bad = Some((out.end, Bad::Short));
            break;
        }
        payload.resize(len as usize, 0);
        rd.read_exact(&mut payload).with_context(ctx)?;
        if !record::check(&header, &payload) {
            out.bad = Some((out.end, Bad::Checksum));
            break;
        }
        let Ok(offset) = u32::try_from(out.end) else {
            anyhow::bail!(
                "Raft log segment {} has a record starting past 4 GiB",
                path.display()
            );
        };
        let index = first + out.offsets.len() as u64;
        let log_id = entry_log_id(&payload).with_context(|| {
            format!(
                "decoding the record at offset {} of {}",
                out.end,
                path.display()
            )
        })?;
        anyhow::ensure!(
            log_id.index == index,
            "the record at offset {} of {} holds index {}, expected {index}",
            out.end,
            path.display(),
            log_id.index
        );
        if out
            .leaders
            .last()
            .is_none_or(|(_, l)| *l != log_id.leader_id)
        {
            out.leaders.push((index, log_id.leader_id));
        }
        out.offsets.push(offset);
        out.end += HEADER as u64 + u64::from(len);
    }
    Ok(out)
}

/// Whether the next `n` bytes of `rd` are all zero.
fn only_zeros(rd: &mut impl Read, n: u64) -> io::Result<bool> {
    let mut buf = [0u8; 8192];
    let mut left = n;
    while left > 0 {
        let k = left.min(buf.len() as u64) as usize;
        rd.read_exact(&mut buf[..k])?;
        if buf[..k].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        left -= k as u64;
    }
    Ok(true)
}

/// The log id of an encoded `openraft::Entry`: its first field, so the
/// payload need not be decoded (see the test that pins this).
pub(super) fn entry_log_id(payload: &[u8]) -> Result<LogId<u64>, postcard::Error> {
    postcard::take_from_bytes::<LogId<u64>>(payload).map(|(id, _)| id)
}

/// Truncates `file` to `len` bytes, durably.
pub(super) fn cut(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len)?;
    file.sync_data()
}
