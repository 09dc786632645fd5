//! The WebSocket scenarios: web users on the `websocket {}` listener.
//!
//! `ws-fanout` is a goal in a live match: every web user follows
//! `sports.football.*` over WebSocket, and one publisher (an internal
//! system on the plain client port) sends one goal event of about 300
//! bytes of JSON on `sports.football.<matchId>`. A subscriber's latency is
//! the time from the publish to the kernel's receive stamp on that
//! subscriber's socket ([`crate::rx_stamp`]): when the server's write put
//! the message there.
//!
//! The stamp is the kernel's because 10,000 clients share one process:
//! the time at which the bench's task gets round to a socket says as much
//! about the bench as about the server. The clients still read as messages
//! come, so the bench's reading (about 40 ms of CPU per event, against the
//! server's 90-150 ms) shares the 2 cores with the server's writing. (An
//! experiment in which the clients stopped reading until 500 ms after each
//! publish moved neither server's latency beyond the noise: the kernel
//! still wakes the bench for every arrival.)
//!
//! A read's stamp is that of the newest segment it took in, so a message
//! read together with something that arrived after it (a PING) would get
//! the later time. nats-server pings each new client once, 2-2.4 s after
//! it connects; the clients read those pings during a pause ([`SETTLE`])
//! before the first event. A message that still shares its read with
//! later bytes is left out of the percentiles and counted.
//!
//! One unmeasured event first (each connection's first delivery sets up
//! buffers in either server), then `events` measured ones, each after all
//! subscribers have read the previous one and a pause.
//!
//! `ws-idle` holds the same kind of connections without traffic, to read
//! the server's memory per WebSocket connection.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::fanout_workers::{self, Remote, WorkersCpu};
use crate::proc_stats;
use crate::scenarios::{percentiles, Outcome};
use crate::wire::pub_batch;
use crate::ws_conn::Transport;
use crate::ws_fleet::{self, Stamp, SETUP_DEADLINE};

/// A guard against a server that stops delivering; not an expectation.
pub const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);
/// Pause after every subscriber has read an event, so the next one meets
/// a server at rest, as goals do.
const EVENT_GAP: Duration = Duration::from_millis(100);
/// Reading freely after the last client subscribed and before the first
/// event, so that nats-server's first PING to each client (2-2.4 s after
/// it connected) is read and answered before any message is timed.
pub const SETTLE: Duration = Duration::from_millis(3000);
/// Match ids of the events: `sports.football.<MATCH_BASE + event>`.
const MATCH_BASE: u64 = 4100;
/// What every fan-out subscriber follows.
pub const FANOUT_SUBJECT: &str = "sports.football.*";

/// The `websocket` block both servers get: a plain (no TLS) listener on
/// `addr`.
pub fn server_config(addr: SocketAddr) -> String {
    format!(
        "websocket {{\n  host: \"{}\"\n  port: {}\n  no_tls: true\n}}\n",
        addr.ip(),
        addr.port()
    )
}

/// A goal event as the bridge would republish it: about 300 bytes of JSON.
pub fn goal_event(match_id: u64, seq: u64) -> Vec<u8> {
    format!(
        "{{\"type\":\"goal\",\"sport\":\"football\",\"matchId\":{match_id},\"seq\":{seq},\
         \"minute\":67,\"period\":\"2H\",\"team\":\"home\",\
         \"scorer\":{{\"id\":10492,\"name\":\"Aleksander Nowakowski\",\"number\":9}},\
         \"assist\":{{\"id\":20311,\"name\":\"Joaquim Ferreira\",\"number\":8}},\
         \"score\":{{\"home\":2,\"away\":1}},\"ts\":\"2026-12-05T19:42:17.315Z\",\
         \"provider\":\"feed-sim\",\"var\":false}}"
    )
    .into_bytes()
}

