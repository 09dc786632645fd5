//! Reopening after normal operation, crashes and damage.

use std::fs::{self, OpenOptions};

use openraft::storage::RaftLogStorage;
use openraft::{RaftLogReader, Vote};

use super::*;
use crate::raft::log::record::HEADER;
use crate::raft::log::segment;

#[tokio::test]
async fn reopen_after_append_truncate_purge_and_vote() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut s = Store::open(dir.path()).expect("open");
        append(&s, entries(1, 1..=10)).await;
        s.save_vote(&Vote::new(2, 1)).await.expect("vote");
        s.truncate(log_id(1, 8)).await.expect("truncate");
        append(&s, entries(2, 8..=9)).await;
        s.purge(log_id(1, 3)).await.expect("purge");
        s.save_committed(Some(log_id(1, 5)))
            .await
            .expect("committed");
    }
    let mut s = Store::open(dir.path()).expect("reopen");
    assert_eq!(last(&mut s).await, (Some(log_id(1, 3)), Some(log_id(2, 9))));
    let got = all(&mut s).await;
    let want: Vec<_> = (4..=7)
        .map(|i| (log_id(1, i), format!("entry {i} of term 1")))
        .chain((8..=9).map(|i| (log_id(2, i), format!("entry {i} of term 2"))))
        .collect();
    assert_eq!(got, want);
    assert_eq!(s.read_vote().await.expect("vote"), Some(Vote::new(2, 1)));
    assert_eq!(
        s.read_committed().await.expect("committed"),
        Some(log_id(1, 5))
    );

    // And it goes on from there.
    append(&s, entries(2, 10..=10)).await;
    drop(s);
    let mut s = Store::open(dir.path()).expect("reopen");
    assert_eq!(last(&mut s).await.1, Some(log_id(2, 10)));
}

#[tokio::test]
async fn purge_past_the_end_then_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut s = Store::open_with(dir.path(), tiny()).expect("open");
        append(&s, entries(1, 1..=5)).await;
        s.purge(log_id(3, 20)).await.expect("purge");
        assert_eq!(
            last(&mut s).await,
            (Some(log_id(3, 20)), Some(log_id(3, 20)))
        );
        assert!(all(&mut s).await.is_empty());
        append(&s, entries(3, 21..=22)).await;
    }
    let mut s = Store::open_with(dir.path(), tiny()).expect("reopen");
    assert_eq!(
        last(&mut s).await,
        (Some(log_id(3, 20)), Some(log_id(3, 22)))
    );
    assert_eq!(all(&mut s).await.len(), 2);
    assert_eq!(segment_files(dir.path()).len(), 1);
}

#[tokio::test]
async fn torn_last_record_is_dropped() {
    let (dir, path) = closed_log(5).await;
    let len = data_end(&path) as u64;
    let f = OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open segment");
    f.set_len(len - 3).expect("cut");
    drop(f);

    let mut s = Store::open(dir.path()).expect("reopen");
    assert_eq!(last(&mut s).await.1, Some(log_id(1, 4)));
    assert_eq!(all(&mut s).await.len(), 4);
    let (_, size5) = record_span(&path, 4);
    assert_eq!(size5, 0, "the torn record is cut off the file");
    append(&s, entries(1, 5..=5)).await;
    drop(s);
    let mut s = Store::open(dir.path()).expect("reopen");
    assert_eq!(last(&mut s).await.1, Some(log_id(1, 5)));
}

#[tokio::test]
async fn torn_header_is_dropped() {
    let (dir, path) = closed_log(3).await;
    let mut bytes = fs::read(&path).expect("read");
    let end = data_end(&path);
    bytes.truncate(end);
    bytes.extend_from_slice(&[7, 0, 0]);
    fs::write(&path, &bytes).expect("write");
    let mut s = Store::open(dir.path()).expect("reopen");
    assert_eq!(last(&mut s).await.1, Some(log_id(1, 3)));
    assert_eq!(fs::metadata(&path).expect("meta").len() as usize, end);
}

/// What the writer puts ahead of its appends is not damage: a clean
/// reopen keeps it (no warning, no cut), and appends overwrite it.
#[tokio::test]
async fn zeros_ahead_of_the_records_are_kept_and_written_over() {
    let (dir, path) = closed_log(5).await;
    let end = data_end(&path);
    let bytes = fs::read(&path).expect("read");
    assert!(bytes.len() >= end + (64 << 10), "{} bytes", bytes.len());
    assert!(bytes[end..].iter().all(|b| *b == 0));

    let mut s = Store::open(dir.path()).expect("reopen");
    assert_eq!(all(&mut s).await.len(), 5);
    assert_eq!(fs::read(&path).expect("read").len(), bytes.len());
    append(&s, entries(1, 6..=6)).await;
    assert_eq!(
        record_span(&path, 5).0,
        end,
        "written where the records end"
    );
    drop(s);
    let mut s = Store::open(dir.path()).expect("reopen");
    assert_eq!(all(&mut s).await.len(), 6);
}

