//! Asking a stream's leader for its STREAM.INFO from another server, as
//! nats-server's meta leader does before it shrinks a stream (to keep the
//! leader) and when it answers for a stream it holds no replica of.
//!
//! The question goes through the account's own JetStream API: an internal
//! client of the account subscribes to a fresh inbox and sends
//! `$JS.API.STREAM.INFO.<stream>` with it as the reply subject. Every
//! JetStream server of the cluster receives it and only the stream's
//! leader answers ([`super::requests::dispatch`]). The inbox's interest
//! reaches each route before the request does (one connection per peer,
//! written in order), so the answer finds its way back.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tracing::debug;

use crate::internal::{ChannelHandler, InternalClient};
use crate::jetstream::JsAccount;
use crate::server::Server;

/// The leader's STREAM.INFO answer for `stream`, or `None` if no leader
/// answered within `within` (no leader now, or it answered an error).
pub async fn stream_info(
    server: &Arc<Server>,
    acc: &JsAccount,
    stream: &str,
    within: Duration,
) -> Option<Value> {
    ask(
        server,
        acc,
        &format!("$JS.API.STREAM.INFO.{stream}"),
        b"",
        within,
    )
    .await
}

/// The configurations of `stream`'s consumers as its leader knows them
/// (`CONSUMER.LIST`, every page), or `None` if no leader answered in time.
/// A replica's own copy may lag behind a consumer just created.
pub async fn consumer_configs(
    server: &Arc<Server>,
    acc: &JsAccount,
    stream: &str,
    within: Duration,
) -> Option<Vec<(String, crate::jetstream::types::ConsumerConfig)>> {
    let mut out = Vec::new();
    loop {
        let body = serde_json::json!({ "offset": out.len() }).to_string();
        let v = ask(
            server,
            acc,
            &format!("$JS.API.CONSUMER.LIST.{stream}"),
            body.as_bytes(),
            within,
        )
        .await?;
        let page = v.get("consumers").and_then(Value::as_array)?;
        for c in page {
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            let cfg = serde_json::from_value(c.get("config").cloned().unwrap_or_default()).ok()?;
            out.push((name.to_string(), cfg));
        }
        let total = v.get("total").and_then(Value::as_u64).unwrap_or(0);
        if page.is_empty() || out.len() as u64 >= total {
            return Some(out);
        }
    }
}

/// Ask `stream`'s leader to hand its leadership to the server named
/// `preferred`; whether it agreed within `within`.
pub async fn step_down_to(
    server: &Arc<Server>,
    acc: &JsAccount,
    stream: &str,
    preferred: &str,
    within: Duration,
) -> bool {
    let body = serde_json::json!({ "placement": { "preferred": preferred } }).to_string();
    ask(
        server,
        acc,
        &format!("$JS.API.STREAM.LEADER.STEPDOWN.{stream}"),
        body.as_bytes(),
        within,
    )
    .await
    .is_some()
}

/// Send `body` to the account's JetStream API `subject` and wait up to
/// `within` for an answer without an error.
async fn ask(
    server: &Arc<Server>,
    acc: &JsAccount,
    subject: &str,
    body: &[u8],
    within: Duration,
) -> Option<Value> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let client = InternalClient::new(
        server,
        acc.client.account().clone(),
        Arc::new(ChannelHandler(tx)),
    );
    let inbox = format!(
        "_INBOX.{}{}",
        crate::jetstream::api::ephemeral_name(),
        crate::jetstream::api::ephemeral_name()
    );
    if let Err(e) = client.subscribe(server, &inbox, None) {
        debug!("asking {subject:?}: {e}");
        return None;
    }
    client.publish(server, subject, Some(&inbox), b"", body);
    let answer = tokio::time::timeout(within, rx.recv()).await;
    client.close(server);
    let m = answer.ok().flatten()?;
    let v: Value = serde_json::from_slice(&m.payload).ok()?;
    if v.get("error").is_some() {
        debug!("{subject:?} answered {v}");
        return None;
    }
    Some(v)
}
