//! Memory and resource bounds under abuse, on nats-server and tribune-broker
//! in the same run: many idle connections held open, one client with a
//! great many subscriptions, and a publisher at full speed to a subject with
//! a subscriber that stopped reading.
//!
//! Each scenario checks that the node keeps serving others (a fresh client
//! still gets its own message back) and that the limits the README
//! documents hold: `max_connections` refuses the one too many,
//! `max_subscriptions` refuses the subscription too many, `max_pending`
//! cuts the stalled subscriber and bounds what the node buffers for it.
//! Memory is read from `/proc/<pid>/status` (`VmRSS`, and `VmHWM` for the
//! peak); Tribune's figures must stay under the per-connection and
//! per-subscription bounds in the README ("Limits under abuse"). Both
//! servers' figures are printed (`abuse: ...` lines) for RELIABILITY.md.
//!
//! Scale comes from the environment: `ABUSE_CONNS` (default 2,000) and
//! `ABUSE_SUBS` (default 100,000); `make abuse` runs the 100,000
//! connections and 1,000,000 subscriptions. No assertion is about time.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use common::{both_servers, Server, ServerSpec};

/// Bytes of resident memory a held, idle client connection may cost
/// Tribune (README "Limits under abuse").
const MAX_BYTES_PER_CONNECTION: u64 = 48 * 1024;
/// Bytes a subscription on a subject of its own may cost Tribune.
const MAX_BYTES_PER_SUBSCRIPTION: u64 = 1024;
/// What the node may hold beyond `max_pending` while a subscriber is
/// stalled: the publisher's read buffer, the fast subscriber's pending
/// bytes and the allocator's slack.
const FLOOD_SLACK: u64 = 64 * 1024 * 1024;
const MAX_PENDING: u64 = 8 * 1024 * 1024;
/// A guard against a hung read, not a speed requirement.
const IO_GUARD: Duration = Duration::from_secs(60);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// `(VmRSS, VmHWM)` of `pid`, in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Enough open files for `n` connections: this process holds one end of
/// each, the server (which inherits the limit) the other. Raising the hard
/// limit needs CAP_SYS_RESOURCE; without it, as many as the hard limit
/// allows, said on stderr and in the figures.
fn raise_nofile(n: usize) -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    const SPARE: u64 = 512;
    let want = n as u64 + SPARE;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    if soft >= want || setrlimit(Resource::RLIMIT_NOFILE, want, want.max(hard)).is_ok() {
        return n;
    }
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    let fit = (hard.saturating_sub(SPARE) as usize).clamp(100, n);
    eprintln!(
        "abuse: the open-files hard limit is {hard} and cannot be raised here; {fit} of the {n} connections asked for"
    );
    fit
}

/// A raw client: its INFO read, CONNECT sent, and the PONG that shows the
/// server took it. Source addresses cycle through 127.0.0.1-8 so that more
/// connections fit than one address has ephemeral ports.
fn raw_client(port: u16, i: usize) -> std::io::Result<TcpStream> {
    let src = Ipv4Addr::new(127, 0, 0, 1 + (i % 8) as u8);
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.bind(&SocketAddr::from((src, 0)).into())?;
    sock.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(IO_GUARD))?;
    s.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n")?;
    expect_line(&mut s, "PONG")?;
    Ok(s)
}

/// Read lines until one starting with `want`; an `-ERR` first is an error.
fn expect_line(s: &mut TcpStream, want: &str) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        line.clear();
        loop {
            if s.read(&mut byte)? == 0 {
                return Err(std::io::Error::other(format!("closed before {want}")));
            }
            line.push(byte[0]);
            if line.ends_with(b"\r\n") {
                break;
            }
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if text.starts_with(want) {
            return Ok(text);
        }
        if text.starts_with("-ERR") {
            return Err(std::io::Error::other(text));
        }
    }
}

/// A fresh client logs in, subscribes and gets its own message back: the
/// node still serves others. The connection, if it was served.
fn serve_probe(server: &Server) -> Option<TcpStream> {
    let mut s = raw_client(server.port, 0).ok()?;
    s.write_all(b"SUB probe.me 1\r\nPUB probe.me 2\r\nok\r\nPING\r\n")
        .ok()?;
    expect_line(&mut s, "MSG probe.me 1 2").ok()?;
    Some(s)
}

fn served(server: &Server) -> bool {
    serve_probe(server).is_some()
}

fn start(bin: &std::path::Path, config: &str) -> Server {
    ServerSpec::new(bin)
        .config(config)
        .start()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()))
}

