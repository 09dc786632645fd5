//! Which server answers an account's JetStream API request in a cluster.
//!
//! Every JetStream server of the cluster receives every request of an
//! account (each serves `$JS.API.>` there), so exactly one must answer, as
//! in nats-server:
//! - the meta leader: account-wide requests, and creating, updating and
//!   deleting streams and moving their replicas (`STREAM.PEER.REMOVE`),
//!   which it decides and proposes to the meta group;
//! - a stream's leader: everything about that stream and its consumers
//!   (its replica holds the current state);
//! - nobody else. A request about a stream the meta group does not know
//!   is answered by the meta leader ("stream not found").
//!
//! Without leaders, as nats-server does once its lost-quorum interval has
//! passed ([`super::leadership::LOST_QUORUM`]): a replica of a leaderless
//! stream answers `STREAM.INFO` from its own copy (naming no leader) and
//! `CONSUMER.INFO` with 10008 ("JetStream system temporarily
//! unavailable"), and while the meta group has no working leader every
//! server answers the requests a leader would have answered with 10008,
//! the two info requests after a short delay that lets a stream leader
//! answer first. A client then learns the cluster is down
//! instead of waiting for its request to time out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};
use tracing::debug;

use super::meta::{MetaCommand, StreamAssignment};
use super::stream_sm::StreamEntry;
use super::JsCluster;
use crate::internal::OwnedMsg;
use crate::jetstream::errors::{self, ApiError};
use crate::jetstream::JsAccount;
use crate::server::Server;

/// What the account's API loop does with a request.
pub(crate) enum Decision {
    /// Answer it here with the ordinary handler.
    Local,
    /// Someone else answers it, or it is being answered by a task here.
    Done,
}

/// How long a create waits for the new stream's group to elect a leader
/// before answering without one.
const LEADER_WAIT: Duration = Duration::from_secs(5);

/// How long a server that does not lead a stream waits before it answers
/// `STREAM.INFO` with 10008, so that the leader's answer comes first
/// (nats-server's `errRespDelay`).
const UNAVAILABLE_DELAY: Duration = Duration::from_millis(500);

