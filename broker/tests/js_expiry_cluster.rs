//! Age expiry on an R3 stream keeps the replicas identical under
//! conditional publishes. A key-value style create (`Nats-Expected-Last-
//! Subject-Sequence: 0`) is retried while the subject's last message is
//! about to expire: the leader accepts it at the first instant its copy no
//! longer holds that message. Every replica must decide the same way, or
//! its sequences drift from the others' for good (the divergence the
//! whole-system chaos run found, RELIABILITY.md). Tribune replicas expire
//! only at the times their Raft log carries; this test shows the outcome
//! matches nats-server's: after every round, all three nodes' own copies
//! (`/jsz`) report the same last sequence and message count.
//!
//! `JS_EXPIRY_ROUNDS` sets the number of rounds (default 12); deadlines only
//! guard against hanging, nothing asserts a duration.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use common::cluster::Flavor;
use common::js_cluster::{JsCluster, JS_DEADLINE};
use common::js_publish::publish_sure;

const STREAM: &str = "LEASES";
const SUBJECT: &str = "lease.bridge";
/// `max_age`: short, so each round waits about this long.
const MAX_AGE: Duration = Duration::from_millis(1000);

fn rounds() -> usize {
    std::env::var("JS_EXPIRY_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

/// This node's own copy of the stream, from its `/jsz`: `(last_seq, msgs)`.
async fn own_copy(jc: &JsCluster, i: usize) -> Result<(u64, u64), String> {
    let v = jc.c.get_json(i, "/jsz?accounts=true&streams=true").await?;
    let s: Option<Value> = v["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
        .find(|s| s["name"] == STREAM);
    let s = s.ok_or_else(|| format!("node {i} has no copy of {STREAM} in /jsz"))?;
    let state = &s["state"];
    Ok((
        state["last_seq"].as_u64().unwrap_or(0),
        state["messages"].as_u64().unwrap_or(0),
    ))
}

/// Publish with `Nats-Expected-Last-Subject-Sequence: 0` until accepted
/// (the subject's last message has expired on the leader): its sequence.
async fn create_when_expired(js: &async_nats::jetstream::Context) -> u64 {
    let end = Instant::now() + JS_DEADLINE;
    loop {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
        let sent = js
            .publish_with_headers(SUBJECT, headers, Bytes::from_static(b"lease"))
            .await
            .unwrap_or_else(|e| panic!("publish: {e}"));
        match sent.await {
            Ok(ack) => return ack.sequence,
            Err(e) if Instant::now() < end => {
                // "wrong last sequence": not expired yet on the leader.
                if !e.to_string().contains("wrong last sequence") {
                    eprintln!("conditional publish: {e}; again");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("no conditional publish accepted in time: {e}"),
        }
    }
}

async fn conditional_creates_agree(flavor: Flavor) {
    let mut jc = JsCluster::start(flavor).await;
    jc.create_stream(&json!({
        "name": STREAM, "subjects": ["lease.>"], "num_replicas": 3,
        "storage": "file", "max_age": MAX_AGE.as_nanos() as i64,
    }))
    .await;
    // Replicas opened at one instant may tick their timers in step; two
    // restarted at other instants do not (as after any node failure).
    for i in 1..3 {
        jc.kill(i);
        tokio::time::sleep(Duration::from_millis(90 * i as u64)).await;
        jc.restart(i).await;
    }
    jc.wait_stream_leader(STREAM, None).await;
    jc.poll("every node to hold a copy of the stream", || async {
        for i in jc.c.live() {
            own_copy(&jc, i).await?;
        }
        Ok(())
    })
    .await;
    let js = jc.js_patient(0);
    let mut last = publish_sure(&js, SUBJECT.to_string(), "first".into())
        .await
        .sequence;
    for round in 0..rounds() {
        // Just before the message expires, so the create races expiry.
        tokio::time::sleep(MAX_AGE.mul_f32(0.9)).await;
        let seq = create_when_expired(&js).await;
        assert_eq!(seq, last + 1, "round {round}: sequences are consecutive");
        last = seq;
        let what = format!("round {round}: every node's copy to end at {last}");
        jc.poll(&what, || async {
            for i in jc.c.live() {
                let (last_seq, _) = own_copy(&jc, i).await?;
                if last_seq != last {
                    return Err(format!("node {i}: last_seq {last_seq}, leader {last}"));
                }
            }
            Ok(())
        })
        .await;
    }
    // Once the last message has expired everywhere, the copies agree on
    // what is held too.
    jc.poll(
        "every copy to be empty at the same last sequence",
        || async {
            for i in jc.c.live() {
                match own_copy(&jc, i).await? {
                    (l, 0) if l == last => {}
                    other => return Err(format!("node {i}: (last_seq, msgs) {other:?}")),
                }
            }
            Ok(())
        },
    )
    .await;
}

on_both_flavors!(conditional_creates_agree => conditional_creates_agree);
