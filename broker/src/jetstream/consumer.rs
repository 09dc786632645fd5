//! A consumer: a cursor over a stream with delivery and acknowledgement
//! state, pull requests waiting for messages, and a task that delivers.
//!
//! All state is under one mutex; the delivery task takes it, decides what to
//! send, releases it and only then publishes, so no lock is held while
//! messages are routed. Lock order is consumer, then stream: code holding
//! the stream lock never takes a consumer's.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::warn;

use super::headers;
use super::pin;
use super::store::{ConsumerState, ConsumerStateFile, Pending, SequencePair, StoredMsg};
use super::stream::{now_nanos, Stream};
use super::types::{
    self, AckPolicy, ClusterInfo, ConsumerConfig, ConsumerInfo, DeliverPolicy, NextRequest,
    ReplayPolicy, SequenceInfo,
};
use super::JsAccount;
use crate::server::Server;

/// nats-server's defaults.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_ACK_PENDING: i64 = 1000;
pub const DEFAULT_MAX_WAITING: i64 = 512;
/// How long a pinned client keeps its pin (nats-server's default).
pub const DEFAULT_PINNED_TTL: Duration = Duration::from_secs(120);
/// Ephemeral consumers go away after this long without interest.
pub const DEFAULT_INACTIVE_THRESHOLD: Duration = Duration::from_secs(5);
/// Flow control: ask the client to confirm after this much was sent.
const FC_MSGS: u64 = 1024;
const FC_BYTES: u64 = 1 << 20;
/// State is saved at most this often (and on stop).
const SAVE_EVERY: Duration = Duration::from_millis(50);
/// Deliveries per pass before yielding to other tasks.
const PASS: usize = 512;

#[derive(Debug, Clone)]
struct Waiting {
    reply: String,
    batch: i64,
    max_bytes: i64,
    bytes: i64,
    delivered: u64,
    expires: Option<Instant>,
    no_wait: bool,
    hb: Option<Duration>,
    next_hb: Instant,
    /// Overflow priority: serve only while at least this many messages are
    /// pending, or this many acknowledgements outstanding (0: no limit).
    min_pending: i64,
    min_ack_pending: i64,
    /// The `Nats-Pin-Id` the request carries, or was handed.
    pin_id: Option<String>,
    /// A prioritized consumer serves lower values first (0 to 9).
    priority: i64,
}

impl Waiting {
    /// May an overflow request take a message now? `pending`: messages
    /// left counting the one at hand; `ack_pending`: unacknowledged ones.
    fn overflow_allows(&self, pending: u64, ack_pending: usize) -> bool {
        (self.min_pending <= 0 && self.min_ack_pending <= 0)
            || (self.min_pending > 0 && self.min_pending as u64 <= pending)
            || (self.min_ack_pending > 0 && self.min_ack_pending as usize <= ack_pending)
    }
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    cseq: u64,
    ts: i64,
    deadline: Instant,
}

struct CState {
    delivered: SequencePair,
    pending: BTreeMap<u64, InFlight>,
    redelivered: BTreeMap<u64, u64>,
    redeliver: BTreeSet<u64>,
    next_seq: u64,
    last_per_subject: VecDeque<u64>,
    waiting: VecDeque<Waiting>,
    fc_pending: Option<String>,
    fc_msgs: u64,
    fc_bytes: u64,
    fc_id: u64,
    last_send: Instant,
    last_active: Instant,
    /// When a message was last delivered and an acknowledgement last
    /// recorded (`delivered.last_active` / `ack_floor.last_active` of the
    /// consumer's info, as nats-server's `ldt` / `lat`).
    last_delivery: Option<SystemTime>,
    last_ack: Option<SystemTime>,
    dirty: bool,
    last_save: Instant,
    /// Original-replay pacing: (stored ts of the last message sent, when).
    replay: Option<(i64, Instant)>,
    /// Nothing is delivered before this time (`pause_until`, parsed once).
    pause: Option<SystemTime>,
    /// The pause was in force when this copy last took charge of it: when
    /// it ends, the delivering copy announces the resume (nats-server's
    /// unpause timer, which only a leader runs).
    resume_advisory: bool,
    /// The pinned client of a `pinned_client` consumer.
    pin: Option<pin::Pin>,
    /// Advisories raised outside a delivery pass, sent by the next one.
    advisories: Vec<Out>,
}

impl CState {
    fn paused(&self, now: SystemTime) -> bool {
        self.pause.is_some_and(|p| now < p)
    }
}

/// Where [`Consumer::next_message`] found a message, so it can be put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Redelivery,
    LastPerSubject,
    New,
}

/// A message (or status) to publish once the lock is released.
struct Out {
    /// Where it goes (an inbox or the deliver subject).
    subject: String,
    /// The subject subscribers see: the stored message's own (None: `subject`).
    shown: Option<String>,
    reply: Option<String>,
    headers: Vec<u8>,
    payload: bytes::Bytes,
}

pub struct Consumer {
    pub name: String,
    pub stream_name: String,
    pub created: SystemTime,
    /// Mutable fields change on update (`CONSUMER.CREATE` with a new config).
    config: RwLock<ConsumerConfig>,
    /// The subjects selected (empty: all), from the config; replaced when
    /// an update changes `filter_subject(s)`.
    filters: RwLock<Vec<String>>,
    stream: Weak<Stream>,
    account: Weak<JsAccount>,
    state: Mutex<CState>,
    wake: Notify,
    stopped: AtomicBool,
    /// A follower's copy of a replicated stream's consumer: it keeps the
    /// state the leader replicates (and applies acks, which every server
    /// receives) but delivers nothing and answers no one.
    passive: AtomicBool,
    state_file: Option<ConsumerStateFile>,
    /// Set when the delivery task starts: statuses sent outside it (a
    /// leadership change) need the server to publish through.
    server: Mutex<Weak<Server>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("stream", &self.stream_name)
            .field("name", &self.name)
            .finish()
    }
}

impl crate::sublist_watch::InterestWaker for Consumer {
    fn interest_appeared(&self) {
        self.wake();
    }
}

/// An acknowledgement, as the client sends it to the ack subject.
#[derive(Debug, Clone, PartialEq)]
pub enum Ack {
    Ack,
    Nak(Option<Duration>),
    InProgress,
    Term,
    Next(i64),
}

impl Ack {
    pub fn parse(body: &[u8]) -> Ack {
        let text = String::from_utf8_lossy(body);
        let t = text.trim();
        if t.is_empty() || t.starts_with("+ACK") {
            return Ack::Ack;
        }
        if let Some(rest) = t.strip_prefix("-NAK") {
            let delay = serde_json::from_str::<serde_json::Value>(rest.trim())
                .ok()
                .and_then(|v| v.get("delay").and_then(|d| d.as_i64()))
                .filter(|d| *d > 0)
                .map(types::duration);
            return Ack::Nak(delay);
        }
        if t.starts_with("+WPI") {
            return Ack::InProgress;
        }
        if t.starts_with("+TERM") {
            return Ack::Term;
        }
        if let Some(rest) = t.strip_prefix("+NXT") {
            let n = rest.trim().parse::<i64>().ok().or_else(|| {
                serde_json::from_str::<NextRequest>(rest.trim())
                    .ok()
                    .map(|r| r.batch)
            });
            return Ack::Next(n.unwrap_or(1).max(1));
        }
        Ack::Ack
    }
}

