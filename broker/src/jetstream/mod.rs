//! JetStream: persistent streams and consumers, one replica per node.
//!
//! - [`store`]: the storage engine under a stream (file or memory).
//! - [`stream`]: a stream's configuration and its writer (group commit:
//!   one fsync per batch, acks only after it).
//! - [`consumer`]: delivery, acknowledgement and redelivery state.
//! - [`api`]: the `$JS.API.>` request handlers, in nats-server's JSON.
//! - [`direct_get`]: `$JS.API.DIRECT.GET.>`, single and batch reads answered
//!   with the messages themselves.
//!
//! Each account with JetStream gets a [`JsAccount`]: internal clients that
//! serve the API and receive acks, and its streams. On disk, an account
//! keeps `<store_dir>/jetstream/<account>/streams/<stream>/` with
//! `meta.json` (configuration), `msgs/` (the file store) and
//! `obs/<consumer>/` (consumer configuration and state), the layout
//! nats-server uses, so a restart recovers everything.

pub mod account_info;
pub mod api;
pub(crate) mod backup;
pub mod cluster;
pub mod consumer;
pub mod consumer_limits;
pub(crate) mod direct_get;
pub mod errors;
pub mod headers;
pub(crate) mod info_subjects;
pub(crate) mod ingest;
pub(crate) mod limits;
pub(crate) mod pin;
pub mod republish;
pub mod sourcing;
pub mod store;
pub mod stream;
pub mod subject_transform;
pub(crate) mod transform;
pub(crate) mod ttl;
pub mod types;

/// A direct get's request decoder, public for the `jetstream_api` fuzz
/// target.
#[doc(hidden)]
pub use direct_get::request::{Refusal as DirectGetRefusal, Request as DirectGetRequest};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, Result};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::accounts::Account;
use crate::internal::{ChannelHandler, InternalClient};
use crate::options::{JetStreamOptions, SyncPolicy};
use crate::server::Server;
use consumer::Consumer;
use errors::ApiError;
use store::{ConsumerStateFile, FileStore, FileStoreConfig, MemStore, MsgStore};
use stream::Stream;
use types::{ConsumerConfig, Storage, StreamConfig};

/// What is saved next to a stream's or consumer's data.
#[derive(Debug, Serialize, Deserialize)]
struct StreamMeta {
    config: StreamConfig,
    created: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ConsumerMeta {
    name: String,
    config: ConsumerConfig,
    created: String,
}

/// JetStream on this server.
pub struct JetStream {
    pub store_dir: PathBuf,
    pub sync: SyncPolicy,
    accounts: Mutex<HashMap<String, Arc<JsAccount>>>,
    /// `max_memory_store` / `max_file_store`: what all accounts' streams may
    /// reserve on this server (`None`: no limit configured).
    max_memory: Option<i64>,
    max_storage: Option<i64>,
    /// The domain this server shares with the cluster's other JetStream
    /// servers, once joined (clustered servers only).
    cluster: std::sync::OnceLock<Arc<cluster::JsCluster>>,
}

impl std::fmt::Debug for JetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStream")
            .field("store_dir", &self.store_dir)
            .finish()
    }
}

/// One account's JetStream: its API, its acks, its streams.
pub struct JsAccount {
    pub name: String,
    pub(crate) client: InternalClient,
    pub(crate) streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    dir: PathBuf,
    sync: SyncPolicy,
    /// Serializes API requests that change the account (create/delete).
    pub(crate) admin: Mutex<()>,
    /// API responses sent (`api.total`), counted as nats-server's
    /// `trackAPI` does: when a response goes out through the API layer, so
    /// the `$JS.API.INFO` answer does not count itself.
    pub(crate) api_total: std::sync::atomic::AtomicU64,
    /// Of those, the error responses (`api.errors`).
    pub(crate) api_errors: std::sync::atomic::AtomicU64,
    /// The account's JetStream limits, as `$JS.API.INFO` reports them;
    /// an account JWT update replaces them.
    limits: RwLock<account_info::AccountLimits>,
    /// The server's `jetstream { limits {} }`, over every account.
    pub(crate) server_limits: crate::options::JsServerLimits,
}

