//! Clustering (the NATS route protocol: full mesh, interest propagation,
//! gossip, healing) between real server processes, driven by async-nats.
//!
//! Every scenario is one `async fn(Flavor)` body, and the `on_both_flavors!`
//! macro turns it into a module with two tests:
//!
//! * `<scenario>::nats_server` runs the body on three nats-server nodes. This
//!   validates the test itself against the reference implementation.
//! * `<scenario>::tribune` runs the same body on three tribune-broker nodes.
//!
//! The `mixed::*` tests run the shared bodies on interop clusters
//! (2 tribune + 1 nats-server, 1 tribune + 2 nats-server).
//!
//! Select what runs with `CLUSTER_FLAVOR=nats|tribune|mixed` (comma-separated
//! for several; `both`, `all` or unset runs everything). Tests that are not
//! selected print "skipped" and pass. A name filter works too:
//! `cargo test -p tribune-broker --test cluster nats_server`.
//!
//! The cluster is built by [`common::cluster::Cluster`]: node i listens on
//! 127.0.0.(i+1), every node gets the full `--routes` list (itself included)
//! and `--cluster_name tribune-test`, and `Cluster::start` returns once every
//! node's /routez lists every other node.
//!
//! Interest crosses routes asynchronously, so before a test publishes on node
//! X to a subscriber on node Y it waits (polling `/routez?subs=1` on X) until X
//! has learned Y's subscription. There are no timed assertions: deadlines only
//! keep a broken server from hanging the run. The only fixed waits are short
//! "nothing more arrives" checks after everything expected has arrived; they
//! can only miss a late duplicate, never fail a correct server.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::{HeaderMap, Message, ServerAddr, Subscriber};
use futures::StreamExt;
use tokio::time::timeout;

use common::cluster::{
    flavor_selected, Cluster, Flavor, InfoWatcher, CLUSTER_DEADLINE, CLUSTER_NAME,
};

/// Guard against hanging; never an expectation about speed.
const DEADLINE: Duration = CLUSTER_DEADLINE;

/// How long to listen for messages that should not come (after everything
/// expected has arrived).
const QUIET: Duration = Duration::from_millis(300);

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

fn skip(kind: &str) -> bool {
    if flavor_selected(kind) {
        return false;
    }
    eprintln!(
        "skipped: CLUSTER_FLAVOR={:?} excludes {kind}",
        std::env::var("CLUSTER_FLAVOR").unwrap_or_default()
    );
    true
}

