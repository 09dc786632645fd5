//! Reading what a direct get asks for out of a stream's store, the way
//! nats-server's `getDirectRequest` and `getDirectMulti` do: which message
//! comes next, the batch headers' counts, when to stop, and the words of
//! every status.
//!
//! Everything here works on a locked store and writes into [`Replies`];
//! the caller publishes them after unlocking. A batch by sequence is read in
//! chunks ([`SeqRead::fill`] returns [`Progress::More`]) so that a large
//! batch never holds the stream's lock for long: nats-server does not
//! isolate such a batch from writes either (it takes the store's lock per
//! message), and recounts the pending messages for the EOB status if the
//! stream grew meanwhile, as done here. A `multi_last` read is done in one
//! hold, as nats-server does it under one store lock: its answer is a
//! consistent picture (at most [`MAX_MULTI`] messages).

use tracing::warn;

use super::replies::{Replies, Stamp};
use super::request::Request;
use crate::jetstream::store::{MsgStore, StoreError, StoredMsg};

/// The most subjects a `multi_last` request may match (nats-server's
/// `maxAllowedResponses`); more is `413 Too Many Results`.
pub(crate) const MAX_MULTI: usize = 1024;
/// A chunk of a batch by sequence ends after this many messages...
const CHUNK_MSGS: usize = 256;
/// ...or once this many bytes are waiting to be sent.
const CHUNK_BYTES: usize = 1 << 20;

/// What is read, beyond the request.
pub(crate) struct Target<'a> {
    /// The stream's name, for `Nats-Stream`.
    pub stream: &'a str,
    /// A file store answers `multi_last` with an `up_to_seq` past the end
    /// of the stream with nothing (see [`multi_last`]).
    pub file_store: bool,
    /// The byte budget when the request sets none: the server's
    /// `max_pending`, as in nats-server.
    pub max_pending: i64,
}

/// Whether a read has more to send after this chunk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    More,
    Done,
}

/// How many bytes nats-server counts against `max_bytes` for a message:
/// subject, stored headers and payload.
fn cost(m: &StoredMsg) -> i64 {
    i64::try_from(m.subject.len() + m.headers.len() + m.payload.len()).unwrap_or(i64::MAX)
}

/// A read by sequence, start time or next-by-subject, or of the last
/// message on a subject: one message, or a batch ending in an EOB status.
pub(crate) struct SeqRead {
    /// The next sequence to look at.
    seq: u64,
    /// Messages sent so far (the batch loop's counter).
    i: i64,
    batch: i64,
    is_batch: bool,
    /// Messages matching after the last one sent (`Nats-Num-Pending`).
    pending: u64,
    /// The stream's last sequence when `pending` was counted.
    counted_through: u64,
    /// The last sequence sent (`Nats-Last-Sequence`).
    last_sent: u64,
    sent_bytes: i64,
    max_bytes: i64,
    started: bool,
}

impl SeqRead {
    pub(crate) fn new(req: &Request, t: &Target<'_>) -> SeqRead {
        let is_batch = req.batch != 0;
        SeqRead {
            seq: 0,
            i: 0,
            batch: if is_batch { req.batch } else { 1 },
            is_batch,
            pending: 0,
            counted_through: 0,
            last_sent: 0,
            sent_bytes: 0,
            max_bytes: if req.max_bytes == 0 {
                t.max_pending
            } else {
                req.max_bytes
            },
            started: false,
        }
    }

    /// The next message, as nats-server steps: a lone get by sequence
    /// loads exactly that sequence; batches step over deleted ones.
    fn next(&self, store: &dyn MsgStore, req: &Request) -> Result<Option<StoredMsg>, StoreError> {
        if self.seq > 0 && req.next_by_subj.is_empty() {
            if self.i == 0 && !self.is_batch {
                store.load(self.seq)
            } else {
                store.load_next(">", self.seq)
            }
        } else if !req.next_by_subj.is_empty() {
            store.load_next(&req.next_by_subj, self.seq)
        } else {
            store.load_last(&req.last_by_subj)
        }
    }

