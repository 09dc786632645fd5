//! Benchmark scenarios. Each drives a server over the wire and reports
//! one [`Outcome`]; adding a row to the benchmark table means adding a
//! variant to [`Scenario`] and a function here.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::proc_stats;
use crate::wire::{count_msgs, pub_batch, Conn};

/// What a scenario measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Messages (or deliveries) per second.
    pub rate: Option<f64>,
    /// Server CPU seconds per million deliveries.
    pub cpu_per_million: Option<f64>,
    /// Server CPU seconds over the whole run (scenarios without deliveries).
    pub server_cpu: Option<f64>,
    /// Latency percentiles in microseconds: p50, p99, p99.9.
    pub latency_us: Option<(f64, f64, f64)>,
    /// The slowest of those, in microseconds.
    pub latency_max_us: Option<f64>,
    /// Fan-outs: per update, the time until its last subscriber had it;
    /// p50, p99 and max over the updates, in microseconds.
    pub last_delivery_us: Option<(f64, f64, f64)>,
    /// Failover times in milliseconds, one per leader killed.
    pub failover_ms: Vec<f64>,
    /// How the server answered logins while the scenario ran (the auth flood).
    pub logins: Option<Logins>,
    /// Server resident memory in bytes.
    pub rss: Option<u64>,
    /// Server memory the scenario's connections added (resident memory
    /// above the server's before they connected), in bytes per 10,000.
    pub rss_per_10k: Option<f64>,
    /// Further figures for the round's line (not the table), such as the
    /// WebSocket fan-out's warm-up latencies and its samples left out.
    pub notes: Vec<(&'static str, f64)>,
    /// CPU seconds the load generator itself used.
    pub bench_cpu: f64,
    /// Wall time of the measured part.
    pub elapsed: Duration,
}

/// How a server answered logins during the auth flood.
#[derive(Debug, Clone, Copy, Default)]
pub struct Logins {
    /// Wrong-password logins refused per second, whatever the answer.
    pub refused_per_sec: f64,
    /// Of those, refused with `Authentication Timeout` (the check did not
    /// finish within the auth timeout) rather than `Authorization Violation`.
    pub timeouts_per_sec: f64,
    /// Logins with the bcrypt user's right password tried meanwhile, one
    /// after another...
    pub right_tried: u64,
    /// ...and how many of them got in.
    pub right_admitted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Publish only, 16-byte payloads.
    Pub16,
    /// Publish only, 128-byte payloads.
    Pub128,
    /// One publisher to one subscriber, 128 bytes.
    PubSub,
    /// One publisher to ten subscribers, 128 bytes.
    Fanout,
    /// One publisher to a queue group of four, 128 bytes.
    Queue,
    /// Request/reply round trips, one outstanding at a time.
    ReqRep,
    /// Many idle connections with one subscription each.
    Idle,
    /// Thousands of clients connecting at once, each CONNECT, SUB, PING.
    ConnectBurst,
    /// Publisher on one node of a 3-node cluster, subscriber on another.
    CrossNode,
    /// JetStream: acknowledged publishes of 128 B into a file stream.
    JsPub,
    /// JetStream: pull-consumer fetch of 128 B messages from a file stream.
    JsFetch,
    /// Request/reply of an authenticated client while other clients flood
    /// the server with wrong passwords for a bcrypt user.
    AuthFlood,
    /// JetStream on a 3-node cluster: acknowledged publishes of 128 B into
    /// a file stream with three replicas, 256 in flight, from a client on
    /// a node that does not lead the stream; nats-server with its default
    /// sync and with `sync_interval: always`.
    JsR3Pub,
    /// JetStream on a 3-node cluster: the time from SIGKILLing the leader
    /// of a stream with three replicas to the next acknowledged publish.
    /// Not in [`Scenario::ALL`]: elections take seconds, so a run of both
    /// servers takes a minute or two (`make bench-js-cluster`).
    JsR3Failover,
    /// Web users: many WebSocket clients on `sports.football.*`, one goal
    /// event (~300 B JSON) published on the plain port; delivery latency
    /// over all subscribers, server CPU and memory.
    WsFanout,
    /// Many idle WebSocket connections with one subscription each.
    WsIdle,
    /// A goal in a final: 1,000 TCP clients on one node follow
    /// `sports.football.*`; one update, the time until the last has it.
    MassFanout1k,
    /// The same with 10,000 clients.
    MassFanout10k,
    /// The same with 50,000 clients (needs 51,000 open files per process).
    MassFanout50k,
    /// 1,000 TCP clients spread over the three nodes of a cluster, the
    /// publisher on the first.
    MassFanout1kCluster,
    /// The same with 10,000 clients.
    MassFanout10kCluster,
    /// The same with 50,000 clients.
    MassFanout50kCluster,
    /// Half an audience reconnecting: thousands of clients connect at
    /// once, each logging in with an NKEY and subscribing.
    StormNkey,
    /// The same storm spread over the three nodes of a cluster.
    StormNkeyCluster,
    /// That storm, then one node's lame-duck shutdown moves its clients
    /// to the other two.
    StormLameDuck,
    /// The storm over 3 nodes with web users: each logs in with a web
    /// token that tribune-auth checks through auth callout.
    StormCallout,
    /// One publisher to a wildcard subscriber while other connections
    /// subscribe and unsubscribe 100,000 times a second.
    Churn,
    /// Publisher on one node of a 3-node cluster, ten subscribers on the
    /// other two.
    ClusterFanout,
    /// Publisher on one node, a queue group of four on the other two.
    ClusterQueue,
}