/// `mod $name { fn nats_server(); fn tribune(); }`, both running `$body`.
macro_rules! on_both_flavors {
    ($(#[$doc:meta])* $name:ident => $body:ident) => {
        $(#[$doc])*
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn nats_server() {
                if skip("nats") {
                    return;
                }
                $body(Flavor::NatsServer).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tribune() {
                if skip("tribune") {
                    return;
                }
                $body(Flavor::Tribune).await
            }
        }
    };
}

async fn next_msg(sub: &mut Subscriber, what: &str) -> Message {
    match timeout(DEADLINE, sub.next()).await {
        Ok(Some(m)) => m,
        Ok(None) => panic!("{what}: subscription closed"),
        Err(_) => panic!("{what}: no message within {DEADLINE:?}"),
    }
}

/// Nothing more arrives on `sub` for a short while.
async fn assert_quiet(sub: &mut Subscriber, what: &str) {
    if let Ok(Some(m)) = timeout(QUIET, sub.next()).await {
        panic!(
            "{what}: unexpected extra message on {:?}: {:?}",
            m.subject, m.payload
        );
    }
}

fn text(m: &Message) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

async fn flush(nc: &async_nats::Client) {
    timeout(DEADLINE, nc.flush())
        .await
        .expect("flush in time")
        .expect("flush");
}

// ---------------------------------------------------------------------------
// Bodies shared by the single-flavour and the mixed tests. `tag` keeps the
// subjects of repeated runs on one cluster apart (leftover interest from an
// earlier run must not satisfy a later run's propagation wait).

/// (1) A publisher on `publisher`, a subscriber on every other node and one on
/// the publisher's own node: each gets every message exactly once, in order.
async fn pubsub_body(c: &Cluster, tag: &str, publisher: usize) {
    const N: usize = 500;
    let subject = format!("orders.{tag}");
    let mut subs = Vec::new();
    for node in 0..c.len() {
        let nc = c.connect(node).await;
        let sub = nc.subscribe(subject.clone()).await.unwrap();
        flush(&nc).await;
        subs.push((node, nc, sub));
    }
    for node in (0..c.len()).filter(|&n| n != publisher) {
        c.wait_for_route_interest(publisher, node, &subject).await;
    }
    let p = c.connect(publisher).await;
    for i in 0..N {
        p.publish(subject.clone(), i.to_string().into())
            .await
            .unwrap();
    }
    p.publish(subject.clone(), "end".into()).await.unwrap();
    flush(&p).await;

    let want: Vec<String> = (0..N)
        .map(|i| i.to_string())
        .chain(["end".to_string()])
        .collect();
    for (node, _nc, sub) in &mut subs {
        let what = format!(
            "[{tag}] subscriber on {} (publisher on {})",
            c.node(*node).name,
            c.node(publisher).name
        );
        let mut got = Vec::new();
        while got.last().map(String::as_str) != Some("end") {
            got.push(text(&next_msg(sub, &what).await));
        }
        assert_eq!(got, want, "{what}: every message once, in publish order");
        assert_quiet(sub, &what).await;
    }
}

/// (3) A queue group with one member on every node and a plain wildcard
/// subscriber on the last node; `N` messages published on each of
/// `publishers`. Each message reaches exactly one member cluster-wide, every
/// member gets some, and the plain subscriber gets all.
async fn queue_body(c: &Cluster, tag: &str, publishers: &[usize]) {
    const N: usize = 300;
    let subject = format!("jobs.{tag}.work");
    let watch_subject = format!("jobs.{tag}.*");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String)>();
    let mut member_clients = Vec::new();
    for node in 0..c.len() {
        let nc = c.connect(node).await;
        let mut sub = nc
            .queue_subscribe(subject.clone(), "workers".into())
            .await
            .unwrap();
        flush(&nc).await;
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                if tx.send((node, text(&m))).is_err() {
                    break;
                }
            }
        });
        member_clients.push(nc);
    }
    drop(tx);
    let watch_node = c.len() - 1;
    let watcher = c.connect(watch_node).await;
    let mut watch = watcher.subscribe(watch_subject.clone()).await.unwrap();
    flush(&watcher).await;
    for &p in publishers {
        for node in (0..c.len()).filter(|&n| n != p) {
            c.wait_for_route_interest(p, node, &subject).await;
        }
        if p != watch_node {
            c.wait_for_route_interest(p, watch_node, &watch_subject)
                .await;
        }
    }

    let mut pub_clients = Vec::new();
    for &p in publishers {
        pub_clients.push((p, c.connect(p).await));
    }
    for (p, nc) in &pub_clients {
        for i in 0..N {
            nc.publish(subject.clone(), format!("{p}-{i}").into())
                .await
                .unwrap();
        }
    }
    for (_, nc) in &pub_clients {
        flush(nc).await;
    }
    let total = N * publishers.len();
    let all: BTreeSet<String> = publishers
        .iter()
        .flat_map(|p| (0..N).map(move |i| format!("{p}-{i}")))
        .collect();

    // The plain subscriber sees everything, each publisher's stream in order.
    let what = format!(
        "[{tag}] plain subscriber {watch_subject} on {}",
        c.node(watch_node).name
    );
    let mut per_pub: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for _ in 0..total {
        let m = next_msg(&mut watch, &what).await;
        let t = text(&m);
        let (p, i) = t.split_once('-').unwrap();
        per_pub
            .entry(p.to_string())
            .or_default()
            .push(i.parse().unwrap());
    }
    for (p, seq) in &per_pub {
        assert_eq!(
            seq,
            &(0..N).collect::<Vec<_>>(),
            "{what}: messages of publisher on node {p}"
        );
    }
    assert_quiet(&mut watch, &what).await;

    // The group: each message once, somewhere.
    let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
    let mut per_member = vec![0usize; c.len()];
    let deadline = Instant::now() + DEADLINE;
    while seen.len() < total {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, rx.recv()).await {
            Ok(Some((node, t))) => {
                per_member[node] += 1;
                seen.entry(t).or_default().push(node);
            }
            _ => {
                let missing: Vec<&String> = all
                    .iter()
                    .filter(|m| !seen.contains_key(*m))
                    .take(10)
                    .collect();
                panic!("[{tag}] queue group got {} of {total} messages; missing e.g. {missing:?}; per member {per_member:?}", seen.len());
            }
        }
    }
    if let Ok(Some((node, t))) = timeout(QUIET, rx.recv()).await {
        seen.entry(t).or_default().push(node);
    }
    let dups: Vec<(&String, &Vec<usize>)> =
        seen.iter().filter(|(_, v)| v.len() > 1).take(10).collect();
    assert!(
        dups.is_empty(),
        "[{tag}] queue messages delivered more than once (message, nodes): {dups:?}"
    );
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        all,
        "[{tag}] the group got exactly the published messages"
    );
    assert!(
        per_member.iter().all(|&n| n > 0),
        "[{tag}] every member (one per node) should get some of {total} messages: {per_member:?}"
    );
    eprintln!("[{tag}] queue spread per node: {per_member:?}");
}