impl std::fmt::Debug for JsAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsAccount")
            .field("name", &self.name)
            .finish()
    }
}

impl JetStream {
    /// Start JetStream: log as nats-server does, then enable every
    /// account but the system account and recover what is on disk.
    pub fn start(server: &Arc<Server>, opts: &JetStreamOptions) -> Result<Arc<JetStream>> {
        let base = match &opts.store_dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir().join("nats"),
        };
        let store_dir = base.join("jetstream");
        std::fs::create_dir_all(&store_dir).with_context(|| {
            format!("could not create storage directory {}", store_dir.display())
        })?;
        info!("Starting JetStream");
        info!("    _ ___ _____ ___ _____ ___ ___   _   __  __");
        info!(" _ | | __|_   _/ __|_   _| _ \\ __| /_\\ |  \\/  |");
        info!("| || | _|  | | \\__ \\ | | |   / _| / _ \\| |\\/| |");
        info!(" \\__/|___| |_| |___/ |_| |_|_\\___/_/ \\_\\_|  |_|");
        info!("");
        info!("         https://docs.nats.io/jetstream");
        info!("");
        info!("---------------- JETSTREAM ----------------");
        info!("  Max Memory:      {}", size_text(opts.max_memory_store));
        info!("  Max Storage:     {}", size_text(opts.max_file_store));
        info!("  Store Directory: \"{}\"", store_dir.display());
        match opts.sync {
            SyncPolicy::Always => {
                info!("  Sync:            always (fsync before every publish ack)")
            }
            SyncPolicy::Interval(d) => info!("  Sync Interval:   {d:?}"),
        }
        info!("-------------------------------------------");
        let js = Arc::new(JetStream {
            store_dir,
            sync: opts.sync,
            accounts: Mutex::new(HashMap::new()),
            max_memory: opts.max_memory_store.filter(|n| *n >= 0),
            max_storage: opts.max_file_store.filter(|n| *n >= 0),
            cluster: std::sync::OnceLock::new(),
        });
        let sys = server.system_account();
        let conf = server.opts();
        // As in nats-server: when accounts say `jetstream: enabled` (every
        // account JWT says yes or no), only they get it; otherwise every
        // account but the system account.
        let explicit =
            conf.operator.is_some() || conf.accounts.iter().any(|a| a.jetstream.is_some());
        for acc in server.accounts() {
            if Arc::ptr_eq(&acc, &sys) {
                continue;
            }
            let cfg = server.account_config(&acc.name).unwrap_or_default();
            if explicit && cfg.jetstream != Some(true) {
                continue;
            }
            js.enable_account(server, acc, &cfg, !conf.cluster.enabled())?;
        }
        info!("JetStream started");
        Ok(js)
    }

    /// Serve JetStream in `account`. `recover`: reload its streams from
    /// disk (a server of its own; in a cluster the meta group says which
    /// replicas this server holds, and they are opened as it does).
    fn enable_account(
        &self,
        server: &Arc<Server>,
        account: Arc<Account>,
        cfg: &crate::options::AccountConfig,
        recover: bool,
    ) -> Result<()> {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = InternalClient::new(server, account.clone(), Arc::new(ChannelHandler(tx)));
        client.subscribe(server, "$JS.API.>", None)?;
        client.subscribe(server, "$JS.ACK.>", None)?;
        client.subscribe(server, "$JS.FC.>", None)?;
        let dir = self.store_dir.join(&account.name);
        let jsa = Arc::new(JsAccount {
            name: account.name.clone(),
            client,
            streams: RwLock::new(BTreeMap::new()),
            dir,
            sync: self.sync,
            admin: Mutex::new(()),
            api_total: Default::default(),
            api_errors: Default::default(),
            limits: RwLock::new(cfg.jetstream_limits.unwrap_or_default()),
            server_limits: server.opts().jetstream.limits,
        });
        jsa.sweep_removed();
        if recover {
            jsa.recover(server);
        }
        self.accounts
            .lock()
            .insert(account.name.clone(), jsa.clone());
        let srv = Arc::downgrade(server);
        tokio::spawn(api::serve(jsa, srv, rx));
        Ok(())
    }

    /// An account's JWT changed: serve JetStream in it when the JWT grants
    /// it (an account created or granted at run time), or apply its new
    /// limits. A JWT that no longer grants JetStream leaves the streams in
    /// place but allows nothing more to be stored or created, so nothing
    /// is lost by an update made in error.
    pub fn account_changed(
        &self,
        server: &Arc<Server>,
        account: Arc<Account>,
        cfg: &crate::options::AccountConfig,
    ) -> Result<()> {
        let limits = match (cfg.jetstream, cfg.jetstream_limits) {
            (Some(false), _) => account_info::AccountLimits::nothing(),
            (_, l) => l.unwrap_or_default(),
        };
        if let Some(jsa) = self.account(&account.name) {
            jsa.set_limits(limits);
            return Ok(());
        }
        if cfg.jetstream != Some(true) {
            return Ok(());
        }
        let recover = !server.opts().cluster.enabled();
        self.enable_account(server, account, cfg, recover)?;
        info!("JetStream enabled for account {:?}", cfg.name);
        Ok(())
    }

    /// Join the cluster's JetStream domain (its meta group). Called once
    /// the route listener is up, so peers can be counted and reached.
    pub async fn join_cluster(&self, server: &Arc<Server>) -> Result<()> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let c = cluster::JsCluster::start(server, &self.store_dir, tx).await?;
        let _ = self.cluster.set(c.clone());
        // The meta group's decisions, in order: start, change and stop
        // this server's replicas.
        let srv = Arc::downgrade(server);
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                let Some(server) = srv.upgrade() else { return };
                c.on_event(&server, ev).await;
            }
        });
        Ok(())
    }

    /// This server's part of the JetStream domain, when clustered.
    pub fn cluster(&self) -> Option<&Arc<cluster::JsCluster>> {
        self.cluster.get()
    }

    pub fn account(&self, name: &str) -> Option<Arc<JsAccount>> {
        self.accounts.lock().get(name).cloned()
    }

    pub fn accounts(&self) -> Vec<Arc<JsAccount>> {
        self.accounts.lock().values().cloned().collect()
    }

    /// Save consumer state and stop the writers (shutdown).
    pub fn shutdown(&self, server: &Server) {
        for acc in self.accounts() {
            for s in acc.streams.read().values() {
                s.stop(server);
            }
        }
    }
}

