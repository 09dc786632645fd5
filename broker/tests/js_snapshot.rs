//! Replicated streams whose Raft logs were purged behind snapshots: a
//! replica that was down while the others snapshotted and purged, and one
//! whose disk was wiped, catch up from the snapshot (fetching the messages
//! from a peer) and then hold the same stream and consumer as the others.
//!
//! tribune-broker nodes run with `TRIBUNE_STREAM_SNAPSHOT_EVERY=16`, so a
//! few hundred acknowledged publishes purge the log many times over; the
//! same scenario runs on nats-server nodes (with their own snapshot
//! policy) as the reference. Limits, a message delete and consumer acks
//! happen while the replica is away, so what it fetches is not simply
//! "everything since it left".

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

use common::cluster::{Flavor, JsOptions};
use common::js_cluster::JsCluster;
use common::js_publish::publish_sure;
use common::js_readback::assert_copies_identical;

const STREAM: &str = "SNAP";
const DURABLE: &str = "reader";
/// The stream keeps this many messages: older ones are dropped while a
/// replica is away, so the snapshot's first sequence moves.
const MAX_MSGS: u64 = 150;

fn options() -> JsOptions {
    JsOptions {
        tribune_env: vec![("TRIBUNE_STREAM_SNAPSHOT_EVERY".into(), "16".into())],
        ..JsOptions::default()
    }
}

async fn publish_n(jc: &JsCluster, via: usize, from: u64, n: u64) -> u64 {
    let js = jc.js_patient(via);
    let mut last = 0;
    for i in from..from + n {
        let ack = publish_sure(
            &js,
            format!("snap.{}", i % 7),
            Bytes::from(format!("m-{i}")),
        )
        .await;
        last = ack.sequence;
    }
    last
}

