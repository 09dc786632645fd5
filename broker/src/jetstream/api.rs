//! The `$JS.API.>` requests, and the ack and flow-control subjects, for one
//! account. Requests are handled one at a time, in order, on the account's
//! API task; answers go to the request's reply subject in nats-server's
//! JSON (`type`, and `error: {code, err_code, description}` on failure).

use std::sync::atomic::Ordering;
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
    PurgeRequest, Retention, StreamConfig, StreamInfo, StreamState, DEFAULT_DUPLICATE_WINDOW,
};
use super::JsAccount;
use crate::internal::OwnedMsg;
use crate::server::Server;

const API_PREFIX: &str = "$JS.API.";
const TYPE_PREFIX: &str = "io.nats.jetstream.api.v1.";
/// What a request to nothing gets: the no-responders status.
const NO_RESPONDERS: &[u8] = b"NATS/1.0 503\r\n\r\n";

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
            on_flow_control(&acc, rest, &m.subject);
        } else if let Some(api) = m.subject.strip_prefix(API_PREFIX) {
            trace!("JetStream API request {:?} in {:?}", m.subject, acc.name);
            acc.api_total.fetch_add(1, Ordering::Relaxed);
            let api = api.to_string();
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
    let ack = Ack::parse(&m.payload);
    let reply = m.reply.clone().unwrap_or_default();
    let next_reply = if matches!(ack, Ack::Next(_)) {
        reply.clone()
    } else {
        String::new()
    };
    c.ack(sseq, &ack, server, &next_reply);
    // An ack sent as a request (AckSync) is confirmed with an empty reply.
    if !reply.is_empty() && !matches!(ack, Ack::Next(_)) {
        acc.client.publish(server, &reply, None, b"", b"");
    }
}

/// `$JS.FC.<stream>.<consumer>.<n>`
fn on_flow_control(acc: &JsAccount, rest: &str, subject: &str) {
    let mut t = rest.split('.');
    let (Some(stream), Some(consumer)) = (t.next(), t.next()) else {
        return;
    };
    if let Some(c) = acc
        .stream(stream)
        .and_then(|s| s.consumers.read().get(consumer).cloned())
    {
        c.flow_control_reply(subject);
    }
}

