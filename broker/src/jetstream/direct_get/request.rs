//! A direct get's request body, read the way nats-server reads it, and the
//! checks it makes before looking at the stream.
//!
//! nats-server decodes the body with Go's `encoding/json` into
//! `JSApiMsgGetRequest`, and clients (and their bugs) rely on what that
//! accepts, so the decoder here follows it rather than serde's defaults:
//! keys match their field case-insensitively and a repeated key overrides
//! the earlier one; `null` leaves a field as it was (and clears a time or
//! the filter list); unknown keys are ignored; a body that is not an object
//! or has a value of the wrong type is malformed.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// `JSApiMsgGetRequest`: which message(s) a direct get asks for. Empty
/// strings and zeros mean "not set", as in nats-server.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Request {
    /// A sequence: the message there, or the first of a batch.
    pub seq: u64,
    /// The last message on a subject (wildcards allowed).
    pub last_by_subj: String,
    /// The first message at or after `seq` on a subject (wildcards allowed).
    pub next_by_subj: String,
    /// How many messages; non-zero makes it a batch, answered with an EOB
    /// status at the end.
    pub batch: i64,
    /// Stop once this many bytes (subject, stored headers, payload) went
    /// out; 0 means the server's `max_pending`.
    pub max_bytes: i64,
    /// Start at the first message at or after this time (unix nanos).
    pub start_time: Option<i64>,
    /// The last message of each subject matching any of these filters.
    pub multi_last: Vec<String>,
    /// For `multi_last`: as of this sequence (0 = the stream's last).
    pub up_to_seq: u64,
    /// For `multi_last`: as of the last message before this time.
    pub up_to_time: Option<i64>,
    /// Send stored payloads alone, without any headers.
    pub no_hdr: bool,
}

/// Why a request is refused before the stream is read: the description of
/// nats-server's 408 status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Empty,
    Malformed,
    Bad,
}

impl Refusal {
    /// The status line's description, as nats-server words it.
    pub fn description(self) -> &'static str {
        match self {
            Refusal::Empty => "Empty Request",
            Refusal::Malformed => "Malformed Request",
            Refusal::Bad => "Bad Request",
        }
    }
}

impl Request {
    /// A `$JS.API.DIRECT.GET.<stream>` body: decoded and checked as
    /// nats-server's `processDirectGetRequest` does, in its order.
    pub fn from_body(payload: &[u8]) -> Result<Request, Refusal> {
        if payload.is_empty() {
            return Err(Refusal::Empty);
        }
        let req: Request = serde_json::from_slice(payload).map_err(|_| Refusal::Malformed)?;
        if req.seq == 0
            && req.last_by_subj.is_empty()
            && req.next_by_subj.is_empty()
            && req.multi_last.is_empty()
            && req.start_time.is_none()
        {
            return Err(Refusal::Empty);
        }
        let last = !req.last_by_subj.is_empty();
        let next = !req.next_by_subj.is_empty();
        let multi = !req.multi_last.is_empty();
        let seq = req.seq > 0;
        let time = req.start_time.is_some();
        // nats-server's list of options that cannot go together (no batch
        // of "the last message on a subject", for one).
        let exclusive = [
            (seq, last),
            (seq, time),
            (time, last),
            (last, next),
            (last, req.batch > 0),
            (last, multi),
            (next, multi),
            (req.up_to_seq > 0, req.up_to_time.is_some()),
        ];
        let conflict = exclusive.iter().any(|(a, b)| *a && *b);
        if conflict {
            return Err(Refusal::Bad);
        }
        Ok(req)
    }

    /// A `$JS.API.DIRECT.GET.<stream>.<subject>` request: the last message
    /// on `subject`. A body is optional; only `no_hdr` and `max_bytes` may
    /// be set in it (nats-server's `processDirectGetLastBySubjectRequest`).
    pub fn last_for(subject: &str, payload: &[u8]) -> Result<Request, Refusal> {
        let mut req = if payload.is_empty() {
            Request::default()
        } else {
            serde_json::from_slice(payload).map_err(|_| Refusal::Malformed)?
        };
        if subject.is_empty() {
            return Err(Refusal::Bad);
        }
        let asks_more = !req.last_by_subj.is_empty()
            || !req.next_by_subj.is_empty()
            || !req.multi_last.is_empty()
            || req.seq != 0
            || req.batch != 0
            || req.start_time.is_some()
            || req.up_to_seq != 0
            || req.up_to_time.is_some();
        if asks_more {
            return Err(Refusal::Bad);
        }
        req.last_by_subj = subject.to_string();
        Ok(req)
    }
}

