//! Cluster peer discovery from EC2 instance tags.
//!
//! A 3-node cluster on EC2 is usually an auto-scaling group or a Terraform
//! `count`: the instances (and so their private IPs) change on every replace,
//! so a hard-coded `routes` list goes stale. Instead each node asks EC2 at boot
//! "which running instances carry tag `<key>=<value>` (in my VPC)?" and turns
//! their private IPs into `nats-route://<ip>:<cluster port>` URLs, then keeps
//! asking every `refresh` so replaced nodes are picked up and dead ones dropped.
//!
//! Layout, one concern per file:
//! - this file: the types shared by everything ([`Ec2DiscoveryConfig`],
//!   [`Peer`], [`SelfIdentity`], [`RouteSetChange`], [`DiscoveryError`]);
//! - `parse`: the `cluster { discovery { ec2 { ... } } }` config block,
//!   reported with the config module's `file:line:col` errors;
//! - `routes`: peers → route URLs (minus ourselves) and set diffs; pure, so
//!   unit-tested without AWS;
//! - `ec2` (feature `ec2-discovery`): the SDK client and `DescribeInstances`;
//! - `refresher` (feature `ec2-discovery`): the boot-time wait for peers and
//!   the periodic refresh, reporting diffs through a callback;
//! - `host`: the node's own addresses, so it does not route to itself;
//! - `stub` (without the feature): same entry points, returning
//!   [`DiscoveryError::NotBuilt`], so callers need no `cfg` of their own.
//!
//! Discovery never dials anything: it only produces URLs. Connecting (and
//! retrying) is the route layer's job, exactly as for configured routes.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

mod host;
mod parse;
mod routes;

#[cfg(feature = "ec2-discovery")]
mod ec2;
#[cfg(feature = "ec2-discovery")]
mod refresher;
#[cfg(not(feature = "ec2-discovery"))]
mod stub;

#[cfg(test)]
mod tests;

pub use host::{detect_self, local_interface_ips};
pub use parse::parse_discovery_block;
pub use routes::{diff_routes, route_url, route_urls};

#[cfg(feature = "ec2-discovery")]
pub use ec2::{
    client_for, client_from_loader, describe_peers, describe_peers_paged, imds_instance_id,
};
#[cfg(feature = "ec2-discovery")]
pub use refresher::{spawn_refresher, spawn_refresher_with_client};
#[cfg(not(feature = "ec2-discovery"))]
pub use stub::spawn_refresher;

/// True when this binary can actually talk to EC2 (cargo feature `ec2-discovery`).
pub const EC2_DISCOVERY_BUILT: bool = cfg!(feature = "ec2-discovery");

/// Default refresh interval: fast enough to pick up a replaced node within a
/// minute, slow enough that a large fleet stays far below EC2's API rate limits.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(30);

/// Lower bound for `refresh`: anything faster only burns API quota.
pub const MIN_REFRESH: Duration = Duration::from_secs(1);

/// Default route URL scheme, the one nats-server writes in `routes`.
pub const DEFAULT_SCHEME: &str = "nats-route";

/// `cluster_port` value meaning "not set in the discovery block: use the
/// port of the cluster listener" (see [`Ec2DiscoveryConfig::resolve_port`]).
pub const PORT_FROM_CLUSTER_LISTEN: u16 = 0;

/// How to find peers: instances tagged `tag_key=tag_value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2DiscoveryConfig {
    pub tag_key: String,
    pub tag_value: String,
    /// `None`: the SDK's default chain (env, profile, then IMDS on EC2).
    pub region: Option<String>,
    /// API endpoint override, e.g. LocalStack's `http://127.0.0.1:4566`.
    pub endpoint: Option<String>,
    /// Restrict to one VPC, so a same-tagged cluster elsewhere is never joined.
    pub vpc_id: Option<String>,
    /// Port peers listen on for routes. All nodes of a cluster use the same
    /// one, which is what makes "IP + our own port" a valid route URL.
    /// [`PORT_FROM_CLUSTER_LISTEN`] until [`resolve_port`](Self::resolve_port).
    pub cluster_port: u16,
    pub refresh: Duration,
    /// URL scheme of the produced routes, `nats-route` by default.
    pub scheme: String,
}

impl Ec2DiscoveryConfig {
    /// A config with the defaults for everything but the tag and port.
    pub fn new(
        tag_key: impl Into<String>,
        tag_value: impl Into<String>,
        cluster_port: u16,
    ) -> Self {
        Ec2DiscoveryConfig {
            tag_key: tag_key.into(),
            tag_value: tag_value.into(),
            region: None,
            endpoint: None,
            vpc_id: None,
            cluster_port,
            refresh: DEFAULT_REFRESH,
            scheme: DEFAULT_SCHEME.to_string(),
        }
    }

