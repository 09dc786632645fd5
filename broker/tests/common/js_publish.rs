//! Publishing to JetStream with acknowledgements, telling apart the two
//! ways a publish can go unacknowledged: nobody took the message (safe to
//! send again), or it may or may not have been stored (only a message id
//! makes a retry safe).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::js_cluster::JS_DEADLINE;

/// Why a publish was not acknowledged.
#[derive(Debug)]
pub enum Unacked {
    /// No responders: nothing in the cluster took the message (no stream
    /// leader subscribed yet, or none at all). Safe to send again.
    NoStream(String),
    /// An error answer, or no answer in time: the message may or may not
    /// have been stored.
    Other(String),
}

impl std::fmt::Display for Unacked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unacked::NoStream(e) => write!(f, "no responders: {e}"),
            Unacked::Other(e) => write!(f, "{e}"),
        }
    }
}

/// Publish `payload` on `subject` through `js` (with `Nats-Msg-Id: msg_id`
/// if given) and wait for the ack, as long as the context's timeout allows.
pub async fn publish(
    js: &async_nats::jetstream::Context,
    subject: String,
    msg_id: Option<&str>,
    payload: Bytes,
) -> Result<async_nats::jetstream::publish::PublishAck, Unacked> {
    use async_nats::jetstream::context::PublishErrorKind;
    let mut headers = async_nats::HeaderMap::new();
    if let Some(id) = msg_id {
        headers.insert("Nats-Msg-Id", id);
    }
    let sent = js
        .publish_with_headers(subject, headers, payload)
        .await
        .map_err(|e| Unacked::Other(format!("publish: {e}")))?;
    // The context's timeout bounds the ack; the outer one guards the guard.
    match tokio::time::timeout(JS_DEADLINE, sent).await {
        Err(_) => Err(Unacked::Other("no ack (outer deadline)".into())),
        Ok(Ok(ack)) => Ok(ack),
        // async-nats reports a no-responders status as "stream not found".
        Ok(Err(e)) if e.kind() == PublishErrorKind::StreamNotFound => {
            Err(Unacked::NoStream(e.to_string()))
        }
        Ok(Err(e)) => Err(Unacked::Other(format!("ack: {e}"))),
    }
}

/// Publish and wait for the ack, sending again while nobody takes the
/// message (the stream leader's interest may not have crossed the routes
/// yet); any other failure panics, since the message may have been stored
/// and a second copy would shift every later sequence.
pub async fn publish_sure(
    js: &async_nats::jetstream::Context,
    subject: String,
    payload: Bytes,
) -> async_nats::jetstream::publish::PublishAck {
    let end = Instant::now() + JS_DEADLINE;
    loop {
        match publish(js, subject.clone(), None, payload.clone()).await {
            Ok(ack) => return ack,
            Err(Unacked::NoStream(e)) if Instant::now() < end => {
                eprintln!("{subject}: {e}; again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("publish on {subject}: {e}"),
        }
    }
}