/// Decide who answers `api` (the subject after `$JS.API.`).
pub(crate) fn dispatch(
    c: &Arc<JsCluster>,
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    api: &str,
    m: &OwnedMsg,
) -> Decision {
    if c.mixed_with().is_some() {
        // Shared Raft with another implementation is impossible: refuse.
        if c.meta.is_leader() || c.meta.leader().is_none() {
            if let Some(reply) = &m.reply {
                let body = json!({ "error": ApiError::new(503, 10008,
                    "JetStream system temporarily unavailable") });
                acc.client
                    .publish(server, reply, None, b"", body.to_string().as_bytes());
            }
        }
        return Decision::Done;
    }
    let tokens: Vec<&str> = api.split('.').collect();
    if let Some(kind) = unavailable_kind(&tokens) {
        if c.meta.leaderless() {
            return without_meta_leader(c, acc, server, &tokens, kind, m);
        }
    }
    let meta_leader = c.meta.is_leader();
    let stream_of = |name: &str| -> Decision {
        match c.stream_group(&acc.name, name) {
            Some(g) if g.is_leader() => Decision::Local,
            // A leaderless stream's replica answers its info itself, and
            // says so for its consumers (nats-server's members of a
            // leaderless consumer group do).
            Some(g) if tokens.starts_with(&["STREAM", "INFO"]) && g.leaderless() => Decision::Local,
            Some(g) if tokens.starts_with(&["CONSUMER", "INFO"]) && g.leaderless() => {
                refuse(acc, server, m, "consumer_info_response", None);
                Decision::Done
            }
            Some(_) => Decision::Done,
            None if meta_leader && !c.meta.knows(&acc.name, name) => Decision::Local,
            None => Decision::Done,
        }
    };
    match tokens.as_slice() {
        ["STREAM", "CREATE", name] | ["STREAM", "UPDATE", name] | ["STREAM", "DELETE", name] => {
            if meta_leader {
                spawn_meta_op(c, acc, server, tokens[1], name, m);
            }
            Decision::Done
        }
        // A consumer's state lives with its stream's leader for now: its
        // leadership moves with the stream's.
        ["STREAM", "LEADER", "STEPDOWN", name] | ["CONSUMER", "LEADER", "STEPDOWN", name, _] => {
            match c.stream_group(&acc.name, name).filter(|g| g.is_leader()) {
                Some(g) => {
                    let kind = if tokens[0] == "STREAM" {
                        "stream_leader_stepdown_response"
                    } else {
                        "consumer_leader_stepdown_response"
                    };
                    spawn_stepdown(acc, server, m, kind, g);
                    Decision::Done
                }
                None => stream_of(name),
            }
        }
        ["STREAM", "PURGE", name] | ["STREAM", "MSG", "DELETE", name] => {
            match c.stream_group(&acc.name, name) {
                Some(g) if g.is_leader() => {
                    let request = m.payload.clone();
                    let (kind, entry) = if tokens[1] == "PURGE" {
                        ("stream_purge_response", StreamEntry::Purge { request })
                    } else {
                        (
                            "stream_msg_delete_response",
                            StreamEntry::DeleteMsg { request },
                        )
                    };
                    spawn_replicated(acc, server, m, g, kind, entry);
                    Decision::Done
                }
                _ => stream_of(name),
            }
        }
        // The meta leader moves replicas (nats-server's answerer too).
        ["STREAM", "PEER", "REMOVE", name] => {
            if meta_leader {
                spawn_meta_op(c, acc, server, "PEER.REMOVE", name, m);
            }
            Decision::Done
        }
        ["STREAM", "INFO", name]
        | ["STREAM", "MSG", "GET", name]
        | ["DIRECT", "GET", name, ..]
        | ["STREAM", "SNAPSHOT", name] => stream_of(name),
        ["CONSUMER", "CREATE", stream, ..]
        | ["CONSUMER", "DURABLE", "CREATE", stream, ..]
        | ["CONSUMER", "DELETE", stream, ..]
        | ["CONSUMER", "PAUSE", stream, _] => match c.stream_group(&acc.name, stream) {
            Some(g) if g.is_leader() => {
                // Every replica creates, pauses or deletes the consumer;
                // an ephemeral one is named here, once.
                let api = if tokens.len() == 3 && tokens[1] == "CREATE" && unnamed(&m.payload) {
                    format!("{api}.{}", crate::jetstream::api::ephemeral_name())
                } else {
                    api.to_string()
                };
                let kind = match tokens[1] {
                    "DELETE" => "consumer_delete_response",
                    "PAUSE" => "consumer_pause_response",
                    _ => "consumer_create_response",
                };
                let entry = super::stream_sm::StreamEntry::Consumer {
                    api,
                    request: m.payload.clone(),
                };
                spawn_replicated(acc, server, m, g, kind, entry);
                Decision::Done
            }
            _ => stream_of(stream),
        },
        // The leader resolves the sequence (an empty body means its ack
        // floor, which only it knows for sure) and every replica applies
        // that one.
        ["CONSUMER", "RESET", stream, name] => match c.stream_group(&acc.name, stream) {
            Some(g) if g.is_leader() => {
                let kind = crate::jetstream::api::RESET_RESPONSE;
                match crate::jetstream::api::reset_target(acc, stream, name, &m.payload) {
                    Ok(seq) => {
                        let entry = StreamEntry::Consumer {
                            api: api.to_string(),
                            request: json!({ "seq": seq }).to_string().into(),
                        };
                        spawn_replicated(acc, server, m, g, kind, entry);
                    }
                    Err(e) => {
                        if let Some(reply) = &m.reply {
                            let body = crate::jetstream::api::error_answer(kind, &e);
                            acc.client.publish(server, reply, None, b"", &body);
                        }
                    }
                }
                Decision::Done
            }
            _ => stream_of(stream),
        },
        ["CONSUMER", op, ..] => {
            // CONSUMER.<op>.<stream>... or CONSUMER.DURABLE.CREATE.<stream>...
            // and CONSUMER.MSG.NEXT.<stream>...
            let at = if matches!(*op, "DURABLE" | "MSG") {
                3
            } else {
                2
            };
            match tokens.get(at) {
                Some(stream) => stream_of(stream),
                None if meta_leader => Decision::Local,
                None => Decision::Done,
            }
        }
        _ if meta_leader => Decision::Local,
        _ => Decision::Done,
    }
}

