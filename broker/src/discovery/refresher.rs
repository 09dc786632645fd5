//! The background task: wait for peers at boot, then keep the set fresh.
//!
//! Nodes of a cluster boot together, so the first answers often contain no
//! peer yet (the others are still `pending`): the boot phase retries with a
//! short exponential backoff until at least one peer appears. After that the
//! set is re-read every `refresh` and only *changes* are reported.
//!
//! An API error never changes the route set: "I could not ask" is not "there
//! is nobody", and dropping routes on a throttled call would split the
//! cluster. Errors are logged and the next tick tries again.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_ec2::Client;
use rand::Rng;
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::config::format_go_duration;

use super::{
    describe_peers, diff_routes, route_urls, DiscoveryError, Ec2DiscoveryConfig, RouteSetChange,
    SelfIdentity,
};

/// First boot retry delay; doubled up to [`MAX_BOOT_BACKOFF`] (or `refresh`
/// if shorter), so peers booting together find each other within seconds.
const FIRST_BOOT_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BOOT_BACKOFF: Duration = Duration::from_secs(30);

/// While booting, "no peers yet" is logged at info on these attempts only
/// (1, 2, 4, 8, ...), debug otherwise, to keep a slow boot readable.
fn log_this_attempt(attempt: u32) -> bool {
    attempt.is_power_of_two()
}

/// Spawns discovery on the current tokio runtime. `on_change` is called
/// first with every peer found at boot (all `added`), then with each later
/// difference. It runs on the discovery task, so it must not block: hand
/// the change to the route layer (e.g. an mpsc `send`) and return. Abort the
/// returned handle to stop discovery (e.g. on shutdown). Must be called from
/// within a tokio runtime.
///
/// Fails only for an invalid config (see [`Ec2DiscoveryConfig::validate`]);
/// everything after that is retried, never returned and never a panic.
pub fn spawn_refresher<F>(
    cfg: Ec2DiscoveryConfig,
    me: SelfIdentity,
    on_change: F,
) -> Result<JoinHandle<()>, DiscoveryError>
where
    F: Fn(RouteSetChange) + Send + 'static,
{
    cfg.validate()?;
    Ok(tokio::spawn(async move {
        let client = super::client_for(&cfg).await;
        run(client, cfg, me, on_change).await;
    }))
}

/// [`spawn_refresher`] with a ready client (tests, or sharing one client).
pub fn spawn_refresher_with_client<F>(
    client: Client,
    cfg: Ec2DiscoveryConfig,
    me: SelfIdentity,
    on_change: F,
) -> Result<JoinHandle<()>, DiscoveryError>
where
    F: Fn(RouteSetChange) + Send + 'static,
{
    cfg.validate()?;
    Ok(tokio::spawn(run(client, cfg, me, on_change)))
}

async fn run<F>(client: Client, cfg: Ec2DiscoveryConfig, me: SelfIdentity, on_change: F)
where
    F: Fn(RouteSetChange) + Send + 'static,
{
    let selector = cfg.describe_selector();
    info!(
        "Starting cluster discovery from EC2 {selector}, refreshing every {}",
        format_go_duration(cfg.refresh)
    );
    let mut known = wait_for_peers(&client, &cfg, &me, &selector).await;
    info!(
        "Discovered {} cluster peer(s) from EC2 {selector}: {}",
        known.len(),
        join(&known)
    );
    on_change(diff_routes(&BTreeSet::new(), &known));

    let mut ticks = tokio::time::interval_at(Instant::now() + cfg.refresh, cfg.refresh);
    // After a slow call, wait a full interval again instead of bursting.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match peer_routes(&client, &cfg, &me).await {
            Ok(next) => {
                let change = diff_routes(&known, &next);
                if change.is_empty() {
                    debug!("Cluster discovery: {} peer(s), unchanged", next.len());
                    continue;
                }
                info!(
                    "Cluster peers changed from EC2 {selector}: added [{}], removed [{}]",
                    change.added.join(", "),
                    change.removed.join(", ")
                );
                known = next;
                on_change(change);
            }
            Err(e) => warn!(
                "Error refreshing cluster peers from EC2: {e}; keeping {} known route(s)",
                known.len()
            ),
        }
    }
}

/// Retries until at least one peer (other than us) shows up.
async fn wait_for_peers(
    client: &Client,
    cfg: &Ec2DiscoveryConfig,
    me: &SelfIdentity,
    selector: &str,
) -> BTreeSet<String> {
    let mut delay = FIRST_BOOT_BACKOFF.min(cfg.refresh);
    let max = MAX_BOOT_BACKOFF.min(cfg.refresh).max(delay);
    let mut attempt: u32 = 0;
    loop {
        attempt = attempt.saturating_add(1);
        let wait = jitter(delay);
        let shown = format_go_duration(wait);
        match peer_routes(client, cfg, me).await {
            Ok(routes) if !routes.is_empty() => return routes,
            Ok(_) if log_this_attempt(attempt) => {
                info!("No cluster peers found yet from EC2 {selector} (attempt {attempt}), retrying in {shown}")
            }
            Ok(_) => debug!("No cluster peers found yet from EC2 {selector} (attempt {attempt}), retrying in {shown}"),
            Err(e) => warn!("Error discovering cluster peers from EC2 (attempt {attempt}): {e}, retrying in {shown}"),
        }
        sleep(wait).await;
        delay = (delay * 2).min(max);
    }
}

async fn peer_routes(
    client: &Client,
    cfg: &Ec2DiscoveryConfig,
    me: &SelfIdentity,
) -> Result<BTreeSet<String>, DiscoveryError> {
    let peers = describe_peers(client, cfg).await?;
    Ok(route_urls(cfg, &peers, me))
}

/// ±20%, so a fleet restarted at once does not hit the API in lockstep.
fn jitter(d: Duration) -> Duration {
    // Whole milliseconds, so log lines read "1.043s", not "1.043512877s".
    let ms = d.as_secs_f64() * 1000.0 * rand::rng().random_range(0.8..1.2);
    Duration::from_millis(ms.round().max(1.0) as u64)
}

fn join(routes: &BTreeSet<String>) -> String {
    routes
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
