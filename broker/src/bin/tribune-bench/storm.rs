//! The connection storm: half an audience reconnecting at once after a
//! node went away. `n` clients log in, each reading the server's INFO,
//! signing its nonce with an NKEY (as Tribune's internal systems log in),
//! and sending `CONNECT`, `SUB` and `PING`; the clock runs from the first
//! connect to the last PONG, and every connection stays open until then.
//!
//! The clients come from [`WORKERS`] worker processes (`tribune-bench
//! storm-worker`), so that the load generator is not what sets the time:
//! each process holds only its share of the sockets (the open-files limit
//! is per process) and signs its share of the nonces on a core of its
//! own. Each worker keeps at most [`WINDOW`] logins in flight: a burst of
//! every client at once makes any server on a small machine time out the
//! last logins it accepted (its 2 s auth timeout) before it reaches them,
//! and what that measures is the bench's backlog, not the server. With
//! the window, the time is what the server's login rate allows. Client
//! i logs in to node `i % nodes`, so the same code storms one server or a
//! cluster's three.
//!
//! A client the server refuses or drops (a full listen backlog, a reset,
//! an `-ERR`) counts as a failed attempt and tries again after a short
//! pause, as client libraries do, up to [`ATTEMPTS`] times; the row shows
//! the failed attempts next to the time, since a server that is fast only
//! because it turned clients away has not won.
//!
//! All clients share one NKEY user: the server's work per login (a nonce,
//! an ed25519 verification, a permission set) is the same as with one key
//! each, and both servers get the same configuration.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proc_stats;
use crate::scenarios::Outcome;
use crate::workers::{self, Share, Worker};

/// A guard against a server that never answers; not an expectation.
pub const DEADLINE: Duration = Duration::from_secs(180);
/// Tries per client before the whole run fails.
const ATTEMPTS: u32 = 5;
/// Pause before trying again (client libraries wait longer; a storm's
/// figure should show the server, not the clients' patience).
pub const RETRY_PAUSE_MS: u64 = 50;
const RETRY_PAUSE: Duration = Duration::from_millis(RETRY_PAUSE_MS);
/// Worker processes the clients are spread over.
pub const WORKERS: u64 = 2;
/// Logins in flight per worker (see the module's doc).
pub const WINDOW: usize = 500;

/// The clients' NKEY user, made once per process so that the servers'
/// configuration and the clients agree. The workers get its seed from
/// the parent ([`SEED_ENV`]).
fn user() -> &'static nkeys::KeyPair {
    static USER: OnceLock<nkeys::KeyPair> = OnceLock::new();
    USER.get_or_init(|| {
        std::env::var(SEED_ENV)
            .ok()
            .and_then(|seed| nkeys::KeyPair::from_seed(&seed).ok())
            .unwrap_or_else(nkeys::KeyPair::new_user)
    })
}

/// How a worker learns the parent's NKEY user (an environment variable,
/// so the seed is on no command line).
const SEED_ENV: &str = "TRIBUNE_BENCH_STORM_SEED";
/// How a worker learns the web token its clients log in with instead
/// (the auth-callout storm), likewise.
const TOKEN_ENV: &str = "TRIBUNE_BENCH_STORM_TOKEN";

/// The `authorization` block both servers get: the one NKEY user, allowed
/// everything.
pub fn server_config() -> String {
    format!(
        "authorization {{\n  users: [ {{ nkey: {} }} ]\n}}\n",
        user().public_key()
    )
}

/// Open files the storm needs in one process: a worker's share of the
/// sockets, or a server's (one node holds a `1 / nodes` share).
pub fn files_needed(n: u64, nodes: u64) -> u64 {
    (n.div_ceil(WORKERS) + 1024).max(n.div_ceil(nodes.max(1)) + 64)
}

/// Run the storm against `nodes` from [`WORKERS`] worker processes;
/// `pids` (the servers', if known) give their CPU over it and their
/// memory with every client connected.
pub fn run(nodes: &[SocketAddr], n: u64, pids: &[u32]) -> io::Result<Outcome> {
    let mut storm = Storm::spawn(nodes, n, None, None)?;
    let cpu0 = proc_stats::cpu_sum(pids);
    let start = Instant::now();
    let (failed, bench_cpu) = storm.go()?;
    let elapsed = start.elapsed();
    let server_cpu = proc_stats::cpu_since(cpu0, pids);
    let rss = proc_stats::rss_sum(pids);
    // Dropping the workers closes their stdin: they let go of their
    // connections and exit.
    drop(storm);
    Ok(Outcome {
        rate: Some(n as f64 / elapsed.as_secs_f64()),
        server_cpu,
        rss,
        notes: vec![("failed attempts", failed)],
        elapsed,
        bench_cpu,
        ..Default::default()
    })
}

/// The worker processes of one storm, ready to start.
pub struct Storm {
    workers: Vec<Worker>,
}

