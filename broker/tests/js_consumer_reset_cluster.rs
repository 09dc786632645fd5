//! A consumer of an R3 stream reset through a node that does not lead it
//! stays reset when its leader dies: the reset goes through the stream's
//! Raft group (the leader resolves the sequence, every replica applies
//! it), so the new leader delivers from the reset point. Run on three
//! nats-server nodes (validating the scenario) and three tribune-broker
//! nodes (`on_both_flavors!`, see `tests/js_replicated.rs`).
//!
//! Deadlines only guard against hanging; nothing asserts a duration.

mod common;

use serde_json::{json, Value};

use common::cluster::Flavor;
use common::js_cluster::JsCluster;
use common::js_publish::publish_sure;

const STREAM: &str = "RESET";
const CONSUMER: &str = "again";
const MSGS: u64 = 6;

async fn reset_survives_leader_kill(flavor: Flavor) {
    let mut jc = JsCluster::start(flavor).await;
    jc.create_stream(&json!({"name": STREAM, "subjects": ["again.>"], "num_replicas": 3}))
        .await;
    let js = jc.js_patient(0);
    for k in 1..=MSGS {
        publish_sure(&js, format!("again.m{k}"), format!("m{k}").into()).await;
    }
    jc.request_ok(
        0,
        &format!("$JS.API.CONSUMER.CREATE.{STREAM}.{CONSUMER}"),
        &json!({"stream_name": STREAM,
            "config": {"durable_name": CONSUMER, "ack_policy": "explicit"}})
        .to_string(),
    )
    .await
    .unwrap_or_else(|e| panic!("create consumer: {e}"));
    let (leader, _) = jc.wait_consumer_leader(STREAM, CONSUMER, None).await;
    let via = (leader + 1) % 3;
    assert_eq!(
        jc.pull_acked(via, STREAM, CONSUMER, 4).await,
        ["again.m1", "again.m2", "again.m3", "again.m4"]
    );

    // Back to sequence 2 through a node that does not lead the consumer.
    let subject = format!("$JS.API.CONSUMER.RESET.{STREAM}.{CONSUMER}");
    let v = jc
        .poll("the reset to be answered", || {
            let (jc, subject) = (&jc, &subject);
            async move { jc.request_ok(via, subject, r#"{"seq":2}"#).await }
        })
        .await;
    assert_eq!(v["reset_seq"], json!(2), "{v}");
    assert_eq!(v["delivered"]["stream_seq"], json!(1), "{v}");
    assert_eq!(v["num_pending"], json!(MSGS - 1), "{v}");

    // Every replica applied it: the next leader delivers from 2 again.
    let reset_info =
        |v: &Value| v["delivered"]["stream_seq"] == json!(1) && v["num_pending"] == json!(MSGS - 1);
    let (leader, _) = jc.wait_consumer_leader(STREAM, CONSUMER, None).await;
    let old_name = jc.c.node(leader).name.clone();
    jc.kill(leader);
    let (new_leader, info) = jc
        .wait_consumer_leader(STREAM, CONSUMER, Some(&old_name))
        .await;
    eprintln!(
        "consumer leader {old_name} killed, new leader {}",
        jc.c.node(new_leader).name
    );
    assert!(reset_info(&info), "the new leader lost the reset: {info}");
    let via = (0..3).find(|i| *i != leader).unwrap_or(0);
    assert_eq!(
        jc.pull_acked(via, STREAM, CONSUMER, 5).await,
        ["again.m2", "again.m3", "again.m4", "again.m5", "again.m6"]
    );
}

on_both_flavors!(reset_survives_leader_kill => reset_survives_leader_kill);
