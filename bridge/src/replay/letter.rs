//! One stored dead letter, and what the current parser makes of it.
//!
//! Pure: the headers the bridge wrote are read back, the payload goes
//! through [`Router`] exactly as if it had just arrived on its original MQTT
//! topic (a whole payload through [`Router::process_as`], a single bad entry
//! through [`Router::route_entry`]), and the result is a [`Plan`].
//!
//! Ids: a dead letter's `Nats-Msg-Id` is `<hash>:dl` (whole payload) or
//! `<hash>:dl:<i>` (entry `i`), `<hash>` being the message's (topic and
//! payload). Its updates get `<hash>:<i>`: the ids the live bridge would
//! have given them had it parsed the message. So they are deterministic (a
//! second replay is caught by the stream's dedup window or by the state's
//! applied ids), and a provider resend of the same bytes, after the fix, is
//! recognised as the same updates.

use async_nats::jetstream::message::StreamMessage;
use bytes::Bytes;

use crate::process::{message_hash, Routed, Router, HDR_ENTRY, HDR_ERROR, HDR_RECEIVED, HDR_TOPIC};

/// A dead letter as stored in the dead-letter stream.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream.
    pub seq: u64,
    pub msg_id: Option<String>,
    /// `Tribune-Mqtt-Topic`: where the message arrived.
    pub topic: Option<String>,
    /// `Tribune-Entry`: the payload is this entry of the message alone.
    /// `Err`: the header is there but not an index.
    pub entry: Result<Option<usize>, String>,
    /// `Tribune-Error`: why it was dead-lettered.
    pub error: Option<String>,
    /// MQTT receive time (Unix ms): `Tribune-Received-Ms`, or, for dead
    /// letters written before that header existed, the time the stream
    /// stored it (a few milliseconds later).
    pub received_ms: u64,
    pub payload: Bytes,
}

/// What replaying a dead letter would publish.
#[derive(Debug, Default)]
pub struct Plan {
    /// Match updates that parse now, in payload order.
    pub updates: Vec<Routed>,
    /// Why the rest still does not parse (one reason per bad part).
    pub still_malformed: Vec<String>,
    /// Not replayable at all (not a dead letter of the bridge); why.
    pub skipped: Option<String>,
}

impl DeadLetter {
    /// Reads a message of the dead-letter stream.
    pub fn from_stored(m: &StreamMessage) -> DeadLetter {
        let get = |k: &str| m.headers.get(k).map(|v| v.as_str().to_owned());
        let stored_ms = u64::try_from(m.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        DeadLetter {
            seq: m.sequence,
            msg_id: get("Nats-Msg-Id"),
            topic: get(HDR_TOPIC),
            entry: match get(HDR_ENTRY) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{HDR_ENTRY} header {v:?} is not an index")),
            },
            error: get(HDR_ERROR),
            received_ms: get(HDR_RECEIVED)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(stored_ms),
            payload: m.payload.clone(),
        }
    }

    /// The hash of the original MQTT message: from the dead letter's own id
    /// when it is one of the bridge's (`<hash>:dl[:<i>]`), else from the
    /// topic and the stored payload (still deterministic, so a dead letter
    /// someone else wrote is also replayed once).
    pub fn message_hash(&self, topic: &str) -> String {
        self.msg_id
            .as_deref()
            .and_then(|id| {
                let (hash, rest) = id.split_once(':')?;
                let ours = rest == "dl" || rest.strip_prefix("dl:").is_some();
                (ours && !hash.is_empty()).then(|| hash.to_owned())
            })
            .unwrap_or_else(|| message_hash(topic, &self.payload))
    }

