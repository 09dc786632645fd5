//! Replicated JetStream on a [`Cluster`] (`tests/js_replicated.rs`): a
//! three-node JetStream cluster ([`Cluster::start_js`]) plus one client per
//! node that stays on that node, and the polling helpers the R3 scenarios
//! share (leaders of streams and consumers, reading a stream back through a
//! given node).
//!
//! Clients are pinned: they ignore the `connect_urls` the servers gossip, so
//! a request sent through node i's client enters the cluster at node i even
//! when other nodes die. Killing node i drops its client; restarting it
//! connects a new one.
//!
//! The API is spoken as raw `$JS.API` JSON (what the server wrote, not what a
//! client library made of it), except where a test wants the library's view
//! (publishing with acks, pull consumers).
//!
//! Everything that waits polls with [`JS_DEADLINE`], a guard against
//! hanging; nothing asserts on timing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use serde_json::Value;

use super::cluster::{Cluster, Flavor, JsOptions, CLUSTER_NAME};

/// How long leaders, catch-up and failover may take before a test gives up:
/// nats-server's Raft election timeout alone is several seconds, and a
/// loaded two-core machine stretches everything.
pub const JS_DEADLINE: Duration = Duration::from_secs(90);

/// How long one API request may stay unanswered before it counts as lost
/// (then the caller polls again, or treats it as "not acknowledged").
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A JetStream cluster (three nodes unless [`JsCluster::start_sized`]) and
/// one pinned client per running node.
pub struct JsCluster {
    pub c: Cluster,
    clients: Vec<Option<async_nats::Client>>,
}

/// Connect to node `i` only: no failover to the servers it gossips.
pub async fn pinned_client(c: &Cluster, i: usize) -> async_nats::Client {
    let url = c.client_url(i);
    let connect = async_nats::ConnectOptions::new()
        .name(format!("js-replicated@{}", c.node(i).name))
        .ignore_discovered_servers()
        .connect(&url);
    match tokio::time::timeout(REQUEST_TIMEOUT * 4, connect).await {
        Ok(Ok(nc)) => nc,
        Ok(Err(e)) => panic!("connect to {url}: {e}\n{}", c.node(i).log_excerpt()),
        Err(_) => panic!(
            "connect to {url}: no answer in time\n{}",
            c.node(i).log_excerpt()
        ),
    }
}

impl JsCluster {
    /// Three `flavor` nodes with JetStream, meshed, whose JetStream API
    /// answers through every node (the meta group has a leader).
    pub async fn start(flavor: Flavor) -> JsCluster {
        JsCluster::start_with(flavor, &JsOptions::default()).await
    }

    /// Like [`JsCluster::start`], with [`JsOptions`] for the nodes.
    pub async fn start_with(flavor: Flavor, opts: &JsOptions) -> JsCluster {
        JsCluster::start_sized(flavor, 3, opts).await
    }

    /// `nodes` `flavor` nodes with JetStream (a stream then has replicas on
    /// some of them only), like [`JsCluster::start_with`].
    pub async fn start_sized(flavor: Flavor, nodes: usize, opts: &JsOptions) -> JsCluster {
        let c = Cluster::start_js_with(&vec![flavor; nodes], opts).await;
        let mut clients = Vec::new();
        for i in 0..c.len() {
            clients.push(Some(pinned_client(&c, i).await));
        }
        let jc = JsCluster { c, clients };
        jc.wait_api_ready().await;
        jc
    }