/// (4) Request/reply with the responder on `responder`, the requester on
/// `requester`; no responders anywhere; and no responders again after the
/// only responder unsubscribed (RS- crossed the route).
async fn reqrep_body(c: &Cluster, tag: &str, requester: usize, responder: usize) {
    let subject = format!("svc.{tag}.echo");
    let rc = c.connect(responder).await;
    let mut svc = rc.subscribe(subject.clone()).await.unwrap();
    flush(&rc).await;
    c.wait_for_route_interest(requester, responder, &subject)
        .await;

    // The requester's reply interest (_INBOX.<id>.*) is subscribed just before
    // the first request goes out on the same client connection; a server must
    // propagate it ahead of the request (nats-server sends RS+ then RMSG on
    // the same route connection), so no extra wait is needed here.
    let q = c.connect(requester).await;
    for i in 0..20 {
        let what = format!(
            "[{tag}] request {i} from {} to {}",
            c.node(requester).name,
            c.node(responder).name
        );
        let req = timeout(
            DEADLINE,
            q.request(subject.clone(), format!("hi-{i}").into()),
        );
        let serve = async {
            let m = next_msg(&mut svc, &what).await;
            let reply = m
                .reply
                .clone()
                .unwrap_or_else(|| panic!("{what}: request without reply subject"));
            rc.publish(reply, format!("echo:{}", text(&m)).into())
                .await
                .unwrap();
            flush(&rc).await;
        };
        let (resp, ()) = tokio::join!(req, serve);
        let resp = resp
            .unwrap_or_else(|_| panic!("{what}: no reply"))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(text(&resp), format!("echo:hi-{i}"), "{what}");
    }

    // Nobody serves this anywhere in the cluster.
    let err = timeout(DEADLINE, q.request(format!("svc.{tag}.nobody"), "x".into()))
        .await
        .expect("no-responders answer in time")
        .expect_err("nobody serves svc.*.nobody");
    assert_eq!(
        err.kind(),
        async_nats::RequestErrorKind::NoResponders,
        "[{tag}] {err}"
    );

    // The only responder leaves; once its RS- has reached the requester's
    // node, requests get no responders too.
    svc.unsubscribe().await.unwrap();
    flush(&rc).await;
    c.wait_for_no_route_interest(requester, responder, &subject)
        .await;
    let err = timeout(DEADLINE, q.request(subject.clone(), "x".into()))
        .await
        .expect("no-responders answer in time")
        .expect_err("the responder unsubscribed");
    assert_eq!(
        err.kind(),
        async_nats::RequestErrorKind::NoResponders,
        "[{tag}] after unsubscribe: {err}"
    );
}

// ---------------------------------------------------------------------------
// 1. plain pub/sub

async fn pubsub(flavor: Flavor) {
    let c = Cluster::start(flavor).await;
    pubsub_body(&c, "p", A).await;
}
on_both_flavors!(
    /// Publisher on A, subscribers on A, B and C.
    pubsub => pubsub
);

// ---------------------------------------------------------------------------
// 2. wildcards

async fn wildcards(flavor: Flavor) {
    let c = Cluster::start(flavor).await;
    let nb = c.connect(B).await;
    let mut football = nb.subscribe("sports.football.*").await.unwrap();
    let mut tennis = nb.subscribe("*.tennis.>").await.unwrap();
    flush(&nb).await;
    let nc = c.connect(C).await;
    let mut sports = nc.subscribe("sports.>").await.unwrap();
    flush(&nc).await;
    c.wait_for_route_interest(A, B, "sports.football.*").await;
    c.wait_for_route_interest(A, B, "*.tennis.>").await;
    c.wait_for_route_interest(A, C, "sports.>").await;

    let p = c.connect(A).await;
    for s in [
        "sports.football.42",
        "sports.football.42.stats",
        "sports.tennis.7",
        "sports",
        "sports.football",
        "news.x",
        "news.tennis.final.score",
        "x.tennis.end",
        "sports.football.end",
    ] {
        p.publish(s, "x".into()).await.unwrap();
    }
    flush(&p).await;

    async fn until(sub: &mut Subscriber, end: &str, what: &str) -> Vec<String> {
        let mut got = Vec::new();
        while got.last().map(String::as_str) != Some(end) {
            got.push(next_msg(sub, what).await.subject.to_string());
        }
        assert_quiet(sub, what).await;
        got
    }
    assert_eq!(
        until(
            &mut football,
            "sports.football.end",
            "sports.football.* on B"
        )
        .await,
        ["sports.football.42", "sports.football.end"]
    );
    assert_eq!(
        until(&mut tennis, "x.tennis.end", "*.tennis.> on B").await,
        ["sports.tennis.7", "news.tennis.final.score", "x.tennis.end"]
    );
    assert_eq!(
        until(&mut sports, "sports.football.end", "sports.> on C").await,
        [
            "sports.football.42",
            "sports.football.42.stats",
            "sports.tennis.7",
            "sports.football",
            "sports.football.end"
        ]
    );
}
on_both_flavors!(
    /// `sports.football.*` and `*.tennis.>` on B, `sports.>` on C, publishes on A.
    wildcards => wildcards
);

