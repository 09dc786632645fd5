//! The publisher: MQTT messages in, JetStream publishes out, MQTT acks after.
//!
//! For a QoS 1 message the order is: normalise -> merge each match update
//! into its match's state and publish that state through JetStream with the
//! update's `Nats-Msg-Id` (dead letters as they are) -> wait for every PubAck
//! (retrying with backoff, same id) -> only then PUBACK to the MQTT broker.
//!
//! Messages are pipelined (up to `max_inflight` in flight) across matches,
//! but the updates of one match take turns in arrival order: each is merged
//! once the previous one is stored (crate::state), so the states a match's
//! subject receives are in order and each contains everything before it. The
//! turns are taken here, in the receive loop, before anything is awaited. The
//! MQTT acks leave in arrival order, as MQTT 3.1.1 (4.6) requires.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesOrdered, FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::mqtt::{Ack, Received};
use crate::process::{Outgoing, Router};
use crate::publish::Publisher;
use crate::sport_metrics::SportId;
use crate::state::{self, MatchStates, Mode, UpdateJob};

pub struct Pipeline {
    pub publisher: Publisher,
    pub router: Router,
    pub metrics: Arc<Metrics>,
    /// PUBACKs for the MQTT event loop, which writes them in batches. Unbounded
    /// because it cannot grow past the messages in flight: one ack per QoS 1
    /// message the loop handed over, and the loop stops handing over at
    /// `max_inflight`.
    pub acks: mpsc::UnboundedSender<Ack>,
    pub max_inflight: usize,
    pub states: state::Limits,
}

/// How often ended and idle matches are dropped from memory.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// One MQTT message, routed: its place in each of its matches' turns is taken.
struct Job {
    received: Received,
    updates: Vec<UpdateJob>,
    dead_letters: Vec<Outgoing>,
    sport: SportId,
}

impl Pipeline {
    /// Runs until both inputs are closed and everything in flight is acked.
    pub async fn run(self, mut qos1: mpsc::Receiver<Received>, mut qos0: mpsc::Receiver<Received>) {
        let mut states = MatchStates::new(self.states.clone());
        let this = Arc::new(self);
        let mut ordered = FuturesOrdered::new();
        let mut unordered = FuturesUnordered::new();
        let (mut open1, mut open0) = (true, true);
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let room = ordered.len() + unordered.len() < this.max_inflight;
            tokio::select! {
                biased;
                Some(done) = ordered.next(), if !ordered.is_empty() => this.ack(done),
                Some(()) = unordered.next(), if !unordered.is_empty() => {}
                r = qos1.recv(), if room && open1 => match r {
                    Some(r) => ordered.push_back(this.clone().forward(this.route(r, &mut states))),
                    None => open1 = false,
                },
                r = qos0.recv(), if room && open0 => match r {
                    Some(r) => {
                        let job = this.route(r, &mut states);
                        let this = this.clone();
                        unordered.push(async move { this.forward(job).await; });
                    }
                    None => open0 = false,
                },
                _ = sweep.tick() => {
                    let n = states.sweep(Instant::now());
                    if n > 0 {
                        tracing::debug!(evicted = n, held = states.len(), "dropped ended and idle matches from memory");
                    }
                }
            }
            this.metrics
                .inflight
                .store((ordered.len() + unordered.len()) as i64, Relaxed);
            this.metrics
                .state_matches
                .store(states.len() as i64, Relaxed);
            this.metrics
                .state_evictions
                .store(states.evicted(), Relaxed);
            if !open1 && !open0 && ordered.is_empty() && unordered.is_empty() {
                break;
            }
        }
        tracing::info!("pipeline drained");
    }

    /// Normalises one MQTT message and queues each of its match updates
    /// behind the previous update of the same match. Synchronous, so the
    /// queues follow arrival order.
    fn route(&self, r: Received, states: &mut MatchStates) -> Job {
        let p = self
            .router
            .process(&r.publish.topic, &r.publish.payload, r.received_at_ms);
        for dl in &p.dead_letters {
            let topic = &r.publish.topic;
            match dl.entry {
                Some(entry) => {
                    tracing::warn!(%topic, entry, error = %dl.reason, "malformed match entry, dead-lettered")
                }
                None => {
                    tracing::warn!(%topic, bytes = r.publish.payload.len(), error = %dl.reason, "malformed payload, dead-lettered")
                }
            }
        }
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
        let sport = self.metrics.sports.id(p.sport.as_deref());
        self.metrics.sports.received(sport);
        let now = Instant::now();
        let updates = p
            .updates
            .into_iter()
            .map(|u| UpdateJob {
                link: states.link(&u.subject, now),
                subject: u.subject,
                msg_id: u.msg_id,
                update: u.update,
                mode: Mode::Live,
                sport,
            })
            .collect();
        Job {
            received: r,
            updates,
            dead_letters: p.dead_letters,
            sport,
        }
    }

    /// Publishes everything one MQTT message turned into; resolves when all of
    /// it is stored by JetStream.
    async fn forward(self: Arc<Self>, job: Job) -> Received {
        let Job {
            received,
            updates,
            dead_letters,
            sport,
        } = job;
        let states = updates
            .into_iter()
            .map(|u| state::apply(&self.publisher, &self.metrics, u));
        if dead_letters.is_empty() {
            futures::future::join_all(states).await;
        } else {
            let dead = dead_letters
                .into_iter()
                .map(|o| self.publisher.dead_letter(o, sport));
            futures::future::join(
                futures::future::join_all(states),
                futures::future::join_all(dead),
            )
            .await;
        }
        received
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
