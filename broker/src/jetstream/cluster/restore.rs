//! `STREAM.RESTORE` into a clustered JetStream. The meta leader answers
//! the request, receives the chunks and reads them
//! ([`crate::jetstream::backup`]), handing over what they hold as
//! [`Item`]s; this module makes the stream from them, replicated:
//!
//! 1. the stream is placed (with this server among its peers) under a
//!    quiet configuration: no subjects, mirror, sources, republish or
//!    subject transform, so nothing but the backup goes in;
//! 2. this server takes the lead of the new group (a stepdown request
//!    naming it, when another replica won the first election);
//! 3. the messages go through the group's Raft log in batches, each at its
//!    sequence and time (as a mirror's do), so every replica stores the
//!    same; then each consumer is created and given its saved state;
//! 4. the meta group gets the stream's real configuration, and the stream
//!    starts taking publishes and feeding from its origins.
//!
//! If any step fails the half-made stream is deleted again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::meta::{MetaCommand, StreamAssignment};
use super::stream_group::StreamGroup;
use super::stream_sm::{MirroredMsg, StreamEntry, StreamResponse};
use super::JsCluster;
use crate::jetstream::errors::{self, ApiError};
use crate::jetstream::store::ConsumerState;
use crate::jetstream::types::{ConsumerConfig, StreamConfig};
use crate::jetstream::JsAccount;
use crate::server::Server;

/// Messages (and bytes) per Raft entry.
const BATCH_MSGS: usize = 256;
const BATCH_BYTES: usize = 1 << 20;
/// How long the new group may take to elect a leader and hand it here,
/// and the stream to take its real configuration.
const SETTLE_WAIT: Duration = Duration::from_secs(10);
/// How long one handover request may wait for its answer.
const ASK_WAIT: Duration = Duration::from_secs(2);

/// What a backup holds, in order: its messages (ascending sequences),
/// then its consumers.
pub(crate) enum Item {
    Msg(MirroredMsg),
    Consumer(Box<Saved>),
}

/// A consumer of the backup, made once the messages are in.
pub(crate) struct Saved {
    pub name: String,
    pub config: ConsumerConfig,
    pub state: ConsumerState,
}

/// What [`restore`] reads from: the items, or why reading stopped.
pub(crate) type Items = mpsc::Receiver<Result<Item, String>>;

fn failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(500, 10062, format!("restore failed: {e}"))
}

/// The checks a restore makes before the chunks come, on the meta leader.
pub(crate) fn check(c: &JsCluster, acc: &JsAccount, config: &StreamConfig) -> Result<(), ApiError> {
    let view = c.meta.view().read();
    if view.stream(&acc.name, &config.name).is_some() {
        return Err(ApiError::new(
            400,
            10130,
            "stream name already in use, cannot restore",
        ));
    }
    let others: Vec<StreamConfig> = view
        .streams
        .get(&acc.name)
        .map(|s| {
            s.values()
                .filter_map(|sa| serde_json::from_str(&sa.config).ok())
                .collect()
        })
        .unwrap_or_default();
    drop(view);
    crate::jetstream::limits::check_clustered_stream_create(acc, config, &others)
}

/// Make the replicated stream `config` from `items`; the answer is its
/// `stream_create_response` body.
pub(crate) async fn restore(
    c: Arc<JsCluster>,
    acc: Arc<JsAccount>,
    server: Arc<Server>,
    config: StreamConfig,
    items: Items,
) -> Result<Vec<u8>, ApiError> {
    let peers = {
        let _serial = c.admin.lock().await;
        check(&c, &acc, &config)?;
        place_quietly(&c, &acc, &config).await?
    };
    let result = fill(&c, &acc, &server, &config, items, &peers).await;
    if result.is_err() {
        let _serial = c.admin.lock().await;
        let gone = MetaCommand::DeleteStream {
            account: acc.name.clone(),
            stream: config.name.clone(),
        };
        if let Err(e) = c.meta.propose(gone).await {
            warn!(
                "Restore of stream '{} > {}': removing the partial stream: {e}",
                acc.name, config.name
            );
        }
    }
    result
}

/// The configuration the stream is filled under: nothing reaches it but
/// the backup, and what it stores is not republished.
fn quiet(config: &StreamConfig) -> StreamConfig {
    let mut q = config.clone();
    q.subjects.clear();
    q.mirror = None;
    q.sources.clear();
    q.republish = None;
    q.subject_transform = None;
    q.sealed = false;
    // No delete markers of its own: they would take the sequences the
    // backup's messages go to.
    q.subject_delete_marker_ttl = 0;
    q
}

/// Propose the stream under its quiet configuration; its peers.
async fn place_quietly(
    c: &JsCluster,
    acc: &JsAccount,
    config: &StreamConfig,
) -> Result<Vec<u64>, ApiError> {
    let replicas = usize::try_from(config.num_replicas).unwrap_or(1).max(1);
    let mut peers = c
        .meta
        .place(replicas)
        .ok_or_else(errors::no_suitable_peers)?;
    // This server feeds the group: it must be one of its replicas.
    let me = c.meta.me();
    if !peers.contains(&me) {
        if let Some(last) = peers.last_mut() {
            *last = me;
        }
    }
    let sa = StreamAssignment {
        account: acc.name.clone(),
        config: serde_json::to_string(&quiet(config)).map_err(failed)?,
        group: super::requests::group_name("S", replicas, &config.storage),
        peers: peers.clone(),
        created: crate::jetstream::types::rfc3339(Some(std::time::SystemTime::now())),
        consumers: Default::default(),
    };
    c.meta.propose(MetaCommand::CreateStream(sa)).await?;
    Ok(peers)
}

