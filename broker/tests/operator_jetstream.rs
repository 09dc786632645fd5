//! An account JWT's JetStream limits (`mem_storage`, `disk_storage`,
//! `streams`, `consumer`, `max_ack_pending`, `disk_max_stream_bytes`), in
//! operator mode on both servers: `$JS.API.INFO` reports them alike, and
//! the same requests and publishes meet the same refusals (stream count,
//! consumer count, ack pending, per-stream bytes, storage on publish).

mod common;

use common::creds::write_creds;
use common::js::api;
use common::ServerSpec;
use nkeys::KeyPair;
use serde_json::Value;
use tribune_auth::jwt::{self, AccountClaims, JetStreamLimits, OperatorClaims, UserClaims};

fn outcome(what: &str, v: &Value) -> String {
    match v.get("error") {
        Some(e) => format!(
            "{what}: error {}/{} {}",
            e["code"], e["err_code"], e["description"]
        ),
        None => format!("{what}: ok"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_jwt_jetstream_limits_match_nats_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let op = KeyPair::new_operator();
    let mut oc = OperatorClaims::new(&op.public_key());
    let operator_jwt = jwt::encode(&mut oc, &op).expect("operator jwt");
    let (sys, acc) = (KeyPair::new_account(), KeyPair::new_account());
    let mut preload = String::new();
    for (kp, limited) in [(&sys, false), (&acc, true)] {
        let mut ac = AccountClaims::new(&kp.public_key());
        if limited {
            ac.nats.limits.jetstream = JetStreamLimits {
                mem_storage: -1,
                disk_storage: 1500,
                streams: 2,
                consumer: 1,
                max_ack_pending: 5,
                disk_max_stream_bytes: 1000,
                ..Default::default()
            };
        }
        let token = jwt::encode(&mut ac, &op).expect("account jwt");
        preload.push_str(&format!("  {}: {token}\n", kp.public_key()));
    }
    let key = KeyPair::new_user();
    let mut uc = UserClaims::new(&key.public_key(), "");
    let token = jwt::encode(&mut uc, &acc).expect("user jwt");
    let creds = dir.path().join("u.creds");
    write_creds(&creds, &token, &key);

    let mut seen: Vec<(&str, Vec<String>)> = Vec::new();
    for (label, bin) in common::both_servers() {
        let store = dir.path().join(format!("js-{label}"));
        let config = format!(
            "operator: {operator_jwt}\nsystem_account: {}\nresolver: MEMORY\n\
             resolver_preload: {{\n{preload}}}\njetstream {{ store_dir: {store:?} }}\n",
            sys.public_key(),
        );
        let server = ServerSpec::new(bin)
            .config(config)
            .start()
            .unwrap_or_else(|e| panic!("{e}"));
        let nc = async_nats::ConnectOptions::with_credentials_file(creds.clone())
            .await
            .expect("creds")
            .connect(server.client_url())
            .await
            .unwrap_or_else(|e| panic!("{label}: connect: {e}"));
        let mut t = Vec::new();
        let info = api(&nc, "$JS.API.INFO", "").await;
        t.push(format!("limits: {}", info["limits"]));
        let streams = [
            (
                "BIG",
                r#"{"name":"BIG","subjects":["big"],"max_bytes":2000}"#,
            ),
            ("S1", r#"{"name":"S1","subjects":["s1.>"]}"#),
            (
                "S2",
                r#"{"name":"S2","subjects":["s2.>"],"storage":"memory"}"#,
            ),
            ("S3", r#"{"name":"S3","subjects":["s3.>"]}"#),
        ];
        for (name, cfg) in streams {
            let v = api(&nc, &format!("$JS.API.STREAM.CREATE.{name}"), cfg).await;
            t.push(outcome(&format!("create {name}"), &v));
        }
        for (name, cfg) in [
            (
                "C1",
                r#"{"durable_name":"C1","ack_policy":"explicit","max_ack_pending":10}"#,
            ),
            ("C2", r#"{"durable_name":"C2","ack_policy":"explicit"}"#),
            ("C3", r#"{"durable_name":"C3","ack_policy":"explicit"}"#),
        ] {
            let v = api(
                &nc,
                &format!("$JS.API.CONSUMER.CREATE.S1.{name}"),
                &format!(r#"{{"stream_name":"S1","config":{cfg}}}"#),
            )
            .await;
            t.push(outcome(&format!("consumer {name}"), &v));
        }
        let body = "x".repeat(300);
        for i in 0..7 {
            let v = api(&nc, &format!("s1.{i}"), &body).await;
            t.push(outcome(&format!("publish s1.{i}"), &v));
        }
        let v = api(&nc, "s2.m", &body).await;
        t.push(outcome("publish s2.m (memory is unlimited)", &v));
        seen.push((label, t));
    }
    for (label, t) in &seen {
        eprintln!("=== {label}");
        for l in t {
            eprintln!("  {l}");
        }
    }
    let (reference, want) = &seen[0];
    for (label, got) in &seen[1..] {
        assert_eq!(got, want, "{label} differs from {reference}");
    }
}