    /// Read the next chunk into `out`: messages, then at the end the EOB
    /// status of a batch or the 404 of a request that found nothing.
    pub(crate) fn fill(
        &mut self,
        store: &dyn MsgStore,
        req: &Request,
        t: &Target<'_>,
        out: &mut Replies,
    ) -> Progress {
        if !self.started {
            self.started = true;
            self.seq = match req.start_time {
                Some(ts) => store.seq_for_time(ts),
                None => req.seq,
            };
            if self.is_batch {
                self.pending = store.num_pending(&req.next_by_subj, self.seq);
                self.counted_through = store.state().last_seq;
            }
        }
        let mut read = 0;
        while self.i < self.batch {
            if read >= CHUNK_MSGS || out.held_bytes() >= CHUNK_BYTES {
                return Progress::More;
            }
            let m = match self.next(store, req) {
                Ok(Some(m)) => m,
                found => {
                    if let Err(e) = found {
                        warn!("JetStream direct get from stream {:?}: {e}", t.stream);
                    }
                    // A batch cut short still ends with its EOB.
                    if self.batch > 1 && self.i > 0 {
                        break;
                    }
                    out.status(404, "Message Not Found");
                    return Progress::Done;
                }
            };
            self.seq = m.seq.saturating_add(1);
            let spent = cost(&m);
            if req.no_hdr {
                out.bare(m.payload);
            } else {
                // nats-server counts down only when it writes the header.
                let batch = self.is_batch.then(|| {
                    self.pending = self.pending.saturating_sub(1);
                    (self.pending, self.last_sent)
                });
                let stamp = Stamp {
                    stream: t.stream,
                    subject: &m.subject,
                    seq: m.seq,
                    ts: m.ts,
                    batch,
                };
                out.message(&m.headers, &stamp, m.payload);
            }
            self.last_sent = m.seq;
            read += 1;
            self.sent_bytes = self.sent_bytes.saturating_add(spent);
            if self.sent_bytes >= self.max_bytes {
                break;
            }
            self.i += 1;
        }
        if self.is_batch {
            // Recount when messages arrived while the batch was read.
            if store.state().last_seq > self.counted_through {
                self.pending = store.num_pending(&req.next_by_subj, self.seq);
            }
            out.end_of_batch(self.pending, self.last_sent, None);
        }
        Progress::Done
    }
}

/// A `multi_last` read: the last message of each subject matching the
/// filters as of `up_to_seq` / `up_to_time` (default: now), in sequence
/// order, each with the batch headers, then an EOB status that also names
/// the sequence the answer is as of. `seq` skips answers below it (they
/// still count in `Nats-Num-Pending`), `batch` and `max_bytes` stop early.
pub(crate) fn multi_last(store: &dyn MsgStore, req: &Request, t: &Target<'_>, out: &mut Replies) {
    let state = store.state();
    let mut up_to = req.up_to_seq;
    if let Some(ts) = req.up_to_time {
        // The last message stored before `up_to_time`.
        up_to = store.seq_for_time(ts);
        if up_to <= state.first_seq {
            out.status(404, "No Results");
            return;
        }
        up_to -= 1;
    }
    if up_to == 0 {
        up_to = state.last_seq;
    }
    // nats-server's file store finds no block for a sequence past the end
    // of the stream and so answers nothing (its memory store answers as of
    // the last message); clients see the difference, so it is kept.
    let seqs = if t.file_store && up_to > state.last_seq {
        Ok(Vec::new())
    } else {
        store.multi_last_seqs(&req.multi_last, up_to, MAX_MULTI)
    };
    let seqs = match seqs {
        Ok(seqs) if seqs.is_empty() => {
            out.status(404, "No Results");
            return;
        }
        Ok(seqs) => seqs,
        Err(StoreError::TooManyResults { .. }) => {
            out.status(413, "Too Many Results");
            return;
        }
        Err(e) => {
            warn!("JetStream direct get from stream {:?}: {e}", t.stream);
            out.status(500, &e.to_string());
            return;
        }
    };
    let max_bytes = if req.max_bytes == 0 {
        t.max_pending
    } else {
        req.max_bytes
    };
    let mut pending = seqs.len() as u64;
    let (mut last_sent, mut sent_bytes, mut sent) = (0u64, 0i64, 0i64);
    for seq in seqs {
        pending = pending.saturating_sub(1);
        if seq < req.seq {
            continue;
        }
        let m = match store.load(seq) {
            Ok(Some(m)) => m,
            found => {
                if let Err(e) = found {
                    warn!("JetStream direct get from stream {:?}: {e}", t.stream);
                }
                // nats-server folds any failure to load a message it just
                // found into a 404, after what it already sent.
                out.status(404, "Message Not Found");
                return;
            }
        };
        let stamp = Stamp {
            stream: t.stream,
            subject: &m.subject,
            seq,
            ts: m.ts,
            batch: Some((pending, last_sent)),
        };
        let spent = cost(&m);
        out.message(&m.headers, &stamp, m.payload);
        last_sent = seq;
        sent_bytes = sent_bytes.saturating_add(spent);
        if sent_bytes >= max_bytes {
            break;
        }
        sent += 1;
        if req.batch > 0 && sent >= req.batch {
            break;
        }
    }
    out.end_of_batch(pending, last_sent, Some(up_to));
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
