//! JetStream consumers through async-nats, against nats-server and (see
//! `common/js.rs`, the flavor switch) tribune-broker: pull fetch, batch
//! with expires, no_wait, the ack policies, nak and ack_wait redelivery,
//! max_deliver, every deliver policy, filter subjects, push consumers with
//! heartbeats and flow control, ordered consumers, interest and workqueue
//! retention, and durable consumer state across a restart.
//!
//! Waits are bounded by generous deadlines; nothing asserts a duration.

mod common;

use std::time::Duration;

use async_nats::jetstream::consumer::{
    self, pull, push, AckPolicy, DeliverPolicy, PullConsumer, ReplayPolicy,
};
use async_nats::jetstream::stream::{self, RetentionPolicy};
use async_nats::jetstream::{self, AckKind};
use common::js::{eventually, for_each_flavor, Durable, Flavor, Js, WAIT};
use futures::StreamExt;
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

async fn stream(js: &jetstream::Context, name: &str, subjects: &[&str]) -> stream::Stream {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("create stream {name}: {e}"))
}

async fn publish(js: &jetstream::Context, subject: &str, payload: &str) -> u64 {
    js.publish(subject.to_string(), payload.to_string().into())
        .await
        .unwrap_or_else(|e| panic!("publish {subject}: {e}"))
        .await
        .unwrap_or_else(|e| panic!("ack for {subject}: {e}"))
        .sequence
}

async fn pull_consumer(s: &stream::Stream, cfg: pull::Config) -> PullConsumer {
    s.create_consumer(cfg.clone())
        .await
        .unwrap_or_else(|e| panic!("create consumer {cfg:?}: {e}"))
}

/// Fetch (no_wait) up to `n` messages.
async fn fetch(c: &PullConsumer, n: usize) -> Vec<jetstream::Message> {
    let batch = c
        .fetch()
        .max_messages(n)
        .messages()
        .await
        .expect("fetch request");
    collect(batch).await
}

/// A pull request that waits up to `expires` for `n` messages.
async fn batch(c: &PullConsumer, n: usize, expires: Duration) -> Vec<jetstream::Message> {
    let batch = c
        .batch()
        .max_messages(n)
        .expires(expires)
        .messages()
        .await
        .expect("batch request");
    collect(batch).await
}

async fn collect(
    mut b: impl futures::Stream<Item = Result<jetstream::Message, async_nats::Error>> + Unpin,
) -> Vec<jetstream::Message> {
    let mut out = Vec::new();
    loop {
        match timeout(WAIT + Duration::from_secs(10), b.next()).await {
            Ok(Some(Ok(m))) => out.push(m),
            Ok(Some(Err(e))) => panic!("pull batch error: {e}"),
            Ok(None) => return out,
            Err(_) => panic!("pull batch did not end"),
        }
    }
}

fn seqs(msgs: &[jetstream::Message]) -> Vec<u64> {
    msgs.iter()
        .map(|m| m.info().expect("ack subject parses").stream_sequence)
        .collect()
}

fn payloads(msgs: &[jetstream::Message]) -> Vec<String> {
    msgs.iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect()
}

/// Ack with confirmation (`double_ack`: the ack is a request and the server
/// answers once it has applied it). nats-server applies plain acks
/// asynchronously, so even a round trip on the same connection does not
/// prove a fire-and-forget ack has taken effect.
async fn ack_all(msgs: &[jetstream::Message]) {
    for m in msgs {
        sure(m, AckKind::Ack).await;
    }
}

async fn sure(m: &jetstream::Message, kind: AckKind) {
    timeout(WAIT, m.double_ack_with(kind))
        .await
        .expect("ack confirmation in time")
        .expect("ack confirmed");
}

