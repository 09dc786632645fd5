//! `/jsz` with nats-server's options (`acc`, `accounts`, `streams`,
//! `consumers`, `config`, `offset`, `limit`, `leader-only`, `raft`,
//! `stream-leader-only`), on the reference nats-server and on
//! tribune-broker: the same streams and consumers made with async-nats,
//! then the same queries on both, comparing the key sets and JSON types at
//! every level, the values that do not depend on the run (names, counts,
//! sequences, leaders) and the 400 answers.
//!
//! - One server (`common::js` flavors: nats-server always, tribune-broker
//!   when `JS_FLAVORS` or the probe says so): two JetStream accounts, file
//!   and memory streams, a pull consumer with one message acknowledged and
//!   one pending.
//! - Three nodes (`CLUSTER_FLAVOR`): an R3 stream with a durable consumer
//!   and an R1 stream; every node's view of the R3 stream's leadership,
//!   `stream-leader-only` and `leader-only` on leaders and followers.
//!
//! Waits poll with generous deadlines; nothing asserts on timing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use async_nats::jetstream::{self, consumer::pull, stream};
use futures::StreamExt;
use serde_json::{json, Value};

use common::cluster::{flavor_selected, http_get, Flavor as ClusterFlavor, CLUSTER_NAME};
use common::js::{flavors, js_spec, Flavor, WAIT};
use common::js_cluster::JsCluster;
use common::json_shape::{diff, typed_shape};
use common::Server;

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

/// Two JetStream accounts (listed in reverse order, so sorting shows), the
/// client's default in `APP`.
const SOLO_CONFIG: &str = r#"
server_name: jsz-solo
accounts {
  ZED: { jetstream: enabled, users: [ { user: zed, password: zed } ] }
  APP: { jetstream: enabled, users: [ { user: app, password: app } ] }
}
no_auth_user: app
"#;

/// The single-server queries, by what they show.
const SOLO_QUERIES: &[&str] = &[
    "/jsz",
    "/jsz?accounts=true&streams=true&consumers=true&config=true&raft=true",
    "/jsz?consumers=true",
    "/jsz?acc=ZED",
    "/jsz?acc=ZED&streams=true",
    "/jsz?accounts=true&offset=1&limit=1",
    "/jsz?accounts=true&offset=5",
    "/jsz?acc=NOPE&streams=true",
    "/jsz?leader-only=true&stream-leader-only=true&streams=true",
    "/jsz?limit=-1&accounts=1",
];

/// Queries nats-server refuses, with its 400 text.
const BAD_QUERIES: &[&str] = &[
    "/jsz?accounts=maybe",
    "/jsz?offset=x",
    "/jsz?stream-leader-only=2&raft=3",
    "/jsz?direct-consumers=yes&consumers=true",
    "/jsz?limit=1.5",
];

// ------------------------------------------------------------ helpers

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get(addr, path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = get(addr, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn monitoring_addr(s: &Server) -> SocketAddr {
    let a = s
        .addr_of("monitoring")
        .expect("ports file lists a monitoring URL");
    let port: u16 = a
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("monitoring address {a:?}"));
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `account_details[].name`.
fn account_names(v: &Value) -> Vec<String> {
    v["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["name"].as_str().map(String::from))
        .collect()
}

/// The `stream_detail` entries of account `acc`, by stream name.
fn streams_of(v: &Value, acc: &str) -> BTreeMap<String, Value> {
    v["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["name"] == acc)
        .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| Some((s["name"].as_str()?.to_string(), s)))
        .collect()
}

/// Keys whose values differ by nature between runs and servers (ids,
/// times, byte counts of a machine, request counters, the store path).
const VOLATILE: &[&str] = &[
    "server_id",
    "now",
    "created",
    "ts",
    "first_ts",
    "last_ts",
    "store_dir",
    "active",
    "leader_since",
    "last_active",
    "metadata",
];

/// `v` without [`VOLATILE`] keys (anywhere), the server-wide `config`,
/// `limits` and `api` (whose values are the servers' own), and the stream
/// configuration defaults only nats-server writes (see
/// [`NATS_ONLY_STREAM_CONFIG`]): what must be equal on both servers.
fn facts(v: &Value) -> Value {
    fn strip(v: &Value, top: bool) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
                    .filter(|(k, _)| !(top && ["config", "limits", "api"].contains(&k.as_str())))
                    .filter(|(k, _)| !NATS_ONLY_STREAM_CONFIG.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), strip(v, false)))
                    .collect(),
            ),
            Value::Array(a) => {
                // nats-server lists accounts (unpaged), streams and
                // consumers in its maps' random order: compare by name.
                let mut items: Vec<Value> = a.iter().map(|e| strip(e, false)).collect();
                items.sort_by(|x, y| x["name"].to_string().cmp(&y["name"].to_string()));
                Value::Array(items)
            }
            other => other.clone(),
        }
    }
    strip(v, true)
}