/// A JSON answer with its `type`.
fn answer<T: Serialize>(kind: &str, body: &T) -> Vec<u8> {
    let mut v = serde_json::to_value(body).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut v {
        map.insert("type".into(), Value::String(format!("{TYPE_PREFIX}{kind}")));
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

fn error_answer(kind: &str, e: &ApiError) -> Vec<u8> {
    answer(kind, &json!({ "error": e }))
}

fn parse<T: DeserializeOwned + Default>(payload: &[u8]) -> Result<T, ApiError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(payload).map_err(errors::invalid_json)
}

fn handle(acc: &Arc<JsAccount>, server: &Arc<Server>, api: &str, m: &OwnedMsg) {
    let Some(reply) = m.reply.as_deref() else {
        return;
    };
    let tokens: Vec<&str> = api.split('.').collect();
    let send = |body: Vec<u8>| {
        acc.client.publish(server, reply, None, b"", &body);
    };
    let respond = |kind: &str, r: Result<Vec<u8>, ApiError>| match r {
        Ok(body) => send(body),
        Err(e) => {
            debug!("JetStream API {api:?}: {e}");
            acc.api_errors.fetch_add(1, Ordering::Relaxed);
            send(error_answer(kind, &e));
        }
    };
    match tokens.as_slice() {
        ["INFO"] => send(answer("account_info_response", &account_info(acc))),
        ["STREAM", "CREATE", name] => respond(
            "stream_create_response",
            stream_create(acc, server, name, &m.payload),
        ),
        ["STREAM", "UPDATE", name] => respond(
            "stream_update_response",
            stream_update(acc, server, name, &m.payload),
        ),
        ["STREAM", "INFO", name] => respond(
            "stream_info_response",
            with_stream(acc, name).and_then(|s| {
                let req: Value = parse(&m.payload)?;
                let filter = req.get("subjects_filter").and_then(Value::as_str);
                Ok(answer(
                    "stream_info_response",
                    &stream_info(server, &s, filter),
                ))
            }),
        ),
        ["STREAM", "LIST"] => {
            let mut streams: Vec<StreamInfo> = acc
                .streams
                .read()
                .values()
                .map(|s| stream_info(server, s, None))
                .collect();
            let offset = offset(&m.payload);
            let total = streams.len();
            streams = streams.into_iter().skip(offset).take(256).collect();
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
            let offset = offset(&m.payload);
            let total = names.len();
            let names: Vec<String> = names.into_iter().skip(offset).take(1024).collect();
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
        ["STREAM", "MSG", "GET", name] => {
            respond("stream_msg_get_response", msg_get(acc, name, &m.payload))
        }
        ["STREAM", "MSG", "DELETE", name] => respond(
            "stream_msg_delete_response",
            msg_delete(acc, name, &m.payload),
        ),
        ["DIRECT", "GET", name, rest @ ..] => {
            direct_get(acc, server, name, rest, reply, &m.payload)
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
                .map(|c| answer("consumer_info_response", &c.info(&server.name))),
        ),
        ["CONSUMER", "DELETE", stream, name] => respond(
            "consumer_delete_response",
            with_consumer(acc, stream, name).map(|_| {
                acc.delete_consumer(server, stream, name);
                answer("consumer_delete_response", &json!({"success": true}))
            }),
        ),
        ["CONSUMER", "LIST", stream] => respond(
            "consumer_list_response",
            with_stream(acc, stream).map(|s| {
                let list: Vec<_> = s
                    .consumers
                    .read()
                    .values()
                    .map(|c| c.info(&server.name))
                    .collect();
                let offset = offset(&m.payload);
                let total = list.len();
                let list: Vec<_> = list.into_iter().skip(offset).take(256).collect();
                answer(
                    "consumer_list_response",
                    &json!({"total": total, "offset": offset, "limit": 256, "consumers": list}),
                )
            }),
        ),
        ["CONSUMER", "NAMES", stream] => respond(
            "consumer_names_response",
            with_stream(acc, stream).map(|s| {
                let names: Vec<String> = s.consumers.read().keys().cloned().collect();
                let offset = offset(&m.payload);
                let total = names.len();
                let names: Vec<String> = names.into_iter().skip(offset).take(1024).collect();
                answer(
                    "consumer_names_response",
                    &json!({"total": total, "offset": offset, "limit": 1024, "consumers": names}),
                )
            }),
        ),
        ["CONSUMER", "MSG", "NEXT", stream, name] => {
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
                    acc.client.publish(server, reply, None, NO_RESPONDERS, b"");
                }
            }
        }
        _ => {
            acc.client.publish(server, reply, None, NO_RESPONDERS, b"");
        }
    }
}

fn offset(payload: &[u8]) -> usize {
    serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|v| v.get("offset").and_then(Value::as_u64))
        .unwrap_or(0) as usize
}

fn account_info(acc: &JsAccount) -> Value {
    let streams = acc.streams.read();
    let (mut memory, mut storage, mut consumers) = (0u64, 0u64, 0usize);
    for s in streams.values() {
        let inner = s.inner.lock();
        let bytes = inner.store.state().bytes;
        match inner.config.storage {
            types::Storage::Memory => memory += bytes,
            types::Storage::File => storage += bytes,
        }
        drop(inner);
        consumers += s.consumers.read().len();
    }
    json!({
        "memory": memory,
        "storage": storage,
        "reserved_memory": 0,
        "reserved_storage": 0,
        "streams": streams.len(),
        "consumers": consumers,
        "limits": {
            "max_memory": -1, "max_storage": -1, "max_streams": -1, "max_consumers": -1,
            "max_ack_pending": -1, "memory_max_stream_bytes": -1,
            "storage_max_stream_bytes": -1, "max_bytes_required": false
        },
        "api": {
            "level": 1,
            "total": acc.api_total.load(Ordering::Relaxed),
            "errors": acc.api_errors.load(Ordering::Relaxed)
        }
    })
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

pub(crate) fn stream_info(server: &Server, s: &Stream, filter: Option<&str>) -> StreamInfo {
    let inner = s.inner.lock();
    let st = inner.store.state();
    let subjects = filter.map(|f| inner.store.subjects_totals(f));
    let config = inner.config.clone();
    drop(inner);
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
            consumer_count: s.consumers.read().len(),
        },
        cluster: ClusterInfo {
            name: None,
            leader: server.name.clone(),
        },
        ts: types::rfc3339(Some(std::time::SystemTime::now())),
    }
}