impl Scenario {
    /// What `make bench` runs. The WebSocket pair adds about 40 s (3
    /// rounds, both servers): 10,000 upgrades per measurement, and a 3 s
    /// pause before the fan-out's first event.
    pub const ALL: [Scenario; 28] = [
        Scenario::Pub16,
        Scenario::Pub128,
        Scenario::PubSub,
        Scenario::Fanout,
        Scenario::Queue,
        Scenario::ReqRep,
        Scenario::Idle,
        Scenario::ConnectBurst,
        Scenario::CrossNode,
        Scenario::JsPub,
        Scenario::JsFetch,
        Scenario::AuthFlood,
        Scenario::JsR3Pub,
        Scenario::WsFanout,
        Scenario::WsIdle,
        Scenario::MassFanout1k,
        Scenario::MassFanout10k,
        Scenario::MassFanout50k,
        Scenario::MassFanout1kCluster,
        Scenario::MassFanout10kCluster,
        Scenario::MassFanout50kCluster,
        Scenario::StormNkey,
        Scenario::StormNkeyCluster,
        Scenario::StormLameDuck,
        Scenario::StormCallout,
        Scenario::Churn,
        Scenario::ClusterFanout,
        Scenario::ClusterQueue,
    ];

    /// What `run` and `smoke` run by default: [`Scenario::ALL`] but the
    /// clustered JetStream scenarios, which start their own clusters, the
    /// WebSocket ones, which need a `websocket {}` listener (name them
    /// and pass `--ws-addr`), the mass fan-outs, which hold thousands of
    /// connections (name them), and the NKEY storms, whose user only
    /// `compare` configures.
    pub fn on_running_server() -> Vec<Scenario> {
        Scenario::ALL
            .into_iter()
            .filter(|s| {
                !s.js_cluster() && !s.websocket() && s.mass_fanout().is_none() && !s.storm()
            })
            .collect()
    }

    /// Whether the scenario needs the server's WebSocket listener (both
    /// servers then get the same `websocket {}` block).
    pub fn websocket(self) -> bool {
        matches!(self, Scenario::WsFanout | Scenario::WsIdle)
    }

    /// Whether the scenario is a connection storm (on one node or three).
    pub fn storm(self) -> bool {
        matches!(
            self,
            Scenario::StormNkey
                | Scenario::StormNkeyCluster
                | Scenario::StormLameDuck
                | Scenario::StormCallout
        )
    }

    /// Whether the scenario needs a 3-node cluster rather than one server.
    pub fn clustered(self) -> bool {
        matches!(
            self,
            Scenario::CrossNode
                | Scenario::ClusterFanout
                | Scenario::ClusterQueue
                | Scenario::StormNkeyCluster
                | Scenario::StormLameDuck
                | Scenario::StormCallout
        ) || self.js_cluster()
            || matches!(self.mass_fanout(), Some((_, true)))
    }

    /// Messages the server handles in a single-server throughput scenario
    /// (each delivery, or each publish where nobody subscribes), for its
    /// CPU per million; None where the scenario counts otherwise.
    pub fn deliveries(self, p: &Params) -> Option<u64> {
        match self {
            Scenario::Pub16 | Scenario::Pub128 | Scenario::PubSub | Scenario::Queue => Some(p.msgs),
            Scenario::Fanout => Some(10 * p.msgs),
            // A request and its reply.
            Scenario::ReqRep => Some(2 * p.requests),
            _ => None,
        }
    }

