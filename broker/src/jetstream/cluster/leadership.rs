//! What every Raft group of the domain shares: who leads, who follows and
//! how far behind (for `/jsz` and the API's `cluster` sections).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::{BasicNode, Raft, RaftMetrics, RaftTypeConfig, ServerState};

use crate::jetstream::errors::ApiError;
use crate::raft::network::Router;

/// The Raft types of the domain's groups: node ids from server names, the
/// name in the node.
pub trait GroupTypes: RaftTypeConfig<NodeId = u64, Node = BasicNode> {}
impl<C: RaftTypeConfig<NodeId = u64, Node = BasicNode>> GroupTypes for C {}

/// nats-server's answer while a group has no leader, or this server lost
/// leadership while asking.
pub fn cluster_not_available() -> ApiError {
    ApiError::new(503, 10008, "JetStream system temporarily unavailable")
}

/// How long a group may go without a leader that reaches a quorum before
/// its members say so: nats-server's lost-quorum interval. A leader that
/// heard from no quorum for this long counts as none (nats-server's steps
/// down then; openraft's keeps its role).
pub const LOST_QUORUM: Duration = Duration::from_secs(10);

/// Whether a group running since `started`, seen as `view` on server `me`,
/// has been without a working leader long enough to say so: past
/// [`LOST_QUORUM`] since it started here (a group just started has had no
/// chance to elect one), it knows no leader, or leads without a quorum.
pub fn leaderless_since(view: &Leadership, me: &str, started: std::time::Instant) -> bool {
    started.elapsed() > LOST_QUORUM && !view.leader_with_quorum(me, LOST_QUORUM)
}

/// Who leads and who follows.
#[derive(Debug, Clone, Default)]
pub struct Leadership {
    pub leader: Option<String>,
    pub leader_id: Option<u64>,
    /// Every voter but this server (so on the leader, every follower);
    /// every voter while there is no leader.
    pub replicas: Vec<ReplicaStatus>,
    /// Voters in all.
    pub size: usize,
    /// The group's Raft voters now (the replicas may list a learner still
    /// catching up, or leave out a voter on its way out).
    pub voters: BTreeSet<u64>,
}

