//! A stream's `republish`: every stored message whose subject matches
//! `src` is published again, on `dest` (a subject transform), with
//! headers that say where it is stored. Lightweight clients (and KV
//! watchers) follow a stream this way without a consumer.
//!
//! As in nats-server, only the stream's leader republishes, right after it
//! stored the message, and `Nats-Last-Sequence` is the sequence of the
//! previous message on the same subject (0 for the first), so subscribers
//! can spot gaps.

use serde::{Deserialize, Serialize};

use super::errors::{self, ApiError};
use super::transform::SubjectTransform;

/// `republish` as nats-server reads and writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RePublish {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub src: String,
    #[serde(default)]
    pub dest: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub headers_only: bool,
}

/// Fill in the default source (`>`) and check the configuration as
/// nats-server does: the destination may not overlap the stream's own
/// subjects (the republished message would be stored again, forever), and
/// the transform must be valid.
///
/// A republish of `>` to `>` on a stream whose only subject is the source
/// of its `subject_transform` republishes the transformed subjects (on
/// themselves), as nats-server allows.
pub(crate) fn normalize(
    rp: &mut RePublish,
    subjects: &[String],
    transform: Option<&super::subject_transform::SubjectTransformConfig>,
) -> Result<(), ApiError> {
    if rp.src.is_empty() {
        rp.src = ">".to_string();
    }
    if let Some(t) = transform {
        if rp.src == ">" && rp.dest == ">" && subjects.len() == 1 && t.src == subjects[0] {
            rp.src = t.dest.clone();
            rp.dest = t.dest.clone();
        }
    }
    if subjects
        .iter()
        .any(|s| crate::permissions::overlaps(&rp.dest, s))
    {
        return Err(errors::stream_invalid_config(
            "stream configuration for republish destination forms a cycle",
        ));
    }
    if SubjectTransform::new(&rp.src, &rp.dest).is_err() {
        return Err(errors::stream_invalid_config(format!(
            "stream configuration for republish with transform from '{}' to '{}' not valid",
            rp.src, rp.dest
        )));
    }
    Ok(())
}

/// The parsed form a stream keeps while it runs.
#[derive(Debug, Clone)]
pub(crate) struct Republisher {
    transform: SubjectTransform,
    headers_only: bool,
}

/// A message to republish once the stream's lock is released.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub subject: String,
    pub headers: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Republisher {
    /// `None` when the stream does not republish (or, which the
    /// configuration checks rule out, its transform does not parse).
    pub fn from_config(rp: Option<&RePublish>) -> Option<Republisher> {
        let rp = rp?;
        match SubjectTransform::new(&rp.src, &rp.dest) {
            Ok(transform) => Some(Republisher {
                transform,
                headers_only: rp.headers_only,
            }),
            Err(e) => {
                tracing::warn!(
                    "stream republish from {:?} to {:?} not valid: {e}",
                    rp.src,
                    rp.dest
                );
                None
            }
        }
    }

    /// The republish subject of a stored message on `subject`, if any.
    /// A transform that yields no valid literal subject republishes
    /// nothing, as in nats-server.
    pub fn target(&self, subject: &str) -> Option<String> {
        let t = self.transform.apply(subject)?;
        if crate::subject::is_valid_literal(t.as_bytes()) {
            Some(t)
        } else {
            tracing::warn!("suppressing republish with invalid subject {t:?}");
            None
        }
    }

    /// Build the republished message: the original headers (if any) with
    /// the stream's added, and the payload, or only its size.
    #[allow(clippy::too_many_arguments)]
    pub fn message(
        &self,
        to: String,
        stream: &str,
        subject: &str,
        seq: u64,
        ts: i64,
        last_seq: u64,
        headers: &[u8],
        payload: &[u8],
    ) -> Outgoing {
        use std::fmt::Write as _;
        let mut h = String::with_capacity(headers.len() + 160);
        match std::str::from_utf8(headers) {
            Ok(orig) if !orig.is_empty() => {
                // Drop the blank line that ends the block; ours follow.
                h.push_str(orig.strip_suffix("\r\n").unwrap_or(orig));
            }
            _ => h.push_str("NATS/1.0\r\n"),
        }
        let ts = super::types::rfc3339_nanos(ts);
        let _ = write!(
            h,
            "Nats-Stream: {stream}\r\nNats-Subject: {subject}\r\nNats-Sequence: {seq}\r\n\
             Nats-Time-Stamp: {ts}\r\nNats-Last-Sequence: {last_seq}\r\n"
        );
        if self.headers_only {
            let _ = write!(h, "Nats-Msg-Size: {}\r\n", payload.len());
        }
        h.push_str("\r\n");
        Outgoing {
            subject: to,
            headers: h.into_bytes(),
            payload: if self.headers_only {
                Vec::new()
            } else {
                payload.to_vec()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(src: &str, dest: &str) -> RePublish {
        RePublish {
            src: src.into(),
            dest: dest.into(),
            headers_only: false,
        }
    }

    #[test]
    fn normalize_defaults_and_refusals() {
        let subjects = vec!["orders.>".to_string()];
        let mut r = rp("", "rp.>");
        normalize(&mut r, &subjects, None).unwrap();
        assert_eq!(r.src, ">");
        let e = normalize(&mut rp(">", "orders.x.>"), &subjects, None).unwrap_err();
        assert_eq!(e.err_code, 10052);
        assert!(e.description.contains("forms a cycle"));
        let e = normalize(&mut rp("orders.*", "rp.*"), &subjects, None).unwrap_err();
        assert!(e.description.contains("not valid"), "{}", e.description);
    }

    #[test]
    fn headers_added_to_existing_or_new_block() {
        let r = Republisher::from_config(Some(&rp("orders.*", "rp.$1"))).unwrap();
        let to = r.target("orders.a").unwrap();
        assert_eq!(to, "rp.a");
        let m = r.message(to, "S", "orders.a", 5, 1_000_000_000, 2, b"", b"hi");
        let h = String::from_utf8(m.headers).unwrap();
        assert_eq!(
            h,
            "NATS/1.0\r\nNats-Stream: S\r\nNats-Subject: orders.a\r\nNats-Sequence: 5\r\n\
             Nats-Time-Stamp: 1970-01-01T00:00:01Z\r\nNats-Last-Sequence: 2\r\n\r\n"
        );
        assert_eq!(m.payload, b"hi");
        let mut ho = rp(">", "rp.>");
        ho.headers_only = true;
        let r = Republisher::from_config(Some(&ho)).unwrap();
        let m = r.message(
            "rp.x".into(),
            "S",
            "x",
            1,
            1,
            0,
            b"NATS/1.0\r\nA: b\r\n\r\n",
            b"abc",
        );
        let h = String::from_utf8(m.headers).unwrap();
        assert!(
            h.starts_with("NATS/1.0\r\nA: b\r\nNats-Stream: S\r\n"),
            "{h}"
        );
        assert!(h.ends_with("Nats-Msg-Size: 3\r\n\r\n"), "{h}");
        assert!(m.payload.is_empty());
    }
}