impl Storm {
    /// Start the workers for `n` clients and wait until each is ready.
    /// With `lame`, each then follows the clients that node closes (see
    /// `lame_duck.rs`); with `token`, the clients log in with that web
    /// token rather than the NKEY user (see `callout_storm.rs`).
    pub fn spawn(
        nodes: &[SocketAddr],
        n: u64,
        lame: Option<usize>,
        token: Option<&str>,
    ) -> io::Result<Storm> {
        let seed = user()
            .seed()
            .map_err(|e| io::Error::other(format!("the storm user's seed: {e}")))?;
        let mut workers = Vec::new();
        for share in Share::split(nodes, n, WORKERS) {
            workers.push(spawn_worker(&share, lame, token, &seed)?);
        }
        for w in &mut workers {
            w.expect_line("ready")?;
        }
        Ok(Storm { workers })
    }

    /// Let the clients log in; returns once every one has its PONG, with
    /// the failed attempts and the workers' CPU seconds.
    pub fn go(&mut self) -> io::Result<(f64, f64)> {
        for w in &mut self.workers {
            w.say("go")?;
        }
        let (mut failed, mut cpu) = (0.0, 0.0);
        for report in self.reports()? {
            failed += report["failed"].as_f64().unwrap_or(0.0);
            cpu += report["cpu_s"].as_f64().unwrap_or(0.0);
        }
        Ok((failed, cpu))
    }

    /// The next report line of every worker, as JSON.
    pub fn reports(&mut self) -> io::Result<Vec<serde_json::Value>> {
        self.workers.iter_mut().map(Worker::json).collect()
    }
}

/// Start the worker for `share` of the clients.
fn spawn_worker(
    share: &Share,
    lame: Option<usize>,
    token: Option<&str>,
    seed: &str,
) -> io::Result<Worker> {
    let mut args = share.args("storm-worker");
    if let Some(lame) = lame {
        args.extend(["--lame".into(), lame.to_string()]);
    }
    let mut env = vec![(SEED_ENV, seed)];
    if let Some(token) = token {
        env.push((TOKEN_ENV, token));
    }
    Worker::spawn("storm worker", &args, &env)
}

/// A worker's part (`tribune-bench storm-worker`): says `ready`, waits
/// for `go` on stdin, logs in clients `first..first + count` (at most
/// [`WINDOW`] at a time), prints its report as one JSON line, and holds
/// every connection until stdin closes. With `lame`, between the two it
/// follows the clients node `lame` closes to the other nodes and reports
/// again (`lame_duck.rs`).
pub fn worker(share: &Share, lame: Option<usize>) -> io::Result<()> {
    let (nodes, first, count) = (&share.nodes[..], share.first, share.count);
    if nodes.is_empty() || lame.is_some_and(|l| l >= nodes.len() || nodes.len() < 2) {
        return Err(io::Error::other(
            "storm worker: no nodes, or a lame-duck node not among them with others to go to",
        ));
    }
    crate::compare::raise_fd_limit(count);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    user();
    workers::tell("ready")?;
    if workers::hear()?.as_deref() != Some("go") {
        return Ok(());
    }
    let cpu0 = proc_stats::self_cpu();
    let failed = Arc::new(AtomicU64::new(0));
    let token: Option<Arc<str>> = std::env::var(TOKEN_ENV).ok().map(Arc::from);
    let mut conns = rt.block_on(logins(nodes, first, count, token.clone(), &failed))?;
    let report = serde_json::json!({
        "failed": failed.load(Ordering::Relaxed),
        "cpu_s": proc_stats::self_cpu() - cpu0,
    });
    workers::tell(&report.to_string())?;
    if let Some(lame) = lame {
        let (watched, kept): (Vec<_>, Vec<_>) = conns
            .into_iter()
            .partition(|(i, _)| node_of(*i, nodes.len()) == lame);
        let cpu0 = proc_stats::self_cpu();
        let failed0 = failed.load(Ordering::Relaxed);
        let (moved, relogin_ms) = rt.block_on(crate::lame_duck::follow(
            watched, nodes, lame, token, &failed,
        ))?;
        let report = serde_json::json!({
            "failed": failed.load(Ordering::Relaxed) - failed0,
            "cpu_s": proc_stats::self_cpu() - cpu0,
            "relogin_ms": relogin_ms,
        });
        workers::tell(&report.to_string())?;
        conns = kept.into_iter().chain(moved).collect();
    }
    // Hold the connections until the parent has read the servers' memory.
    workers::until_closed()?;
    drop(conns);
    Ok(())
}

/// The node client `i` first logs in to.
pub fn node_of(i: u64, nodes: usize) -> usize {
    (i % nodes as u64) as usize
}

