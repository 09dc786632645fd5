//! Clustered JetStream scenarios: a stream with three replicas on a 3-node
//! cluster (every node with JetStream on its own store), created with raw
//! `$JS.API` requests like the single-server JetStream rows.
//!
//! This module holds what both scenarios share: which nats-server sync
//! settings a scenario runs with, creating the stream once the cluster's
//! JetStream is up, finding its leader from `STREAM.INFO`
//! (`cluster.leader`), and an acknowledged publisher whose acks are matched
//! to their publishes by reply subject. The scenarios are in
//! `js_r3_pub.rs` and `js_r3_failover.rs`.

use std::io;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::scenarios::{Outcome, Params, Scenario};
use crate::servers::Cluster;
use crate::timed::Client;

/// Messages per publish run by default: a second or two of publishing
/// each, enough to even out the group-commit batches.
pub const DEFAULT_R3_MSGS: u64 = 100_000;
/// Stream leaders killed per failover run by default.
pub const DEFAULT_FAILOVERS: u64 = 3;

/// 128-byte payloads, as in the other JetStream rows.
pub const PAYLOAD: [u8; 128] = [b'x'; 128];

/// How long setting up may take: nats-server elects its meta leader a few
/// seconds after the routes connect, Tribune forms its meta group once the
/// set of peers has been stable for 4 s.
const SETUP_DEADLINE: Duration = Duration::from_secs(60);
/// Each `$JS.API` request while setting up.
const API_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between setup attempts.
const SETUP_RETRY: Duration = Duration::from_millis(100);

/// nats-server's JetStream sync setting in a clustered row. Tribune has one
/// mode (every replica fsyncs its Raft log before the entry counts towards
/// the quorum; the ack follows the quorum), so only nats-server varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsSync {
    /// No `sync_interval`: nats-server syncs every 2 minutes.
    Default,
    /// `sync_interval: always`: an fsync for every write.
    Always,
}

impl NatsSync {
    /// Lines for the `jetstream` block of nats-server's config.
    pub fn config(self) -> &'static str {
        match self {
            NatsSync::Default => "",
            NatsSync::Always => crate::servers::JS_SYNC,
        }
    }

    /// How the setting is named in output rows.
    pub fn label(self) -> &'static str {
        match self {
            NatsSync::Default => "nats: default sync, every 2 min",
            NatsSync::Always => "nats: sync_interval always",
        }
    }
}

/// What Tribune does, as named in output rows.
pub const TRIBUNE_SYNC: &str = "tribune: fsync before ack on a quorum";

/// The nats-server settings `s` runs with, one measurement each per round.
pub fn nats_syncs(s: Scenario) -> &'static [NatsSync] {
    match s {
        Scenario::JsR3Pub => &[NatsSync::Default, NatsSync::Always],
        // Elections do not depend on the sync setting: the default.
        _ => &[NatsSync::Default],
    }
}

/// Run clustered scenario `s` on `cluster`.
pub fn run(s: Scenario, cluster: &mut Cluster, p: Params) -> io::Result<Outcome> {
    let cpu0 = crate::proc_stats::self_cpu();
    let mut out = match s {
        Scenario::JsR3Pub => crate::js_r3_pub::run(cluster, p.js_r3_msgs)?,
        Scenario::JsR3Failover => crate::js_r3_failover::run(cluster, p.failovers)?,
        other => {
            return Err(io::Error::other(format!(
                "{other:?} is not a clustered JetStream scenario"
            )))
        }
    };
    out.bench_cpu = crate::proc_stats::self_cpu() - cpu0;
    Ok(out)
}

/// Create file stream `name` on `subject` with three replicas, retrying
/// until the cluster's JetStream accepts it.
pub fn create_stream(cluster: &Cluster, name: &str, subject: &str) -> io::Result<()> {
    let body = format!(
        r#"{{"name":"{name}","subjects":["{subject}"],"storage":"file","retention":"limits","num_replicas":3}}"#
    );
    let api = format!("$JS.API.STREAM.CREATE.{name}");
    retry_setup(cluster, &format!("creating stream {name}"), |c| {
        let r = c
            .request(&api, body.as_bytes(), API_TIMEOUT)?
            .ok_or_else(|| io::Error::other("no answer"))?;
        let v = json_reply(r.status, &r.body)?;
        match v.get("error") {
            None => Ok(Some(())),
            // An earlier attempt that timed out may have made it after all.
            Some(e) if e["err_code"] == 10058 => Ok(Some(())),
            Some(e) => Err(io::Error::other(e.to_string())),
        }
    })
}

