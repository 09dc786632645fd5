//! The meta group on this server: its Raft node, how the group is first
//! formed, how it grows when a JetStream server joins, leadership changes
//! as nats-server logs them, and a leader stepping down on request.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Instant;

use anyhow::Context;
use openraft::{BasicNode, Raft};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::leadership::{self, cluster_not_available, Leadership};
use super::meta::{MetaCommand, MetaEvent, MetaStateMachine, MetaTypes, MetaView};
use super::peers::PeerSource;
use super::stepdown::{self, Placement};
use super::timing;
use crate::jetstream::errors::ApiError;
use crate::raft::log::LogStore;
use crate::raft::network::{Network, Router};

/// The meta group's name on the wire (`$TRG.<node>._meta_.…`).
pub const META_GROUP: &str = "_meta_";

/// One replica of the meta group.
pub struct MetaGroup {
    raft: Raft<MetaTypes>,
    /// A handle on the log, for monitoring what the next snapshot compacts.
    log: LogStore<MetaTypes>,
    /// Where the state machine keeps its snapshot (its time is the last
    /// snapshot's).
    snapshot_file: std::path::PathBuf,
    /// Proposals waiting to be applied.
    proposing: std::sync::atomic::AtomicUsize,
    view: MetaView,
    me: u64,
    name: String,
    cluster: String,
    router: Arc<Router>,
    /// The JetStream servers reachable now, for placement.
    peers: Arc<dyn PeerSource>,
    /// When this replica started, for [`MetaGroup::leaderless`].
    started: std::time::Instant,
}

impl std::fmt::Debug for MetaGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaGroup").field("me", &self.me).finish()
    }
}

/// The meta group for `/jsz`: leadership, pending proposals, and the
/// log since the last snapshot.
#[derive(Debug, Clone, Default)]
pub struct GroupStatus {
    pub leadership: Leadership,
    /// Proposals of this server waiting to be applied.
    pub pending: usize,
    /// When the last snapshot was taken, entries and bytes of log since.
    pub snapshot_time: Option<std::time::SystemTime>,
    pub snapshot_pending_entries: u64,
    pub snapshot_pending_size: u64,
}

impl MetaGroup {
    /// Open (or create) the meta group's log and state under `dir`, start
    /// the Raft node and the tasks that form and grow the group.
    pub async fn start(
        dir: &Path,
        me: u64,
        name: &str,
        cluster: &str,
        router: Arc<Router>,
        peers: Arc<dyn PeerSource>,
        events: mpsc::UnboundedSender<MetaEvent>,
    ) -> anyhow::Result<Arc<MetaGroup>> {
        let log = LogStore::<MetaTypes>::open(&dir.join("log"))
            .with_context(|| format!("meta group log in {}", dir.display()))?;
        let snapshot_file = dir.join("state").join(super::meta::SNAPSHOT_FILE);
        let (sm, view) = MetaStateMachine::open(&dir.join("state"), events)
            .with_context(|| format!("meta group state in {}", dir.display()))?;
        let network = Network::<MetaTypes>::new(router.clone(), META_GROUP)?;
        let config = Arc::new(timing::raft_config(
            cluster,
            Some(timing::META_SNAPSHOT_EVERY),
        )?);
        let raft = Raft::new(me, config, network, log.clone(), sm)
            .await
            .context("could not start the meta group's Raft node")?;
        router.register(META_GROUP, raft.clone())?;
        let group = Arc::new(MetaGroup {
            raft,
            log,
            snapshot_file,
            proposing: Default::default(),
            view,
            me,
            name: name.to_string(),
            cluster: cluster.to_string(),
            router,
            peers: peers.clone(),
            started: std::time::Instant::now(),
        });
        tokio::spawn(form(Arc::downgrade(&group), peers.clone()));
        tokio::spawn(log_leaders(Arc::downgrade(&group)));
        tokio::spawn(grow(Arc::downgrade(&group), peers));
        Ok(group)
    }

