//! Handing a group's leadership to another voter on request
//! (`STREAM.LEADER.STEPDOWN`, `CONSUMER.LEADER.STEPDOWN`,
//! `META.LEADER.STEPDOWN`), with nats-server's `placement` in the request.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use openraft::Raft;
use serde::Deserialize;

use super::leadership::{cluster_not_available, is_leader, leadership, GroupTypes, Leadership};
use super::timing;
use crate::jetstream::errors::{self, ApiError};
use crate::raft::network::Router;

/// Where a stepdown request would have leadership go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Placement {
    /// A server by name: it is asked to lead.
    #[serde(default)]
    pub preferred: String,
    /// Only servers of this cluster.
    #[serde(default)]
    pub cluster: String,
    /// Only servers with every tag (Tribune servers carry none).
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    placement: Option<Placement>,
}

/// The placement of a stepdown request's body. As in nats-server, only a
/// body that is a JSON object or array is read, and must then be valid.
pub fn parse(body: &[u8]) -> Result<Option<Placement>, ApiError> {
    let t = body.trim_ascii();
    if !(t.starts_with(b"{") || t.starts_with(b"[")) {
        return Ok(None);
    }
    serde_json::from_slice::<Request>(t)
        .map(|r| r.placement)
        .map_err(errors::invalid_json)
}

/// nats-server's error when no server fits a placement.
fn no_peers(why: String) -> ApiError {
    ApiError::new(400, 10005, why)
}

/// The voter to hand leadership to.
fn choose(l: &Leadership, cluster: &str, placement: Option<&Placement>) -> Result<u64, ApiError> {
    if let Some(p) = placement.filter(|p| !p.preferred.is_empty()) {
        if l.leader.as_deref() == Some(p.preferred.as_str()) {
            return Err(no_peers(format!(
                "preferred server {:?} is already leader",
                p.preferred
            )));
        }
        return l
            .replicas
            .iter()
            .find(|r| r.name == p.preferred)
            .map(|r| r.id)
            .ok_or_else(|| no_peers(format!("preferred server {:?} not known", p.preferred)));
    }
    let fits = |_: &&super::leadership::ReplicaStatus| {
        placement
            .is_none_or(|p| (p.cluster.is_empty() || p.cluster == cluster) && p.tags.is_empty())
    };
    let current: Vec<u64> = l
        .replicas
        .iter()
        .filter(|r| r.current)
        .filter(fits)
        .map(|r| r.id)
        .collect();
    match current.get(rand::random_range(0..current.len().max(1))) {
        Some(&id) => Ok(id),
        None if placement.is_some() => Err(no_peers("no replacement peer connected".into())),
        None => Err(no_replicas()),
    }
}

fn no_replicas() -> ApiError {
    ApiError::new(400, 10044, "no replicas available for stepdown")
}

/// Hand leadership to another voter: the one `placement` prefers, or
/// one at random among the current ones (in `placement`'s cluster). Stop
/// sending heartbeats and campaigning, ask it to campaign now, then
/// campaign again once someone else leads. Fails when no other voter
/// fits or no new leader appears in time.
pub async fn step_down<C: GroupTypes>(
    raft: &Raft<C>,
    router: &Router,
    group: &str,
    cluster: &str,
    placement: Option<&Placement>,
) -> Result<(), ApiError> {
    if !is_leader(raft, router.id()) {
        return Err(cluster_not_available());
    }
    let target = choose(&leadership(raft, router, group), cluster, placement)?;
    transfer(raft, router, group, target).await
}

/// Hand leadership to a current voter among `allowed`, as a leader
/// leaving its group hands over to a server that stays.
pub async fn step_down_among<C: GroupTypes>(
    raft: &Raft<C>,
    router: &Router,
    group: &str,
    allowed: &BTreeSet<u64>,
) -> Result<(), ApiError> {
    if !is_leader(raft, router.id()) {
        return Err(cluster_not_available());
    }
    let current: Vec<u64> = leadership(raft, router, group)
        .replicas
        .iter()
        .filter(|r| r.current && allowed.contains(&r.id))
        .map(|r| r.id)
        .collect();
    let Some(&target) = current.get(rand::random_range(0..current.len().max(1))) else {
        return Err(no_replicas());
    };
    transfer(raft, router, group, target).await
}

