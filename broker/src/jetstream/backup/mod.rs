//! Backups: `$JS.API.STREAM.SNAPSHOT` and `$JS.API.STREAM.RESTORE`, with
//! nats-server's chunked, acknowledged protocol, so the tools operators
//! use (`nats stream backup` / `restore`, nats.go's snapshot API) work.
//!
//! - Snapshot: the answer carries the stream's configuration and state;
//!   then chunks go to the request's `deliver_subject`, each with a reply
//!   (`$JS.SNAPSHOT.ACK.<stream>.<id>.<size>.<index>`) the client answers
//!   to open room in the window; the last, short chunk has none; an empty
//!   message with status `204` ends it (`408` when the client stopped
//!   answering or went away).
//! - Restore: the answer names a subject; the client sends the chunks to
//!   it as requests, each answered empty, then an empty message, answered
//!   with the new stream's info (or the error).
//!
//! What the chunks hold is Tribune's own format ([`format`]), not
//! nats-server's tar of its files: a snapshot from Tribune restores into
//! Tribune (file or memory storage), not into nats-server, and the other
//! way round.

pub(crate) mod format;

use std::io::Write;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::errors::{self, ApiError};
use super::stream::Stream;
use super::types::{self, StreamConfig};
use super::JsAccount;
use crate::internal::{ChannelHandler, InternalClient, OwnedMsg};
use crate::server::Server;
use format::{Meta, Record, SavedConsumer, Writer};

/// A client that answers no chunk for this long has stalled.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a snapshot waits for interest in its deliver subject.
const INTEREST_WAIT: Duration = Duration::from_secs(2);
/// A restore that receives nothing for this long is abandoned.
const RESTORE_IDLE: Duration = Duration::from_secs(5);
/// Messages read per hold of the stream's lock.
const READ_BATCH: usize = 256;

#[derive(Debug, Default, Deserialize)]
struct SnapshotRequest {
    #[serde(default)]
    deliver_subject: String,
    #[serde(default)]
    no_consumers: bool,
    #[serde(default)]
    chunk_size: i64,
    #[serde(default)]
    window_size: i64,
    /// nats-server checks every message's checksum first; Tribune reads
    /// every message whole to write it, which checks its store's too.
    #[serde(default, rename = "jsck")]
    _check_msgs: bool,
}

fn restore_failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(500, 10062, format!("restore failed: {e}"))
}

/// A snapshot about to be sent, once its answer is out.
pub(crate) struct SnapshotJob {
    server: Weak<Server>,
    acc: Arc<JsAccount>,
    stream: Arc<Stream>,
    req: SnapshotRequest,
    last_seq: u64,
}

/// Check a snapshot request; its answer, and the job that sends it.
pub(crate) fn snapshot_begin(
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    name: &str,
    payload: &[u8],
) -> Result<(Vec<u8>, SnapshotJob), ApiError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(errors::bad_request());
    }
    let stream = acc.stream(name).ok_or_else(errors::stream_not_found)?;
    let req: SnapshotRequest = serde_json::from_slice(payload).map_err(errors::invalid_json)?;
    if req.deliver_subject.is_empty()
        || req.deliver_subject.contains(['*', '>'])
        || !crate::subject::is_valid(req.deliver_subject.as_bytes())
    {
        return Err(ApiError::new(400, 10015, "deliver subject not valid"));
    }
    let info = super::api::stream_info(server, &stream, None);
    let body = super::api::answer(
        "stream_snapshot_response",
        &json!({ "config": info.config, "state": info.state }),
    );
    let job = SnapshotJob {
        server: Arc::downgrade(server),
        acc: acc.clone(),
        last_seq: info.state.last_seq,
        stream,
        req,
    };
    Ok((body, job))
}