async fn fill(
    c: &Arc<JsCluster>,
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    config: &StreamConfig,
    items: Items,
    peers: &[u64],
) -> Result<Vec<u8>, ApiError> {
    let name = config.name.as_str();
    let g = lead_here(c, acc, server, name).await?;
    let consumers = send_messages(&g, items).await?;
    for saved in consumers {
        let request = json!({ "stream_name": name, "config": saved.config });
        let entry = StreamEntry::Consumer {
            api: format!("CONSUMER.CREATE.{name}.{}", saved.name),
            request: request.to_string().into(),
        };
        if let Err(e) = g.propose_api(entry).await {
            warn!(
                "Restore of stream '{} > {name}': consumer {:?}: {e}",
                acc.name, saved.name
            );
            continue;
        }
        // The followers take the state from the log; this leader's copy
        // is where replicated state comes from.
        let made = acc
            .stream(name)
            .and_then(|s| s.consumers.read().get(&saved.name).cloned());
        if let Some(made) = made {
            made.take_state(saved.state.clone());
        }
        let state = StreamEntry::ConsumerState {
            name: saved.name,
            state: saved.state,
        };
        g.propose(state).await?;
    }
    {
        let _serial = c.admin.lock().await;
        c.meta
            .propose(MetaCommand::UpdateStream {
                account: acc.name.clone(),
                stream: name.to_string(),
                config: serde_json::to_string(config).map_err(failed)?,
                peers: peers.to_vec(),
            })
            .await?;
    }
    let stream = configured(acc, config).await?;
    Ok(crate::jetstream::api::answer(
        "stream_create_response",
        &crate::jetstream::api::stream_info(server, &stream, None),
    ))
}

/// Wait for this server's replica of the new stream and for it to lead,
/// asking the first leader to hand over when another replica won.
async fn lead_here(
    c: &JsCluster,
    acc: &JsAccount,
    server: &Arc<Server>,
    name: &str,
) -> Result<Arc<StreamGroup>, ApiError> {
    let deadline = Instant::now() + SETTLE_WAIT;
    let mut next_ask = Instant::now();
    loop {
        if let Some(g) = c.stream_group(&acc.name, name) {
            if g.is_leader() && !g.stream.is_passive() {
                return Ok(g);
            }
            if let Some(leader) = g.leadership().leader {
                if !g.is_leader() && Instant::now() >= next_ask {
                    next_ask = Instant::now() + Duration::from_secs(1);
                    let me = g.my_name();
                    let moved = super::remote::step_down_to(server, acc, name, &me, ASK_WAIT).await;
                    debug!("restore of {name:?}: {leader} asked to hand over to {me}: {moved}");
                }
            }
        }
        if Instant::now() > deadline {
            return Err(failed("this server could not lead the new stream"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Propose the messages in order, in batches; the consumers that follow.
async fn send_messages(g: &StreamGroup, mut rx: Items) -> Result<Vec<Saved>, ApiError> {
    let mut consumers = Vec::new();
    let mut batch: Vec<MirroredMsg> = Vec::with_capacity(BATCH_MSGS);
    let mut bytes = 0;
    let mut last = 0u64;
    while let Some(r) = rx.recv().await {
        match r.map_err(failed)? {
            Item::Consumer(c) => consumers.push(*c),
            Item::Msg(m) => {
                if m.seq <= last {
                    return Err(failed(format!(
                        "invalid snapshot: sequence {} after {last}",
                        m.seq
                    )));
                }
                last = m.seq;
                bytes += m.subject.len() + m.headers.len() + m.payload.len();
                batch.push(m);
                if batch.len() >= BATCH_MSGS || bytes >= BATCH_BYTES {
                    store(g, std::mem::take(&mut batch)).await?;
                    bytes = 0;
                }
            }
        }
    }
    if !batch.is_empty() {
        store(g, batch).await?;
    }
    Ok(consumers)
}

/// One batch through the group: committed on a quorum and stored here.
async fn store(g: &StreamGroup, msgs: Vec<MirroredMsg>) -> Result<(), ApiError> {
    match g.propose(StreamEntry::Mirrored { msgs }).await? {
        StreamResponse::Published(results) => {
            for r in results {
                match r {
                    Err(e) => return Err(failed(e.description)),
                    // Its sequence was taken already: the stream would
                    // not hold the backup as it was.
                    Ok((seq, true)) => return Err(failed(format!("sequence {seq} already taken"))),
                    Ok(_) => {}
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Wait for this server's stream to run under `config`.
async fn configured(
    acc: &JsAccount,
    config: &StreamConfig,
) -> Result<Arc<crate::jetstream::stream::Stream>, ApiError> {
    let deadline = Instant::now() + SETTLE_WAIT;
    loop {
        if let Some(s) = acc.stream(&config.name) {
            let now = s.config();
            if now.subjects == config.subjects
                && now.sources == config.sources
                && now.mirror == config.mirror
                && now.republish == config.republish
                && now.sealed == config.sealed
            {
                return Ok(s);
            }
        }
        if Instant::now() > deadline {
            return Err(failed("the restored stream did not take its configuration"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quiet_configuration_takes_nothing_in_and_sends_nothing_out() {
        let cfg: StreamConfig = serde_json::from_value(json!({
            "name": "S", "subjects": ["s.>"], "sealed": true, "max_msgs": 10,
            "sources": [{"name": "O"}],
            "republish": {"src": ">", "dest": "copy.>"},
            "subject_transform": {"src": "s.>", "dest": "t.>"}
        }))
        .unwrap();
        let q = quiet(&cfg);
        assert!(q.subjects.is_empty() && q.sources.is_empty() && q.mirror.is_none());
        assert!(q.republish.is_none() && q.subject_transform.is_none() && !q.sealed);
        assert_eq!((q.name.as_str(), q.max_msgs), ("S", 10));
    }
}
