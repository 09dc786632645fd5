//! Chaos for replicated (R3) JetStream on three server processes: SIGKILL
//! of the stream leader at random points under acknowledged publishes, of
//! the meta leader while streams are created, of the whole cluster, a node
//! coming back with an empty disk, and a network partition (iptables) that
//! leaves one node alone.
//!
//! After each round the replicas are compared whole: every node is made the
//! stream's leader in turn and its copy read back with `STREAM.MSG.GET`
//! (`common::js_readback`). Every acknowledged message must be in every
//! copy at its acknowledged sequence, every publisher's acks must come with
//! growing sequences, the copies must be identical, and a durable consumer
//! must go on to deliver every acknowledged message (redelivery is allowed,
//! loss is not). Deadlines only guard against hanging; nothing asserts a
//! duration.
//!
//! Every scenario runs on three nats-server nodes (validating it) and on
//! three tribune-broker nodes; `CLUSTER_FLAVOR=nats|tribune` selects.
//!
//! Environment:
//! - `JS_CHAOS_ROUNDS` (default 3; `make chaos` runs 25): rounds of the
//!   leader-kill scenario; the partition scenario runs half as many (at
//!   least one), the meta-leader kill, whole-cluster restart and wiped-node
//!   scenarios a third as many (at least one).
//! - `JS_CHAOS_SEED` (default random, printed): replays the random choices.
//!
//! The partition scenario needs iptables and the right to change it (root);
//! without them it says why and passes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use common::cluster::{Flavor, JsOptions};
use common::js_cluster::{JsCluster, JS_DEADLINE, REQUEST_TIMEOUT};
use common::js_publish::{publish, publish_sure};
use common::js_readback::assert_copies_identical;
use common::js_workload::{ConsumerWorker, Publishers};
use common::netcut::{self, NetCut};

const STREAM: &str = "CHAOS";
const DURABLE: &str = "auditor";
/// Concurrent publishers.
const PUBLISHERS: usize = 4;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// `JS_CHAOS_ROUNDS`, at least 1.
fn rounds() -> u64 {
    env_u64("JS_CHAOS_ROUNDS").unwrap_or(3).max(1)
}

/// Rounds of the scenarios that restart more than one thing per round.
fn short_rounds() -> u64 {
    rounds().div_ceil(3)
}

/// Rounds of the partition scenario: half as many, at least one (the
/// first cuts the stream leader off, the second a follower, later ones a
/// node at random).
fn partition_rounds() -> u64 {
    (rounds() / 2).max(1)
}

/// The random source of one scenario, from `JS_CHAOS_SEED` or a printed
/// random seed.
fn rng_for(flavor: Flavor, scenario: &str) -> (StdRng, u64) {
    let seed = env_u64("JS_CHAOS_SEED").unwrap_or_else(rand::random);
    eprintln!("{scenario} on {}: JS_CHAOS_SEED={seed}", flavor.label());
    (StdRng::seed_from_u64(seed), seed)
}

/// `STREAM.CREATE` of an R3 file stream with direct gets through node
/// `via`, polled until it succeeds.
async fn create_stream(jc: &JsCluster, via: usize, name: &str, subjects: &[&str]) {
    let body = stream_config(name, subjects);
    let subject = format!("$JS.API.STREAM.CREATE.{name}");
    jc.poll(&format!("creating {name}"), || async {
        jc.request_ok(via, &subject, &body).await
    })
    .await;
}

fn stream_config(name: &str, subjects: &[&str]) -> String {
    serde_json::json!({
        "name": name,
        "subjects": subjects,
        "storage": "file",
        "num_replicas": 3,
        "allow_direct": true,
    })
    .to_string()
}

/// A cluster with the `CHAOS` stream on `chaos.>` and its durable consumer.
async fn chaos_cluster(
    flavor: Flavor,
    opts: &JsOptions,
) -> (JsCluster, Publishers, ConsumerWorker) {
    let jc = JsCluster::start_with(flavor, opts).await;
    create_stream(&jc, 0, STREAM, &["chaos.>"]).await;
    jc.wait_stream_leader(STREAM, None).await;
    let worker = ConsumerWorker::create(&jc, 0, STREAM, DURABLE).await;
    let pubs = Publishers::new(PUBLISHERS, STREAM, "chaos");
    (jc, pubs, worker)
}

