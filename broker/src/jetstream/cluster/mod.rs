//! Clustered JetStream: the servers of a cluster that run JetStream form
//! one domain, kept consistent with Raft (openraft, [`crate::raft`]).
//!
//! - [`meta`]: the meta group's replicated state (streams, consumers and
//!   their peers) and its state machine.
//! - [`group`]: this server's meta replica: forming the group, growing it,
//!   leadership, stepdown.
//! - [`leadership`]: leaders, replicas and stepdown, for every group.
//! - [`peers`]: which servers take part, as the routes report them.
//! - [`stream_group`], [`stream_sm`]: a replicated stream's replica on
//!   this server: its Raft node, leader duties, and the store as state
//!   machine.
//! - [`membership`]: a stream group's membership following the servers
//!   the meta group assigns it to; [`placement`] chooses them and
//!   [`replicas`] serves the requests that change them (PEER.REMOVE,
//!   STREAM.UPDATE of `num_replicas`).
//! - [`bus`]: Raft RPCs as system-account messages on the routes.
//! - [`timing`]: heartbeats, election timeouts, snapshot intervals.
//! - [`api`]: the system account's domain requests (meta leader stepdown).
//!
//! Tribune's groups speak Tribune's Raft (openraft, `$TRG.` subjects);
//! nats-server speaks its own (`$NRG.`). The two cannot share a group, so a
//! cluster where a nats-server runs JetStream beside Tribune refuses
//! clustered JetStream and says so ([`JsCluster::mixed_with`]).

pub mod api;
pub mod bus;
pub mod group;
pub mod leadership;
pub mod membership;
pub mod meta;
pub mod peers;
pub mod placement;
pub mod remote;
pub mod replicas;
pub mod requests;
pub(crate) mod restore;
pub mod stepdown;
pub mod stream_group;
pub mod stream_sm;
pub mod stream_snapshot;
pub mod timing;
pub mod usage;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::raft::network::Router;
use crate::server::Server;
use group::MetaGroup;
use meta::MetaEvent;
use peers::{JsPeer, PeerSource};
use stream_group::StreamGroup;

/// How long removing a replica waits for its Raft log's last writes.
const LOG_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long `/healthz` gives a follower replica to apply what it holds
/// before calling it behind: a few group commits, far below the interval
/// of any load balancer's health check.
pub const HEALTH_PROGRESS_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// This server's part of the JetStream domain.
pub struct JsCluster {
    pub meta: Arc<MetaGroup>,
    /// Serializes the meta leader's stream creates, updates and deletes
    /// (validated against the state, then proposed).
    pub(crate) admin: tokio::sync::Mutex<()>,
    /// Serializes starting and stopping this server's replicas (the meta
    /// group's events, and replicas retiring once their group let go).
    lifecycle: tokio::sync::Mutex<()>,
    /// This server's stream replicas, by (account, stream).
    streams: Mutex<HashMap<(String, String), Arc<StreamGroup>>>,
    api_client: Arc<crate::internal::InternalClient>,
    router: Arc<Router>,
    bus: Arc<bus::SystemBus>,
    peers: Arc<RoutePeers>,
    /// The other servers' API counters per account, for `$JS.API.INFO`.
    pub(crate) usage: Arc<usage::RemoteUsage>,
}

impl std::fmt::Debug for JsCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsCluster")
            .field("meta", &self.meta)
            .finish()
    }
}

impl JsCluster {
    /// Join (or form) the domain. `store_dir` is JetStream's directory; the
    /// meta group lives under `$SYS/_js_/_meta_/` there, as in nats-server.
    pub async fn start(
        server: &Arc<Server>,
        store_dir: &Path,
        events: mpsc::UnboundedSender<MetaEvent>,
    ) -> anyhow::Result<Arc<JsCluster>> {
        let me = crate::raft::node_id(&server.name);
        let bus = bus::SystemBus::new(server);
        let router = Router::new(me, bus.clone());
        bus.attach(server, &router, &router.subscription())?;
        let peers = Arc::new(RoutePeers {
            server: Arc::downgrade(server),
            warned: Mutex::new(Vec::new()),
        });
        let dir = store_dir.join("$SYS").join("_js_").join(group::META_GROUP);
        let meta = MetaGroup::start(
            &dir,
            me,
            &server.name,
            &server.cluster_name(),
            router.clone(),
            peers.clone(),
            events,
        )
        .await?;
        // The system account's domain requests (nats-server serves them
        // there only).
        let (tx, rx) = mpsc::unbounded_channel();
        let client = Arc::new(crate::internal::InternalClient::new(
            server,
            server.system_account(),
            Arc::new(crate::internal::ChannelHandler(tx)),
        ));
        client.subscribe(server, api::META_STEPDOWN, None)?;
        tokio::spawn(api::serve(
            Arc::downgrade(server),
            client.clone(),
            meta.clone(),
            rx,
        ));
        let usage = Arc::new(usage::RemoteUsage::default());
        usage::start(server, usage.clone())?;
        let cluster = Arc::new(JsCluster {
            usage,
            admin: tokio::sync::Mutex::new(()),
            lifecycle: tokio::sync::Mutex::new(()),
            streams: Mutex::new(HashMap::new()),
            api_client: client,
            meta,
            router,
            bus,
            peers,
        });
        tokio::spawn(JsCluster::sweep_orphans(
            Arc::downgrade(&cluster),
            Arc::downgrade(server),
        ));
        Ok(cluster)
    }

