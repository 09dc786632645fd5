//! Stand-ins for when the crate is built without `ec2-discovery`.
//!
//! They keep the caller's code identical in both builds and turn "discovery
//! requested" into one clear startup error instead of a compile error.

use tokio::task::JoinHandle;

use super::{DiscoveryError, Ec2DiscoveryConfig, RouteSetChange, SelfIdentity};

/// Always [`DiscoveryError::NotBuilt`].
pub fn spawn_refresher<F>(
    _cfg: Ec2DiscoveryConfig,
    _me: SelfIdentity,
    _on_change: F,
) -> Result<JoinHandle<()>, DiscoveryError>
where
    F: Fn(RouteSetChange) + Send + 'static,
{
    Err(DiscoveryError::NotBuilt)
}
