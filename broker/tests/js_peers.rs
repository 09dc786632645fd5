//! Changing which servers hold a replicated stream: `STREAM.PEER.REMOVE`
//! and `STREAM.UPDATE` of `num_replicas`, on nats-server and on
//! tribune-broker (`on_both_flavors!`; `CLUSTER_FLAVOR=nats|tribune`
//! selects).
//!
//! - Three nodes, R3: nowhere to move a replica to. The meta leader checks
//!   the request as nats-server does (bad request, invalid JSON, stream not
//!   found, peer not a member) and refuses the removal with "peer remap
//!   failed"; the stream keeps its three replicas and its acknowledged
//!   messages, and goes on taking publishes.
//! - Five nodes, R3: the removed follower's replica moves to another node,
//!   which catches up (every node of the new set is made leader and its
//!   copy read whole); removing the leader moves leadership too, and a
//!   dead node's replica moves all the same. A durable consumer's group
//!   follows the stream's, and the removed nodes delete their copy (a dead
//!   one once it is back).
//! - Three nodes: R1 → R3 → R1 keeps every message; the leader stays when
//!   the stream shrinks; too many replicas and a negative count are refused
//!   with nats-server's errors.
//!
//! Deadlines only guard against hanging; nothing asserts a duration.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde_json::{json, Value};

use common::cluster::{Flavor, JsOptions};
use common::js_cluster::JsCluster;
use common::js_publish::publish_sure;
use common::js_readback::{assert_copies_identical, ReplicaCopy};

const STREAM: &str = "MOVES";
const CONSUMER: &str = "mover";
const REMOVE_TYPE: &str = "io.nats.jetstream.api.v1.stream_remove_peer_response";
const UPDATE_TYPE: &str = "io.nats.jetstream.api.v1.stream_update_response";

/// The stream's configuration with `replicas` replicas.
fn config(replicas: i64) -> Value {
    json!({
        "name": STREAM,
        "subjects": ["moves.>"],
        "storage": "file",
        "num_replicas": replicas,
    })
}

/// `STREAM.CREATE` through node `via`.
async fn create(jc: &JsCluster, via: usize, replicas: i64) {
    jc.request_ok(
        via,
        &format!("$JS.API.STREAM.CREATE.{STREAM}"),
        &config(replicas).to_string(),
    )
    .await
    .unwrap_or_else(|e| panic!("create {STREAM} R{replicas}: {e}"));
}

/// `STREAM.UPDATE` to `replicas` replicas through node `via`: the answer.
async fn update(jc: &JsCluster, via: usize, replicas: i64) -> Value {
    let v = jc
        .request(
            via,
            &format!("$JS.API.STREAM.UPDATE.{STREAM}"),
            &config(replicas).to_string(),
        )
        .await
        .unwrap_or_else(|e| panic!("update {STREAM} to R{replicas}: {e}"));
    assert_eq!(v["type"], UPDATE_TYPE, "{v}");
    v
}

/// `STREAM.PEER.REMOVE` of `body` through node `via`: the answer.
async fn remove_peer(jc: &JsCluster, via: usize, stream: &str, body: &str) -> Value {
    let v = jc
        .request(via, &format!("$JS.API.STREAM.PEER.REMOVE.{stream}"), body)
        .await
        .unwrap_or_else(|e| panic!("peer remove {body:?}: {e}"));
    assert_eq!(v["type"], REMOVE_TYPE, "{v}");
    v
}

/// `STREAM.PEER.REMOVE` that must go through: asked again while nobody
/// answers or the answer is 503/10008 (the meta leader just died and no
/// other is elected yet). An answer "peer not a member" after such a retry
/// means an earlier try went through, and counts as success.
async fn remove_peer_surely(jc: &JsCluster, via: usize, body: &str) {
    let subject = format!("$JS.API.STREAM.PEER.REMOVE.{STREAM}");
    let mut retried = false;
    let v = jc
        .poll(&format!("PEER.REMOVE {body} answered"), || {
            let retry = retried;
            retried = true;
            let subject = &subject;
            async move {
                let v = jc.request(via, subject, body).await?;
                let err = v["error"]["err_code"].as_u64();
                match err {
                    Some(10008) => Err(format!("no meta leader yet: {v}")),
                    Some(10040) if retry => Ok(json!({ "success": true })),
                    _ => Ok(v),
                }
            }
        })
        .await;
    eprintln!("remove {body}: {v}");
    assert_eq!(v["success"], true, "{v}");
    assert!(v.get("error").is_none(), "{v}");
}

