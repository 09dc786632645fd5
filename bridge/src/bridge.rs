//! Wiring: HTTP, NATS + streams, then MQTT and the pipeline; clean shutdown.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_nats::jetstream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{Config, HaMode};
use crate::lease::{until_true, Leases};
use crate::metrics::Metrics;
use crate::mqtt::Loop;
use crate::pipeline::Pipeline;
use crate::process::Router;
use crate::publish::Publisher;

/// How long shutdown waits for in-flight JetStream acks before giving up (the
/// unacked MQTT messages are then redelivered on the next start).
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Runs the bridge until `shutdown` turns true.
pub async fn run(cfg: Config, shutdown: watch::Receiver<bool>) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let http = match cfg.http.addr()? {
        Some(addr) => {
            let (bound, task) = crate::http::serve(addr, metrics.clone(), shutdown.clone()).await?;
            tracing::info!(%bound, "serving /healthz and /metrics");
            Some(task)
        }
        None => None,
    };

    let client = crate::nats::connect(&cfg.nats, metrics.clone()).await?;
    let js = crate::nats::context(client.clone(), &cfg.jetstream, cfg.bridge.max_inflight);
    let mut sd = shutdown.clone();
    let direct = tokio::select! {
        r = crate::nats::ensure_streams(&js, &cfg.jetstream) => r.context("JetStream streams")?,
        _ = sd.wait_for(|s| *s) => return Ok(()),
    };

    match cfg.ha.mode {
        HaMode::AllActive => ingest(&cfg, &js, direct, &metrics, shutdown.clone()).await?,
        HaMode::SingleActive => {
            single_active(&cfg, &client, &js, direct, &metrics, shutdown.clone()).await?
        }
    }
    if let Err(e) = client.flush().await {
        tracing::warn!(error = %e, "NATS flush at shutdown");
    }
    if let Some(task) = http {
        let _ = task.await;
    }
    tracing::info!("bridge stopped");
    Ok(())
}

/// Takes turns with the other bridges: ingests while holding the lease,
/// stands by otherwise, until `shutdown`.
async fn single_active(
    cfg: &Config,
    client: &async_nats::Client,
    js: &jetstream::Context,
    direct: bool,
    metrics: &Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let instance = cfg.ha.instance.clone().unwrap_or_else(|| {
        let host = hostname().unwrap_or_else(|| "unknown-host".into());
        format!("{}@{host}", cfg.nats.name)
    });
    let Some(leases) = Leases::open(
        client.clone(),
        &cfg.ha,
        &cfg.jetstream,
        crate::lease::holder_name(&instance),
        &mut shutdown,
    )
    .await
    else {
        return Ok(());
    };
    loop {
        metrics.standby.store(true, Relaxed);
        let Some(lease) = leases.acquire(&mut shutdown).await else {
            return Ok(());
        };
        metrics.standby.store(false, Relaxed);
        Metrics::inc(&metrics.leases_taken);
        // `stop` ends this turn's ingest: on shutdown or when the lease is lost.
        let (stop_tx, stop_rx) = watch::channel(false);
        let (release_tx, release_rx) = watch::channel(false);
        let keeper = leases.hold(lease, release_rx);
        tokio::pin!(keeper);
        let turn = ingest(cfg, js, direct, metrics, stop_rx);
        tokio::pin!(turn);
        let mut lost = None;
        let result = loop {
            tokio::select! {
                r = &mut turn => break r,
                ended = &mut keeper, if lost.is_none() => {
                    // The lease is gone: stop at once (the drain may outlast it).
                    Metrics::inc(&metrics.leases_lost);
                    lost = Some(ended);
                    let _ = stop_tx.send(true);
                }
                () = until_true(&mut shutdown), if !*stop_tx.borrow() => {
                    let _ = stop_tx.send(true);
                }
            }
        };
        if lost.is_none() {
            // Drained: hand the lease over now rather than at its expiry.
            let _ = release_tx.send(true);
            keeper.await;
        }
        result?;
        if *shutdown.borrow() {
            return Ok(());
        }
        tracing::info!(reason = ?lost.flatten(), "no longer the active bridge; standing by");
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// Connects to the provider and bridges until `stop`, then drains.
async fn ingest(
    cfg: &Config,
    js: &jetstream::Context,
    direct: bool,
    metrics: &Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    // Only subscribes and the disconnect go through rumqttc's request channel
    // (acks are written by the loop itself).
    let capacity = 64;
    let mqtt = Loop::new(&cfg.mqtt, capacity, metrics.clone())?;
    let (q1_tx, q1_rx) = mpsc::channel(cfg.bridge.max_inflight);
    let (q0_tx, q0_rx) = mpsc::channel(cfg.bridge.qos0_queue);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let router = Router::new(cfg);
    for sport in router.known_sports() {
        metrics.sports.id(Some(sport));
    }
    let pipeline = Pipeline {
        publisher: Publisher::new(js.clone(), cfg, direct, metrics.clone()).await?,
        router,
        metrics: metrics.clone(),
        acks: ack_tx,
        max_inflight: cfg.bridge.max_inflight,
        states: cfg.state.limits(),
    };
    let (done_tx, done_rx) = oneshot::channel();
    let mut sd = shutdown.clone();
    let pipeline_task = tokio::spawn(async move {
        let run = pipeline.run(q1_rx, q0_rx);
        tokio::pin!(run);
        tokio::select! {
            () = &mut run => {}
            _ = async { let _ = sd.wait_for(|s| *s).await; tokio::time::sleep(DRAIN_DEADLINE).await } => {
                tracing::warn!("drain deadline passed; unacked MQTT messages will be redelivered");
            }
        }
        let _ = done_tx.send(());
    });
    mqtt.run(q1_tx, q0_tx, ack_rx, shutdown, done_rx).await;
    let _ = pipeline_task.await;
    Ok(())
}