/// With `prealloc_bytes: 0` a segment holds its records and nothing more.
#[tokio::test]
async fn no_zeros_ahead_when_turned_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log").join(seg_name(1));
    let opts = LogOptions {
        prealloc_bytes: 0,
        ..LogOptions::default()
    };
    let s = Store::open_with(dir.path(), opts).expect("open");
    append(&s, entries(1, 1..=5)).await;
    assert_eq!(fs::read(&path).expect("read").len(), data_end(&path));
}

/// A record torn inside the zeros (its end never written) is a torn tail,
/// and so is anything but zeros after a zero header.
#[tokio::test]
async fn damage_before_or_among_the_zeros_is_a_torn_tail() {
    for (what, at_end) in [("torn record", false), ("garbage after zeros", true)] {
        let (dir, path) = closed_log(5).await;
        let end = data_end(&path);
        let mut bytes = fs::read(&path).expect("read");
        if at_end {
            let n = bytes.len();
            bytes[n - 1] = 1;
        } else {
            bytes[end - 3..end].fill(0);
        }
        fs::write(&path, &bytes).expect("write");

        let mut s = Store::open(dir.path()).expect("reopen");
        let kept = if at_end { 5 } else { 4 };
        assert_eq!(all(&mut s).await.len(), kept, "{what}");
        let cut = if at_end { end } else { record_span(&path, 4).0 };
        assert_eq!(fs::read(&path).expect("read").len(), cut, "{what}");
    }
}

/// Segments closed with zeros after their records (tiny segments get a
/// few bytes of them, fewer than a header at times) reopen whole.
#[tokio::test]
async fn closed_segments_with_zeros_after_their_records_reopen() {
    let dir = closed_tiny_log_one_by_one(20).await;
    let files = segment_files(dir.path());
    let padded = files
        .iter()
        .filter(|f| fs::read(f).expect("read").len() > data_end(f))
        .count();
    assert!(
        padded > 1,
        "{padded} of {} segments have zeros",
        files.len()
    );
    let mut s = Store::open_with(dir.path(), tiny()).expect("reopen");
    assert_eq!(all(&mut s).await.len(), 20);
}

#[tokio::test]
async fn flipped_byte_in_last_record_is_dropped() {
    let (dir, path) = closed_log(5).await;
    let mut bytes = fs::read(&path).expect("read");
    let n = data_end(&path);
    bytes[n - 2] ^= 0x40;
    fs::write(&path, &bytes).expect("write");

    let mut s = Store::open(dir.path()).expect("reopen");
    assert_eq!(last(&mut s).await.1, Some(log_id(1, 4)));
    assert_eq!(all(&mut s).await.len(), 4);
}

#[tokio::test]
async fn flipped_byte_in_an_earlier_segment_refuses_to_open() {
    let dir = closed_log_with(tiny(), 10).await;
    let files = segment_files(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    let mut bytes = fs::read(&files[0]).expect("read");
    bytes[HEADER + 3] ^= 1;
    fs::write(&files[0], &bytes).expect("write");

    let err = Store::open_with(dir.path(), tiny())
        .err()
        .expect("must refuse");
    let msg = format!("{err:#}");
    assert!(msg.contains(&seg_name(1)), "{msg}");
    assert!(msg.contains("offset 0"), "{msg}");
    assert!(msg.contains("checksum mismatch"), "{msg}");
}

#[tokio::test]
async fn segments_roll_over_and_go_with_purge_and_truncate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let firsts = |dir: &Path| -> Vec<u64> {
        segment_files(dir)
            .iter()
            .map(|p| {
                p.file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse().ok())
                    .expect("segment name")
            })
            .collect()
    };
    {
        let s = fresh(dir.path(), tiny()).await;
        for i in 0..10 {
            append(&s, entries(1, i * 5 + 1..=i * 5 + 5)).await;
        }
    }
    let before = firsts(dir.path());
    assert!(before.len() > 5, "{before:?}");
    assert_eq!(before[0], 1);
    for f in segment_files(dir.path()) {
        let len = fs::metadata(&f).expect("meta").len();
        assert!(len <= 100, "{} has {len} bytes", f.display());
    }

    let mut s = Store::open_with(dir.path(), tiny()).expect("reopen");
    let got = all(&mut s).await;
    assert_eq!(got.len(), 50);
    assert!(got
        .iter()
        .enumerate()
        .all(|(k, (id, _))| id.index == k as u64 + 1));

    s.purge(log_id(1, 20)).await.expect("purge");
    s.truncate(log_id(1, 31)).await.expect("truncate");
    // The purge's deletions are queued before the truncation's, which was
    // waited for.
    let after = firsts(dir.path());
    let lo = before.iter().copied().filter(|f| *f <= 21).max();
    let hi = before.iter().copied().filter(|f| *f <= 30).max();
    let want: Vec<u64> = before
        .iter()
        .copied()
        .filter(|f| Some(*f) >= lo && Some(*f) <= hi)
        .collect();
    assert_eq!(after, want, "{before:?}");
    drop(s);

    let mut s = Store::open_with(dir.path(), tiny()).expect("reopen");
    assert_eq!(
        last(&mut s).await,
        (Some(log_id(1, 20)), Some(log_id(1, 30)))
    );
    let got = all(&mut s).await;
    assert_eq!(got.first().map(|g| g.0.index), Some(21));
    assert_eq!(got.len(), 10);
}

