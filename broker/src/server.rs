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
use crate::client::{run_client, ClientConfig, ClientShared, ClosedState, DeliverHooks};
use crate::options::Options;
use crate::protocol::{errors, err_line, Info, Parser};
use crate::subscription::Subscription;
use crate::{ports, VERSION};

/// The nats-server release whose client protocol Tribune speaks. Clients
/// gate features on the `version` in INFO, so it reports this, not its own.
pub const NATS_COMPAT_VERSION: &str = "2.11.0";

/// How many closed connections `/connz?state=closed` remembers (nats-server's default).
const MAX_CLOSED_CLIENTS: usize = 10_000;

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
}

pub struct Server {
    /// Public NKEY of this server (its identity on the wire).
    pub id: String,
    /// The server's curve key: its public half goes out in INFO as `xkey`,
    /// for encrypting auth-callout exchanges.
    pub xkey: nkeys::XKey,
    pub name: String,
    pub start_time: SystemTime,
    opts: RwLock<Arc<Options>>,
    global: Arc<Account>,
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
}

impl Server {
    pub fn new(opts: Options) -> Arc<Server> {
        let id = nkeys::KeyPair::new_server().public_key();
        let name = opts.server_name.clone().unwrap_or_else(|| id.clone());
        let (stop_accepting, _) = watch::channel(false);
        Arc::new(Server {
            id,
            xkey: nkeys::XKey::new(),
            name,
            start_time: SystemTime::now(),
            opts: RwLock::new(Arc::new(opts)),
            global: Account::new(GLOBAL_ACCOUNT),
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
        })
    }

    /// The current options (replaced wholesale on reload).
    pub fn opts(&self) -> Arc<Options> {
        self.opts.read().clone()
    }

    pub fn global_account(&self) -> Arc<Account> {
        self.global.clone()
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
        if opts.jetstream.enabled {
            warn!("JetStream is not available in this tribune-broker release yet; -js/jetstream is accepted and ignored");
        }
        if opts.cluster.port.is_some() || !opts.cluster.routes.is_empty() {
            warn!("Clustering is not available in this tribune-broker release yet; cluster/routes are accepted and ignored");
        }

        if let Some(http_port) = opts.http_port {
            let addr = format!("{}:{}", opts.monitor_host(), http_port);
            let listener = TcpListener::bind(&addr).await.with_context(|| format!("could not listen on {addr} for monitoring"))?;
            let local = listener.local_addr()?;
            info!("Starting http monitor on {}", join_host_port(opts.monitor_host(), local.port()));
            self.listeners.write().http = Some(local);
            let srv = self.clone();
            tokio::spawn(async move {
                if let Err(e) = crate::monitor::serve(srv, listener).await {
                    error!("Error starting monitor: {e:#}");
                }
            });
        }

        let addr = format!("{}:{}", opts.host, opts.port);
        let listener = TcpListener::bind(&addr).await.with_context(|| format!("could not listen on {addr}"))?;
        let local = listener.local_addr()?;
        self.listeners.write().client = Some(local);
        info!("Listening for client connections on {}", join_host_port(&opts.host, local.port()));
        if opts.auth_required() {
            debug!("Client authentication is required");
        }
        let srv = self.clone();
        tokio::spawn(async move { srv.accept_loop(listener).await });

        if let Some(dir) = &opts.ports_file_dir {
            let path = ports::write_ports_file(dir, &opts, &self.listeners())?;
            *self.ports_file.lock() = Some(path);
        }
        info!("Server is ready");
        Ok(())
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        let mut stop = self.stop_accepting.subscribe();
        loop {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((stream, addr)) => self.clone().accept(stream, addr),
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
            auth_required: opts.auth_required(),
            max_payload: opts.max_payload as i64,
            client_id: cid,
            client_ip: addr.ip().to_string(),
            ldm: self.is_lame_duck(),
            xkey: self.xkey.public_key(),
            ..Default::default()
        }
    }

