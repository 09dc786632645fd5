//! The no-loss guarantee: SIGKILL the bridge mid-stream and restart it. QoS 1
//! messages it had not acked are redelivered by the MQTT broker (persistent
//! session), and Nats-Msg-Id dedup drops the ones JetStream already had:
//! exactly N unique messages in the stream, and every match's last message is
//! exactly the merge of everything sent for it (redeliveries of updates the
//! stored state already had change nothing). Also: the bridge re-subscribes
//! after the MQTT broker restarts and forgets its session.

mod support;

use std::time::Duration;

use support::*;

const N: u64 = 4000;

async fn kill_mid_stream(mqtt_url: String, tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path(), None);
    let mut bridge = BridgeProc::start(
        dir.path(),
        &bridge_config(&mqtt_url, &[nats.url()], &format!("bridge-{tag}"), ""),
    );
    bridge.wait_healthy().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());

    // ~1000 messages/s (about 2000 updates/s) keeps the stream moving while we kill.
    let url = mqtt_url.clone();
    let sim = tokio::spawn(async move { run_sim(&url, N, 1000.0, 0, 21).await });
    wait_for(
        "stream has some updates",
        Duration::from_secs(60),
        || async { stream_messages(&js, "SPORTS").await >= 500 },
    )
    .await;
    bridge.kill9();
    let at_kill = stream_messages(&js, "SPORTS").await;
    assert!(
        at_kill < N,
        "the kill must happen mid-stream ({at_kill} of {N} already stored)"
    );
    // The feed keeps going while the bridge is down; the broker queues for its session.
    tokio::time::sleep(Duration::from_millis(500)).await;
    bridge.spawn();
    bridge.wait_healthy().await;

    let report = sim.await.unwrap();
    assert_eq!(report.updates, N);
    wait_for("stream has all N", Duration::from_secs(120), || async {
        stream_messages(&js, "SPORTS").await >= N
    })
    .await;
    wait_for(
        "all MQTT messages acked after restart",
        Duration::from_secs(60),
        || async { bridge.metric("tribune_bridge_inflight") == 0 },
    )
    .await;
    let ids = stream_msg_ids(&js, "SPORTS").await;
    assert_eq!(
        ids.len() as u64,
        N,
        "exactly N in the stream after kill -9 + restart"
    );
    assert_unique(&ids);
    assert_states_are_whole(&client, 21, N).await;
    eprintln!(
        "{tag}: {at_kill} stored at kill; after restart: {} redeliveries caught as duplicates, {} skipped (already in the match state)",
        bridge.metric("tribune_bridge_duplicates_total"),
        bridge.metric("tribune_bridge_redeliveries_skipped_total")
    );
    assert!(bridge.terminate());
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

/// The PUBACKs the bridge writes in batches reach the broker: after a clean
/// stop and a restart on the same persistent session, the broker redelivers
/// nothing. A later batch is the marker: redeliveries would come before it.
async fn acks_reach_the_broker(mqtt_url: String, tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path(), None);
    let mut bridge = BridgeProc::start(
        dir.path(),
        &bridge_config(&mqtt_url, &[nats.url()], &format!("bridge-acks-{tag}"), ""),
    );
    bridge.wait_healthy().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());

    let first = run_sim(&mqtt_url, 3000, 0.0, 0, 41).await;
    wait_for("all acked", Duration::from_secs(60), || async {
        bridge.metric("tribune_bridge_mqtt_acks_total") == first.messages
    })
    .await;
    assert!(bridge.terminate(), "clean stop");

    bridge.spawn();
    bridge.wait_healthy().await;
    let second = run_sim(&mqtt_url, 50, 0.0, 0, 42).await;
    wait_for("marker batch acked", Duration::from_secs(60), || async {
        bridge.metric("tribune_bridge_mqtt_acks_total") == second.messages
    })
    .await;
    assert_eq!(
        bridge.metric("tribune_bridge_mqtt_messages_total{qos=\"1\"}"),
        second.messages,
        "{tag}: the broker redelivered messages the bridge had acked"
    );
    assert_eq!(bridge.metric("tribune_bridge_duplicates_total"), 0);
    assert_eq!(
        stream_messages(&js, "SPORTS").await,
        first.updates + second.updates
    );
    assert!(bridge.terminate());
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