impl SnapshotJob {
    pub(crate) fn start(self) {
        tokio::spawn(async move {
            let (acc, stream) = (self.acc.name.clone(), self.stream.name.clone());
            info!("Starting snapshot for stream '{acc} > {stream}'");
            let started = Instant::now();
            match self.run().await {
                Ok(bytes) => info!(
                    "Completed snapshot of {} for stream '{acc} > {stream}' in {:?}",
                    super::size_text(Some(bytes)),
                    started.elapsed()
                ),
                Err(e) => warn!(
                    "Snapshot for stream '{acc} > {stream}' failed after {:?}: {e}",
                    started.elapsed()
                ),
            }
        });
    }

    /// Send the snapshot; the bytes sent, or why it stopped.
    async fn run(self) -> Result<i64, String> {
        let server = self.server.upgrade().ok_or("server stopped")?;
        let account = self.acc.client.account().clone();
        let chunk = match self.req.chunk_size {
            0 => 128 * 1024,
            c => c.clamp(1024, 1024 * 1024) as usize,
        };
        let window = match self.req.window_size {
            0 => 8 * 1024 * 1024,
            w => w.clamp(1024, 32 * 1024 * 1024) as usize,
        }
        .max(chunk);
        let (tx, rx) = mpsc::unbounded_channel();
        let client = InternalClient::new(&server, account.clone(), Arc::new(ChannelHandler(tx)));
        let ack = format!(
            "$JS.SNAPSHOT.ACK.{}.{}",
            self.stream.name,
            super::api::ephemeral_name()
        );
        client
            .subscribe(&server, &format!("{ack}.>"), None)
            .map_err(|e| format!("subscribing to {ack}: {e}"))?;
        let deliver = self.req.deliver_subject.clone();
        let since = Instant::now();
        while !account.has_interest(deliver.as_bytes()) && since.elapsed() < INTEREST_WAIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut out = Sender {
            server: &server,
            client: &client,
            deliver: &deliver,
            ack: &ack,
            rx,
            slots: window / chunk,
            index: 1,
            sent: 0,
        };
        let result = self.write(&mut out, chunk).await;
        let end = match &result {
            Ok(()) => "NATS/1.0 204\r\n\r\n".to_string(),
            Err(e) => format!("NATS/1.0 {e}\r\n\r\n"),
        };
        client.publish(&server, &deliver, None, end.as_bytes(), b"");
        client.close(&server);
        result.map(|()| out.sent).map_err(|e| e.to_string())
    }

    /// Encode the stream into chunks: meta, consumers, then messages.
    async fn write(&self, out: &mut Sender<'_>, chunk: usize) -> Result<(), &'static str> {
        let mut w = Writer::new();
        let mut buf = Vec::with_capacity(chunk * 2);
        w.start(&mut buf);
        w.meta(
            &mut buf,
            &Meta {
                config: self.stream.config(),
                created: types::rfc3339(Some(self.stream.created)),
            },
        );
        if !self.req.no_consumers {
            let consumers: Vec<_> = self.stream.consumers.read().values().cloned().collect();
            for c in consumers.iter().filter(|c| !c.is_direct()) {
                w.consumer(
                    &mut buf,
                    &SavedConsumer {
                        name: c.name.clone(),
                        config: c.config(),
                        created: types::rfc3339(Some(c.created)),
                        state: c.replicated_state(),
                    },
                );
            }
        }
        let mut seq = 1;
        while seq <= self.last_seq {
            {
                let inner = self.stream.inner.lock();
                for _ in 0..READ_BATCH {
                    match inner.store.load_next("", seq) {
                        Ok(Some(m)) if m.seq <= self.last_seq => {
                            seq = m.seq + 1;
                            w.msg(&mut buf, m.seq, m.ts, &m.subject, &m.headers, &m.payload);
                        }
                        _ => {
                            seq = self.last_seq + 1;
                            break;
                        }
                    }
                }
            }
            out.full_chunks(&mut buf, chunk).await?;
        }
        w.end(&mut buf);
        out.full_chunks(&mut buf, chunk).await?;
        if !buf.is_empty() {
            // The short last chunk goes without a reply, as in nats-server.
            out.chunk(buf, false).await?;
        }
        Ok(())
    }
}

/// Chunks out, acks in: at most `slots` chunks unanswered.
struct Sender<'a> {
    server: &'a Server,
    client: &'a InternalClient,
    deliver: &'a str,
    ack: &'a str,
    rx: mpsc::UnboundedReceiver<OwnedMsg>,
    slots: usize,
    index: u64,
    sent: i64,
}

