//! MQTT side: connection options and the event loop.
//!
//! The event loop only moves packets: it hands each PUBLISH to the pipeline
//! (QoS 1 with backpressure, QoS 0 through a bounded queue that drops and
//! counts), re-subscribes after every CONNACK (rumqttc does not), and backs off
//! exponentially between failed connection attempts.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeFilter, Transport,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::MqttConfig;
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

/// `(host, port, tls)` from `mqtt://host[:port]` or `mqtts://host[:port]`.
pub fn parse_url(url: &str) -> Result<(String, u16, bool)> {
    let (rest, tls, default_port) = if let Some(r) = url.strip_prefix("mqtts://") {
        (r, true, 8883)
    } else if let Some(r) = url.strip_prefix("ssl://") {
        (r, true, 8883)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (r, false, 1883)
    } else if let Some(r) = url.strip_prefix("tcp://") {
        (r, false, 1883)
    } else {
        bail!("mqtt url {url:?}: scheme must be mqtts:// (TLS) or mqtt:// (plaintext)");
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        bail!(
            "mqtt url {url:?}: expected scheme://host[:port] (credentials go in username/password)"
        );
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, _)) if !h.ends_with(']') && h.contains(':') => (rest.to_owned(), default_port),
        Some((h, p)) => (
            h.trim_start_matches('[').trim_end_matches(']').to_owned(),
            p.parse()
                .with_context(|| format!("mqtt url {url:?}: bad port"))?,
        ),
        None => (rest.to_owned(), default_port),
    };
    Ok((host, port, tls))
}

/// rumqttc options from config: persistent session and manual acks for the
/// no-loss path, credentials from their secret sources, verified TLS.
pub fn options(cfg: &MqttConfig, request_capacity: usize) -> Result<MqttOptions> {
    let (host, port, tls) = parse_url(&cfg.url)?;
    let mut o = MqttOptions::new(cfg.client_id.clone(), host, port);
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
    if tls {
        let config = crate::tls::mqtt_client_config(cfg.ca_file.as_deref())?;
        o.set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(config),
        ));
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
        let (client, eventloop) =
            AsyncClient::new(options(cfg, request_capacity)?, request_capacity);
        let subscriptions = cfg
            .subscriptions
            .iter()
            .map(|s| {
                let qos = if s.qos == 0 {
                    QoS::AtMostOnce
                } else {
                    QoS::AtLeastOnce
                };
                SubscribeFilter::new(s.topic.clone(), qos)
            })
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
    /// unacked and is redelivered later), keeps polling so the pipeline's final
    /// acks reach the broker, waits for `pipeline_done`, and disconnects.
    pub async fn run(
        mut self,
        qos1: mpsc::Sender<Received>,
        qos0: mpsc::Sender<Received>,
        mut shutdown: watch::Receiver<bool>,
        mut pipeline_done: oneshot::Receiver<()>,
    ) {
        let mut senders = Some((qos1, qos0));
        let mut backoff = self.backoff_min;
        let mut connected_once = false;
        let mut shutting_down = *shutdown.borrow();
        loop {
            if shutting_down && senders.is_some() {
                senders = None; // closes the pipeline's inputs: it drains and finishes
            }
            let event = tokio::select! {
                ev = self.eventloop.poll() => ev,
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
                    match received.publish.qos {
                        QoS::AtMostOnce => {
                            Metrics::inc(&self.metrics.mqtt_received_qos0);
                            if qos0.try_send(received).is_err() {
                                Metrics::inc(&self.metrics.qos0_dropped);
                            }
                        }
                        _ => {
                            Metrics::inc(&self.metrics.mqtt_received_qos1);
                            // Blocks only when max_inflight publishes are pending; the
                            // broker's own inflight window normally stops it first.
                            if qos1.send(received).await.is_err() {
                                tracing::error!("pipeline stopped; no longer forwarding");
                                senders = None;
                            }
                        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtts://h.example:8884").unwrap(),
            ("h.example".into(), 8884, true)
        );
        assert_eq!(
            parse_url("mqtts://h.example").unwrap(),
            ("h.example".into(), 8883, true)
        );
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1883/").unwrap(),
            ("127.0.0.1".into(), 1883, false)
        );
        assert_eq!(
            parse_url("mqtt://[::1]:1884").unwrap(),
            ("::1".into(), 1884, false)
        );
        for bad in [
            "http://x",
            "mqtts://",
            "mqtts://u:p@h",
            "mqtt://h:port",
            "mqtt://h/topic",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
