//! The server: listeners, the client registry, server-wide counters, and the
//! life cycle (start, reload, lame duck, shutdown).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use parking_lot::{Mutex, RwLock};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::accounts::{Account, GLOBAL_ACCOUNT};
use crate::client::{run_client, ClientConfig, ClientShared, ClosedState, ConnKind, DeliverHooks};
use crate::options::Options;
use crate::protocol::{err_line, errors, Info, Parser};
use crate::route::{self, Peer, RouteInfo, RouteUrl, Routes};
use crate::subscription::Subscription;
use crate::{ports, VERSION};
pub use reload::{ConfigSource, NO_CONFIG_FILE};

mod operator;
mod reload;
mod ws_listener;

/// The nats-server release whose client protocol Tribune speaks. Clients
/// gate features on the `version` in INFO, so it reports this, not its own.
pub const NATS_COMPAT_VERSION: &str = "2.11.0";

/// How many closed connections `/connz?state=closed` remembers (nats-server's default).
const MAX_CLOSED_CLIENTS: usize = 10_000;
/// Subscriptions remembered per closed connection, so the ring stays bounded.
const MAX_CLOSED_SUBS: usize = 1_000;

/// Server-wide counters, as `/varz` reports them.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_msgs: AtomicU64,
    pub out_bytes: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub stale_connections: AtomicU64,
    pub total_connections: AtomicU64,
    /// Of `total_connections`, those over WebSocket.
    pub total_websocket_connections: AtomicU64,
    pub auth_errors: AtomicU64,
}

/// A subscription as it stood when its connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedSub {
    pub subject: String,
    pub queue: Option<String>,
    pub sid: String,
    pub msgs: u64,
    pub max: u64,
}

/// What `/connz?state=closed` shows about a connection that is gone.
#[derive(Debug, Clone)]
pub struct ClosedClient {
    pub cid: u64,
    pub client_type: crate::client::ClientType,
    pub addr: Option<SocketAddr>,
    pub start: SystemTime,
    pub stop: SystemTime,
    pub last_activity: SystemTime,
    pub reason: String,
    pub meta: crate::client::ClientMeta,
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
    pub subs: Vec<ClosedSub>,
}

/// Bound addresses, known once the listeners are up.
#[derive(Debug, Default, Clone)]
pub struct Listeners {
    pub client: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub cluster: Option<SocketAddr>,
    pub websocket: Option<SocketAddr>,
}

pub struct Server {
    /// Public NKEY of this server (its identity on the wire).
    pub id: String,
    /// The key behind `id`: it signs auth-callout requests.
    pub key_pair: nkeys::KeyPair,
    /// The server's curve key: its public half goes out in INFO as `xkey`,
    /// for encrypting auth-callout exchanges.
    pub xkey: nkeys::XKey,
    pub name: String,
    pub start_time: SystemTime,
    opts: RwLock<Arc<Options>>,
    global: Arc<Account>,
    /// Every account by name: `$G`, the system account, configured ones,
    /// and in operator mode those a directory resolver learns of later.
    accounts: RwLock<HashMap<String, Arc<Account>>>,
    system_account: Arc<Account>,
    clients: Mutex<HashMap<u64, Arc<ClientShared>>>,
    closed: Mutex<VecDeque<ClosedClient>>,
    next_cid: AtomicU64,
    pub stats: ServerStats,
    lame_duck: AtomicBool,
    shutting_down: AtomicBool,
    /// Flips to true to stop the accept loops.
    stop_accepting: watch::Sender<bool>,
    /// Flips to true when shutdown has completed.
    done: watch::Sender<bool>,
    listeners: RwLock<Listeners>,
    ports_file: Mutex<Option<PathBuf>>,
    config_load_time: RwLock<SystemTime>,
    /// The cluster: peers, their interest, and ours to advertise.
    pub routes: Routes,
    response_seq: AtomicU64,
    cluster_name: String,
    /// Explicit or discovered routes being kept up, by URL; dropping the
    /// sender (or sending false) stops the redial loop.
    route_keepers: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// TLS contexts (client port, routes, https), built at start.
    tls: RwLock<crate::tls::TlsContexts>,
    /// Auth callout, when configured; set up at start.
    callout: std::sync::OnceLock<crate::callout::AuthCallout>,
    /// Operator mode: the trusted accounts, when `operator` is configured;
    /// set up at start.
    trust: std::sync::OnceLock<crate::operator::Trust>,
    /// JetStream, when enabled; set up at start.
    jetstream: std::sync::OnceLock<Arc<crate::jetstream::JetStream>>,
    /// The full resolver's `$SYS.REQ.CLAIMS.*` service, when configured.
    claims: std::sync::OnceLock<crate::system::claims::Claims>,
    /// Sends this server's own events (`$SYS.SERVER.<id>.*`).
    system_events: std::sync::OnceLock<crate::system::server_api::Events>,
    /// Held while an account JWT change is applied, so that changes (a
    /// push, a merge, a fetch at login) apply one at a time.
    account_changes: Mutex<()>,
    /// What a reload reads again; set by `main` (see [`reload`]).
    config_source: std::sync::OnceLock<Box<dyn ConfigSource>>,
    /// Held while a reload applies, so SIGHUP and `RELOAD` never interleave.
    reloading: Mutex<()>,
    /// Counts relinks of operator-mode imports; a timer set by one acts
    /// only if no other came after it.
    relinks: AtomicU64,
    /// The pending relink for the first activation to expire.
    relink_timer: Mutex<Option<tokio::task::AbortHandle>>,
    /// Per account with a future `exp` in its JWT: the timer that ends its
    /// connections then.
    account_expiry: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// Checks passwords, tokens and route passwords; bcrypt off the runtime.
    secrets: crate::auth::SecretChecker,
}