// ---------------------------------------------------------------------------
// 3. queue groups

async fn queue_group(flavor: Flavor) {
    let c = Cluster::start(flavor).await;
    queue_body(&c, "q", &[A, B]).await;
}
on_both_flavors!(
    /// Members on A, B, C; messages published on A and on B.
    queue_group => queue_group
);

// ---------------------------------------------------------------------------
// 4. request/reply

async fn request_reply(flavor: Flavor) {
    let c = Cluster::start(flavor).await;
    reqrep_body(&c, "r", A, C).await;
}
on_both_flavors!(
    /// Responder on C, requester on A; no responders; RS- on unsubscribe.
    request_reply => request_reply
);

// ---------------------------------------------------------------------------
// 5. headers (HMSG over the route)

async fn headers(flavor: Flavor) {
    let c = Cluster::start(flavor).await;
    let nb = c.connect(B).await;
    let mut sub = nb.subscribe("hdr.data").await.unwrap();
    flush(&nb).await;
    let nc = c.connect(C).await;
    let mut svc = nc.subscribe("hdr.svc").await.unwrap();
    flush(&nc).await;
    c.wait_for_route_interest(A, B, "hdr.data").await;
    c.wait_for_route_interest(A, C, "hdr.svc").await;

    let p = c.connect(A).await;
    let mut h = HeaderMap::new();
    h.insert("X-Id", "1");
    h.append("X-Multi", "a");
    h.append("X-Multi", "b");
    p.publish_with_headers("hdr.data", h, "payload".into())
        .await
        .unwrap();
    let mut h = HeaderMap::new();
    h.insert("X-Id", "2");
    p.publish_with_headers("hdr.data", h, "".into())
        .await
        .unwrap();
    p.publish("hdr.data", "plain".into()).await.unwrap();
    flush(&p).await;

    let m = next_msg(&mut sub, "HMSG 1 on B").await;
    let hs = m.headers.as_ref().expect("headers crossed the route");
    assert_eq!(hs.get("X-Id").map(|v| v.as_str()), Some("1"));
    let multi: Vec<&str> = hs.get_all("X-Multi").map(|v| v.as_str()).collect();
    assert_eq!(multi, ["a", "b"]);
    assert_eq!(text(&m), "payload");
    let m = next_msg(&mut sub, "HMSG 2 on B").await;
    assert_eq!(
        m.headers
            .as_ref()
            .and_then(|h| h.get("X-Id"))
            .map(|v| v.as_str()),
        Some("2")
    );
    assert!(m.payload.is_empty());
    let m = next_msg(&mut sub, "plain MSG on B").await;
    assert!(
        m.headers.as_ref().is_none_or(|h| h.is_empty()),
        "no headers on a plain message: {:?}",
        m.headers
    );
    assert_eq!(text(&m), "plain");
    assert_quiet(&mut sub, "hdr.data on B").await;

    // Request with headers A → C, reply with headers C → A.
    let mut h = HeaderMap::new();
    h.insert("X-Req", "ping");
    let req = timeout(DEADLINE, p.request_with_headers("hdr.svc", h, "q".into()));
    let serve = async {
        let m = next_msg(&mut svc, "request on C").await;
        assert_eq!(
            m.headers
                .as_ref()
                .and_then(|h| h.get("X-Req"))
                .map(|v| v.as_str()),
            Some("ping")
        );
        let mut h = HeaderMap::new();
        h.insert("X-Resp", "pong");
        nc.publish_with_headers(m.reply.clone().expect("reply subject"), h, "a".into())
            .await
            .unwrap();
        flush(&nc).await;
    };
    let (resp, ()) = tokio::join!(req, serve);
    let resp = resp.expect("reply in time").expect("reply");
    assert_eq!(
        resp.headers
            .as_ref()
            .and_then(|h| h.get("X-Resp"))
            .map(|v| v.as_str()),
        Some("pong")
    );
    assert_eq!(text(&resp), "a");
}
on_both_flavors!(
    /// Headers from A to B, and a request/reply with headers A ↔ C.
    headers => headers
);

// ---------------------------------------------------------------------------
// 6. kill -9 a node mid-stream, fail over, restart, heal