    /// Fills in the port from the cluster listener when the discovery block
    /// did not set one. Call it once the whole `cluster {}` block is applied
    /// (`listen` may come after `discovery` in the file). `listen_port` is
    /// `ClusterOptions::port`: `None` (clustering off) and `Some(0)` (random
    /// port, unknowable to peers) are errors unless `port` was given.
    pub fn resolve_port(&mut self, listen_port: Option<u16>) -> Result<(), DiscoveryError> {
        if self.cluster_port != PORT_FROM_CLUSTER_LISTEN {
            return Ok(());
        }
        match listen_port {
            Some(p) if p != 0 => {
                self.cluster_port = p;
                Ok(())
            }
            Some(_) => Err(DiscoveryError::InvalidConfig(
                "cluster discovery needs a fixed cluster port, but the cluster listens on a random one; set cluster.listen or discovery.ec2.port".into(),
            )),
            None => Err(DiscoveryError::InvalidConfig(
                "cluster discovery needs a cluster port; set cluster.listen or discovery.ec2.port".into(),
            )),
        }
    }

    /// Checks what the config parser cannot see on its own (the port) and
    /// what a hand-built config might get wrong. Done before spawning so a bad
    /// config fails at startup, not in a background task's log.
    pub fn validate(&self) -> Result<(), DiscoveryError> {
        let bad = |m: String| Err(DiscoveryError::InvalidConfig(m));
        if self.tag_key.is_empty() {
            return bad("cluster discovery: tag_key can not be empty".into());
        }
        if self.cluster_port == PORT_FROM_CLUSTER_LISTEN {
            return bad(
                "cluster discovery: cluster port is not set (call resolve_port with the cluster listen port)".into()
            );
        }
        if self.refresh.is_zero() {
            return bad("cluster discovery: refresh can not be zero".into());
        }
        if self.scheme.is_empty() || self.scheme.contains("://") {
            return bad(format!(
                "cluster discovery: invalid route scheme {:?}",
                self.scheme
            ));
        }
        Ok(())
    }

    /// "tag tribune:cluster=prod in vpc-123", for log lines.
    pub fn describe_selector(&self) -> String {
        let mut s = format!("tag {}={}", self.tag_key, self.tag_value);
        if let Some(vpc) = &self.vpc_id {
            s.push_str(" in ");
            s.push_str(vpc);
        }
        s
    }
}

/// A running instance that carries the cluster tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer {
    pub instance_id: String,
    pub private_ip: IpAddr,
    pub availability_zone: Option<String>,
}

/// What "me" looks like from EC2's side, so a node does not route to itself:
/// its own instance shows up in its own query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelfIdentity {
    /// This node's interface addresses (see [`local_interface_ips`]).
    pub ips: Vec<IpAddr>,
    /// This node's instance id, from IMDS (see `imds_instance_id`). Matching
    /// on the id is robust even when the node has several ENIs.
    pub instance_id: Option<String>,
}

impl SelfIdentity {
    pub fn from_ips(ips: impl IntoIterator<Item = IpAddr>) -> Self {
        SelfIdentity {
            ips: ips.into_iter().collect(),
            instance_id: None,
        }
    }

    pub fn with_instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    pub fn is_me(&self, peer: &Peer) -> bool {
        self.instance_id.as_deref() == Some(peer.instance_id.as_str())
            || self.ips.contains(&peer.private_ip)
    }
}

/// A change of the discovered route set. URLs are sorted, each list has no
/// duplicates, and `added`/`removed` are disjoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteSetChange {
    /// Routes to start connecting to.
    pub added: Vec<String>,
    /// Routes whose instance is gone (terminated, stopped, untagged): stop
    /// reconnecting to them. An existing healthy connection may be kept;
    /// nats-server drops it when the peer actually goes away.
    pub removed: Vec<String>,
    /// The whole discovered set after this change.
    pub current: Vec<String>,
}

impl RouteSetChange {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// Why discovery could not produce peers. Every variant's text says what was
/// being done, so a log line alone is enough to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    /// The binary was compiled without the `ec2-discovery` feature.
    NotBuilt,
    /// A config that cannot work (no port, empty tag key, ...).
    InvalidConfig(String),
    /// An EC2 API call failed. `target` names region/endpoint, `detail` is the
    /// SDK's full error chain, `hint` what usually fixes it.
    Api {
        operation: &'static str,
        target: String,
        detail: String,
        hint: Option<&'static str>,
    },
    /// The instance metadata service could not be read.
    Imds(String),
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoveryError::NotBuilt => f.write_str(
                "tribune-broker was built without EC2 discovery (rebuild with cargo feature \"ec2-discovery\")",
            ),
            DiscoveryError::InvalidConfig(m) => f.write_str(m),
            DiscoveryError::Api { operation, target, detail, hint } => {
                write!(f, "EC2 {operation} failed ({target}): {detail}")?;
                if let Some(h) = hint {
                    write!(f, " ({h})")?;
                }
                Ok(())
            }
            DiscoveryError::Imds(m) => write!(f, "instance metadata: {m}"),
        }
    }
}

impl std::error::Error for DiscoveryError {}
