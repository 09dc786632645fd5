//! Message stores: the storage engine under a JetStream stream.
//!
//! A stream's messages live in a [`MsgStore`]: [`FileStore`] for
//! `storage: file` streams (append-only block files, crash-safe recovery,
//! bounded memory) and [`MemStore`] for `storage: memory` streams. Both give
//! the same answers for the same operations, including the byte accounting,
//! which follows nats-server so that `STREAM.INFO` reports the same
//! `state.bytes` for the same messages.
//!
//! Limits (`max_msgs`, `max_bytes`, `max_age`, `max_msgs_per_subject`) are
//! enforced inside the store with DiscardOld semantics: the oldest messages
//! go. DiscardNew is the stream layer's job: it compares [`MsgStore::state`]
//! with the limits before calling [`MsgStore::store_msg`].
//!
//! Sequences removed by limit enforcement or expiry (not by explicit
//! [`MsgStore::remove`]/[`MsgStore::purge`], which the caller already knows
//! about) are recorded and handed out by [`MsgStore::take_removed`], so the
//! consumer layer can drop them from its pending sets.
//!
//! [`MsgStore::truncate`] rolls the tail back (a replica whose store ran
//! ahead of its durable Raft point after a crash); see its docs for why it
//! reports nothing through `take_removed`.
//!
//! [`MsgStore::skip_to`] moves the tail forward without storing anything (a
//! follower catching up from a peer places messages at the leader's
//! sequences, leaving gaps for what the leader no longer has).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// Subject-keyed maps the store updates on every stored message. ahash with a
/// random key: several times faster than SipHash on subjects, still keyed, so
/// clients cannot aim collisions at it.
pub(crate) type SubjectMap<V> = std::collections::HashMap<String, V, ahash::RandomState>;

pub mod consumer_state;
pub mod file;
pub mod memory;
pub(crate) mod multi_last;
mod removed;
mod subjects;

pub use consumer_state::{ConsumerState, ConsumerStateFile, Pending, SequencePair};
pub use file::{FileStore, FileStoreConfig};
pub use memory::MemStore;

/// One stored message, as returned by the load functions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMsg {
    pub seq: u64,
    /// Unix nanoseconds at which the message was stored.
    pub ts: i64,
    pub subject: String,
    /// Raw `NATS/1.0` header block; empty when the message had none.
    pub headers: bytes::Bytes,
    pub payload: bytes::Bytes,
}

/// Retention limits a store enforces (DiscardOld: the oldest go first).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreLimits {
    /// Maximum number of messages; `-1` or `0` means unlimited.
    pub max_msgs: i64,
    /// Maximum total bytes (counted like nats-server); `-1`/`0` = unlimited.
    pub max_bytes: i64,
    /// Maximum age; `Duration::ZERO` means unlimited. Enforced by
    /// [`MsgStore::expire`], which the stream layer calls on a timer.
    pub max_age: Duration,
    /// Maximum messages per subject; `-1`/`0` = unlimited.
    pub max_msgs_per_subject: i64,
    /// Largest `headers + payload` accepted by `store_msg`; `-1`/`0` = unlimited.
    pub max_msg_size: i32,
}

impl StoreLimits {
    fn max_msgs(&self) -> Option<u64> {
        (self.max_msgs > 0).then_some(self.max_msgs as u64)
    }
    fn max_bytes(&self) -> Option<u64> {
        (self.max_bytes > 0).then_some(self.max_bytes as u64)
    }
    fn max_per_subject(&self) -> Option<u64> {
        (self.max_msgs_per_subject > 0).then_some(self.max_msgs_per_subject as u64)
    }
    /// Rejects a message larger than `max_msg_size` (headers + payload, as
    /// nats-server counts it).
    fn check_size(&self, headers: &[u8], payload: &[u8]) -> Result<(), StoreError> {
        let size = headers.len() + payload.len();
        if self.max_msg_size > 0 && size > self.max_msg_size as usize {
            return Err(StoreError::MsgTooLarge {
                size,
                max: self.max_msg_size as usize,
            });
        }
        Ok(())
    }
}

