//! Server options: the single source of truth for how a node is configured.
//!
//! Options come from three places, applied in this order, exactly as nats-server
//! does it: built-in defaults, then the configuration file (`-c`), then the
//! command-line flags, which always win. The config module fills this struct
//! from a file and the cli module overlays flags on top.

use std::path::PathBuf;
use std::time::Duration;

/// Default client port, as nats-server.
pub const DEFAULT_PORT: u16 = 4222;
/// Default monitoring port when `-m` is given without a number in config.
pub const DEFAULT_HTTP_PORT: u16 = 8222;
/// Default maximum payload: 1 MB.
pub const MAX_PAYLOAD: usize = 1024 * 1024;
/// Default maximum control line length.
pub const MAX_CONTROL_LINE: usize = 4096;
/// Default per-connection outbound pending limit: 64 MB.
pub const MAX_PENDING: usize = 64 * 1024 * 1024;
/// Default maximum number of client connections.
pub const MAX_CONNECTIONS: usize = 64 * 1024;

/// A user entry from `authorization { users = [...] }`, an account's
/// `users`, or `--user/--pass`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// Empty for NKEY users.
    pub username: String,
    /// Plain text, or a bcrypt hash (`$2a$...`) as nats-server accepts.
    pub password: String,
    /// NKEY user: the public key (`U...`) that must sign the server's nonce.
    pub nkey: Option<String>,
    /// Account the user is bound to; `None` means the global account.
    pub account: Option<String>,
    /// `None`: no restrictions. The defaults of the user's block or account
    /// are filled in here when the configuration is read.
    pub permissions: Option<crate::permissions::Permissions>,
    /// `allowed_connection_types`, upper-cased; empty allows every type.
    pub allowed_connection_types: Vec<String>,
}

/// Whether an account shares a stream of messages or a request/reply service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportKind {
    #[default]
    Stream,
    Service,
}

/// `exports: [ {stream: "sports.>"}, {service: "svc.>", accounts: [B]} ]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Export {
    pub kind: ExportKind,
    pub subject: String,
    /// Accounts allowed to import it; empty means any.
    pub accounts: Vec<String>,
    /// Services: how many responses a request may get, and for how long.
    pub response: ResponsePolicy,
    /// An account JWT's private export (`token_req`): importers need an
    /// activation the exporter signed, not revoked in `revocations`.
    pub token_required: bool,
    /// Importing account (or `*`) → unix time: activations issued at or
    /// before it are revoked.
    pub revocations: std::collections::BTreeMap<String, i64>,
}

/// An import's activation token, checked when the account JWT was read:
/// who signed it and when. The link checks the signer against the
/// exporter's keys and the time against the export's revocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    pub issuer: String,
    pub issued_at: i64,
    /// Unix seconds after which it no longer activates (0: never).
    pub expires: i64,
}

/// How many responses one request to a service may get back (a service
/// export's `response_type`, as in nats-server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseType {
    /// One: the first response is delivered and ends the request.
    #[default]
    Singleton,
    /// Any number (a batch direct get answers with many messages), until
    /// the response threshold passes without one, or an empty message.
    Stream,
    /// One response sent in parts: delivered like `Stream`.
    Chunked,
}

/// How long a requester keeps receiving responses when none comes: the
/// default of nats-server's `response_threshold`.
pub const DEFAULT_RESPONSE_THRESHOLD: Duration = Duration::from_secs(120);

/// A service export's response rules: `response_type` and
/// `response_threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePolicy {
    pub kind: ResponseType,
    /// How long the way back to the requester stays open without a
    /// response (each response of a stream opens it for this long again).
    pub threshold: Duration,
}

impl Default for ResponsePolicy {
    fn default() -> Self {
        ResponsePolicy {
            kind: ResponseType::Singleton,
            threshold: DEFAULT_RESPONSE_THRESHOLD,
        }
    }
}

/// `imports: [ {stream: {account: A, subject: "x.>"}, prefix: "p"}, {service: {account: A, subject: "svc"}, to: "local.svc"} ]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Import {
    pub kind: ExportKind,
    pub account: String,
    pub subject: String,
    /// Stream imports: prefix added to the subject. Service imports: the
    /// local subject the importer publishes requests on.
    pub to: Option<String>,
    /// For a private export: the verified activation token.
    pub activation: Option<Activation>,
}