#[tokio::test]
async fn empty_segment_left_by_a_crash_is_removed() {
    let (dir, _) = closed_log(3).await;
    // A segment created for index 4, or for the entry after a purge whose
    // deletions never ran.
    fs::write(dir.path().join("log").join(seg_name(4)), b"").expect("touch");
    fs::write(dir.path().join("log").join(seg_name(40)), b"").expect("touch");
    let mut s = Store::open(dir.path()).expect("reopen");
    assert_eq!(last(&mut s).await.1, Some(log_id(1, 3)));
    assert_eq!(segment_files(dir.path()).len(), 1);
    append(&s, entries(1, 4..=4)).await;
}

#[tokio::test]
async fn gap_between_segments_refuses_to_open() {
    let dir = closed_log_with(tiny(), 10).await;
    let files = segment_files(dir.path());
    fs::remove_file(&files[1]).expect("remove");
    let err = Store::open_with(dir.path(), tiny())
        .err()
        .expect("must refuse");
    assert!(format!("{err:#}").contains("do not join up"), "{err:#}");
}

#[tokio::test]
async fn reads_come_from_files_when_not_cached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Store::open_with(dir.path(), tiny()).expect("open");
    append(&s, entries(1, 1..=20)).await;
    append(&s, entries(2, 21..=30)).await;
    let got = s.try_get_log_entries(5..25).await.expect("read");
    assert_eq!(got.len(), 20);
    assert_eq!(got[0].log_id, log_id(1, 5));
    assert_eq!(got[19].log_id, log_id(2, 24));
    // The byte limit (64) holds one or two entries of ~35 bytes.
    let got = s.limited_get_log_entries(5, 25).await.expect("read");
    assert!((1..=2).contains(&got.len()), "{}", got.len());
    assert_eq!(got[0].log_id, log_id(1, 5));
    assert!(s
        .try_get_log_entries(31..40)
        .await
        .expect("read")
        .is_empty());
}

#[tokio::test]
async fn an_io_error_fails_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Store::open(dir.path()).expect("open");
    append(&s, entries(1, 1..=3)).await;
    fs::remove_dir_all(dir.path()).expect("remove");
    assert!(s.save_vote(&Vote::new(1, 1)).await.is_err());
    assert!(s.get_log_state().await.is_err());
    let r = s.append_batch(entries(1, 4..=4), Done::Test(Box::new(|_| {})));
    assert!(r.is_err());
}

#[test]
fn the_log_id_is_the_front_of_an_encoded_entry() {
    let e = entry(7, 42);
    let mut buf = Vec::new();
    crate::raft::log::record::encode(&mut buf, &e).expect("encode");
    let (payload, _) = crate::raft::log::record::parse(&buf).expect("parse");
    assert_eq!(
        segment::entry_log_id(payload).expect("log id"),
        log_id(7, 42)
    );
}

/// Offset and size of record `k` of the segment file at `path`.
fn record_span(path: &Path, k: usize) -> (usize, usize) {
    let bytes = fs::read(path).expect("read");
    let mut pos = 0;
    for _ in 0..k {
        let (_, n) = crate::raft::log::record::parse(&bytes[pos..]).expect("record");
        pos += n;
    }
    match crate::raft::log::record::parse(&bytes[pos..]) {
        Ok((_, n)) => (pos, n),
        Err(_) => (pos, bytes.len() - pos),
    }
}

