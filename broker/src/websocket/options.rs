//! The `websocket {}` (alias `ws`) block, as nats-server's `WebsocketOpts`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::tls::TlsOptions;

/// How long an upgrade may take (TLS handshake, request, response) when
/// `handshake_timeout` is not set. nats-server then waits without limit;
/// Tribune does not let a silent socket hold a descriptor forever.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `websocket { ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebsocketOptions {
    /// Listen host; `0.0.0.0` when not given.
    pub host: String,
    /// `None`: no listener (`port: 0` or no block). `Some(0)`: a random
    /// port (`port: -1`).
    pub port: Option<u16>,
    /// `host:port` clients in the cluster are told to use for this server.
    pub advertise: Option<String>,
    /// Run without TLS: must be said explicitly, as nats-server requires.
    pub no_tls: bool,
    pub tls: Option<TlsOptions>,
    /// Browsers' `Origin` must be the request's own scheme, host and port.
    pub same_origin: bool,
    /// Browsers' `Origin` must be one of these (`http(s)://host[:port]`).
    pub allowed_origins: Vec<String>,
    /// Offer permessage-deflate to clients that ask for it.
    pub compression: bool,
    /// Limit on the whole upgrade; zero means the default.
    pub handshake_timeout: Duration,
    /// Ping interval for WebSocket clients; zero means the server's.
    pub ping_interval: Duration,
    /// Cookies whose values stand in for the CONNECT's `jwt`, `user`,
    /// `pass` and `auth_token` when the client leaves those empty.
    pub jwt_cookie: Option<String>,
    pub user_cookie: Option<String>,
    pub pass_cookie: Option<String>,
    pub token_cookie: Option<String>,
    /// `authorization {}` of the block: overrides the server's simple
    /// authentication for WebSocket clients.
    pub username: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// Seconds, from the block's `authorization { timeout }`; zero means
    /// the server's auth timeout.
    pub auth_timeout: Duration,
    pub no_auth_user: Option<String>,
    /// Extra headers for the upgrade response (e.g. HSTS).
    pub headers: BTreeMap<String, String>,
}

impl WebsocketOptions {
    pub fn enabled(&self) -> bool {
        self.port.is_some()
    }

    /// The block has an authorization of its own (nats-server's
    /// `authOverride`): its user, token and `no_auth_user` replace the
    /// server's for WebSocket clients, and they must authenticate.
    pub fn auth_override(&self) -> bool {
        self.username.is_some() || self.token.is_some() || self.no_auth_user.is_some()
    }

    /// The limit on an upgrade.
    pub fn handshake_deadline(&self) -> Duration {
        if self.handshake_timeout.is_zero() {
            DEFAULT_HANDSHAKE_TIMEOUT
        } else {
            self.handshake_timeout
        }
    }

    /// The listen host, defaulted as nats-server does.
    pub fn listen_host(&self) -> &str {
        if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        }
    }

    /// `ws` or `wss`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "wss"
        } else {
            "ws"
        }
    }
}
