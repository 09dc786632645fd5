//! The JetStream API's request decoders and configuration checks
//! (`tribune_broker::jetstream::api` and friends), called as the
//! `$JS.API.>` handler calls them: stream create and update (decode,
//! `check_stream_create`, `normalize_stream_config`, `check_stream_update`),
//! consumer create on both subjects (decode, `consumer_request`,
//! `check_consumer_config`, the stream's consumer limits, the pause),
//! `STREAM.MSG.GET`, `DIRECT.GET` (body and subject forms),
//! `CONSUMER.MSG.NEXT`, `STREAM.PURGE`, the `Value` bodies (msg delete,
//! info, paging), `CONSUMER.PAUSE`, and the `$JS.ACK` body.
//!
//! Input: byte 0 picks the request kind, byte 1 the context (cluster size,
//! the server's duplicate window limit, whether the account has streams
//! already, the consumers of the workqueue stream); then the subject
//! tokens after the API prefix part (`ORDERS`, `ORDERS.C1.orders.eu`),
//! 0xFF (no JSON holds it), and the request body. Without 0xFF the whole
//! rest is the body and the kind's default tokens are used. Checked:
//! - nothing panics;
//! - a request that decodes is blank or a JSON object (as Go's decoder
//!   into nats-server's request structs accepts), and one whose type
//!   serialises decodes again, re-serialised, to the same value;
//! - a stream configuration that passes is what nats-server would keep
//!   (replicas 1..=5, limits -1 or positive, valid subjects, ...), comes
//!   back unchanged through JSON (the cluster's stream assignment and the
//!   file on disk carry it so) and through a second check (a client that
//!   reads its configuration and sends it back as an update), and an
//!   update to itself is allowed;
//! - a consumer that passes has a name that is one (non-empty, no `.`,
//!   `*`, `>`, path separators or spaces), that its configuration says
//!   (`name`, and `durable_name` when set), comes back unchanged through
//!   JSON, and passes a second check unchanged;
//! - every refusal is in the API's error shape: a 4xx/5xx `code`, a
//!   nats-server `err_code`, a description; its answer is JSON with the
//!   `type` of the request kind and exactly that error; the description is
//!   not much longer than the request (no code path promises a bound
//!   tighter than the input: errors quote the offending value, as Go's do,
//!   but never more than a few times the request's size);
//! - direct gets, pull requests and acks keep their documented
//!   invariants (no conflicting options, heartbeats that fit, batches of
//!   at least one).
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tribune_broker::jetstream::api::{
    check_consumer_config, check_stream_create, check_stream_update, consumer_request,
    error_answer, next_request, normalize_stream_config, parse, pause_request, stream_config,
    CreateRequest,
};
use tribune_broker::jetstream::consumer::Ack;
use tribune_broker::jetstream::errors::ApiError;
use tribune_broker::jetstream::types::{
    self, AckPolicy, MsgGetRequest, PriorityPolicy, PurgeRequest, StreamConfig,
};
use tribune_broker::jetstream::{DirectGetRefusal, DirectGetRequest};

/// The account's streams when the context says it has some.
struct Ctx {
    streams: BTreeMap<String, StreamConfig>,
}

const EXISTING: [&str; 5] = [
    r#"{"name":"ORDERS","subjects":["orders.>"],"allow_direct":true,"max_age":3600000000000}"#,
    r#"{"name":"WQ","subjects":["jobs.>"],"retention":"workqueue","num_replicas":3,
        "consumer_limits":{"max_ack_pending":100,"inactive_threshold":60000000000}}"#,
    r#"{"name":"MIRROR","mirror":{"name":"ORDERS"}}"#,
    r#"{"name":"SRC","subjects":["agg.>"],"sources":[{"name":"ORDERS","filter_subject":"orders.eu.>"}]}"#,
    r#"{"name":"INT","subjects":["events.*"],"retention":"interest","allow_msg_ttl":true}"#,
];

