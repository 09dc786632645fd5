//! Raft RPCs over the cluster bus.
//!
//! openraft asks a [`RaftNetworkFactory`](openraft::RaftNetworkFactory) for
//! a connection per peer and sends three RPCs on it: vote, append-entries
//! and install-snapshot. Here each RPC is one NATS request: the request is
//! published on `$TRG.<peer>.<group>.<op>` with a reply subject
//! `$TRG.<me>.R.<request id>` ([`subject`]), and the answer comes back as a
//! message on that reply subject. Both directions travel through a [`Bus`],
//! which the composition root implements with an internal client of the
//! system account, so Raft traffic uses the routes (their authentication,
//! TLS and reconnects) rather than a transport of its own.
//!
//! One [`Router`] per node owns the node's side of this: it matches replies
//! to pending requests and dispatches inbound requests to the `Raft` of the
//! group they name. One [`Network`] per group is the factory handed to
//! openraft; its connections ([`Connection`]) encode requests with postcard
//! behind a version byte ([`wire`]) and keep every message under
//! [`NetworkConfig::max_message`], so no request is refused by a route's
//! `max_payload`.
//!
//! This layer knows nothing of the server or JetStream: it only needs a way
//! to publish, and to be fed what arrives on [`subject::subscription`].
//!
//! Wiring, per node and then per group:
//!
//! 1. `let router = Router::new(node_id, bus)`, and feed every message of
//!    `router.subscription()` to `router.handle(..)`.
//! 2. For each group: `Network::new(router.clone(), group)?` is the network
//!    factory given to `Raft::new`; then `router.register(group, raft)`.
//!    `router.unregister(group)` when the group leaves this node.
//!
//! Entries larger than `max_message` (less the request's own few dozen
//! bytes) cannot be replicated at all: the layer above must keep them
//! smaller (JetStream's max_payload is below it).

mod client;
mod error;
mod router;
mod serve;
pub mod subject;
pub mod wire;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use client::{Connection, Network};
pub use error::TransportError;
pub use router::{RegisterError, Router, RouterStats};
pub use subject::InvalidGroup;

/// Publishes bytes on a subject of the cluster's system account.
///
/// The composition root implements it with an internal client; it must not
/// block (it is called from Raft's tasks and from [`Router::handle`]'s
/// callers alike) and it may drop a message (the route is down, a buffer is
/// full): the sender then times out, as Raft expects of a lossy network.
pub trait Bus: Send + Sync + 'static {
    /// Publish `payload` on `subject`, asking for answers on `reply`.
    fn publish(&self, subject: &str, reply: Option<&str>, payload: &[u8]);
}

/// Answers peers' catch-up requests for one group: after installing a
/// snapshot that only describes its data, a replica fetches the data from
/// a peer through [`Router::request_catchup`]. The bytes mean what the
/// layer above says; this layer only carries them.
pub trait CatchupSource: Send + Sync + 'static {
    /// The answer to `request`, at most `max` bytes long, or why there is
    /// none. Runs on a blocking thread: it may read disk.
    fn answer(&self, request: &[u8], max: usize) -> Result<Vec<u8>, String>;
}

/// Limits of the Raft transport, the same for every group of a node.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The largest encoded request sent, in bytes. It must fit the
    /// `max_payload` of every route on the way with room for the
    /// message's headers; append-entries batches larger than this are
    /// split by openraft (on a `PayloadTooLarge` hint) and snapshot chunks
    /// are sent in pieces.
    pub max_message: usize,
    /// Requests of one group handled at once on this node; past it a
    /// request is answered "busy" at once, so a flood (a peer retrying
    /// while this node's Raft is stuck on its disk) cannot pile up tasks.
    pub max_inflight_per_group: usize,
    /// The first pause before retrying a peer that is unreachable (no such
    /// group there, busy, or it speaks another wire version).
    pub backoff_initial: Duration,
    /// The longest such pause: the pauses double up to it.
    pub backoff_max: Duration,
}

impl NetworkConfig {
    /// The smallest `max_message` accepted: a vote, a heartbeat and a
    /// snapshot piece's header must always fit.
    pub const MIN_MESSAGE: usize = 4 * 1024;
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            // nats-server's default max_payload (1 MiB), less room for the
            // headers of the message that carries it.
            max_message: 1024 * 1024 - 4 * 1024,
            max_inflight_per_group: 128,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
        }
    }
}