/// What a stream directory being removed is renamed to:
/// `.<stream><REMOVED_MARK><random>` (stream names cannot hold a '.').
const REMOVED_MARK: &str = ".removed-";

fn is_removed_dir(name: &str) -> bool {
    name.starts_with('.') && name.contains(REMOVED_MARK)
}

/// nats-server's `friendlyBytes`: `512 B`, `1.00 KB`, `2.50 GB`.
fn size_text(v: Option<i64>) -> String {
    let Some(n) = v.filter(|n| *n >= 0) else {
        return "unlimited".to_string();
    };
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if n < 1024 {
        return format!("{n} B");
    }
    let exp = ((n as f64).ln() / 1024f64.ln()) as i32;
    let idx = (exp.clamp(1, 6) - 1) as usize;
    format!("{:.2} {}B", n as f64 / 1024f64.powi(exp), UNITS[idx])
}

/// What an account's streams hold, for `$JS.API.INFO` and `/jsz`.
#[derive(Debug, Default)]
pub struct Usage {
    pub memory: u64,
    pub storage: u64,
    pub streams: usize,
    pub consumers: usize,
    pub messages: u64,
}

impl JsAccount {
    /// The account's JetStream limits now.
    pub(crate) fn limits(&self) -> account_info::AccountLimits {
        *self.limits.read()
    }