fn durable(name: &str) -> pull::Config {
    pull::Config {
        durable_name: Some(name.into()),
        ack_policy: AckPolicy::Explicit,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_fetch_batches_and_no_wait() {
    for_each_flavor(BIN, pull_fetch_batches_and_no_wait_on).await;
}

async fn pull_fetch_batches_and_no_wait_on(f: Flavor) {
    let t = Js::start(&f).await;
    let s = stream(&t.js, "ORDERS", &["orders.>"]).await;
    for i in 1..=10 {
        publish(&t.js, &format!("orders.{i}"), &format!("o{i}")).await;
    }
    let c = pull_consumer(&s, durable("worker")).await;

    let first = fetch(&c, 4).await;
    assert_eq!(seqs(&first), vec![1, 2, 3, 4], "{}", f.label);
    assert_eq!(payloads(&first), vec!["o1", "o2", "o3", "o4"]);
    let info = first[0].info().unwrap();
    assert_eq!(
        (info.stream, info.consumer, info.delivered, info.pending),
        ("ORDERS", "worker", 1, 9)
    );
    assert_eq!(first[3].subject.as_str(), "orders.4");
    ack_all(&first).await;

    let rest = fetch(&c, 100).await;
    assert_eq!(seqs(&rest), (5..=10).collect::<Vec<_>>());
    ack_all(&rest).await;

    // Nothing left: no_wait ends at once with zero messages (404 status).
    assert!(fetch(&c, 10).await.is_empty());
    // A waiting request with expires ends empty when it expires (408 status).
    assert!(batch(&c, 10, Duration::from_millis(500)).await.is_empty());

    // A waiting request is served by a publish that arrives while it waits.
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move { batch(&c, 2, Duration::from_secs(10)).await })
    };
    eventually("the pull request waits", || async {
        c.get_info().await.map(|i| i.num_waiting).unwrap_or(0) == 1
    })
    .await;
    publish(&t.js, "orders.11", "o11").await;
    publish(&t.js, "orders.12", "o12").await;
    let late = waiter.await.expect("waiter");
    assert_eq!(seqs(&late), vec![11, 12]);
    for m in &late {
        m.ack().await.expect("ack");
    }
    eventually("plain acks applied", || async {
        c.get_info().await.map(|i| i.num_ack_pending).unwrap_or(9) == 0
    })
    .await;

    let info = c.get_info().await.expect("consumer info");
    assert_eq!(info.delivered.stream_sequence, 12);
    assert_eq!(info.ack_floor.stream_sequence, 12);
    assert_eq!(info.ack_floor.consumer_sequence, 12);
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0));
}

/// A pull request whose client stopped listening is dropped, not served:
/// messages published afterwards go to the next client that pulls, not to
/// a dead inbox to come back after `ack_wait`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_request_without_interest_is_dropped() {
    for_each_flavor(BIN, pull_request_without_interest_is_dropped_on).await;
}

