//! An in-memory stream for the state tests (test builds only).

use std::collections::HashMap;
use std::sync::Mutex;

use async_nats::HeaderMap;
use bytes::Bytes;

use super::held::{StoredMsg, HDR_APPLIED};
use super::sync::{Backend, Outcome};
use crate::payload::MatchMessage;
use crate::process::HDR_RECEIVED;

/// An in-memory stream with JetStream's rules for what the bridge uses:
/// dedup by `Nats-Msg-Id` (checked first), then the expected last
/// subject sequence.
#[derive(Default)]
pub struct FakeStream {
    pub inner: Mutex<Inner>,
}

#[derive(Default)]
pub struct Inner {
    pub msgs: Vec<(String, HeaderMap, Bytes)>,
    pub ids: HashMap<String, u64>,
    /// Scripted: the next N publishes are stored but answered as lost
    /// acks are, by a retry that the stream then calls a duplicate.
    pub lose_acks: usize,
    /// Scripted: the next N reads that may be stale find nothing, as a
    /// replica that has not seen the subject yet answers.
    pub stale_reads: usize,
    pub loads: usize,
}

impl FakeStream {
    pub fn last(&self, subject: &str) -> Option<MatchMessage> {
        let inner = self.inner.lock().unwrap();
        let (_, _, p) = inner.msgs.iter().rev().find(|(s, _, _)| s == subject)?;
        Some(serde_json::from_slice(p).unwrap())
    }

    pub fn count(&self) -> usize {
        self.inner.lock().unwrap().msgs.len()
    }
}

impl Backend for FakeStream {
    async fn load_last(&self, subject: &str, from_leader: bool) -> Option<StoredMsg> {
        let mut inner = self.inner.lock().unwrap();
        inner.loads += 1;
        if !from_leader && inner.stale_reads > 0 {
            inner.stale_reads -= 1;
            return None;
        }
        let (i, (_, h, p)) = inner
            .msgs
            .iter()
            .enumerate()
            .rev()
            .find(|(_, (s, _, _))| s == subject)?;
        let get = |k: &str| h.get(k).map(|v| v.as_str().to_owned());
        Some(StoredMsg {
            seq: i as u64 + 1,
            msg_id: get("Nats-Msg-Id"),
            applied: get(HDR_APPLIED),
            received_ms: get(HDR_RECEIVED).and_then(|v| v.parse().ok()),
            payload: p.clone(),
        })
    }

    async fn publish(&self, subject: &str, headers: HeaderMap, payload: Bytes) -> Outcome {
        let mut inner = self.inner.lock().unwrap();
        let id = headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        if inner.ids.contains_key(&id) {
            return Outcome::Duplicate;
        }
        let expected: u64 = headers
            .get("Nats-Expected-Last-Subject-Sequence")
            .and_then(|v| v.as_str().parse().ok())
            .unwrap_or(0);
        let last = inner
            .msgs
            .iter()
            .enumerate()
            .rev()
            .find(|(_, (s, _, _))| s == subject)
            .map_or(0, |(i, _)| i as u64 + 1);
        if expected != last {
            return Outcome::Conflict;
        }
        inner.msgs.push((subject.into(), headers, payload));
        let seq = inner.msgs.len() as u64;
        inner.ids.insert(id, seq);
        if inner.lose_acks > 0 {
            inner.lose_acks -= 1;
            return Outcome::Duplicate;
        }
        Outcome::Stored { seq }
    }
}
