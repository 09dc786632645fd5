//! Backups as `nats stream backup` and `restore` take them, over
//! nats-server's snapshot protocol: shared by the backup tests.

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use super::js::{api, WAIT};

/// An API answer's error as a transcript line, or "ok".
pub fn outcome(v: &Value) -> String {
    match v.get("error") {
        Some(e) => format!("error {}/{} {}", e["code"], e["err_code"], e["description"]),
        None => "ok".to_string(),
    }
}

/// A snapshot as a backup tool takes it: the answer, then every chunk
/// (acknowledged as it comes) until the end status. Returns the answer,
/// the chunks, and transcript lines about the protocol.
pub async fn snapshot(
    label: &str,
    nc: &async_nats::Client,
    stream: &str,
    body: Value,
) -> (Value, Vec<Bytes>, Vec<String>) {
    let inbox = nc.new_inbox();
    let mut sub = nc.subscribe(inbox.clone()).await.expect("subscribe");
    let mut req = body;
    req["deliver_subject"] = json!(inbox);
    let answer = api(
        nc,
        &format!("$JS.API.STREAM.SNAPSHOT.{stream}"),
        &req.to_string(),
    )
    .await;
    let mut lines = vec![format!(
        "snapshot answer: {} config.name={} state.messages={}",
        outcome(&answer),
        answer["config"]["name"],
        answer["state"]["messages"]
    )];
    let mut chunks = Vec::new();
    let mut index = 0u64;
    let ack_prefix = format!("$JS.SNAPSHOT.ACK.{stream}.");
    loop {
        let m = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap_or_else(|_| panic!("[{}] snapshot chunks stopped", label))
            .expect("subscription open");
        if m.payload.is_empty() {
            let status = m.status.map(|s| s.as_u16()).unwrap_or(0);
            lines.push(format!("end status {status}"));
            break;
        }
        match &m.reply {
            Some(r) => {
                let r = r.as_str();
                let tail: Vec<&str> = r
                    .strip_prefix(&ack_prefix)
                    .unwrap_or_else(|| panic!("[{}] ack reply {r}", label))
                    .split('.')
                    .collect();
                index += 1;
                assert_eq!(tail.len(), 3, "[{}] {r}", label);
                assert_eq!(tail[1], m.payload.len().to_string(), "[{}] {r}", label);
                assert_eq!(tail[2], index.to_string(), "[{}] {r}", label);
                nc.publish(r.to_string(), Bytes::new()).await.expect("ack");
            }
            None => lines.push("a last chunk without a reply".to_string()),
        }
        chunks.push(m.payload.clone());
    }
    lines.push(format!("chunks numbered from 1 to the last: {}", index > 0));
    (answer, chunks, lines)
}

/// Restore `chunks` as `stream`: the answers of the request and the end.
pub async fn restore(
    label: &str,
    nc: &async_nats::Client,
    stream: &str,
    config: &Value,
    state: &Value,
    chunks: &[Bytes],
) -> Vec<String> {
    let v = api(
        nc,
        &format!("$JS.API.STREAM.RESTORE.{stream}"),
        &json!({"config": config, "state": state}).to_string(),
    )
    .await;
    let mut t = vec![format!("restore answer: {}", outcome(&v))];
    let Some(deliver) = v["deliver_subject"].as_str() else {
        return t;
    };
    t.push(format!(
        "restore subject: {}",
        deliver.starts_with(&format!("$JS.SNAPSHOT.RESTORE.{stream}."))
    ));
    for c in chunks {
        let r = tokio::time::timeout(WAIT, nc.request(deliver.to_string(), c.clone()))
            .await
            .unwrap_or_else(|_| panic!("[{}] chunk not answered", label))
            .expect("chunk request");
        assert!(
            r.payload.is_empty(),
            "[{}] chunk answer {:?}",
            label,
            r.payload
        );
    }
    let done = tokio::time::timeout(WAIT * 2, nc.request(deliver.to_string(), Bytes::new()))
        .await
        .unwrap_or_else(|_| panic!("[{}] restore end not answered", label))
        .expect("end request");
    let v: Value = serde_json::from_slice(&done.payload).unwrap_or(Value::Null);
    t.push(format!(
        "restore end: {} type={} messages={} first={} last={} deleted={}",
        outcome(&v),
        v["type"],
        v["state"]["messages"],
        v["state"]["first_seq"],
        v["state"]["last_seq"],
        v["state"]["num_deleted"]
    ));
    t
}