async fn pull_request_without_interest_is_dropped_on(f: Flavor) {
    let t = Js::start(&f).await;
    let s = stream(&t.js, "GONE", &["gone.>"]).await;
    let c = pull_consumer(
        &s,
        pull::Config {
            ack_wait: Duration::from_secs(300),
            ..durable("worker")
        },
    )
    .await;

    // Another client asks for a batch with a long expiry, then stops
    // listening for it.
    let gone = common::js::connect(&t.server).await;
    let inbox = gone.new_inbox();
    let mut sub = gone.subscribe(inbox.clone()).await.expect("subscribe");
    gone.publish_with_reply(
        "$JS.API.CONSUMER.MSG.NEXT.GONE.worker",
        inbox,
        r#"{"batch":5,"expires":60000000000}"#.into(),
    )
    .await
    .expect("pull request");
    eventually("the pull request waits", || async {
        c.get_info().await.map(|i| i.num_waiting).unwrap_or(0) == 1
    })
    .await;
    sub.unsubscribe().await.expect("unsubscribe");
    // A round trip on that connection: the server has the UNSUB after it.
    gone.request("$JS.API.INFO", "".into())
        .await
        .expect("round trip");

    for i in 1..=3 {
        publish(&t.js, &format!("gone.{i}"), &format!("g{i}")).await;
    }
    let got = batch(&c, 3, Duration::from_secs(10)).await;
    assert_eq!(seqs(&got), vec![1, 2, 3], "{}", f.label);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_policies_explicit_all_none() {
    for_each_flavor(BIN, ack_policies_on).await;
}

async fn ack_policies_on(f: Flavor) {
    let t = Js::start(&f).await;
    let s = stream(&t.js, "EV", &["ev.*"]).await;
    for i in 1..=5 {
        publish(&t.js, &format!("ev.{i}"), "x").await;
    }

    // explicit: acking 2 and 4 leaves 1, 3, 5 pending; the floor stays at 0
    // until 1 is acked.
    let ex = pull_consumer(&s, durable("explicit")).await;
    let msgs = fetch(&ex, 5).await;
    sure(&msgs[1], AckKind::Ack).await;
    sure(&msgs[3], AckKind::Ack).await;
    let info = ex.get_info().await.unwrap();
    assert_eq!(info.num_ack_pending, 3, "{}", f.label);
    assert_eq!(info.ack_floor.stream_sequence, 0);
    sure(&msgs[0], AckKind::Ack).await;
    let info = ex.get_info().await.unwrap();
    assert_eq!(info.ack_floor.stream_sequence, 2);
    assert_eq!(info.num_ack_pending, 2);

    // all: acking 3 acks 1..=3.
    let all = pull_consumer(
        &s,
        pull::Config {
            durable_name: Some("all".into()),
            ack_policy: AckPolicy::All,
            ..Default::default()
        },
    )
    .await;
    let msgs = fetch(&all, 5).await;
    sure(&msgs[2], AckKind::Ack).await;
    let info = all.get_info().await.unwrap();
    assert_eq!(info.ack_floor.stream_sequence, 3);
    assert_eq!(info.num_ack_pending, 2);

    // none: delivered means done.
    let none = pull_consumer(
        &s,
        pull::Config {
            durable_name: Some("none".into()),
            ack_policy: AckPolicy::None,
            ..Default::default()
        },
    )
    .await;
    let msgs = fetch(&none, 5).await;
    assert_eq!(seqs(&msgs), vec![1, 2, 3, 4, 5]);
    let info = none.get_info().await.unwrap();
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.ack_floor.stream_sequence, 5);
    assert!(fetch(&none, 5).await.is_empty());

    // double_ack waits for the server's confirmation of the ack.
    let dbl = pull_consumer(&s, durable("double")).await;
    let msgs = fetch(&dbl, 1).await;
    timeout(WAIT, msgs[0].double_ack())
        .await
        .expect("double ack answered")
        .expect("double ack ok");
    assert_eq!(dbl.get_info().await.unwrap().ack_floor.stream_sequence, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nak_and_term() {
    for_each_flavor(BIN, nak_and_term_on).await;
}

async fn nak_and_term_on(f: Flavor) {
    let t = Js::start(&f).await;
    let s = stream(&t.js, "JOBS", &["jobs"]).await;
    publish(&t.js, "jobs", "a").await;
    publish(&t.js, "jobs", "b").await;
    let c = pull_consumer(&s, durable("w")).await;

    let m = fetch(&c, 1).await;
    assert_eq!(seqs(&m), vec![1], "{}", f.label);
    sure(&m[0], AckKind::Nak(None)).await;
    // A nak'd message comes back at once, ahead of newer ones.
    let again = batch(&c, 1, Duration::from_secs(5)).await;
    assert_eq!(seqs(&again), vec![1]);
    let info = again[0].info().unwrap();
    assert_eq!((info.delivered, info.consumer_sequence), (2, 2));

    // term: never redelivered, and it counts as done for the ack floor.
    sure(&again[0], AckKind::Term).await;
    let next = batch(&c, 1, Duration::from_secs(5)).await;
    assert_eq!(seqs(&next), vec![2]);
    // in progress: extends ack_wait, message stays pending.
    sure(&next[0], AckKind::Progress).await;
    let info = c.get_info().await.unwrap();
    assert_eq!(info.num_ack_pending, 1);
    // A plain (fire-and-forget) ack takes effect eventually.
    next[0].ack().await.unwrap();
    eventually("plain ack applied", || async {
        c.get_info().await.map(|i| i.num_ack_pending).unwrap_or(9) == 0
    })
    .await;
    let info = c.get_info().await.unwrap();
    assert_eq!(
        (info.num_ack_pending, info.ack_floor.stream_sequence),
        (0, 2)
    );
    // Nak with a delay is accepted (redelivered later, not now).
    publish(&t.js, "jobs", "c").await;
    let m = fetch(&c, 1).await;
    sure(&m[0], AckKind::Nak(Some(Duration::from_secs(30)))).await;
    assert!(fetch(&c, 1).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_wait_redelivery_and_max_deliver() {
    for_each_flavor(BIN, ack_wait_on).await;
}

async fn ack_wait_on(f: Flavor) {
    let t = Js::start(&f).await;
    let s = stream(&t.js, "RD", &["rd"]).await;
    publish(&t.js, "rd", "poison").await;
    let c = pull_consumer(
        &s,
        pull::Config {
            durable_name: Some("rd".into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(1),
            max_deliver: 2,
            ..Default::default()
        },
    )
    .await;
    let mut advisories =
        t.nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.RD.rd")
            .await
            .unwrap();
    common::barrier(&t.nc).await;

    let first = fetch(&c, 1).await;
    assert_eq!(first[0].info().unwrap().delivered, 1, "{}", f.label);
    // Not acked: after ack_wait the same message comes again.
    let second = batch(&c, 1, Duration::from_secs(10)).await;
    assert_eq!(seqs(&second), vec![1]);
    assert_eq!(second[0].info().unwrap().delivered, 2);
    let info = c.get_info().await.unwrap();
    assert_eq!(info.num_redelivered, 1);

    // max_deliver reached: no third delivery, however long we wait; the
    // advisory goes out when the server would have redelivered (nats-server
    // checks while a pull request is waiting).
    assert!(batch(&c, 1, Duration::from_secs(3)).await.is_empty());
    let adv = timeout(WAIT, advisories.next())
        .await
        .expect("max deliveries advisory")
        .unwrap();
    let adv: serde_json::Value = serde_json::from_slice(&adv.payload).unwrap();
    assert_eq!(
        adv["type"], "io.nats.jetstream.advisory.v1.max_deliver",
        "{adv}"
    );
    assert_eq!(
        (adv["stream_seq"].as_u64(), adv["deliveries"].as_u64()),
        (Some(1), Some(2))
    );
    // nats-server 2.15 no longer counts a message that exhausted
    // max_deliver as pending an ack.
    let info = c.get_info().await.unwrap();
    assert_eq!(
        (info.num_ack_pending, info.num_pending),
        (0, 0),
        "{}",
        f.label
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_policies() {
    for_each_flavor(BIN, deliver_policies_on).await;
}

async fn deliver_policies_on(f: Flavor) {
    let t = Js::start(&f).await;
    let s = stream(&t.js, "DP", &["dp.>"]).await;
    for subj in ["dp.a", "dp.b", "dp.a", "dp.b", "dp.a"] {
        publish(&t.js, subj, subj).await;
    }
    let third = {
        let c = pull_consumer(&s, durable("probe")).await;
        let m = fetch(&c, 3).await;
        m[2].info().unwrap().published
    };

    let cases: Vec<(&str, DeliverPolicy, Vec<u64>)> = vec![
        ("all", DeliverPolicy::All, vec![1, 2, 3, 4, 5]),
        ("last", DeliverPolicy::Last, vec![5]),
        (
            "by_start_sequence",
            DeliverPolicy::ByStartSequence { start_sequence: 3 },
            vec![3, 4, 5],
        ),
        (
            "by_start_time",
            DeliverPolicy::ByStartTime { start_time: third },
            vec![3, 4, 5],
        ),
        (
            "last_per_subject",
            DeliverPolicy::LastPerSubject,
            vec![4, 5],
        ),
        ("new", DeliverPolicy::New, vec![]),
    ];
    for (name, policy, want) in cases {
        // nats-server refuses last_per_subject without a filter (10094).
        let filter = if name == "last_per_subject" {
            "dp.>"
        } else {
            ""
        };
        let c = pull_consumer(
            &s,
            pull::Config {
                durable_name: Some(name.into()),
                deliver_policy: policy,
                ack_policy: AckPolicy::Explicit,
                filter_subject: filter.into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(seqs(&fetch(&c, 10).await), want, "{} {name}", f.label);
    }
    // "new" sees what is published after it was created. A waiting pull,
    // not a no-wait fetch: the stored message reaches the consumer after
    // the publish's ack, and nats-server too can answer a no-wait fetch
    // in between with "no messages".
    let new = s.get_consumer::<pull::Config>("new").await.unwrap();
    publish(&t.js, "dp.c", "late").await;
    assert_eq!(
        seqs(&batch(&new, 1, Duration::from_secs(10)).await),
        vec![6]
    );
    assert!(fetch(&new, 10).await.is_empty(), "{}", f.label);
    // last_per_subject with a filter: the last of each matching subject.
    let lps = pull_consumer(
        &s,
        pull::Config {
            durable_name: Some("lps_a".into()),
            deliver_policy: DeliverPolicy::LastPerSubject,
            filter_subject: "dp.a".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(seqs(&fetch(&lps, 10).await), vec![5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_subjects_and_replay() {
    for_each_flavor(BIN, filter_subjects_on).await;
}

async fn filter_subjects_on(f: Flavor) {
    let t = Js::start(&f).await;
    let s = stream(&t.js, "FS", &["fs.>"]).await;
    for subj in ["fs.a.1", "fs.b.1", "fs.a.2", "fs.b.2", "fs.c.1"] {
        publish(&t.js, subj, subj).await;
    }
    let one = pull_consumer(
        &s,
        pull::Config {
            durable_name: Some("one".into()),
            filter_subject: "fs.a.*".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(one.cached_info().num_pending, 2, "{}", f.label);
    assert_eq!(seqs(&fetch(&one, 10).await), vec![1, 3]);

    let many = pull_consumer(
        &s,
        pull::Config {
            durable_name: Some("many".into()),
            filter_subjects: vec!["fs.a.1".into(), "fs.b.>".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(many.cached_info().num_pending, 3);
    let got = fetch(&many, 10).await;
    assert_eq!(seqs(&got), vec![1, 2, 4]);
    let subjects: Vec<&str> = got.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(subjects, vec!["fs.a.1", "fs.b.1", "fs.b.2"]);

    // replay original: same messages, same order (pacing is not asserted).
    let orig = pull_consumer(
        &s,
        pull::Config {
            durable_name: Some("orig".into()),
            replay_policy: ReplayPolicy::Original,
            ..Default::default()
        },
    )
    .await;
    let got = batch(&orig, 5, Duration::from_secs(10)).await;
    assert_eq!(seqs(&got), vec![1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_consumer_with_heartbeats_and_flow_control() {
    for_each_flavor(BIN, push_on).await;
}

async fn push_on(f: Flavor) {
    let t = Js::start(&f).await;
    let s = stream(&t.js, "PUSH", &["push.>"]).await;
    for i in 1..=3 {
        publish(&t.js, &format!("push.{i}"), &format!("p{i}")).await;
    }
    // Watch the deliver subject directly to see the status messages too.
    let mut raw = t.nc.subscribe("deliver.push").await.unwrap();
    common::barrier(&t.nc).await;
    let c = s
        .create_consumer(push::Config {
            durable_name: Some("pusher".into()),
            deliver_subject: "deliver.push".into(),
            ack_policy: AckPolicy::Explicit,
            idle_heartbeat: Duration::from_millis(500),
            flow_control: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut heartbeat = None;
    while got.len() < 3 || heartbeat.is_none() {
        let m = timeout(WAIT, raw.next())
            .await
            .unwrap_or_else(|_| panic!("{}: push delivery or heartbeat", f.label))
            .unwrap();
        match m.status {
            None => {
                assert!(m.reply.is_some(), "data message has an ack reply");
                got.push(String::from_utf8_lossy(&m.payload).into_owned());
                t.nc.publish(m.reply.clone().unwrap(), "+ACK".into())
                    .await
                    .unwrap();
            }
            Some(status) => {
                assert_eq!(status.as_u16(), 100, "control message {m:?}");
                let desc = m.description.clone().unwrap_or_default();
                if desc == "Idle Heartbeat" {
                    let h = m.headers.clone().expect("heartbeat headers");
                    heartbeat = Some(h);
                } else {
                    // Flow control request: answer it like a client does.
                    assert_eq!(desc, "FlowControl Request", "{m:?}");
                    if let Some(r) = &m.reply {
                        t.nc.publish(r.clone(), "".into()).await.unwrap();
                    }
                }
            }
        }
    }
    assert_eq!(got, vec!["p1", "p2", "p3"]);
    let hb = heartbeat.unwrap();
    assert_eq!(
        hb.get("Nats-Last-Consumer").map(|v| v.as_str()),
        Some("3"),
        "{hb:?}"
    );
    assert_eq!(hb.get("Nats-Last-Stream").map(|v| v.as_str()), Some("3"));
    drop(raw);
    eventually("push acks applied", || async {
        c.get_info()
            .await
            .map(|i| i.ack_floor.stream_sequence)
            .unwrap_or(0)
            == 3
    })
    .await;
    let info = c.get_info().await.unwrap();
    assert_eq!(info.config.deliver_subject.as_deref(), Some("deliver.push"));

    // The async-nats push consumer API: messages keep flowing after creation.
    let c2 = s
        .create_consumer(push::Config {
            deliver_subject: t.nc.new_inbox(),
            ack_policy: AckPolicy::Explicit,
            filter_subject: "push.2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = c2.messages().await.unwrap();
    let m = timeout(WAIT, msgs.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m.payload.as_ref(), b"p2");
    m.ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_consumers_pull_and_push() {
    for_each_flavor(BIN, ordered_on).await;
}

async fn ordered_on(f: Flavor) {
    let t = Js::start(&f).await;
    let s = stream(&t.js, "ORD", &["ord.>"]).await;
    for i in 1..=5 {
        publish(&t.js, &format!("ord.{i}"), &i.to_string()).await;
    }

    let pull_ordered = s
        .create_consumer(pull::OrderedConfig {
            filter_subject: "ord.>".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = pull_ordered.messages().await.unwrap();
    let mut got = Vec::new();
    while got.len() < 5 {
        let m = timeout(WAIT, msgs.next())
            .await
            .unwrap_or_else(|_| panic!("{}: ordered pull", f.label))
            .unwrap()
            .unwrap();
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    // The consumer is deleted under it: it must recreate and go on in order.
    let names: Vec<String> = s
        .consumer_names()
        .map(|n| n.expect("consumer name"))
        .collect()
        .await;
    assert_eq!(names.len(), 1, "{names:?}");
    s.delete_consumer(&names[0]).await.unwrap();
    for i in 6..=8 {
        publish(&t.js, &format!("ord.{i}"), &i.to_string()).await;
    }
    while got.len() < 8 {
        let m = timeout(WAIT + WAIT, msgs.next())
            .await
            .unwrap_or_else(|_| panic!("{}: ordered pull after delete", f.label))
            .unwrap()
            .unwrap();
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    assert_eq!(got, (1..=8).map(|i| i.to_string()).collect::<Vec<_>>());
    drop(msgs);

    let push_ordered = s
        .create_consumer(push::OrderedConfig {
            deliver_subject: t.nc.new_inbox(),
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: 4 },
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = push_ordered.messages().await.unwrap();
    let mut got = Vec::new();
    while got.len() < 5 {
        let m = timeout(WAIT, msgs.next())
            .await
            .unwrap_or_else(|_| panic!("{}: ordered push", f.label))
            .unwrap()
            .unwrap();
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    assert_eq!(got, vec!["4", "5", "6", "7", "8"]);
    let info = s
        .consumer_info(consumer_name_of_push(&s).await)
        .await
        .unwrap();
    assert!(info.config.flow_control, "ordered push uses flow control");
    assert_eq!(info.config.ack_policy, AckPolicy::None);
    assert_eq!(info.config.max_deliver, 1);
    assert!(info.config.memory_storage);
}

async fn consumer_name_of_push(s: &stream::Stream) -> String {
    let infos: Vec<consumer::Info> = s
        .consumers()
        .map(|i| i.expect("consumer info"))
        .collect()
        .await;
    infos
        .into_iter()
        .find(|i| i.config.deliver_subject.is_some())
        .expect("a push consumer")
        .name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interest_and_workqueue_retention() {
    for_each_flavor(BIN, retention_on).await;
}

async fn retention_on(f: Flavor) {
    let t = Js::start(&f).await;

    // interest: without consumers nothing is kept; with two, a message goes
    // once both have acked it.
    let s =
        t.js.create_stream(stream::Config {
            name: "INT".into(),
            subjects: vec!["int.>".into()],
            retention: RetentionPolicy::Interest,
            ..Default::default()
        })
        .await
        .unwrap();
    publish(&t.js, "int.x", "unseen").await;
    let mut s = s;
    assert_eq!(s.info().await.unwrap().state.messages, 0, "{}", f.label);
    let a = pull_consumer(&s, durable("a")).await;
    let b = pull_consumer(&s, durable("b")).await;
    for i in 0..3 {
        publish(&t.js, "int.x", &i.to_string()).await;
    }
    assert_eq!(s.info().await.unwrap().state.messages, 3);
    ack_all(&fetch(&a, 10).await).await;
    assert_eq!(s.info().await.unwrap().state.messages, 3, "b has not acked");
    ack_all(&fetch(&b, 10).await).await;
    eventually("interest stream empties once all acked", || async {
        s.get_info().await.map(|i| i.state.messages).unwrap_or(99) == 0
    })
    .await;

    // workqueue: one consumer per subject; acked messages go away.
    let wq =
        t.js.create_stream(stream::Config {
            name: "WQ".into(),
            subjects: vec!["wq.>".into()],
            retention: RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await
        .unwrap();
    let w = pull_consumer(&wq, durable("w")).await;
    let second = wq.create_consumer(durable("w2")).await;
    let err = second.expect_err("second unfiltered consumer on a workqueue");
    assert!(
        err.to_string().contains("10099"),
        "{}: unexpected error {err}",
        f.label
    );
    // Overlapping filtered consumers are refused too; disjoint ones are fine.
    let ok = wq
        .create_consumer(pull::Config {
            durable_name: Some("w3".into()),
            filter_subject: "wq.other".into(),
            ..Default::default()
        })
        .await;
    assert!(ok.is_err(), "w (unfiltered) already covers wq.other");
    for i in 0..4 {
        publish(&t.js, "wq.job", &i.to_string()).await;
    }
    let got = fetch(&w, 2).await;
    ack_all(&got).await;
    eventually("acked work items are removed", || async {
        wq.get_info().await.map(|i| i.state.messages).unwrap_or(99) == 2
    })
    .await;
    let info = wq.get_info().await.unwrap();
    assert_eq!(info.state.first_sequence, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_crud() {
    for_each_flavor(BIN, consumer_crud_on).await;
}

async fn consumer_crud_on(f: Flavor) {
    let t = Js::start(&f).await;
    let s = stream(&t.js, "CC", &["cc.>"]).await;
    pull_consumer(&s, durable("d1")).await;
    pull_consumer(&s, durable("d2")).await;
    let eph = pull_consumer(
        &s,
        pull::Config {
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        },
    )
    .await;
    let eph_name = eph.cached_info().name.clone();
    assert!(!eph_name.is_empty(), "{}: ephemeral gets a name", f.label);
    assert!(eph.cached_info().config.durable_name.is_none());

    let mut names: Vec<String> = s.consumer_names().map(|n| n.unwrap()).collect().await;
    names.sort();
    let mut want = vec!["d1".to_string(), "d2".to_string(), eph_name.clone()];
    want.sort();
    assert_eq!(names, want);
    let infos: Vec<consumer::Info> = s.consumers().map(|i| i.unwrap()).collect().await;
    assert_eq!(infos.len(), 3);
    assert!(infos.iter().all(|i| i.stream_name == "CC"));

    // Re-creating with the same config is idempotent; a different one fails.
    pull_consumer(&s, durable("d1")).await;
    let changed = s
        .create_consumer(pull::Config {
            durable_name: Some("d1".into()),
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await;
    assert!(
        changed.is_err(),
        "changing ack policy of an existing durable"
    );

    // update: a mutable field changes.
    let updated = s
        .update_consumer(pull::Config {
            durable_name: Some("d2".into()),
            ack_policy: AckPolicy::Explicit,
            description: Some("updated".into()),
            max_deliver: 7,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        updated.cached_info().config.description.as_deref(),
        Some("updated")
    );

    assert!(s.delete_consumer("d1").await.unwrap().success);
    let gone = s.consumer_info("d1").await;
    assert!(gone.is_err());
    let err = gone.unwrap_err().to_string();
    assert!(err.contains("not found"), "{err}");
    let mut s = s;
    assert_eq!(s.info().await.unwrap().state.consumer_count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_consumer_survives_restart() {
    for_each_flavor(BIN, durable_restart_on).await;
}

async fn durable_restart_on(f: Flavor) {
    let store = Durable::new(&f.bin);
    {
        let mut t = Js::on(f.label, store.start()).await;
        let s = stream(&t.js, "KEEP", &["keep.>"]).await;
        for i in 1..=10 {
            publish(&t.js, &format!("keep.{i}"), &i.to_string()).await;
        }
        // Short ack_wait: 5 and 6 stay pending across the restart and come
        // back once it expires.
        let c = pull_consumer(
            &s,
            pull::Config {
                ack_wait: Duration::from_secs(2),
                ..durable("d")
            },
        )
        .await;
        let got = fetch(&c, 6).await;
        // 1..=4 acked, 5 and 6 delivered but not acked.
        ack_all(&got[..4]).await;
        let info = c.get_info().await.unwrap();
        assert_eq!(info.ack_floor.stream_sequence, 4, "{}", f.label);
        // A graceful restart. (After SIGKILL nats-server may come back with
        // an older ack floor: it writes consumer state lazily. That case,
        // where only redelivery is allowed, is jetstream_crash.rs.)
        assert!(t.server.terminate(), "{}: clean shutdown", f.label);
    }
    let t = Js::on(f.label, store.start()).await;
    let mut s = t.js.get_stream("KEEP").await.unwrap();
    let st = s.info().await.unwrap().state.clone();
    assert_eq!(
        (st.messages, st.first_sequence, st.last_sequence),
        (10, 1, 10)
    );
    let c: PullConsumer = s.get_consumer("d").await.unwrap();
    let info = c.cached_info();
    assert_eq!(info.ack_floor.stream_sequence, 4, "{}", f.label);
    assert_eq!(info.config.durable_name.as_deref(), Some("d"));
    // Resumes without loss: 7..=10, and 5 and 6 again after ack_wait.
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let got = batch(&c, 10, Duration::from_secs(5)).await;
        assert!(
            !got.is_empty(),
            "{}: consumer stalled after {seen:?}",
            f.label
        );
        seen.extend(seqs(&got));
        ack_all(&got).await;
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, vec![5, 6, 7, 8, 9, 10]);
}