/// One entry of `accounts { NAME { users, exports, imports } }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountConfig {
    pub name: String,
    /// An account JWT's signing keys: they may sign activations too.
    pub signing_keys: Vec<String>,
    pub exports: Vec<Export>,
    pub imports: Vec<Import>,
    /// `jetstream: enabled` (or a limits map) in the account. When any
    /// account says so, only those accounts get JetStream.
    pub jetstream: Option<bool>,
    /// `jetstream { max_mem, max_file, max_streams, ... }`: the account's
    /// JetStream limits; `None` is unlimited.
    pub jetstream_limits: Option<crate::jetstream::account_info::AccountLimits>,
    /// `default_permissions`: what the account's users without permissions
    /// of their own get, and auth-callout users whose JWT carries none.
    pub default_permissions: Option<crate::permissions::Permissions>,
    /// `limits { max_connections, max_subscriptions, max_payload }`.
    pub limits: crate::limits::AccountLimits,
}

/// Operator mode, as read from the configuration: whom to trust, and the
/// account JWTs the memory resolver starts with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OperatorOptions {
    /// Keys allowed to sign account JWTs: each operator's identity key
    /// (unless it asks for strict signing-key use) and its signing keys,
    /// or the `trusted_keys` given instead of operators.
    pub trusted_keys: Vec<String>,
    /// `resolver_preload`: account public key → account JWT, as written.
    pub preload: Vec<(String, String)>,
    /// Where account JWTs live: `MEMORY`, or a directory kept up to date
    /// over the system account (`type: full`).
    pub resolver: ResolverOptions,
}

/// `resolver: MEMORY` or `resolver { type: full, dir: ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ResolverOptions {
    #[default]
    Memory,
    Full(FullResolverOptions),
}

/// `resolver { type: full, dir, allow_delete, hard_delete, limit, interval,
/// timeout }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullResolverOptions {
    pub dir: PathBuf,
    pub delete: crate::operator::store::DeleteMode,
    /// At most this many accounts (0: no limit).
    pub limit: usize,
    /// How often the servers of a cluster compare their directories.
    pub interval: std::time::Duration,
    /// How long to wait for another server's answer.
    pub timeout: std::time::Duration,
}

impl FullResolverOptions {
    /// nats-server's defaults: a sync each minute, 1.9 s to answer.
    pub fn new(dir: PathBuf) -> Self {
        FullResolverOptions {
            dir,
            delete: Default::default(),
            limit: 0,
            interval: std::time::Duration::from_secs(60),
            timeout: std::time::Duration::from_millis(1900),
        }
    }
}

/// `cluster { ... }`: where this node listens for routes, which peers it
/// dials, and how it finds them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterOptions {
    pub name: Option<String>,
    pub host: String,
    /// Route port; `None` means clustering is off, `Some(0)` a random port.
    pub port: Option<u16>,
    /// Route URLs, e.g. `nats-route://10.0.1.5:6222`. May include this node.
    pub routes: Vec<String>,
    /// Do not advertise this node's client URLs to clients.
    pub no_advertise: bool,
    /// `host:port` other members should dial (`cluster_advertise`).
    pub advertise: Option<String>,
    /// Credentials peers must present (`authorization { user, password }`).
    /// The password may be a bcrypt hash, verified as nats-server does.
    pub username: Option<String>,
    pub password: Option<String>,
    /// How long an accepted route has to send a valid CONNECT
    /// (`authorization { timeout }`); zero until [`Options::resolve_defaults`].
    pub auth_timeout: Duration,
    /// Find peers from EC2 instance tags.
    pub discovery: Option<crate::discovery::Ec2DiscoveryConfig>,
    /// `cluster { tls {} }`: mutual TLS on every route, both directions.
    pub tls: Option<crate::tls::TlsOptions>,
}

impl ClusterOptions {
    pub fn enabled(&self) -> bool {
        self.port.is_some()
    }
}

/// How long a client has to authenticate, without TLS.
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(2);

/// `authorization { auth_callout { ... } }`: users other than `auth_users`
/// are authorized by a service answering on `$SYS.REQ.USER.AUTH`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthCalloutOptions {
    /// Public account nkey that signs the service's responses and user JWTs.
    pub issuer: String,
    /// The account the service's requests are published in (`$G` by default).
    pub account: String,
    /// Users (names or nkeys) authenticated locally, never sent to the callout:
    /// the service itself, and internal systems.
    pub auth_users: Vec<String>,
    /// Public curve key of the service: requests are sealed to it when set.
    pub xkey: Option<String>,
    /// When not empty, only users bound to these accounts go to the callout.
    pub allowed_accounts: Vec<String>,
}

