//! Reading a replicated stream back replica by replica, to prove the
//! replicas hold the same stream rather than that some node can serve it.
//!
//! `STREAM.MSG.GET` is answered by the stream's leader, whichever node the
//! request enters at; direct gets may be answered by any replica. So a
//! node's own copy is read by making that node the leader (stepdowns until
//! it is) and asking for every sequence. Every field the server returns is
//! compared: subject, headers, payload and the stored time.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;

use super::js_cluster::JsCluster;

/// How long a stepdown request may take: nats-server answers at once,
/// tribune-broker once another node leads (up to about 6 s).
const STEPDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a leader that answered a stepdown may take to be replaced
/// before the stepdown counts as failed and is asked again.
const STEPDOWN_SETTLE: Duration = Duration::from_secs(20);

/// `MSG.GET` requests in flight at once while reading a copy.
const READ_WINDOW: usize = 32;

/// How often one `MSG.GET` is tried before the read gives up (a request
/// can time out on a loaded machine).
const READ_TRIES: u32 = 5;

/// One stored message as `STREAM.MSG.GET` returns it (base64 fields left
/// encoded, so they compare as the server wrote them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMsg {
    pub subject: String,
    pub hdrs: Option<String>,
    pub data: String,
    pub time: String,
}

impl StoredMsg {
    /// The payload, decoded (empty if the server sent bad base64, which
    /// then shows up as a mismatch).
    pub fn payload(&self) -> Bytes {
        base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .map(Bytes::from)
            .unwrap_or_default()
    }

    /// The `Nats-Msg-Id` header's value, if any.
    pub fn msg_id(&self) -> Option<String> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(self.hdrs.as_deref()?)
            .ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("Nats-Msg-Id")
                .then(|| v.trim().to_string())
        })
    }
}

/// What one node, as the stream's leader, holds.
#[derive(Debug)]
pub struct ReplicaCopy {
    pub node: usize,
    pub name: String,
    /// `first_seq`, `last_seq`, `messages`, `num_deleted` of its STREAM.INFO.
    pub state: BTreeMap<&'static str, u64>,
    /// seq → message, for `first_seq..=last_seq`.
    pub msgs: BTreeMap<u64, StoredMsg>,
    /// Sequences in `first_seq..=last_seq` answered "no message found".
    pub missing: Vec<u64>,
}

impl JsCluster {
    /// `STREAM.LEADER.STEPDOWN` through node `via` asking for node `to`
    /// (`placement.preferred`). `Err` on an error answer or silence.
    pub async fn stream_stepdown_to(
        &self,
        stream: &str,
        via: usize,
        to: usize,
    ) -> Result<(), String> {
        let body = serde_json::json!({ "placement": { "preferred": self.c.node(to).name } });
        let v = self
            .request_within(
                via,
                &format!("$JS.API.STREAM.LEADER.STEPDOWN.{stream}"),
                &body.to_string(),
                STEPDOWN_TIMEOUT,
            )
            .await?;
        if v.get("error").is_some() || v["success"] != true {
            return Err(format!(
                "stepdown of {stream} via {}: {v}",
                self.c.node(via).name
            ));
        }
        Ok(())
    }

    /// Step the leadership of `stream` down until node `i` leads it with
    /// every running node a current replica (panics after many tries).
    pub async fn make_stream_leader(&self, stream: &str, i: usize) {
        self.make_stream_leader_among(stream, i, &self.live_set())
            .await
    }