impl Sender<'_> {
    /// Send every whole chunk at the front of `buf`, keeping the rest.
    async fn full_chunks(&mut self, buf: &mut Vec<u8>, chunk: usize) -> Result<(), &'static str> {
        while buf.len() >= chunk {
            let rest = buf.split_off(chunk);
            self.chunk(std::mem::replace(buf, rest), true).await?;
        }
        Ok(())
    }

    async fn chunk(&mut self, data: Vec<u8>, acked: bool) -> Result<(), &'static str> {
        while let Ok(_ack) = self.rx.try_recv() {
            self.slots += 1;
        }
        while self.slots == 0 {
            if !self.client.account().has_interest(self.deliver.as_bytes()) {
                return Err("408 No Interest");
            }
            match tokio::time::timeout(ACK_TIMEOUT, self.rx.recv()).await {
                Ok(Some(_)) => self.slots += 1,
                Ok(None) => return Err("500 snapshot stopped"),
                Err(_) => return Err("408 No Flow Response"),
            }
        }
        let reply = acked.then(|| format!("{}.{}.{}", self.ack, data.len(), self.index));
        self.client
            .publish(self.server, self.deliver, reply.as_deref(), b"", &data);
        if acked {
            self.slots -= 1;
            self.index += 1;
        }
        self.sent += data.len() as i64;
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
struct RestoreRequest {
    #[serde(default = "unnamed_config")]
    config: StreamConfig,
}

/// A configuration with every field at its default (no name).
fn unnamed_config() -> StreamConfig {
    super::api::stream_config(b"").unwrap_or_else(|_| unreachable!("{{}} is a configuration"))
}

/// A restore that receives its chunks once its answer is out.
pub(crate) struct RestoreJob {
    server: Weak<Server>,
    acc: Arc<JsAccount>,
    config: StreamConfig,
    client: InternalClient,
    rx: mpsc::UnboundedReceiver<OwnedMsg>,
    file: std::path::PathBuf,
    /// Set in a clustered JetStream (this server leads the meta group):
    /// the stream is made replicated, through the cluster.
    cluster: Option<Arc<super::cluster::JsCluster>>,
}

/// Check a restore request; its answer (the subject for the chunks, which
/// is subscribed already), and the job that receives them.
pub(crate) fn restore_begin(
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    name: &str,
    payload: &[u8],
) -> Result<(Vec<u8>, RestoreJob), ApiError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(errors::bad_request());
    }
    let mut req: RestoreRequest = serde_json::from_slice(payload).map_err(errors::invalid_json)?;
    if req.config.name.is_empty() {
        req.config.name = name.to_string();
    }
    if req.config.name != name {
        return Err(errors::stream_mismatch());
    }
    if name.contains(['/', '\\']) {
        return Err(errors::stream_name_path());
    }
    let js = server.jetstream().ok_or_else(errors::not_enabled)?;
    let cluster = js.cluster().cloned();
    let voters = cluster.as_ref().map(|c| c.meta.voter_count());
    let config = super::api::normalize_stream(acc, req.config, name, voters)?;
    match &cluster {
        Some(c) => super::cluster::restore::check(c, acc, &config)?,
        None => {
            super::limits::check_stream_create(Some(js), acc, &config)?;
            if acc.stream(name).is_some() {
                return Err(ApiError::new(
                    400,
                    10130,
                    "stream name already in use, cannot restore",
                ));
            }
        }
    }
    let id = super::api::ephemeral_name();
    let deliver = format!("$JS.SNAPSHOT.RESTORE.{name}.{id}");
    let (tx, rx) = mpsc::unbounded_channel();
    let client = InternalClient::new(
        server,
        acc.client.account().clone(),
        Arc::new(ChannelHandler(tx)),
    );
    client.subscribe(server, &deliver, None).map_err(|e| {
        ApiError::new(
            500,
            10042,
            format!("JetStream unable to subscribe to restore snapshot {deliver}: {e}"),
        )
    })?;
    let file = js.store_dir.join(format!(".restore-{name}-{id}"));
    let body = super::api::answer(
        "stream_restore_response",
        &json!({ "deliver_subject": deliver }),
    );
    info!("Starting restore for stream '{} > {name}'", acc.name);
    Ok((
        body,
        RestoreJob {
            server: Arc::downgrade(server),
            acc: acc.clone(),
            config,
            client,
            rx,
            file,
            cluster,
        },
    ))
}

