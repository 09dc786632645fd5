//! JetStream streams through async-nats (and raw requests where the exact
//! JSON matters), against nats-server and, per the flavor switch in
//! `common/js.rs`, tribune-broker: create/info/update/list/names/delete,
//! purge (all, filtered, keep, up to a sequence), publish acks and
//! de-duplication, the `Nats-Expected-*` headers, limits and discard
//! policies, max_age expiry, memory storage, message get/delete and direct
//! get.
//!
//! Waits are bounded by generous deadlines; nothing asserts a duration.

mod common;

use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use async_nats::HeaderMap;
use common::js::{eventually, for_each_flavor, Flavor, Js, WAIT};
use futures::StreamExt;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

/// Publish with `headers` as a plain request and return the PubAck JSON
/// exactly as the server wrote it.
async fn publish_raw(t: &Js, subject: &str, headers: &[(&str, &str)], payload: &str) -> Value {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, *v);
    }
    let reply = tokio::time::timeout(
        WAIT,
        t.nc.request_with_headers(subject.to_string(), h, payload.to_string().into()),
    )
    .await
    .expect("pub ack in time")
    .expect("pub ack");
    serde_json::from_slice(&reply.payload).unwrap_or_else(|e| {
        panic!(
            "{}: pub ack is not JSON ({e}): {:?}",
            t.label,
            String::from_utf8_lossy(&reply.payload)
        )
    })
}

fn pub_error(stream: &str, code: u64, err_code: u64, description: &str) -> Value {
    json!({
        "error": {"code": code, "err_code": err_code, "description": description},
        "stream": stream,
        "seq": 0
    })
}

async fn create(t: &Js, cfg: stream::Config) -> stream::Stream {
    let name = cfg.name.clone();
    t.js.create_stream(cfg)
        .await
        .unwrap_or_else(|e| panic!("{}: create stream {name}: {e}", t.label))
}

