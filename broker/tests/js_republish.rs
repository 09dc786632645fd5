//! A stream's `republish`: configuration checks, the republished messages
//! (subject transform, added headers, `headers_only`), updates that turn it
//! on, and KV buckets that republish. Each scenario runs against
//! nats-server and (per the flavor switch in `common/js.rs`) tribune-broker;
//! the transcripts must be the same, the nats-server one is also checked
//! against what nats-server is known to send. Timestamps are compared for
//! shape only.

mod common;

use std::time::Duration;

use async_nats::jetstream::kv;
use common::js::{same_on_every_flavor, Flavor, Js, WAIT};
use futures::StreamExt;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

/// A republished message as a comparable line: subject, headers (the
/// timestamp replaced by whether it parses as RFC 3339), payload.
fn line(m: &async_nats::Message) -> String {
    let mut hdrs: Vec<String> = Vec::new();
    if let Some(h) = &m.headers {
        for (k, vs) in h.iter() {
            for v in vs {
                let v = v.as_str();
                let shown = if AsRef::<str>::as_ref(k) == "Nats-Time-Stamp" {
                    match chrono::DateTime::parse_from_rfc3339(v) {
                        Ok(_) => "<rfc3339>".to_string(),
                        Err(_) => format!("<bad {v}>"),
                    }
                } else {
                    v.to_string()
                };
                hdrs.push(format!("{k}={shown}"));
            }
        }
    }
    hdrs.sort();
    format!(
        "{} [{}] {:?}",
        m.subject,
        hdrs.join(" "),
        String::from_utf8_lossy(&m.payload)
    )
}

/// The next `n` messages of `sub`, each within [`WAIT`].
async fn take(sub: &mut async_nats::Subscriber, n: usize, what: &str) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let m = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap_or_else(|_| panic!("{what}: only {} republished: {out:?}", out.len()))
            .expect("subscription open");
        out.push(line(&m));
    }
    out
}

