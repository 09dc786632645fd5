//! No single point of failure in ingest: three bridges, one per node of a
//! 3-node cluster with the stream replicated three times, under a live feed.
//! Mid-feed one bridge is SIGKILLed, then the node leading the stream. Every
//! update is stored exactly once (the same `Nats-Msg-Id` from whichever
//! bridge published it), every match's last message is the merge of
//! everything sent for it, and a subscriber on a surviving node keeps
//! receiving. Both ways of sharing the feed (README "High availability"):
//! `all_active` (every bridge connected to the provider, its own client id)
//! and `single_active` (one lease holder connected, standbys taking over its
//! provider session).

mod support;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use support::*;

const N: u64 = 3000;
/// Updates per second: slow enough that the feed is still running after the
/// standby's takeover (a few lease TTLs) and the node kill.
const RATE: f64 = 250.0;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    AllActive,
    SingleActive,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_active_bridges_lose_nothing_when_a_bridge_and_a_node_die() {
    init();
    survive_kills(Mode::AllActive, 51).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_active_standby_takes_over_when_the_active_bridge_and_a_node_die() {
    init();
    survive_kills(Mode::SingleActive, 52).await;
}

async fn survive_kills(mode: Mode, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = NatsServer::cluster(dir.path(), 3);
    let mqtt = embedded_broker();
    let mut bridges: Vec<BridgeProc> = (0..3)
        .map(|i| {
            // Each bridge prefers its own node, as on the deployed cluster.
            let mut urls = vec![nodes[i].url()];
            urls.extend((0..3).filter(|j| *j != i).map(|j| nodes[j].url()));
            let (client_id, ha) = match mode {
                Mode::AllActive => (format!("bridge-ha-{i}"), String::new()),
                Mode::SingleActive => (
                    "bridge-ha".to_owned(),
                    format!("[ha]\nmode = \"single_active\"\ninstance = \"b{i}\"\nlease_ttl_ms = 3000\n"),
                ),
            };
            let extra = format!(
                "name = \"tribune-bridge-{i}\"\n[jetstream]\nreplicas = 3\nack_timeout_ms = 2000\n{ha}"
            );
            BridgeProc::start(dir.path(), &bridge_config(&mqtt, &urls, &client_id, &extra))
        })
        .collect();
    for b in &bridges {
        b.wait_healthy().await;
    }
    if mode == Mode::SingleActive {
        wait_for("one bridge is active", Duration::from_secs(60), || async {
            active_bridges(&bridges).len() == 1
        })
        .await;
    }

    // n1 leads the stream and is the node that dies; watch from n3.
    let client = async_nats::connect(nodes[2].url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    wait_for("SPORTS exists", Duration::from_secs(60), || async {
        js.get_stream("SPORTS").await.is_ok()
    })
    .await;
    lead_from(&client, &js, &nodes[0].name).await;
    let watcher = Watcher::start(&client).await;

    let url = mqtt.clone();
    let sim = tokio::spawn(async move { run_sim(&url, N, RATE, 0, seed).await });

    wait_for("some updates stored", Duration::from_secs(60), || async {
        stream_messages(&js, "SPORTS").await >= N / 5
    })
    .await;
    let victim = match mode {
        Mode::AllActive => 0,
        Mode::SingleActive => active_bridges(&bridges)[0],
    };
    eprintln!("killing bridge {victim}");
    bridges[victim].kill9();
    if mode == Mode::SingleActive {
        wait_for("a standby took over", Duration::from_secs(60), || async {
            active_bridges(&bridges).len() == 1
        })
        .await;
    }
    let before = stream_messages(&js, "SPORTS").await;
    wait_for(
        "updates after the bridge died",
        Duration::from_secs(60),
        || async { stream_messages(&js, "SPORTS").await > before },
    )
    .await;

    eprintln!("killing node {}", nodes[0].name);
    let received_before_node_kill = watcher.count();
    nodes[0].kill();

    let report = sim.await.unwrap();
    assert_eq!(report.updates, N);
    wait_for("every update stored", Duration::from_secs(180), || async {
        stream_messages(&js, "SPORTS").await >= N
    })
    .await;
    let ids = stream_msg_ids(&js, "SPORTS").await;
    assert_eq!(ids.len() as u64, N, "every update stored once");
    assert_unique(&ids);
    assert_states_are_whole(&client, seed, N).await;

    assert!(
        watcher.count() > received_before_node_kill,
        "the subscriber on a surviving node kept receiving"
    );
    eprintln!(
        "subscriber: {} messages, longest gap {} ms",
        watcher.count(),
        watcher.longest_gap_ms()
    );
    if mode == Mode::SingleActive {
        let took: u64 = bridges
            .iter()
            .map(|b| b.metric("tribune_bridge_leases_taken_total"))
            .sum();
        assert!(took >= 1, "a standby took the lease");
    }
}

/// Indexes of the live bridges that hold the lease.
fn active_bridges(bridges: &[BridgeProc]) -> Vec<usize> {
    bridges
        .iter()
        .enumerate()
        .filter(|(_, b)| {
            let m = b.metrics();
            !m.is_empty() && b.metric("tribune_bridge_standby") == 0
        })
        .map(|(i, _)| i)
        .collect()
}

/// A core subscriber on `sports.>`, as a web user is: counts messages and the
/// longest silence between two of them (reported, not asserted).
struct Watcher {
    count: Arc<AtomicU64>,
    longest_gap_ms: Arc<AtomicU64>,
}

impl Watcher {
    async fn start(client: &async_nats::Client) -> Watcher {
        let mut sub = client.subscribe("sports.>").await.unwrap();
        client.flush().await.unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let longest_gap_ms = Arc::new(AtomicU64::new(0));
        let (c, g) = (count.clone(), longest_gap_ms.clone());
        tokio::spawn(async move {
            let mut last: Option<Instant> = None;
            while sub.next().await.is_some() {
                if let Some(t) = last {
                    g.fetch_max(t.elapsed().as_millis() as u64, Relaxed);
                }
                last = Some(Instant::now());
                c.fetch_add(1, Relaxed);
            }
        });
        Watcher {
            count,
            longest_gap_ms,
        }
    }

    fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    fn longest_gap_ms(&self) -> u64 {
        self.longest_gap_ms.load(Relaxed)
    }
}

/// The lease itself, against one server: a second holder waits while the
/// first holds it, takes it as soon as the first releases it, and a holder
/// whose key was overwritten learns it at its next renewal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_waits_passes_on_release_and_notices_takeover() {
    use tribune_bridge::config::Config;
    use tribune_bridge::lease::{holder_name, Ended, Leases};
    init();
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path(), None);
    let cfg = Config::parse(&bridge_config(
        "mqtt://127.0.0.1:1",
        &[nats.url()],
        "lease",
        "[ha]\nmode = \"single_active\"\nlease_ttl_ms = 2000\n",
    ))
    .unwrap();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let (_stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let mut sd = stop.clone();
    let a = Leases::open(
        client.clone(),
        &cfg.ha,
        &cfg.jetstream,
        holder_name("a"),
        &mut sd,
    )
    .await
    .unwrap();
    let b = Leases::open(
        client.clone(),
        &cfg.ha,
        &cfg.jetstream,
        holder_name("b"),
        &mut sd,
    )
    .await
    .unwrap();

    let lease_a = a
        .acquire(&mut stop.clone())
        .await
        .expect("a takes the free lease");
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let holding = tokio::spawn(async move { a.hold(lease_a, release_rx).await });
    let waiting = tokio::spawn(async move {
        let lease = b.acquire(&mut stop).await;
        (b, lease)
    });
    // b keeps waiting across several renewals of a (1/4 TTL each) ...
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!waiting.is_finished(), "b took a lease a still holds");
    // ... and takes it once a releases it.
    release_tx.send(true).unwrap();
    assert_eq!(holding.await.unwrap(), None, "a released, not lost");
    let (b, lease_b) = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("b takes the released lease")
        .unwrap();
    let lease_b = lease_b.expect("b holds the lease");

    // Someone else overwrites the key: b's next renewal finds out.
    let kv = async_nats::jetstream::new(client.clone())
        .get_key_value(&cfg.ha.lease_bucket)
        .await
        .unwrap();
    kv.put(&cfg.ha.lease_key, "intruder".into()).await.unwrap();
    let (_keep_tx, keep_rx) = tokio::sync::watch::channel(false);
    let ended = tokio::time::timeout(Duration::from_secs(30), b.hold(lease_b, keep_rx))
        .await
        .expect("b notices");
    assert_eq!(ended, Some(Ended::TakenOver("intruder".into())));
}
