//! Provider payloads: defensive parsing and normalisation.
//!
//! A provider message is untrusted input. [`split_payload`] turns the raw MQTT
//! payload into match objects (or a [`PayloadError`] for the whole message), and
//! [`normalise::normalise_match`] turns one match object into a [`MatchUpdate`]
//! (or an [`ElementError`] for that object only), so one bad match in a batch
//! does not sink the others. The bridge then merges each update into its
//! match's [`MatchState`] (crate::state), which is what it publishes.
//!
//! What the provider sends, per sport, is in bridge/PROVIDER_FORMAT.md; the
//! score layouts are read in [`score`], the match clock derived in [`clock`].

pub mod clock;
pub mod coerce;
pub mod normalise;
pub mod schema;
pub mod score;
pub mod sport;

#[cfg(test)]
pub(crate) mod fixtures;

pub use normalise::normalise_match;
pub use schema::{
    Added, Clock, Delta, Incident, MatchMessage, MatchState, MatchUpdate, Score, Section, Side,
    Stat, StateMessage, TextLive, LEGACY_SCHEMA_V1, SCHEMA_ID,
};
pub use sport::Sport;

use serde_json::Value;
use thiserror::Error;

/// The whole payload is unusable. The raw bytes go to the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PayloadError {
    #[error("payload is not valid JSON: {0}")]
    NotJson(String),
    #[error("payload is a JSON {0}, expected an array or object of matches")]
    WrongShape(&'static str),
    #[error("payload object has no `id` and no array of matches")]
    NoMatches,
}

/// One match object is unusable. That object goes to the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ElementError {
    #[error("match entry is a JSON {0}, expected an object")]
    NotObject(&'static str),
    #[error("match entry has no `id`")]
    MissingId,
    #[error("match `id` must be a string or integer")]
    IdType,
    #[error("match id {id:?} cannot be used in a subject: {reason}")]
    BadId {
        id: String,
        reason: crate::subject::TokenError,
    },
    #[error("field `{field}`: {reason}")]
    BadField { field: String, reason: String },
    /// The topic's sport has no known payload layout (payload::sport).
    #[error("{0}")]
    UnknownSport(String),
}

/// Keys under which an object-shaped payload may wrap its array of matches.
const WRAPPER_KEYS: [&str; 3] = ["data", "results", "matches"];

/// Splits a raw payload into match objects.
///
/// Accepted shapes:
/// - `[ {match}, ... ]`: the only one the provider was seen to send (an
///   empty array yields no matches);
///
/// and, tolerated although never seen (they cannot be mistaken for anything
/// else):
/// - `{ "id": ..., ... }`: a single match;
/// - `{ "data" | "results" | "matches": [ ... ] }`: a wrapped array;
/// - `{ "<matchId>": { ... }, ... }`: matches keyed by id (the key fills in a
///   missing `id`).
pub fn split_payload(raw: &[u8]) -> Result<Vec<Value>, PayloadError> {
    let value: Value =
        serde_json::from_slice(raw).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(mut map) => {
            if map.contains_key("id") {
                return Ok(vec![Value::Object(map)]);
            }
            for key in WRAPPER_KEYS {
                if let Some(Value::Array(_)) = map.get(key) {
                    if let Some(Value::Array(items)) = map.remove(key) {
                        return Ok(items);
                    }
                }
            }
            if !map.is_empty() && map.values().all(Value::is_object) {
                return Ok(map
                    .into_iter()
                    .map(|(key, mut v)| {
                        if let Value::Object(obj) = &mut v {
                            obj.entry("id").or_insert(Value::String(key));
                        }
                        v
                    })
                    .collect());
            }
            Err(PayloadError::NoMatches)
        }
        other => Err(PayloadError::WrongShape(json_kind(&other))),
    }
}

/// Human name of a JSON value's type, for error messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes() {
        assert_eq!(split_payload(b"[]").unwrap().len(), 0);
        assert_eq!(
            split_payload(br#"[{"id":"a"},{"id":"b"}]"#).unwrap().len(),
            2
        );
        assert_eq!(
            split_payload(br#"{"id":"a","score":null}"#).unwrap(),
            vec![json!({"id":"a","score":null})]
        );
        assert_eq!(
            split_payload(br#"{"results":[{"id":"a"}],"code":0}"#).unwrap(),
            vec![json!({"id":"a"})]
        );
        let mut keyed = split_payload(br#"{"m1":{"score":[]},"m2":{"id":"m2"}}"#).unwrap();
        keyed.sort_by_key(|v| v["id"].as_str().map(str::to_owned));
        assert_eq!(
            keyed,
            vec![json!({"id":"m1","score":[]}), json!({"id":"m2"})]
        );
    }

    /// The malformed-payload table: every entry is an error, none panics.
    #[test]
    fn malformed_table() {
        let table: [(&[u8], &str); 10] = [
            (b"", "not valid JSON"),
            (b"{", "not valid JSON"),
            (b"\xff\xfe", "not valid JSON"),
            (b"[1,2", "not valid JSON"),
            (b"null", "JSON null"),
            (b"42", "JSON number"),
            (b"\"text\"", "JSON string"),
            (b"true", "JSON boolean"),
            (b"{}", "no `id`"),
            (br#"{"code":0,"msg":"ok"}"#, "no `id`"),
        ];
        for (raw, want) in table {
            let err = split_payload(raw).expect_err(&String::from_utf8_lossy(raw));
            assert!(err.to_string().contains(want), "{raw:?}: {err}");
        }
    }
}