    fn set_limits(&self, limits: account_info::AccountLimits) {
        *self.limits.write() = limits;
    }

    /// Count one API response, an error or not (nats-server's `trackAPI` /
    /// `trackAPIErr`). Called where the response is sent, never where the
    /// request arrives: requests nobody answers (unknown subjects, pull
    /// requests, direct gets, successful `STREAM.MSG.GET`) do not count.
    pub(crate) fn track_api(&self, error: bool) {
        use std::sync::atomic::Ordering;
        self.api_total.fetch_add(1, Ordering::Relaxed);
        if error {
            self.api_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn usage(&self) -> Usage {
        let mut u = Usage::default();
        for s in self.streams.read().values() {
            let inner = s.inner.lock();
            let st = inner.store.state();
            match inner.config.storage {
                Storage::Memory => u.memory += st.bytes,
                Storage::File => u.storage += st.bytes,
            }
            drop(inner);
            u.streams += 1;
            u.messages += st.msgs;
            u.consumers += s.public_consumers();
        }
        u
    }

    fn streams_dir(&self) -> PathBuf {
        self.dir.join("streams")
    }

    pub fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams.read().get(name).cloned()
    }

    /// The names of the streams with a directory here (file streams, and
    /// memory streams' Raft logs).
    pub(crate) fn stream_dirs(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.streams_dir()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| !is_removed_dir(name))
            .collect()
    }

