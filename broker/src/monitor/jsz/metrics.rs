//! JetStream's part of `/metrics`: what the shipped alerts need to see
//! from a scrape of one node (usage against the limits, the store's free
//! disk, the meta group's and each stream's leadership, how far each
//! replica lags) from the same numbers `/jsz` reports.
//!
//! Replica lag and currency come from the leader's view, as in `/jsz` and
//! `STREAM.INFO`: only the node that leads a stream (or the meta group)
//! exports them, so a query summed over the cluster counts each replica
//! once. Every node exports whether it knows a leader for each stream it
//! holds: a stream left without one shows on the nodes that remain.

use std::path::Path;
use std::sync::atomic::Ordering;

use super::super::metrics::{Exposition, Kind};
use super::super::Monitor;
use super::{config, detail};
use crate::jetstream::api::stream_info;
use crate::jetstream::cluster::leadership::LOST_QUORUM;
use crate::jetstream::types::{ConsumerInfo, PeerInfo, StreamInfo};

/// Rows of one labelled family.
type Rows<'a> = Vec<(Vec<(&'static str, &'a str)>, f64)>;

/// One stream as this node holds it.
struct StreamView {
    account: String,
    info: StreamInfo,
    /// This node leads it.
    leads: bool,
    /// This node knows no leader for it that can make progress.
    leaderless: bool,
    /// Its durable consumers' info, where this node leads it.
    consumers: Vec<ConsumerInfo>,
}

impl StreamView {
    fn labels(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("account", self.account.as_str()),
            ("stream", self.info.config.name.as_str()),
        ]
    }
}

