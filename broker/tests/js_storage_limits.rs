//! What streams actually store, against the account's `max_file`/`max_mem`
//! and the server's `max_file_store`/`max_memory_store`, checked on every
//! publish as nats-server checks it: a message that would take the account
//! past its limit is refused (10002 "resource limits exceeded for
//! account"); once the server uses more than its limit, every publish of
//! that storage is (10023 "insufficient resources"). The same publishes go
//! to both servers and every ack or error must match, so the byte
//! accounting (nats-server's per-message sizes) is compared too.

mod common;

use common::js::{api, flavors};
use common::ServerSpec;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

const CONFIG: &str = r#"
jetstream { store_dir: "{dir}/js", max_file_store: 4000 }
accounts {
  A { jetstream { max_file: 1200, max_mem: 700 }, users: [{user: a, password: a}] }
  B { jetstream: enabled, users: [{user: b, password: b}] }
}
"#;

fn line(what: &str, v: &Value) -> String {
    match v.get("error") {
        Some(e) => format!(
            "{what}: error {}/{} {}",
            e["code"], e["err_code"], e["description"]
        ),
        None => format!("{what}: seq {}", v["seq"]),
    }
}

async fn scenario(bin: &std::path::Path) -> Vec<String> {
    let srv = ServerSpec::new(bin)
        .config(CONFIG)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("nats://127.0.0.1:{}", srv.port);
    let user = |u: &str| async_nats::ConnectOptions::with_user_and_password(u.into(), u.into());
    let a = user("a").connect(&url).await.expect("connect a");
    let b = user("b").connect(&url).await.expect("connect b");
    let mut t = Vec::new();
    for (nc, name, storage) in [(&a, "F", "file"), (&a, "M", "memory"), (&b, "BF", "file")] {
        let v = api(
            nc,
            &format!("$JS.API.STREAM.CREATE.{name}"),
            &format!(
                r#"{{"name":"{name}","subjects":["{}.>"],"storage":"{storage}"}}"#,
                name.to_lowercase()
            ),
        )
        .await;
        assert!(v.get("error").is_none(), "{name}: {v}");
    }
    let body = "x".repeat(200);
    // Account A's file and memory limits, each filled to refusal; then a
    // small message, which fits where the room left is big enough for it.
    for (stream, n) in [("f", 8), ("m", 6)] {
        for i in 0..n {
            let v = api(&a, &format!("{stream}.{i}"), &body).await;
            t.push(line(&format!("{stream}.{i}"), &v));
        }
        let v = api(&a, &format!("{stream}.small"), "y").await;
        t.push(line(&format!("{stream}.small"), &v));
    }
    // Account B has no limit of its own; the server's file limit counts
    // every account: the publish that goes over it is taken, the next not.
    let big = "z".repeat(1000);
    for i in 0..5 {
        let v = api(&b, &format!("bf.{i}"), &big).await;
        t.push(line(&format!("bf.{i}"), &v));
    }
    let v = api(&a, "f.after", "y").await;
    t.push(line("f.after (server over)", &v));
    let v = api(&a, "m.after", "y").await;
    t.push(line("m.after", &v));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_limits_on_publish_match_nats_server() {
    let mut seen: Vec<(&str, Vec<String>)> = Vec::new();
    for f in flavors(BIN) {
        let t = scenario(&f.bin).await;
        eprintln!("=== {}", f.label);
        for l in &t {
            eprintln!("  {l}");
        }
        seen.push((f.label, t));
    }
    let (reference, want) = &seen[0];
    for (label, got) in &seen[1..] {
        assert_eq!(got, want, "{label} differs from {reference}");
    }
}