/// The stream's leader, once it has one and (with `all_current`) both
/// other replicas report current, as node index.
pub fn wait_for_leader(cluster: &Cluster, name: &str, all_current: bool) -> io::Result<usize> {
    let api = format!("$JS.API.STREAM.INFO.{name}");
    retry_setup(cluster, &format!("waiting for {name}'s leader"), |c| {
        let r = c
            .request(&api, b"", API_TIMEOUT)?
            .ok_or_else(|| io::Error::other("no answer"))?;
        let v = json_reply(r.status, &r.body)?;
        if let Some(e) = v.get("error") {
            return Err(io::Error::other(e.to_string()));
        }
        match leader_of(&v, all_current) {
            Ok(leader) => cluster
                .index_of(&leader)
                .map(Some)
                .ok_or_else(|| io::Error::other(format!("leader {leader} is not a node"))),
            Err(why) => Err(io::Error::other(why)),
        }
    })
}

/// The leader named by a `STREAM.INFO` response, if it has one and, with
/// `all_current`, two current replicas besides.
fn leader_of(info: &Value, all_current: bool) -> Result<String, String> {
    let cluster = &info["cluster"];
    let leader = cluster["leader"].as_str().unwrap_or_default();
    if leader.is_empty() {
        return Err(format!("no leader yet: {cluster}"));
    }
    if all_current {
        let replicas = cluster["replicas"].as_array().map_or(&[][..], |v| v);
        let current = replicas
            .iter()
            .filter(|r| r["current"] == true && r["offline"] != true)
            .count();
        if current < 2 {
            return Err(format!("replicas not all current: {cluster}"));
        }
    }
    Ok(leader.to_string())
}

/// A node other than `leader`, for the client: its publishes then cross a
/// route to the leader, as they do for two clients in three.
pub fn follower(cluster: &Cluster, leader: usize) -> usize {
    (0..cluster.len())
        .find(|&i| i != leader && cluster.is_running(i))
        .unwrap_or(leader)
}

/// Parse a `$JS.API` answer, which must be JSON (a 503 status means no
/// server answers the API yet).
fn json_reply(status: Option<u16>, body: &str) -> io::Result<Value> {
    if let Some(code) = status {
        return Err(io::Error::other(format!("status {code}")));
    }
    serde_json::from_str(body).map_err(|e| io::Error::other(format!("{e}: {body}")))
}

/// Call `attempt` with a client of a running node until it returns
/// `Some`, reconnecting after errors, for up to [`SETUP_DEADLINE`].
fn retry_setup<T>(
    cluster: &Cluster,
    what: &str,
    mut attempt: impl FnMut(&mut Client) -> io::Result<Option<T>>,
) -> io::Result<T> {
    let deadline = Instant::now() + SETUP_DEADLINE;
    let mut client: Option<Client> = None;
    let mut node = 0;
    let mut last = String::from("not tried");
    while Instant::now() < deadline {
        if client.is_none() {
            node = (node + 1) % cluster.len();
            if !cluster.is_running(node) {
                continue;
            }
            match Client::connect(cluster.addr(node), "bench-setup", API_TIMEOUT) {
                Ok(c) => client = Some(c),
                Err(e) => last = e.to_string(),
            }
        }
        if let Some(c) = client.as_mut() {
            match attempt(c) {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => {
                    last = e.to_string();
                    // A timed-out request may answer later: start afresh.
                    client = None;
                }
            }
        }
        std::thread::sleep(SETUP_RETRY);
    }
    Err(io::Error::other(format!(
        "{what}: gave up after {SETUP_DEADLINE:?}: {last}"
    )))
}

/// How the server answered one publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A PubAck: stored on a quorum.
    Stored,
    /// No responders (503): no server holds the stream's subjects now,
    /// the case while a new leader is being elected.
    NoResponders,
    /// A JetStream error, or anything else.
    Refused(String),
}

/// An acknowledged publisher on one connection: every publish has its own
/// reply subject `_R3.ack.<id>`, ids counting up from 0, so an answer
/// names the publish it answers even after others timed out.
pub struct AckedPub {
    client: Client,
    subject: String,
    next_id: u64,
}

const ACK_PREFIX: &str = "_R3.ack.";

impl AckedPub {
    /// Connect to `cluster`'s node `at` and subscribe the acks.
    pub fn connect(cluster: &Cluster, at: usize, subject: &str) -> io::Result<AckedPub> {
        let mut client = Client::connect(cluster.addr(at), "bench-r3", API_TIMEOUT)?;
        client.sub(&format!("{ACK_PREFIX}>"), 1);
        client.wait_pong(Instant::now() + API_TIMEOUT)?;
        Ok(AckedPub {
            client,
            subject: subject.to_string(),
            next_id: 0,
        })
    }

