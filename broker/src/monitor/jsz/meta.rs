//! `/jsz`'s `meta_cluster`: the meta group's leader, its replicas
//! (current, active, lag) and size, as nats-server's `MetaClusterInfo`.

use serde::Serialize;

use super::super::gofmt::GoTime;
use crate::jetstream::cluster::JsCluster;

/// nats-server's `MetaClusterInfo`.
#[derive(Serialize)]
pub(super) struct MetaCluster {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    leader: String,
    /// The leader's peer id.
    #[serde(skip_serializing_if = "String::is_empty")]
    peer: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    replicas: Vec<PeerInfo>,
    cluster_size: usize,
    /// Voters a decision needs.
    quorum_needed: usize,
    /// Proposals not yet applied.
    pending: usize,
    /// API requests queued for the meta leader: Tribune queues none (each
    /// is answered on arrival), and says so.
    pending_requests: usize,
    pending_infos: usize,
    snapshot: MetaSnapshot,
}

/// The meta group's last snapshot and what has been logged since.
#[derive(Serialize)]
struct MetaSnapshot {
    pending_entries: u64,
    pending_size: u64,
    last_time: GoTime,
}

/// nats-server's `PeerInfo`; `active` in nanoseconds.
#[derive(Serialize)]
struct PeerInfo {
    name: String,
    current: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    offline: bool,
    active: i64,
    #[serde(skip_serializing_if = "is_zero")]
    lag: u64,
    peer: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl MetaCluster {
    /// The meta group as this server sees it.
    pub(super) fn of(c: &JsCluster) -> MetaCluster {
        let st = c.meta.status();
        let lead = st.leadership;
        MetaCluster {
            name: c.meta.cluster().to_string(),
            leader: lead.leader.unwrap_or_default(),
            peer: lead.leader_id.map(crate::raft::peer_id).unwrap_or_default(),
            replicas: lead
                .replicas
                .into_iter()
                .map(|r| PeerInfo {
                    name: r.name,
                    current: r.current,
                    offline: false,
                    active: r
                        .active
                        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
                    lag: r.lag,
                    peer: crate::raft::peer_id(r.id),
                })
                .collect(),
            cluster_size: lead.size,
            quorum_needed: lead.size / 2 + 1,
            pending: st.pending,
            pending_requests: 0,
            pending_infos: 0,
            snapshot: MetaSnapshot {
                pending_entries: st.snapshot_pending_entries,
                pending_size: st.snapshot_pending_size,
                last_time: st.snapshot_time.map_or_else(GoTime::zero, GoTime::from),
            },
        }
    }
}
