//! Consumer pause and resume (nats-server 2.11), consumer updates that
//! change `filter_subject(s)`, the statuses a pull request hears, and
//! priority groups (`overflow`, `pinned_client`, `prioritized`),
//! against nats-server and (see `common/js.rs`, the flavor switch)
//! tribune-broker. Each scenario writes a transcript of what it saw, with
//! times and ids taken out, and the transcripts of the two servers must
//! be equal.
//!
//! Waits are bounded by generous deadlines; nothing asserts a duration.

mod common;

use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use common::js::{eventually, flavors, Flavor, Js, WAIT};
use common::raw::{RawConn, RawMsg};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

/// Fields whose values differ by nature (times, ids, versions); their
/// presence is kept as `"<set>"` so omitempty differences still show.
const VOLATILE: &[&str] = &[
    "created",
    "ts",
    "timestamp",
    "last_active",
    "id",
    "pause_remaining",
    "cluster",
    "pinned_client_id",
    "pinned_id",
];

/// Go's zero time: a deadline that is not set.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Left out: nats-server stamps its version into `config.metadata`.
const IGNORED: &[&str] = &["metadata"];

fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !IGNORED.contains(&k.as_str()))
                .map(|(k, v)| {
                    // Deadlines are relative to each run's clock; the
                    // scenarios check them where they matter.
                    let deadline =
                        matches!(k.as_str(), "pause_until" | "pinned_ts") && v != &json!(ZERO_TIME);
                    let v = if VOLATILE.contains(&k.as_str()) || deadline {
                        json!("<set>")
                    } else {
                        normalize(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// An API error as the transcript keeps it: the codes (descriptions of
/// JSON errors quote Go's decoder, which Tribune's does not imitate).
fn error_codes(v: &Value) -> Value {
    json!({"code": v["error"]["code"], "err_code": v["error"]["err_code"]})
}

/// Go's RFC 3339 with nanoseconds, in UTC, for `t`: trailing zeros of the
/// fraction dropped, as Go writes it (and so as the servers echo it back).
fn rfc3339(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    let full = dt.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let Some(body) = full.strip_suffix('Z') else {
        return full;
    };
    let body = match body.split_once('.') {
        Some((secs, frac)) if frac.trim_end_matches('0').is_empty() => secs.to_string(),
        Some((secs, frac)) => format!("{secs}.{}", frac.trim_end_matches('0')),
        None => body.to_string(),
    };
    format!("{body}Z")
}

/// Run `scenario` on every flavor and require equal transcripts.
async fn compare<F, Fut>(scenario: F)
where
    F: Fn(Flavor) -> Fut,
    Fut: std::future::Future<Output = Vec<Value>>,
{
    let mut seen: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for f in flavors(BIN) {
        eprintln!("=== {} ({})", f.label, f.bin.display());
        let label = f.label;
        seen.push((label, scenario(f).await));
    }
    let (reference, want) = &seen[0];
    for (label, got) in &seen[1..] {
        for (i, (w, g)) in want.iter().zip(got.iter()).enumerate() {
            assert_eq!(
                g, w,
                "step {i}: {label} differs from {reference}\n{label}: {g:#}\n{reference}: {w:#}"
            );
        }
        assert_eq!(got.len(), want.len(), "{label}: transcript length");
    }
}

async fn setup_stream(js: &Js, name: &str, subjects: &[&str], msgs: &[(&str, &str)]) {
    js.js
        .create_stream(jetstream::stream::Config {
            name: name.into(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("[{}] create stream {name}: {e}", js.label));
    for (subject, body) in msgs {
        js.js
            .publish(subject.to_string(), body.to_string().into())
            .await
            .expect("publish")
            .await
            .expect("publish ack");
    }
}

/// The next message on `sub`, or a panic after [`WAIT`].
async fn next(sub: &mut async_nats::Subscriber, what: &str) -> async_nats::Message {
    timeout(WAIT, sub.next())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
        .unwrap_or_else(|| panic!("subscription for {what} ended"))
}

/// A pull request to `stream`/`consumer` with `body`; the first answer as
/// the transcript keeps it (status line or the message's subject and data).
async fn pull_once(js: &Js, stream: &str, consumer: &str, body: &str) -> Value {
    let inbox = js.nc.new_inbox();
    let mut sub = js.nc.subscribe(inbox.clone()).await.expect("subscribe");
    js.nc
        .publish_with_reply(
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            inbox,
            body.to_string().into(),
        )
        .await
        .expect("pull request");
    let m = next(&mut sub, "pull answer").await;
    answer_of(&m)
}

fn answer_of(m: &async_nats::Message) -> Value {
    match m.status {
        Some(code) => json!({
            "status": code.as_u16(),
            "description": m.description.clone().unwrap_or_default(),
        }),
        None => json!({
            "subject": m.subject.as_str(),
            "data": String::from_utf8_lossy(&m.payload),
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_through_the_api() {
    compare(pause_api_on).await;
}

async fn pause_api_on(f: Flavor) -> Vec<Value> {
    let js = Js::start(&f).await;
    let mut t = Vec::new();
    setup_stream(
        &js,
        "PS",
        &["ps.>"],
        &[("ps.a", "1"), ("ps.b", "2"), ("ps.c", "3")],
    )
    .await;
    let mut advisories = js
        .nc
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.PAUSE.PS.*")
        .await
        .expect("subscribe advisories");
    js.nc.flush().await.expect("flush");

    // Created paused, with a deadline given in another zone: kept in UTC.
    let until = SystemTime::now() + Duration::from_secs(3600);
    let dt: chrono::DateTime<chrono::FixedOffset> = chrono::DateTime::<chrono::Utc>::from(until)
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).expect("offset"));
    // Whole seconds: Go drops a fraction's trailing zeros when it writes
    // the deadline back, so a fraction could come back shorter.
    let given = dt.to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let cfg = json!({"durable_name": "C", "ack_policy": "explicit", "pause_until": given});
    let created = js
        .api(
            "$JS.API.CONSUMER.CREATE.PS.C",
            &json!({"stream_name": "PS", "config": cfg}).to_string(),
        )
        .await;
    assert_eq!(
        created["config"]["pause_until"].as_str(),
        Some(given.as_str()),
        "[{}] the deadline is kept as given: {created}",
        js.label
    );
    assert!(created["pause_remaining"].as_i64().unwrap_or(0) > 0);
    t.push(normalize(&created));
    t.push(normalize(
        &serde_json::from_slice::<Value>(&next(&mut advisories, "pause advisory").await.payload)
            .expect("advisory JSON"),
    ));

    // Nothing is delivered while paused: a no-wait pull hears "no
    // messages", one that waits times out with its whole batch pending.
    t.push(pull_once(&js, "PS", "C", r#"{"batch":2,"no_wait":true}"#).await);
    t.push(pull_once(&js, "PS", "C", r#"{"batch":2,"expires":300000000}"#).await);
    let info = js.api("$JS.API.CONSUMER.INFO.PS.C", "").await;
    assert_eq!(info["paused"], json!(true), "[{}] {info}", js.label);
    t.push(normalize(&info));

    // An update keeps the pause (only CONSUMER.PAUSE changes it).
    let updated = js
        .api(
            "$JS.API.CONSUMER.CREATE.PS.C",
            &json!({"stream_name": "PS", "action": "update",
                "config": {"durable_name": "C", "ack_policy": "explicit", "description": "d"}})
            .to_string(),
        )
        .await;
    t.push(normalize(&updated));
    // nats-server announces the pause again after every create request.
    t.push(normalize(
        &serde_json::from_slice::<Value>(&next(&mut advisories, "pause advisory").await.payload)
            .expect("advisory JSON"),
    ));

    // Resume with an empty request.
    let resumed = js.api("$JS.API.CONSUMER.PAUSE.PS.C", "").await;
    t.push(normalize(&resumed));
    t.push(normalize(
        &serde_json::from_slice::<Value>(&next(&mut advisories, "resume advisory").await.payload)
            .expect("advisory JSON"),
    ));
    for _ in 0..3 {
        t.push(pull_once(&js, "PS", "C", r#"{"batch":1,"expires":5000000000}"#).await);
    }

    // Paused again, then a deadline in the past: not paused, kept as given.
    let again = js
        .api(
            "$JS.API.CONSUMER.PAUSE.PS.C",
            &json!({"pause_until": rfc3339(until)}).to_string(),
        )
        .await;
    t.push(normalize(&again));
    let past = rfc3339(SystemTime::now() - Duration::from_secs(60));
    let past_answer = js
        .api(
            "$JS.API.CONSUMER.PAUSE.PS.C",
            &json!({ "pause_until": past }).to_string(),
        )
        .await;
    assert_eq!(past_answer["pause_until"].as_str(), Some(past.as_str()));
    t.push(normalize(&past_answer));
    t.push(normalize(&js.api("$JS.API.CONSUMER.INFO.PS.C", "").await));

    // Errors.
    t.push(error_codes(
        &js.api("$JS.API.CONSUMER.PAUSE.PS.NOPE", "{}").await,
    ));
    t.push(error_codes(
        &js.api("$JS.API.CONSUMER.PAUSE.NOPE.C", "{}").await,
    ));
    t.push(error_codes(
        &js.api("$JS.API.CONSUMER.PAUSE.PS.C", r#"{"pause_until": 5}"#)
            .await,
    ));
    t.push(error_codes(
        &js.api(
            "$JS.API.CONSUMER.PAUSE.PS.C",
            r#"{"pause_until": "tomorrow"}"#,
        )
        .await,
    ));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_ends_by_itself_for_pull_and_push() {
    compare(pause_ends_on).await;
}

async fn pause_ends_on(f: Flavor) -> Vec<Value> {
    let js = Js::start(&f).await;
    let mut t = Vec::new();
    setup_stream(&js, "PE", &["pe.>"], &[]).await;
    let mut advisories = js
        .nc
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.PAUSE.PE.*")
        .await
        .expect("subscribe advisories");
    let mut delivered = js.nc.subscribe("push.pe").await.expect("subscribe push");
    js.nc.flush().await.expect("flush");

    // A pull and a push consumer, paused for a little while.
    let until = rfc3339(SystemTime::now() + Duration::from_secs(2));
    for (name, extra) in [
        ("PULL", json!({})),
        ("PUSH", json!({"deliver_subject": "push.pe"})),
    ] {
        let mut cfg = json!({"durable_name": name, "ack_policy": "explicit", "pause_until": until});
        if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        let r = js
            .api(
                &format!("$JS.API.CONSUMER.CREATE.PE.{name}"),
                &json!({"stream_name": "PE", "config": cfg}).to_string(),
            )
            .await;
        assert!(r.get("error").is_none(), "[{}] {r}", js.label);
    }
    // A pull request waiting through the pause.
    let inbox = js.nc.new_inbox();
    let mut pulled = js.nc.subscribe(inbox.clone()).await.expect("subscribe");
    js.nc
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.PE.PULL",
            inbox,
            r#"{"batch":1,"expires":30000000000}"#.into(),
        )
        .await
        .expect("pull");
    // nats-server counts a pull request once its consumer's goroutine took
    // it from the queue: wait for that (or the pause's end) before the
    // publish, so the request is already waiting when the message lands.
    eventually("the pull request to wait through the pause", || {
        let js = &js;
        async move {
            let info = js.api("$JS.API.CONSUMER.INFO.PE.PULL", "").await;
            info["num_waiting"] == json!(1) || info["paused"] != json!(true)
        }
    })
    .await;
    js.js
        .publish("pe.x", "held".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    // While the info still says paused, nothing was delivered.
    let info = js.api("$JS.API.CONSUMER.INFO.PE.PULL", "").await;
    if info["paused"] == json!(true) {
        assert_eq!(info["num_waiting"], json!(1), "[{}] {info}", js.label);
        assert_eq!(info["delivered"]["stream_seq"], json!(0));
    }
    let m = next(&mut pulled, "the held message on the pull consumer").await;
    t.push(answer_of(&m));
    let m = next(&mut delivered, "the held message on the push consumer").await;
    t.push(answer_of(&m));
    // Two pause advisories (one per consumer), then two resume ones.
    let mut seen: Vec<Value> = Vec::new();
    for _ in 0..4 {
        let a: Value = serde_json::from_slice(&next(&mut advisories, "advisory").await.payload)
            .expect("advisory JSON");
        assert_eq!(a["pause_until"].as_str(), Some(until.as_str()), "{a}");
        seen.push(normalize(&a));
    }
    seen.sort_by_key(|v| (v["paused"] == json!(false), v["consumer"].to_string()));
    t.extend(seen);
    let info = js.api("$JS.API.CONSUMER.INFO.PE.PULL", "").await;
    assert!(info.get("paused").is_none(), "[{}] {info}", js.label);
    // A push consumer with a subscriber on its deliver subject is bound.
    let push = js.api("$JS.API.CONSUMER.INFO.PE.PUSH", "").await;
    assert_eq!(push["push_bound"], json!(true), "[{}] {push}", js.label);
    t.push(normalize(&push));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updating_filter_subjects() {
    compare(update_filters_on).await;
}

async fn update_filters_on(f: Flavor) -> Vec<Value> {
    let js = Js::start(&f).await;
    let mut t = Vec::new();
    setup_stream(
        &js,
        "UF",
        &["uf.>"],
        &[
            ("uf.a", "a1"),
            ("uf.b", "b1"),
            ("uf.c", "c1"),
            ("uf.a", "a2"),
        ],
    )
    .await;
    let create = |cfg: Value, action: &str| {
        json!({"stream_name": "UF", "action": action, "config": cfg}).to_string()
    };
    let base = json!({"durable_name": "F", "ack_policy": "explicit", "filter_subject": "uf.a"});
    t.push(normalize(
        &js.api("$JS.API.CONSUMER.CREATE.UF.F", &create(base.clone(), ""))
            .await,
    ));
    t.push(pull_once(&js, "UF", "F", r#"{"batch":1,"no_wait":true}"#).await);
    // To several filters, then back to one.
    let multi = json!({"durable_name": "F", "ack_policy": "explicit",
        "filter_subjects": ["uf.b", "uf.c"]});
    t.push(normalize(
        &js.api("$JS.API.CONSUMER.CREATE.UF.F", &create(multi, "update"))
            .await,
    ));
    js.js
        .publish("uf.c", "c2".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    for _ in 0..2 {
        t.push(pull_once(&js, "UF", "F", r#"{"batch":1,"no_wait":true}"#).await);
    }
    let single = json!({"durable_name": "F", "ack_policy": "explicit", "filter_subject": "uf.a"});
    t.push(normalize(
        &js.api("$JS.API.CONSUMER.CREATE.UF.F", &create(single, "update"))
            .await,
    ));
    t.push(pull_once(&js, "UF", "F", r#"{"batch":1,"no_wait":true}"#).await);
    t.push(pull_once(&js, "UF", "F", r#"{"batch":1,"no_wait":true}"#).await);

    // What may not change, and an existing name on a plain create.
    let changed = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        c
    };
    for (cfg, action) in [
        (changed("deliver_policy", json!("new")), ""),
        (changed("ack_policy", json!("all")), ""),
        (changed("replay_policy", json!("original")), ""),
        (changed("max_waiting", json!(7)), ""),
        (changed("deliver_subject", json!("push.uf")), ""),
        (changed("mem_storage", json!(true)), ""),
        (changed("description", json!("x")), "create"),
    ] {
        let r = js
            .api("$JS.API.CONSUMER.CREATE.UF.F", &create(cfg, action))
            .await;
        t.push(json!({"error": r["error"]}));
    }
    t
}

/// The raw pull answers: a connection of its own reads them byte for byte.
fn raw_pulls(port: u16, requests: &[(&str, &str)], answers: usize) -> Vec<Value> {
    let mut c = RawConn::open(port);
    c.send("CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\n");
    c.send("SUB _PULL.> 1\r\n");
    for (i, (subject, body)) in requests.iter().enumerate() {
        c.send(&format!(
            "PUB {subject} _PULL.{i} {}\r\n{body}\r\n",
            body.len()
        ));
    }
    (0..answers)
        .map(|_| {
            let m: RawMsg = c.next_msg();
            json!({
                "to": m.subject,
                "headers": String::from_utf8_lossy(&m.headers),
                "payload": String::from_utf8_lossy(&m.payload),
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_request_statuses() {
    compare(pull_statuses_on).await;
}

async fn pull_statuses_on(f: Flavor) -> Vec<Value> {
    let js = Js::start(&f).await;
    let port = js.server.port;
    let mut t = Vec::new();
    setup_stream(
        &js,
        "PR",
        &["pr.>"],
        &[("pr.a", "0123456789"), ("pr.b", "x")],
    )
    .await;
    let cfg = json!({"durable_name": "L", "ack_policy": "explicit",
        "max_batch": 5, "max_expires": 2000000000u64, "max_bytes": 10000});
    let r = js
        .api(
            "$JS.API.CONSUMER.CREATE.PR.L",
            &json!({"stream_name": "PR", "config": cfg}).to_string(),
        )
        .await;
    t.push(normalize(&r));
    let next = "$JS.API.CONSUMER.MSG.NEXT.PR.L";
    let run = |reqs: Vec<(&'static str, &'static str)>, n: usize| {
        tokio::task::spawn_blocking(move || raw_pulls(port, &reqs, n))
    };
    // Over the consumer's limits, and a malformed request.
    t.extend(
        run(
            vec![
                (next, r#"{"batch":6}"#),
                (next, r#"{"batch":1,"expires":3000000000}"#),
                (next, r#"{"batch":1,"max_bytes":20000}"#),
            ],
            3,
        )
        .await
        .expect("raw pulls"),
    );
    // max_bytes below the first message's size; then room for one message
    // but a batch of one (the rest of the bytes are reported).
    t.extend(
        run(vec![(next, r#"{"batch":2,"max_bytes":20}"#)], 1)
            .await
            .expect("raw pulls"),
    );
    let answers = run(vec![(next, r#"{"batch":1,"max_bytes":1000}"#)], 2)
        .await
        .expect("raw pulls");
    // The message's ack reply carries a timestamp: keep its subject only.
    t.push(json!({"to": answers[0]["to"], "payload": answers[0]["payload"]}));
    t.push(answers[1].clone());
    // A request that expires with messages still owed.
    t.extend(
        run(
            vec![(next, r#"{"batch":3,"expires":1000000000,"max_bytes":500}"#)],
            2,
        )
        .await
        .expect("raw pulls")
        .into_iter()
        .map(|a| {
            if a["headers"]
                .as_str()
                .is_some_and(|h| h.starts_with("NATS/1.0 4"))
            {
                a
            } else {
                json!({"to": a["to"], "payload": a["payload"]})
            }
        }),
    );
    // An idle heartbeat while a request waits (the first answer), and a
    // heartbeat that does not fit twice into the wait.
    t.extend(
        run(
            vec![(
                next,
                r#"{"batch":1,"expires":1500000000,"idle_heartbeat":500000000}"#,
            )],
            1,
        )
        .await
        .expect("raw pulls"),
    );
    t.extend(
        run(
            vec![(
                next,
                r#"{"batch":1,"expires":1000000000,"idle_heartbeat":600000000}"#,
            )],
            1,
        )
        .await
        .expect("raw pulls"),
    );
    // No messages left: a no-wait request.
    t.extend(
        run(vec![(next, r#"{"batch":1,"no_wait":true}"#)], 1)
            .await
            .expect("raw pulls"),
    );
    // A waiting request hears that its consumer was deleted (one without
    // the limits, so the request can outlast the deletion).
    let r = js
        .api(
            "$JS.API.CONSUMER.CREATE.PR.D",
            &json!({"stream_name": "PR", "config": {"durable_name": "D",
                "ack_policy": "explicit", "deliver_policy": "new"}})
            .to_string(),
        )
        .await;
    assert!(r.get("error").is_none(), "[{}] {r}", js.label);
    let waiter = run(
        vec![(
            "$JS.API.CONSUMER.MSG.NEXT.PR.D",
            r#"{"batch":1,"expires":60000000000}"#,
        )],
        1,
    );
    eventually("the pull request to wait", || {
        let js = &js;
        async move {
            let info = js.api("$JS.API.CONSUMER.INFO.PR.D", "").await;
            info["num_waiting"] == json!(1)
        }
    })
    .await;
    let r = js.api("$JS.API.CONSUMER.DELETE.PR.D", "").await;
    assert_eq!(r["success"], json!(true), "[{}] {r}", js.label);
    t.extend(waiter.await.expect("raw pulls"));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_priority_groups() {
    compare(overflow_on).await;
}

async fn overflow_on(f: Flavor) -> Vec<Value> {
    let js = Js::start(&f).await;
    let mut t = Vec::new();
    let msgs: Vec<(String, String)> = (0..10)
        .map(|i| (format!("ov.{i}"), format!("m{i}")))
        .collect();
    let msgs: Vec<(&str, &str)> = msgs.iter().map(|(s, b)| (s.as_str(), b.as_str())).collect();
    setup_stream(&js, "OV", &["ov.>"], &msgs).await;
    let create = |name: &str, cfg: Value| {
        let mut cfg = cfg;
        cfg["durable_name"] = json!(name);
        cfg["ack_policy"] = json!("explicit");
        (
            format!("$JS.API.CONSUMER.CREATE.OV.{name}"),
            json!({"stream_name": "OV", "config": cfg}).to_string(),
        )
    };
    // The config rules.
    for cfg in [
        json!({"priority_groups": ["A"]}),
        json!({"priority_policy": "overflow"}),
        json!({"priority_policy": "overflow", "priority_groups": [""]}),
        json!({"priority_policy": "overflow", "priority_groups": ["a.b"]}),
        json!({"priority_policy": "overflow", "priority_groups": ["A"], "deliver_subject": "d.ov"}),
        json!({"priority_timeout": 1000000000}),
    ] {
        let (subject, body) = create("BAD", cfg);
        t.push(json!({"error": js.api(&subject, &body).await["error"]}));
    }
    let (subject, body) = create(
        "O",
        json!({"priority_policy": "overflow", "priority_groups": ["A"]}),
    );
    t.push(normalize(&js.api(&subject, &body).await));
    // Requests that do not fit the policy.
    for body in [
        r#"{"batch":1,"expires":1000000000}"#,
        r#"{"batch":1,"expires":1000000000,"group":"B"}"#,
        r#"{"batch":1,"expires":1000000000,"group":"A","id":"x"}"#,
        r#"{"batch":1,"expires":1000000000,"group":"A","priority":10}"#,
    ] {
        t.push(pull_once(&js, "OV", "O", body).await);
    }
    // Served only while the consumer is that far behind.
    for body in [
        r#"{"batch":1,"expires":500000000,"group":"A","min_pending":100}"#,
        r#"{"batch":1,"no_wait":true,"group":"A","min_pending":100}"#,
        r#"{"batch":1,"expires":5000000000,"group":"A","min_pending":5}"#,
        r#"{"batch":1,"expires":5000000000,"group":"A","min_ack_pending":1}"#,
        r#"{"batch":1,"expires":500000000,"group":"A","min_ack_pending":5}"#,
        r#"{"batch":1,"expires":5000000000,"group":"A"}"#,
    ] {
        t.push(pull_once(&js, "OV", "O", body).await);
    }
    t.push(normalize(&js.api("$JS.API.CONSUMER.INFO.OV.O", "").await));
    // Seven pending: a request for 10 waits until the stream grows to it.
    let inbox = js.nc.new_inbox();
    let mut sub = js.nc.subscribe(inbox.clone()).await.expect("subscribe");
    js.nc
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.OV.O",
            inbox,
            r#"{"batch":1,"expires":10000000000,"group":"A","min_pending":10}"#.into(),
        )
        .await
        .expect("pull request");
    js.nc.flush().await.expect("flush");
    for i in 10..13 {
        let ack = js
            .js
            .publish(format!("ov.{i}"), format!("m{i}").into())
            .await;
        ack.expect("publish").await.expect("publish ack");
    }
    t.push(answer_of(
        &next(&mut sub, "overflow pull after growth").await,
    ));
    // A plain consumer refuses overflow fields.
    let (subject, body) = create("P", json!({}));
    t.push(normalize(&js.api(&subject, &body).await));
    t.push(
        pull_once(
            &js,
            "OV",
            "P",
            r#"{"batch":1,"expires":1000000000,"min_pending":1}"#,
        )
        .await,
    );
    t
}

/// The same rules through async-nats' own API (`fetch().group(..)
/// .min_pending(..)`), and `priority_groups` in the consumer's info as the
/// client reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_through_async_nats() {
    compare(overflow_client_on).await;
}

async fn overflow_client_on(f: Flavor) -> Vec<Value> {
    use jetstream::consumer::{pull, AckPolicy, PriorityPolicy};
    let js = Js::start(&f).await;
    let mut t = Vec::new();
    let msgs: Vec<(String, String)> = (0..6)
        .map(|i| (format!("oc.{i}"), format!("m{i}")))
        .collect();
    let msgs: Vec<(&str, &str)> = msgs.iter().map(|(s, b)| (s.as_str(), b.as_str())).collect();
    setup_stream(&js, "OC", &["oc.>"], &msgs).await;
    let stream = js.js.get_stream("OC").await.expect("get stream");
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("O".into()),
            ack_policy: AckPolicy::Explicit,
            priority_policy: PriorityPolicy::Overflow,
            priority_groups: vec!["A".into()],
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("[{}] create overflow consumer: {e}", js.label));
    // What one fetch returns: subjects, or the error's text.
    async fn fetch(
        consumer: &jetstream::consumer::PullConsumer,
        build: impl FnOnce(
            jetstream::consumer::pull::FetchBuilder,
        ) -> jetstream::consumer::pull::FetchBuilder,
        ack: bool,
    ) -> Value {
        let mut batch = match build(consumer.fetch().expires(Duration::from_millis(700)))
            .messages()
            .await
        {
            Ok(b) => b,
            Err(e) => return json!({"fetch_error": e.to_string()}),
        };
        let mut got = Vec::new();
        while let Some(m) = timeout(WAIT, batch.next()).await.expect("fetch ends") {
            match m {
                Ok(m) => {
                    got.push(json!(m.subject.as_str()));
                    if ack {
                        m.ack().await.expect("ack");
                    }
                }
                Err(e) => got.push(json!({"error": e.to_string()})),
            }
        }
        json!(got)
    }
    // Six pending: a request asking for more than that gets nothing.
    t.push(
        fetch(
            &consumer,
            |b| b.group("A").min_pending(7).max_messages(2),
            true,
        )
        .await,
    );
    // Served while at least 5 are pending (6 and 5 counting each one).
    t.push(
        fetch(
            &consumer,
            |b| b.group("A").min_pending(5).max_messages(3),
            false,
        )
        .await,
    );
    // Two unacknowledged now.
    t.push(
        fetch(
            &consumer,
            |b| b.group("A").min_ack_pending(3).max_messages(1),
            true,
        )
        .await,
    );
    t.push(
        fetch(
            &consumer,
            |b| b.group("A").min_ack_pending(2).max_messages(1),
            true,
        )
        .await,
    );
    // No thresholds: served like any request.
    t.push(fetch(&consumer, |b| b.group("A").max_messages(10), true).await);
    // A group the consumer does not have, and none at all.
    t.push(fetch(&consumer, |b| b.group("B").max_messages(1), true).await);
    t.push(fetch(&consumer, |b| b.max_messages(1), true).await);
    let info = stream
        .consumer_info("O")
        .await
        .unwrap_or_else(|e| panic!("[{}] consumer info: {e}", js.label));
    t.push(json!({
        "priority_policy": format!("{:?}", info.config.priority_policy),
        "priority_groups": info.config.priority_groups,
        "groups": info
            .priority_groups
            .iter()
            .map(|g| json!([g.group, g.pinned_client_id, g.pinned_ts.is_some()]))
            .collect::<Vec<_>>(),
        "num_ack_pending": info.num_ack_pending,
        "num_pending": info.num_pending,
    }));
    t
}

/// One pull request's first answer, whole (status or message).
async fn pull_msg(js: &Js, stream: &str, consumer: &str, body: &str) -> async_nats::Message {
    let inbox = js.nc.new_inbox();
    let mut sub = js.nc.subscribe(inbox.clone()).await.expect("subscribe");
    js.nc
        .publish_with_reply(
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            inbox,
            body.to_string().into(),
        )
        .await
        .expect("pull request");
    next(&mut sub, "pull answer").await
}

fn pin_of(m: &async_nats::Message) -> Option<String> {
    m.headers
        .as_ref()
        .and_then(|h| h.get("Nats-Pin-Id"))
        .map(|v| v.to_string())
}

/// Pinned client priority groups: one client holds the pin (the
/// `Nats-Pin-Id` header), others wait or are refused, `CONSUMER.UNPIN` and
/// `priority_timeout` end a pin, with the advisories nats-server sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_client_priority_groups() {
    compare(pinned_on).await;
}

async fn pinned_on(f: Flavor) -> Vec<Value> {
    let js = Js::start(&f).await;
    let mut t = Vec::new();
    let msgs: Vec<(String, String)> = (0..8)
        .map(|i| (format!("pc.{i}"), format!("m{i}")))
        .collect();
    let msgs: Vec<(&str, &str)> = msgs.iter().map(|(s, b)| (s.as_str(), b.as_str())).collect();
    setup_stream(&js, "PC", &["pc.>"], &msgs).await;
    let mut advisories = js
        .nc
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.>")
        .await
        .expect("subscribe advisories");
    let create = |name: &str, extra: Value| {
        let mut cfg = json!({
            "durable_name": name,
            "ack_policy": "none",
            "priority_policy": "pinned_client",
            "priority_groups": ["A"],
        });
        if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        (
            format!("$JS.API.CONSUMER.CREATE.PC.{name}"),
            json!({"stream_name": "PC", "config": cfg}).to_string(),
        )
    };
    // The default pin timeout, then one of a second.
    let (subject, body) = create("D", json!({}));
    t.push(normalize(&js.api(&subject, &body).await["config"]));
    let (subject, body) = create("P", json!({"priority_timeout": 1_000_000_000}));
    t.push(normalize(&js.api(&subject, &body).await));
    let advisory = |m: async_nats::Message| {
        let v: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
        json!({"subject": m.subject.as_str(), "body": normalize(&v)})
    };
    // The next pin advisory (creations and the like are passed over).
    async fn pin_event(sub: &mut async_nats::Subscriber, what: &str) -> async_nats::Message {
        loop {
            let m = next(sub, what).await;
            if m.subject.contains("PINNED.") {
                return m;
            }
        }
    }
    // The first request takes the pin.
    let m = pull_msg(
        &js,
        "PC",
        "P",
        r#"{"batch":1,"expires":2000000000,"group":"A"}"#,
    )
    .await;
    let pin = pin_of(&m).expect("a pin id on the first message");
    t.push(json!([answer_of(&m), pin.len()]));
    t.push(advisory(
        pin_event(&mut advisories, "pinned advisory").await,
    ));
    let info = js.api("$JS.API.CONSUMER.INFO.PC.P", "").await;
    t.push(json!(
        info["priority_groups"][0]["pinned_client_id"] == json!(pin)
    ));
    t.push(normalize(&info["priority_groups"]));
    // Another id is refused; no id waits (a no-wait one ends at once).
    let other = r#"{"batch":1,"expires":2000000000,"group":"A","id":"bogus"}"#;
    t.push(pull_once(&js, "PC", "P", other).await);
    t.push(pull_once(&js, "PC", "P", r#"{"batch":1,"no_wait":true,"group":"A"}"#).await);
    t.push(
        pull_once(
            &js,
            "PC",
            "P",
            r#"{"batch":1,"expires":300000000,"group":"A"}"#,
        )
        .await,
    );
    // The holder goes on.
    let held = format!(r#"{{"batch":1,"expires":2000000000,"group":"A","id":"{pin}"}}"#);
    let m = pull_msg(&js, "PC", "P", &held).await;
    t.push(json!([answer_of(&m), pin_of(&m) == Some(pin.clone())]));
    // CONSUMER.UNPIN: its checks, then the pin goes.
    for (subject, body) in [
        ("$JS.API.CONSUMER.UNPIN.PC.P", "{}"),
        ("$JS.API.CONSUMER.UNPIN.PC.P", r#"{"group":"a.b"}"#),
        ("$JS.API.CONSUMER.UNPIN.PC.P", r#"{"group":"B"}"#),
        ("$JS.API.CONSUMER.UNPIN.PC.NOPE", r#"{"group":"A"}"#),
        ("$JS.API.CONSUMER.UNPIN.NOPE.P", r#"{"group":"A"}"#),
    ] {
        t.push(error_codes(&js.api(subject, body).await));
    }
    t.push(normalize(
        &js.api("$JS.API.CONSUMER.UNPIN.PC.P", r#"{"group":"A"}"#)
            .await,
    ));
    t.push(advisory(
        pin_event(&mut advisories, "unpinned advisory").await,
    ));
    t.push(normalize(
        &js.api("$JS.API.CONSUMER.INFO.PC.P", "").await["priority_groups"],
    ));
    // The old id is stale now; a request without one takes a new pin.
    t.push(pull_once(&js, "PC", "P", &held).await);
    let m = pull_msg(
        &js,
        "PC",
        "P",
        r#"{"batch":1,"expires":2000000000,"group":"A"}"#,
    )
    .await;
    let second = pin_of(&m).expect("a new pin");
    t.push(json!([answer_of(&m), second != pin]));
    t.push(advisory(
        pin_event(&mut advisories, "pinned advisory").await,
    ));
    // Nobody pulls for the pin timeout: the pin lapses.
    t.push(advisory(
        pin_event(&mut advisories, "unpinned advisory (timeout)").await,
    ));
    t.push(normalize(
        &js.api("$JS.API.CONSUMER.INFO.PC.P", "").await["priority_groups"],
    ));
    t
}

/// A pinned_client consumer through async-nats' `stream().group(..)`: the
/// client keeps the pin it was handed across its pulls, and the consumer's
/// info names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_client_through_async_nats() {
    compare(pinned_client_on).await;
}

async fn pinned_client_on(f: Flavor) -> Vec<Value> {
    use jetstream::consumer::{pull, AckPolicy, PriorityPolicy};
    let js = Js::start(&f).await;
    let mut t = Vec::new();
    let msgs: Vec<(String, String)> = (0..6)
        .map(|i| (format!("pa.{i}"), format!("m{i}")))
        .collect();
    let msgs: Vec<(&str, &str)> = msgs.iter().map(|(s, b)| (s.as_str(), b.as_str())).collect();
    setup_stream(&js, "PA", &["pa.>"], &msgs).await;
    let stream = js.js.get_stream("PA").await.expect("get stream");
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("P".into()),
            ack_policy: AckPolicy::Explicit,
            priority_policy: PriorityPolicy::PinnedClient,
            priority_groups: vec!["A".into()],
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("[{}] create pinned consumer: {e}", js.label));
    t.push(json!(format!(
        "{:?}",
        consumer.cached_info().config.priority_timeout
    )));
    let mut messages = consumer
        .stream()
        .group("A")
        .max_messages_per_batch(2)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .unwrap_or_else(|e| panic!("[{}] pull stream: {e}", js.label));
    let mut pins = Vec::new();
    for _ in 0..6 {
        let m = timeout(WAIT, messages.next())
            .await
            .expect("a message in time")
            .expect("stream open")
            .unwrap_or_else(|e| panic!("[{}] message: {e}", js.label));
        t.push(json!(m.subject.as_str()));
        pins.push(pin_of(&m).expect("a pin on each message"));
        m.ack().await.expect("ack");
    }
    t.push(json!(pins.iter().all(|p| *p == pins[0])));
    let info = stream
        .consumer_info("P")
        .await
        .unwrap_or_else(|e| panic!("[{}] consumer info: {e}", js.label));
    let group = info.priority_groups.first().expect("one priority group");
    t.push(json!([
        group.group,
        group.pinned_client_id.as_deref() == Some(pins[0].as_str()),
        group.pinned_ts.is_some()
    ]));
    t
}

/// A prioritized consumer: waiting requests are served lowest `priority`
/// first, in arrival order within a priority, round robin among those
/// with more to take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prioritized_priority_groups() {
    compare(prioritized_on).await;
}

async fn prioritized_on(f: Flavor) -> Vec<Value> {
    let js = Js::start(&f).await;
    let mut t = Vec::new();
    setup_stream(&js, "PR", &["pr.>"], &[]).await;
    let cfg = json!({"stream_name": "PR", "config": {
        "durable_name": "P", "ack_policy": "none",
        "priority_policy": "prioritized", "priority_groups": ["A"]}});
    t.push(normalize(
        &js.api("$JS.API.CONSUMER.CREATE.PR.P", &cfg.to_string())
            .await["config"],
    ));
    // Requests wait on an empty stream, in this order.
    let requests = [
        ("five", 5, 1),
        ("one", 1, 1),
        ("five-b", 5, 1),
        ("two", 2, 2),
        ("two-b", 2, 2),
        ("zero", 0, 1),
    ];
    let mut subs = Vec::new();
    for (label, priority, batch) in requests {
        let inbox = js.nc.new_inbox();
        let sub = js.nc.subscribe(inbox.clone()).await.expect("subscribe");
        let body = json!({"batch": batch, "expires": 10_000_000_000u64,
            "group": "A", "priority": priority});
        js.nc
            .publish_with_reply(
                "$JS.API.CONSUMER.MSG.NEXT.PR.P",
                inbox,
                body.to_string().into(),
            )
            .await
            .expect("pull request");
        subs.push((label, batch, sub));
    }
    js.nc.flush().await.expect("flush");
    // Each waits for its turn; publishing one at a time keeps the order.
    // nats-server queues pull requests for the consumer's own goroutine, so
    // an INFO right after the flush can come before they are counted.
    eventually("all six pull requests to wait", || {
        let js = &js;
        async move {
            let info = js.api("$JS.API.CONSUMER.INFO.PR.P", "").await;
            info["num_waiting"] == json!(requests.len())
        }
    })
    .await;
    t.push(json!(requests.len()));
    for i in 0..8 {
        let ack = js
            .js
            .publish(format!("pr.{i}"), format!("m{i}").into())
            .await;
        ack.expect("publish").await.expect("publish ack");
    }
    for (label, batch, sub) in &mut subs {
        let mut got = Vec::new();
        for _ in 0..*batch {
            got.push(answer_of(&next(sub, "prioritized delivery").await)["data"].clone());
        }
        t.push(json!({"request": label, "got": got}));
    }
    t
}
