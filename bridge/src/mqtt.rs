//! MQTT side: connection options and the event loop.
//!
//! The event loop only moves packets: it hands each PUBLISH to the pipeline
//! (QoS 1 with backpressure, QoS 0 through a bounded queue that drops and
//! counts), writes the pipeline's PUBACKs, re-subscribes after every CONNACK
//! (rumqttc does not), and backs off exponentially between failed connection
//! attempts.
//!
//! PUBACKs are written here, in batches, rather than through
//! `AsyncClient::ack`: rumqttc flushes the socket once per queued request, so
//! acking through it costs a write per message, and the broker, which refills
//! its in-flight window one ack at a time, then sends one PUBLISH per write
//! too. A batch of acks in one write lets the broker answer with a batch of
//! messages. For QoS 1 a PUBACK carries no client state in rumqttc (its
//! `outgoing_puback` only queues an event), so writing the packet on the
//! event loop's network is the same as acking through the client.
//!
//! The same holds over every transport ([`crate::endpoint`]): rumqttc's
//! `Network` frames MQTT over whatever stream the transport gave it. Over
//! WebSocket that stream is ws_stream_tungstenite's, which turns each write
//! into one binary WebSocket message (and never takes a write twice), and
//! the framer writes its whole buffer in one write, so a batch of PUBACKs is
//! one WebSocket message, flushed before it counts as written. MQTT over
//! WebSocket lets packets span or share messages, so brokers read it as
//! they read a TCP stream.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, PubAck, QoS, SubscribeFilter};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::MqttConfig;
use crate::endpoint::Endpoint;
use crate::metrics::Metrics;

/// One PUBLISH from the provider, tagged with the connection it arrived on.
#[derive(Debug)]
pub struct Received {
    pub publish: rumqttc::Publish,
    /// Connection generation: an ack is only valid on the connection that
    /// delivered the message (packet ids are per session and get reused).
    pub epoch: u64,
    pub received_at_ms: u64,
}

/// Most PUBACKs written per socket write.
const ACK_BATCH: usize = 1024;

/// A PUBACK the pipeline asks for: JetStream has stored the message.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub pkid: u16,
    /// The connection generation the message arrived on (see [`Received`]).
    pub epoch: u64,
}

/// The pipeline's acks not yet written, gathered for one write.
struct PendingAcks {
    rx: mpsc::UnboundedReceiver<Ack>,
    batch: Vec<Ack>,
    /// False once the pipeline is gone (no more acks can come).
    open: bool,
}

impl PendingAcks {
    /// Waits until acks are in `batch` (true), or the pipeline is gone (false).
    async fn recv(&mut self) -> bool {
        let n = self.rx.recv_many(&mut self.batch, ACK_BATCH).await;
        self.open = n > 0;
        self.open
    }
}