/// Panics unless `v` is the error `code`/`err_code` (with `description`,
/// if given) and nothing else.
fn assert_error(v: &Value, code: u64, err_code: u64, description: Option<&str>) {
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(v["error"]["err_code"], err_code, "{v}");
    if let Some(d) = description {
        assert_eq!(v["error"]["description"], d, "{v}");
    }
    assert!(v.get("success").is_none_or(|s| s == false), "{v}");
}

/// Publish `n` acknowledged messages through node `via`, numbered from
/// `from`, into `acked` (seq → payload).
async fn publish(jc: &JsCluster, via: usize, from: u64, n: u64, acked: &mut BTreeMap<u64, Bytes>) {
    let js = jc.js_patient(via);
    for k in from..from + n {
        let p = Bytes::from(format!("move {k}"));
        let ack = publish_sure(&js, format!("moves.m{k}"), p.clone()).await;
        assert_eq!(ack.stream, STREAM);
        assert!(
            acked.insert(ack.sequence, p).is_none(),
            "seq {} acked twice",
            ack.sequence
        );
    }
}

/// Panics unless every copy holds exactly the acknowledged messages.
fn assert_copies_hold(copies: &[ReplicaCopy], acked: &BTreeMap<u64, Bytes>, ctx: &str) {
    assert_copies_identical(copies, ctx);
    for copy in copies {
        let held: BTreeMap<u64, Bytes> = copy.msgs.iter().map(|(s, m)| (*s, m.payload())).collect();
        assert_eq!(
            &held, acked,
            "{ctx}: {}'s copy is not what was acknowledged",
            copy.name
        );
        assert!(
            copy.missing.is_empty(),
            "{ctx}: {} misses {:?}",
            copy.name,
            copy.missing
        );
    }
}

/// Node names, for messages.
fn names(jc: &JsCluster, nodes: &BTreeSet<usize>) -> Vec<String> {
    nodes.iter().map(|&i| jc.c.node(i).name.clone()).collect()
}

/// Poll STREAM.INFO through node `via` until the stream's leader and
/// replicas (all current) satisfy `want`, led by another node than
/// `not_leader`; returns the leader and the members.
async fn wait_members(
    jc: &JsCluster,
    via: usize,
    want: impl Fn(&BTreeSet<usize>) -> bool,
    not_leader: Option<usize>,
    what: &str,
) -> (usize, BTreeSet<usize>) {
    jc.poll(what, || async {
        let v = jc
            .request_ok(via, &format!("$JS.API.STREAM.INFO.{STREAM}"), "")
            .await?;
        let members = jc.members_of(&v);
        let leader = v["cluster"]["leader"].as_str().unwrap_or("");
        if leader.is_empty() {
            return Err(format!("no leader: {v}"));
        }
        let leader = jc.index_of(leader);
        if Some(leader) == not_leader {
            return Err(format!("{} still leads: {v}", jc.c.node(leader).name));
        }
        let lagging: Vec<&Value> = v["cluster"]["replicas"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["current"] != true)
            .collect();
        if !want(&members) || !lagging.is_empty() {
            return Err(format!("members {:?}: {v}", names(jc, &members)));
        }
        Ok((leader, members))
    })
    .await
}

/// Poll until node `i` no longer has a directory for the stream in its
/// store (nats-server and tribune-broker both keep an account's streams in
/// `jetstream/<account>/streams/<stream>`).
async fn wait_copy_deleted(jc: &JsCluster, i: usize) {
    let dir =
        jc.c.store_dir(i)
            .join("jetstream")
            .join("APP")
            .join("streams")
            .join(STREAM);
    jc.poll(
        &format!("{} to delete {}", jc.c.node(i).name, dir.display()),
        || async {
            match dir.exists() {
                false => Ok(()),
                true => Err(format!("{} still exists", dir.display())),
            }
        },
    )
    .await;
}

// ---------------------------------------------------------------------------
// 1. Three nodes, R3: nowhere to move a replica.
// ---------------------------------------------------------------------------

