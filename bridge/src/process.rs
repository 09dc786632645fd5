//! From one MQTT message to the match updates and dead letters it becomes.
//!
//! Pure and synchronous (the caller logs), so it is unit-tested without any
//! server, and `replay-dlq` runs dead letters through it again. Each output
//! carries a `Nats-Msg-Id` derived from a hash of the provider message (topic
//! and payload bytes) and the entry's position in it: a redelivery of the same
//! MQTT message produces the same ids, so JetStream's duplicate window drops it.
//! A match update is not published as is: crate::state merges it into the
//! match's state and publishes that, under the update's id.

use std::collections::HashMap;

#[cfg(feature = "service")]
use async_nats::HeaderMap;
use bytes::Bytes;
use sha2::{Digest, Sha256};

#[cfg(feature = "service")]
use crate::config::Config;
use crate::payload::normalise::Origin;
use crate::payload::{normalise_match, split_payload, MatchUpdate, Sport};
use crate::subject::{match_subject, validate_token};

/// Header naming why a message was dead-lettered.
pub const HDR_ERROR: &str = "Tribune-Error";
/// Header carrying the MQTT topic of a dead-lettered message.
pub const HDR_TOPIC: &str = "Tribune-Mqtt-Topic";
/// Header carrying the index of a dead-lettered entry within its payload.
pub const HDR_ENTRY: &str = "Tribune-Entry";
/// Header carrying the bridge's MQTT receive time (Unix ms): on a dead
/// letter, of its message; on a match state, of the newest update merged
/// into it. A replayed dead letter is ordered against the match's state by
/// these two (crate::replay).
pub const HDR_RECEIVED: &str = "Tribune-Received-Ms";

/// A dead letter to publish through JetStream.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub subject: String,
    pub msg_id: String,
    /// Without the `service` feature (no NATS client) there are none.
    #[cfg(feature = "service")]
    pub headers: HeaderMap,
    pub payload: Bytes,
    /// Why it is a dead letter (also in [`HDR_ERROR`]).
    pub reason: String,
    /// The entry's index, for a single match object (also in [`HDR_ENTRY`]).
    pub entry: Option<usize>,
}

/// One valid match update with where it goes.
#[derive(Debug, Clone)]
pub struct Routed {
    /// `<prefix>.<sport>.<matchId>`.
    pub subject: String,
    /// `Nats-Msg-Id` of the state published for this update.
    pub msg_id: String,
    pub update: MatchUpdate,
}

/// What one MQTT message turned into.
#[derive(Debug, Default)]
pub struct Processed {
    /// The topic's sport (`None`: the topic names none).
    pub sport: Option<String>,
    /// In payload order.
    pub updates: Vec<Routed>,
    pub dead_letters: Vec<Outgoing>,
    pub malformed_payload: bool,
    pub malformed_elements: usize,
    pub empty: bool,
}

/// Maps MQTT topics and payloads to subjects and normalised messages.
#[derive(Debug, Clone)]
pub struct Router {
    prefix: String,
    dead_letter_subject: String,
    provider: String,
    sport_level: usize,
    sport_by_topic: HashMap<String, String>,
    known_sports: Vec<String>,
}

impl Router {
    #[cfg(feature = "service")]
    pub fn new(cfg: &Config) -> Router {
        Router::from_parts(
            &cfg.jetstream.subject_prefix,
            &cfg.jetstream.dead_letter_subject,
            &cfg.bridge.provider,
            cfg.mqtt.sport_topic_level,
            cfg.mqtt
                .subscriptions
                .iter()
                .map(|s| (s.topic.as_str(), s.sport.as_deref())),
        )
    }

    /// [`Router::new`] from the settings it reads: `jetstream.subject_prefix`
    /// and `dead_letter_subject`, `bridge.provider`, `mqtt.sport_topic_level`
    /// and each of `mqtt.subscriptions` as (topic, sport). Taken as given:
    /// `Config::parse` is what validates them.
    pub fn from_parts<'a>(
        prefix: &str,
        dead_letter_subject: &str,
        provider: &str,
        sport_level: usize,
        subscriptions: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Router {
        let subscriptions: Vec<(&str, Option<&str>)> = subscriptions.into_iter().collect();
        let mut router = Router {
            prefix: prefix.to_owned(),
            dead_letter_subject: dead_letter_subject.to_owned(),
            provider: provider.to_owned(),
            sport_level,
            sport_by_topic: subscriptions
                .iter()
                .filter_map(|(topic, sport)| sport.map(|sp| ((*topic).to_owned(), sp.to_owned())))
                .collect(),
            known_sports: Vec::new(),
        };
        for (topic, sport) in subscriptions {
            let literal = topic
                .split('/')
                .nth(router.sport_level)
                .is_some_and(|l| l != "+" && l != "#");
            let sport = match sport {
                Some(sp) => Some(sp.to_owned()),
                None if literal => router.sport_for(topic),
                None => None,
            };
            if let Some(sp) = sport.filter(|sp| !router.known_sports.contains(sp)) {
                router.known_sports.push(sp);
            }
        }
        router
    }

