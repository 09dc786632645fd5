//! `/metrics` of a three-node JetStream cluster, as the shipped alerts read
//! it (`terraform/monitoring/prometheus/tribune-alerts.yml`): one meta
//! leader and one leader per replicated stream across the nodes, the
//! leader's view of every other replica (lag, current), consumers counted
//! once, and the conditions the alerts fire on: a stream and the meta group
//! left without a leader once two of the three nodes are gone, on the
//! node that led the meta group.
//!
//! tribune-broker only: nats-server has no `/metrics`.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use common::cluster::{flavor_selected, http_get, Flavor};
use common::js_cluster::JsCluster;
use common::prometheus::{family, parse};

const STREAM: &str = "SCORES";

/// Node `i`'s samples, or why they could not be read.
async fn scrape(jc: &JsCluster, i: usize) -> Result<BTreeMap<String, f64>, String> {
    let (status, body) = http_get(jc.c.node(i).http_addr(), "/metrics").await?;
    if status != 200 {
        return Err(format!("/metrics answered {status}: {body}"));
    }
    Ok(parse(&body))
}

/// The value of a per-stream family for [`STREAM`] on one node.
fn of_stream(m: &BTreeMap<String, f64>, name: &str) -> Option<f64> {
    m.get(&format!("{name}{{account=\"APP\",stream=\"{STREAM}\"}}"))
        .copied()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_streams_show_leaders_lag_and_leaderless_groups() {
    if !flavor_selected("tribune") {
        return;
    }
    let mut jc = JsCluster::start(Flavor::Tribune).await;
    jc.create_stream(&json!({
        "name": STREAM,
        "subjects": ["scores.>"],
        "num_replicas": 3,
    }))
    .await;
    let (leader, _) = jc.wait_stream_leader(STREAM, None).await;
    let js = jc.js_patient(leader);
    for i in 0..10 {
        js.publish(format!("scores.{i}"), "goal".into())
            .await
            .unwrap_or_else(|e| panic!("publish {i}: {e}"))
            .await
            .unwrap_or_else(|e| panic!("ack {i}: {e}"));
    }
    jc.request_ok(
        leader,
        &format!("$JS.API.CONSUMER.DURABLE.CREATE.{STREAM}.board"),
        &json!({"stream_name": STREAM, "config": {"durable_name": "board", "ack_policy": "explicit"}})
            .to_string(),
    )
    .await
    .unwrap_or_else(|e| panic!("create consumer: {e}"));
    let names: Vec<String> = (0..3).map(|i| jc.c.node(i).name.clone()).collect();

    // Every replica caught up, as the leader sees it; the counts agree.
    let (leader, views) = jc
        .poll("every replica current at the end of the stream", || async {
            let mut views = Vec::new();
            for i in 0..3 {
                views.push(scrape(&jc, i).await?);
            }
            let leaders: Vec<usize> = (0..3)
                .filter(|&i| of_stream(&views[i], "tribune_jetstream_stream_leader") == Some(1.0))
                .collect();
            let [leader] = leaders[..] else {
                return Err(format!("stream leaders: {leaders:?}"));
            };
            let lag = family(&views[leader], "tribune_jetstream_stream_replica_lag");
            let current = family(&views[leader], "tribune_jetstream_stream_replica_current");
            if lag.len() != 2 || lag.values().any(|v| *v != 0.0) {
                return Err(format!("replica lag on the leader: {lag:?}"));
            }
            if current.len() != 2 || current.values().any(|v| *v != 1.0) {
                return Err(format!("replica currency on the leader: {current:?}"));
            }
            for v in &views {
                if of_stream(v, "tribune_jetstream_stream_messages") != Some(10.0) {
                    return Err("a replica does not hold 10 messages yet".into());
                }
            }
            Ok((leader, views))
        })
        .await;

    // The leader lists the two other replicas by name; followers none.
    let lag = family(&views[leader], "tribune_jetstream_stream_replica_lag");
    let replicas: BTreeSet<String> = lag
        .keys()
        .map(|labels| {
            let r = labels.split("replica=\"").nth(1).unwrap_or_default();
            r.trim_end_matches("\"}").to_string()
        })
        .collect();
    let others: BTreeSet<String> = (0..3)
        .filter(|&i| i != leader)
        .map(|i| names[i].clone())
        .collect();
    assert_eq!(replicas, others);
    let meta_leaders: f64 = views
        .iter()
        .map(|v| v["tribune_jetstream_meta_leader"])
        .sum();
    assert_eq!(meta_leaders, 1.0);
    for (i, v) in views.iter().enumerate() {
        let me = &names[i];
        assert_eq!(v["tribune_routes"], 2.0, "{me}: a full mesh of three");
        assert_eq!(v["tribune_jetstream_enabled"], 1.0, "{me}");
        assert_eq!(v["tribune_jetstream_meta_cluster_size"], 3.0, "{me}");
        assert_eq!(v["tribune_jetstream_meta_leaderless"], 0.0, "{me}");
        assert_eq!(
            of_stream(v, "tribune_jetstream_stream_leaderless"),
            Some(0.0),
            "{me}"
        );
        assert_eq!(
            of_stream(v, "tribune_jetstream_stream_replicas"),
            Some(3.0),
            "{me}"
        );
        assert!(v["tribune_jetstream_storage_bytes"] > 0.0, "{me}");
        let free = v["tribune_jetstream_store_filesystem_free_bytes"];
        let size = v["tribune_jetstream_store_filesystem_size_bytes"];
        assert!(free > 0.0 && free <= size, "{me}: {free} of {size}");
        // Consumers and replica views only where the stream is led.
        let pending = family(v, "tribune_jetstream_consumer_num_pending");
        let rows = family(v, "tribune_jetstream_stream_replica_current");
        if i == leader {
            let key = format!("{{account=\"APP\",stream=\"{STREAM}\",consumer=\"board\"}}");
            assert_eq!(pending.get(key.as_str()), Some(&10.0), "{me}: {pending:?}");
        } else {
            assert!(pending.is_empty(), "{me}: {pending:?}");
            assert!(rows.is_empty(), "{me}: {rows:?}");
        }
    }

    // Two of three nodes gone: the last one knows no leader for the stream
    // nor for the meta group, what the leaderless alerts fire on. It is the
    // meta leader, the harder case: openraft keeps a leader cut off from
    // its quorum in its role, and the metric must not.
    let survivor = jc.wait_meta_leader().await;
    for i in 0..3 {
        if i != survivor {
            jc.kill(i);
        }
    }
    jc.poll("the survivor to report no leaders", || async {
        let v = scrape(&jc, survivor).await?;
        let stream = of_stream(&v, "tribune_jetstream_stream_leaderless");
        let meta = v.get("tribune_jetstream_meta_leaderless").copied();
        if stream == Some(1.0) && meta == Some(1.0) {
            Ok(())
        } else {
            Err(format!(
                "stream leaderless {stream:?}, meta leaderless {meta:?}"
            ))
        }
    })
    .await;
}
