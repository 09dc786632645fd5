//! One replica of a replicated stream: its Raft node, and while it leads,
//! the stream's subjects feeding proposals whose application decides the
//! publish acks.
//!
//! Only the leader subscribes to the stream's subjects, so a publish made
//! on any server of the cluster reaches it over the routes, as in
//! nats-server. It batches what arrives (group commit: one Raft entry and
//! one fsync per voter for a burst) and proposes without waiting for the
//! previous batch, so batches pipeline; each batch's acks go out once a
//! quorum stored it and the leader applied it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use openraft::{BasicNode, Raft};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::leadership::{self, Leadership};
use super::membership::{self, Assigned};
use super::meta::StreamAssignment;
use super::stepdown::{self, Placement};
use super::stream_sm::{
    MirroredMsg, ProposedMsg, StreamEntry, StreamResponse, StreamStateMachine, StreamTypes,
};
use super::stream_snapshot::{CatchupClient, CatchupFlag, StreamCatchupSource};
use super::timing;
use crate::internal::OwnedMsg;
use crate::jetstream::errors::ApiError;
use crate::jetstream::ingest::{At, Ingest};
use crate::jetstream::stream::{now_nanos, Stream};
use crate::raft::log::LogStore;
use crate::raft::network::{Network, Router};
use crate::server::Server;

/// Publishes per proposal at most, and bytes (subjects, headers and
/// payloads) per proposal at most unless one message alone is larger:
/// an entry must fit one Raft message on the routes.
const BATCH_MSGS: usize = 1024;
const BATCH_BYTES: usize = 256 * 1024;

pub struct StreamGroup {
    pub account: String,
    pub stream: Arc<Stream>,
    pub group: String,
    raft: Raft<StreamTypes>,
    router: Arc<Router>,
    server: Weak<Server>,
    /// Set by [`StreamGroup::shutdown`]: the tasks of this replica end,
    /// and a catch-up in progress gives up.
    closed: Arc<AtomicBool>,
    /// While a snapshot's messages are being fetched.
    catching_up: Arc<CatchupFlag>,
    /// Since when this replica leads (it took the stream's subjects), for
    /// the `leader_since` of the stream's info; `None` while it follows.
    leading_since: parking_lot::Mutex<Option<SystemTime>>,
    /// The servers the meta group assigned the stream to; the leader
    /// brings the group's membership to it ([`membership`]).
    assigned: watch::Sender<Assigned>,
    /// Set once this replica is being retired (no longer assigned here),
    /// so only one task waits for that.
    retiring: AtomicBool,
    /// When this replica started, for [`StreamGroup::leaderless`].
    started: std::time::Instant,
}

impl std::fmt::Debug for StreamGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamGroup")
            .field("account", &self.account)
            .field("group", &self.group)
            .finish()
    }
}

