//! Backups (`$JS.API.STREAM.SNAPSHOT` / `RESTORE`) with nats-server's
//! chunked, acknowledged protocol, spoken here as `nats stream backup`
//! and `restore` speak it: the snapshot answer, chunks with ack replies
//! (`$JS.SNAPSHOT.ACK.<stream>.<id>.<size>.<index>`, the short last one
//! without), the `204` end, then a restore that sends the chunks back as
//! requests and an empty one to finish. Each server restores its own
//! snapshot (the chunk formats differ: nats-server sends a tar of its
//! files, Tribune its own records); what comes back, messages and
//! consumer state, must be the same on both. Errors are compared too.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::backup::{self, outcome};
use common::js::{b64_text, same_on_every_flavor, stored_messages, Flavor, Js, WAIT};
use futures::StreamExt;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

fn snapshot<'a>(
    js: &'a Js,
    stream: &'a str,
    body: Value,
) -> impl std::future::Future<Output = (Value, Vec<Bytes>, Vec<String>)> + 'a {
    backup::snapshot(js.label, &js.nc, stream, body)
}

/// Every message of `stream`: `seq subject data headers`.
async fn contents(js: &Js, stream: &str) -> Vec<String> {
    stored_messages(&js.nc, stream)
        .await
        .iter()
        .map(|m| {
            format!(
                "{} {} {:?} {:?} {}",
                m["seq"],
                m["subject"].as_str().unwrap_or(""),
                b64_text(m, "data"),
                b64_text(m, "hdrs"),
                m["time"].as_str().unwrap_or("")
            )
        })
        .collect()
}

async fn consumer_line(js: &Js, stream: &str, name: &str) -> String {
    let v = js
        .api(&format!("$JS.API.CONSUMER.INFO.{stream}.{name}"), "")
        .await;
    format!(
        "consumer {name}: {} ack_floor={} delivered={} pending={} ack_pending={} filter={}",
        outcome(&v),
        v["ack_floor"]["stream_seq"],
        v["delivered"]["stream_seq"],
        v["num_pending"],
        v["num_ack_pending"],
        v["config"]["filter_subject"]
    )
}