#[test]
fn idle_connections_are_held_and_the_one_too_many_is_refused() {
    let n = raise_nofile(env_usize("ABUSE_CONNS", 2_000));
    for (label, bin) in both_servers() {
        // Room for the held ones and the probe; the next one is refused.
        let server = start(&bin, &format!("max_connections: {}\n", n + 1));
        let (base, _) = memory(server.pid());
        let mut held = Vec::with_capacity(n);
        for i in 0..n {
            match raw_client(server.port, i) {
                Ok(s) => held.push(s),
                Err(e) => panic!(
                    "{label}: connection {i} of {n}: {e}\n{}",
                    server.log_excerpt()
                ),
            }
        }
        let (rss, _) = memory(server.pid());
        let per_conn = rss.saturating_sub(base) / n as u64;
        // Kept open: with it, the server is at max_connections.
        let probe = serve_probe(&server);
        assert!(
            probe.is_some(),
            "{label}: a new client was not served with {n} held"
        );
        let mut extra = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        extra.set_read_timeout(Some(IO_GUARD)).ok();
        let refused = expect_line(&mut extra, "-ERR");
        let refused = match refused {
            Ok(line) => line,
            Err(e) => e.to_string(),
        };
        assert!(
            refused.contains("maximum connections exceeded"),
            "{label}: the connection over max_connections got {refused:?}"
        );
        println!(
            "abuse: {label} connections={n} rss_base_mib={:.1} rss_mib={:.1} bytes_per_connection={per_conn}",
            mib(base),
            mib(rss)
        );
        if label == "tribune" {
            assert!(
                per_conn <= MAX_BYTES_PER_CONNECTION,
                "{label}: {per_conn} bytes per idle connection (bound {MAX_BYTES_PER_CONNECTION})"
            );
        }
        drop((held, probe));
    }
}

/// `SUB s.<i> <i>` for `0..n`, written in large batches while the answers
/// are drained, then a PING; the PONG comes once all are in.
fn subscribe_many(s: &mut TcpStream, n: usize) -> std::io::Result<String> {
    let mut reader = s.try_clone()?;
    let drain = std::thread::spawn(move || {
        let mut r = BufReader::new(&mut reader);
        let mut errors = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return errors + "closed",
                Ok(_) if line.starts_with("PONG") => return errors,
                Ok(_) if line.starts_with("-ERR") => errors.push_str(line.trim_end()),
                Ok(_) => {}
            }
        }
    });
    let mut batch = Vec::with_capacity(1 << 20);
    for i in 0..n {
        batch.extend_from_slice(format!("SUB s.{i} {i}\r\n").as_bytes());
        if batch.len() > (1 << 20) - 64 {
            s.write_all(&batch)?;
            batch.clear();
        }
    }
    batch.extend_from_slice(b"PING\r\n");
    s.write_all(&batch)?;
    drain
        .join()
        .map_err(|_| std::io::Error::other("drain thread panicked"))
}

#[test]
fn a_client_with_very_many_subscriptions() {
    let n = env_usize("ABUSE_SUBS", 100_000);
    for (label, bin) in both_servers() {
        let server = start(&bin, "");
        let (base, _) = memory(server.pid());
        let mut s = raw_client(server.port, 0).expect("connect");
        let errors = subscribe_many(&mut s, n).expect("subscribe");
        assert_eq!(errors, "", "{label}: subscribing {n} subjects");
        let (rss, _) = memory(server.pid());
        let per_sub = rss.saturating_sub(base) / n as u64;
        // Delivery to one of them still works, and others are served.
        s.write_all(b"PUB s.7 1\r\nx\r\nPING\r\n").expect("publish");
        expect_line(&mut s, "MSG s.7 7 1").expect("delivery among many subscriptions");
        assert!(served(&server), "{label}: a new client was not served");
        println!(
            "abuse: {label} subscriptions={n} rss_base_mib={:.1} rss_mib={:.1} bytes_per_subscription={per_sub}",
            mib(base),
            mib(rss)
        );
        if label == "tribune" {
            assert!(
                per_sub <= MAX_BYTES_PER_SUBSCRIPTION,
                "{label}: {per_sub} bytes per subscription (bound {MAX_BYTES_PER_SUBSCRIPTION})"
            );
        }
    }
}