/// Pull up to `n` messages from the durable and ack each (retrying while
/// the consumer has no leader); their stream sequences.
async fn consume(jc: &JsCluster, via: usize, n: usize) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seqs = Vec::new();
    while seqs.len() < n {
        match pull(jc, via, n - seqs.len()).await {
            Ok(batch) if batch.is_empty() => break,
            Ok(mut batch) => seqs.append(&mut batch),
            Err(e) if Instant::now() < deadline => {
                eprintln!("pulling from {DURABLE} again: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("pulling from {DURABLE}: {e}\n{}", jc.c.diagnostics().await),
        }
    }
    seqs
}

async fn pull(jc: &JsCluster, via: usize, n: usize) -> Result<Vec<u64>, String> {
    let js = jc.js(via);
    let consumer: async_nats::jetstream::consumer::PullConsumer = js
        .get_consumer_from_stream(DURABLE, STREAM)
        .await
        .map_err(|e| format!("consumer info: {e}"))?;
    let mut msgs = consumer
        .fetch()
        .max_messages(n)
        .expires(Duration::from_secs(3))
        .messages()
        .await
        .map_err(|e| format!("fetch: {e}"))?;
    let mut seqs = Vec::new();
    while let Some(m) = msgs.next().await {
        let m = m.map_err(|e| format!("message: {e}"))?;
        seqs.push(m.info().map_err(|e| format!("info: {e}"))?.stream_sequence);
        m.double_ack().await.map_err(|e| format!("ack: {e}"))?;
    }
    Ok(seqs)
}

async fn verify(jc: &JsCluster, ctx: &str) {
    let copies = jc.every_replica_copy(STREAM).await;
    assert_copies_identical(&copies, ctx);
    let copy = &copies[0];
    assert_eq!(copy.state["messages"], MAX_MSGS, "{ctx}: {:?}", copy.state);
}

async fn file_stream(flavor: Flavor) {
    lagging_and_wiped_replicas_catch_up(flavor, "file").await
}

/// A memory stream's snapshot carries its messages: the replica that
/// returns installs them without fetching.
async fn memory_stream(flavor: Flavor) {
    lagging_and_wiped_replicas_catch_up(flavor, "memory").await
}

async fn lagging_and_wiped_replicas_catch_up(flavor: Flavor, storage: &str) {
    let mut jc = JsCluster::start_with(flavor, &options()).await;
    let cfg = serde_json::json!({
        "name": STREAM,
        "subjects": ["snap.>"],
        "storage": storage,
        "num_replicas": 3,
        "max_msgs": MAX_MSGS,
        "allow_direct": true,
    });
    jc.poll("creating the stream", || async {
        jc.request_ok(
            0,
            &format!("$JS.API.STREAM.CREATE.{STREAM}"),
            &cfg.to_string(),
        )
        .await
    })
    .await;
    let consumer = serde_json::json!({
        "stream_name": STREAM,
        "config": {"durable_name": DURABLE, "ack_policy": "explicit", "num_replicas": 3},
    });
    jc.poll("creating the consumer", || async {
        jc.request_ok(
            0,
            &format!("$JS.API.CONSUMER.DURABLE.CREATE.{STREAM}.{DURABLE}"),
            &consumer.to_string(),
        )
        .await
    })
    .await;
    let mut next = 0;
    publish_n(&jc, 0, next, 40).await;
    next += 40;
    assert_eq!(consume(&jc, 0, 10).await.len(), 10);

    // A follower goes away; the others snapshot and purge many times,
    // drop old messages (max_msgs), delete one, and the consumer moves on.
    let (leader, _) = jc.wait_stream_leader(STREAM, None).await;
    let lagging = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    jc.kill(lagging);
    let last = publish_n(&jc, leader, next, 300).await;
    next += 300;
    let deleted = last - 20;
    jc.request_ok(
        leader,
        &format!("$JS.API.STREAM.MSG.DELETE.{STREAM}"),
        &serde_json::json!({ "seq": deleted }).to_string(),
    )
    .await
    .expect("delete a message");
    let acked = consume(&jc, leader, 30).await;
    assert_eq!(acked.len(), 30);
    jc.restart(lagging).await;
    publish_n(&jc, other, next, 10).await;
    next += 10;
    // It leads once during the read-back: its copy is compared whole.
    verify(
        &jc,
        &format!("{} after the lagging replica returned", flavor.label()),
    )
    .await;

    // A replica's disk is wiped: it comes back empty.
    let (leader, _) = jc.wait_stream_leader(STREAM, None).await;
    let wiped = (leader + 1) % 3;
    jc.kill(wiped);
    jc.c.wipe_store(wiped);
    publish_n(&jc, leader, next, 60).await;
    next += 60;
    jc.restart(wiped).await;
    publish_n(&jc, leader, next, 1).await;
    verify(
        &jc,
        &format!("{} after the wiped replica returned", flavor.label()),
    )
    .await;

    // The consumer goes on from where it was acknowledged, on a leader that
    // caught up from a snapshot.
    jc.make_stream_leader(STREAM, wiped).await;
    // The consumer's leader answers (on nats-server a consumer has its own
    // group, which may still be electing after the stream's stepdowns).
    let (_, info) = jc.wait_consumer_leader(STREAM, DURABLE, None).await;
    let floor = info["ack_floor"]["stream_seq"].as_u64().unwrap_or(0);
    assert!(
        floor >= *acked.last().unwrap_or(&0),
        "the ack floor {floor} lost acks up to {:?}: {info}",
        acked.last()
    );
    let rest = consume(&jc, wiped, 200).await;
    assert!(
        rest.iter().all(|s| *s > floor),
        "delivered at or below the ack floor {floor}: {rest:?}"
    );
    assert!(!rest.is_empty(), "the consumer delivers nothing more");

    if flavor == Flavor::Tribune {
        for i in [lagging, wiped] {
            let log = std::fs::read_to_string(jc.c.node(i).log_path()).unwrap_or_default();
            assert!(
                log.contains("installing a snapshot"),
                "{} did not catch up from a snapshot:\n{}",
                jc.c.node(i).name,
                jc.c.node(i).log_excerpt()
            );
        }
    }
}

on_both_flavors!(file_stream_replicas_catch_up => file_stream);
on_both_flavors!(memory_stream_replicas_catch_up => memory_stream);