/// The request's fields, for matching keys.
#[derive(Clone, Copy)]
enum Field {
    Seq,
    LastBySubj,
    NextBySubj,
    Batch,
    MaxBytes,
    StartTime,
    MultiLast,
    UpToSeq,
    UpToTime,
    NoHdr,
}

const FIELDS: [(&str, Field); 10] = [
    ("seq", Field::Seq),
    ("last_by_subj", Field::LastBySubj),
    ("next_by_subj", Field::NextBySubj),
    ("batch", Field::Batch),
    ("max_bytes", Field::MaxBytes),
    ("start_time", Field::StartTime),
    ("multi_last", Field::MultiLast),
    ("up_to_seq", Field::UpToSeq),
    ("up_to_time", Field::UpToTime),
    ("no_hdr", Field::NoHdr),
];

/// Go's `encoding/json` matches a key to a field exactly or, failing that,
/// case-insensitively. (Go also folds a few non-ASCII letters such as the
/// Kelvin sign; no client sends those.)
fn field(key: &str) -> Option<Field> {
    FIELDS
        .iter()
        .find(|(name, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, f)| *f)
}

/// A time as Go's `time.Time` reads it from JSON (an RFC 3339 string), as
/// unix nanoseconds; times beyond what 64 bits of nanoseconds hold are
/// clamped (they are before or after every message either way).
fn unix_nanos(text: &str) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    }))
}