    /// The non-Tribune JetStream server this cluster includes, if any:
    /// clustered JetStream requests are refused while it is there.
    pub fn mixed_with(&self) -> Option<String> {
        self.peers
            .all()
            .into_iter()
            .find(|p| !p.tribune)
            .map(|p| p.name)
    }

    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// Why this server is not a healthy member of the domain, in
    /// nats-server's words (`/healthz`): no meta leader, behind the meta
    /// leader, or (unless `meta_only`) a stream replica still catching up.
    /// Empty when healthy. A follower that is merely applying what it just
    /// received counts as current if it gets there within
    /// [`HEALTH_PROGRESS_WAIT`], shared by all replicas, so the answer
    /// takes at most about that long.
    pub async fn health_problems(&self, meta_only: bool) -> Vec<String> {
        if self.meta.leader().is_none() {
            return vec!["JetStream has not established contact with a meta leader".into()];
        }
        if !self.meta.is_current_within(HEALTH_PROGRESS_WAIT).await {
            return vec!["JetStream is not current with the meta leader".into()];
        }
        if meta_only {
            return Vec::new();
        }
        // Every stream the meta group placed here: its replica must be
        // running and caught up.
        let me = self.meta.me();
        let placed: Vec<(String, String)> = self
            .meta
            .view()
            .read()
            .streams
            .iter()
            .flat_map(|(acc, streams)| {
                streams
                    .iter()
                    .filter(|(_, sa)| sa.peers.contains(&me))
                    .map(move |(name, _)| (acc.clone(), name.clone()))
            })
            .collect();
        // One shared deadline: replicas that are current answer at once,
        // the others share the wait.
        let deadline = tokio::time::Instant::now() + HEALTH_PROGRESS_WAIT;
        let mut problems = Vec::new();
        for (acc, name) in placed {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let current = match self.stream_group(&acc, &name) {
                Some(g) => g.is_current_within(left).await,
                None => false,
            };
            if !current {
                problems.push(format!("JetStream stream '{acc} > {name}' is not current"));
            }
        }
        problems
    }

    /// This server's replica of a stream, if it holds one.
    pub fn stream_group(&self, account: &str, stream: &str) -> Option<Arc<StreamGroup>> {
        self.streams
            .lock()
            .get(&(account.to_string(), stream.to_string()))
            .cloned()
    }

    /// Whether the meta group's latest applied state places `stream` on
    /// this server. Events are handled after they are applied, so this is
    /// never older than the event at hand: a replica that a later command
    /// already moved away is not started only to be stopped again.
    /// The meta group's assignment of `stream` in `account`, or nats-server's
    /// "stream not found".
    fn assignment(
        &self,
        account: &str,
        stream: &str,
    ) -> Result<meta::StreamAssignment, crate::jetstream::ApiError> {
        self.meta
            .view()
            .read()
            .stream(account, stream)
            .cloned()
            .ok_or_else(crate::jetstream::errors::stream_not_found)
    }

    fn placed_here(&self, account: &str, stream: &str) -> bool {
        let me = self.meta.me();
        self.meta
            .view()
            .read()
            .stream(account, stream)
            .is_some_and(|sa| sa.peers.contains(&me))
    }

