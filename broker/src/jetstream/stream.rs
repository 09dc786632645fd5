//! A stream: its configuration, its message store, and the writer that
//! turns published messages into stored ones.
//!
//! Messages on the stream's subjects reach it through an internal
//! subscription and a channel. One writer thread per stream drains the
//! channel in batches: it checks each message (dedup, `Nats-Expected-*`,
//! limits), appends the batch, fsyncs once (group commit) and only then
//! sends the publish acks. So an acknowledged message is on disk, and a
//! burst of publishes costs one fsync, not one each.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use super::consumer::Consumer;
use super::errors::{self, ApiError};
use super::headers;
use super::ingest::{At, Ingest, IngestHandler};
use super::limits::StoreBudget;
use super::republish::{Outgoing, Republisher};
use super::sourcing::feed::{self, Feed};
use super::sourcing::{FeedSink, FeedState, SourceInfo, STREAM_SOURCE};
use super::store::{MsgStore, StoreError, StoreLimits};
use super::subject_transform;
use super::transform::SubjectTransform;
use super::ttl::{self, Ttl, TtlIndex};
use super::types::{self, Discard, Retention, StreamConfig, DEFAULT_DUPLICATE_WINDOW};
use super::JsAccount;
use crate::internal::{InternalClient, OwnedMsg};
use crate::options::SyncPolicy;
use crate::server::Server;

/// How many queued publishes one writer pass takes (one fsync each pass).
const WRITE_BATCH: usize = 1024;
/// How long the leader of a replicated stream waits for an expiry it
/// asked its group to log before it asks again (nanoseconds).
const EXPIRY_ASK_AGAIN: i64 = 1_000_000_000;

pub(crate) fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The publish ack, byte for byte as nats-server writes it (including the
/// space in `"duplicate": true`).
pub fn pub_ack(stream: &str, seq: u64, duplicate: bool) -> Vec<u8> {
    let name = serde_json::to_string(stream).unwrap_or_default();
    if duplicate {
        format!("{{\"stream\":{name},\"seq\":{seq},\"duplicate\": true}}").into_bytes()
    } else {
        format!("{{\"stream\":{name},\"seq\":{seq}}}").into_bytes()
    }
}

/// A refused publish: the error, then the stream and a zero sequence.
pub fn pub_error(stream: &str, e: &ApiError) -> Vec<u8> {
    let err = serde_json::to_string(e).unwrap_or_default();
    let name = serde_json::to_string(stream).unwrap_or_default();
    format!("{{\"error\":{err},\"stream\":{name},\"seq\":0}}").into_bytes()
}

/// A published message as the stream checks and stores it: borrowed from
/// a client's message or from a replicated Raft entry.
pub(crate) struct Published<'a> {
    pub subject: &'a str,
    pub headers: &'a [u8],
    pub payload: &'a [u8],
    /// A mirror's message: stored at its origin's sequence and time.
    pub at: Option<At>,
}

impl<'a> Published<'a> {
    pub fn of(m: &'a Ingest) -> Self {
        Published {
            subject: &m.msg.subject,
            headers: &m.msg.headers,
            payload: &m.msg.payload,
            at: m.at,
        }
    }
}

pub(crate) struct StreamInner {
    pub config: StreamConfig,
    pub store: Box<dyn MsgStore>,
    /// The parsed `republish` of `config`, kept in step with it.
    republish: Option<Republisher>,
    /// The parsed `subject_transform` of `config`, kept in step with it.
    input_transform: Option<SubjectTransform>,
    /// `Nats-Msg-Id` -> sequence, within the duplicate window. The id is
    /// shared with `dedup_order`: one allocation per stored message.
    dedup: HashMap<Arc<str>, u64, ahash::RandomState>,
    dedup_order: VecDeque<(i64, Arc<str>)>,
    last_msg_id: String,
    /// When messages with a `Nats-TTL` expire (`allow_msg_ttl` streams).
    ttls: TtlIndex,
    /// Markers this leader asked for and when (sequence of the message
    /// they replace): not asked again while the first is on its way.
    markers_sent: HashMap<u64, i64>,
    /// What this write batch may still store under the account's and the
    /// server's storage limits (None: unlimited, or a replicated apply,
    /// which the leader checked).
    budget: Option<StoreBudget>,
}

impl StreamInner {
    /// Replace the configuration (and what is parsed from it).
    pub(crate) fn set_config(&mut self, config: StreamConfig) {
        self.republish = Republisher::from_config(config.republish.as_ref());
        self.input_transform = subject_transform::compile(config.subject_transform.as_ref());
        let ttls_on = config.allow_msg_ttl && !self.config.allow_msg_ttl;
        self.config = config;
        if ttls_on {
            self.rebuild_ttls();
        }
    }