impl Server {
    pub fn new(mut opts: Options) -> Arc<Server> {
        opts.resolve_defaults();
        let key_pair = nkeys::KeyPair::new_server();
        let id = key_pair.public_key();
        let name = opts.server_name.clone().unwrap_or_else(|| id.clone());
        let (stop_accepting, _) = watch::channel(false);
        let global = Account::new(GLOBAL_ACCOUNT);
        let mut accounts = HashMap::new();
        accounts.insert(GLOBAL_ACCOUNT.to_string(), global.clone());
        for a in &opts.accounts {
            accounts.insert(a.name.clone(), Account::configured(a));
        }
        let sys_name = opts
            .system_account
            .clone()
            .unwrap_or_else(|| crate::accounts::SYSTEM_ACCOUNT.to_string());
        let system_account = accounts
            .entry(sys_name.clone())
            .or_insert_with(|| Account::new(&sys_name))
            .clone();
        crate::accounts::link_imports(&accounts, &opts.accounts);
        // Without a configured name the cluster gets a generated one, as in nats-server.
        let cluster_name = opts
            .cluster
            .name
            .clone()
            .unwrap_or_else(|| nkeys::KeyPair::new_server().public_key()[..22].to_string());
        Arc::new(Server {
            id,
            key_pair,
            xkey: nkeys::XKey::new(),
            name,
            start_time: SystemTime::now(),
            opts: RwLock::new(Arc::new(opts)),
            global,
            accounts: RwLock::new(accounts),
            system_account,
            clients: Mutex::new(HashMap::new()),
            closed: Mutex::new(VecDeque::new()),
            next_cid: AtomicU64::new(1),
            stats: ServerStats::default(),
            lame_duck: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            stop_accepting,
            done: watch::channel(false).0,
            listeners: RwLock::new(Listeners::default()),
            ports_file: Mutex::new(None),
            config_load_time: RwLock::new(SystemTime::now()),
            routes: Routes::default(),
            response_seq: AtomicU64::new(1),
            cluster_name,
            route_keepers: Mutex::new(HashMap::new()),
            tls: RwLock::new(crate::tls::TlsContexts::default()),
            callout: std::sync::OnceLock::new(),
            trust: std::sync::OnceLock::new(),
            jetstream: std::sync::OnceLock::new(),
            claims: std::sync::OnceLock::new(),
            system_events: std::sync::OnceLock::new(),
            account_changes: Mutex::new(()),
            config_source: std::sync::OnceLock::new(),
            reloading: Mutex::new(()),
            relinks: AtomicU64::new(0),
            relink_timer: Mutex::new(None),
            account_expiry: Mutex::new(HashMap::new()),
            secrets: crate::auth::SecretChecker::for_this_machine(),
        })
    }

    /// The current options (replaced wholesale on reload).
    pub fn opts(&self) -> Arc<Options> {
        self.opts.read().clone()
    }

    pub fn global_account(&self) -> Arc<Account> {
        self.global.clone()
    }

    /// An account by name (routes name it in every message). Configured
    /// accounts are fixed at start; in operator mode the resolver's
    /// accounts join as it learns of them.
    pub fn account(&self, name: &[u8]) -> Option<Arc<Account>> {
        let name = std::str::from_utf8(name).ok()?;
        self.accounts.read().get(name).cloned()
    }

    pub fn accounts(&self) -> Vec<Arc<Account>> {
        self.accounts.read().values().cloned().collect()
    }

    pub fn system_account(&self) -> Arc<Account> {
        self.system_account.clone()
    }

    pub fn next_cid(&self) -> u64 {
        self.next_cid.fetch_add(1, Ordering::Relaxed)
    }

    /// The TLS contexts in force (empty until [`Self::start`]).
    pub fn tls(&self) -> crate::tls::TlsContexts {
        self.tls.read().clone()
    }

    pub fn cluster_name(&self) -> String {
        self.cluster_name.clone()
    }

    /// The cluster name, or empty when this server is not clustered (as
    /// INFO and auth-callout requests report it).
    pub fn cluster_name_if_clustered(&self) -> String {
        if self.opts.read().cluster.enabled() {
            self.cluster_name()
        } else {
            String::new()
        }
    }

    /// Operator mode's trust in accounts, when configured.
    pub fn trust(&self) -> Option<&crate::operator::Trust> {
        self.trust.get()
    }

    /// JetStream, when enabled.
    pub fn jetstream(&self) -> Option<&Arc<crate::jetstream::JetStream>> {
        self.jetstream.get()
    }

    /// Auth callout, when configured and set up.
    pub fn callout(&self) -> Option<&crate::callout::AuthCallout> {
        self.callout.get()
    }

    /// The checker for presented secrets (bcrypt runs on a bounded
    /// blocking pool, never on the runtime's workers).
    pub fn secrets(&self) -> &crate::auth::SecretChecker {
        &self.secrets
    }

