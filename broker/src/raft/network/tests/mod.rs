//! Raft groups of three nodes talking through an in-process bus.

mod hub;
mod mem;
mod rpc;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use openraft::{Config, Raft, ServerState};

use self::hub::Hub;
use self::mem::{MemLog, MemSm, Tc};
use super::{Network, NetworkConfig, Router};
use crate::raft::node_id;

const GROUP: &str = "S-ACC-orders";
const WAIT: Duration = Duration::from_secs(20);

struct Node {
    id: u64,
    raft: Raft<Tc>,
    router: Arc<Router>,
    sm: MemSm,
}

fn raft_config() -> Config {
    Config {
        cluster_name: "test".into(),
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        ..Default::default()
    }
}

/// Three nodes with real (hashed) node ids, initialised as one group.
async fn cluster(config: Config, net: NetworkConfig) -> (Arc<Hub>, Vec<Node>) {
    let (hub, nodes) = uninitialized(config, net).await;
    let members: BTreeSet<u64> = nodes.iter().map(|n| n.id).collect();
    nodes[0].raft.initialize(members).await.expect("initialize");
    (hub, nodes)
}

/// Three nodes registered for one group that none has formed yet.
async fn uninitialized(config: Config, net: NetworkConfig) -> (Arc<Hub>, Vec<Node>) {
    let config = Arc::new(config.validate().expect("raft config"));
    let hub = Hub::new();
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3"] {
        let id = node_id(name);
        let router = hub.join(id, net.clone());
        let network = Network::<Tc>::new(router.clone(), GROUP).expect("group name");
        let sm = MemSm::default();
        let raft = Raft::new(id, config.clone(), network, MemLog::default(), sm.clone())
            .await
            .expect("raft");
        router.register(GROUP, raft.clone()).expect("register");
        nodes.push(Node {
            id,
            raft,
            router,
            sm,
        });
    }
    (hub, nodes)
}

