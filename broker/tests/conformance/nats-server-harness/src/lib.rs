//! Starts a server for one async-nats test and stops it when the test ends.
//!
//! async-nats' published tests call these functions; the server binary is
//! `$NATS_SERVER_BIN` (default `nats-server` on `PATH`), so the same tests
//! run against nats-server and tribune-broker with the same flags. Only
//! command-line flags and the configuration files the tests ship are used,
//! which is what "drop-in" promises.
//!
//! Every server gets its own directory (log, pid file, JetStream store) and
//! an ephemeral client port, so tests can run in parallel. The port is read
//! from the server's own log line (`Listening for client connections on`),
//! as an operator's tooling would.

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to start listening: generous, because CI
/// machines run many tests at once.
const START_DEADLINE: Duration = Duration::from_secs(30);

fn binary() -> OsString {
    std::env::var_os("NATS_SERVER_BIN").unwrap_or_else(|| "nats-server".into())
}

/// A fresh directory for one server's files.
fn server_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "conformance-{}-{n}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    fs::create_dir_all(&dir).expect("create the server's directory");
    dir
}

/// A port nothing listens on right now (for cluster routes, which must be
/// known before the servers start).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// One running server; killed and its directory removed on drop.
pub struct Server {
    child: Child,
    dir: PathBuf,
    /// Flags other than `-p`, kept for [`Server::restart`].
    args: Vec<OsString>,
    /// The client port once known; a restart listens on it again.
    port: Option<u16>,
}

impl Server {
    fn start(cfg: &str, port: Option<&str>, extra: &[String]) -> Server {
        let dir = server_dir();
        let mut args: Vec<OsString> = vec![
            "--store_dir".into(),
            dir.join("store").into(),
            "-l".into(),
            dir.join("server.log").into(),
            "-P".into(),
            dir.join("server.pid").into(),
        ];
        if !cfg.is_empty() {
            args.push("-c".into());
            args.push(cfg.into());
        }
        args.extend(extra.iter().map(OsString::from));
        let port_arg = port.unwrap_or("-1").to_string();
        let child = spawn(&args, &port_arg, &dir);
        Server {
            child,
            dir,
            args,
            port: port.and_then(|p| p.parse().ok()),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The client listener's address, from the server's log.
    fn client_addr(&self) -> String {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(addr) = listening_on(&self.log_path()) {
                return addr.replace("0.0.0.0", "127.0.0.1");
            }
            assert!(
                Instant::now() < deadline,
                "the server did not log its client address; log: {}",
                fs::read_to_string(self.log_path()).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The client port and whether TLS is required, from the server's
    /// INFO (or from its log when it speaks TLS first and sends no INFO).
    fn info(&self) -> (u16, bool) {
        let addr = self.client_addr();
        let from_log = || {
            let port = addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("a port in the logged address");
            (port, false)
        };
        let Ok(stream) = TcpStream::connect(&addr) else {
            return from_log();
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut line = String::new();
        if BufReader::new(stream).read_line(&mut line).is_err() || !line.starts_with("INFO ") {
            return from_log();
        }
        let info: serde_json::Value = serde_json::from_str(line[5..].trim()).expect("INFO JSON");
        let port = info["port"].as_u64().and_then(|p| u16::try_from(p).ok());
        let tls = info["tls_required"].as_bool().unwrap_or(false);
        (port.unwrap_or_else(|| from_log().0), tls)
    }

    /// `scheme://{auth}host:port`. A TLS server is named `localhost`, the
    /// name the suite's certificates carry; a plain one by its address.
    fn url(&self, auth: &str) -> String {
        let (port, tls) = self.info();
        if tls {
            format!("tls://{auth}localhost:{port}")
        } else {
            format!("nats://{auth}127.0.0.1:{port}")
        }
    }

    pub fn client_url(&self) -> String {
        self.url("")
    }

    pub fn client_port(&self) -> u16 {
        self.info().0
    }

    pub fn client_url_with(&self, user: &str, pass: &str) -> String {
        self.url(&format!("{user}:{pass}@"))
    }

    pub fn client_url_with_token(&self, token: &str) -> String {
        self.url(&format!("{token}@"))
    }

    pub fn client_pid(&self) -> usize {
        self.child.id() as usize
    }

    /// Stops the server and starts it again on the same port with the same
    /// store, as a crash and restart would.
    pub fn restart(&mut self) {
        let port = match self.port {
            Some(p) => p,
            None => self.client_port(),
        };
        self.port = Some(port);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(self.log_path());
        self.child = spawn(&self.args, &port.to_string(), &self.dir);
        self.client_addr();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn spawn(args: &[OsString], port: &str, dir: &Path) -> Child {
    let stderr = fs::File::create(dir.join("stderr.log")).expect("create stderr log");
    Command::new(binary())
        .args(args)
        .arg("-p")
        .arg(port)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start the server ($NATS_SERVER_BIN or nats-server on PATH)")
}

/// `host:port` from the last `Listening for client connections on` line.
fn listening_on(log: &Path) -> Option<String> {
    let text = fs::read_to_string(log).ok()?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("Listening for client connections on"))?;
    line.rsplit(' ').next().map(str::to_string)
}

/// Three servers routed to each other, each with the given configuration.
pub struct Cluster {
    pub servers: Vec<Server>,
}

impl Cluster {
    pub fn client_url(&self) -> String {
        self.servers[0].client_url()
    }
}

pub fn run_cluster(cfg: &str) -> Cluster {
    let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let urls: Vec<String> = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    let servers = routes
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let others: Vec<&str> = urls
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, u)| u.as_str())
                .collect();
            Server::start(
                cfg,
                None,
                &[
                    "-n".into(),
                    format!("n{}", i + 1),
                    "--cluster_name".into(),
                    "conformance".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{port}"),
                    "--routes".into(),
                    others.join(","),
                ],
            )
        })
        .collect::<Vec<_>>();
    for s in &servers {
        s.client_addr();
    }
    Cluster { servers }
}

pub fn run_server(cfg: &str) -> Server {
    run_server_with_port(cfg, None)
}

pub fn run_server_with_port(cfg: &str, port: Option<&str>) -> Server {
    let s = Server::start(cfg, port, &[]);
    s.client_addr();
    s
}

pub fn run_basic_server() -> Server {
    run_server("")
}

/// Puts the server into lame duck mode the way an operator does.
pub fn set_lame_duck_mode(s: &Server) {
    let status = Command::new(binary())
        .arg("--signal")
        .arg(format!("ldm={}", s.client_pid()))
        .status()
        .expect("run --signal ldm");
    assert!(status.success(), "--signal ldm failed: {status}");
}
