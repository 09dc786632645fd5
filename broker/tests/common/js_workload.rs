//! Load that keeps running while a chaos test breaks the cluster: several
//! concurrent publishers, each sending numbered messages with a
//! `Nats-Msg-Id` and retrying each until it is acknowledged, and a durable
//! pull consumer that fetches and acknowledges everything.
//!
//! Both record what the servers confirmed (publish acks, confirmed
//! consumer acks) so the test can check afterwards that nothing confirmed
//! was lost. Their tasks run on the caller's clients; a test moves them to
//! other clients between rounds by stopping and starting them again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::js_cluster::{JsCluster, JS_DEADLINE, REQUEST_TIMEOUT};
use super::js_publish::publish;

/// A pause between one publisher's messages, so a round stays at a few
/// hundred messages and the machine has time for the servers.
const PUBLISH_PACE: Duration = Duration::from_millis(20);

/// One acknowledged publish.
#[derive(Clone, Debug)]
pub struct Acked {
    pub publisher: usize,
    /// The publisher's message number.
    pub k: u64,
    pub seq: u64,
    pub duplicate: bool,
}

/// A message as a publisher sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub subject: String,
    pub msg_id: String,
    pub payload: Bytes,
}

#[derive(Default)]
struct PubState {
    /// The next message number (numbers are never reused, also not those
    /// of a message abandoned when its task was aborted).
    next_k: u64,
    acked: Vec<Acked>,
    /// Failed attempts (each retried with the same message id).
    failures: u64,
    /// A few failure texts, for the test output.
    samples: BTreeSet<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `n` publishers on `<prefix>.p<i>`, message k of publisher i carrying id
/// `p<i>-<k>` and payload `p<i> k<k>`.
pub struct Publishers {
    stream: String,
    prefix: String,
    states: Vec<Arc<Mutex<PubState>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Publishers {
    pub fn new(n: usize, stream: &str, prefix: &str) -> Publishers {
        Publishers {
            stream: stream.to_string(),
            prefix: prefix.to_string(),
            states: (0..n).map(|_| Arc::default()).collect(),
            stop: Arc::new(AtomicBool::new(false)),
            tasks: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// What publisher `p` sends as message `k`.
    pub fn message(&self, p: usize, k: u64) -> Sent {
        Sent {
            subject: format!("{}.p{p}", self.prefix),
            msg_id: format!("p{p}-{k}"),
            payload: Bytes::from(format!("p{p} k{k}")),
        }
    }

    /// Start every publisher, publisher i on `clients[i % clients.len()]`.
    pub fn start(&mut self, clients: &[async_nats::Client]) {
        assert!(self.tasks.is_empty(), "publishers already running");
        assert!(!clients.is_empty());
        self.stop.store(false, Ordering::SeqCst);
        for (p, state) in self.states.iter().enumerate() {
            let mut js = async_nats::jetstream::new(clients[p % clients.len()].clone());
            js.set_timeout(REQUEST_TIMEOUT);
            let (state, stop) = (state.clone(), self.stop.clone());
            let (stream, prefix) = (self.stream.clone(), self.prefix.clone());
            self.tasks.push(tokio::spawn(async move {
                publish_loop(js, p, &stream, &prefix, &state, &stop).await
            }));
        }
    }

    /// Acknowledged publishes so far, over all publishers and rounds.
    pub fn acked_count(&self) -> usize {
        self.states.iter().map(|s| lock(s).acked.len()).sum()
    }

    /// Wait until `n` more publishes than now are acknowledged. A
    /// publisher that panicked meanwhile (a message never acknowledged)
    /// panics here.
    pub async fn wait_more(&mut self, jc: &JsCluster, n: usize, what: &str) {
        let want = self.acked_count() + n;
        let started = Instant::now();
        jc.poll(what, || async {
            let have = self.acked_count();
            if have >= want || self.tasks.iter().any(|t| t.is_finished()) {
                Ok(())
            } else {
                Err(format!("{have} of {want} acked; {}", self.summary()))
            }
        })
        .await;
        if self.acked_count() < want {
            self.stop().await;
            panic!("{what}: the publishers stopped early; {}", self.summary());
        }
        // Informational, never asserted.
        eprintln!("{what}: {n} acks in {:?}", started.elapsed());
    }

    /// Stop after the message each publisher is on is acknowledged; a
    /// publisher that panicked (a message never acknowledged) panics here.
    pub async fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks.drain(..) {
            if let Err(e) = t.await {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
                panic!("publisher task: {e}");
            }
        }
    }

    /// Stop at once: a message in flight stays unacknowledged (it may or
    /// may not be stored).
    pub async fn abort(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }

    /// Panics unless each publisher's acks came with growing sequences
    /// (it publishes one message at a time, so its order is the stream's),
    /// and no sequence was acknowledged for two different messages.
    pub fn check_order(&self, ctx: &str) {
        let mut owner: BTreeMap<u64, (usize, u64)> = BTreeMap::new();
        for (p, s) in self.states.iter().enumerate() {
            let s = lock(s);
            for w in s.acked.windows(2) {
                assert!(
                    w[1].k > w[0].k && w[1].seq > w[0].seq,
                    "{ctx}: publisher {p}'s acks out of order: {w:?}"
                );
            }
            for a in &s.acked {
                if let Some(other) = owner.insert(a.seq, (p, a.k)) {
                    panic!(
                        "{ctx}: seq {} acknowledged for {other:?} and for {a:?}",
                        a.seq
                    );
                }
            }
        }
    }

    /// Every acknowledged message: seq → what was sent.
    pub fn acked_msgs(&self) -> BTreeMap<u64, Sent> {
        let mut out = BTreeMap::new();
        for (p, s) in self.states.iter().enumerate() {
            for a in &lock(s).acked {
                out.insert(a.seq, self.message(p, a.k));
            }
        }
        out
    }

    /// Every message id ever sent (acknowledged or not).
    pub fn sent_ids(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (p, s) in self.states.iter().enumerate() {
            for k in 0..lock(s).next_k {
                out.insert(self.message(p, k).msg_id);
            }
        }
        out
    }

    /// Acks, duplicates, failed attempts and a few failure texts.
    pub fn summary(&self) -> String {
        let (mut acked, mut dups, mut failures) = (0, 0, 0);
        let mut samples = BTreeSet::new();
        for s in &self.states {
            let s = lock(s);
            acked += s.acked.len();
            dups += s.acked.iter().filter(|a| a.duplicate).count();
            failures += s.failures;
            samples.extend(s.samples.iter().take(2).cloned());
        }
        format!(
            "{acked} acked ({dups} as duplicates), {failures} failed attempts, e.g. {samples:?}"
        )
    }
}

/// Publisher `p`'s loop: next message, retried with the same id until
/// acknowledged, until `stop`.
async fn publish_loop(
    js: async_nats::jetstream::Context,
    p: usize,
    stream: &str,
    prefix: &str,
    state: &Mutex<PubState>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) {
        let k = {
            let mut s = lock(state);
            s.next_k += 1;
            s.next_k - 1
        };
        let id = format!("p{p}-{k}");
        let payload = Bytes::from(format!("p{p} k{k}"));
        let end = Instant::now() + JS_DEADLINE;
        loop {
            match publish(&js, format!("{prefix}.p{p}"), Some(&id), payload.clone()).await {
                Ok(ack) => {
                    assert_eq!(ack.stream, stream, "{id} acknowledged by another stream");
                    lock(state).acked.push(Acked {
                        publisher: p,
                        k,
                        seq: ack.sequence,
                        duplicate: ack.duplicate,
                    });
                    break;
                }
                Err(e) => {
                    assert!(Instant::now() < end, "{id} never acknowledged: {e}");
                    {
                        let mut s = lock(state);
                        s.failures += 1;
                        if s.samples.len() < 4 {
                            s.samples.insert(e.to_string());
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tokio::time::sleep(PUBLISH_PACE).await;
    }
}

/// A durable pull consumer (explicit acks) and a task that fetches from it
/// and acknowledges every message (waiting for the server to confirm each
/// ack). Records the stream sequences delivered: an ack the server applied
/// but whose confirmation was lost in a failover ends the message's
/// deliveries, so "delivered at least once" is what can be checked.
pub struct ConsumerWorker {
    stream: String,
    name: String,
    consumed: Arc<Mutex<BTreeSet<u64>>>,
    /// Deliveries of sequences already delivered (after a failover or a
    /// lost ack: allowed).
    again: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: Option<JoinHandle<()>>,
}

impl ConsumerWorker {
    /// `CONSUMER.CREATE` of the durable `name` on `stream` through node
    /// `via`: deliver all, explicit acks, a short ack wait so what a dying
    /// leader delivered comes back soon.
    pub async fn create(jc: &JsCluster, via: usize, stream: &str, name: &str) -> ConsumerWorker {
        let body = serde_json::json!({
            "stream_name": stream,
            "config": {
                "durable_name": name,
                "ack_policy": "explicit",
                "deliver_policy": "all",
                "ack_wait": 5_000_000_000u64,
                "max_ack_pending": 20_000,
            },
        });
        let subject = format!("$JS.API.CONSUMER.CREATE.{stream}.{name}");
        jc.poll("the consumer to be created", || async {
            jc.request_ok(via, &subject, &body.to_string()).await
        })
        .await;
        ConsumerWorker {
            stream: stream.to_string(),
            name: name.to_string(),
            consumed: Arc::default(),
            again: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
            task: None,
        }
    }

    /// Start fetching and acknowledging through `client`.
    pub fn start(&mut self, client: async_nats::Client) {
        assert!(self.task.is_none(), "consumer worker already running");
        self.stop.store(false, Ordering::SeqCst);
        let mut js = async_nats::jetstream::new(client);
        js.set_timeout(REQUEST_TIMEOUT);
        let (stream, name) = (self.stream.clone(), self.name.clone());
        let (consumed, again, stop) =
            (self.consumed.clone(), self.again.clone(), self.stop.clone());
        self.task = Some(tokio::spawn(async move {
            consume_loop(js, &stream, &name, &consumed, &again, &stop).await
        }));
    }

    /// Stop after the current fetch.
    pub async fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.task.take() {
            if let Err(e) = t.await {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
    }

    /// Stop at once (acks in flight may or may not count).
    pub async fn abort(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    /// Sequences delivered so far.
    pub fn consumed(&self) -> BTreeSet<u64> {
        lock(&self.consumed).clone()
    }

    pub fn redeliveries(&self) -> u64 {
        self.again.load(Ordering::SeqCst)
    }

    /// Let the (running) worker go on until every sequence in `want` has
    /// been consumed and the consumer, asked through node `via`, has
    /// nothing pending or unacknowledged; then stop it. Panics after
    /// [`JS_DEADLINE`] naming what is missing.
    pub async fn drain(&mut self, jc: &JsCluster, via: usize, want: &BTreeSet<u64>, ctx: &str) {
        assert!(self.task.is_some(), "drain needs a running worker");
        let subject = format!("$JS.API.CONSUMER.INFO.{}.{}", self.stream, self.name);
        let what = format!(
            "{ctx}: the consumer {} to deliver every acknowledged message",
            self.name
        );
        jc.poll(&what, || async {
            let consumed = self.consumed();
            let lost: Vec<&u64> = want.difference(&consumed).collect();
            if !lost.is_empty() {
                return Err(format!(
                    "{} acknowledged messages not consumed yet, first {:?}",
                    lost.len(),
                    &lost[..lost.len().min(10)]
                ));
            }
            let v = jc.request_ok(via, &subject, "").await?;
            if v["num_pending"] == 0 && v["num_ack_pending"] == 0 {
                Ok(())
            } else {
                Err(format!("consumer not drained: {v}"))
            }
        })
        .await;
        self.stop().await;
    }
}

/// The worker's loop: fetch up to 200 messages (waiting up to 1 s), ack
/// each, again, until `stop`. Errors (no leader yet, a node gone) are
/// waited out.
async fn consume_loop(
    js: async_nats::jetstream::Context,
    stream: &str,
    name: &str,
    consumed: &Mutex<BTreeSet<u64>>,
    again: &AtomicU64,
    stop: &AtomicBool,
) {
    let mut consumer: Option<async_nats::jetstream::consumer::PullConsumer> = None;
    while !stop.load(Ordering::SeqCst) {
        let c = match &consumer {
            Some(c) => c.clone(),
            None => match js.get_consumer_from_stream(name, stream).await {
                Ok(c) => {
                    consumer = Some(c.clone());
                    c
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let batch = c
            .fetch()
            .max_messages(200)
            .expires(Duration::from_secs(1))
            .messages()
            .await;
        let mut msgs = match batch {
            Ok(m) => m,
            Err(_) => {
                consumer = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        while let Ok(Some(next)) = tokio::time::timeout(Duration::from_secs(5), msgs.next()).await {
            let Ok(m) = next else { break };
            let Ok(seq) = m.info().map(|i| i.stream_sequence) else {
                break;
            };
            if !lock(consumed).insert(seq) {
                again.fetch_add(1, Ordering::SeqCst);
            }
            // Unconfirmed acks are redelivered after the ack wait.
            let _ = m.double_ack().await;
        }
    }
}