/// A snapshot of a store's counters, in the shape `STREAM.INFO` reports.
///
/// A fresh store reports `first_seq 0, last_seq 0`; once messages were stored
/// and all removed (purge, acks, limits) it reports `first_seq = last_seq + 1`,
/// exactly like nats-server.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StoreState {
    pub msgs: u64,
    pub bytes: u64,
    pub first_seq: u64,
    /// Unix nanos of the first message; 0 when the store is empty.
    pub first_ts: i64,
    pub last_seq: u64,
    /// Unix nanos of the last message stored (kept after it is removed).
    pub last_ts: i64,
    /// Interior deletes: sequences between first and last that are gone.
    pub num_deleted: u64,
    pub num_subjects: u64,
}

/// Errors from the message stores, with the file or sequence involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt data in {path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("message sequence {seq} in {path} is corrupt: {reason}")]
    CorruptMsg {
        path: PathBuf,
        seq: u64,
        reason: String,
    },
    #[error("message size {size} exceeds maximum {max}")]
    MsgTooLarge { size: usize, max: usize },
    #[error("invalid subject {subject:?}: {reason}")]
    InvalidSubject {
        subject: String,
        reason: &'static str,
    },
    #[error("store in {path} refuses changes after an earlier failure: {reason}")]
    Failed { path: PathBuf, reason: String },
    #[error("invalid store configuration: {0}")]
    Config(String),
    #[error("cannot truncate to sequence {seq}: the last sequence is {last}")]
    TruncateBeyondLast { seq: u64, last: u64 },
    #[error("cannot skip to sequence {seq}: the last sequence is already {last}")]
    SkipBehindLast { seq: u64, last: u64 },
    #[error("cannot skip to sequence {seq}: no sequence would be left for the next message")]
    SkipToMax { seq: u64 },
    /// [`MsgStore::multi_last_seqs`] matched more subjects than allowed
    /// (nats-server's `ErrTooManyResults`, worded alike).
    #[error("too many matching results for request (more than {max})")]
    TooManyResults { max: usize },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// The storage engine under a stream. See the module docs for the limit and
