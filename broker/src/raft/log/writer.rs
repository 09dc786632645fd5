//! The writer: a thread per store that exists only while the store has
//! file work. It drains the queue in order; consecutive append batches are
//! written with one positioned write and one fdatasync per segment, and
//! only then are their callbacks completed, in order. An append that
//! reaches the end of its file also writes zeros ahead of itself, in the
//! same fdatasync, so the appends after it sync no file metadata. Truncations, purges
//! and votes are done in queue order between them, so file I/O is
//! serialized as openraft requires. `append` itself returns at once, but
//! openraft 0.9's core then waits for the callback before it replicates
//! the entries or reads its next message (BENCHMARKS.md, clustered
//! JetStream). Once the queue is empty the committed log id is written
//! if it changed, and the thread exits after lingering briefly for more.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use openraft::{Entry, RaftTypeConfig};

use super::meta;
use super::segment;
use super::shared::{Batch, Op, Shared};
use super::state::{Purge, Truncation};

/// How long an idle writer waits for more work before its thread exits.
const LINGER: std::time::Duration = std::time::Duration::from_millis(200);

/// The first step of zeros written ahead of a segment's records.
const ZERO_STEP_MIN: u64 = 64 << 10;

/// What [`Shared::zero_ahead`] writes from, a piece at a time.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