    /// Carry out one of the meta group's decisions on this server.
    pub async fn on_event(self: &Arc<Self>, server: &Arc<Server>, ev: MetaEvent) {
        let _changing = self.lifecycle.lock().await;
        match ev {
            MetaEvent::StreamAssigned { sa, bootstrap } => {
                let key = (sa.account.clone(), stream_name(&sa));
                let mine = sa.peers.contains(&self.meta.me()) && self.placed_here(&key.0, &key.1);
                let existing = self.streams.lock().get(&key).cloned();
                match (mine, existing) {
                    (true, Some(g)) => {
                        g.cancel_retiring();
                        reconfigure(server, &g, &sa);
                        g.set_assigned(&sa, &self.meta.names());
                    }
                    (true, None) => match self.start_replica(server, &sa, bootstrap).await {
                        Ok(g) => {
                            self.streams.lock().insert(key, g);
                        }
                        Err(e) => error!(
                            "JetStream cluster could not start stream '{} > {}': {e:#}",
                            key.0, key.1
                        ),
                    },
                    (false, Some(g)) => {
                        // Moved away: the group's leader takes this replica
                        // out of the group; it stops once that committed.
                        g.set_assigned(&sa, &self.meta.names());
                        if g.begin_retiring() {
                            tokio::spawn(self.clone().retire(Arc::downgrade(server), g));
                        }
                    }
                    // Nothing here. Files of a replica moved away while
                    // this server was down are removed by `sweep_orphans`.
                    (false, None) => {}
                }
            }
            MetaEvent::StreamRemoved { account, stream } => {
                self.stop_replica(server, &account, &stream).await
            }
            // Consumers live on their stream's leader for now.
            MetaEvent::ConsumerAssigned { .. } | MetaEvent::ConsumerRemoved { .. } => {}
        }
    }

    /// Stop and delete replica `g` once the group no longer needs it
    /// ([`StreamGroup::wait_retired`]), unless it was assigned here again
    /// meanwhile.
    async fn retire(self: Arc<Self>, server: Weak<Server>, g: Arc<StreamGroup>) {
        let name = g.stream.name.clone();
        info!(
            "JetStream cluster stream '{} > {name}' moved away from this server, \
             waiting for its group to let it go",
            g.account
        );
        g.wait_retired().await;
        let Some(server) = server.upgrade() else {
            return;
        };
        let _changing = self.lifecycle.lock().await;
        let key = (g.account.clone(), name.clone());
        let current = self.streams.lock().get(&key).cloned();
        if !current.is_some_and(|c| Arc::ptr_eq(&c, &g)) || self.placed_here(&key.0, &key.1) {
            g.cancel_retiring();
            return;
        }
        info!(
            "JetStream cluster removing stream '{} > {name}' from this server",
            g.account
        );
        self.stop_replica(&server, &key.0, &key.1).await;
    }

    /// Once, after start: remove the copies of streams this server no
    /// longer holds (they moved away while it was down). Only once the
    /// meta group is current here, so the placement it goes by is not an
    /// old one being replayed: a copy is never removed on a stale word.
    async fn sweep_orphans(cluster: Weak<JsCluster>, server: Weak<Server>) {
        loop {
            tokio::time::sleep(timing::FORM_POLL).await;
            let Some(c) = cluster.upgrade() else { return };
            if c.meta.leader().is_none() || !c.meta.is_current() {
                continue;
            }
            let Some(server) = server.upgrade() else {
                return;
            };
            let Some(js) = server.jetstream() else { return };
            let _changing = c.lifecycle.lock().await;
            for acc in js.accounts() {
                for name in acc.stream_dirs() {
                    let running = c.stream_group(&acc.name, &name).is_some();
                    if running || c.placed_here(&acc.name, &name) {
                        continue;
                    }
                    info!(
                        "JetStream cluster removing stream '{} > {name}' from this server, \
                         it moved away while the server was down",
                        acc.name
                    );
                    c.stop_replica(&server, &acc.name, &name).await;
                }
            }
            return;
        }
    }

    async fn start_replica(
        &self,
        server: &Arc<Server>,
        sa: &meta::StreamAssignment,
        bootstrap: bool,
    ) -> anyhow::Result<Arc<StreamGroup>> {
        use anyhow::Context;
        let js = server
            .jetstream()
            .context("JetStream is not running on this server")?;
        let acc = js
            .account(&sa.account)
            .with_context(|| format!("account {:?} has no JetStream here", sa.account))?;
        let config: crate::jetstream::types::StreamConfig =
            serde_json::from_str(&sa.config).context("the assigned configuration")?;
        let created = crate::jetstream::types::parse_rfc3339(&sa.created)
            .unwrap_or_else(std::time::SystemTime::now);
        let stream = acc.open_replica(server, config, created)?;
        let dir = acc.raft_dir(&stream.name);
        StreamGroup::start(
            server,
            self.router.clone(),
            sa,
            &self.meta.names(),
            bootstrap,
            stream,
            &dir,
        )
        .await
    }

