//! `republish` on a replicated (R3) stream: only the stream leader
//! republishes, so each stored message is republished before and after
//! the leader is killed, and a replica that comes back and replays its
//! log republishes nothing. Runs on three nats-server nodes (the
//! reference) and three tribune-broker nodes (`on_both_flavors!`).
//!
//! Tribune republishes each stored message exactly once. nats-server
//! republishes when it applies an entry while leader, so an entry the
//! old leader applied and the new leader applies after its election goes
//! out twice: there, only messages stored before the kill may repeat.
//! Deadlines only guard against hanging.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use common::cluster::Flavor;
use common::js_cluster::{JsCluster, JS_DEADLINE};
use common::js_publish::publish_sure;

const STREAM: &str = "RPL";

on_both_flavors!(
    /// Republish once per stored message across a leader kill and restart.
    republish_once_across_leader_kill => republish_once_across_leader_kill
);

/// Collect republished messages by `Nats-Sequence` until `want` distinct
/// sequences arrived; counts every arrival so duplicates show.
async fn collect(
    sub: &mut async_nats::Subscriber,
    seen: &mut BTreeMap<u64, usize>,
    want: usize,
    what: &str,
) {
    while seen.len() < want {
        let m = match tokio::time::timeout(JS_DEADLINE, sub.next()).await {
            Ok(Some(m)) => m,
            _ => panic!("{what}: {} of {want} republished: {seen:?}", seen.len()),
        };
        let seq = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Sequence"))
            .and_then(|v| v.as_str().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{what}: republished without Nats-Sequence: {m:?}"));
        assert_eq!(
            m.subject.as_str(),
            format!("rpl.out.{}", String::from_utf8_lossy(&m.payload)),
            "{what}"
        );
        *seen.entry(seq).or_default() += 1;
    }
}

async fn publish_batch(jc: &JsCluster, via: usize, from: usize, n: usize) {
    let js = jc.js_patient(via);
    for k in from..from + n {
        publish_sure(&js, format!("rpl.in.{k}"), Bytes::from(k.to_string())).await;
    }
}

async fn republish_once_across_leader_kill(flavor: Flavor) {
    let mut jc = JsCluster::start(flavor).await;
    let body = serde_json::json!({
        "name": STREAM,
        "subjects": ["rpl.in.>"],
        "num_replicas": 3,
        "republish": {"src": "rpl.in.>", "dest": "rpl.out.>"},
    });
    let v = jc
        .request_ok(
            0,
            &format!("$JS.API.STREAM.CREATE.{STREAM}"),
            &body.to_string(),
        )
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    assert_eq!(v["config"]["republish"]["dest"], "rpl.out.>", "{v}");
    let (leader, _) = jc.wait_stream_leader(STREAM, None).await;
    let watcher = (leader + 1) % 3;
    let via = (leader + 2) % 3;
    let mut sub = jc.client(watcher).subscribe("rpl.out.>").await.unwrap();
    jc.client(watcher).flush().await.unwrap();
    // The subscription's interest must reach every node before publishing.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut seen = BTreeMap::new();
    publish_batch(&jc, via, 0, 20).await;
    collect(&mut sub, &mut seen, 20, "before the kill").await;

    let before_kill = seen.len() as u64;
    let name = jc.c.node(leader).name.clone();
    jc.kill(leader);
    jc.wait_stream_leader(STREAM, Some(&name)).await;
    publish_batch(&jc, via, 20, 20).await;
    collect(&mut sub, &mut seen, 40, "after the kill").await;

    jc.restart(leader).await;
    let (_, info) = jc.wait_stream_leader(STREAM, None).await;
    publish_batch(&jc, via, 40, 10).await;
    collect(&mut sub, &mut seen, 50, "after the restart").await;

    // Extra copies would arrive within this grace period (a ceiling on
    // duplicates, not a timing assertion).
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
        if let Some(seq) = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Sequence"))
            .and_then(|v| v.as_str().parse::<u64>().ok())
        {
            *seen.entry(seq).or_default() += 1;
        }
    }
    // The meta leader refuses consumer limits below an existing consumer's
    // (a default max_ack_pending of 1000 here).
    let c = jc
        .request_ok(
            via,
            &format!("$JS.API.CONSUMER.CREATE.{STREAM}.d"),
            &serde_json::json!({"stream_name": STREAM, "config": {"durable_name": "d", "ack_policy": "explicit"}})
                .to_string(),
        )
        .await
        .unwrap_or_else(|e| panic!("consumer create: {e}"));
    assert_eq!(c["config"]["max_ack_pending"], 1000, "{c}");
    let mut cfg = info["config"].clone();
    cfg["consumer_limits"] = serde_json::json!({"max_ack_pending": 10});
    let v = jc
        .request(
            via,
            &format!("$JS.API.STREAM.UPDATE.{STREAM}"),
            &cfg.to_string(),
        )
        .await
        .unwrap_or_else(|e| panic!("stream update: {e}"));
    assert_eq!(v["error"]["err_code"], 10069, "{v}");
    assert_eq!(
        v["error"]["description"], "change to limits violates consumers: d",
        "{v}"
    );

    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    match flavor {
        Flavor::Tribune => assert!(dups.is_empty(), "republished more than once: {dups:?}"),
        // At-least-once across the election; nothing after it repeats.
        Flavor::NatsServer => assert!(
            dups.iter().all(|(seq, _)| **seq <= before_kill),
            "republished more than once after the leader change: {dups:?}"
        ),
    }
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=50).collect::<Vec<u64>>(),
        "every stored message republished: {info}"
    );
}
