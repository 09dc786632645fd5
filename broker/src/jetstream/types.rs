//! The JSON shapes of the JetStream API, field for field as nats-server
//! writes them (durations in nanoseconds, times in RFC 3339), so clients
//! built for nats-server decode them unchanged.
//!
//! Configurations keep fields Tribune does not interpret (`metadata`,
//! `placement`, ...) in `extra` and echo them back, so a client that reads
//! its configuration back sees what it sent.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// nanoseconds as nats-server encodes a `time.Duration`.
pub fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

pub fn duration(ns: i64) -> Duration {
    Duration::from_nanos(ns.max(0) as u64)
}

/// A JetStream advisory's `id`: 32 random hex digits (consumers of
/// advisories only compare them).
pub fn event_id() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// A time as Go's `time.Time` marshals it (zero time for "never").
pub fn rfc3339(t: Option<SystemTime>) -> String {
    match t {
        None => "0001-01-01T00:00:00Z".to_string(),
        Some(t) => crate::monitor::gofmt::rfc3339_nano(t),
    }
}

pub fn rfc3339_nanos(ns: i64) -> String {
    if ns <= 0 {
        return rfc3339(None);
    }
    rfc3339(Some(
        SystemTime::UNIX_EPOCH + Duration::from_nanos(ns as u64),
    ))
}

pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| SystemTime::from(d.with_timezone(&chrono::Utc)))
}

fn neg1() -> i64 {
    -1
}
fn neg1_i32() -> i32 {
    -1
}
fn one() -> i64 {
    1
}
fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(n: &i64) -> bool {
    *n == 0
}
fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Retention {
    #[default]
    Limits,
    Interest,
    #[serde(rename = "workqueue")]
    WorkQueue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Discard {
    #[default]
    Old,
    New,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    #[default]
    File,
    Memory,
}

/// `StreamConfig` as nats-server reads and writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamConfig {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default = "neg1")]
    pub max_consumers: i64,
    #[serde(default = "neg1")]
    pub max_msgs: i64,
    #[serde(default = "neg1")]
    pub max_bytes: i64,
    #[serde(default)]
    pub max_age: i64,
    #[serde(default = "neg1")]
    pub max_msgs_per_subject: i64,
    #[serde(default = "neg1_i32")]
    pub max_msg_size: i32,
    #[serde(default)]
    pub discard: Discard,
    #[serde(default)]
    pub storage: Storage,
    #[serde(default = "one")]
    pub num_replicas: i64,
    /// 0 (left out) only for mirrors and sources, which then keep no
    /// duplicate window, as in nats-server.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub duplicate_window: i64,
    #[serde(default)]
    pub sealed: bool,
    #[serde(default)]
    pub deny_delete: bool,
    #[serde(default)]
    pub deny_purge: bool,
    #[serde(default)]
    pub allow_rollup_hdrs: bool,
    /// Defaults and ceilings for the stream's consumers (clients send
    /// `null` for none).
    #[serde(default, deserialize_with = "null_as_default")]
    pub consumer_limits: super::consumer_limits::ConsumerLimits,
    /// Transform incoming subjects before storing (see
    /// [`super::subject_transform`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_transform: Option<super::subject_transform::SubjectTransformConfig>,
    /// Publish each stored message again (see [`super::republish`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub republish: Option<super::republish::RePublish>,
    /// Copy another stream, message for message (see
    /// [`super::sourcing`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<super::sourcing::StreamSource>,
    /// Take in the messages of other streams (clients send `null` for
    /// none).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sources: Vec<super::sourcing::StreamSource>,
    #[serde(default)]
    pub allow_direct: bool,
    #[serde(default)]
    pub mirror_direct: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub discard_new_per_subject: bool,
    /// Messages may carry their own TTL (`Nats-TTL`); see
    /// [`super::ttl`]. Once on, it cannot be turned off.
    #[serde(default)]
    pub allow_msg_ttl: bool,
    /// When `max_age` or a TTL removes a subject's last message, leave a
    /// delete marker that lives this long (nanoseconds; 0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subject_delete_marker_ttl: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_ack: bool,
    /// Everything else, kept and echoed back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// nats-server's default duplicate window.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamState {
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub first_ts: String,
    pub last_seq: u64,
    pub last_ts: String,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub num_deleted: u64,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub num_subjects: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subjects: Option<std::collections::BTreeMap<String, u64>>,
    pub consumer_count: usize,
}

