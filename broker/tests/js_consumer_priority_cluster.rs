//! A pinned_client priority group on an R3 stream, through nodes that do
//! not lead the consumer: requests and `CONSUMER.UNPIN` reach the leader,
//! which holds the pin. Pins are not replicated: after the leader dies the
//! old id is stale on the new leader, which hands out a new pin, while the
//! policy itself (part of the replicated config) survives. Run on three
//! nats-server nodes (validating the scenario) and three tribune-broker
//! nodes (`on_both_flavors!`, see `tests/js_replicated.rs`).
//!
//! Deadlines only guard against hanging; nothing asserts a duration.

mod common;

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use common::cluster::Flavor;
use common::js_cluster::JsCluster;
use common::js_publish::publish_sure;

const STREAM: &str = "PRIO";
const CONSUMER: &str = "pinned";

/// The first answer to a pull request sent through node `via`: its status
/// code (0 for a message) and the message's `Nats-Pin-Id`. `None` when
/// nothing came in time.
async fn pull(jc: &JsCluster, via: usize, body: &str) -> Option<(u16, Option<String>)> {
    let nc = jc.client(via);
    let inbox = nc.new_inbox();
    let mut sub = nc.subscribe(inbox.clone()).await.ok()?;
    nc.publish_with_reply(
        format!("$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{CONSUMER}"),
        inbox,
        body.to_string().into(),
    )
    .await
    .ok()?;
    let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .ok()??;
    let pin = m
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Pin-Id"))
        .map(|v| v.to_string());
    Some((m.status.map_or(0, |s| s.as_u16()), pin))
}

const FRESH: &str = r#"{"batch":1,"expires":2000000000,"group":"A"}"#;

fn holding(pin: &str) -> String {
    format!(r#"{{"batch":1,"expires":2000000000,"group":"A","id":"{pin}"}}"#)
}

/// Pull until a message arrives; its pin.
async fn new_pin(jc: &JsCluster, via: usize) -> String {
    jc.poll("a delivery with a pin", || async {
        match pull(jc, via, FRESH).await {
            Some((0, Some(pin))) => Ok(pin),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// Pull with `body` until the answer is `code`.
async fn expect_status(jc: &JsCluster, via: usize, body: &str, code: u16) {
    jc.poll(&format!("status {code} for {body}"), || async {
        match pull(jc, via, body).await {
            Some((c, _)) if c == code => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

async fn pinned_group_across_leader_change(flavor: Flavor) {
    let mut jc = JsCluster::start(flavor).await;
    jc.create_stream(&json!({"name": STREAM, "subjects": ["prio.>"], "num_replicas": 3}))
        .await;
    let js = jc.js_patient(0);
    for k in 0..8 {
        publish_sure(&js, format!("prio.m{k}"), format!("m{k}").into()).await;
    }
    jc.request_ok(
        0,
        &format!("$JS.API.CONSUMER.CREATE.{STREAM}.{CONSUMER}"),
        &json!({"stream_name": STREAM, "config": {
            "durable_name": CONSUMER, "ack_policy": "none",
            "priority_policy": "pinned_client", "priority_groups": ["A"]}})
        .to_string(),
    )
    .await
    .unwrap_or_else(|e| panic!("create consumer: {e}"));
    let (leader, _) = jc.wait_consumer_leader(STREAM, CONSUMER, None).await;
    let via = (leader + 1) % 3;

    let first = new_pin(&jc, via).await;
    expect_status(&jc, via, &holding("bogus"), 423).await;
    // Unpinned through a node that does not lead: the old id goes stale.
    let v = jc
        .request_ok(
            via,
            &format!("$JS.API.CONSUMER.UNPIN.{STREAM}.{CONSUMER}"),
            r#"{"group":"A"}"#,
        )
        .await
        .unwrap_or_else(|e| panic!("unpin: {e}"));
    assert_eq!(
        v["type"],
        json!("io.nats.jetstream.api.v1.consumer_unpin_response")
    );
    expect_status(&jc, via, &holding(&first), 423).await;
    let second = new_pin(&jc, via).await;
    assert_ne!(first, second, "unpinning handed out the same pin");

    // The leader dies: the policy survives, the pin does not.
    let (leader, _) = jc.wait_consumer_leader(STREAM, CONSUMER, None).await;
    let old_name = jc.c.node(leader).name.clone();
    jc.kill(leader);
    let (_, info) = jc
        .wait_consumer_leader(STREAM, CONSUMER, Some(&old_name))
        .await;
    assert_eq!(
        info["config"]["priority_policy"],
        json!("pinned_client"),
        "{info}"
    );
    assert!(
        info["priority_groups"][0].get("pinned_client_id").is_none(),
        "the new leader kept a pin: {info}"
    );
    let via = (0..3).find(|i| *i != leader).unwrap_or(0);
    expect_status(&jc, via, &holding(&second), 423).await;
    let third = new_pin(&jc, via).await;
    assert_ne!(second, third, "the new leader handed out the old pin");
}

on_both_flavors!(pinned_group_across_leader_change => pinned_group_across_leader_change);
