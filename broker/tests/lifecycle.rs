//! The tribune-broker binary as an operator meets it: log lines, the pid
//! and ports files, `--signal`, SIGHUP reload, lame-duck mode, limits
//! enforced per connection (max connections, auth timeout, stale
//! connections) and configuration errors.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::ServerSpec;

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");
const DEADLINE: Duration = Duration::from_secs(15);

fn tribune() -> ServerSpec {
    ServerSpec::new(common::tribune_bin(BIN))
}

/// Poll `f` until it is true or the deadline passes.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A raw client: read the INFO line, optionally send CONNECT.
fn raw(port: u16) -> (BufReader<TcpStream>, TcpStream, String) {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut info = String::new();
    r.read_line(&mut info).unwrap();
    (r, w, info)
}

fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l
}

/// Read until EOF (the server closed), returning what arrived.
fn read_to_close(r: &mut BufReader<TcpStream>) -> String {
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    String::from_utf8_lossy(&rest).into_owned()
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

#[test]
fn startup_lines_ports_and_pid_files() {
    let s = tribune()
        .args(["-m", "-1", "-P", "{dir}/server.pid"])
        .start()
        .unwrap();
    let log = s.log();
    let mport = s
        .addr_of("monitoring")
        .expect("monitoring port in ports file");
    for want in [
        format!(
            "[INF] Listening for client connections on 127.0.0.1:{}",
            s.port
        ),
        format!("[INF] Starting http monitor on {mport}"),
        "[INF] Server is ready".to_string(),
    ] {
        assert!(log.contains(&want), "missing {want:?} in\n{log}");
    }
    // nats-server's line shape: [pid] date time [LVL] message.
    let first = log.lines().next().unwrap();
    assert!(first.starts_with(&format!("[{}] ", s.pid())), "{first}");
    let pid = std::fs::read_to_string(s.dir().join("server.pid")).unwrap();
    assert_eq!(pid, s.pid().to_string());
    let ports = std::fs::read_dir(s.dir().join("ports"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    assert_eq!(
        ports.to_string_lossy(),
        format!("tribune-broker_{}.ports", s.pid())
    );
}

#[test]
fn sigterm_stops_cleanly_and_removes_files() {
    let mut s = tribune().args(["-P", "{dir}/server.pid"]).start().unwrap();
    let (mut r, mut w, _) = raw(s.port);
    w.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
        .unwrap();
    assert_eq!(read_line(&mut r), "PONG\r\n");
    signal(s.pid(), "TERM");
    eventually("server exits", || s.has_exited());
    assert_eq!(
        read_to_close(&mut r),
        "",
        "client closed without further bytes"
    );
    assert!(!s.dir().join("server.pid").exists(), "pid file removed");
    let log = s.log();
    assert!(log.contains("Server Exiting.."), "{log}");
}

#[test]
fn signal_flag_reaches_the_server_by_pid_file() {
    let mut s = tribune().args(["-P", "{dir}/server.pid"]).start().unwrap();
    let pid_file = s.dir().join("server.pid");
    let out = Command::new(BIN)
        .arg(format!("--signal=quit={}", pid_file.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("server exits on --signal quit", || s.has_exited());
    let bad = Command::new(BIN)
        .args(["--signal", "bogus=1"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown signal"));
}

#[test]
fn lame_duck_mode_announces_and_drains() {
    let conf = "lame_duck_duration: \"30s\"\nlame_duck_grace_period: \"1s\"\n";
    let mut s = tribune().config(conf).start().unwrap();
    let (mut r, mut w, _) = raw(s.port);
    w.write_all(b"CONNECT {\"verbose\":false,\"protocol\":1}\r\nPING\r\n")
        .unwrap();
    assert_eq!(read_line(&mut r), "PONG\r\n");
    // Protocol-1 clients get an INFO naming their account after the first PONG.
    assert!(read_line(&mut r).contains("\"connect_info\":true"));
    signal(s.pid(), "USR2");
    let ldm = read_line(&mut r);
    assert!(
        ldm.starts_with("INFO ") && ldm.contains("\"ldm\":true"),
        "{ldm}"
    );
    // New connections are refused while the old one drains.
    eventually("listener closed", || {
        TcpStream::connect(("127.0.0.1", s.port)).is_err()
    });
    assert_eq!(read_to_close(&mut r), "");
    eventually("server exits after lame duck", || s.has_exited());
    assert!(s
        .log()
        .contains("Entering lame duck mode, stop accepting new clients"));
}

#[test]
fn sighup_reloads_users_and_log_level() {
    let s = tribune()
        .config("authorization { user: a, password: one }\n")
        .start()
        .unwrap();
    let conf = s.dir().join("server.conf");
    let try_auth = |pass: &str| {
        let (mut r, mut w, _) = raw(s.port);
        w.write_all(
            format!("CONNECT {{\"verbose\":false,\"user\":\"a\",\"pass\":\"{pass}\"}}\r\nPING\r\n")
                .as_bytes(),
        )
        .unwrap();
        read_line(&mut r)
    };
    assert_eq!(try_auth("one"), "PONG\r\n");
    std::fs::write(
        &conf,
        "authorization { user: a, password: two }\ndebug: true\n",
    )
    .unwrap();
    signal(s.pid(), "HUP");
    eventually("reload logged", || {
        s.log().contains("Reloaded server configuration")
    });
    assert_eq!(try_auth("one"), "-ERR 'Authorization Violation'\r\n");
    assert_eq!(try_auth("two"), "PONG\r\n");
    eventually("debug lines after reload", || s.log().contains("[DBG]"));
    // A broken file is reported and the running config is kept.
    std::fs::write(&conf, "authorization { user: a, password: two\n").unwrap();
    signal(s.pid(), "HUP");
    eventually("reload failure logged", || {
        s.log().contains("Failed to reload server configuration")
    });
    assert_eq!(try_auth("two"), "PONG\r\n");
}

#[test]
fn max_connections_enforced() {
    let s = tribune().config("max_connections: 1\n").start().unwrap();
    let (mut r1, mut w1, _) = raw(s.port);
    w1.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
        .unwrap();
    assert_eq!(read_line(&mut r1), "PONG\r\n");
    let (mut r2, _w2, info) = raw(s.port);
    assert!(info.starts_with("INFO "));
    assert_eq!(
        read_to_close(&mut r2),
        "-ERR 'maximum connections exceeded'\r\n"
    );
}

#[test]
fn auth_timeout_and_stale_connection() {
    let s = tribune()
        .config("authorization { token: t, timeout: 0.5 }\nping_interval: \"1s\"\nping_max: 1\n")
        .start()
        .unwrap();
    // Never authenticates.
    let (mut r, _w, info) = raw(s.port);
    assert!(info.contains("\"auth_required\":true"), "{info}");
    assert_eq!(read_to_close(&mut r), "-ERR 'Authentication Timeout'\r\n");
    // Authenticates but never answers the server's PINGs.
    let (mut r, mut w, _) = raw(s.port);
    w.write_all(b"CONNECT {\"verbose\":false,\"auth_token\":\"t\"}\r\n")
        .unwrap();
    let rest = read_to_close(&mut r);
    assert!(rest.starts_with("PING\r\n"), "{rest:?}");
    assert!(rest.ends_with("-ERR 'Stale Connection'\r\n"), "{rest:?}");
}

#[test]
fn bad_config_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, "port: 4222\nbogus_option: 1\n").unwrap();
    let out = Command::new(BIN).arg("-c").arg(&conf).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:2:1: unknown field \"bogus_option\"",
            conf.display()
        )),
        "{err}"
    );
    // -t checks a good file and exits.
    std::fs::write(&conf, "port: 4222\n").unwrap();
    let out = Command::new(BIN)
        .arg("-c")
        .arg(&conf)
        .arg("-t")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn version_and_help() {
    let out = Command::new(BIN).arg("-v").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tribune-broker: v"));
    let out = Command::new(BIN).arg("-h").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--port",
        "--http_port",
        "--ports_file_dir",
        "--signal",
        "--cluster_name",
    ] {
        assert!(help.contains(flag), "help lists {flag}");
    }
}

/// Clients in the connection burst: `BURST_CONNS`, else 3,000.
fn burst_size() -> usize {
    std::env::var("BURST_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

/// Raise this process's soft limit on open files as far as the burst needs
/// (servers started afterwards inherit it); returns how many connections
/// fit.
fn raise_open_files(want: usize) -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let need = want as u64 + 512;
    if soft < need {
        setrlimit(Resource::RLIMIT_NOFILE, need.min(hard), hard).expect("setrlimit");
    }
    let fit = (need.min(hard) - 512) as usize;
    if fit < want {
        eprintln!("the hard limit on open files ({hard}) allows a burst of {fit}, not {want}");
    }
    fit
}

/// `n` clients connect at once (non-blocking connects, one task each), and
/// each sends CONNECT, SUB and PING without waiting for INFO. Returns the
/// connections once every one has its PONG.
async fn connect_burst(port: u16, n: usize) -> Vec<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        tasks.spawn(async move {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap_or_else(|e| panic!("connect {i}: {e}"));
            let hello = format!("CONNECT {{}}\r\nSUB burst.{i} 1\r\nPING\r\n");
            s.write_all(hello.as_bytes()).await.expect("write");
            let mut seen = Vec::new();
            let mut buf = [0u8; 2048];
            while !seen.windows(6).any(|w| w == b"PONG\r\n") {
                let k = s.read(&mut buf).await.expect("read");
                assert!(
                    k > 0,
                    "connection {i} closed before its PONG: {:?}",
                    String::from_utf8_lossy(&seen)
                );
                seen.extend_from_slice(&buf[..k]);
            }
            s
        });
    }
    let mut conns = Vec::with_capacity(n);
    // A guard against hanging only: clients whose SYN was dropped retry for
    // a minute or more before giving up.
    let all = async {
        while let Some(c) = tasks.join_next().await {
            conns.push(c.expect("burst client"));
        }
    };
    tokio::time::timeout(Duration::from_secs(180), all)
        .await
        .expect("every client of the burst answered");
    conns
}

/// A burst of thousands of clients connecting at once is served in full by
/// both servers: every client gets its PONG and `/varz` counts them all.
/// The time it takes is printed, never asserted (see BENCHMARKS.md's
/// connect-burst row for the comparison).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_burst_is_served_in_full() {
    let n = raise_open_files(burst_size());
    for spec in [ServerSpec::new(common::nats_server_bin()), tribune()] {
        let s = spec.args(["-m", "-1"]).start().unwrap();
        let http = s.addr_of("monitoring").expect("monitoring port");
        let http: std::net::SocketAddr = format!(
            "127.0.0.1:{}",
            http.rsplit(':').next().unwrap().trim_end_matches('/')
        )
        .parse()
        .unwrap();
        let started = Instant::now();
        let conns = connect_burst(s.port, n).await;
        let took = started.elapsed();
        let end = Instant::now() + DEADLINE;
        loop {
            let v = common::cluster::get_json(http, "/varz").await.unwrap();
            if v["connections"].as_u64() == Some(n as u64) {
                break;
            }
            assert!(
                Instant::now() < end,
                "{}: /varz connections {} of {n}",
                s.label,
                v["connections"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "{}: a burst of {n} connections all answered in {took:?}",
            s.label
        );
        drop(conns);
    }
}