/// Names may not contain subject wildcards, separators, whitespace or path separators.
fn check_name(name: &str, path_err: fn() -> ApiError) -> Result<(), ApiError> {
    if name.contains(['/', '\\']) {
        return Err(path_err());
    }
    if name.is_empty() || name.contains(['.', '*', '>']) || name.chars().any(char::is_whitespace) {
        return Err(errors::stream_invalid_config("invalid name"));
    }
    Ok(())
}

/// nats-server's defaults and checks for a stream configuration.
fn normalize_stream(
    acc: &JsAccount,
    mut c: StreamConfig,
    name: &str,
) -> Result<StreamConfig, ApiError> {
    if c.name.is_empty() {
        c.name = name.to_string();
    }
    if c.name != name {
        return Err(errors::stream_mismatch());
    }
    check_name(&c.name, errors::stream_name_path)?;
    if c.num_replicas > 1 {
        return Err(errors::replicas_not_supported());
    }
    if c.num_replicas <= 0 {
        c.num_replicas = 1;
    }
    for v in [
        &mut c.max_msgs,
        &mut c.max_bytes,
        &mut c.max_consumers,
        &mut c.max_msgs_per_subject,
    ] {
        if *v == 0 {
            *v = -1;
        }
        if *v < -1 {
            return Err(errors::stream_invalid_config(
                "invalid limit, must be >= -1",
            ));
        }
    }
    if c.max_msg_size == 0 {
        c.max_msg_size = -1;
    }
    if c.max_msg_size < -1 {
        return Err(errors::stream_invalid_config(
            "max message size must be >= -1",
        ));
    }
    if c.max_age < 0 {
        return Err(errors::stream_invalid_config("max age needs to be >= 0"));
    }
    if c.duplicate_window < 0 {
        return Err(errors::stream_invalid_config(
            "duplicates window must be >= 0",
        ));
    }
    if c.duplicate_window == 0 {
        let dw = types::nanos(DEFAULT_DUPLICATE_WINDOW);
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
    if c.subjects.is_empty() {
        c.subjects = vec![c.name.clone()];
    }
    for s in &c.subjects {
        if !crate::subject::is_valid(s.as_bytes()) {
            return Err(errors::stream_invalid_config(format!(
                "invalid subject {s:?}"
            )));
        }
        if !c.no_ack && crate::permissions::overlaps(s, "$JS.API.>") {
            return Err(errors::stream_invalid_config(
                "subjects that overlap with jetstream api require no-ack to be true",
            ));
        }
    }
    for other in acc.streams.read().values() {
        if other.name == c.name {
            continue;
        }
        let theirs = other.config().subjects;
        if c.subjects
            .iter()
            .any(|a| theirs.iter().any(|b| crate::permissions::overlaps(a, b)))
        {
            return Err(errors::subjects_overlap());
        }
    }
    Ok(c)
}

fn stream_create(
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    name: &str,
    payload: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let _admin = acc.admin.lock();
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(errors::invalid_json("unexpected end of JSON input"));
    }
    let cfg: StreamConfig = serde_json::from_slice(payload).map_err(errors::invalid_json)?;
    let cfg = normalize_stream(acc, cfg, name)?;
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
    v["did_create"] = Value::Bool(true);
    Ok(answer("stream_create_response", &v))
}

fn stream_update(
    acc: &Arc<JsAccount>,
    server: &Arc<Server>,
    name: &str,
    payload: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let _admin = acc.admin.lock();
    let cfg: StreamConfig = serde_json::from_slice(payload).map_err(errors::invalid_json)?;
    let s = with_stream(acc, name)?;
    let cfg = normalize_stream(acc, cfg, name)?;
    let old = s.config();
    if old.storage != cfg.storage {
        return Err(errors::stream_update(
            "stream configuration update can not change storage type",
        ));
    }
    if old.retention != cfg.retention {
        return Err(errors::stream_update(
            "stream configuration update can not change retention policy",
        ));
    }
    if old.sealed && !cfg.sealed {
        return Err(errors::stream_update(
            "stream configuration update can not unseal a sealed stream",
        ));
    }
    acc.update_stream(server, &s, cfg)?;
    Ok(answer(
        "stream_update_response",
        &stream_info(server, &s, None),
    ))
}

