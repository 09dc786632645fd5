//! Per-message TTLs (`allow_msg_ttl`, `Nats-TTL`) and subject delete
//! markers (`subject_delete_marker_ttl`), ADR-43: the same publishes and
//! API requests go to nats-server and tribune-broker, and the transcripts
//! (publish acks and errors, configs, what is left once time has passed,
//! the markers' stored headers) must be equal. The KV side (async-nats'
//! `limit_markers`, `create_with_ttl`, `purge_with_ttl`) is covered too.
//!
//! Waiting is by polling with a deadline that only guards against hanging;
//! nothing asserts a duration.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use async_nats::HeaderMap;
use base64::Engine;
use common::js::{same_on_every_flavor, stored_messages, Flavor, Js, WAIT};
use futures::StreamExt;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

/// Publish `subject` with the given `Nats-TTL` (None: no header); the ack
/// or the error codes, as a transcript line.
async fn publish(js: &Js, subject: &str, ttl: Option<&str>) -> String {
    let mut h = HeaderMap::new();
    if let Some(t) = ttl {
        h.insert("Nats-TTL", t);
    }
    let reply = tokio::time::timeout(
        WAIT,
        js.nc
            .request_with_headers(subject.to_string(), h, "x".into()),
    )
    .await
    .unwrap_or_else(|_| panic!("[{}] no ack for {subject}", js.label))
    .unwrap_or_else(|e| panic!("[{}] publish {subject}: {e}", js.label));
    let v: Value = serde_json::from_slice(&reply.payload).unwrap_or(Value::Null);
    match v.get("error") {
        Some(e) => format!(
            "{subject} ttl={ttl:?}: error {}/{} {}",
            e["code"], e["err_code"], e["description"]
        ),
        None => format!("{subject} ttl={ttl:?}: seq {}", v["seq"]),
    }
}

/// Create stream `name` from `cfg`: the fields the test is about, or the
/// error.
async fn create(js: &Js, name: &str, cfg: Value) -> String {
    let v = js
        .api(&format!("$JS.API.STREAM.CREATE.{name}"), &cfg.to_string())
        .await;
    config_line(&v)
}

fn config_line(v: &Value) -> String {
    if let Some(e) = v.get("error") {
        return format!("error {}/{} {}", e["code"], e["err_code"], e["description"]);
    }
    let c = &v["config"];
    format!(
        "allow_msg_ttl={} subject_delete_marker_ttl={} allow_rollup_hdrs={} deny_purge={}",
        c["allow_msg_ttl"], c["subject_delete_marker_ttl"], c["allow_rollup_hdrs"], c["deny_purge"]
    )
}

/// The subjects stored in `stream`, in sequence order.
async fn subjects(js: &Js, stream: &str) -> Vec<String> {
    stored_messages(&js.nc, stream)
        .await
        .iter()
        .filter_map(|m| m["subject"].as_str().map(str::to_string))
        .collect()
}