/// removal-notification semantics.
pub trait MsgStore: Send {
    /// Appends a message and returns its sequence (last + 1), then enforces
    /// the limits (which may drop older messages, see [`Self::take_removed`]).
    /// Does NOT fsync: the caller batches writes and calls [`Self::sync`]
    /// (group commit) before acknowledging them.
    fn store_msg(
        &mut self,
        subject: &str,
        headers: &[u8],
        payload: &[u8],
        ts: i64,
    ) -> Result<u64, StoreError>;
    /// Makes everything written so far (messages, removals) durable: after it
    /// returns the data survives power loss. A no-op for memory.
    fn sync(&mut self) -> Result<(), StoreError>;
    /// The message at `seq`, or `None` if it never existed or was removed.
    fn load(&self, seq: u64) -> Result<Option<StoredMsg>, StoreError>;
    /// First message with `seq >= start` whose subject matches `filter`
    /// (NATS wildcards; `""` or `">"` match everything).
    fn load_next(&self, filter: &str, start: u64) -> Result<Option<StoredMsg>, StoreError>;
    /// Last message whose subject matches `filter` (wildcards allowed).
    fn load_last(&self, filter: &str) -> Result<Option<StoredMsg>, StoreError>;
    /// Removes one message (interior deletes allowed); false if not present.
    fn remove(&mut self, seq: u64) -> Result<bool, StoreError>;
    /// nats-server's PurgeEx: `filter` (`""` = all), `seq` (remove all with a
    /// lower sequence; 0 = unused), `keep` (keep the newest N; 0 = unused).
    /// Returns the number of messages purged.
    fn purge(&mut self, filter: &str, seq: u64, keep: u64) -> Result<u64, StoreError>;
    fn state(&self) -> StoreState;
    /// Message counts per subject, for subjects matching `filter`.
    fn subjects_totals(&self, filter: &str) -> BTreeMap<String, u64>;
    /// Number of messages with `seq >= start` matching `filter`.
    fn num_pending(&self, filter: &str, start: u64) -> u64;
    /// Last sequence stored on exactly this literal subject (0 if none).
    fn last_seq_for_subject(&self, subject: &str) -> u64;
    /// The newest live sequence at or below `up_to` of every subject that
    /// matches one of `filters` (nats-server's `MultiLastSeqs`, behind a
    /// direct get's `multi_last`): ascending, each subject once, subjects
    /// without a message at or below `up_to` left out. Wildcards are
    /// allowed; an empty or malformed filter matches nothing. More than
    /// `max` subjects (0 = no bound) is [`StoreError::TooManyResults`].
    ///
    /// Answered from the per-subject index; messages are read only for the
    /// subjects that changed after `up_to`, in one backward walk (see
    /// [`multi_last`]).
    fn multi_last_seqs(
        &self,
        filters: &[String],
        up_to: u64,
        max: usize,
    ) -> Result<Vec<u64>, StoreError>;
    /// First sequence whose timestamp is `>= ts`; `last_seq + 1` if none.
    fn seq_for_time(&self, ts: i64) -> u64;
    /// Applies new limits immediately (may drop messages).
    fn update_limits(&mut self, limits: StoreLimits) -> Result<(), StoreError>;
    /// Drops messages older than `max_age` at `now` (unix nanos); returns how many.
    fn expire(&mut self, now: i64) -> Result<u64, StoreError>;
    /// Sequences removed by limit enforcement or expiry since the last call,
    /// as ascending, non-overlapping ranges. Call it after `store_msg`,
    /// `update_limits` and `expire`: the list grows until drained.
    fn take_removed(&mut self) -> Vec<RangeInclusive<u64>>;
    /// Rolls the stream back to `seq` (nats-server's `Truncate`): removes
    /// every message above it, leaving the store exactly as if they had never
    /// been stored, so the next `store_msg` gets `seq + 1`. A replica uses
    /// it after a crash to drop what it applied past its last durable point
    /// before Raft re-applies those entries.
    ///
    /// * `seq == last_seq` changes nothing; `seq > last_seq` is
    ///   [`StoreError::TruncateBeyondLast`].
    /// * `last_seq` becomes `seq` even when `seq` was removed or never
    ///   stored; below the first message the store is left empty with
    ///   `first_seq = seq + 1`. `seq == 0` resets the store to its fresh
    ///   state (`first_seq = last_seq = 0`), as nats-server does.
    /// * `last_ts` becomes the time of message `seq` when the store still
    ///   knows it (the memory store while the message is live, the file store
    ///   while its record is on disk), otherwise it is left as it was, like
    ///   nats-server.
    /// * Nothing is reported through [`Self::take_removed`], and removals of
    ///   sequences above `seq` not yet taken are dropped: the caller knows
    ///   exactly what went (everything above `seq`), and those sequence
    ///   numbers are about to be reused by the re-applied messages, which a
    ///   late "removed" notice would wrongly drop from consumers' pending
    ///   sets.
    /// * Durable when it returns (the file store also syncs everything
    ///   written before it); a crash part-way leaves either the old or the
    ///   truncated store.
    fn truncate(&mut self, seq: u64) -> Result<(), StoreError>;
    /// Moves the last sequence forward to `seq` without storing anything
    /// (nats-server's `SkipMsgs`): a replica catching up from a peer after a
    /// Raft snapshot places each message at the leader's sequence and skips
    /// the sequences the leader no longer has, so both stores number their
    /// messages alike.
    ///
    /// * `seq < last_seq` is [`StoreError::SkipBehindLast`] (sequences never
    ///   go back; that is [`Self::truncate`]'s job); `seq == last_seq`
    ///   changes nothing; `u64::MAX` is [`StoreError::SkipToMax`].
    /// * Otherwise `last_seq` becomes `seq` and the next `store_msg` gets
    ///   `seq + 1`. `last_seq + 1..=seq` count as never stored: an empty
    ///   store (fresh, or everything removed) reports
    ///   `first_seq = seq + 1` with `first_ts = 0`, as nats-server reports an
    ///   empty stream; a non-empty one keeps its first message and counts the
    ///   skipped range in `num_deleted` (every gap between first and last
    ///   is an interior delete, as nats-server's `SkipMsgs` fills its delete
    ///   map with them).
    /// * `last_ts` is left as it was: no message was stored. (nats-server
    ///   keeps it too, except that it sets it to the current time when it
    ///   was never set; the stores here take no clock, so a fresh store
    ///   keeps 0.)
    /// * Messages, bytes and subjects are untouched, so no limit is
    ///   enforced and nothing is reported through [`Self::take_removed`].
    /// * Like `store_msg`, durable after the next [`Self::sync`]: a restart
    ///   then reports the same first and last sequence, also when the skip
    ///   is the tail of the stream.
    fn skip_to(&mut self, seq: u64) -> Result<(), StoreError>;
    /// Removes all data (stream delete).
    fn delete(self: Box<Self>) -> Result<(), StoreError>;
}