    /// This server's client URLs (`host:port`), as peers and clients see them.
    pub fn own_client_urls(&self) -> Vec<String> {
        let opts = self.opts();
        if let Some(adv) = &opts.client_advertise {
            return vec![adv.clone()];
        }
        let port = self.listeners().client.map_or(opts.port, |a| a.port());
        crate::ports::reachable_hosts(&opts.host)
            .iter()
            .map(|h| join_host_port(h, port))
            .collect()
    }

    /// URLs clients may fail over to: ours first, then each peer's, in the
    /// order the peers joined. Empty while the server is alone.
    pub fn client_connect_urls(&self) -> Vec<String> {
        let peers = self.routes.peer_client_urls();
        if peers.is_empty() || self.opts().cluster.no_advertise {
            return Vec::new();
        }
        let mut urls = self.own_client_urls();
        for u in peers {
            if !urls.contains(&u) {
                urls.push(u);
            }
        }
        urls
    }

    /// The INFO this server sends on routes.
    pub fn route_info(&self) -> RouteInfo {
        let opts = self.opts();
        let port = self
            .listeners()
            .cluster
            .map_or(opts.cluster.port.unwrap_or(0), |a| a.port());
        RouteInfo {
            server_id: self.id.clone(),
            server_name: self.name.clone(),
            version: NATS_COMPAT_VERSION.to_string(),
            proto: route::ROUTE_PROTO,
            go: format!("tribune-broker {VERSION}"),
            host: if opts.cluster.host.is_empty() {
                "0.0.0.0".to_string()
            } else {
                opts.cluster.host.clone()
            },
            port,
            headers: !opts.no_header_support,
            auth_required: opts.cluster.username.is_some(),
            tls_required: opts.cluster.tls.is_some(),
            tls_verify: opts.cluster.tls.is_some(),
            max_payload: opts.max_payload as i64,
            ip: opts
                .cluster
                .advertise
                .as_ref()
                .map(|a| format!("nats-route://{a}/"))
                .unwrap_or_default(),
            cluster: self.cluster_name(),
            connect_urls: if opts.cluster.no_advertise {
                Vec::new()
            } else {
                self.own_client_urls()
            },
            ws_connect_urls: if opts.cluster.no_advertise {
                Vec::new()
            } else {
                self.own_ws_urls()
            },
            compression: "off".to_string(),
            ldm: self.is_lame_duck(),
            jetstream: opts.jetstream.enabled,
            ..Default::default()
        }
    }

    /// Send every client that takes async INFO the current INFO (e.g. the
    /// cluster's client URLs changed).
    pub fn broadcast_client_info(&self) {
        for c in self.clients() {
            if c.async_info.load(Ordering::Relaxed) {
                if let Some(addr) = c.addr {
                    c.send(&self.info_for(&c, &addr).to_line());
                }
            }
        }
    }

    /// A peer registered: tell the other peers about it (gossip), and
    /// clients about its URLs.
    pub fn route_registered(&self, peer: &Peer) {
        if !peer.solicited || peer.configured {
            for other in self.routes.peers() {
                if other.id == peer.id {
                    continue;
                }
                let mut info = peer.info.clone();
                // Where the peer listens, and no more: the URL we dialled
                // may carry our route credentials, which are not for other
                // members (or whoever poses as one) to read. nats-server
                // gossips the same `nats-route://host:port/`.
                info.ip = crate::route::RouteUrl::parse(&peer.url)
                    .map(|u| format!("nats-route://{}/", u.host_port()))
                    .unwrap_or_default();
                info.gossip_mode = if other.configured {
                    2
                } else if !peer.solicited {
                    1
                } else {
                    0
                };
                other.conn.send(&info.to_line());
            }
        }
        self.broadcast_client_info();
    }

    pub fn route_unregistered(&self, _peer: &Peer) {
        self.broadcast_client_info();
    }

    /// A local client's subscription was added: advertise it to the
    /// cluster, in its own account and, for subjects it imports as a
    /// stream, in the exporting account (so the exporter's messages reach
    /// this node and are carried across here).
    pub fn local_sub_added(&self, account: &Account, sub: &Subscription) {
        if sub.client.kind == ConnKind::Route || !self.opts.read().cluster.enabled() {
            return;
        }
        self.routes.add_local(&account.name, sub);
        for (exporter, filter) in Self::upstream(account, sub) {
            self.routes
                .add_local_subject(&exporter, filter.as_bytes(), true);
        }
    }

    /// Local client subscriptions went away: withdraw them from the cluster.
    pub fn local_subs_removed(&self, account: &Account, subs: &[Arc<Subscription>]) {
        if !self.opts.read().cluster.enabled() {
            return;
        }
        for sub in subs.iter().filter(|s| s.client.kind != ConnKind::Route) {
            self.routes.remove_local(&account.name, sub);
            for (exporter, filter) in Self::upstream(account, sub) {
                self.routes
                    .add_local_subject(&exporter, filter.as_bytes(), false);
            }
        }
    }

    /// Stream imports a subscription draws on: (exporting account, filter).
    pub(crate) fn upstream(account: &Account, sub: &Subscription) -> Vec<(String, String)> {
        if !account.has_cross() {
            return Vec::new();
        }
        let subject = sub.subject_str();
        account
            .stream_imports
            .read()
            .iter()
            .filter_map(|(exporter, filter, prefix)| {
                let local = match prefix {
                    Some(p) => subject
                        .strip_prefix(p.as_str())?
                        .strip_prefix('.')?
                        .to_string(),
                    None => subject.clone(),
                };
                crate::permissions::overlaps(&local, filter)
                    .then(|| (exporter.name.clone(), filter.clone()))
            })
            .collect()
    }

