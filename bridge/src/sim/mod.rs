//! The feed simulator: replays realistic matches into an MQTT broker.
//!
//! `tribune-bridge simulate` starts an embedded rumqttd (default) or publishes
//! to an external broker (`--mqtt-url`, e.g. Debian's mosquitto, over any of
//! the bridge's transports: TCP, TLS, WebSocket, WebSocket over TLS), at a given
//! rate, for N updates or forever. QoS 1 publishes are confirmed: the run ends
//! only when the broker has acknowledged every message, so a report of N
//! updates means the broker holds N.

pub mod basketball;
pub mod embedded;
pub mod football;
pub mod matches;
pub mod people;
pub mod tennis;

#[cfg(test)]
mod check;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rumqttc::{AsyncClient, Event, Outgoing, Packet, QoS};
use serde::Serialize;
use tokio::sync::watch;

use crate::endpoint::Endpoint;
pub use matches::{Feed, Message, Part, SimMatch, SPORTS};

#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The broker to publish to, in any `mqtt.url` form
    /// (`mqtt://`, `mqtts://`, `ws://`, `wss://`; see [`crate::endpoint`]).
    pub mqtt_url: String,
    /// CA bundle verifying a TLS broker (`mqtts://`, `wss://`); default: the
    /// system roots.
    pub ca_file: Option<PathBuf>,
    /// Stop after this many valid match updates; 0 = run until shutdown.
    pub updates: u64,
    /// MQTT messages per second; 0 = as fast as the broker acks.
    pub rate: f64,
    pub seed: u64,
    pub sports: Vec<&'static str>,
    pub matches_per_sport: usize,
    /// Up to this many match objects per MQTT message.
    pub batch: usize,
    /// Every Nth message is malformed (0 = never). Not counted in `updates`.
    pub malformed_every: u64,
    pub qos: u8,
    pub client_id: String,
    /// Print each message's topic and size (for `make run`).
    pub verbose: bool,
    /// The time (Unix s) every message is made at, instead of the wall
    /// clock: football's kick-off times then depend only on the seed, so a
    /// test can replay exactly what was sent. `None`: the wall clock, so a
    /// minute computed from a kick-off time is the simulated minute.
    pub fixed_clock: Option<i64>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            mqtt_url: "mqtt://127.0.0.1:1883".into(),
            ca_file: None,
            updates: 0,
            rate: 20.0,
            seed: 1,
            sports: SPORTS.to_vec(),
            matches_per_sport: 4,
            batch: 3,
            malformed_every: 0,
            qos: 1,
            client_id: "tribune-feed-sim".into(),
            verbose: false,
            fixed_clock: None,
        }
    }
}

/// What a run sent (and the broker acknowledged, for QoS 1).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SimReport {
    pub messages: u64,
    pub updates: u64,
    pub malformed: u64,
}

/// The wall clock, Unix seconds.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Publishes until `opts.updates` valid updates are sent and acknowledged, or
/// until `shutdown`.
pub async fn run(opts: SimOptions, mut shutdown: watch::Receiver<bool>) -> Result<SimReport> {
    let mut mo = Endpoint::parse(&opts.mqtt_url)?
        .mqtt_options(&opts.client_id, opts.ca_file.as_deref())
        .context("simulator")?;
    mo.set_keep_alive(Duration::from_secs(15))
        .set_inflight(200)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(mo, 1000);
    let acked = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(tokio::sync::Notify::new());
    let loop_task = {
        let (acked, connected) = (acked.clone(), connected.clone());
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked.fetch_add(1, Relaxed);
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => connected.notify_one(),
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "simulator: MQTT connection failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        })
    };
    tokio::time::timeout(Duration::from_secs(30), connected.notified())
        .await
        .with_context(|| format!("simulator: no CONNACK from {} within 30s", opts.mqtt_url))?;

    let qos = crate::mqtt::qos(opts.qos);
    let mut feed = Feed::new(
        opts.seed,
        &opts.sports,
        opts.matches_per_sport,
        opts.batch,
        opts.malformed_every,
    );
    let mut report = SimReport::default();
    let started = Instant::now();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let remaining = if opts.updates == 0 {
            usize::MAX
        } else {
            (opts.updates - report.updates) as usize
        };
        if remaining == 0 {
            break;
        }
        if opts.rate > 0.0 {
            let due = started + Duration::from_secs_f64(report.messages as f64 / opts.rate);
            tokio::select! {
                _ = tokio::time::sleep_until(due.into()) => {}
                _ = shutdown.changed() => continue,
            }
        }
        let now = opts.fixed_clock.unwrap_or_else(unix_now);
        let msg = feed.next_message(remaining, now);
        if opts.verbose {
            tracing::info!(topic = %msg.topic, updates = msg.updates, bytes = msg.payload.len(), malformed = msg.malformed, "feed");
        }
        client
            .publish(msg.topic, qos, false, msg.payload)
            .await
            .context("simulator: MQTT client stopped")?;
        report.messages += 1;
        report.updates += msg.updates as u64;
        report.malformed += msg.malformed as u64;
    }
    if qos == QoS::AtLeastOnce {
        // The broker has a message once it PUBACKs it; wait for all of them.
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked.load(Relaxed) < report.messages {
            if Instant::now() > deadline {
                anyhow::bail!(
                    "simulator: broker acknowledged {} of {} messages",
                    acked.load(Relaxed),
                    report.messages
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), loop_task).await;
    Ok(report)
}