impl RestoreJob {
    pub(crate) fn start(self) {
        tokio::spawn(self.run());
    }

    async fn run(mut self) {
        let (acc, name) = (self.acc.name.clone(), self.config.name.clone());
        let started = Instant::now();
        let outcome = self.receive().await;
        if let Some(server) = self.server.upgrade() {
            self.client.close(&server);
        }
        let (reply, result) = match outcome {
            Ok((reply, total)) if self.cluster.is_some() => {
                let built = match (self.cluster.clone(), self.server.upgrade()) {
                    (Some(c), Some(server)) => {
                        super::cluster::restore::restore(
                            c,
                            self.acc.clone(),
                            server,
                            self.config.clone(),
                            read_items(self.file.clone()),
                        )
                        .await
                    }
                    _ => Err(restore_failed("server stopped")),
                };
                (Some(reply), built.map(|body| (body, total)))
            }
            Ok((reply, total)) => {
                let job = (
                    self.server.clone(),
                    self.acc.clone(),
                    self.config.clone(),
                    self.file.clone(),
                );
                let built =
                    tokio::task::spawn_blocking(move || build(job.0, &job.1, job.2, &job.3))
                        .await
                        .unwrap_or_else(|e| Err(restore_failed(e)));
                (Some(reply), built.map(|body| (body, total)))
            }
            Err((reply, e)) => (reply, Err(e)),
        };
        let _ = std::fs::remove_file(&self.file);
        let body = match result {
            Ok((body, total)) => {
                info!(
                    "Completed restore of {} for stream '{acc} > {name}' in {:?}",
                    super::size_text(Some(total)),
                    started.elapsed()
                );
                body
            }
            Err(e) => {
                warn!(
                    "Restore failed for stream '{acc} > {name}' in {:?}: {}",
                    started.elapsed(),
                    e.description
                );
                super::api::error_answer("stream_create_response", &e)
            }
        };
        if let (Some(reply), Some(server)) = (reply, self.server.upgrade()) {
            self.acc.client.publish(&server, &reply, None, b"", &body);
        }
    }