    /// A mass fan-out: its subscribers, and whether they are spread over
    /// a 3-node cluster (else all on one node).
    pub fn mass_fanout(self) -> Option<(u64, bool)> {
        match self {
            Scenario::MassFanout1k => Some((1_000, false)),
            Scenario::MassFanout10k => Some((10_000, false)),
            Scenario::MassFanout50k => Some((50_000, false)),
            Scenario::MassFanout1kCluster => Some((1_000, true)),
            Scenario::MassFanout10kCluster => Some((10_000, true)),
            Scenario::MassFanout50kCluster => Some((50_000, true)),
            _ => None,
        }
    }

    /// Why the scenario cannot run on this machine, if it cannot: the
    /// process holding the most sockets needs that many open files. A
    /// storm's clients are shared by its workers, and so are a mass
    /// fan-out's past 15,000 (`fanout_workers`); a node holds its share,
    /// a single server all of them.
    pub fn cannot_run_here(self, p: &Params) -> Option<String> {
        let need = match (self, self.mass_fanout()) {
            (Scenario::StormNkey, _) => crate::storm::files_needed(p.storm_conns, 1),
            (Scenario::StormNkeyCluster | Scenario::StormCallout, _) => {
                crate::storm::files_needed(p.storm_conns, 3)
            }
            // Two nodes hold every client once the third has gone.
            (Scenario::StormLameDuck, _) => crate::storm::files_needed(p.storm_conns, 2),
            (_, Some((n, cluster))) => {
                let n = p.mass_conns.unwrap_or(n);
                crate::fanout_workers::files_needed(
                    n,
                    if cluster { 3 } else { 1 },
                    p.mass_per_process,
                )
            }
            _ => return None,
        };
        let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(_, hard)| hard)
            .unwrap_or(0);
        (hard < need).then(|| {
            format!("needs {need} open files per process; this machine allows {hard} (raise the hard RLIMIT_NOFILE)")
        })
    }

    /// Whether the scenario needs a 3-node cluster with JetStream on every
    /// node, which it drives itself (`js_cluster::run`).
    pub fn js_cluster(self) -> bool {
        matches!(self, Scenario::JsR3Pub | Scenario::JsR3Failover)
    }

    /// Whether the scenario needs JetStream (both servers then run with
    /// `jetstream { sync_interval: always }`).
    pub fn jetstream(self) -> bool {
        matches!(self, Scenario::JsPub | Scenario::JsFetch)
    }

    /// Configuration text the scenario needs beyond the shared settings;
    /// both servers get the same text.
    pub fn server_config(self) -> io::Result<Option<String>> {
        match self {
            Scenario::AuthFlood => {
                crate::auth_flood::server_config(crate::auth_flood::BCRYPT_COST).map(Some)
            }
            Scenario::StormNkey | Scenario::StormNkeyCluster => {
                Ok(Some(crate::storm::server_config()))
            }
            Scenario::StormLameDuck => Ok(Some(crate::lame_duck::server_config())),
            Scenario::StormCallout => Ok(Some(crate::callout_storm::server_config())),
            _ => Ok(None),
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Scenario::Pub16 => "pub only, 16 B",
            Scenario::Pub128 => "pub only, 128 B",
            Scenario::PubSub => "1 pub -> 1 sub, 128 B",
            Scenario::Fanout => "1 pub -> 10 subs, 128 B",
            Scenario::Queue => "1 pub -> 4 queue subs, 128 B",
            Scenario::ReqRep => "request/reply, 1 requester",
            Scenario::Idle => "idle connections, 1 sub each",
            Scenario::ConnectBurst => "connect burst, CONNECT+SUB+PING each",
            Scenario::CrossNode => "cross-node pub(A) -> sub(B), 128 B",
            Scenario::JsPub => "JetStream pub 128 B, file, acked (sync always)",
            Scenario::JsFetch => "JetStream fetch 128 B, file, batch 256",
            Scenario::AuthFlood => "request/reply during a wrong-password flood (bcrypt)",
            Scenario::JsR3Pub => "JetStream R3 pub 128 B, file, acked, 256 in flight",
            Scenario::JsR3Failover => "JetStream R3 leader SIGKILL -> next ack",
            Scenario::WsFanout => "WebSocket fan-out, 1 goal event (300 B) -> all subs",
            Scenario::WsIdle => "idle WebSocket connections, 1 sub each",
            Scenario::MassFanout1k => "mass fan-out, 1 update (300 B) -> 1,000 TCP subs, 1 node",
            Scenario::MassFanout10k => "mass fan-out, 1 update (300 B) -> 10,000 TCP subs, 1 node",
            Scenario::MassFanout50k => "mass fan-out, 1 update (300 B) -> 50,000 TCP subs, 1 node",
            Scenario::MassFanout1kCluster => {
                "mass fan-out, 1 update (300 B) -> 1,000 TCP subs over 3 nodes"
            }
            Scenario::MassFanout10kCluster => {
                "mass fan-out, 1 update (300 B) -> 10,000 TCP subs over 3 nodes"
            }
            Scenario::MassFanout50kCluster => {
                "mass fan-out, 1 update (300 B) -> 50,000 TCP subs over 3 nodes"
            }
            Scenario::StormNkey => "connection storm, NKEY login + SUB + PING each",
            Scenario::StormNkeyCluster => {
                "connection storm over 3 nodes, NKEY login + SUB + PING each"
            }
            Scenario::StormLameDuck => {
                "lame duck: 1 of 3 nodes moves its storm clients to the others"
            }
            Scenario::StormCallout => {
                "connection storm over 3 nodes, web token checked by tribune-auth (auth callout) + SUB + PING each"
            }
            Scenario::Churn => "1 pub -> 1 wildcard sub, 128 B, during 100,000 SUB+UNSUB/s",
            Scenario::ClusterFanout => "cluster: pub(A) -> 10 subs on B and C, 128 B",
            Scenario::ClusterQueue => "cluster: pub(A) -> queue of 4 on B and C, 128 B",
        }
    }
}