/// Nothing more arrives on `sub` within a short grace period (a ceiling
/// on extra messages, not a timing assertion).
async fn none_more(sub: &mut async_nats::Subscriber, what: &str) {
    if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        panic!("{what}: unexpected extra message {}", line(&m));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_checks() {
    same_on_every_flavor(BIN, config_checks_on).await;
}

async fn config_checks_on(f: Flavor) -> Vec<String> {
    let t = Js::start(&f).await;
    let mut out = Vec::new();
    for (name, rp) in [
        ("CYCLE", json!({"src": ">", "dest": "orders.x"})),
        ("CYCLE2", json!({"dest": "orders.>"})),
        ("STAR", json!({"src": "orders.*", "dest": "rp.*"})),
        ("FWC", json!({"src": "orders.>", "dest": "rp.x"})),
        ("RANGE", json!({"src": "orders.*", "dest": "rp.$2"})),
        (
            "FUNC",
            json!({"src": "orders.*", "dest": "rp.{{wildcard(1,2)}}"}),
        ),
        (
            "OK",
            json!({"src": "orders.*", "dest": "rp.{{wildcard(1)}}"}),
        ),
        ("DEFAULT", json!({"dest": "rp2.>"})),
    ] {
        let body = json!({"name": name, "subjects": ["orders.>"], "republish": rp});
        let v = t
            .api(&format!("$JS.API.STREAM.CREATE.{name}"), &body.to_string())
            .await;
        let shown = match v.get("error") {
            Some(e) => e.to_string(),
            None => v["config"]["republish"].to_string(),
        };
        out.push(format!("{name}: {shown}"));
        if v.get("error").is_none() {
            t.api(&format!("$JS.API.STREAM.DELETE.{name}"), "").await;
        }
    }
    if f.label == "nats-server" {
        assert!(out[0].contains("10052"), "{out:?}");
        assert!(out[0].contains("forms a cycle"), "{out:?}");
        assert!(out[6].contains("rp.{{wildcard(1)}}"), "{out:?}");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republishes_stored_messages() {
    same_on_every_flavor(BIN, republish_on).await;
}

async fn republish_on(f: Flavor) -> Vec<String> {
    let t = Js::start(&f).await;
    let mut out = Vec::new();
    let mut sub = t.nc.subscribe("rp.>").await.unwrap();
    t.nc.flush().await.unwrap();
    let body = json!({
        "name": "O",
        "subjects": ["orders.*.*"],
        "republish": {"src": "orders.*.*", "dest": "rp.{{wildcard(2)}}.$1"},
    });
    let v = t.api("$JS.API.STREAM.CREATE.O", &body.to_string()).await;
    out.push(v["config"]["republish"].to_string());

    for (subject, payload) in [
        ("orders.eu.1", "a"),
        ("orders.us.2", "b"),
        ("orders.eu.1", "c"),
    ] {
        t.js.publish(subject, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Custom", "yes");
    t.js.publish_with_headers("orders.eu.1", headers, "d".into())
        .await
        .unwrap()
        .await
        .unwrap();
    // A duplicate is not stored, so not republished.
    for _ in 0..2 {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", "one");
        t.js.publish_with_headers("orders.us.2", h, "e".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    out.extend(take(&mut sub, 5, "create").await);
    none_more(&mut sub, "after create").await;

    // Turned to headers only by an update.
    let mut cfg = v["config"].clone();
    cfg["republish"]["headers_only"] = json!(true);
    let v = t.api("$JS.API.STREAM.UPDATE.O", &cfg.to_string()).await;
    out.push(v["config"]["republish"].to_string());
    t.js.publish("orders.us.9", "hello".into())
        .await
        .unwrap()
        .await
        .unwrap();
    out.extend(take(&mut sub, 1, "headers only").await);

    // Removed by an update: nothing more.
    cfg.as_object_mut().unwrap().remove("republish");
    let v = t.api("$JS.API.STREAM.UPDATE.O", &cfg.to_string()).await;
    out.push(format!("removed: {}", v["config"]["republish"]));
    t.js.publish("orders.us.9", "quiet".into())
        .await
        .unwrap()
        .await
        .unwrap();
    none_more(&mut sub, "after removal").await;

    if f.label == "nats-server" {
        let want_first = "rp.1.eu [Nats-Last-Sequence=0 Nats-Sequence=1 Nats-Stream=O \
                          Nats-Subject=orders.eu.1 Nats-Time-Stamp=<rfc3339>] \"a\"";
        assert_eq!(out[1], want_first, "{out:#?}");
        assert!(out[3].contains("Nats-Last-Sequence=1 "), "{out:#?}");
        assert!(out[4].contains("X-Custom=yes"), "{out:#?}");
        assert!(
            out[7].contains("Nats-Msg-Size=5") && out[7].ends_with("\"\""),
            "{out:#?}"
        );
    }
    out
}

/// Every stream update that adds `republish` to a running stream takes
/// effect, and a KV bucket made with `republish` sends its puts and
/// deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_bucket_republishes() {
    same_on_every_flavor(BIN, kv_on).await;
}

async fn kv_on(f: Flavor) -> Vec<String> {
    let t = Js::start(&f).await;
    let mut sub = t.nc.subscribe("watch.>").await.unwrap();
    t.nc.flush().await.unwrap();
    let store =
        t.js.create_key_value(kv::Config {
            bucket: "cfg".into(),
            history: 3,
            republish: Some(async_nats::jetstream::stream::Republish {
                source: ">".into(),
                destination: "watch.>".into(),
                headers_only: false,
            }),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{}: create bucket: {e}", f.label));
    store.put("a", "1".into()).await.unwrap();
    store.put("b", "2".into()).await.unwrap();
    store.delete("a").await.unwrap();
    let mut out = take(&mut sub, 3, "kv").await;
    let info = t.api("$JS.API.STREAM.INFO.KV_cfg", "").await;
    out.push(info["config"]["republish"].to_string());
    out
}
