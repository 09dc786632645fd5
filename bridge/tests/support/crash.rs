//! The no-loss scenarios shared by every transport (tests/crash.rs,
//! tests/wss.rs): SIGKILL the bridge mid-stream and restart it; the PUBACKs
//! the bridge writes itself reach the broker.

use std::path::Path;
use std::time::Duration;

use super::*;

/// Updates the simulator sends in [`kill9_mid_stream`].
const CRASH_UPDATES: u64 = 4000;

/// Runs the simulator (to `sim_url`, verified with `sim_ca` if TLS) at about
/// 1000 messages/s into a bridge connected with `mqtt_lines` (its `[mqtt]`
/// `url`, `ca_file`, ...), kills the bridge with SIGKILL once 500 updates are
/// stored, restarts it, and checks: exactly N unique messages in the stream,
/// and every match's last message is the merge of everything sent for it.
pub async fn kill9_mid_stream(mqtt_lines: &str, sim_url: &str, sim_ca: Option<&Path>, tag: &str) {
    const N: u64 = CRASH_UPDATES;
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path(), None);
    let mut bridge = BridgeProc::start(
        dir.path(),
        &bridge_config_mqtt(mqtt_lines, &[nats.url()], &format!("bridge-{tag}"), ""),
    );
    bridge.wait_healthy().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());

    // ~1000 messages/s (about 2000 updates/s) keeps the stream moving while we kill.
    let url = sim_url.to_owned();
    let ca = sim_ca.map(Path::to_owned);
    let sim = tokio::spawn(async move { run_sim_ca(&url, ca.as_deref(), N, 1000.0, 0, 21).await });
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

/// The PUBACKs the bridge writes in batches reach the broker: after a clean
/// stop and a restart on the same persistent session, the broker redelivers
/// nothing. A later batch is the marker: redeliveries would come before it.
pub async fn acks_reach_the_mqtt_broker(
    mqtt_lines: &str,
    sim_url: &str,
    sim_ca: Option<&Path>,
    tag: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path(), None);
    let mut bridge = BridgeProc::start(
        dir.path(),
        &bridge_config_mqtt(mqtt_lines, &[nats.url()], &format!("bridge-acks-{tag}"), ""),
    );
    bridge.wait_healthy().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());

    let first = run_sim_ca(sim_url, sim_ca, 3000, 0.0, 0, 41).await;
    wait_for("all acked", Duration::from_secs(60), || async {
        bridge.metric("tribune_bridge_mqtt_acks_total") == first.messages
    })
    .await;
    assert!(bridge.terminate(), "clean stop");

    bridge.spawn();
    bridge.wait_healthy().await;
    let second = run_sim_ca(sim_url, sim_ca, 50, 0.0, 0, 42).await;
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
