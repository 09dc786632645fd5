//! Clustered JetStream between real server processes: the meta group.
//!
//! Three nodes with JetStream on each form one JetStream domain whose
//! metadata leader every node reports in `/jsz` (`meta_cluster`). Each
//! scenario runs on three nats-server nodes (validating the test against
//! the reference) and on three tribune-broker nodes; `CLUSTER_FLAVOR`
//! selects (see `common::cluster`). Deadlines only guard against hanging;
//! nothing asserts a time.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::cluster::{flavor_selected, Cluster, Flavor, CLUSTER_NAME};

/// Longer than the cluster deadline: a meta election after a kill waits for
/// nats-server's election timeout too.
const META_DEADLINE: Duration = Duration::from_secs(45);

/// The meta leader every running node agrees on, with the cluster size
/// each reports; `Err` says who disagrees.
async fn agreed_leader(c: &Cluster) -> Result<(String, Vec<Value>), String> {
    let mut leaders = BTreeSet::new();
    let mut metas = Vec::new();
    for i in c.live() {
        let jsz = c.get_json(i, "/jsz").await?;
        let meta = jsz["meta_cluster"].clone();
        let leader = meta["leader"].as_str().unwrap_or("").to_string();
        if leader.is_empty() {
            return Err(format!("{} has no meta leader: {meta}", c.node(i).name));
        }
        if meta["cluster_size"].as_u64() != Some(3) {
            return Err(format!(
                "{} reports cluster_size {}",
                c.node(i).name,
                meta["cluster_size"]
            ));
        }
        leaders.insert(leader);
        metas.push(meta);
    }
    match leaders.len() {
        1 => Ok((leaders.into_iter().next().unwrap_or_default(), metas)),
        _ => Err(format!("nodes disagree on the meta leader: {leaders:?}")),
    }
}

