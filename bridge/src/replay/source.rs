//! The dead-letter stream, read in sequence order, and deletes from it.
//!
//! One `STREAM.MSG.GET` per dead letter, `{"seq": n, "next_by_subj":
//! <dead-letter subject>}`: the stream leader answers with the first message
//! at or after `n`, so gaps (deleted or expired messages) cost nothing, the
//! order is the stream's and nothing between two reads can be skipped. No
//! consumer is created: nothing to clean up and no state left on the
//! servers. Dead letters are rare (malformed input), so a round trip each is
//! plenty.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use async_nats::jetstream::{self, message::StreamMessage, stream::LastRawMessageErrorKind};

/// How long a read or a delete is retried (NATS reconnecting, a leader
/// election) before the run gives up.
const RETRY_FOR: Duration = Duration::from_secs(60);
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Sequence range of the dead letters to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: u64,
    /// Inclusive.
    pub to: u64,
}

impl Range {
    /// The range to replay: the requested bounds within what the stream
    /// holds now. The upper bound is fixed at the start, so dead letters the
    /// live bridge writes meanwhile are left for the next run.
    pub fn within(first: u64, last: u64, from: Option<u64>, to: Option<u64>) -> Range {
        Range {
            from: from.unwrap_or(first).max(first).max(1),
            to: to.unwrap_or(last).min(last),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.from > self.to
    }
}

/// Reads the dead letters of one subject in a [`Range`], in order.
pub struct DeadLetters {
    stream: jetstream::stream::Stream,
    subject: String,
    next: u64,
    to: u64,
}

impl DeadLetters {
    /// The dead-letter stream `name`, its dead letters on `subject`; `from`
    /// and `to` as asked (default: all it holds now).
    pub async fn open(
        js: &jetstream::Context,
        name: &str,
        subject: &str,
        from: Option<u64>,
        to: Option<u64>,
    ) -> Result<(DeadLetters, Range)> {
        // Fetches the stream's info, so its state is current.
        let stream = js
            .get_stream(name)
            .await
            .with_context(|| format!("dead-letter stream {name}"))?;
        let state = &stream.cached_info().state;
        let range = Range::within(state.first_sequence, state.last_sequence, from, to);
        Ok((
            DeadLetters {
                stream,
                subject: subject.to_owned(),
                next: range.from,
                to: range.to,
            },
            range,
        ))
    }

    /// The next dead letter in the range, `None` past its end.
    pub async fn next(&mut self) -> Result<Option<StreamMessage>> {
        if self.next > self.to {
            return Ok(None);
        }
        let mut delay = RETRY_MIN;
        let started = std::time::Instant::now();
        loop {
            let got = self
                .stream
                .get_first_raw_message_by_subject(&self.subject, self.next)
                .await;
            match got {
                Ok(m) if m.sequence > self.to => {
                    self.next = self.to.saturating_add(1);
                    return Ok(None);
                }
                Ok(m) => {
                    self.next = m.sequence.saturating_add(1);
                    return Ok(Some(m));
                }
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                    self.next = self.to.saturating_add(1);
                    return Ok(None);
                }
                Err(e) if matches!(e.kind(), LastRawMessageErrorKind::InvalidSubject) => {
                    bail!(
                        "dead-letter subject {:?} is not a valid subject",
                        self.subject
                    )
                }
                Err(e) => {
                    if started.elapsed() > RETRY_FOR {
                        return Err(anyhow::Error::new(e)).with_context(|| {
                            format!("reading dead letter at sequence {}", self.next)
                        });
                    }
                    tracing::warn!(seq = self.next, error = %e, "reading the dead-letter stream failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Deletes the dead letter at `seq` (retried until the stream answers).
    pub async fn delete(&self, seq: u64) -> Result<()> {
        let mut delay = RETRY_MIN;
        let started = std::time::Instant::now();
        loop {
            match self.stream.delete_message(seq).await {
                Ok(true) => return Ok(()),
                Ok(false) => bail!("the stream did not delete sequence {seq}"),
                Err(e) if started.elapsed() > RETRY_FOR => {
                    return Err(anyhow::Error::new(e))
                        .with_context(|| format!("deleting dead letter {seq}"))
                }
                Err(e) => {
                    if let async_nats::jetstream::stream::DeleteMessageErrorKind::JetStream(js) =
                        e.kind()
                    {
                        // An answer, not a transient failure (e.g. no such message).
                        bail!("deleting dead letter {seq}: {js}");
                    }
                    tracing::warn!(seq, error = %e, "deleting a dead letter failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_is_what_the_stream_holds() {
        let r = |from, to| Range::within(5, 20, from, to);
        assert_eq!(r(None, None), Range { from: 5, to: 20 });
        assert_eq!(r(Some(8), Some(12)), Range { from: 8, to: 12 });
        assert_eq!(r(Some(1), Some(99)), Range { from: 5, to: 20 });
        assert!(r(Some(21), None).is_empty());
        assert!(r(Some(12), Some(8)).is_empty());
        // An empty stream: first = last + 1 (or both 0).
        assert!(Range::within(0, 0, None, None).is_empty());
        assert!(Range::within(21, 20, None, None).is_empty());
    }
}
