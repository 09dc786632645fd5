//! Durable sourcing (nats-server 2.14): a mirror or source that reads an
//! existing consumer of its origin (`consumer` in its configuration)
//! instead of an ephemeral one. The consumer must use the `flow_control`
//! ack policy: the sourcing stream's flow-control replies acknowledge what
//! it has stored, so the consumer's ack floor follows the stream and a
//! restart resumes from it with nothing lost and nothing twice.
//!
//! The same requests go to nats-server and tribune-broker and the
//! transcripts must be equal: the consumer checks and defaults, the
//! stream checks, what the streams hold, the consumer's ack floor, and
//! what a restart keeps. Waiting is by polling with a deadline that only
//! guards against hanging; nothing asserts a duration.

mod common;

use std::time::Instant;

use common::js::{same_on_every_flavor, Durable, Flavor, Js, WAIT};
use common::sourcing::{contents, create, outcome, publish, settle, C};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

/// `CONSUMER.CREATE.<stream>.<durable>`, as clients create durables.
async fn add_consumer(js: &C, stream: &str, cfg: Value) -> Value {
    let name = cfg["durable_name"].as_str().unwrap_or_default().to_string();
    js.api(
        &format!("$JS.API.CONSUMER.CREATE.{stream}.{name}"),
        &json!({"stream_name": stream, "config": cfg}).to_string(),
    )
    .await
}

/// A durable `flow_control` consumer `name` of `stream`, delivering to
/// `<name>.deliver`: its transcript line.
async fn fc_consumer(js: &C, stream: &str, name: &str) -> String {
    let v = add_consumer(
        js,
        stream,
        json!({"durable_name": name, "deliver_subject": format!("{name}.deliver"),
            "ack_policy": "flow_control"}),
    )
    .await;
    format!("consumer {name}: {}", outcome(&v))
}

/// Create stream `name` sourcing `origin` through its durable `consumer`
/// (as [`fc_consumer`] makes them).
async fn durable_source(js: &C, name: &str, origin: &str, consumer: &str) -> String {
    let source = json!({"name": origin,
        "consumer": {"name": consumer, "deliver_subject": format!("{consumer}.deliver")}});
    create(js, json!({"name": name, "sources": [source]})).await
}

/// The configuration fields the `flow_control` ack policy sets or checks.
fn fc_fields(v: &Value) -> String {
    let c = &v["config"];
    format!(
        "ack_policy {} flow_control {} idle_heartbeat {} max_ack_pending {} ack_wait {} max_deliver {}",
        c["ack_policy"],
        c["flow_control"],
        c["idle_heartbeat"],
        c["max_ack_pending"],
        c["ack_wait"],
        c["max_deliver"]
    )
}