/// Knobs shared by all scenarios.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub msgs: u64,
    pub requests: u64,
    pub idle_conns: u64,
    /// Clients in the connect burst.
    pub burst_conns: u64,
    /// Messages per JetStream run (acked, fsynced publishes are far slower
    /// than core NATS ones, hence a separate count).
    pub js_msgs: u64,
    /// Clients flooding the server with wrong passwords (auth flood).
    pub flood_clients: u64,
    /// How long the auth flood's measurement runs.
    pub flood_window: Duration,
    /// Messages per clustered (R3) JetStream publish run.
    pub js_r3_msgs: u64,
    /// Leaders killed per failover run.
    pub failovers: u64,
    /// WebSocket clients in the WebSocket scenarios.
    pub ws_conns: u64,
    /// Measured events per WebSocket fan-out run (after one warm-up).
    pub ws_events: u64,
    /// The server's WebSocket listener, for the WebSocket scenarios.
    pub ws_addr: Option<SocketAddr>,
    /// Measured updates per mass fan-out run (after one warm-up).
    pub mass_events: u64,
    /// Subscribers of every mass fan-out instead of the scenario's own
    /// count (the smoke run's handful).
    pub mass_conns: Option<u64>,
    /// Clients in the connection storm.
    pub storm_conns: u64,
    /// How long each phase of the churn scenario publishes.
    pub churn_phase: Duration,
    /// Mass fan-out subscribers one process holds; more go to worker
    /// processes (`fanout_workers`). The smoke run sets it low so that
    /// the workers are exercised too.
    pub mass_per_process: u64,
}

const BATCH: usize = 512;

/// Updates timed per mass fan-out run, as the performance issue asks.
pub const MASS_EVENTS: u64 = 100;
/// Clients in the connection storm, as the performance issue asks.
pub const STORM_CONNS: u64 = 20_000;

impl Params {
    /// The most connections any of `list` holds at once, for this
    /// process's open-files limit, which the servers it starts inherit
    /// (a mass fan-out's or storm's clients may be in worker processes,
    /// but a single server holds them all).
    pub fn most_conns(&self, list: &[Scenario]) -> u64 {
        let mass = list
            .iter()
            .filter_map(|s| s.mass_fanout())
            .map(|(n, _)| self.mass_conns.unwrap_or(n))
            .max()
            .unwrap_or(0);
        // The storm's sockets are in its workers, but a server started
        // from here inherits this process's limit and holds them all.
        let storm = if list.iter().any(|s| s.storm()) {
            self.storm_conns
        } else {
            0
        };
        self.idle_conns
            .max(self.burst_conns)
            .max(self.ws_conns)
            .max(mass)
            .max(storm)
    }
}