/// The index of the node that leads, among `among`, once one does.
async fn leader(nodes: &[Node], among: &[usize]) -> usize {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        for &i in among {
            let m = nodes[i].raft.metrics().borrow().clone();
            if m.state == ServerState::Leader && m.current_leader == Some(nodes[i].id) {
                return i;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `n` payloads of `size` bytes through the leader; returns the log
/// index of the last.
async fn write(node: &Node, tag: &str, n: usize, size: usize) -> u64 {
    let mut last = 0;
    for i in 0..n {
        let mut payload = format!("{tag}-{i}-").into_bytes();
        payload.resize(size.max(payload.len()), b'x');
        let resp = node.raft.client_write(payload).await.expect("client write");
        last = resp.log_id.index;
    }
    last
}

async fn applied(node: &Node, index: u64) {
    node.raft
        .wait(Some(WAIT))
        .applied_index_at_least(Some(index), "applied")
        .await
        .expect("node applies the log");
}

fn tagged(node: &Node, tag: &str) -> usize {
    node.sm
        .data()
        .iter()
        .filter(|d| d.starts_with(tag.as_bytes()))
        .count()
}

async fn shutdown(nodes: Vec<Node>) {
    for n in nodes {
        let _ = n.raft.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_and_replicate() {
    let (_hub, nodes) = cluster(raft_config(), NetworkConfig::default()).await;
    let l = leader(&nodes, &[0, 1, 2]).await;
    let last = write(&nodes[l], "a", 20, 64).await;
    for n in &nodes {
        applied(n, last).await;
    }
    let data = nodes[l].sm.data();
    assert_eq!(data.len(), 20);
    for n in &nodes {
        assert_eq!(n.sm.data(), data);
        assert_eq!(n.router.stats().failures, 0);
    }
    shutdown(nodes).await;
}

/// The question a server asks before forming a group: no peer belongs to
/// one until it is formed, every peer does after, and a peer that does
/// not serve the group is an error (not a "no").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_say_whether_they_joined_a_group() {
    let (_hub, nodes) = uninitialized(raft_config(), NetworkConfig::default()).await;
    let ttl = Duration::from_secs(5);
    for n in &nodes[1..] {
        let joined = nodes[0].router.request_joined(n.id, GROUP, ttl).await;
        assert_eq!(joined, Ok(false));
    }
    assert!(nodes[0]
        .router
        .request_joined(nodes[1].id, "other", ttl)
        .await
        .is_err());
    let members: BTreeSet<u64> = nodes.iter().map(|n| n.id).collect();
    nodes[0].raft.initialize(members).await.expect("initialize");
    let l = leader(&nodes, &[0, 1, 2]).await;
    for n in &nodes {
        let asker = &nodes[(l + 1) % 3].router;
        let joined = if n.id == asker.id() {
            n.raft.is_initialized().await.map_err(|e| e.to_string())
        } else {
            asker.request_joined(n.id, GROUP, ttl).await
        };
        assert_eq!(joined, Ok(true));
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_leader_is_replaced_and_cannot_commit() {
    let (hub, nodes) = cluster(raft_config(), NetworkConfig::default()).await;
    let old = leader(&nodes, &[0, 1, 2]).await;
    let first = write(&nodes[old], "before", 5, 32).await;
    for n in &nodes {
        applied(n, first).await;
    }

    hub.partition(nodes[old].id);
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let new = leader(&nodes, &others).await;
    let after = write(&nodes[new], "after", 5, 32).await;
    for &i in &others {
        applied(&nodes[i], after).await;
    }

    // The old leader alone is no quorum: its write never commits.
    let lost = tokio::time::timeout(
        Duration::from_millis(1500),
        nodes[old].raft.client_write(b"lost".to_vec()),
    )
    .await;
    assert!(
        !matches!(lost, Ok(Ok(_))),
        "isolated leader committed a write"
    );
    assert_eq!(tagged(&nodes[old], "after"), 0);
    assert_eq!(tagged(&nodes[old], "lost"), 0);

    // Healed, it follows the new leader and its uncommitted entry is gone.
    hub.heal(nodes[old].id);
    let last = write(&nodes[new], "healed", 1, 32).await;
    for n in &nodes {
        applied(n, last).await;
    }
    let data = nodes[new].sm.data();
    assert_eq!(data.len(), 11);
    for n in &nodes {
        assert_eq!(n.sm.data(), data);
        assert_eq!(tagged(n, "lost"), 0);
    }
    assert_eq!(
        nodes[old].raft.metrics().borrow().current_leader,
        Some(nodes[new].id)
    );
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_leader_is_replaced() {
    let (_hub, mut nodes) = cluster(raft_config(), NetworkConfig::default()).await;
    let old = leader(&nodes, &[0, 1, 2]).await;
    write(&nodes[old], "before", 3, 32).await;

    // The group leaves the old leader's node: peers asking it get "unknown
    // group" at once (and back off) rather than waiting out timeouts.
    let gone = nodes.remove(old);
    assert!(gone.router.unregister(GROUP));
    assert!(!gone.router.unregister(GROUP));
    gone.raft.shutdown().await.expect("shutdown");

    let new = leader(&nodes, &[0, 1]).await;
    let last = write(&nodes[new], "after", 5, 32).await;
    for n in &nodes {
        applied(n, last).await;
        assert_eq!(tagged(n, "after"), 5);
    }
    let failures: u64 = nodes.iter().map(|n| n.router.stats().failures).sum();
    assert!(failures > 0, "nobody was told the group is gone");
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_are_split_to_fit() {
    let net = NetworkConfig {
        max_message: 8 * 1024,
        ..Default::default()
    };
    let (hub, nodes) = cluster(raft_config(), net).await;
    let l = leader(&nodes, &[0, 1, 2]).await;
    let lagging = (l + 1) % 3;

    // A follower cut off while 60 KiB are written catches up in one go:
    // openraft's first batch is too large for a message and is split.
    hub.partition(nodes[lagging].id);
    let last = write(&nodes[l], "big", 60, 1024).await;
    hub.heal(nodes[lagging].id);
    applied(&nodes[lagging], last).await;

    assert_eq!(nodes[lagging].sm.data(), nodes[l].sm.data());
    assert_eq!(tagged(&nodes[lagging], "big"), 60);
    assert!(nodes[l].router.stats().oversized > 0, "no batch was split");
    assert!(hub.largest.load(Ordering::Relaxed) <= 8 * 1024);
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_is_installed_over_the_bus() {
    let config = Config {
        // Larger than a message: each chunk also goes in pieces.
        snapshot_max_chunk_size: 20 * 1024,
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..raft_config()
    };
    let net = NetworkConfig {
        max_message: 8 * 1024,
        ..Default::default()
    };
    let (hub, nodes) = cluster(config, net).await;
    let l = leader(&nodes, &[0, 1, 2]).await;
    let lagging = (l + 1) % 3;

    hub.partition(nodes[lagging].id);
    let last = write(&nodes[l], "snap", 40, 1024).await;
    nodes[l].raft.trigger().snapshot().await.expect("snapshot");
    nodes[l]
        .raft
        .wait(Some(WAIT))
        .metrics(
            |m| m.snapshot.map(|s| s.index) >= Some(last),
            "snapshot built",
        )
        .await
        .expect("snapshot built");
    nodes[l]
        .raft
        .trigger()
        .purge_log(last)
        .await
        .expect("purge");
    nodes[l]
        .raft
        .wait(Some(WAIT))
        .metrics(|m| m.purged.map(|p| p.index) >= Some(last), "log purged")
        .await
        .expect("log purged");

    // The lagging follower's entries are gone from the leader's log: only
    // a snapshot brings it up to date.
    hub.heal(nodes[lagging].id);
    applied(&nodes[lagging], last).await;
    assert!(nodes[lagging].sm.installed() >= 1, "no snapshot installed");
    assert_eq!(nodes[lagging].sm.data(), nodes[l].sm.data());
    assert_eq!(tagged(&nodes[lagging], "snap"), 40);
    assert!(hub.largest.load(Ordering::Relaxed) <= 8 * 1024);
    // 40 KiB of snapshot in messages of 8 KiB: at least 5 pieces.
    assert!(hub.count("snapshot") >= 5, "{}", hub.count("snapshot"));

    // And it keeps following.
    let more = write(&nodes[l], "more", 2, 32).await;
    applied(&nodes[lagging], more).await;
    shutdown(nodes).await;
}