    async fn stop_replica(&self, server: &Arc<Server>, account: &str, stream: &str) {
        let g = self
            .streams
            .lock()
            .remove(&(account.to_string(), stream.to_string()));
        if let Some(g) = g {
            g.shutdown().await;
        }
        if let Some(acc) = server.jetstream().and_then(|js| js.account(account)) {
            // The Raft log's writer may still be finishing: removing the
            // directory under it would leave it half recreated.
            let log = acc.raft_dir(stream).join("log");
            let closed = tokio::task::spawn_blocking(move || {
                crate::raft::log::wait_closed(&log, LOG_CLOSE_WAIT)
            })
            .await;
            match closed {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!("JetStream cluster stream '{account} > {stream}': {e:#}"),
                Err(e) => warn!("JetStream cluster stream '{account} > {stream}': {e}"),
            }
            acc.drop_replica(server, stream);
        }
    }

    pub async fn shutdown(&self) {
        let groups: Vec<Arc<StreamGroup>> = self.streams.lock().drain().map(|(_, g)| g).collect();
        for g in groups {
            g.shutdown().await;
        }
        if let Some(server) = self.peers.server.upgrade() {
            self.api_client.close(&server);
        }
        self.meta.shutdown().await;
        self.bus.close();
    }
}

/// The stream an assignment names.
fn stream_name(sa: &meta::StreamAssignment) -> String {
    serde_json::from_str::<serde_json::Value>(&sa.config)
        .ok()
        .and_then(|v| v["name"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A replica's new configuration (a committed STREAM.UPDATE).
fn reconfigure(server: &Arc<Server>, g: &StreamGroup, sa: &meta::StreamAssignment) {
    let Ok(config) = serde_json::from_str::<crate::jetstream::types::StreamConfig>(&sa.config)
    else {
        error!(
            "JetStream cluster: undecodable configuration for {:?}",
            g.group
        );
        return;
    };
    let Some(acc) = server.jetstream().and_then(|js| js.account(&g.account)) else {
        return;
    };
    if g.stream.config() == config {
        return;
    }
    if let Err(e) = acc.reconfigure_replica(server, &g.stream, config, g.is_leader()) {
        error!("JetStream cluster: reconfiguring {:?}: {e}", g.group);
    }
}

/// [`PeerSource`] over the route table.
struct RoutePeers {
    server: Weak<Server>,
    /// Names of foreign JetStream servers already logged.
    warned: Mutex<Vec<String>>,
}

impl RoutePeers {
    fn all(&self) -> Vec<JsPeer> {
        let Some(server) = self.server.upgrade() else {
            return Vec::new();
        };
        let mut out: Vec<JsPeer> = Vec::new();
        for p in server.routes.peers() {
            if !p.info.jetstream || out.iter().any(|o| o.name == p.name) {
                continue;
            }
            let tribune = p.info.go.starts_with("tribune-broker");
            if !tribune {
                let mut warned = self.warned.lock();
                if !warned.contains(&p.name) {
                    error!(
                        "JetStream cluster includes {} ({}), which is not tribune-broker: \
                         Tribune and nats-server cannot share Raft groups, clustered \
                         JetStream is unavailable while it is in the cluster",
                        p.name, p.info.go
                    );
                    warned.push(p.name.clone());
                }
            }
            out.push(JsPeer {
                id: crate::raft::node_id(&p.name),
                name: p.name.clone(),
                tribune,
            });
        }
        out
    }
}

impl PeerSource for RoutePeers {
    fn peers(&self) -> Vec<JsPeer> {
        self.all()
    }

    fn expected(&self) -> usize {
        let Some(server) = self.server.upgrade() else {
            return usize::MAX;
        };
        let opts = server.opts();
        let own = server.listeners().cluster;
        let own_hosts = [
            opts.cluster.host.as_str(),
            "localhost",
            "127.0.0.1",
            "::1",
            "0.0.0.0",
        ];
        let advertised = opts.cluster.advertise.clone().unwrap_or_default();
        peers::expected_from_routes(&opts.cluster.routes, |hp| {
            if hp == advertised {
                return true;
            }
            let Some((host, port)) = hp.rsplit_once(':') else {
                return false;
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            own.is_some_and(|a| port.parse() == Ok(a.port()))
                && (own_hosts.contains(&host) || own.is_some_and(|a| a.ip().to_string() == host))
        })
    }
}
