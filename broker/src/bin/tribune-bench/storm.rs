//! The connection storm: half an audience reconnecting at once after a
//! node went away. `n` clients connect together, each reads the server's
//! INFO, signs its nonce with an NKEY (as Tribune's internal systems log
//! in), and sends `CONNECT`, `SUB` and `PING`; the clock runs from the
//! first connect to the last PONG.
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

/// A guard against a server that never answers; not an expectation.
const DEADLINE: Duration = Duration::from_secs(180);
/// Tries per client before the whole run fails.
const ATTEMPTS: u32 = 5;
/// Pause before trying again (client libraries wait longer; a storm's
/// figure should show the server, not the clients' patience).
pub const RETRY_PAUSE_MS: u64 = 50;
const RETRY_PAUSE: Duration = Duration::from_millis(RETRY_PAUSE_MS);

/// The clients' NKEY user, made once per process so that the servers'
/// configuration and the clients agree.
fn user() -> &'static nkeys::KeyPair {
    static USER: OnceLock<nkeys::KeyPair> = OnceLock::new();
    USER.get_or_init(nkeys::KeyPair::new_user)
}

/// The `authorization` block both servers get: the one NKEY user, allowed
/// everything.
pub fn server_config() -> String {
    format!(
        "authorization {{\n  users: [ {{ nkey: {} }} ]\n}}\n",
        user().public_key()
    )
}

/// Run the storm; `server_pid` (if known) gives the server's CPU over it
/// and its memory with every client connected.
pub fn run(addr: SocketAddr, n: u64, server_pid: Option<u32>) -> io::Result<Outcome> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(storm(addr, n, server_pid))
}

async fn storm(addr: SocketAddr, n: u64, server_pid: Option<u32>) -> io::Result<Outcome> {
    let failed = Arc::new(AtomicU64::new(0));
    let cpu0 = server_pid.and_then(proc_stats::proc_cpu);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let failed = failed.clone();
        tasks.spawn(async move {
            tokio::time::timeout(DEADLINE, client(addr, i, &failed))
                .await
                .map_err(|_| io::Error::other(format!("client {i}: no PONG in time")))?
        });
    }
    // Every connection stays open until the last PONG, so the server
    // carries them all at once.
    let mut conns = Vec::with_capacity(n as usize);
    while let Some(r) = tasks.join_next().await {
        conns.push(r.map_err(io::Error::other)??);
    }
    let elapsed = start.elapsed();
    let server_cpu = match (cpu0, server_pid.and_then(proc_stats::proc_cpu)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let rss = server_pid.and_then(proc_stats::proc_rss);
    drop(conns);
    Ok(Outcome {
        rate: Some(n as f64 / elapsed.as_secs_f64()),
        server_cpu,
        rss,
        notes: vec![("failed attempts", failed.load(Ordering::Relaxed) as f64)],
        elapsed,
        ..Default::default()
    })
}

/// One client: log in until it works (counting the attempts that did not).
async fn client(addr: SocketAddr, i: u64, failed: &AtomicU64) -> io::Result<TcpStream> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match login(addr, i).await {
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

/// Connect, sign the INFO's nonce, `CONNECT`+`SUB`+`PING`, read to the PONG.
async fn login(addr: SocketAddr, i: u64) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
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
    let nonce = nonce_of(&info)?;
    let sig = user()
        .sign(nonce.as_bytes())
        .map_err(|e| io::Error::other(format!("signing the nonce: {e}")))?;
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig);
    let hello = format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"nkey\":\"{}\",\"sig\":\"{sig}\"}}\r\n\
         SUB sports.football.* {i}\r\nPING\r\n",
        user().public_key()
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
}
