//! What the bridge holds for one match, and how it is rebuilt from the last
//! message stored for the match's subject (after a restart, a failover to
//! another bridge process, an eviction, or a conflict).

use std::collections::VecDeque;

use bytes::Bytes;
use serde_json::Value;

use crate::payload::{Delta, MatchState, MatchUpdate, LEGACY_SCHEMA_V1, SCHEMA_ID};

/// Header of every published state: the updates last merged into it (at
/// most [`APPLIED_IDS`], oldest first, space separated), each as its
/// [`applied_key`].
///
/// It is how a bridge that reloads a state knows which redelivered MQTT
/// messages that state already contains: after a crash the MQTT broker
/// redelivers every message the bridge had not acked, including ones whose
/// state JetStream stored, and merging an older update again on top of a
/// newer state would roll the score back.
pub const HDR_APPLIED: &str = "Tribune-Applied";

/// Updates listed in [`HDR_APPLIED`]. Redeliveries are the updates stored but
/// not yet acked to MQTT when the bridge stopped: a few per match at most,
/// since a match's publishes go one at a time and acks follow within
/// milliseconds. Every published state carries the list, so it is kept short.
pub const APPLIED_IDS: usize = 8;

/// An update's `Nats-Msg-Id` as listed in [`HDR_APPLIED`]: `<hash>:<index>`
/// with the hash cut to its first 16 hex digits (64 bits), less than half
/// the bytes. Only the last few updates of one match are compared, so a
/// false match (a new update taken for one already merged) has a chance of
/// about 2^-61 per update. Ids of another form are kept whole.
pub fn applied_key(msg_id: &str) -> std::borrow::Cow<'_, str> {
    match msg_id.split_once(':') {
        Some((hash, index)) if hash.len() > 16 && hash.is_char_boundary(16) => {
            std::borrow::Cow::Owned(format!("{}:{index}", &hash[..16]))
        }
        _ => std::borrow::Cow::Borrowed(msg_id),
    }
}

/// The last message stored for a subject, as the bridge needs it.
#[derive(Debug, Clone, Default)]
pub struct StoredMsg {
    /// Stream sequence.
    pub seq: u64,
    /// Its `Nats-Msg-Id`.
    pub msg_id: Option<String>,
    /// Its [`HDR_APPLIED`] header.
    pub applied: Option<String>,
    /// Its `Tribune-Received-Ms` header (crate::process::HDR_RECEIVED).
    pub received_ms: Option<u64>,
    pub payload: Bytes,
}

/// How a held state came about (counted in the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadKind {
    /// No message on the subject: a new match.
    New,
    /// The last message was a state of this schema.
    Found,
    /// The last message was a v1 update (published before the upgrade).
    Legacy,
    /// The last message could not be read; the match starts over.
    Unreadable,
}

/// A match's state as last stored (or about to be), with what the stream
/// needs to accept the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub state: MatchState,
    /// Stream sequence of the subject's last message (0: none). The next
    /// publish expects it (`Nats-Expected-Last-Subject-Sequence`), so a state
    /// written meanwhile by another bridge process is noticed, not overwritten.
    pub last_seq: u64,
    /// Keys of the last updates merged in, oldest first (see [`HDR_APPLIED`]).
    pub applied: VecDeque<String>,
    /// MQTT receive time (Unix ms) of the newest update merged in, changed
    /// anything or not (stored as `Tribune-Received-Ms`). Unlike the state's
    /// `updated_at_ms` it also moves on a resend, so a replayed dead letter
    /// can tell whether anything the provider sent after it was merged.
    pub received_ms: u64,
}

impl Held {
    /// A match with nothing stored.
    pub fn new(sport: &str, match_id: &str, provider: &str) -> Held {
        Held {
            state: MatchState::new(sport, match_id, provider),
            last_seq: 0,
            applied: VecDeque::new(),
            received_ms: 0,
        }
    }