async fn logins(
    nodes: &[SocketAddr],
    first: u64,
    count: u64,
    token: Option<Arc<str>>,
    failed: &Arc<AtomicU64>,
) -> io::Result<Vec<(u64, TcpStream)>> {
    let window = Arc::new(tokio::sync::Semaphore::new(WINDOW));
    let mut tasks = tokio::task::JoinSet::new();
    for i in first..first + count {
        let addr = nodes[node_of(i, nodes.len())];
        let (failed, window, token) = (failed.clone(), window.clone(), token.clone());
        tasks.spawn(async move {
            let _slot = window
                .acquire_owned()
                .await
                .map_err(|e| io::Error::other(format!("client {i}: {e}")))?;
            tokio::time::timeout(DEADLINE, client(addr, i, token.as_deref(), &failed))
                .await
                .map_err(|_| io::Error::other(format!("client {i}: no PONG in time")))?
                .map(|s| (i, s))
        });
    }
    let mut conns = Vec::with_capacity(count as usize);
    while let Some(r) = tasks.join_next().await {
        conns.push(r.map_err(io::Error::other)??);
    }
    Ok(conns)
}

/// One client: log in until it works (counting the attempts that did not).
pub async fn client(
    addr: SocketAddr,
    i: u64,
    token: Option<&str>,
    failed: &AtomicU64,
) -> io::Result<TcpStream> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match login(addr, i, token).await {
            Ok(s) => return Ok(s),
            Err(e) => {
                if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("connection storm: first failed attempt: {e}");
                }
                last = Some(e);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no attempt made")))
}

/// Connect, sign the INFO's nonce (or, with `token`, send that as the
/// `auth_token` instead), `CONNECT`+`SUB`+`PING`, read to the PONG.
pub async fn login(addr: SocketAddr, i: u64, token: Option<&str>) -> io::Result<TcpStream> {
    let mut s = crate::ws_conn::connect_from_own_address(addr, i).await?;
    let mut seen = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let info = loop {
        if let Some(end) = memchr::memmem::find(&seen, b"\r\n") {
            // What came after the INFO (an -ERR) is kept for below.
            let info = seen[..end].to_vec();
            seen.drain(..end + 2);
            break info;
        }
        read_some(&mut s, &mut buf, &mut seen, i).await?;
    };
    let credentials = match token {
        Some(token) => format!("\"auth_token\":\"{token}\""),
        None => {
            let nonce = nonce_of(&info)?;
            let sig = user()
                .sign(nonce.as_bytes())
                .map_err(|e| io::Error::other(format!("signing the nonce: {e}")))?;
            let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig);
            format!("\"nkey\":\"{}\",\"sig\":\"{sig}\"", user().public_key())
        }
    };
    let hello = format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,{credentials}}}\r\n\
         SUB sports.football.* {i}\r\nPING\r\n"
    );
    s.write_all(hello.as_bytes()).await?;
    loop {
        if memchr::memmem::find(&seen, b"PONG\r\n").is_some() {
            return Ok(s);
        }
        if let Some(at) = memchr::memmem::find(&seen, b"-ERR") {
            let line = seen[at..].split(|b| *b == b'\n').next().unwrap_or_default();
            return Err(io::Error::other(format!(
                "client {i}: {}",
                String::from_utf8_lossy(line).trim()
            )));
        }
        read_some(&mut s, &mut buf, &mut seen, i).await?;
    }
}

async fn read_some(
    s: &mut TcpStream,
    buf: &mut [u8],
    seen: &mut Vec<u8>,
    i: u64,
) -> io::Result<()> {
    let k = s.read(buf).await?;
    if k == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "server closed connection {i}: {:?}",
                String::from_utf8_lossy(seen)
            ),
        ));
    }
    seen.extend_from_slice(&buf[..k]);
    Ok(())
}

/// The `nonce` of an `INFO {...}` line.
fn nonce_of(info: &[u8]) -> io::Result<String> {
    let json = info
        .strip_prefix(b"INFO ")
        .ok_or_else(|| io::Error::other("the server did not start with INFO"))?;
    let v: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| io::Error::other(format!("INFO is not JSON: {e}")))?;
    v["nonce"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| io::Error::other("INFO without a nonce: is NKEY auth configured?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nonce_is_read_from_info_and_signed_verifiably() {
        let nonce = nonce_of(br#"INFO {"server_id":"x","nonce":"abc-123"}"#).unwrap();
        assert_eq!(nonce, "abc-123");
        assert!(nonce_of(br#"INFO {"server_id":"x"}"#).is_err());
        assert!(nonce_of(b"-ERR 'x'").is_err());
        let sig = user().sign(nonce.as_bytes()).unwrap();
        let public = nkeys::KeyPair::from_public_key(&user().public_key()).unwrap();
        assert!(public.verify(nonce.as_bytes(), &sig).is_ok());
        assert!(server_config().contains(&user().public_key()));
    }

    #[test]
    fn the_files_needed_are_the_larger_of_a_worker_and_a_node() {
        // One node holds every client; a worker half of them.
        assert_eq!(files_needed(20_000, 1), 20_064);
        // Over 3 nodes, a worker's share is the larger.
        assert_eq!(files_needed(20_000, 3), 10_000 + 1024);
    }
}