    /// The id the next publish gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Queue one publish (sent by [`AckedPub::flush`]); its id.
    pub fn send(&mut self) -> u64 {
        let id = self.next_id;
        self.client.publish(&self.subject, ACK_PREFIX, id, &PAYLOAD);
        self.next_id += 1;
        id
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.client.flush()
    }

    /// The next answer and the id of the publish it answers, or `None` at
    /// `deadline`.
    pub fn next(&mut self, deadline: Instant) -> io::Result<Option<(u64, Answer)>> {
        loop {
            let Some(m) = self.client.next(deadline)? else {
                return Ok(None);
            };
            let Some(id) = m
                .subject
                .strip_prefix(ACK_PREFIX.as_bytes())
                .and_then(|s| std::str::from_utf8(s).ok())
                .and_then(|s| s.parse().ok())
            else {
                continue;
            };
            return Ok(Some((id, classify(m.status, m.payload))));
        }
    }

    /// Publish one message after another until one is stored, each
    /// answered or given up on within `timeout`: the stream's subjects
    /// reach this node over the routes a moment after the leader takes
    /// them. Fails after [`SETUP_DEADLINE`].
    pub fn until_stored(&mut self, timeout: Duration) -> io::Result<()> {
        let end = Instant::now() + SETUP_DEADLINE;
        let mut last = Answer::NoResponders;
        while Instant::now() < end {
            let first = self.send();
            self.flush()?;
            let give_up = Instant::now() + timeout;
            while let Some((id, answer)) = self.next(give_up)? {
                if answer == Answer::Stored && id >= first {
                    return Ok(());
                }
                if id == first {
                    last = answer;
                    // Answered but not stored: wait out the rest of the
                    // timeout before trying again, as a client would.
                    std::thread::sleep(give_up.saturating_duration_since(Instant::now()));
                    break;
                }
            }
        }
        Err(io::Error::other(format!(
            "no publish to {} was stored within {SETUP_DEADLINE:?}: {last:?}",
            self.subject
        )))
    }
}

/// Classify an answer to a publish.
fn classify(status: Option<u16>, payload: &[u8]) -> Answer {
    match status {
        Some(503) => Answer::NoResponders,
        Some(code) => Answer::Refused(format!("status {code}")),
        None if payload.starts_with(b"{")
            && !payload.windows(7).any(|w| w == b"\"error\"")
            && payload.windows(6).any(|w| w == b"\"seq\":") =>
        {
            Answer::Stored
        }
        None => Answer::Refused(String::from_utf8_lossy(payload).into_owned()),
    }
}

/// CPU seconds used so far by all of `pids` (those still alive).
pub fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|&p| crate::proc_stats::proc_cpu(p))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_answers() {
        assert_eq!(classify(None, br#"{"stream":"S","seq":7}"#), Answer::Stored);
        assert_eq!(
            classify(
                None,
                br#"{"stream":"S","domain":"d","seq":7,"duplicate":true}"#
            ),
            Answer::Stored
        );
        assert_eq!(classify(Some(503), b""), Answer::NoResponders);
        assert!(matches!(
            classify(
                None,
                br#"{"error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}"#
            ),
            Answer::Refused(_)
        ));
        assert!(matches!(classify(Some(408), b""), Answer::Refused(_)));
    }

    #[test]
    fn reads_the_leader_from_stream_info() {
        let info: Value = serde_json::from_str(
            r#"{"cluster":{"name":"bench","leader":"bench-2","replicas":[
                {"name":"bench-1","current":true,"active":1000},
                {"name":"bench-3","current":false,"active":1000,"lag":5}]}}"#,
        )
        .unwrap();
        assert_eq!(leader_of(&info, false).unwrap(), "bench-2");
        assert!(leader_of(&info, true).is_err());
        let info: Value = serde_json::from_str(
            r#"{"cluster":{"leader":"bench-2","replicas":[
                {"name":"bench-1","current":true},{"name":"bench-3","current":true}]}}"#,
        )
        .unwrap();
        assert_eq!(leader_of(&info, true).unwrap(), "bench-2");
        let none: Value = serde_json::from_str(r#"{"cluster":{"name":"bench"}}"#).unwrap();
        assert!(leader_of(&none, false).is_err());
        let offline: Value = serde_json::from_str(
            r#"{"cluster":{"leader":"bench-2","replicas":[
                {"name":"bench-1","current":true},{"name":"bench-3","current":true,"offline":true}]}}"#,
        )
        .unwrap();
        assert!(leader_of(&offline, true).is_err());
    }
}