fn stream_purge(acc: &JsAccount, name: &str, payload: &[u8]) -> Result<Vec<u8>, ApiError> {
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

fn msg_delete(acc: &JsAccount, name: &str, payload: &[u8]) -> Result<Vec<u8>, ApiError> {
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
        return Err(errors::msg_delete_failed("no message found"));
    }
    s.forget(&[seq..=seq]);
    Ok(answer(
        "stream_msg_delete_response",
        &json!({"success": true}),
    ))
}

/// `DIRECT.GET.<stream>` with a JSON body, or `DIRECT.GET.<stream>.<subject>`
/// for the last message on a subject. The answer is the message itself.
fn direct_get(
    acc: &JsAccount,
    server: &Server,
    name: &str,
    subject: &[&str],
    reply: &str,
    payload: &[u8],
) {
    let Some(s) = acc.stream(name) else {
        acc.client.publish(server, reply, None, NO_RESPONDERS, b"");
        return;
    };
    let req = if subject.is_empty() {
        match serde_json::from_slice::<MsgGetRequest>(payload) {
            Ok(r) => r,
            Err(_) => {
                let h = headers::build(Some((408, "Bad Request")), &[]);
                acc.client.publish(server, reply, None, &h, b"");
                return;
            }
        }
    } else {
        MsgGetRequest {
            last_by_subj: Some(subject.join(".")),
            ..Default::default()
        }
    };
    match find_msg(&s, &req) {
        Ok(m) => {
            let seq = m.seq.to_string();
            let ts = types::rfc3339_nanos(m.ts);
            let h = headers::append(
                &m.headers,
                &[
                    ("Nats-Stream", &s.name),
                    ("Nats-Subject", &m.subject),
                    ("Nats-Sequence", &seq),
                    ("Nats-Time-Stamp", &ts),
                ],
            );
            acc.client.publish(server, reply, None, &h, &m.payload);
        }
        Err(e) if e.code == 404 => {
            let h = headers::build(Some((404, "Message Not Found")), &[]);
            acc.client.publish(server, reply, None, &h, b"");
        }
        Err(_) => {
            let h = headers::build(Some((408, "Bad Request")), &[]);
            acc.client.publish(server, reply, None, &h, b"");
        }
    }
}

fn next_request(payload: &[u8]) -> Result<NextRequest, String> {
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
    serde_json::from_str::<NextRequest>(t).map_err(|e| format!("Bad Request - {e}"))
}

/// A fresh ephemeral consumer name: 8 characters, as nats-server makes them.
fn ephemeral_name() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..8)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[derive(serde::Deserialize, Default)]
struct CreateRequest {
    #[serde(default)]
    stream_name: String,
    #[serde(default)]
    config: ConsumerConfig,
    #[serde(default)]
    action: String,
}