    pub fn view(&self) -> &MetaView {
        &self.view
    }

    pub fn me(&self) -> u64 {
        self.me
    }

    pub fn is_leader(&self) -> bool {
        leadership::is_leader(&self.raft, self.me)
    }

    /// Caught up with the meta leader (see [`leadership::is_current`]).
    pub fn is_current(&self) -> bool {
        leadership::is_current(&self.raft)
    }

    /// [`Self::is_current`], allowing a follower `within` to apply what it
    /// holds (see [`leadership::is_current_or_progressing`]).
    pub async fn is_current_within(&self, within: std::time::Duration) -> bool {
        leadership::is_current_or_progressing(&self.raft, within).await
    }

    /// No working meta leader for nats-server's lost-quorum interval (see
    /// [`leadership::leaderless_since`]): requests only a meta leader
    /// answers then get 10008 from every server instead of no answer.
    pub fn leaderless(&self) -> bool {
        let view = leadership::leadership(&self.raft, &self.router, META_GROUP);
        leadership::leaderless_since(&view, &self.name, self.started)
    }

    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Server names by node id, from the group's membership.
    pub fn names(&self) -> BTreeMap<u64, String> {
        leadership::names(&self.raft)
    }

    fn voters(&self) -> BTreeSet<u64> {
        leadership::voters(&self.raft)
    }

    /// Whether the domain has this stream.
    pub fn knows(&self, account: &str, stream: &str) -> bool {
        self.view.read().stream(account, stream).is_some()
    }

    /// The number of JetStream servers in the domain (the meta voters).
    pub fn voter_count(&self) -> usize {
        self.voters().len()
    }

    /// Choose `replicas` servers for a new stream: the meta voters that
    /// hold the fewest streams, ties broken at random. `None` when there
    /// are fewer voters than that.
    pub fn place(&self, replicas: usize) -> Option<Vec<u64>> {
        use rand::seq::SliceRandom;
        let mut voters: Vec<u64> = self.voters().into_iter().collect();
        if voters.len() < replicas {
            return None;
        }
        voters.shuffle(&mut rand::rng());
        let view = self.view.read();
        voters.sort_by_key(|id| view.streams_on(*id));
        voters.truncate(replicas);
        Some(voters)
    }

    /// The servers a replica may be placed on now: meta voters that are
    /// this server or reachable over a route, in a random order, with the
    /// number of streams each holds.
    pub fn candidates(&self) -> super::placement::Candidates {
        use rand::seq::SliceRandom;
        let reachable: BTreeSet<u64> = self
            .peers
            .peers()
            .into_iter()
            .filter(|p| p.tribune)
            .map(|p| p.id)
            .chain([self.me])
            .collect();
        let mut ids: Vec<u64> = self
            .voters()
            .into_iter()
            .filter(|id| reachable.contains(id))
            .collect();
        ids.shuffle(&mut rand::rng());
        let view = self.view.read();
        super::placement::Candidates {
            servers: ids
                .into_iter()
                .map(|id| (id, view.streams_on(id)))
                .collect(),
        }
    }

    /// Propose a change to the domain and wait until it is applied here.
    pub async fn propose(&self, cmd: MetaCommand) -> Result<(), ApiError> {
        use std::sync::atomic::Ordering;
        self.proposing.fetch_add(1, Ordering::Relaxed);
        let result = self.raft.client_write(cmd).await;
        self.proposing.fetch_sub(1, Ordering::Relaxed);
        match result {
            Ok(resp) => resp.data.into_result(),
            Err(e) => {
                debug!("meta proposal failed: {e}");
                Err(cluster_not_available())
            }
        }
    }

