//! Replicated (R3) JetStream streams and consumers on three server
//! processes: creation and reads through every node, leader kills while
//! publishing and consuming, leader stepdowns, peer removal and a minority
//! that must refuse writes.
//!
//! Every scenario is an `async fn(Flavor)` body that `on_both_flavors!`
//! turns into `<scenario>::nats_server` (three nats-server nodes: validates
//! the test against the reference) and `<scenario>::tribune` (three
//! tribune-broker nodes). `CLUSTER_FLAVOR=nats|tribune` selects, as for
//! `tests/cluster.rs`; so does a name filter:
//! `cargo nextest run -p tribune-broker --test js_replicated nats_server`.
//!
//! The cluster and its per-node clients come from
//! `common::js_cluster::JsCluster` (node i on 127.0.0.(i+1), JetStream store
//! and ports kept across kill -9 and restart). Deadlines only guard against
//! hanging; nothing asserts a duration.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;

use common::cluster::Flavor;
use common::js_cluster::{JsCluster, JS_DEADLINE};
use common::js_publish::{publish, publish_sure};

const STREAM: &str = "SCORES";
const CONSUMER: &str = "worker";

/// `STREAM.CREATE` of the R3 stream `SCORES` on `sports.>` (file storage,
/// direct gets allowed) through node `via`; returns the answer.
async fn create_scores(jc: &JsCluster, via: usize) -> Value {
    let body = serde_json::json!({
        "name": STREAM,
        "subjects": ["sports.>"],
        "storage": "file",
        "num_replicas": 3,
        "allow_direct": true,
    });
    let v = jc
        .request_ok(
            via,
            &format!("$JS.API.STREAM.CREATE.{STREAM}"),
            &body.to_string(),
        )
        .await
        .unwrap_or_else(|e| panic!("create {STREAM}: {e}"));
    assert_eq!(
        v["type"], "io.nats.jetstream.api.v1.stream_create_response",
        "{v}"
    );
    assert_eq!(v["config"]["num_replicas"], 3, "{v}");
    v
}

/// Publish `n` messages through node `via`, all acknowledged, numbered
/// `payload(k)` for k in 0..n; returns seq → payload.
async fn publish_acked(
    jc: &JsCluster,
    via: usize,
    n: u64,
    payload: impl Fn(u64) -> String,
) -> BTreeMap<u64, Bytes> {
    let js = jc.js_patient(via);
    let mut out = BTreeMap::new();
    for k in 0..n {
        let p = Bytes::from(payload(k));
        let ack = publish_sure(&js, format!("sports.football.m{k}"), p.clone()).await;
        assert_eq!(ack.stream, STREAM);
        out.insert(ack.sequence, p);
    }
    out
}

// ---------------------------------------------------------------------------
// 1. Create, publish through every node, read back from every node.
// ---------------------------------------------------------------------------

/// STREAM.CREATE of an R3 stream through node 0; STREAM.INFO through every
/// node shows the cluster block and `num_replicas: 3`; 200 acknowledged
/// publishes alternating among the nodes get increasing sequences; every
/// message reads back through DIRECT.GET and MSG.GET on every node.
async fn r3_stream_create_publish_read(flavor: Flavor) {
    let jc = JsCluster::start(flavor).await;
    create_scores(&jc, 0).await;
    let (leader, _) = jc.wait_stream_leader(STREAM, None).await;
    for i in 0..3 {
        let info = jc
            .request_ok(i, &format!("$JS.API.STREAM.INFO.{STREAM}"), "")
            .await
            .unwrap_or_else(|e| panic!("STREAM.INFO via node {i}: {e}"));
        assert_eq!(
            info["type"], "io.nats.jetstream.api.v1.stream_info_response",
            "{info}"
        );
        assert_eq!(info["config"]["num_replicas"], 3, "{info}");
        jc.assert_cluster_block(&info, leader);
    }

    let js: Vec<_> = (0..3).map(|i| jc.js_patient(i)).collect();
    let mut want = BTreeMap::new();
    let mut last = 0;
    for k in 0..200u64 {
        let node = (k % 3) as usize;
        let payload = Bytes::from(format!("score {k} via node {node}"));
        let ack = publish_sure(
            &js[node],
            format!("sports.football.match{}", k % 7),
            payload.clone(),
        )
        .await;
        assert_eq!(ack.stream, STREAM, "ack of {k} names the stream");
        assert!(!ack.duplicate);
        assert!(ack.sequence > last, "seq {} after {last}", ack.sequence);
        last = ack.sequence;
        want.insert(ack.sequence, payload);
    }
    assert_eq!(last, 200, "a fresh stream numbers from 1 without gaps");
    jc.wait_every_node_holds(STREAM, &want).await;
    let state = jc.stream_state(1, STREAM).await;
    assert_eq!(state["messages"], 200, "{state}");
    assert_eq!(state["first_seq"], 1, "{state}");
    assert_eq!(state["last_seq"], 200, "{state}");
}

