//! A paused consumer of an R3 stream stays paused when its leader dies:
//! the deadline is part of the replicated consumer config, so the new
//! leader delivers nothing until the consumer is resumed, and then
//! everything. Run on three nats-server nodes (validating the scenario)
//! and three tribune-broker nodes (`on_both_flavors!`, see
//! `tests/js_replicated.rs`).
//!
//! Deadlines only guard against hanging; nothing asserts a duration.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use serde_json::{json, Value};

use common::cluster::Flavor;
use common::js_cluster::{JsCluster, JS_DEADLINE};
use common::js_publish::publish_sure;

const STREAM: &str = "HELD";
const CONSUMER: &str = "waiter";
const MSGS: u64 = 5;

/// The first answer to a pull request sent through node `via`: its status
/// code, or 0 for a message. `None` when nothing came within `within`.
async fn pull_answer(jc: &JsCluster, via: usize, body: &str, within: Duration) -> Option<u16> {
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
    let m = tokio::time::timeout(within, sub.next()).await.ok()??;
    Some(m.status.map_or(0, |s| s.as_u16()))
}

async fn paused_consumer_survives_leader_kill(flavor: Flavor) {
    let mut jc = JsCluster::start(flavor).await;
    jc.create_stream(&json!({"name": STREAM, "subjects": ["held.>"], "num_replicas": 3}))
        .await;
    let js = jc.js_patient(0);
    for k in 0..MSGS {
        publish_sure(&js, format!("held.m{k}"), format!("m{k}").into()).await;
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

    // Pause for an hour through a node that is not the leader.
    // A whole second: Go writes no fraction then, so the servers' echo of
    // the deadline is this very string (Go drops a fraction's trailing zeros).
    let until =
        chrono::DateTime::<chrono::Utc>::from(SystemTime::now() + Duration::from_secs(3600))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let via = (leader + 1) % 3;
    let v = jc
        .request_ok(
            via,
            &format!("$JS.API.CONSUMER.PAUSE.{STREAM}.{CONSUMER}"),
            &json!({ "pause_until": until }).to_string(),
        )
        .await
        .unwrap_or_else(|e| panic!("pause: {e}"));
    assert_eq!(v["paused"], json!(true), "{v}");
    assert_eq!(v["pause_until"].as_str(), Some(until.as_str()), "{v}");

    // The paused state is what every replica will have: wait until the
    // leader reports it, then kill the leader.
    let paused_info = |v: &Value| {
        v["paused"] == json!(true) && v["config"]["pause_until"].as_str() == Some(until.as_str())
    };
    jc.poll("the leader to report the pause", || async {
        let v = jc
            .request_ok(
                via,
                &format!("$JS.API.CONSUMER.INFO.{STREAM}.{CONSUMER}"),
                "",
            )
            .await?;
        if paused_info(&v) {
            Ok(())
        } else {
            Err(format!("{v}"))
        }
    })
    .await;
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
    assert!(paused_info(&info), "the new leader lost the pause: {info}");
    assert_eq!(info["num_pending"], json!(MSGS), "{info}");

    // The new leader delivers nothing: a no-wait pull hears "no messages".
    let via = (0..3).find(|i| *i != leader).unwrap_or(0);
    let mut answered = None;
    let end = Instant::now() + JS_DEADLINE;
    while answered.is_none() {
        assert!(Instant::now() < end, "no answer to a no-wait pull");
        answered = pull_answer(
            &jc,
            via,
            r#"{"batch":5,"no_wait":true}"#,
            Duration::from_secs(5),
        )
        .await;
    }
    assert_eq!(answered, Some(404), "a paused consumer delivered");

    // Resume through a survivor: everything is delivered. Resuming is
    // idempotent, so a request that meets the new leader still settling
    // in (an error, or no answer in time) is simply sent again.
    let v = jc
        .poll("the resume to be answered", || {
            let subject = format!("$JS.API.CONSUMER.PAUSE.{STREAM}.{CONSUMER}");
            let jc = &jc;
            async move { jc.request_ok(via, &subject, "").await }
        })
        .await;
    assert_eq!(v["paused"], json!(false), "{v}");
    let got: BTreeSet<String> = jc
        .pull_acked(via, STREAM, CONSUMER, MSGS as usize)
        .await
        .into_iter()
        .collect();
    assert_eq!(got.len() as u64, MSGS, "{got:?}");
    let info = jc
        .request_ok(
            via,
            &format!("$JS.API.CONSUMER.INFO.{STREAM}.{CONSUMER}"),
            "",
        )
        .await
        .unwrap_or_else(|e| panic!("info: {e}"));
    assert!(info.get("paused").is_none(), "{info}");
}

on_both_flavors!(paused_consumer_survives_leader_kill => paused_consumer_survives_leader_kill);