/// Poll until `stream` holds exactly the subjects `want` (in sequence
/// order); the line for the transcript then.
async fn settle(js: &Js, stream: &str, want: &[&str]) -> String {
    let end = Instant::now() + WAIT;
    loop {
        let got = subjects(js, stream).await;
        if got == want {
            return format!("{stream} holds {got:?}");
        }
        assert!(
            Instant::now() < end,
            "[{}] {stream} never held {want:?}, last {got:?}",
            js.label
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The stored header block of the last message on `subject`.
async fn last_headers(js: &Js, stream: &str, subject: &str) -> String {
    let v = js
        .api(
            &format!("$JS.API.STREAM.MSG.GET.{stream}"),
            &json!({ "last_by_subj": subject }).to_string(),
        )
        .await;
    let hdrs = v["message"]["hdrs"].as_str().unwrap_or("");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(hdrs)
        .unwrap_or_default();
    format!(
        "{subject}: {:?} data={:?}",
        String::from_utf8_lossy(&raw),
        v["message"]["data"]
    )
}

async fn streams(f: Flavor) -> Vec<String> {
    let js = Js::start(&f).await;
    let mut t = Vec::new();

    // TTLs are refused where not allowed; a bad one is bad everywhere.
    t.push(
        create(
            &js,
            "PLAIN",
            json!({"name": "PLAIN", "subjects": ["plain.>"]}),
        )
        .await,
    );
    t.push(publish(&js, "plain.a", Some("1s")).await);
    t.push(publish(&js, "plain.a", Some("never")).await);
    t.push(publish(&js, "plain.a", Some("soon")).await);
    t.push(publish(&js, "plain.a", None).await);

    // Marker settings: checked, and they turn on what markers need.
    for (name, sdm) in [("SHORT", 500_000_000i64), ("NEG", -1)] {
        t.push(format!(
            "{name}: {}",
            create(
                &js,
                name,
                json!({"name": name, "subject_delete_marker_ttl": sdm})
            )
            .await
        ));
    }
    t.push(format!(
        "MARK: {}",
        create(
            &js,
            "MARK",
            json!({"name": "MARK", "subjects": ["mark.>"], "max_age": 1_000_000_000i64,
                "subject_delete_marker_ttl": 2_000_000_000i64, "deny_purge": true}),
        )
        .await
    ));
    let v = js
        .api(
            "$JS.API.STREAM.UPDATE.MARK",
            &json!({"name": "MARK", "subjects": ["mark.>"], "max_age": 1_000_000_000i64,
                "allow_msg_ttl": false})
            .to_string(),
        )
        .await;
    t.push(format!("disable TTLs: {}", config_line(&v)));

    // Per-message TTLs: short ones go, "never" and none stay.
    t.push(
        create(
            &js,
            "TTL",
            json!({"name": "TTL", "subjects": ["ttl.>"], "allow_msg_ttl": true}),
        )
        .await,
    );
    for (subject, ttl) in [
        ("ttl.short", Some("1s")),
        ("ttl.number", Some("1")),
        ("ttl.never", Some("never")),
        ("ttl.none", None),
        ("ttl.zero", Some("0")),
        ("ttl.sub-second", Some("500ms")),
        ("ttl.negative", Some("-1")),
        ("ttl.word", Some("later")),
        ("ttl.long", Some("1h")),
    ] {
        t.push(publish(&js, subject, ttl).await);
    }
    t.push(settle(&js, "TTL", &["ttl.never", "ttl.none", "ttl.long"]).await);
    t.push(last_headers(&js, "TTL", "ttl.never").await);

    // Markers: age takes a subject's last message and leaves a marker,
    // which goes in its own time; an older message of the subject just
    // goes; "never" outlives max_age. A push consumer made first sees
    // every message the stream stores, markers included, whenever they
    // come (the markers themselves live only a second).
    let inbox = js.nc.new_inbox();
    let mut seen = js.nc.subscribe(inbox.clone()).await.expect("subscribe");
    let v = js
        .api(
            "$JS.API.CONSUMER.CREATE.MARK",
            &json!({"stream_name": "MARK",
                "config": {"deliver_subject": inbox, "ack_policy": "none"}})
            .to_string(),
        )
        .await;
    assert!(v.get("error").is_none(), "[{}] {v}", js.label);
    t.push(publish(&js, "mark.a", None).await);
    t.push(publish(&js, "mark.a", None).await);
    t.push(publish(&js, "mark.b", Some("never")).await);
    t.push(publish(&js, "mark.c", Some("1s")).await);
    let mut stored = 0;
    while stored < 6 {
        let m = tokio::time::timeout(WAIT, seen.next())
            .await
            .unwrap_or_else(|_| panic!("[{}] only {stored} of 6 stored messages seen", js.label))
            .expect("subscription open");
        if m.status.is_some() {
            continue;
        }
        stored += 1;
        let h = m.headers.clone().unwrap_or_default();
        let get = |k: &str| h.get(k).map(|v| v.as_str().to_string());
        t.push(format!(
            "stored {}: reason {:?} ttl {:?} rollup {:?} payload {:?}",
            m.subject,
            get("Nats-Marker-Reason"),
            get("Nats-TTL"),
            get("Nats-Rollup"),
            m.payload
        ));
    }
    t.push(settle(&js, "MARK", &["mark.b"]).await);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttls_and_markers_match_nats_server() {
    same_on_every_flavor(BIN, streams).await;
}

async fn kv_markers(f: Flavor) -> Vec<String> {
    let js = Js::start(&f).await;
    let mut t = Vec::new();
    let bucket = js
        .js
        .create_key_value(kv::Config {
            bucket: "marks".into(),
            history: 5,
            max_age: Duration::from_secs(1),
            limit_markers: Some(Duration::from_secs(1)),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("[{}] bucket: {e}", js.label));
    let info = js.api("$JS.API.STREAM.INFO.KV_marks", "").await;
    t.push(config_line(&info));

    // A watcher sees the put, then the key aged out (a purge).
    let mut w = bucket
        .watch_all()
        .await
        .unwrap_or_else(|e| panic!("[{}] watch: {e}", js.label));
    bucket
        .put("k", "v".into())
        .await
        .unwrap_or_else(|e| panic!("[{}] put: {e}", js.label));
    for _ in 0..2 {
        let e = tokio::time::timeout(WAIT, w.next())
            .await
            .unwrap_or_else(|_| panic!("[{}] no watch entry", js.label))
            .expect("watch open")
            .unwrap_or_else(|e| panic!("[{}] watch entry: {e}", js.label));
        t.push(format!("{} {:?} {:?}", e.key, e.operation, e.value));
    }

    // A key created with a TTL is gone after it; a purge with a TTL
    // leaves its marker for that long.
    bucket
        .create_with_ttl("short", "v".into(), Duration::from_secs(1))
        .await
        .unwrap_or_else(|e| panic!("[{}] create with ttl: {e}", js.label));
    let end = Instant::now() + WAIT;
    while bucket.get("short").await.ok().flatten().is_some() {
        assert!(Instant::now() < end, "[{}] the key never expired", js.label);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.push("short expired".to_string());
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_limit_markers_match_nats_server() {
    same_on_every_flavor(BIN, kv_markers).await;
}
