//! Malformed and edge-case `$JS.API` requests, sent raw, against
//! nats-server and (per the flavor switch in `common/js.rs`) tribune-broker.
//!
//! The table below IS the record of what nats-server 2.15.1 answers: each
//! row's expectation was captured from it, and the nats-server run of this
//! test keeps the table honest. Where nats-server's description carries Go
//! decoder detail (invalid JSON), only the stable prefix is compared.
//! Clients switch on `err_code`, so code and err_code are always exact.

mod common;

use std::time::Duration;

use common::js::{for_each_flavor, Flavor, Js};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

/// What a request must get back.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// `{"type": "io.nats.jetstream.api.v1.<type>", "error": {...}}`.
    Err(&'static str, u64, u64, Desc),
    /// A success response of that type (no `error`).
    Ok(&'static str),
    /// No reply at all (unknown API subject; `$JS.API.>` has a subscriber).
    NoReply,
    /// A 503 no-responders status (no subscriber for the subject).
    NoResponders,
    /// A status message (`NATS/1.0 <code> <description>`), as pull requests get.
    Status(u16, Desc),
}

#[derive(Debug, Clone, Copy)]
enum Desc {
    Exact(&'static str),
    Prefix(&'static str),
}
use Desc::{Exact, Prefix};

const BAD_JSON: Desc = Prefix("invalid JSON: ");

/// Streams and consumers the table's requests refer to.
const SETUP: &[(&str, &str)] = &[
    (
        "$JS.API.STREAM.CREATE.A",
        r#"{"name":"A","subjects":["a.>"]}"#,
    ),
    (
        "$JS.API.STREAM.CREATE.S",
        r#"{"name":"S","subjects":["s.>"]}"#,
    ),
    (
        "$JS.API.CONSUMER.CREATE.A.dd",
        r#"{"stream_name":"A","config":{"durable_name":"dd","ack_policy":"explicit"}}"#,
    ),
    (
        "$JS.API.STREAM.CREATE.W",
        r#"{"name":"W","subjects":["w.>"],"retention":"workqueue"}"#,
    ),
    (
        "$JS.API.CONSUMER.CREATE.W.w1",
        r#"{"stream_name":"W","config":{"durable_name":"w1","ack_policy":"explicit"}}"#,
    ),
    (
        "$JS.API.STREAM.CREATE.W2",
        r#"{"name":"W2","subjects":["w2.>"],"retention":"workqueue"}"#,
    ),
    (
        "$JS.API.CONSUMER.CREATE.W2.f1",
        r#"{"stream_name":"W2","config":{"durable_name":"f1","ack_policy":"explicit","filter_subject":"w2.a.>"}}"#,
    ),
    (
        "$JS.API.STREAM.CREATE.C",
        r#"{"name":"C","subjects":["c"],"max_consumers":1}"#,
    ),
    (
        "$JS.API.CONSUMER.CREATE.C.one",
        r#"{"stream_name":"C","config":{"durable_name":"one","ack_policy":"explicit"}}"#,
    ),
];

const SC: &str = "stream_create_response";
const SU: &str = "stream_update_response";
const CC: &str = "consumer_create_response";

fn table() -> Vec<(&'static str, &'static str, Want)> {
    use Want::*;
    vec![
        // ---- stream create: bad bodies
        ("$JS.API.STREAM.CREATE.X", "{bad json", Err(SC, 400, 10025, BAD_JSON)),
        ("$JS.API.STREAM.CREATE.X", "", Err(SC, 400, 10056, Exact("stream name in subject does not match request"))),
        ("$JS.API.STREAM.CREATE.X", r#"{"name":"Y","subjects":["y"]}"#, Err(SC, 400, 10056, Exact("stream name in subject does not match request"))),
        ("$JS.API.STREAM.CREATE.X", r#"{"subjects":["x"]}"#, Err(SC, 400, 10056, Exact("stream name in subject does not match request"))),
        ("$JS.API.STREAM.CREATE.X", r#"{"name":"X","subjects":["x"],"retention":"bogus"}"#, Err(SC, 400, 10025, BAD_JSON)),
        ("$JS.API.STREAM.CREATE.X", r#"{"name":"X","subjects":["x"],"storage":"tape"}"#, Err(SC, 400, 10025, BAD_JSON)),
        ("$JS.API.STREAM.CREATE.X", r#"{"name":"X","subjects":["x"],"discard":"sideways"}"#, Err(SC, 400, 10025, BAD_JSON)),
        ("$JS.API.STREAM.CREATE.X", r#"{"name":"X","subjects":["x"],"max_msgs":"ten"}"#, Err(SC, 400, 10025, BAD_JSON)),
        ("$JS.API.STREAM.CREATE.X", r#"{"name":"X","subjects":"x"}"#, Err(SC, 400, 10025, BAD_JSON)),
        // ---- stream create: invalid configurations
        ("$JS.API.STREAM.CREATE.X", r#"{"name":"X","subjects":["x"],"max_age":-1}"#, Err(SC, 500, 10052, Exact("max age can not be negative"))),
        ("$JS.API.STREAM.CREATE.X", r#"{"name":"X","subjects":["x"],"max_age":1000000}"#, Err(SC, 500, 10052, Exact("max age needs to be >= 100ms"))),
        ("$JS.API.STREAM.CREATE.X", r#"{"name":"X","subjects":["x"],"duplicate_window":-1}"#, Err(SC, 500, 10052, Exact("duplicates window can not be negative"))),
        ("$JS.API.STREAM.CREATE.X", r#"{"name":"X","subjects":["x"],"max_age":1000000000,"duplicate_window":5000000000}"#, Err(SC, 500, 10052, Exact("duplicates window can not be larger then max age"))),
        ("$JS.API.STREAM.CREATE.X", r#"{"name":"X","subjects":["x"],"num_replicas":3}"#, Err(SC, 500, 10074, Exact("replicas > 1 not supported in non-clustered mode"))),
        ("$JS.API.STREAM.CREATE.X", r#"{"name":"X","subjects":["x..y"]}"#, Err(SC, 500, 10052, Exact("invalid subject"))),
        ("$JS.API.STREAM.CREATE.X", r#"{"name":"X","subjects":["x","x"]}"#, Err(SC, 500, 10052, Exact("subject \"x\" overlaps with \"x\""))),
        ("$JS.API.STREAM.CREATE.X", r#"{"name":"X","subjects":["$JS.API.>"]}"#, Err(SC, 500, 10052, Exact("subjects that overlap with jetstream api require no-ack to be true"))),
        ("$JS.API.STREAM.CREATE.X", r#"{"name":"X","subjects":[">"]}"#, Err(SC, 500, 10052, Exact("capturing all subjects requires no-ack to be true"))),
        ("$JS.API.STREAM.CREATE.D*", r#"{"name":"D*"}"#, Err(SC, 500, 10052, Exact("stream name is required and can not contain '.', '*', '>', '\\', '/'"))),
        ("$JS.API.STREAM.CREATE.D/E", r#"{"name":"D/E"}"#, Err(SC, 400, 10128, Exact("Stream name can not contain path separators"))),
        // A name with a dot makes the subject too long: nobody answers.
        ("$JS.API.STREAM.CREATE.D.E", r#"{"name":"D.E"}"#, NoReply),
        // ---- stream create: conflicts with existing streams
        ("$JS.API.STREAM.CREATE.A", r#"{"name":"A","subjects":["a.>"],"max_msgs":5}"#, Err(SC, 400, 10058, Exact("stream name already in use with a different configuration"))),
        ("$JS.API.STREAM.CREATE.A", r#"{"name":"A","subjects":["a.>"]}"#, Ok(SC)),
        ("$JS.API.STREAM.CREATE.B", r#"{"name":"B","subjects":["a.x"]}"#, Err(SC, 400, 10065, Exact("subjects overlap with an existing stream"))),
        ("$JS.API.STREAM.CREATE.B", r#"{"name":"B","subjects":["a.*.y"]}"#, Err(SC, 400, 10065, Exact("subjects overlap with an existing stream"))),
        // Negative limits other than -1 are normalised, not refused.
        ("$JS.API.STREAM.CREATE.N", r#"{"name":"N","subjects":["n"],"max_msgs":-5,"max_msg_size":-7}"#, Ok(SC)),
        // ---- stream update / info / delete / purge
        ("$JS.API.STREAM.UPDATE.NOPE", r#"{"name":"NOPE","subjects":["nope"]}"#, Err(SU, 404, 10059, Exact("stream not found"))),
        ("$JS.API.STREAM.UPDATE.A", r#"{"name":"A","subjects":["a.>"],"storage":"memory"}"#, Err(SU, 500, 10052, Exact("stream configuration update can not change storage type"))),
        ("$JS.API.STREAM.UPDATE.A", r#"{"name":"A","subjects":["a.>"],"retention":"workqueue"}"#, Err(SU, 500, 10052, Exact("stream configuration update can not change retention policy to/from workqueue"))),
        ("$JS.API.STREAM.UPDATE.A", r#"{"name":"B","subjects":["a.>"]}"#, Err(SU, 400, 10056, Exact("stream name in subject does not match request"))),
        ("$JS.API.STREAM.UPDATE.A", r#"{"name":"A","subjects":["s.x"]}"#, Err(SU, 400, 10065, Exact("subjects overlap with an existing stream"))),
        ("$JS.API.STREAM.UPDATE.A", "{bad", Err(SU, 400, 10025, BAD_JSON)),
        ("$JS.API.STREAM.INFO.NOPE", "", Err("stream_info_response", 404, 10059, Exact("stream not found"))),
        ("$JS.API.STREAM.INFO.A", "{bad", Err("stream_info_response", 400, 10025, BAD_JSON)),
        ("$JS.API.STREAM.DELETE.NOPE", "", Err("stream_delete_response", 404, 10059, Exact("stream not found"))),
        ("$JS.API.STREAM.PURGE.NOPE", "", Err("stream_purge_response", 404, 10059, Exact("stream not found"))),
        ("$JS.API.STREAM.PURGE.A", r#"{"seq":5,"keep":1}"#, Err("stream_purge_response", 400, 10003, Exact("bad request"))),
        ("$JS.API.STREAM.PURGE.A", "{bad", Err("stream_purge_response", 400, 10025, BAD_JSON)),
        ("$JS.API.STREAM.PURGE.A", r#"{"filter":"zzz.>"}"#, Ok("stream_purge_response")),
        ("$JS.API.STREAM.NAMES", "{bad", Err("stream_names_response", 400, 10025, BAD_JSON)),
        ("$JS.API.STREAM.LIST", "{bad", Err("stream_list_response", 400, 10025, BAD_JSON)),
        // ---- message get / delete
        ("$JS.API.STREAM.MSG.GET.A", r#"{"seq":1}"#, Err("stream_msg_get_response", 404, 10037, Exact("no message found"))),
        ("$JS.API.STREAM.MSG.GET.A", "{}", Err("stream_msg_get_response", 400, 10003, Exact("bad request"))),
        ("$JS.API.STREAM.MSG.GET.A", r#"{"seq":1,"last_by_subj":"a.x"}"#, Err("stream_msg_get_response", 400, 10003, Exact("bad request"))),
        ("$JS.API.STREAM.MSG.GET.A", "{bad", Err("stream_msg_get_response", 400, 10025, BAD_JSON)),
        ("$JS.API.STREAM.MSG.GET.NOPE", r#"{"seq":1}"#, Err("stream_msg_get_response", 404, 10059, Exact("stream not found"))),
        ("$JS.API.STREAM.MSG.DELETE.A", "{bad", Err("stream_msg_delete_response", 400, 10025, BAD_JSON)),
        ("$JS.API.STREAM.MSG.DELETE.NOPE", r#"{"seq":1}"#, Err("stream_msg_delete_response", 404, 10059, Exact("stream not found"))),
        // Without allow_direct there is no direct get responder.
        ("$JS.API.DIRECT.GET.A", r#"{"seq":1}"#, NoResponders),
        // ---- consumer create: stream and body problems
        ("$JS.API.CONSUMER.CREATE.NOPE", r#"{"stream_name":"NOPE","config":{"ack_policy":"explicit"}}"#, Err(CC, 404, 10059, Exact("stream not found"))),
        ("$JS.API.CONSUMER.CREATE.NOPE.d", r#"{"stream_name":"NOPE","config":{"durable_name":"d","ack_policy":"explicit"}}"#, Err(CC, 404, 10059, Exact("stream not found"))),
        ("$JS.API.CONSUMER.DURABLE.CREATE.NOPE.d", r#"{"stream_name":"NOPE","config":{"durable_name":"d","ack_policy":"explicit"}}"#, Err(CC, 404, 10059, Exact("stream not found"))),
        ("$JS.API.CONSUMER.CREATE.A", "{bad", Err(CC, 400, 10025, BAD_JSON)),
        ("$JS.API.CONSUMER.CREATE.A", "", Err(CC, 400, 10056, Exact("stream name in subject does not match request"))),
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"B","config":{"ack_policy":"explicit"}}"#, Err(CC, 400, 10056, Exact("stream name in subject does not match request"))),
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"durable_name":"d","ack_policy":"explicit"}}"#, Err(CC, 400, 10020, Exact("consumer expected to be ephemeral but a durable name was set in request"))),
        // ---- consumer names
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"name":"d.x","ack_policy":"explicit"}}"#, Err(CC, 500, 10052, Exact("consumer name can not contain '.', '*', '>', '\\', '/'"))),
        ("$JS.API.CONSUMER.CREATE.A.d*", r#"{"stream_name":"A","config":{"name":"d*","ack_policy":"explicit"}}"#, Err(CC, 500, 10052, Exact("consumer name can not contain '.', '*', '>', '\\', '/'"))),
        ("$JS.API.CONSUMER.DURABLE.CREATE.A.d.x", r#"{"stream_name":"A","config":{"durable_name":"d.x","ack_policy":"explicit"}}"#, NoReply),
        ("$JS.API.CONSUMER.CREATE.A.c9", r#"{"stream_name":"A","config":{"durable_name":"c8","ack_policy":"explicit"}}"#, Err(CC, 400, 10017, Exact("consumer name in subject does not match durable name in request"))),
        ("$JS.API.CONSUMER.DURABLE.CREATE.A.dd", r#"{"stream_name":"A","config":{"ack_policy":"explicit"}}"#, Err(CC, 400, 10018, Exact("consumer expected to be durable but a durable name was not set"))),
        ("$JS.API.CONSUMER.DURABLE.CREATE.A.dd", r#"{"stream_name":"A","config":{"durable_name":"ee","ack_policy":"explicit"}}"#, Err(CC, 400, 10017, Exact("consumer name in subject does not match durable name in request"))),
        // ---- filter subject in the create subject
        ("$JS.API.CONSUMER.CREATE.A.c1.a.x", r#"{"stream_name":"A","config":{"name":"c1","ack_policy":"explicit","filter_subject":"a.y"}}"#, Err(CC, 400, 10131, Exact("Consumer create request did not match filtered subject from create subject"))),
        ("$JS.API.CONSUMER.CREATE.A.c1.a.x", r#"{"stream_name":"A","config":{"name":"c1","ack_policy":"explicit"}}"#, Err(CC, 400, 10131, Exact("Consumer create request did not match filtered subject from create subject"))),
        ("$JS.API.CONSUMER.CREATE.A.c2.a.x", r#"{"stream_name":"A","config":{"name":"c2","ack_policy":"explicit","filter_subjects":["a.x"]}}"#, Err(CC, 400, 10137, Exact("consumer with multiple subject filters cannot use subject based API"))),
        ("$JS.API.CONSUMER.CREATE.A.c1.a.x", r#"{"stream_name":"A","config":{"name":"c1","ack_policy":"explicit","filter_subject":"a.x"}}"#, Ok(CC)),
        // ---- consumer configuration
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"ack_policy":"bogus"}}"#, Err(CC, 400, 10025, BAD_JSON)),
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"deliver_policy":"bogus","ack_policy":"explicit"}}"#, Err(CC, 400, 10025, BAD_JSON)),
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"ack_policy":"explicit","deliver_policy":"by_start_sequence"}}"#, Err(CC, 400, 10094, Exact("consumer delivery policy is deliver by start sequence, but optional start sequence is not set"))),
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"ack_policy":"explicit","deliver_policy":"by_start_time"}}"#, Err(CC, 400, 10094, Exact("consumer delivery policy is deliver by start time, but optional start time is not set"))),
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"ack_policy":"explicit","deliver_policy":"all","opt_start_seq":3}}"#, Err(CC, 400, 10094, Exact("consumer delivery policy is deliver all, but optional start sequence is also set"))),
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"ack_policy":"explicit","deliver_policy":"last_per_subject"}}"#, Err(CC, 400, 10094, Exact("consumer delivery policy is deliver last per subject, but optional filter subject is not set"))),
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"ack_policy":"explicit","deliver_subject":"a.>"}}"#, Err(CC, 400, 10079, Exact("consumer deliver subject has wildcards"))),
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"ack_policy":"explicit","deliver_subject":"a.x"}}"#, Err(CC, 400, 10081, Exact("consumer deliver subject forms a cycle"))),
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"ack_policy":"explicit","idle_heartbeat":1000000000}}"#, Err(CC, 400, 10088, Exact("consumer idle heartbeat requires a push based consumer"))),
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"ack_policy":"explicit","flow_control":true}}"#, Err(CC, 400, 10089, Exact("consumer flow control requires a push based consumer"))),
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"ack_policy":"explicit","deliver_subject":"dx","max_waiting":5}}"#, Err(CC, 400, 10080, Exact("consumer in push mode can not set max waiting"))),
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"ack_policy":"explicit","max_deliver":2,"backoff":[1000000000,2000000000,3000000000]}}"#, Err(CC, 400, 10116, Exact("max deliver is required to be > length of backoff values"))),
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"ack_policy":"explicit","num_replicas":3}}"#, Err(CC, 500, 10074, Exact("replicas > 1 not supported in non-clustered mode"))),
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"ack_policy":"explicit","filter_subject":"a.x","filter_subjects":["a.y"]}}"#, Err(CC, 400, 10136, Exact("consumer cannot have both FilterSubject and FilterSubjects specified"))),
        ("$JS.API.CONSUMER.CREATE.A", r#"{"stream_name":"A","config":{"ack_policy":"explicit","filter_subjects":["a.>","a.x"]}}"#, Err(CC, 400, 10138, Exact("consumer subject filters cannot overlap"))),
        // ---- create vs update of existing consumers
        ("$JS.API.CONSUMER.CREATE.A.dd", r#"{"stream_name":"A","config":{"durable_name":"dd","ack_policy":"explicit"}}"#, Ok(CC)),
        ("$JS.API.CONSUMER.CREATE.A.dd", r#"{"stream_name":"A","config":{"durable_name":"dd","ack_policy":"none"}}"#, Err(CC, 500, 10012, Exact("ack policy can not be updated"))),
        ("$JS.API.CONSUMER.CREATE.A.zz", r#"{"stream_name":"A","action":"update","config":{"name":"zz","ack_policy":"explicit"}}"#, Err(CC, 400, 10149, Exact("consumer does not exist"))),
        ("$JS.API.CONSUMER.CREATE.A.dd", r#"{"stream_name":"A","action":"create","config":{"name":"dd","ack_policy":"explicit","description":"changed"}}"#, Err(CC, 400, 10148, Exact("consumer already exists"))),
        ("$JS.API.CONSUMER.CREATE.A.dd", r#"{"stream_name":"A","action":"bogus","config":{"name":"dd","ack_policy":"explicit"}}"#, Err(CC, 400, 10025, Exact("invalid JSON: unknown consumer action: \"bogus\""))),
        // ---- limits and retention rules
        ("$JS.API.CONSUMER.CREATE.C.two", r#"{"stream_name":"C","config":{"durable_name":"two","ack_policy":"explicit"}}"#, Err(CC, 400, 10026, Exact("maximum consumers limit reached"))),
        ("$JS.API.CONSUMER.CREATE.W.w2", r#"{"stream_name":"W","config":{"durable_name":"w2","ack_policy":"explicit"}}"#, Err(CC, 400, 10099, Exact("multiple non-filtered consumers not allowed on workqueue stream"))),
        ("$JS.API.CONSUMER.CREATE.W", r#"{"stream_name":"W","config":{"ack_policy":"explicit"}}"#, Err(CC, 400, 10099, Exact("multiple non-filtered consumers not allowed on workqueue stream"))),
        ("$JS.API.CONSUMER.CREATE.W.w1", r#"{"stream_name":"W","config":{"durable_name":"w1","ack_policy":"explicit"}}"#, Ok(CC)),
        ("$JS.API.CONSUMER.CREATE.W2.f2", r#"{"stream_name":"W2","config":{"durable_name":"f2","ack_policy":"explicit","filter_subject":"w2.a.b"}}"#, Err(CC, 400, 10100, Exact("filtered consumer not unique on workqueue stream"))),
        ("$JS.API.CONSUMER.CREATE.W2.f4", r#"{"stream_name":"W2","config":{"durable_name":"f4","ack_policy":"explicit"}}"#, Err(CC, 400, 10099, Exact("multiple non-filtered consumers not allowed on workqueue stream"))),
        ("$JS.API.CONSUMER.CREATE.W2.w3", r#"{"stream_name":"W2","config":{"durable_name":"w3","ack_policy":"none","filter_subject":"w2.q"}}"#, Err(CC, 400, 10084, Exact("consumer in pull mode requires explicit ack policy on workqueue stream"))),
        ("$JS.API.CONSUMER.CREATE.W2.w4", r#"{"stream_name":"W2","config":{"durable_name":"w4","ack_policy":"explicit","filter_subject":"w2.q","deliver_policy":"last"}}"#, Err(CC, 400, 10101, Exact("consumer must be deliver all on workqueue stream"))),
        ("$JS.API.CONSUMER.CREATE.W2.f3", r#"{"stream_name":"W2","config":{"durable_name":"f3","ack_policy":"explicit","filter_subject":"w2.c"}}"#, Ok(CC)),
        // ---- consumer info / delete / names / list
        ("$JS.API.CONSUMER.INFO.A.nope", "", Err("consumer_info_response", 404, 10014, Exact("consumer not found"))),
        ("$JS.API.CONSUMER.INFO.NOPE.dd", "", Err("consumer_info_response", 404, 10059, Exact("stream not found"))),
        ("$JS.API.CONSUMER.DELETE.A.nope", "", Err("consumer_delete_response", 404, 10014, Exact("consumer not found"))),
        ("$JS.API.CONSUMER.DELETE.NOPE.dd", "", Err("consumer_delete_response", 404, 10059, Exact("stream not found"))),
        ("$JS.API.CONSUMER.NAMES.NOPE", "", Err("consumer_names_response", 404, 10059, Exact("stream not found"))),
        ("$JS.API.CONSUMER.LIST.NOPE", "", Err("consumer_list_response", 404, 10059, Exact("stream not found"))),
        ("$JS.API.CONSUMER.NAMES.A", "{bad", Err("consumer_names_response", 400, 10025, BAD_JSON)),
        // ---- pull requests answer with status messages
        ("$JS.API.CONSUMER.MSG.NEXT.A.nope", r#"{"batch":1,"no_wait":true}"#, NoResponders),
        ("$JS.API.CONSUMER.MSG.NEXT.A.dd", r#"{"batch":1,"no_wait":true}"#, Status(404, Exact("No Messages"))),
        ("$JS.API.CONSUMER.MSG.NEXT.A.dd", r#"{"batch":0,"no_wait":true}"#, Status(404, Exact("No Messages"))),
        ("$JS.API.CONSUMER.MSG.NEXT.A.dd", "{bad", Status(400, Prefix("Bad Request - "))),
        ("$JS.API.CONSUMER.MSG.NEXT.A.dd", r#"{"batch":1,"expires":1000}"#, Status(408, Exact("Request Timeout"))),
        // ---- unknown API subjects get no answer at all
        ("$JS.API.BOGUS", "", NoReply),
        ("$JS.API.STREAM.BOGUS.A", "", NoReply),
    ]
}

/// How long to wait for an answer that must not come.
const SILENCE: Duration = Duration::from_millis(1500);

async fn check(t: &Js, subject: &str, body: &str, want: Want) -> Result<(), String> {
    let fut = t.nc.request(subject.to_string(), body.to_string().into());
    let wait = match want {
        Want::NoReply => SILENCE,
        _ => common::js::WAIT,
    };
    let reply = match (tokio::time::timeout(wait, fut).await, want) {
        (Err(_), Want::NoReply) => return Ok(()),
        (Err(_), _) => return Err("no reply".into()),
        (Ok(Err(e)), Want::NoResponders)
            if e.kind() == async_nats::client::RequestErrorKind::NoResponders =>
        {
            return Ok(())
        }
        (Ok(Err(e)), _) => return Err(format!("request failed: {e}")),
        (Ok(Ok(m)), _) => m,
    };
    let text = String::from_utf8_lossy(&reply.payload).into_owned();
    if let Want::Status(code, desc) = want {
        let got_code = reply.status.map(|s| s.as_u16());
        let got_desc = reply.description.clone().unwrap_or_default();
        return if got_code == Some(code) && desc_ok(desc, &got_desc) {
            Ok(())
        } else {
            Err(format!(
                "want status {code} {desc:?}, got {got_code:?} {got_desc:?} {text:?}"
            ))
        };
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON ({e}): {text}"))?;
    match want {
        Want::Err(kind, code, err_code, desc) => {
            let e = &v["error"];
            let ok = v["type"] == format!("io.nats.jetstream.api.v1.{kind}")
                && e["code"] == code
                && e["err_code"] == err_code
                && e["description"].as_str().is_some_and(|d| desc_ok(desc, d));
            if ok {
                Ok(())
            } else {
                Err(format!("want {kind} {code}/{err_code} {desc:?}, got {v}"))
            }
        }
        Want::Ok(kind) => {
            if v.get("error").is_none() && v["type"] == format!("io.nats.jetstream.api.v1.{kind}") {
                Ok(())
            } else {
                Err(format!("want success {kind}, got {v}"))
            }
        }
        other => Err(format!("want {other:?}, got {v}")),
    }
}

fn desc_ok(want: Desc, got: &str) -> bool {
    match want {
        Exact(s) => got == s,
        Prefix(p) => got.starts_with(p),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_edge_requests() {
    for_each_flavor(BIN, malformed_on).await;
}

async fn malformed_on(f: Flavor) {
    let t = Js::start(&f).await;
    for (subject, body) in SETUP {
        let v = t.api(subject, body).await;
        assert!(
            v.get("error").is_none(),
            "{}: setup {subject}: {v}",
            f.label
        );
    }
    let mut failures = Vec::new();
    for (subject, body, want) in table() {
        if let Err(why) = check(&t, subject, body, want).await {
            failures.push(format!("  {subject} {body}\n    {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}: {} of {} requests answered differently:\n{}",
        f.label,
        failures.len(),
        table().len(),
        failures.join("\n")
    );
}

/// Error responses that carry more than `type` and `error` keep their
/// zero-valued fields, exactly like this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_response_shapes() {
    for_each_flavor(BIN, shapes_on).await;
}

async fn shapes_on(f: Flavor) {
    use serde_json::json;
    let t = Js::start(&f).await;
    let nf = json!({"code":404,"err_code":10059,"description":"stream not found"});
    let cases = vec![
        (
            "$JS.API.STREAM.INFO.NOPE",
            json!({"type":"io.nats.jetstream.api.v1.stream_info_response","error":nf,"total":0,"offset":0,"limit":0}),
        ),
        (
            "$JS.API.STREAM.PURGE.NOPE",
            json!({"type":"io.nats.jetstream.api.v1.stream_purge_response","error":nf,"purged":0}),
        ),
        (
            "$JS.API.STREAM.DELETE.NOPE",
            json!({"type":"io.nats.jetstream.api.v1.stream_delete_response","error":nf}),
        ),
        (
            "$JS.API.CONSUMER.NAMES.NOPE",
            json!({"type":"io.nats.jetstream.api.v1.consumer_names_response","error":nf,"total":0,"offset":0,"limit":0,"consumers":[]}),
        ),
        (
            "$JS.API.CONSUMER.LIST.NOPE",
            json!({"type":"io.nats.jetstream.api.v1.consumer_list_response","error":nf,"total":0,"offset":0,"limit":0,"consumers":[]}),
        ),
        (
            "$JS.API.CONSUMER.INFO.NOPE.c",
            json!({"type":"io.nats.jetstream.api.v1.consumer_info_response","error":nf}),
        ),
    ];
    for (subject, want) in cases {
        assert_eq!(t.api(subject, "").await, want, "{}: {subject}", f.label);
    }
    let bad = json!({"code":400,"err_code":10025});
    let v = t.api("$JS.API.STREAM.NAMES", "{bad").await;
    assert_eq!(
        v["streams"],
        Value::Null,
        "{}: names error has streams:null {v}",
        f.label
    );
    assert_eq!(v["error"]["err_code"], bad["err_code"]);
    let v = t.api("$JS.API.STREAM.LIST", "{bad").await;
    assert_eq!(
        v["streams"],
        json!([]),
        "{}: list error has streams:[] {v}",
        f.label
    );

    // The account info answers whatever the body (async-nats sends "[]").
    for body in ["", "[]", "{}", "null"] {
        let v = t.api("$JS.API.INFO", body).await;
        assert_eq!(
            v["type"], "io.nats.jetstream.api.v1.account_info_response",
            "{body}: {v}"
        );
        assert!(v.get("error").is_none(), "{body}: {v}");
        assert!(v["limits"].is_object() && v["api"]["level"].is_u64(), "{v}");
    }
}
