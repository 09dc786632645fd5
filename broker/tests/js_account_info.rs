//! `$JS.API.INFO` against nats-server: the same sequence of requests, raw,
//! on both servers, and the account info after each step compared whole,
//! except `api.level` (Tribune reports the level it implements).
//!
//! What the sequence pins down, as nats-server counts (`trackAPI`, when a
//! response leaves through the API layer): the INFO request does not count
//! itself; invalid JSON and "not found" count as errors; unknown API
//! subjects, publishes a permission denies, pull requests, direct gets and
//! successful `STREAM.MSG.GET` do not count; a request without a reply
//! subject is still served and counted; each account has its own counters.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::js::{flavors, WAIT};
use common::ServerSpec;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

const CONFIG: &str = r#"
jetstream { store_dir: "{dir}/js" }
accounts {
  A {
    jetstream: enabled
    users: [{user: a, password: a, permissions: {publish: {deny: ["$JS.API.STREAM.DELETE.>"]}}}]
  }
  B { jetstream: enabled, users: [{user: b, password: b}] }
}
"#;

/// A request; `None` when nothing answers within a short guard (the
/// subjects nats-server leaves unanswered).
async fn req(nc: &async_nats::Client, subject: &str, body: &str) -> Option<Value> {
    let r = tokio::time::timeout(
        Duration::from_secs(2),
        nc.request(subject.to_string(), Bytes::from(body.to_string())),
    )
    .await
    .ok()?
    .ok()?;
    serde_json::from_slice(&r.payload).ok()
}

/// The account info with the API level taken out.
async fn info(nc: &async_nats::Client) -> Value {
    let mut v = req(nc, "$JS.API.INFO", "")
        .await
        .expect("$JS.API.INFO answers");
    if let Some(api) = v.get_mut("api").and_then(Value::as_object_mut) {
        api.remove("level");
    }
    v
}

/// A round trip through the server after `nc`'s earlier publishes.
async fn barrier(nc: &async_nats::Client) {
    let _ = tokio::time::timeout(WAIT, nc.flush()).await;
}

