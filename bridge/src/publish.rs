//! JetStream I/O with retries: publishes (match states and dead letters) and
//! reads of a subject's last stored message.
//!
//! Every call retries transient failures (NATS down, ack timeout, a stream
//! leader election) with exponential backoff until the stream answers, so
//! nothing the MQTT broker delivered is acked before it is stored. A retried
//! publish carries the same `Nats-Msg-Id`, so the stream stores it once.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::{
    self,
    context::PublishErrorKind,
    message::PublishMessage,
    stream::{DirectGetErrorKind, LastRawMessageErrorKind},
};
use async_nats::HeaderMap;
use bytes::Bytes;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::process::{Outgoing, HDR_RECEIVED};
use crate::sport_metrics::SportId;
use crate::state::held::{StoredMsg, HDR_APPLIED};
use crate::state::sync::{Backend, Outcome};

pub struct Publisher {
    pub js: jetstream::Context,
    /// The stream match states are published to (for reading them back).
    pub stream: jetstream::stream::Stream<()>,
    pub stream_name: String,
    /// The stream allows direct gets: a match's state is first read from any
    /// replica (spreading a failover's burst of reads; a stale answer is
    /// caught by the expected last sequence on publish), and from the leader
    /// when that failed or went stale.
    pub direct: bool,
    pub metrics: Arc<Metrics>,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// Rate limit for retry warnings: a NATS outage would otherwise log one line
/// per in-flight message per attempt.
static LAST_RETRY_WARN_MS: AtomicU64 = AtomicU64::new(0);

fn warn_allowed() -> bool {
    let now = crate::mqtt::now_ms();
    let last = LAST_RETRY_WARN_MS.load(Relaxed);
    now.saturating_sub(last) >= 1000
        && LAST_RETRY_WARN_MS
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
}

impl Publisher {
    /// The publisher for the configured match stream (the bridge and
    /// `replay-dlq` share it, so both publish through the same path).
    /// `direct`: the stream allows direct gets.
    pub async fn new(
        js: jetstream::Context,
        cfg: &Config,
        direct: bool,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Publisher> {
        let stream = js
            .get_stream_no_info(&cfg.jetstream.stream)
            .await
            .with_context(|| format!("stream name {:?}", cfg.jetstream.stream))?;
        Ok(Publisher {
            js,
            stream,
            stream_name: cfg.jetstream.stream.clone(),
            direct,
            metrics,
            retry_min: Duration::from_millis(cfg.bridge.retry_min_ms),
            retry_max: Duration::from_millis(cfg.bridge.retry_max_ms),
        })
    }

    /// A dead letter of a message on a topic of `sport`, retried until acked.
    pub async fn dead_letter(&self, o: Outgoing, sport: SportId) {
        match self.send(&o.subject, &o.headers, &o.payload).await {
            Outcome::Stored { .. } => {
                Metrics::inc(&self.metrics.dead_lettered);
                self.metrics.sports.dead_lettered(sport);
            }
            Outcome::Duplicate => {
                Metrics::inc(&self.metrics.duplicates);
                self.metrics.sports.duplicate(sport);
            }
            // No expected sequence on dead letters; too large is logged.
            Outcome::Conflict | Outcome::Dropped => {}
        }
    }

    /// One JetStream publish, retried until the stream decides.
    async fn send(&self, subject: &str, headers: &HeaderMap, payload: &Bytes) -> Outcome {
        let mut delay = self.retry_min;
        let subj = async_nats::Subject::from(subject);
        loop {
            let started = Instant::now();
            let msg = PublishMessage::build()
                .payload(payload.clone())
                .headers(headers.clone());
            let result = match self.js.send_publish(subj.clone(), msg).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            let error = match result {
                Ok(ack) => {
                    self.metrics.observe_ack(started.elapsed());
                    return if ack.duplicate {
                        Outcome::Duplicate
                    } else {
                        Outcome::Stored { seq: ack.sequence }
                    };
                }
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    return Outcome::Conflict
                }
                Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    // Retrying cannot help; this is a config problem (server
                    // max_payload below the message size).
                    let msg_id = headers.get(async_nats::header::NATS_MESSAGE_ID);
                    tracing::error!(subject, msg_id = ?msg_id, bytes = payload.len(), error = %e, "message larger than NATS max_payload; dropped");
                    return Outcome::Dropped;
                }
                Err(e) => e,
            };
            Metrics::inc(&self.metrics.publish_retries);
            if warn_allowed() {
                let msg_id = headers.get(async_nats::header::NATS_MESSAGE_ID);
                tracing::warn!(subject, msg_id = ?msg_id, error = %error, retry_in_ms = delay.as_millis() as u64, "JetStream publish failed; retrying (same Nats-Msg-Id)");
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.retry_max);
        }
    }
}

fn stored(m: jetstream::message::StreamMessage) -> StoredMsg {
    let msg_id = m.headers.get(async_nats::header::NATS_MESSAGE_ID);
    StoredMsg {
        seq: m.sequence,
        msg_id: msg_id.map(|v| v.as_str().to_owned()),
        applied: m.headers.get(HDR_APPLIED).map(|v| v.as_str().to_owned()),
        received_ms: m
            .headers
            .get(HDR_RECEIVED)
            .and_then(|v| v.as_str().parse().ok()),
        payload: m.payload,
    }
}

impl Backend for Publisher {
    async fn load_last(&self, subject: &str, from_leader: bool) -> Option<StoredMsg> {
        if self.direct && !from_leader {
            Metrics::inc(&self.metrics.state_reads);
            match self.stream.direct_get_last_for_subject(subject).await {
                Ok(m) => return Some(stored(m)),
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => return None,
                Err(e) => {
                    tracing::debug!(subject, error = %e, "direct get failed; reading through the stream leader")
                }
            }
        }
        let mut delay = self.retry_min;
        loop {
            Metrics::inc(&self.metrics.state_reads);
            match self.stream.get_last_raw_message_by_subject(subject).await {
                Ok(m) => return Some(stored(m)),
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return None,
                Err(e) => {
                    if warn_allowed() {
                        tracing::warn!(
                            subject,
                            stream = %self.stream_name,
                            error = %e,
                            retry_in_ms = delay.as_millis() as u64,
                            "cannot read the match's last state (the bridge needs to publish to $JS.API.STREAM.MSG.GET.<stream>); retrying"
                        );
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry_max);
                }
            }
        }
    }

    async fn publish(&self, subject: &str, headers: HeaderMap, payload: Bytes) -> Outcome {
        self.send(subject, &headers, &payload).await
    }
}
