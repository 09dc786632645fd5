//! The `$JS.API.>` requests, and the ack and flow-control subjects, for one
//! account. Requests are handled one at a time, in order, on the account's
//! API task; answers go to the request's reply subject in nats-server's
//! JSON (`type`, and `error: {code, err_code, description}` on failure).

use std::sync::{Arc, Weak};

use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::{debug, trace};

use super::consumer::{self, Ack};
use super::errors::{self, ApiError};
use super::headers;
use super::stream::Stream;
use super::types::{
    self, AckPolicy, ClusterInfo, ConsumerConfig, DeliverPolicy, MsgGetRequest, NextRequest,
    PriorityPolicy, PurgeRequest, Retention, StreamConfig, StreamInfo, StreamState,
    DEFAULT_DUPLICATE_WINDOW,
};
use super::JsAccount;
use crate::internal::OwnedMsg;
use crate::server::Server;

const API_PREFIX: &str = "$JS.API.";
/// The most replicas a stream or consumer may have (nats-server's limit).
const MAX_REPLICAS: i64 = 5;
const TYPE_PREFIX: &str = "io.nats.jetstream.api.v1.";
pub(crate) use super::account_info::API_LEVEL;

/// Serve the account's API, acks and flow-control replies until the server goes.
pub(crate) async fn serve(
    acc: Arc<JsAccount>,
    server: Weak<Server>,
    mut rx: mpsc::UnboundedReceiver<OwnedMsg>,
) {
    while let Some(m) = rx.recv().await {
        let Some(server) = server.upgrade() else {
            return;
        };
        if let Some(rest) = m.subject.strip_prefix("$JS.ACK.") {
            on_ack(&acc, &server, rest, &m);
        } else if let Some(rest) = m.subject.strip_prefix("$JS.FC.") {
            on_flow_control(&acc, &server, rest, &m);
        } else if let Some(api) = m.subject.strip_prefix(API_PREFIX) {
            trace!("JetStream API request {:?} in {:?}", m.subject, acc.name);
            let api = api.to_string();
            if let Some(c) = server.jetstream().and_then(|js| js.cluster()) {
                let c = c.clone();
                if let crate::jetstream::cluster::requests::Decision::Done =
                    crate::jetstream::cluster::requests::dispatch(&c, &acc, &server, &api, &m)
                {
                    continue;
                }
            }
            handle(&acc, &server, &api, &m);
        }
    }
}

/// `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>`
fn on_ack(acc: &JsAccount, server: &Server, rest: &str, m: &OwnedMsg) {
    let t: Vec<&str> = rest.split('.').collect();
    if t.len() < 7 {
        return;
    }
    let (stream, consumer) = (t[0], t[1]);
    let Ok(sseq) = t[3].parse::<u64>() else {
        return;
    };
    let Some(c) = acc
        .stream(stream)
        .and_then(|s| s.consumers.read().get(consumer).cloned())
    else {
        return;
    };
    // nats-server does not listen for acks to a `flow_control` consumer:
    // only its flow-control replies acknowledge.
    if c.ack_policy() == AckPolicy::FlowControl {
        return;
    }
    let ack = Ack::parse(&m.payload);
    let reply = m.reply.clone().unwrap_or_default();
    let next_reply = if matches!(ack, Ack::Next(_)) {
        reply.clone()
    } else {
        String::new()
    };
    c.ack(sseq, &ack, server, &next_reply);
    // An ack sent as a request (AckSync) is confirmed with an empty reply.
    if !reply.is_empty() && !matches!(ack, Ack::Next(_)) && !c.is_passive() {
        acc.client.publish(server, &reply, None, b"", b"");
    }
}

/// `$JS.FC.<stream>.<consumer>.<n>`
fn on_flow_control(acc: &JsAccount, server: &Server, rest: &str, m: &OwnedMsg) {
    let mut t = rest.split('.');
    let (Some(stream), Some(consumer)) = (t.next(), t.next()) else {
        return;
    };
    if let Some(c) = acc
        .stream(stream)
        .and_then(|s| s.consumers.read().get(consumer).cloned())
    {
        c.flow_control_reply(&m.subject, &m.headers, server);
    }
}

/// A JSON answer with its `type` first and the body's fields in their
/// declared order, as nats-server writes it; Go escapes <, > and & in strings.
pub(crate) fn answer<T: Serialize>(kind: &str, body: &T) -> Vec<u8> {
    let body = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_string());
    let rest = body
        .strip_prefix('{')
        .filter(|r| *r != "}")
        .map(|r| format!(",{r}"))
        .unwrap_or_else(|| "}".to_string());
    let text = format!("{{\"type\":\"{TYPE_PREFIX}{kind}\"{rest}");
    crate::monitor::gofmt::go_json_escape(text).into_bytes()
}

/// An error answer; some kinds keep their zero fields after the error, as
/// nats-server's response structs do. Public for the `jetstream_api` fuzz
/// target.
#[doc(hidden)]
pub fn error_answer(kind: &str, e: &ApiError) -> Vec<u8> {
    #[derive(Serialize)]
    struct Paged<'a, T: Serialize> {
        error: &'a ApiError,
        total: u64,
        offset: u64,
        limit: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        streams: Option<T>,
        #[serde(skip_serializing_if = "Option::is_none")]
        consumers: Option<T>,
    }
    let paged = |streams, consumers| Paged::<Value> {
        error: e,
        total: 0,
        offset: 0,
        limit: 0,
        streams,
        consumers,
    };
    match kind {
        "stream_info_response" => answer(kind, &paged(None, None)),
        "stream_names_response" => answer(kind, &paged(Some(Value::Null), None)),
        "stream_list_response" => answer(kind, &paged(Some(json!([])), None)),
        "consumer_names_response" | "consumer_list_response" => {
            answer(kind, &paged(None, Some(json!([]))))
        }
        "stream_purge_response" => answer(kind, &json!({ "error": e, "purged": 0 })),
        "consumer_pause_response" => answer(
            kind,
            &json!({ "error": e, "paused": false, "pause_until": types::rfc3339(None) }),
        ),
        RESET_RESPONSE => answer(kind, &json!({ "error": e, "reset_seq": 0 })),
        _ => answer(kind, &json!({ "error": e })),
    }
}

/// A request body: empty (or blank) is the default request, anything else
/// must be JSON for `T`. Public for the `jetstream_api` fuzz target.
#[doc(hidden)]
pub fn parse<T: DeserializeOwned + Default>(payload: &[u8]) -> Result<T, ApiError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let req = serde_json::from_slice(payload).map_err(errors::invalid_json)?;
    not_an_object(payload).map_or(Ok(req), Err)
}

/// nats-server decodes a request into a Go struct, which takes a JSON
/// object (or `null`) and nothing else; serde would also fill a struct from
/// an array, field by field (`[5]` as `{"seq":5}`), and a `Value` takes
/// any JSON. The refusal for a body that is valid JSON of another kind.
fn not_an_object(payload: &[u8]) -> Option<ApiError> {
    let kind = match payload.iter().find(|b| !b.is_ascii_whitespace())? {
        b'{' | b'n' => return None,
        b'[' => "array",
        b'"' => "string",
        b't' | b'f' => "bool",
        _ => "number",
    };
    Some(errors::invalid_json(format!(
        "json: cannot unmarshal {kind} into a request object"
    )))
}