    /// Runs the dead letter through the current parser.
    pub fn plan(&self, router: &Router) -> Plan {
        let Some(topic) = self.topic.as_deref() else {
            return Plan {
                skipped: Some(format!(
                    "no {HDR_TOPIC} header: not a dead letter of the bridge"
                )),
                ..Plan::default()
            };
        };
        let entry = match &self.entry {
            Ok(e) => *e,
            Err(why) => {
                return Plan {
                    skipped: Some(why.clone()),
                    ..Plan::default()
                }
            }
        };
        let hash = self.message_hash(topic);
        let Some(index) = entry else {
            let p = router.process_as(&hash, topic, &self.payload, self.received_ms);
            return Plan {
                updates: p.updates,
                still_malformed: p.dead_letters.into_iter().map(|d| d.reason).collect(),
                skipped: None,
            };
        };
        let malformed = |why: String| Plan {
            still_malformed: vec![why],
            ..Plan::default()
        };
        let Some(sport) = router.sport_for(topic) else {
            return malformed("topic has no valid sport level".into());
        };
        let value: serde_json::Value = match serde_json::from_slice(&self.payload) {
            Ok(v) => v,
            Err(e) => return malformed(format!("entry is not valid JSON: {e}")),
        };
        match router.route_entry(&hash, topic, &sport, index, &value, self.received_ms) {
            Ok(update) => Plan {
                updates: vec![update],
                ..Plan::default()
            },
            Err(e) => malformed(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::tests::router;

    const TOPIC: &str = "thesports/football/match/v1";

    fn letter(msg_id: Option<&str>, entry: Option<usize>, payload: &str) -> DeadLetter {
        DeadLetter {
            seq: 7,
            msg_id: msg_id.map(str::to_owned),
            topic: Some(TOPIC.into()),
            entry: Ok(entry),
            error: Some("old parser said no".into()),
            received_ms: 1234,
            payload: Bytes::copy_from_slice(payload.as_bytes()),
        }
    }

    /// A whole payload that parses now gets the ids the live path gives it.
    #[test]
    fn a_payload_replays_with_the_live_ids() {
        let r = router();
        let raw =
            r#"[{"id":"m1","score":["m1",2,[1,0,0,0,0,0,0],[0,0,0,0,0,0,0],0,""]},{"id":"m2"}]"#;
        let hash = message_hash(TOPIC, raw.as_bytes());
        let live = r.process(TOPIC, raw.as_bytes(), 1234);
        let plan = letter(Some(&format!("{hash}:dl")), None, raw).plan(&r);
        assert!(plan.skipped.is_none() && plan.still_malformed.is_empty());
        let ids: Vec<&str> = plan.updates.iter().map(|u| u.msg_id.as_str()).collect();
        let live_ids: Vec<&str> = live.updates.iter().map(|u| u.msg_id.as_str()).collect();
        assert_eq!(ids, live_ids);
        assert_eq!(plan.updates[0].subject, "sports.football.m1");
        assert_eq!(
            plan.updates[0].update.received_at_ms, 1234,
            "original receive time"
        );
        // Without an id of ours: derived from topic and payload, the same here.
        let plan = letter(None, None, raw).plan(&r);
        assert_eq!(plan.updates[1].msg_id, format!("{hash}:1"));
    }

    /// A single entry: the id of that entry of the original message.
    #[test]
    fn an_entry_replays_as_that_entry() {
        let r = router();
        let plan = letter(
            Some("abcd:dl:2"),
            Some(2),
            r#"{"id":"m9","score":["m9",3,[1,0,0,0,0,0,0],[1,0,0,0,0,0,0],0,""]}"#,
        )
        .plan(&r);
        assert_eq!(plan.updates.len(), 1);
        assert_eq!(plan.updates[0].msg_id, "abcd:2");
        assert_eq!(plan.updates[0].subject, "sports.football.m9");
        // An entry is that object alone, even when it looks like a keyed map.
        let plan = letter(Some("abcd:dl:0"), Some(0), r#"{"m1":{"id":"m1"}}"#).plan(&r);
        assert!(plan.updates.is_empty());
        assert_eq!(plan.still_malformed, ["match entry has no `id`"]);
    }

    #[test]
    fn still_malformed_parts_say_why() {
        let r = router();
        let plan = letter(Some("h:dl"), None, "{not json").plan(&r);
        assert!(plan.updates.is_empty());
        assert!(
            plan.still_malformed[0].contains("not valid JSON"),
            "{plan:?}"
        );
        // Partly fixed: the good entry replays, the bad one is reported.
        let plan = letter(Some("h:dl"), None, r#"[{"id":"ok"},{"id":"a.b"}]"#).plan(&r);
        assert_eq!(plan.updates.len(), 1);
        assert_eq!(plan.updates[0].msg_id, "h:0");
        assert_eq!(plan.still_malformed.len(), 1);
        let plan = letter(Some("h:dl:0"), Some(0), "{oops").plan(&r);
        assert!(plan.still_malformed[0].starts_with("entry is not valid JSON"));
        let mut bad_topic = letter(Some("h:dl"), None, "[]");
        bad_topic.topic = Some("nosport".into());
        assert_eq!(
            bad_topic.plan(&r).still_malformed,
            ["topic has no valid sport level"]
        );
    }

    #[test]
    fn letters_not_written_by_the_bridge_are_skipped() {
        let r = router();
        let mut l = letter(None, None, "[]");
        l.topic = None;
        assert!(l.plan(&r).skipped.unwrap().contains("Tribune-Mqtt-Topic"));
        let mut l = letter(None, None, "{}");
        l.entry = Err("Tribune-Entry header \"x\" is not an index".into());
        assert!(l.plan(&r).skipped.is_some());
    }

    #[test]
    fn the_message_hash_comes_from_the_dead_letters_id() {
        let l = letter(Some("0123abcd:dl:4"), Some(4), "{}");
        assert_eq!(l.message_hash(TOPIC), "0123abcd");
        assert_eq!(
            letter(Some("0123abcd:dl"), None, "{}").message_hash(TOPIC),
            "0123abcd"
        );
        for other in ["foreign-id", "x:0", ":dl", "h:dlx"] {
            assert_eq!(
                letter(Some(other), None, "{}").message_hash(TOPIC),
                message_hash(TOPIC, b"{}"),
                "{other}"
            );
        }
    }
}
