//! The task that keeps one mirror or source fed from its origin.
//!
//! Each attempt subscribes a fresh deliver subject, asks the origin for an
//! ephemeral push consumer starting after what the stream holds, and
//! passes deliveries to the stream's writer in order. A durable source
//! (`consumer` in its configuration) instead resets the named consumer,
//! which must use the `flow_control` ack policy, back to its ack floor and
//! listens on its deliver subject; its flow-control replies name what the
//! stream has stored (each message is handed over with a reply subject
//! the writer acks once it is stored), so the consumer's acknowledgements
//! never run ahead of the stream. The origin's
//! sequence is tracked as nats-server does: a skipped delivery sequence,
//! a heartbeat naming a later one, or ten seconds of silence start a new
//! attempt from the last origin sequence passed on. The task ends when its
//! handle is dropped (the stream stops leading, is updated or deleted).

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::{ack_info, FeedSink, FeedState, FEED_ACK_PREFIX, HEARTBEAT, STREAM_SOURCE};
use crate::internal::{ChannelHandler, InternalClient, OwnedMsg};
use crate::jetstream::errors::{self, ApiError};
use crate::jetstream::headers;
use crate::jetstream::ingest::{At, Ingest};
use crate::jetstream::transform::SubjectTransform;
use crate::server::Server;

/// Silence this long means the feed is stalled: start again.
const STALLED: Duration = Duration::from_secs(10);
/// How long to wait for the consumer create answer (or a first delivery).
const CREATE_WAIT: Duration = Duration::from_secs(10);
/// Pause between attempts, doubled on each failure up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// A running feed; dropping it ends the task.
pub(crate) struct Feed {
    pub state: Arc<FeedState>,
    _stop: watch::Sender<()>,
}

/// Start feeding `sink` from `state`'s origin.
pub(crate) fn spawn(server: Weak<Server>, sink: Weak<dyn FeedSink>, state: Arc<FeedState>) -> Feed {
    let (stop_tx, stop) = watch::channel(());
    let st = state.clone();
    tokio::spawn(async move {
        let mut feed = Running {
            server,
            sink,
            transforms: st.source.transforms(),
            state: st,
            stop,
            sseq: None,
            dseq: 0,
            acks: Acks::default(),
        };
        feed.run().await;
    });
    Feed {
        state,
        _stop: stop_tx,
    }
}

enum Outcome {
    /// The handle was dropped, or the stream or server is gone.
    Stop,
    /// Start a new attempt (after a pause when the last one failed).
    Retry { failed: bool },
}

struct Running {
    server: Weak<Server>,
    sink: Weak<dyn FeedSink>,
    state: Arc<FeedState>,
    stop: watch::Receiver<()>,
    /// The last origin sequence passed to the stream (`None` until read
    /// from the stream at the first attempt).
    sseq: Option<u64>,
    /// The origin consumer's delivery sequence of that message.
    dseq: u64,
    transforms: Vec<SubjectTransform>,
    /// A durable source's view of what the stream has stored.
    acks: Acks,
}

/// What a durable source has handed to its stream and what the stream
/// has confirmed storing, in this attempt.
#[derive(Default)]
struct Acks {
    /// The subject the stream's writer acks to (`<prefix>.<n>.<sseq>`, `n`
    /// counting the messages handed over in this attempt).
    prefix: String,
    handed: u64,
    /// Every message up to this one has been answered (a replicated
    /// stream's answers may come out of order).
    answered: u64,
    /// Answers that came before an earlier one.
    early: std::collections::BTreeSet<u64>,
    /// A flow-control request waiting for the stream.
    waiting: Option<WaitingFc>,
}

/// A flow-control request a durable source answers once the stream has
/// answered for the first `handed` messages: then it reports the delivery
/// and origin sequences of the last of them.
struct WaitingFc {
    reply: String,
    handed: u64,
    dseq: u64,
    sseq: u64,
    since: std::time::Instant,
}

/// How long a flow-control request may wait for the stream's answers
/// before the durable feed starts again (from what the stream holds).
const FC_ANSWER_WAIT: Duration = Duration::from_secs(5);