fn handle(acc: &Arc<JsAccount>, server: &Arc<Server>, api: &str, m: &OwnedMsg) {
    // As in nats-server, a request without a reply subject is still served
    // (and counted); only its answer is dropped.
    let reply = m.reply.as_deref();
    let tokens: Vec<&str> = api.split('.').collect();
    let publish = |body: &[u8]| {
        if let Some(reply) = reply {
            acc.client.publish(server, reply, None, b"", body);
        }
    };
    let send = |body: Vec<u8>| {
        acc.track_api(false);
        publish(&body);
    };
    let respond = |kind: &str, r: Result<Vec<u8>, ApiError>| match r {
        Ok(body) => send(body),
        Err(e) => {
            debug!("JetStream API {api:?}: {e}");
            acc.track_api(true);
            publish(&error_answer(kind, &e));
        }
    };
    match tokens.as_slice() {
        ["INFO"] => {
            let remote = server
                .jetstream()
                .and_then(|js| js.cluster())
                .map(|c| c.usage.account(&acc.name))
                .unwrap_or_default();
            send(answer(
                "account_info_response",
                &super::account_info::body(acc, acc.limits(), remote),
            ))
        }
        ["STREAM", "CREATE", name] => respond(
            "stream_create_response",
            stream_create(acc, server, name, &m.payload),
        ),
        // Answered first, then the chunks flow (or are awaited).
        ["STREAM", "SNAPSHOT", name] => {
            match super::backup::snapshot_begin(acc, server, name, &m.payload) {
                Ok((body, job)) => {
                    send(body);
                    job.start();
                }
                Err(e) => respond("stream_snapshot_response", Err(e)),
            }
        }
        ["STREAM", "RESTORE", name] => {
            match super::backup::restore_begin(acc, server, name, &m.payload) {
                Ok((body, job)) => {
                    send(body);
                    job.start();
                }
                Err(e) => respond("stream_restore_response", Err(e)),
            }
        }
        ["STREAM", "UPDATE", name] => respond(
            "stream_update_response",
            stream_update(acc, server, name, &m.payload),
        ),
        ["STREAM", "INFO", name] => respond(
            "stream_info_response",
            with_stream(acc, name).and_then(|s| {
                let req: Value = parse(&m.payload)?;
                let filter = req
                    .get("subjects_filter")
                    .and_then(Value::as_str)
                    .filter(|f| !f.is_empty());
                let mut info =
                    serde_json::to_value(stream_info(server, &s, None)).unwrap_or_default();
                let totals = match filter {
                    Some(f) => s.inner.lock().store.subjects_totals(f),
                    None => Default::default(),
                };
                super::info_subjects::page(&mut info, totals, &req);
                if req.get("deleted_details").and_then(Value::as_bool) == Some(true) {
                    let deleted = deleted_seqs(&s);
                    if !deleted.is_empty() {
                        info["state"]["deleted"] = json!(deleted);
                    }
                }
                Ok(answer("stream_info_response", &info))
            }),
        ),
        ["STREAM", "LIST"] if paging(&m.payload).is_err() => respond(
            "stream_list_response",
            paging(&m.payload).map(|_| Vec::new()),
        ),
        ["STREAM", "NAMES"] if paging(&m.payload).is_err() => respond(
            "stream_names_response",
            paging(&m.payload).map(|_| Vec::new()),
        ),
        ["CONSUMER", "LIST", _] | ["CONSUMER", "NAMES", _] if paging(&m.payload).is_err() => {
            let kind = if tokens[1] == "LIST" {
                "consumer_list_response"
            } else {
                "consumer_names_response"
            };
            respond(kind, paging(&m.payload).map(|_| Vec::new()))
        }
        ["STREAM", "LIST"] => {
            let streams: Vec<StreamInfo> = acc
                .streams
                .read()
                .values()
                .map(|s| stream_info(server, s, None))
                .collect();
            let (total, offset, streams) = page(streams, &m.payload, 256);
            send(answer(
                "stream_list_response",
                &json!({"total": total, "offset": offset, "limit": 256, "streams": streams}),
            ))
        }
        ["STREAM", "NAMES"] => {
            let req: Value = parse(&m.payload).unwrap_or(Value::Null);
            let subject = req.get("subject").and_then(Value::as_str).unwrap_or("");
            let names: Vec<String> = acc
                .streams
                .read()
                .values()
                .filter(|s| {
                    subject.is_empty()
                        || s.config()
                            .subjects
                            .iter()
                            .any(|x| crate::permissions::overlaps(x, subject))
                })
                .map(|s| s.name.clone())
                .collect();
            let (total, offset, names) = page(names, &m.payload, 1024);
            send(answer(
                "stream_names_response",
                &json!({"total": total, "offset": offset, "limit": 1024, "streams": names}),
            ))
        }
        ["STREAM", "DELETE", name] => respond(
            "stream_delete_response",
            acc.delete_stream(server, name)
                .map(|()| answer("stream_delete_response", &json!({"success": true}))),
        ),
        ["STREAM", "PURGE", name] => {
            respond("stream_purge_response", stream_purge(acc, name, &m.payload))
        }
        // A message found goes straight back, outside the API layer, and
        // is not counted in nats-server; only failures are.
        ["STREAM", "MSG", "GET", name] => match msg_get(acc, name, &m.payload) {
            Ok(body) => publish(&body),
            Err(e) => respond("stream_msg_get_response", Err(e)),
        },
        ["STREAM", "MSG", "DELETE", name] => respond(
            "stream_msg_delete_response",
            msg_delete(acc, name, &m.payload),
        ),
        ["DIRECT", "GET", name, rest @ ..] => {
            if let Some(reply) = reply {
                super::direct_get::serve(acc, server, name, rest, reply, m)
            }
        }
        ["CONSUMER", "CREATE", stream, rest @ ..] => {
            let filter = (rest.len() > 1).then(|| rest[1..].join("."));
            respond(
                "consumer_create_response",
                consumer_create(
                    acc,
                    server,
                    stream,
                    rest.first().copied(),
                    filter.as_deref(),
                    false,
                    &m.payload,
                ),
            )
        }
        ["CONSUMER", "DURABLE", "CREATE", stream, durable] => respond(
            "consumer_create_response",
            consumer_create(acc, server, stream, Some(durable), None, true, &m.payload),
        ),
        ["CONSUMER", "INFO", stream, name] => respond(
            "consumer_info_response",
            with_consumer(acc, stream, name)
                .map(|c| answer("consumer_info_response", &c.info(server))),
        ),
        ["CONSUMER", "DELETE", stream, name] => respond(
            "consumer_delete_response",
            with_consumer(acc, stream, name).map(|_| {
                acc.delete_consumer(server, stream, name);
                answer("consumer_delete_response", &json!({"success": true}))
            }),
        ),
        ["CONSUMER", "PAUSE", stream, name] => respond(
            "consumer_pause_response",
            consumer_pause(acc, server, stream, name, &m.payload),
        ),
        ["CONSUMER", "UNPIN", stream, name] => respond(
            "consumer_unpin_response",
            consumer_unpin(acc, stream, name, &m.payload),
        ),
        // nats-server's consumer answers its reset itself, outside the API
        // handlers: not counted in `$JS.API.INFO`.
        ["CONSUMER", "RESET", stream, name] => publish(
            &consumer_reset(acc, server, stream, name, &m.payload)
                .unwrap_or_else(|e| error_answer(RESET_RESPONSE, &e)),
        ),
        ["CONSUMER", "LIST", stream] => respond(
            "consumer_list_response",
            with_stream(acc, stream).map(|s| {
                let list: Vec<_> = s
                    .consumers
                    .read()
                    .values()
                    .filter(|c| !c.is_direct())
                    .map(|c| c.info(server))
                    .collect();
                let (total, offset, list) = page(list, &m.payload, 256);
                answer(
                    "consumer_list_response",
                    &json!({"total": total, "offset": offset, "limit": 256, "consumers": list}),
                )
            }),
        ),
        ["CONSUMER", "NAMES", stream] => respond(
            "consumer_names_response",
            with_stream(acc, stream).map(|s| {
                let names: Vec<String> = s
                    .consumers
                    .read()
                    .iter()
                    .filter(|(_, c)| !c.is_direct())
                    .map(|(n, _)| n.clone())
                    .collect();
                let (total, offset, names) = page(names, &m.payload, 1024);
                answer(
                    "consumer_names_response",
                    &json!({"total": total, "offset": offset, "limit": 1024, "consumers": names}),
                )
            }),
        ),
        ["CONSUMER", "MSG", "NEXT", stream, name] => {
            let Some(reply) = reply else { return };
            match acc
                .stream(stream)
                .and_then(|s| s.consumers.read().get(*name).cloned())
            {
                Some(c) => match next_request(&m.payload) {
                    Ok(req) => c.add_request(reply, req, server),
                    Err(desc) => {
                        let h = headers::build(Some((400, &desc)), &[]);
                        acc.client.publish(server, reply, None, &h, b"");
                    }
                },
                None => {
                    let h = super::direct_get::no_responders(&m.subject);
                    acc.client.publish(server, reply, None, &h, b"");
                }
            }
        }
        // nats-server has no handler there: the request goes unanswered.
        _ => {}
    }
}

/// A paging request body must be JSON when given.
fn paging(payload: &[u8]) -> Result<usize, ApiError> {
    let v: Value = parse(payload)?;
    Ok(v.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize)
}

/// One page of a listing: (total, offset, the items from `offset`, at most `limit`).
fn page<T>(items: Vec<T>, payload: &[u8], limit: usize) -> (usize, usize, Vec<T>) {
    let offset = paging(payload).unwrap_or(0);
    let total = items.len();
    (
        total,
        offset,
        items.into_iter().skip(offset).take(limit).collect(),
    )
}

fn with_stream(acc: &JsAccount, name: &str) -> Result<Arc<Stream>, ApiError> {
    acc.stream(name).ok_or_else(errors::stream_not_found)
}

