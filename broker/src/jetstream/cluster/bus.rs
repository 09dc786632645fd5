//! Raft traffic on the cluster's routes: an internal client of the system
//! account publishes the groups' RPCs and receives those addressed to this
//! server (`$TRG.<node>.>`), so they travel with the routes' authentication
//! and TLS and need no port of their own.
//!
//! This is the one place the replication layer meets the server: the
//! [`crate::raft::network::Router`] sees only the [`Bus`] trait.

use std::sync::{Arc, OnceLock, Weak};

use crate::client::{InternalHandler, Msg};
use crate::internal::InternalClient;
use crate::raft::network::{Bus, Router};
use crate::server::Server;
use crate::subscription::Subscription;

/// Publishes as an internal client of the system account.
pub struct SystemBus {
    server: Weak<Server>,
    client: OnceLock<InternalClient>,
}

impl SystemBus {
    pub fn new(server: &Arc<Server>) -> Arc<SystemBus> {
        Arc::new(SystemBus {
            server: Arc::downgrade(server),
            client: OnceLock::new(),
        })
    }

    /// Subscribe to this node's Raft subjects and hand what arrives to
    /// `router`. Called once, after the router exists (it owns the bus).
    pub fn attach(
        &self,
        server: &Arc<Server>,
        router: &Arc<Router>,
        subject: &str,
    ) -> anyhow::Result<()> {
        let handler = Arc::new(Inbound(Arc::downgrade(router)));
        let client = InternalClient::new(server, server.system_account(), handler);
        client.subscribe(server, subject, None)?;
        self.client
            .set(client)
            .map_err(|_| anyhow::anyhow!("the Raft bus is already attached"))
    }

    pub fn close(&self) {
        if let (Some(c), Some(s)) = (self.client.get(), self.server.upgrade()) {
            c.close(&s);
        }
    }
}

impl Bus for SystemBus {
    fn publish(&self, subject: &str, reply: Option<&str>, payload: &[u8]) {
        if let (Some(c), Some(s)) = (self.client.get(), self.server.upgrade()) {
            c.publish(&s, subject, reply, b"", payload);
        }
    }
}

/// Delivers Raft messages to the router (which queues them; delivery must
/// not block).
struct Inbound(Weak<Router>);

impl InternalHandler for Inbound {
    fn deliver(&self, _sub: &Subscription, msg: &Msg<'_>) {
        let Some(router) = self.0.upgrade() else {
            return;
        };
        let (Ok(subject), reply) = (
            std::str::from_utf8(msg.subject),
            msg.reply.and_then(|r| std::str::from_utf8(r).ok()),
        ) else {
            return;
        };
        router.handle(subject, reply, &msg.body[msg.hdr_len..]);
    }
}