/// nats-server's `fileStoreMsgSize`: the size of its on-disk record
/// (len + seq + ts + subject length + subject [+ header length + headers]
/// + payload + hash). Used as the byte count of file streams.
pub fn file_store_msg_size(subject: &str, headers: &[u8], payload: &[u8]) -> u64 {
    if headers.is_empty() {
        (22 + subject.len() + payload.len() + 8) as u64
    } else {
        (22 + subject.len() + 4 + headers.len() + payload.len() + 8) as u64
    }
}

/// nats-server's `memStoreMsgSize`: subject + headers + payload + 16.
pub fn mem_store_msg_size(subject: &str, headers: &[u8], payload: &[u8]) -> u64 {
    (subject.len() + headers.len() + payload.len() + 16) as u64
}

/// `""` and `">"` both mean "every subject".
pub(crate) fn filter_is_all(filter: &str) -> bool {
    filter.is_empty() || filter == ">"
}

/// Does `subject` match `filter` (all-filters included)?
pub(crate) fn filter_matches(filter: &str, subject: &str) -> bool {
    filter_is_all(filter) || crate::subject::matches(filter.as_bytes(), subject.as_bytes())
}

/// The checks both stores share before a truncate: `Ok(true)` when there is
/// something to do, `Ok(false)` for a no-op (`seq == last_seq`).
pub(crate) fn check_truncate(seq: u64, last: u64) -> Result<bool, StoreError> {
    if seq > last {
        return Err(StoreError::TruncateBeyondLast { seq, last });
    }
    Ok(seq < last)
}

/// The checks both stores share before a skip: `Ok(true)` when there is
/// something to do, `Ok(false)` for a no-op (`seq == last_seq`).
pub(crate) fn check_skip(seq: u64, last: u64) -> Result<bool, StoreError> {
    if seq < last {
        return Err(StoreError::SkipBehindLast { seq, last });
    }
    if seq == u64::MAX {
        // `first_seq` of an empty store and the next message's sequence
        // are both `seq + 1`.
        return Err(StoreError::SkipToMax { seq });
    }
    Ok(seq > last)
}

/// Subjects must be non-empty, literal and short enough for the record format.
pub(crate) fn check_subject(subject: &str) -> Result<(), StoreError> {
    let reason = if subject.is_empty() {
        "empty"
    } else if subject.len() > u16::MAX as usize {
        "longer than 65535 bytes"
    } else if !crate::subject::is_valid_literal(subject.as_bytes()) {
        "not a valid literal subject"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidSubject {
        subject: subject.chars().take(64).collect(),
        reason,
    })
}

#[cfg(test)]
#[macro_use]
mod conformance;
#[cfg(test)]
mod conformance_multi_last;
#[cfg(test)]
mod conformance_skip;
#[cfg(test)]
mod conformance_truncate;