    /// Chunks into the temporary file until the empty one: its reply and
    /// the bytes received; or the reply to answer (if any) and the error.
    async fn receive(&mut self) -> Result<(String, i64), (Option<String>, ApiError)> {
        let name = self.config.name.clone();
        let mut file = std::fs::File::create(&self.file).map_err(|e| {
            (
                None,
                restore_failed(format!("creating {}: {e}", self.file.display())),
            )
        })?;
        let mut total = 0i64;
        loop {
            let m = match tokio::time::timeout(RESTORE_IDLE, self.rx.recv()).await {
                Ok(Some(m)) => m,
                Ok(None) => return Err((None, restore_failed("stopped"))),
                Err(_) => {
                    return Err((
                        None,
                        restore_failed(format!(
                            "restore for stream '{} > {name}' is stalled",
                            self.acc.name
                        )),
                    ))
                }
            };
            let Some(reply) = m.reply.clone() else {
                return Err((
                    None,
                    restore_failed(format!(
                        "restore for stream '{} > {name}' requires reply subject for each chunk",
                        self.acc.name
                    )),
                ));
            };
            if m.payload.is_empty() {
                file.sync_all()
                    .map_err(|e| (Some(reply.clone()), restore_failed(e)))?;
                return Ok((reply, total));
            }
            if let Err(e) = file.write_all(&m.payload) {
                return Err((Some(reply), restore_failed(e)));
            }
            total += m.payload.len() as i64;
            if let Some(server) = self.server.upgrade() {
                self.acc.client.publish(&server, &reply, None, b"", b"");
            }
        }
    }
}

/// Read the received snapshot on a blocking thread, as the items a
/// clustered restore replicates (a bounded queue: the file is not held in
/// memory).
fn read_items(path: std::path::PathBuf) -> super::cluster::restore::Items {
    use super::cluster::restore::{Item, Saved};
    use super::cluster::stream_sm::MirroredMsg;
    let (tx, rx) = mpsc::channel(256);
    tokio::task::spawn_blocking(move || {
        let read = || -> Result<(), String> {
            let file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
            let mut reader =
                format::Reader::new(std::io::BufReader::new(file)).map_err(|e| e.to_string())?;
            while let Some(r) = reader.next_record().map_err(|e| e.to_string())? {
                let item = match r {
                    Record::Meta(_) => continue,
                    Record::Msg(m) => Item::Msg(MirroredMsg {
                        seq: m.seq,
                        ts: m.ts,
                        subject: m.subject,
                        headers: m.headers.into(),
                        payload: m.payload.into(),
                    }),
                    Record::Consumer(c) => Item::Consumer(Box::new(Saved {
                        name: c.name,
                        config: c.config,
                        state: c.state,
                    })),
                };
                if tx.blocking_send(Ok(item)).is_err() {
                    return Ok(());
                }
            }
            Ok(())
        };
        if let Err(e) = read() {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

/// Read the received snapshot and make the stream from it: its messages
/// at their sequences and times, then its consumers with their state.
/// The stream takes no publishes until it is whole.
fn build(
    server: Weak<Server>,
    acc: &Arc<JsAccount>,
    config: StreamConfig,
    path: &std::path::Path,
) -> Result<Vec<u8>, ApiError> {
    let server = server
        .upgrade()
        .ok_or_else(|| restore_failed("server stopped"))?;
    let file = std::fs::File::open(path).map_err(restore_failed)?;
    let mut reader = format::Reader::new(std::io::BufReader::new(file)).map_err(restore_failed)?;
    let mut consumers = Vec::new();
    let stream = acc.restore_stream(&server, config, |store| {
        while let Some(r) = reader.next_record()? {
            match r {
                Record::Meta(_) => {}
                Record::Consumer(c) => consumers.push(c),
                Record::Msg(m) => {
                    let last = store.state().last_seq;
                    if m.seq <= last {
                        return Err(format!("invalid snapshot: sequence {} after {last}", m.seq));
                    }
                    if m.seq > last + 1 {
                        store.skip_to(m.seq - 1).map_err(|e| e.to_string())?;
                    }
                    store
                        .store_msg(&m.subject, &m.headers, &m.payload, m.ts)
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        store.sync().map_err(|e| e.to_string())
    })?;
    for c in consumers {
        match acc.create_consumer(&server, &stream, c.name.clone(), c.config) {
            Ok(made) => made.take_state(c.state),
            Err(e) => warn!(
                "Restore of stream '{} > {}': consumer {:?}: {e}",
                acc.name, stream.name, c.name
            ),
        }
    }
    Ok(super::api::answer(
        "stream_create_response",
        &super::api::stream_info(&server, &stream, None),
    ))
}