/// Stream configuration fields nats-server 2.11+ always writes and
/// Tribune's STREAM.INFO (which `/jsz` shares) leaves out unless the
/// client set them: compression, per-stream consumer limits, message TTLs.
const NATS_ONLY_STREAM_CONFIG: &[&str] = &["compression", "consumer_limits", "allow_msg_ttl"];

/// A typed shape with the paths that depend on values, not on the schema,
/// left out: maps keyed by data (`metadata`), and `omitempty` fields that
/// come and go with the state (`lag`, the leader counts, `inflight`, a
/// consumer's `leader_since` when its leader is elsewhere).
fn schema(v: &Value) -> BTreeMap<String, String> {
    typed_shape(v)
        .into_iter()
        .filter(|(k, _)| !k.contains(".metadata."))
        .filter(|(k, _)| {
            !(k.ends_with(".lag")
                || k == "streams_leader"
                || k == "consumers_leader"
                || k.ends_with("api.inflight")
                || k.ends_with("consumer_detail[].cluster.leader_since"))
        })
        .collect()
}

// ------------------------------------------------------------ one server

/// What one server answered: per query its JSON, and the bad queries'
/// status and body.
struct Solo {
    label: &'static str,
    answers: Vec<(&'static str, Value)>,
    errors: Vec<(&'static str, u16, String)>,
}

async fn create_stream(js: &jetstream::Context, cfg: stream::Config) -> stream::Stream {
    let name = cfg.name.clone();
    tokio::time::timeout(WAIT, js.create_stream(cfg))
        .await
        .unwrap_or_else(|_| panic!("create stream {name}: no answer"))
        .unwrap_or_else(|e| panic!("create stream {name}: {e}"))
}

async fn publish(js: &jetstream::Context, subject: &str, n: usize) {
    for i in 0..n {
        js.publish(subject.to_string(), format!("m{i}").into())
            .await
            .unwrap_or_else(|e| panic!("publish {subject}: {e}"))
            .await
            .unwrap_or_else(|e| panic!("ack for {subject}: {e}"));
    }
}

/// APP: `ORDERS` (file, 3 messages, durable pull consumer `C1` with two
/// delivered and the first acknowledged) and `EVENTS` (memory, 2
/// messages); ZED: `LOGS` (file, 1 message).
async fn solo_workload(s: &Server) {
    let app = async_nats::connect(s.client_url())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", s.log_excerpt()));
    let js = jetstream::new(app.clone());
    let orders = create_stream(
        &js,
        stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        },
    )
    .await;
    create_stream(
        &js,
        stream::Config {
            name: "EVENTS".into(),
            subjects: vec!["events.>".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        },
    )
    .await;
    publish(&js, "orders.new", 3).await;
    publish(&js, "events.x", 2).await;
    let c1 = orders
        .create_consumer(pull::Config {
            durable_name: Some("C1".into()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("create consumer C1: {e}"));
    let mut batch = c1
        .fetch()
        .max_messages(2)
        .messages()
        .await
        .expect("fetch request");
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(WAIT, batch.next()).await {
        got.push(m.unwrap_or_else(|e| panic!("fetch: {e}")));
    }
    assert_eq!(got.len(), 2, "two messages fetched");
    got[0]
        .double_ack()
        .await
        .unwrap_or_else(|e| panic!("ack: {e}"));

    let zed = async_nats::ConnectOptions::with_user_and_password("zed".into(), "zed".into())
        .connect(s.client_url())
        .await
        .unwrap_or_else(|e| panic!("connect as zed: {e}"));
    let zjs = jetstream::new(zed);
    create_stream(
        &zjs,
        stream::Config {
            name: "LOGS".into(),
            subjects: vec!["logs.>".into()],
            ..Default::default()
        },
    )
    .await;
    publish(&zjs, "logs.a", 1).await;
}

async fn solo(f: &Flavor) -> Solo {
    let server = js_spec(&f.bin)
        .config(SOLO_CONFIG)
        .args(["-m", "-1"])
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let http = monitoring_addr(&server);
    solo_workload(&server).await;
    let mut answers = Vec::new();
    for q in SOLO_QUERIES {
        answers.push((*q, get_json(http, q).await));
    }
    let mut errors = Vec::new();
    for q in BAD_QUERIES {
        let (status, body) = get(http, q).await;
        errors.push((*q, status, body));
    }
    check_solo(f.label, &answers);
    Solo {
        label: f.label,
        answers,
        errors,
    }
}

/// What every server must answer to [`SOLO_QUERIES`] after
/// [`solo_workload`].
fn check_solo(label: &str, answers: &[(&str, Value)]) {
    let at = |q: &str| -> &Value {
        &answers
            .iter()
            .find(|(k, _)| *k == q)
            .unwrap_or_else(|| panic!("no answer to {q}"))
            .1
    };
    let plain = at("/jsz");
    assert_eq!(plain["total"], 2, "{label}: {plain}");
    assert_eq!(plain["accounts"], 2, "{label}: {plain}");
    assert_eq!(plain["streams"], 3, "{label}: {plain}");
    assert_eq!(plain["consumers"], 1, "{label}: {plain}");
    assert_eq!(plain["messages"], 6, "{label}: {plain}");
    assert!(plain.get("account_details").is_none(), "{label}: {plain}");

    let full = at("/jsz?accounts=true&streams=true&consumers=true&config=true&raft=true");
    assert_eq!(
        account_names(full),
        ["APP", "ZED"],
        "{label}: sorted by name"
    );
    assert_eq!(
        full["streams_leader"], 3,
        "{label}: a lone server leads all"
    );
    assert_eq!(full["consumers_leader"], 1, "{label}");
    let app = streams_of(full, "APP");
    assert_eq!(
        app.keys().collect::<Vec<_>>(),
        ["EVENTS", "ORDERS"],
        "{label}: {full}"
    );
    let orders = &app["ORDERS"];
    assert_eq!(orders["cluster"], json!({"leader": "jsz-solo"}), "{label}");
    assert_eq!(orders["config"]["subjects"], json!(["orders.>"]), "{label}");
    assert_eq!(orders["state"]["messages"], 3, "{label}");
    assert!(
        orders.get("stream_raft_group").is_none(),
        "{label}: no group"
    );
    let c1 = &orders["consumer_detail"][0];
    assert_eq!(c1["name"], "C1", "{label}: {orders}");
    assert_eq!(c1["stream_name"], "ORDERS", "{label}");
    assert_eq!(c1["config"]["durable_name"], "C1", "{label}");
    assert!(
        c1.get("cluster").is_none(),
        "{label}: alone, no cluster: {c1}"
    );
    assert_eq!(
        (
            &c1["delivered"]["stream_seq"],
            &c1["ack_floor"]["stream_seq"]
        ),
        (&json!(2), &json!(1)),
        "{label}: {c1}"
    );
    assert_eq!(
        (&c1["num_ack_pending"], &c1["num_pending"]),
        (&json!(1), &json!(1)),
        "{label}"
    );
    assert!(app["EVENTS"].get("consumer_detail").is_none(), "{label}");
    assert_eq!(app["EVENTS"]["config"]["storage"], "memory", "{label}");

    let consumers = at("/jsz?consumers=true");
    let orders = &streams_of(consumers, "APP")["ORDERS"];
    assert!(orders.get("config").is_none(), "{label}: {orders}");
    let c1 = &orders["consumer_detail"][0];
    assert!(c1.get("config").is_none(), "{label}: config=false: {c1}");
    assert!(
        consumers.get("streams_leader").is_none(),
        "{label}: raft=false"
    );

    let zed = at("/jsz?acc=ZED");
    assert_eq!(account_names(zed), ["ZED"], "{label}");
    assert!(zed["account_details"][0].get("stream_detail").is_none());
    let zed = at("/jsz?acc=ZED&streams=true");
    assert_eq!(account_names(zed), ["ZED"], "{label}: acc alone");
    assert_eq!(streams_of(zed, "ZED")["LOGS"]["state"]["messages"], 1);
    assert_eq!(
        account_names(at("/jsz?accounts=true&offset=1&limit=1")),
        ["ZED"],
        "{label}"
    );
    assert!(account_names(at("/jsz?accounts=true&offset=5")).is_empty());
    assert!(account_names(at("/jsz?acc=NOPE&streams=true")).is_empty());
    let led = at("/jsz?leader-only=true&stream-leader-only=true&streams=true");
    assert_eq!(streams_of(led, "APP").len(), 2, "{label}: {led}");
    let mut all = account_names(at("/jsz?limit=-1&accounts=1"));
    all.sort();
    assert_eq!(all, ["APP", "ZED"], "{label}: no limit lists every account");
}

/// nats-server 2.15.1 writes these and Tribune does not, and why:
/// - `config.strict`: Tribune does not reject unknown API fields;
/// - `config.sync_interval`: Tribune syncs every write by default
///   (`sync_always` instead, only Tribune's);
/// - `limits.default_max_consumers`: a 2.15 default Tribune does not apply;
/// - stream `config` defaults and consumer `config.metadata`: STREAM.INFO
///   and CONSUMER.INFO's, which `/jsz` shares (see
///   [`NATS_ONLY_STREAM_CONFIG`]; nats-server stamps `_nats.*` metadata).
fn expected_solo_diff(path: &str) -> bool {
    let stream_config = "account_details[].stream_detail[].config.";
    let consumer_config = "account_details[].stream_detail[].consumer_detail[].config.";
    matches!(
        path,
        "config.strict" | "config.sync_interval" | "config.sync_always"
    ) || path == "limits.default_max_consumers"
        || path
            .strip_prefix(stream_config)
            .is_some_and(|k| NATS_ONLY_STREAM_CONFIG.contains(&k) || k == "metadata")
        || path == format!("{consumer_config}metadata")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_server_options_and_details_match_nats_server() {
    let mut runs = Vec::new();
    for f in flavors(BIN) {
        eprintln!("=== {} ({})", f.label, f.bin.display());
        runs.push(solo(&f).await);
    }
    let [nats, tribune] = runs.as_slice() else {
        eprintln!("tribune-broker not selected: checked nats-server only");
        return;
    };
    for ((q, a), (_, b)) in nats.answers.iter().zip(&tribune.answers) {
        let (expected, unexpected): (Vec<String>, Vec<String>) =
            diff(nats.label, &schema(a), tribune.label, &schema(b))
                .into_iter()
                .partition(|d| d.split(':').next().is_some_and(expected_solo_diff));
        eprintln!("{q}: known differences: {expected:#?}");
        assert!(
            unexpected.is_empty(),
            "{q}: shapes differ:\n{unexpected:#?}"
        );
        assert_eq!(facts(a), facts(b), "{q}: values differ");
    }
    for ((q, s1, b1), (_, s2, b2)) in nats.errors.iter().zip(&tribune.errors) {
        assert_eq!((s1, b1), (s2, b2), "{q}: error answers differ");
        assert_eq!(*s1, 400, "{q}");
    }
}

#[test]
fn shape_helpers_walk_every_element() {
    let v = json!({"a": 1, "b": {"c": "x"}, "l": [{"n": 1}, {"n": 2, "o": true}]});
    let first: Vec<String> = common::json_shape::shape(&v).into_iter().collect();
    assert_eq!(first, ["a", "b", "b.c", "l", "l[].n"]);
    let every = typed_shape(&v);
    assert_eq!(every["l[].o"], "bool");
    let other = typed_shape(&json!({"a": "1", "b": {}}));
    let d = diff("x", &every, "y", &other);
    assert!(d.contains(&"a: x number, y string".to_string()), "{d:?}");
    assert!(d.contains(&"b.c: only x (string)".to_string()), "{d:?}");
}

// ------------------------------------------------------------ three nodes

const R3: &str = "SCORES";
const R1: &str = "LOCAL";
const CONSUMER: &str = "D3";

/// What the R3 scenario shows, for comparing the servers.
struct ClusterRun {
    /// The stream leader's full `/jsz`, as a schema.
    schema: BTreeMap<String, String>,
}

/// Names of the nodes but `i`.
fn others(jc: &JsCluster, i: usize) -> BTreeSet<String> {
    (0..jc.c.len())
        .filter(|&j| j != i)
        .map(|j| jc.c.node(j).name.clone())
        .collect()
}

fn replica_names(cluster: &Value) -> BTreeSet<String> {
    cluster["replicas"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str().map(String::from))
        .collect()
}

/// Every node's `/jsz?consumers=true&raft=true` once each shows the R3
/// stream with its 3 messages and the consumer, led by the same node, and
/// the leader sees both followers current.
async fn settled_views(jc: &JsCluster, leader: usize) -> Vec<Value> {
    let leader_name = jc.c.node(leader).name.clone();
    jc.poll(
        "every node's /jsz to show the R3 stream settled",
        || async {
            let mut views = Vec::new();
            for i in 0..jc.c.len() {
                let v = jc.c.get_json(i, "/jsz?consumers=true&raft=true").await?;
                let s = streams_of(&v, "APP")
                    .remove(R3)
                    .ok_or(format!("no {R3}: {v}"))?;
                if s["state"]["messages"] != 3 || s["cluster"]["leader"] != leader_name.as_str() {
                    return Err(format!("{} not settled: {s}", jc.c.node(i).name));
                }
                let c = &s["consumer_detail"][0];
                // nats-server elects a consumer's own leader after the stream's.
                if c["name"] != CONSUMER || !c["cluster"]["leader"].is_string() {
                    return Err(format!(
                        "{} has no led consumer yet: {s}",
                        jc.c.node(i).name
                    ));
                }
                let current = s["cluster"]["replicas"]
                    .as_array()
                    .is_some_and(|r| r.len() == 2 && r.iter().all(|p| p["current"] == true));
                if i == leader && !current {
                    return Err(format!("followers not current: {s}"));
                }
                views.push(v);
            }
            Ok(views)
        },
    )
    .await
}

async fn r3_scenario(flavor: ClusterFlavor) -> ClusterRun {
    let jc = JsCluster::start(flavor).await;
    let js = jc.js_patient(0);
    let scores = create_stream(
        &js,
        stream::Config {
            name: R3.into(),
            subjects: vec!["scores.>".into()],
            num_replicas: 3,
            ..Default::default()
        },
    )
    .await;
    create_stream(
        &js,
        stream::Config {
            name: R1.into(),
            subjects: vec!["local.>".into()],
            ..Default::default()
        },
    )
    .await;
    // As the replicated-stream tests do: publish once the group leads (a
    // new stream's leader takes its subjects just after the create answer).
    jc.wait_stream_leader(R3, None).await;
    publish(&js, "scores.x", 3).await;
    scores
        .create_consumer(pull::Config {
            durable_name: Some(CONSUMER.into()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("create consumer {CONSUMER}: {e}"));
    let (leader, _) = jc.wait_stream_leader(R3, None).await;
    let leader_name = jc.c.node(leader).name.clone();
    let views = settled_views(&jc, leader).await;

    let mut r1_holders = Vec::new();
    let mut consumer_leaders = 0;
    let mut group = None;
    for (i, v) in views.iter().enumerate() {
        let me = &jc.c.node(i).name;
        assert!(v["meta_cluster"].is_object(), "{me}: {v}");
        assert_eq!(account_names(v), ["APP"], "{me}");
        let streams = streams_of(v, "APP");
        let s = &streams[R3];
        let cluster = &s["cluster"];
        assert_eq!(cluster["name"], CLUSTER_NAME, "{me}: {s}");
        assert_eq!(cluster["leader"], leader_name.as_str(), "{me}");
        // As nats-server lists them: every peer but the node asked.
        assert_eq!(replica_names(cluster), others(&jc, i), "{me}: {cluster}");
        assert_eq!(
            cluster.get("leader_since").is_some(),
            i == leader,
            "{me}: leader_since on the leader only: {cluster}"
        );
        assert_eq!(cluster["system_account"], true, "{me}: {cluster}");
        assert_eq!(cluster["traffic_account"], "SYS", "{me}: {cluster}");
        let raft_group = cluster["raft_group"].as_str().unwrap_or_default();
        assert!(!raft_group.is_empty(), "{me}: {cluster}");
        assert_eq!(s["stream_raft_group"], raft_group, "{me}: {s}");
        assert_eq!(*group.get_or_insert(raft_group.to_string()), raft_group);
        let c = &s["consumer_detail"][0];
        assert_eq!(c["stream_name"], R3, "{me}");
        assert!(c.get("config").is_none(), "{me}: config not asked: {c}");
        assert_eq!(c["cluster"]["name"], CLUSTER_NAME, "{me}: {c}");
        assert!(c["cluster"]["leader"].is_string(), "{me}: {c}");
        let led_streams = usize::from(i == leader);
        if let Some(local) = streams.get(R1) {
            // A single replica: no Raft group in its cluster section.
            assert_eq!(
                local["cluster"],
                json!({"name": CLUSTER_NAME, "leader": me}),
                "{me}: {local}"
            );
            assert!(local["stream_raft_group"].is_string(), "{me}: {local}");
            r1_holders.push(i);
        }
        let want = led_streams + usize::from(streams.contains_key(R1));
        assert_eq!(
            v["streams_leader"].as_u64().unwrap_or(0),
            want as u64,
            "{me}: streams_leader: {v}"
        );
        consumer_leaders += v["consumers_leader"].as_u64().unwrap_or(0);
        // The top-level count covers the replicas this node holds.
        assert_eq!(v["streams"], json!(streams.len()), "{me}");
    }
    assert_eq!(r1_holders.len(), 1, "the R1 stream lives on one node");
    assert_eq!(consumer_leaders, 1, "one node leads the consumer");

    // stream-leader-only: each node lists what it leads.
    for i in 0..jc.c.len() {
        let v =
            jc.c.json(i, "/jsz?streams=true&stream-leader-only=true")
                .await;
        let mut want = BTreeSet::new();
        if i == leader {
            want.insert(R3.to_string());
        }
        if r1_holders.contains(&i) {
            want.insert(R1.to_string());
        }
        let got: BTreeSet<String> = streams_of(&v, "APP").into_keys().collect();
        assert_eq!(got, want, "{}: {v}", jc.c.node(i).name);
    }

    // leader-only: the meta leader answers, the others refuse as nats-server.
    let meta = jc.wait_meta_leader().await;
    for i in 0..jc.c.len() {
        let (status, body) = get(jc.c.node(i).http_addr(), "/jsz?leader-only=true").await;
        if i == meta {
            assert_eq!(status, 200, "{body}");
        } else {
            assert_eq!(
                (status, body.as_str()),
                (400, "filtered response: not leader"),
                "{}",
                jc.c.node(i).name
            );
        }
    }

    let full =
        jc.c.json(
            leader,
            "/jsz?accounts=true&streams=true&consumers=true&config=true&raft=true",
        )
        .await;
    ClusterRun {
        schema: schema(&full),
    }
}

/// nats-server only, in the R3 scenario: what [`expected_solo_diff`]
/// lists, and `consumer_raft_groups` (a Tribune consumer is replicated
/// through its stream's group, it has none of its own).
fn expected_cluster_diff(path: &str) -> bool {
    expected_solo_diff(path)
        || path.starts_with("account_details[].stream_detail[].consumer_raft_groups")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_leadership_and_options_match_nats_server() {
    let mut runs = Vec::new();
    for (kind, flavor) in [
        ("nats", ClusterFlavor::NatsServer),
        ("tribune", ClusterFlavor::Tribune),
    ] {
        if !flavor_selected(kind) {
            eprintln!("{kind}: skipped by CLUSTER_FLAVOR");
            continue;
        }
        eprintln!("=== {}", flavor.label());
        runs.push((flavor.label(), r3_scenario(flavor).await));
    }
    if let [(nl, nats), (tl, tribune)] = runs.as_slice() {
        let (expected, unexpected): (Vec<String>, Vec<String>) =
            diff(nl, &nats.schema, tl, &tribune.schema)
                .into_iter()
                .partition(|d| d.split(':').next().is_some_and(expected_cluster_diff));
        eprintln!("known differences: {expected:#?}");
        assert!(unexpected.is_empty(), "shapes differ:\n{unexpected:#?}");
    }
}