    /// The state to continue from, given the subject's last stored message.
    /// `update` names the match (sport, id, provider: the routing's, which
    /// win over whatever the stored message says).
    pub fn from_stored(stored: Option<StoredMsg>, update: &MatchUpdate) -> (Held, LoadKind) {
        let (sport, id, provider) = (&update.sport, &update.match_id, &update.provider);
        let mut held = Held::new(sport, id, provider);
        let Some(m) = stored else {
            return (held, LoadKind::New);
        };
        held.last_seq = m.seq;
        let value: Option<Value> = serde_json::from_slice(&m.payload).ok();
        let schema = value.as_ref().and_then(|v| v.get("schema")?.as_str());
        let kind = match schema {
            Some(SCHEMA_ID) => match value.clone().map(serde_json::from_value::<MatchState>) {
                Some(Ok(state)) => {
                    held.state = state;
                    held.applied = match &m.applied {
                        Some(keys) => keys.split_whitespace().map(str::to_owned).collect(),
                        None => m
                            .msg_id
                            .iter()
                            .map(|id| applied_key(id).into_owned())
                            .collect(),
                    };
                    LoadKind::Found
                }
                _ => LoadKind::Unreadable,
            },
            Some(LEGACY_SCHEMA_V1) => {
                match value.clone().map(serde_json::from_value::<MatchUpdate>) {
                    // A v1 message is one partial update: the best start there is.
                    Some(Ok(legacy)) => {
                        held.state.merge(&legacy, 0);
                        held.applied = m.msg_id.iter().cloned().collect();
                        LoadKind::Legacy
                    }
                    _ => LoadKind::Unreadable,
                }
            }
            _ => LoadKind::Unreadable,
        };
        if kind == LoadKind::Unreadable {
            // Keep the revision growing if the message names one.
            held.state.rev = value
                .as_ref()
                .and_then(|v| v.get("rev")?.as_u64())
                .unwrap_or(0);
            tracing::warn!(
                subject_seq = m.seq,
                match_id = %id,
                schema = schema.unwrap_or("?"),
                "last stored message of the match is not a readable state; starting the match over"
            );
        }
        // States stored before the header existed: the last change is the
        // best known bound.
        held.received_ms = m.received_ms.unwrap_or(held.state.updated_at_ms);
        while held.applied.len() > APPLIED_IDS {
            held.applied.pop_front();
        }
        held.state.sport.clone_from(sport);
        held.state.match_id.clone_from(id);
        held.state.provider.clone_from(provider);
        (held, kind)
    }

    /// Merges a replayed dead letter (crate::replay), which the provider
    /// sent at `u.received_at_ms`: whole, like live traffic, when everything
    /// merged so far was received before it (a new match included); else
    /// only what the state does not know yet ([`MatchState::merge_late`]),
    /// so a late replay cannot roll the match back. A tie (another entry of
    /// the same MQTT message) counts as merged after it.
    pub fn merge_replayed(&mut self, u: &MatchUpdate, rev_floor: u64) -> Delta {
        if self.received_ms < u.received_at_ms {
            self.state.merge(u, rev_floor)
        } else {
            self.state.merge_late(u, rev_floor)
        }
    }

    /// Whether the update with this `Nats-Msg-Id` is among the last merged.
    pub fn has_applied(&self, msg_id: &str) -> bool {
        let key = applied_key(msg_id);
        self.applied.iter().any(|k| *k == *key)
    }

    /// Records a merged update: its id among the applied, its receive time.
    pub fn note_merged(&mut self, msg_id: &str, received_at_ms: u64) {
        self.note_applied(msg_id);
        self.received_ms = self.received_ms.max(received_at_ms);
    }

    pub fn note_applied(&mut self, msg_id: &str) {
        if self.applied.len() >= APPLIED_IDS {
            self.applied.pop_front();
        }
        self.applied.push_back(applied_key(msg_id).into_owned());
    }

