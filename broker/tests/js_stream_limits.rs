//! A stream's `consumer_limits` (defaults and ceilings for its consumers,
//! on create and update) and `STREAM.INFO` with `subjects_filter` (the
//! per-subject counts and their paging fields), against nats-server and
//! (per the flavor switch in `common/js.rs`) tribune-broker: both must
//! answer the same.

mod common;

use common::js::{same_on_every_flavor, Flavor, Js};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

/// An answer's error, or the fields named by `keys` (dotted paths).
fn shown(v: &Value, keys: &[&str]) -> String {
    if let Some(e) = v.get("error") {
        return format!("error {e}");
    }
    let parts: Vec<String> = keys
        .iter()
        .map(|k| {
            let mut x = v;
            for p in k.split('.') {
                x = &x[p];
            }
            format!("{k}={x}")
        })
        .collect();
    parts.join(" ")
}

/// nats-server lists the consumers a stream update would violate in map
/// order: sort them, and name the ephemeral one generically.
fn normalize_violators(v: &mut Value) {
    const PREFIX: &str = "change to limits violates consumers: ";
    let Some(d) = v["error"]["description"].as_str() else {
        return;
    };
    let Some(list) = d.strip_prefix(PREFIX) else {
        return;
    };
    let known = ["dflt", "none", "low", "pend", "inact"];
    let mut names: Vec<&str> = list
        .split(", ")
        .map(|n| if known.contains(&n) { n } else { "<ephemeral>" })
        .collect();
    names.sort_unstable();
    v["error"]["description"] = json!(format!("{PREFIX}{}", names.join(", ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_limits() {
    same_on_every_flavor(BIN, consumer_limits_on).await;
}

async fn consumer_limits_on(f: Flavor) -> Vec<String> {
    let t = Js::start(&f).await;
    let mut out = Vec::new();
    let v = t
        .api(
            "$JS.API.STREAM.CREATE.L",
            &json!({"name": "L", "subjects": ["l.>"],
                    "consumer_limits": {"inactive_threshold": 2_000_000_000u64, "max_ack_pending": 10}})
            .to_string(),
        )
        .await;
    out.push(shown(&v, &["config.consumer_limits"]));
    let cons = ["config.max_ack_pending", "config.inactive_threshold"];
    for (name, cfg) in [
        (
            "dflt",
            json!({"durable_name": "dflt", "ack_policy": "explicit"}),
        ),
        ("eph", json!({"ack_policy": "explicit"})),
        (
            "none",
            json!({"durable_name": "none", "ack_policy": "none"}),
        ),
        (
            "low",
            json!({"durable_name": "low", "ack_policy": "explicit", "max_ack_pending": 5, "inactive_threshold": 1_000_000_000u64}),
        ),
        (
            "pend",
            json!({"durable_name": "pend", "ack_policy": "explicit", "max_ack_pending": 11}),
        ),
        (
            "inact",
            json!({"durable_name": "inact", "ack_policy": "explicit", "inactive_threshold": 3_000_000_000u64}),
        ),
    ] {
        let subject = if cfg.get("durable_name").is_some() {
            format!("$JS.API.CONSUMER.CREATE.L.{name}")
        } else {
            "$JS.API.CONSUMER.CREATE.L".to_string()
        };
        let v = t
            .api(
                &subject,
                &json!({"stream_name": "L", "config": cfg}).to_string(),
            )
            .await;
        out.push(format!("{name}: {}", shown(&v, &cons)));
    }
    // Lowering a limit below an existing consumer's is refused; raising
    // it or removing it is not.
    let mut cfg = t.api("$JS.API.STREAM.INFO.L", "").await["config"].clone();
    for limits in [
        json!({"max_ack_pending": 4}),
        json!({"inactive_threshold": 500_000_000u64}),
        json!({"max_ack_pending": 20}),
        json!({}),
    ] {
        cfg["consumer_limits"] = limits;
        let mut v = t.api("$JS.API.STREAM.UPDATE.L", &cfg.to_string()).await;
        normalize_violators(&mut v);
        out.push(format!(
            "update: {}",
            shown(&v, &["config.consumer_limits"])
        ));
    }
    let v = t.api("$JS.API.STREAM.INFO.L", "").await;
    out.push(shown(&v, &["config.consumer_limits"]));
    if f.label == "nats-server" {
        assert!(out[5].contains("10121"), "{out:#?}");
        assert!(out[6].contains("10153"), "{out:#?}");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_info_subjects_filter() {
    same_on_every_flavor(BIN, subjects_filter_on).await;
}

async fn subjects_filter_on(f: Flavor) -> Vec<String> {
    let t = Js::start(&f).await;
    let mut out = Vec::new();
    t.api(
        "$JS.API.STREAM.CREATE.M",
        &json!({"name": "M", "subjects": ["m.>"], "max_msgs_per_subject": 2}).to_string(),
    )
    .await;
    for i in 0..300u32 {
        let subject = format!("m.{}.{}", i % 3, i % 50);
        t.js.publish(subject, "x".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let page = [
        "total",
        "offset",
        "limit",
        "state.num_subjects",
        "state.messages",
    ];
    for req in [
        json!({}),
        json!({"subjects_filter": ">"}),
        json!({"subjects_filter": "m.>"}),
        json!({"subjects_filter": "m.1.*"}),
        json!({"subjects_filter": "m.*.7"}),
        json!({"subjects_filter": "m.>", "offset": 140}),
        json!({"subjects_filter": "m.>", "offset": 500}),
        json!({"subjects_filter": "m.>", "offset": -3}),
        json!({"subjects_filter": "nope.>"}),
        json!({"subjects_filter": "nope.>", "offset": 5}),
    ] {
        let v = t.api("$JS.API.STREAM.INFO.M", &req.to_string()).await;
        let subjects = &v["state"]["subjects"];
        let listed = subjects.as_object().map(|m| {
            let counted: u64 = m.values().filter_map(Value::as_u64).sum();
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            format!(
                "{} subjects ({counted} msgs), first {:?}, last {:?}",
                m.len(),
                keys.first(),
                keys.last()
            )
        });
        out.push(format!(
            "{req}: {} {}",
            shown(&v, &page),
            listed.unwrap_or_else(|| format!("subjects={subjects}"))
        ));
    }
    if f.label == "nats-server" {
        assert!(out[2].contains("150 subjects (300 msgs)"), "{out:#?}");
    }
    out
}

/// `jetstream { limits {} }`: the server's ceilings lower the defaults a
/// stream or consumer gets and refuse what asks for more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_limits() {
    same_on_every_flavor(BIN, server_limits_on).await;
}

async fn server_limits_on(f: Flavor) -> Vec<String> {
    let server = common::js::js_spec(&f.bin)
        .config(
            "jetstream { limits { max_request_batch: 100, max_ack_pending: 500, \
             duplicate_window: \"30s\" } }\n",
        )
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let t = Js::on(f.label, server).await;
    let mut out = Vec::new();
    for (name, window) in [
        ("D1", None),
        ("D2", Some(60_000_000_000u64)),
        ("D3", Some(10_000_000_000)),
    ] {
        let mut cfg = json!({"name": name, "subjects": [format!("{}.>", name.to_lowercase())]});
        if let Some(w) = window {
            cfg["duplicate_window"] = json!(w);
        }
        let v = t
            .api(&format!("$JS.API.STREAM.CREATE.{name}"), &cfg.to_string())
            .await;
        out.push(format!(
            "{name}: {}",
            shown(&v, &["config.duplicate_window"])
        ));
    }
    let keys = ["config.max_ack_pending", "config.max_batch"];
    for (name, cfg) in [
        (
            "dflt",
            json!({"durable_name": "dflt", "ack_policy": "explicit"}),
        ),
        (
            "batch",
            json!({"durable_name": "batch", "ack_policy": "explicit", "max_batch": 50}),
        ),
        (
            "big",
            json!({"durable_name": "big", "ack_policy": "explicit", "max_batch": 200}),
        ),
        (
            "pend",
            json!({"durable_name": "pend", "ack_policy": "explicit", "max_ack_pending": 600}),
        ),
        (
            "push",
            json!({"durable_name": "push", "ack_policy": "explicit", "deliver_subject": "p"}),
        ),
        (
            "none",
            json!({"durable_name": "none", "ack_policy": "none"}),
        ),
    ] {
        let v = t
            .api(
                &format!("$JS.API.CONSUMER.CREATE.D1.{name}"),
                &json!({"stream_name": "D1", "config": cfg}).to_string(),
            )
            .await;
        out.push(format!("{name}: {}", shown(&v, &keys)));
    }
    out
}