/// PEER.REMOVE's checks and its refusal when no node can take the replica;
/// the stream stays whole and writable.
async fn peer_remove_without_a_spare_node(flavor: Flavor) {
    let jc = JsCluster::start(flavor).await;
    create(&jc, 0, 3).await;
    let mut acked = BTreeMap::new();
    publish(&jc, 1, 0, 10, &mut acked).await;
    let (leader, _) = jc.wait_stream_leader(STREAM, None).await;
    // Asked through a node that does not lead the stream: the meta leader
    // answers wherever the request enters.
    let via = (leader + 1) % 3;
    for body in ["", "{}", r#"{"peer":""}"#] {
        let v = remove_peer(&jc, via, STREAM, body).await;
        assert_error(&v, 400, 10003, Some("bad request"));
    }
    let v = remove_peer(&jc, via, STREAM, r#"{"peer":"node-z"}"#).await;
    assert_error(&v, 400, 10040, Some("peer not a member"));
    // The JSON parser's words differ (Go's and serde's).
    let v = remove_peer(&jc, via, STREAM, "not json").await;
    assert_error(&v, 400, 10025, None);
    let text = v["error"]["description"].as_str().unwrap_or("");
    assert!(text.starts_with("invalid JSON: "), "{v}");
    let body = json!({ "peer": jc.c.node(leader).name }).to_string();
    let v = remove_peer(&jc, via, "NOSUCH", &body).await;
    assert_error(&v, 404, 10059, Some("stream not found"));

    // A follower, then the leader: every node already holds a replica.
    for peer in [(leader + 2) % 3, leader] {
        let body = json!({ "peer": jc.c.node(peer).name }).to_string();
        let v = remove_peer(&jc, via, STREAM, &body).await;
        eprintln!("remove {}: {v}", jc.c.node(peer).name);
        assert_error(&v, 503, 10075, Some("peer remap failed"));
    }

    // Nothing moved: three replicas, all current, and the stream goes on.
    let (_, info) = jc.wait_stream_leader(STREAM, None).await;
    assert_eq!(jc.members_of(&info), jc.live_set(), "{info}");
    assert_eq!(info["config"]["num_replicas"], 3, "{info}");
    publish(&jc, via, 10, 10, &mut acked).await;
    let copies = jc.every_replica_copy(STREAM).await;
    assert_copies_hold(&copies, &acked, "after refused removals");
}

on_both_flavors!(peer_remove_without_a_spare_node => peer_remove_without_a_spare_node);

// ---------------------------------------------------------------------------
// 2. Five nodes, R3: replicas move.
// ---------------------------------------------------------------------------

/// A follower's replica moves to a node that held none and catches up;
/// then the leader's moves, and leadership with it; then a dead node's.
/// The consumer's group follows the stream's; removed nodes delete their
/// copy (a dead one when it comes back).
async fn peer_remove_moves_the_replica(flavor: Flavor) {
    let mut jc = JsCluster::start_sized(flavor, 5, &JsOptions::default()).await;
    create(&jc, 0, 3).await;
    let mut acked = BTreeMap::new();
    publish(&jc, 0, 0, 20, &mut acked).await;
    jc.request_ok(
        0,
        &format!("$JS.API.CONSUMER.DURABLE.CREATE.{STREAM}.{CONSUMER}"),
        &json!({ "stream_name": STREAM, "config": {
            "durable_name": CONSUMER, "ack_policy": "explicit" } })
        .to_string(),
    )
    .await
    .unwrap_or_else(|e| panic!("create consumer: {e}"));
    let (leader, first) = wait_members(&jc, 0, |m| m.len() == 3, None, "three replicas").await;
    eprintln!("{STREAM} on {:?}", names(&jc, &first));

    // A follower leaves; a node that held no replica takes its place.
    let follower = *first.iter().find(|&&i| i != leader).unwrap_or(&leader);
    let via = (0..5).find(|i| !first.contains(i)).unwrap_or(0);
    let body = json!({ "peer": jc.c.node(follower).name }).to_string();
    let v = remove_peer(&jc, via, STREAM, &body).await;
    eprintln!("remove follower {}: {v}", jc.c.node(follower).name);
    assert_eq!(v["success"], true, "{v}");
    assert!(v.get("error").is_none(), "{v}");
    let removed_again = remove_peer(&jc, via, STREAM, &body).await;
    assert_error(&removed_again, 400, 10040, Some("peer not a member"));
    let (_, second) = wait_members(
        &jc,
        via,
        |m| m.len() == 3 && !m.contains(&follower) && m.difference(&first).count() == 1,
        None,
        "the follower's replica on another node",
    )
    .await;
    eprintln!("{STREAM} moved to {:?}", names(&jc, &second));
    publish(&jc, via, 20, 10, &mut acked).await;
    // The consumer's group is the stream's.
    jc.poll("the consumer on the stream's nodes", || async {
        let v = jc
            .request_ok(
                via,
                &format!("$JS.API.CONSUMER.INFO.{STREAM}.{CONSUMER}"),
                "",
            )
            .await?;
        match jc.members_of(&v) == second {
            true => Ok(()),
            false => Err(format!(
                "consumer on {:?}: {v}",
                names(&jc, &jc.members_of(&v))
            )),
        }
    })
    .await;
    let copies = jc.every_replica_copy_among(STREAM, &second).await;
    assert_copies_hold(&copies, &acked, "after the follower moved");
    wait_copy_deleted(&jc, follower).await;

    // The leader leaves: another node leads, a third one joins.
    let (leader, _) = jc.wait_stream_leader_among(STREAM, None, &second).await;
    let body = json!({ "peer": jc.c.node(leader).name }).to_string();
    let v = remove_peer(&jc, via, STREAM, &body).await;
    eprintln!("remove leader {}: {v}", jc.c.node(leader).name);
    assert_eq!(v["success"], true, "{v}");
    let (_, third) = wait_members(
        &jc,
        via,
        |m| m.len() == 3 && !m.contains(&leader),
        Some(leader),
        "the leader's replica on another node",
    )
    .await;
    eprintln!("{STREAM} moved to {:?}", names(&jc, &third));
    publish(&jc, via, 30, 10, &mut acked).await;
    let copies = jc.every_replica_copy_among(STREAM, &third).await;
    assert_copies_hold(&copies, &acked, "after the leader moved");
    if !third.contains(&follower) {
        wait_copy_deleted(&jc, follower).await;
    }
    wait_copy_deleted(&jc, leader).await;

    // A dead follower's replica moves too; the node deletes its copy when
    // it comes back.
    let (leader, _) = jc.wait_stream_leader_among(STREAM, None, &third).await;
    let dead = *third
        .iter()
        .find(|&&i| i != leader && i != via)
        .unwrap_or(&leader);
    jc.kill(dead);
    // It may have been the meta leader: then the request waits for the
    // next one.
    let body = json!({ "peer": jc.c.node(dead).name }).to_string();
    remove_peer_surely(&jc, via, &body).await;
    let (_, fourth) = wait_members(
        &jc,
        via,
        |m| m.len() == 3 && !m.contains(&dead),
        None,
        "the dead node's replica on another node",
    )
    .await;
    eprintln!("{STREAM} moved to {:?}", names(&jc, &fourth));
    publish(&jc, via, 40, 10, &mut acked).await;
    jc.restart(dead).await;
    wait_copy_deleted(&jc, dead).await;
    let copies = jc.every_replica_copy_among(STREAM, &fourth).await;
    assert_copies_hold(&copies, &acked, "after the dead node's replica moved");
}

on_both_flavors!(peer_remove_moves_the_replica => peer_remove_moves_the_replica);

// ---------------------------------------------------------------------------
// 3. Three nodes: R1 → R3 → R1.
// ---------------------------------------------------------------------------

/// Growing an R1 stream to R3 copies it to the two other nodes; shrinking
/// it back keeps its leader and every message; impossible counts are
/// refused with nats-server's errors.
async fn replicas_up_and_down(flavor: Flavor) {
    let jc = JsCluster::start(flavor).await;
    create(&jc, 0, 1).await;
    let mut acked = BTreeMap::new();
    publish(&jc, 0, 0, 10, &mut acked).await;
    let (single, _) = wait_members(&jc, 0, |m| m.len() == 1, None, "one replica").await;

    let v = update(&jc, 1, 3).await;
    eprintln!("update to R3: {v}");
    assert!(v.get("error").is_none(), "{v}");
    assert_eq!(v["config"]["num_replicas"], 3, "{v}");
    assert_eq!(v["state"]["messages"], 10, "{v}");
    let (_, info) = jc.wait_stream_leader(STREAM, None).await;
    assert_eq!(jc.members_of(&info), jc.live_set(), "{info}");
    publish(&jc, 2, 10, 10, &mut acked).await;
    let copies = jc.every_replica_copy(STREAM).await;
    assert_copies_hold(&copies, &acked, "after R1 → R3");

    let v = update(&jc, 0, 5).await;
    assert_error(&v, 400, 10005, Some("no suitable peers for placement"));
    let v = update(&jc, 0, -1).await;
    assert_error(&v, 400, 10133, Some("replicas count cannot be negative"));

    let (leader, _) = jc.wait_stream_leader(STREAM, None).await;
    let v = update(&jc, 1, 1).await;
    eprintln!("update to R1: {v}");
    assert!(v.get("error").is_none(), "{v}");
    assert_eq!(v["config"]["num_replicas"], 1, "{v}");
    let (kept, _) = wait_members(&jc, 0, |m| m.len() == 1, None, "one replica again").await;
    assert_eq!(
        kept,
        leader,
        "the leader {} keeps the stream, not {}",
        jc.c.node(leader).name,
        jc.c.node(kept).name
    );
    publish(&jc, 1, 20, 5, &mut acked).await;
    let copy = jc
        .read_leader_copy(STREAM, kept)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_copies_hold(&[copy], &acked, "after R3 → R1");
    for i in (0..3).filter(|&i| i != kept) {
        wait_copy_deleted(&jc, i).await;
    }
    eprintln!(
        "R1 on {} first, on {} at the end",
        jc.c.node(single).name,
        jc.c.node(kept).name
    );
}

on_both_flavors!(replicas_up_and_down => replicas_up_and_down);
