//! Subject delete markers on an R3 stream: when age takes a subject's last
//! message, the stream's leader adds one marker through the stream's Raft
//! group, so every replica holds it at the same sequence (read from each
//! node's own copy with direct get); the marker then expires everywhere,
//! also after the leader that wrote it died, and no second marker follows.
//! Run on three nats-server nodes (validating the scenario) and three
//! tribune-broker nodes (`on_both_flavors!`, see `tests/js_replicated.rs`).
//!
//! Deadlines only guard against hanging; nothing asserts a duration.

mod common;

use serde_json::json;

use common::cluster::Flavor;
use common::js_cluster::JsCluster;
use common::js_publish::publish_sure;

const STREAM: &str = "SDM";

async fn markers_are_replicated(flavor: Flavor) {
    let mut jc = JsCluster::start(flavor).await;
    jc.create_stream(
        &json!({"name": STREAM, "subjects": ["sdm.>"], "num_replicas": 3,
        "allow_direct": true, "max_age": 3_000_000_000i64,
        "subject_delete_marker_ttl": 3_000_000_000i64}),
    )
    .await;
    let js = jc.js_patient(0);
    publish_sure(&js, "sdm.a".to_string(), "kept three seconds".into()).await;

    // Every replica: the message gone, the marker (empty) at sequence 2.
    jc.poll(
        "every replica to hold the marker in place of the message",
        || {
            let jc = &jc;
            async move {
                for i in jc.c.live() {
                    if jc.direct_get(i, STREAM, 1).await?.is_some() {
                        return Err(format!("node {i} still has the message"));
                    }
                    match jc.direct_get(i, STREAM, 2).await? {
                        Some(p) if p.is_empty() => {}
                        other => return Err(format!("node {i}: sequence 2 is {other:?}")),
                    }
                }
                Ok(())
            }
        },
    )
    .await;
    let v = jc
        .request_ok(
            0,
            &format!("$JS.API.STREAM.MSG.GET.{STREAM}"),
            &json!({"last_by_subj": "sdm.a"}).to_string(),
        )
        .await
        .unwrap_or_else(|e| panic!("last by subject: {e}"));
    assert_eq!(v["message"]["seq"], json!(2), "{v}");
    assert!(v["message"]["hdrs"].as_str().is_some(), "{v}");

    // The marker's writer dies; it still expires on the survivors, and
    // nothing is added after it.
    let (leader, _) = jc.wait_stream_leader(STREAM, None).await;
    let old = jc.c.node(leader).name.clone();
    jc.kill(leader);
    let (_, _) = jc.wait_stream_leader(STREAM, Some(&old)).await;
    let via = (0..3).find(|i| *i != leader).unwrap_or(0);
    jc.poll("the marker to expire on the survivors", || {
        let jc = &jc;
        async move {
            for i in jc.c.live() {
                if jc.direct_get(i, STREAM, 2).await?.is_some() {
                    return Err(format!("node {i} still has the marker"));
                }
            }
            let v = jc
                .request_ok(via, &format!("$JS.API.STREAM.INFO.{STREAM}"), "")
                .await?;
            let state = &v["state"];
            if state["messages"] == json!(0) && state["last_seq"] == json!(2) {
                Ok(())
            } else {
                Err(format!("state {state}"))
            }
        }
    })
    .await;
}

on_both_flavors!(markers_are_replicated => markers_are_replicated);