fn with_consumer(
    acc: &JsAccount,
    stream: &str,
    name: &str,
) -> Result<Arc<consumer::Consumer>, ApiError> {
    let s = with_stream(acc, stream)?;
    let c = s.consumers.read().get(name).cloned();
    c.ok_or_else(errors::consumer_not_found)
}

/// Interior deletes, for `deleted_details` (bounded: huge gaps are not listed).
fn deleted_seqs(s: &Stream) -> Vec<u64> {
    const MAX: u64 = 100_000;
    let inner = s.inner.lock();
    let st = inner.store.state();
    if st.num_deleted == 0 || st.last_seq.saturating_sub(st.first_seq) > MAX {
        return Vec::new();
    }
    (st.first_seq..=st.last_seq)
        .filter(|seq| matches!(inner.store.load(*seq), Ok(None)))
        .collect()
}

pub(crate) fn stream_info(server: &Server, s: &Stream, filter: Option<&str>) -> StreamInfo {
    let inner = s.inner.lock();
    let st = inner.store.state();
    let subjects = filter.map(|f| inner.store.subjects_totals(f));
    let config = inner.config.clone();
    drop(inner);
    let (mirror, sources) = s.feed_info();
    StreamInfo {
        config,
        created: types::rfc3339(Some(s.created)),
        state: StreamState {
            messages: st.msgs,
            bytes: st.bytes,
            first_seq: st.first_seq,
            first_ts: types::rfc3339_nanos(if st.msgs > 0 { st.first_ts } else { 0 }),
            last_seq: st.last_seq,
            last_ts: types::rfc3339_nanos(st.last_ts),
            num_deleted: st.num_deleted,
            num_subjects: st.num_subjects,
            subjects,
            consumer_count: s.public_consumers(),
        },
        cluster: cluster_info(server, s),
        mirror,
        sources,
        ts: types::rfc3339(Some(std::time::SystemTime::now())),
    }
}

/// The `cluster` section of a stream's (or its consumers') info, as
/// nats-server fills it: this server alone when it runs by itself; the
/// cluster's name and this server as leader for a single-replica stream
/// (nats-server runs no Raft node for those); otherwise the stream's Raft
/// group as this replica sees it, its traffic in the system account.
pub(crate) fn cluster_info(server: &Server, s: &Stream) -> ClusterInfo {
    let Some(cluster) = server.jetstream().and_then(|js| js.cluster().cloned()) else {
        return ClusterInfo {
            leader: server.name.clone(),
            ..Default::default()
        };
    };
    let replicated = s.inner.lock().config.num_replicas > 1;
    let group = s
        .account
        .upgrade()
        .and_then(|acc| cluster.stream_group(&acc.name, &s.name))
        .filter(|_| replicated);
    let Some(g) = group else {
        return ClusterInfo {
            name: Some(server.cluster_name()),
            leader: server.name.clone(),
            ..Default::default()
        };
    };
    let lead = g.leadership();
    ClusterInfo {
        name: Some(server.cluster_name()),
        raft_group: Some(g.group.clone()),
        leader: lead.leader.unwrap_or_default(),
        leader_since: g.leader_since().map(|t| types::rfc3339(Some(t))),
        system_account: true,
        traffic_account: Some(server.system_account().name.clone()),
        replicas: lead
            .replicas
            .into_iter()
            .map(|r| types::PeerInfo {
                name: r.name,
                current: r.current,
                active: r
                    .active
                    .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
                lag: r.lag,
                peer: crate::raft::peer_id(r.id),
            })
            .collect(),
    }
}

/// nats-server's defaults and checks for a stream configuration.
/// `servers`: the JetStream servers of the cluster, `None` when this server
/// is not clustered (replicas beyond 1 are refused then).
pub(crate) fn normalize_stream(
    acc: &JsAccount,
    c: StreamConfig,
    name: &str,
    servers: Option<usize>,
) -> Result<StreamConfig, ApiError> {
    let streams: std::collections::BTreeMap<String, StreamConfig> = acc
        .streams
        .read()
        .iter()
        .map(|(n, s)| (n.clone(), s.config()))
        .collect();
    normalize_stream_config(
        c,
        name,
        servers,
        acc.server_limits.duplicate_window,
        &streams,
    )
}

/// [`normalize_stream`] without the account: `duplicate_window_limit` is
/// the server's `limits { duplicate_window }` (zero: none) and `streams`
/// the account's streams by name (the one being checked included when it
/// exists). Public for the `jetstream_api` fuzz target, which checks
/// configurations the way stream create and update do.
#[doc(hidden)]
pub fn normalize_stream_config(
    mut c: StreamConfig,
    name: &str,
    servers: Option<usize>,
    duplicate_window_limit: std::time::Duration,
    streams: &std::collections::BTreeMap<String, StreamConfig>,
) -> Result<StreamConfig, ApiError> {
    if c.name != name {
        return Err(errors::stream_mismatch());
    }
    if name.contains(['/', '\\']) {
        return Err(errors::stream_name_path());
    }
    if name.is_empty() || name.contains(['.', '*', '>']) || name.chars().any(char::is_whitespace) {
        return Err(errors::stream_invalid_config(
            "stream name is required and can not contain '.', '*', '>', '\\', '/'",
        ));
    }
    if c.description.as_deref() == Some("") {
        c.description = None;
    }
    // nats-server reports the default storage compression as "none"
    // (Tribune's stores keep messages uncompressed whatever it says).
    match c.extra.get("compression").and_then(Value::as_str) {
        None | Some("") => {
            c.extra
                .insert("compression".to_string(), Value::String("none".into()));
        }
        Some("none" | "s2") => {}
        Some(_) => return Err(errors::invalid_json("unknown compression algorithm")),
    }
    if c.num_replicas < 0 {
        return Err(errors::replicas_negative());
    }
    match servers {
        None if c.num_replicas > 1 => return Err(errors::replicas_not_supported()),
        Some(_) if c.num_replicas > MAX_REPLICAS => {
            return Err(errors::stream_invalid_config(format!(
                "maximum replicas is {MAX_REPLICAS}"
            )))
        }
        Some(n) if c.num_replicas as usize > n => return Err(errors::no_suitable_peers()),
        _ => {}
    }
    if c.num_replicas == 0 {
        c.num_replicas = 1;
    }
    // Unset (0) and any negative limit mean unlimited, reported as -1.
    for v in [
        &mut c.max_msgs,
        &mut c.max_bytes,
        &mut c.max_consumers,
        &mut c.max_msgs_per_subject,
    ] {
        if *v <= 0 {
            *v = -1;
        }
    }
    if c.max_msg_size <= 0 {
        c.max_msg_size = -1;
    }
    if c.discard_new_per_subject {
        if c.discard != types::Discard::New {
            return Err(errors::stream_invalid_config(
                "discard new per subject requires discard new policy to be set",
            ));
        }
        if c.max_msgs_per_subject <= 0 {
            return Err(errors::stream_invalid_config(
                "discard new per subject requires max msgs per subject > 0",
            ));
        }
    }
    if c.max_age < 0 {
        return Err(errors::stream_invalid_config("max age can not be negative"));
    }
    if c.max_age > 0 && c.max_age < 100_000_000 {
        return Err(errors::stream_invalid_config(
            "max age needs to be >= 100ms",
        ));
    }
    if c.duplicate_window < 0 {
        return Err(errors::stream_invalid_config(
            "duplicates window can not be negative",
        ));
    }
    // The server's `limits { duplicate_window }` lowers the default and
    // caps what a stream may ask for, as in nats-server.
    let dw_limit = types::nanos(duplicate_window_limit);
    if c.duplicate_window == 0 && c.mirror.is_none() && c.sources.is_empty() {
        let mut dw = types::nanos(DEFAULT_DUPLICATE_WINDOW);
        if dw_limit > 0 && dw > dw_limit {
            dw = dw_limit;
        }
        c.duplicate_window = if c.max_age > 0 && c.max_age < dw {
            c.max_age
        } else {
            dw
        };
    }
    if c.max_age > 0 && c.duplicate_window > c.max_age {
        return Err(errors::stream_invalid_config(
            "duplicates window can not be larger then max age",
        ));
    }
    if dw_limit > 0 && c.duplicate_window > dw_limit {
        return Err(errors::stream_invalid_config(format!(
            "duplicates window can not be larger then server limit of {}",
            crate::monitor::gofmt::go_duration(u64::try_from(dw_limit).unwrap_or(0))
        )));
    }
    // Markers need TTLs (their own) and roll-ups (how they replace what
    // they mark): turned on for them, as nats-server does when the
    // request is not pedantic.
    if c.subject_delete_marker_ttl > 0 {
        if c.subject_delete_marker_ttl < 1_000_000_000 {
            return Err(errors::stream_invalid_config(
                "subject delete marker TTL must be at least 1 second",
            ));
        }
        c.allow_msg_ttl = true;
        if !c.allow_rollup_hdrs {
            c.allow_rollup_hdrs = true;
            c.deny_purge = false;
        }
    } else if c.subject_delete_marker_ttl < 0 {
        return Err(errors::stream_invalid_config(
            "subject delete marker TTL must not be negative",
        ));
    }
    // A mirror takes no subjects of its own, nor does a stream that only
    // sources; any other gets its name as its subject.
    if c.subjects.is_empty() && c.mirror.is_none() && c.sources.is_empty() {
        c.subjects = vec![c.name.clone()];
    }
    for (i, s) in c.subjects.iter().enumerate() {
        if !crate::subject::is_valid(s.as_bytes()) {
            return Err(errors::stream_invalid_config("invalid subject"));
        }
        if !c.no_ack && s == ">" {
            return Err(errors::stream_invalid_config(
                "capturing all subjects requires no-ack to be true",
            ));
        }
        if !c.no_ack && crate::permissions::overlaps(s, "$JS.API.>") {
            return Err(errors::stream_invalid_config(
                "subjects that overlap with jetstream api require no-ack to be true",
            ));
        }
        if let Some(other) = c.subjects[..i]
            .iter()
            .find(|o| crate::permissions::overlaps(o, s))
        {
            return Err(errors::stream_invalid_config(format!(
                "subject {s:?} overlaps with {other:?}"
            )));
        }
    }
    for (other, theirs) in streams {
        if *other == c.name {
            continue;
        }
        let theirs = &theirs.subjects;
        if c.subjects
            .iter()
            .any(|a| theirs.iter().any(|b| crate::permissions::overlaps(a, b)))
        {
            return Err(errors::subjects_overlap());
        }
    }
    super::sourcing::config::check(
        &c.name,
        &c.subjects,
        c.max_msg_size,
        c.subject_delete_marker_ttl,
        c.mirror.as_ref(),
        &c.sources,
        &c.extra,
        &|n| {
            streams.get(n).map(|oc| super::sourcing::config::Origin {
                max_msg_size: oc.max_msg_size,
                subjects: oc.subjects.clone(),
                mirror: oc
                    .mirror
                    .as_ref()
                    .filter(|m| m.external.is_none())
                    .map(|m| m.name.clone()),
                sources: oc.sources.clone(),
            })
        },
    )?;
    if let Some(m) = &c.mirror {
        // Direct gets of a mirror follow its origin's.
        if m.external.is_none() {
            if let Some(o) = streams.get(&m.name) {
                c.mirror_direct = o.allow_direct;
            }
        }
    }
    if let Some(t) = &c.subject_transform {
        super::subject_transform::validate(t)?;
    }
    if let Some(rp) = c.republish.as_mut() {
        super::republish::normalize(rp, &c.subjects, c.subject_transform.as_ref())?;
    }
    Ok(c)
}

