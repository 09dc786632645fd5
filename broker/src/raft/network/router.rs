//! One node's end of the Raft transport: pending requests and the groups
//! that answer requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{Raft, RaftTypeConfig};
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use super::serve::{self, RaftServer, Serve};
use super::subject::{self, Inbound, InvalidGroup};
use super::wire::Failure;
use super::{Bus, CatchupSource, NetworkConfig};

/// Catch-up answers prepared at once on a node; past it a request is
/// answered "busy" and the peer retries.
const MAX_CATCHUPS_INFLIGHT: usize = 4;

/// Routes this node's Raft traffic: one per node, shared by every group.
///
/// Outbound, it numbers requests and holds a oneshot per request until its
/// answer arrives ([`Router::handle`]) or the request gives up (timeout or
/// cancellation remove it, so nothing leaks). Inbound, it hands requests to
/// the `Raft` registered for their group, on a task of the runtime that
/// created the router, and publishes the answer.
pub struct Router {
    me: u64,
    bus: Arc<dyn Bus>,
    config: NetworkConfig,
    /// `$TRG.<me>.`, to recognise subjects addressed to this node.
    inbox: String,
    rt: tokio::runtime::Handle,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>, ahash::RandomState>>,
    groups: RwLock<HashMap<Box<str>, Arc<dyn Serve>, ahash::RandomState>>,
    /// What answers `catchup` requests, per group.
    catchups: RwLock<HashMap<Box<str>, Arc<dyn CatchupSource>, ahash::RandomState>>,
    /// Catch-up answers being prepared now (they read disk).
    catchups_inflight: Arc<std::sync::atomic::AtomicUsize>,
    counters: Counters,
    /// When each peer last answered, per group: monitoring's `active`.
    contacts: Mutex<Contacts>,
    /// The origin of [`Contact`] times.
    epoch: Instant,
}

/// Contact records by (group, peer).
type Contacts = HashMap<(Arc<str>, u64), Arc<Contact>, ahash::RandomState>;

/// The last time a peer answered a group's request, as nanoseconds since
/// the router's epoch (0: never). One per connection, updated without a
/// lock on every answer.
#[derive(Debug, Default)]
pub(super) struct Contact(AtomicU64);

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    timeouts: AtomicU64,
    failures: AtomicU64,
    oversized: AtomicU64,
    late_replies: AtomicU64,
}

/// What the transport of this node has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Requests waiting for an answer now.
    pub pending: usize,
    /// Requests sent.
    pub requests: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Requests answered with a transport failure or an undecodable answer.
    pub failures: u64,
    /// Append-entries batches sent back to openraft to split, and
    /// messages too large to send at all.
    pub oversized: u64,
    /// Answers that arrived after their request gave up.
    pub late_replies: u64,
}

/// Why a group could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Invalid(#[from] InvalidGroup),
    #[error("Raft group {0:?} is already registered on this node")]
    Duplicate(String),
}

impl Router {
    /// A router for node `me` with the default [`NetworkConfig`].
    ///
    /// # Panics
    /// Outside a Tokio runtime: inbound requests run on the runtime that
    /// creates the router.
    pub fn new(me: u64, bus: Arc<dyn Bus>) -> Arc<Self> {
        Self::with_config(me, bus, NetworkConfig::default())
    }

    /// A router for node `me`; see [`Router::new`].
    pub fn with_config(me: u64, bus: Arc<dyn Bus>, mut config: NetworkConfig) -> Arc<Self> {
        if config.max_message < NetworkConfig::MIN_MESSAGE {
            tracing::warn!(
                max_message = config.max_message,
                "raft max_message too small, using {}",
                NetworkConfig::MIN_MESSAGE
            );
            config.max_message = NetworkConfig::MIN_MESSAGE;
        }
        config.max_inflight_per_group = config.max_inflight_per_group.max(1);
        Arc::new(Self {
            me,
            bus,
            inbox: subject::inbox(me),
            config,
            rt: tokio::runtime::Handle::current(),
            // A random start: an answer meant for a previous incarnation of
            // this node (same subjects) must not complete a new request.
            next_id: AtomicU64::new(rand::random()),
            pending: Mutex::default(),
            groups: RwLock::default(),
            catchups: RwLock::default(),
            catchups_inflight: Arc::default(),
            counters: Counters::default(),
            contacts: Mutex::default(),
            epoch: Instant::now(),
        })
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.me
    }

    /// The limits in force.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// What to subscribe to, in the system account, and feed to
    /// [`Router::handle`].
    pub fn subscription(&self) -> String {
        subject::subscription(self.me)
    }