impl Leadership {
    /// Whether this view, taken on server `me`, shows a leader that can
    /// make progress: one is known and, when it is `me`, it heard from a
    /// quorum of the voters within `within`. An openraft leader cut off
    /// from the others keeps its role (nats-server's steps down once it
    /// has lost quorum), so knowing a leader is not enough on the leader.
    pub fn leader_with_quorum(&self, me: &str, within: Duration) -> bool {
        match &self.leader {
            None => false,
            Some(leader) if leader == me => {
                let heard = self
                    .replicas
                    .iter()
                    .filter(|r| self.voters.contains(&r.id))
                    .filter(|r| r.active.is_some_and(|a| a <= within))
                    .count();
                heard + 1 > self.voters.len().max(1) / 2
            }
            Some(_) => true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReplicaStatus {
    pub id: u64,
    pub name: String,
    /// Caught up with the leader's log (on the leader); on a follower,
    /// whether it is the leader this follower hears from (it cannot know
    /// more about the others, and nats-server reports them not current).
    pub current: bool,
    /// Entries behind the leader's last (known on the leader only).
    pub lag: u64,
    /// Time since the leader last heard from it (known on the leader only).
    pub active: Option<Duration>,
}

/// Server names by node id, from the group's membership.
pub fn names<C: GroupTypes>(raft: &Raft<C>) -> BTreeMap<u64, String> {
    let m = raft.metrics().borrow().membership_config.clone();
    m.nodes().map(|(id, n)| (*id, n.addr.clone())).collect()
}

pub fn voters<C: GroupTypes>(raft: &Raft<C>) -> BTreeSet<u64> {
    let m = raft.metrics().borrow().membership_config.clone();
    m.membership().voter_ids().collect()
}

pub fn is_leader<C: GroupTypes>(raft: &Raft<C>, me: u64) -> bool {
    let m = raft.metrics();
    let m = m.borrow();
    m.current_leader == Some(me) && m.state == ServerState::Leader
}

/// Whether this replica is caught up: it leads, or it knows a leader and
/// has applied everything it holds, up to an entry of the leader's term
/// (every new leader's first entry), so a replica still replaying an old
/// log, or empty after a wipe, is not current.
pub fn is_current<C: GroupTypes>(raft: &Raft<C>) -> bool {
    let m = raft.metrics();
    let m = m.borrow();
    m.state == ServerState::Leader
        || applied_in_term(&m).is_some_and(|i| Some(i) == m.last_log_index)
}

/// [`is_current`], or, for a follower that is not only because it holds
/// entries it has not applied yet, whether it applies everything it held
/// when asked within `within` (nats-server's "forward progress" check).
/// Under steady writes a follower nearly always holds a just-appended
/// entry whose commit arrives with the next append, so the strict check
/// alone reads a healthy follower as behind on a good share of samples,
/// and a load balancer polling `/healthz` would drop it.
pub async fn is_current_or_progressing<C: GroupTypes>(raft: &Raft<C>, within: Duration) -> bool {
    if is_current(raft) {
        return true;
    }
    let target = {
        let m = raft.metrics();
        let m = m.borrow();
        if m.state != ServerState::Follower || m.current_leader.is_none() {
            return false;
        }
        m.last_log_index
    };
    if target.is_none() {
        return false;
    }
    match raft
        .wait(Some(within))
        .applied_index_at_least(target, "health: forward progress")
        .await
    {
        Ok(m) => applied_in_term(&m).is_some_and(|i| Some(i) >= target),
        Err(_) => false,
    }
}

/// The index this replica has applied, if it knows a leader and that
/// entry is of the current term: what both currency checks build on.
fn applied_in_term(m: &RaftMetrics<u64, BasicNode>) -> Option<u64> {
    let applied = m.last_applied.as_ref()?;
    (m.current_leader.is_some() && applied.leader_id.term == m.current_term)
        .then_some(applied.index)
}

fn name_of(names: &BTreeMap<u64, String>, id: u64) -> String {
    names
        .get(&id)
        .cloned()
        .unwrap_or_else(|| format!("{id:016x}"))
}

/// Leadership of `group` as this server sees it.
pub fn leadership<C: GroupTypes>(raft: &Raft<C>, router: &Router, group: &str) -> Leadership {
    leadership_of(raft, router, group, None, &BTreeMap::new())
}

/// Leadership of `group` with `members` as its replica set (`None`: its
/// voters). A stream shows the servers assigned to it, as nats-server
/// does: while its group changes, a new server still catching up as a
/// learner is listed (not current), a voter on its way out is not.
/// `known_names` names servers the group's membership does not yet hold.
pub fn leadership_of<C: GroupTypes>(
    raft: &Raft<C>,
    router: &Router,
    group: &str,
    members: Option<&BTreeSet<u64>>,
    known_names: &BTreeMap<u64, String>,
) -> Leadership {
    let metrics = raft.metrics().borrow().clone();
    let mut names = names(raft);
    for (id, name) in known_names {
        names.entry(*id).or_insert_with(|| name.clone());
    }
    let leader_id = metrics.current_leader;
    let last = metrics.last_log_index.unwrap_or(0);
    let progress = metrics.replication.clone().unwrap_or_default();
    let voters = members.cloned().unwrap_or_else(|| voters(raft));
    // As nats-server lists them: every voter but this server (the leader
    // itself, on the leader), or every voter while there is no leader,
    // this server then the one current (it holds all it knows of).
    let me = router.id();
    let replicas = voters
        .iter()
        .filter(|id| leader_id.is_none() || **id != me)
        .map(|&id| {
            let matched = progress.get(&id).copied().flatten().map(|l| l.index);
            let lag = matched.map_or(last, |m| last.saturating_sub(m));
            ReplicaStatus {
                id,
                name: name_of(&names, id),
                current: if metrics.state == ServerState::Leader {
                    matched.is_some() && lag == 0
                } else {
                    Some(id) == leader_id || (leader_id.is_none() && id == me)
                },
                lag: if metrics.state == ServerState::Leader {
                    lag
                } else {
                    0
                },
                active: router.last_contact(group, id),
            }
        })
        .collect();
    Leadership {
        leader: leader_id.map(|l| name_of(&names, l)),
        leader_id,
        replicas,
        size: voters.len(),
        voters: self::voters(raft),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(id: u64, name: &str, active: Option<u64>) -> ReplicaStatus {
        ReplicaStatus {
            id,
            name: name.into(),
            current: true,
            lag: 0,
            active: active.map(Duration::from_secs),
        }
    }

    /// A group of voters 1-3 as server "a" sees it.
    fn view(leader: Option<&str>, replicas: Vec<ReplicaStatus>) -> Leadership {
        Leadership {
            leader: leader.map(str::to_string),
            leader_id: None,
            replicas,
            size: 3,
            voters: BTreeSet::from([1, 2, 3]),
        }
    }

    #[test]
    fn a_leader_needs_a_quorum_it_heard_from_recently() {
        let within = Duration::from_secs(10);
        assert!(!view(None, vec![]).leader_with_quorum("a", within));
        // Another leader: this follower hears from it.
        assert!(view(Some("b"), vec![]).leader_with_quorum("a", within));
        let both = vec![replica(2, "b", Some(1)), replica(3, "c", Some(2))];
        assert!(view(Some("a"), both).leader_with_quorum("a", within));
        let one = vec![replica(2, "b", Some(1)), replica(3, "c", Some(60))];
        assert!(view(Some("a"), one).leader_with_quorum("a", within));
        let none = vec![replica(2, "b", Some(60)), replica(3, "c", None)];
        assert!(!view(Some("a"), none).leader_with_quorum("a", within));
        // A learner catching up is no part of the quorum.
        let none = vec![replica(2, "b", Some(60)), replica(4, "learner", Some(1))];
        assert!(!view(Some("a"), none).leader_with_quorum("a", within));
        // A single replica is its own quorum.
        let solo = Leadership {
            leader: Some("a".into()),
            leader_id: None,
            replicas: vec![],
            size: 1,
            voters: BTreeSet::from([1]),
        };
        assert!(solo.leader_with_quorum("a", within));
    }

    #[test]
    fn a_group_is_called_leaderless_only_after_the_lost_quorum_interval() {
        let now = std::time::Instant::now();
        let Some(long_ago) = now.checked_sub(LOST_QUORUM + Duration::from_secs(1)) else {
            return; // a clock this young cannot say
        };
        // No leader, but only just started: it may still elect one.
        assert!(!leaderless_since(&view(None, vec![]), "a", now));
        assert!(leaderless_since(&view(None, vec![]), "a", long_ago));
        // A leader elsewhere, or here with a quorum, is a leader.
        assert!(!leaderless_since(&view(Some("b"), vec![]), "a", long_ago));
        let heard = vec![replica(2, "b", Some(1)), replica(3, "c", None)];
        assert!(!leaderless_since(&view(Some("a"), heard), "a", long_ago));
        // Leading, but cut off from every other voter for too long.
        let cut_off = vec![replica(2, "b", Some(60)), replica(3, "c", None)];
        assert!(leaderless_since(&view(Some("a"), cut_off), "a", long_ago));
    }
}
