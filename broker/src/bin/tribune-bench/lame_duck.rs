//! The connection storm after an upgrade: a node of a 3-node cluster goes
//! into lame-duck mode (SIGUSR2, as `nats-server --signal ldm` and the
//! rolling upgrade send) while the storm's clients are on all three. The
//! node stops accepting and closes its clients, spread over its
//! `lame_duck_duration`; each closed client logs in to one of the other
//! two nodes, as a client library with the cluster's URLs would.
//!
//! The time to the last move is the lame-duck schedule's (both servers
//! get the same settings, [`server_config`]); what the servers decide is
//! each client's re-login after its close (from the close to the PONG on
//! its new node), the failed attempts, and the CPU the two remaining
//! nodes spend taking the moved clients in.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proc_stats;
use crate::scenarios::{percentiles, Outcome};
use crate::storm::{self, Storm};

/// nats-server's shortest lame-duck duration (it refuses less), with a
/// short grace period before the first close.
pub const DURATION_SECS: u64 = 30;
pub const GRACE_SECS: u64 = 1;

/// The lame-duck settings both servers get, beside the storm's user.
pub fn server_config() -> String {
    format!(
        "{}lame_duck_duration: \"{DURATION_SECS}s\"\nlame_duck_grace_period: \"{GRACE_SECS}s\"\n",
        storm::server_config()
    )
}

/// Storm `n` clients onto `nodes` (`pids` their processes), then put
/// node `lame` into lame-duck mode and wait until every client it had is
/// subscribed on another node.
pub fn run(nodes: &[SocketAddr], n: u64, pids: &[u32], lame: usize) -> io::Result<Outcome> {
    let lame_pid = *pids
        .get(lame)
        .ok_or_else(|| io::Error::other("the lame-duck node's pid is unknown"))?;
    let survivors: Vec<u32> = pids.iter().copied().filter(|p| *p != lame_pid).collect();
    let mut storm = Storm::spawn(nodes, n, Some(lame), None)?;
    storm.go()?;
    let cpu0 = proc_stats::cpu_sum(&survivors);
    let start = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(lame_pid as i32),
        nix::sys::signal::Signal::SIGUSR2,
    )
    .map_err(|e| io::Error::other(format!("signalling lame duck to {lame_pid}: {e}")))?;
    let (mut failed, mut bench_cpu, mut relogin) = (0.0, 0.0, Vec::new());
    for report in storm.reports()? {
        failed += report["failed"].as_f64().unwrap_or(0.0);
        bench_cpu += report["cpu_s"].as_f64().unwrap_or(0.0);
        let ms = report["relogin_ms"].as_array().cloned().unwrap_or_default();
        relogin.extend(ms.iter().filter_map(serde_json::Value::as_f64));
    }
    let elapsed = start.elapsed();
    let server_cpu = proc_stats::cpu_since(cpu0, &survivors);
    let rss = proc_stats::rss_sum(&survivors);
    drop(storm);
    if relogin.is_empty() {
        return Err(io::Error::other(
            "the lame-duck node had no clients to move",
        ));
    }
    let moved = relogin.len() as f64;
    let (p50, p99, _, max) = percentiles(&mut relogin);
    Ok(Outcome {
        rate: Some(moved / elapsed.as_secs_f64()),
        server_cpu,
        rss,
        notes: vec![
            ("failed attempts", failed),
            ("moved clients", moved),
            ("re-login p50 ms", p50),
            ("re-login p99 ms", p99),
            ("re-login max ms", max),
        ],
        elapsed,
        bench_cpu,
        ..Default::default()
    })
}

/// In a worker: wait until the lame-duck node closes each of `watched`,
/// then log it in to another node (spread over the others by client
/// number). Returns the new connections (by client) and each client's re-login time,
/// from its close to its PONG, in milliseconds.
pub async fn follow(
    watched: Vec<(u64, TcpStream)>,
    nodes: &[SocketAddr],
    lame: usize,
    token: Option<Arc<str>>,
    failed: &Arc<AtomicU64>,
) -> io::Result<(Vec<(u64, TcpStream)>, Vec<f64>)> {
    let others: Vec<SocketAddr> = nodes
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != lame)
        .map(|(_, a)| *a)
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, s) in watched {
        let to = others[(i / nodes.len() as u64) as usize % others.len()];
        let (failed, token) = (failed.clone(), token.clone());
        tasks.spawn(async move {
            tokio::time::timeout(storm::DEADLINE, until_closed(s))
                .await
                .map_err(|_| {
                    io::Error::other(format!("client {i}: never closed by the lame duck"))
                })?;
            let closed = Instant::now();
            let s = tokio::time::timeout(
                storm::DEADLINE,
                storm::client(to, i, token.as_deref(), &failed),
            )
            .await
            .map_err(|_| io::Error::other(format!("client {i}: no PONG from {to} in time")))??;
            Ok::<_, io::Error>((i, s, closed.elapsed().as_secs_f64() * 1000.0))
        });
    }
    let (mut conns, mut ms) = (Vec::new(), Vec::new());
    while let Some(r) = tasks.join_next().await {
        let (i, s, t) = r.map_err(io::Error::other)??;
        conns.push((i, s));
        ms.push(t);
    }
    Ok((conns, ms))
}

/// Read until the server closes (or resets) the connection, answering
/// its PINGs meanwhile.
async fn until_closed(mut s: TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(k) => {
                if memchr::memmem::find(&buf[..k], b"PING\r\n").is_some()
                    && s.write_all(b"PONG\r\n").await.is_err()
                {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_servers_get_the_shortest_lame_duck_nats_server_accepts() {
        let conf = server_config();
        assert!(conf.contains("lame_duck_duration: \"30s\""), "{conf}");
        assert!(conf.contains("lame_duck_grace_period: \"1s\""), "{conf}");
        assert!(conf.contains("authorization"), "{conf}");
    }
}