    /// Finish removals a crash interrupted ([`JsAccount::drop_replica`]'s
    /// renamed directories).
    fn sweep_removed(&self) {
        let Ok(entries) = std::fs::read_dir(self.streams_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if !is_removed_dir(&name.to_string_lossy()) {
                continue;
            }
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                warn!("JetStream: removing {}: {err}", e.path().display());
            }
        }
    }

    /// Reload streams and consumers from disk.
    fn recover(self: &Arc<Self>, server: &Arc<Server>) {
        let Ok(entries) = std::fs::read_dir(self.streams_dir()) else {
            return;
        };
        for e in entries.flatten() {
            if is_removed_dir(&e.file_name().to_string_lossy()) {
                continue;
            }
            let dir = e.path();
            match self.recover_stream(server, &dir) {
                Ok(name) => info!("  Restored stream {name:?} in account {:?}", self.name),
                Err(err) => error!(
                    "JetStream could not restore stream from {}: {err:#}",
                    dir.display()
                ),
            }
        }
    }

    fn recover_stream(self: &Arc<Self>, server: &Arc<Server>, dir: &Path) -> Result<String> {
        let meta: StreamMeta = serde_json::from_slice(
            &std::fs::read(dir.join("meta.json")).context("reading meta.json")?,
        )
        .context("decoding meta.json")?;
        let created = types::parse_rfc3339(&meta.created).unwrap_or_else(SystemTime::now);
        let store = FileStore::open(
            &dir.join("msgs"),
            stream::limits(&meta.config),
            FileStoreConfig::default(),
        )
        .context("opening the message store")?;
        let name = meta.config.name.clone();
        let stream = Stream::new(
            meta.config,
            Box::new(store),
            created,
            Some(dir.to_path_buf()),
            self,
            self.sync,
        );
        stream.rebuild_indexes();
        if let Ok(obs) = std::fs::read_dir(dir.join("obs")) {
            for o in obs.flatten() {
                if let Err(err) = self.recover_consumer(&stream, &o.path()) {
                    warn!(
                        "JetStream could not restore consumer from {}: {err:#}",
                        o.path().display()
                    );
                }
            }
        }
        stream
            .start(server)
            .map_err(|e| anyhow::anyhow!("{}", e.description))?;
        self.streams.write().insert(name.clone(), stream.clone());
        for c in stream.consumers.read().values() {
            c.spawn(server);
        }
        Ok(name)
    }

    fn recover_consumer(self: &Arc<Self>, stream: &Arc<Stream>, dir: &Path) -> Result<()> {
        let meta: ConsumerMeta = serde_json::from_slice(
            &std::fs::read(dir.join("meta.json")).context("reading meta.json")?,
        )
        .context("decoding meta.json")?;
        let file = ConsumerStateFile::open(dir)?;
        let saved = file.load()?;
        let created = types::parse_rfc3339(&meta.created).unwrap_or_else(SystemTime::now);
        let c = Consumer::new(
            meta.name.clone(),
            meta.config,
            stream,
            self,
            created,
            saved,
            Some(file),
        );
        stream.consumers.write().insert(meta.name, c);
        Ok(())
    }

    /// Create a stream (the config is already validated).
    pub(crate) fn create_stream(
        self: &Arc<Self>,
        server: &Arc<Server>,
        config: StreamConfig,
    ) -> Result<Arc<Stream>, ApiError> {
        let stream = self.new_stream(config)?;
        self.start_stream(server, stream)
    }

    /// Start a new stream and make it the account's.
    fn start_stream(
        &self,
        server: &Arc<Server>,
        stream: Arc<Stream>,
    ) -> Result<Arc<Stream>, ApiError> {
        stream.start(server)?;
        self.streams
            .write()
            .insert(stream.name.clone(), stream.clone());
        Ok(stream)
    }

    /// Create a stream from a backup (the config is already validated):
    /// `fill` stores its messages before it takes any publish. On error
    /// nothing is left behind.
    pub(crate) fn restore_stream(
        self: &Arc<Self>,
        server: &Arc<Server>,
        config: StreamConfig,
        fill: impl FnOnce(&mut dyn MsgStore) -> Result<(), String>,
    ) -> Result<Arc<Stream>, ApiError> {
        let stream = self.new_stream(config)?;
        let filled = fill(&mut *stream.inner.lock().store);
        if let Err(e) = filled {
            if let Some(dir) = &stream.dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(ApiError::new(500, 10062, format!("restore failed: {e}")));
        }
        stream.rebuild_indexes();
        self.start_stream(server, stream)
    }

    /// A new stream's store (and directory), not started.
    fn new_stream(self: &Arc<Self>, config: StreamConfig) -> Result<Arc<Stream>, ApiError> {
        let created = SystemTime::now();
        let (store, dir): (Box<dyn MsgStore>, Option<PathBuf>) = match config.storage {
            Storage::Memory => (Box::new(MemStore::new(stream::limits(&config))), None),
            Storage::File => {
                let dir = self.streams_dir().join(&config.name);
                let meta = StreamMeta {
                    config: config.clone(),
                    created: types::rfc3339(Some(created)),
                };
                write_meta(&dir, &meta).map_err(errors::stream_create)?;
                let store = FileStore::open(
                    &dir.join("msgs"),
                    stream::limits(&config),
                    FileStoreConfig::default(),
                )
                .map_err(errors::stream_create)?;
                (Box::new(store), Some(dir))
            }
        };
        Ok(Stream::new(config, store, created, dir, self, self.sync))
    }

    /// Open (or create) this server's replica of a replicated stream: its
    /// store and configuration on disk, registered in the account, but not
    /// taking messages: its Raft group's leader does
    /// ([`cluster::stream_group`]).
    pub(crate) fn open_replica(
        self: &Arc<Self>,
        server: &Arc<Server>,
        config: StreamConfig,
        created: SystemTime,
    ) -> Result<Arc<Stream>> {
        if let Some(s) = self.stream(&config.name) {
            return Ok(s);
        }
        let (store, dir): (Box<dyn MsgStore>, Option<PathBuf>) = match config.storage {
            Storage::Memory => (Box::new(MemStore::new(stream::limits(&config))), None),
            Storage::File => {
                let dir = self.streams_dir().join(&config.name);
                let meta = StreamMeta {
                    config: config.clone(),
                    created: types::rfc3339(Some(created)),
                };
                write_meta(&dir, &meta).map_err(|e| anyhow::anyhow!("writing meta.json: {e}"))?;
                let store = FileStore::open(
                    &dir.join("msgs"),
                    stream::limits(&config),
                    FileStoreConfig::default(),
                )
                .context("opening the message store")?;
                (Box::new(store), Some(dir))
            }
        };
        let stream = Stream::new(config, store, created, dir.clone(), self, self.sync);
        // A follower until its Raft group makes it the leader; it expires
        // only as its group's log says.
        stream.set_passive(true);
        stream.set_replicated();
        // Durable consumers kept on disk: the Raft log is replayed only
        // from the last checkpoint, so those created before it come back
        // from their files (with their saved state, which the replay then
        // brings up to date).
        if let Some(Ok(obs)) = dir.map(|d| std::fs::read_dir(d.join("obs"))) {
            for o in obs.flatten() {
                if let Err(err) = self.recover_consumer(&stream, &o.path()) {
                    warn!(
                        "JetStream could not restore consumer from {}: {err:#}",
                        o.path().display()
                    );
                }
            }
        }
        for c in stream.consumers.read().values() {
            c.spawn(server);
        }
        stream.start_expiry();
        self.streams
            .write()
            .insert(stream.name.clone(), stream.clone());
        Ok(stream)
    }

    /// Where a replicated stream's Raft log and checkpoint live (also for
    /// memory streams, whose log is what survives a restart).
    pub(crate) fn raft_dir(&self, stream: &str) -> PathBuf {
        self.streams_dir().join(stream).join("raft")
    }

    /// Forget a replica: stop it and remove its files, Raft's included.
    /// The directory is first renamed away, so a late write of the stopped
    /// replica (its state machine's last checkpoint) cannot leave a file
    /// where a later replica of the same stream would find it.
    pub(crate) fn drop_replica(&self, server: &Server, name: &str) {
        if let Some(stream) = self.streams.write().remove(name) {
            stream.stop(server);
        }
        let dir = self.streams_dir().join(name);
        let doomed = self.streams_dir().join(format!(
            ".{name}{REMOVED_MARK}{:016x}",
            rand::random::<u64>()
        ));
        let gone = match std::fs::rename(&dir, &doomed) {
            Ok(()) => doomed,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                warn!("JetStream: renaming {}: {e}", dir.display());
                dir
            }
        };
        if let Err(e) = std::fs::remove_dir_all(&gone) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!("JetStream: removing {}: {e}", gone.display());
            }
        }
    }

    /// Apply a new configuration to an existing stream.
    pub(crate) fn update_stream(
        &self,
        server: &Arc<Server>,
        stream: &Arc<Stream>,
        config: StreamConfig,
    ) -> Result<(), ApiError> {
        self.apply_config(server, stream, config, true)
    }

    /// A replica's new configuration; only the leader takes the subjects.
    pub(crate) fn reconfigure_replica(
        &self,
        server: &Arc<Server>,
        stream: &Arc<Stream>,
        config: StreamConfig,
        leading: bool,
    ) -> Result<(), ApiError> {
        self.apply_config(server, stream, config, leading)
    }

    fn apply_config(
        &self,
        server: &Arc<Server>,
        stream: &Arc<Stream>,
        config: StreamConfig,
        subscribed: bool,
    ) -> Result<(), ApiError> {
        if let Some(dir) = &stream.dir {
            let meta = StreamMeta {
                config: config.clone(),
                created: types::rfc3339(Some(stream.created)),
            };
            write_meta(dir, &meta).map_err(errors::stream_update)?;
        }
        let subjects_changed;
        let feeds_changed;
        let removed = {
            let mut inner = stream.inner.lock();
            subjects_changed = inner.config.subjects != config.subjects;
            feeds_changed =
                inner.config.mirror != config.mirror || inner.config.sources != config.sources;
            inner
                .store
                .update_limits(stream::limits(&config))
                .map_err(errors::stream_update)?;
            inner.set_config(config);
            inner.store.take_removed()
        };
        stream.forget(&removed);
        if subjects_changed && subscribed {
            stream.subscribe(server)?;
        }
        if feeds_changed && subscribed {
            stream.start_feeds(server);
        }
        Ok(())
    }

    pub(crate) fn delete_stream(&self, server: &Server, name: &str) -> Result<(), ApiError> {
        let Some(stream) = self.streams.write().remove(name) else {
            return Err(errors::stream_not_found());
        };
        stream.stop(server);
        // The writer thread ends when its channel closes; the store goes
        // with the last reference. Remove the files now.
        if let Some(dir) = &stream.dir {
            if let Err(e) = std::fs::remove_dir_all(dir) {
                warn!("JetStream: removing {}: {e}", dir.display());
            }
        }
        Ok(())
    }

    /// Save a consumer's configuration next to its state, for restarts.
    /// Only durable consumers of file streams are kept on disk; returns the
    /// consumer's directory when it is.
    fn write_consumer_meta(
        stream: &Stream,
        name: &str,
        config: &ConsumerConfig,
        created: SystemTime,
    ) -> Result<Option<PathBuf>, ApiError> {
        let Some(dir) = &stream.dir else {
            return Ok(None);
        };
        if config.durable_name.is_none() || config.mem_storage {
            return Ok(None);
        }
        let cdir = dir.join("obs").join(name);
        let meta = ConsumerMeta {
            name: name.to_string(),
            config: config.clone(),
            created: types::rfc3339(Some(created)),
        };
        write_meta(&cdir, &meta).map_err(errors::consumer_create)?;
        Ok(Some(cdir))
    }

    /// Save an updated consumer configuration next to its state.
    pub(crate) fn save_consumer_meta(&self, stream: &Stream, c: &Consumer) -> Result<(), ApiError> {
        Self::write_consumer_meta(stream, &c.name, &c.config(), c.created).map(|_| ())
    }

    /// Add a consumer to `stream` (validated already).
    pub(crate) fn create_consumer(
        self: &Arc<Self>,
        server: &Arc<Server>,
        stream: &Arc<Stream>,
        name: String,
        config: ConsumerConfig,
    ) -> Result<Arc<Consumer>, ApiError> {
        let created = SystemTime::now();
        let state_file = match Self::write_consumer_meta(stream, &name, &config, created)? {
            Some(cdir) => Some(ConsumerStateFile::open(&cdir).map_err(errors::consumer_create)?),
            None => None,
        };
        let c = Consumer::new(
            name.clone(),
            config,
            stream,
            self,
            created,
            None,
            state_file,
        );
        stream.consumers.write().insert(name, c.clone());
        c.spawn(server);
        Ok(c)
    }

    pub(crate) fn delete_consumer(&self, server: &Server, stream: &str, name: &str) -> bool {
        let Some(s) = self.stream(stream) else {
            return false;
        };
        let Some(c) = s.consumers.write().remove(name) else {
            return false;
        };
        c.close_requests(server);
        c.stop();
        c.delete_files();
        true
    }
}

/// Write `meta.json` into `dir` durably (temp file, fsync, rename).
fn write_meta<T: Serialize>(dir: &Path, meta: &T) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let body = serde_json::to_vec_pretty(meta).map_err(|e| e.to_string())?;
    let tmp = dir.join("meta.json.tmp");
    let path = dir.join("meta.json");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::size_text;

    #[test]
    fn sizes_read_like_nats_server() {
        assert_eq!(size_text(Some(512)), "512 B");
        assert_eq!(size_text(Some(1024)), "1.00 KB");
        assert_eq!(size_text(Some(256 * 1024 * 1024)), "256.00 MB");
        assert_eq!(size_text(Some(2 * 1024 * 1024 * 1024)), "2.00 GB");
        assert_eq!(size_text(None), "unlimited");
    }
}