    /// Index the TTL of every stored message (on open, or when a stream
    /// update turns TTLs on). Reads every message's headers once.
    fn rebuild_ttls(&mut self) {
        self.ttls.clear();
        if !self.config.allow_msg_ttl {
            return;
        }
        let mut seq = self.store.state().first_seq;
        while let Ok(Some(m)) = self.store.load_next("", seq) {
            seq = m.seq + 1;
            if let Some(Ttl::Secs(secs)) = ttl::of(&m.headers) {
                self.ttls.track(m.seq, m.ts, secs);
            }
        }
    }

    /// `max_msg_size`, and the server's storage limit when budgeted: the
    /// checks every message meets before anything else is looked at.
    fn check_fits(&self, hdr: &[u8], payload: &[u8]) -> Result<(), ApiError> {
        let max = self.config.max_msg_size;
        if max > 0 && hdr.len() + payload.len() > max as usize {
            return Err(errors::msg_too_large());
        }
        match &self.budget {
            Some(b) => b.check_server(),
            None => Ok(()),
        }
    }

    /// What the message costs under the account's storage limit, refused
    /// if it does not fit (0 when this write is not budgeted).
    fn check_budget(&self, subject: &str, hdr: &[u8], payload: &[u8]) -> Result<i64, ApiError> {
        match &self.budget {
            Some(b) => {
                let size = b.size(subject, hdr, payload);
                b.check_account(size)?;
                Ok(size)
            }
            None => Ok(0),
        }
    }

    /// Store a checked message at `ts`, the store's refusals as publish
    /// errors, and spend its `size` from the budget.
    fn store(
        &mut self,
        subject: &str,
        hdr: &[u8],
        payload: &[u8],
        ts: i64,
        size: i64,
    ) -> Result<u64, ApiError> {
        let seq = self
            .store
            .store_msg(subject, hdr, payload, ts)
            .map_err(|e| match e {
                StoreError::MsgTooLarge { .. } => errors::msg_too_large(),
                other => errors::store_failed(other),
            })?;
        if let Some(b) = self.budget.as_mut() {
            b.spend(size);
        }
        Ok(seq)
    }

    /// Note a stored message's `Nats-Msg-Id` for the duplicate window.
    /// Nats-Expected-Last-Msg-Id compares with the newest message's id,
    /// which is empty when that message had none.
    fn remember(&mut self, msg_id: Option<&str>, seq: u64, ts: i64) {
        self.last_msg_id.clear();
        if let Some(id) = msg_id {
            self.last_msg_id.push_str(id);
            let id: Arc<str> = Arc::from(id);
            self.dedup.insert(id.clone(), seq);
            self.dedup_order.push_back((ts, id));
        }
    }
}

pub struct Stream {
    pub name: String,
    pub created: SystemTime,
    pub(crate) inner: Mutex<StreamInner>,
    pub(crate) consumers: RwLock<BTreeMap<String, Arc<Consumer>>>,
    /// Where the stream keeps its files (None for memory streams).
    pub dir: Option<PathBuf>,
    pub(crate) account: Weak<JsAccount>,
    /// The subscriptions that capture the stream's subjects.
    client: Mutex<Option<InternalClient>>,
    /// Feeds the writer thread (taken on stop).
    ingest: Mutex<Option<mpsc::UnboundedSender<Ingest>>>,
    /// The feeds of its mirror or sources, while this replica leads.
    feeds: Mutex<Vec<Feed>>,
    sync: SyncPolicy,
    /// Set by [`Stream::stop`]: timers end.
    stopped: std::sync::atomic::AtomicBool,
    /// A replica that does not lead: its consumers deliver nothing.
    passive: std::sync::atomic::AtomicBool,
    /// A replica of a replicated stream: it expires only at the times its
    /// Raft log gives (see [`Stream::expire_replica`]), never by its own
    /// clock, so every replica holds the same messages when it checks a
    /// conditional publish.
    replicated: std::sync::atomic::AtomicBool,
    /// While this replica leads a replicated stream: asks its Raft group to
    /// log an expiry (an entry of no messages at the leader's time).
    expiry: Mutex<Option<mpsc::UnboundedSender<()>>>,
    /// When the leader last asked for an expiry not yet applied (unix
    /// nanos, 0: none), so a slow commit is not asked for again each tick.
    expiry_asked: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("name", &self.name).finish()
    }
}

/// How long `Nats-Msg-Id`s are remembered (nanoseconds; 0: not at all).
/// A mirror or a stream with sources keeps no window unless given one; a
/// configuration written before the default was filled in gets it.
fn dedup_window(cfg: &StreamConfig) -> i64 {
    match cfg.duplicate_window {
        0 if cfg.mirror.is_some() || !cfg.sources.is_empty() => 0,
        0 => types::nanos(DEFAULT_DUPLICATE_WINDOW),
        w => w,
    }
}