/// nats-server's `ClusterInfo` of a stream or consumer. Every field but
/// the leader's name is left out where nats-server leaves it out: a
/// single-replica stream has no Raft group to name, `leader_since` is known
/// to the leader only, and a group without a leader names none.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_group: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub leader: String,
    /// When this server became the group's leader (RFC 3339), on the leader.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_since: Option<String>,
    /// The group's Raft traffic flows in the system account.
    #[serde(skip_serializing_if = "is_false")]
    pub system_account: bool,
    /// The account that carries the group's Raft traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_account: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<PeerInfo>,
}

/// A replica in a [`ClusterInfo`]: `active` in nanoseconds since the
/// leader last heard from it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerInfo {
    pub name: String,
    pub current: bool,
    pub active: i64,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub lag: u64,
    pub peer: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamInfo {
    pub config: StreamConfig,
    pub created: String,
    pub state: StreamState,
    pub cluster: ClusterInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<super::sourcing::SourceInfo>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<super::sourcing::SourceInfo>,
    pub ts: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeliverPolicy {
    #[default]
    All,
    Last,
    New,
    #[serde(rename = "by_start_sequence")]
    ByStartSequence,
    #[serde(rename = "by_start_time")]
    ByStartTime,
    #[serde(rename = "last_per_subject")]
    LastPerSubject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AckPolicy {
    None,
    All,
    #[default]
    Explicit,
    /// nats-server 2.14's `flow_control`: a push consumer whose
    /// flow-control replies acknowledge everything up to the sequences
    /// they name (`Nats-Last-Stream`), as a durable source answers them.
    #[serde(rename = "flow_control")]
    FlowControl,
}

impl AckPolicy {
    /// Whether one acknowledgement covers every delivery before it.
    pub fn acks_all_before(self) -> bool {
        matches!(self, AckPolicy::All | AckPolicy::FlowControl)
    }

    /// Whether unacknowledged deliveries go again after `ack_wait`
    /// (flow-control acks have no ack wait: the source resets instead).
    pub fn redelivers(self) -> bool {
        matches!(self, AckPolicy::All | AckPolicy::Explicit)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReplayPolicy {
    #[default]
    Instant,
    Original,
}

/// How a pull consumer chooses among waiting requests (nats-server 2.11's
/// priority groups). `none` is not written back (omitempty of Go's 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PriorityPolicy {
    #[default]
    None,
    /// A request may state `min_pending` / `min_ack_pending`: it is served
    /// only while the consumer is that far behind.
    Overflow,
    /// One client at a time (the pinned one) receives the messages.
    PinnedClient,
    /// Waiting requests are served lowest `priority` first.
    Prioritized,
}

impl PriorityPolicy {
    pub fn is_none(&self) -> bool {
        *self == PriorityPolicy::None
    }
}

/// `ConsumerConfig` as nats-server reads and writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ConsumerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub deliver_policy: DeliverPolicy,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub opt_start_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    #[serde(default)]
    pub ack_policy: AckPolicy,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ack_wait: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_deliver: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_subject: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filter_subjects: Vec<String>,
    #[serde(default)]
    pub replay_policy: ReplayPolicy,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_waiting: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_ack_pending: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_group: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub flow_control: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub idle_heartbeat: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub headers_only: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inactive_threshold: i64,
    /// Always written, 0 when inherited from the stream (nats-server's
    /// `num_replicas` has no `omitempty`).
    #[serde(default)]
    pub num_replicas: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub mem_storage: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backoff: Vec<i64>,
    /// Pull requests may ask for at most this many messages (0: any).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_batch: i64,
    /// Pull requests may wait at most this long, in nanoseconds (0: any).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_expires: i64,
    /// Pull requests may ask for at most this many bytes (0: any).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_bytes: i64,
    /// Nothing is delivered before this time (RFC 3339, kept in UTC as Go
    /// writes it). Set on create, or later only through `CONSUMER.PAUSE`:
    /// an update keeps the current value, as nats-server does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_until: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "PriorityPolicy::is_none")]
    pub priority_policy: PriorityPolicy,
    /// How long a pinned client keeps its pin without pulling (ns).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority_timeout: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ConsumerConfig {
    /// The filters this consumer selects with (empty: everything).
    pub fn filters(&self) -> Vec<String> {
        let mut f: Vec<String> = self.filter_subjects.clone();
        if let Some(s) = self.filter_subject.as_ref().filter(|s| !s.is_empty()) {
            f.push(s.clone());
        }
        f
    }

    pub fn is_pull(&self) -> bool {
        self.deliver_subject.as_deref().is_none_or(str::is_empty)
    }

    /// When a pause ends (None: not paused, or the pause is unreadable,
    /// which [`parse_pause`] keeps from being stored).
    pub fn pause_deadline(&self) -> Option<SystemTime> {
        self.pause_until.as_deref().and_then(parse_rfc3339)
    }
}

/// A requested pause deadline: Go's zero time (or nothing) means no
/// pause. An unreadable time is an error, as Go's JSON decoding of a
/// `time.Time` fails on one. The offset given is kept: nats-server writes
/// a new consumer's deadline back as it was given, and only stores it in
/// UTC once `CONSUMER.PAUSE` or an update sets it.
pub fn parse_pause(
    raw: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::FixedOffset>>, String> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let t = chrono::DateTime::parse_from_rfc3339(raw)
        .map_err(|e| format!("parsing time {raw:?} as RFC 3339: {e}"))?;
    let zero = chrono::NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc());
    if Some(t.with_timezone(&chrono::Utc)) == zero {
        return Ok(None);
    }
    Ok(Some(t))
}

/// `t` as Go's `time.Time` marshals it (RFC 3339 with the nanoseconds
/// that are not zero, `Z` for UTC, the offset otherwise).
pub fn go_time(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    let mut out = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = chrono::Timelike::nanosecond(t) % 1_000_000_000;
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    if t.offset().local_minus_utc() == 0 {
        out.push('Z');
    } else {
        out.push_str(&t.format("%:z").to_string());
    }
    out
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SequenceInfo {
    pub consumer_seq: u64,
    pub stream_seq: u64,
    /// When this last moved (RFC 3339): a delivery, or an acknowledgement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumerInfo {
    pub stream_name: String,
    pub name: String,
    pub created: String,
    /// Left out by `/jsz` unless asked for (`config=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<ConsumerConfig>,
    pub delivered: SequenceInfo,
    pub ack_floor: SequenceInfo,
    pub num_ack_pending: u64,
    pub num_redelivered: u64,
    pub num_waiting: u64,
    pub num_pending: u64,
    /// Clustered servers only: a server of its own reports none, as
    /// nats-server's consumer info does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    #[serde(skip_serializing_if = "is_false")]
    pub push_bound: bool,
    /// Whether a pause is in force now, and for how much longer (ns).
    #[serde(skip_serializing_if = "is_false")]
    pub paused: bool,
    #[serde(skip_serializing_if = "is_zero")]
    pub pause_remaining: i64,
    pub ts: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<PriorityGroupState>,
}

/// One priority group in a consumer's info (`pinned_ts` is always
/// written: a Go `time.Time` is never omitted).
#[derive(Debug, Clone, Serialize)]
pub struct PriorityGroupState {
    pub group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_client_id: Option<String>,
    pub pinned_ts: String,
}

/// A JSON `null` read as the type's zero value, as Go's decoder leaves a
/// non-pointer field untouched on `null` (clients send `"min_pending":null`).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A pull request (`CONSUMER.MSG.NEXT`) body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NextRequest {
    #[serde(default, deserialize_with = "null_as_default")]
    pub batch: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub expires: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub no_wait: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub max_bytes: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub idle_heartbeat: i64,
    /// Priority group fields (nats-server 2.11).
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub min_pending: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub min_ack_pending: i64,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub priority: i64,
    /// Whether the request was a JSON object: nats-server checks priority
    /// group fields only then (an empty or numeric body skips them).
    #[serde(skip)]
    pub structured: bool,
}

/// `STREAM.MSG.GET` / `DIRECT.GET` request body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MsgGetRequest {
    #[serde(default)]
    pub seq: u64,
    #[serde(default)]
    pub last_by_subj: Option<String>,
    #[serde(default)]
    pub next_by_subj: Option<String>,
}