/// `n` clients that fail over between the nodes.
async fn roaming(jc: &JsCluster, n: usize, what: &str) -> Vec<async_nats::Client> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(jc.roaming_client(&format!("{what}-{i}")).await);
    }
    out
}

/// The checks after a round, with the publishers stopped and the consumer
/// worker running: acks in order per publisher; the consumer delivers
/// every acknowledged message (the worker is stopped after); every running
/// node's copy of the stream, read as its leader, is identical to the
/// others, without holes, holding every acknowledged message at its
/// sequence and nothing that was not sent (nor any id in `forbidden`).
async fn verify_round(
    jc: &JsCluster,
    pubs: &Publishers,
    worker: &mut ConsumerWorker,
    forbidden: &BTreeSet<String>,
    ctx: &str,
) {
    pubs.check_order(ctx);
    let acked = pubs.acked_msgs();
    let sent = pubs.sent_ids();
    let via = jc.c.live()[0];
    let want: BTreeSet<u64> = acked.keys().copied().collect();
    worker.drain(jc, via, &want, ctx).await;
    eprintln!(
        "{ctx}: the consumer delivered every acknowledged message ({} redeliveries)",
        worker.redeliveries()
    );
    let copies = jc.every_replica_copy(STREAM).await;
    assert_copies_identical(&copies, ctx);
    let copy = &copies[0];
    assert!(
        copy.missing.is_empty(),
        "{ctx}: holes in the stream at {:?}",
        copy.missing
    );
    for (seq, want) in &acked {
        let got = copy.msgs.get(seq);
        let same = got.is_some_and(|m| {
            m.subject == want.subject
                && m.payload() == want.payload
                && m.msg_id().as_deref() == Some(want.msg_id.as_str())
        });
        assert!(
            same,
            "{ctx}: acknowledged seq {seq} should be {want:?}, {} has {got:?}",
            copy.name
        );
    }
    let mut ids: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (seq, m) in &copy.msgs {
        let id = m.msg_id().unwrap_or_default();
        assert!(
            !forbidden.contains(&id),
            "{ctx}: seq {seq} holds {id}, never to be stored: {m:?}"
        );
        assert!(
            sent.contains(&id),
            "{ctx}: seq {seq} holds a message nobody sent: {m:?}"
        );
        ids.entry(id).or_default().push(*seq);
    }
    let twice: Vec<_> = ids.iter().filter(|(_, s)| s.len() > 1).collect();
    let acked_ids: BTreeSet<&str> = acked.values().map(|s| s.msg_id.as_str()).collect();
    let unacked = ids
        .keys()
        .filter(|id| !acked_ids.contains(id.as_str()))
        .count();
    // Raft lets a retry reach a new leader before it has applied the
    // original, so a message id may be stored twice: reported only.
    eprintln!(
        "{ctx}: {} copies identical, state {:?}; {}; {unacked} stored but never acked; ids stored twice: {twice:?}",
        copies.len(),
        copy.state,
        pubs.summary()
    );
}

// ---------------------------------------------------------------------------
// 1. SIGKILL of the stream leader at random points.
// ---------------------------------------------------------------------------

/// Each round: the publishers (clients that fail over) and the consumer run;
/// after a random number of acks the stream leader is SIGKILLed, the
/// majority goes on acknowledging for a random while, the node is
/// restarted; then the round is verified.
async fn stream_leader_kills(flavor: Flavor) {
    let (mut rng, seed) = rng_for(flavor, "stream_leader_kills");
    let (mut jc, mut pubs, mut worker) = chaos_cluster(flavor, &JsOptions::default()).await;
    let clients = roaming(&jc, PUBLISHERS, "publisher").await;
    let consumer_client = jc.roaming_client("auditor").await;
    for round in 0..rounds() {
        let ctx = format!(
            "{} leader kill round {round} (JS_CHAOS_SEED={seed})",
            flavor.label()
        );
        pubs.start(&clients);
        worker.start(consumer_client.clone());
        pubs.wait_more(&jc, rng.random_range(10..=150), "acks before the kill")
            .await;
        let victim = jc.current_stream_leader(STREAM).await;
        jc.kill(victim);
        eprintln!(
            "{ctx}: killed the stream leader {} at {} acks",
            jc.c.node(victim).name,
            pubs.acked_count()
        );
        pubs.wait_more(&jc, rng.random_range(20..=80), "acks with the leader down")
            .await;
        jc.restart(victim).await;
        pubs.wait_more(&jc, 20, "acks after the restart").await;
        pubs.stop().await;
        verify_round(&jc, &pubs, &mut worker, &BTreeSet::new(), &ctx).await;
    }
}