/// A crash can leave the newest segment holding only zeros (written, but
/// its first records not): it is removed like an empty one.
#[tokio::test]
async fn a_newest_segment_of_only_zeros_is_removed() {
    let (dir, _) = closed_log(3).await;
    fs::write(dir.path().join("log").join(seg_name(4)), vec![0u8; 4096]).expect("write");
    let mut s = Store::open(dir.path()).expect("reopen");
    assert_eq!(last(&mut s).await.1, Some(log_id(1, 3)));
    assert_eq!(segment_files(dir.path()).len(), 1);
    append(&s, entries(1, 4..=4)).await;
    drop(s);
    let mut s = Store::open(dir.path()).expect("reopen");
    assert_eq!(all(&mut s).await.len(), 4);
}

/// Zeros where a record should be, with records after them, are not the
/// zeros ahead: the newest segment is cut there.
#[tokio::test]
async fn a_hole_of_zeros_before_later_records_is_a_torn_tail() {
    let (dir, path) = closed_log(5).await;
    let (at, size) = record_span(&path, 2);
    let mut bytes = fs::read(&path).expect("read");
    bytes[at..at + size].fill(0);
    fs::write(&path, &bytes).expect("write");

    let mut s = Store::open(dir.path()).expect("reopen");
    assert_eq!(all(&mut s).await.len(), 2);
    assert_eq!(fs::read(&path).expect("read").len(), at);
}

/// A log that lost its first segment (the entries before its first one
/// are neither there nor purged) refuses to open, as a gap between
/// segments does: openraft would look for them.
#[tokio::test]
async fn a_lost_first_segment_refuses_to_open() {
    let dir = closed_tiny_log_one_by_one(20).await;
    let files = segment_files(dir.path());
    fs::remove_file(&files[0]).expect("remove");
    let err = Store::open_with(dir.path(), tiny())
        .err()
        .expect("must refuse");
    assert!(
        format!("{err:#}").contains("entries are missing"),
        "{err:#}"
    );
}

/// Anything but zeros after the records of a segment that is not the
/// newest is damage, not a crash's: opening refuses.
#[tokio::test]
async fn garbage_after_an_earlier_segments_records_refuses_to_open() {
    let dir = closed_tiny_log_one_by_one(20).await;
    let files = segment_files(dir.path());
    let padded = files[..files.len() - 1]
        .iter()
        .find(|f| fs::read(f).expect("read").len() > data_end(f))
        .expect("an earlier segment with zeros after its records");
    let mut bytes = fs::read(padded).expect("read");
    let n = bytes.len();
    bytes[n - 1] = 1;
    fs::write(padded, &bytes).expect("write");
    let err = Store::open_with(dir.path(), tiny())
        .err()
        .expect("must refuse");
    assert!(format!("{err:#}").contains("refusing to open"), "{err:#}");
}

/// Where the intact records of the segment file at `path` end (the zeros
/// the writer puts ahead of them follow).
fn data_end(path: &Path) -> usize {
    records_in(&fs::read(path).expect("read")).1
}

/// A log closed after entries 1..=`n` of term 1 went in as one batch
/// (default options), and its first segment file.
async fn closed_log(n: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = closed_log_with(LogOptions::default(), n).await;
    let path = dir.path().join("log").join(seg_name(1));
    (dir, path)
}

/// A log with `opts` closed after entries 1..=`n` of term 1 went in as one
/// batch.
async fn closed_log_with(opts: LogOptions, n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = fresh(dir.path(), opts).await;
        append(&s, entries(1, 1..=n)).await;
    }
    dir
}

/// A log of tiny segments closed after entries 1..=`n` went in one at a
/// time, so appends reached the ends of segments and padded them.
async fn closed_tiny_log_one_by_one(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = fresh(dir.path(), tiny()).await;
        for i in 1..=n {
            append(&s, entries(1, i..=i)).await;
        }
    }
    dir
}

/// `wait_closed` tells when a directory may be removed: not while a store
/// has it open, at once after the last handle is gone and its writer is
/// done, and at once for a directory that does not exist.
#[tokio::test]
async fn wait_closed_waits_for_the_store_to_be_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    append(&store, entries(1, 1..=3)).await;
    let err = super::super::wait_closed(dir.path(), Duration::from_millis(50));
    assert!(err.is_err(), "an open store's directory is not closed");
    drop(store);
    super::super::wait_closed(dir.path(), Duration::from_secs(10)).expect("closed once dropped");
    std::fs::remove_dir_all(dir.path()).expect("remove");
    // Nothing writes there any more.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!dir.path().exists());
    super::super::wait_closed(dir.path(), Duration::from_millis(1)).expect("gone is closed");
}
