//! Raft for replicated JetStream, on openraft.
//!
//! This layer knows nothing of the server, connections or JetStream's API.
//! It provides what every replicated group (the meta group that assigns
//! streams and consumers to peers, and one group per replicated stream)
//! needs from below:
//!
//! - [`log`]: a durable Raft log (openraft's `RaftLogStorage`), one
//!   directory per group, fsynced before openraft is told the entries are
//!   stored (one write and one fsync for all the batches waiting), so an
//!   entry counts towards a quorum only once it is on this voter's disk.
//! - [`network`]: openraft's `RaftNetworkFactory` over a [`network::Bus`],
//!   a narrow trait for "publish these bytes on this subject". The
//!   composition root implements it with an internal client of the system
//!   account, so Raft traffic crosses the cluster on the routes, with their
//!   authentication and TLS, like nats-server's `$NRG` traffic (Tribune's
//!   subjects start `$TRG.`: the two cannot share a group).
//!
//! Node ids are derived from server names ([`node_id`]), which a JetStream
//! cluster requires to be unique and stable, as nats-server does.

pub mod log;
pub mod network;

/// A Raft node id for a server name: stable across restarts and the same
/// on every peer (FNV-1a, 64 bit), never 0.
pub fn node_id(server_name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in server_name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}

/// A node id as monitoring shows a peer (nats-server shows 8 characters).
pub fn peer_id(id: u64) -> String {
    format!("{:08x}", id >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_and_distinct() {
        assert_eq!(node_id("n1"), node_id("n1"));
        assert_ne!(node_id("n1"), node_id("n2"));
        assert_ne!(node_id(""), 0);
    }
}