/// Write the JetStream families into `e`.
pub(in crate::monitor) fn metrics(m: &Monitor, e: &mut Exposition) {
    use Kind::{Counter, Gauge};
    let server = &m.server;
    let Some(js) = server.jetstream() else {
        e.single(
            "tribune_jetstream_enabled",
            Gauge,
            "Whether JetStream runs on this node.",
            0.0,
        );
        return;
    };
    e.single(
        "tribune_jetstream_enabled",
        Gauge,
        "Whether JetStream runs on this node.",
        1.0,
    );
    let cfg = config(server, js);
    e.single(
        "tribune_jetstream_max_memory_bytes",
        Gauge,
        "The memory store's limit (-1: none set).",
        cfg.max_memory as f64,
    );
    e.single(
        "tribune_jetstream_max_storage_bytes",
        Gauge,
        "The file store's limit (-1: none set).",
        cfg.max_storage as f64,
    );
    if let Some((size, free)) = filesystem(&js.store_dir) {
        e.single(
            "tribune_jetstream_store_filesystem_size_bytes",
            Gauge,
            "Size of the filesystem that holds the store directory.",
            size as f64,
        );
        e.single(
            "tribune_jetstream_store_filesystem_free_bytes",
            Gauge,
            "Bytes free to this process on the store directory's filesystem.",
            free as f64,
        );
    }

    let accounts = js.accounts();
    let (mut memory, mut storage, mut api, mut api_errors) = (0u64, 0u64, 0u64, 0u64);
    // Per stream: (account, stream, info, consumers' info).
    let mut streams = Vec::new();
    for acc in &accounts {
        let u = acc.usage();
        memory += u.memory;
        storage += u.storage;
        api += acc.api_total.load(Ordering::Relaxed);
        api_errors += acc.api_errors.load(Ordering::Relaxed);
        let list: Vec<_> = acc.streams.read().values().cloned().collect();
        for s in list {
            let info = stream_info(server, &s, None);
            let leads = detail::leads(server, &s);
            let group = js
                .cluster()
                .filter(|_| info.config.num_replicas > 1)
                .and_then(|c| c.stream_group(&acc.name, &s.name));
            let leaderless = match group {
                Some(g) => !g.leadership().leader_with_quorum(&server.name, LOST_QUORUM),
                None => info.cluster.leader.is_empty(),
            };
            // Durable consumers only, on their stream's leader: ephemeral
            // ones (ordered consumers, KV watchers) come and go under new
            // random names, a new series each time.
            let consumers: Vec<_> = if leads {
                let list: Vec<_> = s.consumers.read().values().cloned().collect();
                list.iter()
                    .filter(|c| c.is_durable() && !c.is_direct())
                    .map(|c| c.info(server))
                    .collect()
            } else {
                Vec::new()
            };
            streams.push(StreamView {
                account: acc.name.clone(),
                info,
                leads,
                leaderless,
                consumers,
            });
        }
    }
    e.single(
        "tribune_jetstream_memory_bytes",
        Gauge,
        "Bytes held in memory-backed streams.",
        memory as f64,
    );
    e.single(
        "tribune_jetstream_storage_bytes",
        Gauge,
        "Bytes held in file-backed streams.",
        storage as f64,
    );
    e.single(
        "tribune_jetstream_api_requests_total",
        Counter,
        "JetStream API requests answered.",
        api as f64,
    );
    e.single(
        "tribune_jetstream_api_errors_total",
        Counter,
        "JetStream API requests answered with an error.",
        api_errors as f64,
    );

    if let Some(c) = js.cluster() {
        let lead = c.meta.status().leadership;
        e.single(
            "tribune_jetstream_meta_cluster_size",
            Gauge,
            "Peers of the JetStream meta group.",
            lead.size as f64,
        );
        e.single(
            "tribune_jetstream_meta_leader",
            Gauge,
            "Whether this node leads the JetStream meta group.",
            f64::from(u8::from(c.meta.is_leader())),
        );
        e.single(
            "tribune_jetstream_meta_leaderless",
            Gauge,
            "Whether this node knows no leader of the JetStream meta group that can make progress (none, or this node leads without a quorum).",
            f64::from(u8::from(
                !lead.leader_with_quorum(&server.name, LOST_QUORUM),
            )),
        );
        if c.meta.is_leader() {
            let rows: Rows = lead
                .replicas
                .iter()
                .map(|r| (vec![("replica", r.name.as_str())], r.lag as f64))
                .collect();
            e.labelled(
                "tribune_jetstream_meta_replica_lag",
                Gauge,
                "Meta log entries a peer is behind the leader (on the leader).",
                &rows,
            );
            let rows: Rows = lead
                .replicas
                .iter()
                .map(|r| {
                    (
                        vec![("replica", r.name.as_str())],
                        f64::from(u8::from(r.current)),
                    )
                })
                .collect();
            e.labelled(
                "tribune_jetstream_meta_replica_current",
                Gauge,
                "Whether a meta group peer is current (on the leader).",
                &rows,
            );
        }
    }

    let per_stream = |f: &dyn Fn(&StreamView) -> f64| {
        streams.iter().map(|v| (v.labels(), f(v))).collect::<Rows>()
    };
    e.labelled(
        "tribune_jetstream_stream_messages",
        Gauge,
        "Messages a stream holds on this node.",
        &per_stream(&|v| v.info.state.messages as f64),
    );
    e.labelled(
        "tribune_jetstream_stream_bytes",
        Gauge,
        "Bytes a stream holds on this node.",
        &per_stream(&|v| v.info.state.bytes as f64),
    );
    e.labelled(
        "tribune_jetstream_stream_last_seq",
        Gauge,
        "A stream's last sequence on this node.",
        &per_stream(&|v| v.info.state.last_seq as f64),
    );
    e.labelled(
        "tribune_jetstream_stream_replicas",
        Gauge,
        "A stream's configured replica count.",
        &per_stream(&|v| v.info.config.num_replicas as f64),
    );
    e.labelled(
        "tribune_jetstream_stream_leader",
        Gauge,
        "Whether this node leads a stream.",
        &per_stream(&|v| f64::from(u8::from(v.leads))),
    );
    e.labelled(
        "tribune_jetstream_stream_leaderless",
        Gauge,
        "Whether this node knows no leader that can make progress for a stream it holds (none, or this node leads without a quorum).",
        &per_stream(&|v| f64::from(u8::from(v.leaderless))),
    );

    // The leader's view of each replica.
    let replicas = |f: &dyn Fn(&PeerInfo) -> f64| {
        led_rows(
            &streams,
            "replica",
            |v| &v.info.cluster.replicas,
            |r| &r.name,
            f,
        )
    };
    e.labelled(
        "tribune_jetstream_stream_replica_lag",
        Gauge,
        "Operations a stream replica is behind its leader (on the leader).",
        &replicas(&|r| r.lag as f64),
    );
    e.labelled(
        "tribune_jetstream_stream_replica_current",
        Gauge,
        "Whether a stream replica is current (on the leader).",
        &replicas(&|r| f64::from(u8::from(r.current))),
    );
    e.labelled(
        "tribune_jetstream_stream_replica_active_seconds",
        Gauge,
        "Seconds since the leader last heard from a stream replica.",
        &replicas(&|r| r.active as f64 / 1e9),
    );

    // Durable consumers, on the node that leads their stream.
    let consumers = |f: &dyn Fn(&ConsumerInfo) -> f64| {
        led_rows(&streams, "consumer", |v| &v.consumers, |c| &c.name, f)
    };
    e.labelled(
        "tribune_jetstream_consumer_num_pending",
        Gauge,
        "Messages a consumer has yet to deliver (on its stream's leader).",
        &consumers(&|c| c.num_pending as f64),
    );
    e.labelled(
        "tribune_jetstream_consumer_num_ack_pending",
        Gauge,
        "Messages delivered and not yet acknowledged (on its stream's leader).",
        &consumers(&|c| c.num_ack_pending as f64),
    );
    e.labelled(
        "tribune_jetstream_consumer_num_redelivered",
        Gauge,
        "Messages delivered more than once (on its stream's leader).",
        &consumers(&|c| c.num_redelivered as f64),
    );
}

/// One row per item (a replica, a consumer) of each stream this node
/// leads, labelled with the stream and the item's `key`.
fn led_rows<'a, T: 'a>(
    streams: &'a [StreamView],
    key: &'static str,
    items: impl Fn(&'a StreamView) -> &'a [T],
    name: impl Fn(&'a T) -> &'a str,
    value: &dyn Fn(&T) -> f64,
) -> Rows<'a> {
    let mut rows: Rows = Vec::new();
    for v in streams.iter().filter(|v| v.leads) {
        for item in items(v) {
            let mut labels = v.labels();
            labels.push((key, name(item)));
            rows.push((labels, value(item)));
        }
    }
    rows
}

/// The size of the filesystem holding `dir` and the bytes an
/// unprivileged writer may still use on it.
fn filesystem(dir: &Path) -> Option<(u64, u64)> {
    let v = nix::sys::statvfs::statvfs(dir).ok()?;
    let block = v.fragment_size() as u64;
    Some((
        (v.blocks() as u64).saturating_mul(block),
        (v.blocks_available() as u64).saturating_mul(block),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filesystem_of_a_directory_has_a_size_and_free_bytes() {
        let dir = std::env::temp_dir();
        let (size, free) = filesystem(&dir).expect("statvfs of the temp dir");
        assert!(size > 0);
        assert!(free <= size);
        assert!(filesystem(Path::new("/nonexistent/tribune")).is_none());
    }
}