/// The QoS for a configured level: 0 is at most once, anything else at least
/// once (the bridge never asks for QoS 2).
pub fn qos(level: u8) -> QoS {
    if level == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

/// rumqttc options from config: persistent session and manual acks for the
/// no-loss path, credentials from their secret sources, verified TLS.
pub fn options(cfg: &MqttConfig, request_capacity: usize) -> Result<MqttOptions> {
    let endpoint = Endpoint::parse(&cfg.url).context("mqtt.url")?;
    let mut o = endpoint.mqtt_options(&cfg.client_id, cfg.ca_file.as_deref())?;
    o.set_keep_alive(Duration::from_secs(cfg.keep_alive_secs.max(5)))
        .set_clean_session(cfg.clean_session)
        .set_manual_acks(true)
        .set_max_packet_size(cfg.max_packet_bytes, cfg.max_packet_bytes)
        .set_request_channel_capacity(request_capacity);
    match (&cfg.username, &cfg.password) {
        (Some(u), p) => {
            let user = u.resolve().context("mqtt.username")?;
            let pass = match p {
                Some(p) => p.resolve().context("mqtt.password")?.expose().to_owned(),
                None => String::new(),
            };
            o.set_credentials(user.expose(), pass);
        }
        (None, Some(_)) => bail!("mqtt.password is set without mqtt.username"),
        (None, None) => {}
    }
    Ok(o)
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Everything the event loop needs.
pub struct Loop {
    pub client: AsyncClient,
    pub eventloop: EventLoop,
    pub subscriptions: Vec<SubscribeFilter>,
    pub metrics: Arc<Metrics>,
    pub epoch: Arc<AtomicU64>,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Loop {
    pub fn new(cfg: &MqttConfig, request_capacity: usize, metrics: Arc<Metrics>) -> Result<Loop> {
        let endpoint = Endpoint::parse(&cfg.url).context("mqtt.url")?;
        let (client, eventloop) =
            AsyncClient::new(options(cfg, request_capacity)?, request_capacity);
        // The URL holds no secrets (Endpoint refuses user info and queries).
        tracing::info!(
            url = %endpoint,
            transport = endpoint.scheme.as_str(),
            tls = endpoint.scheme.is_tls(),
            "MQTT endpoint"
        );
        let subscriptions = cfg
            .subscriptions
            .iter()
            .map(|s| SubscribeFilter::new(s.topic.clone(), qos(s.qos)))
            .collect();
        Ok(Loop {
            client,
            eventloop,
            subscriptions,
            metrics,
            epoch: Arc::new(AtomicU64::new(0)),
            backoff_min: Duration::from_millis(cfg.reconnect_min_ms),
            backoff_max: Duration::from_millis(cfg.reconnect_max_ms),
        })
    }

    /// Runs until `shutdown`, then stops forwarding (what was not forwarded stays
    /// unacked and is redelivered later), keeps polling and writing the
    /// pipeline's acks until `pipeline_done`, and disconnects.
    pub async fn run(
        mut self,
        qos1: mpsc::Sender<Received>,
        qos0: mpsc::Sender<Received>,
        acks: mpsc::UnboundedReceiver<Ack>,
        mut shutdown: watch::Receiver<bool>,
        mut pipeline_done: oneshot::Receiver<()>,
    ) {
        let mut senders = Some((qos1, qos0));
        let mut backoff = self.backoff_min;
        let mut connected_once = false;
        let mut shutting_down = *shutdown.borrow();
        let mut acks = PendingAcks {
            rx: acks,
            batch: Vec::with_capacity(ACK_BATCH),
            open: true,
        };
        loop {
            if shutting_down && senders.is_some() {
                senders = None; // closes the pipeline's inputs: it drains and finishes
            }
            // Acks are only written on a live connection; while reconnecting
            // they wait (and turn out stale: a new connection is a new epoch).
            let can_ack = self.eventloop.network.is_some();
            let event = tokio::select! {
                ev = self.eventloop.poll() => ev,
                got = acks.recv(), if can_ack && acks.open => {
                    if got {
                        self.write_acks(&mut acks.batch).await;
                    }
                    continue;
                }
                _ = shutdown.changed(), if !shutting_down => {
                    shutting_down = true;
                    tracing::info!("MQTT: stopping intake, draining in-flight publishes");
                    continue;
                }
                _ = &mut pipeline_done, if shutting_down => break,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    let epoch = self.epoch.fetch_add(1, Relaxed) + 1;
                    self.metrics.mqtt_connected.store(true, Relaxed);
                    if connected_once {
                        Metrics::inc(&self.metrics.mqtt_reconnects);
                    }
                    connected_once = true;
                    backoff = self.backoff_min;
                    tracing::info!(
                        session_present = ack.session_present,
                        epoch,
                        "MQTT connected; subscribing"
                    );
                    self.subscribe();
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let refused = ack
                        .return_codes
                        .iter()
                        .filter(|c| **c == rumqttc::SubscribeReasonCode::Failure)
                        .count();
                    if refused > 0 {
                        tracing::error!(refused, "MQTT broker refused subscriptions");
                    } else {
                        self.metrics.mqtt_subscribed.store(true, Relaxed);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let Some((qos1, qos0)) = &senders else {
                        continue;
                    };
                    let received = Received {
                        epoch: self.epoch.load(Relaxed),
                        received_at_ms: now_ms(),
                        publish,
                    };
                    if received.publish.qos == QoS::AtMostOnce {
                        Metrics::inc(&self.metrics.mqtt_received_qos0);
                        if qos0.try_send(received).is_err() {
                            Metrics::inc(&self.metrics.qos0_dropped);
                        }
                        continue;
                    }
                    Metrics::inc(&self.metrics.mqtt_received_qos1);
                    let forwarded = self.hand_over(qos1, received, &mut acks).await;
                    if !forwarded {
                        tracing::error!("pipeline stopped; no longer forwarding");
                        senders = None;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    self.metrics.mqtt_connected.store(false, Relaxed);
                    self.metrics.mqtt_subscribed.store(false, Relaxed);
                    if shutting_down {
                        break;
                    }
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "MQTT connection failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed(), if !shutting_down => shutting_down = true,
                    }
                    backoff = (backoff * 2).min(self.backoff_max);
                }
            }
        }
        // The pipeline's last acks, sent just before it reported done.
        while let Ok(ack) = acks.rx.try_recv() {
            acks.batch.push(ack);
        }
        self.write_acks(&mut acks.batch).await;
        self.metrics.mqtt_connected.store(false, Relaxed);
        if self.client.try_disconnect().is_ok() {
            // Poll until the DISCONNECT is written (or the connection is gone).
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                loop {
                    match self.eventloop.poll().await {
                        Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            })
            .await;
        }
        tracing::info!("MQTT disconnected");
    }

    /// Gives a QoS 1 message to the pipeline; false if the pipeline is gone.
    /// Waits only when `max_inflight` publishes are pending (the broker's own
    /// in-flight window normally stops it first), writing acks meanwhile,
    /// since they are what frees room.
    async fn hand_over(
        &mut self,
        qos1: &mpsc::Sender<Received>,
        received: Received,
        acks: &mut PendingAcks,
    ) -> bool {
        loop {
            tokio::select! {
                permit = qos1.reserve() => {
                    return match permit {
                        Ok(permit) => {
                            permit.send(received);
                            true
                        }
                        Err(_) => false,
                    };
                }
                got = acks.recv(), if acks.open => {
                    if got {
                        self.write_acks(&mut acks.batch).await;
                    }
                }
            }
        }
    }

    /// Writes a batch of PUBACKs in one flush. Acks from an earlier connection
    /// are dropped: packet ids belong to the connection (the broker redelivers
    /// those messages and JetStream deduplicates them). A failed write closes
    /// the connection; the next poll reconnects.
    async fn write_acks(&mut self, batch: &mut Vec<Ack>) {
        let epoch = self.epoch.load(Relaxed);
        let mut written = 0u64;
        let mut failed = None;
        if let Some(network) = self.eventloop.network.as_mut() {
            for ack in batch.drain(..) {
                if ack.epoch != epoch {
                    Metrics::inc(&self.metrics.mqtt_stale_acks);
                } else if failed.is_none() {
                    match network.write(Packet::PubAck(PubAck::new(ack.pkid))).await {
                        Ok(()) => written += 1,
                        Err(e) => failed = Some(e.to_string()),
                    }
                }
            }
            if written > 0 && failed.is_none() {
                let limit =
                    Duration::from_secs(self.eventloop.network_options.connection_timeout());
                match tokio::time::timeout(limit, network.flush()).await {
                    Ok(Ok(())) => {
                        self.metrics.mqtt_acked.fetch_add(written, Relaxed);
                    }
                    Ok(Err(e)) => failed = Some(e.to_string()),
                    Err(_) => failed = Some("flush timed out".into()),
                }
            }
        } else {
            let stale = batch.drain(..).count() as u64;
            self.metrics.mqtt_stale_acks.fetch_add(stale, Relaxed);
        }
        if let Some(error) = failed {
            tracing::warn!(%error, "MQTT: writing acks failed; reconnecting (unacked messages will be redelivered)");
            self.metrics.mqtt_connected.store(false, Relaxed);
            self.metrics.mqtt_subscribed.store(false, Relaxed);
            self.eventloop.clean();
        }
    }

    /// Queues the SUBSCRIBE without blocking the loop that must send it.
    fn subscribe(&self) {
        if self.subscriptions.is_empty() {
            return;
        }
        if let Err(e) = self.client.try_subscribe_many(self.subscriptions.clone()) {
            let client = self.client.clone();
            let subs = self.subscriptions.clone();
            tracing::debug!(error = %e, "request queue full; subscribing in the background");
            tokio::spawn(async move {
                if let Err(e) = client.subscribe_many(subs).await {
                    tracing::error!(error = %e, "MQTT subscribe failed");
                }
            });
        }
    }
}
