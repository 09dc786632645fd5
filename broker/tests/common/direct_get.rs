//! Direct gets (`$JS.API.DIRECT.GET.<stream>`) through async-nats, for the
//! tests that run one scenario on nats-server and tribune-broker and compare
//! what comes back: every reply of one request, read until the batch ends,
//! each as one comparable line.
//!
//! A message reads `<subject>#<seq> <payload>` followed by the batch
//! headers present (`np=` Nats-Num-Pending, `last=` Nats-Last-Sequence);
//! a status reads `<code> <description>` with the same headers and `upto=`
//! (Nats-UpTo-Sequence). `Nats-Stream` must name the stream and
//! `Nats-Time-Stamp` must be an RFC 3339 time; both are checked, not shown.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

/// Guard against hanging; never a speed assertion.
pub const REPLY_WAIT: Duration = Duration::from_secs(15);

/// A reply as a line (see the module docs).
pub fn line(stream: &str, m: &async_nats::Message) -> String {
    let h = |name: &str| {
        m.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    let counts: String = [
        ("np", "Nats-Num-Pending"),
        ("last", "Nats-Last-Sequence"),
        ("upto", "Nats-UpTo-Sequence"),
    ]
    .iter()
    .filter_map(|(short, name)| h(name).map(|v| format!(" {short}={v}")))
    .collect();
    if let Some(status) = m.status {
        let desc = m.description.clone().unwrap_or_default();
        return format!("{} {desc}{counts}", status.as_u16());
    }
    if h("Nats-Stream").is_none() && h("Nats-Subject").is_none() {
        // `no_hdr`: the stored payload alone.
        return format!("bare {}", String::from_utf8_lossy(&m.payload));
    }
    assert_eq!(h("Nats-Stream").as_deref(), Some(stream), "Nats-Stream");
    let ts = h("Nats-Time-Stamp").unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&ts).is_ok(),
        "Nats-Time-Stamp {ts:?}"
    );
    format!(
        "{}#{} {}{counts}",
        h("Nats-Subject").unwrap_or_default(),
        h("Nats-Sequence").unwrap_or_default(),
        String::from_utf8_lossy(&m.payload)
    )
}

/// Send `body` to `subject` (a direct get of `stream`) from `client` and
/// return the replies as lines: up to the first status (a batch's EOB, or
/// an error), or the first message when `batch` is false.
pub async fn replies(
    client: &async_nats::Client,
    stream: &str,
    subject: &str,
    body: &str,
    batch: bool,
) -> Vec<String> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.expect("subscribe");
    client
        .publish_with_reply(subject.to_string(), inbox, Bytes::from(body.to_string()))
        .await
        .expect("publish");
    let mut out = Vec::new();
    loop {
        let m = tokio::time::timeout(REPLY_WAIT, sub.next())
            .await
            .unwrap_or_else(|_| panic!("{subject} {body}: no more replies after {out:?}"))
            .expect("subscription open");
        let status = m.status.is_some();
        out.push(line(stream, &m));
        if status || !batch {
            return out;
        }
    }
}

/// Replies to a request whose answer must be complete before `sentinel`
/// (a second direct get sent after it from the same client) is answered:
/// what arrived on the first request's inbox by then, without waiting for
/// an end (a singleton service import cuts a batch after its first reply).
pub async fn replies_before_sentinel(
    client: &async_nats::Client,
    stream: &str,
    subject: &str,
    body: &str,
    sentinel: (&str, &str),
) -> Vec<String> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.expect("subscribe");
    client
        .publish_with_reply(subject.to_string(), inbox, Bytes::from(body.to_string()))
        .await
        .expect("publish");
    let (s_subject, s_body) = sentinel;
    let done = tokio::time::timeout(
        REPLY_WAIT,
        client.request(s_subject.to_string(), Bytes::from(s_body.to_string())),
    )
    .await
    .unwrap_or_else(|_| panic!("sentinel {s_subject}: no reply"));
    done.unwrap_or_else(|e| panic!("sentinel {s_subject}: {e}"));
    let mut out = Vec::new();
    // The replies were delivered before the sentinel's; a short wait only
    // lets the client hand them over.
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        out.push(line(stream, &m));
    }
    out
}