async fn sequence(bin: &std::path::Path) -> Vec<(String, String)> {
    let srv = ServerSpec::new(bin)
        .config(CONFIG)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("nats://127.0.0.1:{}", srv.port);
    let user = |u: &str| async_nats::ConnectOptions::with_user_and_password(u.into(), u.into());
    let a = user("a").connect(&url).await.expect("connect a");
    let b = user("b").connect(&url).await.expect("connect b");
    let mut seen = Vec::new();
    let mut step = |what: &str, v: Value| seen.push((what.to_string(), v.to_string()));
    step("first", info(&a).await);
    step("second", info(&a).await);
    req(
        &a,
        "$JS.API.STREAM.CREATE.S",
        r#"{"name":"S","subjects":["s.>"],"allow_direct":true}"#,
    )
    .await;
    step("create", info(&a).await);
    req(&a, "$JS.API.STREAM.CREATE.S", "{bad").await;
    step("invalid JSON", info(&a).await);
    req(&a, "$JS.API.STREAM.INFO.NOPE", "").await;
    step("not found", info(&a).await);
    assert!(req(&a, "$JS.API.FOO.BAR", "").await.is_none());
    step("unknown subject", info(&a).await);
    assert!(req(&a, "$JS.API.STREAM.INFO", "").await.is_none());
    step("no stream name", info(&a).await);
    // Served without a reply subject: nats-server's worker pool may still be
    // on it when the next INFO (its own queue) is answered, so it is looked
    // at only after the round trips of the next steps.
    a.publish("$JS.API.STREAM.INFO.S", Bytes::new())
        .await
        .expect("publish");
    barrier(&a).await;
    req(&a, "$JS.API.STREAM.INFO.S", "").await;
    assert!(req(&a, "$JS.API.STREAM.DELETE.S", "").await.is_none());
    step("denied", info(&a).await);
    // Waits for the stream's ack: nats-server stores a publish before it
    // reads the client's next line, so a round trip would do there, but
    // Tribune hands it to the stream's writer thread, which stores it with
    // its group commit after the PONG may have gone (CI once saw `storage`
    // still 0 here).
    assert!(req(&a, "s.1", "x").await.is_some(), "the publish is acked");
    req(
        &a,
        "$JS.API.CONSUMER.CREATE.S.C",
        r#"{"stream_name":"S","config":{"name":"C","ack_policy":"explicit"}}"#,
    )
    .await;
    step("consumer create", info(&a).await);
    req(
        &a,
        "$JS.API.CONSUMER.MSG.NEXT.S.C",
        r#"{"batch":1,"expires":100000000}"#,
    )
    .await;
    step("pull", info(&a).await);
    req(&a, "$JS.API.DIRECT.GET.S", r#"{"seq":1}"#).await;
    step("direct get", info(&a).await);
    req(&a, "$JS.API.STREAM.MSG.GET.S", r#"{"seq":1}"#).await;
    step("msg get found", info(&a).await);
    req(&a, "$JS.API.STREAM.MSG.GET.S", r#"{"seq":99}"#).await;
    step("msg get missing", info(&a).await);
    req(
        &a,
        "$JS.API.STREAM.CREATE.M",
        r#"{"name":"M","subjects":["m"],"storage":"memory","max_bytes":4096}"#,
    )
    .await;
    step("reserved", info(&a).await);
    step("account B", info(&b).await);
    step("account A again", info(&a).await);
    seen
}

#[tokio::test]
async fn account_info_and_api_counters_match_nats_server() {
    let fl = flavors(BIN);
    if fl.len() < 2 {
        eprintln!("tribune-broker without JetStream: skipped");
        return;
    }
    let theirs = sequence(&fl[0].bin).await;
    let ours = sequence(&fl[1].bin).await;
    for (t, o) in theirs.iter().zip(&ours) {
        assert_eq!(
            o, t,
            "after {:?}: tribune-broker (left) and nats-server (right) differ",
            t.0
        );
    }
    assert_eq!(ours.len(), theirs.len());
}

const LIMITS_CONFIG: &str = r#"
jetstream { store_dir: "{dir}/js", max_memory_store: 2MB }
accounts {
  A {
    jetstream { max_mem: 1MB, max_file: 1MB, max_streams: 3, max_consumers: 1, max_ack_pending: 10 }
    users: [{user: a, password: a}]
  }
  C {
    jetstream { max_bytes_required: true, mem_max_stream_bytes: 1000, store_max_stream_bytes: 2000 }
    users: [{user: c, password: c}]
  }
  B { jetstream: enabled, users: [{user: b, password: b}] }
}
"#;

/// What a create answered: its error, or the fields the limits decide.
fn outcome(v: Option<Value>) -> String {
    let Some(v) = v else {
        return "no answer".to_string();
    };
    if let Some(e) = v.get("error") {
        return format!("error {e}");
    }
    format!(
        "ok max_bytes={} max_ack_pending={}",
        v["config"]["max_bytes"], v["config"]["max_ack_pending"]
    )
}

async fn limits_sequence(bin: &std::path::Path) -> Vec<(String, String)> {
    let srv = ServerSpec::new(bin)
        .config(LIMITS_CONFIG)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("nats://127.0.0.1:{}", srv.port);
    let user = |u: &str| async_nats::ConnectOptions::with_user_and_password(u.into(), u.into());
    let a = user("a").connect(&url).await.expect("connect a");
    let b = user("b").connect(&url).await.expect("connect b");
    let c = user("c").connect(&url).await.expect("connect c");
    let stream = |name: &str, storage: &str, max_bytes: i64| {
        format!(
            r#"{{"name":"{name}","subjects":["{name}.>"],"storage":"{storage}","max_bytes":{max_bytes}}}"#
        )
    };
    let mut seen = Vec::new();
    let mut step = |what: &str, v: String| seen.push((what.to_string(), v));
    step("A limits", info(&a).await.to_string());
    let create = |nc: &async_nats::Client, name: &str, body: String| {
        let (nc, subject) = (nc.clone(), format!("$JS.API.STREAM.CREATE.{name}"));
        async move { outcome(req(&nc, &subject, &body).await) }
    };
    step(
        "A m1 600K",
        create(&a, "M1", stream("M1", "memory", 600 * 1024)).await,
    );
    step(
        "A m2 600K over max_mem",
        create(&a, "M2", stream("M2", "memory", 600 * 1024)).await,
    );
    step(
        "A m2 300K",
        create(&a, "M2", stream("M2", "memory", 300 * 1024)).await,
    );
    step(
        "A f1 no max_bytes",
        create(&a, "F1", stream("F1", "file", -1)).await,
    );
    step(
        "A f2 over max_streams",
        create(&a, "F2", stream("F2", "file", -1)).await,
    );
    step(
        "A m1 again at max_streams",
        create(&a, "M1", stream("M1", "memory", 600 * 1024)).await,
    );
    let update = |nc: &async_nats::Client, name: &str, body: String| {
        let (nc, subject) = (nc.clone(), format!("$JS.API.STREAM.UPDATE.{name}"));
        async move { outcome(req(&nc, &subject, &body).await) }
    };
    step(
        "A m2 grows over",
        update(&a, "M2", stream("M2", "memory", 500 * 1024)).await,
    );
    step(
        "A m2 shrinks",
        update(&a, "M2", stream("M2", "memory", 100 * 1024)).await,
    );
    let consumer = |name: &str, extra: &str| {
        format!(
            r#"{{"stream_name":"M1","config":{{"name":"{name}","ack_policy":"explicit"{extra}}}}}"#
        )
    };
    let cons = |name: &str, body: String| {
        let (nc, subject) = (a.clone(), format!("$JS.API.CONSUMER.CREATE.M1.{name}"));
        async move { outcome(req(&nc, &subject, &body).await) }
    };
    step(
        "A consumer asks 20 ack pending",
        cons("C0", consumer("C0", r#","max_ack_pending":20"#)).await,
    );
    step(
        "A consumer default ack pending",
        cons("C1", consumer("C1", "")).await,
    );
    step("A second consumer", cons("C2", consumer("C2", "")).await);
    step(
        "C no max_bytes",
        create(&c, "X", stream("X", "memory", -1)).await,
    );
    step(
        "C over stream bytes",
        create(&c, "X", stream("X", "file", 5000)).await,
    );
    step("C within", create(&c, "X", stream("X", "file", 2000)).await);
    step(
        "B over the server's max_memory_store",
        create(&b, "Y", stream("Y", "memory", 3 << 20)).await,
    );
    step(
        "B within",
        create(&b, "Y", stream("Y", "memory", 1 << 20)).await,
    );
    step(
        "B over what is left",
        create(&b, "Z", stream("Z", "memory", 1 << 20)).await,
    );
    step("A final", info(&a).await.to_string());
    step("B final", info(&b).await.to_string());
    step("C final", info(&c).await.to_string());
    seen
}

#[tokio::test]
async fn account_and_server_limits_match_nats_server() {
    let fl = flavors(BIN);
    if fl.len() < 2 {
        eprintln!("tribune-broker without JetStream: skipped");
        return;
    }
    let theirs = limits_sequence(&fl[0].bin).await;
    let ours = limits_sequence(&fl[1].bin).await;
    for (t, o) in theirs.iter().zip(&ours) {
        assert_eq!(
            o, t,
            "{:?}: tribune-broker (left) and nats-server (right) differ",
            t.0
        );
    }
    assert_eq!(ours.len(), theirs.len());
}