    /// The sport for a topic: a configured override, else the topic level.
    pub fn sport_for(&self, topic: &str) -> Option<String> {
        if let Some(s) = self.sport_by_topic.get(topic) {
            return Some(s.clone());
        }
        let level = topic.split('/').nth(self.sport_level)?.to_ascii_lowercase();
        validate_token(&level).ok().map(|()| level)
    }

    /// Sports the configuration names: subscription overrides, and the
    /// sport level of topics without a wildcard there. Registered in the
    /// metrics at start, so their series exist before the first message.
    pub fn known_sports(&self) -> &[String] {
        &self.known_sports
    }

    pub fn process(&self, topic: &str, payload: &[u8], received_at_ms: u64) -> Processed {
        self.process_as(
            &message_hash(topic, payload),
            topic,
            payload,
            received_at_ms,
        )
    }

    /// [`Router::process`] with the message's hash given: a dead letter
    /// replayed later keeps the ids its message had (crate::replay).
    pub fn process_as(
        &self,
        hash: &str,
        topic: &str,
        payload: &[u8],
        received_at_ms: u64,
    ) -> Processed {
        let mut result = Processed::default();
        let Some(sport) = self.sport_for(topic) else {
            result.malformed_payload = true;
            result.dead_letters.push(self.dead_letter(
                topic,
                &format!("{hash}:dl"),
                "topic has no valid sport level",
                None,
                received_at_ms,
                Bytes::copy_from_slice(payload),
            ));
            return result;
        };
        if Sport::from_name(&sport).is_none() {
            // Every element would be refused for the same reason: one dead
            // letter with the whole payload, kept for a replay once the
            // sport's layout is known.
            result.malformed_payload = true;
            result.dead_letters.push(self.dead_letter(
                topic,
                &format!("{hash}:dl"),
                &crate::payload::sport::unsupported(&sport),
                None,
                received_at_ms,
                Bytes::copy_from_slice(payload),
            ));
            result.sport = Some(sport);
            return result;
        }
        let entries = match split_payload(payload) {
            Ok(e) => e,
            Err(e) => {
                result.malformed_payload = true;
                result.dead_letters.push(self.dead_letter(
                    topic,
                    &format!("{hash}:dl"),
                    &e.to_string(),
                    None,
                    received_at_ms,
                    Bytes::copy_from_slice(payload),
                ));
                result.sport = Some(sport);
                return result;
            }
        };
        result.empty = entries.is_empty();
        for (i, entry) in entries.iter().enumerate() {
            match self.route_entry(hash, topic, &sport, i, entry, received_at_ms) {
                Ok(routed) => result.updates.push(routed),
                Err(e) => {
                    result.malformed_elements += 1;
                    result.dead_letters.push(self.dead_letter(
                        topic,
                        &format!("{hash}:dl:{i}"),
                        &e.to_string(),
                        Some(i),
                        received_at_ms,
                        Bytes::from(entry.to_string()),
                    ));
                }
            }
        }
        result.sport = Some(sport);
        result
    }

    /// One match object, the `index`-th of the message with this `hash`, to
    /// its subject and update (id `<hash>:<index>`).
    pub fn route_entry(
        &self,
        hash: &str,
        topic: &str,
        sport: &str,
        index: usize,
        entry: &serde_json::Value,
        received_at_ms: u64,
    ) -> Result<Routed, crate::payload::ElementError> {
        let origin = Origin {
            sport,
            provider: &self.provider,
            topic,
            received_at_ms,
        };
        let update = normalise_match(entry, &origin)?;
        let subject =
            match_subject(&self.prefix, &update.sport, &update.match_id).map_err(|reason| {
                crate::payload::ElementError::BadId {
                    id: update.match_id.clone(),
                    reason,
                }
            })?;
        Ok(Routed {
            subject,
            msg_id: format!("{hash}:{index}"),
            update,
        })
    }