/// A stream configuration from a request body; an empty body is an
/// unnamed configuration (which then does not match the subject). Public
/// for the `jetstream_api` fuzz target.
#[doc(hidden)]
pub fn stream_config(payload: &[u8]) -> Result<StreamConfig, ApiError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_slice(b"{}").map_err(errors::invalid_json);
    }
    serde_json::from_slice(payload).map_err(errors::invalid_json)
}

fn stream_create(
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    name: &str,
    payload: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let _admin = acc.admin.lock();
    let cfg = stream_config(payload)?;
    check_stream_create(&cfg)?;
    let cfg = normalize_stream(acc, cfg, name, None)?;
    // Before the "already exists" answer, as in nats-server.
    super::limits::check_stream_create(server.jetstream().map(|j| &**j), acc, &cfg)?;
    if let Some(existing) = acc.stream(name) {
        if existing.config() == cfg {
            return Ok(answer(
                "stream_create_response",
                &stream_info(server, &existing, None),
            ));
        }
        return Err(errors::stream_name_exist());
    }
    let s = acc.create_stream(server, cfg)?;
    let mut v = serde_json::to_value(stream_info(server, &s, None)).unwrap_or_default();
    // A server of its own answers a create without the `cluster` section
    // (nats-server's create response has none; STREAM.INFO has it).
    if let Some(o) = v.as_object_mut() {
        o.remove("cluster");
    }
    v["did_create"] = Value::Bool(true);
    Ok(answer("stream_create_response", &v))
}

/// What nats-server refuses of a stream create alone (not of an update):
/// a sealed stream, and `mirror_direct` without a mirror. Public for the
/// `jetstream_api` fuzz target.
#[doc(hidden)]
pub fn check_stream_create(cfg: &StreamConfig) -> Result<(), ApiError> {
    if cfg.sealed {
        return Err(errors::stream_invalid_config(
            "stream configuration for create can not be sealed",
        ));
    }
    if cfg.mirror_direct && cfg.mirror.is_none() {
        return Err(errors::stream_invalid_config(
            "stream has no mirror but does have mirror direct",
        ));
    }
    Ok(())
}

fn stream_update(
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    name: &str,
    payload: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let _admin = acc.admin.lock();
    let cfg = stream_config(payload)?;
    let s = with_stream(acc, name)?;
    let cfg = normalize_stream(acc, cfg, name, None)?;
    let old = s.config();
    check_stream_update(&old, &cfg)?;
    let consumers: Vec<(String, ConsumerConfig)> = s
        .consumers
        .read()
        .iter()
        .map(|(n, c)| (n.clone(), c.config()))
        .collect();
    cfg.consumer_limits.check_update(
        &old.consumer_limits,
        consumers.iter().map(|(n, c)| (n.as_str(), c)),
    )?;
    super::limits::check_stream_update(server.jetstream().map(|j| &**j), acc, &s.config(), &cfg)?;
    acc.update_stream(server, &s, cfg)?;
    Ok(answer(
        "stream_update_response",
        &stream_info(server, &s, None),
    ))
}

/// What a stream update may not change. Public for the `jetstream_api`
/// fuzz target.
#[doc(hidden)]
pub fn check_stream_update(old: &StreamConfig, cfg: &StreamConfig) -> Result<(), ApiError> {
    if old.storage != cfg.storage {
        return Err(errors::stream_invalid_config(
            "stream configuration update can not change storage type",
        ));
    }
    if old.retention != cfg.retention
        && (old.retention == Retention::WorkQueue || cfg.retention == Retention::WorkQueue)
    {
        return Err(errors::stream_invalid_config(
            "stream configuration update can not change retention policy to/from workqueue",
        ));
    }
    if old.sealed && !cfg.sealed {
        return Err(errors::stream_update(
            "stream configuration update can not unseal a sealed stream",
        ));
    }
    if cfg.mirror.is_some() && cfg.mirror != old.mirror {
        return Err(ApiError::new(
            400,
            10055,
            "stream mirror configuration can not be updated",
        ));
    }
    if old.allow_msg_ttl && !cfg.allow_msg_ttl {
        return Err(errors::stream_invalid_config(
            "message TTL status can not be disabled",
        ));
    }
    Ok(())
}

pub(crate) fn stream_purge(
    acc: &JsAccount,
    name: &str,
    payload: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let s = with_stream(acc, name)?;
    let req: PurgeRequest = parse(payload)?;
    let (purged, removed) = {
        let mut inner = s.inner.lock();
        if inner.config.deny_purge {
            return Err(errors::purge_failed("stream purge not permitted"));
        }
        if inner.config.sealed {
            return Err(errors::sealed());
        }
        if req.seq > 0 && req.keep > 0 {
            return Err(errors::bad_request());
        }
        let filter = req.filter.as_deref().unwrap_or("");
        let n = inner
            .store
            .purge(filter, req.seq, req.keep)
            .map_err(errors::purge_failed)?;
        inner.store.sync().map_err(errors::purge_failed)?;
        let state = inner.store.state();
        (n, state.first_seq.saturating_sub(1))
    };
    // Consumers drop pending deliveries that were purged.
    if removed > 0 {
        s.forget(&[1..=removed]);
    }
    Ok(answer(
        "stream_purge_response",
        &json!({"success": true, "purged": purged}),
    ))
}

