//! Peers → route URLs, and the diff between two route sets.
//!
//! Kept free of AWS types so the rules (who counts as "me", how a URL is
//! spelt, what changed) are unit-tested without an EC2 endpoint.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use super::{Ec2DiscoveryConfig, Peer, RouteSetChange, SelfIdentity};

/// `nats-route://10.0.1.5:6222`, or `nats-route://[fd00::5]:6222` for IPv6
/// (the brackets come from `SocketAddr`'s formatting).
pub fn route_url(scheme: &str, ip: IpAddr, port: u16) -> String {
    format!("{scheme}://{}", SocketAddr::new(ip, port))
}

/// The route URLs for `peers`, without this node itself. A set because two
/// instances can never share a private IP, but a stale answer during an ENI
/// move could list one twice, and a route must not be dialled twice.
pub fn route_urls(cfg: &Ec2DiscoveryConfig, peers: &[Peer], me: &SelfIdentity) -> BTreeSet<String> {
    peers
        .iter()
        .filter(|p| !me.is_me(p))
        .map(|p| route_url(&cfg.scheme, p.private_ip, cfg.cluster_port))
        .collect()
}

/// What changed from `prev` to `next`; `current` is `next`.
pub fn diff_routes(prev: &BTreeSet<String>, next: &BTreeSet<String>) -> RouteSetChange {
    RouteSetChange {
        added: next.difference(prev).cloned().collect(),
        removed: prev.difference(next).cloned().collect(),
        current: next.iter().cloned().collect(),
    }
}
