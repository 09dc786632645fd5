//! The no-loss guarantee: SIGKILL the bridge mid-stream and restart it. QoS 1
//! messages it had not acked are redelivered by the MQTT broker (persistent
//! session), and Nats-Msg-Id dedup drops the ones JetStream already had:
//! exactly N unique messages in the stream, and every match's last message is
//! exactly the merge of everything sent for it (redeliveries of updates the
//! stored state already had change nothing). Also: the bridge re-subscribes
//! after the MQTT broker restarts and forgets its session.

mod support;

use std::time::Duration;

use support::crash::{acks_reach_the_mqtt_broker, kill9_mid_stream};
use support::*;

async fn kill_mid_stream(mqtt_url: String, tag: &str) {
    let lines = format!("url = \"{mqtt_url}\"\nallow_plaintext = true");
    kill9_mid_stream(&lines, &mqtt_url, None, tag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_stream_mosquitto_loses_nothing() {
    init();
    let Some(bin) = mosquitto_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mosq = Mosquitto::start(&bin, dir.path(), "");
    kill_mid_stream(mosq.url(), "mosquitto").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_stream_embedded_loses_nothing() {
    init();
    kill_mid_stream(embedded_broker(), "embedded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribes_after_mqtt_broker_restart() {
    init();
    let Some(bin) = mosquitto_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut mosq = Mosquitto::start(&bin, dir.path(), "");
    let nats = NatsServer::start(dir.path(), None);
    let bridge = BridgeProc::start(
        dir.path(),
        &bridge_config(&mosq.url(), &[nats.url()], "bridge-resub", ""),
    );
    bridge.wait_healthy().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());

    let first = run_sim(&mosq.url(), 100, 0.0, 0, 31).await;
    wait_for("first batch", Duration::from_secs(60), || async {
        stream_messages(&js, "SPORTS").await >= 100
    })
    .await;

    // A fresh mosquitto has no session for the bridge: without re-subscribing
    // it would receive nothing from here on.
    mosq.restart();
    wait_for("bridge reconnected", Duration::from_secs(60), || async {
        bridge.metric("tribune_bridge_mqtt_reconnects_total") >= 1
    })
    .await;
    bridge.wait_healthy().await; // healthy = connected and SUBACKed
    let second = run_sim(&mosq.url(), 100, 0.0, 0, 32).await;
    wait_for("second batch", Duration::from_secs(60), || async {
        stream_messages(&js, "SPORTS").await >= 200
    })
    .await;
    assert_eq!(first.updates + second.updates, 200);
    assert_eq!(stream_messages(&js, "SPORTS").await, 200);
}

async fn acks_reach_the_broker(mqtt_url: String, tag: &str) {
    let lines = format!("url = \"{mqtt_url}\"\nallow_plaintext = true");
    acks_reach_the_mqtt_broker(&lines, &mqtt_url, None, tag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_reach_mosquitto() {
    init();
    let Some(bin) = mosquitto_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mosq = Mosquitto::start(&bin, dir.path(), "");
    acks_reach_the_broker(mosq.url(), "mosquitto").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_reach_the_embedded_broker() {
    init();
    acks_reach_the_broker(embedded_broker(), "embedded").await;
}
