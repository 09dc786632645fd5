//! Mirrors and sources: a stream filled from other streams.
//!
//! The stream's leader runs one feed per origin ([`feed`]): an ephemeral
//! push consumer on the origin, created through the JetStream API (so the
//! origin may be replicated, on another server, or in another account
//! through `external` prefixes), with flow control and idle heartbeats.
//! Each delivery's `$JS.ACK` reply names its origin sequence and time.
//! A mirror stores every message at its origin's sequence and time (gaps
//! where the origin deleted some); a source appends under its own
//! sequences and marks each message with `Nats-Stream-Source`, from which
//! a new leader finds where to resume.
//!
//! The feed reaches its stream through [`FeedSink`] only: the stream
//! layer implements it; this module does not know `Stream`.

pub mod config;
pub(crate) mod feed;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

use super::errors::ApiError;
use super::ingest::Ingest;
use super::subject_transform::SubjectTransformConfig;
use crate::accounts::Account;
pub use config::{ConsumerSource, ExternalStream, StreamSource};

/// The header a sourced message carries: `<stream> <seq> <filter> <dest>
/// <subject>`, the middle two from the source's index name.
pub const STREAM_SOURCE: &str = "Nats-Stream-Source";

/// The origin's consumer sends a heartbeat this often when idle (and a
/// `flow_control` ack policy consumer must use exactly this).
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(1);

/// Where a stream's writer acks the messages a durable source hands it;
/// these go out even on a `no_ack` stream (the feed waits for them).
pub const FEED_ACK_PREFIX: &str = "$JS.S.A.";

/// What a feed needs from the stream it fills.
pub(crate) trait FeedSink: Send + Sync {
    /// The stream's account (`None` once the stream is gone).
    fn account(&self) -> Option<Arc<Account>>;
    /// The last origin sequence the stream holds from this feed (0: none)
    /// and whether the stream has never stored anything (a mirror's start
    /// options apply only then).
    fn resume_point(&self, feed: &FeedState) -> (u64, bool);
    /// Hand a message to the stream's writer; `false` once it takes no
    /// more (the stream stopped or no longer leads here).
    fn ingest(&self, m: Ingest) -> bool;
}

/// One mirror or source, as its feed tracks it.
#[derive(Debug)]
pub(crate) struct FeedState {
    pub source: StreamSource,
    pub mirror: bool,
    pub iname: String,
    lag: AtomicU64,
    /// The last origin sequence passed to the stream.
    seq: AtomicU64,
    /// When the origin was last heard from (unix nanoseconds; 0: never).
    last: AtomicI64,
    error: Mutex<Option<ApiError>>,
}

/// A mirror's or source's entry in `STREAM.INFO` (`StreamSourceInfo`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SourceInfo {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStream>,
    pub lag: u64,
    /// A source's last origin sequence taken (nats-server 2.15 reports it
    /// for sources, not for a mirror).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Nanoseconds since the origin was last heard from, -1 if never.
    pub active: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_transforms: Vec<SubjectTransformConfig>,
}

impl FeedState {
    pub fn new(source: StreamSource, mirror: bool) -> FeedState {
        FeedState {
            iname: source.iname(),
            source,
            mirror,
            lag: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            last: AtomicI64::new(0),
            error: Mutex::new(None),
        }
    }

    pub fn info(&self) -> SourceInfo {
        let last = self.last.load(Ordering::Relaxed);
        SourceInfo {
            name: self.source.name.clone(),
            external: self.source.external.clone(),
            lag: self.lag.load(Ordering::Relaxed),
            seq: (!self.mirror).then(|| self.seq.load(Ordering::Relaxed)),
            active: if last == 0 {
                -1
            } else {
                crate::jetstream::stream::now_nanos()
                    .saturating_sub(last)
                    .max(0)
            },
            error: self.error.lock().clone(),
            filter_subject: self.source.filter_subject.clone(),
            subject_transforms: self.source.subject_transforms.clone(),
        }
    }