impl Running {
    async fn run(&mut self) {
        let mut pause = RETRY_MIN;
        loop {
            match self.attempt().await {
                Outcome::Stop => return,
                Outcome::Retry { failed } => {
                    let wait = if failed { pause } else { RETRY_MIN };
                    pause = if failed {
                        (pause * 2).min(RETRY_MAX)
                    } else {
                        RETRY_MIN
                    };
                    tokio::select! {
                        _ = self.stop.changed() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// One consumer on the origin, from creation until it fails or stops.
    async fn attempt(&mut self) -> Outcome {
        let (Some(server), Some(sink)) = (self.server.upgrade(), self.sink.upgrade()) else {
            return Outcome::Stop;
        };
        let Some(account) = sink.account() else {
            return Outcome::Stop;
        };
        // A durable source resumes from what its stream holds, every time:
        // what an earlier attempt handed over may not have been stored.
        let durable_feed = self.state.source.consumer.is_some();
        let (resume, empty) = match self.sseq.filter(|_| !durable_feed) {
            Some(s) => (s, false),
            None => {
                let (s, empty) = sink.resume_point(&self.state);
                self.sseq = Some(s);
                self.state.set_seq(s);
                (s, empty)
            }
        };
        self.dseq = 0;
        drop(sink);
        let state = self.state.clone();
        let src = &state.source;
        let kind = if self.state.mirror { "M" } else { "S" };
        let id = crate::jetstream::api::ephemeral_name();
        let deliver = match (
            &src.consumer,
            src.external.as_ref().filter(|e| !e.deliver.is_empty()),
        ) {
            (Some(c), _) => c.deliver_subject.clone(),
            (None, Some(e)) => format!("{}.{kind}.{id}", e.deliver),
            (None, None) => format!("$JS.{kind}.{id}"),
        };
        let reply = format!("$JS.{kind}.R.{id}");
        self.acks = Acks::default();
        let durable = src.consumer.as_ref().map(|c| c.name.clone());
        if durable.is_some() {
            self.acks.prefix = format!("{FEED_ACK_PREFIX}{id}");
        }
        let ack_wildcard = format!("{}.>", self.acks.prefix);
        let name = format!(
            "JS_{}_{id}",
            if self.state.mirror {
                "MIRROR"
            } else {
                "SOURCE"
            }
        );
        let (tx, mut rx) = mpsc::unbounded_channel::<OwnedMsg>();
        let client = InternalClient::new(&server, account, Arc::new(ChannelHandler(tx)));
        // A durable source listens on its consumer's deliver subject only
        // once the reset is answered, as nats-server does: the consumer
        // delivers only to interest, so its first delivery is from the
        // ack floor, never one from before the reset (which could also
        // overtake the answer and be taken as stale).
        let subjects = if durable.is_some() {
            vec![&reply, &ack_wildcard]
        } else {
            vec![&deliver, &reply]
        };
        for s in subjects {
            if let Err(e) = client.subscribe(&server, s, None) {
                self.fail(format!("subscribing to {s}: {e}"));
                client.close(&server);
                return Outcome::Retry { failed: true };
            }
        }
        let api = src
            .external
            .as_ref()
            .filter(|e| !e.api.is_empty())
            .map_or("$JS.API", |e| e.api.as_str())
            .trim_end_matches('.')
            .to_string();
        match &durable {
            // Back to its ack floor: what the stream already holds is
            // skipped as it arrives again.
            Some(durable) => {
                client.publish(
                    &server,
                    &format!("{api}.CONSUMER.RESET.{}.{durable}", src.name),
                    Some(&reply),
                    b"",
                    b"",
                );
            }
            None => {
                let body = self.create_request(&name, &deliver, resume, empty);
                client.publish(
                    &server,
                    &format!("{api}.CONSUMER.CREATE.{}", src.name),
                    Some(&reply),
                    b"",
                    body.to_string().as_bytes(),
                );
            }
        }
        drop(server);
        let outcome = self.receive(&client, &mut rx, &reply, &deliver).await;
        if durable.is_some() && !matches!(outcome, Outcome::Stop) {
            // The next attempt starts from what the stream holds: let it
            // answer for what this one handed over first.
            self.drain(&mut rx).await;
        }
        if let Some(server) = self.server.upgrade() {
            client.close(&server);
            if durable.is_some() {
                // The user's consumer stays for the next attempt.
                return outcome;
            }
            // The origin would drop it after its inactive threshold; this
            // spares it the wait.
            client.publish(
                &server,
                &format!("{api}.CONSUMER.DELETE.{}.{name}", src.name),
                None,
                b"",
                b"",
            );
        }
        outcome
    }

    /// The `CONSUMER.CREATE` body: start after `resume`, or where the
    /// source's options say when the stream holds nothing from it yet.
    fn create_request(
        &self,
        name: &str,
        deliver: &str,
        resume: u64,
        empty: bool,
    ) -> serde_json::Value {
        let src = &self.state.source;
        let mut config = json!({
            "name": name,
            "deliver_subject": deliver,
            "ack_policy": "none",
            "ack_wait": 22 * 3600 * 1_000_000_000i64,
            "max_deliver": 1,
            "idle_heartbeat": HEARTBEAT.as_nanos() as i64,
            "flow_control": true,
            "inactive_threshold": STALLED.as_nanos() as i64,
            "num_replicas": 1,
            "mem_storage": true,
            "direct": true,
        });
        let fresh = if self.state.mirror {
            empty
        } else {
            resume == 0
        };
        if fresh && src.opt_start_seq > 0 {
            config["deliver_policy"] = json!("by_start_sequence");
            config["opt_start_seq"] = json!(src.opt_start_seq);
        } else if fresh && src.opt_start_time.is_some() {
            config["deliver_policy"] = json!("by_start_time");
            config["opt_start_time"] = json!(src.opt_start_time);
        } else if resume > 0 {
            config["deliver_policy"] = json!("by_start_sequence");
            config["opt_start_seq"] = json!(resume + 1);
        } else {
            config["deliver_policy"] = json!("all");
        }
        match src.filters().as_slice() {
            [] => {}
            [one] => config["filter_subject"] = json!(one),
            many => config["filter_subjects"] = json!(many),
        }
        json!({ "stream_name": src.name, "config": config })
    }

    /// Pass deliveries on until the consumer fails, stalls or is stopped.
    async fn receive(
        &mut self,
        client: &InternalClient,
        rx: &mut mpsc::UnboundedReceiver<OwnedMsg>,
        reply: &str,
        deliver: &str,
    ) -> Outcome {
        let mut created = false;
        let mut wait = CREATE_WAIT;
        loop {
            let m = tokio::select! {
                // A stopped feed takes nothing more, even if it is there.
                biased;
                _ = self.stop.changed() => return Outcome::Stop,
                m = tokio::time::timeout(wait, rx.recv()) => m,
            };
            let m = match m {
                Ok(Some(m)) => m,
                Ok(None) => return Outcome::Stop,
                Err(_) if !created => {
                    self.fail("consumer create timed out".to_string());
                    return Outcome::Retry { failed: true };
                }
                Err(_) => {
                    debug!(
                        "{} feed from {:?} stalled",
                        self.kind(),
                        self.state.source.name
                    );
                    return Outcome::Retry { failed: false };
                }
            };
            if !self.acks.prefix.is_empty() && m.subject.starts_with(&self.acks.prefix) {
                if let Some(outcome) = self.stored(client, &m) {
                    return outcome;
                }
                continue;
            }
            if let Some(w) = &self.acks.waiting {
                if w.since.elapsed() > FC_ANSWER_WAIT {
                    debug!(
                        "{} feed from {:?}: the stream did not answer in time",
                        self.kind(),
                        self.state.source.name
                    );
                    return Outcome::Retry { failed: false };
                }
            }
            if m.subject == reply {
                let durable = self.state.source.consumer.is_some();
                match create_error(&m.payload, durable, self.state.mirror) {
                    None if durable && !created => {
                        created = true;
                        wait = STALLED;
                        self.state.set_error(None);
                        let Some(server) = self.server.upgrade() else {
                            return Outcome::Stop;
                        };
                        if let Err(e) = client.subscribe(&server, deliver, None) {
                            self.fail(format!("subscribing to {deliver}: {e}"));
                            return Outcome::Retry { failed: true };
                        }
                        continue;
                    }
                    None => {
                        created = true;
                        wait = STALLED;
                        self.state.set_error(None);
                        continue;
                    }
                    Some(e) => {
                        self.state.set_error(Some(e));
                        return Outcome::Retry { failed: true };
                    }
                }
            }
            // Deliveries may overtake the create answer.
            created = true;
            wait = STALLED;
            self.state.heard();
            if is_control(&m.headers) {
                if let Some(outcome) = self.control(client, &m) {
                    return outcome;
                }
                continue;
            }
            if let Some(outcome) = self.deliver(m) {
                return outcome;
            }
        }
    }

    fn kind(&self) -> &'static str {
        if self.state.mirror {
            "mirror"
        } else {
            "source"
        }
    }

    fn fail(&self, why: String) {
        let code = if self.state.mirror { 10029 } else { 10045 };
        warn!(
            "JetStream {} feed from {:?}: {why}",
            self.kind(),
            self.state.source.name
        );
        self.state.set_error(Some(ApiError::new(500, code, why)));
    }

    /// Flow control asks for an answer; a heartbeat names the last
    /// delivery sent, and whether the origin thinks the feed stalled.
    fn control(&mut self, client: &InternalClient, m: &OwnedMsg) -> Option<Outcome> {
        let server = self.server.upgrade()?;
        if let Some(r) = &m.reply {
            if self.acks.prefix.is_empty() {
                client.publish(&server, r, None, b"", b"");
            } else {
                self.wait_to_answer(client, &server, r.clone());
            }
            return None;
        }
        let last = headers::get(&m.headers, "Nats-Last-Consumer")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if last > 0 && last != self.dseq {
            debug!(
                "{} feed from {:?}: missed deliveries ({} sent, {} seen)",
                self.kind(),
                self.state.source.name,
                last,
                self.dseq
            );
            return Some(Outcome::Retry { failed: false });
        }
        if let Some(fc) = headers::get(&m.headers, "Nats-Consumer-Stalled") {
            let fc = fc.trim().to_string();
            if self.acks.prefix.is_empty() {
                client.publish(&server, &fc, None, b"", b"");
            } else if self.acks.waiting.as_ref().is_none_or(|w| w.reply != fc) {
                // A request this feed never saw: answered as one it did.
                self.wait_to_answer(client, &server, fc);
            }
        }
        None
    }

    /// A delivery: in order, pass it on; a gap in the delivery sequence
    /// means one was lost, so start again after the last passed on.
    fn deliver(&mut self, m: OwnedMsg) -> Option<Outcome> {
        let reply = m.reply.as_deref()?;
        let a = ack_info(reply)?;
        if a.delivered > 1 {
            return None;
        }
        let sseq = self.sseq.unwrap_or(0);
        if a.stream_seq <= sseq {
            if a.consumer_seq == self.dseq + 1 {
                self.dseq += 1;
            }
            return None;
        }
        let first = self.dseq == 0;
        // After its reset a durable consumer delivers from 1 again; a
        // first delivery numbered otherwise was sent before the reset.
        if first && !self.acks.prefix.is_empty() && a.consumer_seq != 1 {
            return Some(Outcome::Retry { failed: false });
        }
        if self.state.mirror {
            if !(a.stream_seq == sseq + 1 || first || a.consumer_seq == self.dseq + 1) {
                return Some(Outcome::Retry { failed: false });
            }
        } else if !(a.consumer_seq == self.dseq + 1 || (first && a.consumer_seq > self.dseq)) {
            return Some(Outcome::Retry { failed: false });
        }
        self.dseq = a.consumer_seq;
        self.sseq = Some(a.stream_seq);
        self.state.set_seq(a.stream_seq);
        self.state.set_lag(a.pending);
        let renamed = self.transforms.iter().find_map(|t| t.apply(&m.subject));
        let (headers, at) = if self.state.mirror {
            (
                m.headers,
                Some(At {
                    seq: a.stream_seq,
                    ts: a.ts,
                }),
            )
        } else {
            (self.source_headers(&m.headers, a.sseq, &m.subject), None)
        };
        let subject = renamed.unwrap_or(m.subject);
        let reply = (!self.acks.prefix.is_empty()).then(|| {
            self.acks.handed += 1;
            format!("{}.{}.{}", self.acks.prefix, self.acks.handed, a.stream_seq)
        });
        let ingest = Ingest {
            msg: OwnedMsg {
                subject,
                reply,
                headers,
                payload: m.payload,
            },
            at,
        };
        let sink = self.sink.upgrade()?;
        if !sink.ingest(ingest) {
            return Some(Outcome::Stop);
        }
        None
    }

    /// The stream's answer for a message a durable source handed over:
    /// stored (or a duplicate), or refused, in which case the feed starts
    /// again from what the stream holds, as nats-server retries it.
    fn stored(&mut self, client: &InternalClient, m: &OwnedMsg) -> Option<Outcome> {
        if !self.record_answer(m) {
            debug!(
                "{} feed from {:?}: a message was not stored: {}",
                self.kind(),
                self.state.source.name,
                String::from_utf8_lossy(&m.payload)
            );
            return Some(Outcome::Retry { failed: true });
        }
        let server = self.server.upgrade()?;
        self.answer_flow_control(client, &server);
        None
    }

    /// Note the stream's answer `m` for the `n`-th message handed over (its
    /// subject's second-to-last token); whether it was stored.
    fn record_answer(&mut self, m: &OwnedMsg) -> bool {
        let n = m
            .subject
            .rsplit('.')
            .nth(1)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        if n == self.acks.answered + 1 {
            self.acks.answered = n;
            while self.acks.early.remove(&(self.acks.answered + 1)) {
                self.acks.answered += 1;
            }
        } else if n > self.acks.answered {
            self.acks.early.insert(n);
        }
        create_error(&m.payload, false, false).is_none()
    }

    /// Wait (a little) for the stream to answer for everything handed over
    /// in this attempt, taking only its answers.
    async fn drain(&mut self, rx: &mut mpsc::UnboundedReceiver<OwnedMsg>) {
        let deadline = tokio::time::Instant::now() + FC_ANSWER_WAIT;
        while self.acks.answered < self.acks.handed {
            let m = tokio::select! {
                biased;
                _ = self.stop.changed() => return,
                m = tokio::time::timeout_at(deadline, rx.recv()) => m,
            };
            match m {
                Ok(Some(m)) if m.subject.starts_with(&self.acks.prefix) => {
                    self.record_answer(&m);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// Hold the flow-control request `reply` until the stream has answered
    /// for everything handed over so far (then `Nats-Last-Stream` acks the
    /// durable up to the last of it).
    fn wait_to_answer(&mut self, client: &InternalClient, server: &Server, reply: String) {
        self.acks.waiting = Some(WaitingFc {
            reply,
            handed: self.acks.handed,
            dseq: self.dseq,
            sseq: self.sseq.unwrap_or(0),
            since: std::time::Instant::now(),
        });
        self.answer_flow_control(client, server);
    }

    /// Reply to the waiting flow-control request once the stream has
    /// answered for everything handed to it before the request came:
    /// `Nats-Last-Stream` then acknowledges up to that origin sequence.
    fn answer_flow_control(&mut self, client: &InternalClient, server: &Server) {
        if self
            .acks
            .waiting
            .as_ref()
            .is_none_or(|w| self.acks.answered < w.handed)
        {
            return;
        }
        let Some(w) = self.acks.waiting.take() else {
            return;
        };
        if w.sseq == 0 {
            client.publish(server, &w.reply, None, b"", b"");
            return;
        }
        let (d, s) = (w.dseq.to_string(), w.sseq.to_string());
        let hdr = headers::build(
            None,
            &[
                ("Nats-Last-Consumer", d.as_str()),
                ("Nats-Last-Stream", s.as_str()),
            ],
        );
        client.publish(server, &w.reply, None, &hdr, b"");
    }

    /// A sourced message's headers: those that checked the publish at
    /// the origin (`Nats-Expected-*`, batch headers) and an earlier
    /// source's mark go; this source's mark is added.
    fn source_headers(&self, hdr: &[u8], sseq: &str, subject: &str) -> Bytes {
        let stripped = headers::without(hdr, |n| {
            n == STREAM_SOURCE || n.starts_with("Nats-Expected-") || n.starts_with("Nats-Batch-")
        });
        let base = stripped.as_deref().unwrap_or(hdr);
        let value = self.state.header_value(sseq, subject);
        Bytes::from(headers::append(base, &[(STREAM_SOURCE, &value)]))
    }
}

/// A status line `NATS/1.0 100 ...`: flow control or a heartbeat.
fn is_control(hdr: &[u8]) -> bool {
    hdr.starts_with(b"NATS/1.0 100")
}

/// The error of a `CONSUMER.CREATE` or `CONSUMER.RESET` answer (or of a
/// publish ack), if it is one. A durable source's consumer must use the
/// `flow_control` ack policy.
fn create_error(body: &[u8], durable: bool, mirror: bool) -> Option<ApiError> {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        ack_policy: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        error: Option<ApiError>,
        config: Option<Config>,
    }
    match serde_json::from_slice::<Answer>(body) {
        Ok(Answer { error: Some(e), .. }) => Some(e),
        Ok(a) if durable => {
            let policy = a.config.and_then(|c| c.ack_policy);
            (policy.as_deref() != Some("flow_control")).then(|| {
                if mirror {
                    errors::mirror_consumer_requires_ack_fc()
                } else {
                    errors::source_consumer_requires_ack_fc()
                }
            })
        }
        Ok(_) => None,
        Err(e) => Some(ApiError::new(
            500,
            10025,
            format!("bad consumer create answer: {e}"),
        )),
    }
}
