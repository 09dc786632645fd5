//! A replicated stream's replica set follows its assignment: the meta
//! group records which servers hold the stream, and the stream's Raft
//! group changes its membership to match, driven by its leader.
//!
//! The leader, one step at a time (each step is retried until it holds):
//! 1. servers newly assigned join as learners and receive the log;
//! 2. once they are close to the leader's log, one membership change
//!    (openraft's joint consensus) makes the assigned servers the voters.
//!    Voters that are no longer assigned stay learners (`retain`), so they
//!    still receive the change and can see for themselves that they are out;
//! 3. a leader that is itself no longer assigned first has the assigned
//!    servers vote beside it, then hands leadership to one of them, which
//!    finishes the change;
//! 4. learners that are no longer assigned are dropped from the group once
//!    they hold the final membership (or after [`RETIRE_WAIT`] if they do
//!    not answer).
//!
//! Nothing acknowledged is lost: a change commits only on a majority of
//! the old voters and of the new ones, so the new voters hold every
//! acknowledged entry by then, and a removed server stops (and deletes its
//! copy) only once its own log shows the change committed
//! ([`retired`]). Until then it still counts for the old majority.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Weak;
use std::time::{Duration, Instant};

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Raft};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::stream_group::StreamGroup;
use super::stream_sm::StreamTypes;

/// The servers the meta group assigned a stream to, and their names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assigned {
    pub peers: BTreeSet<u64>,
    pub names: BTreeMap<u64, String>,
}

impl Assigned {
    pub fn name(&self, id: u64) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("{id:016x}"))
    }
}

/// How often the leader compares the group with its assignment (also
/// right away when the assignment changes).
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// A learner this close to the leader's last entry (in entries, of up to a
/// publish batch each) may become a voter: the rest arrives while the
/// joint configuration commits.
const CATCH_UP_LAG: u64 = 64;

/// How long one membership change may take before the leader looks again.
const CHANGE_WAIT: Duration = Duration::from_secs(20);

/// How long a removed learner that holds the final membership keeps
/// receiving heartbeats (which tell it the change committed) before it
/// is dropped from the group.
const RETIRE_GRACE: Duration = Duration::from_secs(3);

/// How long a removed learner that does not catch up (stopped, cut off)
/// is waited for.
const RETIRE_WAIT: Duration = Duration::from_secs(30);

/// Whether this replica's own log shows it out of the group's voters, in
/// a membership that is committed (applied here): its server may then
/// stop it and delete its copy without weakening any quorum. True also for
/// a replica that never received anything (it was assigned and then
/// unassigned before its leader reached it).
pub fn retired(raft: &Raft<StreamTypes>, me: u64) -> bool {
    let metrics = raft.metrics();
    let m = metrics.borrow();
    let membership = &m.membership_config;
    let voter = membership.membership().voter_ids().any(|id| id == me);
    !voter && m.last_applied.as_ref() >= membership.log_id().as_ref()
}

/// Run on every replica of the stream while it lives: on the leader, bring
/// the group's membership to the assignment.
pub(super) async fn follow(group: Weak<StreamGroup>, mut assigned: watch::Receiver<Assigned>) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retiring = Retiring::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = assigned.changed() => if changed.is_err() { return },
        }
        let Some(g) = group.upgrade() else { return };
        if g.is_stopped() {
            return;
        }
        if !g.is_leader() {
            retiring.clear();
            continue;
        }
        if settled(g.raft(), &assigned.borrow().peers) {
            retiring.clear();
            continue;
        }
        let want = assigned.borrow().clone();
        step(&g, &want, &mut retiring).await;
    }
}

/// Whether the group's membership is the assignment: its voters, no
/// learners and no change under way (the common case, checked without
/// copying anything).
fn settled(raft: &Raft<StreamTypes>, want: &BTreeSet<u64>) -> bool {
    let metrics = raft.metrics();
    let m = metrics.borrow();
    let membership = m.membership_config.membership();
    let joint = membership.get_joint_config();
    joint.len() == 1 && joint.last() == Some(want) && membership.nodes().count() == want.len()
}

/// Removed learners being waited for: when first seen, and since when
/// they hold the group's membership.
#[derive(Default)]
struct Retiring(HashMap<u64, (Instant, Option<Instant>)>);

impl Retiring {
    fn clear(&mut self) {
        self.0.clear();
    }
}