fn find_msg(s: &Stream, req: &MsgGetRequest) -> Result<super::store::StoredMsg, ApiError> {
    let inner = s.inner.lock();
    let found = match (&req.last_by_subj, &req.next_by_subj) {
        (Some(_), _) if req.seq > 0 => return Err(errors::bad_request()),
        (Some(_), Some(_)) => return Err(errors::bad_request()),
        (Some(subj), _) => inner.store.load_last(subj),
        (None, Some(subj)) => inner.store.load_next(subj, req.seq.max(1)),
        (None, None) if req.seq > 0 => inner.store.load(req.seq),
        _ => return Err(errors::bad_request()),
    };
    found
        .map_err(errors::store_failed)?
        .ok_or_else(errors::no_message_found)
}

fn msg_get(acc: &JsAccount, name: &str, payload: &[u8]) -> Result<Vec<u8>, ApiError> {
    let s = with_stream(acc, name)?;
    let req: MsgGetRequest = parse(payload)?;
    let m = find_msg(&s, &req)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(answer(
        "stream_msg_get_response",
        &json!({"message": types::StoredMsgJson {
            subject: m.subject,
            seq: m.seq,
            hdrs: (!m.headers.is_empty()).then(|| b64.encode(&m.headers)),
            data: (!m.payload.is_empty()).then(|| b64.encode(&m.payload)),
            time: types::rfc3339_nanos(m.ts),
        }}),
    ))
}

pub(crate) fn msg_delete(acc: &JsAccount, name: &str, payload: &[u8]) -> Result<Vec<u8>, ApiError> {
    let s = with_stream(acc, name)?;
    let req: Value = parse(payload)?;
    let seq = req.get("seq").and_then(Value::as_u64).unwrap_or(0);
    let removed = {
        let mut inner = s.inner.lock();
        if inner.config.deny_delete {
            return Err(errors::msg_delete_failed("message delete not permitted"));
        }
        if inner.config.sealed {
            return Err(errors::sealed());
        }
        let ok = inner.store.remove(seq).map_err(errors::msg_delete_failed)?;
        if ok {
            inner.store.sync().map_err(errors::msg_delete_failed)?;
        }
        ok
    };
    if !removed {
        let last = s.inner.lock().store.state().last_seq;
        let why = if seq > last {
            "stream store EOF"
        } else {
            "no message found"
        };
        return Err(errors::msg_delete_failed(why));
    }
    s.forget(&[seq..=seq]);
    Ok(answer(
        "stream_msg_delete_response",
        &json!({"success": true}),
    ))
}

/// A `CONSUMER.MSG.NEXT` body (empty, a number, or JSON); the error is the
/// description of the 400 status that answers it. Public for the
/// `jetstream_api` fuzz target.
#[doc(hidden)]
pub fn next_request(payload: &[u8]) -> Result<NextRequest, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "Bad Request".to_string())?;
    let t = text.trim();
    if t.is_empty() {
        return Ok(NextRequest {
            batch: 1,
            ..Default::default()
        });
    }
    if let Ok(n) = t.parse::<i64>() {
        return Ok(NextRequest {
            batch: n.max(1),
            ..Default::default()
        });
    }
    // Neither a number nor a JSON object (an array, say): one message, as
    // nats-server's `nextReqFromMsg` reads it.
    if !t.starts_with('{') {
        return Ok(NextRequest {
            batch: 1,
            ..Default::default()
        });
    }
    let mut req =
        serde_json::from_str::<NextRequest>(t).map_err(|e| format!("Bad Request - {e}"))?;
    req.structured = true;
    // Heartbeats must fit twice into the wait (nats-server's rule).
    if req.idle_heartbeat > 0 && req.idle_heartbeat.saturating_mul(2) > req.expires {
        return Err("Bad Request - heartbeat value too large".to_string());
    }
    Ok(req)
}

/// A fresh ephemeral consumer name: 8 characters, as nats-server makes them.
pub(crate) fn ephemeral_name() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..8)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A `CONSUMER.CREATE` / `CONSUMER.DURABLE.CREATE` body. Public for the
/// `jetstream_api` fuzz target.
#[doc(hidden)]
#[derive(Debug, serde::Deserialize, Default)]
pub struct CreateRequest {
    #[serde(default)]
    pub stream_name: String,
    #[serde(default)]
    pub config: ConsumerConfig,
    #[serde(default)]
    pub action: String,
}

#[allow(clippy::too_many_arguments)]
/// A request that creates or deletes a consumer (`api` after `$JS.API.`),
/// as every replica of a replicated stream applies it.
pub(crate) fn consumer_change(
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    api: &str,
    payload: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let tokens: Vec<&str> = api.split('.').collect();
    match tokens.as_slice() {
        ["CONSUMER", "CREATE", stream, rest @ ..] => {
            let filter = (rest.len() > 1).then(|| rest[1..].join("."));
            consumer_create(
                acc,
                server,
                stream,
                rest.first().copied(),
                filter.as_deref(),
                false,
                payload,
            )
        }
        ["CONSUMER", "DURABLE", "CREATE", stream, durable] => {
            consumer_create(acc, server, stream, Some(durable), None, true, payload)
        }
        ["CONSUMER", "DELETE", stream, name] => with_consumer(acc, stream, name).map(|_| {
            acc.delete_consumer(server, stream, name);
            answer("consumer_delete_response", &json!({"success": true}))
        }),
        ["CONSUMER", "PAUSE", stream, name] => consumer_pause(acc, server, stream, name, payload),
        ["CONSUMER", "RESET", stream, name] => consumer_reset(acc, server, stream, name, payload),
        _ => Err(errors::bad_request()),
    }
}

/// `CONSUMER.UNPIN.<stream>.<consumer>` with `{"group": ...}`: the group's
/// pinned client loses its pin. Checked in nats-server's order: the body,
/// then the stream and consumer, then the group. Answered by the copy that
/// delivers (pins are not replicated).
fn consumer_unpin(
    acc: &JsAccount,
    stream: &str,
    name: &str,
    payload: &[u8],
) -> Result<Vec<u8>, ApiError> {
    #[derive(serde::Deserialize)]
    struct UnpinRequest {
        #[serde(default)]
        group: String,
    }
    let req: UnpinRequest = serde_json::from_slice(payload).map_err(errors::invalid_json)?;
    if let Some(e) = not_an_object(payload) {
        return Err(e);
    }
    if req.group.is_empty() {
        return Err(errors::invalid_json("consumer group not specified"));
    }
    if !valid_group_name(&req.group) {
        return Err(invalid_group_name());
    }
    let c = with_consumer(acc, stream, name)?;
    if !c.config().priority_groups.contains(&req.group) {
        return Err(ApiError::new(
            400,
            10160,
            "Provided priority group does not exist for this consumer",
        ));
    }
    c.unpin();
    Ok(answer("consumer_unpin_response", &json!({})))
}

/// The kind of a `CONSUMER.RESET` answer.
pub(crate) const RESET_RESPONSE: &str = "consumer_reset_response";

/// The stream sequence a `CONSUMER.RESET` body (`{"seq": N}`, or empty
/// for "back to the ack floor") resets `name` to, checked against the
/// consumer's deliver policy. A replicated stream's leader resolves it
/// before proposing, so every replica applies the same sequence.
pub(crate) fn reset_target(
    acc: &JsAccount,
    stream: &str,
    name: &str,
    payload: &[u8],
) -> Result<u64, ApiError> {
    resolve_reset(acc, stream, name, payload).map(|(_, seq)| seq)
}

/// The consumer a `CONSUMER.RESET` names and the sequence it goes to (the
/// body is read first, as nats-server does).
fn resolve_reset(
    acc: &JsAccount,
    stream: &str,
    name: &str,
    payload: &[u8],
) -> Result<(Arc<consumer::Consumer>, u64), ApiError> {
    #[derive(serde::Deserialize, Default)]
    struct ResetRequest {
        #[serde(default)]
        seq: u64,
    }
    let req: ResetRequest = parse(payload)?;
    let c = with_consumer(acc, stream, name)?;
    let seq = c
        .reset_target(req.seq)
        .map_err(errors::consumer_invalid_reset)?;
    Ok((c, seq))
}

/// `CONSUMER.RESET.<stream>.<consumer>`: the consumer starts over at the
/// sequence [`reset_target`] gives; the answer is its info and that
/// sequence (`reset_seq`).
pub(crate) fn consumer_reset(
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    stream: &str,
    name: &str,
    payload: &[u8],
) -> Result<Vec<u8>, ApiError> {
    #[derive(Serialize)]
    struct ResetResponse {
        #[serde(flatten)]
        info: types::ConsumerInfo,
        reset_seq: u64,
    }
    let (c, seq) = resolve_reset(acc, stream, name, payload)?;
    c.reset(seq);
    Ok(answer(
        RESET_RESPONSE,
        &ResetResponse {
            info: c.info(server),
            reset_seq: seq,
        },
    ))
}

