//! `tribune-bridge bench`: MQTT -> JetStream throughput and latency.
//!
//! Everything real and on loopback: an MQTT broker (the embedded rumqttd, or
//! one given in [`BenchMqtt`], e.g. a rumqttd serving `wss://`), the bridge
//! (in this process, same code as `run`), the NATS server or cluster given by
//! `nats_url` (tribune-broker or nats-server, with JetStream, the stream at
//! `replicas`), and an ordered JetStream consumer on the stream. Latency is
//! MQTT publish call -> delivery by that consumer: a consumer delivers only
//! what the stream stored (on a quorum when replicated), so this is the time
//! to *stored*, not to a core subscriber (which a publish reaches before the
//! stream has it).
//!
//! The updates are spread over `matches` live matches, as a provider's feed
//! is (a few hundred to a few thousand matches, each updated many times);
//! each update carries its sequence number in a field the bridge passes
//! through (`bench_seq`), which is how the subscriber times it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::watch;

mod provider;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub nats_url: String,
    pub messages: u64,
    pub qos: u8,
    pub label: String,
    /// Paced publishing (messages/s) for a latency measurement below
    /// saturation; 0 = as fast as possible (throughput; latency then includes
    /// queueing in the MQTT broker).
    pub rate: f64,
    /// Distinct matches (subjects) the updates cycle through; 0 = one per update.
    pub matches: u64,
    /// The stream's replicas (3 on a 3-node cluster).
    pub replicas: usize,
    /// The MQTT broker; `None` starts the embedded one (plain TCP).
    pub mqtt: Option<BenchMqtt>,
}

/// An MQTT broker the bench does not start.
#[derive(Debug, Clone)]
pub struct BenchMqtt {
    /// What the bridge connects to (`mqtts://`, `wss://`, ...).
    pub bridge_url: String,
    /// CA for the bridge's TLS, when the URL is TLS.
    pub ca_file: Option<std::path::PathBuf>,
    /// Plain MQTT over TCP on the same broker, where the simulated provider
    /// publishes.
    pub provider_addr: SocketAddr,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub label: String,
    pub transport: String,
    pub replicas: usize,
    pub qos: u8,
    pub messages: u64,
    pub matches: u64,
    pub offered_rate: f64,
    pub seconds: f64,
    pub msgs_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl BenchResult {
    /// A BENCHMARKS.md table row.
    pub fn markdown_row(&self) -> String {
        format!(
            "| {} | MQTT QoS {} over {} -> JetStream R{} | {} | {} | {:.0} msgs/s | {:.2} ms | {:.2} ms |",
            self.label,
            self.qos,
            self.transport,
            self.replicas,
            self.messages,
            if self.offered_rate > 0.0 {
                format!("{:.0}/s", self.offered_rate)
            } else {
                "max".into()
            },
            self.msgs_per_sec,
            self.p50_ms,
            self.p99_ms
        )
    }
}

fn free_port() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?)
}