/// `jetstream { ... }` settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JetStreamOptions {
    pub enabled: bool,
    pub store_dir: Option<PathBuf>,
    pub max_memory_store: Option<i64>,
    pub max_file_store: Option<i64>,
    /// How file streams reach the disk. Tribune's default is [`SyncPolicy::Always`]:
    /// a publish is acknowledged only once it is fsynced.
    pub sync: SyncPolicy,
    /// `jetstream { limits { ... } }`: the server's ceilings for what any
    /// account's streams and consumers may ask for.
    pub limits: JsServerLimits,
}

/// `jetstream { limits { max_ack_pending, max_request_batch,
/// duplicate_window } }`, as nats-server applies them: each lowers the
/// default a stream or consumer gets and caps what it may ask for. Zero is
/// no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JsServerLimits {
    pub max_ack_pending: i64,
    pub max_request_batch: i64,
    pub duplicate_window: Duration,
}

/// `jetstream { sync_interval }`: `always` (the default here; nats-server's
/// default is a 2-minute interval) or a duration between background fsyncs,
/// trading the durability of acknowledged messages for throughput.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    #[default]
    Always,
    Interval(Duration),
}

/// Every option a tribune-broker node understands.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Path of the configuration file, if any; used for reload.
    pub config_file: Option<PathBuf>,

    pub server_name: Option<String>,
    pub host: String,
    /// Client port. `-1` on the command line means "pick a random port",
    /// which is stored here as 0.
    pub port: u16,
    /// Advertised client address, overriding what goes into connect_urls.
    pub client_advertise: Option<String>,

    /// Monitoring host; empty means "the client host", resolved after the
    /// flags are applied, as nats-server does.
    pub http_host: String,
    /// Monitoring port; `None` disables monitoring. `Some(0)` picks a random port.
    pub http_port: Option<u16>,
    /// Base path for the monitoring endpoints, like nats-server's `http_base_path`.
    pub http_base_path: String,

    pub debug: bool,
    pub trace: bool,
    /// Prefix each log line with a timestamp (nats-server `logtime`).
    pub logtime: bool,
    /// Use UTC timestamps in logs (nats-server `logtime_utc`).
    pub logtime_utc: bool,
    pub log_file: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub ports_file_dir: Option<PathBuf>,

    // Authorization for the global account.
    pub username: Option<String>,
    pub password: Option<String>,
    pub authorization: Option<String>,
    pub users: Vec<User>,
    pub no_auth_user: Option<String>,
    /// The `authorization {}` block's `default_permissions` (or
    /// `permissions`). Already given to the block's users without their own
    /// when the configuration was read; they also bind the single
    /// user/password or token user, which nats-server leaves unrestricted.
    pub default_permissions: Option<crate::permissions::Permissions>,
    /// Accounts beyond the global `$G`; their users are in `users`.
    pub accounts: Vec<AccountConfig>,
    /// The system account (`$SYS` when not configured).
    pub system_account: Option<String>,
    /// Zero until resolved: then 2 s, or with client TLS its handshake
    /// timeout plus one second, as nats-server defaults it.
    pub auth_timeout: Duration,
    pub auth_callout: Option<AuthCalloutOptions>,
    /// Operator mode (`operator`, `resolver`): clients authenticate with
    /// user JWTs of accounts the operator signed.
    pub operator: Option<OperatorOptions>,

    // Limits.
    /// Maximum client connections. 0 refuses every client, which is what
    /// `max_connections: 0` (or a negative value) means to nats-server.
    pub max_connections: usize,
    pub max_payload: usize,
    pub max_control_line: usize,
    pub max_pending: usize,
    /// Maximum subscriptions per connection; 0 means unlimited.
    pub max_subs: usize,
    pub ping_interval: Duration,
    pub ping_max: u32,
    pub write_deadline: Duration,
    pub no_header_support: bool,
    /// Drop messages for a consumer over its pending limit instead of
    /// briefly stalling the producer (nats-server `no_fast_producer_stall`).
    pub no_fast_producer_stall: bool,

    pub lame_duck_duration: Duration,
    pub lame_duck_grace_period: Duration,

    pub cluster: ClusterOptions,
    pub jetstream: JetStreamOptions,

    /// Client-port TLS (`tls {}`); also the certificates of the https monitor.
    pub tls: Option<crate::tls::TlsOptions>,
    /// Accept plain-text clients on a TLS port too (`allow_non_tls`).
    pub allow_non_tls: bool,
    /// Monitoring over https (`https`, `https_port`); `Some(0)` picks a random port.
    pub https_port: Option<u16>,
    /// The WebSocket listener (`websocket {}`), off unless it has a port.
    pub websocket: crate::websocket::WebsocketOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config_file: None,
            server_name: None,
            host: "0.0.0.0".to_string(),
            port: DEFAULT_PORT,
            client_advertise: None,
            http_host: String::new(),
            http_port: None,
            http_base_path: String::new(),
            debug: false,
            trace: false,
            logtime: true,
            logtime_utc: false,
            log_file: None,
            pid_file: None,
            ports_file_dir: None,
            username: None,
            password: None,
            authorization: None,
            users: Vec::new(),
            no_auth_user: None,
            default_permissions: None,
            accounts: Vec::new(),
            system_account: None,
            auth_timeout: Duration::ZERO,
            auth_callout: None,
            operator: None,
            max_connections: MAX_CONNECTIONS,
            max_payload: MAX_PAYLOAD,
            max_control_line: MAX_CONTROL_LINE,
            max_pending: MAX_PENDING,
            max_subs: 0,
            ping_interval: Duration::from_secs(120),
            ping_max: 2,
            write_deadline: Duration::from_secs(10),
            no_header_support: false,
            no_fast_producer_stall: false,
            lame_duck_duration: Duration::from_secs(120),
            lame_duck_grace_period: Duration::from_secs(10),
            cluster: ClusterOptions::default(),
            jetstream: JetStreamOptions::default(),
            tls: None,
            allow_non_tls: false,
            https_port: None,
            websocket: Default::default(),
        }
    }
}

