//! Mirrors and sources on R3 streams: the origin, its mirror and a stream
//! sourcing it are replicated on three nodes. Publishes go on while the
//! node leading the mirror is killed, then brought back. Every
//! acknowledged origin message ends up in the mirror at its origin
//! sequence, identically on every replica, and in the source exactly once
//! (counted by the origin sequence in `Nats-Stream-Source`). A durable
//! source (through an R3 `flow_control` consumer of the origin) holds every
//! message once too, and the consumer's ack floor reaches the last.
//! Run on three nats-server nodes (validating the scenario) and three
//! tribune-broker nodes (`on_both_flavors!`, see `tests/js_replicated.rs`).
//!
//! Deadlines only guard against hanging; nothing asserts a duration.

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::json;

use common::cluster::Flavor;
use common::js_cluster::JsCluster;
use common::js_cluster::JS_DEADLINE;
use common::js_publish::{publish, publish_sure};
use common::js_readback::assert_copies_identical;

const HALF: u64 = 40;

/// `messages` of `stream` as node `via` reports it.
async fn messages(jc: &JsCluster, via: usize, stream: &str) -> Result<u64, String> {
    let v = jc
        .request_ok(via, &format!("$JS.API.STREAM.INFO.{stream}"), "")
        .await?;
    v["state"]["messages"]
        .as_u64()
        .ok_or_else(|| format!("no state in {v}"))
}

async fn feeds_survive_a_leader_kill(flavor: Flavor) {
    let mut jc = JsCluster::start(flavor).await;
    jc.create_stream(&json!({"name": "O", "subjects": ["o.>"], "num_replicas": 3}))
        .await;
    jc.create_stream(
        &json!({"name": "M", "mirror": {"name": "O"}, "num_replicas": 3,
        "allow_direct": true}),
    )
    .await;
    jc.create_stream(&json!({"name": "S", "sources": [{"name": "O"}], "num_replicas": 3}))
        .await;
    let durable = json!({"stream_name": "O", "config": {"durable_name": "dsrc",
        "deliver_subject": "d.deliver", "ack_policy": "flow_control", "num_replicas": 3}});
    jc.request_ok(0, "$JS.API.CONSUMER.CREATE.O.dsrc", &durable.to_string())
        .await
        .unwrap_or_else(|e| panic!("durable consumer: {e}"));
    jc.create_stream(
        &json!({"name": "D", "num_replicas": 3, "sources": [{"name": "O",
        "consumer": {"name": "dsrc", "deliver_subject": "d.deliver"}}]}),
    )
    .await;

    let (victim, _) = jc.wait_stream_leader("M", None).await;
    let via = (0..3).find(|i| *i != victim).unwrap_or(0);
    let js = jc.js_patient(via);
    for i in 1..=HALF {
        publish_sure(&js, format!("o.{}", i % 4), format!("m{i}").into()).await;
    }
    let old = jc.c.node(victim).name.clone();
    jc.kill(victim);
    // The origin may be electing now: a publish it drops gets no ack, so
    // each is sent again after a short wait, with a message id that makes
    // the copies one (nats-server once left a publish unanswered for the
    // whole patient deadline here).
    let quick = jc.js(via);
    for i in HALF + 1..=2 * HALF {
        publish_once(&quick, format!("o.{}", i % 4), format!("m{i}")).await;
    }
    jc.wait_stream_leader("M", Some(&old)).await;
    jc.restart(victim).await;

    jc.poll("the mirror and the source to hold every message", || {
        let jc = &jc;
        async move {
            for s in ["M", "S", "D"] {
                let n = messages(jc, via, s).await?;
                if n != 2 * HALF {
                    return Err(format!("{s} holds {n}"));
                }
            }
            Ok(())
        }
    })
    .await;
    jc.wait_stream_leader("M", None).await;
    jc.wait_stream_leader("S", None).await;
    jc.wait_stream_leader("D", None).await;

    // The mirror: each replica the same, each message at its origin's
    // sequence.
    let origin = jc.every_replica_copy("O").await;
    let mirror = jc.every_replica_copy("M").await;
    assert_copies_identical(&mirror, "mirror M");
    let o = &origin[0];
    for copy in &mirror {
        assert_eq!(copy.msgs.len(), o.msgs.len(), "node {}", copy.node);
        for (seq, m) in &o.msgs {
            let got = copy.msgs.get(seq);
            assert_eq!(
                got.map(|g| (&g.subject, &g.data)),
                Some((&m.subject, &m.data)),
                "node {} sequence {seq}",
                copy.node
            );
        }
    }

    let want: Vec<u64> = o.msgs.keys().copied().collect();
    each_origin_message_once(&jc, "S", &want).await;
    each_origin_message_once(&jc, "D", &want).await;
    jc.poll("the durable source's consumer to ack everything", || {
        let jc = &jc;
        async move {
            let v = jc
                .request_ok(via, "$JS.API.CONSUMER.INFO.O.dsrc", "")
                .await?;
            match v["ack_floor"]["stream_seq"].as_u64() {
                Some(n) if n == 2 * HALF => Ok(()),
                _ => Err(format!("ack floor {}", v["ack_floor"])),
            }
        }
    })
    .await;
}

/// Every origin sequence exactly once in `stream`, on every replica.
async fn each_origin_message_once(jc: &JsCluster, stream: &str, want: &[u64]) {
    let source = jc.every_replica_copy(stream).await;
    assert_copies_identical(&source, &format!("source {stream}"));
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for m in source[0].msgs.values() {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(m.hdrs.as_deref().unwrap_or(""))
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let origin_seq = text
            .split("\r\n")
            .find_map(|l| l.strip_prefix("Nats-Stream-Source: "))
            .and_then(|v| v.split(' ').nth(1))
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no Nats-Stream-Source in {text:?}"));
        *seen.entry(origin_seq).or_default() += 1;
    }
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), want, "{stream}");
    assert!(
        seen.values().all(|n| *n == 1),
        "{stream} sourced twice: {seen:?}"
    );
}

on_both_flavors!(feeds_survive_a_leader_kill => feeds_survive_a_leader_kill);

/// Publish `body` on `subject` until acknowledged, with the body as its
/// `Nats-Msg-Id`, so a copy of an unacknowledged publish that was stored
/// after all is dropped as a duplicate.
async fn publish_once(js: &async_nats::jetstream::Context, subject: String, body: String) {
    let end = std::time::Instant::now() + JS_DEADLINE;
    loop {
        match publish(js, subject.clone(), Some(&body), body.clone().into()).await {
            Ok(_) => return,
            Err(e) if std::time::Instant::now() < end => {
                eprintln!("{subject} {body}: {e}; again");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => panic!("publish {body} on {subject}: {e}"),
        }
    }
}
