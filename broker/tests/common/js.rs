//! JetStream test support: which servers the JetStream suites run against
//! (the flavor switch), starting a server with JetStream on a store
//! directory that outlives the process (for restart and crash tests), and a
//! raw `$JS.API` request helper that returns the JSON as the server wrote it.
//!
//! # The flavor switch
//!
//! [`flavors`] is the only place that decides whether tribune-broker takes
//! part. nats-server always does: it validates the tests themselves.
//! tribune-broker runs when `JS_FLAVORS` names it (`JS_FLAVORS=nats-server,tribune`),
//! or, with `JS_FLAVORS` unset, when a probe shows that it answers
//! `$JS.API.INFO`. `JS_FLAVORS=nats-server` runs the reference alone.
//! The Python suite (`tests/python/test_jetstream_py.py`) reads the same
//! variable with the same rules.
//!
//! `JS_TRACE=1` starts every server with `-DV` and keeps its directory, so
//! the protocol trace of a test can be read afterwards (nats-server logs
//! every frame, payloads included).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{nats_server_bin, Server, ServerSpec};

/// One server implementation the JetStream suites run against.
#[derive(Clone, Debug)]
pub struct Flavor {
    /// "nats-server" or "tribune".
    pub label: &'static str,
    pub bin: PathBuf,
}

/// The servers to run the JetStream tests against; see the module docs.
/// `tribune_built` is `env!("CARGO_BIN_EXE_tribune-broker")` of the caller.
pub fn flavors(tribune_built: &str) -> Vec<Flavor> {
    let mut out = vec![Flavor {
        label: "nats-server",
        bin: nats_server_bin(),
    }];
    let tribune = super::tribune_bin(tribune_built);
    let wanted = match std::env::var("JS_FLAVORS") {
        Ok(list) => list.split(',').any(|f| f.trim().starts_with("tribune")),
        Err(_) => *PROBE.get_or_init(|| probe_jetstream(&tribune)),
    };
    if wanted {
        out.push(Flavor {
            label: "tribune",
            bin: tribune,
        });
    }
    out
}

static PROBE: OnceLock<bool> = OnceLock::new();

/// Does `bin`, started with JetStream, answer `$JS.API.INFO` with an
/// account info response? Plain blocking TCP, so it works inside or outside
/// an async runtime.
pub fn probe_jetstream(bin: &Path) -> bool {
    let Ok(server) = js_spec(bin).start() else {
        return false;
    };
    let answer = (|| -> std::io::Result<String> {
        let s = TcpStream::connect(("127.0.0.1", server.port))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut w = s.try_clone()?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line)?;
        w.write_all(
            b"CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\n\
              SUB _PROBE.reply 1\r\nPUB $JS.API.INFO _PROBE.reply 0\r\n\r\nPING\r\n",
        )?;
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok(String::new());
            }
            if line.starts_with("MSG ") || line.starts_with("HMSG ") {
                let size: usize = line
                    .split_whitespace()
                    .last()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; size + 2];
                r.read_exact(&mut body)?;
                return Ok(String::from_utf8_lossy(&body).into_owned());
            }
        }
    })();
    matches!(answer, Ok(body) if body.contains("io.nats.jetstream.api.v1.account_info_response")
        && !body.contains("\"error\""))
}