/// Run one scenario. `peer` is a second node of the same cluster, for the
/// clustered scenarios (without one, they run against `addr` alone).
pub fn run(
    s: Scenario,
    addr: SocketAddr,
    peer: Option<SocketAddr>,
    server_pid: Option<u32>,
    p: Params,
) -> io::Result<Outcome> {
    let cpu0 = proc_stats::self_cpu();
    let srv0 = server_pid.and_then(proc_stats::proc_cpu);
    let mut out = match s {
        Scenario::Pub16 => pub_only(addr, 16, p.msgs)?,
        Scenario::Pub128 => pub_only(addr, 128, p.msgs)?,
        Scenario::PubSub => fan(addr, 1, None, p.msgs)?,
        Scenario::Fanout => fan(addr, 10, None, p.msgs)?,
        Scenario::Queue => fan(addr, 4, Some("workers"), p.msgs)?,
        Scenario::ReqRep => req_rep(addr, p.requests)?,
        Scenario::Idle => idle(addr, p.idle_conns, server_pid)?,
        Scenario::ConnectBurst => crate::burst::run(addr, p.burst_conns, server_pid)?,
        Scenario::CrossNode => cross_node(addr, peer.unwrap_or(addr), p.msgs)?,
        Scenario::JsPub => crate::js::publish(addr, p.js_msgs)?,
        Scenario::JsFetch => crate::js::fetch(addr, p.js_msgs)?,
        Scenario::AuthFlood => {
            crate::auth_flood::run(addr, p.flood_clients, p.flood_window, server_pid)?
        }
        Scenario::WsFanout => {
            crate::ws_bench::fanout(addr, ws_addr(s, p)?, p.ws_conns, p.ws_events, server_pid)?
        }
        Scenario::WsIdle => crate::ws_bench::idle(ws_addr(s, p)?, p.ws_conns, server_pid)?,
        Scenario::MassFanout1k
        | Scenario::MassFanout10k
        | Scenario::MassFanout50k
        | Scenario::MassFanout1kCluster
        | Scenario::MassFanout10kCluster
        | Scenario::MassFanout50kCluster => {
            // Against a running server: its node, and the peer if given.
            let nodes: Vec<SocketAddr> = std::iter::once(addr).chain(peer).collect();
            let pids: Vec<u32> = server_pid.into_iter().collect();
            mass_fanout(s, p, addr, &nodes, &pids)?
        }
        Scenario::Churn => crate::churn::run(addr, p.churn_phase, server_pid)?,
        Scenario::ClusterFanout | Scenario::ClusterQueue => {
            // Against a running server: its node, and the peer if given
            // (alone, it stands for every node).
            let nodes: Vec<SocketAddr> = match peer {
                Some(b) => vec![addr, b],
                None => vec![addr, addr],
            };
            let pids: Vec<u32> = server_pid.into_iter().collect();
            crate::cluster_rows::run(&nodes, s == Scenario::ClusterQueue, p.msgs, &pids)?
        }
        Scenario::StormNkey | Scenario::StormNkeyCluster => {
            if let Some(why) = s.cannot_run_here(&p) {
                return Err(io::Error::other(why));
            }
            // Against a running server: its node, and the peer if given.
            let nodes: Vec<SocketAddr> = std::iter::once(addr).chain(peer).collect();
            let pids: Vec<u32> = server_pid.into_iter().collect();
            crate::storm::run(&nodes, p.storm_conns, &pids)?
        }
        Scenario::JsR3Pub
        | Scenario::JsR3Failover
        | Scenario::StormLameDuck
        | Scenario::StormCallout => {
            return Err(io::Error::other(format!(
                "{} starts its own 3-node clusters: run it with `compare`",
                s.title()
            )))
        }
    };
    // Plus what the scenario's own worker processes used, if any.
    out.bench_cpu += proc_stats::self_cpu() - cpu0;
    if let (Some(a), Some(b)) = (srv0, server_pid.and_then(proc_stats::proc_cpu)) {
        if s == Scenario::ConnectBurst {
            out.server_cpu = Some(b - a);
        } else if let Some(d) = s.deliveries(&p) {
            out.server_cpu.get_or_insert(b - a);
            out.cpu_per_million
                .get_or_insert((b - a) / (d as f64 / 1e6));
        }
    }
    if s.deliveries(&p).is_some() && out.rss.is_none() {
        out.rss = server_pid.and_then(proc_stats::proc_rss);
    }
    Ok(out)
}