    /// A fresh reply subject for a service request crossing accounts:
    /// `_R_.<server>.<n>`, unique in the cluster, routed back here.
    pub fn response_subject(&self) -> Vec<u8> {
        // Unguessable, so no one in the exporting account can answer first.
        let n = self.response_seq.fetch_add(1, Ordering::Relaxed);
        let r: u64 = rand::random();
        format!(
            "{}{}.{n:x}{r:016x}",
            crate::accounts::RESPONSE_PREFIX,
            self.response_token()
        )
        .into_bytes()
    }

    fn response_token(&self) -> &str {
        &self.id[1..9]
    }

    /// Interest in `_R_.<this server>.>` in every account that exports a
    /// service we import, so responses made on other nodes come back here.
    fn advertise_response_interest(&self) {
        for e in self.service_exporters() {
            self.advertise_responses_from(&e);
        }
    }

    /// Accounts whose services some account here imports.
    pub(crate) fn service_exporters(&self) -> std::collections::BTreeSet<String> {
        self.accounts()
            .iter()
            .flat_map(|acc| {
                acc.service_imports
                    .read()
                    .iter()
                    .map(|si| si.exporter.name.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Interest in `_R_.<this server>.>` in `exporter`.
    pub(crate) fn advertise_responses_from(&self, exporter: &str) {
        let subject = format!(
            "{}{}.>",
            crate::accounts::RESPONSE_PREFIX,
            self.response_token()
        );
        self.routes
            .add_local_subject(exporter, subject.as_bytes(), true);
    }

    /// Keep a route to `url` up until [`Self::drop_route`] (or shutdown).
    pub fn keep_route(self: &Arc<Self>, url: &str) {
        self.keep_route_with(url, |_| {});
    }

    /// [`Self::keep_route`] for a route EC2 discovery found: like a gossiped
    /// one it carries no credentials, so it gets this node's own
    /// `cluster { authorization }` (the peers share it), as nats-server
    /// gives implicit routes.
    fn keep_discovered_route(self: &Arc<Self>, url: &str) {
        let opts = self.opts();
        let (user, pass) = (opts.cluster.username.clone(), opts.cluster.password.clone());
        self.keep_route_with(url, move |u| {
            if u.user.is_none() && user.is_some() {
                u.user = user;
                u.pass = pass;
            }
        });
    }

    fn keep_route_with(self: &Arc<Self>, url: &str, credentials: impl FnOnce(&mut RouteUrl)) {
        let mut keepers = self.route_keepers.lock();
        if keepers.contains_key(url) {
            return;
        }
        let mut parsed = match RouteUrl::parse(url) {
            Ok(u) => u,
            Err(e) => {
                error!("Invalid route URL {:?}: {e}", crate::redact::url(url));
                return;
            }
        };
        credentials(&mut parsed);
        let (tx, rx) = watch::channel(true);
        keepers.insert(url.to_string(), tx);
        tokio::spawn(route::solicit_forever(self.clone(), parsed, rx));
    }

    /// Is a route to `host:port` configured (or discovered) and so kept
    /// dialled with its own credentials? nats-server's
    /// `hasThisRouteConfigured`: gossip about it is not dialled.
    pub fn keeps_route_to(&self, host: &str, port: u16) -> bool {
        self.route_keepers.lock().keys().any(|k| {
            RouteUrl::parse(k).is_ok_and(|u| u.port == port && u.host.eq_ignore_ascii_case(host))
        })
    }

    /// Stop redialling `url` (e.g. discovery saw the instance go).
    pub fn drop_route(&self, url: &str) {
        if let Some(tx) = self.route_keepers.lock().remove(url) {
            let _ = tx.send(false);
        }
    }

    async fn start_cluster(self: &Arc<Self>, opts: &Options) -> Result<()> {
        let Some(port) = opts.cluster.port else {
            return Ok(());
        };
        let host = if opts.cluster.host.is_empty() {
            "0.0.0.0"
        } else {
            opts.cluster.host.as_str()
        };
        let addr = join_host_port(host, port);
        let listener = crate::listener::bind(&addr)
            .await
            .with_context(|| format!("could not listen on {addr} for routes"))?;
        let local = listener.local_addr()?;
        self.listeners.write().cluster = Some(local);
        info!("Cluster name is {}", self.cluster_name());
        info!(
            "Listening for route connections on {}",
            join_host_port(host, local.port())
        );
        route::security::warn_if_open(&opts.cluster, local);
        let srv = self.clone();
        tokio::spawn(async move {
            let mut stop = srv.stop_accepting.subscribe();
            loop {
                tokio::select! {
                    r = listener.accept() => match r {
                        Ok((stream, addr)) => route::accept(srv.clone(), stream, addr),
                        Err(e) => {
                            error!("Temporary Route Accept Error ({e}), sleeping 10ms");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    },
                    _ = stop.changed() => break,
                }
            }
        });
        self.advertise_response_interest();
        for url in &opts.cluster.routes {
            self.keep_route(url);
        }
        if let Some(cfg) = opts.cluster.discovery.clone() {
            self.start_discovery(cfg).await?;
        }
        Ok(())
    }

    /// Dial the peers EC2 tags name, and follow the set as it changes.
    async fn start_discovery(
        self: &Arc<Self>,
        cfg: crate::discovery::Ec2DiscoveryConfig,
    ) -> Result<()> {
        // Discovered routes send this node's own route password; a bcrypt
        // hash can only check one, so no discovered route could ever
        // authenticate. Refused rather than left to fail on every dial.
        if self
            .opts()
            .cluster
            .password
            .as_deref()
            .is_some_and(crate::auth::is_bcrypt)
        {
            anyhow::bail!(
                "cluster discovery needs a plain cluster authorization password: discovered routes present it, and a bcrypt hash cannot be presented"
            );
        }
        let me = crate::discovery::detect_self().await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        crate::discovery::spawn_refresher(cfg, me, move |change| {
            let _ = tx.send(change);
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let srv = self.clone();
        tokio::spawn(async move {
            while let Some(change) = rx.recv().await {
                for url in &change.added {
                    info!("Discovered route {url}");
                    srv.keep_discovered_route(url);
                }
                for url in &change.removed {
                    info!("Route {url} no longer discovered, removing it");
                    srv.drop_route(url);
                }
            }
        });
        Ok(())
    }

    pub fn listeners(&self) -> Listeners {
        self.listeners.read().clone()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// When the configuration was last loaded (start or reload).
    pub fn config_load_time(&self) -> SystemTime {
        *self.config_load_time.read()
    }

    pub fn is_lame_duck(&self) -> bool {
        self.lame_duck.load(Ordering::Relaxed)
    }

    /// Every live client connection.
    pub fn clients(&self) -> Vec<Arc<ClientShared>> {
        self.clients.lock().values().cloned().collect()
    }

    /// The open client connections and what `f` reads, at one moment: no
    /// connection closes in between (closing moves its counts into its
    /// account's traffic under the same lock).
    pub fn clients_with<T>(&self, f: impl FnOnce() -> T) -> (Vec<Arc<ClientShared>>, T) {
        let clients = self.clients.lock();
        let t = f();
        (clients.values().cloned().collect(), t)
    }

    pub fn num_clients(&self) -> usize {
        self.clients.lock().len()
    }

    /// Recently closed connections, oldest first.
    pub fn closed_clients(&self) -> Vec<ClosedClient> {
        self.closed.lock().iter().cloned().collect()
    }

    /// Log the banner, bind the listeners, write the pid and ports files.
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        let opts = self.opts();
        info!("Starting tribune-broker");
        info!("  Version:  {VERSION} (nats-server {NATS_COMPAT_VERSION} compatible)");
        info!("  Name:     {}", self.name);
        info!("  ID:       {}", self.id);
        if let Some(cf) = &opts.config_file {
            info!("Using configuration file: {}", cf.display());
        }
        if let Some(pid_file) = &opts.pid_file {
            std::fs::write(pid_file, std::process::id().to_string())
                .with_context(|| format!("could not write pidfile {}", pid_file.display()))?;
        }
        if !opts.cluster.enabled() && !opts.cluster.routes.is_empty() {
            warn!(
                "Routes are configured but no cluster listen port is: routes will not be dialled"
            );
        }

        *self.tls.write() = crate::tls::TlsContexts::build(&opts)?;
        if let Some(callout) = crate::callout::AuthCallout::start(self, &opts) {
            let _ = self.callout.set(callout);
        }
        self.start_trust(&opts)?;
        if opts.jetstream.enabled {
            let js = crate::jetstream::JetStream::start(self, &opts.jetstream)?;
            let _ = self.jetstream.set(js);
        }
        self.start_claims_service(&opts)?;
        let monitor = crate::monitor::Monitor::start(self.clone());
        let events = crate::system::server_api::start(self, monitor.clone())?;
        let _ = self.system_events.set(events);
        if let Some(local) = crate::tls::start_https(self, &opts, monitor.clone()).await? {
            self.listeners.write().http = Some(local);
        }
        if let Some(http_port) = opts.http_port {
            let addr = format!("{}:{}", opts.monitor_host(), http_port);
            let listener = crate::listener::bind(&addr)
                .await
                .with_context(|| format!("could not listen on {addr} for monitoring"))?;
            let local = listener.local_addr()?;
            info!(
                "Starting http monitor on {}",
                join_host_port(opts.monitor_host(), local.port())
            );
            self.listeners.write().http = Some(local);
            tokio::spawn(async move {
                if let Err(e) = crate::monitor::serve(monitor, listener).await {
                    error!("Error starting monitor: {e:#}");
                }
            });
        }

        let addr = format!("{}:{}", opts.host, opts.port);
        let listener = crate::listener::bind(&addr)
            .await
            .with_context(|| format!("could not listen on {addr}"))?;
        let local = listener.local_addr()?;
        self.listeners.write().client = Some(local);
        info!(
            "Listening for client connections on {}",
            join_host_port(&opts.host, local.port())
        );
        crate::tls::log_client_tls(&opts);
        if opts.auth_required() {
            debug!("Client authentication is required");
        }
        let srv = self.clone();
        tokio::spawn(async move { srv.accept_loop(listener).await });
        // Before the routes, so that the first route INFO carries our
        // WebSocket URLs.
        self.start_websocket(&opts).await?;
        self.start_cluster(&opts).await?;
        if opts.cluster.enabled() {
            if let Some(js) = self.jetstream() {
                js.join_cluster(self)
                    .await
                    .context("could not join the JetStream cluster")?;
            }
        }

        if let Some(dir) = &opts.ports_file_dir {
            let path = ports::write_ports_file(dir, &opts, &self.listeners())?;
            *self.ports_file.lock() = Some(path);
        }
        info!("Server is ready");
        Ok(())
    }

    /// Accept client connections until told to stop. The loop only hands
    /// each socket to a task of its own ([`Self::serve_client`]): any work
    /// here would slow the draining of a burst, and connections the kernel
    /// cannot queue are dropped and retried by their clients seconds later.
    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        let mut stop = self.stop_accepting.subscribe();
        loop {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((stream, addr)) => {
                        tokio::spawn(self.clone().serve_client(stream, addr));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly.
                        error!("Temporary Client Accept Error ({e}), sleeping 10ms");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                _ = stop.changed() => break,
            }
        }
        debug!("Client accept loop exiting");
    }

    /// The INFO line for a new client connection.
    pub fn client_info(&self, cid: u64, addr: &SocketAddr) -> Info {
        let opts = self.opts();
        let port = self.listeners().client.map_or(opts.port, |a| a.port());
        Info {
            server_id: self.id.clone(),
            server_name: self.name.clone(),
            version: NATS_COMPAT_VERSION.to_string(),
            proto: 1,
            git_commit: crate::GIT_COMMIT.to_string(),
            go: format!("tribune-broker {VERSION}"),
            host: opts.host.clone(),
            port,
            headers: !opts.no_header_support,
            // With a no_auth_user, nats-server tells clients no credentials
            // are needed (they are not, to be that user), while still
            // checking any the client does send.
            auth_required: opts.auth_required() && opts.no_auth_user.is_none(),
            // The server's own view, as nats-server's INFO template: a
            // connection that does the handshake first is told
            // `tls_required` by `tls::serve_client`.
            tls_required: opts.tls.is_some() && !opts.allow_non_tls,
            tls_verify: opts.tls.as_ref().is_some_and(|t| t.verify),
            tls_available: opts.tls.is_some() && opts.allow_non_tls,
            max_payload: opts.max_payload as i64,
            client_id: cid,
            client_ip: addr.ip().to_string(),
            ldm: self.is_lame_duck(),
            xkey: self.xkey.public_key(),
            cluster: self.cluster_name_if_clustered(),
            connect_urls: self.client_connect_urls(),
            ..Default::default()
        }
    }

    /// Everything a new client connection needs before its protocol runs:
    /// the checks, its id, nonce and INFO, and registration. Runs on the
    /// connection's own task, so a burst of connections is accepted as fast
    /// as the accept loop can hand sockets off, and set up in parallel.
    async fn serve_client(self: Arc<Self>, stream: TcpStream, addr: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let client = match self.admit_client(addr) {
            Admission::Ignored => return,
            Admission::Refused(bytes) => {
                use tokio::io::AsyncWriteExt;
                let mut stream = stream;
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
                return;
            }
            Admission::Admitted(c) => c,
        };
        if let Some(tls) = self.tls().client {
            let allow_non_tls = self.opts().allow_non_tls;
            // Boxed: the TLS stream lives inline in this future; unboxed,
            // it would size the task of every plain connection as well.
            Box::pin(crate::tls::serve_client(
                self,
                client.shared,
                stream,
                client.info,
                client.cfg,
                client.parser,
                tls,
                allow_non_tls,
            ))
            .await;
            return;
        }
        let (rd, wr) = stream.into_split();
        self.run_admitted(client, rd, wr).await;
    }

    /// A client connection over any byte stream, without TLS: the same
    /// admission and protocol as a TCP client's. The fuzz target that
    /// drives the connection state machine in memory comes in here.
    #[doc(hidden)]
    pub async fn serve_stream<R, W>(self: Arc<Self>, rd: R, wr: W, addr: SocketAddr)
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        match self.admit_client(addr) {
            Admission::Ignored => {}
            Admission::Refused(bytes) => {
                use tokio::io::AsyncWriteExt;
                let mut wr = wr;
                let _ = wr.write_all(&bytes).await;
                let _ = wr.shutdown().await;
            }
            Admission::Admitted(c) => self.run_admitted(c, rd, wr).await,
        }
    }

    async fn run_admitted<R, W>(self: Arc<Self>, client: Box<NewClient>, rd: R, wr: W)
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let info = client.info.to_line();
        run_client(
            self,
            client.shared,
            (rd, crate::client::Plain(wr)),
            info,
            client.cfg,
            client.parser,
        )
        .await;
    }

    /// The checks a new client passes before its protocol runs, its id,
    /// nonce and INFO, and its registration.
    fn admit_client(&self, addr: SocketAddr) -> Admission {
        if self.is_lame_duck() || self.shutting_down.load(Ordering::Relaxed) {
            return Admission::Ignored;
        }
        let opts = self.opts();
        let cid = self.next_cid.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(ClientShared::new(cid, Some(addr), opts.max_pending));
        // NKEY users prove who they are by signing this connection's nonce.
        let nonce = if opts.nonce_required() {
            crate::auth::new_nonce()
        } else {
            String::new()
        };
        let mut info = self.client_info(cid, &addr);
        info.nonce = nonce.clone();
        if !self.register_client(&shared, opts.max_connections) {
            error!("{} - {}", shared.tag(), errors::MAX_CONNECTIONS);
            let mut bytes = info.to_line();
            bytes.extend_from_slice(&err_line(errors::MAX_CONNECTIONS));
            return Admission::Refused(bytes);
        }
        self.stats.total_connections.fetch_add(1, Ordering::Relaxed);
        debug!("{} - Client connection created", shared.tag());
        let cfg = ClientConfig {
            auth_required: opts.auth_required(),
            auth_timeout: opts.auth_timeout,
            ping_interval: opts.ping_interval,
            ping_max: opts.ping_max,
            write_deadline: opts.write_deadline,
            max_subs: opts.max_subs,
            headers_supported: !opts.no_header_support,
            no_fast_producer_stall: opts.no_fast_producer_stall,
            nonce,
            client_type: crate::client::ClientType::Nats,
            cookies: None,
        };
        let parser = Parser::new(opts.max_control_line, Some(opts.max_payload));
        Admission::Admitted(Box::new(NewClient {
            shared,
            cfg,
            parser,
            info,
        }))
    }

    /// The answer to a client's `$SYS.REQ.USER.INFO`.
    pub fn user_info_reply(
        &self,
        user: &str,
        account: &str,
        perms: Option<&crate::permissions::Permissions>,
        expires_in: Option<Duration>,
    ) -> Vec<u8> {
        let info = match self.system_events.get() {
            Some(events) => events.server_info(self),
            None => crate::system::ServerInfo::of(self, 0),
        };
        crate::system::user_info::reply(info, user, account, perms, expires_in)
    }

    /// A client logged in (or in again): the system account hears of it.
    pub fn client_connected(&self, c: &ClientShared) {
        c.meta.lock().announced = true;
        if let Some(events) = self.system_events.get() {
            events.client_connected(self, c);
        }
    }

    /// Forget a closed connection, remembering it (and the subscriptions it
    /// had) for `/connz?state=closed`.
    pub fn unregister(&self, c: &Arc<ClientShared>, subs: &[Arc<Subscription>]) {
        let reason = c.closed_reason().unwrap_or(ClosedState::ClientClosed);
        let (out_msgs, out_bytes) = c.out.lock().out_counts();
        {
            // One step under the clients lock, so an account's traffic
            // ([`Self::clients_with`]) counts the connection exactly once.
            let mut clients = self.clients.lock();
            clients.remove(&c.cid);
            if let Some(acc) = c.account.lock().as_ref() {
                acc.traffic.add_closed(
                    c.stats.in_msgs.load(Ordering::Relaxed),
                    c.stats.in_bytes.load(Ordering::Relaxed),
                    out_msgs,
                    out_bytes,
                );
            }
        }
        if let Some(events) = self.system_events.get() {
            events.client_disconnected(self, c, reason);
        }
        debug!("{} - Client connection closed: {reason}", c.tag());
        let closed = ClosedClient {
            cid: c.cid,
            client_type: c.client_type,
            addr: c.addr,
            start: c.start,
            stop: SystemTime::now(),
            last_activity: SystemTime::UNIX_EPOCH
                + Duration::from_nanos(c.last_activity.load(Ordering::Relaxed)),
            reason: reason.to_string(),
            meta: c.meta.lock().clone(),
            in_msgs: c.stats.in_msgs.load(Ordering::Relaxed),
            in_bytes: c.stats.in_bytes.load(Ordering::Relaxed),
            out_msgs,
            out_bytes,
            subs: subs
                .iter()
                .take(MAX_CLOSED_SUBS)
                .map(|s| ClosedSub {
                    subject: s.subject_str(),
                    queue: s.queue_str(),
                    sid: s.sid_str(),
                    msgs: s.delivered.load(Ordering::Relaxed),
                    max: s.max.load(Ordering::Relaxed),
                })
                .collect(),
        };
        let mut list = self.closed.lock();
        if list.len() >= MAX_CLOSED_CLIENTS {
            list.pop_front();
        }
        list.push_back(closed);
    }

    /// Fold a read batch's inbound counts into the connection's and the
    /// server's counters (once per batch, not per message).
    pub fn count_inbound(&self, conn: &ClientShared, msgs: u64, bytes: u64) {
        if msgs == 0 {
            return;
        }
        self.stats.in_msgs.fetch_add(msgs, Ordering::Relaxed);
        self.stats.in_bytes.fetch_add(bytes, Ordering::Relaxed);
        conn.stats.in_msgs.fetch_add(msgs, Ordering::Relaxed);
        conn.stats.in_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Count deliveries in the server's counters.
    pub fn count_outbound(&self, msgs: u64, bytes: u64) {
        if msgs > 0 {
            self.stats.out_msgs.fetch_add(msgs, Ordering::Relaxed);
            self.stats.out_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Remove a subscription from its client and its account.
    pub fn remove_subscription(&self, sub: &Arc<Subscription>) {
        sub.close();
        let was_there = sub.client.subs.lock().remove(&sub.sid).is_some();
        let account = sub.client.account.lock().clone();
        if let Some(acc) = account {
            if acc.sublist.remove(sub) && was_there {
                self.local_subs_removed(&acc, std::slice::from_ref(sub));
            }
        }
    }

    /// Cut off a consumer that cannot keep up, once.
    pub fn note_slow_consumer(&self, c: &Arc<ClientShared>, reason: ClosedState) {
        if c.close(reason) {
            self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
            if let Some(acc) = c.account.lock().as_ref() {
                acc.traffic.add_slow_consumer();
            }
            let opts = self.opts();
            match reason {
                ClosedState::SlowConsumerWriteDeadline => {
                    info!(
                        "{} - Slow Consumer Detected: WriteDeadline of {:?} exceeded",
                        c.tag(),
                        opts.write_deadline
                    )
                }
                _ => info!(
                    "{} - Slow Consumer Detected: MaxPending of {} Exceeded",
                    c.tag(),
                    opts.max_pending
                ),
            }
        }
    }

    /// Lame-duck mode: stop accepting, tell clients to go elsewhere, then
    /// close them spread over the lame-duck duration, and shut down.
    pub async fn lame_duck(self: &Arc<Self>) {
        if self.lame_duck.swap(true, Ordering::SeqCst) {
            return;
        }
        let opts = self.opts();
        info!("Entering lame duck mode, stop accepting new clients");
        let _ = self.stop_accepting.send(true);
        if let Some(events) = self.system_events.get() {
            events.lame_duck(self);
        }
        let clients = self.clients();
        let addr = SocketAddr::from(([0, 0, 0, 0], 0));
        let ldm_line = |mut ldm: Info| {
            ldm.client_id = 0;
            ldm.client_ip.clear();
            ldm.to_line()
        };
        let line = ldm_line(self.client_info(0, &addr));
        let ws_line = ldm_line(self.websocket_info(0, &addr));
        for c in &clients {
            match c.client_type {
                crate::client::ClientType::Websocket => c.send(&ws_line),
                crate::client::ClientType::Nats => c.send(&line),
            }
        }
        let route_ldm = self.route_info().to_line();
        for p in self.routes.peers() {
            p.conn.send(&route_ldm);
        }
        let grace = opts.lame_duck_grace_period;
        let mut spread = opts.lame_duck_duration.saturating_sub(grace);
        if spread.is_zero() {
            spread = Duration::from_secs(1);
        }
        tokio::time::sleep(grace).await;
        if !clients.is_empty() {
            info!("Closing existing clients");
            let step = (spread / clients.len() as u32).min(Duration::from_secs(1));
            let start = tokio::time::Instant::now();
            for (k, c) in clients.iter().enumerate() {
                // Client k closes at its own time from the start, not a
                // step after the one before: each sleep overshoots (the
                // timer's millisecond), and summed over thousands of
                // clients that ran past the lame-duck duration.
                tokio::time::sleep_until(start + step * k as u32).await;
                c.close(ClosedState::ServerShutdown);
            }
        }
        self.shutdown().await;
    }

    /// Close everything and remove the files this server wrote.
    pub async fn shutdown(self: &Arc<Self>) {
        if self.shutting_down.swap(true, Ordering::SeqCst) {
            return;
        }
        info!("Initiating Shutdown...");
        let _ = self.stop_accepting.send(true);
        // Before the routes close, so the other servers hear it.
        if let Some(events) = self.system_events.get() {
            events.shutdown(self);
        }
        for c in self.clients() {
            c.close(ClosedState::ServerShutdown);
        }
        self.route_keepers.lock().clear();
        let peers = self.routes.peers();
        for p in &peers {
            p.conn.close(ClosedState::ServerShutdown);
        }
        // Give writers a moment to flush their last bytes: the clients', and
        // the routes' (the SHUTDOWN event is among them).
        for _ in 0..50 {
            if self.num_clients() == 0 && peers.iter().all(|p| p.conn.pending_bytes() == 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(js) = self.jetstream() {
            if let Some(c) = js.cluster() {
                c.shutdown().await;
            }
            js.shutdown(self);
        }
        let opts = self.opts();
        if let Some(p) = self.ports_file.lock().take() {
            let _ = std::fs::remove_file(p);
        }
        if let Some(p) = &opts.pid_file {
            let _ = std::fs::remove_file(p);
        }
        info!("Server Exiting..");
        self.done.send_replace(true);
    }

    /// Wait until [`shutdown`](Self::shutdown) has finished.
    pub async fn wait_for_shutdown(&self) {
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }
}

impl DeliverHooks for Server {
    fn slow_consumer(&self, client: &Arc<ClientShared>) {
        self.note_slow_consumer(client, ClosedState::SlowConsumerPendingBytes);
    }

    fn auto_unsubscribe(&self, sub: &Arc<Subscription>) {
        debug!(
            "{} - Auto-unsubscribe limit of {} reached for sid '{}'",
            sub.client.tag(),
            sub.max.load(Ordering::Relaxed),
            sub.sid_str()
        );
        self.remove_subscription(sub);
    }
}

/// `host:port`, bracketing IPv6 hosts as Go's net.JoinHostPort does.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// What [`Server::admit_client`] decided.
enum Admission {
    /// Lame duck or shutting down: the connection is dropped unanswered.
    Ignored,
    /// Over `max_connections`: these bytes (INFO and the error) go out,
    /// then the connection closes.
    Refused(Vec<u8>),
    /// Boxed: the INFO and config make it far larger than the others.
    Admitted(Box<NewClient>),
}

/// A registered client about to run its protocol.
struct NewClient {
    shared: Arc<ClientShared>,
    cfg: ClientConfig,
    parser: Parser,
    info: Info,
}