/// One step towards the assignment (see the module's description).
async fn step(g: &StreamGroup, want: &Assigned, retiring: &mut Retiring) {
    if want.peers.is_empty() {
        return;
    }
    let raft = g.raft();
    let me = g.router().id();
    let m = raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let joint = membership.get_joint_config();
    let in_change = joint.len() > 1;
    let voters: BTreeSet<u64> = joint.last().cloned().unwrap_or_default();
    let nodes: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
    let progress = m.replication.clone().unwrap_or_default();
    let last = m.last_log_index.unwrap_or(0);

    // 1. Newly assigned servers receive the log as learners.
    let new: Vec<u64> = want.peers.difference(&nodes).copied().collect();
    for id in &new {
        let name = want.name(*id);
        info!(
            "JetStream cluster adding {name} to stream group {}",
            g.group
        );
        let added = raft.add_learner(*id, BasicNode::new(&name), false);
        match tokio::time::timeout(CHANGE_WAIT, added).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => debug!("stream group {}: adding {name}: {e}", g.group),
            Err(_) => debug!("stream group {}: adding {name}: no answer", g.group),
        }
    }
    if !new.is_empty() {
        return;
    }

    // 2. They vote once they are nearly caught up.
    let caught_up = |id: &u64| {
        progress
            .get(id)
            .copied()
            .flatten()
            .is_some_and(|l| l.index + CATCH_UP_LAG >= last)
    };
    if !want
        .peers
        .iter()
        .filter(|id| !voters.contains(id))
        .all(caught_up)
    {
        return;
    }

    // 3. The assigned servers become the voters; a leader that is not
    //    assigned keeps voting until it has handed over.
    if in_change || voters != want.peers {
        let target: BTreeSet<u64> = if want.peers.contains(&me) {
            want.peers.clone()
        } else {
            voters.union(&want.peers).copied().collect()
        };
        if in_change || target != voters {
            change(
                g,
                ChangeMembers::ReplaceAllVoters(target.clone()),
                true,
                want,
            )
            .await;
            return;
        }
        info!(
            "JetStream cluster stream group {} leader is no longer assigned, stepping down",
            g.group
        );
        if let Err(e) =
            super::stepdown::step_down_among(raft, g.router(), &g.group, &want.peers).await
        {
            debug!("stream group {}: handing over: {e}", g.group);
        }
        return;
    }

    // 4. Removed learners leave once they hold the final membership.
    let stale: BTreeSet<u64> = nodes.difference(&want.peers).copied().collect();
    retiring.0.retain(|id, _| stale.contains(id));
    if stale.is_empty() {
        return;
    }
    let config_index = m.membership_config.log_id().map(|l| l.index);
    let now = Instant::now();
    let mut done = BTreeSet::new();
    for id in stale {
        let has_it = progress
            .get(&id)
            .copied()
            .flatten()
            .is_some_and(|l| Some(l.index) >= config_index);
        let (seen, holds) = retiring.0.entry(id).or_insert((now, None));
        if has_it && holds.is_none() {
            *holds = Some(now);
        }
        let graced = holds.is_some_and(|t| t.elapsed() >= RETIRE_GRACE);
        if graced || seen.elapsed() >= RETIRE_WAIT {
            done.insert(id);
        }
    }
    if !done.is_empty() {
        change(g, ChangeMembers::RemoveNodes(done), false, want).await;
    }
}

/// One membership change, bounded in time: a change that does not commit
/// in time goes on in Raft, and the next step sees where it stands.
async fn change(
    g: &StreamGroup,
    changes: ChangeMembers<u64, BasicNode>,
    retain: bool,
    want: &Assigned,
) {
    let what = match &changes {
        ChangeMembers::ReplaceAllVoters(ids) => format!(
            "voters [{}]",
            ids.iter()
                .map(|id| want.name(*id))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ChangeMembers::RemoveNodes(ids) => format!(
            "removing [{}]",
            ids.iter()
                .map(|id| want.name(*id))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!("{other:?}"),
    };
    info!(
        "JetStream cluster stream group {} membership change: {what}",
        g.group
    );
    match tokio::time::timeout(CHANGE_WAIT, g.raft().change_membership(changes, retain)).await {
        Ok(Ok(_)) => debug!("stream group {}: {what} committed", g.group),
        // Another change still committing, or leadership just moved: the
        // next step looks again.
        Ok(Err(RaftError::APIError(
            ClientWriteError::ForwardToLeader(_)
            | ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(_)),
        ))) => debug!("stream group {}: {what} not now", g.group),
        Ok(Err(e)) => warn!(
            "JetStream cluster stream group {} membership change ({what}) failed: {e}",
            g.group
        ),
        Err(_) => warn!(
            "JetStream cluster stream group {} membership change ({what}) not committed after {CHANGE_WAIT:?}",
            g.group
        ),
    }
}