async fn wait_for_leader(c: &Cluster, not: Option<&str>) -> (String, Vec<Value>) {
    let end = Instant::now() + META_DEADLINE;
    loop {
        let r = agreed_leader(c).await;
        match &r {
            Ok((l, metas)) if Some(l.as_str()) != not => return (l.clone(), metas.clone()),
            _ => {}
        }
        if Instant::now() > end {
            panic!(
                "no agreed meta leader (other than {not:?}): {r:?}\n{}\n{}",
                c.diagnostics().await,
                panics(c)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every node's log lines that report a panic, with what follows them.
fn panics(c: &Cluster) -> String {
    let mut out = String::new();
    for i in 0..c.len() {
        let log = std::fs::read_to_string(c.node(i).log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        for (n, l) in lines.iter().enumerate() {
            if l.contains("panicked") && !l.contains("Fatal") {
                out.push_str(&format!(
                    "{}: {}\n",
                    c.node(i).name,
                    lines[n..(n + 5).min(lines.len())].join("\n")
                ));
            }
        }
    }
    out
}

fn index_of(c: &Cluster, name: &str) -> usize {
    (0..c.len())
        .find(|&i| c.node(i).name == name)
        .unwrap_or_else(|| panic!("leader {name} is not a node"))
}

/// The meta group forms, every node names the same leader, the leader's
/// view lists the two others as current replicas; killing the leader makes
/// the two others elect one of them; the old leader rejoins as a follower.
async fn meta_group_survives_its_leader(flavor: Flavor) -> BTreeSet<String> {
    let mut c = Cluster::start_js(flavor).await;
    let (leader, metas) = wait_for_leader(&c, None).await;
    let li = index_of(&c, &leader);
    // The leader's own view: both others are replicas and current.
    let end = Instant::now() + META_DEADLINE;
    let leader_meta = loop {
        let meta = c.json(li, "/jsz").await["meta_cluster"].clone();
        let replicas = meta["replicas"].as_array().cloned().unwrap_or_default();
        if replicas.len() == 2 && replicas.iter().all(|r| r["current"] == Value::Bool(true)) {
            break meta;
        }
        assert!(
            Instant::now() < end,
            "leader's replicas never current: {meta}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(leader_meta["name"], CLUSTER_NAME);
    let names: BTreeSet<&str> = leader_meta["replicas"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str())
        .collect();
    let others: BTreeSet<&str> = (0..3)
        .filter(|&i| i != li)
        .map(|i| c.node(i).name.as_str())
        .collect();
    assert_eq!(names, others);
    let keys = common::json_shape::shape(&leader_meta);
    drop(metas);

    c.kill(li);
    let (new_leader, _) = wait_for_leader(&c, Some(&leader)).await;
    assert_ne!(new_leader, leader);

    c.restart(li).await;
    c.wait_for_mesh().await;
    let (after, _) = wait_for_leader(&c, None).await;
    assert_eq!(c.live().len(), 3, "{after}");
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_group_survives_its_leader_on_both() {
    let mut shapes = Vec::new();
    for (kind, flavor) in [("nats", Flavor::NatsServer), ("tribune", Flavor::Tribune)] {
        if !flavor_selected(kind) {
            eprintln!("{kind}: skipped by CLUSTER_FLAVOR");
            continue;
        }
        eprintln!("=== {}", flavor.label());
        shapes.push(meta_group_survives_its_leader(flavor).await);
    }
    // `/jsz` `meta_cluster` has the same fields on both servers.
    if let [nats, tribune] = shapes.as_slice() {
        assert_eq!(nats, tribune, "meta_cluster fields differ");
    }
}

/// `$JS.API.META.LEADER.STEPDOWN` from the system account moves the meta
/// leadership to another node and answers `success: true`.
async fn meta_leader_steps_down(flavor: Flavor) {
    let c = Cluster::start_js(flavor).await;
    let (leader, _) = wait_for_leader(&c, None).await;
    // Ask through a node that is not the leader: the request crosses routes.
    let li = index_of(&c, &leader);
    let at = (li + 1) % 3;
    let sys = async_nats::ConnectOptions::with_user_and_password("sys".into(), "sys".into())
        .connect(c.client_url(at))
        .await
        .expect("system account user connects");
    let resp = tokio::time::timeout(
        Duration::from_secs(20),
        sys.request("$JS.API.META.LEADER.STEPDOWN", "{}".into()),
    )
    .await
    .expect("stepdown answered in time")
    .expect("stepdown request");
    let v: Value = serde_json::from_slice(&resp.payload).expect("JSON answer");
    assert_eq!(
        v["type"], "io.nats.jetstream.api.v1.meta_leader_stepdown_response",
        "{v}"
    );
    assert_eq!(v["success"], true, "{v}");
    let (new_leader, _) = wait_for_leader(&c, Some(&leader)).await;
    assert_ne!(new_leader, leader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_leader_steps_down_on_both() {
    for (kind, flavor) in [("nats", Flavor::NatsServer), ("tribune", Flavor::Tribune)] {
        if flavor_selected(kind) {
            eprintln!("=== {}", flavor.label());
            meta_leader_steps_down(flavor).await;
        }
    }
}

/// The whole cluster stops at once and comes back: the meta group is
/// recovered from disk (no re-forming from scratch) and elects a leader.
async fn whole_cluster_restart(flavor: Flavor) {
    let mut c = Cluster::start_js(flavor).await;
    wait_for_leader(&c, None).await;
    for i in 0..3 {
        c.kill(i);
    }
    for i in 0..3 {
        c.restart(i).await;
    }
    c.wait_for_mesh().await;
    wait_for_leader(&c, None).await;
    if flavor == Flavor::Tribune {
        for i in 0..3 {
            let log = std::fs::read_to_string(c.node(i).log_path()).unwrap_or_default();
            assert!(
                !log.contains("forming the metadata group"),
                "{} formed a new meta group after a restart:\n{}",
                c.node(i).name,
                c.node(i).log_excerpt()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_on_both() {
    for (kind, flavor) in [("nats", Flavor::NatsServer), ("tribune", Flavor::Tribune)] {
        if flavor_selected(kind) {
            eprintln!("=== {}", flavor.label());
            whole_cluster_restart(flavor).await;
        }
    }
}

/// A node whose store is wiped comes back empty and rejoins the existing
/// group; it does not form a group of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_node_rejoins() {
    if !flavor_selected("tribune") {
        return;
    }
    let mut c = Cluster::start_js(Flavor::Tribune).await;
    wait_for_leader(&c, None).await;
    // The node with the lowest id is the one that formed the group; wipe it
    // so it would be the one to form another if it could.
    for i in 0..3 {
        c.kill(i);
        std::fs::remove_dir_all(c.store_dir(i)).ok();
        c.restart(i).await;
        c.wait_for_mesh().await;
        wait_for_leader(&c, None).await;
        let log = std::fs::read_to_string(c.node(i).log_path()).unwrap_or_default();
        assert!(
            !log.contains("forming the metadata group"),
            "{} formed a new meta group after being wiped:\n{}",
            c.node(i).name,
            c.node(i).log_excerpt()
        );
    }
}

/// A nats-server with JetStream among Tribune nodes: the two cannot share
/// Raft groups, and Tribune says so in its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_cluster_refuses_shared_raft() {
    if !flavor_selected("mixed") {
        return;
    }
    let c = Cluster::start_js_mixed(&[Flavor::Tribune, Flavor::Tribune, Flavor::NatsServer]).await;
    let end = Instant::now() + META_DEADLINE;
    loop {
        let log = std::fs::read_to_string(c.node(0).log_path()).unwrap_or_default();
        if log.contains("which is not tribune-broker") {
            break;
        }
        assert!(
            Instant::now() < end,
            "no mixed-cluster error:\n{}",
            c.node(0).log_excerpt()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