    fn accept(self: Arc<Self>, stream: TcpStream, addr: SocketAddr) {
        if self.is_lame_duck() || self.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        let _ = stream.set_nodelay(true);
        let opts = self.opts();
        let cid = self.next_cid.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(ClientShared::new(cid, Some(addr), opts.max_pending));
        let info = self.client_info(cid, &addr).to_line();
        {
            let mut clients = self.clients.lock();
            if clients.len() >= opts.max_connections {
                drop(clients);
                error!("{} - {}", shared.tag(), errors::MAX_CONNECTIONS);
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let mut stream = stream;
                    let mut bytes = info;
                    bytes.extend_from_slice(&err_line(errors::MAX_CONNECTIONS));
                    let _ = stream.write_all(&bytes).await;
                    let _ = stream.shutdown().await;
                });
                return;
            }
            clients.insert(cid, shared.clone());
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
        };
        let parser = Parser::new(opts.max_control_line, Some(opts.max_payload));
        tokio::spawn(run_client(self, shared, stream.into_split(), info, cfg, parser));
    }

    /// Forget a closed connection, remembering it (and the subscriptions it
    /// had) for `/connz?state=closed`.
    pub fn unregister(&self, c: &Arc<ClientShared>, subs: &[Arc<Subscription>]) {
        self.clients.lock().remove(&c.cid);
        let reason = c.closed_reason().unwrap_or(ClosedState::ClientClosed);
        debug!("{} - Client connection closed: {reason}", c.tag());
        let (out_msgs, out_bytes) = c.out.lock().out_counts();
        let closed = ClosedClient {
            cid: c.cid,
            addr: c.addr,
            start: c.start,
            stop: SystemTime::now(),
            last_activity: SystemTime::UNIX_EPOCH + Duration::from_nanos(c.last_activity.load(Ordering::Relaxed)),
            reason: reason.to_string(),
            meta: c.meta.lock().clone(),
            in_msgs: c.stats.in_msgs.load(Ordering::Relaxed),
            in_bytes: c.stats.in_bytes.load(Ordering::Relaxed),
            out_msgs,
            out_bytes,
            subs: subs
                .iter()
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

    /// Remove a subscription from its client and its account.
    pub fn remove_subscription(&self, sub: &Arc<Subscription>) {
        sub.close();
        sub.client.subs.lock().remove(&sub.sid);
        let account = sub.client.account.lock().clone();
        if let Some(acc) = account {
            acc.sublist.remove(sub);
        }
    }

    /// Cut off a consumer that cannot keep up, once.
    pub fn note_slow_consumer(&self, c: &Arc<ClientShared>, reason: ClosedState) {
        if c.close(reason) {
            self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
            let opts = self.opts();
            match reason {
                ClosedState::SlowConsumerWriteDeadline => {
                    info!("{} - Slow Consumer Detected: WriteDeadline of {:?} exceeded", c.tag(), opts.write_deadline)
                }
                _ => info!("{} - Slow Consumer Detected: MaxPending of {} Exceeded", c.tag(), opts.max_pending),
            }
        }
    }

    /// Swap in new options (SIGHUP). Listeners and limits that need a restart
    /// keep their old values; auth, logging and per-connection settings for
    /// new connections take effect at once.
    pub fn reload(&self, new_opts: Options) {
        let old = self.opts();
        if old.host != new_opts.host || old.port != new_opts.port {
            warn!("Reload: changing the client listen address requires a restart; keeping {}:{}", old.host, old.port);
        }
        if old.debug != new_opts.debug {
            info!("Reloaded: debug = {}", new_opts.debug);
        }
        if old.trace != new_opts.trace {
            info!("Reloaded: trace = {}", new_opts.trace);
        }
        if old.users != new_opts.users || old.username != new_opts.username || old.authorization != new_opts.authorization {
            info!("Reloaded: authorization users");
        }
        *self.opts.write() = Arc::new(new_opts);
        *self.config_load_time.write() = SystemTime::now();
        info!("Reloaded server configuration");
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
        let clients = self.clients();
        let addr = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut ldm = self.client_info(0, &addr);
        ldm.client_id = 0;
        ldm.client_ip.clear();
        let line = ldm.to_line();
        for c in &clients {
            c.send(&line);
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
            for c in &clients {
                c.close(ClosedState::ServerShutdown);
                if !step.is_zero() {
                    tokio::time::sleep(step).await;
                }
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
        for c in self.clients() {
            c.close(ClosedState::ServerShutdown);
        }
        // Give writers a moment to flush their last bytes.
        for _ in 0..50 {
            if self.num_clients() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
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
        debug!("{} - Auto-unsubscribe limit of {} reached for sid '{}'", sub.client.tag(), sub.max.load(Ordering::Relaxed), sub.sid_str());
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