#[allow(clippy::too_many_arguments)]
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
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(errors::invalid_json("unexpected end of JSON input"));
    }
    let req: CreateRequest = serde_json::from_slice(payload).map_err(errors::invalid_json)?;
    let s = with_stream(acc, stream)?;
    if !req.stream_name.is_empty() && req.stream_name != stream {
        return Err(errors::stream_mismatch());
    }
    let mut cfg = req.config;
    let name = match (name_in_subject, durable_api) {
        (Some(n), true) => {
            if cfg.durable_name.as_deref().is_some_and(|d| d != n) {
                return Err(errors::durable_not_match_subject());
            }
            cfg.durable_name = Some(n.to_string());
            n.to_string()
        }
        (Some(n), false) => {
            let given = cfg.name.clone().or_else(|| cfg.durable_name.clone());
            if given.as_deref().is_some_and(|g| g != n) {
                return Err(errors::durable_not_match_subject());
            }
            if cfg.name.is_none() {
                cfg.name = Some(n.to_string());
            }
            n.to_string()
        }
        (None, _) => {
            if cfg.durable_name.is_some() {
                return Err(errors::ApiError::new(
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
    if name.contains(['/', '\\']) {
        return Err(errors::consumer_name_path());
    }
    if name.contains(['.', '*', '>']) || name.chars().any(char::is_whitespace) {
        return Err(errors::bad_durable_name());
    }
    if let Some(f) = filter_in_subject {
        let filters = cfg.filters();
        if filters.len() > 1 || filters.first().map(String::as_str) != Some(f) {
            return Err(errors::filter_mismatch());
        }
    }
    let stream_cfg = s.config();
    check_consumer(&s, &stream_cfg, &mut cfg, &name)?;
    let existing = s.consumers.read().get(&name).cloned();
    if let Some(existing) = existing {
        let old = existing.config();
        if same_ignoring_name(&old, &cfg) {
            return Ok(answer(
                "consumer_create_response",
                &existing.info(&server.name),
            ));
        }
        if req.action == "create" {
            return Err(errors::consumer_already_exists());
        }
        check_update(&old, &cfg)?;
        existing.update(cfg);
        acc.save_consumer_meta(&s, &existing)?;
        return Ok(answer(
            "consumer_create_response",
            &existing.info(&server.name),
        ));
    }
    if req.action == "update" {
        return Err(errors::consumer_does_not_exist());
    }
    if stream_cfg.max_consumers > 0 && s.consumers.read().len() as i64 >= stream_cfg.max_consumers {
        return Err(errors::max_consumers());
    }
    let c = acc.create_consumer(server, &s, name, cfg)?;
    Ok(answer("consumer_create_response", &c.info(&server.name)))
}

/// What an update may not change, with nats-server's complaint.
fn check_update(old: &ConsumerConfig, new: &ConsumerConfig) -> Result<(), ApiError> {
    let refuse = |what: &str| Err(errors::consumer_create(format!("{what} can not be updated")));
    if old.deliver_policy != new.deliver_policy {
        return refuse("deliver policy");
    }
    if old.opt_start_seq != new.opt_start_seq {
        return refuse("start sequence");
    }
    if old.opt_start_time != new.opt_start_time {
        return refuse("start time");
    }
    if old.ack_policy != new.ack_policy {
        return refuse("ack policy");
    }
    if old.replay_policy != new.replay_policy {
        return refuse("replay policy");
    }
    if old.is_pull() != new.is_pull() {
        return Err(errors::consumer_create(
            "can not update push consumer to pull based",
        ));
    }
    if old.filters() != new.filters() {
        return refuse("filter subject");
    }
    if old.mem_storage != new.mem_storage {
        return refuse("mem storage");
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
    let pull = cfg.is_pull();
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
    let filters = cfg.filters();
    if filters.iter().any(String::is_empty) && !cfg.filter_subjects.is_empty() {
        return Err(ApiError::new(
            400,
            10139,
            "consumer filter in FilterSubjects cannot be empty",
        ));
    }
    for f in &filters {
        if !stream_cfg
            .subjects
            .iter()
            .any(|x| crate::permissions::overlaps(x, f))
        {
            return Err(errors::filter_not_subset());
        }
    }
    if !cfg.backoff.is_empty() && cfg.max_deliver > 0 && cfg.max_deliver <= cfg.backoff.len() as i64
    {
        return Err(errors::max_deliver_backoff());
    }
    if cfg.deliver_policy == DeliverPolicy::ByStartSequence && cfg.opt_start_seq == 0 {
        return Err(errors::invalid_policy("consumer delivery policy is deliver by start sequence, but optional start sequence is not set"));
    }
    if cfg.deliver_policy == DeliverPolicy::ByStartTime && cfg.opt_start_time.is_none() {
        return Err(errors::invalid_policy(
            "consumer delivery policy is deliver by start time, but optional start time is not set",
        ));
    }
    if stream_cfg.retention == Retention::WorkQueue {
        if cfg.ack_policy != AckPolicy::Explicit {
            return Err(errors::wq_requires_explicit_ack());
        }
        if cfg.deliver_policy != DeliverPolicy::All {
            return Err(errors::wq_not_deliver_all());
        }
        for other in s.consumers.read().values() {
            if other.name == name {
                continue;
            }
            let theirs = other.config().filters();
            if filters.is_empty() || theirs.is_empty() {
                return Err(if filters.is_empty() && theirs.is_empty() {
                    errors::wq_multiple_unfiltered()
                } else {
                    errors::wq_not_unique()
                });
            }
            if filters
                .iter()
                .any(|a| theirs.iter().any(|b| crate::permissions::overlaps(a, b)))
            {
                return Err(errors::wq_not_unique());
            }
        }
    }
    // Defaults, as nats-server reports them back.
    if cfg.ack_policy != AckPolicy::None && cfg.ack_wait == 0 {
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
