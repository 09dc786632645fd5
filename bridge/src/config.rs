//! Bridge configuration (TOML). See bridge/README.md for every key.
//!
//! Secrets (provider credentials, NKEY seeds) are given as exactly one of
//! `{ value = ".." }` (dev only), `{ file = ".." }` or `{ env = "NAME" }`, and are
//! held in [`SecretString`], whose `Debug` never prints the value, so neither a
//! config dump nor an error message can leak them into the logs.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// A secret's source.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum Secret {
    Value(String),
    File(PathBuf),
    Env(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("Secret::Value(***)"),
            Secret::File(p) => write!(f, "Secret::File({})", p.display()),
            Secret::Env(n) => write!(f, "Secret::Env({n})"),
        }
    }
}

/// A resolved secret. Deliberately not `Display`; `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Secret {
    /// Reads the secret. Errors name the source, never the value.
    pub fn resolve(&self) -> Result<SecretString> {
        let s = match self {
            Secret::Value(v) => v.clone(),
            Secret::File(p) => std::fs::read_to_string(p)
                .with_context(|| format!("reading secret file {}", p.display()))?
                .trim()
                .to_owned(),
            Secret::Env(name) => std::env::var(name)
                .with_context(|| format!("secret environment variable {name} is not set"))?,
        };
        if s.is_empty() {
            bail!("secret from {self:?} is empty");
        }
        Ok(SecretString(s))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub mqtt: MqttConfig,
    pub nats: NatsConfig,
    #[serde(default)]
    pub jetstream: JetStreamConfig,
    #[serde(default)]
    pub bridge: BridgeConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub ha: HaConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtts://host:8883` or `wss://host:443/mqtt` (TLS, verified), or
    /// `mqtt://host:1883` / `ws://host/mqtt` (plaintext: refused unless
    /// `allow_plaintext`, meant for loopback brokers; `ws://` only to a
    /// loopback host). See [`crate::endpoint`].
    pub url: String,
    /// Permits `mqtt://` and (to loopback) `ws://`.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Stable id: the broker keys the persistent session (unacked QoS 1
    /// messages) by it, so it must survive restarts.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    pub username: Option<Secret>,
    pub password: Option<Secret>,
    /// PEM CA bundle; default: the system roots.
    pub ca_file: Option<PathBuf>,
    /// false = persistent session (required for no-loss QoS 1).
    #[serde(default)]
    pub clean_session: bool,
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
    #[serde(default = "default_max_packet")]
    pub max_packet_bytes: usize,
    #[serde(default = "default_backoff_min")]
    pub reconnect_min_ms: u64,
    #[serde(default = "default_backoff_max")]
    pub reconnect_max_ms: u64,
    /// Topic level holding the sport: 1 in `thesports/<sport>/match/v1`.
    #[serde(default = "default_sport_level")]
    pub sport_topic_level: usize,
    pub subscriptions: Vec<Subscription>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub topic: String,
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// Sport for messages on exactly this topic; default: from `sport_topic_level`.
    pub sport: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    #[serde(default = "default_servers")]
    pub servers: Vec<String>,
    /// NKEY user seed (`SU...`).
    pub nkey_seed: Option<Secret>,
    /// A `.creds` file (user JWT + seed), for operator mode.
    pub creds_file: Option<PathBuf>,
    pub tls_ca_file: Option<PathBuf>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_required: bool,
    #[serde(default = "default_nats_name")]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JetStreamConfig {
    /// Create or update the streams at startup (else they must exist).
    #[serde(default = "yes")]
    pub manage_streams: bool,
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Subject prefix: updates go to `<prefix>.<sport>.<matchId>`.
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// Dedup window: a redelivered provider message within it is dropped by the server.
    #[serde(default = "default_dup_window")]
    pub duplicate_window_secs: u64,
    #[serde(default = "default_max_age")]
    pub max_age_secs: u64,
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// `file` or `memory`.
    #[serde(default = "default_storage")]
    pub storage: String,
    #[serde(default = "default_dlq_stream")]
    pub dead_letter_stream: String,
    #[serde(default = "default_dlq_subject")]
    pub dead_letter_subject: String,
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// Provider name stamped into every update.
    #[serde(default = "default_provider")]
    pub provider: String,
    /// Publishes awaiting their JetStream ack, at most.
    #[serde(default = "default_max_inflight")]
    pub max_inflight: usize,
    /// QoS 0 messages waiting for the publisher; beyond this they are dropped and counted.
    #[serde(default = "default_qos0_queue")]
    pub qos0_queue: usize,
    /// Retry backoff for a failed JetStream publish (same Nats-Msg-Id each time).
    #[serde(default = "default_retry_min")]
    pub retry_min_ms: u64,
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
}