    fn dead_letter(
        &self,
        topic: &str,
        msg_id: &str,
        reason: &str,
        entry: Option<usize>,
        received_at_ms: u64,
        payload: Bytes,
    ) -> Outgoing {
        #[cfg(not(feature = "service"))]
        let _ = (topic, received_at_ms);
        Outgoing {
            subject: self.dead_letter_subject.clone(),
            msg_id: msg_id.to_owned(),
            #[cfg(feature = "service")]
            headers: dead_letter_headers(topic, msg_id, reason, entry, received_at_ms),
            payload,
            reason: reason.to_owned(),
            entry,
        }
    }
}

/// The NATS headers of a dead letter (see the `HDR_*` constants).
#[cfg(feature = "service")]
fn dead_letter_headers(
    topic: &str,
    msg_id: &str,
    reason: &str,
    entry: Option<usize>,
    received_at_ms: u64,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
    headers.insert(HDR_ERROR, header_safe(reason).as_str());
    headers.insert(HDR_TOPIC, header_safe(topic).as_str());
    if let Some(i) = entry {
        headers.insert(HDR_ENTRY, i.to_string().as_str());
    }
    headers.insert(HDR_RECEIVED, received_at_ms.to_string().as_str());
    headers
}

/// First 128 bits of SHA-256 over `topic \0 payload`, hex.
pub fn message_hash(topic: &str, payload: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(topic.as_bytes());
    h.update([0u8]);
    h.update(payload);
    let digest = h.finalize();
    let mut out = String::with_capacity(32);
    for b in &digest[..16] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Header values cannot hold CR/LF (or other controls); bound their length too.
#[cfg(feature = "service")]
fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(512)
        .collect()
}

#[cfg(all(test, feature = "service"))]
mod tests {
    use super::*;

    fn router() -> Router {
        let cfg = Config::parse(
            r#"
            [mqtt]
            url = "mqtts://x:8883"
            [[mqtt.subscriptions]]
            topic = "thesports/football/match/v1"
            [[mqtt.subscriptions]]
            topic = "feeds/special"
            sport = "tennis"
            [nats]
        "#,
        )
        .unwrap();
        Router::new(&cfg)
    }

    #[test]
    fn subjects_ids_and_dedup_ids() {
        let r = router();
        let raw = br#"[{"id":"m1","stats":[{"type":2,"home":1,"away":0}]},{"id":"m2"}]"#;
        let p = r.process("thesports/football/match/v1", raw, 5);
        assert_eq!(p.updates.len(), 2);
        assert!(p.dead_letters.is_empty());
        assert_eq!(p.updates[0].subject, "sports.football.m1");
        assert_eq!(p.updates[1].subject, "sports.football.m2");
        assert_eq!(p.updates[0].update.received_at_ms, 5);
        // Same message again: same ids (that is what dedup relies on).
        let again = r.process("thesports/football/match/v1", raw, 99);
        assert_eq!(p.updates[0].msg_id, again.updates[0].msg_id);
        assert_ne!(p.updates[0].msg_id, p.updates[1].msg_id);
        // Other topic, same bytes: different ids.
        let other = r.process("thesports/basketball/match/v1", raw, 5);
        assert_ne!(other.updates[0].msg_id, p.updates[0].msg_id);
        assert_eq!(other.updates[0].subject, "sports.basketball.m1");
        assert_eq!(
            r.process("feeds/special", raw, 5).updates[0].subject,
            "sports.tennis.m1"
        );
    }

    #[test]
    fn malformed_goes_to_dead_letter() {
        let r = router();
        let p = r.process("thesports/football/match/v1", b"{not json", 1);
        assert!(p.malformed_payload);
        assert!(p.updates.is_empty());
        assert_eq!(p.dead_letters.len(), 1);
        assert_eq!(p.dead_letters[0].subject, "deadletter.sports");
        assert_eq!(&p.dead_letters[0].payload[..], b"{not json");
        assert!(p.dead_letters[0].headers.get(HDR_ERROR).is_some());

        let mixed = br#"[{"id":"ok"},{"id":"bad.id"},{"nope":1}]"#;
        let p = r.process("thesports/football/match/v1", mixed, 1);
        assert_eq!(p.malformed_elements, 2);
        assert_eq!((p.updates.len(), p.dead_letters.len()), (1, 2));
        assert_eq!(
            p.dead_letters[0]
                .headers
                .get(HDR_ENTRY)
                .map(|v| v.as_str().to_owned()),
            Some("1".into())
        );

        let p = r.process("a", b"[]", 1);
        assert!(p.malformed_payload, "no sport level in topic");
        let p = r.process("thesports/foot.ball/x", b"[]", 1);
        assert!(p.malformed_payload);
        let p = r.process("thesports/football/match/v1", b"[]", 1);
        assert!(p.empty && p.updates.is_empty() && p.dead_letters.is_empty());
    }