on_both_flavors!(stream_leader_kills => stream_leader_kills);

// ---------------------------------------------------------------------------
// 2. SIGKILL of the meta leader while streams are created.
// ---------------------------------------------------------------------------

/// Streams created per round.
const META_STREAMS: usize = 4;

/// Each round: a client that fails over creates streams one after another
/// (each retried until it succeeds); after a random number of them the
/// node `/jsz` names as meta leader is SIGKILLed, and creation goes on; the
/// node comes back. Then every node lists every stream created so far,
/// hosts a replica of each (`/jsz` counts), and each new stream takes an
/// acknowledged message that every node serves.
async fn meta_leader_kill(flavor: Flavor) {
    let (mut rng, seed) = rng_for(flavor, "meta_leader_kill");
    let mut jc = JsCluster::start(flavor).await;
    let creator = jc.roaming_client("creator").await;
    let mut all: Vec<String> = Vec::new();
    for round in 0..short_rounds() {
        let ctx = format!(
            "{} meta kill round {round} (JS_CHAOS_SEED={seed})",
            flavor.label()
        );
        let names: Vec<String> = (0..META_STREAMS)
            .map(|j| format!("META_{round}_{j}"))
            .collect();
        let created = Arc::new(Mutex::new(Vec::new()));
        let kill_after = rng.random_range(1..META_STREAMS);
        let reached = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(create_streams(
            creator.clone(),
            names.clone(),
            round,
            created.clone(),
            (kill_after, reached.clone()),
        ));
        let count = || created.lock().unwrap_or_else(|e| e.into_inner()).len();
        tokio::time::timeout(JS_DEADLINE, reached.notified())
            .await
            .unwrap_or_else(|_| panic!("{ctx}: only {} streams created", count()));
        let victim = jc.wait_meta_leader().await;
        jc.kill(victim);
        eprintln!(
            "{ctx}: killed the meta leader {} after {} creates",
            jc.c.node(victim).name,
            count()
        );
        task.await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        jc.restart(victim).await;
        jc.wait_api_ready().await;
        let leader = jc.wait_meta_leader().await;
        eprintln!("{ctx}: meta leader now {}", jc.c.node(leader).name);
        all.extend(names.iter().cloned());
        verify_streams(&jc, &all, &names, &ctx).await;
    }
}

