//! Wiring: HTTP, NATS + streams, then MQTT and the pipeline; clean shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
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

    // Only subscribes and the disconnect go through rumqttc's request channel
    // (acks are written by the loop itself).
    let capacity = 64;
    let mqtt = Loop::new(&cfg.mqtt, capacity, metrics.clone())?;
    let (q1_tx, q1_rx) = mpsc::channel(cfg.bridge.max_inflight);
    let (q0_tx, q0_rx) = mpsc::channel(cfg.bridge.qos0_queue);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let router = Router::new(&cfg);
    for sport in router.known_sports() {
        metrics.sports.id(Some(sport));
    }
    let pipeline = Pipeline {
        publisher: Publisher::new(js, &cfg, direct, metrics.clone()).await?,
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
    if let Err(e) = client.flush().await {
        tracing::warn!(error = %e, "NATS flush at shutdown");
    }
    if let Some(task) = http {
        let _ = task.await;
    }
    tracing::info!("bridge stopped");
    Ok(())
}