async fn kill_and_heal(flavor: Flavor) {
    let mut c = Cluster::start(flavor).await;
    let subject = "stream.data";

    // A subscriber on B that knows all three servers (B first, kept first).
    let addrs: Vec<ServerAddr> = [B, A, C]
        .iter()
        .map(|&i| c.client_url(i).parse().unwrap())
        .collect();
    let sc = async_nats::ConnectOptions::new()
        .name("failover-sub")
        .retain_servers_order()
        .connect(addrs)
        .await
        .expect("connect the failover subscriber");
    assert_eq!(
        sc.server_info().port,
        c.node(B).client_port,
        "the subscriber starts on B"
    );
    let mut sub = sc.subscribe(subject).await.unwrap();
    flush(&sc).await;
    c.wait_for_route_interest(A, B, subject).await;

    // Receiver: every sequence number, in arrival order.
    let received: Arc<Mutex<Vec<u64>>> = Arc::default();
    let r2 = received.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            r2.lock().unwrap().push(text(&m).parse().unwrap());
        }
    });

    // Publisher on A: continuous, numbered.
    let publisher = c.connect(A).await;
    let last_sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (ls, st, pc) = (last_sent.clone(), stop.clone(), publisher.clone());
    let pub_task = tokio::spawn(async move {
        let mut i = 1u64;
        while !st.load(Ordering::Relaxed) {
            pc.publish(subject, i.to_string().into()).await.unwrap();
            ls.store(i, Ordering::Relaxed);
            i += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        pc.flush().await.ok();
    });

    // Wait until `received` holds a value above `above`.
    async fn wait_received_above(received: &Mutex<Vec<u64>>, above: u64, what: &str, c: &Cluster) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if received.lock().unwrap().last().is_some_and(|&l| l > above) {
                return;
            }
            if Instant::now() > deadline {
                let last = received.lock().unwrap().last().copied();
                panic!(
                    "{what}: nothing above {above} arrived (last received {last:?})\n{}",
                    c.diagnostics().await
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    wait_received_above(&received, 50, "before the kill", &c).await;

    // kill -9 B.
    c.kill(B);
    let at_kill = last_sent.load(Ordering::Relaxed);
    wait_received_above(
        &received,
        at_kill,
        "after B was killed (failover to A or C)",
        &c,
    )
    .await;
    assert_eq!(sc.connection_state(), State::Connected);
    let now_on = sc.server_info().port;
    assert!(
        now_on == c.node(A).client_port || now_on == c.node(C).client_port,
        "the subscriber reconnected to A or C (now on port {now_on})"
    );
    // The survivors drop the dead node from the mesh.
    c.wait_for_mesh().await;

    // Restart B on the same addresses: the mesh heals on every node.
    c.restart(B).await;
    c.wait_for_mesh().await;

    // Messages flow through the new B: a fresh subscriber there gets A's stream.
    let nb = c.connect(B).await;
    let mut sub_b = nb.subscribe(subject).await.unwrap();
    flush(&nb).await;
    c.wait_for_route_interest(A, B, subject).await;
    let after_heal = last_sent.load(Ordering::Relaxed);
    loop {
        let m = next_msg(&mut sub_b, "subscriber on the restarted B").await;
        if text(&m).parse::<u64>().unwrap() > after_heal {
            break;
        }
    }
    // And the failed-over subscriber is still fed.
    wait_received_above(
        &received,
        after_heal,
        "failed-over subscriber after the heal",
        &c,
    )
    .await;

    stop.store(true, Ordering::Relaxed);
    pub_task.await.unwrap();
    let got = received.lock().unwrap().clone();
    let bad: Vec<(u64, u64)> = got
        .windows(2)
        .filter(|w| w[1] <= w[0])
        .map(|w| (w[0], w[1]))
        .take(10)
        .collect();
    assert!(
        bad.is_empty(),
        "per-publisher order (no duplicates, no reordering) across the failover: {bad:?}"
    );
}
on_both_flavors!(
    /// Publisher on A, subscriber on B with all URLs; kill -9 B; restart B.
    kill_and_heal => kill_and_heal
);

// ---------------------------------------------------------------------------
// 7. connect_urls in client INFO (initial and asynchronous)

async fn connect_urls(flavor: Flavor) {
    let mut c = Cluster::start(flavor).await;
    let all: BTreeSet<String> = (0..c.len()).map(|i| c.node(i).client_hostport()).collect();

    // async-nats 0.51 only refreshes server_info() on (re)connect, so the
    // asynchronous INFOs are watched on a raw protocol connection to A.
    let mut w = InfoWatcher::connect(c.node(A).client_addr()).await;
    let order = w.wait_for_connect_urls(&all).await;
    eprintln!(
        "{}: connect_urls on A with the full mesh: {order:?}",
        flavor.label()
    );
    // A fresh async-nats client gets them in its first INFO.
    let nc = c.connect(A).await;
    assert_eq!(
        nc.server_info()
            .connect_urls
            .into_iter()
            .collect::<BTreeSet<_>>(),
        all,
        "first INFO of a new client on A"
    );

    c.kill(C);
    let mut without_c = all.clone();
    without_c.remove(&c.node(C).client_hostport());
    let order = w.wait_for_connect_urls(&without_c).await;
    eprintln!(
        "{}: connect_urls on A after C died: {order:?}",
        flavor.label()
    );

    c.restart(C).await;
    c.wait_for_mesh().await;
    let order = w.wait_for_connect_urls(&all).await;
    eprintln!(
        "{}: connect_urls on A after C came back: {order:?}",
        flavor.label()
    );
    eprintln!(
        "{}: INFO connect_urls history on A: {:?}",
        flavor.label(),
        w.infos
            .iter()
            .map(|i| i["connect_urls"].clone())
            .collect::<Vec<_>>()
    );
}
on_both_flavors!(
    /// A client of A sees all three client URLs, then two when C dies, then three.
    connect_urls => connect_urls
);

// ---------------------------------------------------------------------------
// 8. /routez and /varz tell the truth

/// Every running node's /routez names exactly the other running nodes, and
/// /varz and the ports file describe the cluster listener.
async fn check_monitoring(c: &Cluster, when: &str) {
    let live = c.live();
    for &i in &live {
        let n = c.node(i);
        let v = c.json(i, "/routez").await;
        assert_eq!(
            v["server_id"].as_str(),
            Some(c.server_id(i)),
            "{when}: {} /routez server_id",
            n.name
        );
        let routes = v["routes"].as_array().expect("routes is an array");
        assert_eq!(
            v["num_routes"].as_u64(),
            Some(routes.len() as u64),
            "{when}: {} num_routes = routes.len()",
            n.name
        );
        let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in routes {
            names
                .entry(r["remote_id"].as_str().unwrap_or_default().to_string())
                .or_default()
                .insert(r["remote_name"].as_str().unwrap_or_default().to_string());
        }
        let want: BTreeMap<String, BTreeSet<String>> = live
            .iter()
            .filter(|&&j| j != i)
            .map(|&j| {
                (
                    c.server_id(j).to_string(),
                    BTreeSet::from([c.node(j).name.clone()]),
                )
            })
            .collect();
        assert_eq!(
            names, want,
            "{when}: {} /routez remote_id → remote_name",
            n.name
        );

        let varz = c.json(i, "/varz").await;
        assert_eq!(varz["server_id"].as_str(), Some(c.server_id(i)));
        assert_eq!(
            varz["server_name"].as_str(),
            Some(n.name.as_str()),
            "{when}: {} /varz server_name",
            n.name
        );
        let cl = &varz["cluster"];
        assert_eq!(
            cl["name"].as_str(),
            Some(CLUSTER_NAME),
            "{when}: {} /varz cluster.name: {cl}",
            n.name
        );
        assert_eq!(
            cl["cluster_port"].as_u64(),
            Some(n.cluster_port as u64),
            "{when}: {} /varz cluster.cluster_port: {cl}",
            n.name
        );
        assert_eq!(
            cl["addr"].as_str(),
            Some(n.ip.to_string().as_str()),
            "{when}: {} /varz cluster.addr: {cl}",
            n.name
        );

        // nats-server 2.15.1 writes the cluster URL as nats://host:port.
        let cluster_urls = n.ports.get("cluster").unwrap_or_else(|| {
            panic!("{}: ports file has no cluster entry: {:?}", n.name, n.ports)
        });
        assert!(
            cluster_urls.iter().any(|u| u
                .trim_end_matches('/')
                .ends_with(&format!("{}:{}", n.ip, n.cluster_port))),
            "{}: ports file cluster entry {cluster_urls:?}",
            n.name
        );
    }
}

async fn routez_truth(flavor: Flavor) {
    let mut c = Cluster::start(flavor).await;
    check_monitoring(&c, "full mesh").await;

    let old_c = c.server_id(C).to_string();
    c.kill(C);
    c.wait_for_mesh().await;
    check_monitoring(&c, "after C was killed").await;

    c.restart(C).await;
    c.wait_for_mesh().await;
    assert_ne!(
        c.server_id(C),
        old_c,
        "a restarted node is a new server (new ID)"
    );
    check_monitoring(&c, "after C was restarted").await;
}
on_both_flavors!(
    /// /routez, /varz and the ports file before and after a kill and restart.
    routez_truth => routez_truth
);

// ---------------------------------------------------------------------------
// 9. INTEROP: mixed clusters of tribune-broker and nats-server nodes.
//
// Tribune is expected to speak the route protocol without pooling (see
// .routespec.md §10): nats-server then keeps one connection per Tribune peer,
// carrying all accounts. These tests check the client-visible result only.

async fn interop(flavors: [Flavor; 3]) {
    let c = Cluster::start_mixed(&flavors).await;
    for i in 0..c.len() {
        let v = c.json(i, "/routez").await;
        let per_peer: Vec<String> = v["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}{}",
                    r["remote_name"].as_str().unwrap_or("?"),
                    r["account"]
                        .as_str()
                        .map(|a| format!("[{a}]"))
                        .unwrap_or_default()
                )
            })
            .collect();
        eprintln!(
            "{} ({}) num_routes={} {per_peer:?}",
            c.node(i).name,
            c.node(i).flavor.label(),
            v["num_routes"]
        );
    }
    // Pub/sub in every direction: each node publishes once to all others.
    for p in 0..c.len() {
        pubsub_body(&c, &format!("from{p}"), p).await;
    }
    // One queue group spanning both implementations, fed from every node.
    queue_body(&c, "mixed", &[A, B, C]).await;
    // Request/reply across every pair of different implementations, both ways.
    for req in 0..c.len() {
        for resp in 0..c.len() {
            if flavors[req] != flavors[resp] {
                reqrep_body(&c, &format!("r{req}{resp}"), req, resp).await;
            }
        }
    }
}