/// While the meta group has no working leader, a request of `kind` (see
/// [`unavailable_kind`]): a replica answers `STREAM.INFO` of its own
/// stream while it leads or the stream has no leader either, and
/// `CONSUMER.INFO` while it leads; otherwise this server answers 10008,
/// the two info requests after [`UNAVAILABLE_DELAY`] unless it holds a
/// leaderless replica of the stream.
fn without_meta_leader(
    c: &Arc<JsCluster>,
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    tokens: &[&str],
    kind: &'static str,
    m: &OwnedMsg,
) -> Decision {
    let delay = match tokens {
        ["STREAM", "INFO", name] => match c.stream_group(&acc.name, name) {
            Some(g) if g.is_leader() || g.leaderless() => return Decision::Local,
            _ => Some(UNAVAILABLE_DELAY),
        },
        ["CONSUMER", "INFO", stream, _] => match c.stream_group(&acc.name, stream) {
            Some(g) if g.is_leader() => return Decision::Local,
            Some(g) if g.leaderless() => None,
            _ => Some(UNAVAILABLE_DELAY),
        },
        _ => None,
    };
    refuse(acc, server, m, kind, delay);
    Decision::Done
}

/// Answers `m` with 10008 in an answer of `kind`, after `delay` if any.
fn refuse(
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    m: &OwnedMsg,
    kind: &'static str,
    delay: Option<Duration>,
) {
    if let Some(reply) = m.reply.clone() {
        let body =
            crate::jetstream::api::error_answer(kind, &super::leadership::cluster_not_available());
        let (acc, server) = (acc.clone(), Arc::downgrade(server));
        let send = move || {
            if let Some(s) = server.upgrade() {
                acc.track_api(true);
                acc.client.publish(&s, &reply, None, b"", &body);
            }
        };
        match delay {
            None => send(),
            Some(d) => {
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    send();
                });
            }
        }
    }
}

/// The answer's type for the requests nats-server refuses with 10008
/// while its meta group has no leader; `None` for the others (a pull
/// request, a direct get), which are decided as usual.
fn unavailable_kind(tokens: &[&str]) -> Option<&'static str> {
    Some(match tokens {
        ["INFO"] => "account_info_response",
        ["STREAM", "CREATE", _] => "stream_create_response",
        ["STREAM", "UPDATE", _] => "stream_update_response",
        ["STREAM", "DELETE", _] => "stream_delete_response",
        ["STREAM", "INFO", _] => "stream_info_response",
        ["STREAM", "NAMES"] => "stream_names_response",
        ["STREAM", "LIST"] => "stream_list_response",
        ["STREAM", "PURGE", _] => "stream_purge_response",
        ["STREAM", "MSG", "GET", _] => "stream_msg_get_response",
        ["STREAM", "MSG", "DELETE", _] => "stream_msg_delete_response",
        ["STREAM", "LEADER", "STEPDOWN", _] => "stream_leader_stepdown_response",
        ["STREAM", "PEER", "REMOVE", _] => "stream_remove_peer_response",
        ["CONSUMER", "CREATE", ..] | ["CONSUMER", "DURABLE", "CREATE", ..] => {
            "consumer_create_response"
        }
        ["CONSUMER", "INFO", _, _] => "consumer_info_response",
        ["CONSUMER", "DELETE", ..] => "consumer_delete_response",
        ["CONSUMER", "NAMES", _] => "consumer_names_response",
        ["CONSUMER", "LIST", _] => "consumer_list_response",
        ["CONSUMER", "PAUSE", ..] => "consumer_pause_response",
        ["CONSUMER", "LEADER", "STEPDOWN", ..] => "consumer_leader_stepdown_response",
        _ => return None,
    })
}