fn ctx() -> &'static Ctx {
    static CTX: OnceLock<Ctx> = OnceLock::new();
    CTX.get_or_init(|| {
        let mut streams = BTreeMap::new();
        for text in EXISTING {
            let cfg = stream_config(text.as_bytes()).expect("a context stream decodes");
            let name = cfg.name.clone();
            let cfg = normalize_stream_config(cfg, &name, Some(3), Duration::ZERO, &streams)
                .unwrap_or_else(|e| panic!("context stream {name}: {e}"));
            streams.insert(name, cfg);
        }
        Ctx { streams }
    })
}

const SERVERS: [Option<usize>; 4] = [None, Some(1), Some(3), Some(5)];

/// What byte 1 says.
struct Setting {
    servers: Option<usize>,
    dw_limit: Duration,
    with_streams: bool,
    /// The workqueue stream's other consumers (name, filters).
    wq_consumers: Vec<(String, Vec<String>)>,
}

impl Setting {
    fn new(b: u8) -> Setting {
        let wq_consumers = match (b >> 4) & 3 {
            0 => vec![],
            1 => vec![("w1".to_string(), vec!["jobs.eu.>".to_string()])],
            2 => vec![("w2".to_string(), vec![])],
            _ => vec![
                ("w1".to_string(), vec!["jobs.eu.>".to_string()]),
                ("w3".to_string(), vec!["jobs.us".to_string(), "jobs.ap.*".to_string()]),
            ],
        };
        Setting {
            servers: SERVERS[usize::from(b & 3)],
            dw_limit: if b & 4 != 0 {
                Duration::from_secs(60)
            } else {
                Duration::ZERO
            },
            with_streams: b & 8 != 0,
            wq_consumers,
        }
    }

    fn streams(&self) -> BTreeMap<String, StreamConfig> {
        if self.with_streams {
            ctx().streams.clone()
        } else {
            BTreeMap::new()
        }
    }
}

/// The error shape, the wire answer, and the size of the description.
fn check_error(kind: &str, e: &ApiError, input_len: usize) {
    assert!(
        matches!(e.code, 400 | 404 | 408 | 409 | 413 | 500 | 503),
        "code {} in {e:?}",
        e.code
    );
    assert!(
        (10001..=10999).contains(&e.err_code),
        "err_code {} in {e:?}",
        e.err_code
    );
    assert!(!e.description.is_empty(), "no description: {e:?}");
    assert!(
        e.description.len() <= 4 * input_len + 512,
        "a {}-byte description for a {input_len}-byte request",
        e.description.len()
    );
    let wire = error_answer(kind, e);
    let v: Value = serde_json::from_slice(&wire).expect("the error answer is JSON");
    assert_eq!(
        v["type"].as_str(),
        Some(format!("io.nats.jetstream.api.v1.{kind}").as_str()),
        "{v}"
    );
    let err = v["error"].as_object().expect("an error object");
    assert_eq!(err.len(), 3, "error fields: {err:?}");
    assert_eq!(err["code"].as_u64(), Some(u64::from(e.code)));
    assert_eq!(err["err_code"].as_u64(), Some(u64::from(e.err_code)));
    assert_eq!(
        err["description"].as_str(),
        Some(e.description.as_str()),
        "description changed on the wire"
    );
}