on_both_flavors!(r3_stream_create_publish_read => r3_stream_create_publish_read);

// ---------------------------------------------------------------------------
// 2. Kill -9 the stream leader while a client publishes.
// ---------------------------------------------------------------------------

/// One acknowledged publish of the leader-kill test.
#[derive(Clone, Debug)]
struct Acked {
    k: u64,
    seq: u64,
    duplicate: bool,
}

/// What a publisher saw in one round.
#[derive(Default)]
struct PublishLog {
    acked: Vec<Acked>,
    /// Failed attempts (error or no ack), later retried.
    failures: u64,
    /// A few of the failures' texts, for the test output.
    samples: BTreeSet<String>,
}

fn payload_of(k: u64) -> Bytes {
    Bytes::from(format!("update {k}"))
}

/// Publish `payload_of(k)` for k = `first`, `first + 1`, ... through `js`,
/// each with `Nats-Msg-Id: m<k>` and retried until acknowledged, until `stop`
/// is set between two messages. Returns the next k.
async fn publisher(
    js: async_nats::jetstream::Context,
    first: u64,
    stop: &AtomicBool,
    log: &Mutex<PublishLog>,
) -> u64 {
    let mut k = first;
    while !stop.load(Ordering::SeqCst) {
        let id = format!("m{k}");
        let end = Instant::now() + JS_DEADLINE;
        loop {
            match publish(&js, format!("sports.tennis.m{k}"), Some(&id), payload_of(k)).await {
                Ok(ack) => {
                    assert_eq!(ack.stream, STREAM);
                    let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
                    l.acked.push(Acked {
                        k,
                        seq: ack.sequence,
                        duplicate: ack.duplicate,
                    });
                    break;
                }
                Err(e) => {
                    assert!(Instant::now() < end, "message {k} never acknowledged: {e}");
                    {
                        let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
                        l.failures += 1;
                        if l.samples.len() < 4 {
                            l.samples.insert(e.to_string());
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        k += 1;
        // A short breath between messages keeps the stream (and the final
        // read-back of every message on every node) to a few thousand.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    k
}

/// Wait until `log` holds at least `n` acks.
async fn wait_acked(jc: &JsCluster, log: &Mutex<PublishLog>, n: usize, what: &str) {
    jc.poll(what, || async {
        let l = log.lock().unwrap_or_else(|e| e.into_inner());
        match l.acked.len() {
            have if have >= n => Ok(()),
            have => Err(format!(
                "{have} of {n} acked, {} failed attempts",
                l.failures
            )),
        }
    })
    .await
}

/// Three rounds: a client on a follower publishes with acks (retrying what
/// fails); the stream leader is killed with SIGKILL mid-run, publishing goes
/// on through the new leader, the killed node comes back. Each round kills
/// a node not killed before, so every node crashes once. Finally every
/// acknowledged message is at its acknowledged sequence on every node, the
/// sequences grow with the publish order, and the replicas hold the same
/// stream.
async fn stream_leader_kill_loses_nothing(flavor: Flavor) {
    let mut jc = JsCluster::start(flavor).await;
    create_scores(&jc, 0).await;
    let mut killed = BTreeSet::new();
    let mut all: Vec<Acked> = Vec::new();
    let mut next_k = 0;
    for round in 0..3 {
        let leader = leader_not_in(&jc, &killed).await;
        killed.insert(leader);
        let at = (leader + 1) % 3;
        eprintln!(
            "round {round}: leader {}, publishing through {}",
            jc.c.node(leader).name,
            jc.c.node(at).name
        );
        let log = Mutex::new(PublishLog::default());
        let stop = AtomicBool::new(false);
        let js = jc.js(at);
        let control = async {
            wait_acked(&jc, &log, 40, "acks before the kill").await;
            jc.kill(leader);
            let before = log.lock().unwrap_or_else(|e| e.into_inner()).acked.len();
            wait_acked(&jc, &log, before + 40, "acks after the kill").await;
            jc.restart(leader).await;
            jc.wait_stream_leader(STREAM, None).await;
            let before = log.lock().unwrap_or_else(|e| e.into_inner()).acked.len();
            wait_acked(&jc, &log, before + 20, "acks after the restart").await;
            stop.store(true, Ordering::SeqCst);
        };
        let ((), k) = tokio::join!(control, publisher(js, next_k, &stop, &log));
        next_k = k;
        let l = log.into_inner().unwrap_or_else(|e| e.into_inner());
        eprintln!(
            "round {round}: {} acked ({} duplicates), {} failed attempts, e.g. {:?}",
            l.acked.len(),
            l.acked.iter().filter(|a| a.duplicate).count(),
            l.failures,
            l.samples
        );
        all.extend(l.acked);
    }
    assert_eq!(killed.len(), 3, "every node was killed once");

    // Acks come in publish order with growing sequences, one per message.
    for w in all.windows(2) {
        assert_eq!(w[1].k, w[0].k + 1, "every message acked once: {w:?}");
        assert!(w[1].seq > w[0].seq, "sequences grow: {w:?}");
    }
    let want: BTreeMap<u64, Bytes> = all.iter().map(|a| (a.seq, payload_of(a.k))).collect();
    let (_, info) = jc.wait_stream_leader(STREAM, None).await;
    let last_seq = info["state"]["last_seq"].as_u64().unwrap_or(0);
    assert!(
        last_seq >= all.last().map_or(0, |a| a.seq),
        "last_seq {last_seq} below an acked seq: {info}"
    );
    jc.wait_every_node_holds(STREAM, &want).await;
    let contents = jc.wait_replicas_agree(STREAM, last_seq).await;
    let holes: Vec<u64> = contents
        .iter()
        .filter(|(_, p)| p.is_none())
        .map(|(s, _)| *s)
        .collect();
    let extra = contents.len() - want.len() - holes.len();
    eprintln!(
        "stream: last_seq {last_seq}, {} acked, {extra} stored but never acked, holes {holes:?}",
        want.len()
    );
    assert!(holes.is_empty(), "no gaps in the stream: {holes:?}");
    for a in &all {
        assert_eq!(contents[&a.seq], Some(payload_of(a.k)), "{a:?}");
    }
    // Message ids should deduplicate retries of messages that were stored
    // but whose ack was lost. Reported, not asserted: Raft allows a retry
    // to reach a new leader before it has applied the original.
    let distinct: BTreeSet<&Bytes> = contents.values().flatten().collect();
    eprintln!(
        "{} messages stored more than once",
        contents.len() - distinct.len()
    );
}

/// The current stream leader once it is a node outside `killed`, moving the
/// leadership with `STREAM.LEADER.STEPDOWN` until it is.
async fn leader_not_in(jc: &JsCluster, killed: &BTreeSet<usize>) -> usize {
    let (mut leader, _) = jc.wait_stream_leader(STREAM, None).await;
    let mut stepdowns = 0;
    while killed.contains(&leader) {
        stepdowns += 1;
        assert!(stepdowns <= 20, "leadership never left {killed:?}");
        let name = jc.c.node(leader).name.clone();
        stream_stepdown(jc, (leader + 1) % 3).await;
        leader = jc.wait_stream_leader(STREAM, Some(&name)).await.0;
    }
    leader
}

/// `STREAM.LEADER.STEPDOWN` through node `via`; asserts the answer.
async fn stream_stepdown(jc: &JsCluster, via: usize) -> Value {
    let v = jc
        .request_ok(via, &format!("$JS.API.STREAM.LEADER.STEPDOWN.{STREAM}"), "")
        .await
        .unwrap_or_else(|e| panic!("stream stepdown: {e}"));
    assert_eq!(
        v["type"], "io.nats.jetstream.api.v1.stream_leader_stepdown_response",
        "{v}"
    );
    assert_eq!(v["success"], true, "{v}");
    v
}

on_both_flavors!(stream_leader_kill_loses_nothing => stream_leader_kill_loses_nothing);

// ---------------------------------------------------------------------------
// 3. A durable pull consumer survives the kill of its leader.
// ---------------------------------------------------------------------------

const CONSUMED: u64 = 100;

/// `CONSUMER.CREATE` of the durable pull consumer `worker` (explicit acks,
/// replicas inherited from the stream) through node `via`.
async fn create_worker(jc: &JsCluster, via: usize) -> Value {
    let body = serde_json::json!({
        "stream_name": STREAM,
        "config": {
            "durable_name": CONSUMER,
            "ack_policy": "explicit",
            "deliver_policy": "all",
            // Short, so what a dying leader delivered comes back soon.
            "ack_wait": 5_000_000_000u64,
        },
    });
    let v = jc
        .request_ok(
            via,
            &format!("$JS.API.CONSUMER.CREATE.{STREAM}.{CONSUMER}"),
            &body.to_string(),
        )
        .await
        .unwrap_or_else(|e| panic!("create consumer: {e}"));
    assert_eq!(
        v["type"], "io.nats.jetstream.api.v1.consumer_create_response",
        "{v}"
    );
    v
}

/// Pull up to `batch` messages from `worker` through `js`, acknowledging each
/// (double ack: the server confirms); each must show its published subject.
/// Returns their stream sequences and payloads; errors (no leader yet,
/// timeouts) yield what came before them.
async fn fetch_and_ack(js: &async_nats::jetstream::Context, batch: usize) -> Vec<(u64, Bytes)> {
    let mut out = Vec::new();
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        match js.get_consumer_from_stream(CONSUMER, STREAM).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("get consumer: {e}");
                return out;
            }
        };
    let mut msgs = match consumer
        .fetch()
        .max_messages(batch)
        .expires(Duration::from_secs(2))
        .messages()
        .await
    {
        Ok(m) => m,
        Err(e) => {
            eprintln!("fetch: {e}");
            return out;
        }
    };
    while let Ok(Some(next)) = tokio::time::timeout(Duration::from_secs(10), msgs.next()).await {
        let Ok(m) = next else { break };
        let Ok(seq) = m.info().map(|i| i.stream_sequence) else {
            break;
        };
        // The subject it was published on, not the fetch inbox, also when
        // the delivery crossed a route from the consumer leader.
        assert!(
            m.subject.starts_with("sports."),
            "seq {seq} delivered on {}",
            m.subject
        );
        if let Err(e) = m.double_ack().await {
            eprintln!("ack of seq {seq} failed: {e}");
            continue;
        }
        out.push((seq, m.payload.clone()));
    }
    out
}

/// A durable pull consumer on an R3 stream inherits three replicas; half
/// the messages are fetched and acknowledged through one node, the consumer
/// leader is killed, and through the third node every message not yet
/// acknowledged is still delivered (acknowledged ones may come again); no
/// message leaves the stream.
async fn durable_consumer_resumes_after_leader_kill(flavor: Flavor) {
    let mut jc = JsCluster::start(flavor).await;
    create_scores(&jc, 0).await;
    jc.wait_stream_leader(STREAM, None).await;
    let stored = publish_acked(&jc, 0, CONSUMED, |k| format!("goal {k}")).await;
    create_worker(&jc, 0).await;
    let (leader, info) = jc.wait_consumer_leader(STREAM, CONSUMER, None).await;
    jc.assert_cluster_block(&info, leader);
    eprintln!(
        "consumer leader {}, config.num_replicas {}",
        jc.c.node(leader).name,
        info["config"]["num_replicas"]
    );

    // First half through a follower of the consumer.
    let first = (leader + 1) % 3;
    let js = jc.js_patient(first);
    let mut acked = BTreeMap::new();
    let end = Instant::now() + JS_DEADLINE;
    while (acked.len() as u64) < CONSUMED / 2 {
        assert!(Instant::now() < end, "only {} fetched", acked.len());
        let want = (CONSUMED / 2) as usize - acked.len();
        for (seq, payload) in fetch_and_ack(&js, want.min(10)).await {
            assert_eq!(Some(&payload), stored.get(&seq), "seq {seq}");
            acked.insert(seq, payload);
        }
    }
    // The leader has taken the acks in.
    jc.poll("the consumer leader to count the acks", || async {
        let v = jc
            .request_ok(
                first,
                &format!("$JS.API.CONSUMER.INFO.{STREAM}.{CONSUMER}"),
                "",
            )
            .await?;
        match (
            v["num_ack_pending"].as_u64(),
            v["ack_floor"]["stream_seq"].as_u64(),
        ) {
            (Some(0), Some(f)) if f == CONSUMED / 2 => Ok(()),
            _ => Err(format!("{v}")),
        }
    })
    .await;
    jc.wait_consumer_leader(STREAM, CONSUMER, None).await;

    let leader_name = jc.c.node(leader).name.clone();
    jc.kill(leader);
    let rest = (leader + 2) % 3;
    let (new_leader, _) = jc
        .wait_consumer_leader(STREAM, CONSUMER, Some(&leader_name))
        .await;
    eprintln!("new consumer leader {}", jc.c.node(new_leader).name);

    let js = jc.js_patient(rest);
    let unacked: BTreeSet<u64> = stored
        .keys()
        .filter(|s| !acked.contains_key(s))
        .copied()
        .collect();
    let mut delivered = BTreeSet::new();
    let mut again = 0;
    let end = Instant::now() + JS_DEADLINE;
    while !unacked.is_subset(&delivered) {
        assert!(
            Instant::now() < end,
            "never delivered: {:?}",
            unacked.difference(&delivered).collect::<Vec<_>>()
        );
        for (seq, payload) in fetch_and_ack(&js, 20).await {
            assert_eq!(Some(&payload), stored.get(&seq), "seq {seq}");
            if acked.contains_key(&seq) || delivered.contains(&seq) {
                again += 1;
            }
            delivered.insert(seq);
        }
    }
    eprintln!(
        "after the kill: {} delivered, {again} redeliveries",
        delivered.len()
    );

    jc.restart(leader).await;
    jc.wait_consumer_leader(STREAM, CONSUMER, None).await;
    jc.poll("the consumer to have nothing left", || async {
        let v = jc
            .request_ok(
                rest,
                &format!("$JS.API.CONSUMER.INFO.{STREAM}.{CONSUMER}"),
                "",
            )
            .await?;
        let done = v["num_pending"] == 0
            && v["num_ack_pending"] == 0
            && v["ack_floor"]["stream_seq"] == CONSUMED;
        if done {
            Ok(())
        } else {
            Err(format!("{v}"))
        }
    })
    .await;
    jc.wait_every_node_holds(STREAM, &stored).await;
}

on_both_flavors!(durable_consumer_resumes_after_leader_kill => durable_consumer_resumes_after_leader_kill);

// ---------------------------------------------------------------------------
// 4. Stepdowns and peer removal.
// ---------------------------------------------------------------------------

/// STREAM.LEADER.STEPDOWN and CONSUMER.LEADER.STEPDOWN answer success with
/// nats-server's response types and move the leadership; STREAM.PEER.REMOVE
/// on an R3 stream in a three-node cluster is refused (there is no node to
/// put the replica on) and leaves the stream whole.
async fn stepdowns(flavor: Flavor) {
    let jc = JsCluster::start(flavor).await;
    create_scores(&jc, 0).await;
    jc.wait_stream_leader(STREAM, None).await;
    let stored = publish_acked(&jc, 0, 10, |k| format!("point {k}")).await;
    create_worker(&jc, 0).await;

    let (leader, _) = jc.wait_stream_leader(STREAM, None).await;
    let name = jc.c.node(leader).name.clone();
    let v = stream_stepdown(&jc, (leader + 1) % 3).await;
    eprintln!("stream stepdown: {v}");
    let (after, _) = jc.wait_stream_leader(STREAM, Some(&name)).await;
    assert_ne!(after, leader);
    jc.wait_every_node_holds(STREAM, &stored).await;

    let (leader, _) = jc.wait_consumer_leader(STREAM, CONSUMER, None).await;
    let name = jc.c.node(leader).name.clone();
    let v = jc
        .request_ok(
            (leader + 2) % 3,
            &format!("$JS.API.CONSUMER.LEADER.STEPDOWN.{STREAM}.{CONSUMER}"),
            "",
        )
        .await
        .unwrap_or_else(|e| panic!("consumer stepdown: {e}"));
    eprintln!("consumer stepdown: {v}");
    assert_eq!(
        v["type"], "io.nats.jetstream.api.v1.consumer_leader_stepdown_response",
        "{v}"
    );
    assert_eq!(v["success"], true, "{v}");
    let (after, _) = jc.wait_consumer_leader(STREAM, CONSUMER, Some(&name)).await;
    assert_ne!(after, leader);

    // Removing a follower's replica: no fourth node to move it to.
    let (leader, _) = jc.wait_stream_leader(STREAM, None).await;
    let follower = (leader + 1) % 3;
    let body = serde_json::json!({ "peer": jc.c.node(follower).name });
    let v = jc
        .request(
            0,
            &format!("$JS.API.STREAM.PEER.REMOVE.{STREAM}"),
            &body.to_string(),
        )
        .await
        .unwrap_or_else(|e| panic!("peer remove: {e}"));
    eprintln!("peer remove: {v}");
    assert_eq!(
        v["type"], "io.nats.jetstream.api.v1.stream_remove_peer_response",
        "{v}"
    );
    assert_eq!(v["error"]["code"], 503, "{v}");
    assert_eq!(v["error"]["err_code"], 10075, "{v}");
    assert!(v.get("success").is_none_or(|s| s == false), "{v}");
    let (_, info) = jc.wait_stream_leader(STREAM, None).await;
    assert_eq!(
        info["cluster"]["replicas"].as_array().map(Vec::len),
        Some(2)
    );
    jc.wait_every_node_holds(STREAM, &stored).await;
}

on_both_flavors!(stepdowns => stepdowns);

/// A stepdown's `placement`: `preferred` names the server to lead (the
/// leader itself, or a server that holds no replica, is refused with
/// nats-server's words), `cluster` must be the stream's, and a body that
/// is not JSON is not read.
async fn stepdown_placement(flavor: Flavor) {
    let jc = JsCluster::start(flavor).await;
    create_scores(&jc, 0).await;
    let (leader, _) = jc.wait_stream_leader(STREAM, None).await;
    let subject = format!("$JS.API.STREAM.LEADER.STEPDOWN.{STREAM}");
    let ask = |body: Value| {
        let subject = subject.clone();
        let jc = &jc;
        async move {
            jc.request(leader, &subject, &body.to_string())
                .await
                .unwrap_or_else(|e| panic!("stepdown {body}: {e}"))
        }
    };
    let leader_name = jc.c.node(leader).name.clone();
    let v = ask(serde_json::json!({"placement": {"preferred": leader_name}})).await;
    assert_eq!(v["error"]["code"], 400, "{v}");
    assert_eq!(v["error"]["err_code"], 10005, "{v}");
    assert_eq!(
        v["error"]["description"],
        format!("preferred server \"{leader_name}\" is already leader"),
        "{v}"
    );
    let v = ask(serde_json::json!({"placement": {"preferred": "nowhere"}})).await;
    assert_eq!(v["error"]["err_code"], 10005, "{v}");
    assert_eq!(
        v["error"]["description"], "preferred server \"nowhere\" not known",
        "{v}"
    );
    let v = ask(serde_json::json!({"placement": {"cluster": "elsewhere"}})).await;
    assert_eq!(v["error"]["err_code"], 10005, "{v}");
    assert_eq!(
        v["error"]["description"], "no replacement peer connected",
        "{v}"
    );
    let v = jc
        .request(leader, &subject, "{\"placement\":")
        .await
        .unwrap_or_else(|e| panic!("stepdown with broken JSON: {e}"));
    assert_eq!(v["error"]["err_code"], 10025, "{v}");
    // The preferred follower leads afterwards.
    let target = (leader + 2) % 3;
    let v = ask(serde_json::json!({"placement": {"preferred": jc.c.node(target).name}})).await;
    assert_eq!(v["success"], true, "{v}");
    let (now, _) = jc.wait_stream_leader(STREAM, Some(&leader_name)).await;
    assert_eq!(now, target, "the preferred server does not lead");
}

on_both_flavors!(stepdown_placement => stepdown_placement);

/// R3 streams created one after another each answer their create with
/// their leader named (nats-server answers a create from the new leader),
/// and STREAM.INFO through every node answers with that leader at once:
/// a client that creates a stream and asks for its info straight away, as
/// the bridge does, is not left waiting for an election.
async fn new_streams_are_led_when_created(flavor: Flavor) {
    let jc = JsCluster::start(flavor).await;
    for k in 0..3 {
        let name = format!("NEW{k}");
        let body = serde_json::json!({
            "name": name,
            "subjects": [format!("new.{k}.>")],
            "storage": "file",
            "num_replicas": 3,
        });
        let created = jc
            .request_ok(
                0,
                &format!("$JS.API.STREAM.CREATE.{name}"),
                &body.to_string(),
            )
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
        let leader = created["cluster"]["leader"].as_str().unwrap_or_default();
        assert!(
            !leader.is_empty(),
            "the create of {name} names no leader: {created}"
        );
        for i in 0..3 {
            let info = jc
                .request_ok(i, &format!("$JS.API.STREAM.INFO.{name}"), "")
                .await
                .unwrap_or_else(|e| panic!("STREAM.INFO of {name} via node {i}: {e}"));
            assert_eq!(info["cluster"]["leader"], leader, "{info}");
        }
    }
}

on_both_flavors!(new_streams_are_led_when_created => new_streams_are_led_when_created);

/// Stops (`SIGSTOP`) or resumes (`SIGCONT`) node `i`'s process.
fn signal(jc: &JsCluster, i: usize, sig: nix::sys::signal::Signal) {
    let pid = jc.c.node(i).pid().expect("node running");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).expect("signal");
}

/// How many times the nodes' logs say that `stream` got a new leader.
fn leader_changes(jc: &JsCluster, stream: &str) -> usize {
    let line = format!("new stream leader for 'APP > {stream}'");
    (0..jc.c.len())
        .map(|i| {
            std::fs::read_to_string(jc.c.node(i).log_path())
                .unwrap_or_default()
                .matches(&line)
                .count()
        })
        .sum()
}

/// A replica that learns of a new R3 stream late (its server was stopped
/// while the stream was created) joins the group the others formed: the
/// stream gets one leader, once, and keeps it. (Tribune's replicas each
/// campaigned on creation, and a late one, standing in the same term, could
/// depose the first leader and leave the stream leaderless until the next
/// election, its STREAM.INFO unanswered meanwhile.)
async fn a_late_replica_keeps_the_first_leader(flavor: Flavor) {
    use nix::sys::signal::Signal;
    let jc = JsCluster::start(flavor).await;
    jc.wait_api_ready().await;
    // Not the meta leader: the create needs it.
    let meta = jc.wait_meta_leader().await;
    let others: Vec<usize> = (0..3).filter(|&i| i != meta).collect();
    for (k, late) in others.iter().chain(others.iter()).copied().enumerate() {
        let name = format!("LATE{k}");
        let body = serde_json::json!({
            "name": name,
            "subjects": [format!("late.{k}.>")],
            "storage": "file",
            "num_replicas": 3,
        });
        signal(&jc, late, Signal::SIGSTOP);
        let subject = format!("$JS.API.STREAM.CREATE.{name}");
        let body = body.to_string();
        let create = jc.request_within(meta, &subject, &body, JS_DEADLINE);
        let resume = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            signal(&jc, late, Signal::SIGCONT);
        };
        let (created, ()) = tokio::join!(create, resume);
        let created = created.unwrap_or_else(|e| panic!("create {name}: {e}"));
        assert!(created.get("error").is_none(), "{created}");
        // Every node names one leader, with the others current replicas.
        jc.wait_stream_leader(&name, None).await;
        assert_eq!(
            leader_changes(&jc, &name),
            1,
            "{name} (node {late} stopped while it was created) changed leaders"
        );
    }
}

on_both_flavors!(a_late_replica_keeps_the_first_leader => a_late_replica_keeps_the_first_leader);

// ---------------------------------------------------------------------------
// 5. A minority refuses writes.
// ---------------------------------------------------------------------------

/// With the stream leader and one follower killed, a publish through the
/// surviving follower is not acknowledged (a lone replica has no quorum and
/// cannot become leader). Once both come back, publishing works again, the
/// refused message is nowhere in the stream, and the next message takes the
/// sequence after the last acknowledged one.
async fn minority_refuses_writes(flavor: Flavor) {
    let mut jc = JsCluster::start(flavor).await;
    create_scores(&jc, 0).await;
    jc.wait_stream_leader(STREAM, None).await;
    let mut stored = publish_acked(&jc, 0, 10, |k| format!("set {k}")).await;
    let (leader, _) = jc.wait_stream_leader(STREAM, None).await;
    let survivor = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let js = jc.js(survivor);
    jc.kill(leader);
    jc.kill(other);

    let refused = Bytes::from_static(b"written to a minority");
    let r = publish(&js, "sports.tennis.lost".into(), None, refused.clone()).await;
    eprintln!("publish to the minority: {r:?}");
    assert!(r.is_err(), "a lone replica acknowledged a write: {r:?}");
    let api = jc
        .request(survivor, &format!("$JS.API.STREAM.INFO.{STREAM}"), "")
        .await;
    eprintln!("STREAM.INFO on the minority: {api:?}");

    jc.restart(leader).await;
    jc.restart(other).await;
    jc.wait_api_ready().await;
    jc.wait_stream_leader(STREAM, None).await;
    let after = Bytes::from_static(b"after the restart");
    let ack = publish_sure(
        &jc.js_patient(survivor),
        "sports.tennis.back".into(),
        after.clone(),
    )
    .await;
    assert_eq!(ack.sequence, 11, "the refused message took no sequence");
    stored.insert(ack.sequence, after);
    jc.wait_every_node_holds(STREAM, &stored).await;
    let contents = jc.wait_replicas_agree(STREAM, 12).await;
    assert_eq!(contents[&12], None, "nothing after the last ack");
    assert!(
        contents.values().all(|p| p.as_ref() != Some(&refused)),
        "the refused message is in the stream"
    );
    let state = jc.stream_state(survivor, STREAM).await;
    assert_eq!(state["messages"], 11, "{state}");
    assert_eq!(state["last_seq"], 11, "{state}");

    // Now the leader is the one left: it may take the message into its
    // log, but without a quorum it must not acknowledge it.
    let (leader, _) = jc.wait_stream_leader(STREAM, None).await;
    let followers = [(leader + 1) % 3, (leader + 2) % 3];
    let js = jc.js(leader);
    for f in followers {
        jc.kill(f);
    }
    let lone = Bytes::from_static(b"written to a lone leader");
    let r = publish(&js, "sports.tennis.lone".into(), None, lone.clone()).await;
    eprintln!("publish to a lone leader: {r:?}");
    assert!(r.is_err(), "a leader without quorum acknowledged: {r:?}");
    for f in followers {
        jc.restart(f).await;
    }
    jc.wait_api_ready().await;
    jc.wait_stream_leader(STREAM, None).await;
    let after = Bytes::from_static(b"after the second restart");
    let ack = publish_sure(
        &jc.js_patient(leader),
        "sports.tennis.back".into(),
        after.clone(),
    )
    .await;
    stored.insert(ack.sequence, after);
    jc.wait_every_node_holds(STREAM, &stored).await;
    let contents = jc.wait_replicas_agree(STREAM, ack.sequence + 1).await;
    assert_eq!(contents[&(ack.sequence + 1)], None, "nothing after the ack");
    // The unacknowledged entry may survive in the old leader's log and be
    // committed when it leads again (Raft allows either outcome); if so it
    // sits right after the last acknowledged message, once, on every node.
    let at: Vec<u64> = contents
        .iter()
        .filter(|(_, p)| p.as_ref() == Some(&lone))
        .map(|(s, _)| *s)
        .collect();
    eprintln!(
        "the lone leader's unacknowledged message is at {at:?}, the next ack at {}",
        ack.sequence
    );
    match ack.sequence {
        12 => assert!(at.is_empty(), "{at:?}"),
        13 => assert_eq!(at, [12]),
        s => panic!("the next ack took seq {s}"),
    }
}

on_both_flavors!(minority_refuses_writes => minority_refuses_writes);

/// With two of three nodes gone, the survivor's stream group and meta group
/// have no leader. Once that has lasted nats-server's lost-quorum interval
/// (10 s), the survivor answers `STREAM.INFO` from its own replica, naming
/// no leader, and a request only a meta leader answers gets 10008 ("JetStream
/// system temporarily unavailable") instead of no answer at all.
async fn a_lone_replica_answers_for_its_stream(flavor: Flavor) {
    let mut jc = JsCluster::start(flavor).await;
    create_scores(&jc, 0).await;
    jc.wait_stream_leader(STREAM, None).await;
    let stored = publish_acked(&jc, 0, 10, |k| format!("set {k}")).await;
    jc.wait_every_node_holds(STREAM, &stored).await;
    jc.request_ok(
        0,
        &format!("$JS.API.CONSUMER.DURABLE.CREATE.{STREAM}.READER"),
        &serde_json::json!({
            "stream_name": STREAM,
            "config": { "durable_name": "READER", "ack_policy": "explicit" },
        })
        .to_string(),
    )
    .await
    .unwrap_or_else(|e| panic!("create READER: {e}"));
    let (leader, _) = jc.wait_stream_leader(STREAM, None).await;
    let survivor = (leader + 1) % 3;
    // The consumer known on the survivor before its peers go.
    jc.poll("READER on the survivor", || async {
        let r = jc.c.node(survivor).name.clone();
        let v = jc
            .request(
                leader,
                &format!("$JS.API.CONSUMER.INFO.{STREAM}.READER"),
                "",
            )
            .await?;
        // It leads the consumer, or follows it caught up.
        let leads = v["cluster"]["leader"] == r.as_str();
        let current = v["cluster"]["replicas"].as_array().is_some_and(|rs| {
            rs.iter()
                .any(|x| x["name"] == r.as_str() && x["current"] == true)
        });
        if leads || current {
            Ok(())
        } else {
            Err(format!("{r} not current: {v}"))
        }
    })
    .await;
    jc.kill(leader);
    jc.kill((leader + 2) % 3);

    // Until the group itself is known leaderless, nats-server may answer
    // 10008 (its meta group lost its leader first).
    let info = answered(
        &jc,
        survivor,
        &format!("$JS.API.STREAM.INFO.{STREAM}"),
        "",
        false,
    )
    .await;
    eprintln!("STREAM.INFO on the lone replica: {info}");
    assert_eq!(
        info["type"],
        "io.nats.jetstream.api.v1.stream_info_response"
    );
    assert_eq!(info["config"]["name"], STREAM, "{info}");
    assert_eq!(info["state"]["messages"], 10, "{info}");
    assert_eq!(info["state"]["last_seq"], 10, "{info}");
    assert!(
        info["cluster"]["leader"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "a leader named while there is none: {info}"
    );
    // Every replica listed, the one answering as the only current one.
    let me = jc.c.node(survivor).name.clone();
    let current: Vec<String> = info["cluster"]["replicas"]
        .as_array()
        .unwrap_or_else(|| panic!("no replicas: {info}"))
        .iter()
        .filter(|r| r["current"] == true)
        .map(|r| r["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        info["cluster"]["replicas"].as_array().map(Vec::len),
        Some(3),
        "{info}"
    );
    assert_eq!(current, [me], "{info}");

    // The consumer's group (the stream's, on Tribune) has no leader either.
    // The meta leader may be the survivor: nats-server's steps down once it
    // has heard from no quorum for as long, and answers until then.
    for (subject, body, kind) in [
        (
            format!("$JS.API.CONSUMER.INFO.{STREAM}.READER"),
            "",
            "consumer_info_response",
        ),
        ("$JS.API.INFO".to_string(), "", "account_info_response"),
        (
            "$JS.API.STREAM.NAMES".to_string(),
            "",
            "stream_names_response",
        ),
        (
            "$JS.API.STREAM.CREATE.LATE".to_string(),
            r#"{"name":"LATE","subjects":["late.>"],"num_replicas":3}"#,
            "stream_create_response",
        ),
    ] {
        let v = answered(&jc, survivor, &subject, body, true).await;
        assert_eq!(v["type"], format!("io.nats.jetstream.api.v1.{kind}"), "{v}");
        assert_eq!(v["error"]["code"], 503, "{v}");
        assert_eq!(v["error"]["err_code"], 10008, "{v}");
        assert_eq!(
            v["error"]["description"], "JetStream system temporarily unavailable",
            "{v}"
        );
    }
}

/// Ask node `via` until it answers with an error (`error`) or without one,
/// each request waiting 2 s: the answer while a cluster loses its leaders
/// changes as each group notices.
async fn answered(jc: &JsCluster, via: usize, subject: &str, body: &str, error: bool) -> Value {
    let want = if error { "an error" } else { "no error" };
    jc.poll(&format!("{subject} answered with {want}"), || async {
        let v = jc
            .request_within(via, subject, body, Duration::from_secs(2))
            .await?;
        if v.get("error").is_some() == error {
            Ok(v)
        } else {
            Err(format!("answered otherwise: {v}"))
        }
    })
    .await
}

on_both_flavors!(a_lone_replica_answers_for_its_stream => a_lone_replica_answers_for_its_stream);
