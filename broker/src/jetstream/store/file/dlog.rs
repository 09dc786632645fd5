//! Durable removal records.
//!
//! * The delete log (`NNNNNNNNNN.dlog`, one per block) is append-only: each
//!   entry is a removed range `first..=last` of that block plus a checksum.
//!   A torn tail entry fails its checksum and is dropped (that removal had
//!   not been synced, so it was never acknowledged).
//! * The floor file (`floor`) says "every sequence below N is gone" and
//!   remembers the last sequence/time when no block does (after a purge).
//!   It is replaced atomically (temp file, fsync, rename, fsync dir) before
//!   any purged block is unlinked, so a purge is all-or-nothing.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::jetstream::store::StoreError;

const ENTRY_LEN: usize = 20;

/// Encodes removal ranges as delete-log entries.
pub(crate) fn encode_entries(ranges: &[(u64, u64)], out: &mut Vec<u8>) {
    for (first, last) in ranges {
        let start = out.len();
        out.extend_from_slice(&first.to_le_bytes());
        out.extend_from_slice(&last.to_le_bytes());
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }
}

/// Reads a delete log: the valid entries and the length of the valid prefix.
pub(crate) fn read_dlog(path: &Path) -> Result<(Vec<(u64, u64)>, u64), StoreError> {
    let buf = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(StoreError::io("read delete log", path, e)),
    };
    let mut out = Vec::new();
    let mut valid = 0;
    for e in buf.chunks_exact(ENTRY_LEN) {
        let (body, crc) = e.split_at(16);
        let ok = crc
            .try_into()
            .map(u32::from_le_bytes)
            .is_ok_and(|c| c == crc32fast::hash(body));
        let (Ok(a), Ok(b)) = (body[..8].try_into(), body[8..].try_into()) else {
            break;
        };
        let (first, last) = (u64::from_le_bytes(a), u64::from_le_bytes(b));
        if !ok || first > last {
            break;
        }
        out.push((first, last));
        valid += ENTRY_LEN as u64;
    }
    Ok((out, valid))
}

/// Appends entries and fsyncs. Returns whether the file was created.
pub(crate) fn append_dlog(path: &Path, ranges: &[(u64, u64)]) -> Result<bool, StoreError> {
    let created = !path.exists();
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| StoreError::io("open delete log", path, e))?;
    let mut buf = Vec::with_capacity(ranges.len() * ENTRY_LEN);
    encode_entries(ranges, &mut buf);
    f.write_all(&buf)
        .map_err(|e| StoreError::io("append delete log", path, e))?;
    f.sync_data()
        .map_err(|e| StoreError::io("fsync delete log", path, e))?;
    Ok(created)
}

/// Cuts a delete log back to its valid prefix (recovery).
pub(crate) fn truncate_dlog(path: &Path, len: u64) -> Result<(), StoreError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io("open delete log", path, e))?;
    f.set_len(len)
        .and_then(|_| f.sync_all())
        .map_err(|e| StoreError::io("truncate delete log", path, e))
}

/// Contents of the floor file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Floor {
    /// Every sequence below this one is gone.
    pub seq: u64,
    /// Timestamp of the last message when the floor was written.
    pub last_ts: i64,
}

const FLOOR_MAGIC: &[u8; 4] = b"TRFL";

pub(crate) fn read_floor(dir: &Path) -> Result<Option<Floor>, StoreError> {
    let path = dir.join("floor");
    let buf = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("read floor", &path, e)),
    };
    let corrupt = |reason: &str| StoreError::Corrupt {
        path: path.clone(),
        offset: 0,
        reason: reason.to_owned(),
    };
    // The file is only ever replaced by rename after an fsync, so a bad one
    // is real corruption, not a torn write.
    if buf.len() != 24 || &buf[..4] != FLOOR_MAGIC {
        return Err(corrupt("bad floor file"));
    }
    let crc = u32::from_le_bytes([buf[20], buf[21], buf[22], buf[23]]);
    if crc != crc32fast::hash(&buf[..20]) {
        return Err(corrupt("floor checksum mismatch"));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&buf[4..12]);
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&buf[12..20]);
    Ok(Some(Floor {
        seq: u64::from_le_bytes(seq),
        last_ts: i64::from_le_bytes(ts),
    }))
}

/// Durably replaces the floor file.
pub(crate) fn write_floor(dir: &Path, dir_file: &File, floor: Floor) -> Result<(), StoreError> {
    let path = dir.join("floor");
    let tmp = dir.join("floor.tmp");
    let mut buf = Vec::with_capacity(24);
    buf.extend_from_slice(FLOOR_MAGIC);
    buf.extend_from_slice(&floor.seq.to_le_bytes());
    buf.extend_from_slice(&floor.last_ts.to_le_bytes());
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    let mut f = File::create(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
    f.write_all(&buf)
        .and_then(|_| f.sync_all())
        .map_err(|e| StoreError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| StoreError::io("rename floor", &path, e))?;
    dir_file
        .sync_all()
        .map_err(|e| StoreError::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlog_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("1.dlog");
        append_dlog(&p, &[(1, 3), (7, 7)]).expect("append");
        let full = std::fs::read(&p).expect("read");
        for cut in 0..=full.len() {
            std::fs::write(&p, &full[..cut]).expect("write");
            let (r, valid) = read_dlog(&p).expect("read");
            assert_eq!(r.len(), cut / ENTRY_LEN);
            assert_eq!(valid as usize, cut / ENTRY_LEN * ENTRY_LEN);
        }
        let mut bad = full.clone();
        bad[25] ^= 1;
        std::fs::write(&p, &bad).expect("write");
        assert_eq!(read_dlog(&p).expect("read").0, vec![(1, 3)]);
    }

    #[test]
    fn floor_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = File::open(dir.path()).expect("open dir");
        assert_eq!(read_floor(dir.path()).expect("read"), None);
        let f = Floor {
            seq: 42,
            last_ts: -5,
        };
        write_floor(dir.path(), &d, f).expect("write");
        assert_eq!(read_floor(dir.path()).expect("read"), Some(f));
    }
}
