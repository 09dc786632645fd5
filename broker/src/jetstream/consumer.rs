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
    filters: Vec<String>,
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
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("stream", &self.stream_name)
            .field("name", &self.name)
            .finish()
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
        };
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
            filters,
            stream: Arc::downgrade(stream),
            account: Arc::downgrade(account),
            state: Mutex::new(st),
            wake: Notify::new(),
            stopped: AtomicBool::new(false),
            passive: AtomicBool::new(stream.is_passive()),
            state_file,
        })
    }

    pub fn config(&self) -> ConsumerConfig {
        self.config.read_recursive().clone()
    }

    /// Apply an updated configuration (already checked to change only
    /// what may change), and save it for restarts.
    pub(crate) fn update(&self, cfg: ConsumerConfig) {
        *self.config.write() = cfg;
        self.wake();
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
        self.filters.is_empty()
            || self
                .filters
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
        self.passive.store(passive, Ordering::Release);
        if passive {
            self.state.lock().waiting.clear();
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

    /// Run the delivery loop until the consumer is stopped.
    pub(crate) fn spawn(self: &Arc<Self>, server: &Arc<Server>) {
        let me = self.clone();
        let server = Arc::downgrade(server);
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
        let expires = (req.expires > 0).then(|| now + types::duration(req.expires));
        let mut st = self.state.lock();
        st.last_active = now;
        let available = self.num_pending(&st) + st.redeliver.len() as u64;
        if req.no_wait && available == 0 && expires.is_none() {
            drop(st);
            self.send_status(server, reply, 404, "No Messages");
            return;
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
        st.waiting.push_back(Waiting {
            reply: reply.to_string(),
            batch,
            max_bytes: req.max_bytes,
            bytes: 0,
            delivered: 0,
            expires,
            no_wait: req.no_wait,
            hb,
            next_hb: now + hb.unwrap_or(Duration::ZERO),
        });
        drop(st);
        self.wake();
    }

    /// An acknowledgement for stream sequence `sseq`, delivered `dc` times.
    pub fn ack(&self, sseq: u64, ack: &Ack, server: &Server, ack_reply: &str) {
        let subject_for_retention;
        {
            let mut st = self.state.lock();
            st.last_active = Instant::now();
            match ack {
                Ack::Ack | Ack::Next(_) => {
                    if self.config.read_recursive().ack_policy == AckPolicy::All {
                        let done: Vec<u64> = st.pending.range(..=sseq).map(|(s, _)| *s).collect();
                        for s in done {
                            st.pending.remove(&s);
                            st.redeliver.remove(&s);
                            st.redelivered.remove(&s);
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
                stream.acked(sseq);
            }
        }
        self.wake();
    }

    /// A reply to our flow-control request.
    pub fn flow_control_reply(&self, subject: &str) {
        let mut st = self.state.lock();
        if st.fc_pending.as_deref() == Some(subject) {
            st.fc_pending = None;
            drop(st);
            self.wake();
        }
    }

    fn num_pending(&self, st: &CState) -> u64 {
        let Some(stream) = self.stream.upgrade() else {
            return 0;
        };
        let inner = stream.inner.lock();
        let from_store = if self.filters.is_empty() {
            inner.store.num_pending("", st.next_seq)
        } else {
            self.filters
                .iter()
                .map(|f| inner.store.num_pending(f, st.next_seq))
                .sum()
        };
        from_store + st.last_per_subject.len() as u64
    }

    /// The next message to deliver: redeliveries first, then
    /// last-per-subject starting points, then new messages.
    fn next_message(&self, st: &mut CState, stream: &Stream) -> Option<(StoredMsg, bool)> {
        let inner = stream.inner.lock();
        while let Some(seq) = st.redeliver.pop_first() {
            match inner.store.load(seq) {
                Ok(Some(m)) => return Some((m, true)),
                _ => {
                    st.pending.remove(&seq);
                    st.redelivered.remove(&seq);
                }
            }
        }
        while let Some(seq) = st.last_per_subject.pop_front() {
            if let Ok(Some(m)) = inner.store.load(seq) {
                return Some((m, false));
            }
        }
        let next = if self.filters.is_empty() {
            inner.store.load_next("", st.next_seq).ok().flatten()
        } else {
            self.filters
                .iter()
                .filter_map(|f| inner.store.load_next(f, st.next_seq).ok().flatten())
                .min_by_key(|m| m.seq)
        };
        if let Some(m) = &next {
            st.next_seq = m.seq + 1;
        }
        next.map(|m| (m, false))
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
            // Pull requests past their expiry.
            let mut i = 0;
            while i < st.waiting.len() {
                if st.waiting[i].expires.is_some_and(|e| e <= now) {
                    if let Some(w) = st.waiting.remove(i) {
                        out.push(status(&w.reply, 408, "Request Timeout", &pending_hdrs(&w)));
                    }
                } else {
                    i += 1;
                }
            }
            // Redeliveries that are due.
            if self.config.read_recursive().ack_policy != AckPolicy::None {
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
            while sent < PASS && self.can_send(&st, interest) {
                let Some((msg, redelivery)) = self.next_message(&mut st, &stream) else {
                    break;
                };
                if self.config.read_recursive().replay_policy == ReplayPolicy::Original
                    && !redelivery
                {
                    if let Some((prev_ts, at)) = st.replay {
                        let gap = Duration::from_nanos((msg.ts - prev_ts).max(0) as u64);
                        if at + gap > now {
                            // Not yet: put it back and come back then.
                            st.next_seq = msg.seq;
                            st.replay = Some((prev_ts, at));
                            drop(st);
                            self.publish_all(server, &acc, out);
                            return Some(at + gap);
                        }
                    }
                    st.replay = Some((msg.ts, now));
                }
                if !redelivery {
                    remaining = remaining.saturating_sub(1);
                }
                if let Some(o) = self.deliver(&mut st, msg, redelivery, now, remaining) {
                    out.push(o);
                    sent += 1;
                }
            }
            if sent == PASS {
                more = true;
            }
            // No-wait requests at the end of the stream.
            let exhausted = st.redeliver.is_empty() && self.num_pending(&st) == 0;
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
        let cfg = self.config.read_recursive();
        if cfg.ack_policy != AckPolicy::None && st.redeliver.is_empty() {
            let max = match cfg.max_ack_pending {
                0 => DEFAULT_MAX_ACK_PENDING,
                n => n,
            };
            if max > 0 && st.pending.len() as i64 >= max {
                return false;
            }
        }
        if cfg.is_pull() {
            !st.waiting.is_empty()
        } else {
            interest && st.fc_pending.is_none()
        }
    }

    /// Record and format one delivery.
    fn deliver(
        &self,
        st: &mut CState,
        msg: StoredMsg,
        redelivery: bool,
        now: Instant,
        pending: u64,
    ) -> Option<Out> {
        let sseq = msg.seq;
        let dc = if redelivery {
            let n = st.redelivered.entry(sseq).or_insert(0);
            *n += 1;
            *n + 1
        } else {
            1
        };
        let max_deliver = self.config.read_recursive().max_deliver;
        if max_deliver > 0 && dc > max_deliver as u64 {
            st.pending.remove(&sseq);
            st.redelivered.remove(&sseq);
            st.dirty = true;
            return Some(self.max_deliver_advisory(sseq, dc - 1));
        }
        let cseq = st.delivered.consumer_seq + 1;
        st.delivered.consumer_seq = cseq;
        if sseq > st.delivered.stream_seq {
            st.delivered.stream_seq = sseq;
        }
        if self.config.read_recursive().ack_policy != AckPolicy::None {
            let wait = backoff_wait(&self.config.read_recursive(), dc);
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
        let reply = format!(
            "$JS.ACK.{}.{}.{dc}.{sseq}.{cseq}.{}.{pending}",
            self.stream_name, self.name, msg.ts
        );
        let (hdrs, payload) = if self.config.read_recursive().headers_only {
            let size = msg.payload.len().to_string();
            (
                headers::append(&msg.headers, &[("Nats-Msg-Size", &size)]),
                bytes::Bytes::new(),
            )
        } else {
            (msg.headers.to_vec(), msg.payload.clone())
        };
        let size = (hdrs.len() + payload.len()) as i64;
        let target = match self
            .config
            .read_recursive()
            .deliver_subject
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            Some(subject) => {
                st.fc_msgs += 1;
                st.fc_bytes += size as u64;
                subject.to_string()
            }
            None => {
                let w = st.waiting.front_mut()?;
                w.batch -= 1;
                w.delivered += 1;
                w.bytes += size;
                let reply = w.reply.clone();
                let done = w.batch <= 0 || (w.max_bytes > 0 && w.bytes >= w.max_bytes);
                if done {
                    st.waiting.pop_front();
                }
                reply
            }
        };
        Some(Out {
            subject: target,
            shown: Some(msg.subject),
            reply: Some(reply),
            headers: hdrs,
            payload,
        })
    }

    /// `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>`, as
    /// nats-server sends it when a message will not be redelivered again.
    fn max_deliver_advisory(&self, sseq: u64, deliveries: u64) -> Out {
        let body = serde_json::json!({
            "type": "io.nats.jetstream.advisory.v1.max_deliver",
            "id": format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>()),
            "timestamp": types::rfc3339(Some(SystemTime::now())),
            "stream": self.stream_name,
            "consumer": self.name,
            "stream_seq": sseq,
            "deliveries": deliveries,
        });
        Out {
            subject: format!(
                "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
                self.stream_name, self.name
            ),
            shown: None,
            reply: None,
            headers: Vec::new(),
            payload: serde_json::to_vec(&body).unwrap_or_default().into(),
        }
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
            if self.config.read_recursive().flow_control
                && st.fc_pending.is_none()
                && (st.fc_msgs >= FC_MSGS || st.fc_bytes >= FC_BYTES)
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
            if self.config.read_recursive().idle_heartbeat > 0 {
                let hb = types::duration(self.config.read_recursive().idle_heartbeat);
                if st.last_send + hb <= now {
                    out.push(heartbeat(&subject, last, st.fc_pending.as_deref()));
                    st.last_send = now;
                }
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
        if self.config.read_recursive().ack_policy != AckPolicy::None {
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
        if let Some(t) = self.inactive_threshold() {
            consider(Instant::now() + t);
        }
        if self.config.read_recursive().deliver_subject.is_some() {
            // Interest on the deliver subject is polled.
            consider(Instant::now() + Duration::from_millis(100));
        }
        if st.dirty {
            consider(st.last_save + SAVE_EVERY);
        }
        at
    }

    fn maybe_save(&self, st: &mut CState, force: bool) {
        let Some(file) = &self.state_file else {
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
            Err(e) => warn!(
                "JetStream consumer {:?} > {:?}: saving state: {e}",
                self.stream_name, self.name
            ),
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
        let st = self.state.lock();
        let floor = ack_floor(&st);
        ConsumerInfo {
            stream_name: self.stream_name.clone(),
            name: self.name.clone(),
            created: types::rfc3339(Some(self.created)),
            config: Some(self.config()),
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
            num_redelivered: st.redelivered.len() as u64,
            num_waiting: st.waiting.len() as u64,
            num_pending: self.num_pending(&st),
            cluster,
            push_bound: false,
            ts: types::rfc3339(Some(SystemTime::now())),
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

fn has_interest(acc: &JsAccount, subject: &str) -> bool {
    !acc.client
        .account()
        .sublist
        .match_subject(subject.as_bytes())
        .is_empty()
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

#[cfg(test)]
mod tests {
    use super::*;

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