fn first_byte(body: &[u8]) -> Option<u8> {
    body.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// A decoded request came from a blank body or a JSON object (`null` too,
/// where `allow_null`: Go decodes it as the empty request).
fn assert_object(body: &[u8], allow_null: bool, what: &str) {
    match first_byte(body) {
        None | Some(b'{') => {}
        Some(b'n') if allow_null => {}
        Some(other) => panic!(
            "{what} accepted from a body starting with {:?}: {:?}",
            other as char,
            String::from_utf8_lossy(body)
        ),
    }
}

fn round_trip<T>(v: &T, what: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_vec(v).unwrap_or_else(|e| panic!("{what} does not serialise: {e}"));
    let back: T = serde_json::from_slice(&text).unwrap_or_else(|e| {
        panic!(
            "{what} does not decode again: {e}: {}",
            String::from_utf8_lossy(&text)
        )
    });
    assert_eq!(&back, v, "{what} changed through JSON");
}

fn check_normalized(n: &StreamConfig, name: &str, servers: Option<usize>) {
    assert_eq!(n.name, name);
    assert!((1..=5).contains(&n.num_replicas), "replicas {}", n.num_replicas);
    if servers.is_none() {
        assert_eq!(n.num_replicas, 1, "replicas without a cluster");
    }
    for (what, v) in [
        ("max_msgs", n.max_msgs),
        ("max_bytes", n.max_bytes),
        ("max_consumers", n.max_consumers),
        ("max_msgs_per_subject", n.max_msgs_per_subject),
        ("max_msg_size", i64::from(n.max_msg_size)),
    ] {
        assert!(v == -1 || v > 0, "{what} {v}");
    }
    assert!(n.max_age == 0 || n.max_age >= 100_000_000, "max_age {}", n.max_age);
    assert!(n.duplicate_window >= 0);
    if n.max_age > 0 {
        assert!(n.duplicate_window <= n.max_age, "duplicate window over max age");
    }
    for s in &n.subjects {
        assert!(
            tribune_broker::subject::is_valid(s.as_bytes()),
            "invalid subject {s:?} kept"
        );
    }
    if n.mirror.is_none() && n.sources.is_empty() {
        assert!(!n.subjects.is_empty(), "a stream with no subjects");
    }
}

fn stream(kind: &str, update: bool, name: &str, body: &[u8], set: &Setting, input_len: usize) {
    let cfg = match stream_config(body) {
        Ok(c) => c,
        Err(e) => return check_error(kind, &e, input_len),
    };
    assert_object(body, false, "a stream configuration");
    round_trip(&cfg, "a decoded stream configuration");
    let streams = set.streams();
    let old = streams.get(name).cloned();
    if update && old.is_none() {
        return;
    }
    if !update {
        if let Err(e) = check_stream_create(&cfg) {
            return check_error(kind, &e, input_len);
        }
    }
    let n = match normalize_stream_config(cfg, name, set.servers, set.dw_limit, &streams) {
        Ok(n) => n,
        Err(e) => return check_error(kind, &e, input_len),
    };
    if let Some(old) = &old {
        if let Err(e) = check_stream_update(old, &n) {
            check_error(kind, &e, input_len);
        }
    }
    check_normalized(&n, name, set.servers);
    round_trip(&n, "a checked stream configuration");
    let again = normalize_stream_config(n.clone(), name, set.servers, set.dw_limit, &streams);
    assert_eq!(
        again.as_ref(),
        Ok(&n),
        "a checked stream configuration sent back is not the same"
    );
    assert_eq!(
        check_stream_update(&n, &n),
        Ok(()),
        "an update to the same configuration refused"
    );
    if !update {
        assert_eq!(check_stream_create(&n), Ok(()), "checked config fails create");
    }
}

fn valid_consumer_name(n: &str) -> bool {
    !n.is_empty() && !n.contains(['.', '*', '>', '/', '\\']) && !n.chars().any(char::is_whitespace)
}

fn consumer(tokens: &[&str], durable_api: bool, body: &[u8], set: &Setting, input_len: usize) {
    let kind = "consumer_create_response";
    let req: CreateRequest = match parse(body) {
        Ok(r) => r,
        Err(e) => return check_error(kind, &e, input_len),
    };
    assert_object(body, false, "a consumer create request");
    round_trip(&req.config, "a decoded consumer configuration");
    let Some((&stream_name, rest)) = tokens.split_first() else {
        return;
    };
    let (name_in_subject, filter) = if durable_api {
        let [durable] = rest else { return };
        (Some(*durable), None)
    } else {
        (
            rest.first().copied(),
            (rest.len() > 1).then(|| rest[1..].join(".")),
        )
    };
    // The stream must exist (else "stream not found" before anything else).
    let Some(stream_cfg) = ctx().streams.get(stream_name) else {
        return;
    };
    let (name, mut cfg) = match consumer_request(
        &req,
        stream_name,
        name_in_subject,
        filter.as_deref(),
        durable_api,
    ) {
        Ok(x) => x,
        Err(e) => return check_error(kind, &e, input_len),
    };
    assert!(valid_consumer_name(&name), "consumer name {name:?} accepted");
    if durable_api {
        assert_eq!(cfg.durable_name.as_deref(), Some(name.as_str()));
    }
    if let (Some(n), false) = (name_in_subject, durable_api) {
        assert_eq!(name, n, "the subject's name");
    }
    let others = || {
        if stream_name == "WQ" {
            set.wq_consumers.clone()
        } else {
            Vec::new()
        }
    };
    if let Err(e) = check_consumer_config(stream_cfg, &mut cfg, &name, others) {
        return check_error(kind, &e, input_len);
    }
    assert_eq!(cfg.name.as_deref(), Some(name.as_str()), "name in the config");
    if let Some(d) = &cfg.durable_name {
        assert_eq!(d, &name, "durable name differs from the consumer's name");
    }
    if let Err(e) = stream_cfg.consumer_limits.check(&cfg) {
        return check_error(kind, &e, input_len);
    }
    match types::parse_pause(cfg.pause_until.as_deref()) {
        Err(e) => return check_error(kind, &tribune_broker::jetstream::errors::invalid_json(e), input_len),
        Ok(Some(t)) => {
            let text = types::go_time(&t);
            assert_eq!(
                types::parse_pause(Some(&text)),
                Ok(Some(t)),
                "pause deadline {text:?} does not read back"
            );
            cfg.pause_until = Some(text);
        }
        Ok(None) => cfg.pause_until = None,
    }
    // What a stored consumer is.
    assert_ne!(cfg.max_deliver, 0, "max_deliver left 0");
    if cfg.is_pull() {
        assert!(cfg.max_waiting > 0, "pull consumer without max_waiting");
        assert_eq!(cfg.idle_heartbeat, 0, "pull consumer with heartbeats");
    }
    if cfg.ack_policy != AckPolicy::None {
        assert_ne!(cfg.max_ack_pending, 0, "acks without max_ack_pending");
    }
    if cfg.priority_policy == PriorityPolicy::None {
        assert!(cfg.priority_groups.is_empty());
    }
    round_trip(&cfg, "a checked consumer configuration");
    let mut again = cfg.clone();
    let r = check_consumer_config(stream_cfg, &mut again, &name, others);
    assert_eq!(r, Ok(()), "a checked consumer configuration checked again");
    assert_eq!(again, cfg, "a second check changed the configuration");
}

fn direct_get(tokens: &[&str], body: &[u8]) {
    let subject = tokens.get(1..).unwrap_or_default().join(".");
    let r = if tokens.len() > 1 {
        DirectGetRequest::last_for(&subject, body)
    } else {
        DirectGetRequest::from_body(body)
    };
    let req = match r {
        Err(refusal) => {
            assert!(matches!(
                refusal.description(),
                "Empty Request" | "Malformed Request" | "Bad Request"
            ));
            if body.is_empty() && tokens.len() <= 1 {
                assert_eq!(refusal, DirectGetRefusal::Empty);
            }
            return;
        }
        Ok(req) => req,
    };
    if !body.is_empty() {
        assert_object(body, true, "a direct get");
    }
    if tokens.len() > 1 {
        assert_eq!(req.last_by_subj, subject);
        assert!(req.next_by_subj.is_empty() && req.multi_last.is_empty());
        assert!(req.seq == 0 && req.batch == 0 && req.start_time.is_none());
        assert!(req.up_to_seq == 0 && req.up_to_time.is_none());
        return;
    }
    let last = !req.last_by_subj.is_empty();
    let next = !req.next_by_subj.is_empty();
    let multi = !req.multi_last.is_empty();
    let seq = req.seq > 0;
    let time = req.start_time.is_some();
    assert!(seq || last || next || multi || time, "an empty direct get accepted");
    for (a, b, what) in [
        (seq, last, "seq and last_by_subj"),
        (seq, time, "seq and start_time"),
        (time, last, "start_time and last_by_subj"),
        (last, next, "last_by_subj and next_by_subj"),
        (last, req.batch > 0, "last_by_subj and batch"),
        (last, multi, "last_by_subj and multi_last"),
        (next, multi, "next_by_subj and multi_last"),
        (
            req.up_to_seq > 0,
            req.up_to_time.is_some(),
            "up_to_seq and up_to_time",
        ),
    ] {
        assert!(!(a && b), "direct get with {what} accepted");
    }
}

fn next(body: &[u8], input_len: usize) {
    match next_request(body) {
        Err(desc) => {
            assert!(desc.starts_with("Bad Request"), "{desc:?}");
            assert!(desc.len() <= 4 * input_len + 512, "a {}-byte description", desc.len());
        }
        Ok(req) => {
            if req.structured {
                // Trimmed as nats-server's bytes.TrimSpace (and Rust's
                // str::trim) do: Unicode spaces, vertical tab included.
                let text = String::from_utf8_lossy(body);
                assert!(
                    text.trim_start().starts_with('{'),
                    "a pull request accepted from {text:?}"
                );
                if req.idle_heartbeat > 0 {
                    assert!(
                        req.idle_heartbeat.saturating_mul(2) <= req.expires,
                        "heartbeat {} does not fit twice in {}",
                        req.idle_heartbeat,
                        req.expires
                    );
                }
            } else {
                assert!(req.batch >= 1, "batch {}", req.batch);
            }
        }
    }
}

fn decode<T: DeserializeOwned + Default>(kind: &str, body: &[u8], allow_null: bool, input_len: usize) {
    match parse::<T>(body) {
        Ok(_) => assert_object(body, allow_null, kind),
        Err(e) => check_error(kind, &e, input_len),
    }
}

fn pause(body: &[u8], input_len: usize) {
    match pause_request(body) {
        Err(e) => check_error("consumer_pause_response", &e, input_len),
        Ok(None) => {}
        Ok(Some(t)) => {
            assert_object(body, false, "a pause request");
            let text = types::rfc3339(Some(t));
            assert_eq!(
                types::parse_rfc3339(&text),
                Some(t),
                "pause deadline {text:?} does not read back"
            );
        }
    }
}

fn ack(body: &[u8]) {
    match Ack::parse(body) {
        Ack::Next(n) => assert!(n >= 1, "+NXT {n}"),
        Ack::Nak(Some(d)) => assert!(!d.is_zero(), "-NAK with a zero delay"),
        _ => {}
    }
}

/// The kinds, and their default tokens.
const KINDS: [(&str, &str); 11] = [
    ("stream_create_response", "NEW"),
    ("stream_update_response", "ORDERS"),
    ("consumer_create_response", "ORDERS"),
    ("consumer_create_response", "ORDERS.D1"),
    ("stream_msg_get_response", "ORDERS"),
    ("direct_get", "ORDERS"),
    ("consumer_next", "ORDERS.C1"),
    ("stream_purge_response", "ORDERS"),
    ("stream_msg_delete_response", "ORDERS"),
    ("consumer_pause_response", "ORDERS.C1"),
    ("ack", "ORDERS.C1"),
];

fuzz_target!(|input: &[u8]| {
    let [k, s, rest @ ..] = input else {
        return;
    };
    let kind = usize::from(*k) % KINDS.len();
    let set = Setting::new(*s);
    let (token_text, body) = match rest.iter().position(|&b| b == 0xff) {
        Some(i) => (String::from_utf8_lossy(&rest[..i]).into_owned(), &rest[i + 1..]),
        None => (KINDS[kind].1.to_string(), rest),
    };
    let tokens: Vec<&str> = token_text.split('.').collect();
    // A subject has no empty tokens and no blanks (the protocol splits
    // on them).
    if tokens.iter().any(|t| t.is_empty()) || token_text.chars().any(char::is_whitespace) {
        return;
    }
    let input_len = rest.len();
    let name = tokens[0];
    match kind {
        0 | 1 if tokens.len() == 1 => stream(KINDS[kind].0, kind == 1, name, body, &set, input_len),
        0 | 1 => {}
        2 => consumer(&tokens, false, body, &set, input_len),
        3 => consumer(&tokens, true, body, &set, input_len),
        4 => decode::<MsgGetRequest>(KINDS[kind].0, body, false, input_len),
        5 => direct_get(&tokens, body),
        6 => next(body, input_len),
        7 => decode::<PurgeRequest>(KINDS[kind].0, body, false, input_len),
        8 => decode::<Value>(KINDS[kind].0, body, true, input_len),
        9 => pause(body, input_len),
        _ => ack(body),
    }
});