mod mixed {
    use super::*;

    /// INTEROP: node A and B tribune-broker, node C nats-server.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_tribune_one_nats_server() {
        if skip("mixed") {
            return;
        }
        interop([Flavor::Tribune, Flavor::Tribune, Flavor::NatsServer]).await
    }

    /// INTEROP: node A tribune-broker, nodes B and C nats-server.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_tribune_two_nats_server() {
        if skip("mixed") {
            return;
        }
        interop([Flavor::Tribune, Flavor::NatsServer, Flavor::NatsServer]).await
    }

    /// Control for the harness: the same interop body on an all-nats-server
    /// cluster (runs with the `nats` flavour).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn control_three_nats_server() {
        if skip("nats") {
            return;
        }
        interop([Flavor::NatsServer, Flavor::NatsServer, Flavor::NatsServer]).await
    }
}

// ---------------------------------------------------------------------------
// 10. Secrets stay out of monitoring and logs
//
// Two nodes with cluster authorization; A dials B (and a dead port) through
// route URLs that carry the route password, clients present passwords and
// tokens, and both servers trace everything (-DV). No monitoring endpoint
// and no log line may then hold any of the secrets. The nats_server variant
// proves the scenario against the reference: it produces the traces this
// checks for, and its output is clean too.

const ROUTE_PASS: &str = "R0uteS3cretPW";
const CLIENT_PASS: &str = "Cl1entS3cretPW";
const CLIENT_TOKEN: &str = "T0kenS3cretTK";
const WRONG_PASS: &str = "Wr0ngS3cretPW";
const SECRETS: [&str; 4] = [ROUTE_PASS, CLIENT_PASS, CLIENT_TOKEN, WRONG_PASS];