    /// The [`HDR_APPLIED`] header value.
    pub fn applied_header(&self) -> String {
        let mut out = String::with_capacity(self.applied.len() * 20);
        for (i, id) in self.applied.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(id);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::normalise::Origin;
    use crate::payload::{normalise_match, StateMessage};
    use serde_json::json;

    /// The body the bridge publishes for `held` after `delta`.
    fn published(held: &Held, delta: &Delta) -> Vec<u8> {
        serde_json::to_vec(&StateMessage {
            state: &held.state,
            changed: &delta.changed,
            added: delta.added,
        })
        .unwrap()
    }

    fn update(v: Value) -> MatchUpdate {
        let origin = Origin {
            sport: "football",
            provider: "thesports",
            topic: "thesports/football/match/v1",
            received_at_ms: 7,
        };
        normalise_match(&v, &origin).expect("valid")
    }

    #[test]
    fn nothing_stored_is_a_new_match() {
        let (held, kind) = Held::from_stored(None, &update(json!({"id": "m1"})));
        assert_eq!(kind, LoadKind::New);
        assert_eq!((held.state.rev, held.last_seq), (0, 0));
        assert_eq!(held.state.match_id, "m1");
    }

    #[test]
    fn a_stored_state_round_trips_with_its_applied_ids() {
        let mut held = Held::new("football", "m1", "thesports");
        let u = update(
            json!({"id": "m1", "score": ["m1", 2, [1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], 1_767_293_460, ""],
                "incidents": [{"type": 1, "time": 3}]}),
        );
        let delta = held.state.merge(&u, 0);
        for i in 0..APPLIED_IDS + 2 {
            held.note_applied(&format!("h{i}:0"));
        }
        assert_eq!(held.applied.len(), APPLIED_IDS);
        let body = published(&held, &delta);
        let stored = StoredMsg {
            seq: 42,
            msg_id: Some(format!("h{}:0", APPLIED_IDS + 1)),
            applied: Some(held.applied_header()),
            received_ms: Some(99),
            payload: body.into(),
        };
        let (back, kind) = Held::from_stored(Some(stored.clone()), &u);
        assert_eq!(kind, LoadKind::Found);
        assert_eq!((back.last_seq, back.received_ms), (42, 99));
        // Stored before the header existed: the state's last change.
        let old = StoredMsg {
            received_ms: None,
            ..stored
        };
        assert_eq!(Held::from_stored(Some(old), &u).0.received_ms, 7);
        assert_eq!(back.state, held.state);
        assert_eq!(back.applied, held.applied);
        let newest = format!("h{}:0", APPLIED_IDS + 1);
        assert!(back.has_applied(&newest) && !back.has_applied("h0:0"));
    }

    /// Floats read back from the stored state exactly as merged (found by
    /// broker/fuzz's bridge_payload, corpus crash-float-reload): serde_json's
    /// default float parsing is not correctly rounded, and a value reloaded
    /// one bit off made the provider's next resend of it a change.
    #[test]
    fn floats_reload_exactly() {
        let u = update(json!({"id": "m1", "odds": 2.7777777777777782e110,
            "stats": [{"type": 2, "home": 2.7777777777777782e110, "away": 0.1}]}));
        let mut held = Held::new("football", "m1", "thesports");
        let delta = held.state.merge(&u, 0);
        let body = published(&held, &delta);
        let stored = StoredMsg {
            seq: 1,
            payload: body.into(),
            ..StoredMsg::default()
        };
        let (mut back, kind) = Held::from_stored(Some(stored), &u);
        assert_eq!(kind, LoadKind::Found);
        assert_eq!(back.state, held.state);
        let d = back.state.merge(&u, 0);
        assert!(d.changed.is_empty(), "a resend changed {:?}", d.changed);
    }

    #[test]
    fn applied_keys_are_short_and_only_match_their_update() {
        let id = "417c4c92afe4ab3b3e8d32df828a7065:3";
        assert_eq!(applied_key(id), "417c4c92afe4ab3b:3");
        assert_eq!(applied_key("short:1"), "short:1");
        assert_eq!(applied_key("no-colon"), "no-colon");
        let mut held = Held::new("football", "m1", "thesports");
        held.note_applied(id);
        assert!(held.has_applied(id));
        assert!(!held.has_applied("417c4c92afe4ab3b3e8d32df828a7065:2"));
        assert!(!held.has_applied("517c4c92afe4ab3b3e8d32df828a7065:3"));
        assert_eq!(held.applied_header(), "417c4c92afe4ab3b:3");
    }

    #[test]
    fn a_v1_message_seeds_the_state() {
        let legacy = json!({"schema": LEGACY_SCHEMA_V1, "sport": "football", "match_id": "m1",
            "provider": "thesports", "source_topic": "t", "received_at_ms": 5,
            "score": {"status_id": 2, "kickoff_ts": 1, "home": {"score": 1, "detail": [1]},
                      "away": {"score": 0, "detail": [0]}}});
        let stored = StoredMsg {
            seq: 9,
            msg_id: Some("old:0".into()),
            applied: None,
            received_ms: None,
            payload: legacy.to_string().into(),
        };
        let (held, kind) = Held::from_stored(Some(stored), &update(json!({"id": "m1"})));
        assert_eq!(kind, LoadKind::Legacy);
        assert_eq!(held.state.rev, 1);
        assert_eq!(held.state.score.as_ref().unwrap().home.score, Some(1));
        assert!(held.has_applied("old:0"));
        assert_eq!((held.last_seq, held.received_ms), (9, 5));
    }

    #[test]
    fn unreadable_messages_start_over_keeping_the_revision() {
        for (payload, rev) in [
            (
                json!({"schema": "tribune.sports.match.v9", "rev": 77}).to_string(),
                77,
            ),
            (
                json!({"schema": SCHEMA_ID, "rev": 5, "score": "x"}).to_string(),
                5,
            ),
            ("not json".to_owned(), 0),
        ] {
            let stored = StoredMsg {
                seq: 3,
                payload: payload.clone().into(),
                ..Default::default()
            };
            let (held, kind) = Held::from_stored(Some(stored), &update(json!({"id": "m1"})));
            assert_eq!(kind, LoadKind::Unreadable, "{payload}");
            assert_eq!((held.state.rev, held.last_seq), (rev, 3), "{payload}");
            assert!(held.state.score.is_none());
        }
    }
}