/// Stop sending heartbeats and campaigning, ask `target` to campaign now,
/// then campaign again once someone else leads.
async fn transfer<C: GroupTypes>(
    raft: &Raft<C>,
    router: &Router,
    group: &str,
    target: u64,
) -> Result<(), ApiError> {
    let me = router.id();
    raft.runtime_config().heartbeat(false);
    raft.runtime_config().elect(false);
    // Raft's leadership transfer, within openraft 0.9's leader lease:
    // voters refuse any candidate while their lease on this leader lasts
    // (the longest election timeout since they last heard from it). Once it
    // has run out, the chosen follower, as up to date as this leader,
    // campaigns and this leader votes for it. Should that fail, the
    // followers' own election timers take over.
    tokio::time::sleep(Duration::from_millis(timing::ELECTION_MAX_MS + 50)).await;
    if let Err(e) = router
        .request_elect(target, group, Duration::from_secs(1))
        .await
    {
        tracing::debug!("stepdown of {group}: transfer to {target:016x} failed: {e}");
    }
    let deadline = Instant::now() + timing::STEPDOWN_WAIT;
    let mut metrics = raft.metrics();
    let mut moved = false;
    while Instant::now() < deadline {
        let leader = metrics.borrow().current_leader;
        if leader.is_some() && leader != Some(me) {
            moved = true;
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), metrics.changed()).await;
    }
    raft.runtime_config().heartbeat(true);
    raft.runtime_config().elect(true);
    if moved {
        Ok(())
    } else {
        Err(cluster_not_available())
    }
}

#[cfg(test)]
mod tests {
    use super::super::leadership::ReplicaStatus;
    use super::*;

    fn group() -> Leadership {
        let replica = |id, name: &str, current| ReplicaStatus {
            id,
            name: name.into(),
            current,
            lag: 0,
            active: None,
        };
        Leadership {
            leader: Some("a".into()),
            leader_id: Some(1),
            replicas: vec![replica(2, "b", true), replica(3, "c", false)],
            size: 3,
            voters: std::collections::BTreeSet::from([1, 2, 3]),
        }
    }

    /// `choose` on [`group`] with the request body `json`.
    fn pick(json: &str) -> Result<u64, ApiError> {
        let placement = parse(json.as_bytes()).unwrap();
        choose(&group(), "C", placement.as_ref())
    }

    #[test]
    fn only_json_bodies_are_read() {
        assert_eq!(parse(b"").unwrap(), None);
        assert_eq!(parse(b"  ").unwrap(), None);
        assert_eq!(parse(b"{}").unwrap(), None);
        assert_eq!(
            parse(b"{\"placement\":{}}").unwrap(),
            Some(Placement::default())
        );
        let e = parse(b"{\"placement\":3}").unwrap_err();
        assert_eq!((e.code, e.err_code), (400, 10025));
    }

    #[test]
    fn preferred_server_by_name() {
        assert_eq!(pick(r#"{"placement":{"preferred":"c"}}"#), Ok(3));
        let e = pick(r#"{"placement":{"preferred":"a"}}"#).unwrap_err();
        assert_eq!((e.code, e.err_code), (400, 10005));
        assert_eq!(e.description, "preferred server \"a\" is already leader");
        let e = pick(r#"{"placement":{"preferred":"z"}}"#).unwrap_err();
        assert_eq!(e.description, "preferred server \"z\" not known");
    }

    #[test]
    fn otherwise_a_current_follower_in_the_cluster() {
        assert_eq!(pick(""), Ok(2));
        assert_eq!(pick(r#"{"placement":{"cluster":"C"}}"#), Ok(2));
        let e = pick(r#"{"placement":{"cluster":"X"}}"#).unwrap_err();
        assert_eq!(
            (e.err_code, e.description.as_str()),
            (10005, "no replacement peer connected")
        );
        let e = pick(r#"{"placement":{"tags":["ssd"]}}"#).unwrap_err();
        assert_eq!(e.err_code, 10005);
    }
}
