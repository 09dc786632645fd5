//! The normalised data types: [`MatchUpdate`], one provider match object as
//! the bridge reads it, and [`MatchState`], the match as it stands, which is
//! what the bridge publishes on `sports.<sport>.<matchId>` (schema
//! [`SCHEMA_ID`], documented in bridge/README.md).
//!
//! The provider sends one section per update (only the score, only stats,
//! ...), each a snapshot of that section. A [`MatchUpdate`] keeps that shape:
//! `None` sections mean "not in this update", never "cleared". The published [`MatchState`] is the merge of every update
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

/// The score as the provider last sent it, per sport (layouts in
/// bridge/PROVIDER_FORMAT.md §4, published form in bridge/README.md). A score
/// is a snapshot: a new one replaces the held one whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Provider match status id; the codes differ per sport (README).
    pub status_id: Option<i64>,
    /// Football only (`score[4]`): the kick-off time (Unix s) of the half in
    /// play, 0 when no half is running (before kick-off, half-time, after the
    /// end). `null` for the other sports.
    pub kickoff_ts: Option<i64>,
    pub home: Side,
    pub away: Side,
    /// Basketball only (`score[2]`): seconds left in the current quarter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_s: Option<i64>,
    /// Tennis only (`score[2]`): the side serving (1 home, 2 away: inferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<i64>,
    /// Parts of the provider's score the schema does not model, as sent:
    /// tennis keys of the set object other than `ft`, `p1..p5`, `x1..x5`
    /// (`pt`, ...); football's `score[5]` when it is not the usual `""`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// One team's side of the score.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// The headline score: football goals (the extra-time total once there is
    /// one), basketball points (the sum of `detail`), tennis sets won.
    pub score: Option<i64>,
    /// Football: the provider's 7 numbers as sent (goals, half-time goals, red
    /// cards, yellow cards, corners (-1 = no data), extra-time total,
    /// shoot-out). Basketball: points per period `[Q1, Q2, Q3, Q4, OT]` as
    /// sent. Tennis: games per set, set 1 first.
    pub detail: Vec<i64>,
    /// Football only: penalty shoot-out goals (`detail[6]`) once a shoot-out
    /// is on (status 7) or has a goal; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub penalties: Option<i64>,
    /// Tennis only: the provider's `x<n>` number for each set of `detail`
    /// (tie-break points, inferred), `null` for sets without one; absent when
    /// no set has one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiebreaks: Vec<Option<i64>>,
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

/// A text-live line: `{"time": "67'", "data": "67' Goal! ...", "position": 1}`.
/// `time` is a string (`"67'"`, `"45'+2'"`, or `""` for lines without a minute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextLive {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    pub data: String,
    /// 0 neutral, 1 home, 2 away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    /// Keys the provider was not seen to send, passed through.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// The match clock, derived from the provider's score (crate::payload::clock)
/// at the state's `updated_at_ms`. Which fields a sport fills is listed per
/// field; the others are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// Football: 1 first half, 2 second half, 3 extra time, 4 penalty
    /// shoot-out. Basketball: quarter 1-4, 5 overtime. Tennis: set 1-5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<i64>,
    /// Football: the minute within regulation time (1-45, 46-90), capped at
    /// the half's end; `stoppage` counts on from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minute: Option<i64>,
    /// Football: minutes of stoppage time (45+2: `minute` 45, `stoppage` 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stoppage: Option<i64>,
    /// Football: kick-off of the half in play (Unix s), when `running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kickoff_ts: Option<i64>,
    /// Football: minutes played before this half (0 or 45). At time `t` (Unix
    /// s) the minute is `(t - kickoff_ts) / 60 + 1 + offset`, capped at
    /// `offset + 45` with the rest as stoppage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// Basketball: seconds left in the quarter, as last sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_s: Option<i64>,
    /// Tennis: the game being played in the current set (games played + 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub game: Option<i64>,
    /// Tennis: the side serving (1 home, 2 away: inferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<i64>,
    /// Whether the clock advances by itself between updates: a football half
    /// in play with a kick-off time. A reader keeps the minute ticking from
    /// `kickoff_ts`; every other value holds until the next update.
    #[serde(default)]
    pub running: bool,
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
    /// Football: the match minute at `updated_at_ms` as the provider's
    /// incidents count it (45+2 is 47), from `clock`; `null` when no half is
    /// running, and for the other sports.
    #[serde(default)]
    pub minute: Option<i64>,
    /// The match clock at `updated_at_ms`; `null` when the status has none
    /// (not started, a break, ended) or there is no score yet.
    #[serde(default)]
    pub clock: Option<Clock>,
    /// One entry per stat `type`, the latest value of each.
    #[serde(default)]
    pub stats: Vec<Stat>,
    /// The provider's latest incident list, as sent (it resends the whole
    /// list and corrects entries in place).
    #[serde(default)]
    pub incidents: Vec<Incident>,
    /// The provider's latest text-live list, as sent (resent whole too).
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

/// How much longer one update made the state's lists: the new list's length
/// minus the old one's, 0 when it is not longer (a correction in place, an
/// entry removed).
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
