//! Crash safety: SIGKILL the server in the middle of a burst of
//! acknowledged publishes (and of consumer acks), restart it on the same
//! store, and check that
//! - every publish the client saw acknowledged is stored, with the same
//!   sequence, subject and payload, in publish order;
//! - the durable consumer still exists and, drained at the end, has
//!   delivered every acknowledged message (redelivery is allowed, loss is
//!   not).
//!
//! Repeated for several rounds at random kill points on one store, so
//! recovery also runs over stores that were recovered before. Both servers
//! run with `jetstream { sync_interval: always }` (fsync before the ack;
//! nats-server's default is every 2 minutes).
//!
//! Environment: `JS_CRASH_ROUNDS` (default 10), `JS_CRASH_SEED` (default
//! random; printed, to replay a failure).

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::{self, stream, AckKind};
use common::js::{for_each_flavor, Durable, Flavor, Js, WAIT};
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

/// Publishes in flight at once.
const WINDOW: usize = 64;

const CONFIG: &str = r#"
jetstream {
  store_dir: "{store}"
  sync_interval: always
}
"#;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// What the clients saw acknowledged before the crash.
#[derive(Default)]
struct Seen {
    /// (stream seq, subject, payload) in publish order.
    published: Mutex<Vec<(u64, String, String)>>,
    published_count: AtomicUsize,
    /// Stream sequences the durable consumer delivered.
    consumed: Mutex<BTreeSet<u64>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_acked_publishes() {
    for_each_flavor(BIN, crash_on).await;
}

async fn crash_on(f: Flavor) {
    let rounds = env_u64("JS_CRASH_ROUNDS").unwrap_or(10);
    let seed = env_u64("JS_CRASH_SEED").unwrap_or_else(rand::random);
    eprintln!("{}: {rounds} rounds, JS_CRASH_SEED={seed}", f.label);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let store = Durable::new(&f.bin).with_config(CONFIG);

    // Everything acknowledged so far, over all rounds: seq -> (subject, payload).
    let mut acked: BTreeMap<u64, (String, String)> = BTreeMap::new();
    let mut consumed: BTreeSet<u64> = BTreeSet::new();

    for round in 0..rounds {
        let t = Js::on(f.label, store.start()).await;
        let ctx = format!("{} round {round} (JS_CRASH_SEED={seed})", f.label);
        if round == 0 {
            setup(&t).await;
        } else {
            verify(&t, &acked, &ctx).await;
        }
        let kill_after = rng.random_range(50..=2000usize);
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let publisher = tokio::spawn(publish_burst(
            t.js.clone(),
            round,
            seen.clone(),
            stop.clone(),
        ));
        let consumer = tokio::spawn(consume(t.js.clone(), seen.clone(), stop.clone()));

        // Wait for the kill point, then SIGKILL (dropping the server).
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.published_count.load(Ordering::SeqCst) < kill_after {
            assert!(
                Instant::now() < deadline,
                "{ctx}: only {} acks before the deadline",
                seen.published_count.load(Ordering::SeqCst)
            );
            if publisher.is_finished() {
                let r = publisher.await;
                panic!("{ctx}: publisher ended early: {r:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(t);
        stop.store(true, Ordering::SeqCst);
        publisher.abort();
        consumer.abort();
        let _ = publisher.await;
        let _ = consumer.await;

        let published = seen.published.lock().unwrap().clone();
        // In order: sequences grow with publish order.
        for w in published.windows(2) {
            assert!(w[0].0 < w[1].0, "{ctx}: acks out of order: {w:?}");
        }
        for (seq, subject, payload) in published {
            let before = acked.insert(seq, (subject, payload));
            assert!(before.is_none(), "{ctx}: sequence {seq} acknowledged twice");
        }
        consumed.extend(seen.consumed.lock().unwrap().iter().copied());
        eprintln!(
            "{ctx}: killed after {kill_after} acks; {} acknowledged in total, {} consumed",
            acked.len(),
            consumed.len()
        );
    }

    // Final restart: all there, and the consumer delivers the rest.
    let t = Js::on(f.label, store.start()).await;
    let ctx = format!("{} final (JS_CRASH_SEED={seed})", f.label);
    verify(&t, &acked, &ctx).await;
    let c = consumer_handle(&t.js).await;
    let mut delivered = consumed.clone();
    let end = Instant::now() + Duration::from_secs(60);
    while !acked.keys().all(|s| delivered.contains(s)) {
        assert!(
            Instant::now() < end,
            "{ctx}: consumer stalled; {} acknowledged messages never delivered, e.g. {:?}",
            acked.keys().filter(|s| !delivered.contains(s)).count(),
            acked.keys().find(|s| !delivered.contains(s))
        );
        let batch = c
            .batch()
            .max_messages(500)
            .expires(Duration::from_secs(3))
            .messages()
            .await
            .expect("pull request");
        let msgs: Vec<jetstream::Message> = timeout(
            Duration::from_secs(20),
            batch
                .take_while(|m| std::future::ready(m.is_ok()))
                .map(|m| m.unwrap())
                .collect(),
        )
        .await
        .expect("pull batch ends");
        for m in &msgs {
            let seq = m.info().expect("ack subject").stream_sequence;
            delivered.insert(seq);
            m.ack_with(AckKind::Ack).await.expect("ack");
        }
    }
}

async fn setup(t: &Js) {
    t.js.create_stream(stream::Config {
        name: "CRASH".into(),
        subjects: vec!["crash.>".into()],
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{}: create stream: {e}", t.label));
    t.js.create_consumer_on_stream(
        pull::Config {
            durable_name: Some("c".into()),
            ack_policy: AckPolicy::Explicit,
            // Deliveries cut short by a crash come back soon.
            ack_wait: Duration::from_secs(2),
            max_ack_pending: 10_000,
            ..Default::default()
        },
        "CRASH",
    )
    .await
    .unwrap_or_else(|e| panic!("{}: create consumer: {e}", t.label));
}

async fn consumer_handle(js: &jetstream::Context) -> PullConsumer {
    js.get_consumer_from_stream("c", "CRASH")
        .await
        .expect("the durable consumer survives the crash")
}

/// Publish `crash.<round>.<i % 16>` with WINDOW acks outstanding, recording
/// each ack in order, until stopped (or the server dies under us).
async fn publish_burst(js: jetstream::Context, round: u64, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    let mut inflight = VecDeque::new();
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        while inflight.len() < WINDOW {
            let subject = format!("crash.{round}.{}", i % 16);
            let payload = format!("r{round}-m{i}-{}", "x".repeat((i % 50) as usize));
            let Ok(ack) = js.publish(subject.clone(), payload.clone().into()).await else {
                return;
            };
            inflight.push_back((subject, payload, ack));
            i += 1;
        }
        let Some((subject, payload, ack)) = inflight.pop_front() else {
            continue;
        };
        match ack.await {
            Ok(a) => {
                seen.published
                    .lock()
                    .unwrap()
                    .push((a.sequence, subject, payload));
                seen.published_count.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => return,
        }
    }
}

/// Pull and acknowledge (with confirmation) while the publisher runs.
async fn consume(js: jetstream::Context, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    let Ok(c) = js
        .get_consumer_from_stream::<pull::Config, _, _>("c", "CRASH")
        .await
    else {
        return;
    };
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut batch) = c
            .batch()
            .max_messages(100)
            .expires(Duration::from_millis(500))
            .messages()
            .await
        else {
            return;
        };
        while let Some(Ok(m)) = batch.next().await {
            let Ok(info) = m.info() else { return };
            // Delivered counts, not the confirmation: the crash may land
            // after the server applied the ack but before its reply arrived,
            // and then the message is rightly never delivered again.
            seen.consumed.lock().unwrap().insert(info.stream_sequence);
            if m.double_ack().await.is_err() {
                return;
            }
        }
    }
}

/// Read the whole stream (ordered consumer) and check every acknowledged
/// message is there, unchanged, at its sequence.
async fn verify(t: &Js, acked: &BTreeMap<u64, (String, String)>, ctx: &str) {
    let mut s =
        t.js.get_stream("CRASH")
            .await
            .unwrap_or_else(|e| panic!("{ctx}: stream lost: {e}\n{}", t.server.log_excerpt()));
    let info = s.info().await.expect("stream info").clone();
    if let Some((&last, _)) = acked.last_key_value() {
        assert!(
            info.state.last_sequence >= last,
            "{ctx}: last_seq {} < last acknowledged {last}",
            info.state.last_sequence
        );
    }
    let mut stored: BTreeMap<u64, (String, String)> = BTreeMap::new();
    if info.state.messages > 0 {
        let oc = s
            .create_consumer(pull::OrderedConfig::default())
            .await
            .expect("ordered consumer");
        let mut msgs = oc.messages().await.expect("ordered messages");
        let mut last_seen = 0;
        while last_seen < info.state.last_sequence {
            let m = timeout(WAIT, msgs.next())
                .await
                .unwrap_or_else(|_| panic!("{ctx}: stream read stalled after seq {last_seen}"))
                .expect("ordered stream open")
                .expect("ordered message");
            let seq = m.info().expect("ack subject").stream_sequence;
            assert!(seq > last_seen, "{ctx}: {seq} after {last_seen}");
            last_seen = seq;
            stored.insert(
                seq,
                (
                    m.subject.to_string(),
                    String::from_utf8_lossy(&m.payload).into_owned(),
                ),
            );
        }
    }
    let mut missing = Vec::new();
    for (seq, want) in acked {
        match stored.get(seq) {
            Some(got) if got == want => {}
            Some(got) => panic!("{ctx}: seq {seq} is {got:?}, acknowledged as {want:?}"),
            None => missing.push(*seq),
        }
    }
    assert!(
        missing.is_empty(),
        "{ctx}: {} acknowledged messages lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    consumer_handle(&t.js).await;
}

#[test]
fn rand_is_seedable() {
    // Guards the replay promise of JS_CRASH_SEED.
    let a: u64 = rand::rngs::StdRng::seed_from_u64(7).random();
    let b: u64 = rand::rngs::StdRng::seed_from_u64(7).random();
    assert_eq!(a, b);
}
