//! The messages a direct get sends back, built while the stream is locked
//! and published once it is not (publishing may deliver into this very
//! server, which must not happen under the stream's lock).
//!
//! Every header block goes into one buffer that is reused from chunk to
//! chunk, so a batch costs no allocation per message for its headers.

use std::io::Write;
use std::ops::Range;

use bytes::Bytes;

/// The status a batch ends with: "end of batch".
const EOB: &str = "NATS/1.0 204 EOB\r\n";

/// Header blocks and payloads, in the order they are to be sent.
#[derive(Debug, Default)]
pub(crate) struct Replies {
    buf: Vec<u8>,
    items: Vec<(Range<usize>, Bytes)>,
}

/// The headers a direct get adds to a stored message, in nats-server's
/// order: `Nats-Stream`, `Nats-Subject`, `Nats-Sequence`,
/// `Nats-Time-Stamp`, then for batches `Nats-Num-Pending` and
/// `Nats-Last-Sequence` (the previous message's sequence, 0 for the first).
pub(crate) struct Stamp<'a> {
    pub stream: &'a str,
    pub subject: &'a str,
    pub seq: u64,
    /// Unix nanoseconds the message was stored at.
    pub ts: i64,
    /// `(num pending, last sequence)` for a batch.
    pub batch: Option<(u64, u64)>,
}

impl Replies {
    /// Forget what was sent, keeping the memory for the next chunk.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.items.clear();
    }

    /// Each reply as (header block, payload); the block is empty for a
    /// message sent without headers.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &Bytes)> {
        self.items.iter().map(|(r, p)| (&self.buf[r.clone()], p))
    }

    /// Bytes held for the pending replies (headers and payloads).
    pub(crate) fn held_bytes(&self) -> usize {
        self.buf.len() + self.items.iter().map(|(_, p)| p.len()).sum::<usize>()
    }

    /// A stored message with its stored headers (`stored`, possibly empty)
    /// followed by the direct get's own, as nats-server's `genHeader`
    /// appends them.
    pub(crate) fn message(&mut self, stored: &[u8], stamp: &Stamp<'_>, payload: Bytes) {
        let start = self.buf.len();
        if stored.len() > 2 {
            self.buf.extend_from_slice(&stored[..stored.len() - 2]);
        } else {
            self.buf.extend_from_slice(b"NATS/1.0\r\n");
        }
        let ts = crate::jetstream::types::rfc3339_nanos(stamp.ts);
        let _ = write!(
            self.buf,
            "Nats-Stream: {}\r\nNats-Subject: {}\r\nNats-Sequence: {}\r\nNats-Time-Stamp: {ts}\r\n",
            stamp.stream, stamp.subject, stamp.seq
        );
        if let Some((pending, last)) = stamp.batch {
            let _ = write!(
                self.buf,
                "Nats-Num-Pending: {pending}\r\nNats-Last-Sequence: {last}\r\n"
            );
        }
        self.buf.extend_from_slice(b"\r\n");
        self.items.push((start..self.buf.len(), payload));
    }

    /// A stored payload alone (`no_hdr`).
    pub(crate) fn bare(&mut self, payload: Bytes) {
        let at = self.buf.len();
        self.items.push((at..at, payload));
    }

    /// A status with no headers: `NATS/1.0 <code> <description>`.
    pub(crate) fn status(&mut self, code: u16, description: &str) {
        let start = self.buf.len();
        let _ = write!(self.buf, "NATS/1.0 {code} {description}\r\n\r\n");
        self.items.push((start..self.buf.len(), Bytes::new()));
    }

    /// The end of a batch: how many messages matched beyond it, the last
    /// sequence sent, and for `multi_last` the sequence it was read as of.
    pub(crate) fn end_of_batch(&mut self, pending: u64, last: u64, up_to: Option<u64>) {
        let start = self.buf.len();
        self.buf.extend_from_slice(EOB.as_bytes());
        let _ = write!(
            self.buf,
            "Nats-Num-Pending: {pending}\r\nNats-Last-Sequence: {last}\r\n"
        );
        if let Some(up_to) = up_to {
            let _ = write!(self.buf, "Nats-UpTo-Sequence: {up_to}\r\n");
        }
        self.buf.extend_from_slice(b"\r\n");
        self.items.push((start..self.buf.len(), Bytes::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(r: &Replies) -> Vec<(String, String)> {
        r.iter()
            .map(|(h, p)| {
                (
                    String::from_utf8_lossy(h).into_owned(),
                    String::from_utf8_lossy(p).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn bytes_as_nats_server_writes_them() {
        let mut r = Replies::default();
        let stamp = Stamp {
            stream: "S",
            subject: "s.a",
            seq: 4,
            ts: 1_000_000_001,
            batch: None,
        };
        r.message(b"", &stamp, Bytes::from_static(b"v"));
        r.message(
            b"NATS/1.0\r\nX: 1\r\n\r\n",
            &Stamp {
                batch: Some((2, 3)),
                ..stamp
            },
            Bytes::new(),
        );
        r.bare(Bytes::from_static(b"w"));
        r.status(404, "Message Not Found");
        r.end_of_batch(2, 4, None);
        r.end_of_batch(0, 6, Some(9));
        let got = all(&r);
        let ts = "1970-01-01T00:00:01.000000001Z";
        assert_eq!(
            got[0],
            (
                format!(
                    "NATS/1.0\r\nNats-Stream: S\r\nNats-Subject: s.a\r\nNats-Sequence: 4\r\n\
                     Nats-Time-Stamp: {ts}\r\n\r\n"
                ),
                "v".to_string()
            )
        );
        assert_eq!(
            got[1].0,
            format!(
                "NATS/1.0\r\nX: 1\r\nNats-Stream: S\r\nNats-Subject: s.a\r\nNats-Sequence: 4\r\n\
                 Nats-Time-Stamp: {ts}\r\nNats-Num-Pending: 2\r\nNats-Last-Sequence: 3\r\n\r\n"
            )
        );
        assert_eq!(got[2], (String::new(), "w".to_string()));
        assert_eq!(got[3].0, "NATS/1.0 404 Message Not Found\r\n\r\n");
        assert_eq!(
            got[4].0,
            "NATS/1.0 204 EOB\r\nNats-Num-Pending: 2\r\nNats-Last-Sequence: 4\r\n\r\n"
        );
        assert_eq!(
            got[5].0,
            "NATS/1.0 204 EOB\r\nNats-Num-Pending: 0\r\nNats-Last-Sequence: 6\r\n\
             Nats-UpTo-Sequence: 9\r\n\r\n"
        );
        r.clear();
        assert!(r.iter().next().is_none());
        assert_eq!(r.held_bytes(), 0);
    }
}
