//! What the mirror and source tests share: a client labelled with its
//! server's flavor, and transcript lines for stream creates, publishes,
//! stored messages and the `STREAM.INFO` feed sections.

use std::time::Instant;

use serde_json::{json, Value};

use super::js::{b64_text, stored_messages, Js, WAIT};

/// A client and its JetStream context, labelled with its server's flavor.
pub struct C {
    pub label: &'static str,
    pub nc: async_nats::Client,
    pub js: async_nats::jetstream::Context,
}

impl C {
    pub fn new(label: &'static str, nc: async_nats::Client) -> C {
        let js = async_nats::jetstream::new(nc.clone());
        C { label, nc, js }
    }

    pub fn of(js: &Js) -> C {
        C::new(js.label, js.nc.clone())
    }

    pub async fn api(&self, subject: &str, body: &str) -> Value {
        super::js::api(&self.nc, subject, body).await
    }
}

/// An API request's error as a transcript line, or "ok".
pub fn outcome(v: &Value) -> String {
    match v.get("error") {
        Some(e) => format!("error {}/{} {}", e["code"], e["err_code"], e["description"]),
        None => "ok".to_string(),
    }
}

pub async fn create(js: &C, cfg: Value) -> String {
    let name = cfg["name"].as_str().unwrap_or_default().to_string();
    let v = js
        .api(&format!("$JS.API.STREAM.CREATE.{name}"), &cfg.to_string())
        .await;
    format!("create {name}: {}", outcome(&v))
}

pub async fn publish(js: &C, subject: &str, data: &str) -> String {
    let ack = js
        .js
        .publish(subject.to_string(), data.to_string().into())
        .await
        .unwrap_or_else(|e| panic!("[{}] publish {subject}: {e}", js.label))
        .await
        .unwrap_or_else(|e| panic!("[{}] ack {subject}: {e}", js.label));
    format!("{subject} {data}: seq {}", ack.sequence)
}

/// The stored header block, without nats-server's stream identity (the
/// sixth field of `Nats-Stream-Source`, which Tribune does not write).
pub fn headers_of(m: &Value) -> String {
    b64_text(m, "hdrs")
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| match l.strip_prefix("Nats-Stream-Source: ") {
            Some(v) => format!(
                "Nats-Stream-Source: {}",
                v.split(' ').take(5).collect::<Vec<_>>().join(" ")
            ),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Every message of `stream` as `seq subject data [headers]`, in order.
pub async fn contents(js: &C, stream: &str) -> Vec<String> {
    stored_messages(&js.nc, stream)
        .await
        .iter()
        .map(|m| {
            format!(
                "{} {} {} [{}]",
                m["seq"],
                m["subject"].as_str().unwrap_or(""),
                b64_text(m, "data"),
                headers_of(m)
            )
        })
        .collect()
}

/// Poll until `stream` holds `n` messages; its state then.
pub async fn settle(js: &C, stream: &str, n: u64) -> String {
    let end = Instant::now() + WAIT;
    loop {
        let info = js.api(&format!("$JS.API.STREAM.INFO.{stream}"), "").await;
        let st = &info["state"];
        if st["messages"].as_u64() == Some(n) {
            return format!(
                "{stream}: messages {} first {} last {} deleted {}",
                st["messages"], st["first_seq"], st["last_seq"], st["num_deleted"]
            );
        }
        assert!(
            Instant::now() < end,
            "[{}] {stream} never held {n} messages: {st}",
            js.label
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `STREAM.INFO`'s `mirror` and `sources`, without the times, sorted.
pub async fn feed_info(js: &C, stream: &str) -> String {
    let info = js.api(&format!("$JS.API.STREAM.INFO.{stream}"), "").await;
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            let active = o.remove("active");
            o.insert(
                "heard".to_string(),
                json!(active.and_then(|a| a.as_i64()).is_some_and(|a| a >= 0)),
            );
        }
        v.to_string()
    };
    let mut sources: Vec<String> = info["sources"]
        .as_array()
        .map(|a| a.iter().map(strip).collect())
        .unwrap_or_default();
    sources.sort();
    format!(
        "{stream}: mirror {} sources {sources:?}",
        if info["mirror"].is_null() {
            "none".to_string()
        } else {
            strip(&info["mirror"])
        }
    )
}

/// The configuration fields mirrors and sources touch.
pub async fn config(js: &C, stream: &str) -> String {
    let c = &js.api(&format!("$JS.API.STREAM.INFO.{stream}"), "").await["config"];
    format!(
        "{stream} config: subjects {} duplicate_window {} mirror {} sources {} mirror_direct {}",
        c["subjects"], c["duplicate_window"], c["mirror"], c["sources"], c["mirror_direct"]
    )
}