impl<C> Shared<C>
where
    C: RaftTypeConfig<NodeId = u64, Entry = Entry<C>>,
{
    /// Starts a writer unless one is running; wakes it if it is waiting.
    pub fn kick(self: &Arc<Self>, inner: &mut super::shared::Inner<C>) -> Result<(), String> {
        if inner.io.active {
            self.wake.notify_one();
            return Ok(());
        }
        let me = Arc::clone(self);
        match std::thread::Builder::new()
            .name("raft-log".into())
            .spawn(move || me.run())
        {
            Ok(_) => {
                inner.io.active = true;
                Ok(())
            }
            Err(e) => Err(self.fail(inner, format!("starting the Raft log writer: {e}"))),
        }
    }

    /// The writer thread: drains the queue, then writes the committed log
    /// id if it changed (at most once per `committed_interval` while other
    /// handles exist, else leaving a timer to come back), then exits.
    fn run(self: Arc<Self>) {
        let mut idle_until: Option<Instant> = None;
        let mut ops = Vec::new();
        let mut appends = Vec::new();
        let mut scratch = Vec::new();
        loop {
            #[cfg(test)]
            self.hooks.pass();
            let committed = {
                let mut g = self.inner.lock();
                loop {
                    if !g.io.queue.is_empty() {
                        std::mem::swap(&mut g.io.queue, &mut ops);
                        break None;
                    }
                    if g.io.committed_dirty && g.io.failed.is_none() {
                        let now = Instant::now();
                        let due =
                            g.io.committed_written
                                .map_or(now, |t| t + self.opts.committed_interval);
                        if due <= now || self.handles.load(Ordering::Acquire) == 0 {
                            g.io.committed_dirty = false;
                            g.io.committed_written = Some(now);
                            break Some(g.log.committed);
                        }
                        match self.runtime.get() {
                            Some(rt) => {
                                if !g.io.timer_armed {
                                    g.io.timer_armed = true;
                                    rt.spawn(committed_timer(Arc::downgrade(&self), due));
                                }
                            }
                            None => {
                                self.wake.wait_until(&mut g, due);
                                continue;
                            }
                        }
                    }
                    // Linger a little for more work: a busy store appends
                    // hundreds of times a second, and a thread per burst
                    // cost a fifth of the broker's CPU. The deadline is
                    // fixed from the moment the queue ran dry (a committed
                    // id update also wakes the writer). Once the last handle
                    // is gone no more work can come: exit at once, so the
                    // directory is free for the next open.
                    let deadline = *idle_until.get_or_insert_with(|| Instant::now() + LINGER);
                    if Instant::now() < deadline && self.handles.load(Ordering::Acquire) > 0 {
                        self.wake.wait_until(&mut g, deadline);
                        continue;
                    }
                    g.io.active = false;
                    return;
                }
            };
            idle_until = None;
            match committed {
                Some(c) => {
                    if let Err(e) = meta::write(&self.dir, meta::COMMITTED, &c) {
                        let mut g = self.inner.lock();
                        self.fail(&mut g, format!("writing the committed log id: {e}"));
                    }
                }
                None => {
                    for op in ops.drain(..) {
                        match op {
                            Op::Append(batch) => appends.push(batch),
                            other => {
                                self.flush(&mut appends, &mut scratch);
                                self.apply(other);
                            }
                        }
                    }
                    self.flush(&mut appends, &mut scratch);
                }
            }
        }
    }

    fn failed(&self) -> Option<String> {
        self.inner.lock().io.failed.clone()
    }

    /// Writes and fsyncs a run of append batches, then completes them.
    fn flush(&self, appends: &mut Vec<Batch<C>>, scratch: &mut Vec<u8>) {
        let Some(last_seq) = appends.last().map(|a| a.seq) else {
            return;
        };
        let result = match self.failed() {
            Some(why) => Err(why),
            None => self.write_batches(appends, scratch).map_err(|e| {
                let mut g = self.inner.lock();
                self.fail(&mut g, format!("writing Raft log entries: {e}"))
            }),
        };
        if result.is_ok() {
            self.inner.lock().log.synced(last_seq);
        }
        for batch in appends.drain(..) {
            batch.done.complete(match &result {
                Ok(()) => Ok(()),
                Err(why) => Err(io::Error::other(why.clone())),
            });
        }
    }

    /// One positioned write and one fdatasync per run of contiguous bytes
    /// in one segment; a segment is fully synced before the next one gets
    /// any byte, so only the newest segment can ever have a torn tail.
    fn write_batches(&self, appends: &[Batch<C>], scratch: &mut Vec<u8>) -> io::Result<()> {
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut group: Option<(&Arc<File>, u64, u64, bool)> = None;
        for batch in appends {
            for w in &batch.writes {
                let part = batch.bytes.get(w.range.clone()).unwrap_or_default();
                match &mut group {
                    Some((file, offset, len, created))
                        if Arc::ptr_eq(file, &w.file) && *offset + *len == w.offset =>
                    {
                        *len += part.len() as u64;
                        *created |= w.created;
                    }
                    _ => {
                        if let Some(g) = group.take() {
                            self.write_group(g, &parts, scratch)?;
                            parts.clear();
                        }
                        group = Some((&w.file, w.offset, part.len() as u64, w.created));
                    }
                }
                parts.push(part);
            }
        }
        if let Some(g) = group {
            self.write_group(g, &parts, scratch)?;
        }
        Ok(())
    }

    fn write_group(
        &self,
        (file, offset, len, created): (&Arc<File>, u64, u64, bool),
        parts: &[&[u8]],
        scratch: &mut Vec<u8>,
    ) -> io::Result<()> {
        if let [one] = parts {
            file.write_all_at(one, offset)?;
        } else {
            scratch.clear();
            for p in parts {
                scratch.extend_from_slice(p);
            }
            file.write_all_at(scratch, offset)?;
        }
        if let Err(e) = self.zero_ahead(file, offset + len) {
            // Only an optimisation, and zeros cut short are still a clean
            // end: the records were written, so they are synced and
            // reported stored all the same (a full disk stops the log on
            // its next record, not on its padding).
            tracing::warn!(dir = %self.log_dir.display(), error = %e, "writing zeros ahead of the Raft log failed");
        }
        file.sync_data()?;
        #[cfg(test)]
        self.hooks.syncs.fetch_add(1, Ordering::Relaxed);
        if created {
            meta::sync_dir(&self.log_dir)?;
        }
        Ok(())
    }

    /// Once an append reaches the end of the file, writes zeros after it
    /// (synced with it), so the next appends overwrite blocks the file
    /// already has (see [`super::LogOptions::prealloc_bytes`]). The step is
    /// the segment's size so far, from 64 KiB up to `prealloc_bytes`, so a
    /// quiet group's log stays small; never past `segment_bytes`.
    fn zero_ahead(&self, file: &File, end: u64) -> io::Result<()> {
        let most = self.opts.prealloc_bytes;
        if most == 0 || file.metadata()?.len() > end {
            return Ok(());
        }
        let step = end.clamp(ZERO_STEP_MIN.min(most), most);
        let target = (end + step).min(self.opts.segment_bytes.max(end));
        let mut at = end;
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64) as usize;
            file.write_all_at(&ZEROS[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }

    /// Does one non-append op and completes it.
    fn apply(&self, op: Op<C>) {
        if let Some(why) = self.failed() {
            op.fail(&why);
            return;
        }
        let (result, tx) = match op {
            Op::Append(_) => return op.fail("internal error: append outside a batch"),
            Op::Truncate(t, tx) => (self.truncate(t), Some(tx)),
            Op::Purge(p) => (self.purge(p), None),
            Op::Vote(v, tx) => (meta::write(&self.dir, meta::VOTE, &v), Some(tx)),
        };
        let result = result.map_err(|e| {
            let mut g = self.inner.lock();
            io::Error::other(self.fail(&mut g, format!("updating the Raft log: {e}")))
        });
        if let Some(tx) = tx {
            let _ = tx.send(result);
        }
    }

    /// Newest segments go first, so a crash midway leaves a shorter but
    /// gapless log.
    fn truncate(&self, t: Truncation) -> io::Result<()> {
        self.delete(&t.delete)?;
        if let Some((file, len)) = t.cut {
            segment::cut(&file, len)?;
        }
        Ok(())
    }

    /// The purged log id is durable before any file goes, so a crash midway
    /// never exposes a log that starts later than it says.
    fn purge(&self, p: Purge) -> io::Result<()> {
        meta::write(&self.dir, meta::PURGED, &p.purged)?;
        self.delete(&p.delete)
    }

    fn delete(&self, paths: &[PathBuf]) -> io::Result<()> {
        for path in paths {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("removing {}: {e}", path.display()),
                    ))
                }
            }
        }
        if !paths.is_empty() {
            meta::sync_dir(&self.log_dir)?;
        }
        Ok(())
    }
}

/// Starts a writer for a committed log id that was not yet due when the
/// last one exited. Holds the store only weakly: a dropped store wrote it.
async fn committed_timer<C>(shared: Weak<Shared<C>>, due: Instant)
where
    C: RaftTypeConfig<NodeId = u64, Entry = Entry<C>>,
{
    tokio::time::sleep_until(due.into()).await;
    let Some(shared) = shared.upgrade() else {
        return;
    };
    let mut g = shared.inner.lock();
    g.io.timer_armed = false;
    if g.io.committed_dirty && g.io.failed.is_none() {
        let _ = shared.kick(&mut g);
    }
}