pub async fn run(opts: BenchOptions) -> Result<BenchResult> {
    crate::tls::install_crypto_provider();
    let mqtt = match opts.mqtt.clone() {
        Some(m) => m,
        None => {
            let addr = free_port()?;
            crate::sim::embedded::start(addr)?;
            BenchMqtt {
                bridge_url: format!("mqtt://{addr}"),
                ca_file: None,
                provider_addr: addr,
            }
        }
    };
    let transport = crate::endpoint::Endpoint::parse(&mqtt.bridge_url)?
        .scheme
        .as_str()
        .to_owned();
    let ca_line = match &mqtt.ca_file {
        Some(p) => format!("ca_file = {:?}", p.display().to_string()),
        None => String::new(),
    };
    let http = free_port()?;
    let nonce: u64 = rand::random();
    let cfg = crate::config::Config::parse(&format!(
        r#"
        [mqtt]
        url = "{mqtt_url}"
        allow_plaintext = true
        {ca_line}
        client_id = "tribune-bench-bridge-{nonce}"
        [[mqtt.subscriptions]]
        topic = "bench/+/match/v1"
        qos = {qos}
        [nats]
        servers = ["{nats}"]
        [jetstream]
        stream = "BENCH_SPORTS"
        subject_prefix = "benchsports"
        dead_letter_stream = "BENCH_DLQ"
        dead_letter_subject = "deadletter.bench"
        replicas = {replicas}
        [bridge]
        qos0_queue = {q0}
        [http]
        listen = "{http}"
    "#,
        mqtt_url = mqtt.bridge_url,
        replicas = opts.replicas,
        qos = opts.qos,
        nats = opts.nats_url,
        q0 = opts.messages.max(1),
    ))?;

    let client = async_nats::connect(opts.nats_url.clone())
        .await
        .with_context(|| format!("connecting to {}", opts.nats_url))?;
    let js = async_nats::jetstream::new(client.clone());
    // A clean stream each run: no leftovers, no dedup against an earlier run.
    let _ = js.delete_stream("BENCH_SPORTS").await;

    let (stop_tx, stop_rx) = watch::channel(false);
    let bridge = tokio::spawn(crate::bridge::run(cfg, stop_rx));
    // Ready when the stream exists and the bridge is subscribed on MQTT.
    wait_healthy(http).await?;
    let mut sub = js
        .get_stream("BENCH_SPORTS")
        .await
        .context("bench: the bridge's stream")?
        .create_consumer(async_nats::jetstream::consumer::push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            ..Default::default()
        })
        .await
        .context("bench: ordered consumer")?
        .messages()
        .await
        .context("bench: consumer messages")?;

    let n = opts.messages as usize;
    let sent_ns: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let t0 = Instant::now();
    let qos = crate::mqtt::qos(opts.qos);
    let provider = provider::Provider {
        addr: mqtt.provider_addr,
        client_id: format!("tribune-bench-pub-{nonce}"),
        topic: "bench/football/match/v1".into(),
        qos,
        window: crate::sim::embedded::MAX_INFLIGHT,
        rate: opts.rate,
    };
    let publisher = {
        let sent_ns = Arc::clone(&sent_ns);
        let matches = opts.matches;
        let payload = move |i: usize| {
            let m = if matches == 0 {
                i as u64
            } else {
                i as u64 % matches
            };
            let id = format!("b{nonce:x}m{m}");
            format!(
                r#"[{{"id":"{id}","bench_seq":{i},"score":["{id}",2,[1,0,0,1,3,0,0],[0,0,0,0,2,0,0],1760000000,""],"stats":[{{"type":2,"home":3,"away":2}}]}}]"#
            )
            .into_bytes()
        };
        let sent = move |i: usize| sent_ns[i].store(t0.elapsed().as_nanos() as u64, Relaxed);
        tokio::spawn(provider.publish(n, t0, payload, sent))
    };

    // The receiving loop runs as a task on the runtime's workers, next to the
    // NATS connection that wakes it, and under one deadline for the run.
    let receiver = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(n);
        let mut last = t0;
        while latencies.len() < n {
            let msg = match sub.next().await {
                Some(Ok(msg)) => msg,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "bench consumer");
                    continue;
                }
                None => break,
            };
            let now = t0.elapsed().as_nanos() as u64;
            last = Instant::now();
            let Some(idx) = bench_seq(&msg.payload).filter(|i| *i < n) else {
                continue;
            };
            latencies.push(now.saturating_sub(sent_ns[idx].load(Relaxed)));
        }
        (latencies, last)
    });
    let deadline = Duration::from_secs(120 + opts.messages / 1000);
    let (mut latencies, last) = match tokio::time::timeout(deadline, receiver).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => bail!("bench: the receiver failed: {e}"),
        Err(_) => bail!("bench: not all {n} messages arrived within {deadline:?}"),
    };
    if latencies.len() < n {
        bail!(
            "bench: the subscription ended after {} of {n} messages",
            latencies.len()
        );
    }
    let seconds = last.duration_since(t0).as_secs_f64();
    match publisher.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "bench provider"),
        Err(e) => tracing::warn!(error = %e, "bench provider task"),
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), bridge).await;
    let _ = js.delete_stream("BENCH_SPORTS").await;
    let _ = js.delete_stream("BENCH_DLQ").await;

    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] as f64 / 1e6
    };
    Ok(BenchResult {
        label: opts.label,
        transport,
        replicas: opts.replicas,
        qos: opts.qos,
        messages: opts.messages,
        matches: opts.matches,
        offered_rate: opts.rate,
        seconds,
        msgs_per_sec: opts.messages as f64 / seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: latencies.last().copied().unwrap_or(0) as f64 / 1e6,
    })
}

/// The `bench_seq` the publisher put in the update (passed through by the
/// bridge's normalisation), without parsing the whole JSON.
fn bench_seq(payload: &[u8]) -> Option<usize> {
    const KEY: &[u8] = b"\"bench_seq\":";
    let at = payload.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = payload[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&payload[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// Polls `/healthz` until it reports 200.
pub async fn wait_healthy(addr: SocketAddr) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
            let _ = s
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .await;
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf).await;
            if buf.starts_with(b"HTTP/1.1 200") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("bridge at {addr} not healthy within 60s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_seq_is_found_in_the_normalised_update() {
        assert_eq!(
            bench_seq(br#"{"match_id":"m1","extra":{"bench_seq":4711},"x":1}"#),
            Some(4711)
        );
        assert_eq!(bench_seq(br#"{"bench_seq":"x"}"#), None);
        assert_eq!(bench_seq(b"{}"), None);
    }
}