/// A node with client and cluster authorization and full tracing.
fn secret_node(flavor: Flavor, routes: &[String]) -> common::Server {
    let mut spec = common::ServerSpec::new(flavor.bin()).args([
        "-DV".to_string(),
        "-m".to_string(),
        "-1".to_string(),
        "--user".to_string(),
        "alice".to_string(),
        "--pass".to_string(),
        CLIENT_PASS.to_string(),
        "--cluster".to_string(),
        format!("nats://ruser:{ROUTE_PASS}@127.0.0.1:-1"),
        "--cluster_name".to_string(),
        "secrets".to_string(),
    ]);
    if !routes.is_empty() {
        spec = spec.args(["--routes".to_string(), routes.join(",")]);
    }
    spec.start().unwrap_or_else(|e| panic!("{e}"))
}

fn http_of(s: &common::Server) -> std::net::SocketAddr {
    let a = s.addr_of("monitoring").expect("monitoring port");
    let port: u16 = a
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

fn port_of(s: &common::Server, key: &str) -> u16 {
    let a = s
        .addr_of(key)
        .unwrap_or_else(|| panic!("no {key} in {:?}", s.ports));
    a.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// A raw client: send `CONNECT <json>` and `PING` without waiting, read
/// until PONG or an error. Returns the connection (to keep it open) and
/// what the server said after its INFO.
async fn raw_hello(port: u16, connect: &str) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes())
        .await
        .expect("write");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let done = |t: &str| t.contains("PONG\r\n") || t.contains("-ERR");
    timeout(DEADLINE, async {
        while !done(&seen) {
            let n = s.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .expect("an answer to PING");
    let after_info = seen.split_once("}\r\n").map_or(&*seen, |(_, r)| r);
    (s, after_info.to_string())
}

fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} holds the secret {s:?}:\n{text}");
    }
}