/// A mass fan-out: the publisher on `publisher`, the subscribers spread
/// over `nodes` in turn, CPU and memory summed over `pids`.
pub fn mass_fanout(
    s: Scenario,
    p: Params,
    publisher: SocketAddr,
    nodes: &[SocketAddr],
    pids: &[u32],
) -> io::Result<Outcome> {
    let (n, _) = s
        .mass_fanout()
        .ok_or_else(|| io::Error::other(format!("{} is not a mass fan-out", s.title())))?;
    if let Some(why) = s.cannot_run_here(&p) {
        return Err(io::Error::other(why));
    }
    crate::ws_bench::run_fanout(crate::ws_bench::Fanout {
        publisher,
        subscribers: nodes,
        transport: crate::ws_conn::Transport::Tcp,
        n: p.mass_conns.unwrap_or(n),
        events: p.mass_events.max(1) as usize,
        per_process: p.mass_per_process,
        pids,
    })
}

/// The WebSocket listener a WebSocket scenario needs.
fn ws_addr(s: Scenario, p: Params) -> io::Result<SocketAddr> {
    p.ws_addr.ok_or_else(|| {
        io::Error::other(format!(
            "{} needs the server's websocket listener: pass --ws-addr",
            s.title()
        ))
    })
}

/// Publish `msgs` messages of `size` bytes on `subject`, in pre-rendered
/// batches of [`BATCH`] (one write each).
pub(crate) fn publish_all(
    conn: &mut Conn,
    subject: &str,
    size: usize,
    msgs: u64,
) -> io::Result<()> {
    let payload = vec![b'x'; size];
    let batch = pub_batch(subject, None, &payload, BATCH);
    let mut left = msgs;
    while left >= BATCH as u64 {
        conn.writer.write_all(&batch)?;
        left -= BATCH as u64;
    }
    if left > 0 {
        conn.writer
            .write_all(&pub_batch(subject, None, &payload, left as usize))?;
    }
    Ok(())
}

fn pub_only(addr: SocketAddr, size: usize, msgs: u64) -> io::Result<Outcome> {
    let mut c = Conn::connect(addr, "bench-pub")?;
    let start = Instant::now();
    publish_all(&mut c, "bench.pub", size, msgs)?;
    c.ping()?;
    let elapsed = start.elapsed();
    Ok(Outcome {
        rate: Some(msgs as f64 / elapsed.as_secs_f64()),
        elapsed,
        ..Default::default()
    })
}

/// One publisher, `subs` subscribers (a queue group when `queue` is set).
/// The clock runs from the first publish to the last delivery.
fn fan(
    addr: SocketAddr,
    subs: usize,
    queue: Option<&'static str>,
    msgs: u64,
) -> io::Result<Outcome> {
    let mut conns = Vec::new();
    for i in 0..subs {
        let mut c = Conn::connect(addr, &format!("bench-sub-{i}"))?;
        c.sub("bench.fan", queue, 1)?;
        c.ping()?;
        conns.push(c);
    }
    let total = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(Barrier::new(subs + 1));
    let want_each = if queue.is_some() { u64::MAX } else { msgs };
    let mut shutdowns = Vec::new();
    let mut handles = Vec::new();
    for mut c in conns {
        shutdowns.push(c.writer.try_clone()?);
        let total = total.clone();
        let ready = ready.clone();
        handles.push(thread::spawn(move || {
            ready.wait();
            count_msgs(&mut c, want_each, |_| {
                total.fetch_add(1, Ordering::Relaxed);
            })
        }));
    }
    let mut publisher = Conn::connect(addr, "bench-pub")?;
    ready.wait();
    let start = Instant::now();
    publish_all(&mut publisher, "bench.fan", 128, msgs)?;
    let expected = if queue.is_some() {
        msgs
    } else {
        msgs * subs as u64
    };
    if queue.is_some() {
        // Queue members do not know their share: watch the shared count.
        let deadline = Instant::now() + Duration::from_secs(120);
        while total.load(Ordering::Relaxed) < expected {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "queue group got {} of {expected}",
                    total.load(Ordering::Relaxed)
                )));
            }
            thread::sleep(Duration::from_micros(200));
        }
        let elapsed = start.elapsed();
        for s in &shutdowns {
            let _ = s.shutdown(Shutdown::Both);
        }
        for h in handles {
            let _ = h.join();
        }
        return Ok(Outcome {
            rate: Some(expected as f64 / elapsed.as_secs_f64()),
            elapsed,
            ..Default::default()
        });
    }
    for h in handles {
        h.join()
            .map_err(|_| io::Error::other("subscriber panicked"))??;
    }
    let elapsed = start.elapsed();
    Ok(Outcome {
        rate: Some(expected as f64 / elapsed.as_secs_f64()),
        elapsed,
        ..Default::default()
    })
}

