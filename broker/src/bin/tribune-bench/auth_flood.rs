//! The auth flood (review item 8): clients that never authenticate keep
//! sending `CONNECT`s with a wrong password for a bcrypt user, each as soon
//! as the server has answered its last, while one authenticated client does
//! request/reply round trips through the same server.
//!
//! bcrypt is slow by design (cost 11, what `nats server passwd` generates,
//! is well over 100 ms of CPU per check here), so the flood costs the server
//! whatever CPU it is given. The row shows both sides of how a server
//! spends it: what the flood does to everyone else on the node (round-trip
//! times), how fast the server disposes of the flood (refused logins per
//! second) for how much CPU, and whether the flooded user can still log in
//! with the right password (one more client tries, one login after
//! another). nats-server checks each password on the goroutine reading
//! that connection, so the checks compete with all traffic for every core;
//! Tribune runs them on a bounded blocking pool (half the cores), so the
//! other half of the machine keeps serving.
//!
//! The flood comes from one address and the flooded user logs in from
//! another (on loopback: 127.0.0.1 and 127.0.0.2), as an attacker guessing
//! a user's password from their own machine would. Tribune shares its
//! bcrypt pool out by address (at most 4 checks pending per address; a
//! login past that is refused at once with `Authentication Timeout`, which
//! clients retry), so the flood holds a few places in the queue, not all.
//!
//! Both servers run with their default auth timeout (2 s). nats-server
//! stops the timer when the CONNECT arrives; Tribune gives the check an
//! auth timeout of its own. `Authentication Timeout` answers are counted
//! separately.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::proc_stats;
use crate::scenarios::{percentiles, Logins, Outcome, Requester, Responder};

/// The cost of the flooded user's hash; `nats server passwd` uses 11.
pub const BCRYPT_COST: u32 = 11;

/// The measuring client's user, with a plain-text password (no bcrypt on
/// its own login, which happens before the flood anyway).
const USER: &str = "bench";
const PASSWORD: &str = "bench-secret";
/// The bcrypt user the flood guesses wrong for.
const VICTIM: &str = "victim";
const VICTIM_PASSWORD: &str = "victim-secret";

const WRONG_LOGIN: &[u8] =
    b"CONNECT {\"verbose\":false,\"user\":\"victim\",\"pass\":\"wrong\"}\r\nPING\r\n";
const RIGHT_LOGIN: &[u8] =
    b"CONNECT {\"verbose\":false,\"user\":\"victim\",\"pass\":\"victim-secret\"}\r\nPING\r\n";

/// A guard against a flood that never gets going; not an expectation.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// The configuration both servers run the scenario with: the two users,
/// the victim's password hashed with bcrypt at `cost` (made here, at bench
/// start, so nothing secret-looking is checked in).
pub fn server_config(cost: u32) -> io::Result<String> {
    let hash = bcrypt::hash(VICTIM_PASSWORD, cost)
        .map_err(|e| io::Error::other(format!("bcrypt hash at cost {cost}: {e}")))?;
    Ok(format!(
        "authorization {{\n  users: [\n    {{user: \"{USER}\", password: \"{PASSWORD}\"}},\n    {{user: \"{VICTIM}\", password: \"{hash}\"}}\n  ]\n}}\n"
    ))
}

/// What the flood has seen so far; cumulative, read at both ends of the
/// measurement window.
#[derive(Default)]
struct Counts {
    /// Flood clients that have sent their first CONNECT.
    started: AtomicU64,
    /// Logins refused, whatever the answer (or none: a bare close).
    refused: AtomicU64,
    /// Of those, refused with `Authentication Timeout`.
    timeouts: AtomicU64,
    /// Right-password logins answered, and of those, admitted.
    right_tried: AtomicU64,
    right_admitted: AtomicU64,
}