async fn state(s: &stream::Stream) -> stream::State {
    s.get_info().await.expect("stream info").state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_lifecycle() {
    for_each_flavor(BIN, stream_lifecycle_on).await;
}

async fn stream_lifecycle_on(f: Flavor) {
    let t = Js::start(&f).await;
    let s = create(
        &t,
        stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.*".into(), "returns.>".into()],
            description: Some("orders".into()),
            ..Default::default()
        },
    )
    .await;
    let info = s.cached_info();
    // Unset limits come back as -1, replicas as 1, a 2 minute dedup window.
    assert_eq!(
        (
            info.config.max_messages,
            info.config.max_bytes,
            info.config.max_messages_per_subject,
            info.config.max_consumers,
            info.config.max_message_size,
            info.config.num_replicas,
        ),
        (-1, -1, -1, -1, -1, 1),
        "{}",
        f.label
    );
    assert_eq!(info.config.duplicate_window, Duration::from_secs(120));
    assert_eq!(info.config.storage, StorageType::File);
    assert_eq!(info.config.description.as_deref(), Some("orders"));
    assert_eq!(info.state.messages, 0);

    // Creating again with the same config is fine; with another is not.
    create(
        &t,
        stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.*".into(), "returns.>".into()],
            description: Some("orders".into()),
            ..Default::default()
        },
    )
    .await;
    let v = t
        .api(
            "$JS.API.STREAM.CREATE.ORDERS",
            r#"{"name":"ORDERS","subjects":["orders.*"],"max_msgs":5}"#,
        )
        .await;
    assert_eq!(
        v["error"],
        json!({"code":400,"err_code":10058,"description":"stream name already in use with a different configuration"})
    );

    for subj in ["orders.1", "orders.2", "returns.a.b"] {
        t.js.publish(subj, "x".into()).await.unwrap().await.unwrap();
    }
    // orders.1.extra does not match orders.* : no stream, no responders.
    let no =
        t.js.publish("orders.1.extra", "x".into())
            .await
            .unwrap()
            .await;
    assert!(no.is_err(), "publish outside the stream's subjects");

    // Name-only stream: its subject is its name.
    let solo = create(
        &t,
        stream::Config {
            name: "SOLO".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(solo.cached_info().config.subjects, vec!["SOLO"]);

    // update: add a subject and a limit, the messages stay.
    let updated =
        t.js.update_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.*".into(), "returns.>".into(), "refunds".into()],
            description: Some("orders".into()),
            max_messages: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(updated.config.max_messages, 100);
    assert_eq!(updated.config.subjects.len(), 3);
    assert_eq!(updated.state.messages, 3);
    t.js.publish("refunds", "r".into())
        .await
        .unwrap()
        .await
        .unwrap();
    // Storage can not change.
    let bad =
        t.js.update_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.*".into()],
            storage: StorageType::Memory,
            ..Default::default()
        })
        .await;
    assert!(bad.is_err(), "changing storage type");

    // names / list, and names filtered by subject.
    let mut names: Vec<String> = t.js.stream_names().map(|n| n.unwrap()).collect().await;
    names.sort();
    assert_eq!(names, vec!["ORDERS", "SOLO"]);
    let infos: Vec<stream::Info> = t.js.streams().map(|i| i.unwrap()).collect().await;
    assert_eq!(infos.len(), 2);
    let by_subject = t.js.stream_by_subject("returns.x.y").await.unwrap();
    assert_eq!(by_subject, "ORDERS");
    let v = t.api("$JS.API.STREAM.NAMES", r#"{"subject":"SOLO"}"#).await;
    assert_eq!(v["streams"], json!(["SOLO"]));
    assert_eq!(v["total"], 1);

    // info with per-subject counts.
    let v = t
        .api("$JS.API.STREAM.INFO.ORDERS", r#"{"subjects_filter":">"}"#)
        .await;
    assert_eq!(
        v["state"]["subjects"],
        json!({"orders.1":1,"orders.2":1,"returns.a.b":1,"refunds":1}),
        "{v}"
    );
    assert_eq!(v["state"]["num_subjects"], 4);
    assert_eq!(v["type"], "io.nats.jetstream.api.v1.stream_info_response");

    // delete: gone from names, info is a 10059 error.
    assert!(t.js.delete_stream("SOLO").await.unwrap().success);
    let v = t.api("$JS.API.STREAM.INFO.SOLO", "").await;
    assert_eq!(
        v["error"],
        json!({"code":404,"err_code":10059,"description":"stream not found"})
    );
    let names: Vec<String> = t.js.stream_names().map(|n| n.unwrap()).collect().await;
    assert_eq!(names, vec!["ORDERS"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_variants() {
    for_each_flavor(BIN, purge_on).await;
}

async fn purge_on(f: Flavor) {
    let t = Js::start(&f).await;
    let s = create(
        &t,
        stream::Config {
            name: "P".into(),
            subjects: vec!["p.*".into()],
            ..Default::default()
        },
    )
    .await;
    // seq: 1 a, 2 b, 3 a, 4 b, 5 a, 6 b, 7 a, 8 b
    for i in 0..8 {
        let subj = if i % 2 == 0 { "p.a" } else { "p.b" };
        t.js.publish(subj, i.to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // filtered: only p.b goes.
    let r = s.purge().filter("p.b").await.unwrap();
    assert_eq!((r.success, r.purged), (true, 4), "{}", f.label);
    let st = state(&s).await;
    // last_seq is the stream's last sequence, even when that message is gone.
    assert_eq!(
        (st.messages, st.first_sequence, st.last_sequence),
        (4, 1, 8)
    );
    // keep: the newest 2 stay.
    let r = s.purge().keep(2).await.unwrap();
    assert_eq!(r.purged, 2);
    let st = state(&s).await;
    assert_eq!((st.messages, st.first_sequence), (2, 5));
    // up to (not including) a sequence.
    for i in 8..10 {
        t.js.publish("p.b", i.to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let r = s.purge().sequence(9).await.unwrap();
    assert_eq!(r.purged, 2, "5 and 7 are below 9");
    let st = state(&s).await;
    assert_eq!(
        (st.messages, st.first_sequence, st.last_sequence),
        (2, 9, 10)
    );
    // all: the stream is empty, sequences keep counting.
    let r = s.purge().await.unwrap();
    assert_eq!(r.purged, 2);
    let st = state(&s).await;
    assert_eq!(
        (st.messages, st.first_sequence, st.last_sequence),
        (0, 11, 10)
    );
    let ack =
        t.js.publish("p.a", "after".into())
            .await
            .unwrap()
            .await
            .unwrap();
    assert_eq!(ack.sequence, 11);
    // purge with both seq and keep is a bad request.
    let v = t
        .api("$JS.API.STREAM.PURGE.P", r#"{"seq":5,"keep":1}"#)
        .await;
    assert_eq!(
        v,
        json!({"type":"io.nats.jetstream.api.v1.stream_purge_response",
               "error":{"code":400,"err_code":10003,"description":"bad request"},"purged":0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_acks_and_dedup() {
    for_each_flavor(BIN, pub_acks_on).await;
}

async fn pub_acks_on(f: Flavor) {
    let t = Js::start(&f).await;
    create(
        &t,
        stream::Config {
            name: "S".into(),
            subjects: vec!["s.>".into()],
            duplicate_window: Duration::from_secs(60),
            ..Default::default()
        },
    )
    .await;
    // The exact bytes of a PubAck, duplicates included (note nats-server's
    // `"duplicate": true` with a space: we compare parsed JSON).
    assert_eq!(
        publish_raw(&t, "s.a", &[], "hello").await,
        json!({"stream":"S","seq":1}),
        "{}",
        f.label
    );
    assert_eq!(
        publish_raw(&t, "s.a", &[("Nats-Msg-Id", "m1")], "one").await,
        json!({"stream":"S","seq":2})
    );
    assert_eq!(
        publish_raw(&t, "s.a", &[("Nats-Msg-Id", "m1")], "again").await,
        json!({"stream":"S","seq":2,"duplicate":true})
    );
    // The duplicate was not stored.
    let mut s = t.js.get_stream("S").await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 2);
    let m = s.get_raw_message(2).await.unwrap();
    assert_eq!(m.payload.as_ref(), b"one");

    // Through the async-nats API.
    let ack =
        t.js.send_publish(
            "s.b",
            PublishMessage::build().payload("x".into()).message_id("m2"),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        (ack.stream.as_str(), ack.sequence, ack.duplicate),
        ("S", 3, false)
    );
    let ack =
        t.js.send_publish(
            "s.b",
            PublishMessage::build().payload("x".into()).message_id("m2"),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!((ack.sequence, ack.duplicate), (3, true));

    // Many in flight at once: every ack arrives, sequences are 4..=203.
    let mut acks = Vec::new();
    for i in 0..200 {
        acks.push(
            t.js.publish(format!("s.burst.{}", i % 7), i.to_string().into())
                .await
                .unwrap(),
        );
    }
    let mut seqs = Vec::new();
    for a in acks {
        seqs.push(a.await.unwrap().sequence);
    }
    assert_eq!(seqs, (4..=203).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_headers() {
    for_each_flavor(BIN, expected_headers_on).await;
}

/// subject, headers, the PubAck (or error) it must get.
type HeaderCase = (&'static str, Vec<(&'static str, &'static str)>, Value);

async fn expected_headers_on(f: Flavor) {
    let t = Js::start(&f).await;
    create(
        &t,
        stream::Config {
            name: "S".into(),
            subjects: vec!["s.>".into()],
            ..Default::default()
        },
    )
    .await;
    publish_raw(&t, "s.a", &[], "1").await; // 1
    publish_raw(&t, "s.a", &[("Nats-Msg-Id", "id-2")], "2").await; // 2

    let cases: Vec<HeaderCase> = vec![
        (
            "s.b",
            vec![("Nats-Expected-Stream", "OTHER")],
            pub_error("S", 400, 10060, "expected stream does not match"),
        ),
        (
            "s.b",
            vec![("Nats-Expected-Stream", "S")],
            json!({"stream":"S","seq":3}),
        ),
        (
            "s.b",
            vec![("Nats-Expected-Last-Sequence", "1")],
            pub_error("S", 400, 10071, "wrong last sequence: 3"),
        ),
        (
            "s.b",
            vec![("Nats-Expected-Last-Sequence", "3")],
            json!({"stream":"S","seq":4}),
        ),
        (
            "s.a",
            vec![("Nats-Expected-Last-Subject-Sequence", "1")],
            pub_error("S", 400, 10071, "wrong last sequence: 2"),
        ),
        (
            "s.a",
            vec![("Nats-Expected-Last-Subject-Sequence", "2")],
            json!({"stream":"S","seq":5}),
        ),
        // A subject with no messages yet has last sequence 0.
        (
            "s.new",
            vec![("Nats-Expected-Last-Subject-Sequence", "0")],
            json!({"stream":"S","seq":6}),
        ),
        (
            "s.new",
            vec![("Nats-Expected-Last-Subject-Sequence", "0")],
            pub_error("S", 400, 10071, "wrong last sequence: 6"),
        ),
        // The last message (6) has no Msg-Id: the description names "".
        (
            "s.a",
            vec![("Nats-Expected-Last-Msg-Id", "id-2")],
            pub_error("S", 400, 10070, "wrong last msg ID: "),
        ),
        (
            "s.a",
            vec![("Nats-Msg-Id", "id-7")],
            json!({"stream":"S","seq":7}),
        ),
        (
            "s.a",
            vec![("Nats-Expected-Last-Msg-Id", "nope")],
            pub_error("S", 400, 10070, "wrong last msg ID: id-7"),
        ),
        (
            "s.a",
            vec![("Nats-Expected-Last-Msg-Id", "id-7")],
            json!({"stream":"S","seq":8}),
        ),
    ];
    for (subject, headers, want) in cases {
        let got = publish_raw(&t, subject, &headers, "x").await;
        assert_eq!(got, want, "{}: {subject} {headers:?}", f.label);
    }
    // Failed publishes stored nothing.
    let mut s = t.js.get_stream("S").await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_discard() {
    for_each_flavor(BIN, limits_on).await;
}

async fn limits_on(f: Flavor) {
    let t = Js::start(&f).await;
    // max_msgs, discard old: the oldest go.
    let old = create(
        &t,
        stream::Config {
            name: "OLD".into(),
            subjects: vec!["old".into()],
            max_messages: 5,
            ..Default::default()
        },
    )
    .await;
    for i in 1..=8 {
        publish_raw(&t, "old", &[], &i.to_string()).await;
    }
    let st = state(&old).await;
    assert_eq!(
        (st.messages, st.first_sequence, st.last_sequence),
        (5, 4, 8),
        "{}",
        f.label
    );

    // max_msgs, discard new: the newest are refused.
    create(
        &t,
        stream::Config {
            name: "NEW".into(),
            subjects: vec!["new".into()],
            max_messages: 2,
            discard: DiscardPolicy::New,
            ..Default::default()
        },
    )
    .await;
    publish_raw(&t, "new", &[], "1").await;
    publish_raw(&t, "new", &[], "2").await;
    assert_eq!(
        publish_raw(&t, "new", &[], "3").await,
        pub_error("NEW", 503, 10077, "maximum messages exceeded")
    );

    // max_bytes, discard new.
    create(
        &t,
        stream::Config {
            name: "BYTES".into(),
            subjects: vec!["bytes".into()],
            max_bytes: 1000,
            discard: DiscardPolicy::New,
            ..Default::default()
        },
    )
    .await;
    let big = "x".repeat(300);
    let mut refused = None;
    for i in 0..10 {
        let v = publish_raw(&t, "bytes", &[], &big).await;
        if v.get("error").is_some() {
            refused = Some((i, v));
            break;
        }
    }
    let (i, v) = refused.expect("max_bytes refuses eventually");
    assert!(
        (1..=3).contains(&i),
        "{}: refused after {i} messages",
        f.label
    );
    assert_eq!(v, pub_error("BYTES", 503, 10077, "maximum bytes exceeded"));

    // max_bytes, discard old: total stays under the limit.
    let old_bytes = create(
        &t,
        stream::Config {
            name: "OLDBYTES".into(),
            subjects: vec!["oldbytes".into()],
            max_bytes: 1000,
            ..Default::default()
        },
    )
    .await;
    for _ in 0..10 {
        publish_raw(&t, "oldbytes", &[], &big).await;
    }
    let st = state(&old_bytes).await;
    assert!(st.bytes <= 1000 && st.messages >= 1, "{st:?}");
    assert_eq!(st.last_sequence, 10);

    // max_msgs_per_subject, discard old: the newest per subject stay.
    let per = create(
        &t,
        stream::Config {
            name: "PER".into(),
            subjects: vec!["per.*".into()],
            max_messages_per_subject: 2,
            ..Default::default()
        },
    )
    .await;
    for i in 0..5 {
        publish_raw(&t, "per.a", &[], &i.to_string()).await;
        publish_raw(&t, "per.b", &[], &i.to_string()).await;
    }
    let st = state(&per).await;
    assert_eq!(st.messages, 4);
    let last = per.get_last_raw_message_by_subject("per.a").await.unwrap();
    assert_eq!(last.payload.as_ref(), b"4");
    let first = per
        .get_first_raw_message_by_subject("per.a", 1)
        .await
        .unwrap();
    assert_eq!(first.payload.as_ref(), b"3");

    // max_msgs_per_subject, discard new per subject.
    create(
        &t,
        stream::Config {
            name: "PERNEW".into(),
            subjects: vec!["pernew.*".into()],
            max_messages_per_subject: 1,
            discard: DiscardPolicy::New,
            discard_new_per_subject: true,
            ..Default::default()
        },
    )
    .await;
    publish_raw(&t, "pernew.a", &[], "1").await;
    assert_eq!(
        publish_raw(&t, "pernew.a", &[], "2").await,
        pub_error(
            "PERNEW",
            503,
            10077,
            "maximum messages per subject exceeded"
        )
    );
    assert_eq!(
        publish_raw(&t, "pernew.b", &[], "1").await,
        json!({"stream":"PERNEW","seq":2})
    );

    // max_msg_size applies to the payload.
    create(
        &t,
        stream::Config {
            name: "SIZE".into(),
            subjects: vec!["size".into()],
            max_message_size: 10,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        publish_raw(&t, "size", &[], "0123456789X").await,
        pub_error("SIZE", 400, 10054, "message size exceeds maximum allowed")
    );
    assert_eq!(
        publish_raw(&t, "size", &[], "0123456789").await,
        json!({"stream":"SIZE","seq":1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_expires_messages() {
    for_each_flavor(BIN, max_age_on).await;
}

async fn max_age_on(f: Flavor) {
    let t = Js::start(&f).await;
    let s = create(
        &t,
        stream::Config {
            name: "AGE".into(),
            subjects: vec!["age".into()],
            max_age: Duration::from_secs(1),
            ..Default::default()
        },
    )
    .await;
    // The dedup window defaults to max_age when that is shorter.
    assert_eq!(
        s.cached_info().config.duplicate_window,
        Duration::from_secs(1),
        "{}",
        f.label
    );
    for i in 0..3 {
        publish_raw(&t, "age", &[], &i.to_string()).await;
    }
    eventually("messages older than max_age are removed", || async {
        state(&s).await.messages == 0
    })
    .await;
    let st = state(&s).await;
    assert_eq!((st.first_sequence, st.last_sequence), (4, 3));
    // New messages are accepted and numbered on.
    assert_eq!(
        publish_raw(&t, "age", &[], "late").await,
        json!({"stream":"AGE","seq":4})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_storage() {
    for_each_flavor(BIN, memory_on).await;
}

async fn memory_on(f: Flavor) {
    let t = Js::start(&f).await;
    let s = create(
        &t,
        stream::Config {
            name: "MEM".into(),
            subjects: vec!["mem.>".into()],
            storage: StorageType::Memory,
            max_messages: 3,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        s.cached_info().config.storage,
        StorageType::Memory,
        "{}",
        f.label
    );
    for i in 1..=4 {
        publish_raw(&t, "mem.x", &[("Hdr", "v")], &i.to_string()).await;
    }
    let st = state(&s).await;
    assert_eq!((st.messages, st.first_sequence), (3, 2));
    let m = s.get_raw_message(4).await.unwrap();
    assert_eq!(m.payload.as_ref(), b"4");
    assert_eq!(m.headers.get("Hdr").map(|v| v.as_str()), Some("v"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_get_delete_and_direct_get() {
    for_each_flavor(BIN, get_on).await;
}

async fn get_on(f: Flavor) {
    let t = Js::start(&f).await;
    let s = create(
        &t,
        stream::Config {
            name: "G".into(),
            subjects: vec!["g.*".into()],
            allow_direct: true,
            ..Default::default()
        },
    )
    .await;
    publish_raw(&t, "g.a", &[], "a1").await; // 1
    publish_raw(&t, "g.b", &[("X-Custom", "yes")], "b1").await; // 2
    publish_raw(&t, "g.a", &[], "a2").await; // 3

    // MSG.GET, raw: base64 payload and headers, RFC 3339 time.
    let v = t.api("$JS.API.STREAM.MSG.GET.G", r#"{"seq":1}"#).await;
    assert_eq!(
        v["type"],
        "io.nats.jetstream.api.v1.stream_msg_get_response"
    );
    let m = &v["message"];
    assert_eq!(
        (&m["subject"], &m["seq"], &m["data"]),
        (&json!("g.a"), &json!(1), &json!("YTE=")),
        "{}: {v}",
        f.label
    );
    assert!(m.get("hdrs").is_none(), "no headers, no hdrs field: {v}");
    assert!(m["time"].as_str().is_some_and(|s| s.ends_with('Z')));
    let v = t.api("$JS.API.STREAM.MSG.GET.G", r#"{"seq":2}"#).await;
    // "NATS/1.0\r\nX-Custom: yes\r\n\r\n"
    assert_eq!(v["message"]["hdrs"], "TkFUUy8xLjANClgtQ3VzdG9tOiB5ZXMNCg0K");
    let v = t
        .api("$JS.API.STREAM.MSG.GET.G", r#"{"last_by_subj":"g.a"}"#)
        .await;
    assert_eq!(v["message"]["seq"], 3);
    let v = t
        .api(
            "$JS.API.STREAM.MSG.GET.G",
            r#"{"seq":2,"next_by_subj":"g.a"}"#,
        )
        .await;
    assert_eq!(v["message"]["seq"], 3);
    let v = t.api("$JS.API.STREAM.MSG.GET.G", r#"{"seq":99}"#).await;
    assert_eq!(
        v,
        json!({"type":"io.nats.jetstream.api.v1.stream_msg_get_response",
               "error":{"code":404,"err_code":10037,"description":"no message found"}})
    );

    // async-nats: get_raw_message, last by subject, direct get.
    let m = s.get_raw_message(2).await.unwrap();
    assert_eq!(m.headers.get("X-Custom").map(|v| v.as_str()), Some("yes"));
    let m = s.direct_get(2).await.unwrap();
    assert_eq!(m.payload.as_ref(), b"b1");
    assert_eq!(m.sequence, 2);
    assert_eq!(m.subject.as_str(), "g.b");
    let m = s.direct_get_last_for_subject("g.a").await.unwrap();
    assert_eq!((m.sequence, m.payload.as_ref()), (3, &b"a2"[..]));
    let m = s.direct_get_next_for_subject("g.a", Some(2)).await.unwrap();
    assert_eq!(m.sequence, 3);
    assert!(s.direct_get(42).await.is_err(), "missing sequence");

    // Raw direct get: stored headers, then Nats-Stream/Subject/Sequence/Time-Stamp.
    let reply = tokio::time::timeout(
        WAIT,
        t.nc.request("$JS.API.DIRECT.GET.G.g.b", bytes::Bytes::new()),
    )
    .await
    .unwrap()
    .unwrap();
    let h = reply.headers.expect("direct get headers");
    assert_eq!(h.get("X-Custom").map(|v| v.as_str()), Some("yes"));
    assert_eq!(h.get("Nats-Stream").map(|v| v.as_str()), Some("G"));
    assert_eq!(h.get("Nats-Subject").map(|v| v.as_str()), Some("g.b"));
    assert_eq!(h.get("Nats-Sequence").map(|v| v.as_str()), Some("2"));
    assert!(h.get("Nats-Time-Stamp").is_some());
    let missing = tokio::time::timeout(
        WAIT,
        t.nc.request("$JS.API.DIRECT.GET.G.g.zzz", bytes::Bytes::new()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(missing.status.map(|s| s.as_u16()), Some(404));
    assert_eq!(missing.description.as_deref(), Some("Message Not Found"));

    // MSG.DELETE: success, then "no message found" for the same sequence.
    assert!(s.delete_message(1).await.unwrap());
    let v = t.api("$JS.API.STREAM.MSG.DELETE.G", r#"{"seq":1}"#).await;
    assert_eq!(
        v["error"],
        json!({"code":500,"err_code":10057,"description":"no message found"})
    );
    let v = t
        .api(
            "$JS.API.STREAM.MSG.DELETE.G",
            r#"{"seq":2,"no_erase":true}"#,
        )
        .await;
    assert_eq!(
        v,
        json!({"type":"io.nats.jetstream.api.v1.stream_msg_delete_response","success":true})
    );
    let st = state(&s).await;
    assert_eq!(
        (st.messages, st.first_sequence, st.last_sequence),
        (1, 3, 3)
    );
    assert!(s.get_raw_message(1).await.is_err());
    // An interior delete shows in the deleted count.
    publish_raw(&t, "g.a", &[], "a3").await; // 4
    publish_raw(&t, "g.a", &[], "a4").await; // 5
    assert!(s.delete_message(4).await.unwrap());
    let v = t
        .api("$JS.API.STREAM.INFO.G", r#"{"deleted_details":true}"#)
        .await;
    assert_eq!(v["state"]["deleted"], json!([4]), "{v}");
    assert_eq!(v["state"]["num_deleted"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_survives_restart() {
    for_each_flavor(BIN, restart_on).await;
}

async fn restart_on(f: Flavor) {
    let store = common::js::Durable::new(&f.bin);
    {
        let mut t = Js::on(f.label, store.start()).await;
        create(
            &t,
            stream::Config {
                name: "R".into(),
                subjects: vec!["r.>".into()],
                max_messages_per_subject: 3,
                ..Default::default()
            },
        )
        .await;
        create(
            &t,
            stream::Config {
                name: "RM".into(),
                subjects: vec!["rm".into()],
                storage: StorageType::Memory,
                ..Default::default()
            },
        )
        .await;
        for i in 0..5 {
            publish_raw(
                &t,
                "r.x",
                &[("Nats-Msg-Id", &format!("id{i}"))],
                &i.to_string(),
            )
            .await;
        }
        publish_raw(&t, "rm", &[], "volatile").await;
        assert!(t.server.terminate(), "{}: clean shutdown", f.label);
    }
    let t = Js::on(f.label, store.start()).await;
    let mut s = t.js.get_stream("R").await.unwrap();
    let info = s.info().await.unwrap().clone();
    assert_eq!(info.config.max_messages_per_subject, 3, "{}", f.label);
    assert_eq!(
        (
            info.state.messages,
            info.state.first_sequence,
            info.state.last_sequence
        ),
        (3, 3, 5)
    );
    let m = s.get_raw_message(5).await.unwrap();
    assert_eq!(m.payload.as_ref(), b"4");
    // The dedup window survives the restart too.
    assert_eq!(
        publish_raw(&t, "r.x", &[("Nats-Msg-Id", "id4")], "again").await,
        json!({"stream":"R","seq":5,"duplicate":true})
    );
    // A memory stream does not survive a restart at all (nats-server keeps
    // no definition of it on disk either).
    assert!(t.js.get_stream("RM").await.is_err(), "{}", f.label);
}

/// Changing a stream's subjects moves its capture, and its consumers carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_subjects_keeps_consumers() {
    for_each_flavor(BIN, update_subjects_on).await;
}

async fn update_subjects_on(f: Flavor) {
    use async_nats::jetstream::consumer::pull;
    let t = Js::start(&f).await;
    let s = create(
        &t,
        stream::Config {
            name: "MOVE".into(),
            subjects: vec!["old.>".into()],
            ..Default::default()
        },
    )
    .await;
    let c = s
        .create_consumer(pull::Config {
            durable_name: Some("mover".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    t.js.publish("old.1", "a".into())
        .await
        .unwrap()
        .await
        .unwrap();
    t.js.update_stream(stream::Config {
        name: "MOVE".into(),
        subjects: vec!["new.>".into()],
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{}: update: {e}", f.label));
    let ack = t.js.publish("new.1", "b".into()).await.unwrap().await;
    assert_eq!(ack.unwrap().sequence, 2, "{}", f.label);
    // old.> is no longer captured: a request there has no responder.
    let old = t.nc.request("old.2", "c".into()).await;
    assert!(old.is_err(), "{}: old subject still captured", f.label);
    let mut got = Vec::new();
    let mut msgs = c
        .fetch()
        .max_messages(2)
        .expires(WAIT)
        .messages()
        .await
        .unwrap();
    while let Some(m) = msgs.next().await {
        let m = m.unwrap();
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
        m.ack().await.unwrap();
    }
    assert_eq!(got, vec!["a", "b"], "{}", f.label);
}

/// The startup log names the store directory the way nats-server does.
#[test]
fn startup_log_names_the_store_directory() {
    for f in common::js::flavors(BIN) {
        let server = common::ServerSpec::new(&f.bin)
            .args(["-js", "-sd", "{dir}/store"])
            .start()
            .unwrap_or_else(|e| panic!("{}: {e}", f.label));
        let want = format!(
            "Store Directory: \"{}\"",
            server.dir().join("store").join("jetstream").display()
        );
        let log = server.log();
        assert!(log.contains("Starting JetStream"), "{}: {log}", f.label);
        assert!(log.contains(&want), "{}: want {want:?} in\n{log}", f.label);
    }
}