impl StreamGroup {
    /// Start this server's replica of `sa`'s stream (`stream`, already
    /// opened on its store), with its Raft files in `dir`. A new group is
    /// initialized with the assignment's peers (the same membership
    /// everywhere, so whoever wins the first election, there is one group)
    /// by its first peer at once and by the others only in turn, should no
    /// leader have reached them ([`bootstrap_in_turn`]). `bootstrap` is
    /// false once the group's peers changed
    /// since it was created: a replica without Raft state then waits to be
    /// added by the leader (as a learner, [`membership`]) rather than
    /// start a group of its own.
    pub async fn start(
        server: &Arc<Server>,
        router: Arc<Router>,
        sa: &StreamAssignment,
        names: &std::collections::BTreeMap<u64, String>,
        bootstrap: bool,
        stream: Arc<Stream>,
        dir: &Path,
    ) -> anyhow::Result<Arc<StreamGroup>> {
        let log_dir = dir.join("log");
        let log = tokio::task::spawn_blocking(move || LogStore::<StreamTypes>::open(&log_dir))
            .await
            .context("opening the stream's Raft log")??;
        let sm_dir = dir.to_path_buf();
        let sm_stream = stream.clone();
        let sm_server = Arc::downgrade(server);
        let closed = Arc::new(AtomicBool::new(false));
        let catching_up = Arc::new(CatchupFlag::default());
        let catchup = CatchupClient {
            router: router.clone(),
            group: sa.group.clone(),
            closed: closed.clone(),
        };
        let sm_flag = catching_up.clone();
        let mut sm = tokio::task::spawn_blocking(move || {
            StreamStateMachine::open(sm_stream, sm_server, &sm_dir, catchup, sm_flag)
        })
        .await
        .context("opening the stream's state machine")??;
        // Peers ask this replica for messages once it has them.
        router.register_catchup(
            &sa.group,
            Arc::new(StreamCatchupSource {
                stream: Arc::downgrade(&stream),
                catching_up: catching_up.clone(),
            }),
        )?;
        sm.resume()
            .await
            .map_err(anyhow::Error::msg)
            .context("finishing an interrupted catch-up")?;
        let network = Network::<StreamTypes>::new(router.clone(), &sa.group)?;
        let config = Arc::new(timing::raft_config(
            &server.cluster_name(),
            Some(timing::stream_snapshot_every()),
        )?);
        let raft = Raft::new(router.id(), config, network, log, sm)
            .await
            .context("starting the stream's Raft node")?;
        router.register(&sa.group, raft.clone())?;
        if bootstrap && !raft.is_initialized().await.unwrap_or(true) {
            let members: std::collections::BTreeMap<u64, BasicNode> = sa
                .peers
                .iter()
                .map(|id| {
                    let name = names
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| format!("{id:016x}"));
                    (*id, BasicNode::new(name))
                })
                .collect();
            let turn = sa
                .peers
                .iter()
                .position(|id| *id == router.id())
                .unwrap_or(0);
            let age = crate::jetstream::types::parse_rfc3339(&sa.created)
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .unwrap_or_default();
            tokio::spawn(bootstrap_in_turn(
                raft.clone(),
                members,
                bootstrap_delay(turn, age),
                sa.group.clone(),
                closed.clone(),
            ));
        }
        let (assigned, watching) = watch::channel(assigned_of(sa, names));
        let group = Arc::new(StreamGroup {
            account: sa.account.clone(),
            stream,
            group: sa.group.clone(),
            raft,
            router,
            server: Arc::downgrade(server),
            closed,
            catching_up,
            leading_since: parking_lot::Mutex::new(None),
            assigned,
            retiring: AtomicBool::new(false),
            started: std::time::Instant::now(),
        });
        tokio::spawn(lead_while_leader(Arc::downgrade(&group)));
        tokio::spawn(membership::follow(Arc::downgrade(&group), watching));
        Ok(group)
    }

    /// The meta group assigned the stream to `sa.peers` (a committed
    /// STREAM.UPDATE or PEER.REMOVE): the leader changes the group to
    /// match.
    pub fn set_assigned(
        &self,
        sa: &StreamAssignment,
        names: &std::collections::BTreeMap<u64, String>,
    ) {
        self.assigned.send_if_modified(|a| {
            let new = assigned_of(sa, names);
            let changed = *a != new;
            *a = new;
            changed
        });
    }

    /// Mark this replica as being retired; false if it already was.
    pub fn begin_retiring(&self) -> bool {
        !self.retiring.swap(true, Ordering::AcqRel)
    }

    /// The replica is assigned here again after all.
    pub fn cancel_retiring(&self) {
        self.retiring.store(false, Ordering::Release);
    }

    /// Wait until this replica may be stopped and deleted without
    /// weakening the group: its own log shows it out of the voters, in a
    /// committed membership ([`membership::retired`]), or its Raft node
    /// stopped.
    pub async fn wait_retired(&self) {
        let me = self.router.id();
        let mut metrics = self.raft.metrics();
        loop {
            if metrics.borrow().running_state.is_err() || membership::retired(&self.raft, me) {
                return;
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    pub(super) fn raft(&self) -> &Raft<StreamTypes> {
        &self.raft
    }

    pub(super) fn router(&self) -> &Arc<Router> {
        &self.router
    }

    pub(super) fn is_stopped(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn is_leader(&self) -> bool {
        leadership::is_leader(&self.raft, self.router.id())
    }

    /// Caught up with the group (see [`leadership::is_current`]) and not
    /// refilling its store from a snapshot.
    pub fn is_current(&self) -> bool {
        !self.catching_up.get() && leadership::is_current(&self.raft)
    }

    /// [`Self::is_current`], allowing a follower `within` to apply what it
    /// holds (see [`leadership::is_current_or_progressing`]).
    pub async fn is_current_within(&self, within: std::time::Duration) -> bool {
        !self.catching_up.get() && leadership::is_current_or_progressing(&self.raft, within).await
    }

    /// No working leader for nats-server's lost-quorum interval (see
    /// [`leadership::leaderless_since`]): this replica then answers
    /// `STREAM.INFO` itself, as nats-server's members do.
    pub fn leaderless(&self) -> bool {
        leadership::leaderless_since(&self.leadership(), &self.my_name(), self.started)
    }

    /// Leadership, with the servers the stream is assigned to as its
    /// replicas (a new one still catching up is listed, one on its way out
    /// is not), as nats-server shows them.
    pub fn leadership(&self) -> Leadership {
        let assigned = self.assigned.borrow();
        leadership::leadership_of(
            &self.raft,
            &self.router,
            &self.group,
            Some(&assigned.peers),
            &assigned.names,
        )
    }

    /// This server's name in the group (as stepdown placements name it).
    pub fn my_name(&self) -> String {
        let me = self.router.id();
        leadership::names(&self.raft)
            .get(&me)
            .cloned()
            .or_else(|| self.assigned.borrow().names.get(&me).cloned())
            .unwrap_or_else(|| format!("{me:016x}"))
    }

    /// When this replica became the leader, while it leads.
    pub fn leader_since(&self) -> Option<SystemTime> {
        *self.leading_since.lock()
    }

    /// Replicate an API request that changes the stream (purge, message
    /// delete): every replica applies it alike; this leader's result is
    /// the answer.
    pub async fn propose_api(&self, entry: StreamEntry) -> Result<Vec<u8>, ApiError> {
        match self.raft.client_write(entry).await {
            Ok(resp) => match resp.data {
                StreamResponse::Api(r) => r,
                _ => Err(leadership::cluster_not_available()),
            },
            Err(e) => {
                debug!("stream group {}: proposal failed: {e}", self.group);
                Err(leadership::cluster_not_available())
            }
        }
    }

    /// Replicate any entry; what applying it decided here.
    pub async fn propose(&self, entry: StreamEntry) -> Result<StreamResponse, ApiError> {
        match self.raft.client_write(entry).await {
            Ok(resp) => Ok(resp.data),
            Err(e) => {
                debug!("stream group {}: proposal failed: {e}", self.group);
                Err(leadership::cluster_not_available())
            }
        }
    }

    pub async fn step_down(&self, placement: Option<&Placement>) -> Result<(), ApiError> {
        let cluster = self
            .server
            .upgrade()
            .map(|s| s.cluster_name())
            .unwrap_or_default();
        stepdown::step_down(&self.raft, &self.router, &self.group, &cluster, placement).await
    }

    /// Stop this replica (stream deleted, moved, or server shutting down).
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        self.router.unregister(&self.group);
        if let Some(server) = self.server.upgrade() {
            self.stream.follow(&server);
        }
        if let Err(e) = self.raft.shutdown().await {
            warn!("stream group {} did not shut down cleanly: {e}", self.group);
        }
    }
}

/// The time a new group's peers take turns in: longer than an election
/// and the replication that tells the others a leader exists.
const BOOTSTRAP_TURN: Duration = Duration::from_millis(2 * timing::ELECTION_MAX_MS);
/// How late after the group's creation a peer may still take its turn.
const BOOTSTRAP_SLACK: Duration = Duration::from_millis(timing::ELECTION_MIN_MS);

/// How long the `turn`-th peer of a new group (0: the first) waits before
/// it initializes the group itself, `age` after the meta leader created
/// it: until its turn, or, if it arrives past its turn (it was slow or
/// down), a whole turn from now, by which time a leader formed without it
/// has reached it.
fn bootstrap_delay(turn: usize, age: Duration) -> Duration {
    let slot = BOOTSTRAP_TURN * turn as u32;
    if age <= slot + BOOTSTRAP_SLACK {
        slot.saturating_sub(age)
    } else {
        BOOTSTRAP_TURN
    }
}

/// Initialize a new group on this peer after `delay`, unless a leader or a
/// candidate reached it first (which gives it the membership or a vote)
/// or the replica stopped.
///
/// openraft's `initialize` campaigns at once, and openraft orders two
/// votes of one term by node id. When every peer initialized on creation,
/// all stood in term 1 together, and a peer that registered the group a
/// few milliseconds late, having voted for itself, deposed the leader just
/// elected: the group was leaderless until an election timeout, and
/// requests in between (a STREAM.INFO right after the create) went
/// unanswered. Now the first peer, which placement chose as the least
/// loaded, campaigns alone and the others vote for it from their empty
/// logs, as Raft lets a new member do; each of the others takes a later
/// turn in case it is down, and a peer that arrives late waits to be
/// reached rather than campaign against a leader.
async fn bootstrap_in_turn(
    raft: Raft<StreamTypes>,
    members: std::collections::BTreeMap<u64, BasicNode>,
    delay: Duration,
    group: String,
    closed: Arc<AtomicBool>,
) {
    tokio::time::sleep(delay).await;
    if closed.load(Ordering::Acquire) || raft.is_initialized().await.unwrap_or(true) {
        return;
    }
    if !delay.is_zero() {
        debug!("stream group {group}: no leader reached this peer; initializing it here");
    }
    if let Err(e) = raft.initialize(members).await {
        debug!("stream group {group} initialize: {e}");
    }
}

/// Take the stream's messages while this replica leads, and stop when it
/// no longer does.
async fn lead_while_leader(group: Weak<StreamGroup>) {
    let Some(mut metrics) = group.upgrade().map(|g| g.raft.metrics()) else {
        return;
    };
    let mut leading = false;
    loop {
        let Some(g) = group.upgrade() else { return };
        if let Err(e) = &metrics.borrow().running_state {
            // Stopped on purpose: the stream was deleted or moved away, or
            // the server is shutting down.
            if !matches!(e, openraft::error::Fatal::Stopped) {
                tracing::error!(
                    "JetStream stream '{} > {}': its Raft group stopped: {e}",
                    g.account,
                    g.stream.name
                );
            }
            *g.leading_since.lock() = None;
            if let Some(server) = g.server.upgrade() {
                g.stream.follow(&server);
            }
            return;
        }
        let leader_now = g.is_leader();
        if leader_now && !leading {
            // Everything committed in earlier terms is applied before
            // publishes are checked against the stream's state.
            match g.raft.ensure_linearizable().await {
                Ok(_) => {
                    if let Some(server) = g.server.upgrade() {
                        let (tx, rx) = mpsc::unbounded_channel();
                        let (expiry_tx, expiry_rx) = mpsc::unbounded_channel();
                        match g.stream.lead(&server, tx, expiry_tx) {
                            Ok(()) => {
                                info!(
                                    "JetStream cluster new stream leader for '{} > {}'",
                                    g.account, g.stream.name
                                );
                                tokio::spawn(propose(Arc::downgrade(&g), rx));
                                tokio::spawn(propose_expiry(Arc::downgrade(&g), expiry_rx));
                                tokio::spawn(replicate_consumers(Arc::downgrade(&g)));
                                *g.leading_since.lock() = Some(SystemTime::now());
                                leading = true;
                            }
                            Err(e) => warn!(
                                "JetStream stream {:?}: could not take its subjects: {e}",
                                g.stream.name
                            ),
                        }
                    }
                }
                Err(e) => debug!("stream group {}: not leading after all: {e}", g.group),
            }
        } else if !leader_now && leading {
            *g.leading_since.lock() = None;
            if let Some(server) = g.server.upgrade() {
                g.stream.follow(&server);
            }
            leading = false;
        }
        drop(g);
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Log an expiry each time the stream asks (something is past its age
/// and nothing is being published to carry the time): an entry of no
/// messages at this leader's time, which every replica applies alike.
/// Ends when the stream stops leading here (its sender is dropped).
async fn propose_expiry(group: Weak<StreamGroup>, mut rx: mpsc::UnboundedReceiver<()>) {
    while rx.recv().await.is_some() {
        let Some(g) = group.upgrade() else { return };
        let entry = StreamEntry::Msgs {
            ts: now_nanos(),
            msgs: Vec::new(),
        };
        // Applied or not, nobody waits on it: the stream asks again.
        if let Err(e) = g.raft.client_write_ff(entry).await {
            warn!("stream group {}: Raft stopped: {e}", g.group);
            return;
        }
    }
}

/// Batch what the stream's subjects deliver into proposals, in order, and
/// ack each batch once applied. Ends when the stream stops leading here
/// (its sender is dropped). A mirror's messages, which keep their origin's
/// sequence and time, go in batches of their own.
async fn propose(group: Weak<StreamGroup>, mut rx: mpsc::UnboundedReceiver<Ingest>) {
    let mut carried: Option<Ingest> = None;
    loop {
        let first = match carried.take() {
            Some(m) => m,
            None => match rx.recv().await {
                Some(m) => m,
                None => return,
            },
        };
        let mirrored = first.at.is_some();
        let mut bytes = msg_bytes(&first.msg);
        let mut batch = vec![first];
        while batch.len() < BATCH_MSGS && bytes < BATCH_BYTES {
            match rx.try_recv() {
                Ok(m) if m.at.is_some() != mirrored => {
                    carried = Some(m);
                    break;
                }
                Ok(m) => {
                    bytes += msg_bytes(&m.msg);
                    batch.push(m);
                }
                Err(_) => break,
            }
        }
        let Some(g) = group.upgrade() else { return };
        // The messages move into the entry; their reply subjects stay for
        // the acks.
        let replies: Vec<Option<String>> = batch.iter_mut().map(|m| m.msg.reply.take()).collect();
        let entry = if mirrored {
            StreamEntry::Mirrored {
                msgs: batch
                    .into_iter()
                    .map(|m| {
                        let at = m.at.unwrap_or(At { seq: 0, ts: 0 });
                        MirroredMsg {
                            seq: at.seq,
                            ts: at.ts,
                            subject: m.msg.subject,
                            headers: m.msg.headers,
                            payload: m.msg.payload,
                        }
                    })
                    .collect(),
            }
        } else {
            StreamEntry::Msgs {
                ts: now_nanos(),
                msgs: batch
                    .into_iter()
                    .map(|m| ProposedMsg {
                        subject: m.msg.subject,
                        headers: m.msg.headers,
                        payload: m.msg.payload,
                    })
                    .collect(),
            }
        };
        let responder = match g.raft.client_write_ff(entry).await {
            Ok(r) => r,
            Err(e) => {
                warn!("stream group {}: Raft stopped: {e}", g.group);
                return;
            }
        };
        let stream = g.stream.clone();
        let server = g.server.clone();
        drop(g);
        tokio::spawn(async move {
            match responder.await {
                Ok(Ok(resp)) => {
                    if let (Some(server), StreamResponse::Published(results)) =
                        (server.upgrade(), &resp.data)
                    {
                        let no_ack = stream.inner.lock().config.no_ack;
                        stream.send_acks(
                            &server,
                            replies.iter().map(|r| r.as_deref()),
                            results,
                            no_ack,
                        );
                    }
                }
                // Leadership moved before the batch committed: no ack;
                // publishers retry and reach the new leader.
                Ok(Err(e)) => debug!("stream {:?}: batch not committed: {e}", stream.name),
                Err(_) => debug!("stream {:?}: batch dropped", stream.name),
            }
        });
    }
}

/// While this replica leads: replicate each consumer's delivery and ack
/// state when it changed, every [`CONSUMER_STATE_EVERY`]. A new leader
/// resumes from the last replicated state: what was delivered since may
/// be delivered again, nothing acknowledged before is lost.
async fn replicate_consumers(group: Weak<StreamGroup>) {
    let mut sent: std::collections::HashMap<String, crate::jetstream::store::ConsumerState> =
        Default::default();
    let mut tick = tokio::time::interval(CONSUMER_STATE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(g) = group.upgrade() else { return };
        if !g.is_leader() || g.stream.is_passive() {
            return;
        }
        let consumers: Vec<_> = g.stream.consumers.read().values().cloned().collect();
        sent.retain(|name, _| consumers.iter().any(|c| &c.name == name));
        for c in consumers {
            let state = c.replicated_state();
            if sent.get(&c.name) == Some(&state) {
                continue;
            }
            let entry = StreamEntry::ConsumerState {
                name: c.name.clone(),
                state: state.clone(),
            };
            match g.raft.client_write(entry).await {
                Ok(_) => {
                    sent.insert(c.name.clone(), state);
                }
                Err(e) => {
                    debug!(
                        "stream group {}: consumer state not replicated: {e}",
                        g.group
                    );
                    break;
                }
            }
        }
    }
}

/// How often a leader replicates its consumers' changed state.
const CONSUMER_STATE_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// What the leader makes of an assignment: its peers, and the names of
/// the domain's servers (new members are added under theirs, removed ones
/// are logged by theirs).
fn assigned_of(sa: &StreamAssignment, names: &std::collections::BTreeMap<u64, String>) -> Assigned {
    Assigned {
        peers: sa.peers.iter().copied().collect(),
        names: names.clone(),
    }
}

fn msg_bytes(m: &OwnedMsg) -> usize {
    m.subject.len() + m.headers.len() + m.payload.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn the_first_peer_campaigns_at_once_the_others_in_turn() {
        assert_eq!(bootstrap_delay(0, Duration::ZERO), Duration::ZERO);
        assert_eq!(bootstrap_delay(0, S / 2), Duration::ZERO);
        assert_eq!(bootstrap_delay(1, S / 2), BOOTSTRAP_TURN - S / 2);
        assert_eq!(bootstrap_delay(2, Duration::ZERO), BOOTSTRAP_TURN * 2);
        // Within the slack after its turn: now.
        assert_eq!(bootstrap_delay(1, BOOTSTRAP_TURN + S / 2), Duration::ZERO);
    }

    #[test]
    fn a_peer_past_its_turn_waits_to_be_reached() {
        assert_eq!(bootstrap_delay(0, 3 * S), BOOTSTRAP_TURN);
        assert_eq!(bootstrap_delay(1, BOOTSTRAP_TURN * 3), BOOTSTRAP_TURN);
        // A wiped replica of an old group.
        assert_eq!(bootstrap_delay(0, 86_400 * S), BOOTSTRAP_TURN);
    }
}
