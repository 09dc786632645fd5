//! A backup of an R3 stream, taken through a node that does not lead it
//! (the leader answers and sends the chunks), restores onto a single
//! server of the same kind with every message and the consumer's state,
//! and into the cluster itself (after the stream is deleted there): R3
//! again, the same on every replica, taking publishes where it left off
//! and surviving the loss of its leader. Run on nats-server nodes
//! (validating the scenario) and tribune-broker nodes (`on_both_flavors!`).
//!
//! Deadlines only guard against hanging; nothing asserts a duration.

mod common;

use serde_json::json;

use common::backup::{outcome, restore, snapshot};
use common::cluster::Flavor;
use common::js::{api, start_js};
use common::js_cluster::JsCluster;
use common::js_publish::publish_sure;
use common::js_readback::assert_copies_identical;

async fn backup_restores_elsewhere(flavor: Flavor) {
    let mut jc = JsCluster::start(flavor).await;
    jc.create_stream(&json!({"name": "R3", "subjects": ["r3.>"], "num_replicas": 3}))
        .await;
    let (leader, _) = jc.wait_stream_leader("R3", None).await;
    let via = (0..3).find(|i| *i != leader).unwrap_or(0);
    let js = jc.js_patient(via);
    for i in 1..=40u32 {
        publish_sure(&js, format!("r3.{}", i % 3), format!("m{i}").into()).await;
    }
    jc.request_ok(
        via,
        "$JS.API.CONSUMER.CREATE.R3.keep",
        &json!({"stream_name": "R3", "config": {"durable_name": "keep",
            "ack_policy": "explicit", "deliver_policy": "by_start_sequence",
            "opt_start_seq": 11}})
        .to_string(),
    )
    .await
    .unwrap_or_else(|e| panic!("consumer: {e}"));
    let label = flavor.label();
    let (answer, chunks, lines) = snapshot(label, jc.client(via), "R3", json!({})).await;
    // (nats-server's end marker, routed from the leader, reaches the
    // client without its 204 status line; what counts is the restore.)
    assert!(
        lines.iter().any(|l| l.starts_with("end status")),
        "{lines:?}"
    );
    assert_eq!(answer["state"]["messages"], json!(40), "{answer}");

    let single = start_js(&flavor.bin());
    let nc = common::js::connect(&single).await;
    let mut config = answer["config"].clone();
    config["num_replicas"] = json!(1);
    let t = restore(label, &nc, "R3", &config, &answer["state"], &chunks).await;
    assert!(
        t.last()
            .is_some_and(|l| l.starts_with("restore end: ok") && l.contains("messages=40")),
        "{t:?}"
    );
    let v = api(
        &nc,
        "$JS.API.STREAM.MSG.GET.R3",
        &json!({"seq": 40}).to_string(),
    )
    .await;
    assert_eq!(v["message"]["subject"], json!("r3.1"), "{v}");
    let v = api(&nc, "$JS.API.CONSUMER.INFO.R3.keep", "").await;
    assert_eq!(outcome(&v), "ok", "{v}");
    assert_eq!(v["num_pending"], json!(30), "{v}");

    // The same backup, restored into the cluster it came from.
    jc.request_ok(via, "$JS.API.STREAM.DELETE.R3", "")
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    let t = restore(
        label,
        jc.client(via),
        "R3",
        &answer["config"],
        &answer["state"],
        &chunks,
    )
    .await;
    assert!(
        t.last()
            .is_some_and(|l| l.starts_with("restore end: ok") && l.contains("messages=40")),
        "{t:?}"
    );
    let (leader, info) = jc.wait_stream_leader("R3", None).await;
    assert_eq!(info["config"]["num_replicas"], json!(3), "{info}");
    let copies = jc.every_replica_copy("R3").await;
    assert_copies_identical(&copies, "restored R3");
    assert_eq!(copies.len(), 3);
    assert_eq!(copies[0].msgs.len(), 40);
    let v = jc
        .request_ok(via, "$JS.API.CONSUMER.INFO.R3.keep", "")
        .await
        .unwrap_or_else(|e| panic!("consumer info: {e}"));
    assert_eq!(v["num_pending"], json!(30), "{v}");
    let js = jc.js_patient(via);
    let ack = publish_sure(&js, "r3.new".to_string(), "after restore".into()).await;
    assert_eq!(ack.sequence, 41);
    let old = jc.c.node(leader).name.clone();
    jc.kill(leader);
    let (_, info) = jc.wait_stream_leader("R3", Some(&old)).await;
    assert_eq!(info["state"]["messages"], json!(41), "{info}");
}

on_both_flavors!(backup_restores_elsewhere => backup_restores_elsewhere);
