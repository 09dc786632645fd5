//! JetStream API errors: nats-server's HTTP-like `code`, its stable
//! `err_code` (from its errors.json) and its description, so clients that
//! switch on `err_code` behave the same against Tribune.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: u16,
    pub err_code: u16,
    pub description: String,
}

impl ApiError {
    pub fn new(code: u16, err_code: u16, description: impl Into<String>) -> Self {
        ApiError {
            code,
            err_code,
            description: description.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (err_code {})", self.description, self.err_code)
    }
}

macro_rules! api_errors {
    ($( $(#[$m:meta])* $name:ident = ($code:expr, $err:expr, $desc:expr); )*) => {
        $( $(#[$m])* pub fn $name() -> ApiError { ApiError::new($code, $err, $desc) } )*
    };
}

api_errors! {
    stream_not_found = (404, 10059, "stream not found");
    consumer_not_found = (404, 10014, "consumer not found");
    msg_ttl_invalid = (400, 10165, "invalid per-message TTL");
    msg_ttl_disabled = (400, 10166, "per-message TTL is disabled");
    stream_name_exist = (400, 10058, "stream name already in use with a different configuration");
    subjects_overlap = (400, 10065, "subjects overlap with an existing stream");
    bad_request = (400, 10003, "bad request");
    stream_mismatch = (400, 10056, "stream name in subject does not match request");
    no_message_found = (404, 10037, "no message found");
    msg_too_large = (400, 10054, "message size exceeds maximum allowed");
    consumer_name_exist = (400, 10013, "consumer name already in use");
    not_enabled = (503, 10076, "JetStream not enabled");
    wq_not_unique = (400, 10100, "filtered consumer not unique on workqueue stream");
    wq_requires_explicit_ack = (400, 10098, "workqueue stream requires explicit ack");
    wq_multiple_unfiltered = (400, 10099, "multiple non-filtered consumers not allowed on workqueue stream");
    wq_not_deliver_all = (400, 10101, "consumer must be deliver all on workqueue stream");
    bad_durable_name = (400, 10103, "durable name can not contain '.', '*', '>'");
    filter_mismatch = (400, 10131, "Consumer create request did not match filtered subject from create subject");
    filter_not_subset = (400, 10093, "consumer filter subject is not a valid subset of the interest subjects");
    deliver_to_wildcards = (400, 10079, "consumer deliver subject has wildcards");
    stream_not_match = (400, 10060, "expected stream does not match");
    consumer_already_exists = (400, 10148, "consumer already exists");
    consumer_does_not_exist = (400, 10149, "consumer does not exist");
    replicas_not_supported = (500, 10074, "replicas > 1 not supported in non-clustered mode");
    durable_not_in_subject = (400, 10016, "consumer expected to be durable but no durable name set in subject");
    durable_not_match_subject = (400, 10017, "consumer name in subject does not match durable name in request");
    durable_name_mismatch = (400, 10132, "Consumer Durable and Name have to be equal if both are provided");
    push_max_waiting = (400, 10080, "consumer in push mode can not set max waiting");
    sealed = (400, 10109, "invalid operation on sealed stream");
    header_too_large = (400, 10097, "header size exceeds maximum allowed of 64k");
    stream_name_path = (400, 10128, "Stream name can not contain path separators");
    consumer_name_path = (400, 10127, "Consumer name can not contain path separators");
    hb_requires_push = (400, 10088, "consumer idle heartbeat requires a push based consumer");
    fc_requires_push = (400, 10089, "consumer flow control requires a push based consumer");
    ack_fc_requires_push = (400, 10218, "flow control ack policy requires a push based consumer");
    ack_fc_requires_fc = (400, 10219, "flow control ack policy requires flow control");
    ack_fc_requires_max_ack_pending = (400, 10220, "flow control ack policy requires max ack pending");
    ack_fc_requires_no_ack_wait = (400, 10221, "flow control ack policy requires unset ack wait");
    ack_fc_requires_no_max_deliver = (400, 10222, "flow control ack policy requires unset max deliver");
    mirror_consumer_invalid = (400, 10213, "stream mirror consumer config is invalid");
    mirror_consumer_requires_ack_fc = (400, 10214, "stream mirror consumer requires flow control ack policy");
    source_consumer_invalid = (400, 10215, "stream source consumer config is invalid");
    source_consumer_duplicate = (400, 10216, "duplicate stream source consumer detected");
    source_consumer_requires_ack_fc = (400, 10217, "stream source consumer requires flow control ack policy");
    deliver_cycle = (400, 10081, "consumer deliver subject forms a cycle");
    max_deliver_backoff = (400, 10116, "max deliver is required to be > length of backoff values");
    max_consumers = (400, 10026, "maximum consumers limit reached");
    max_streams = (400, 10027, "maximum number of streams reached");
    memory_resources_exceeded = (500, 10028, "insufficient memory resources available");
    account_resources_exceeded = (400, 10002, "resource limits exceeded for account");
    insufficient_resources = (503, 10023, "insufficient resources");
    storage_resources_exceeded = (500, 10047, "insufficient storage resources available");
    stream_max_bytes_required = (400, 10113, "account requires a stream config to have max bytes set");
    stream_max_stream_bytes_exceeded = (400, 10122, "stream max bytes exceeds account limit max stream bytes");
    wrong_last_sequence_constant = (400, 10164, "wrong last sequence");
    peer_not_member = (400, 10040, "peer not a member");
    peer_remap = (503, 10075, "peer remap failed");
    no_suitable_peers = (400, 10005, "no suitable peers for placement");
    replicas_negative = (400, 10133, "replicas count cannot be negative");
}

/// A consumer asks for more unacknowledged messages than its account allows.
pub fn max_ack_pending_excess(limit: i64) -> ApiError {
    ApiError::new(
        400,
        10121,
        format!("consumer max ack pending exceeds system limit of {limit}"),
    )
}

pub fn invalid_json(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(400, 10025, format!("invalid JSON: {err}"))
}
pub fn stream_invalid_config(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(500, 10052, err.to_string())
}
pub fn stream_create(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(500, 10049, err.to_string())
}
pub fn stream_update(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(500, 10069, err.to_string())
}
pub fn store_failed(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(503, 10077, err.to_string())
}
pub fn consumer_create(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(500, 10012, err.to_string())
}
/// `CONSUMER.RESET` to a sequence the consumer's deliver policy forbids.
pub fn consumer_invalid_reset(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(400, 10204, format!("invalid reset: {err}"))
}
pub fn msg_delete_failed(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(500, 10057, err.to_string())
}
pub fn purge_failed(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(500, 10110, err.to_string())
}
pub fn rollup_failed(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(500, 10111, err.to_string())
}
pub fn wrong_last_sequence(seq: u64) -> ApiError {
    ApiError::new(400, 10071, format!("wrong last sequence: {seq}"))
}
pub fn wrong_last_msg_id(id: &str) -> ApiError {
    ApiError::new(400, 10070, format!("wrong last msg ID: {id}"))
}
pub fn invalid_policy(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(400, 10094, err.to_string())
}