    /// A sport whose layout is not known: the whole payload is one dead
    /// letter saying so, nothing is published.
    #[test]
    fn unsupported_sports_are_dead_lettered_whole() {
        let r = router();
        let raw = br#"[{"id":"m1","score":["m1",2,2,{"ft":[3,1]}]},{"id":"m2"}]"#;
        let p = r.process("thesports/baseball/match/v1", raw, 1);
        assert!(p.malformed_payload && p.updates.is_empty());
        assert_eq!(p.dead_letters.len(), 1);
        assert_eq!(&p.dead_letters[0].payload[..], &raw[..]);
        let reason = p.dead_letters[0]
            .headers
            .get(HDR_ERROR)
            .map(|v| v.as_str().to_owned());
        assert!(reason.is_some_and(|r| r.contains("\"baseball\" is not supported")));
        assert!(p.dead_letters[0].headers.get(HDR_ENTRY).is_none());
        // A basketball array on the football topic: that element only.
        let raw = br#"[{"id":"m1","score":["m1",4,431,[27,22,0,0,0],[24,25,0,0,0]]},{"id":"m2"}]"#;
        let p = r.process("thesports/football/match/v1", raw, 1);
        assert_eq!((p.updates.len(), p.malformed_elements), (1, 1));
        let reason = p.dead_letters[0]
            .headers
            .get(HDR_ERROR)
            .map(|v| v.as_str().to_owned());
        assert!(reason.is_some_and(|r| r.contains("expected 6 for football")));
    }

    /// The ids must not change between releases: a bridge restarted on a new
    /// version re-reads unacked messages, and dedup needs the same ids.
    #[test]
    fn message_hash_is_stable() {
        assert_eq!(
            message_hash("thesports/football/match/v1", br#"[{"id":"m1"}]"#),
            "417c4c92afe4ab3b3e8d32df828a7065"
        );
    }

    #[test]
    fn dead_letters_carry_the_receive_time_and_the_sport_is_reported() {
        let r = router();
        let p = r.process("thesports/football/match/v1", br#"[{"id":"a.b"}]"#, 4242);
        assert_eq!(p.sport.as_deref(), Some("football"));
        let dl = &p.dead_letters[0];
        assert_eq!(
            dl.headers.get(HDR_RECEIVED).map(|v| v.as_str().to_owned()),
            Some("4242".into())
        );
        assert_eq!(dl.entry, Some(0));
        assert!(
            dl.reason.contains("cannot be used in a subject"),
            "{}",
            dl.reason
        );
        assert_eq!(r.process("a", b"[]", 1).sport, None);
        assert_eq!(
            r.process("thesports/tennis/match/v1", b"{", 1)
                .sport
                .as_deref(),
            Some("tennis")
        );
    }

    /// `process_as` with the message's own hash gives the ids `process` gives.
    #[test]
    fn the_hash_can_be_given() {
        let r = router();
        let (topic, raw) = (
            "thesports/football/match/v1",
            br#"[{"id":"m1"},{"id":"m2"}]"#,
        );
        let p = r.process(topic, raw, 1);
        let q = r.process_as(&message_hash(topic, raw), topic, raw, 1);
        let ids = |p: &Processed| {
            p.updates
                .iter()
                .map(|u| u.msg_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&p), ids(&q));
        let e = r
            .route_entry(
                "h",
                topic,
                "football",
                3,
                &serde_json::json!({"id": "m3"}),
                9,
            )
            .expect("valid entry");
        assert_eq!(
            (e.msg_id.as_str(), e.subject.as_str()),
            ("h:3", "sports.football.m3")
        );
    }

    #[test]
    fn configured_sports_are_known_up_front() {
        let cfg = Config::parse(
            r#"
            [mqtt]
            url = "mqtts://x:8883"
            [[mqtt.subscriptions]]
            topic = "thesports/football/match/v1"
            [[mqtt.subscriptions]]
            topic = "thesports/+/match/v1"
            [[mqtt.subscriptions]]
            topic = "feeds/special"
            sport = "tennis"
            [[mqtt.subscriptions]]
            topic = "thesports/Football/other"
            [nats]
        "#,
        )
        .unwrap();
        assert_eq!(Router::new(&cfg).known_sports(), ["football", "tennis"]);
    }

    #[test]
    fn header_values_are_sanitised() {
        assert_eq!(header_safe("a\r\nb"), "a  b");
    }
}