fn time_value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<i64>, A::Error> {
    match map.next_value::<Option<String>>()? {
        None => Ok(None),
        Some(text) => unix_nanos(&text)
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("parsing time {text:?}"))),
    }
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RequestVisitor)
    }
}

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = Request;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a direct get request object")
    }

    /// `null` decodes to the empty request, as in Go.
    fn visit_unit<E: de::Error>(self) -> Result<Request, E> {
        Ok(Request::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Request, A::Error> {
        let mut r = Request::default();
        while let Some(key) = map.next_key::<String>()? {
            let Some(f) = field(&key) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            // A `null` leaves a value field as it was; a pointer or slice
            // field (times, filters) becomes nil.
            match f {
                Field::Seq => r.seq = map.next_value::<Option<u64>>()?.unwrap_or(r.seq),
                Field::UpToSeq => {
                    r.up_to_seq = map.next_value::<Option<u64>>()?.unwrap_or(r.up_to_seq)
                }
                Field::Batch => r.batch = map.next_value::<Option<i64>>()?.unwrap_or(r.batch),
                Field::MaxBytes => {
                    r.max_bytes = map.next_value::<Option<i64>>()?.unwrap_or(r.max_bytes)
                }
                Field::NoHdr => r.no_hdr = map.next_value::<Option<bool>>()?.unwrap_or(r.no_hdr),
                Field::LastBySubj => {
                    if let Some(s) = map.next_value::<Option<String>>()? {
                        r.last_by_subj = s;
                    }
                }
                Field::NextBySubj => {
                    if let Some(s) = map.next_value::<Option<String>>()? {
                        r.next_by_subj = s;
                    }
                }
                Field::MultiLast => {
                    r.multi_last = map
                        .next_value::<Option<Vec<Option<String>>>>()?
                        .unwrap_or_default()
                        .into_iter()
                        .map(Option::unwrap_or_default)
                        .collect()
                }
                Field::StartTime => r.start_time = time_value(&mut map)?,
                Field::UpToTime => r.up_to_time = time_value(&mut map)?,
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> Result<Request, Refusal> {
        Request::from_body(text.as_bytes())
    }

    #[test]
    fn decodes_like_go_encoding_json() {
        let r = body(
            r#"{"SEQ":3,"Batch":2,"max_BYTES":9,"no_hdr":true,"unknown":[1,{"a":2}],
                "start_time":null,"next_by_subj":"s.*"}"#,
        )
        .expect("decodes");
        assert_eq!((r.seq, r.batch, r.max_bytes), (3, 2, 9));
        assert!(r.no_hdr);
        assert_eq!(r.next_by_subj, "s.*");
        // The later of two keys for one field wins, whatever their case.
        assert_eq!(body(r#"{"seq":1,"Seq":5}"#).expect("decodes").seq, 5);
        // null keeps a value field.
        assert_eq!(body(r#"{"seq":4,"seq":null}"#).expect("decodes").seq, 4);
        let r = body(r#"{"multi_last":["a.*",null],"up_to_time":"2020-01-02T03:04:05.5+01:00"}"#)
            .expect("decodes");
        assert_eq!(r.multi_last, vec!["a.*".to_string(), String::new()]);
        assert_eq!(r.up_to_time, Some(1_577_930_645_500_000_000));
        assert_eq!(
            body(r#"{"start_time":"9999-01-01T00:00:00Z"}"#)
                .expect("decodes")
                .start_time,
            Some(i64::MAX),
            "clamped"
        );
    }

    #[test]
    fn refusals_in_nats_server_order() {
        assert_eq!(body(""), Err(Refusal::Empty));
        for bad in [
            " ",
            "nope",
            "[]",
            "7",
            r#"{"seq":-1}"#,
            r#"{"seq":1.5}"#,
            r#"{"batch":2.0,"seq":1}"#,
            r#"{"seq":"1"}"#,
            r#"{"multi_last":"x"}"#,
            r#"{"start_time":"yesterday"}"#,
            r#"{"seq":18446744073709551616}"#,
            r#"{"seq":1} x"#,
        ] {
            assert_eq!(body(bad), Err(Refusal::Malformed), "{bad:?}");
        }
        for empty in [
            "null",
            "{}",
            r#"{"seq":0}"#,
            r#"{"batch":5}"#,
            r#"{"multi_last":[]}"#,
            r#"{"last_by_subj":""}"#,
        ] {
            assert_eq!(body(empty), Err(Refusal::Empty), "{empty:?}");
        }
        let t = r#""2000-01-01T00:00:00Z""#;
        for conflict in [
            r#"{"seq":1,"last_by_subj":"a"}"#.to_string(),
            format!(r#"{{"seq":1,"start_time":{t}}}"#),
            format!(r#"{{"last_by_subj":"a","start_time":{t}}}"#),
            r#"{"last_by_subj":"a","next_by_subj":"b"}"#.to_string(),
            r#"{"last_by_subj":"a","batch":2}"#.to_string(),
            r#"{"last_by_subj":"a","multi_last":["x"]}"#.to_string(),
            r#"{"next_by_subj":"a","multi_last":["x"]}"#.to_string(),
            format!(r#"{{"multi_last":["x"],"up_to_seq":1,"up_to_time":{t}}}"#),
        ] {
            assert_eq!(body(&conflict), Err(Refusal::Bad), "{conflict}");
        }
        // A negative batch on "last" is no conflict for nats-server either.
        assert!(body(r#"{"last_by_subj":"a","batch":-1}"#).is_ok());
        assert!(body(r#"{"seq":1}   "#).is_ok(), "trailing blanks");
    }

    #[test]
    fn subject_form_takes_only_no_hdr_and_max_bytes() {
        let r = Request::last_for("s.a", b"").expect("no body");
        assert_eq!(r.last_by_subj, "s.a");
        let r = Request::last_for("s.a", br#"{"no_hdr":true,"max_bytes":3}"#).expect("allowed");
        assert!(r.no_hdr);
        assert_eq!(r.max_bytes, 3);
        assert!(Request::last_for("s.a", b"null").is_ok());
        assert!(Request::last_for("s.a", b"{}").is_ok());
        assert_eq!(Request::last_for("s.a", b" "), Err(Refusal::Malformed));
        assert_eq!(Request::last_for("", b""), Err(Refusal::Bad));
        for extra in [
            r#"{"batch":2}"#,
            r#"{"seq":2}"#,
            r#"{"multi_last":["x"]}"#,
            r#"{"up_to_seq":3}"#,
            r#"{"next_by_subj":"x"}"#,
            r#"{"last_by_subj":"x"}"#,
            r#"{"start_time":"2000-01-01T00:00:00Z"}"#,
            r#"{"up_to_time":"2000-01-01T00:00:00Z"}"#,
        ] {
            assert_eq!(
                Request::last_for("s.a", extra.as_bytes()),
                Err(Refusal::Bad),
                "{extra}"
            );
        }
    }
}