/// A consumer create request without a name: the leader names it.
fn unnamed(payload: &[u8]) -> bool {
    let v: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    let cfg = &v["config"];
    let empty = |k: &str| cfg[k].as_str().is_none_or(str::is_empty);
    empty("name") && empty("durable_name")
}

/// A request that changes the stream or its consumers, through the
/// stream's Raft group: answered with the leader's result once a quorum
/// has it and the leader applied it.
fn spawn_replicated(
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    m: &OwnedMsg,
    g: Arc<super::stream_group::StreamGroup>,
    kind: &'static str,
    entry: StreamEntry,
) {
    let Some(reply) = m.reply.clone() else { return };
    let (acc, server) = (acc.clone(), Arc::downgrade(server));
    tokio::spawn(async move {
        // nats-server's consumer answers a reset itself, outside the API
        // handlers that count calls.
        let counted = kind != crate::jetstream::api::RESET_RESPONSE;
        let body = match g.propose_api(entry).await {
            Ok(body) => {
                if counted {
                    acc.track_api(false);
                }
                body
            }
            Err(e) => {
                if counted {
                    acc.track_api(true);
                }
                crate::jetstream::api::error_answer(kind, &e)
            }
        };
        if let Some(s) = server.upgrade() {
            acc.client.publish(&s, &reply, None, b"", &body);
        }
    });
}

fn spawn_stepdown(
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    m: &OwnedMsg,
    kind: &'static str,
    g: Arc<super::stream_group::StreamGroup>,
) {
    let Some(reply) = m.reply.clone() else { return };
    let placement = match super::stepdown::parse(&m.payload) {
        Ok(p) => p,
        Err(e) => {
            acc.track_api(true);
            let body = json!({ "type": format!("io.nats.jetstream.api.v1.{kind}"), "error": e });
            acc.client
                .publish(server, &reply, None, b"", body.to_string().as_bytes());
            return;
        }
    };
    let (acc, server) = (acc.clone(), Arc::downgrade(server));
    tokio::spawn(async move {
        let body = match g.step_down(placement.as_ref()).await {
            Ok(()) => {
                acc.track_api(false);
                json!({ "type": format!("io.nats.jetstream.api.v1.{kind}"), "success": true })
            }
            Err(e) => {
                acc.track_api(true);
                json!({ "type": format!("io.nats.jetstream.api.v1.{kind}"), "error": e })
            }
        };
        if let Some(s) = server.upgrade() {
            acc.client
                .publish(&s, &reply, None, b"", body.to_string().as_bytes());
        }
    });
}