async fn round_trip(f: Flavor) -> Vec<String> {
    let js = Js::start(&f).await;
    let mut t = Vec::new();
    for storage in ["file", "memory"] {
        let name = format!("B_{}", storage.to_uppercase());
        let subjects = format!("{}.>", name.to_lowercase());
        let v = js
            .api(
                &format!("$JS.API.STREAM.CREATE.{name}"),
                &json!({"name": name, "subjects": [subjects], "storage": storage,
                    "max_msgs_per_subject": 100})
                .to_string(),
            )
            .await;
        t.push(format!("create {name}: {}", outcome(&v)));
        let prefix = name.to_lowercase();
        for i in 1..=60u32 {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", format!("id-{i}").as_str());
            js.js
                .publish_with_headers(
                    format!("{prefix}.{}", i % 5),
                    h,
                    format!("payload {i} {}", "x".repeat((i * 37 % 300) as usize)).into(),
                )
                .await
                .expect("publish")
                .await
                .expect("ack");
        }
        let v = js
            .api(
                &format!("$JS.API.STREAM.MSG.DELETE.{name}"),
                &json!({"seq": 10}).to_string(),
            )
            .await;
        t.push(format!("delete 10: {}", outcome(&v)));
        let v = js
            .api(
                &format!("$JS.API.CONSUMER.CREATE.{name}.worker"),
                &json!({"stream_name": name, "config": {"durable_name": "worker",
                    "ack_policy": "explicit", "filter_subject": format!("{prefix}.1")}})
                .to_string(),
            )
            .await;
        t.push(format!("consumer: {}", outcome(&v)));
        // Take and acknowledge some.
        let inbox = js.nc.new_inbox();
        let mut sub = js.nc.subscribe(inbox.clone()).await.expect("subscribe");
        js.nc
            .publish_with_reply(
                format!("$JS.API.CONSUMER.MSG.NEXT.{name}.worker"),
                inbox,
                json!({"batch": 5, "expires": 2_000_000_000i64})
                    .to_string()
                    .into(),
            )
            .await
            .expect("pull");
        let mut got = 0;
        while got < 5 {
            let m = tokio::time::timeout(WAIT, sub.next())
                .await
                .expect("pulled")
                .expect("open");
            if let Some(r) = m.reply {
                if m.status.is_none() {
                    got += 1;
                    if got <= 3 {
                        js.nc
                            .request(r.to_string(), Bytes::new())
                            .await
                            .expect("ack");
                    }
                }
            }
        }
        t.push(consumer_line(&js, &name, "worker").await);
        let before = contents(&js, &name).await;

        let (answer, chunks, lines) =
            snapshot(&js, &name, json!({"chunk_size": 1024, "window_size": 4096})).await;
        t.extend(lines);
        let v = js
            .api(
                &format!("$JS.API.STREAM.RESTORE.{name}"),
                &json!({"config": answer["config"], "state": answer["state"]}).to_string(),
            )
            .await;
        t.push(format!("restore over the live stream: {}", outcome(&v)));
        let v = js.api(&format!("$JS.API.STREAM.DELETE.{name}"), "").await;
        t.push(format!("delete stream: {}", outcome(&v)));
        t.extend(
            backup::restore(
                js.label,
                &js.nc,
                &name,
                &answer["config"],
                &answer["state"],
                &chunks,
            )
            .await,
        );
        let after = contents(&js, &name).await;
        t.push(format!(
            "{name}: {} messages, all as before: {}",
            after.len(),
            after == before
        ));
        t.push(consumer_line(&js, &name, "worker").await);
        // It takes publishes again, after what it held.
        let ack = js
            .js
            .publish(format!("{prefix}.new"), "after".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        t.push(format!("publish after restore: seq {}", ack.sequence));
        // The duplicate window came back with the messages.
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", "id-60");
        let ack = js
            .js
            .publish_with_headers(format!("{prefix}.1"), h, "again".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        // (nats-server forgets the duplicate window on restore, Tribune
        // rebuilds it from the restored messages, as after a restart.)
        assert!(
            ack.sequence == 62 || ack.duplicate,
            "[{}] {ack:?}",
            js.label
        );
    }

    // Refusals.
    for (subject, body) in [
        ("$JS.API.STREAM.SNAPSHOT.B_FILE", String::new()),
        (
            "$JS.API.STREAM.SNAPSHOT.NOPE",
            json!({"deliver_subject": "x"}).to_string(),
        ),
        (
            "$JS.API.STREAM.SNAPSHOT.B_FILE",
            json!({"deliver_subject": "a.*"}).to_string(),
        ),
        ("$JS.API.STREAM.SNAPSHOT.B_FILE", "{bad".to_string()),
        ("$JS.API.STREAM.RESTORE.B_FILE", String::new()),
        (
            "$JS.API.STREAM.RESTORE.X",
            json!({"config": {"name": "Y"}}).to_string(),
        ),
        ("$JS.API.STREAM.RESTORE.X", "{bad".to_string()),
    ] {
        let v = js.api(subject, &body).await;
        // Go's and serde's words for bad JSON differ: codes only.
        t.push(format!(
            "{subject} {body:?}: {}/{}",
            v["error"]["code"], v["error"]["err_code"]
        ));
    }
    // A restore that never gets its chunks ends by itself; the name is
    // free again afterwards.
    let v = js
        .api(
            "$JS.API.STREAM.RESTORE.STALLED",
            &json!({"config": {"name": "STALLED", "subjects": ["stalled"]}}).to_string(),
        )
        .await;
    t.push(format!("stalled restore: {}", outcome(&v)));
    tokio::time::sleep(Duration::from_secs(7)).await;
    let v = js.api("$JS.API.STREAM.INFO.STALLED", "").await;
    t.push(format!("after the stall: {}", outcome(&v)));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_restore_as_backup_tools_use_them() {
    same_on_every_flavor(BIN, round_trip).await;
}

/// A client that stops acknowledging: the snapshot ends with `408 No
/// Flow Response` instead of waiting for ever.
async fn stalled_reader(f: Flavor) -> Vec<String> {
    let js = Js::start(&f).await;
    let mut t = Vec::new();
    js.api(
        "$JS.API.STREAM.CREATE.BIG",
        &json!({"name": "BIG", "subjects": ["big"]}).to_string(),
    )
    .await;
    // Incompressible: nats-server compresses its snapshot.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = || {
        (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>()
    };
    for _ in 0..20 {
        js.js
            .publish("big", Bytes::from(noise()))
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    let inbox = js.nc.new_inbox();
    let mut sub = js.nc.subscribe(inbox.clone()).await.expect("subscribe");
    let v = js
        .api(
            "$JS.API.STREAM.SNAPSHOT.BIG",
            &json!({"deliver_subject": inbox, "chunk_size": 1024, "window_size": 2048}).to_string(),
        )
        .await;
    t.push(format!("snapshot: {}", outcome(&v)));
    let mut chunks = 0;
    loop {
        let m = tokio::time::timeout(WAIT, sub.next())
            .await
            .expect("a message")
            .expect("open");
        if m.payload.is_empty() {
            t.push(format!(
                "ends with {:?} after the window: {}",
                m.status.map(|s| s.as_u16()),
                chunks == 2
            ));
            break;
        }
        chunks += 1;
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_nobody_acknowledges_ends() {
    same_on_every_flavor(BIN, stalled_reader).await;
}
