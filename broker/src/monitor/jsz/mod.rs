//! `/jsz`: JetStream's state on this server, in nats-server's shape
//! (`server_id`, `now`, `config`, usage totals, `api`), so tools that poll it
//! (the rolling-upgrade playbook, dashboards) read Tribune the same way.
//!
//! A clustered server adds `meta_cluster`: the meta group's leader, its
//! replicas (current, active, lag) and size, as nats-server reports them.

use std::sync::atomic::Ordering;

use axum::response::Response;
use serde::Serialize;

use super::gofmt::GoTime;
use super::{json_ok, Monitor};
use crate::options::SyncPolicy;

#[derive(Serialize)]
struct JszConfig {
    max_memory: i64,
    max_storage: i64,
    store_dir: String,
    sync_interval: i64,
    sync_always: bool,
}

#[derive(Serialize)]
struct Api {
    total: u64,
    errors: u64,
}

/// nats-server's `MetaClusterInfo`.
#[derive(Serialize)]
struct MetaCluster {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    leader: String,
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
    last_time: GoTime,
    pending_entries: u64,
    pending_size: u64,
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

#[derive(Serialize)]
struct Jsz {
    server_id: String,
    now: GoTime,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<JszConfig>,
    memory: u64,
    storage: u64,
    reserved_memory: u64,
    reserved_storage: u64,
    accounts: usize,
    ha_assets: usize,
    api: Api,
    streams: usize,
    consumers: usize,
    messages: u64,
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta_cluster: Option<MetaCluster>,
}

pub(super) fn handle(m: &Monitor) -> Response {
    m.count("/jsz");
    let server = &m.server;
    let mut out = Jsz {
        server_id: server.id.clone(),
        now: Monitor::now(),
        disabled: true,
        config: None,
        memory: 0,
        storage: 0,
        reserved_memory: 0,
        reserved_storage: 0,
        accounts: 0,
        ha_assets: 0,
        api: Api {
            total: 0,
            errors: 0,
        },
        streams: 0,
        consumers: 0,
        messages: 0,
        bytes: 0,
        meta_cluster: None,
    };
    if let Some(js) = server.jetstream() {
        let opts = server.opts();
        out.disabled = false;
        out.config = Some(JszConfig {
            max_memory: opts.jetstream.max_memory_store.unwrap_or(-1),
            max_storage: opts.jetstream.max_file_store.unwrap_or(-1),
            store_dir: js.store_dir.display().to_string(),
            sync_interval: match js.sync {
                SyncPolicy::Always => 0,
                SyncPolicy::Interval(d) => d.as_nanos() as i64,
            },
            sync_always: js.sync == SyncPolicy::Always,
        });
        if let Some(c) = js.cluster() {
            let st = c.meta.status();
            let lead = st.leadership;
            out.meta_cluster = Some(MetaCluster {
                name: c.meta.cluster().to_string(),
                leader: lead.leader.unwrap_or_default(),
                peer: crate::raft::peer_id(c.meta.me()),
                replicas: lead
                    .replicas
                    .into_iter()
                    .map(|r| PeerInfo {
                        name: r.name,
                        current: r.current,
                        offline: false,
                        active: r.active.map_or(0, |d| d.as_nanos() as i64),
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
                    last_time: st.snapshot_time.map_or_else(GoTime::zero, GoTime::from),
                    pending_entries: st.snapshot_pending_entries,
                    pending_size: st.snapshot_pending_size,
                },
            });
        }
        for acc in js.accounts() {
            out.accounts += 1;
            out.api.total += acc.api_total.load(Ordering::Relaxed);
            out.api.errors += acc.api_errors.load(Ordering::Relaxed);
            let u = acc.usage();
            out.memory += u.memory;
            out.storage += u.storage;
            out.streams += u.streams;
            out.consumers += u.consumers;
            out.messages += u.messages;
            out.bytes += u.memory + u.storage;
        }
    }
    json_ok(&out)
}