/// Create, update or delete a stream, or move one of its replicas
/// (`op` is `CREATE`, `UPDATE`, `DELETE` or `PEER.REMOVE`): decided by the
/// meta leader, proposed to the meta group, answered once applied.
fn spawn_meta_op(
    c: &Arc<JsCluster>,
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    op: &str,
    name: &str,
    m: &OwnedMsg,
) {
    let Some(reply) = m.reply.clone() else { return };
    let (c, acc, srv) = (c.clone(), acc.clone(), Arc::downgrade(server));
    let (op, name, payload) = (op.to_string(), name.to_string(), m.payload.clone());
    tokio::spawn(async move {
        let _serial = c.admin.lock().await;
        let kind = match op.as_str() {
            "CREATE" => "stream_create_response",
            "UPDATE" => "stream_update_response",
            "PEER.REMOVE" => "stream_remove_peer_response",
            _ => "stream_delete_response",
        };
        let result = match op.as_str() {
            "CREATE" => create(&c, &acc, &srv, &name, &payload).await,
            "UPDATE" => update(&c, &acc, &srv, &name, &payload).await,
            "PEER.REMOVE" => super::replicas::remove_peer(&c, &acc, &name, &payload)
                .await
                .map(|()| json!({ "success": true })),
            _ => delete(&c, &acc, &name).await,
        };
        let Some(server) = srv.upgrade() else { return };
        let body = match result {
            Ok(v) => {
                acc.track_api(false);
                crate::jetstream::api::answer(kind, &v)
            }
            Err(e) => {
                debug!("JetStream API {op} {name:?}: {e}");
                acc.track_api(true);
                crate::jetstream::api::error_answer(kind, &e)
            }
        };
        acc.client.publish(&server, &reply, None, b"", &body);
    });
}

async fn create(
    c: &Arc<JsCluster>,
    acc: &Arc<JsAccount>,
    server: &std::sync::Weak<Server>,
    name: &str,
    payload: &[u8],
) -> Result<Value, ApiError> {
    let cfg = crate::jetstream::api::stream_config(payload)?;
    crate::jetstream::api::check_stream_create(&cfg)?;
    let peers_available = c.meta.voter_count();
    let cfg = crate::jetstream::api::normalize_stream(acc, cfg, name, Some(peers_available))?;
    let config = serde_json::to_string(&cfg).map_err(errors::stream_create)?;
    let others: Vec<crate::jetstream::types::StreamConfig> = c
        .meta
        .view()
        .read()
        .streams
        .get(&acc.name)
        .map(|streams| {
            streams
                .values()
                .filter_map(|sa| serde_json::from_str(&sa.config).ok())
                .collect()
        })
        .unwrap_or_default();
    crate::jetstream::limits::check_clustered_stream_create(acc, &cfg, &others)?;
    let existing = c.meta.view().read().stream(&acc.name, name).cloned();
    if let Some(sa) = existing {
        let old: crate::jetstream::types::StreamConfig =
            serde_json::from_str(&sa.config).map_err(errors::stream_create)?;
        if old != cfg {
            return Err(errors::stream_name_exist());
        }
        return info_after(c, acc, server, name, &cfg, false).await;
    }
    let replicas = usize::try_from(cfg.num_replicas).unwrap_or(1).max(1);
    let peers = c
        .meta
        .place(replicas)
        .ok_or_else(errors::no_suitable_peers)?;
    let sa = StreamAssignment {
        account: acc.name.clone(),
        config,
        group: group_name("S", replicas, &cfg.storage),
        peers,
        created: crate::jetstream::types::rfc3339(Some(std::time::SystemTime::now())),
        consumers: Default::default(),
    };
    c.meta.propose(MetaCommand::CreateStream(sa)).await?;
    info_after(c, acc, server, name, &cfg, true).await
}