/// Create each of `names` (subjects `meta.<round>.<j>`) through `nc`,
/// retrying until the create succeeds (creating an existing stream with
/// the same configuration succeeds too), appending each to `created`.
/// After the `n`th, `reached` is notified and creation goes straight on.
async fn create_streams(
    nc: async_nats::Client,
    names: Vec<String>,
    round: u64,
    created: Arc<Mutex<Vec<String>>>,
    (n, reached): (usize, Arc<tokio::sync::Notify>),
) {
    let end = std::time::Instant::now() + JS_DEADLINE;
    for (j, name) in names.iter().enumerate() {
        let subject = format!("meta.{round}.{j}");
        let body = stream_config(name, &[&subject]);
        loop {
            let r = tokio::time::timeout(
                REQUEST_TIMEOUT,
                nc.request(
                    format!("$JS.API.STREAM.CREATE.{name}"),
                    Bytes::from(body.clone()),
                ),
            )
            .await;
            let answer = match r {
                Ok(Ok(m)) => serde_json::from_slice::<Value>(&m.payload).map_err(|e| e.to_string()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer".to_string()),
            };
            match answer {
                Ok(v) if v.get("error").is_none() => break,
                other => {
                    assert!(
                        std::time::Instant::now() < end,
                        "creating {name} never succeeded: {other:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        let done = {
            let mut c = created.lock().unwrap_or_else(|e| e.into_inner());
            c.push(name.clone());
            c.len()
        };
        if done == n {
            reached.notify_one();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every node lists exactly `all` (STREAM.NAMES through it) and counts
/// them in its `/jsz`; each of `new` has a leader with every node a
/// current replica and serves an acknowledged message through every node.
async fn verify_streams(jc: &JsCluster, all: &[String], new: &[String], ctx: &str) {
    let want: BTreeSet<String> = all.iter().cloned().collect();
    for i in jc.c.live() {
        let name = jc.c.node(i).name.clone();
        jc.poll(&format!("{ctx}: {name} to list every stream"), || async {
            let v = jc.request_ok(i, "$JS.API.STREAM.NAMES", "").await?;
            let have: BTreeSet<String> = v["streams"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            if have == want {
                Ok(())
            } else {
                Err(format!("lists {have:?}"))
            }
        })
        .await;
        jc.poll(&format!("{ctx}: {name} to host every stream"), || async {
            let v = jc.c.get_json(i, "/jsz").await?;
            match v["streams"].as_u64() {
                Some(n) if n == want.len() as u64 => Ok(()),
                _ => Err(format!("/jsz streams {} of {}", v["streams"], want.len())),
            }
        })
        .await;
    }
    for (j, name) in new.iter().enumerate() {
        let (leader, _) = jc.wait_stream_leader(name, None).await;
        let payload = Bytes::from(format!("{name} hello"));
        let subject = name
            .strip_prefix("META_")
            .map(|rest| format!("meta.{}", rest.replace('_', ".")))
            .unwrap_or_default();
        let ack = publish_sure(
            &jc.js_patient((leader + 1 + j) % 3),
            subject,
            payload.clone(),
        )
        .await;
        assert_eq!(ack.stream, *name, "{ctx}");
        let want = BTreeMap::from([(ack.sequence, payload)]);
        jc.wait_every_node_holds(name, &want).await;
    }
    eprintln!("{ctx}: {} streams on every node", all.len());
}

on_both_flavors!(meta_leader_kill => meta_leader_kill);

// ---------------------------------------------------------------------------
// 3. The whole cluster killed and restarted.
// ---------------------------------------------------------------------------

/// Each round: publishers and consumer run; after a random number of acks
/// all three nodes are SIGKILLed (in random order, one right after the
/// other) and restarted; every acknowledged message is back on every node,
/// identically, and the consumer resumes.
async fn whole_cluster_restart(flavor: Flavor) {
    let (mut rng, seed) = rng_for(flavor, "whole_cluster_restart");
    let (mut jc, mut pubs, mut worker) = chaos_cluster(flavor, &JsOptions::default()).await;
    let clients = roaming(&jc, PUBLISHERS, "publisher").await;
    let consumer_client = jc.roaming_client("auditor").await;
    for round in 0..short_rounds() {
        let ctx = format!(
            "{} whole-cluster restart round {round} (JS_CHAOS_SEED={seed})",
            flavor.label()
        );
        pubs.start(&clients);
        worker.start(consumer_client.clone());
        pubs.wait_more(&jc, rng.random_range(20..=200), "acks before the kill")
            .await;
        let mut order = vec![0, 1, 2];
        let first = rng.random_range(0..3);
        order.rotate_left(first);
        for &i in &order {
            jc.kill(i);
        }
        pubs.abort().await;
        worker.abort().await;
        eprintln!("{ctx}: killed {order:?} at {} acks", pubs.acked_count());
        for &i in order.iter().rev() {
            jc.restart(i).await;
        }
        jc.wait_api_ready().await;
        jc.wait_stream_leader(STREAM, None).await;
        pubs.start(&clients);
        worker.start(consumer_client.clone());
        pubs.wait_more(&jc, 20, "acks after the restart").await;
        pubs.stop().await;
        verify_round(&jc, &pubs, &mut worker, &BTreeSet::new(), &ctx).await;
    }
}

on_both_flavors!(whole_cluster_restart => whole_cluster_restart);

// ---------------------------------------------------------------------------
// 4. A node comes back with an empty disk.
// ---------------------------------------------------------------------------

/// Each round: publishers and consumer run; a node (the stream leader or a
/// follower, by chance) is SIGKILLed, its store directory removed, the
/// majority goes on acknowledging, the node starts again under its old name
/// with nothing on disk. It must catch up: made leader, it holds the same
/// stream as the others.
async fn wiped_node_rejoins(flavor: Flavor) {
    let (mut rng, seed) = rng_for(flavor, "wiped_node_rejoins");
    let (mut jc, mut pubs, mut worker) = chaos_cluster(flavor, &JsOptions::default()).await;
    let clients = roaming(&jc, PUBLISHERS, "publisher").await;
    let consumer_client = jc.roaming_client("auditor").await;
    for round in 0..short_rounds() {
        let ctx = format!(
            "{} wiped node round {round} (JS_CHAOS_SEED={seed})",
            flavor.label()
        );
        pubs.start(&clients);
        worker.start(consumer_client.clone());
        pubs.wait_more(&jc, rng.random_range(20..=150), "acks before the wipe")
            .await;
        let leader = jc.current_stream_leader(STREAM).await;
        let victim = if rng.random_bool(0.5) {
            leader
        } else {
            (leader + rng.random_range(1..3)) % 3
        };
        jc.kill(victim);
        jc.c.wipe_store(victim);
        eprintln!(
            "{ctx}: wiped {} ({}) at {} acks",
            jc.c.node(victim).name,
            if victim == leader {
                "the leader"
            } else {
                "a follower"
            },
            pubs.acked_count()
        );
        pubs.wait_more(&jc, rng.random_range(20..=100), "acks with the node gone")
            .await;
        jc.restart(victim).await;
        pubs.wait_more(&jc, 20, "acks after the restart").await;
        pubs.stop().await;
        verify_round(&jc, &pubs, &mut worker, &BTreeSet::new(), &ctx).await;
    }
}

on_both_flavors!(wiped_node_rejoins => wiped_node_rejoins);

// ---------------------------------------------------------------------------
// 5. A partition leaves one node alone.
// ---------------------------------------------------------------------------

/// Route pings every second, a route closed after two unanswered: a cut
/// route is noticed in seconds (the default keeps it up for minutes).
const FAST_PINGS: &str = "ping_interval: \"1s\"\nping_max: 2";

/// Each round: the publishers and the consumer run through the two nodes
/// that will be the majority; one node (the stream leader in the first
/// round, a follower in the second, then by chance) is cut off from the
/// others with iptables. A client of the cut-off node publishes all along
/// and must never be acknowledged, while the majority goes on
/// acknowledging; both sides must notice (routes down). Then the cut
/// heals, and the round is verified: no message published to the minority
/// is in the stream, nothing acknowledged is missing, replicas identical.
async fn partition_minority(flavor: Flavor) {
    if let Err(why) = netcut::usable() {
        eprintln!("skipped: the partition test needs iptables and the right to change it: {why}");
        return;
    }
    netcut::clean_leftovers();
    let (mut rng, seed) = rng_for(flavor, "partition_minority");
    let opts = JsOptions {
        extra_config: FAST_PINGS.to_string(),
        node_gids: true,
        ..JsOptions::default()
    };
    let (jc, mut pubs, mut worker) = chaos_cluster(flavor, &opts).await;
    let mut minority_ids = BTreeSet::new();
    for round in 0..partition_rounds() {
        let ctx = format!(
            "{} partition round {round} (JS_CHAOS_SEED={seed})",
            flavor.label()
        );
        let (leader, _) = jc.wait_stream_leader(STREAM, None).await;
        let victim = match round {
            0 => leader,
            1 => (leader + 1) % 3,
            _ => rng.random_range(0..3),
        };
        let majority: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
        let clients: Vec<async_nats::Client> =
            majority.iter().map(|&i| jc.client(i).clone()).collect();
        pubs.start(&clients);
        worker.start(clients[rng.random_range(0..2)].clone());
        pubs.wait_more(&jc, 20, "acks before the cut").await;

        let cut = NetCut::isolate(&jc.c, victim)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: cutting {} off: {e}", jc.c.node(victim).name));
        eprintln!(
            "{ctx}: cut {} ({}) off at {} acks",
            cut.victim,
            if victim == leader {
                "the stream leader"
            } else {
                "a follower"
            },
            pubs.acked_count()
        );
        let stop = AtomicBool::new(false);
        let probe = minority_probe(&jc, victim, round, &stop);
        let majority_works = async {
            pubs.wait_more(&jc, 30, "the majority to acknowledge while cut")
                .await;
            wait_routes_down(&jc, victim).await;
            pubs.wait_more(&jc, 10, "the majority to acknowledge with the routes down")
                .await;
            stop.store(true, Ordering::SeqCst);
        };
        let (probed, ()) = tokio::join!(probe, majority_works);
        eprintln!(
            "{ctx}: {} publishes to the minority, answers {:?}",
            probed.ids.len(),
            probed.errors
        );
        assert!(
            probed.acked.is_empty(),
            "{ctx}: the cut-off {} acknowledged {:?}",
            jc.c.node(victim).name,
            probed.acked
        );
        minority_ids.extend(probed.ids);

        cut.heal();
        jc.c.wait_for_mesh().await;
        let healed = std::time::Instant::now();
        jc.wait_stream_leader(STREAM, None).await;
        eprintln!(
            "{ctx}: a healthy stream leader {:?} after the mesh healed",
            healed.elapsed()
        );
        pubs.wait_more(&jc, 20, "acks after healing").await;
        pubs.stop().await;
        verify_round(&jc, &pubs, &mut worker, &minority_ids, &ctx).await;
    }
}

/// What the client of the cut-off node saw.
struct Probe {
    /// Message ids sent.
    ids: Vec<String>,
    /// (id, seq) of every acknowledged one: must stay empty.
    acked: Vec<(String, u64)>,
    /// Distinct failure texts.
    errors: BTreeSet<String>,
}

/// How long the minority's client waits for each ack.
const PROBE_ACK_WAIT: Duration = Duration::from_secs(2);

/// Publish `minority-<round>-<n>` through node `victim`'s client, one at a
/// time (each waiting [`PROBE_ACK_WAIT`] for its ack), until `stop`.
async fn minority_probe(jc: &JsCluster, victim: usize, round: u64, stop: &AtomicBool) -> Probe {
    let mut js = async_nats::jetstream::new(jc.client(victim).clone());
    js.set_timeout(PROBE_ACK_WAIT);
    let mut p = Probe {
        ids: Vec::new(),
        acked: Vec::new(),
        errors: BTreeSet::new(),
    };
    while !stop.load(Ordering::SeqCst) {
        let id = format!("minority-{round}-{}", p.ids.len());
        let payload = Bytes::from(format!("sent to the minority: {id}"));
        let r = publish(&js, "chaos.minority".into(), Some(&id), payload).await;
        p.ids.push(id.clone());
        match r {
            Ok(ack) => p.acked.push((id, ack.sequence)),
            Err(e) => {
                p.errors.insert(e.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p
}

/// Poll until node `victim` has no route left and no other node routes to
/// it: the cut is complete, both sides know.
async fn wait_routes_down(jc: &JsCluster, victim: usize) {
    let id = jc.c.server_id(victim).to_string();
    let name = jc.c.node(victim).name.clone();
    let started = std::time::Instant::now();
    jc.poll(&format!("the routes to {name} to go down"), || async {
        let mine = jc.c.route_ids(victim).await?;
        if !mine.is_empty() {
            return Err(format!("{name} still routes to {:?}", jc.c.names_of(&mine)));
        }
        for i in jc.c.live().into_iter().filter(|&i| i != victim) {
            if jc.c.route_ids(i).await?.contains(&id) {
                return Err(format!("{} still routes to {name}", jc.c.node(i).name));
            }
        }
        Ok(())
    })
    .await;
    // Informational, never asserted.
    eprintln!("routes to {name} down after {:?}", started.elapsed());
}

on_both_flavors!(partition_minority => partition_minority);

#[test]
fn proc_net_tcp_addresses_parse() {
    use std::net::Ipv4Addr;
    assert_eq!(
        netcut::proc_addr("0100007F:1F90"),
        Some((Ipv4Addr::new(127, 0, 0, 1), 8080))
    );
    assert_eq!(
        netcut::proc_addr("0000000000000000FFFF00000300007F:0050"),
        Some((Ipv4Addr::new(127, 0, 0, 3), 80))
    );
    assert_eq!(
        netcut::proc_addr("00000000000000000000000001000000:0050"),
        None
    );
}
