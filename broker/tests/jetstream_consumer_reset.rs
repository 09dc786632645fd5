//! `$JS.API.CONSUMER.RESET.<stream>.<consumer>` (nats-server 2.14): a
//! consumer starts over at a stream sequence, or back at its ack floor.
//! The same requests go to nats-server and tribune-broker, and the
//! transcripts (answers, consumer state after each reset, what a pull
//! delivers next, the refusals) must be equal. A clustered reset is in
//! `js_consumer_reset_cluster.rs`.

mod common;

use std::time::Duration;

use common::js::{same_on_every_flavor, Flavor, Js};
use futures::StreamExt;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

/// What a transcript keeps of a reset answer: the sequence, the consumer's
/// counters (not times), or the error.
fn reset_line(v: &Value) -> String {
    if let Some(e) = v.get("error") {
        // An invalid JSON body's description quotes Go's decoder, which
        // Tribune's does not imitate: the codes only, then.
        let description = match e["err_code"].as_u64() {
            Some(10025) => Value::Null,
            _ => e["description"].clone(),
        };
        return format!(
            "error {}/{} {description} reset_seq={}",
            e["code"], e["err_code"], v["reset_seq"]
        );
    }
    let keys: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    format!(
        "keys={keys:?} type={} reset_seq={} delivered={}/{} ack_floor={}/{} pending={} ack_pending={} redelivered={}",
        v["type"],
        v["reset_seq"],
        v["delivered"]["consumer_seq"],
        v["delivered"]["stream_seq"],
        v["ack_floor"]["consumer_seq"],
        v["ack_floor"]["stream_seq"],
        v["num_pending"],
        v["num_ack_pending"],
        v["num_redelivered"],
    )
}

/// Pull `n` messages from `consumer` of `RS` and acknowledge the first
/// `ack` of them; the subjects, in order.
async fn pull(js: &Js, consumer: &str, n: usize, ack: usize) -> Vec<String> {
    let inbox = js.nc.new_inbox();
    let mut sub = js.nc.subscribe(inbox.clone()).await.expect("subscribe");
    js.nc
        .publish_with_reply(
            format!("$JS.API.CONSUMER.MSG.NEXT.RS.{consumer}"),
            inbox,
            json!({"batch": n, "expires": 5_000_000_000u64})
                .to_string()
                .into(),
        )
        .await
        .expect("pull");
    let mut got = Vec::new();
    while got.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap_or_else(|_| panic!("[{}] only {got:?} of {n} delivered", js.label))
            .expect("subscription open");
        if m.status.is_some() {
            continue;
        }
        if got.len() < ack {
            let reply = m.reply.clone().expect("ack subject");
            js.nc
                .request(reply, "+ACK".into())
                .await
                .unwrap_or_else(|e| panic!("[{}] double ack: {e}", js.label));
        }
        got.push(m.subject.to_string());
    }
    got
}

async fn reset(js: &Js, consumer: &str, body: &str) -> String {
    let v = js
        .api(&format!("$JS.API.CONSUMER.RESET.RS.{consumer}"), body)
        .await;
    reset_line(&v)
}

async fn scenario(f: Flavor) -> Vec<String> {
    let js = Js::start(&f).await;
    let mut t = Vec::new();
    let r = js
        .api(
            "$JS.API.STREAM.CREATE.RS",
            r#"{"name":"RS","subjects":["rs.>"]}"#,
        )
        .await;
    assert!(r.get("error").is_none(), "[{}] {r}", js.label);
    for i in 1..=6 {
        js.js
            .publish(format!("rs.{i}"), "x".into())
            .await
            .expect("publish")
            .await
            .expect("publish ack");
    }
    for (name, extra) in [
        ("ALL", json!({})),
        (
            "FROM3",
            json!({"deliver_policy": "by_start_sequence", "opt_start_seq": 3}),
        ),
        ("LAST", json!({"deliver_policy": "last"})),
        ("NONE", json!({"ack_policy": "none"})),
    ] {
        let mut cfg = json!({"durable_name": name, "ack_policy": "explicit"});
        if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        let r = js
            .api(
                &format!("$JS.API.CONSUMER.CREATE.RS.{name}"),
                &json!({"stream_name": "RS", "config": cfg}).to_string(),
            )
            .await;
        assert!(r.get("error").is_none(), "[{}] {r}", js.label);
    }

    // Four delivered, two acknowledged: an empty reset goes back to just
    // above the ack floor and delivers from there again.
    t.push(format!("pulled {:?}", pull(&js, "ALL", 4, 2).await));
    t.push(format!("empty {}", reset(&js, "ALL", "").await));
    t.push(format!("again {:?}", pull(&js, "ALL", 2, 0).await));
    t.push(format!("empty {}", reset(&js, "ALL", "{}").await));
    // To a sequence: forward, backward, beyond the end.
    t.push(format!("seq 5 {}", reset(&js, "ALL", r#"{"seq":5}"#).await));
    t.push(format!("then {:?}", pull(&js, "ALL", 2, 2).await));
    t.push(format!("seq 1 {}", reset(&js, "ALL", r#"{"seq":1}"#).await));
    t.push(format!(
        "seq 99 {}",
        reset(&js, "ALL", r#"{"seq":99}"#).await
    ));
    // The deliver policy limits where it may go.
    t.push(format!(
        "from3 seq 2 {}",
        reset(&js, "FROM3", r#"{"seq":2}"#).await
    ));
    t.push(format!(
        "from3 seq 4 {}",
        reset(&js, "FROM3", r#"{"seq":4}"#).await
    ));
    t.push(format!("from3 next {:?}", pull(&js, "FROM3", 1, 1).await));
    t.push(format!(
        "last seq 2 {}",
        reset(&js, "LAST", r#"{"seq":2}"#).await
    ));
    t.push(format!("last empty {}", reset(&js, "LAST", "").await));
    // No acknowledgements: the floor follows deliveries.
    t.push(format!("none pulled {:?}", pull(&js, "NONE", 3, 0).await));
    t.push(format!("none empty {}", reset(&js, "NONE", "").await));
    // A body that is not JSON.
    t.push(format!("bad json {}", reset(&js, "ALL", "{seq").await));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_reset_matches_nats_server() {
    same_on_every_flavor(BIN, scenario).await;
}