async fn update(
    c: &Arc<JsCluster>,
    acc: &Arc<JsAccount>,
    server: &std::sync::Weak<Server>,
    name: &str,
    payload: &[u8],
) -> Result<Value, ApiError> {
    let sa = c.assignment(&acc.name, name)?;
    let old: crate::jetstream::types::StreamConfig =
        serde_json::from_str(&sa.config).map_err(errors::stream_update)?;
    let cfg = crate::jetstream::api::stream_config(payload)?;
    let cfg = crate::jetstream::api::normalize_stream(acc, cfg, name, Some(c.meta.voter_count()))?;
    crate::jetstream::api::check_stream_update(&old, &cfg)?;
    // The consumers' configurations: those the meta group assigned, and
    // those of this server's replica (consumers of a replicated stream are
    // created through its own group, so every replica has them).
    let mut consumers: Vec<(String, crate::jetstream::types::ConsumerConfig)> = sa
        .consumers
        .values()
        .filter_map(|ca| Some((ca.name.clone(), serde_json::from_str(&ca.config).ok()?)))
        .collect();
    if cfg.consumer_limits != old.consumer_limits {
        // The stream leader's list is current; this replica's is the
        // fallback when no leader answers.
        let leads = c
            .stream_group(&acc.name, name)
            .is_some_and(|g| g.is_leader());
        let remote = match server.upgrade() {
            Some(srv) if !leads => {
                super::remote::consumer_configs(&srv, acc, name, REMOTE_WAIT).await
            }
            _ => None,
        };
        let local = || -> Vec<(String, crate::jetstream::types::ConsumerConfig)> {
            acc.stream(name)
                .map(|s| {
                    s.consumers
                        .read()
                        .iter()
                        .map(|(n, c)| (n.clone(), c.config()))
                        .collect()
                })
                .unwrap_or_default()
        };
        for (n, cc) in remote.unwrap_or_else(local) {
            if !consumers.iter().any(|(m, _)| *m == n) {
                consumers.push((n, cc));
            }
        }
    }
    cfg.consumer_limits.check_update(
        &old.consumer_limits,
        consumers.iter().map(|(n, c)| (n.as_str(), c)),
    )?;
    crate::jetstream::limits::check_max_bytes(acc, &cfg)?;
    // Another replica count: servers are added or removed (also when an
    // earlier change left the stream with another count than configured).
    let replicas = usize::try_from(cfg.num_replicas).unwrap_or(1).max(1);
    let peers = if replicas == sa.peers.len() {
        sa.peers.clone()
    } else {
        let srv = server
            .upgrade()
            .ok_or_else(super::leadership::cluster_not_available)?;
        super::replicas::rescale(c, &srv, acc, &sa, name, replicas).await?
    };
    let config = serde_json::to_string(&cfg).map_err(errors::stream_update)?;
    c.meta
        .propose(MetaCommand::UpdateStream {
            account: acc.name.clone(),
            stream: name.to_string(),
            config,
            peers,
        })
        .await?;
    info_after(c, acc, server, name, &cfg, false).await
}

async fn delete(c: &Arc<JsCluster>, acc: &Arc<JsAccount>, name: &str) -> Result<Value, ApiError> {
    c.meta
        .propose(MetaCommand::DeleteStream {
            account: acc.name.clone(),
            stream: name.to_string(),
        })
        .await?;
    Ok(json!({ "success": true }))
}