    /// Like [`JsCluster::make_stream_leader`] for a stream whose replicas
    /// are on the nodes `members`.
    pub async fn make_stream_leader_among(
        &self,
        stream: &str,
        i: usize,
        members: &BTreeSet<usize>,
    ) {
        let started = std::time::Instant::now();
        for attempt in 1..=30 {
            let (leader, _) = self.wait_stream_leader_among(stream, None, members).await;
            if leader == i {
                if attempt > 1 {
                    // Informational, never asserted.
                    eprintln!(
                        "{} leads {stream} after {} stepdowns, {:?}",
                        self.c.node(i).name,
                        attempt - 1,
                        started.elapsed()
                    );
                }
                return;
            }
            let name = self.c.node(leader).name.clone();
            match self.stream_stepdown_to(stream, i, i).await {
                Ok(()) => {
                    if let Err(e) = self
                        .try_stream_leader_among(stream, Some(&name), members, STEPDOWN_SETTLE)
                        .await
                    {
                        eprintln!("stepdown of {stream} answered but did not settle: {e}");
                    }
                }
                Err(e) => {
                    eprintln!(
                        "making {} lead {stream}, try {attempt}: {e}",
                        self.c.node(i).name
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        panic!(
            "{} never became the leader of {stream}\n{}",
            self.c.node(i).name,
            self.c.diagnostics().await
        );
    }

    /// One `MSG.GET` of `seq` through node `via`, retried on silence and
    /// on error answers (a 503 while leadership settles): `Ok(None)` for
    /// "no message found".
    async fn msg_get_stored(
        &self,
        via: usize,
        stream: &str,
        seq: u64,
    ) -> Result<Option<StoredMsg>, String> {
        let subject = format!("$JS.API.STREAM.MSG.GET.{stream}");
        let body = format!("{{\"seq\":{seq}}}");
        let mut last = String::new();
        for _ in 0..READ_TRIES {
            let v = match self.request(via, &subject, &body).await {
                Ok(v) => v,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            if let Some(e) = v.get("error") {
                if e["code"] == 404 {
                    return Ok(None);
                }
                last = v.to_string();
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let m = &v["message"];
            if m["seq"].as_u64() != Some(seq) {
                return Err(format!("MSG.GET seq {seq} answered {v}"));
            }
            let text = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            return Ok(Some(StoredMsg {
                subject: text("subject"),
                hdrs: m["hdrs"].as_str().map(str::to_string),
                data: text("data"),
                time: text("time"),
            }));
        }
        Err(format!(
            "MSG.GET seq {seq} via {}: {last}",
            self.c.node(via).name
        ))
    }

    /// Node `leader`'s copy of `stream`, read while it leads: its state and
    /// every message from `first_seq` to `last_seq`. `Err` when node
    /// `leader` is not the leader before and after the read, or a read
    /// fails.
    pub async fn read_leader_copy(
        &self,
        stream: &str,
        leader: usize,
    ) -> Result<ReplicaCopy, String> {
        let name = self.c.node(leader).name.clone();
        let info = |v: &Value| -> BTreeMap<&'static str, u64> {
            ["first_seq", "last_seq", "messages", "num_deleted"]
                .into_iter()
                .map(|k| (k, v["state"][k].as_u64().unwrap_or(0)))
                .collect()
        };
        let before = self
            .request_ok(leader, &format!("$JS.API.STREAM.INFO.{stream}"), "")
            .await?;
        if before["cluster"]["leader"] != name.as_str() {
            return Err(format!("{name} does not lead: {before}"));
        }
        let state = info(&before);
        let (first, last) = (state["first_seq"].max(1), state["last_seq"]);
        let reads: Vec<(u64, Result<Option<StoredMsg>, String>)> =
            futures::stream::iter(first..=last)
                .map(|seq| async move { (seq, self.msg_get_stored(leader, stream, seq).await) })
                .buffered(READ_WINDOW)
                .collect()
                .await;
        let mut msgs = BTreeMap::new();
        let mut missing = Vec::new();
        for (seq, r) in reads {
            match r {
                Ok(Some(m)) => {
                    msgs.insert(seq, m);
                }
                Ok(None) => missing.push(seq),
                Err(e) => return Err(format!("reading {stream} from {name}: {e}")),
            }
        }
        let after = self
            .request_ok(leader, &format!("$JS.API.STREAM.INFO.{stream}"), "")
            .await?;
        if after["cluster"]["leader"] != name.as_str() || info(&after) != state {
            return Err(format!(
                "{name}'s copy changed while read: {before} then {after}"
            ));
        }
        Ok(ReplicaCopy {
            node: leader,
            name,
            state,
            msgs,
            missing,
        })
    }

    /// Every running node's copy of `stream`, the current leader's first:
    /// the leadership is stepped down until every node has led once (in
    /// whatever order the elections give), each node's copy read whole
    /// while it leads. The stream must not be written to meanwhile. The
    /// last node read is left leading.
    pub async fn every_replica_copy(&self, stream: &str) -> Vec<ReplicaCopy> {
        self.every_replica_copy_among(stream, &self.live_set())
            .await
    }

    /// Like [`JsCluster::every_replica_copy`] for a stream whose replicas
    /// are on the nodes `members` (each running one is read).
    pub async fn every_replica_copy_among(
        &self,
        stream: &str,
        members: &BTreeSet<usize>,
    ) -> Vec<ReplicaCopy> {
        let started = std::time::Instant::now();
        let mut unread: BTreeSet<usize> = self
            .c
            .live()
            .into_iter()
            .filter(|i| members.contains(i))
            .collect();
        let mut out = Vec::new();
        let (mut stepdowns, mut failed, mut read_failures) = (0, 0, 0);
        // Who led after each stepdown, for the failure message.
        let mut leaders = Vec::new();
        while !unread.is_empty() {
            // Ask for an unread node, at random: the read order, and so the
            // node left leading afterwards, varies from call to call.
            let next = *unread
                .iter()
                .nth(rand::random_range(0..unread.len()))
                .unwrap_or(&0);
            let (leader, _) = self.wait_stream_leader_among(stream, None, members).await;
            leaders.push(self.c.node(leader).name.clone());
            if stepdowns + failed >= 16 {
                let names: Vec<&str> = unread
                    .iter()
                    .map(|&i| self.c.node(i).name.as_str())
                    .collect();
                panic!(
                    "{names:?} never became the leader of {stream} (each a current replica): \
                     {stepdowns} stepdowns, {failed} failed; leaders in turn: {leaders:?}\n{}",
                    self.c.diagnostics().await
                );
            }
            if unread.contains(&leader) {
                match self.read_leader_copy(stream, leader).await {
                    Ok(copy) => {
                        unread.remove(&leader);
                        out.push(copy);
                        continue;
                    }
                    Err(e) => {
                        read_failures += 1;
                        if read_failures > 5 {
                            panic!("{e}\n{}", self.c.diagnostics().await);
                        }
                        eprintln!("reading {stream} again: {e}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            let name = self.c.node(leader).name.clone();
            match self.stream_stepdown_to(stream, leader, next).await {
                Ok(()) => {
                    let settled = self
                        .try_stream_leader_among(stream, Some(&name), members, STEPDOWN_SETTLE)
                        .await;
                    // nats-server may answer a stepdown and keep leading
                    // (seen right after a replica moved): then ask again.
                    // Replicas still catching up are waited for as before.
                    let moved = match settled {
                        Ok(_) => true,
                        Err(e) => {
                            eprintln!("stepdown of {stream} answered but did not settle: {e}");
                            let (now, _) =
                                self.wait_stream_leader_among(stream, None, members).await;
                            now != leader
                        }
                    };
                    if moved {
                        stepdowns += 1;
                    } else {
                        failed += 1;
                    }
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("stepdown of {stream} failed: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        // Informational, never asserted.
        eprintln!(
            "read {} copies of {stream} ({} messages each) in {:?}: {stepdowns} stepdowns, {failed} failed",
            out.len(),
            out.first().map_or(0, |c| c.msgs.len()),
            started.elapsed()
        );
        out
    }
}

/// Where two copies differ: state, missing sequences and the first few
/// messages that are not the same (empty when identical).
pub fn copy_differences(a: &ReplicaCopy, b: &ReplicaCopy) -> String {
    let mut out = String::new();
    if a.state != b.state {
        let _ = writeln!(
            out,
            "state: {} {:?}, {} {:?}",
            a.name, a.state, b.name, b.state
        );
    }
    if a.missing != b.missing {
        let _ = writeln!(
            out,
            "missing: {} {:?}, {} {:?}",
            a.name, a.missing, b.name, b.missing
        );
    }
    let seqs: BTreeSet<u64> = a.msgs.keys().chain(b.msgs.keys()).copied().collect();
    let differing: Vec<u64> = seqs
        .into_iter()
        .filter(|s| a.msgs.get(s) != b.msgs.get(s))
        .collect();
    if !differing.is_empty() {
        let _ = writeln!(
            out,
            "{} sequences differ ({}..={}):",
            differing.len(),
            differing[0],
            differing[differing.len() - 1]
        );
        for s in differing.iter().take(5) {
            let _ = writeln!(
                out,
                "  seq {s}: {} {:?}\n  seq {s}: {} {:?}",
                a.name,
                a.msgs.get(s),
                b.name,
                b.msgs.get(s)
            );
        }
    }
    out
}

/// Panics, naming what differs, unless every copy equals the first.
pub fn assert_copies_identical(copies: &[ReplicaCopy], ctx: &str) {
    let Some(reference) = copies.first() else {
        return;
    };
    let mut problems = String::new();
    for c in &copies[1..] {
        let d = copy_differences(reference, c);
        if !d.is_empty() {
            let _ = write!(problems, "{} vs {}:\n{d}", reference.name, c.name);
        }
    }
    assert!(problems.is_empty(), "{ctx}: replicas diverged:\n{problems}");
}