/// Wait until the server listens on `addr` (its WebSocket listener may
/// come up after the client port the server start waited for).
async fn wait_listening(addr: SocketAddr) -> io::Result<()> {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        match TcpStream::connect(addr).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > end => {
                return Err(io::Error::other(format!(
                    "no websocket listener on {addr}: {e}"
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The publisher: a plain client connection, CONNECT acknowledged.
async fn publisher(addr: SocketAddr) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(
        b"CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"ws-bench-pub\"}\r\nPING\r\n",
    )
    .await?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while memchr::memmem::find(&seen, b"PONG\r\n").is_none() {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the publisher",
            ));
        }
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(s)
}

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The `ws-fanout` scenario: `n` subscribers, one warm-up event, then
/// `events` measured ones. `addr` is the plain client port (the
/// publisher), `ws` the WebSocket listener.
pub fn fanout(
    addr: SocketAddr,
    ws: SocketAddr,
    n: u64,
    events: u64,
    server_pid: Option<u32>,
) -> io::Result<Outcome> {
    let pids: Vec<u32> = server_pid.into_iter().collect();
    runtime()?.block_on(fanout_async(Fanout {
        publisher: addr,
        subscribers: &[ws],
        transport: Transport::WebSocket,
        n,
        events: events.max(1) as usize,
        pids: &pids,
        per_process: fanout_workers::PER_PROCESS,
    }))
}

/// A fan-out run: who publishes where, and where the subscribers are.
pub struct Fanout<'a> {
    /// The publisher's client port.
    pub publisher: SocketAddr,
    /// Subscriber `i` connects to `subscribers[i % len]` (one node, or
    /// each node of a cluster in turn).
    pub subscribers: &'a [SocketAddr],
    pub transport: Transport,
    /// Subscribers.
    pub n: u64,
    /// Measured events (after one warm-up).
    pub events: usize,
    /// The server processes: CPU and RSS are their sums.
    pub pids: &'a [u32],
    /// Subscribers this process holds at most; past it, all are in
    /// worker processes ([`fanout_workers`]).
    pub per_process: u64,
}

/// Run a fan-out on a runtime of its own (see [`Fanout`]).
pub fn run_fanout(f: Fanout<'_>) -> io::Result<Outcome> {
    runtime()?.block_on(fanout_async(f))
}

async fn fanout_async(f: Fanout<'_>) -> io::Result<Outcome> {
    let Fanout {
        publisher: addr,
        subscribers,
        transport,
        n,
        events,
        pids,
        per_process,
    } = f;
    if subscribers.is_empty() {
        return Err(io::Error::other(
            "fan-out without a server for its subscribers",
        ));
    }
    for a in subscribers {
        wait_listening(*a).await?;
    }
    let base = proc_stats::rss_sum(pids);
    let setup = Instant::now();
    let mut subs = Subscribers::start(subscribers, transport, n, 1 + events, per_process).await?;
    let setup = setup.elapsed();
    tokio::time::sleep(SETTLE).await;
    let mut publisher = publisher(addr).await?;
    let mut sent = Vec::with_capacity(1 + events);
    let mut cpu0 = None;
    let mut bench_cpu0 = 0.0;
    let mut measured = Instant::now();
    for e in 0..=events {
        if e == 1 {
            cpu0 = proc_stats::cpu_sum(pids);
            bench_cpu0 = proc_stats::self_cpu();
            measured = Instant::now();
        }
        let id = MATCH_BASE + e as u64;
        let subject = format!("sports.football.{id}");
        let frame = pub_batch(&subject, None, &goal_event(id, e as u64), 1);
        sent.push(SystemTime::now());
        publisher.write_all(&frame).await?;
        subs.delivered(e, n).await?;
        if e < events {
            tokio::time::sleep(EVENT_GAP).await;
        }
    }
    let elapsed = measured.elapsed();
    let mut bench_cpu = proc_stats::self_cpu() - bench_cpu0;
    let cpu = proc_stats::cpu_since(cpu0, pids);
    let rss = proc_stats::rss_sum(pids);
    let (stamps, workers_cpu) = subs.stamps().await?;
    bench_cpu += workers_cpu.events;
    let stats = Latencies::of(stamps.iter().map(|s| &s[..]), &sent);
    drop(stamps);
    let deliveries = n as f64 * events as f64;
    let mut notes = vec![
        ("first event p50 us", stats.first.0),
        ("first event p99 us", stats.first.1),
        ("setup s", setup.as_secs_f64()),
    ];
    for (what, count) in [
        ("stamps shared with later data (left out)", stats.shared),
        ("reads without kernel stamp", stats.unstamped),
    ] {
        if count > 0 {
            notes.push((what, count as f64));
        }
    }
    if let Some(c) = cpu {
        notes.push(("server cpu s", c));
    }
    notes.push(("bench cpu s over the events", bench_cpu));
    if let Subscribers::Workers(w) = &subs {
        notes.push(("bench worker processes", w.len() as f64));
    }
    drop(subs);
    Ok(Outcome {
        latency_us: Some(stats.kernel),
        latency_max_us: Some(stats.kernel_max),
        last_delivery_us: Some(stats.last),
        server_cpu: cpu,
        cpu_per_million: cpu.map(|c| c / (deliveries / 1e6)),
        rss,
        rss_per_10k: growth_per_10k(base, rss, n),
        notes,
        elapsed,
        // The workers' CPU; the caller adds this process's own.
        bench_cpu: workers_cpu.total,
        ..Default::default()
    })
}

/// Where a fan-out's subscribers are: on this process's runtime, or, past
/// what one process may hold, in worker processes ([`fanout_workers`]).
enum Subscribers {
    Here {
        fleet: Arc<ws_fleet::Fleet>,
        tasks: JoinSet<io::Result<ws_fleet::Done>>,
        done: Vec<ws_fleet::Done>,
    },
    Workers(Remote),
}

impl Subscribers {
    /// `n` clients spread over `addrs`, each staying for `msgs` messages,
    /// in worker processes if they are more than `per_process`; returns
    /// once all are subscribed.
    async fn start(
        addrs: &[SocketAddr],
        transport: Transport,
        n: u64,
        msgs: usize,
        per_process: u64,
    ) -> io::Result<Subscribers> {
        if fanout_workers::workers_for(n, per_process) > 0 {
            // Blocking on the workers' pipes here and below: with the
            // clients elsewhere, nothing else runs on this runtime.
            return Remote::spawn(addrs, transport, n, msgs, per_process).map(Subscribers::Workers);
        }
        let subject = |_| FANOUT_SUBJECT.to_string();
        let (fleet, mut tasks) = ws_fleet::spawn(addrs, transport, 0, n, msgs, subject);
        let mut done = Vec::with_capacity(n as usize);
        ws_fleet::wait_for(
            &fleet.ready,
            n,
            &mut tasks,
            &mut done,
            SETUP_DEADLINE,
            "subscribed",
        )
        .await?;
        Ok(Subscribers::Here { fleet, tasks, done })
    }

    /// Returns once every client has read event `e` (of `n` clients).
    async fn delivered(&mut self, e: usize, n: u64) -> io::Result<()> {
        match self {
            Subscribers::Here { fleet, tasks, done } => {
                let want = n * (e as u64 + 1);
                ws_fleet::wait_for(
                    &fleet.delivered,
                    want,
                    tasks,
                    done,
                    DELIVERY_DEADLINE,
                    "delivered",
                )
                .await
            }
            Subscribers::Workers(w) => w.delivered(e),
        }
    }

    /// Every client's stamps, and the CPU seconds of worker processes
    /// (none here: this process counts itself).
    async fn stamps(&mut self) -> io::Result<(Vec<Vec<Stamp>>, WorkersCpu)> {
        match self {
            Subscribers::Here { tasks, done, .. } => {
                ws_fleet::join_all(tasks, done).await?;
                let stamps = std::mem::take(done).into_iter().map(|(_, s)| s).collect();
                Ok((stamps, WorkersCpu::default()))
            }
            Subscribers::Workers(w) => w.stamps(),
        }
    }
}

/// Server memory above `base` for `n` connections, scaled to 10,000.
fn growth_per_10k(base: Option<u64>, rss: Option<u64>, n: u64) -> Option<f64> {
    let (base, rss) = (base?, rss?);
    Some(rss.saturating_sub(base) as f64 * 10_000.0 / n.max(1) as f64)
}

/// Latencies over every subscriber and measured event, in microseconds.
#[derive(Debug)]
struct Latencies {
    /// p50, p99, p99.9 to the kernel's receive stamp.
    kernel: (f64, f64, f64),
    kernel_max: f64,
    /// p50, p99 of the warm-up event.
    first: (f64, f64),
    /// Per measured event, the latest of its subscribers' stamps; p50,
    /// p99 and max over the events.
    last: (f64, f64, f64),
    /// Stamps that belong to data read after the message (left out).
    shared: usize,
    /// Reads the kernel did not stamp (counted with the read time).
    unstamped: usize,
}

impl Latencies {
    /// Each client's stamps, `sent[e]` when event `e` was published; event
    /// 0 is the warm-up.
    fn of<'a>(clients: impl IntoIterator<Item = &'a [Stamp]>, sent: &[SystemTime]) -> Latencies {
        let us = |t: SystemTime, t0: SystemTime| {
            t.duration_since(t0)
                .map_or(0.0, |d| d.as_nanos() as f64 / 1000.0)
        };
        let (mut kernel, mut first) = (Vec::new(), Vec::new());
        let mut last = vec![f64::NAN; sent.len()];
        let (mut shared, mut unstamped) = (0, 0);
        for stamps in clients {
            for (e, s) in stamps.iter().enumerate() {
                let Some(&t0) = sent.get(e) else { continue };
                if s.kernel.is_none() {
                    unstamped += 1;
                }
                let k = us(s.kernel.unwrap_or(s.read), t0);
                if !s.own {
                    shared += 1;
                } else if e == 0 {
                    first.push(k);
                } else {
                    kernel.push(k);
                    last[e] = last[e].max(k);
                }
            }
        }
        let mut last: Vec<f64> = last.into_iter().skip(1).filter(|v| !v.is_nan()).collect();
        let pct = |v: &mut Vec<f64>| {
            if v.is_empty() {
                (f64::NAN, f64::NAN, f64::NAN, f64::NAN)
            } else {
                percentiles(v)
            }
        };
        let (k50, k99, k999, kmax) = pct(&mut kernel);
        let (f50, f99, _, _) = pct(&mut first);
        let (l50, l99, _, lmax) = pct(&mut last);
        Latencies {
            kernel: (k50, k99, k999),
            kernel_max: kmax,
            first: (f50, f99),
            last: (l50, l99, lmax),
            shared,
            unstamped,
        }
    }
}