/// The stream's info for a create or update answer: from this server's
/// replica once the group has a leader (a new stream is empty everywhere;
/// an updated one is read on its leader), otherwise from the leader over
/// the API; failing both within [`LEADER_WAIT`], whatever this server has
/// (its replica, or the assignment's configuration). Its `config` is the
/// one just recorded (`config`): replicas apply it a moment later.
async fn info_after(
    c: &Arc<JsCluster>,
    acc: &Arc<JsAccount>,
    server: &std::sync::Weak<Server>,
    name: &str,
    config: &crate::jetstream::types::StreamConfig,
    created: bool,
) -> Result<Value, ApiError> {
    let deadline = Instant::now() + LEADER_WAIT;
    let server = server
        .upgrade()
        .ok_or_else(super::leadership::cluster_not_available)?;
    let mut v = loop {
        let group = c.stream_group(&acc.name, name);
        let (leads, led) = group.as_ref().map_or((false, false), |g| {
            (g.is_leader(), g.leadership().leader.is_some())
        });
        if leads || (led && created) {
            break local_info(c, acc, &server, name)?;
        }
        // Another server leads, or this one holds no replica (a replica
        // placed here but not started yet is waited for).
        if led || (group.is_none() && !c.placed_here(&acc.name, name)) {
            if let Some(v) = super::remote::stream_info(&server, acc, name, REMOTE_WAIT).await {
                break leader_info(v);
            }
        }
        if Instant::now() > deadline {
            break local_info(c, acc, &server, name)?;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    v["config"] = serde_json::to_value(config).map_err(errors::stream_create)?;
    if created {
        v["did_create"] = Value::Bool(true);
    }
    Ok(v)
}

/// How long one question to the stream's leader may wait.
const REMOTE_WAIT: Duration = Duration::from_secs(1);

/// The stream's info from this server: its replica, or the assignment's
/// configuration (empty state) when it holds none.
fn local_info(
    c: &JsCluster,
    acc: &JsAccount,
    server: &Arc<Server>,
    name: &str,
) -> Result<Value, ApiError> {
    use crate::jetstream::types;
    if let Some(stream) = acc.stream(name) {
        return serde_json::to_value(crate::jetstream::api::stream_info(server, &stream, None))
            .map_err(errors::stream_create);
    }
    let sa = c.assignment(&acc.name, name)?;
    let config: Value = serde_json::from_str(&sa.config).map_err(errors::stream_create)?;
    let state = types::StreamState {
        first_ts: types::rfc3339_nanos(0),
        last_ts: types::rfc3339_nanos(0),
        ..Default::default()
    };
    Ok(json!({
        "config": config,
        "created": sa.created,
        "state": state,
        "cluster": { "name": server.cluster_name(), "raft_group": sa.group, "leader": "" },
        "ts": types::rfc3339(Some(std::time::SystemTime::now())),
    }))
}

/// The leader's STREAM.INFO answer as the body of another answer: without
/// its type and paging fields.
fn leader_info(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for k in ["type", "total", "offset", "limit"] {
            o.remove(k);
        }
    }
    v
}

/// A group name as nats-server forms them (`S-R3F-xxxxxxxx`): kind,
/// replicas, storage, and a random part unique in the domain.
pub(super) fn group_name(
    kind: &str,
    replicas: usize,
    storage: &crate::jetstream::types::Storage,
) -> String {
    let s = match storage {
        crate::jetstream::types::Storage::File => 'F',
        crate::jetstream::types::Storage::Memory => 'M',
    };
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..8)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("{kind}-R{replicas}{s}-{tail}")
}

#[cfg(test)]
mod tests {
    use super::unavailable_kind;

    #[test]
    fn requests_refused_without_a_meta_leader_get_their_answer_type() {
        let kind = |api: &str| unavailable_kind(&api.split('.').collect::<Vec<_>>());
        assert_eq!(kind("INFO"), Some("account_info_response"));
        assert_eq!(kind("STREAM.INFO.S"), Some("stream_info_response"));
        assert_eq!(kind("STREAM.NAMES"), Some("stream_names_response"));
        assert_eq!(kind("STREAM.MSG.GET.S"), Some("stream_msg_get_response"));
        assert_eq!(kind("CONSUMER.INFO.S.C"), Some("consumer_info_response"));
        assert_eq!(
            kind("STREAM.PEER.REMOVE.S"),
            Some("stream_remove_peer_response")
        );
        assert_eq!(
            kind("CONSUMER.CREATE.S.C.f"),
            Some("consumer_create_response")
        );
        assert_eq!(
            kind("CONSUMER.DURABLE.CREATE.S.C"),
            Some("consumer_create_response")
        );
        assert_eq!(
            kind("CONSUMER.LEADER.STEPDOWN.S.C"),
            Some("consumer_leader_stepdown_response")
        );
        // Decided as usual: a pull request, a direct get, a snapshot.
        assert_eq!(kind("CONSUMER.MSG.NEXT.S.C"), None);
        assert_eq!(kind("DIRECT.GET.S"), None);
        assert_eq!(kind("STREAM.SNAPSHOT.S"), None);
        assert_eq!(kind("STREAM.NAMES.EXTRA"), None);
    }
}