#[test]
fn max_subscriptions_refuses_the_one_too_many() {
    let mut outcomes = Vec::new();
    for (label, bin) in both_servers() {
        let server = start(&bin, "max_subscriptions: 1000\n");
        let mut s = raw_client(server.port, 0).expect("connect");
        let errors = subscribe_many(&mut s, 1001).unwrap_or_else(|e| e.to_string());
        // The connection is kept, and its first 1000 subscriptions work.
        s.write_all(b"PUB s.999 1\r\nx\r\nPING\r\n")
            .expect("publish");
        let delivered = expect_line(&mut s, "MSG s.999").is_ok();
        assert!(served(&server), "{label}: a new client was not served");
        outcomes.push((label, errors, delivered));
    }
    let (_, ref_errors, ref_delivered) = &outcomes[0];
    assert!(
        ref_errors.contains("maximum subscriptions exceeded"),
        "{ref_errors}"
    );
    for (label, errors, delivered) in &outcomes[1..] {
        assert_eq!((errors, delivered), (ref_errors, ref_delivered), "{label}");
    }
}

#[test]
fn a_stalled_subscriber_is_cut_at_max_pending_while_a_fast_one_keeps_up() {
    const PAYLOAD: usize = 1024;
    let total = (16 * MAX_PENDING) as usize / PAYLOAD;
    for (label, bin) in both_servers() {
        let server = start(&bin, &format!("max_pending: {MAX_PENDING}\n"));
        let (base, _) = memory(server.pid());
        // The stalled one: a small receive buffer, and it never reads.
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        sock.set_recv_buffer_size(4096).ok();
        sock.connect(&SocketAddr::from(([127, 0, 0, 1], server.port)).into())
            .expect("connect");
        let mut stalled: TcpStream = sock.into();
        // Never read after its PONG: the server must stop buffering for it.
        stalled.set_read_timeout(Some(IO_GUARD)).ok();
        stalled
            .write_all(b"CONNECT {\"verbose\":false}\r\nSUB flood 1\r\nPING\r\n")
            .expect("stalled sub");
        expect_line(&mut stalled, "PONG").expect("stalled subscribed");
        // The fast one reads as fast as it can and counts.
        let mut fast = raw_client(server.port, 1).expect("fast");
        fast.write_all(b"SUB flood 1\r\nPING\r\n")
            .expect("fast sub");
        expect_line(&mut fast, "PONG").expect("fast subscribed");
        let counter = std::thread::spawn(move || {
            let mut r = BufReader::with_capacity(1 << 16, fast);
            let mut got = 0usize;
            let mut line = Vec::new();
            let mut body = vec![0u8; PAYLOAD + 2];
            while got < total {
                line.clear();
                if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line.starts_with(b"MSG ") {
                    if r.read_exact(&mut body).is_err() {
                        break;
                    }
                    got += 1;
                }
            }
            got
        });
        let mut publisher = raw_client(server.port, 2).expect("publisher");
        let mut batch = Vec::new();
        let payload = vec![b'x'; PAYLOAD];
        for _ in 0..256 {
            batch.extend_from_slice(format!("PUB flood {PAYLOAD}\r\n").as_bytes());
            batch.extend_from_slice(&payload);
            batch.extend_from_slice(b"\r\n");
        }
        for _ in 0..total / 256 {
            publisher.write_all(&batch).expect("publish");
        }
        publisher.write_all(b"PING\r\n").expect("ping");
        expect_line(&mut publisher, "PONG").expect("publisher served");
        let fast_got = counter.join().expect("counter");
        let (_, peak) = memory(server.pid());
        assert_eq!(
            fast_got, total,
            "{label}: the fast subscriber missed messages"
        );
        // The stalled one was cut as a slow consumer.
        assert!(
            common::eventually_true(|| server.log().contains("Slow Consumer Detected")),
            "{label}: no slow consumer logged\n{}",
            server.log_excerpt()
        );
        assert!(served(&server), "{label}: a new client was not served");
        let held = peak.saturating_sub(base);
        println!(
            "abuse: {label} flood_mib={:.0} max_pending_mib={:.0} rss_base_mib={:.1} rss_peak_mib={:.1} fast_got={fast_got}/{total}",
            mib((total * PAYLOAD) as u64),
            mib(MAX_PENDING),
            mib(base),
            mib(peak)
        );
        if label == "tribune" {
            assert!(
                held <= MAX_PENDING + FLOOD_SLACK,
                "{label}: the node grew {:.1} MiB while one subscriber was stalled (max_pending {:.0} MiB)",
                mib(held),
                mib(MAX_PENDING)
            );
        }
    }
}