    /// Makes `raft` answer requests for `group` on this node.
    pub fn register<C>(&self, group: &str, raft: Raft<C>) -> Result<(), RegisterError>
    where
        C: RaftTypeConfig<NodeId = u64>,
    {
        subject::validate_group(group)?;
        let server = RaftServer::new(
            raft,
            group,
            self.bus.clone(),
            self.rt.clone(),
            self.config.max_inflight_per_group,
        );
        let mut groups = self.groups.write();
        if groups.contains_key(group) {
            return Err(RegisterError::Duplicate(group.to_owned()));
        }
        groups.insert(group.into(), Arc::new(server));
        tracing::debug!(group, "raft group registered");
        Ok(())
    }

    /// Makes `source` answer peers' `catchup` requests for `group` on this
    /// node (replacing an earlier source); [`Router::unregister`] removes
    /// it with the group.
    pub fn register_catchup(
        &self,
        group: &str,
        source: Arc<dyn CatchupSource>,
    ) -> Result<(), RegisterError> {
        subject::validate_group(group)?;
        self.catchups.write().insert(group.into(), source);
        Ok(())
    }

    /// Stops answering requests for `group` (they get "unknown group" at
    /// once); requests already being handled finish. Returns whether the
    /// group was registered.
    pub fn unregister(&self, group: &str) -> bool {
        self.catchups.write().remove(group);
        let removed = self.groups.write().remove(group).is_some();
        if removed {
            tracing::debug!(group, "raft group unregistered");
        }
        removed
    }

    /// Takes one message received on [`Router::subscription`]. Never
    /// blocks: an answer completes its pending request, a request is
    /// decoded here and handled on a task.
    pub fn handle(&self, subject: &str, reply: Option<&str>, payload: &[u8]) {
        match subject::parse(&self.inbox, subject) {
            Ok(Inbound::Reply(id)) => {
                let waiter = self.pending.lock().remove(&id);
                match waiter {
                    // The receiver may have given up since: nothing to do.
                    Some(tx) => {
                        let _ = tx.send(payload.to_vec());
                    }
                    None => {
                        self.counters.late_replies.fetch_add(1, Ordering::Relaxed);
                        tracing::trace!(id, "raft answer for no pending request");
                    }
                }
            }
            Ok(Inbound::Request { group, op }) => {
                let Some(reply) = reply.filter(|r| subject::is_reply(r)) else {
                    tracing::debug!(
                        subject,
                        reply,
                        "raft request without a raft reply subject dropped"
                    );
                    return;
                };
                if op == subject::Op::Catchup {
                    self.serve_catchup(group, payload, reply);
                    return;
                }
                let server = self.groups.read().get(group).cloned();
                match server {
                    Some(server) => server.serve(op, payload, reply),
                    None => {
                        tracing::debug!(group, %op, "raft request for an unknown group");
                        serve::fail(&*self.bus, reply, Failure::UnknownGroup);
                    }
                }
            }
            Err(e) => tracing::debug!(subject, error = %e, "raft message dropped"),
        }
    }

    /// How long ago `peer` last answered a request of `group` from this
    /// node (`None`: never, or this node sent it nothing).
    pub fn last_contact(&self, group: &str, peer: u64) -> Option<Duration> {
        let contacts = self.contacts.lock();
        let c = contacts.get(&(Arc::<str>::from(group), peer))?;
        let at = c.0.load(Ordering::Relaxed);
        (at != 0).then(|| {
            self.epoch
                .elapsed()
                .saturating_sub(Duration::from_nanos(at))
        })
    }

    /// The contact record of a connection to `peer` for `group`.
    pub(super) fn contact(&self, group: &Arc<str>, peer: u64) -> Arc<Contact> {
        self.contacts
            .lock()
            .entry((group.clone(), peer))
            .or_default()
            .clone()
    }

    /// `peer` answered now.
    pub(super) fn touch(&self, contact: &Contact) {
        let nanos = self.epoch.elapsed().as_nanos().max(1);
        contact
            .0
            .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Ask `target`'s replica of `group` to campaign now (leadership
    /// transfer): the caller, the leader, has stopped its heartbeats and
    /// votes for a candidate whose log is as long as its own.
    pub async fn request_elect(
        &self,
        target: u64,
        group: &str,
        ttl: Duration,
    ) -> Result<(), String> {
        self.ask(target, group, subject::Op::Elect, ttl).await
    }

    /// Whether `target`'s replica of `group` already belongs to a group
    /// (has a membership, or has been reached by a member): a server asks
    /// before forming a new group, so that it never forms one beside an
    /// existing group. An error when the peer does not answer, or does not
    /// know the group (not yet started, or a version without this request).
    pub async fn request_joined(
        &self,
        target: u64,
        group: &str,
        ttl: Duration,
    ) -> Result<bool, String> {
        self.ask(target, group, subject::Op::Joined, ttl).await
    }

    /// A request without arguments that `target`'s Raft node answers
    /// itself (its errors are openraft's fatal ones).
    async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        target: u64,
        group: &str,
        op: subject::Op,
        ttl: Duration,
    ) -> Result<T, String> {
        let mut body = Vec::new();
        super::wire::encode_into(&mut body, &()).map_err(|e| e.to_string())?;
        self.request::<T, openraft::error::Fatal<u64>>(target, group, op, &body, ttl)
            .await
    }

