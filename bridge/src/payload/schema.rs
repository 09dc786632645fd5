//! The normalised JSON schema published on `sports.<sport>.<matchId>`.
//!
//! One message per match object in the provider's payload. Field names are
//! stable (`schema` carries the version); `null`/absent sections mean "not in
//! this update", never "cleared". Documented in bridge/README.md.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// Value of the `schema` field. Bump on incompatible changes.
pub const SCHEMA_ID: &str = "tribune.sports.match_update.v1";

/// One normalised match update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchUpdate {
    pub schema: String,
    pub sport: String,
    pub match_id: String,
    /// Provider name from config (e.g. `thesports`).
    pub provider: String,
    /// MQTT topic the update arrived on.
    pub source_topic: String,
    /// Bridge receive time, Unix milliseconds.
    pub received_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<Score>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Vec<Stat>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incidents: Option<Vec<Incident>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlive: Option<Vec<TextLive>>,
    /// Top-level provider fields the schema does not model, passed through.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// Score line. `home`/`away` keep the provider's per-sport detail array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Provider match status id (football: 1 not started, 2 first half,
    /// 3 half-time, 4 second half, 5 overtime, 7 penalties, 8 ended, ...).
    pub status_id: Option<i64>,
    /// Kick-off time, Unix seconds.
    pub kickoff_ts: Option<i64>,
    pub home: Side,
    pub away: Side,
}

/// One team's side of the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// The headline score (goals, points, sets), derived per sport from `detail`.
    pub score: Option<i64>,
    /// The provider's array, unchanged. Layout per sport: see README.
    pub detail: Vec<i64>,
}

/// A statistic: `type` is the provider's stat code (e.g. 3 = shots on goal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    #[serde(rename = "type")]
    pub kind: i64,
    pub home: Option<Number>,
    pub away: Option<Number>,
}

/// A match incident: goal, card, substitution, ... (`type` is the provider code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    #[serde(rename = "type")]
    pub kind: i64,
    /// 0 neutral, 1 home, 2 away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    /// Match minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub player_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub player_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_score: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away_score: Option<i64>,
    /// Fields not modelled above, passed through.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// A text-live line ("23' Goal! ...").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextLive {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<i64>,
}