/// What the store enforces, from the stream's configuration.
/// A stream with `allow_msg_ttl` expires by age itself (see [`ttl`]):
/// messages marked "never" outlive `max_age`, and a subject's last one may
/// leave a marker, which only this layer can tell.
pub(crate) fn limits(cfg: &StreamConfig) -> StoreLimits {
    StoreLimits {
        max_msgs: cfg.max_msgs,
        max_bytes: cfg.max_bytes,
        max_age: if cfg.allow_msg_ttl {
            Duration::ZERO
        } else {
            types::duration(cfg.max_age)
        },
        max_msgs_per_subject: cfg.max_msgs_per_subject,
        max_msg_size: cfg.max_msg_size,
    }
}

impl Stream {
    pub(crate) fn new(
        config: StreamConfig,
        store: Box<dyn MsgStore>,
        created: SystemTime,
        dir: Option<PathBuf>,
        account: &Arc<JsAccount>,
        sync: SyncPolicy,
    ) -> Arc<Stream> {
        let mut store = store;
        // `first_seq`: a stream that has never stored anything starts its
        // sequences there, as in nats-server.
        let first_seq = config
            .extra
            .get("first_seq")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if first_seq > 1 && store.state().last_seq == 0 {
            if let Err(e) = store.skip_to(first_seq - 1) {
                error!(
                    "JetStream stream {:?}: starting at sequence {first_seq}: {e}",
                    config.name
                );
            }
        }
        Arc::new(Stream {
            name: config.name.clone(),
            created,
            inner: Mutex::new(StreamInner {
                republish: Republisher::from_config(config.republish.as_ref()),
                input_transform: subject_transform::compile(config.subject_transform.as_ref()),
                config,
                store,
                dedup: HashMap::default(),
                dedup_order: VecDeque::new(),
                last_msg_id: String::new(),
                ttls: TtlIndex::default(),
                markers_sent: HashMap::new(),
                budget: None,
            }),
            consumers: RwLock::new(BTreeMap::new()),
            dir,
            account: Arc::downgrade(account),
            client: Mutex::new(None),
            ingest: Mutex::new(None),
            feeds: Mutex::new(Vec::new()),
            sync,
            stopped: Default::default(),
            passive: Default::default(),
            replicated: Default::default(),
            expiry: Mutex::new(None),
            expiry_asked: Default::default(),
        })
    }

    /// After a restart (or a snapshot installed): rebuild what the stream
    /// keeps in memory about its messages: the expiry times of messages
    /// with a TTL, and the duplicate window (and the last message id) from
    /// the messages stored within it, as nats-server does.
    ///
    /// The window is measured back from the newest stored message, not
    /// from the clock: a replica replaying its Raft log checks each entry
    /// at the leader's time of that entry, and must still know every id
    /// the leader knew then. Ids older than that are trimmed by the next
    /// publish, whose time is later.
    pub(crate) fn rebuild_indexes(&self) {
        let mut inner = self.inner.lock();
        inner.rebuild_ttls();
        let window = dedup_window(&inner.config);
        let state = inner.store.state();
        if state.msgs == 0 || window == 0 {
            return;
        }
        let mut seq = inner
            .store
            .seq_for_time(state.last_ts.saturating_sub(window));
        let mut found = Vec::new();
        while let Ok(Some(m)) = inner.store.load_next("", seq) {
            seq = m.seq + 1;
            let id = headers::get(&m.headers, headers::MSG_ID)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            found.push((m.ts, m.seq, id));
        }
        for (ts, seq, id) in found {
            inner.remember(id.as_deref(), seq, ts);
        }
    }

    pub fn config(&self) -> StreamConfig {
        self.inner.lock().config.clone()
    }

