//! The NATS client protocol: parsing inbound operations, the CONNECT and INFO
//! documents, and the exact error texts nats-server sends.

pub mod connect;
pub mod info;
pub mod parser;

pub use connect::ConnectOptions;
pub use info::Info;
pub use parser::{Op, ParseError, Parser, Step};

/// Client protocol version that supports async INFO (connect_urls updates).
pub const CLIENT_PROTO_INFO: i32 = 1;

/// The `-ERR` texts, worded exactly as nats-server words them, because
/// clients match on them.
pub mod errors {
    pub const UNKNOWN_OP: &str = "Unknown Protocol Operation";
    pub const MAX_PAYLOAD: &str = "Maximum Payload Violation";
    pub const MAX_CONTROL_LINE: &str = "maximum control line exceeded";
    pub const INVALID_SUBJECT: &str = "Invalid Subject";
    pub const INVALID_PUB_SUBJECT: &str = "Invalid Publish Subject";
    pub const AUTH_VIOLATION: &str = "Authorization Violation";
    pub const AUTH_TIMEOUT: &str = "Authentication Timeout";
    pub const AUTH_EXPIRED: &str = "User Authentication Expired";
    pub const ACCOUNT_AUTH_EXPIRED: &str = "Account Authentication Expired";
    pub const AUTH_REVOKED: &str = "User Authentication Revoked";
    pub const STALE_CONNECTION: &str = "Stale Connection";
    pub const SLOW_CONSUMER: &str = "Slow Consumer";
    pub const MAX_CONNECTIONS: &str = "maximum connections exceeded";
    pub const MAX_ACCOUNT_CONNECTIONS_EXCEEDED: &str =
        "maximum account active connections exceeded";
    pub const MAX_SUBS: &str = "maximum subscriptions exceeded";
    pub const BAD_CLIENT_PROTOCOL: &str = "invalid client protocol";
    pub const NO_RESPONDERS_REQUIRES_HEADERS: &str = "no responders requires headers support";
}

/// Render `-ERR '<text>'\r\n`.
pub fn err_line(text: &str) -> Vec<u8> {
    format!("-ERR '{text}'\r\n").into_bytes()
}