/// The deadline a `CONSUMER.PAUSE` body asks for (None: resume). A body
/// that is not a JSON object or array is an empty request, as in
/// nats-server; one that is must parse. Public for the `jetstream_api`
/// fuzz target.
#[doc(hidden)]
pub fn pause_request(payload: &[u8]) -> Result<Option<std::time::SystemTime>, ApiError> {
    #[derive(serde::Deserialize)]
    struct PauseRequest {
        #[serde(default)]
        pause_until: Option<String>,
    }
    let json_like = payload
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| matches!(b, b'{' | b'['));
    if !json_like {
        return Ok(None);
    }
    let req: PauseRequest = serde_json::from_slice(payload).map_err(errors::invalid_json)?;
    if let Some(e) = not_an_object(payload) {
        return Err(e);
    }
    let until = types::parse_pause(req.pause_until.as_deref()).map_err(errors::invalid_json)?;
    Ok(until.map(std::time::SystemTime::from))
}

/// `CONSUMER.PAUSE.<stream>.<consumer>`: pause until the requested time,
/// or resume. Every replica applies it (the deadline is part of the
/// replicated, saved config), so a new leader keeps the pause.
pub(crate) fn consumer_pause(
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    stream: &str,
    name: &str,
    payload: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let _admin = acc.admin.lock();
    let until = pause_request(payload)?;
    let s = with_stream(acc, stream)?;
    let c = with_consumer(acc, stream, name)?;
    c.set_pause(server, until);
    acc.save_consumer_meta(&s, &c)?;
    let left = until
        .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
        .filter(|d| !d.is_zero());
    let mut body = json!({
        "paused": left.is_some(),
        "pause_until": types::rfc3339(until),
    });
    if let Some(left) = left {
        body["pause_remaining"] = json!(types::nanos(left));
    }
    Ok(answer("consumer_pause_response", &body))
}

fn consumer_create(
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    stream: &str,
    name_in_subject: Option<&str>,
    filter_in_subject: Option<&str>,
    durable_api: bool,
    payload: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let _admin = acc.admin.lock();
    let req: CreateRequest = parse(payload)?;
    let s = with_stream(acc, stream)?;
    let (name, mut cfg) = consumer_request(
        &req,
        stream,
        name_in_subject,
        filter_in_subject,
        durable_api,
    )?;
    let stream_cfg = s.config();
    let asked = cfg.clone();
    check_consumer(&s, &stream_cfg, &mut cfg, &name)?;
    super::limits::check_consumer_limits(acc, &mut cfg, &asked, &stream_cfg.consumer_limits)?;
    stream_cfg.consumer_limits.check(&cfg)?;
    let existing = s.consumers.read().get(&name).cloned();
    // The pause is set on create; later only `CONSUMER.PAUSE` changes it
    // (an update keeps the current one, as nats-server does).
    cfg.pause_until = match &existing {
        Some(e) => e.config().pause_until,
        None => types::parse_pause(cfg.pause_until.as_deref())
            .map_err(errors::invalid_json)?
            .map(|t| types::go_time(&t)),
    };
    // nats-server announces a pause after every create request that
    // succeeds (new consumer, update, or the same config again).
    let answered = |c: &consumer::Consumer| {
        let body = answer("consumer_create_response", &c.info(server));
        if c.is_paused() && !c.is_passive() {
            c.announce_pause(server);
        }
        body
    };
    if let Some(existing) = existing {
        let old = existing.config();
        if same_ignoring_name(&old, &cfg) {
            return Ok(answered(&existing));
        }
        // An updated config keeps its deadline in UTC.
        cfg.pause_until = old.pause_deadline().map(|t| types::rfc3339(Some(t)));
        if req.action == "create" {
            return Err(errors::consumer_already_exists());
        }
        check_update(acc, &old, &cfg)?;
        existing.update(cfg);
        acc.save_consumer_meta(&s, &existing)?;
        return Ok(answered(&existing));
    }
    if req.action == "update" {
        return Err(errors::consumer_does_not_exist());
    }
    super::limits::check_consumer_create(acc, stream_cfg.max_consumers, s.public_consumers())?;
    let c = acc.create_consumer(server, &s, name, cfg)?;
    Ok(answered(&c))
}

/// The consumer a create request names and its configuration as asked,
/// checked as nats-server checks them once the stream is found and before
/// the stream's rules ([`check_consumer_config`]): the stream name and
/// action of the body, the durable or ephemeral name against the subject's
/// (`name_in_subject`; `durable_api` for `CONSUMER.DURABLE.CREATE`), and
/// the filter the subject names. Public for the `jetstream_api` fuzz
/// target.
#[doc(hidden)]
pub fn consumer_request(
    req: &CreateRequest,
    stream: &str,
    name_in_subject: Option<&str>,
    filter_in_subject: Option<&str>,
    durable_api: bool,
) -> Result<(String, ConsumerConfig), ApiError> {
    if req.stream_name != stream {
        return Err(errors::stream_mismatch());
    }
    if !matches!(req.action.as_str(), "" | "create" | "update") {
        return Err(errors::invalid_json(format!(
            "unknown consumer action: {:?}",
            req.action
        )));
    }
    let mut cfg = req.config.clone();
    if cfg.description.as_deref() == Some("") {
        cfg.description = None;
    }
    // An empty name is no name, as Go's zero string is (nats-server makes
    // up an ephemeral's name when `name` is "").
    if cfg.name.as_deref() == Some("") {
        cfg.name = None;
    }
    if cfg.durable_name.as_deref() == Some("") {
        cfg.durable_name = None;
    }
    let name = match (name_in_subject, durable_api) {
        (Some(n), true) => {
            match cfg.durable_name.as_deref() {
                None => {
                    return Err(ApiError::new(
                        400,
                        10018,
                        "consumer expected to be durable but a durable name was not set",
                    ))
                }
                Some(d) if d != n => return Err(errors::durable_not_match_subject()),
                Some(_) => {}
            }
            n.to_string()
        }
        (Some(n), false) => {
            // The name in the subject wins over one in the body.
            if cfg.durable_name.as_deref().is_some_and(|d| d != n) {
                return Err(errors::durable_not_match_subject());
            }
            cfg.name = Some(n.to_string());
            n.to_string()
        }
        (None, _) => {
            if cfg.durable_name.is_some() {
                return Err(ApiError::new(
                    400,
                    10020,
                    "consumer expected to be ephemeral but a durable name was set in request",
                ));
            }
            match &cfg.name {
                Some(n) => n.clone(),
                None => {
                    let n = ephemeral_name();
                    cfg.name = Some(n.clone());
                    n
                }
            }
        }
    };
    if cfg.name.is_none() {
        cfg.name = Some(name.clone());
    }
    if name.contains(['.', '*', '>', '/', '\\']) || name.chars().any(char::is_whitespace) {
        return Err(errors::stream_invalid_config(
            "consumer name can not contain '.', '*', '>', '\\', '/'",
        ));
    }
    if let Some(f) = filter_in_subject {
        if !cfg.filter_subjects.is_empty() {
            return Err(ApiError::new(
                400,
                10137,
                "consumer with multiple subject filters cannot use subject based API",
            ));
        }
        if cfg.filter_subject.as_deref() != Some(f) {
            return Err(errors::filter_mismatch());
        }
    }
    Ok((name, cfg))
}

fn policy_words(p: DeliverPolicy) -> &'static str {
    match p {
        DeliverPolicy::All => "all",
        DeliverPolicy::Last => "last",
        DeliverPolicy::New => "new",
        DeliverPolicy::ByStartSequence => "by start sequence",
        DeliverPolicy::ByStartTime => "by start time",
        DeliverPolicy::LastPerSubject => "last per subject",
    }
}

