//! What every handle on one store shares: the in-memory log, and the one
//! ordered queue through which every change to the files goes (see
//! [`super::writer`] for who drains it).

use std::io;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use openraft::storage::LogFlushed;
use openraft::{Entry, RaftTypeConfig, Vote};
use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use super::claim::Claim;
use super::state::{Purge, SegWrite, State, Truncation};
use super::LogOptions;

/// Who to tell that an append batch is on disk.
pub(super) enum Done<C: RaftTypeConfig> {
    Raft(LogFlushed<C>),
    /// Lets tests look at the files at the moment of completion, and the
    /// recovery fuzz target wait for it without a Raft.
    #[cfg(any(test, fuzzing))]
    Test(Box<dyn FnOnce(io::Result<()>) + Send>),
}

impl<C: RaftTypeConfig> Done<C> {
    pub fn complete(self, result: io::Result<()>) {
        match self {
            Done::Raft(cb) => cb.log_io_completed(result),
            #[cfg(any(test, fuzzing))]
            Done::Test(f) => f(result),
        }
    }
}

/// One appended batch on its way to disk.
pub(super) struct Batch<C: RaftTypeConfig> {
    /// The batch's records, back to back.
    pub bytes: Vec<u8>,
    /// Where in which segments those bytes go.
    pub writes: Vec<SegWrite>,
    /// The batch's sequence number (see [`State::synced`]).
    pub seq: u64,
    pub done: Done<C>,
}

/// One unit of file work, in the order openraft asked for it.
pub(super) enum Op<C: RaftTypeConfig> {
    Append(Batch<C>),
    Truncate(Truncation, oneshot::Sender<io::Result<()>>),
    Purge(Purge),
    Vote(Vote<u64>, oneshot::Sender<io::Result<()>>),
}

impl<C: RaftTypeConfig> Op<C> {
    /// Completes the op without doing it.
    pub fn fail(self, why: &str) {
        let err = || Err(io::Error::other(why.to_string()));
        match self {
            Op::Append(b) => b.done.complete(err()),
            Op::Truncate(_, tx) | Op::Vote(_, tx) => {
                let _ = tx.send(err());
            }
            Op::Purge(_) => {}
        }
    }
}

/// The writer's side of the shared state.
pub(super) struct Io<C: RaftTypeConfig> {
    pub queue: Vec<Op<C>>,
    /// A writer thread is running (or about to).
    pub active: bool,
    /// The committed log id changed since it was last written.
    pub committed_dirty: bool,
    pub committed_written: Option<Instant>,
    /// A timer will start a writer when the committed log id is due.
    pub timer_armed: bool,
    /// Set by the first I/O error; the store refuses everything after it,
    /// since what is on disk is no longer known.
    pub failed: Option<String>,
}

pub(super) struct Inner<C: RaftTypeConfig> {
    pub log: State<C>,
    pub io: Io<C>,
}

/// What every handle on one store shares.
pub(super) struct Shared<C: RaftTypeConfig> {
    pub dir: PathBuf,
    pub log_dir: PathBuf,
    pub opts: LogOptions,
    pub inner: Mutex<Inner<C>>,
    /// Wakes a writer waiting to write the committed log id (only when
    /// there is no runtime to arm a timer on).
    pub wake: Condvar,
    /// The runtime openraft calls from, for the committed log id's timer.
    pub runtime: OnceLock<tokio::runtime::Handle>,
    /// Live `LogStore` handles; at 0 the writer stops waiting.
    pub handles: AtomicUsize,
    /// Keeps the directory claimed in this process until the last user of
    /// its files is gone.
    _claim: Claim,
    #[cfg(test)]
    pub hooks: hooks::Hooks,
}

impl<C> Shared<C>
where
    C: RaftTypeConfig<NodeId = u64, Entry = Entry<C>>,
{
    /// The last handle is gone: a committed log id still waiting for its
    /// interval is written now.
    pub fn released(self: &Arc<Self>) {
        let mut g = self.inner.lock();
        if g.io.active {
            self.wake.notify_all();
        } else if g.io.committed_dirty && g.io.failed.is_none() {
            let _ = self.kick(&mut g);
        }
    }

    pub fn new(
        dir: PathBuf,
        log_dir: PathBuf,
        opts: LogOptions,
        log: State<C>,
        claim: Claim,
    ) -> Self {
        Shared {
            dir,
            log_dir,
            opts,
            inner: Mutex::new(Inner {
                log,
                io: Io {
                    queue: Vec::new(),
                    active: false,
                    committed_dirty: false,
                    committed_written: None,
                    timer_armed: false,
                    failed: None,
                },
            }),
            wake: Condvar::new(),
            runtime: OnceLock::new(),
            handles: AtomicUsize::new(1),
            _claim: claim,
            #[cfg(test)]
            hooks: hooks::Hooks::default(),
        }
    }

    /// Queues `op` (under the lock) and makes sure a writer will see it.
    pub fn enqueue(self: &Arc<Self>, inner: &mut Inner<C>, op: Op<C>) -> Result<(), String> {
        inner.io.queue.push(op);
        self.kick(inner)
    }

    /// Marks the store failed and fails everything queued. Returns the
    /// failure message.
    pub fn fail(&self, inner: &mut Inner<C>, why: String) -> String {
        let why = inner.io.failed.get_or_insert_with(|| {
            tracing::error!(dir = %self.dir.display(), error = %why, "Raft log failed; refusing further writes");
            why
        });
        let why = why.clone();
        for op in inner.io.queue.drain(..) {
            op.fail(&why);
        }
        why
    }
}

#[cfg(test)]
pub(super) mod hooks {
    use std::sync::atomic::AtomicUsize;

    use parking_lot::{Condvar, Mutex};

    /// Lets tests hold the writer before it writes, and count fsyncs.
    #[derive(Default)]
    pub struct Hooks {
        held: Mutex<bool>,
        cv: Condvar,
        pub syncs: AtomicUsize,
    }

    impl Hooks {
        pub fn hold(&self, held: bool) {
            *self.held.lock() = held;
            self.cv.notify_all();
        }

        /// Called by the writer before it takes the queue.
        pub fn pass(&self) {
            let mut held = self.held.lock();
            while *held {
                self.cv.wait(&mut held);
            }
        }
    }
}
