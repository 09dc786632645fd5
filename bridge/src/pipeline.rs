//! The publisher: MQTT messages in, JetStream publishes out, MQTT acks after.
//!
//! For a QoS 1 message the order is: normalise -> publish every resulting NATS
//! message through JetStream with its `Nats-Msg-Id` -> wait for every PubAck
//! (retrying with backoff, same id) -> only then PUBACK to the MQTT broker.
//! Publishes are pipelined (up to `max_inflight` messages in flight), but the
//! MQTT acks leave in arrival order, as MQTT 3.1.1 (4.6) requires.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use futures::stream::{FuturesOrdered, FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::mqtt::{Ack, Received};
use crate::process::{Kind, Outgoing, Router};

pub struct Pipeline {
    pub js: jetstream::Context,
    pub router: Router,
    pub metrics: Arc<Metrics>,
    /// PUBACKs for the MQTT event loop, which writes them in batches. Unbounded
    /// because it cannot grow past the messages in flight: one ack per QoS 1
    /// message the loop handed over, and the loop stops handing over at
    /// `max_inflight`.
    pub acks: mpsc::UnboundedSender<Ack>,
    pub max_inflight: usize,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// Rate limit for retry warnings: a NATS outage would otherwise log one line
/// per in-flight message per attempt.
static LAST_RETRY_WARN_MS: AtomicU64 = AtomicU64::new(0);

impl Pipeline {
    /// Runs until both inputs are closed and everything in flight is acked.
    pub async fn run(self, mut qos1: mpsc::Receiver<Received>, mut qos0: mpsc::Receiver<Received>) {
        let this = Arc::new(self);
        let mut ordered = FuturesOrdered::new();
        let mut unordered = FuturesUnordered::new();
        let (mut open1, mut open0) = (true, true);
        loop {
            let room = ordered.len() + unordered.len() < this.max_inflight;
            tokio::select! {
                biased;
                Some(done) = ordered.next(), if !ordered.is_empty() => this.ack(done),
                Some(()) = unordered.next(), if !unordered.is_empty() => {}
                r = qos1.recv(), if room && open1 => match r {
                    Some(r) => ordered.push_back(this.clone().forward(r)),
                    None => open1 = false,
                },
                r = qos0.recv(), if room && open0 => match r {
                    Some(r) => unordered.push(async { this.clone().forward(r).await; }),
                    None => open0 = false,
                },
                else => break,
            }
            this.metrics
                .inflight
                .store((ordered.len() + unordered.len()) as i64, Relaxed);
            if !open1 && !open0 && ordered.is_empty() && unordered.is_empty() {
                break;
            }
        }
        tracing::info!("pipeline drained");
    }

    /// Publishes everything one MQTT message turned into; resolves when all of
    /// it is acked by JetStream.
    async fn forward(self: Arc<Self>, r: Received) -> Received {
        let p = self
            .router
            .process(&r.publish.topic, &r.publish.payload, r.received_at_ms);
        if p.malformed_payload {
            Metrics::inc(&self.metrics.malformed_payloads);
        }
        if p.malformed_elements > 0 {
            self.metrics
                .malformed_elements
                .fetch_add(p.malformed_elements as u64, Relaxed);
        }
        if p.empty {
            Metrics::inc(&self.metrics.empty_payloads);
        }
        match p.out.len() {
            0 => {}
            1 => {
                if let Some(o) = p.out.into_iter().next() {
                    self.publish_until_acked(o).await
                }
            }
            _ => {
                futures::future::join_all(p.out.into_iter().map(|o| self.publish_until_acked(o)))
                    .await;
            }
        }
        r
    }

    /// One JetStream publish, retried until acked. Retrying is safe because the
    /// id is the same every time: the stream stores the message once.
    async fn publish_until_acked(&self, o: Outgoing) {
        let mut delay = self.retry_min;
        let subject = async_nats::Subject::from(o.subject.as_str());
        loop {
            let started = Instant::now();
            let msg = PublishMessage::build()
                .payload(o.payload.clone())
                .headers(o.headers.clone());
            let result = match self.js.send_publish(subject.clone(), msg).await {
                Ok(ack) => ack.await.map_err(|e| e.to_string()),
                Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    // Retrying cannot help; this is a config problem (server
                    // max_payload below the provider's message size).
                    tracing::error!(subject = %o.subject, msg_id = %o.msg_id, error = %e, "message larger than NATS max_payload; dropped");
                    return;
                }
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(ack) => {
                    self.metrics.observe_ack(started.elapsed());
                    if ack.duplicate {
                        Metrics::inc(&self.metrics.duplicates);
                    } else if o.kind == Kind::Update {
                        Metrics::inc(&self.metrics.updates_published);
                    } else {
                        Metrics::inc(&self.metrics.dead_lettered);
                    }
                    return;
                }
                Err(e) => {
                    Metrics::inc(&self.metrics.publish_retries);
                    let now = crate::mqtt::now_ms();
                    let last = LAST_RETRY_WARN_MS.load(Relaxed);
                    if now.saturating_sub(last) >= 1000
                        && LAST_RETRY_WARN_MS
                            .compare_exchange(last, now, Relaxed, Relaxed)
                            .is_ok()
                    {
                        tracing::warn!(subject = %o.subject, msg_id = %o.msg_id, error = %e, retry_in_ms = delay.as_millis() as u64, "JetStream publish failed; retrying (same Nats-Msg-Id)");
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry_max);
                }
            }
        }
    }

    /// PUBACK to the MQTT broker, now that JetStream has the message. The
    /// event loop drops it if the connection that delivered it is gone (the
    /// broker redelivers; the redelivery is deduplicated).
    fn ack(&self, r: Received) {
        if r.publish.qos == rumqttc::QoS::AtMostOnce {
            return;
        }
        let ack = Ack {
            pkid: r.publish.pkid,
            epoch: r.epoch,
        };
        if self.acks.send(ack).is_err() {
            tracing::warn!(
                pkid = ack.pkid,
                "MQTT event loop gone; the broker will redeliver"
            );
        }
    }
}
