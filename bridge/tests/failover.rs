//! Kill the NATS node the bridge is connected to, mid-stream, in a 3-node
//! cluster with JetStream on every node and the stream replicated three
//! times: the bridge reconnects to a survivor, retries unacked publishes
//! (same Nats-Msg-Id), and the stream ends with exactly N, every match's last
//! message the merge of everything sent for it. The killed node
//! is made the stream's leader first, so the test loses the leader and the
//! bridge's connection at once, on nats-server and on tribune-broker alike.

mod support;

use std::time::Duration;

use support::*;

const N: u64 = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_fails_over_when_its_node_dies() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = NatsServer::cluster(dir.path(), 3);
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    let replicas = 3;
    let mqtt = embedded_broker();
    let bridge = BridgeProc::start(
        dir.path(),
        &bridge_config(
            &mqtt,
            &urls,
            "bridge-failover",
            &format!("[jetstream]\nreplicas = {replicas}\nack_timeout_ms = 2000"),
        ),
    );
    bridge.wait_healthy().await;

    let victim = nodes
        .iter()
        .position(|n| n.connection_names().iter().any(|c| c == "tribune-bridge"))
        .expect("the bridge is connected to one of the nodes");
    let survivor = (victim + 1) % 3;
    let client = async_nats::ConnectOptions::new()
        .connect(nodes[survivor].url())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client.clone());

    lead_from(&client, &js, &nodes[victim].name).await;

    let url = mqtt.clone();
    let sim = tokio::spawn(async move { run_sim(&url, N, 500.0, 0, 41).await });
    wait_for(
        "stream has some updates",
        Duration::from_secs(60),
        || async { stream_messages(&js, "SPORTS").await >= 300 },
    )
    .await;
    nodes[victim].kill();

    let report = sim.await.unwrap();
    assert_eq!(report.updates, N);
    wait_for(
        "stream has all N after failover",
        Duration::from_secs(180),
        || async { stream_messages(&js, "SPORTS").await >= N },
    )
    .await;
    let ids = stream_msg_ids(&js, "SPORTS").await;
    assert_eq!(ids.len() as u64, N);
    assert_unique(&ids);
    assert_states_are_whole(&client, 41, N).await;
    assert!(
        bridge.metric("tribune_bridge_nats_reconnects_total") >= 1,
        "{}",
        bridge.metrics()
    );
    let now_on = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .any(|(_, n)| n.connection_names().iter().any(|c| c == "tribune-bridge"));
    assert!(now_on, "the bridge reconnected to a surviving node");
}