    /// The client pinned to node `i` (panics if the node is down).
    pub fn client(&self, i: usize) -> &async_nats::Client {
        self.clients[i]
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.c.node(i).name))
    }

    /// A JetStream context on node `i`'s client whose publish acks and API
    /// requests give up after [`REQUEST_TIMEOUT`].
    pub fn js(&self, i: usize) -> async_nats::jetstream::Context {
        let mut js = async_nats::jetstream::new(self.client(i).clone());
        js.set_timeout(REQUEST_TIMEOUT);
        js
    }

    /// Like [`JsCluster::js`] but waiting up to [`JS_DEADLINE`]: for
    /// publishes that must succeed on a healthy cluster, however loaded the
    /// machine.
    pub fn js_patient(&self, i: usize) -> async_nats::jetstream::Context {
        let mut js = async_nats::jetstream::new(self.client(i).clone());
        js.set_timeout(JS_DEADLINE);
        js
    }

    /// A client that knows every node and moves to another when its node
    /// dies (reconnecting every 100 ms), as an application's would.
    /// Requests sent meanwhile wait in its buffer or time out.
    pub async fn roaming_client(&self, name: &str) -> async_nats::Client {
        let urls = self.c.client_urls();
        let connect = async_nats::ConnectOptions::new()
            .name(name)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(|_| Duration::from_millis(100))
            .connect(urls.clone());
        match tokio::time::timeout(REQUEST_TIMEOUT * 4, connect).await {
            Ok(Ok(nc)) => nc,
            Ok(Err(e)) => panic!("connect to {urls:?}: {e}"),
            Err(_) => panic!("connect to {urls:?}: no answer in time"),
        }
    }

    /// SIGKILL node `i` and drop its client.
    pub fn kill(&mut self, i: usize) {
        self.clients[i] = None;
        self.c.kill(i);
    }

    /// Start node `i` again (same ports, same store), wait for the full
    /// mesh, and connect a new pinned client.
    pub async fn restart(&mut self, i: usize) {
        self.c.restart(i).await;
        self.c.wait_for_mesh().await;
        self.clients[i] = Some(pinned_client(&self.c, i).await);
    }

    /// The meta group's leader once every running node's `/jsz` names the
    /// same running one (`meta_cluster.leader`), as a node index.
    pub async fn wait_meta_leader(&self) -> usize {
        let name = self
            .poll("every node to agree on the meta leader", || async {
                let mut names = BTreeSet::new();
                for i in self.c.live() {
                    let v = self.c.get_json(i, "/jsz").await?;
                    let leader = v["meta_cluster"]["leader"].as_str().unwrap_or("");
                    if leader.is_empty() {
                        return Err(format!("no meta leader via {}: {v}", self.c.node(i).name));
                    }
                    names.insert(leader.to_string());
                }
                let leader = match names.len() {
                    1 => names.into_iter().next().unwrap_or_default(),
                    _ => return Err(format!("nodes name different meta leaders: {names:?}")),
                };
                if !self.c.node(self.index_of(&leader)).is_running() {
                    return Err(format!("{leader} is named meta leader but is down"));
                }
                Ok(leader)
            })
            .await;
        self.index_of(&name)
    }

    /// The node index of the server named `name` (`node-a` → 0).
    pub fn index_of(&self, name: &str) -> usize {
        (0..self.c.len())
            .find(|&i| self.c.node(i).name == name)
            .unwrap_or_else(|| panic!("{name:?} is not a node of the cluster"))
    }

    /// Send a `$JS.API` request through node `i` and parse the JSON reply.
    /// `Err` on timeout, no responders or a reply that is not JSON.
    pub async fn request(&self, i: usize, subject: &str, body: &str) -> Result<Value, String> {
        self.request_within(i, subject, body, REQUEST_TIMEOUT).await
    }

    /// Like [`JsCluster::request`], waiting up to `within` for the reply
    /// (for requests the server answers only once something happened, such
    /// as a stepdown that waits for the next leader).
    pub async fn request_within(
        &self,
        i: usize,
        subject: &str,
        body: &str,
        within: Duration,
    ) -> Result<Value, String> {
        let fut = self
            .client(i)
            .request(subject.to_string(), Bytes::from(body.to_string()));
        let reply = tokio::time::timeout(within, fut)
            .await
            .map_err(|_| format!("{subject} via {}: no reply", self.c.node(i).name))?
            .map_err(|e| format!("{subject} via {}: {e}", self.c.node(i).name))?;
        serde_json::from_slice(&reply.payload).map_err(|e| {
            format!(
                "{subject}: reply is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&reply.payload)
            )
        })
    }

    /// Like [`JsCluster::request`], but a reply carrying an `error` is an
    /// `Err` too.
    pub async fn request_ok(&self, i: usize, subject: &str, body: &str) -> Result<Value, String> {
        let v = self.request(i, subject, body).await?;
        match v.get("error") {
            Some(e) => Err(format!("{subject} via {}: error {e}", self.c.node(i).name)),
            None => Ok(v),
        }
    }

    /// Poll until `$JS.API.INFO` answers without error through every
    /// running node, and so does `STREAM.NAMES`, which a clustered
    /// nats-server answers only once there is a meta leader (`INFO` comes
    /// earlier; a `STREAM.CREATE` sent between the two goes unanswered).
    pub async fn wait_api_ready(&self) {
        self.poll(
            "JetStream API and meta leader answering on every node",
            || async {
                for i in self.c.live() {
                    self.request_ok(i, "$JS.API.INFO", "").await?;
                    self.request_ok(i, "$JS.API.STREAM.NAMES", "").await?;
                }
                Ok(())
            },
        )
        .await;
    }

    /// Poll `check` until it returns `Ok` or [`JS_DEADLINE`] passes; then
    /// panic with its last error, every node's log tail and `what`.
    pub async fn poll<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        match self.try_poll(JS_DEADLINE, check).await {
            Ok(v) => v,
            Err(e) => panic!(
                "gave up waiting for {what}: {e}\n{}",
                self.c.diagnostics().await
            ),
        }
    }

    /// Poll `check` until it returns `Ok` or `within` passes; then its last
    /// error.
    pub async fn try_poll<T, F, Fut>(&self, within: Duration, mut check: F) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let end = Instant::now() + within;
        loop {
            match check().await {
                Ok(v) => return Ok(v),
                Err(e) if Instant::now() > end => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Poll until every running node answers `info_subject` (a STREAM.INFO
    /// or CONSUMER.INFO subject) with the same `cluster.leader`, that leader
    /// is a running node of `members` and not `not`, and it lists every
    /// other running node of `members` as a current replica. Returns the
    /// leader's name and the last answer.
    async fn wait_group_leader(
        &self,
        info_subject: &str,
        not: Option<&str>,
        members: &BTreeSet<usize>,
    ) -> (String, Value) {
        let what = format!(
            "a healthy group leader for {info_subject} (other than {not:?}) among {:?}",
            members
                .iter()
                .map(|&i| self.c.node(i).name.as_str())
                .collect::<Vec<_>>()
        );
        self.poll(&what, || self.group_leader_now(info_subject, not, members))
            .await
    }

    /// One look for what [`JsCluster::wait_group_leader`] waits for.
    async fn group_leader_now(
        &self,
        info_subject: &str,
        not: Option<&str>,
        members: &BTreeSet<usize>,
    ) -> Result<(String, Value), String> {
        let mut leaders = BTreeSet::new();
        let mut last = Value::Null;
        for i in self.c.live() {
            let v = self.request_ok(i, info_subject, "").await?;
            let leader = v["cluster"]["leader"].as_str().unwrap_or("").to_string();
            if leader.is_empty() {
                return Err(format!("no leader via {}: {v}", self.c.node(i).name));
            }
            leaders.insert(leader);
            last = v;
        }
        let leader = match leaders.len() {
            1 => leaders.into_iter().next().unwrap_or_default(),
            _ => return Err(format!("nodes disagree on the leader: {leaders:?}")),
        };
        if Some(leader.as_str()) == not {
            return Err(format!("{leader} is still the leader"));
        }
        let li = self.index_of(&leader);
        if !self.c.node(li).is_running() {
            return Err(format!("{leader} is named leader but is down"));
        }
        if !members.contains(&li) {
            return Err(format!("{leader} leads but is not a member: {last}"));
        }
        let current: BTreeSet<&str> = last["cluster"]["replicas"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["current"] == Value::Bool(true))
            .filter_map(|r| r["name"].as_str())
            .collect();
        for j in self.c.live().into_iter().filter(|j| members.contains(j)) {
            let name = self.c.node(j).name.as_str();
            if j != li && !current.contains(name) {
                return Err(format!("{name} is not a current replica: {last}"));
            }
        }
        Ok((leader, last))
    }

    /// The node that leads `stream` right now, as the first running node to
    /// answer STREAM.INFO names it (polled until one names a running node;
    /// replicas need not be current).
    pub async fn current_stream_leader(&self, stream: &str) -> usize {
        let subject = format!("$JS.API.STREAM.INFO.{stream}");
        self.poll(&format!("a leader of {stream}"), || async {
            let mut last = String::new();
            for i in self.c.live() {
                match self.request_ok(i, &subject, "").await {
                    Ok(v) => {
                        let name = v["cluster"]["leader"].as_str().unwrap_or("");
                        if let Some(l) = (0..self.c.len()).find(|&l| self.c.node(l).name == name) {
                            if self.c.node(l).is_running() {
                                return Ok(l);
                            }
                        }
                        last = format!("leader {name:?} via {}", self.c.node(i).name);
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
        .await
    }

    /// `STREAM.CREATE` of `config` (a stream configuration with its name)
    /// through node 0, then [`JsCluster::wait_stream_leader`]. Returns the
    /// create answer; panics on an error.
    pub async fn create_stream(&self, config: &Value) -> Value {
        let name = config["name"].as_str().expect("the stream config's name");
        let v = self
            .request_ok(
                0,
                &format!("$JS.API.STREAM.CREATE.{name}"),
                &config.to_string(),
            )
            .await
            .unwrap_or_else(|e| panic!("create stream {name}: {e}"));
        self.wait_stream_leader(name, None).await;
        v
    }

    /// The leader of stream `stream` once every running node agrees on it
    /// and it has every running node as a current replica; see
    /// [`JsCluster::wait_group_leader`]. Returns the leader's node index and
    /// its STREAM.INFO answer.
    pub async fn wait_stream_leader(&self, stream: &str, not: Option<&str>) -> (usize, Value) {
        self.wait_stream_leader_among(stream, not, &self.live_set())
            .await
    }

    /// Like [`JsCluster::wait_stream_leader`] for a stream whose replicas
    /// are on the nodes `members` (not every node of a larger cluster).
    pub async fn wait_stream_leader_among(
        &self,
        stream: &str,
        not: Option<&str>,
        members: &BTreeSet<usize>,
    ) -> (usize, Value) {
        let (name, v) = self
            .wait_group_leader(&format!("$JS.API.STREAM.INFO.{stream}"), not, members)
            .await;
        (self.index_of(&name), v)
    }

    /// Like [`JsCluster::wait_stream_leader_among`], giving up after
    /// `within` (`Err`: the last thing that was not right).
    pub async fn try_stream_leader_among(
        &self,
        stream: &str,
        not: Option<&str>,
        members: &BTreeSet<usize>,
        within: Duration,
    ) -> Result<(usize, Value), String> {
        let subject = format!("$JS.API.STREAM.INFO.{stream}");
        let (name, v) = self
            .try_poll(within, || self.group_leader_now(&subject, not, members))
            .await?;
        Ok((self.index_of(&name), v))
    }

    /// The running nodes, as a set.
    pub fn live_set(&self) -> BTreeSet<usize> {
        self.c.live().into_iter().collect()
    }

    /// The nodes a STREAM.INFO or CONSUMER.INFO answer names in its
    /// `cluster` block: the leader and every replica.
    pub fn members_of(&self, info: &Value) -> BTreeSet<usize> {
        let cluster = &info["cluster"];
        cluster["replicas"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str())
            .chain(cluster["leader"].as_str().filter(|l| !l.is_empty()))
            .map(|n| self.index_of(n))
            .collect()
    }

    /// Like [`JsCluster::wait_stream_leader`] for a consumer.
    pub async fn wait_consumer_leader(
        &self,
        stream: &str,
        consumer: &str,
        not: Option<&str>,
    ) -> (usize, Value) {
        let (name, v) = self
            .wait_group_leader(
                &format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"),
                not,
                &self.live_set(),
            )
            .await;
        (self.index_of(&name), v)
    }

    /// Pull from durable `consumer` of `stream` through node `via`, double
    /// acknowledging each message (so a lost ack is retried), until `n`
    /// different subjects came; the subjects in delivery order (a
    /// redelivery shows as a repeat). Panics after [`JS_DEADLINE`].
    pub async fn pull_acked(
        &self,
        via: usize,
        stream: &str,
        consumer: &str,
        n: usize,
    ) -> Vec<String> {
        use futures::StreamExt;
        let pull: async_nats::jetstream::consumer::PullConsumer = self
            .js_patient(via)
            .get_consumer_from_stream(consumer, stream)
            .await
            .unwrap_or_else(|e| panic!("get consumer {stream}/{consumer}: {e}"));
        let mut got = Vec::new();
        let mut distinct = BTreeSet::new();
        let end = Instant::now() + JS_DEADLINE;
        while distinct.len() < n {
            assert!(Instant::now() < end, "only {got:?} delivered");
            let Ok(mut batch) = pull
                .fetch()
                .max_messages(n - distinct.len())
                .expires(Duration::from_secs(2))
                .messages()
                .await
            else {
                continue;
            };
            while let Ok(Some(Ok(m))) =
                tokio::time::timeout(Duration::from_secs(10), batch.next()).await
            {
                if m.double_ack().await.is_ok() {
                    distinct.insert(m.subject.to_string());
                    got.push(m.subject.to_string());
                }
            }
        }
        got
    }

    /// `$JS.API.DIRECT.GET.<stream>` of `seq` through node `i`: the stored
    /// payload, after checking the reply's `Nats-Stream` and
    /// `Nats-Sequence` headers. `Ok(None)` when the server says 404 (no such
    /// message); `Err` on anything else (timeout, other status, bad headers).
    ///
    /// Direct gets are answered by any replica (nats-server subscribes every
    /// current replica in one queue group, and queue delivery prefers local
    /// subscribers), so this reads node i's own copy whenever node i has one
    /// to offer.
    pub async fn direct_get(
        &self,
        i: usize,
        stream: &str,
        seq: u64,
    ) -> Result<Option<Bytes>, String> {
        let subject = format!("$JS.API.DIRECT.GET.{stream}");
        let fut = self
            .client(i)
            .request(subject.clone(), Bytes::from(format!("{{\"seq\":{seq}}}")));
        let m = tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| format!("{subject} seq {seq} via {}: no reply", self.c.node(i).name))?
            .map_err(|e| format!("{subject} seq {seq} via {}: {e}", self.c.node(i).name))?;
        if let Some(status) = m.status {
            if status.as_u16() == 404 {
                return Ok(None);
            }
            return Err(format!(
                "{subject} seq {seq} via {}: status {status} {:?}",
                self.c.node(i).name,
                m.description
            ));
        }
        let headers = m.headers.unwrap_or_default();
        let header = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
        if header("Nats-Stream").as_deref() != Some(stream) {
            return Err(format!(
                "seq {seq}: Nats-Stream is {:?}",
                header("Nats-Stream")
            ));
        }
        if header("Nats-Sequence") != Some(seq.to_string()) {
            return Err(format!(
                "seq {seq}: Nats-Sequence is {:?}",
                header("Nats-Sequence")
            ));
        }
        Ok(Some(m.payload))
    }

    /// `$JS.API.STREAM.MSG.GET.<stream>` of `seq` through node `i` (answered
    /// by the stream leader): the decoded payload, `Ok(None)` for "no
    /// message found", `Err` on anything else.
    pub async fn msg_get(&self, i: usize, stream: &str, seq: u64) -> Result<Option<Bytes>, String> {
        let v = self
            .request(
                i,
                &format!("$JS.API.STREAM.MSG.GET.{stream}"),
                &format!("{{\"seq\":{seq}}}"),
            )
            .await?;
        if let Some(e) = v.get("error") {
            if e["code"] == 404 {
                return Ok(None);
            }
            return Err(format!("MSG.GET seq {seq}: {v}"));
        }
        let m = &v["message"];
        if m["seq"].as_u64() != Some(seq) {
            return Err(format!("MSG.GET seq {seq} answered {v}"));
        }
        let data = m["data"].as_str().unwrap_or("");
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map(|d| Some(Bytes::from(d)))
            .map_err(|e| format!("MSG.GET seq {seq}: data is not base64 ({e}): {v}"))
    }

    /// Poll until every running node serves exactly `want` (seq → payload)
    /// through both DIRECT.GET and MSG.GET. Sequences not in `want` are not
    /// looked at.
    pub async fn wait_every_node_holds(&self, stream: &str, want: &BTreeMap<u64, Bytes>) {
        for i in self.c.live() {
            let end = Instant::now() + JS_DEADLINE;
            // Sequences already served right are not asked again.
            let mut pending: Vec<(u64, &Bytes)> = want.iter().map(|(s, p)| (*s, p)).collect();
            loop {
                let mut left = Vec::new();
                let mut problem = None;
                for (seq, payload) in pending {
                    let direct = self.direct_get(i, stream, seq).await;
                    let leader = self.msg_get(i, stream, seq).await;
                    let good = |r: &Result<Option<Bytes>, String>| matches!(r, Ok(Some(p)) if p == payload);
                    if !(good(&direct) && good(&leader)) {
                        problem.get_or_insert(format!(
                            "seq {seq}: want {payload:?}, DIRECT.GET {direct:?}, MSG.GET {leader:?}"
                        ));
                        left.push((seq, payload));
                    }
                }
                let Some(problem) = problem else { break };
                if Instant::now() > end {
                    panic!(
                        "{} never served all {} messages of {stream}: {} wrong, first {problem}\n{}",
                        self.c.node(i).name,
                        want.len(),
                        left.len(),
                        self.c.diagnostics().await
                    );
                }
                pending = left;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Check the `cluster` block of a STREAM.INFO or CONSUMER.INFO answer:
    /// the cluster's name, `leader` (node `leader`), and one replica (name,
    /// `current`, `active`) for each other node.
    pub fn assert_cluster_block(&self, info: &Value, leader: usize) {
        let cluster = &info["cluster"];
        assert_eq!(cluster["name"], CLUSTER_NAME, "{info}");
        assert_eq!(
            cluster["leader"],
            self.c.node(leader).name.as_str(),
            "{info}"
        );
        let replicas = cluster["replicas"].as_array().cloned().unwrap_or_default();
        assert_eq!(replicas.len(), 2, "two replicas besides the leader: {info}");
        let names: BTreeSet<&str> = replicas.iter().filter_map(|r| r["name"].as_str()).collect();
        let others: BTreeSet<&str> = (0..self.c.len())
            .filter(|&j| j != leader)
            .map(|j| self.c.node(j).name.as_str())
            .collect();
        assert_eq!(names, others, "{info}");
        for r in &replicas {
            assert!(r["current"].is_boolean(), "replica without current: {info}");
            assert!(r["active"].is_u64(), "replica without active (ns): {info}");
        }
    }

    /// Poll until every running node agrees on the whole of `stream`'s
    /// `1..=last_seq`: what each serves through DIRECT.GET equals what the
    /// leader serves through MSG.GET. Returns the contents (seq → payload,
    /// `None` where there is no message).
    pub async fn wait_replicas_agree(
        &self,
        stream: &str,
        last_seq: u64,
    ) -> BTreeMap<u64, Option<Bytes>> {
        let what = format!("every node to hold the same {last_seq} messages of {stream}");
        self.poll(&what, || async {
            let via = self.c.live().first().copied().ok_or("no node running")?;
            let mut leader_view = BTreeMap::new();
            for seq in 1..=last_seq {
                leader_view.insert(seq, self.msg_get(via, stream, seq).await?);
            }
            for i in self.c.live() {
                for (seq, want) in &leader_view {
                    let got = self.direct_get(i, stream, *seq).await?;
                    if got != *want {
                        return Err(format!(
                            "{} seq {seq}: DIRECT.GET {got:?}, leader {want:?}",
                            self.c.node(i).name
                        ));
                    }
                }
            }
            Ok(leader_view)
        })
        .await
    }

    /// `stream`'s `state` as its leader reports it through node `via`.
    pub async fn stream_state(&self, via: usize, stream: &str) -> Value {
        self.request_ok(via, &format!("$JS.API.STREAM.INFO.{stream}"), "")
            .await
            .unwrap_or_else(|e| panic!("STREAM.INFO {stream}: {e}"))["state"]
            .clone()
    }
}

impl Drop for JsCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 0..self.c.len() {
                eprintln!("{}", self.c.node(i).log_excerpt());
            }
        }
    }
}