/// Publisher on `a`, subscriber on `b`. Interest crosses the route
/// asynchronously, so first send probes until one arrives.
fn cross_node(a: SocketAddr, b: SocketAddr, msgs: u64) -> io::Result<Outcome> {
    let mut sub = Conn::connect(b, "bench-sub")?;
    sub.sub("bench.cross", None, 1)?;
    sub.ping()?;
    let mut publisher = Conn::connect(a, "bench-pub")?;
    crate::cluster_rows::wait_for_interest(&mut publisher, b, 0)?;
    let ready = Arc::new(Barrier::new(2));
    let r2 = ready.clone();
    let handle = thread::spawn(move || {
        r2.wait();
        count_msgs(&mut sub, msgs, |_| {})
    });
    ready.wait();
    let start = Instant::now();
    publish_all(&mut publisher, "bench.cross", 128, msgs)?;
    handle
        .join()
        .map_err(|_| io::Error::other("subscriber panicked"))??;
    let elapsed = start.elapsed();
    Ok(Outcome {
        rate: Some(msgs as f64 / elapsed.as_secs_f64()),
        elapsed,
        ..Default::default()
    })
}

fn req_rep(addr: SocketAddr, requests: u64) -> io::Result<Outcome> {
    let responder = Responder::start(addr, None)?;
    let mut requester = Requester::connect(addr, None)?;
    let mut lat = Vec::with_capacity(requests as usize);
    let start = Instant::now();
    for _ in 0..requests {
        lat.push(requester.round_trip_us()?);
    }
    let elapsed = start.elapsed();
    responder.stop();
    let (p50, p99, p999, _) = percentiles(&mut lat);
    Ok(Outcome {
        rate: Some(requests as f64 / elapsed.as_secs_f64()),
        latency_us: Some((p50, p99, p999)),
        elapsed,
        ..Default::default()
    })
}

/// p50, p99, p99.9 and max of `lat` (sorted in place; not empty).
pub fn percentiles(lat: &mut [f64]) -> (f64, f64, f64, f64) {
    lat.sort_by(f64::total_cmp);
    let pct = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    (pct(0.50), pct(0.99), pct(0.999), lat[lat.len() - 1])
}

/// The service side of the request/reply scenarios: its own connection
/// and thread, answering each request on `bench.svc` with an empty reply.
pub struct Responder {
    stop: std::net::TcpStream,
    handle: thread::JoinHandle<io::Result<()>>,
}

impl Responder {
    pub fn start(addr: SocketAddr, user_pass: Option<(&str, &str)>) -> io::Result<Responder> {
        let mut responder = Conn::connect_as(addr, "bench-responder", user_pass)?;
        responder.sub("bench.svc", None, 1)?;
        responder.ping()?;
        let stop = responder.writer.try_clone()?;
        let handle = thread::spawn(move || -> io::Result<()> {
            let mut replies: Vec<Vec<u8>> = Vec::new();
            loop {
                // Answer each request with an empty reply to its inbox.
                let r = count_msgs_with_reply(&mut responder, &mut replies);
                match r {
                    Ok(()) => {
                        for reply in replies.drain(..) {
                            responder.writer.write_all(b"PUB ")?;
                            responder.writer.write_all(&reply)?;
                            responder.writer.write_all(b" 0\r\n\r\n")?;
                        }
                    }
                    Err(_) => return Ok(()),
                }
            }
        });
        Ok(Responder { stop, handle })
    }

    /// Close the connection and wait for the thread.
    pub fn stop(self) {
        let _ = self.stop.shutdown(Shutdown::Both);
        let _ = self.handle.join();
    }
}

/// The client side: one request outstanding at a time, 128-byte requests
/// to [`Responder`], replies to a private inbox.
pub struct Requester {
    conn: Conn,
    frame: Vec<u8>,
}

impl Requester {
    /// Connect, subscribe the inbox, and warm up with 100 round trips so
    /// connection setup does not skew the tail.
    pub fn connect(addr: SocketAddr, user_pass: Option<(&str, &str)>) -> io::Result<Requester> {
        let mut conn = Conn::connect_as(addr, "bench-requester", user_pass)?;
        conn.sub("bench.inbox.*", None, 1)?;
        conn.ping()?;
        let mut r = Requester {
            conn,
            frame: pub_batch("bench.svc", Some("bench.inbox.1"), &[b'x'; 128], 1),
        };
        for _ in 0..100 {
            r.round_trip_us()?;
        }
        Ok(r)
    }