/// What an update may not change, with nats-server's complaint (its
/// `checkNewConsumerConfig`, in its order). Filters, limits, ack wait,
/// backoff, description and the like may change.
fn check_update(
    acc: &JsAccount,
    old: &ConsumerConfig,
    new: &ConsumerConfig,
) -> Result<(), ApiError> {
    let refuse = |what: &str| {
        Err(errors::consumer_create(format!(
            "{what} can not be updated"
        )))
    };
    if old.deliver_policy != new.deliver_policy {
        return refuse("deliver policy");
    }
    if old.mem_storage != new.mem_storage {
        return refuse("storage type");
    }
    for flag in ["direct", "sourcing"] {
        if old.extra.get(flag) != new.extra.get(flag) {
            return refuse(flag);
        }
    }
    if old.opt_start_seq != new.opt_start_seq {
        return refuse("start sequence");
    }
    let start = |c: &ConsumerConfig| c.opt_start_time.as_deref().map(types::parse_rfc3339);
    if start(old) != start(new) {
        return refuse("start time");
    }
    if old.ack_policy != new.ack_policy {
        return refuse("ack policy");
    }
    if old.replay_policy != new.replay_policy {
        return refuse("replay policy");
    }
    if old.idle_heartbeat != new.idle_heartbeat {
        return refuse("heart beats");
    }
    if old.flow_control != new.flow_control {
        return refuse("flow control");
    }
    let deliver = |c: &ConsumerConfig| c.deliver_subject.clone().unwrap_or_default();
    let (was, now) = (deliver(old), deliver(new));
    if was != now {
        if was.is_empty() {
            return Err(errors::consumer_create(
                "can not update pull consumer to push based",
            ));
        }
        if now.is_empty() {
            return Err(errors::consumer_create(
                "can not update push consumer to pull based",
            ));
        }
        // A bound push consumer keeps its deliver subject.
        let bound = !acc
            .client
            .account()
            .sublist
            .match_subject(was.as_bytes())
            .is_empty();
        if bound {
            return Err(errors::consumer_name_exist());
        }
    }
    if old.max_waiting != new.max_waiting {
        return refuse("max waiting");
    }
    if !new.backoff.is_empty()
        && new.max_deliver != -1
        && new.backoff.len() as i64 > new.max_deliver
    {
        return Err(errors::max_deliver_backoff());
    }
    Ok(())
}

fn same_ignoring_name(a: &ConsumerConfig, b: &ConsumerConfig) -> bool {
    let strip = |c: &ConsumerConfig| {
        let mut c = c.clone();
        c.name = None;
        c
    };
    strip(a) == strip(b)
}

/// nats-server's consumer checks, and the defaults it fills in.
fn check_consumer(
    s: &Stream,
    stream_cfg: &StreamConfig,
    cfg: &mut ConsumerConfig,
    name: &str,
) -> Result<(), ApiError> {
    check_consumer_config(stream_cfg, cfg, name, || {
        s.consumers
            .read()
            .values()
            .map(|c| (c.name.clone(), c.config().filters()))
            .collect()
    })
}

/// [`check_consumer`] without the stream: `consumers` lists the stream's
/// consumers and their filters (asked for on a workqueue stream only).
/// Public for the `jetstream_api` fuzz target.
#[doc(hidden)]
pub fn check_consumer_config(
    stream_cfg: &StreamConfig,
    cfg: &mut ConsumerConfig,
    name: &str,
    consumers: impl FnOnce() -> Vec<(String, Vec<String>)>,
) -> Result<(), ApiError> {
    let pull = cfg.is_pull();
    if cfg.ack_policy == AckPolicy::FlowControl {
        check_flow_control_acks(cfg)?;
    }
    if let Some(d) = cfg.deliver_subject.as_deref().filter(|d| !d.is_empty()) {
        if d.contains(['*', '>']) {
            return Err(errors::deliver_to_wildcards());
        }
        if stream_cfg
            .subjects
            .iter()
            .any(|x| crate::subject::matches(x.as_bytes(), d.as_bytes()))
        {
            return Err(errors::deliver_cycle());
        }
        if cfg.max_waiting != 0 {
            return Err(errors::push_max_waiting());
        }
    } else {
        if cfg.idle_heartbeat != 0 {
            return Err(errors::hb_requires_push());
        }
        if cfg.flow_control {
            return Err(errors::fc_requires_push());
        }
    }
    // Consumers inherit their stream's replicas (0) or take fewer.
    if cfg.num_replicas > stream_cfg.num_replicas.max(1) {
        return Err(if stream_cfg.num_replicas > 1 {
            ApiError::new(
                400,
                10126,
                "consumer config replica count exceeds parent stream",
            )
        } else {
            errors::replicas_not_supported()
        });
    }
    if cfg.filter_subject.as_deref().is_some_and(|f| !f.is_empty())
        && !cfg.filter_subjects.is_empty()
    {
        return Err(ApiError::new(
            400,
            10136,
            "consumer cannot have both FilterSubject and FilterSubjects specified",
        ));
    }
    if cfg.filter_subjects.iter().any(String::is_empty) {
        return Err(ApiError::new(
            400,
            10139,
            "consumer filter in FilterSubjects cannot be empty",
        ));
    }
    for (i, a) in cfg.filter_subjects.iter().enumerate() {
        if cfg.filter_subjects[..i]
            .iter()
            .any(|b| crate::permissions::overlaps(a, b))
        {
            return Err(ApiError::new(
                400,
                10138,
                "consumer subject filters cannot overlap",
            ));
        }
    }
    let filters = cfg.filters();
    if !cfg.backoff.is_empty() && cfg.max_deliver > 0 && cfg.max_deliver <= cfg.backoff.len() as i64
    {
        return Err(errors::max_deliver_backoff());
    }
    if cfg.deliver_policy == DeliverPolicy::ByStartSequence && cfg.opt_start_seq == 0 {
        return Err(errors::invalid_policy("consumer delivery policy is deliver by start sequence, but optional start sequence is not set"));
    }
    if cfg.deliver_policy != DeliverPolicy::ByStartSequence && cfg.opt_start_seq > 0 {
        return Err(errors::invalid_policy(format!(
            "consumer delivery policy is deliver {}, but optional start sequence is also set",
            policy_words(cfg.deliver_policy)
        )));
    }
    if cfg.deliver_policy == DeliverPolicy::LastPerSubject && filters.is_empty() {
        return Err(errors::invalid_policy("consumer delivery policy is deliver last per subject, but optional filter subject is not set"));
    }
    if cfg.deliver_policy == DeliverPolicy::ByStartTime && cfg.opt_start_time.is_none() {
        return Err(errors::invalid_policy(
            "consumer delivery policy is deliver by start time, but optional start time is not set",
        ));
    }
    if cfg.flow_control && cfg.idle_heartbeat == 0 {
        return Err(ApiError::new(
            400,
            10108,
            "consumer with flow control also needs heartbeats",
        ));
    }
    if let (Some(d), Some(n)) = (cfg.durable_name.as_deref(), cfg.name.as_deref()) {
        if d != n {
            return Err(errors::durable_name_mismatch());
        }
    }
    if stream_cfg.retention == Retention::WorkQueue {
        if !matches!(cfg.ack_policy, AckPolicy::Explicit | AckPolicy::FlowControl) {
            return Err(if pull {
                ApiError::new(
                    400,
                    10084,
                    "consumer in pull mode requires explicit ack policy on workqueue stream",
                )
            } else {
                errors::wq_requires_explicit_ack()
            });
        }
        if cfg.deliver_policy != DeliverPolicy::All {
            return Err(errors::wq_not_deliver_all());
        }
        for (other, theirs) in consumers() {
            if other == name {
                continue;
            }
            if filters.is_empty() {
                return Err(errors::wq_multiple_unfiltered());
            }
            if theirs.is_empty() {
                return Err(errors::wq_not_unique());
            }
            if filters
                .iter()
                .any(|a| theirs.iter().any(|b| crate::permissions::overlaps(a, b)))
            {
                return Err(errors::wq_not_unique());
            }
        }
    }
    // A negative pin timeout reads as none (nats-server outside pedantic mode).
    cfg.priority_timeout = cfg.priority_timeout.max(0);
    check_priority(cfg)?;
    // The stream's consumer limits come first: the server's defaults
    // only fill in what is still unset.
    stream_cfg.consumer_limits.apply_defaults(cfg);
    // Defaults, as nats-server reports them back.
    if cfg.priority_policy == PriorityPolicy::PinnedClient && cfg.priority_timeout == 0 {
        cfg.priority_timeout = types::nanos(consumer::DEFAULT_PINNED_TTL);
    }
    if cfg.ack_policy.redelivers() && cfg.ack_wait == 0 {
        cfg.ack_wait = types::nanos(consumer::DEFAULT_ACK_WAIT);
    }
    if cfg.max_deliver == 0 {
        cfg.max_deliver = -1;
    }
    if pull && cfg.max_waiting == 0 {
        cfg.max_waiting = consumer::DEFAULT_MAX_WAITING;
    }
    if cfg.ack_policy != AckPolicy::None && cfg.max_ack_pending == 0 {
        cfg.max_ack_pending = consumer::DEFAULT_MAX_ACK_PENDING;
    }
    if cfg.durable_name.is_none() && cfg.inactive_threshold == 0 {
        cfg.inactive_threshold = types::nanos(consumer::DEFAULT_INACTIVE_THRESHOLD);
    }
    Ok(())
}