/// The per-match states the bridge holds in memory (crate::state). Only
/// memory: a match dropped from it is reloaded from its last stored message
/// when it comes back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Matches held at most; beyond, the least recently updated is dropped.
    #[serde(default = "default_max_matches")]
    pub max_matches: usize,
    /// A match without an update for this long is dropped.
    #[serde(default = "default_idle_evict")]
    pub idle_evict_secs: u64,
    /// A match whose status is in `ended_status` is dropped this long after
    /// its last update (late corrections still find it held).
    #[serde(default = "default_ended_evict")]
    pub ended_evict_secs: u64,
    /// Provider status ids meaning "ended", per sport. Sports not listed are
    /// dropped when idle.
    #[serde(default = "default_ended_status")]
    pub ended_status: BTreeMap<String, Vec<i64>>,
}

impl StateConfig {
    pub fn limits(&self) -> crate::state::Limits {
        crate::state::Limits {
            max_matches: self.max_matches,
            idle_evict: std::time::Duration::from_secs(self.idle_evict_secs),
            ended_evict: std::time::Duration::from_secs(self.ended_evict_secs),
            ended_status: self
                .ended_status
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// How the bridges of a cluster share the provider feed (README "High
/// availability").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaConfig {
    #[serde(default)]
    pub mode: HaMode,
    /// `single_active`: the KV bucket holding the lease (created with the
    /// stream's replicas and `max_age` = the TTL).
    #[serde(default = "default_lease_bucket")]
    pub lease_bucket: String,
    /// `single_active`: the key; bridges sharing one provider connection use
    /// the same key.
    #[serde(default = "default_lease_key")]
    pub lease_key: String,
    /// `single_active`: a dead holder is replaced within about this long; the
    /// holder renews four times per TTL and steps down after two thirds of it
    /// without a renewal.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl_ms: u64,
    /// Name of this bridge in the lease (default: `nats.name` and the host).
    #[serde(default)]
    pub instance: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HaMode {
    /// Every bridge connects to the provider (each with its own
    /// `mqtt.client_id`) and publishes every update; JetStream keeps one copy
    /// of each (the same `Nats-Msg-Id` from every bridge).
    #[default]
    AllActive,
    /// One bridge, the holder of a lease, connects; the others stand by and
    /// take over (same `mqtt.client_id`, so the provider's persistent session
    /// and its unacked messages pass to the new holder).
    SingleActive,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `/healthz` and `/metrics`; empty string disables.
    #[serde(default = "default_http_listen")]
    pub listen: String,
}

impl HttpConfig {
    pub fn addr(&self) -> Result<Option<SocketAddr>> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        self.listen
            .parse()
            .map(Some)
            .with_context(|| format!("http.listen {:?} is not host:port", self.listen))
    }
}

fn yes() -> bool {
    true
}
fn default_client_id() -> String {
    "tribune-bridge".into()
}
fn default_keep_alive() -> u64 {
    15
}
fn default_max_packet() -> usize {
    1 << 20
}
fn default_backoff_min() -> u64 {
    100
}
fn default_backoff_max() -> u64 {
    10_000
}
fn default_sport_level() -> usize {
    1
}
fn default_qos() -> u8 {
    1
}
fn default_servers() -> Vec<String> {
    vec!["nats://127.0.0.1:4222".into()]
}
fn default_nats_name() -> String {
    "tribune-bridge".into()
}
fn default_stream() -> String {
    "SPORTS".into()
}
fn default_prefix() -> String {
    "sports".into()
}
fn default_dup_window() -> u64 {
    120
}
fn default_max_age() -> u64 {
    24 * 3600
}
fn default_replicas() -> usize {
    1
}
fn default_storage() -> String {
    "file".into()
}
fn default_dlq_stream() -> String {
    "SPORTS_DLQ".into()
}
fn default_dlq_subject() -> String {
    "deadletter.sports".into()
}
fn default_ack_timeout() -> u64 {
    5_000
}
fn default_provider() -> String {
    "thesports".into()
}
fn default_max_inflight() -> usize {
    4096
}
fn default_qos0_queue() -> usize {
    10_000
}
fn default_retry_min() -> u64 {
    50
}
fn default_retry_max() -> u64 {
    5_000
}
fn default_max_matches() -> usize {
    10_000
}
fn default_idle_evict() -> u64 {
    3600
}
fn default_ended_evict() -> u64 {
    600
}
/// The provider's "ended" codes (bridge/PROVIDER_FORMAT.md §5): football 8,
/// basketball 10, tennis 100 and the walkover / retired / defaulted codes
/// 20-27.
fn default_ended_status() -> BTreeMap<String, Vec<i64>> {
    BTreeMap::from([
        ("football".into(), vec![8]),
        ("basketball".into(), vec![10]),
        ("tennis".into(), vec![100, 20, 21, 22, 23, 24, 25, 26, 27]),
    ])
}
fn default_lease_bucket() -> String {
    "tribune_bridge".into()
}
fn default_lease_key() -> String {
    "active".into()
}
fn default_lease_ttl() -> u64 {
    6000
}
fn default_http_listen() -> String {
    "127.0.0.1:9465".into()
}

impl Default for JetStreamConfig {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("all fields have defaults"))
    }
}
impl Default for BridgeConfig {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("all fields have defaults"))
    }
}
impl Default for StateConfig {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("all fields have defaults"))
    }
}
impl Default for HaConfig {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("all fields have defaults"))
    }
}
impl Default for HttpConfig {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("all fields have defaults"))
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot: values that would fail later, at a worse time.
    pub fn validate(&self) -> Result<()> {
        let m = &self.mqtt;
        if m.subscriptions.is_empty() {
            bail!("mqtt.subscriptions is empty: nothing to bridge");
        }
        for s in &m.subscriptions {
            if s.qos > 1 {
                bail!("mqtt subscription {:?}: qos must be 0 or 1", s.topic);
            }
            if let Some(sport) = &s.sport {
                crate::subject::validate_token(sport)
                    .with_context(|| format!("subscription {:?}: sport {sport:?}", s.topic))?;
            }
        }
        let endpoint = crate::endpoint::Endpoint::parse(&m.url).context("mqtt.url")?;
        if !endpoint.scheme.is_tls() && !m.allow_plaintext {
            bail!(
                "mqtt.url is plaintext {}://; use mqtts:// or wss://, or set allow_plaintext = true (loopback/dev only)",
                endpoint.scheme.as_str()
            );
        }
        // Plaintext WebSocket is for a local broker only: a provider reached
        // over WebSocket is on the internet, where only wss:// will do.
        if endpoint.scheme == crate::endpoint::Scheme::Ws && !endpoint.is_loopback() {
            bail!(
                "mqtt.url ws://{}: plaintext WebSocket only to a loopback host (127.0.0.0/8, ::1, localhost); use wss://",
                endpoint.host
            );
        }
        if m.clean_session && m.subscriptions.iter().any(|s| s.qos == 1) {
            tracing::warn!("mqtt.clean_session = true: QoS 1 messages in flight during a bridge crash can be lost");
        }
        if m.reconnect_min_ms == 0 || m.reconnect_min_ms > m.reconnect_max_ms {
            bail!("mqtt.reconnect_min_ms must be > 0 and <= reconnect_max_ms");
        }
        if self.nats.servers.is_empty() {
            bail!("nats.servers is empty");
        }
        if self.nats.nkey_seed.is_some() && self.nats.creds_file.is_some() {
            bail!("nats: set nkey_seed or creds_file, not both");
        }
        if self.nats.tls_cert_file.is_some() != self.nats.tls_key_file.is_some() {
            bail!("nats: tls_cert_file and tls_key_file go together");
        }
        let js = &self.jetstream;
        if !matches!(js.storage.as_str(), "file" | "memory") {
            bail!("jetstream.storage must be \"file\" or \"memory\"");
        }
        for tok in js.subject_prefix.split('.') {
            crate::subject::validate_token(tok).context("jetstream.subject_prefix")?;
        }
        for tok in js.dead_letter_subject.split('.') {
            crate::subject::validate_token(tok).context("jetstream.dead_letter_subject")?;
        }
        if js
            .dead_letter_subject
            .starts_with(&format!("{}.", js.subject_prefix))
        {
            bail!(
                "jetstream.dead_letter_subject must be outside {}.> (it has its own stream)",
                js.subject_prefix
            );
        }
        if js.duplicate_window_secs == 0 {
            bail!(
                "jetstream.duplicate_window_secs must be > 0: dedup is what makes redelivery safe"
            );
        }
        if self.bridge.max_inflight == 0 || self.bridge.qos0_queue == 0 {
            bail!("bridge.max_inflight and bridge.qos0_queue must be > 0");
        }
        if self.state.max_matches == 0 {
            bail!("state.max_matches must be > 0");
        }
        self.http.addr()?;
        let ha = &self.ha;
        if ha.mode == HaMode::SingleActive {
            crate::subject::validate_token(&ha.lease_key).context("ha.lease_key")?;
            if ha.lease_bucket.is_empty()
                || !ha
                    .lease_bucket
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                bail!("ha.lease_bucket must be letters, digits, '_' or '-'");
            }
            if ha.lease_ttl_ms < 1000 {
                bail!("ha.lease_ttl_ms must be at least 1000");
            }
            if m.clean_session {
                bail!("ha.mode = \"single_active\" needs mqtt.clean_session = false: the provider's session is what passes unacked messages to the next active bridge");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
        [mqtt]
        url = "mqtts://mqtt.example.com:8883"
        username = { env = "TB_TEST_USER" }
        password = { value = "hunter2" }
        [[mqtt.subscriptions]]
        topic = "thesports/football/match/v1"
        [nats]
    "#;

    #[test]
    fn defaults() {
        let c = Config::parse(MIN).unwrap();
        assert_eq!(c.mqtt.subscriptions[0].qos, 1);
        assert!(!c.mqtt.clean_session);
        assert_eq!(c.jetstream.stream, "SPORTS");
        assert_eq!(c.jetstream.duplicate_window_secs, 120);
        assert_eq!(c.state.max_matches, 10_000);
        assert_eq!(c.state.limits().ended_status["football"], [8]);
        assert_eq!(c.state.limits().ended_status["basketball"], [10]);
        assert!(c.state.limits().ended_status["tennis"].contains(&100));
        let c = Config::parse(&format!(
            "{MIN}\n[state]\nmax_matches = 5\nended_status = {{ tennis = [100] }}"
        ))
        .unwrap();
        let limits = c.state.limits();
        assert_eq!(limits.max_matches, 5);
        assert_eq!(limits.ended_status.len(), 1);
        assert_eq!(
            c.http.addr().unwrap(),
            Some("127.0.0.1:9465".parse().unwrap())
        );
    }

    #[test]
    fn secrets_never_debug_printed() {
        let c = Config::parse(MIN).unwrap();
        let dump = format!("{c:?}");
        assert!(!dump.contains("hunter2"), "{dump}");
        let resolved = c.mqtt.password.as_ref().unwrap().resolve().unwrap();
        assert_eq!(resolved.expose(), "hunter2");
        assert_eq!(format!("{resolved:?}"), "***");
        let err = Secret::Env("TB_TEST_SURELY_UNSET".into())
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("TB_TEST_SURELY_UNSET"));
    }

    #[test]
    fn transports() {
        let wss = MIN.replace(
            "mqtts://mqtt.example.com:8883",
            "wss://mqtt.example.com/mqtt",
        );
        Config::parse(&wss).unwrap();
        let local_ws = MIN.replace(
            "url = \"mqtts://mqtt.example.com:8883\"",
            "url = \"ws://127.0.0.1:9001/mqtt\"\nallow_plaintext = true",
        );
        Config::parse(&local_ws).unwrap();
        let local_mqtt = MIN.replace(
            "url = \"mqtts://mqtt.example.com:8883\"",
            "url = \"mqtt://127.0.0.1:1883\"\nallow_plaintext = true",
        );
        Config::parse(&local_mqtt).unwrap();
    }

    const SINGLE: &str = r#"
        [mqtt]
        url = "mqtts://mqtt.example.com:8883"
        [[mqtt.subscriptions]]
        topic = "t/#"
        qos = 1
        [nats]
        servers = ["nats://127.0.0.1:4222"]
        [ha]
        mode = "single_active"
        "#;

    #[test]
    fn ha_defaults_to_all_active() {
        let cfg = Config::parse(MIN).unwrap();
        assert_eq!(cfg.ha.mode, HaMode::AllActive);
        let single = Config::parse(SINGLE).unwrap();
        assert_eq!(single.ha.mode, HaMode::SingleActive);
        assert_eq!(
            (
                single.ha.lease_bucket.as_str(),
                single.ha.lease_key.as_str()
            ),
            ("tribune_bridge", "active")
        );
    }

    #[test]
    fn rejects() {
        let table = [
            (MIN.replace("mqtts://", "mqtt://"), "plaintext"),
            (MIN.replace("mqtts://", "tcp://"), "plaintext"),
            (
                MIN.replace("mqtts://mqtt.example.com:8883", "ws://127.0.0.1:8080/mqtt"),
                "plaintext ws://",
            ),
            (
                MIN.replace(
                    "url = \"mqtts://mqtt.example.com:8883\"",
                    "url = \"ws://mqtt.example.com/mqtt\"\nallow_plaintext = true",
                ),
                "only to a loopback host",
            ),
            (
                MIN.replace(
                    "mqtts://mqtt.example.com:8883",
                    "wss://u:p@mqtt.example.com",
                ),
                "mqtt.url",
            ),
            (MIN.replace("mqtts://", "https://"), "scheme"),
            (MIN.replace("[nats]", "[nats]\nbogus = 1"), "unknown field"),
            (
                MIN.replace("[nats]", "qos = 2\n[nats]"),
                "qos must be 0 or 1",
            ),
            (
                MIN.replace("[nats]", "sport = \"foot.ball\"\n[nats]"),
                "sport",
            ),
            (
                format!("{MIN}\n[jetstream]\ndead_letter_subject = \"sports.dlq\""),
                "outside",
            ),
            (format!("{MIN}\n[jetstream]\nstorage = \"disk\""), "storage"),
            (format!("{MIN}\n[http]\nlisten = \"nope\""), "http.listen"),
            (
                format!("{MIN}\n[state]\nmax_matches = 0"),
                "state.max_matches",
            ),
            (format!("{MIN}\n[ha]\nmode = \"both\""), "unknown variant"),
            (
                format!("{MIN}\n[ha]\nmode = \"single_active\"\nlease_ttl_ms = 500"),
                "lease_ttl_ms",
            ),
            (
                format!("{MIN}\n[ha]\nmode = \"single_active\"\nlease_key = \"a.b\""),
                "ha.lease_key",
            ),
            (
                format!("{MIN}\n[ha]\nmode = \"single_active\"\nlease_bucket = \"a.b\""),
                "ha.lease_bucket",
            ),
            (
                SINGLE.replace(
                    "url = \"mqtts://mqtt.example.com:8883\"",
                    "url = \"mqtts://mqtt.example.com:8883\"\nclean_session = true",
                ),
                "clean_session = false",
            ),
        ];
        for (text, want) in table {
            let err = format!("{:#}", Config::parse(&text).unwrap_err());
            assert!(err.contains(want), "want {want:?}, got {err}");
        }
    }
}