/// `STREAM.PURGE` request body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PurgeRequest {
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub seq: u64,
    #[serde(default)]
    pub keep: u64,
}

/// A stored message as `STREAM.MSG.GET` returns it (base64 data and headers).
#[derive(Debug, Clone, Serialize)]
pub struct StoredMsgJson {
    pub subject: String,
    pub seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hdrs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    pub time: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_request_nulls_read_as_zero() {
        let r: NextRequest = serde_json::from_str(
            r#"{"batch":2,"expires":null,"group":"A","min_pending":null,"min_ack_pending":3}"#,
        )
        .expect("request");
        assert_eq!(
            (r.batch, r.expires, r.min_pending, r.min_ack_pending),
            (2, 0, 0, 3)
        );
        assert_eq!(r.group.as_deref(), Some("A"));
    }

    #[test]
    fn pause_deadlines_as_nats_server_reads_them() {
        assert_eq!(parse_pause(None), Ok(None));
        assert_eq!(parse_pause(Some("0001-01-01T00:00:00Z")), Ok(None));
        assert!(parse_pause(Some("tomorrow")).is_err());
        let t = parse_pause(Some("2030-01-02T05:04:05.120+02:00"))
            .ok()
            .flatten()
            .expect("a deadline");
        // Kept in its own offset, written as Go writes it.
        assert_eq!(go_time(&t), "2030-01-02T05:04:05.12+02:00");
        let utc = t.with_timezone(&chrono::Utc).fixed_offset();
        assert_eq!(go_time(&utc), "2030-01-02T03:04:05.12Z");
        let cfg = ConsumerConfig {
            pause_until: Some(go_time(&t)),
            ..Default::default()
        };
        assert_eq!(cfg.pause_deadline(), Some(SystemTime::from(t)));
    }

