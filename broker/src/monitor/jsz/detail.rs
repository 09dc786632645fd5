//! `/jsz`'s `account_details`: per account its usage and API counters and,
//! when asked, its streams (`stream_detail`) with their cluster, state,
//! configuration and consumers, in nats-server's `AccountDetail` and
//! `StreamDetail` shapes.
//!
//! What nats-server can add and Tribune has nothing for: `mirror`,
//! `sources` and `direct_consumer_detail` (Tribune refuses mirrors and
//! sources), and `consumer_raft_groups` (a Tribune consumer has no Raft
//! group of its own: it is replicated through its stream's).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;

use super::options::JszOptions;
use crate::jetstream::api::stream_info;
use crate::jetstream::cluster::stream_group::StreamGroup;
use crate::jetstream::stream::Stream;
use crate::jetstream::types::{ClusterInfo, ConsumerInfo, StreamConfig, StreamState};
use crate::jetstream::JsAccount;
use crate::server::Server;

/// An account's JetStream limit, as nats-server reports it in
/// `reserved_memory` / `reserved_storage` (the limit converted to an
/// unsigned number). Tribune sets no JetStream limits on accounts: each is
/// unlimited, -1, as `$JS.API.INFO` reports.
const ACCOUNT_LIMIT: i64 = -1;

/// nats-server's `JetStreamAPIStats` (`inflight` is left out when zero, and
/// Tribune answers each request on arrival).
#[derive(Serialize, Default)]
pub(super) struct Api {
    pub level: u32,
    pub total: u64,
    pub errors: u64,
}

/// nats-server's `JetStreamStats`, which both `/jsz` itself and each of
/// its account details start with.
#[derive(Serialize, Default)]
pub(super) struct Stats {
    pub memory: u64,
    pub storage: u64,
    pub reserved_memory: u64,
    pub reserved_storage: u64,
    pub accounts: usize,
    pub ha_assets: usize,
    pub api: Api,
}

/// nats-server's `AccountDetail`: `name`, `id` and its `JetStreamStats`
/// (whose `accounts`, `ha_assets` and `api.level` nats-server leaves zero
/// here), then the streams.
#[derive(Serialize)]
pub(in crate::monitor) struct AccountDetail {
    name: String,
    id: String,
    #[serde(flatten)]
    stats: Stats,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stream_detail: Vec<StreamDetail>,
}

/// nats-server's `StreamDetail`.
#[derive(Serialize)]
struct StreamDetail {
    name: String,
    created: String,
    cluster: ClusterInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<StreamConfig>,
    state: StreamState,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    consumer_detail: Vec<ConsumerInfo>,
    #[serde(skip_serializing_if = "String::is_empty")]
    stream_raft_group: String,
}

impl AccountDetail {
    /// `acc` as `opts` asks for it.
    pub(super) fn of(server: &Server, acc: &JsAccount, opts: &JszOptions) -> AccountDetail {
        let usage = acc.usage();
        let streams: Vec<Arc<Stream>> = if opts.streams {
            acc.streams.read().values().cloned().collect()
        } else {
            Vec::new()
        };
        AccountDetail {
            name: acc.name.clone(),
            id: acc.name.clone(),
            stats: Stats {
                memory: usage.memory,
                storage: usage.storage,
                // Go's uint64 conversion of the limit.
                reserved_memory: ACCOUNT_LIMIT as u64,
                reserved_storage: ACCOUNT_LIMIT as u64,
                api: Api {
                    level: 0,
                    total: acc.api_total.load(Ordering::Relaxed),
                    errors: acc.api_errors.load(Ordering::Relaxed),
                },
                ..Stats::default()
            },
            stream_detail: streams
                .iter()
                .filter_map(|s| stream_detail(server, acc, s, opts))
                .collect(),
        }
    }
}

