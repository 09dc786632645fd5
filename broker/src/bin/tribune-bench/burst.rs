//! The connect burst: `n` clients that all connect at once and each send
//! `CONNECT`, `SUB` and `PING` without waiting for the server's INFO. The
//! clock runs from the first connect to the last PONG.
//!
//! What it exposes is the listen backlog and the accept path: connections
//! the kernel cannot queue are dropped, and their clients retry only after
//! 1 s, 3 s, 7 s, so a too-small backlog turns milliseconds into seconds.
//! The connects are non-blocking (one task each on a single-threaded
//! runtime), so they all reach the server together, as a fleet of clients
//! restarting at once would.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proc_stats;
use crate::scenarios::Outcome;

/// A guard against a server that never answers; not an expectation.
const DEADLINE: Duration = Duration::from_secs(120);

/// Run the burst; `server_pid` (if known) gives the server's memory with
/// every connection still open.
pub fn run(addr: SocketAddr, n: u64, server_pid: Option<u32>) -> io::Result<Outcome> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(burst(addr, n, server_pid))
}

async fn burst(addr: SocketAddr, n: u64, server_pid: Option<u32>) -> io::Result<Outcome> {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        tasks.spawn(async move {
            tokio::time::timeout(DEADLINE, hello(addr, i))
                .await
                .map_err(|_| io::Error::other("no PONG in time"))?
        });
    }
    // Hold every connection until the last PONG, so the server carries
    // them all at once.
    let mut conns = Vec::with_capacity(n as usize);
    while let Some(r) = tasks.join_next().await {
        conns.push(r.map_err(io::Error::other)??);
    }
    let elapsed = start.elapsed();
    let rss = server_pid.and_then(proc_stats::proc_rss);
    drop(conns);
    Ok(Outcome {
        rate: Some(n as f64 / elapsed.as_secs_f64()),
        rss,
        elapsed,
        ..Default::default()
    })
}

/// Connect, say hello, and read until the PONG.
async fn hello(addr: SocketAddr, i: u64) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    let msg = format!("CONNECT {{}}\r\nSUB bench.burst.{i} 1\r\nPING\r\n");
    s.write_all(msg.as_bytes()).await?;
    let mut seen = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    while !seen.windows(6).any(|w| w == b"PONG\r\n") {
        let k = s.read(&mut buf).await?;
        if k == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "server closed connection {i}: {:?}",
                    String::from_utf8_lossy(&seen)
                ),
            ));
        }
        seen.extend_from_slice(&buf[..k]);
    }
    Ok(s)
}
