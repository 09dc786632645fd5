//! When openraft is told entries are stored, and how writes are grouped.

use std::fs;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use openraft::storage::RaftLogStorage;

use super::*;
use crate::raft::log::meta;

/// How many whole records the file at `path` holds, read through a handle
/// of its own.
fn records_on_disk(path: &Path) -> usize {
    records_in(&fs::read(path).unwrap_or_default()).0
}

#[tokio::test]
async fn stored_is_reported_after_the_write_and_batches_share_one_fsync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LogOptions {
        cache_bytes: 0,
        ..LogOptions::default()
    };
    let mut s = Store::open_with(dir.path(), opts).expect("open");
    let path = dir.path().join("log").join(seg_name(1));
    s.shared.hooks.hold(true);

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (k, batch) in [entries(1, 1..=3), entries(1, 4..=6)]
        .into_iter()
        .enumerate()
    {
        let tx = tx.clone();
        let path = path.clone();
        let shared = Arc::clone(&s.shared);
        let done = Done::Test(Box::new(move |r: std::io::Result<()>| {
            let synced = shared.hooks.syncs.load(Ordering::SeqCst);
            let _ = tx.send((k, r.is_ok(), records_on_disk(&path), synced));
        }));
        s.append_batch(batch, done).expect("append");
    }

    // Appended and readable (from the cache, whose cap is 0: unwritten
    // entries stay), but neither written nor reported stored.
    assert_eq!(all(&mut s).await.len(), 6);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(rx.try_recv().is_err(), "reported stored before the write");
    assert_eq!(fs::metadata(&path).expect("meta").len(), 0);

    s.shared.hooks.hold(false);
    // Both batches went out in one write and one fsync, before either was
    // reported, in order.
    assert_eq!(rx.recv().await, Some((0, true, 6, 1)));
    assert_eq!(rx.recv().await, Some((1, true, 6, 1)));

    // Now written, they leave the cache and are read back from the file.
    assert_eq!(all(&mut s).await.len(), 6);
}

#[tokio::test]
async fn committed_is_written_lazily_by_a_timer_and_on_the_way_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LogOptions {
        committed_interval: Duration::from_secs(1),
        ..LogOptions::default()
    };
    let on_disk = |dir: &Path| {
        meta::read::<Option<LogId<u64>>>(dir, meta::COMMITTED)
            .expect("read")
            .flatten()
    };
    let eventually = |dir: &Path, want: LogId<u64>| {
        let dir = dir.to_path_buf();
        async move {
            for _ in 0..500 {
                if on_disk(&dir) == Some(want) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        }
    };
    {
        let mut s = fresh(dir.path(), opts.clone()).await;
        append(&s, entries(1, 1..=3)).await;
        s.save_committed(Some(log_id(1, 1)))
            .await
            .expect("committed");
        assert!(
            eventually(dir.path(), log_id(1, 1)).await,
            "the first change is written at once"
        );

        s.save_committed(Some(log_id(1, 2)))
            .await
            .expect("committed");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            on_disk(dir.path()),
            Some(log_id(1, 1)),
            "later ones wait for the interval"
        );
        let mut idle = false;
        for _ in 0..200 {
            {
                let g = s.shared.inner.lock();
                idle = !g.io.active && g.io.timer_armed;
            }
            if idle {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(idle, "no thread waits for the interval, a timer does");
        assert!(
            eventually(dir.path(), log_id(1, 2)).await,
            "the timer writes it"
        );

        s.save_committed(Some(log_id(1, 3)))
            .await
            .expect("committed");
        assert_eq!(s.read_committed().await.expect("read"), Some(log_id(1, 3)));
    }
    // Dropping the last handle writes it now; open waits for that.
    let mut s = Store::open_with(dir.path(), opts).expect("reopen");
    assert_eq!(s.read_committed().await.expect("read"), Some(log_id(1, 3)));
}

#[tokio::test]
async fn appends_must_not_leave_a_hole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open(dir.path()).expect("open");
    append(&s, entries(1, 1..=3)).await;
    let r = s.append_batch(entries(1, 5..=5), Done::Test(Box::new(|_| {})));
    assert!(r.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_batches_with_concurrent_readers_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LogOptions {
        segment_bytes: 4096,
        cache_bytes: 1024,
        read_batch_bytes: 512,
        committed_interval: Duration::from_millis(10),
        prealloc_bytes: 1 << 20,
    };
    let term = |b: u64| 1 + b / 50;
    let s = fresh(dir.path(), opts.clone()).await;
    let mut r = s.clone();
    let reader = tokio::spawn(async move {
        for _ in 0..300 {
            // A fresh log's last id is its purged index 0 until the first
            // append lands; there is nothing to read then.
            let last = r.get_log_state().await.expect("state").last_log_id;
            if let Some(last) = last.filter(|l| l.index >= 1) {
                let from = last.index.saturating_sub(60).max(1);
                let got = r
                    .try_get_log_entries(from..=last.index)
                    .await
                    .expect("read");
                assert_eq!(got.len() as u64, last.index - from + 1);
                for (k, e) in got.iter().enumerate() {
                    let i = from + k as u64;
                    assert_eq!(e.log_id, log_id(term((i - 1) / 10), i));
                }
            }
            tokio::task::yield_now().await;
        }
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for b in 0..200u64 {
        let tx = tx.clone();
        let done = Done::Test(Box::new(move |r: std::io::Result<()>| {
            let _ = tx.send((b, r.is_ok()));
        }));
        s.append_batch(entries(term(b), b * 10 + 1..=b * 10 + 10), done)
            .expect("append");
        if b % 7 == 0 {
            tokio::task::yield_now().await;
        }
    }
    for b in 0..200u64 {
        assert_eq!(rx.recv().await, Some((b, true)), "completions in order");
    }
    reader.await.expect("reader");
    let syncs = s.shared.hooks.syncs.load(Ordering::SeqCst);
    assert!(syncs < 200 + 20, "{syncs} fsyncs");
    drop(s);

    let mut s = Store::open_with(dir.path(), opts).expect("reopen");
    let got = all(&mut s).await;
    assert_eq!(got.len(), 2000);
    for (k, (id, d)) in got.iter().enumerate() {
        let i = k as u64 + 1;
        let t = term((i - 1) / 10);
        assert_eq!(*id, log_id(t, i));
        assert_eq!(*d, format!("entry {i} of term {t}"));
    }
    assert!(segment_files(dir.path()).len() > 10);
}