async fn secrets_stay_private(flavor: Flavor) {
    let b = secret_node(flavor, &[]);
    let b_cluster = port_of(&b, "cluster");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let routes = [
        format!("nats-route://ruser:{ROUTE_PASS}@127.0.0.1:{b_cluster}"),
        format!("nats-route://ruser:{ROUTE_PASS}@127.0.0.1:{dead}"),
    ];
    let mut a = secret_node(flavor, &routes);
    let mut b = b;
    let (ha, hb) = (http_of(&a), http_of(&b));

    // The route with credentials comes up (so the route CONNECT was traced).
    let end = Instant::now() + DEADLINE;
    loop {
        let ra = common::cluster::get_json(ha, "/routez").await;
        let rb = common::cluster::get_json(hb, "/routez").await;
        let up = |r: &Result<serde_json::Value, String>| {
            r.as_ref()
                .is_ok_and(|v| v["num_routes"].as_u64() >= Some(1))
        };
        if up(&ra) && up(&rb) {
            break;
        }
        assert!(
            Instant::now() < end,
            "route never came up: {ra:?} {rb:?}\n{}\n{}",
            a.log_excerpt(),
            b.log_excerpt()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // /varz lists each configured route as host:port, as nats-server does.
    let varz = common::cluster::get_json(ha, "/varz").await.unwrap();
    assert_eq!(
        varz["cluster"]["urls"],
        serde_json::json!([
            format!("127.0.0.1:{b_cluster}"),
            format!("127.0.0.1:{dead}")
        ]),
        "{}: /varz cluster: {}",
        flavor.label(),
        varz["cluster"]
    );

    // Clients with a password and a token, and one with a wrong password.
    let good = format!(
        r#"{{"verbose":false,"pedantic":false,"user":"alice","pass":"{CLIENT_PASS}","auth_token":"{CLIENT_TOKEN}"}}"#
    );
    let (kept, said) = raw_hello(a.port, &good).await;
    assert!(said.contains("PONG"), "{}: {said:?}", flavor.label());
    let bad = format!(r#"{{"verbose":false,"user":"alice","pass":"{WRONG_PASS}"}}"#);
    let (_gone, said) = raw_hello(a.port, &bad).await;
    assert!(
        said.contains("Authorization Violation"),
        "{}: {said:?}",
        flavor.label()
    );
    let (closed, said) = raw_hello(a.port, &good).await;
    assert!(said.contains("PONG"), "{said:?}");
    drop(closed);

    // Every endpoint, in every form that shows more, on both nodes.
    let connz = "/connz?auth=true&subs=detail";
    let open = common::cluster::get_json(ha, connz).await.unwrap();
    let users: Vec<&str> = open["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["authorized_user"].as_str())
        .collect();
    assert!(users.contains(&"alice"), "{}: {open}", flavor.label());
    let end = Instant::now() + DEADLINE;
    while common::cluster::get_json(ha, "/connz?state=closed")
        .await
        .map_or(0, |v| v["num_connections"].as_u64().unwrap_or(0))
        < 2
    {
        assert!(Instant::now() < end, "closed connections not listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for h in [ha, hb] {
        for path in [
            "/",
            "/varz",
            connz,
            "/connz?state=closed&auth=true&subs=detail",
            "/connz?state=all&auth=true",
            "/routez?subs=detail",
            "/subsz?subs=1",
            "/healthz",
            "/jsz",
            "/metrics",
        ] {
            let (_, body) = common::cluster::http_get(h, path).await.unwrap();
            assert_no_secret(&format!("{} {h}{path}", flavor.label()), &body);
        }
    }
    drop(kept);

    a.terminate();
    b.terminate();
    let (log_a, log_b) = (a.log(), b.log());
    assert_no_secret(&format!("{} log of A", flavor.label()), &log_a);
    assert_no_secret(&format!("{} log of B", flavor.label()), &log_b);
    // The traces were there, with the secrets redacted as nats-server does.
    let client_trace = r#"<<- [CONNECT {"verbose":false,"pedantic":false,"user":"alice","pass":"[REDACTED]","auth_token":"[REDACTED]"}]"#;
    assert!(
        log_a.contains(client_trace),
        "{}: no client CONNECT trace in A's log:\n{log_a}",
        flavor.label()
    );
    assert!(
        log_b.lines().any(|l| l.contains("<<- [CONNECT {")
            && l.contains(r#""user":"ruser""#)
            && l.contains(r#""pass":"[REDACTED]""#)),
        "{}: no route CONNECT trace in B's log:\n{log_b}",
        flavor.label()
    );
    if flavor == Flavor::Tribune {
        // Tribune names the route it failed to dial; redacted as Go's
        // url.Redacted() shows it.
        assert!(
            log_a.contains(&format!("nats-route://ruser:xxxxx@127.0.0.1:{dead}")),
            "no redacted route URL in A's log:\n{log_a}"
        );
    }
}
on_both_flavors!(
    /// Route and client credentials never show in /varz, /connz, /routez,
    /// ... or in the debug and trace log.
    secrets_stay_private => secrets_stay_private
);