    /// Leadership, replicas and the log since the last snapshot.
    pub fn status(&self) -> GroupStatus {
        let metrics = self.raft.metrics().borrow().clone();
        let last = metrics.last_log_index.unwrap_or(0);
        let snapshot_index = metrics.snapshot.map(|l| l.index);
        GroupStatus {
            leadership: leadership::leadership(&self.raft, &self.router, META_GROUP),
            pending: self.proposing.load(std::sync::atomic::Ordering::Relaxed),
            snapshot_time: std::fs::metadata(&self.snapshot_file)
                .and_then(|m| m.modified())
                .ok(),
            snapshot_pending_entries: last.saturating_sub(snapshot_index.unwrap_or(0)),
            snapshot_pending_size: self.log.bytes_after(snapshot_index),
        }
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Hand the meta leadership to another voter.
    pub async fn step_down(&self, placement: Option<&Placement>) -> Result<(), ApiError> {
        stepdown::step_down(
            &self.raft,
            &self.router,
            META_GROUP,
            &self.cluster,
            placement,
        )
        .await
    }

    pub async fn shutdown(&self) {
        self.router.unregister(META_GROUP);
        if let Err(e) = self.raft.shutdown().await {
            warn!("meta group did not shut down cleanly: {e}");
        }
    }
}

/// Form the group the first time: once this server sees every server the
/// configuration expects, and has heard from no existing group, the
/// lowest node id initializes it with all of them. It asks each peer
/// whether it already belongs to a group: if none does, it forms at once;
/// if one does, it never forms (that group's leader adds it); if a peer
/// cannot say (it runs an earlier Tribune, or did not answer), it forms
/// once the set of peers has stayed the same for [`timing::FORM_SETTLE`]
/// without a leader reaching it. A server that restarts, or rejoins with
/// an empty disk, is found by the leader and needs nothing.
async fn form(group: Weak<MetaGroup>, peers: Arc<dyn PeerSource>) {
    let mut seen: BTreeSet<u64> = BTreeSet::new();
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(timing::FORM_POLL).await;
        let Some(g) = group.upgrade() else { return };
        match g.raft.is_initialized().await {
            Ok(true) | Err(_) => return,
            Ok(false) => {}
        }
        let contacted = {
            let m = g.raft.metrics().borrow().clone();
            m.current_term > 0 || m.current_leader.is_some()
        };
        if contacted {
            continue;
        }
        let found: Vec<_> = peers.peers().into_iter().filter(|p| p.tribune).collect();
        let mut ids: BTreeSet<u64> = found.iter().map(|p| p.id).collect();
        ids.insert(g.me);
        if ids != seen {
            // The settle (for peers that cannot say) starts again.
            seen = ids.clone();
            since = Instant::now();
        }
        if ids.len() < peers.expected() || ids.first() != Some(&g.me) {
            continue;
        }
        match joined(&g.router, &found).await {
            Joined::Nobody => {}
            Joined::Peer(name) => {
                debug!("meta group not formed here: {name} already belongs to one");
                continue;
            }
            Joined::Unknown => {
                if since.elapsed() < timing::FORM_SETTLE {
                    continue;
                }
            }
        }
        let mut members: BTreeMap<u64, BasicNode> = found
            .iter()
            .map(|p| (p.id, BasicNode::new(&p.name)))
            .collect();
        members.insert(g.me, BasicNode::new(&g.name));
        info!(
            "JetStream cluster forming the metadata group with {} servers",
            members.len()
        );
        match g.raft.initialize(members).await {
            Ok(()) => return,
            Err(e) => debug!("meta group initialize: {e}"),
        }
    }
}

/// What the peers said when asked whether they belong to a meta group.
#[derive(Debug, PartialEq, Eq)]
enum Joined {
    /// Every peer answered, and none does.
    Nobody,
    /// This one does (the first found).
    Peer(String),
    /// Some peer did not answer, and none said yes.
    Unknown,
}