impl Consumer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: String,
        config: ConsumerConfig,
        stream: &Arc<Stream>,
        account: &Arc<JsAccount>,
        created: SystemTime,
        saved: Option<ConsumerState>,
        state_file: Option<ConsumerStateFile>,
    ) -> Arc<Consumer> {
        let filters = config.filters();
        let now = Instant::now();
        let mut st = CState {
            delivered: SequencePair::default(),
            pending: BTreeMap::new(),
            redelivered: BTreeMap::new(),
            redeliver: BTreeSet::new(),
            next_seq: 1,
            last_per_subject: VecDeque::new(),
            waiting: VecDeque::new(),
            fc_pending: None,
            fc_msgs: 0,
            fc_bytes: 0,
            fc_id: 0,
            last_send: now,
            last_active: now,
            last_delivery: None,
            last_ack: None,
            dirty: false,
            last_save: now,
            replay: None,
            pause: config.pause_deadline(),
            resume_advisory: false,
            pin: None,
            advisories: Vec::new(),
        };
        st.resume_advisory = st.paused(SystemTime::now());
        let ack_wait = ack_wait(&config);
        // A push consumer with heartbeats sends the first one right away,
        // as nats-server does, so clients learn where the stream stands.
        if config.idle_heartbeat > 0 && !config.is_pull() {
            if let Some(t) = now.checked_sub(types::duration(config.idle_heartbeat)) {
                st.last_send = t;
            }
        }
        match saved {
            Some(s) => {
                st.delivered = s.delivered;
                st.next_seq = s.delivered.stream_seq + 1;
                st.redelivered = s.redelivered;
                for (sseq, p) in s.pending {
                    st.pending.insert(
                        sseq,
                        InFlight {
                            cseq: p.sequence,
                            ts: p.ts,
                            deadline: now + ack_wait,
                        },
                    );
                }
            }
            None => {
                let inner = stream.inner.lock();
                let state = inner.store.state();
                let start = |f: &str| inner.store.load_last(f).ok().flatten().map(|m| m.seq);
                st.next_seq = match config.deliver_policy {
                    DeliverPolicy::All => state.first_seq.max(1),
                    DeliverPolicy::Last => {
                        let last = if filters.is_empty() {
                            start("")
                        } else {
                            filters.iter().filter_map(|f| start(f)).max()
                        };
                        last.unwrap_or(state.last_seq + 1)
                    }
                    DeliverPolicy::New => state.last_seq + 1,
                    DeliverPolicy::ByStartSequence => config.opt_start_seq.max(1),
                    DeliverPolicy::ByStartTime => config
                        .opt_start_time
                        .as_deref()
                        .and_then(types::parse_rfc3339)
                        .map(|t| {
                            let ns = t
                                .duration_since(SystemTime::UNIX_EPOCH)
                                .map(|d| d.as_nanos() as i64)
                                .unwrap_or(0);
                            inner.store.seq_for_time(ns)
                        })
                        .unwrap_or(state.last_seq + 1),
                    DeliverPolicy::LastPerSubject => {
                        let mut seqs: Vec<u64> = Vec::new();
                        let fs: Vec<&str> = if filters.is_empty() {
                            vec![""]
                        } else {
                            filters.iter().map(String::as_str).collect()
                        };
                        for f in fs {
                            for subject in inner.store.subjects_totals(f).keys() {
                                let s = inner.store.last_seq_for_subject(subject);
                                if s > 0 {
                                    seqs.push(s);
                                }
                            }
                        }
                        seqs.sort_unstable();
                        seqs.dedup();
                        st.last_per_subject = seqs.into();
                        state.last_seq + 1
                    }
                };
                // nats-server starts the delivered counters just below the
                // starting point, so the ack floor reads sensibly.
                st.delivered.stream_seq = st.next_seq.saturating_sub(1);
            }
        }
        Arc::new(Consumer {
            name,
            stream_name: stream.name.clone(),
            created,
            config: RwLock::new(config),
            filters: RwLock::new(filters),
            stream: Arc::downgrade(stream),
            account: Arc::downgrade(account),
            state: Mutex::new(st),
            wake: Notify::new(),
            stopped: AtomicBool::new(false),
            passive: AtomicBool::new(stream.is_passive()),
            state_file,
            server: Mutex::new(Weak::new()),
        })
    }

    /// A mirror's or source's consumer (`"direct": true`): not listed,
    /// as nats-server lists only public consumers.
    pub fn is_direct(&self) -> bool {
        self.config.read_recursive().extra.get("direct") == Some(&serde_json::Value::Bool(true))
    }

    pub fn config(&self) -> ConsumerConfig {
        self.config.read_recursive().clone()
    }

    pub fn ack_policy(&self) -> AckPolicy {
        self.config.read_recursive().ack_policy
    }

    /// Apply an updated configuration (already checked to change only
    /// what may change), and save it for restarts.
    pub(crate) fn update(&self, cfg: ConsumerConfig) {
        let filters = cfg.filters();
        let pause = cfg.pause_deadline();
        let pinned = cfg.priority_policy == types::PriorityPolicy::PinnedClient;
        if let Some(deliver) = &cfg.deliver_subject {
            if let Some(acc) = self.account.upgrade() {
                acc.client
                    .account()
                    .sublist
                    .watch
                    .retarget(&self.watch_key(), deliver);
            }
        }
        *self.config.write() = cfg;
        *self.filters.write() = filters;
        {
            let mut st = self.state.lock();
            if !pinned {
                st.pin = None;
            }
            if st.pause != pause {
                st.pause = pause;
                st.resume_advisory = st.paused(SystemTime::now());
            }
        }
        self.wake();
    }

    /// Pause until `until` (None or a past time: resume now), as
    /// `CONSUMER.PAUSE` does. Returns the config to save. The delivering
    /// copy announces a change on `$JS.EVENT.ADVISORY.CONSUMER.PAUSE`.
    pub(crate) fn set_pause(&self, server: &Server, until: Option<SystemTime>) -> ConsumerConfig {
        let cfg = {
            let mut cfg = self.config.write();
            cfg.pause_until = until.map(|t| types::rfc3339(Some(t)));
            cfg.clone()
        };
        let changed = {
            let mut st = self.state.lock();
            let changed = st.pause != until;
            st.pause = until;
            st.resume_advisory = st.paused(SystemTime::now());
            changed
        };
        if changed && !self.is_passive() {
            self.announce_pause(server);
        }
        self.wake();
        cfg
    }

    /// Publish the pause advisory for the current pause state.
    pub(crate) fn announce_pause(&self, server: &Server) {
        let Some(acc) = self.account.upgrade() else {
            return;
        };
        let until = self.state.lock().pause;
        let o = self.pause_advisory(until);
        self.publish_all(server, &acc, vec![o]);
    }

    /// Whether a pause is in force now.
    pub fn is_paused(&self) -> bool {
        self.state.lock().paused(SystemTime::now())
    }
    /// The consumer is being deleted: pull requests waiting on it hear so.
    pub(crate) fn close_requests(&self, server: &Server) {
        let waiting: Vec<Waiting> = self.state.lock().waiting.drain(..).collect();
        for w in waiting {
            self.send_status(server, &w.reply, 409, "Consumer Deleted");
        }
    }

    pub fn is_durable(&self) -> bool {
        self.config.read_recursive().durable_name.is_some()
    }

    /// Does this consumer select messages on `subject`?
    pub fn wants(&self, subject: &str) -> bool {
        let filters = self.filters.read_recursive();
        filters.is_empty()
            || filters
                .iter()
                .any(|f| crate::subject::matches(f.as_bytes(), subject.as_bytes()))
    }

    /// Has the consumer acknowledged (or, with ack none, delivered) `seq`?
    pub fn has_acked(&self, seq: u64) -> bool {
        let st = self.state.lock();
        seq <= st.delivered.stream_seq
            && !st.pending.contains_key(&seq)
            && !st.last_per_subject.contains(&seq)
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Some(acc) = self.account.upgrade() {
            acc.client
                .account()
                .sublist
                .watch
                .unwatch(&self.watch_key(), self as *const Self as *const ());
        }
        self.save(true);
        self.wake.notify_one();
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    pub fn is_passive(&self) -> bool {
        self.passive.load(Ordering::Acquire)
    }

    /// Make this copy deliver (its stream's replica leads) or not. A copy
    /// that stops delivering forgets its waiting pull requests (their
    /// clients retry on the new leader); one that starts redelivers what
    /// is pending, after its ack wait, as a restarted consumer does.
    pub(crate) fn set_passive(&self, passive: bool) {
        let was = self.passive.swap(passive, Ordering::AcqRel);
        if passive && !was {
            // nats-server tells the waiting clients to ask the new leader.
            // A pin is the delivering copy's alone (nats-server drops it too).
            let waiting: Vec<Waiting> = {
                let mut st = self.state.lock();
                st.pin = None;
                st.waiting.drain(..).collect()
            };
            if let Some(server) = self.server.lock().upgrade() {
                for w in waiting {
                    self.send_status(&server, &w.reply, 409, "Leadership Change");
                }
            }
        } else if !passive && was {
            // The new leader runs the unpause timer, as nats-server's does.
            let mut st = self.state.lock();
            st.resume_advisory = st.paused(SystemTime::now());
        }
        self.wake();
    }

    /// The state to replicate to the followers' copies.
    pub(crate) fn replicated_state(&self) -> ConsumerState {
        let st = self.state.lock();
        ConsumerState {
            delivered: st.delivered,
            ack_floor: ack_floor(&st),
            pending: st
                .pending
                .iter()
                .map(|(s, p)| {
                    (
                        *s,
                        Pending {
                            sequence: p.cseq,
                            ts: p.ts,
                        },
                    )
                })
                .collect(),
            redelivered: st.redelivered.clone(),
        }
    }

    /// A follower's copy takes the leader's state (and keeps it on disk).
    pub(crate) fn take_state(&self, s: ConsumerState) {
        let ack_wait = ack_wait(&self.config.read_recursive());
        let now = Instant::now();
        let mut st = self.state.lock();
        st.delivered = s.delivered;
        st.next_seq = s.delivered.stream_seq + 1;
        st.redelivered = s.redelivered;
        st.redeliver.clear();
        st.pending = s
            .pending
            .into_iter()
            .map(|(sseq, p)| {
                (
                    sseq,
                    InFlight {
                        cseq: p.sequence,
                        ts: p.ts,
                        deadline: now + ack_wait,
                    },
                )
            })
            .collect();
        st.dirty = true;
        self.maybe_save(&mut st, false);
    }

    /// Where `CONSUMER.RESET` with `seq` puts the consumer: 0 means back to
    /// just above the ack floor. A consumer that starts at a sequence or a
    /// time cannot be reset below that start; one that delivers only the
    /// last or new messages cannot be given a sequence at all (nats-server's
    /// rules; the `Err` is the reason its error quotes).
    pub(crate) fn reset_target(&self, seq: u64) -> Result<u64, &'static str> {
        if seq == 0 {
            let st = self.state.lock();
            return Ok(ack_floor(&st).stream_seq + 1);
        }
        let cfg = self.config.read_recursive();
        match cfg.deliver_policy {
            DeliverPolicy::All => {}
            DeliverPolicy::ByStartSequence if seq < cfg.opt_start_seq => {
                return Err("below start seq")
            }
            DeliverPolicy::ByStartSequence => {}
            DeliverPolicy::ByStartTime => {
                let start = cfg
                    .opt_start_time
                    .as_deref()
                    .and_then(types::parse_rfc3339)
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
                let first = match (start, self.stream.upgrade()) {
                    (Some(ns), Some(stream)) => stream.inner.lock().store.seq_for_time(ns),
                    _ => 0,
                };
                if seq < first {
                    return Err("below start time");
                }
            }
            _ => return Err("not allowed"),
        }
        Ok(seq)
    }

    /// Start over at stream sequence `seq` (from [`Self::reset_target`]):
    /// nothing is pending or counted as redelivered any more, the delivered
    /// counters restart just below `seq` and the next delivery is `seq`.
    pub(crate) fn reset(&self, seq: u64) {
        let seq = seq.max(1);
        let mut st = self.state.lock();
        st.pending.clear();
        st.redelivered.clear();
        st.redeliver.clear();
        st.last_per_subject.clear();
        st.replay = None;
        st.next_seq = seq;
        st.delivered = SequencePair {
            consumer_seq: 0,
            stream_seq: seq - 1,
        };
        st.last_delivery = None;
        st.last_ack = None;
        // A flow-control request before the reset may never be answered.
        st.fc_pending = None;
        st.fc_msgs = 0;
        st.fc_bytes = 0;
        st.dirty = true;
        self.maybe_save(&mut st, true);
        drop(st);
        self.wake();
    }

    /// Sequences the stream dropped: nothing to redeliver there.
    pub fn forget(&self, removed: &[RangeInclusive<u64>]) {
        let mut st = self.state.lock();
        for r in removed {
            let gone: Vec<u64> = st.pending.range(r.clone()).map(|(s, _)| *s).collect();
            for s in gone {
                st.pending.remove(&s);
                st.redeliver.remove(&s);
                st.redelivered.remove(&s);
                st.dirty = true;
            }
        }
    }

    /// The consumer's name in its account's interest watch.
    fn watch_key(&self) -> String {
        format!("{}.{}", self.stream_name, self.name)
    }

    /// Run the delivery loop until the consumer is stopped.
    pub(crate) fn spawn(self: &Arc<Self>, server: &Arc<Server>) {
        // A push consumer starts delivering the moment its deliver subject
        // gets a subscriber (clients often subscribe after creating it).
        if let (Some(deliver), Some(acc)) = (
            self.config.read_recursive().deliver_subject.clone(),
            self.account.upgrade(),
        ) {
            let me: Arc<dyn crate::sublist_watch::InterestWaker> = self.clone();
            acc.client.account().sublist.watch.watch(
                &self.watch_key(),
                &deliver,
                Arc::downgrade(&me),
            );
        }
        let me = self.clone();
        let server = Arc::downgrade(server);
        *self.server.lock() = server.clone();
        tokio::spawn(async move {
            loop {
                if me.is_stopped() {
                    return;
                }
                if me.is_passive() {
                    me.wake.notified().await;
                    continue;
                }
                let Some(srv) = server.upgrade() else { return };
                let next = me.work(&srv);
                drop(srv);
                if me.inactive_too_long() {
                    if let (Some(acc), Some(srv)) = (me.account.upgrade(), server.upgrade()) {
                        acc.delete_consumer(&srv, &me.stream_name, &me.name);
                    }
                    return;
                }
                match next {
                    Some(at) => {
                        tokio::select! {
                            _ = me.wake.notified() => {}
                            _ = tokio::time::sleep_until(at) => {}
                        }
                    }
                    None => me.wake.notified().await,
                }
            }
        });
    }

    fn inactive_threshold(&self) -> Option<Duration> {
        match self.config.read_recursive().inactive_threshold {
            0 if self.is_durable() => None,
            0 => Some(DEFAULT_INACTIVE_THRESHOLD),
            n => Some(types::duration(n)),
        }
    }

    fn inactive_too_long(&self) -> bool {
        let Some(limit) = self.inactive_threshold() else {
            return false;
        };
        let st = self.state.lock();
        st.waiting.is_empty() && st.last_active.elapsed() > limit
    }

    /// A pull request arrived.
    pub fn add_request(&self, reply: &str, req: NextRequest, server: &Server) {
        if self.is_passive() {
            return;
        }
        if !self.config.read_recursive().is_pull() {
            self.send_status(server, reply, 409, "Consumer is push based");
            return;
        }
        let now = Instant::now();
        let batch = req.batch.max(1);
        if let Some(desc) = over_request_limits(&self.config.read_recursive(), &req, batch) {
            self.send_status(server, reply, 409, &desc);
            return;
        }
        if let Some(desc) = priority_request_error(&self.config.read_recursive(), &req) {
            self.send_status(server, reply, 400, &desc);
            return;
        }
        let expires = (req.expires > 0).then(|| now + types::duration(req.expires));
        let pin_ttl = pin_ttl(&self.config.read_recursive());
        let mut st = self.state.lock();
        st.last_active = now;
        // The pinned client keeps its pin by pulling; another id is refused.
        let asked = req.id.as_deref().filter(|i| !i.is_empty());
        if let (Some(p), Some(ttl), Some(id)) = (st.pin.as_mut(), pin_ttl, asked) {
            if p.id == id {
                p.refresh(ttl, now);
            } else {
                drop(st);
                self.send_status(server, reply, 423, "Nats-Pin-Id mismatch");
                return;
            }
        }
        let available = self.num_pending(&st) + st.redeliver.len() as u64;
        if req.no_wait && available == 0 && expires.is_none() {
            drop(st);
            self.send_status(server, reply, 404, "No Messages");
            return;
        }
        if req.no_wait && available > 0 {
            // What is there is promised to requests already waiting.
            let promised: i64 = st.waiting.iter().map(|w| w.batch).sum();
            if (available as i64) < promised {
                drop(st);
                self.send_status(server, reply, 408, "Requests Pending");
                return;
            }
        }
        let max_waiting = match self.config.read_recursive().max_waiting {
            0 => DEFAULT_MAX_WAITING,
            n => n,
        };
        if st.waiting.len() as i64 >= max_waiting {
            drop(st);
            if req.idle_heartbeat == 0 {
                self.send_status(server, reply, 409, "Exceeded MaxWaiting");
            }
            return;
        }
        let hb = (req.idle_heartbeat > 0).then(|| types::duration(req.idle_heartbeat));
        let prioritized =
            self.config.read_recursive().priority_policy == types::PriorityPolicy::Prioritized;
        let w = Waiting {
            reply: reply.to_string(),
            batch,
            max_bytes: req.max_bytes,
            bytes: 0,
            delivered: 0,
            expires,
            no_wait: req.no_wait,
            hb,
            next_hb: now + hb.unwrap_or(Duration::ZERO),
            min_pending: req.min_pending,
            min_ack_pending: req.min_ack_pending,
            pin_id: req.id,
            // A request without a JSON body ranks last (nats-server's
            // MaxInt32 for a request without priority fields).
            priority: if req.structured {
                req.priority
            } else {
                i64::from(i32::MAX)
            },
        };
        if prioritized {
            enqueue_by_priority(&mut st.waiting, w);
        } else {
            st.waiting.push_back(w);
        }
        drop(st);
        self.wake();
    }

    /// An acknowledgement for stream sequence `sseq`, delivered `dc` times.
    pub fn ack(&self, sseq: u64, ack: &Ack, server: &Server, ack_reply: &str) {
        let subject_for_retention;
        // What one ack of all before it completed (for retention).
        let mut swept: Vec<u64> = Vec::new();
        {
            let mut st = self.state.lock();
            st.last_active = Instant::now();
            match ack {
                Ack::Ack | Ack::Next(_) => {
                    if self.config.read_recursive().ack_policy.acks_all_before() {
                        swept = st.pending.range(..=sseq).map(|(s, _)| *s).collect();
                        for s in &swept {
                            st.pending.remove(s);
                            st.redeliver.remove(s);
                            st.redelivered.remove(s);
                        }
                    } else {
                        st.pending.remove(&sseq);
                        st.redeliver.remove(&sseq);
                        st.redelivered.remove(&sseq);
                    }
                    st.dirty = true;
                    st.last_ack = Some(SystemTime::now());
                }
                Ack::Term => {
                    st.pending.remove(&sseq);
                    st.redeliver.remove(&sseq);
                    st.redelivered.remove(&sseq);
                    st.dirty = true;
                    st.last_ack = Some(SystemTime::now());
                }
                Ack::Nak(delay) => {
                    if let Some(p) = st.pending.get_mut(&sseq) {
                        match delay {
                            Some(d) => p.deadline = Instant::now() + *d,
                            None => {
                                p.deadline = Instant::now();
                                st.redeliver.insert(sseq);
                            }
                        }
                    }
                }
                Ack::InProgress => {
                    let wait = ack_wait(&self.config.read_recursive());
                    if let Some(p) = st.pending.get_mut(&sseq) {
                        p.deadline = Instant::now() + wait;
                    }
                }
            }
            subject_for_retention = matches!(ack, Ack::Ack | Ack::Next(_) | Ack::Term);
        }
        if let Ack::Next(n) = ack {
            self.add_request(
                ack_reply,
                NextRequest {
                    batch: *n,
                    ..Default::default()
                },
                server,
            );
        }
        if subject_for_retention {
            if let Some(stream) = self.stream.upgrade() {
                if swept.is_empty() {
                    stream.acked(sseq);
                }
                for s in swept {
                    stream.acked(s);
                }
            }
        }
        self.wake();
    }

    /// A reply to our flow-control request (only the latest counts). With
    /// the `flow_control` ack policy its `Nats-Last-Stream` header (what
    /// the source has stored) acknowledges everything up to it.
    pub fn flow_control_reply(&self, subject: &str, hdr: &[u8], server: &Server) {
        let mut st = self.state.lock();
        if st.fc_pending.as_deref() != Some(subject) {
            return;
        }
        st.fc_pending = None;
        // Nothing past what was delivered can be acknowledged.
        let delivered = st.delivered.stream_seq;
        drop(st);
        if self.config.read_recursive().ack_policy == AckPolicy::FlowControl {
            let stored = headers::get(hdr, "Nats-Last-Stream")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| s.min(delivered))
                .filter(|s| *s > 0);
            if let Some(sseq) = stored {
                // Wakes the consumer too.
                self.ack(sseq, &Ack::Ack, server, "");
                return;
            }
        }
        self.wake();
    }

    fn num_pending(&self, st: &CState) -> u64 {
        let Some(stream) = self.stream.upgrade() else {
            return 0;
        };
        let inner = stream.inner.lock();
        let filters = self.filters.read_recursive();
        let from_store = if filters.is_empty() {
            inner.store.num_pending("", st.next_seq)
        } else {
            filters
                .iter()
                .map(|f| inner.store.num_pending(f, st.next_seq))
                .sum()
        };
        from_store + st.last_per_subject.len() as u64
    }

    /// The next message to deliver: redeliveries first, then
    /// last-per-subject starting points, then new messages.
    fn next_message(&self, st: &mut CState, stream: &Stream) -> Option<(StoredMsg, Source)> {
        let inner = stream.inner.lock();
        while let Some(seq) = st.redeliver.pop_first() {
            match inner.store.load(seq) {
                Ok(Some(m)) => return Some((m, Source::Redelivery)),
                _ => {
                    st.pending.remove(&seq);
                    st.redelivered.remove(&seq);
                }
            }
        }
        while let Some(seq) = st.last_per_subject.pop_front() {
            if let Ok(Some(m)) = inner.store.load(seq) {
                return Some((m, Source::LastPerSubject));
            }
        }
        let filters = self.filters.read_recursive();
        let next = if filters.is_empty() {
            inner.store.load_next("", st.next_seq).ok().flatten()
        } else {
            filters
                .iter()
                .filter_map(|f| inner.store.load_next(f, st.next_seq).ok().flatten())
                .min_by_key(|m| m.seq)
        };
        if let Some(m) = &next {
            st.next_seq = m.seq + 1;
        }
        next.map(|m| (m, Source::New))
    }

    /// Undo [`Self::next_message`]: the message goes out later.
    fn put_back(st: &mut CState, seq: u64, from: Source) {
        match from {
            Source::Redelivery => {
                st.redeliver.insert(seq);
            }
            Source::LastPerSubject => st.last_per_subject.push_front(seq),
            Source::New => st.next_seq = seq,
        }
    }

    /// One pass: expire requests, find due redeliveries, deliver what can be
    /// delivered, send heartbeats. Returns when to look again.
    fn work(&self, server: &Server) -> Option<Instant> {
        let (stream, acc) = (self.stream.upgrade()?, self.account.upgrade()?);
        let now = Instant::now();
        let mut out: Vec<Out> = Vec::new();
        let mut more = false;
        let next_at = {
            let mut st = self.state.lock();
            out.append(&mut st.advisories);
            // A pin whose client stopped pulling lapses.
            if st.pin.as_ref().is_some_and(|p| p.deadline <= now) {
                st.pin = None;
                out.push(self.unpinned_advisory("timeout"));
            }
            // Pull requests past their expiry, and (quietly) those whose
            // client went away: nats-server drops a waiting request once its
            // reply subject has no interest, so messages are not handed to
            // a dead inbox to come back only after `ack_wait`.
            let mut i = 0;
            while i < st.waiting.len() {
                if st.waiting[i].expires.is_some_and(|e| e <= now) {
                    if let Some(w) = st.waiting.remove(i) {
                        out.push(status(&w.reply, 408, "Request Timeout", &pending_hdrs(&w)));
                    }
                } else if !reply_has_interest(&acc, &st.waiting[i].reply) {
                    st.waiting.remove(i);
                } else {
                    i += 1;
                }
            }
            // Redeliveries that are due.
            if self.config.read_recursive().ack_policy.redelivers() {
                let due: Vec<u64> = st
                    .pending
                    .iter()
                    .filter(|(s, p)| p.deadline <= now && !st.redeliver.contains(s))
                    .map(|(s, _)| *s)
                    .collect();
                st.redeliver.extend(due);
            }
            let mut sent = 0;
            let mut remaining = self.num_pending(&st);
            let interest = self
                .config
                .read_recursive()
                .deliver_subject
                .as_deref()
                .is_some_and(|d| has_interest(&acc, d));
            let wall = SystemTime::now();
            let paused = st.paused(wall);
            if !paused && st.resume_advisory {
                // The pause ran out: say so once, as nats-server's timer does.
                st.resume_advisory = false;
                out.push(self.pause_advisory(st.pause));
            }
            // Set when waiting requests could not take the next message.
            let mut stalled = false;
            while !paused && sent < PASS && self.can_send(&st, interest) {
                let Some((msg, from)) = self.next_message(&mut st, &stream) else {
                    break;
                };
                let redelivery = from == Source::Redelivery;
                if self.config.read_recursive().replay_policy == ReplayPolicy::Original
                    && !redelivery
                {
                    if let Some((prev_ts, at)) = st.replay {
                        let gap = Duration::from_nanos((msg.ts - prev_ts).max(0) as u64);
                        if at + gap > now {
                            // Not yet: put it back and come back then.
                            Self::put_back(&mut st, msg.seq, from);
                            st.replay = Some((prev_ts, at));
                            drop(st);
                            self.publish_all(server, &acc, out);
                            return Some(at + gap);
                        }
                    }
                    st.replay = Some((msg.ts, now));
                }
                let left = if redelivery {
                    remaining
                } else {
                    remaining.saturating_sub(1)
                };
                let (seq, before) = (msg.seq, out.len());
                if self
                    .deliver(&mut st, msg, redelivery, now, left, &mut out)
                    .is_some()
                {
                    // No request had room for it, or none may take it now.
                    Self::put_back(&mut st, seq, from);
                    stalled = true;
                    break;
                }
                remaining = left;
                sent += out.len() - before;
            }
            if sent >= PASS {
                more = true;
            }
            // No-wait requests at the end of the stream (or of what a
            // paused consumer may deliver now, as nats-server treats it).
            // A full ack window ends them too: nothing more can go now.
            let exhausted = paused
                || stalled
                || self.ack_window_full(&st)
                || (st.redeliver.is_empty() && self.num_pending(&st) == 0);
            if exhausted {
                let mut i = 0;
                while i < st.waiting.len() {
                    let w = &st.waiting[i];
                    if w.no_wait && (w.expires.is_none() || w.delivered > 0) {
                        if let Some(w) = st.waiting.remove(i) {
                            out.push(status::<&str>(&w.reply, 404, "No Messages", &[]));
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            self.heartbeats(&mut st, now, &mut out);
            self.maybe_save(&mut st, false);
            self.next_wakeup(&st)
        };
        self.publish_all(server, &acc, out);
        if more {
            return Some(Instant::now());
        }
        next_at
    }

    fn publish_all(&self, server: &Server, acc: &JsAccount, out: Vec<Out>) {
        for o in out {
            let shown = o.shown.as_deref().unwrap_or(&o.subject);
            acc.client.deliver(
                server,
                &o.subject,
                shown,
                o.reply.as_deref(),
                &o.headers,
                &o.payload,
            );
        }
    }

    /// May one more message go out now? `interest`: whether a push
    /// consumer's deliver subject has subscribers (looked up once a pass).
    fn can_send(&self, st: &CState, interest: bool) -> bool {
        if self.ack_window_full(st) {
            return false;
        }
        let cfg = self.config.read_recursive();
        if cfg.is_pull() {
            !st.waiting.is_empty()
        } else {
            // Flow control is asked for at half the window (as nats-server
            // asks at half its pending-bytes limit): deliveries go on
            // while the answer travels, and stop once a second half has
            // gone out unanswered.
            interest
                && (st.fc_pending.is_none() || (st.fc_msgs < FC_MSGS && st.fc_bytes < FC_BYTES))
        }
    }

    /// `max_ack_pending` deliveries wait for acks (and none is due again).
    fn ack_window_full(&self, st: &CState) -> bool {
        let cfg = self.config.read_recursive();
        if cfg.ack_policy == AckPolicy::None || !st.redeliver.is_empty() {
            return false;
        }
        let max = match cfg.max_ack_pending {
            0 => DEFAULT_MAX_ACK_PENDING,
            n => n,
        };
        max > 0 && st.pending.len() as i64 >= max
    }

    /// Record and format one delivery, into `out`. A pull consumer's
    /// message goes to the first waiting request with room for it
    /// (nats-server's size: subject, ack reply, headers and payload); one
    /// without room hears `409 Message Size Exceeds MaxBytes` and goes.
    /// Returns the message when no request is left to take it.
    fn deliver(
        &self,
        st: &mut CState,
        msg: StoredMsg,
        redelivery: bool,
        now: Instant,
        pending: u64,
        out: &mut Vec<Out>,
    ) -> Option<StoredMsg> {
        let cfg = self.config.read_recursive();
        let sseq = msg.seq;
        let dc = if redelivery {
            st.redelivered.get(&sseq).copied().unwrap_or(0) + 2
        } else {
            1
        };
        if cfg.max_deliver > 0 && dc > cfg.max_deliver as u64 {
            st.pending.remove(&sseq);
            st.redelivered.remove(&sseq);
            st.dirty = true;
            out.push(self.max_deliver_advisory(sseq, dc - 1));
            return None;
        }
        let cseq = st.delivered.consumer_seq + 1;
        let reply = format!(
            "$JS.ACK.{}.{}.{dc}.{sseq}.{cseq}.{}.{pending}",
            self.stream_name, self.name, msg.ts
        );
        let (mut hdrs, payload) = if cfg.headers_only {
            let size = msg.payload.len().to_string();
            (
                headers::append(&msg.headers, &[("Nats-Msg-Size", &size)]),
                bytes::Bytes::new(),
            )
        } else {
            (msg.headers.to_vec(), msg.payload.clone())
        };
        let size = (msg.subject.len() + reply.len() + hdrs.len() + payload.len()) as i64;
        let mut completed = None;
        // Whether this delivery just handed out a pin.
        let mut pinned_now = false;
        let target = match cfg.deliver_subject.as_deref().filter(|s| !s.is_empty()) {
            Some(subject) => {
                st.fc_msgs += 1;
                st.fc_bytes += size as u64;
                subject.to_string()
            }
            None => loop {
                if cfg.priority_policy == types::PriorityPolicy::Overflow {
                    // The first request whose thresholds the consumer meets;
                    // the ones before it go to the back, as nats-server
                    // cycles past them.
                    let ack_pending = st.pending.len();
                    let at = st
                        .waiting
                        .iter()
                        .position(|w| w.overflow_allows(pending.saturating_add(1), ack_pending));
                    match at {
                        Some(i) => st.waiting.rotate_left(i),
                        None => return Some(msg),
                    }
                }
                if cfg.priority_policy == types::PriorityPolicy::PinnedClient {
                    let ttl = pin_ttl(&cfg).unwrap_or(DEFAULT_PINNED_TTL);
                    match self.pinned_request(st, now, ttl, out) {
                        Some((i, new_pin)) => {
                            st.waiting.rotate_left(i);
                            pinned_now = new_pin;
                        }
                        None => return Some(msg),
                    }
                }
                let Some(mut w) = st.waiting.pop_front() else {
                    return Some(msg);
                };
                if w.max_bytes > 0 {
                    let left = w.max_bytes - w.bytes;
                    if size > left {
                        out.push(status(
                            &w.reply,
                            409,
                            "Message Size Exceeds MaxBytes",
                            &pending_hdrs(&w),
                        ));
                        if pinned_now {
                            // The pin went with a request that took nothing.
                            st.pin = None;
                            pinned_now = false;
                        }
                        continue;
                    }
                    w.bytes += size;
                    if w.bytes == w.max_bytes {
                        // Exactly full: this one is the last.
                        w.batch = 1;
                    }
                }
                w.batch -= 1;
                w.delivered += 1;
                if let Some(hb) = w.hb {
                    w.next_hb = now + hb;
                }
                let reply = w.reply.clone();
                if w.batch > 0 {
                    // Round robin: the next message goes to the next request
                    // (of the same priority, for a prioritized consumer).
                    if cfg.priority_policy == types::PriorityPolicy::Prioritized {
                        enqueue_by_priority(&mut st.waiting, w);
                    } else {
                        st.waiting.push_back(w);
                    }
                } else if w.max_bytes > 0 && w.bytes < w.max_bytes {
                    completed = Some(status(&w.reply, 409, "Batch Completed", &pending_hdrs(&w)));
                }
                break reply;
            },
        };
        if cfg.priority_policy == types::PriorityPolicy::PinnedClient {
            if let Some(p) = &st.pin {
                hdrs = headers::append(&hdrs, &[(pin::PIN_HEADER, &p.id)]);
            }
        }
        if redelivery {
            *st.redelivered.entry(sseq).or_insert(0) += 1;
        }
        st.delivered.consumer_seq = cseq;
        if sseq > st.delivered.stream_seq {
            st.delivered.stream_seq = sseq;
        }
        if cfg.ack_policy != AckPolicy::None {
            let wait = backoff_wait(&cfg, dc);
            st.pending.insert(
                sseq,
                InFlight {
                    cseq,
                    ts: now_nanos(),
                    deadline: now + wait,
                },
            );
        }
        st.dirty = true;
        st.last_send = now;
        st.last_active = now;
        st.last_delivery = Some(SystemTime::now());
        out.push(Out {
            subject: target,
            shown: Some(msg.subject),
            reply: Some(reply),
            headers: hdrs,
            payload,
        });
        out.extend(completed);
        None
    }

    /// The waiting request a `pinned_client` consumer serves next, as an
    /// index into `st.waiting`, and whether it was pinned just now. Without
    /// a pin the first request without an id takes one; with a pin only
    /// its holder is served and requests without an id wait. A request
    /// naming another id (a lapsed pin) hears `423 Nats-Wrong-Pin-Id` and
    /// goes, as in nats-server.
    fn pinned_request(
        &self,
        st: &mut CState,
        now: Instant,
        ttl: Duration,
        out: &mut Vec<Out>,
    ) -> Option<(usize, bool)> {
        let mut i = 0;
        while i < st.waiting.len() {
            let asked = st.waiting[i].pin_id.as_deref().filter(|p| !p.is_empty());
            let current = st.pin.as_ref().map(|p| p.id.as_str());
            let (pinned, has_id, holder) = (current.is_some(), asked.is_some(), current == asked);
            if !pinned && !has_id {
                let p = pin::Pin::new(ttl, now);
                st.waiting[i].pin_id = Some(p.id.clone());
                out.push(self.pinned_advisory(&p.id));
                st.pin = Some(p);
                return Some((i, true));
            }
            if pinned && holder {
                return Some((i, false));
            }
            if pinned && !has_id {
                i += 1;
                continue;
            }
            if let Some(w) = st.waiting.remove(i) {
                out.push(status(
                    &w.reply,
                    423,
                    "Nats-Wrong-Pin-Id",
                    &pending_hdrs(&w),
                ));
            }
        }
        None
    }

    /// The group a pin belongs to (nats-server serves the first one).
    fn pin_group(&self) -> String {
        let cfg = self.config.read_recursive();
        cfg.priority_groups.first().cloned().unwrap_or_default()
    }

    fn account_name(&self) -> String {
        self.account
            .upgrade()
            .map(|a| a.name.clone())
            .unwrap_or_default()
    }

    fn pinned_advisory(&self, id: &str) -> Out {
        let (account, group) = (self.account_name(), self.pin_group());
        let (subject, body) =
            pin::pinned_advisory(&account, &self.stream_name, &self.name, &group, id);
        advisory_out(subject, &body)
    }

    fn unpinned_advisory(&self, reason: &str) -> Out {
        let (account, group) = (self.account_name(), self.pin_group());
        let (subject, body) =
            pin::unpinned_advisory(&account, &self.stream_name, &self.name, &group, reason);
        advisory_out(subject, &body)
    }

    /// `CONSUMER.UNPIN`: the pinned client loses its pin (whether or not one
    /// was pinned, nats-server announces it); the next request without an
    /// id takes over.
    pub fn unpin(&self) {
        let advisory = self.unpinned_advisory("admin");
        {
            let mut st = self.state.lock();
            st.pin = None;
            st.advisories.push(advisory);
        }
        self.wake();
    }

    /// `$JS.EVENT.ADVISORY.CONSUMER.PAUSE.<stream>.<consumer>`: the pause
    /// state now (`paused` is whether `until` is still ahead), with the
    /// deadline as the config has it (a new consumer's in its own offset).
    fn pause_advisory(&self, until: Option<SystemTime>) -> Out {
        let paused = until.is_some_and(|t| SystemTime::now() < t);
        let shown = self
            .config
            .read_recursive()
            .pause_until
            .clone()
            .unwrap_or_else(|| types::rfc3339(None));
        let body = serde_json::json!({
            "type": "io.nats.jetstream.advisory.v1.consumer_pause",
            "id": types::event_id(),
            "timestamp": types::rfc3339(Some(SystemTime::now())),
            "stream": self.stream_name,
            "consumer": self.name,
            "paused": paused,
            "pause_until": shown,
        });
        advisory_out(
            format!(
                "$JS.EVENT.ADVISORY.CONSUMER.PAUSE.{}.{}",
                self.stream_name, self.name
            ),
            &body,
        )
    }

    /// `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>`, as
    /// nats-server sends it when a message will not be redelivered again.
    fn max_deliver_advisory(&self, sseq: u64, deliveries: u64) -> Out {
        let body = serde_json::json!({
            "type": "io.nats.jetstream.advisory.v1.max_deliver",
            "id": types::event_id(),
            "timestamp": types::rfc3339(Some(SystemTime::now())),
            "stream": self.stream_name,
            "consumer": self.name,
            "stream_seq": sseq,
            "deliveries": deliveries,
        });
        advisory_out(
            format!(
                "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
                self.stream_name, self.name
            ),
            &body,
        )
    }

    fn heartbeats(&self, st: &mut CState, now: Instant, out: &mut Vec<Out>) {
        let last = SequencePair {
            consumer_seq: st.delivered.consumer_seq,
            stream_seq: st.delivered.stream_seq,
        };
        if let Some(subject) = self
            .config
            .read_recursive()
            .deliver_subject
            .clone()
            .filter(|s| !s.is_empty())
        {
            let cfg = self.config.read_recursive();
            let hb_due =
                cfg.idle_heartbeat > 0 && st.last_send + types::duration(cfg.idle_heartbeat) <= now;
            // With flow-control acks, flow control is also how deliveries
            // get acknowledged: ask when max_ack_pending is reached, and
            // when idle with deliveries unacknowledged.
            let fc_acks = cfg.ack_policy == AckPolicy::FlowControl && !st.pending.is_empty();
            let ack_window_full =
                cfg.max_ack_pending > 0 && st.pending.len() as i64 >= cfg.max_ack_pending;
            drop(cfg);
            // The heartbeat first, naming only a request already out (as
            // nats-server orders them): a request made in this same pass
            // is not one the client has stalled on.
            if self.config.read_recursive().idle_heartbeat > 0 {
                let hb = types::duration(self.config.read_recursive().idle_heartbeat);
                if st.last_send + hb <= now {
                    out.push(heartbeat(&subject, last, st.fc_pending.as_deref()));
                    st.last_send = now;
                }
            }
            if self.config.read_recursive().flow_control
                && st.fc_pending.is_none()
                && (st.fc_msgs >= FC_MSGS
                    || st.fc_bytes >= FC_BYTES
                    || (fc_acks && (ack_window_full || hb_due)))
            {
                st.fc_id += 1;
                let fc = format!("$JS.FC.{}.{}.{}", self.stream_name, self.name, st.fc_id);
                out.push(Out {
                    subject: subject.clone(),
                    shown: None,
                    reply: Some(fc.clone()),
                    headers: headers::build(Some((100, "FlowControl Request")), &[]),
                    payload: bytes::Bytes::new(),
                });
                st.fc_pending = Some(fc);
                st.fc_msgs = 0;
                st.fc_bytes = 0;
            }
            return;
        }
        for w in st.waiting.iter_mut() {
            if let Some(hb) = w.hb {
                if w.next_hb <= now {
                    out.push(heartbeat(&w.reply, last, None));
                    w.next_hb = now + hb;
                }
            }
        }
    }

    fn next_wakeup(&self, st: &CState) -> Option<Instant> {
        let mut at: Option<Instant> = None;
        let mut consider = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        if self.config.read_recursive().ack_policy.redelivers() {
            if let Some(d) = st.pending.values().map(|p| p.deadline).min() {
                consider(d);
            }
        }
        for w in &st.waiting {
            if let Some(e) = w.expires {
                consider(e);
            }
            if w.hb.is_some() {
                consider(w.next_hb);
            }
        }
        if self.config.read_recursive().idle_heartbeat > 0
            && self.config.read_recursive().deliver_subject.is_some()
        {
            consider(st.last_send + types::duration(self.config.read_recursive().idle_heartbeat));
        }
        if let Some(p) = &st.pin {
            consider(p.deadline);
        }
        if let Some(p) = st.pause {
            if let Ok(left) = p.duration_since(SystemTime::now()) {
                consider(Instant::now() + left);
            }
        }
        if let Some(t) = self.inactive_threshold() {
            consider(Instant::now() + t);
        }
        if self.config.read_recursive().deliver_subject.is_some() {
            // Interest on the deliver subject is polled.
            consider(Instant::now() + Duration::from_millis(100));
        }
        if let Some(t) = save_due(st.dirty, st.last_save, self.state_file.is_some()) {
            consider(t);
        }
        at
    }

    fn maybe_save(&self, st: &mut CState, force: bool) {
        let Some(file) = &self.state_file else {
            // Nothing to write it to (a memory consumer): nothing pending.
            st.dirty = false;
            return;
        };
        if !st.dirty || (!force && st.last_save.elapsed() < SAVE_EVERY) {
            return;
        }
        let state = ConsumerState {
            delivered: st.delivered,
            ack_floor: ack_floor(st),
            pending: st
                .pending
                .iter()
                .map(|(s, p)| {
                    (
                        *s,
                        Pending {
                            sequence: p.cseq,
                            ts: p.ts,
                        },
                    )
                })
                .collect(),
            redelivered: st.redelivered.clone(),
        };
        match file.save(&state) {
            Ok(()) => {
                st.dirty = false;
                st.last_save = Instant::now();
            }
            Err(e) => {
                // Tried now: the next attempt waits its turn, rather than
                // the consumer's task retrying (and logging) in a loop.
                st.last_save = Instant::now();
                warn!(
                    "JetStream consumer {:?} > {:?}: saving state: {e}",
                    self.stream_name, self.name
                );
            }
        }
    }

    fn save(&self, force: bool) {
        let mut st = self.state.lock();
        self.maybe_save(&mut st, force);
    }

    /// Remove the consumer's files.
    pub(crate) fn delete_files(&self) {
        if let Some(file) = &self.state_file {
            let dir = file.dir().to_path_buf();
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    pub fn info(&self, server: &Server) -> ConsumerInfo {
        // A consumer is led by its stream's leader: the same cluster view.
        // A server of its own reports none (nats-server's consumers have no
        // Raft group then).
        let clustered = server.jetstream().is_some_and(|js| js.cluster().is_some());
        let cluster = clustered.then(|| match self.stream.upgrade() {
            Some(s) => super::api::cluster_info(server, &s),
            None => ClusterInfo {
                name: Some(server.cluster_name()),
                leader: server.name.clone(),
                ..Default::default()
            },
        });
        let cfg = self.config();
        // A push consumer is bound while its deliver subject has interest.
        let push_bound = cfg
            .deliver_subject
            .as_deref()
            .filter(|d| !d.is_empty())
            .zip(self.account.upgrade())
            .is_some_and(|(d, acc)| has_interest(&acc, d));
        let st = self.state.lock();
        let floor = ack_floor(&st);
        let pause_left = st
            .pause
            .and_then(|p| p.duration_since(SystemTime::now()).ok())
            .filter(|d| !d.is_zero());
        ConsumerInfo {
            stream_name: self.stream_name.clone(),
            name: self.name.clone(),
            created: types::rfc3339(Some(self.created)),
            delivered: SequenceInfo {
                consumer_seq: st.delivered.consumer_seq,
                stream_seq: st.delivered.stream_seq,
                last_active: st.last_delivery.map(|t| types::rfc3339(Some(t))),
            },
            ack_floor: SequenceInfo {
                consumer_seq: floor.consumer_seq,
                stream_seq: floor.stream_seq,
                last_active: st.last_ack.map(|t| types::rfc3339(Some(t))),
            },
            num_ack_pending: st.pending.len() as u64,
            // With one delivery allowed nothing is redelivered, whatever
            // the state counts (nats-server reports 0 then too).
            num_redelivered: if cfg.max_deliver == 1 {
                0
            } else {
                st.redelivered.len() as u64
            },
            num_waiting: st.waiting.len() as u64,
            num_pending: self.num_pending(&st),
            cluster,
            push_bound,
            paused: pause_left.is_some(),
            pause_remaining: pause_left.map_or(0, types::nanos),
            ts: types::rfc3339(Some(SystemTime::now())),
            // nats-server reports the first group (it serves one for now).
            priority_groups: cfg
                .priority_groups
                .first()
                .map(|g| types::PriorityGroupState {
                    group: g.clone(),
                    pinned_client_id: st.pin.as_ref().map(|p| p.id.clone()),
                    pinned_ts: types::rfc3339(st.pin.as_ref().map(|p| p.since)),
                })
                .into_iter()
                .collect(),
            config: Some(cfg),
        }
    }

    fn send_status(&self, server: &Server, reply: &str, code: u16, desc: &str) {
        if let Some(acc) = self.account.upgrade() {
            let o = status::<&str>(reply, code, desc, &[]);
            acc.client
                .publish(server, &o.subject, None, &o.headers, b"");
        }
    }
}

/// The consumer's `max_batch`, `max_expires` and `max_bytes` limits on a
/// pull request: nats-server's 409 description for the first one broken.
fn over_request_limits(cfg: &ConsumerConfig, req: &NextRequest, batch: i64) -> Option<String> {
    if cfg.max_batch > 0 && batch > cfg.max_batch {
        return Some(format!("Exceeded MaxRequestBatch of {}", cfg.max_batch));
    }
    if req.expires > 0 && cfg.max_expires > 0 && req.expires > cfg.max_expires {
        return Some(format!(
            "Exceeded MaxRequestExpires of {}",
            crate::monitor::gofmt::go_duration(cfg.max_expires.max(0) as u64)
        ));
    }
    if req.max_bytes > 0 && cfg.max_bytes > 0 && req.max_bytes > cfg.max_bytes {
        return Some(format!("Exceeded MaxRequestMaxBytes of {}", cfg.max_bytes));
    }
    None
}

/// A prioritized consumer's queue stays ordered by priority, first come
/// first served within one: `w` goes behind every request of its priority.
fn enqueue_by_priority(waiting: &mut VecDeque<Waiting>, w: Waiting) {
    let at = waiting
        .iter()
        .position(|x| x.priority > w.priority)
        .unwrap_or(waiting.len());
    waiting.insert(at, w);
}

/// An advisory as the delivery pass publishes it.
fn advisory_out(subject: String, body: &serde_json::Value) -> Out {
    Out {
        subject,
        shown: None,
        reply: None,
        headers: Vec::new(),
        payload: serde_json::to_vec(body).unwrap_or_default().into(),
    }
}

/// How long a pin lasts without a pull, for a `pinned_client` consumer.
fn pin_ttl(cfg: &ConsumerConfig) -> Option<Duration> {
    (cfg.priority_policy == types::PriorityPolicy::PinnedClient).then(|| {
        match cfg.priority_timeout {
            t if t > 0 => types::duration(t),
            _ => DEFAULT_PINNED_TTL,
        }
    })
}

/// A pull request's priority group fields against the consumer's policy:
/// nats-server's 400 description when they do not fit.
fn priority_request_error(cfg: &ConsumerConfig, req: &NextRequest) -> Option<String> {
    use types::PriorityPolicy as P;
    if !req.structured {
        return None;
    }
    if (req.min_pending != 0 || req.min_ack_pending != 0) && cfg.priority_policy != P::Overflow {
        return Some("Bad Request - Not a Overflow Priority consumer".into());
    }
    if req.id.as_deref().is_some_and(|i| !i.is_empty()) && cfg.priority_policy != P::PinnedClient {
        return Some("Bad Request - Not a Pinned Client Priority consumer".into());
    }
    if !(0..=9).contains(&req.priority) {
        return Some("Bad Request - Priority must be between 0 and 9".into());
    }
    if cfg.priority_policy != P::None {
        match req.group.as_deref().filter(|g| !g.is_empty()) {
            None => return Some("Bad Request - Priority Group missing".into()),
            Some(g) if !cfg.priority_groups.iter().any(|x| x == g) => {
                return Some("Bad Request - Invalid Priority Group".into())
            }
            Some(_) => {}
        }
    }
    None
}

fn ack_floor(st: &CState) -> SequencePair {
    match st.pending.iter().next() {
        None => st.delivered,
        Some((sseq, p)) => SequencePair {
            consumer_seq: p.cseq.saturating_sub(1),
            stream_seq: sseq.saturating_sub(1),
        },
    }
}

fn ack_wait(cfg: &ConsumerConfig) -> Duration {
    match cfg.ack_wait {
        n if n > 0 => types::duration(n),
        _ => DEFAULT_ACK_WAIT,
    }
}

/// `backoff` overrides `ack_wait` per delivery attempt.
fn backoff_wait(cfg: &ConsumerConfig, dc: u64) -> Duration {
    if cfg.backoff.is_empty() {
        return ack_wait(cfg);
    }
    let i = (dc.saturating_sub(1) as usize).min(cfg.backoff.len() - 1);
    types::duration(cfg.backoff[i])
}

/// Whether a pull request's reply still reaches someone. A reply into
/// another account (`_R_.`, a service import's response route) is not a
/// subscription here, so it always counts.
fn reply_has_interest(acc: &JsAccount, reply: &str) -> bool {
    reply.starts_with(crate::accounts::RESPONSE_PREFIX) || has_interest(acc, reply)
}

fn has_interest(acc: &JsAccount, subject: &str) -> bool {
    acc.client.account().has_interest(subject.as_bytes())
}

fn pending_hdrs(w: &Waiting) -> Vec<(String, String)> {
    vec![
        ("Nats-Pending-Messages".to_string(), w.batch.to_string()),
        (
            "Nats-Pending-Bytes".to_string(),
            (w.max_bytes - w.bytes).max(0).to_string(),
        ),
    ]
}

fn status<S: AsRef<str>>(reply: &str, code: u16, desc: &str, hdrs: &[(S, S)]) -> Out {
    let pairs: Vec<(&str, &str)> = hdrs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    Out {
        subject: reply.to_string(),
        shown: None,
        reply: None,
        headers: headers::build(Some((code, desc)), &pairs),
        payload: bytes::Bytes::new(),
    }
}

fn heartbeat(subject: &str, last: SequencePair, stalled: Option<&str>) -> Out {
    let c = last.consumer_seq.to_string();
    let s = last.stream_seq.to_string();
    let mut h = vec![
        ("Nats-Last-Consumer", c.as_str()),
        ("Nats-Last-Stream", s.as_str()),
    ];
    if let Some(fc) = stalled {
        h.push(("Nats-Consumer-Stalled", fc));
    }
    Out {
        subject: subject.to_string(),
        shown: None,
        reply: None,
        headers: headers::build(Some((100, "Idle Heartbeat")), &h),
        payload: bytes::Bytes::new(),
    }
}

/// When a consumer's state is next due to be written: after [`SAVE_EVERY`]
/// since the last write, while something changed, and never without a file
/// to write it to. A memory consumer once woke its task at a deadline
/// already past, forever: a busy loop per consumer.
fn save_due(dirty: bool, last_save: Instant, has_file: bool) -> Option<Instant> {
    (dirty && has_file).then(|| last_save + SAVE_EVERY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_consumer_with_a_file_is_due_to_save() {
        let long_ago = Instant::now() - Duration::from_secs(60);
        assert_eq!(save_due(true, long_ago, false), None);
        assert_eq!(save_due(false, long_ago, true), None);
        assert_eq!(save_due(true, long_ago, true), Some(long_ago + SAVE_EVERY));
    }

    #[test]
    fn ack_bodies() {
        assert_eq!(Ack::parse(b""), Ack::Ack);
        assert_eq!(Ack::parse(b"+ACK"), Ack::Ack);
        assert_eq!(Ack::parse(b"-NAK"), Ack::Nak(None));
        assert_eq!(
            Ack::parse(br#"-NAK {"delay": 1000000000}"#),
            Ack::Nak(Some(Duration::from_secs(1)))
        );
        assert_eq!(Ack::parse(b"+WPI"), Ack::InProgress);
        assert_eq!(Ack::parse(b"+TERM reason"), Ack::Term);
        assert_eq!(Ack::parse(b"+NXT 5"), Ack::Next(5));
        assert_eq!(Ack::parse(br#"+NXT {"batch":3}"#), Ack::Next(3));
    }

    #[test]
    fn pull_request_limits_in_nats_server_words() {
        let cfg = ConsumerConfig {
            max_batch: 5,
            max_expires: 2_000_000_000,
            max_bytes: 100,
            ..Default::default()
        };
        let req = |expires, max_bytes| NextRequest {
            expires,
            max_bytes,
            ..Default::default()
        };
        assert_eq!(over_request_limits(&cfg, &req(0, 0), 5), None);
        assert_eq!(
            over_request_limits(&cfg, &req(0, 0), 6).as_deref(),
            Some("Exceeded MaxRequestBatch of 5")
        );
        assert_eq!(
            over_request_limits(&cfg, &req(3_000_000_000, 0), 1).as_deref(),
            Some("Exceeded MaxRequestExpires of 2s")
        );
        assert_eq!(
            over_request_limits(&cfg, &req(0, 101), 1).as_deref(),
            Some("Exceeded MaxRequestMaxBytes of 100")
        );
        assert_eq!(
            over_request_limits(&ConsumerConfig::default(), &req(9, 9), 9),
            None
        );
    }

    #[test]
    fn priority_request_fields_in_nats_server_words() {
        let overflow = ConsumerConfig {
            priority_policy: types::PriorityPolicy::Overflow,
            priority_groups: vec!["A".into()],
            ..Default::default()
        };
        let req = |body: &str| {
            let mut r: NextRequest = serde_json::from_str(body).expect("request json");
            r.structured = true;
            r
        };
        let err = |cfg: &ConsumerConfig, body: &str| priority_request_error(cfg, &req(body));
        assert_eq!(err(&overflow, r#"{"group":"A","min_pending":3}"#), None);
        assert_eq!(
            err(&overflow, r#"{"batch":1}"#).as_deref(),
            Some("Bad Request - Priority Group missing")
        );
        assert_eq!(
            err(&overflow, r#"{"group":"B"}"#).as_deref(),
            Some("Bad Request - Invalid Priority Group")
        );
        assert_eq!(
            err(&overflow, r#"{"group":"A","id":"x"}"#).as_deref(),
            Some("Bad Request - Not a Pinned Client Priority consumer")
        );
        assert_eq!(
            err(&overflow, r#"{"group":"A","priority":10}"#).as_deref(),
            Some("Bad Request - Priority must be between 0 and 9")
        );
        let plain = ConsumerConfig::default();
        assert_eq!(
            err(&plain, r#"{"min_ack_pending":1}"#).as_deref(),
            Some("Bad Request - Not a Overflow Priority consumer")
        );
        // A group on a consumer without a policy is not looked at.
        assert_eq!(err(&plain, r#"{"group":"Z"}"#), None);
        // An empty or numeric body carries no priority fields to check.
        let bare = NextRequest {
            batch: 1,
            ..Default::default()
        };
        assert_eq!(priority_request_error(&overflow, &bare), None);
    }

    #[test]
    fn prioritized_queue_order() {
        let w = |reply: &str, priority| Waiting {
            reply: reply.into(),
            batch: 1,
            max_bytes: 0,
            bytes: 0,
            delivered: 0,
            expires: None,
            no_wait: false,
            hb: None,
            next_hb: Instant::now(),
            min_pending: 0,
            min_ack_pending: 0,
            pin_id: None,
            priority,
        };
        let mut q = VecDeque::new();
        for (r, p) in [("a5", 5), ("b1", 1), ("c5", 5), ("d0", 0), ("e1", 1)] {
            enqueue_by_priority(&mut q, w(r, p));
        }
        let order: Vec<&str> = q.iter().map(|w| w.reply.as_str()).collect();
        assert_eq!(order, ["d0", "b1", "e1", "a5", "c5"]);
    }

    #[test]
    fn pin_timeouts() {
        let mut cfg = ConsumerConfig {
            priority_policy: types::PriorityPolicy::PinnedClient,
            priority_groups: vec!["A".into()],
            ..Default::default()
        };
        assert_eq!(pin_ttl(&cfg), Some(DEFAULT_PINNED_TTL));
        cfg.priority_timeout = 1_000_000_000;
        assert_eq!(pin_ttl(&cfg), Some(Duration::from_secs(1)));
        // An id is the pinned policy's field; other policies refuse it.
        let mut req: NextRequest =
            serde_json::from_str(r#"{"group":"A","id":"p1"}"#).expect("request json");
        req.structured = true;
        assert_eq!(priority_request_error(&cfg, &req), None);
        cfg.priority_policy = types::PriorityPolicy::Overflow;
        assert_eq!(pin_ttl(&cfg), None);
        assert!(priority_request_error(&cfg, &req).is_some());
    }

    #[test]
    fn overflow_thresholds() {
        let w = |min_pending, min_ack_pending| Waiting {
            reply: String::new(),
            batch: 1,
            max_bytes: 0,
            bytes: 0,
            delivered: 0,
            expires: None,
            no_wait: false,
            hb: None,
            next_hb: Instant::now(),
            min_pending,
            min_ack_pending,
            pin_id: None,
            priority: 0,
        };
        assert!(w(0, 0).overflow_allows(0, 0));
        assert!(w(5, 0).overflow_allows(5, 0));
        assert!(!w(5, 0).overflow_allows(4, 100));
        assert!(w(0, 2).overflow_allows(0, 2));
        assert!(!w(0, 2).overflow_allows(100, 1));
        // Either threshold met is enough.
        assert!(w(5, 2).overflow_allows(1, 2));
        assert!(w(5, 2).overflow_allows(5, 0));
        assert!(!w(5, 2).overflow_allows(4, 1));
    }

    #[test]
    fn backoff_overrides_ack_wait() {
        let cfg = ConsumerConfig {
            ack_wait: 5_000_000_000,
            backoff: vec![1_000_000_000, 2_000_000_000],
            ..Default::default()
        };
        assert_eq!(backoff_wait(&cfg, 1), Duration::from_secs(1));
        assert_eq!(backoff_wait(&cfg, 2), Duration::from_secs(2));
        assert_eq!(backoff_wait(&cfg, 9), Duration::from_secs(2));
        assert_eq!(
            backoff_wait(&ConsumerConfig::default(), 1),
            DEFAULT_ACK_WAIT
        );
    }
}
