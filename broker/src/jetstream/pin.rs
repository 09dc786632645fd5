//! The pinned client of a `pinned_client` priority group (nats-server
//! 2.11): one pull client at a time receives a consumer's messages, named
//! by an id the server hands out in each message's `Nats-Pin-Id` header.
//! The pin lapses when its client stops pulling for `priority_timeout`, or
//! when an operator unpins it (`CONSUMER.UNPIN`); the next request without
//! an id takes over. Pins are the delivering copy's alone and are not
//! replicated (nats-server forgets them on a leader change as well).

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio::time::Instant;

use super::types;

/// The header naming the pinned client on every message it receives.
pub const PIN_HEADER: &str = "Nats-Pin-Id";

/// A group's current pin.
#[derive(Debug, Clone)]
pub(crate) struct Pin {
    pub id: String,
    /// When it was handed out (`pinned_ts` in the consumer's info).
    pub since: SystemTime,
    /// It lapses then unless its client pulls again.
    pub deadline: Instant,
}

impl Pin {
    pub fn new(ttl: Duration, now: Instant) -> Pin {
        Pin {
            id: new_id(),
            since: SystemTime::now(),
            deadline: now + ttl,
        }
    }

    /// Its client pulled again: it keeps the pin another `ttl`.
    pub fn refresh(&mut self, ttl: Duration, now: Instant) {
        self.deadline = now + ttl;
    }
}

fn new_id() -> String {
    crate::nuid::next()
}

/// `$JS.EVENT.ADVISORY.CONSUMER.PINNED.<stream>.<consumer>`: (subject, body).
pub(crate) fn pinned_advisory(
    account: &str,
    stream: &str,
    consumer: &str,
    group: &str,
    id: &str,
) -> (String, Value) {
    (
        format!("$JS.EVENT.ADVISORY.CONSUMER.PINNED.{stream}.{consumer}"),
        json!({
            "type": "io.nats.jetstream.advisory.v1.consumer_group_pinned",
            "id": types::event_id(),
            "timestamp": types::rfc3339(Some(SystemTime::now())),
            "account": account,
            "stream": stream,
            "consumer": consumer,
            "group": group,
            "pinned_id": id,
        }),
    )
}

/// `$JS.EVENT.ADVISORY.CONSUMER.UNPINNED.<stream>.<consumer>`; `reason` is
/// `timeout` or `admin`, as nats-server says.
pub(crate) fn unpinned_advisory(
    account: &str,
    stream: &str,
    consumer: &str,
    group: &str,
    reason: &str,
) -> (String, Value) {
    (
        format!("$JS.EVENT.ADVISORY.CONSUMER.UNPINNED.{stream}.{consumer}"),
        json!({
            "type": "io.nats.jetstream.advisory.v1.consumer_group_unpinned",
            "id": types::event_id(),
            "timestamp": types::rfc3339(Some(SystemTime::now())),
            "account": account,
            "stream": stream,
            "consumer": consumer,
            "group": group,
            "reason": reason,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_nuids() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 22);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn refresh_moves_the_deadline() {
        let now = Instant::now();
        let mut p = Pin::new(Duration::from_secs(1), now);
        assert_eq!(p.deadline, now + Duration::from_secs(1));
        p.refresh(Duration::from_secs(5), now);
        assert_eq!(p.deadline, now + Duration::from_secs(5));
    }

    #[test]
    fn advisories_in_nats_server_words() {
        let (subject, body) = pinned_advisory("$G", "S", "C", "A", "id1");
        assert_eq!(subject, "$JS.EVENT.ADVISORY.CONSUMER.PINNED.S.C");
        assert_eq!(body["pinned_id"], "id1");
        let (subject, body) = unpinned_advisory("$G", "S", "C", "A", "admin");
        assert_eq!(subject, "$JS.EVENT.ADVISORY.CONSUMER.UNPINNED.S.C");
        assert_eq!(body["reason"], "admin");
        assert_eq!(
            body["type"],
            "io.nats.jetstream.advisory.v1.consumer_group_unpinned"
        );
    }
}