/// The `ws-idle` scenario: `n` WebSocket connections, each subscribed to
/// a subject of its own and past its PONG, then the server's memory.
pub fn idle(ws: SocketAddr, n: u64, server_pid: Option<u32>) -> io::Result<Outcome> {
    runtime()?.block_on(async {
        wait_listening(ws).await?;
        let base = server_pid.and_then(proc_stats::proc_rss);
        let start = Instant::now();
        let subject = |i| format!("bench.idle.{i}");
        let (_fleet, mut tasks) = ws_fleet::spawn(&[ws], Transport::WebSocket, 0, n, 0, subject);
        let mut conns = Vec::with_capacity(n as usize);
        ws_fleet::join_all(&mut tasks, &mut conns).await?;
        let elapsed = start.elapsed();
        let rss = server_pid.and_then(proc_stats::proc_rss);
        drop(conns);
        Ok(Outcome {
            rate: Some(n as f64 / elapsed.as_secs_f64()),
            rss,
            rss_per_10k: growth_per_10k(base, rss, n),
            elapsed,
            ..Default::default()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goal_event_is_about_300_bytes_of_json() {
        let e = goal_event(4101, 1);
        assert!((280..=320).contains(&e.len()), "{}", e.len());
        let v: serde_json::Value = serde_json::from_slice(&e).unwrap();
        assert_eq!(v["matchId"], 4101);
    }

    #[test]
    fn websocket_block() {
        let conf = server_config("127.0.0.1:8443".parse().unwrap());
        assert!(conf.contains("port: 8443"), "{conf}");
        assert!(conf.contains("no_tls: true"), "{conf}");
    }

    #[test]
    fn latencies_leave_out_the_warm_up_and_shared_stamps() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let sent = [t0, t0 + Duration::from_secs(1)];
        let at = |t: SystemTime, ms: u64| Stamp {
            kernel: Some(t + Duration::from_millis(ms)),
            own: true,
            read: t + Duration::from_millis(ms + 600),
        };
        let a = [at(sent[0], 7), at(sent[1], 2)];
        let b = [at(sent[0], 9), at(sent[1], 4)];
        let c = [
            at(sent[0], 9),
            Stamp {
                own: false,
                ..at(sent[1], 300)
            },
        ];
        let d = [
            at(sent[0], 1),
            Stamp {
                kernel: None,
                ..at(sent[1], 0)
            },
        ];
        let l = Latencies::of([&a[..], &b[..], &c[..], &d[..]], &sent);
        // Measured: 2 ms, 4 ms and d's read time (600 ms); c's is left out.
        assert_eq!(l.kernel.0, 4_000.0);
        assert_eq!(l.kernel_max, 600_000.0);
        assert_eq!(l.first, (9_000.0, 9_000.0));
        // The one measured event's last subscriber: d's read, at 600 ms.
        assert_eq!(l.last, (600_000.0, 600_000.0, 600_000.0));
        assert_eq!((l.shared, l.unstamped), (1, 1));
    }

    #[test]
    fn growth_is_scaled_to_ten_thousand() {
        assert_eq!(growth_per_10k(Some(100), Some(1100), 5_000), Some(2000.0));
        assert_eq!(growth_per_10k(Some(100), Some(50), 10), Some(0.0));
        assert_eq!(growth_per_10k(None, Some(50), 10), None);
    }
}
