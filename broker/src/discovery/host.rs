//! This node's own addresses, so discovery can leave it out of its routes.
//!
//! EC2 answers "all running instances with the tag", which includes the
//! asking node. Routing to ourselves is harmless in nats-server (it detects
//! and drops the loop) but noisy, so we exclude by interface address here and
//! by instance id (IMDS, in `ec2.rs`) where available.

use std::net::IpAddr;

/// Non-loopback addresses of this host's interfaces (IPv4 and IPv6).
///
/// An error (no `getifaddrs`, e.g. a restricted sandbox) yields an empty list
/// rather than failing discovery: the worst case is a route to ourselves.
pub fn local_interface_ips() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        tracing::debug!("Could not list network interfaces; cluster discovery will not exclude this node by address");
        return Vec::new();
    };
    let mut ips: Vec<IpAddr> = addrs
        .filter_map(|a| a.address)
        .filter_map(|sa| {
            if let Some(v4) = sa.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                sa.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// Everything we know about ourselves: interface addresses, plus the
/// instance id from IMDS when built with EC2 support and running on EC2.
/// Never fails; what cannot be found is simply not used for exclusion.
pub async fn detect_self() -> super::SelfIdentity {
    let ips = local_interface_ips();
    #[cfg(feature = "ec2-discovery")]
    let instance_id = match super::ec2::imds_instance_id().await {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::debug!(
                "Not on EC2 or IMDS unavailable ({e}); excluding this node by address only"
            );
            None
        }
    };
    #[cfg(not(feature = "ec2-discovery"))]
    let instance_id = None;
    super::SelfIdentity { ips, instance_id }
}
