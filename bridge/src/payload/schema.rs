//! The normalised data types: [`MatchUpdate`], one provider match object as
//! the bridge reads it, and [`MatchState`], the match as it stands, which is
//! what the bridge publishes on `sports.<sport>.<matchId>` (schema
//! [`SCHEMA_ID`], documented in bridge/README.md).
//!
//! The provider sends partial updates (only the score, only stats, ...). A
//! [`MatchUpdate`] keeps that shape: `None` sections mean "not in this update",
//! never "cleared". The published [`MatchState`] is the merge of every update
//! so far (crate::state::merge), so the last message of a subject is the whole
//! match.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// Value of the `schema` field of every published message. Bump on
/// incompatible changes.
pub const SCHEMA_ID: &str = "tribune.sports.match.v2";

/// The schema of the bridge's earlier messages (one partial update each). The
/// bridge no longer publishes it; it still reads one as the starting point of
/// a match that was live across the upgrade.
pub const LEGACY_SCHEMA_V1: &str = "tribune.sports.match_update.v1";

/// One normalised match update (a provider match object, partial). Internal:
/// merged into a [`MatchState`], never published as such. A v1 message (which
/// was this plus `schema`) deserialises into it, which is how a legacy stored
/// message is read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchUpdate {
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

/// The match as it stands: the merge of every update the provider sent for
/// it. Published (inside [`StateMessage`]) on every update, so the last
/// message of a subject is the match's current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchState {
    /// [`SCHEMA_ID`].
    pub schema: String,
    pub sport: String,
    pub match_id: String,
    pub provider: String,
    /// Revision: grows by one with every update that changes the state, never
    /// decreases (also across bridge restarts and failover). Of two messages
    /// for a match the higher `rev` is the newer; equal revs are equal states.
    pub rev: u64,
    /// Bridge receive time (Unix ms) of the update that last changed the state.
    pub updated_at_ms: u64,
    /// `null` until the provider has sent a score.
    #[serde(default)]
    pub score: Option<Score>,
    /// The highest match minute any incident or text-live line carried;
    /// `null` while none did.
    #[serde(default)]
    pub minute: Option<i64>,
    /// One entry per stat `type`, the latest value of each.
    #[serde(default)]
    pub stats: Vec<Stat>,
    /// Every incident so far, in arrival order, without duplicates.
    #[serde(default)]
    pub incidents: Vec<Incident>,
    /// Every text-live line so far, in arrival order, without duplicates.
    #[serde(default)]
    pub tlive: Vec<TextLive>,
    /// Unmodelled top-level provider fields, latest value of each key.
    #[serde(default)]
    pub extra: Map<String, Value>,
}

/// A part of the state an update can change (the `changed` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    Score,
    Stats,
    Incidents,
    Tlive,
    Extra,
}

/// Entries one update appended to the end of the state's lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Added {
    pub incidents: usize,
    pub tlive: usize,
}

/// What one update did to the state: the delta carried next to the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// Sections whose value changed, in [`Section`] order; empty when the
    /// update changed nothing (a resend).
    pub changed: Vec<Section>,
    pub added: Added,
}

/// The published message: the whole state plus what this update changed.
#[derive(Debug, Serialize)]
pub struct StateMessage<'a> {
    #[serde(flatten)]
    pub state: &'a MatchState,
    pub changed: &'a [Section],
    pub added: Added,
}

/// A published message as a reader parses it (the `tail` tool, tests).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MatchMessage {
    #[serde(flatten)]
    pub state: MatchState,
    #[serde(default)]
    pub changed: Vec<Section>,
    #[serde(default)]
    pub added: Added,
}