fn trace() -> bool {
    std::env::var("JS_TRACE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `bin` with JetStream on `{dir}/js` (the server's private directory).
pub fn js_spec(bin: &Path) -> ServerSpec {
    let mut spec = ServerSpec::new(bin).args(["-js", "-sd", "{dir}/js"]);
    if trace() {
        spec = spec.args(["-DV"]);
    }
    spec
}

/// Start `bin` with JetStream on a fresh store. Panics with the log on failure.
pub fn start_js(bin: &Path) -> Server {
    let server = js_spec(bin).start().unwrap_or_else(|e| panic!("{e}"));
    keep_if_tracing(server)
}

fn keep_if_tracing(server: Server) -> Server {
    if trace() {
        eprintln!("{}: log at {}", server.label, server.log_path.display());
        // SAFETY of intent: the Drop impl keeps the directory when this is set.
        std::env::set_var("TRIBUNE_KEEP_LOGS", "1");
    }
    server
}

/// A JetStream store that outlives server processes: restart (or kill -9
/// and restart) the same binary on the same store directory.
pub struct Durable {
    pub bin: PathBuf,
    /// Owns the store directory; removed when the test ends.
    store: tempfile::TempDir,
    /// Configuration text; `{store}` is replaced by the store path.
    config: Option<String>,
}

impl Durable {
    pub fn new(bin: &Path) -> Durable {
        Durable {
            bin: bin.to_path_buf(),
            store: tempfile::Builder::new()
                .prefix("tribune-js-store-")
                .tempdir()
                .expect("store tempdir"),
            config: None,
        }
    }

    /// Use a configuration file instead of `-js -sd`; `{store}` in `text`
    /// becomes the store directory.
    pub fn with_config(mut self, text: &str) -> Durable {
        self.config = Some(text.to_string());
        self
    }

    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// Start a new process on the store. Dropping the returned [`Server`]
    /// kills it with SIGKILL (std's `Child::kill`), which is the crash.
    pub fn start(&self) -> Server {
        let store = self.store.path().to_string_lossy().into_owned();
        let mut spec = ServerSpec::new(&self.bin);
        match &self.config {
            Some(text) => spec = spec.config(text.replace("{store}", &store)),
            None => spec = spec.args(["-js", "-sd", &store]),
        }
        if trace() {
            spec = spec.args(["-DV"]);
        }
        keep_if_tracing(spec.start().unwrap_or_else(|e| panic!("{e}")))
    }
}

/// Generous guard for every wait on the network; never a speed assertion.
pub const WAIT: Duration = Duration::from_secs(15);

/// Send `body` to `subject` as a request and parse the JSON reply.
pub async fn api(client: &async_nats::Client, subject: &str, body: &str) -> Value {
    let reply = tokio::time::timeout(
        WAIT,
        client.request(subject.to_string(), body.to_string().into()),
    )
    .await
    .unwrap_or_else(|_| panic!("no reply to {subject} in {WAIT:?}"))
    .unwrap_or_else(|e| panic!("request {subject}: {e}"));
    serde_json::from_slice(&reply.payload).unwrap_or_else(|e| {
        panic!(
            "reply to {subject} is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&reply.payload)
        )
    })
}

/// The `error` object of an API response, or a panic saying there was none.
pub fn api_error(v: &Value) -> (u64, u64, String) {
    let e = v
        .get("error")
        .unwrap_or_else(|| panic!("expected an error response, got {v}"));
    (
        e["code"].as_u64().unwrap_or(0),
        e["err_code"].as_u64().unwrap_or(0),
        e["description"].as_str().unwrap_or("").to_string(),
    )
}

/// Every message `stream` holds, in sequence order, as `STREAM.MSG.GET`
/// gives it (`subject`, `seq`, base64 `data` and `hdrs`, `time`).
pub async fn stored_messages(client: &async_nats::Client, stream: &str) -> Vec<Value> {
    let info = api(client, &format!("$JS.API.STREAM.INFO.{stream}"), "").await;
    let (first, last) = (
        info["state"]["first_seq"].as_u64().unwrap_or(0),
        info["state"]["last_seq"].as_u64().unwrap_or(0),
    );
    let mut out = Vec::new();
    for seq in first.max(1)..=last {
        let v = api(
            client,
            &format!("$JS.API.STREAM.MSG.GET.{stream}"),
            &serde_json::json!({ "seq": seq }).to_string(),
        )
        .await;
        if !v["message"].is_null() {
            out.push(v["message"].clone());
        }
    }
    out
}

/// A base64 field of a stored message (`data`, `hdrs`), as text.
pub fn b64_text(m: &Value, key: &str) -> String {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(m[key].as_str().unwrap_or(""))
        .unwrap_or_default();
    String::from_utf8_lossy(&raw).into_owned()
}

/// Poll the async condition `f` until it holds or [`WAIT`] passes.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Run `body` once per flavor (nats-server first), labelled in the output.
pub async fn for_each_flavor<F, Fut>(tribune_built: &str, body: F)
where
    F: Fn(Flavor) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for f in flavors(tribune_built) {
        eprintln!("=== {} ({})", f.label, f.bin.display());
        body(f).await;
    }
}

/// Run `body` on every flavor (nats-server first) and require the same
/// transcript (lines) from each.
pub async fn same_on_every_flavor<F, Fut>(tribune_built: &str, body: F)
where
    F: Fn(Flavor) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let mut seen: Vec<(&'static str, Vec<String>)> = Vec::new();
    for f in flavors(tribune_built) {
        eprintln!("=== {}", f.label);
        let label = f.label;
        let t = body(f).await;
        for l in &t {
            eprintln!("  {l}");
        }
        seen.push((label, t));
    }
    for (label, t) in &seen[1..] {
        let (ref_label, reference) = &seen[0];
        for (i, (a, b)) in reference.iter().zip(t).enumerate() {
            assert_eq!(a, b, "line {i}: {ref_label} vs {label}");
        }
        assert_eq!(reference.len(), t.len(), "{ref_label} vs {label}");
    }
}

/// A server with JetStream and a connected client, for one test body.
/// When the test fails, the end of the server's log is printed.
pub struct Js {
    pub label: &'static str,
    pub server: Server,
    pub nc: async_nats::Client,
    pub js: async_nats::jetstream::Context,
}

impl Js {
    pub async fn start(f: &Flavor) -> Js {
        let server = start_js(&f.bin);
        Js::on(f.label, server).await
    }

    /// Connect to an already running server.
    pub async fn on(label: &'static str, server: Server) -> Js {
        let nc = connect(&server).await;
        let js = async_nats::jetstream::new(nc.clone());
        Js {
            label,
            server,
            nc,
            js,
        }
    }

    pub async fn api(&self, subject: &str, body: &str) -> Value {
        api(&self.nc, subject, body).await
    }
}

impl Drop for Js {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("[{}] {}", self.label, self.server.log_excerpt());
        }
    }
}

/// Connect async-nats to `server`, failing loudly with its log.
pub async fn connect(server: &Server) -> async_nats::Client {
    tokio::time::timeout(WAIT, async_nats::connect(server.client_url()))
        .await
        .unwrap_or_else(|_| panic!("connect timed out\n{}", server.log_excerpt()))
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", server.log_excerpt()))
}
