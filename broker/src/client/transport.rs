//! What a client connection runs over. The connection state machine reads
//! the client protocol as a byte stream ([`tokio::io::AsyncRead`]) and hands
//! the bytes it queued to a [`TransportWriter`]; TCP and TLS carry them as
//! they are ([`Plain`]), WebSocket wraps them in frames (`crate::websocket`).

use std::future::Future;
use std::io;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::ClosedState;
use crate::protocol::ConnectOptions;

/// How a client reached the server: nats-server's client type. It names
/// the connection in logs (`cid:` or `wid:`), in `/connz` (`type`), in auth
/// callout requests, and in `allowed_connection_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientType {
    /// The client protocol over TCP (or TLS).
    #[default]
    Nats,
    /// The client protocol inside WebSocket frames.
    Websocket,
}

impl ClientType {
    /// nats-server's `clientTypeString`: `/connz` `type`, callout `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientType::Nats => "nats",
            ClientType::Websocket => "websocket",
        }
    }

    /// What `allowed_connection_types` calls it.
    pub fn conn_type(self) -> &'static str {
        match self {
            ClientType::Nats => crate::auth::CONN_TYPE_STANDARD,
            ClientType::Websocket => crate::auth::CONN_TYPE_WEBSOCKET,
        }
    }

    /// The id prefix in log lines.
    pub fn log_id(self) -> &'static str {
        match self {
            ClientType::Nats => "cid",
            ClientType::Websocket => "wid",
        }
    }
}

/// Credentials a WebSocket client's upgrade request carried in the
/// configured cookies. Each one fills in the CONNECT field of the same
/// meaning when the client left it empty, on every CONNECT, as nats-server
/// does: a browser page can sign in without its script ever seeing the
/// secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieCredentials {
    pub jwt: Option<String>,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub token: Option<String>,
}

impl CookieCredentials {
    pub fn is_empty(&self) -> bool {
        self.jwt.is_none() && self.user.is_none() && self.pass.is_none() && self.token.is_none()
    }

    /// Fill the CONNECT's empty credential fields.
    pub fn apply(&self, c: &mut ConnectOptions) {
        fn fill(field: &mut Option<String>, cookie: &Option<String>) {
            if field.as_deref().is_none_or(str::is_empty) && cookie.is_some() {
                field.clone_from(cookie);
            }
        }
        fill(&mut c.jwt, &self.jwt);
        fill(&mut c.user, &self.user);
        fill(&mut c.pass, &self.pass);
        fill(&mut c.auth_token, &self.token);
    }
}

/// The write half of a client's transport, as the connection's writer task
/// drives it. No lock is held while its futures run.
pub trait TransportWriter: Send + 'static {
    /// Write the protocol bytes queued since the last call. `batch` may be
    /// empty when only the transport's own control data is due.
    fn write_batch<'a>(
        &'a mut self,
        batch: &'a [u8],
    ) -> impl Future<Output = io::Result<()>> + Send + 'a;

    /// The transport has data of its own to send (a WebSocket pong).
    fn has_control(&self) -> bool {
        false
    }

    /// Resolves when [`Self::has_control`] may have turned true.
    fn control_ready(&self) -> impl Future<Output = ()> + Send + '_ {
        std::future::pending()
    }

    /// The connection closed for `reason`: send what the transport owes the
    /// peer (a WebSocket close frame), flush and shut down. `healthy` is
    /// false after a write failed or timed out: then nothing more is sent.
    fn finish(
        &mut self,
        reason: ClosedState,
        healthy: bool,
    ) -> impl Future<Output = ()> + Send + '_;
}

/// A byte stream that carries the client protocol as it is: TCP, TLS.
pub struct Plain<W>(pub W);

impl<W: AsyncWrite + Unpin + Send + 'static> TransportWriter for Plain<W> {
    fn write_batch<'a>(
        &'a mut self,
        batch: &'a [u8],
    ) -> impl Future<Output = io::Result<()>> + Send + 'a {
        self.0.write_all(batch)
    }

    async fn finish(&mut self, _reason: ClosedState, _healthy: bool) {
        let _ = self.0.flush().await;
        let _ = self.0.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_fill_only_empty_fields() {
        let cookies = CookieCredentials {
            jwt: Some("J".into()),
            user: Some("U".into()),
            pass: Some("P".into()),
            token: Some("T".into()),
        };
        let mut c = ConnectOptions {
            user: Some("mine".into()),
            pass: Some(String::new()),
            ..Default::default()
        };
        cookies.apply(&mut c);
        assert_eq!(c.user.as_deref(), Some("mine"));
        assert_eq!(c.pass.as_deref(), Some("P"));
        assert_eq!(c.jwt.as_deref(), Some("J"));
        assert_eq!(c.auth_token.as_deref(), Some("T"));
        let mut c = ConnectOptions::default();
        CookieCredentials::default().apply(&mut c);
        assert_eq!(c.auth_token, None);
    }
}