    /// Subscribe to the stream's subjects and start its writer thread and
    /// its expiry timer.
    pub(crate) fn start(self: &Arc<Self>, server: &Arc<Server>) -> Result<(), ApiError> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.ingest.lock() = Some(tx);
        self.subscribe(server)?;
        let me = self.clone();
        let srv = Arc::downgrade(server);
        std::thread::Builder::new()
            .name(format!("js-{}", self.name))
            .spawn(move || me.write_loop(rx, srv))
            .map_err(|e| errors::stream_create(format!("starting the writer: {e}")))?;
        self.start_expiry();
        self.start_feeds(server);
        Ok(())
    }

    /// (Re)subscribe to the configured subjects, feeding the writer.
    pub(crate) fn subscribe(&self, server: &Server) -> Result<(), ApiError> {
        let (Some(acc), Some(tx)) = (self.account.upgrade(), self.ingest.lock().clone()) else {
            return Err(errors::stream_create("stream is stopped"));
        };
        self.unsubscribe(server);
        let client = InternalClient::new(
            server,
            acc.client.account().clone(),
            Arc::new(IngestHandler(tx)),
        );
        for subject in &self.inner.lock().config.subjects {
            client
                .subscribe(server, subject, None)
                .map_err(|e| errors::stream_create(format!("subscribing to {subject}: {e}")))?;
        }
        *self.client.lock() = Some(client);
        Ok(())
    }

    /// Stop capturing the stream's subjects, here and across the cluster.
    fn unsubscribe(&self, server: &Server) {
        if let Some(client) = self.client.lock().take() {
            client.close(server);
        }
    }

    /// Stop capturing messages and stop the consumers (stream delete or
    /// shutdown). The writer ends once its queue is drained.
    pub(crate) fn stop(&self, server: &Server) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.unsubscribe(server);
        self.feeds.lock().clear();
        self.ingest.lock().take();
        self.expiry.lock().take();
        for c in self.consumers.read().values() {
            c.stop();
        }
    }

    /// Drop what is past `max_age` (and past its TTL) at `now`.
    fn expire_at(&self, now: i64) {
        if self.inner.lock().config.allow_msg_ttl {
            self.expire_ttls(now);
            return;
        }
        let removed = {
            let mut inner = self.inner.lock();
            if inner.config.max_age <= 0 {
                return;
            }
            if let Err(e) = inner.store.expire(now) {
                warn!("JetStream stream {:?}: expiring messages: {e}", self.name);
            }
            inner.store.take_removed()
        };
        self.forget(&removed);
    }

    /// Whether expiring at `now` would remove (or mark) anything: the
    /// oldest message is past `max_age`, or a TTL is due. Cheap enough to
    /// ask before every replicated batch.
    fn expiry_due(&self, now: i64) -> bool {
        let inner = self.inner.lock();
        let cfg = &inner.config;
        if cfg.allow_msg_ttl && inner.ttls.next_due().is_some_and(|at| at <= now) {
            return true;
        }
        if cfg.max_age <= 0 {
            return false;
        }
        let state = inner.store.state();
        state.msgs > 0 && state.first_ts <= now.saturating_sub(cfg.max_age)
    }

    /// Expiry on a replica of a replicated stream, at `ts`, the leader's
    /// time of the entry being applied: every replica applies the same
    /// entries in the same order, so each removes the same messages
    /// before it checks the entry's publishes. Published batches carry
    /// the time; the leader logs an empty batch when something is due
    /// and nothing is published ([`Stream::start_expiry`]).
    pub(crate) fn expire_replica(&self, ts: i64) {
        if self.expiry_due(ts) {
            self.expire_at(ts);
        }
        self.expiry_asked
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Mark this stream as one replica of a replicated stream.
    pub(crate) fn set_replicated(&self) {
        self.replicated
            .store(true, std::sync::atomic::Ordering::Release);
    }

    fn is_replicated(&self) -> bool {
        self.replicated.load(std::sync::atomic::Ordering::Acquire)
    }

    /// One expiry tick: a stream of this server's own expires now; the
    /// leader of a replicated one asks its group to log an expiry when
    /// something is due (again after [`EXPIRY_ASK_AGAIN`] if it has not
    /// been applied); a follower waits for the log.
    fn expiry_tick(&self) {
        let now = now_nanos();
        if !self.is_replicated() {
            self.expire_at(now);
            return;
        }
        if self.is_passive() || !self.expiry_due(now) {
            return;
        }
        let asked = self.expiry_asked.load(std::sync::atomic::Ordering::Relaxed);
        if asked != 0 && now.saturating_sub(asked) < EXPIRY_ASK_AGAIN {
            return;
        }
        if let Some(tx) = self.expiry.lock().as_ref() {
            if tx.send(()).is_ok() {
                self.expiry_asked
                    .store(now, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Expiry of an `allow_msg_ttl` stream: messages past `max_age`
    /// (unless their TTL says "never") and messages past their own TTL go.
    /// With `subject_delete_marker_ttl`, a subject's last message is not
    /// removed but replaced: the leader stores a marker that rolls the
    /// subject up (every replica applies it at the same sequence), and a
    /// follower leaves the message for that marker.
    fn expire_ttls(&self, now: i64) {
        const MARKER_RETRY: i64 = 2_000_000_000;
        // Taken before the stream lock (lock order), and only by the
        // replica that leads: its write path accepts the markers.
        let tx = if self.is_passive() {
            None
        } else {
            self.ingest.lock().clone()
        };
        let mut removed: Vec<std::ops::RangeInclusive<u64>> = Vec::new();
        let mut markers: Vec<Ingest> = Vec::new();
        {
            let mut inner = self.inner.lock();
            let inner = &mut *inner;
            let mut due: Vec<u64> = inner.ttls.take_due(now);
            if inner.config.max_age > 0 {
                let oldest = now.saturating_sub(inner.config.max_age);
                let mut seq = inner.store.state().first_seq;
                while let Ok(Some(m)) = inner.store.load_next("", seq) {
                    if m.ts > oldest {
                        break;
                    }
                    seq = m.seq + 1;
                    if ttl::of(&m.headers) != Some(Ttl::Never) {
                        due.push(m.seq);
                    }
                }
            }
            due.sort_unstable();
            due.dedup();
            let sdm_secs = inner.config.subject_delete_marker_ttl / 1_000_000_000;
            inner
                .markers_sent
                .retain(|_, at| now.saturating_sub(*at) < MARKER_RETRY);
            for seq in due {
                let Ok(Some(m)) = inner.store.load(seq) else {
                    continue;
                };
                let last = sdm_secs > 0
                    && !ttl::is_marker(&m.headers)
                    && inner.store.last_seq_for_subject(&m.subject) == seq;
                if !last {
                    if matches!(inner.store.remove(seq), Ok(true)) {
                        removed.push(seq..=seq);
                    }
                    continue;
                }
                // Looked at again until the marker has rolled it up.
                inner.ttls.retry(seq, now.saturating_add(MARKER_RETRY));
                if tx.is_some() && !inner.markers_sent.contains_key(&seq) {
                    inner.markers_sent.insert(seq, now);
                    markers.push(Ingest::published(OwnedMsg {
                        subject: m.subject.clone(),
                        reply: None,
                        headers: ttl::marker_headers(sdm_secs).into(),
                        payload: bytes::Bytes::new(),
                    }));
                }
            }
            removed.extend(inner.store.take_removed());
        }
        self.forget(&removed);
        if let Some(tx) = tx {
            for m in markers {
                let _ = tx.send(m);
            }
        }
    }

    /// Tell consumers that these sequences are gone.
    pub(crate) fn forget(&self, removed: &[std::ops::RangeInclusive<u64>]) {
        if removed.is_empty() {
            return;
        }
        for c in self.consumers.read().values() {
            c.forget(removed);
        }
    }

    fn write_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Ingest>, server: Weak<Server>) {
        let mut batch = Vec::with_capacity(64);
        let mut results: Vec<Result<(u64, bool), ApiError>> = Vec::with_capacity(64);
        let mut outgoing: Vec<Outgoing> = Vec::new();
        let mut last_sync = std::time::Instant::now();
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < WRITE_BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            // Measured before the lock: it reads every stream's usage.
            let budget = self.budget(&server);
            let (removed, no_ack, stored) = {
                let mut inner = self.inner.lock();
                inner.budget = budget;
                let mut stored = 0;
                let now = now_nanos();
                // A stream of this server's own: it is its own leader.
                for m in &batch {
                    let r = self.process(&mut inner, &Published::of(m), now, Some(&mut outgoing));
                    if matches!(r, Ok((_, false))) {
                        stored += 1;
                    }
                    results.push(r);
                }
                let must_sync = match self.sync {
                    SyncPolicy::Always => true,
                    SyncPolicy::Interval(d) => last_sync.elapsed() >= d,
                };
                if stored > 0 && must_sync {
                    last_sync = std::time::Instant::now();
                    if let Err(e) = inner.store.sync() {
                        error!("JetStream stream {:?}: sync failed: {e}", self.name);
                        let err = errors::store_failed(e);
                        for r in results.iter_mut() {
                            if r.is_ok() {
                                *r = Err(err.clone());
                            }
                        }
                    }
                }
                inner.budget = None;
                (inner.store.take_removed(), inner.config.no_ack, stored)
            };
            self.forget(&removed);
            if let Some(server) = server.upgrade() {
                // Republished before the acks, as nats-server does.
                self.republish(&server, &mut outgoing);
                self.send_acks(
                    &server,
                    batch.iter().map(|m| m.msg.reply.as_deref()),
                    &results,
                    no_ack,
                );
            }
            if stored > 0 {
                self.after_store();
            }
            batch.clear();
            results.clear();
        }
        debug!("JetStream stream {:?}: writer stopped", self.name);
    }

    /// The storage budget of this stream's account (and server) now.
    fn budget(&self, server: &Weak<Server>) -> Option<StoreBudget> {
        let server = server.upgrade()?;
        let acc = self.account.upgrade()?;
        let storage = self.inner.lock().config.storage;
        super::limits::budget(server.jetstream().map(|j| &**j), &acc, storage)
    }

    /// Apply a replicated batch of publishes (a committed Raft entry) at
    /// the leader's time `ts`: the same checks and the same store as a
    /// stream of this server's own, without the fsync (the Raft log holds
    /// the batch durably) and without acks (the leader sends them).
    ///
    /// Only the leader (the replica that is not passive) republishes, as in
    /// nats-server: each stored message is republished once, by whichever
    /// server led when it was applied.
    pub(crate) fn apply_published(
        &self,
        server: Option<&Server>,
        msgs: &[Published<'_>],
        ts: i64,
        results: &mut Vec<Result<(u64, bool), ApiError>>,
    ) {
        let mut outgoing = Vec::new();
        let lead = server.is_some() && !self.is_passive();
        let (removed, stored) = {
            let mut inner = self.inner.lock();
            let mut stored = 0;
            for m in msgs {
                let r = self.process(&mut inner, m, ts, lead.then_some(&mut outgoing));
                if matches!(r, Ok((_, false))) {
                    stored += 1;
                }
                results.push(r);
            }
            (inner.store.take_removed(), stored)
        };
        self.forget(&removed);
        if let Some(server) = server {
            self.republish(server, &mut outgoing);
        }
        if stored > 0 {
            self.after_store();
        }
    }

    /// Publish what [`Stream::process`] prepared for `republish` (outside
    /// the stream's lock: a destination may feed another stream).
    fn republish(&self, server: &Server, outgoing: &mut Vec<Outgoing>) {
        if outgoing.is_empty() {
            return;
        }
        let Some(acc) = self.account.upgrade() else {
            outgoing.clear();
            return;
        };
        for m in outgoing.drain(..) {
            acc.client
                .publish(server, &m.subject, None, &m.headers, &m.payload);
        }
    }

    /// Start taking the stream's messages on this server (its replica
    /// became the leader): subscribe to the subjects, feeding `tx`, and
    /// let the consumers deliver.
    pub(crate) fn lead(
        self: &Arc<Self>,
        server: &Arc<Server>,
        tx: mpsc::UnboundedSender<Ingest>,
        expiry: mpsc::UnboundedSender<()>,
    ) -> Result<(), ApiError> {
        *self.ingest.lock() = Some(tx);
        *self.expiry.lock() = Some(expiry);
        self.expiry_asked
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.subscribe(server)?;
        self.set_passive(false);
        self.start_feeds(server);
        Ok(())
    }

    /// (Re)start the feeds of the stream's mirror or sources (on the
    /// replica that leads; a configuration change restarts them).
    pub(crate) fn start_feeds(self: &Arc<Self>, server: &Arc<Server>) {
        let cfg = self.config();
        let mut feeds = self.feeds.lock();
        feeds.clear();
        let sink: Arc<dyn FeedSink> = self.clone();
        let sink = Arc::downgrade(&sink);
        let wanted = cfg
            .mirror
            .iter()
            .map(|m| (m, true))
            .chain(cfg.sources.iter().map(|s| (s, false)));
        for (src, mirror) in wanted {
            let state = Arc::new(FeedState::new(src.clone(), mirror));
            feeds.push(feed::spawn(Arc::downgrade(server), sink.clone(), state));
        }
    }

    /// How many consumers the stream shows: all but the direct ones that
    /// feed mirrors and sources elsewhere.
    pub(crate) fn public_consumers(&self) -> usize {
        self.consumers
            .read()
            .values()
            .filter(|c| !c.is_direct())
            .count()
    }

    /// `STREAM.INFO`'s `mirror` and `sources`, from the running feeds.
    pub(crate) fn feed_info(&self) -> (Option<SourceInfo>, Vec<SourceInfo>) {
        let feeds = self.feeds.lock();
        let mirror = feeds
            .iter()
            .find(|f| f.state.mirror)
            .map(|f| f.state.info());
        let sources = feeds
            .iter()
            .filter(|f| !f.state.mirror)
            .map(|f| f.state.info())
            .collect();
        (mirror, sources)
    }

    /// Stop taking messages here (leadership moved away, or a replica
    /// starting as a follower): consumers keep state, deliver nothing.
    pub(crate) fn follow(&self, server: &Server) {
        self.set_passive(true);
        self.unsubscribe(server);
        self.feeds.lock().clear();
        self.ingest.lock().take();
        self.expiry.lock().take();
    }

    pub(crate) fn is_passive(&self) -> bool {
        self.passive.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn set_passive(&self, passive: bool) {
        self.passive
            .store(passive, std::sync::atomic::Ordering::Release);
        for c in self.consumers.read().values() {
            c.set_passive(passive);
        }
    }

    /// Expire old messages (`max_age`, TTLs) every 250 ms until the stream
    /// is stopped ([`Stream::expiry_tick`]).
    pub(crate) fn start_expiry(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(s) = me.upgrade() else { return };
                if s.stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                s.expiry_tick();
            }
        });
    }

    /// Answer each publish on its reply subject (`replies`, in the order
    /// of `results`).
    pub(crate) fn send_acks<'a>(
        &self,
        server: &Server,
        replies: impl Iterator<Item = Option<&'a str>>,
        results: &[Result<(u64, bool), ApiError>],
        no_ack: bool,
    ) {
        let Some(acc) = self.account.upgrade() else {
            return;
        };
        for (reply, r) in replies.zip(results) {
            let Some(reply) = reply else {
                continue;
            };
            let body = match r {
                Ok(_) if no_ack && !reply.starts_with(super::sourcing::FEED_ACK_PREFIX) => continue,
                Ok((seq, duplicate)) => pub_ack(&self.name, *seq, *duplicate),
                Err(e) => pub_error(&self.name, e),
            };
            acc.client.publish(server, reply, None, b"", &body);
        }
    }

    /// Consumers learn of new messages; interest streams with no one
    /// interested drop them.
    pub(crate) fn after_store(&self) {
        let consumers: Vec<Arc<Consumer>> = self.consumers.read().values().cloned().collect();
        for c in &consumers {
            c.wake();
        }
    }

    /// Check and store one published message: `Ok((seq, duplicate))`.
    /// `now` is the message's timestamp: this server's clock for a stream
    /// of its own, the leader's (from the Raft entry) for a replicated one,
    /// so every replica decides and stores alike. `republish` collects the
    /// message to republish, if the stream does and this server leads.
    fn process(
        &self,
        inner: &mut StreamInner,
        m: &Published<'_>,
        now: i64,
        republish: Option<&mut Vec<Outgoing>>,
    ) -> Result<(u64, bool), ApiError> {
        // The stream's subject transform applies first: every check and
        // the store see the transformed subject (unmatched ones keep theirs).
        let transformed = inner
            .input_transform
            .as_ref()
            .and_then(|t| t.apply(m.subject));
        let subject = transformed.as_deref().unwrap_or(m.subject);
        if inner.config.sealed {
            return Err(errors::sealed());
        }
        if let Some(at) = m.at {
            return self.process_mirrored(inner, subject, m, at);
        }
        let hdr = m.headers;
        if hdr.len() > 64 * 1024 {
            return Err(errors::header_too_large());
        }
        inner.check_fits(hdr, m.payload)?;
        let cfg = &inner.config;
        let window = dedup_window(cfg);
        while let Some((ts, _)) = inner.dedup_order.front() {
            if *ts + window >= now {
                break;
            }
            if let Some((_, id)) = inner.dedup_order.pop_front() {
                inner.dedup.remove(&*id);
            }
        }
        let h = headers::PublishHeaders::parse(hdr);
        if let Some(s) = h.expected_stream {
            if s != self.name {
                return Err(errors::stream_not_match());
            }
        }
        // A TTL on a stream that does not allow them is refused outright;
        // whether it is valid is checked after the other expectations.
        let ttl = h.ttl.map(ttl::parse);
        if matches!(ttl, Some(Ok(Some(_)))) && !cfg.allow_msg_ttl {
            return Err(errors::msg_ttl_disabled());
        }
        let msg_id = h.msg_id.filter(|s| !s.is_empty() && window > 0);
        if let Some(id) = msg_id {
            if let Some(seq) = inner.dedup.get(id) {
                return Ok((*seq, true));
            }
        }
        if let Some(v) = h.expected_last_seq {
            let last = inner.store.state().last_seq;
            match v.parse::<u64>() {
                Ok(want) if want == last => {}
                Ok(_) => return Err(errors::wrong_last_sequence(last)),
                Err(_) => return Err(errors::wrong_last_sequence_constant()),
            }
        }
        if let Some(v) = h.expected_last_subj_seq {
            let last = inner.store.last_seq_for_subject(subject);
            match v.parse::<u64>() {
                Ok(want) if want == last => {}
                Ok(_) => return Err(errors::wrong_last_sequence(last)),
                Err(_) => return Err(errors::wrong_last_sequence_constant()),
            }
        }
        if let Some(v) = h.expected_last_msg_id {
            if v != inner.last_msg_id {
                return Err(errors::wrong_last_msg_id(&inner.last_msg_id));
            }
        }
        if let Some(r) = h.rollup {
            if !cfg.allow_rollup_hdrs {
                return Err(errors::rollup_failed("rollup not permitted"));
            }
            if r != "sub" && r != "all" {
                return Err(errors::rollup_failed(format!(
                    "rollup value invalid: {r:?}"
                )));
            }
        }
        if cfg.discard == Discard::New {
            let state = inner.store.state();
            if cfg.max_msgs > 0 && state.msgs >= cfg.max_msgs as u64 {
                return Err(errors::store_failed("maximum messages exceeded"));
            }
            let size = super::store::file_store_msg_size(subject, hdr, m.payload);
            if cfg.max_bytes > 0 && state.bytes + size > cfg.max_bytes as u64 {
                return Err(errors::store_failed("maximum bytes exceeded"));
            }
            if cfg.discard_new_per_subject && cfg.max_msgs_per_subject > 0 {
                let n = inner
                    .store
                    .subjects_totals(subject)
                    .get(subject)
                    .copied()
                    .unwrap_or(0);
                if n >= cfg.max_msgs_per_subject as u64 {
                    return Err(errors::store_failed(
                        "maximum messages per subject exceeded",
                    ));
                }
            }
        }
        let size = inner.check_budget(subject, hdr, m.payload)?;
        let cfg = &inner.config;
        let ttl = match ttl {
            Some(Err(())) => return Err(errors::msg_ttl_invalid()),
            Some(Ok(t)) => t,
            None => None,
        };
        // No message may outlive the marker its removal leaves: a shorter
        // TTL is raised to the marker's (not where a subject keeps one).
        let sdm_secs = cfg.subject_delete_marker_ttl / 1_000_000_000;
        let raised;
        let (hdr, ttl) = match ttl {
            Some(Ttl::Secs(secs)) if sdm_secs > secs && cfg.max_msgs_per_subject != 1 => {
                raised = ttl::with_ttl(hdr, sdm_secs);
                (&raised[..], Some(Ttl::Secs(sdm_secs)))
            }
            _ => (hdr, ttl),
        };
        // Where to republish, and the subject's previous sequence (read
        // before this message becomes the last one).
        let target = match (&inner.republish, &republish) {
            (Some(rp), Some(_)) => rp
                .target(subject)
                .map(|to| (to, inner.store.last_seq_for_subject(subject))),
            _ => None,
        };
        let seq = inner.store(subject, hdr, m.payload, now, size)?;
        if let Some(r) = h.rollup {
            let filter = if r == "all" { "" } else { subject };
            if let Err(e) = inner.store.purge(filter, seq, 0) {
                warn!("JetStream stream {:?}: rollup purge: {e}", self.name);
            }
        }
        if inner.config.retention == Retention::Interest
            && !self.consumers.read().values().any(|c| c.wants(subject))
        {
            // Nobody is interested: acknowledged, counted, not kept.
            let _ = inner.store.remove(seq);
        }
        if let (Some((to, last)), Some(out), Some(rp)) = (target, republish, &inner.republish) {
            out.push(rp.message(to, &self.name, subject, seq, now, last, hdr, m.payload));
        }
        if let Some(Ttl::Secs(secs)) = ttl {
            inner.ttls.track(seq, now, secs);
        }
        inner.remember(msg_id, seq, now);
        Ok((seq, false))
    }

    /// Store a mirror's message at its origin's sequence and time: what
    /// the mirror holds already is skipped (a resumed feed may deliver it
    /// again), a gap (messages the origin no longer had) is skipped over.
    /// The origin checked the publish; only the mirror's own limits apply.
    fn process_mirrored(
        &self,
        inner: &mut StreamInner,
        subject: &str,
        m: &Published<'_>,
        at: At,
    ) -> Result<(u64, bool), ApiError> {
        inner.check_fits(m.headers, m.payload)?;
        let last = inner.store.state().last_seq;
        if at.seq <= last {
            return Ok((at.seq, true));
        }
        let size = inner.check_budget(subject, m.headers, m.payload)?;
        if at.seq > last + 1 {
            inner
                .store
                .skip_to(at.seq - 1)
                .map_err(errors::store_failed)?;
        }
        let seq = inner.store(subject, m.headers, m.payload, at.ts, size)?;
        if inner.config.allow_msg_ttl {
            if let Some(Ttl::Secs(secs)) = ttl::of(m.headers) {
                inner.ttls.track(seq, at.ts, secs);
            }
        }
        Ok((seq, false))
    }

    /// Interest and work-queue retention: drop `seq` once every consumer
    /// that wants it has acknowledged it. Takes no consumer lock while the
    /// stream lock is held.
    pub(crate) fn acked(&self, seq: u64) {
        let subject = {
            let inner = self.inner.lock();
            if inner.config.retention == Retention::Limits {
                return;
            }
            match inner.store.load(seq) {
                Ok(Some(m)) => m.subject,
                _ => return,
            }
        };
        let subject = subject.as_str();
        let consumers: Vec<Arc<Consumer>> = self.consumers.read().values().cloned().collect();
        let done = consumers
            .iter()
            .filter(|c| c.wants(subject))
            .all(|c| c.has_acked(seq));
        if done {
            let _ = self.inner.lock().store.remove(seq);
        }
    }
}

impl FeedSink for Stream {
    fn account(&self) -> Option<Arc<crate::accounts::Account>> {
        self.account
            .upgrade()
            .map(|acc| acc.client.account().clone())
    }

    /// A mirror resumes after its last sequence. A source resumes after
    /// the newest message that carries its mark, found from the end (the
    /// lock is taken per message: writes go on meanwhile).
    fn resume_point(&self, feed: &FeedState) -> (u64, bool) {
        let state = self.inner.lock().store.state();
        let empty = state.last_seq == 0;
        if feed.mirror {
            return (state.last_seq, empty);
        }
        for seq in (state.first_seq.max(1)..=state.last_seq).rev() {
            let Ok(Some(m)) = self.inner.lock().store.load(seq) else {
                continue;
            };
            if let Some(origin) =
                headers::get(&m.headers, STREAM_SOURCE).and_then(|h| feed.origin_seq(h))
            {
                return (origin, empty);
            }
        }
        (0, empty)
    }

    fn ingest(&self, m: Ingest) -> bool {
        match self.ingest.lock().as_ref() {
            Some(tx) => tx.send(m).is_ok(),
            None => false,
        }
    }
}