    pub(crate) fn heard(&self) {
        self.last
            .store(crate::jetstream::stream::now_nanos(), Ordering::Relaxed);
    }

    pub(crate) fn set_seq(&self, seq: u64) {
        self.seq.store(seq, Ordering::Relaxed);
    }

    pub(crate) fn set_lag(&self, pending: u64) {
        self.lag.store(pending.saturating_sub(1), Ordering::Relaxed);
    }

    pub(crate) fn set_error(&self, e: Option<ApiError>) {
        *self.error.lock() = e;
    }

    /// The `Nats-Stream-Source` value of a message from origin sequence
    /// `seq` published on `subject`.
    pub fn header_value(&self, seq: &str, subject: &str) -> String {
        let mut parts = self.iname.splitn(3, ' ');
        let name = parts.next().unwrap_or_default();
        let filter = parts.next().unwrap_or(">");
        let dest = parts.next().unwrap_or(">");
        format!("{name} {seq} {filter} {dest} {subject}")
    }

    /// Whether a `Nats-Stream-Source` value came from this source; its
    /// origin sequence if so.
    pub fn origin_seq(&self, header: &str) -> Option<u64> {
        let f: Vec<&str> = header.split(' ').collect();
        if f.len() < 4 {
            return None;
        }
        let mine = self.iname.splitn(3, ' ').collect::<Vec<_>>();
        (mine.len() == 3 && f[0] == mine[0] && f[2] == mine[1] && f[3] == mine[2])
            .then(|| f[1].parse().ok())
            .flatten()
    }
}

/// What a delivery's `$JS.ACK` reply says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AckInfo<'a> {
    pub consumer: &'a str,
    pub delivered: u64,
    pub sseq: &'a str,
    pub stream_seq: u64,
    pub consumer_seq: u64,
    pub ts: i64,
    pub pending: u64,
}

/// Parse `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>`
/// or its longer form with a domain and an account hash first.
pub(crate) fn ack_info(reply: &str) -> Option<AckInfo<'_>> {
    let t: Vec<&str> = reply.split('.').collect();
    if t.len() < 9 || t[0] != "$JS" || t[1] != "ACK" {
        return None;
    }
    let o = match t.len() {
        9 => 2,
        n if n >= 12 => 4,
        _ => return None,
    };
    Some(AckInfo {
        consumer: t[o + 1],
        delivered: t[o + 2].parse().ok()?,
        sseq: t[o + 3],
        stream_seq: t[o + 3].parse().ok()?,
        consumer_seq: t[o + 4].parse().ok()?,
        ts: t[o + 5].parse().ok()?,
        pending: t[o + 6].parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_replies_in_both_forms() {
        let a = ack_info("$JS.ACK.O.C1.1.42.7.1700000000000000000.3").unwrap();
        assert_eq!(
            (
                a.consumer,
                a.delivered,
                a.stream_seq,
                a.consumer_seq,
                a.ts,
                a.pending
            ),
            ("C1", 1, 42, 7, 1_700_000_000_000_000_000, 3)
        );
        let b = ack_info("$JS.ACK.hub.ACCHASH.O.C1.2.42.7.5.0.rnd").unwrap();
        assert_eq!((b.consumer, b.delivered, b.stream_seq), ("C1", 2, 42));
        assert_eq!(ack_info("$JS.ACK.O.C1.1.x.7.5.0"), None);
        assert_eq!(ack_info("_INBOX.x"), None);
    }

    #[test]
    fn source_headers_name_their_source() {
        let f = FeedState::new(
            serde_json::from_str(r#"{"name":"O","filter_subject":"a.*"}"#).unwrap(),
            false,
        );
        let h = f.header_value("12", "a.b");
        assert_eq!(h, "O 12 a.* > a.b");
        assert_eq!(f.origin_seq(&h), Some(12));
        assert_eq!(f.origin_seq("O 12 > > a.b"), None);
        assert_eq!(f.origin_seq("P 12 a.* > a.b"), None);
    }
}