/// Poll until `consumer`'s ack floor reaches `seq`: the source's
/// flow-control replies acknowledged everything it stored.
async fn acked_through(js: &C, stream: &str, consumer: &str, seq: u64) -> String {
    let end = Instant::now() + WAIT;
    loop {
        let v = js
            .api(&format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"), "")
            .await;
        if v["ack_floor"]["stream_seq"].as_u64() == Some(seq) {
            return format!(
                "{consumer}: ack floor {} pending {}",
                v["ack_floor"]["stream_seq"], v["num_ack_pending"]
            );
        }
        assert!(
            Instant::now() < end,
            "[{}] {consumer} never acked through {seq}: {v}",
            js.label
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Poll until `stream`'s first source reports an error; its words.
async fn source_error(js: &C, stream: &str) -> String {
    let end = Instant::now() + WAIT;
    loop {
        let v = js.api(&format!("$JS.API.STREAM.INFO.{stream}"), "").await;
        let e = &v["sources"][0]["error"];
        if !e.is_null() {
            return format!(
                "{stream} source error: {}/{} {}",
                e["code"], e["err_code"], e["description"]
            );
        }
        assert!(
            Instant::now() < end,
            "[{}] {stream}'s source never reported an error: {v}",
            js.label
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn checks_and_feeds(f: Flavor) -> Vec<String> {
    let server = Js::start(&f).await;
    let js = C::of(&server);
    let mut t = Vec::new();
    t.push(create(&js, json!({"name": "O", "subjects": ["o.>"]})).await);
    // A durable name on the ephemeral create subject is refused.
    let v = js
        .api(
            "$JS.API.CONSUMER.CREATE.O",
            &json!({"stream_name": "O", "config": {"durable_name": "d",
                "deliver_subject": "d.d", "ack_policy": "flow_control"}})
            .to_string(),
        )
        .await;
    t.push(format!("durable on CREATE.O: {}", outcome(&v)));
    // The ack policy's own checks, in nats-server's order and words.
    for (what, cfg) in [
        (
            "pull",
            json!({"durable_name": "p", "ack_policy": "flow_control"}),
        ),
        (
            "ack_wait",
            json!({"durable_name": "w", "deliver_subject": "w.d", "ack_policy": "flow_control",
                "ack_wait": 1_000_000_000i64}),
        ),
        (
            "backoff",
            json!({"durable_name": "b", "deliver_subject": "b.d", "ack_policy": "flow_control",
                "backoff": [1_000_000_000i64]}),
        ),
        (
            "max_deliver",
            json!({"durable_name": "m", "deliver_subject": "m.d", "ack_policy": "flow_control",
                "max_deliver": 3}),
        ),
        (
            "unbounded",
            json!({"durable_name": "u", "deliver_subject": "u.d", "ack_policy": "flow_control",
                "max_ack_pending": -1}),
        ),
    ] {
        let v = add_consumer(&js, "O", cfg).await;
        t.push(format!("consumer {what}: {}", outcome(&v)));
    }
    for (name, deliver) in [("agg", "agg.deliver"), ("mir", "mir.deliver")] {
        let v = add_consumer(
            &js,
            "O",
            json!({"durable_name": name, "deliver_subject": deliver, "ack_policy": "flow_control"}),
        )
        .await;
        t.push(format!(
            "consumer {name}: {} {}",
            outcome(&v),
            fc_fields(&v)
        ));
    }
    let v = add_consumer(
        &js,
        "O",
        json!({"durable_name": "expl", "deliver_subject": "expl.deliver", "ack_policy": "explicit"}),
    )
    .await;
    t.push(format!("consumer expl: {}", outcome(&v)));

    // The stream checks.
    let agg = json!({"name": "agg", "deliver_subject": "agg.deliver"});
    for (what, cfg) in [
        (
            "filtered",
            json!({"name": "X", "sources": [{"name": "O", "filter_subject": "o.a", "consumer": agg}]}),
        ),
        (
            "start seq",
            json!({"name": "X", "sources": [{"name": "O", "opt_start_seq": 2, "consumer": agg}]}),
        ),
        (
            "wildcard deliver",
            json!({"name": "X", "sources": [{"name": "O",
                "consumer": {"name": "agg", "deliver_subject": "agg.*"}}]}),
        ),
        (
            "bad name",
            json!({"name": "X", "sources": [{"name": "O",
                "consumer": {"name": "a.b", "deliver_subject": "agg.deliver"}}]}),
        ),
        (
            "shared",
            json!({"name": "X", "sources": [
                {"name": "O", "consumer": agg,
                    "subject_transforms": [{"src": "o.a", "dest": "x.a"}]},
                {"name": "O", "consumer": agg,
                    "subject_transforms": [{"src": "o.b", "dest": "x.b"}]}]}),
        ),
        (
            "mirror filtered",
            json!({"name": "X", "mirror": {"name": "O", "filter_subject": "o.a",
                "consumer": {"name": "mir", "deliver_subject": "mir.deliver"}}}),
        ),
    ] {
        t.push(format!("{what}: {}", create(&js, cfg).await));
    }

    for i in 1..=3 {
        t.push(publish(&js, &format!("o.{i}"), &format!("before{i}")).await);
    }
    t.push(
        create(
            &js,
            json!({"name": "AGG", "sources": [{"name": "O", "consumer": agg}]}),
        )
        .await,
    );
    t.push(
        create(
            &js,
            json!({"name": "M", "mirror": {"name": "O",
                "consumer": {"name": "mir", "deliver_subject": "mir.deliver"}}}),
        )
        .await,
    );
    let info = js.api("$JS.API.STREAM.INFO.AGG", "").await;
    t.push(format!("AGG sources: {}", info["config"]["sources"]));
    for i in 4..=6 {
        t.push(publish(&js, &format!("o.{i}"), &format!("after{i}")).await);
    }
    t.push(settle(&js, "AGG", 6).await);
    t.push(settle(&js, "M", 6).await);
    t.extend(contents(&js, "AGG").await);
    t.extend(contents(&js, "M").await);
    t.push(acked_through(&js, "O", "agg", 6).await);
    t.push(acked_through(&js, "O", "mir", 6).await);

    // The reason for durable sourcing (ADR-60): a work queue origin. What
    // the source stored and acknowledged leaves the queue.
    t.push(
        create(
            &js,
            json!({"name": "Q", "subjects": ["q.>"], "retention": "workqueue"}),
        )
        .await,
    );
    t.push(fc_consumer(&js, "Q", "drain").await);
    t.push(durable_source(&js, "QAGG", "Q", "drain").await);
    for i in 1..=4 {
        t.push(publish(&js, &format!("q.{i}"), &format!("job{i}")).await);
    }
    t.push(settle(&js, "QAGG", 4).await);
    t.push(acked_through(&js, "Q", "drain", 4).await);
    t.push(settle(&js, "Q", 0).await);

    // A consumer with another ack policy cannot feed a source.
    t.push(durable_source(&js, "WRONG", "O", "expl").await);
    t.push(source_error(&js, "WRONG").await);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_sources_as_nats_server_keeps_them() {
    same_on_every_flavor(BIN, checks_and_feeds).await;
}

/// The sourcing stream and the origin's consumer stop with their server;
/// after the restart the source resumes from the consumer's ack floor:
/// every message once.
async fn resume_after_restart(f: Flavor) -> Vec<String> {
    let store = Durable::new(&f.bin);
    let mut t = Vec::new();
    {
        let server = Js::on(f.label, store.start()).await;
        let js = C::of(&server);
        t.push(create(&js, json!({"name": "O", "subjects": ["o.>"]})).await);
        t.push(fc_consumer(&js, "O", "agg").await);
        t.push(durable_source(&js, "AGG", "O", "agg").await);
        for i in 1..=4 {
            t.push(publish(&js, &format!("o.{i}"), &format!("before{i}")).await);
        }
        t.push(settle(&js, "AGG", 4).await);
        t.push(acked_through(&js, "O", "agg", 4).await);
    }
    let server = Js::on(f.label, store.start()).await;
    let js = C::of(&server);
    for i in 5..=8 {
        t.push(publish(&js, &format!("o.{i}"), &format!("after{i}")).await);
    }
    t.push(settle(&js, "AGG", 8).await);
    t.push(acked_through(&js, "O", "agg", 8).await);
    t.extend(contents(&js, "AGG").await);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_sources_resume_after_a_restart() {
    same_on_every_flavor(BIN, resume_after_restart).await;
}

/// The consumer already delivered messages nobody acknowledged (a plain
/// subscriber on its deliver subject took them) when the source starts:
/// the source resets it to its ack floor and takes every message, those
/// first deliveries included, and the ack floor only follows what it
/// stored.
async fn consumer_ahead_of_the_stream(f: Flavor) -> Vec<String> {
    let server = Js::start(&f).await;
    let js = C::of(&server);
    let mut t = Vec::new();
    t.push(create(&js, json!({"name": "O", "subjects": ["o.>"]})).await);
    t.push(fc_consumer(&js, "O", "agg").await);
    let mut early = js.nc.subscribe("agg.deliver").await.expect("subscribe");
    for i in 1..=5 {
        t.push(publish(&js, &format!("o.{i}"), &format!("m{i}")).await);
    }
    let mut seen = 0;
    while seen < 5 {
        let m = tokio::time::timeout(WAIT, futures_next(&mut early))
            .await
            .unwrap_or_else(|_| panic!("[{}] early deliveries", js.label));
        if !m.payload.is_empty() {
            seen += 1;
        }
    }
    drop(early);
    js.nc.flush().await.expect("flush");
    t.push(format!("delivered elsewhere: {seen}"));
    for i in 6..=8 {
        t.push(publish(&js, &format!("o.{i}"), &format!("m{i}")).await);
    }
    t.push(durable_source(&js, "AGG", "O", "agg").await);
    t.push(settle(&js, "AGG", 8).await);
    t.push(acked_through(&js, "O", "agg", 8).await);
    t.extend(contents(&js, "AGG").await);
    t
}

async fn futures_next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    use futures::StreamExt;
    sub.next().await.expect("subscription ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_source_takes_what_its_consumer_delivered_elsewhere() {
    same_on_every_flavor(BIN, consumer_ahead_of_the_stream).await;
}
