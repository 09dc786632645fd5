//! End to end: simulated provider -> MQTT broker (embedded rumqttd, or Debian's
//! mosquitto) -> tribune-bridge (the binary) -> JetStream on a real server.
//! N updates in: exactly N unique messages in the stream and at a wildcard
//! subscriber; malformed payloads land in the dead-letter stream, counted.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use support::*;

const N: u64 = 2000;

async fn n_in_n_out(mqtt_url: &str, tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path(), None);
    let bridge = BridgeProc::start(
        dir.path(),
        &bridge_config(mqtt_url, &[nats.url()], &format!("bridge-{tag}"), ""),
    );
    bridge.wait_healthy().await;

    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let mut sub = client.subscribe("sports.>").await.unwrap();
    client.flush().await.unwrap();

    let report = run_sim(mqtt_url, N, 0.0, 0, 11).await;
    assert_eq!(report.updates, N);

    let mut at_subscriber = Vec::new();
    while (at_subscriber.len() as u64) < N {
        let msg = tokio::time::timeout(Duration::from_secs(60), sub.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "subscriber got {} of {N}; bridge log:\n{}",
                    at_subscriber.len(),
                    bridge.log_text()
                )
            })
            .unwrap();
        let update: tribune_bridge::payload::MatchMessage =
            serde_json::from_slice(&msg.payload).unwrap();
        assert_eq!(update.state.schema, tribune_bridge::payload::SCHEMA_ID);
        assert_eq!(
            msg.subject.as_str(),
            format!("sports.{}.{}", update.state.sport, update.state.match_id)
        );
        let id = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .unwrap()
            .to_string();
        at_subscriber.push(id);
    }
    let sub_ids = assert_unique(&at_subscriber);

    wait_for("stream holds N", Duration::from_secs(60), || async {
        stream_messages(&js, "SPORTS").await >= N
    })
    .await;
    let ids = stream_msg_ids(&js, "SPORTS").await;
    assert_eq!(ids.len() as u64, N, "stream message count");
    let stream_ids = assert_unique(&ids);
    assert_eq!(
        stream_ids, sub_ids,
        "the subscriber saw exactly what the stream stored"
    );

    // Every MQTT message acked back to the broker, only after its JetStream ack.
    wait_for(
        "all MQTT messages acked",
        Duration::from_secs(60),
        || async { bridge.metric("tribune_bridge_mqtt_acks_total") == report.messages },
    )
    .await;
    assert_eq!(bridge.metric("tribune_bridge_updates_published_total"), N);
    assert_eq!(bridge.metric("tribune_bridge_duplicates_total"), 0);
    // Nothing more arrives.
    client.flush().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err(),
        "extra message at the subscriber"
    );
    assert_eq!(stream_messages(&js, "SPORTS").await, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_n_in_exactly_n_out() {
    init();
    let url = embedded_broker();
    n_in_n_out(&url, "embedded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_n_in_exactly_n_out() {
    init();
    let Some(bin) = mosquitto_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mosq = Mosquitto::start(&bin, dir.path(), "");
    n_in_n_out(&mosq.url(), "mosquitto").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_are_counted_and_dead_lettered() {
    init();
    let url = embedded_broker();
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path(), None);
    let mut bridge = BridgeProc::start(
        dir.path(),
        &bridge_config(&url, &[nats.url()], "bridge-malformed", ""),
    );
    bridge.wait_healthy().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());

    let report = run_sim(&url, 500, 0.0, 4, 5).await;
    assert!(report.malformed >= 50, "{report:?}");

    wait_for("dead letters stored", Duration::from_secs(60), || async {
        stream_messages(&js, "SPORTS_DLQ").await >= report.malformed
    })
    .await;
    wait_for("updates stored", Duration::from_secs(60), || async {
        stream_messages(&js, "SPORTS").await >= 500
    })
    .await;
    wait_for("all acked", Duration::from_secs(60), || async {
        bridge.metric("tribune_bridge_mqtt_acks_total") == report.messages
    })
    .await;
    assert_eq!(stream_messages(&js, "SPORTS").await, 500);
    assert_eq!(stream_messages(&js, "SPORTS_DLQ").await, report.malformed);
    let malformed = bridge.metric("tribune_bridge_malformed_total{kind=\"payload\"}")
        + bridge.metric("tribune_bridge_malformed_total{kind=\"element\"}");
    assert_eq!(malformed, report.malformed);
    assert_eq!(
        bridge.metric("tribune_bridge_dead_lettered_total"),
        report.malformed
    );
    assert!(bridge.alive(), "bridge must survive malformed input");

    // Dead letters keep the raw payload and say why.
    let dlq_ids = stream_msg_ids(&js, "SPORTS_DLQ").await;
    assert_unique(&dlq_ids);
    let dlq = js.get_stream("SPORTS_DLQ").await.unwrap();
    let first = dlq.get_raw_message(1).await.unwrap();
    let headers = first.headers;
    assert!(headers.get("Tribune-Error").is_some(), "{headers:?}");
    assert!(headers
        .get("Tribune-Mqtt-Topic")
        .map(|v| v.as_str().starts_with("thesports/"))
        .unwrap_or(false));
    let logged: HashSet<&str> = bridge
        .log_text()
        .lines()
        .filter(|l| l.contains("dead-lettered"))
        .map(|_| "x")
        .collect();
    assert!(!logged.is_empty(), "malformed input is logged");
    assert!(bridge.terminate(), "clean exit on SIGTERM");
}

/// QoS 0 has no acks to hold back: when NATS is down the bounded queue fills,
/// further messages are dropped and counted, and the bridge keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_queue_is_bounded_and_drops_are_counted() {
    init();
    let url = embedded_broker();
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::start(dir.path(), None);
    let cfg = bridge_config(
        &url,
        &[nats.url()],
        "bridge-qos0",
        "[bridge]\nmax_inflight = 4\nqos0_queue = 8",
    )
    .replace("qos = 1", "qos = 0");
    let mut bridge = BridgeProc::start(dir.path(), &cfg);
    bridge.wait_healthy().await;
    nats.kill();
    wait_for(
        "bridge noticed NATS is down",
        Duration::from_secs(60),
        || async { bridge.metric("tribune_bridge_nats_connected") == 0 },
    )
    .await;

    let (_tx, rx) = tokio::sync::watch::channel(false);
    let report = tribune_bridge::sim::run(
        tribune_bridge::sim::SimOptions {
            mqtt_url: url.clone(),
            updates: 400,
            rate: 0.0,
            qos: 0,
            client_id: "sim-qos0".into(),
            ..Default::default()
        },
        rx,
    )
    .await
    .unwrap();
    wait_for(
        "QoS 0 messages received",
        Duration::from_secs(60),
        || async {
            bridge.metric("tribune_bridge_mqtt_messages_total{qos=\"0\"}") >= report.messages / 2
        },
    )
    .await;
    // Messages may still be arriving: read the received count first, so the
    // drop count read after it covers every message it counted (but the
    // one being handed over).
    let received = bridge.metric("tribune_bridge_mqtt_messages_total{qos=\"0\"}");
    let dropped = bridge.metric("tribune_bridge_qos0_dropped_total");
    assert!(dropped > 0, "{}", bridge.metrics());
    // At most max_inflight + qos0_queue (+1 being handed over) were kept.
    let kept = received.saturating_sub(dropped);
    assert!(kept <= 4 + 8 + 1, "kept {kept} of {received}");
    assert!(bridge.alive());

    // The kept ones are published once NATS is back (same Nats-Msg-Ids, retried).
    nats.restart();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    wait_for(
        "kept messages published after NATS returns",
        Duration::from_secs(90),
        || async {
            stream_messages(&js, "SPORTS").await > 0
                && bridge.metric("tribune_bridge_inflight") == 0
        },
    )
    .await;
    assert!(bridge.terminate());
}