impl Options {
    /// The host the monitoring listener binds to.
    pub fn monitor_host(&self) -> &str {
        if self.http_host.is_empty() {
            &self.host
        } else {
            &self.http_host
        }
    }

    /// Fill in defaults that depend on other options (nats-server does
    /// this once the file and the flags are both applied).
    pub fn resolve_defaults(&mut self) {
        if self.auth_timeout.is_zero() {
            self.auth_timeout = match &self.tls {
                Some(t) => t.timeout + Duration::from_secs(1),
                None => DEFAULT_AUTH_TIMEOUT,
            };
        }
        // Routes have their own: the route TLS timeout plus one second with
        // route TLS, else 2 s (nats-server's default, also when the cluster
        // block sets no authorization).
        if self.cluster.auth_timeout.is_zero() {
            self.cluster.auth_timeout = match &self.cluster.tls {
                Some(t) => t.timeout + Duration::from_secs(1),
                None => DEFAULT_AUTH_TIMEOUT,
            };
        }
    }

    /// True when clients must authenticate on the global account.
    /// Whether clients must authenticate. With an auth callout they always
    /// must, even with no local users: nats-server then says
    /// `auth_required: false` and lets a client publish and subscribe before
    /// its CONNECT has been decided, which Tribune does not.
    pub fn auth_required(&self) -> bool {
        self.username.is_some()
            || self.authorization.is_some()
            || !self.users.is_empty()
            || self.auth_callout.is_some()
            || self.operator.is_some()
    }

    /// NKEY users need a nonce in INFO to sign.
    pub fn nonce_required(&self) -> bool {
        self.users.iter().any(|u| u.nkey.is_some()) || self.operator.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_timeout_defaults_follow_tls() {
        let mut o = Options::default();
        o.resolve_defaults();
        assert_eq!(o.auth_timeout, DEFAULT_AUTH_TIMEOUT);
        let mut o = Options {
            tls: Some(crate::tls::TlsOptions {
                timeout: Duration::from_secs(5),
                ..Default::default()
            }),
            ..Default::default()
        };
        o.resolve_defaults();
        assert_eq!(o.auth_timeout, Duration::from_secs(6));
        let mut o = Options {
            auth_timeout: Duration::from_millis(1500),
            ..o
        };
        o.resolve_defaults();
        assert_eq!(o.auth_timeout, Duration::from_millis(1500), "explicit wins");
    }

    /// nats-server's route default: 2 s, or the route TLS timeout plus 1 s.
    #[test]
    fn route_auth_timeout_defaults_follow_route_tls() {
        let mut o = Options::default();
        o.resolve_defaults();
        assert_eq!(o.cluster.auth_timeout, DEFAULT_AUTH_TIMEOUT);
        let mut o = Options::default();
        o.cluster.tls = Some(crate::tls::TlsOptions {
            timeout: Duration::from_secs(4),
            ..Default::default()
        });
        o.resolve_defaults();
        assert_eq!(o.cluster.auth_timeout, Duration::from_secs(5));
        o.cluster.auth_timeout = Duration::from_millis(500);
        o.resolve_defaults();
        assert_eq!(
            o.cluster.auth_timeout,
            Duration::from_millis(500),
            "explicit wins"
        );
    }
}