/// One stream, or `None` when only the streams this server leads are
/// wanted and it does not lead this one (nats-server compares the cluster
/// section's leader with its own name).
fn stream_detail(
    server: &Server,
    acc: &JsAccount,
    s: &Stream,
    opts: &JszOptions,
) -> Option<StreamDetail> {
    let info = stream_info(server, s, None);
    if opts.stream_leader_only && info.cluster.leader != server.name {
        return None;
    }
    let consumer_detail = if opts.consumers {
        let consumers: Vec<_> = s.consumers.read().values().cloned().collect();
        consumers
            .iter()
            .map(|c| {
                let mut ci = c.info(server);
                if !opts.config {
                    ci.config = None;
                }
                ci
            })
            .collect()
    } else {
        Vec::new()
    };
    let stream_raft_group = if opts.raft {
        server
            .jetstream()
            .and_then(|js| js.cluster().cloned())
            .and_then(|c| c.stream_group(&acc.name, &s.name))
            .map(|g| g.group.clone())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Some(StreamDetail {
        name: s.name.clone(),
        created: info.created,
        cluster: info.cluster,
        config: opts.config.then_some(info.config),
        state: info.state,
        consumer_detail,
        stream_raft_group,
    })
}

/// The Raft group of `s` on this server, when it has one in nats-server's
/// terms: clustered and replicated (nats-server runs no Raft node for a
/// single replica).
fn replicated_group(server: &Server, s: &Stream) -> Option<Arc<StreamGroup>> {
    let c = server.jetstream().and_then(|js| js.cluster().cloned())?;
    if s.inner.lock().config.num_replicas <= 1 {
        return None;
    }
    let acc = s.account.upgrade()?;
    c.stream_group(&acc.name, &s.name)
}

/// Whether this server leads `s`, as nats-server counts `streams_leader`
/// and `consumers_leader`: a stream without a Raft group (a server by
/// itself, or a single replica) counts as led here, a replicated one when
/// this replica leads. A Tribune consumer is led where its stream is.
pub(super) fn leads(server: &Server, s: &Stream) -> bool {
    let Some(c) = server.jetstream().and_then(|js| js.cluster().cloned()) else {
        return true;
    };
    if s.inner.lock().config.num_replicas <= 1 {
        return true;
    }
    s.account
        .upgrade()
        .and_then(|acc| c.stream_group(&acc.name, &s.name))
        .is_some_and(|g| g.is_leader())
}

/// Whether `s` counts among `ha_assets`: a replicated stream's Raft group
/// running here.
pub(super) fn is_ha_asset(server: &Server, s: &Stream) -> bool {
    replicated_group(server, s).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &serde_json::Value) -> Vec<&str> {
        v.as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    #[test]
    fn account_detail_has_nats_servers_fields_and_omissions() {
        let d = AccountDetail {
            name: "APP".into(),
            id: "APP".into(),
            stats: Stats {
                memory: 1,
                storage: 2,
                reserved_memory: ACCOUNT_LIMIT as u64,
                reserved_storage: ACCOUNT_LIMIT as u64,
                api: Api {
                    level: 0,
                    total: 3,
                    errors: 0,
                },
                ..Stats::default()
            },
            stream_detail: Vec::new(),
        };
        let v = serde_json::to_value(&d).unwrap();
        let mut k = keys(&v);
        k.sort_unstable();
        assert_eq!(
            k,
            [
                "accounts",
                "api",
                "ha_assets",
                "id",
                "memory",
                "name",
                "reserved_memory",
                "reserved_storage",
                "storage"
            ]
        );
        // Go's uint64(-1) for an unlimited account.
        assert_eq!(v["reserved_memory"], u64::MAX);
    }

    #[test]
    fn stream_detail_leaves_out_what_was_not_asked() {
        let d = StreamDetail {
            name: "S".into(),
            created: "2024-01-01T00:00:00Z".into(),
            cluster: ClusterInfo {
                leader: "n1".into(),
                ..Default::default()
            },
            config: None,
            state: StreamState::default(),
            consumer_detail: Vec::new(),
            stream_raft_group: String::new(),
        };
        let v = serde_json::to_value(&d).unwrap();
        let mut k = keys(&v);
        k.sort_unstable();
        assert_eq!(k, ["cluster", "created", "name", "state"]);
        assert_eq!(v["cluster"], serde_json::json!({"leader": "n1"}));
    }
}