    /// Ask `target`'s [`CatchupSource`] for `group` to answer `request`
    /// (opaque to this layer); its answer, or why there is none.
    pub async fn request_catchup(
        &self,
        target: u64,
        group: &str,
        request: &[u8],
        ttl: Duration,
    ) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        super::wire::encode_into(&mut body, &request).map_err(|e| e.to_string())?;
        self.request::<Vec<u8>, String>(target, group, subject::Op::Catchup, &body, ttl)
            .await
    }

    /// One request that is not an openraft RPC, and its decoded answer.
    async fn request<T, E>(
        &self,
        target: u64,
        group: &str,
        op: subject::Op,
        body: &[u8],
        ttl: Duration,
    ) -> Result<T, String>
    where
        T: serde::de::DeserializeOwned,
        E: serde::de::DeserializeOwned + std::fmt::Display,
    {
        subject::validate_group(group).map_err(|e| e.to_string())?;
        let mut pending = self.begin();
        let mut reply = String::new();
        subject::write_reply(&mut reply, self.me, pending.id);
        self.bus
            .publish(&subject::request(target, group, op), Some(&reply), body);
        let answer = match tokio::time::timeout(ttl, &mut pending.rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => return Err("the request was dropped".into()),
            Err(_) => {
                self.count_timeout();
                return Err(format!("no answer within {ttl:?}"));
            }
        };
        drop(pending);
        match super::wire::decode::<super::wire::Reply<T, E>>(&answer) {
            Ok(super::wire::Reply::Ok(v)) => Ok(v),
            Ok(super::wire::Reply::Raft(e)) => Err(e.to_string()),
            Ok(super::wire::Reply::Failed(f)) => Err(f.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Answers a `catchup` request on a blocking thread (the source reads
    /// disk), at most [`MAX_CATCHUPS_INFLIGHT`] at once.
    fn serve_catchup(&self, group: &str, payload: &[u8], reply: &str) {
        let source = self.catchups.read().get(group).cloned();
        let Some(source) = source else {
            serve::fail(&*self.bus, reply, Failure::UnknownGroup);
            return;
        };
        let request: Vec<u8> = match super::wire::decode(payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(group, error = %e, "undecodable catch-up request");
                serve::fail(&*self.bus, reply, Failure::BadRequest);
                return;
            }
        };
        let inflight = &self.catchups_inflight;
        if inflight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CATCHUPS_INFLIGHT).then_some(n + 1)
            })
            .is_err()
        {
            serve::fail(&*self.bus, reply, Failure::Busy);
            return;
        }
        let inflight = inflight.clone();
        let bus = self.bus.clone();
        let reply = reply.to_owned();
        // Room for the reply's framing around the answer.
        let max = self.config.max_message.saturating_sub(64);
        self.rt.spawn_blocking(move || {
            let answer = match source.answer(&request, max) {
                Ok(bytes) => super::wire::Reply::Ok(bytes),
                Err(e) => super::wire::Reply::Raft(e),
            };
            inflight.fetch_sub(1, Ordering::AcqRel);
            serve::publish(&*bus, &reply, &answer);
        });
    }

    /// Counters of this node's transport.
    pub fn stats(&self) -> RouterStats {
        let c = &self.counters;
        RouterStats {
            pending: self.pending.lock().len(),
            requests: c.requests.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            oversized: c.oversized.load(Ordering::Relaxed),
            late_replies: c.late_replies.load(Ordering::Relaxed),
        }
    }

    pub(super) fn bus(&self) -> &dyn Bus {
        &*self.bus
    }

    /// Registers a new pending request; the answer arrives on the returned
    /// [`Pending`], which forgets the request when dropped.
    pub(super) fn begin(&self) -> Pending<'_> {
        let (tx, rx) = oneshot::channel();
        let mut pending = self.pending.lock();
        let id = loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            // Ids are 64 bit and start at random: a collision would need
            // 2^64 requests in flight, but a duplicate must never steal
            // another request's answer.
            if !pending.contains_key(&id) {
                break id;
            }
        };
        pending.insert(id, tx);
        drop(pending);
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        Pending {
            router: self,
            id,
            rx,
        }
    }

    pub(super) fn count_timeout(&self) {
        self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_failure(&self) {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_oversized(&self) {
        self.counters.oversized.fetch_add(1, Ordering::Relaxed);
    }
}

/// A request waiting for its answer; dropping it (done, timed out, or the
/// caller's future cancelled) removes it from the router.
pub(super) struct Pending<'a> {
    router: &'a Router,
    pub(super) id: u64,
    pub(super) rx: oneshot::Receiver<Vec<u8>>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.router.pending.lock().remove(&self.id);
    }
}