    #[test]
    fn stream_config_defaults_and_extra_fields_round_trip() {
        let c: StreamConfig =
            serde_json::from_str(r#"{"name":"S","subjects":["a.>"],"metadata":{"k":"v"}}"#)
                .unwrap();
        assert_eq!(c.max_msgs, -1);
        assert_eq!(c.max_msg_size, -1);
        assert_eq!(c.num_replicas, 1);
        assert_eq!(c.retention, Retention::Limits);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["metadata"]["k"], "v");
        assert_eq!(back["storage"], "file");
        assert_eq!(back["discard"], "old");
    }

    #[test]
    fn policies_use_nats_names() {
        let c: ConsumerConfig = serde_json::from_str(
            r#"{"deliver_policy":"by_start_sequence","opt_start_seq":5,"ack_policy":"none","replay_policy":"original"}"#,
        )
        .unwrap();
        assert_eq!(c.deliver_policy, DeliverPolicy::ByStartSequence);
        assert_eq!(c.ack_policy, AckPolicy::None);
        assert_eq!(
            serde_json::to_value(DeliverPolicy::LastPerSubject).unwrap(),
            "last_per_subject"
        );
        assert_eq!(
            serde_json::to_value(Retention::WorkQueue).unwrap(),
            "workqueue"
        );
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339(None), "0001-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let s = rfc3339(Some(t));
        assert_eq!(s, "2023-11-14T22:13:20.123456789Z");
        assert_eq!(parse_rfc3339(&s), Some(t));
    }
}