/// Ask every peer, at once, whether its meta replica belongs to a group.
async fn joined(router: &Arc<Router>, found: &[super::peers::JsPeer]) -> Joined {
    let mut asks = tokio::task::JoinSet::new();
    for p in found {
        let (router, id, name) = (router.clone(), p.id, p.name.clone());
        asks.spawn(async move {
            let answer = router
                .request_joined(id, META_GROUP, timing::FORM_ASK)
                .await;
            if let Err(e) = &answer {
                debug!("meta group: {name} cannot say whether it is in a group: {e}");
            }
            (name, answer)
        });
    }
    let mut answers = Vec::with_capacity(found.len());
    while let Some(done) = asks.join_next().await {
        answers.push(done.unwrap_or_else(|e| (String::new(), Err(e.to_string()))));
    }
    tally(answers)
}

/// The peers' answers, taken together: one "yes" decides, any silence
/// leaves it open.
fn tally(answers: Vec<(String, Result<bool, String>)>) -> Joined {
    let mut out = Joined::Nobody;
    for (name, answer) in answers {
        match answer {
            Ok(true) => return Joined::Peer(name),
            Ok(false) => {}
            Err(_) => out = Joined::Unknown,
        }
    }
    out
}

/// Log leadership changes as nats-server does.
async fn log_leaders(group: Weak<MetaGroup>) {
    let Some(mut rx) = group.upgrade().map(|g| g.raft.metrics()) else {
        return;
    };
    let mut last: Option<u64> = None;
    loop {
        if let Err(e) = &rx.borrow().running_state {
            if !matches!(e, openraft::error::Fatal::Stopped) {
                tracing::error!("JetStream cluster metadata group stopped: {e}");
            }
            return;
        }
        let leader = rx.borrow().current_leader;
        if leader != last {
            if let Some(g) = group.upgrade() {
                match leader {
                    Some(l) if l == g.me => info!("Self is new JetStream cluster metadata leader"),
                    Some(l) => {
                        let name = g
                            .names()
                            .get(&l)
                            .cloned()
                            .unwrap_or_else(|| format!("{l:016x}"));
                        info!(
                            "JetStream cluster new metadata leader: {name}/{}",
                            g.cluster
                        );
                    }
                    None => {}
                }
            }
            last = leader;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// On the leader: make every Tribune JetStream server the routes show a
/// voter (a server added to the cluster, or the group formed before it
/// was up), one at a time.
async fn grow(group: Weak<MetaGroup>, peers: Arc<dyn PeerSource>) {
    loop {
        tokio::time::sleep(timing::GROW_POLL).await;
        let Some(g) = group.upgrade() else { return };
        if !g.is_leader() {
            continue;
        }
        let voters = g.voters();
        let Some(new) = peers
            .peers()
            .into_iter()
            .find(|p| p.tribune && !voters.contains(&p.id))
        else {
            continue;
        };
        info!(
            "JetStream cluster adding {} to the metadata group",
            new.name
        );
        if let Err(e) = g
            .raft
            .add_learner(new.id, BasicNode::new(&new.name), true)
            .await
        {
            warn!("could not add {} to the metadata group: {e}", new.name);
            continue;
        }
        let mut ids = voters;
        ids.insert(new.id);
        if let Err(e) = g.raft.change_membership(ids, false).await {
            warn!("could not make {} a metadata voter: {e}", new.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(name: &str, a: Result<bool, &str>) -> (String, Result<bool, String>) {
        (name.to_string(), a.map_err(str::to_string))
    }

    #[test]
    fn one_member_of_a_group_stops_a_new_one() {
        assert_eq!(tally(vec![]), Joined::Nobody);
        assert_eq!(
            tally(vec![answer("b", Ok(false)), answer("c", Ok(false))]),
            Joined::Nobody
        );
        // Silence is not a "no": the settle decides.
        assert_eq!(
            tally(vec![
                answer("b", Ok(false)),
                answer("c", Err("no answer within 1s"))
            ]),
            Joined::Unknown
        );
        // A "yes" wins over silence, wherever it comes.
        assert_eq!(
            tally(vec![
                answer("b", Err("no such Raft group")),
                answer("c", Ok(true))
            ]),
            Joined::Peer("c".into())
        );
    }
}