/// The `flow_control` ack policy (nats-server 2.14): flow control and a
/// one-second heartbeat by default, a push consumer, a bounded ack
/// window, no ack wait and no delivery limit (a durable source acks
/// through flow control and resets the consumer instead).
fn check_flow_control_acks(cfg: &mut ConsumerConfig) -> Result<(), ApiError> {
    cfg.flow_control = true;
    cfg.idle_heartbeat = types::nanos(crate::jetstream::sourcing::HEARTBEAT);
    if cfg.is_pull() {
        return Err(errors::ack_fc_requires_push());
    }
    if cfg.max_ack_pending < 0 {
        return Err(errors::ack_fc_requires_max_ack_pending());
    }
    if cfg.ack_wait != 0 || !cfg.backoff.is_empty() {
        return Err(errors::ack_fc_requires_no_ack_wait());
    }
    if cfg.max_deliver > 0 {
        return Err(errors::ack_fc_requires_no_max_deliver());
    }
    Ok(())
}

/// nats-server's priority group rules (`overflow`, `pinned_client` and
/// `prioritized` are all served).
fn check_priority(cfg: &ConsumerConfig) -> Result<(), ApiError> {
    if cfg.priority_policy == PriorityPolicy::None {
        if !cfg.priority_groups.is_empty() {
            return Err(ApiError::new(
                400,
                10196,
                "consumer can not have priority groups when policy is none",
            ));
        }
        if cfg.priority_timeout > 0 {
            return Err(ApiError::new(
                400,
                10197,
                "PinnedTTL cannot be set when PriorityPolicy is none",
            ));
        }
        return Ok(());
    }
    if !cfg.is_pull() {
        return Err(ApiError::new(
            400,
            10178,
            "priority groups can not be used with push consumers",
        ));
    }
    if cfg.priority_groups.is_empty() {
        return Err(ApiError::new(
            400,
            10159,
            "Setting PriorityPolicy requires at least one PriorityGroup to be set",
        ));
    }
    for g in &cfg.priority_groups {
        if g.is_empty() {
            return Err(ApiError::new(
                400,
                10161,
                "Group name cannot be an empty string",
            ));
        }
        if !valid_group_name(g) {
            return Err(invalid_group_name());
        }
    }
    Ok(())
}

fn invalid_group_name() -> ApiError {
    ApiError::new(
        400,
        10162,
        "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters",
    )
}

/// 1 to 16 of `A-Z a-z 0-9 / _ = -` (nats-server's group name pattern).
fn valid_group_name(g: &str) -> bool {
    (1..=16).contains(&g.len())
        && g.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'=' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_group_rules() {
        let cfg = |policy, groups: &[&str]| ConsumerConfig {
            priority_policy: policy,
            priority_groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        };
        let code = |c: &ConsumerConfig| check_priority(c).err().map(|e| e.err_code);
        assert_eq!(code(&cfg(PriorityPolicy::None, &[])), None);
        assert_eq!(code(&cfg(PriorityPolicy::None, &["A"])), Some(10196));
        assert_eq!(code(&cfg(PriorityPolicy::Overflow, &[])), Some(10159));
        assert_eq!(code(&cfg(PriorityPolicy::Overflow, &[""])), Some(10161));
        assert_eq!(
            code(&cfg(PriorityPolicy::Overflow, &["seventeen-chars-x"])),
            Some(10162)
        );
        assert_eq!(code(&cfg(PriorityPolicy::Overflow, &["jobs/A_1=-"])), None);
        let mut push = cfg(PriorityPolicy::Overflow, &["A"]);
        push.deliver_subject = Some("d".into());
        assert_eq!(code(&push), Some(10178));
        assert_eq!(code(&cfg(PriorityPolicy::PinnedClient, &["A"])), None);
        assert_eq!(code(&cfg(PriorityPolicy::Prioritized, &["A"])), None);
    }

    /// Found by the jetstream_api fuzz target (corpus crash-body-not-object,
    /// crash-consumer-create-array): a body that is JSON but no object was
    /// taken as a request (`"x"` or `5` as an empty msg delete, `[]` as a
    /// consumer create, `[5]` as a pull of 5), where nats-server's Go
    /// structs refuse it (or, for a pull request, read one message).
    #[test]
    fn request_bodies_must_be_objects() {
        for body in [&b"\">\""[..], b"5", b" [] ", b"true", b"[5]"] {
            let e = parse::<Value>(body).unwrap_err();
            assert_eq!((e.code, e.err_code), (400, 10025), "{body:?}");
            assert!(e
                .description
                .starts_with("invalid JSON: json: cannot unmarshal"));
            let e = parse::<MsgGetRequest>(body).unwrap_err();
            assert_eq!(e.err_code, 10025, "{body:?}");
        }
        assert!(parse::<CreateRequest>(b"[]").is_err());
        assert!(parse::<Value>(b"null").is_ok());
        assert_eq!(
            parse::<MsgGetRequest>(br#"{"seq":5}"#).map(|r| r.seq),
            Ok(5)
        );
        assert_eq!(parse::<MsgGetRequest>(b" ").map(|r| r.seq), Ok(0));
        // Malformed JSON keeps serde's words.
        assert!(parse::<Value>(b"[")
            .unwrap_err()
            .description
            .starts_with("invalid JSON: EOF"));
        let err = pause_request(br#"["2030-01-01T00:00:00Z"]"#).unwrap_err();
        assert_eq!(err.err_code, 10025);
        let r = next_request(b"[5]").expect("one message");
        assert_eq!((r.batch, r.structured), (1, false));
        let r = next_request(b"more").expect("one message");
        assert_eq!((r.batch, r.structured), (1, false));
        assert!(next_request(b"{bad").is_err());
    }

    /// Found by the jetstream_api fuzz target (corpus
    /// crash-durable-name-mismatch, crash-empty-consumer-name): a durable
    /// create whose body named the consumer otherwise was accepted (the
    /// consumer `D1` with `"name":"X"` in its configuration), and an empty
    /// `name` made a consumer called "" instead of a generated name.
    #[test]
    fn consumer_names_as_nats_server_reads_them() {
        let stream: StreamConfig =
            serde_json::from_str(r#"{"name":"S","subjects":["s.>"]}"#).unwrap();
        let req = |config: &str| -> CreateRequest {
            serde_json::from_str(&format!(r#"{{"stream_name":"S","config":{config}}}"#)).unwrap()
        };
        let (name, mut cfg) = consumer_request(
            &req(r#"{"durable_name":"D1","name":"X"}"#),
            "S",
            Some("D1"),
            None,
            true,
        )
        .unwrap();
        let e = check_consumer_config(&stream, &mut cfg, &name, Vec::new).unwrap_err();
        assert_eq!((e.code, e.err_code), (400, 10132));
        assert_eq!(
            e.description,
            "Consumer Durable and Name have to be equal if both are provided"
        );

        let (name, cfg) = consumer_request(&req(r#"{"name":""}"#), "S", None, None, false).unwrap();
        assert_eq!(name.len(), 8, "a generated name: {name:?}");
        assert_eq!(cfg.name.as_deref(), Some(name.as_str()));
        // An empty durable name is none, on either subject.
        let (name, cfg) =
            consumer_request(&req(r#"{"durable_name":""}"#), "S", Some("C"), None, false).unwrap();
        assert_eq!((name.as_str(), cfg.durable_name), ("C", None));
        let e = consumer_request(&req(r#"{"durable_name":""}"#), "S", Some("D"), None, true)
            .unwrap_err();
        assert_eq!(e.err_code, 10018);
    }

    #[test]
    fn pause_requests() {
        assert_eq!(pause_request(b"").ok(), Some(None));
        // Not a JSON object: an empty request (resume), as in nats-server.
        assert_eq!(pause_request(b"now").ok(), Some(None));
        assert_eq!(pause_request(b"{}").ok(), Some(None));
        assert_eq!(
            pause_request(br#"{"pause_until":"0001-01-01T00:00:00Z"}"#).ok(),
            Some(None)
        );
        let until = pause_request(br#"{"pause_until":"2030-01-01T00:00:00Z"}"#)
            .ok()
            .flatten();
        assert_eq!(
            until.map(|t| types::rfc3339(Some(t))).as_deref(),
            Some("2030-01-01T00:00:00Z")
        );
        for bad in [
            &br#"{"pause_until":5}"#[..],
            br#"{"pause_until":"soon"}"#,
            b"[1]",
        ] {
            assert_eq!(pause_request(bad).err().map(|e| e.err_code), Some(10025));
        }
    }
}