    /// One request and its reply; the time it took in microseconds.
    pub fn round_trip_us(&mut self) -> io::Result<f64> {
        let t = Instant::now();
        self.conn.writer.write_all(&self.frame)?;
        count_msgs(&mut self.conn, 1, |_| {})?;
        Ok(t.elapsed().as_nanos() as f64 / 1000.0)
    }
}

/// Read one message and remember its reply subject.
fn count_msgs_with_reply(c: &mut Conn, replies: &mut Vec<Vec<u8>>) -> io::Result<()> {
    use std::io::{BufRead, Read};
    let mut line = Vec::new();
    loop {
        line.clear();
        if c.reader.read_until(b'\n', &mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        if line.starts_with(b"MSG ") {
            let parts: Vec<&[u8]> = line
                .split(|b| b.is_ascii_whitespace())
                .filter(|p| !p.is_empty())
                .collect();
            let size = crate::wire::frame_size(&line)?;
            let mut body = vec![0u8; size + 2];
            c.reader.read_exact(&mut body)?;
            if parts.len() == 5 {
                replies.push(parts[3].to_vec());
            }
            return Ok(());
        } else if line.starts_with(b"PING") {
            c.writer.write_all(b"PONG\r\n")?;
        }
    }
}

/// Open `n` connections that each subscribe once and then sit idle. One
/// socket per connection (no cloned handle), so 10,000 of them fit in the
/// usual 20,000 file descriptors.
fn idle(addr: SocketAddr, n: u64, server_pid: Option<u32>) -> io::Result<Outcome> {
    use std::io::Read;
    let start = Instant::now();
    let mut conns = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut s = std::net::TcpStream::connect(addr)?;
        let hello = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB bench.idle.{i} 1\r\nPING\r\n"
        );
        s.write_all(hello.as_bytes())?;
        conns.push(s);
    }
    // Each connection has seen its PONG: the server holds every subscription.
    let mut buf = [0u8; 4096];
    for s in &mut conns {
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut seen = Vec::new();
        while !seen.windows(6).any(|w| w == b"PONG\r\n") {
            let k = s.read(&mut buf)?;
            if k == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed an idle connection",
                ));
            }
            seen.extend_from_slice(&buf[..k]);
        }
    }
    let elapsed = start.elapsed();
    let rss = server_pid.and_then(proc_stats::proc_rss);
    drop(conns);
    Ok(Outcome {
        rss,
        elapsed,
        rate: Some(n as f64 / elapsed.as_secs_f64()),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mass_conns: Option<u64>) -> Params {
        Params {
            msgs: 1,
            requests: 1,
            idle_conns: 10,
            burst_conns: 20,
            js_msgs: 1,
            flood_clients: 1,
            flood_window: Duration::from_millis(1),
            js_r3_msgs: 1,
            failovers: 1,
            ws_conns: 30,
            ws_events: 1,
            ws_addr: None,
            mass_events: 1,
            mass_conns,
            storm_conns: 40,
            churn_phase: Duration::from_millis(100),
            mass_per_process: crate::fanout_workers::PER_PROCESS,
        }
    }

    #[test]
    fn mass_fanouts_name_their_size_and_layout() {
        let mass: Vec<_> = Scenario::ALL
            .into_iter()
            .filter_map(|s| s.mass_fanout())
            .collect();
        for n in [1_000, 10_000, 50_000] {
            assert!(
                mass.contains(&(n, false)) && mass.contains(&(n, true)),
                "{n}"
            );
        }
        assert!(Scenario::MassFanout10kCluster.clustered());
        assert!(!Scenario::MassFanout10k.clustered());
        assert!(Scenario::on_running_server()
            .iter()
            .all(|s| s.mass_fanout().is_none()));
    }

    #[test]
    fn open_files_follow_the_largest_fleet() {
        let list = [Scenario::MassFanout10k, Scenario::Pub16];
        assert_eq!(params(None).most_conns(&list), 10_000);
        assert_eq!(params(Some(5)).most_conns(&list), 30);
        assert_eq!(params(None).most_conns(&[Scenario::Pub16]), 30);
        // A handful always fits; a fleet past the hard limit is refused
        // with the reason, not attempted.
        assert_eq!(
            Scenario::MassFanout50k.cannot_run_here(&params(Some(5))),
            None
        );
        assert_eq!(Scenario::Pub16.cannot_run_here(&params(None)), None);
        let huge = params(Some(u64::MAX / 2));
        let why = Scenario::MassFanout1k.cannot_run_here(&huge);
        assert!(why.is_some_and(|w| w.contains("open files")));
    }
}
