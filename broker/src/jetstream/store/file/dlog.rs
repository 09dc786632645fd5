//! Durable removal records.
//!
//! * The delete log (`NNNNNNNNNN.dlog`, one per block) is append-only: each
//!   entry is a removed range `first..=last` of that block plus a checksum.
//!   A torn tail entry fails its checksum and is dropped (that removal had
//!   not been synced, so it was never acknowledged). Only a truncate rewrites
//!   one (atomically), to drop ranges above the new last sequence.
//! * The floor file (`floor`) says "every sequence below N is gone" and
//!   remembers the last sequence/time when no block does (after a purge, or
//!   a truncate back into a gap). It is replaced atomically (temp file,
//!   fsync, rename, fsync dir) before any purged block is unlinked, so a
//!   purge is all-or-nothing.

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

/// Removes ranges above `seq` from a delete log (a truncate cut its block
/// there, and new messages will reuse those sequences). The new contents
/// replace the file atomically; an emptied log is unlinked. The caller
/// fsyncs the directory. Returns whether the file changed.
pub(crate) fn clip_dlog(path: &Path, seq: u64) -> Result<bool, StoreError> {
    let (ranges, _) = read_dlog(path)?;
    if ranges.iter().all(|r| r.1 <= seq) {
        return Ok(false);
    }
    let kept: Vec<(u64, u64)> = ranges
        .into_iter()
        .filter(|r| r.0 <= seq)
        .map(|(a, b)| (a, b.min(seq)))
        .collect();
    if kept.is_empty() {
        super::remove_file_if_exists(path)?;
        return Ok(true);
    }
    let mut buf = Vec::with_capacity(kept.len() * ENTRY_LEN);
    encode_entries(&kept, &mut buf);
    replace_file(path, &buf)?;
    Ok(true)
}

/// Replaces `path` with `buf` atomically: a temporary file (which recovery
/// deletes if it finds one), fsync, rename. The caller fsyncs the directory.
pub(crate) fn replace_file(path: &Path, buf: &[u8]) -> Result<(), StoreError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = File::create(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
    f.write_all(buf)
        .and_then(|_| f.sync_all())
        .map_err(|e| StoreError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", path, e))
}

/// Contents of the floor file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Floor {
    /// Every sequence below this one is gone (0: none).
    pub seq: u64,
    /// The stream's last sequence is at least this. It matters when no
    /// block holds the last sequence: after a purge past the end, or a
    /// truncate to a sequence whose block was removed earlier.
    pub last: u64,
    /// Timestamp reported as `last_ts` when no block holds `last`.
    pub last_ts: i64,
}

/// The first layout: magic, seq, last_ts, crc (last was always seq - 1).
const FLOOR_MAGIC_V1: &[u8; 4] = b"TRFL";
/// The current one: magic, seq, last, last_ts, crc.
const FLOOR_MAGIC: &[u8; 4] = b"TRF2";
const FLOOR_NAME: &str = "floor";

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

pub(crate) fn read_floor(dir: &Path) -> Result<Option<Floor>, StoreError> {
    let path = dir.join(FLOOR_NAME);
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
    let v1 = buf.len() == 24 && &buf[..4] == FLOOR_MAGIC_V1;
    let v2 = buf.len() == 32 && &buf[..4] == FLOOR_MAGIC;
    if !v1 && !v2 {
        return Err(corrupt("bad floor file"));
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    if u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) != crc32fast::hash(body) {
        return Err(corrupt("floor checksum mismatch"));
    }
    let seq = le_u64(&body[4..]);
    Ok(Some(if v1 {
        Floor {
            seq,
            last: seq.saturating_sub(1),
            last_ts: le_u64(&body[12..]) as i64,
        }
    } else {
        Floor {
            seq,
            last: le_u64(&body[12..]),
            last_ts: le_u64(&body[20..]) as i64,
        }
    }))
}

/// Durably replaces the floor file.
pub(crate) fn write_floor(dir: &Path, dir_file: &File, floor: Floor) -> Result<(), StoreError> {
    let mut buf = Vec::with_capacity(32);
    buf.extend_from_slice(FLOOR_MAGIC);
    buf.extend_from_slice(&floor.seq.to_le_bytes());
    buf.extend_from_slice(&floor.last.to_le_bytes());
    buf.extend_from_slice(&floor.last_ts.to_le_bytes());
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    replace_file(&dir.join(FLOOR_NAME), &buf)?;
    dir_file
        .sync_all()
        .map_err(|e| StoreError::io("fsync directory", dir, e))
}

/// Removes the floor file (a truncate to 0 resets the store); the caller
/// fsyncs the directory.
pub(crate) fn remove_floor(dir: &Path) -> Result<(), StoreError> {
    super::remove_file_if_exists(&dir.join(FLOOR_NAME))
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
            last: 50,
            last_ts: -5,
        };
        write_floor(dir.path(), &d, f).expect("write");
        assert_eq!(read_floor(dir.path()).expect("read"), Some(f));
        // The first layout still reads (last was implied: seq - 1).
        let mut v1 = Vec::new();
        v1.extend_from_slice(FLOOR_MAGIC_V1);
        v1.extend_from_slice(&42u64.to_le_bytes());
        v1.extend_from_slice(&(-5i64).to_le_bytes());
        let crc = crc32fast::hash(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        std::fs::write(dir.path().join(FLOOR_NAME), &v1).expect("write v1");
        let want = Floor { last: 41, ..f };
        assert_eq!(read_floor(dir.path()).expect("read"), Some(want));
        v1[7] ^= 1;
        std::fs::write(dir.path().join(FLOOR_NAME), &v1).expect("write v1");
        assert!(read_floor(dir.path()).is_err());
        remove_floor(dir.path()).expect("remove");
        assert_eq!(read_floor(dir.path()).expect("read"), None);
    }

    #[test]
    fn clip_dlog_drops_ranges_above() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("1.dlog");
        append_dlog(&p, &[(1, 3), (7, 9), (12, 12)]).expect("append");
        assert!(!clip_dlog(&p, 12).expect("clip"));
        assert!(clip_dlog(&p, 8).expect("clip"));
        assert_eq!(read_dlog(&p).expect("read").0, vec![(1, 3), (7, 8)]);
        assert!(clip_dlog(&p, 0).expect("clip"));
        assert!(!p.exists());
        assert!(!clip_dlog(&p, 0).expect("clip missing"));
    }
}