impl Counts {
    fn snapshot(&self) -> [u64; 4] {
        [
            &self.refused,
            &self.timeouts,
            &self.right_tried,
            &self.right_admitted,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

/// How the server answered one login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// `PONG`: the server took the CONNECT.
    Admitted,
    /// `-ERR 'Authorization Violation'`.
    Violation,
    /// `-ERR 'Authentication Timeout'`.
    Timeout,
    /// Closed without a readable answer (a reset can discard it).
    Closed,
}

/// Run the scenario: `clients` flooders, round trips for `window` once
/// the flood is under way.
pub fn run(
    addr: SocketAddr,
    clients: u64,
    window: Duration,
    server_pid: Option<u32>,
) -> io::Result<Outcome> {
    let creds = Some((USER, PASSWORD));
    let responder = Responder::start(addr, creds)?;
    let mut requester = Requester::connect(addr, creds)?;
    let counts = Arc::new(Counts::default());
    let (stop, stopped) = watch::channel(false);
    let flood = {
        let counts = counts.clone();
        thread::spawn(move || flood(addr, clients, counts, stopped))
    };
    let measured = measure(
        &mut requester,
        &counts,
        clients,
        window,
        server_pid,
        &|| !flood.is_finished(),
    );
    let _ = stop.send(true);
    let flooded = flood
        .join()
        .map_err(|_| io::Error::other("the flood panicked"))?;
    responder.stop();
    flooded?;
    measured
}

fn measure(
    requester: &mut Requester,
    counts: &Counts,
    clients: u64,
    window: Duration,
    server_pid: Option<u32>,
    flooding: &dyn Fn() -> bool,
) -> io::Result<Outcome> {
    // The window opens once every flooder has sent a CONNECT and a quarter
    // of the window more has passed, so the flood's start is not measured.
    let deadline = Instant::now() + START_DEADLINE;
    while counts.started.load(Ordering::Relaxed) < clients {
        if !flooding() || Instant::now() > deadline {
            return Err(io::Error::other("the flood did not get under way"));
        }
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(window / 4);
    let before = counts.snapshot();
    let cpu0 = server_pid.and_then(proc_stats::proc_cpu);
    let start = Instant::now();
    let mut lat = Vec::new();
    // At least one round trip, however long it takes.
    loop {
        lat.push(requester.round_trip_us()?);
        if start.elapsed() >= window || !flooding() {
            break;
        }
    }
    let elapsed = start.elapsed();
    let after = counts.snapshot();
    let [refused, timeouts, right_tried, right_admitted] =
        std::array::from_fn(|i| after[i] - before[i]);
    let cpu1 = server_pid.and_then(proc_stats::proc_cpu);
    let rss = server_pid.and_then(proc_stats::proc_rss);
    let secs = elapsed.as_secs_f64();
    let (p50, p99, p999, max) = percentiles(&mut lat);
    Ok(Outcome {
        rate: Some(lat.len() as f64 / secs),
        latency_us: Some((p50, p99, p999)),
        latency_max_us: Some(max),
        logins: Some(Logins {
            refused_per_sec: refused as f64 / secs,
            timeouts_per_sec: timeouts as f64 / secs,
            right_tried,
            right_admitted,
        }),
        server_cpu: cpu0.zip(cpu1).map(|(a, b)| b - a),
        rss,
        elapsed,
        ..Default::default()
    })
}

/// The flooders and the right-password client, as tasks of a
/// single-threaded runtime on this thread, until `stop` turns true. Ends
/// early with the first task's error.
fn flood(
    addr: SocketAddr,
    clients: u64,
    counts: Arc<Counts>,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..clients {
            tasks.spawn(until_stopped(
                stop.clone(),
                wrong_logins(addr, counts.clone()),
            ));
        }
        tasks.spawn(until_stopped(stop, right_logins(addr, counts)));
        while let Some(r) = tasks.join_next().await {
            r.map_err(io::Error::other)??;
        }
        Ok(())
    })
}

async fn until_stopped(
    mut stop: watch::Receiver<bool>,
    task: impl std::future::Future<Output = io::Result<()>>,
) -> io::Result<()> {
    tokio::select! {
        r = task => r,
        _ = stop.wait_for(|s| *s) => Ok(()),
    }
}

/// One flooder: wrong passwords, each as soon as the last was answered.
async fn wrong_logins(addr: SocketAddr, counts: Arc<Counts>) -> io::Result<()> {
    let mut first = true;
    loop {
        let answer = login(addr, WRONG_LOGIN, || {
            if std::mem::take(&mut first) {
                counts.started.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await?;
        match answer {
            Answer::Admitted => {
                return Err(io::Error::other(
                    "the server let a wrong password in (does it run with the users of `tribune-bench auth-flood-config`?)",
                ))
            }
            Answer::Timeout => {
                counts.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            Answer::Violation | Answer::Closed => {}
        }
        counts.refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// The flooded user itself: the right password, one login after another,
/// from another address than the flood's when the server is on loopback.
async fn right_logins(addr: SocketAddr, counts: Arc<Counts>) -> io::Result<()> {
    let from = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_loopback() => {
            let other = if ip.octets()[3] == 2 { 3 } else { 2 };
            Some(SocketAddr::from(([127, 0, 0, other], 0)))
        }
        _ => None,
    };
    loop {
        match login_from(from, addr, RIGHT_LOGIN, || {}).await? {
            Answer::Admitted => {
                counts.right_admitted.fetch_add(1, Ordering::Relaxed);
            }
            Answer::Violation => {
                return Err(io::Error::other(
                    "the right password was refused as a violation: wrong config?",
                ))
            }
            Answer::Timeout | Answer::Closed => {}
        }
        counts.right_tried.fetch_add(1, Ordering::Relaxed);
    }
}

/// One login: connect, read INFO, send `connect` (a CONNECT and a PING;
/// `sent` is called then), and read until the server answers or closes.
/// Any other `-ERR` is an error: the row would measure something else.
async fn login(addr: SocketAddr, connect: &[u8], sent: impl FnOnce()) -> io::Result<Answer> {
    login_from(None, addr, connect, sent).await
}

/// [`login`] from the local address `from`, if given.
async fn login_from(
    from: Option<SocketAddr>,
    addr: SocketAddr,
    connect: &[u8],
    sent: impl FnOnce(),
) -> io::Result<Answer> {
    let connected = match from {
        None => TcpStream::connect(addr).await,
        Some(local) => {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(local)?;
            socket.connect(addr).await
        }
    };
    let mut s = connected.map_err(|e| io::Error::other(format!("login connect to {addr}: {e}")))?;
    let mut seen = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    while !seen.ends_with(b"\r\n") {
        let k = s.read(&mut buf).await?;
        if k == 0 {
            return Err(io::Error::other("the server closed before its INFO"));
        }
        seen.extend_from_slice(&buf[..k]);
    }
    s.write_all(connect).await?;
    sent();
    seen.clear();
    loop {
        let k = match s.read(&mut buf).await {
            Ok(k) => k,
            // The server closed with our PING unread: the answer may be lost.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(e),
        };
        seen.extend_from_slice(&buf[..k]);
        if let Some(answer) = answer_in(&seen)? {
            return Ok(answer);
        }
        if k == 0 {
            return Ok(Answer::Closed);
        }
    }
}

/// The answer among the complete lines of `seen`, if there is one yet.
/// (nats-server may send its own `PING` first; that is no answer.)
fn answer_in(seen: &[u8]) -> io::Result<Option<Answer>> {
    for line in seen.split_inclusive(|&b| b == b'\n') {
        match line {
            b"PONG\r\n" => return Ok(Some(Answer::Admitted)),
            b"-ERR 'Authorization Violation'\r\n" => return Ok(Some(Answer::Violation)),
            b"-ERR 'Authentication Timeout'\r\n" => return Ok(Some(Answer::Timeout)),
            l if l.starts_with(b"-ERR") && l.ends_with(b"\n") => {
                return Err(io::Error::other(format!(
                    "a login answered with {:?}",
                    String::from_utf8_lossy(l).trim()
                )))
            }
            _ => {}
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_both_users_and_a_bcrypt_hash() {
        let conf = server_config(4).unwrap();
        assert!(conf.contains("user: \"bench\""), "{conf}");
        assert!(conf.contains("password: \"$2b$04$"), "{conf}");
        assert!(!conf.contains(VICTIM_PASSWORD), "{conf}");
        let right = std::str::from_utf8(RIGHT_LOGIN).unwrap();
        assert!(right.contains(&format!("\"pass\":\"{VICTIM_PASSWORD}\"")));
    }

    #[test]
    fn answers() {
        assert_eq!(
            answer_in(b"PING\r\nPONG\r\n").unwrap(),
            Some(Answer::Admitted)
        );
        assert_eq!(answer_in(b"PING\r\n").unwrap(), None);
        assert_eq!(
            answer_in(b"-ERR 'Authorization Violation'\r\n").unwrap(),
            Some(Answer::Violation)
        );
        assert_eq!(
            answer_in(b"-ERR 'Authentication Timeout'\r\n").unwrap(),
            Some(Answer::Timeout)
        );
        // Incomplete: wait for the rest.
        assert_eq!(answer_in(b"-ERR 'Authoriz").unwrap(), None);
        assert!(answer_in(b"-ERR 'Maximum Connections Exceeded'\r\n").is_err());
    }
}
