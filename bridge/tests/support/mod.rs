//! Shared helpers for the bridge's integration tests: real servers as child
//! processes (nats-server or tribune-broker, mosquitto), the bridge binary, and
//! JetStream inspection. Everything listens on loopback, on free ports.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;
use tribune_bridge::payload::normalise::Origin;
use tribune_bridge::payload::{normalise_match, split_payload};
use tribune_bridge::sim::Feed;

pub mod crash;
pub mod pki;
pub mod ws_broker;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on loopback")
}

/// Waits for `cond` with a generous deadline; panics with `what` if it never holds.
pub async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while !cond().await {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn wait_port(port: u16, what: &str) {
    let end = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Which NATS server the tests run against: `BRIDGE_TEST_SERVER=nats|tribune`
/// (default nats), binaries from `NATS_SERVER_BIN` / `TRIBUNE_BROKER_BIN`.
pub fn server_bin() -> PathBuf {
    let kind = std::env::var("BRIDGE_TEST_SERVER").unwrap_or_else(|_| "nats".into());
    let path = match kind.as_str() {
        "nats" => std::env::var_os("NATS_SERVER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join(".venv/bin/nats-server")),
        "tribune" => std::env::var_os("TRIBUNE_BROKER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target/debug/tribune-broker")),
        other => panic!("BRIDGE_TEST_SERVER={other:?}: use nats or tribune"),
    };
    assert!(
        path.exists(),
        "{} not found (BRIDGE_TEST_SERVER={kind}); run `make venv` / `make build`",
        path.display()
    );
    path
}

/// A NATS server child process with JetStream; killed on drop.
pub struct NatsServer {
    pub port: u16,
    pub monitor: u16,
    pub name: String,
    child: Option<Child>,
    args: Vec<String>,
}

impl NatsServer {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A single node, JetStream on, store in `dir`. `config`: optional conf file.
    pub fn start(dir: &Path, config: Option<&Path>) -> NatsServer {
        let (port, monitor) = (free_port(), free_port());
        let mut args = vec![
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-m".into(),
            monitor.to_string(),
            "-js".into(),
            "-sd".into(),
            dir.join("js").display().to_string(),
        ];
        if let Some(c) = config {
            args.push("-c".into());
            args.push(c.display().to_string());
        }
        Self::spawn("n1".into(), port, monitor, args)
    }

    /// `n` clustered nodes with JetStream.
    ///
    /// Ports come from bind-and-release, so a test running alongside can
    /// take one before the node binds it: the node then exits, and its
    /// port may even answer as someone else's server. A node that did not
    /// come up as itself gets the whole cluster started again on fresh
    /// ports (a cluster's nodes name each other's route ports).
    pub fn cluster(dir: &Path, n: usize) -> Vec<NatsServer> {
        for attempt in 1..=3 {
            let mut nodes = Self::cluster_once(dir, n);
            if nodes.iter_mut().all(NatsServer::is_itself) {
                return nodes;
            }
            eprintln!("cluster attempt {attempt}: a node did not come up as itself; new ports");
            drop(nodes);
            for i in 0..n {
                let _ = std::fs::remove_dir_all(dir.join(format!("n{}", i + 1)));
            }
        }
        panic!("no {n}-node cluster came up in 3 attempts");
    }

    /// Still running, and its monitoring port answers with its own name.
    fn is_itself(&mut self) -> bool {
        let running = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        let end = Instant::now() + Duration::from_secs(30);
        while running && Instant::now() < end {
            // The body may come chunked (nats-server's /varz is large): read
            // the one field rather than parse the whole document.
            let own_name = http_get(self.monitor, "/varz")
                .map(|body| json_string_field(&body, "server_name") == Some(self.name.as_str()));
            match own_name {
                Some(true) if TcpStream::connect(("127.0.0.1", self.port)).is_ok() => return true,
                Some(false) => return false,
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        false
    }

    fn cluster_once(dir: &Path, n: usize) -> Vec<NatsServer> {
        let ports: Vec<(u16, u16, u16)> = (0..n)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, _, r)| format!("nats://127.0.0.1:{r}"))
            .collect();
        ports
            .iter()
            .enumerate()
            .map(|(i, (p, m, r))| {
                let name = format!("n{}", i + 1);
                let mut args = vec![
                    "-a".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    p.to_string(),
                    "-m".into(),
                    m.to_string(),
                    "-n".into(),
                    name.clone(),
                ];
                args.extend([
                    "-js".into(),
                    "-sd".into(),
                    dir.join(&name).display().to_string(),
                ]);
                args.extend([
                    "--cluster_name".into(),
                    "bridgetest".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{r}"),
                    "--routes".into(),
                    routes.join(","),
                ]);
                Self::spawn_unchecked(name, *p, *m, args)
            })
            .collect()
    }

    /// Started, not waited for: [`NatsServer::cluster`] checks the nodes.
    fn spawn_unchecked(name: String, port: u16, monitor: u16, args: Vec<String>) -> NatsServer {
        let child = Command::new(server_bin())
            .args(&args)
            .stdout(Stdio::null())
            .stderr(server_log(&name))
            .spawn()
            .expect("spawning the NATS server");
        NatsServer {
            port,
            monitor,
            name,
            child: Some(child),
            args,
        }
    }

    fn spawn(name: String, port: u16, monitor: u16, args: Vec<String>) -> NatsServer {
        let mut s = NatsServer {
            port,
            monitor,
            name,
            child: None,
            args,
        };
        s.restart();
        s
    }

    pub fn restart(&mut self) {
        let child = Command::new(server_bin())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(server_log(&self.name))
            .spawn()
            .expect("spawning the NATS server");
        self.child = Some(child);
        wait_port(self.port, &self.name);
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Connection names on this node, from the monitoring endpoint.
    pub fn connection_names(&self) -> Vec<String> {
        let body = http_get(self.monitor, "/connz").unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["connections"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The string value of the first `"key": "..."` in a JSON text.
fn json_string_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    rest.find('"').map(|end| &rest[..end])
}

/// Minimal HTTP GET on loopback; returns the body of a 200 response.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    if !buf.starts_with("HTTP/1.1 200") {
        return None;
    }
    buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

/// Debian's mosquitto, if installed. Tests skip without it unless `CI` or
/// `TRIBUNE_REQUIRE_MOSQUITTO` is set, in which case its absence fails them.
pub fn mosquitto_bin() -> Option<PathBuf> {
    let found = [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists());
    let required =
        std::env::var_os("CI").is_some() || std::env::var_os("TRIBUNE_REQUIRE_MOSQUITTO").is_some();
    if found.is_none() {
        assert!(!required, "mosquitto is required (CI / TRIBUNE_REQUIRE_MOSQUITTO set) but not installed: apt-get install -y mosquitto");
        eprintln!("SKIPPED: mosquitto not installed (apt-get install -y mosquitto); set TRIBUNE_REQUIRE_MOSQUITTO=1 to make this a failure");
    }
    found
}

/// Where a server's log goes: nowhere, or with `BRIDGE_TEST_SERVER_LOGS=<dir>`
/// set, appended to `<dir>/<name>.log` (to see what a cluster did in a run).
fn server_log(name: &str) -> Stdio {
    let Some(dir) = std::env::var_os("BRIDGE_TEST_SERVER_LOGS") else {
        return Stdio::null();
    };
    let path = PathBuf::from(dir).join(format!("{name}.log"));
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(f) => Stdio::from(f),
        Err(e) => panic!("opening {}: {e}", path.display()),
    }
}

pub struct Mosquitto {
    pub port: u16,
    child: Child,
    bin: PathBuf,
    dir: PathBuf,
    extra: String,
}

impl Mosquitto {
    /// Starts mosquitto with `extra` config lines appended to a loopback listener.
    pub fn start(bin: &Path, dir: &Path, extra: &str) -> Mosquitto {
        Self::start_on(bin, dir, extra, free_port())
    }

    /// Kills it (sessions are in memory only, so they are lost) and starts it again on the same port.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = Self::start_on(
            &self.bin.clone(),
            &self.dir.clone(),
            &self.extra.clone(),
            self.port,
        );
    }

    /// Starts mosquitto with a complete config (for TLS / auth set-ups); `port` must be a listener in it.
    pub fn start_with_config(bin: &Path, dir: &Path, port: u16, conf_text: &str) -> Mosquitto {
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        std::fs::write(&conf, conf_text).expect("writing mosquitto.conf");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning mosquitto");
        wait_port(port, "mosquitto");
        Mosquitto {
            port,
            child,
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            extra: String::new(),
        }
    }

    fn start_on(bin: &Path, dir: &Path, extra: &str, port: u16) -> Mosquitto {
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n{extra}\n"),
        )
        .expect("writing mosquitto.conf");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning mosquitto");
        wait_port(port, "mosquitto");
        Mosquitto {
            port,
            child,
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            extra: extra.to_owned(),
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts an embedded rumqttd on a free port; returns its URL.
pub fn embedded_broker() -> String {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    tribune_bridge::sim::embedded::start(addr).expect("embedded broker");
    format!("mqtt://{addr}")
}

/// The bridge binary as a child process (so it can be SIGKILLed).
pub struct BridgeProc {
    pub http_port: u16,
    pub log: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl BridgeProc {
    /// `config` is the TOML without `[http]`; a free port is added.
    pub fn start(dir: &Path, config: &str) -> BridgeProc {
        let http_port = free_port();
        let path = dir.join(format!("bridge-{http_port}.toml"));
        std::fs::write(
            &path,
            format!("{config}\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n"),
        )
        .expect("writing config");
        let mut b = BridgeProc {
            http_port,
            log: dir.join(format!("bridge-{http_port}.log")),
            config: path,
            child: None,
            starts: 0,
        };
        b.spawn();
        b
    }

    pub fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_tribune-bridge"))
            .arg("run")
            .arg("-c")
            .arg(&self.config)
            .env("RUST_LOG", "info,rumqttd=warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning tribune-bridge");
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL: no drain, no acks, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns the exit status success.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            if Instant::now() > end {
                let _ = c.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn metrics(&self) -> String {
        http_get(self.http_port, "/metrics").unwrap_or_default()
    }

    /// A counter's value from /metrics (full name incl. labels).
    pub fn metric(&self, name: &str) -> u64 {
        self.metrics()
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|r| r.strip_prefix(' '))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    pub async fn wait_healthy(&self) {
        let port = self.http_port;
        let log = self.log.clone();
        let end = Instant::now() + Duration::from_secs(60);
        while http_get(port, "/healthz").is_none() {
            assert!(
                Instant::now() < end,
                "bridge not healthy; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for BridgeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A bridge config for loopback tests.
pub fn bridge_config(mqtt_url: &str, nats_urls: &[String], client_id: &str, extra: &str) -> String {
    bridge_config_mqtt(
        &format!("url = \"{mqtt_url}\"\nallow_plaintext = true"),
        nats_urls,
        client_id,
        extra,
    )
}

/// [`bridge_config`] with the given `[mqtt]` lines for where and how to
/// connect (`url`, `ca_file`, `allow_plaintext`); `extra` goes after `[nats]`.
pub fn bridge_config_mqtt(
    mqtt_lines: &str,
    nats_urls: &[String],
    client_id: &str,
    extra: &str,
) -> String {
    let servers: Vec<String> = nats_urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        r#"
[mqtt]
{mqtt_lines}
client_id = "{client_id}"
reconnect_min_ms = 50
reconnect_max_ms = 1000
[[mqtt.subscriptions]]
topic = "thesports/+/match/v1"
qos = 1
[nats]
servers = [{servers}]
{extra}
"#,
        servers = servers.join(", ")
    )
}

pub async fn stream_messages(js: &jetstream::Context, stream: &str) -> u64 {
    match js.get_stream(stream).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Reads every message of `stream` through a pull consumer; returns the
/// `Nats-Msg-Id`s (asserting each message has one).
pub async fn stream_msg_ids(js: &jetstream::Context, stream: &str) -> Vec<String> {
    let s = js.get_stream(stream).await.expect("stream");
    let expected = stream_messages(js, stream).await as usize;
    // Right after a node died, a clustered JetStream may still be electing
    // leaders: creating the consumer can time out, so retry for a while.
    let deadline = Instant::now() + Duration::from_secs(60);
    let consumer = loop {
        let created = s
            .create_consumer(jetstream::consumer::pull::Config {
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                ack_policy: jetstream::consumer::AckPolicy::None,
                ..Default::default()
            })
            .await;
        match created {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                eprintln!("creating the read-back consumer: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("consumer: {e}"),
        }
    };
    let mut ids = Vec::with_capacity(expected);
    let end = Instant::now() + Duration::from_secs(60);
    while ids.len() < expected && Instant::now() < end {
        let mut batch = consumer
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .expect("fetch");
        while let Some(Ok(m)) = batch.next().await {
            let id = m
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.as_str().to_owned())
                .expect("every stored message has a Nats-Msg-Id");
            ids.push(id);
        }
    }
    ids
}

/// Asserts the ids are all distinct; returns them as a set.
pub fn assert_unique(ids: &[String]) -> HashSet<String> {
    let set: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(set.len(), ids.len(), "duplicate Nats-Msg-Ids in the stream");
    set
}

pub fn init() {
    tribune_bridge::tls::install_crypto_provider();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// The simulator's clock in the tests (`SimOptions::fixed_clock`), so
/// football's kick-off times depend only on the seed and
/// [`expected_states`] can replay exactly what was sent.
pub const SIM_CLOCK: i64 = 1_767_225_600;

pub async fn run_sim(
    mqtt_url: &str,
    updates: u64,
    rate: f64,
    malformed_every: u64,
    seed: u64,
) -> tribune_bridge::sim::SimReport {
    run_sim_ca(mqtt_url, None, updates, rate, malformed_every, seed).await
}

/// [`run_sim`] to a TLS broker (`mqtts://`, `wss://`) verified with `ca_file`.
pub async fn run_sim_ca(
    mqtt_url: &str,
    ca_file: Option<&Path>,
    updates: u64,
    rate: f64,
    malformed_every: u64,
    seed: u64,
) -> tribune_bridge::sim::SimReport {
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let opts = tribune_bridge::sim::SimOptions {
        mqtt_url: mqtt_url.to_owned(),
        ca_file: ca_file.map(Path::to_owned),
        updates,
        rate,
        seed,
        malformed_every,
        client_id: format!("sim-{seed}-{}", free_port()),
        fixed_clock: Some(SIM_CLOCK),
        ..Default::default()
    };
    tribune_bridge::sim::run(opts, rx).await.expect("simulator")
}

/// Publishes `payloads` to `topic` with QoS 1, in order, and returns once the
/// broker acknowledged all of them (so it holds them for the bridge).
pub async fn publish_mqtt(mqtt_url: &str, topic: &str, payloads: &[String]) {
    use rumqttc::{AsyncClient, Event, Packet, QoS};
    let mut opts = tribune_bridge::endpoint::Endpoint::parse(mqtt_url)
        .expect("mqtt url")
        .mqtt_options(&format!("test-pub-{}", free_port()), None)
        .expect("mqtt options");
    opts.set_keep_alive(Duration::from_secs(15));
    let (client, mut events) = AsyncClient::new(opts, payloads.len().max(1) + 10);
    for p in payloads {
        client
            .publish(topic, QoS::AtLeastOnce, false, p.clone().into_bytes())
            .await
            .expect("queue publish");
    }
    let mut acked = 0;
    let end = Instant::now() + Duration::from_secs(30);
    while acked < payloads.len() {
        assert!(
            Instant::now() < end,
            "MQTT broker acked {acked} of {}",
            payloads.len()
        );
        match tokio::time::timeout(Duration::from_secs(5), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("test MQTT publisher: {e}"),
            Err(_) => {}
        }
    }
    let _ = client.disconnect().await;
}

/// The last state stored for `subject`, read with a direct get (so it also
/// checks that the stream allows direct gets).
pub async fn last_state(
    js: &jetstream::Context,
    subject: &str,
) -> Option<tribune_bridge::payload::MatchMessage> {
    let stream = js.get_stream("SPORTS").await.expect("stream SPORTS");
    let m = stream.direct_get_last_for_subject(subject).await.ok()?;
    Some(serde_json::from_slice(&m.payload).expect("a match state"))
}

/// The states `run_sim(.., updates, .., 0, seed)` must leave: its messages
/// replayed through the same normalisation and merge, in order.
pub fn expected_states(
    seed: u64,
    updates: u64,
) -> HashMap<String, tribune_bridge::payload::MatchState> {
    let o = tribune_bridge::sim::SimOptions::default();
    let mut feed = Feed::new(seed, &o.sports, o.matches_per_sport, o.batch, 0);
    let mut states: HashMap<String, tribune_bridge::payload::MatchState> = HashMap::new();
    let mut sent = 0u64;
    while sent < updates {
        let msg = feed.next_message((updates - sent) as usize, SIM_CLOCK);
        sent += msg.updates as u64;
        let sport = msg.topic.split('/').nth(1).unwrap().to_owned();
        let origin = Origin {
            sport: &sport,
            provider: "thesports",
            topic: &msg.topic,
            received_at_ms: 0,
        };
        for entry in split_payload(&msg.payload).unwrap() {
            let u = normalise_match(&entry, &origin).unwrap();
            let subject = format!("sports.{sport}.{}", u.match_id);
            states
                .entry(subject)
                .or_insert_with(|| {
                    tribune_bridge::payload::MatchState::new(&sport, &u.match_id, "thesports")
                })
                .merge(&u, 0);
        }
    }
    states
}

/// Every match's last stored message: batch direct gets (`multi_last`, in
/// pages of 16 so paging is exercised too), on either server.
pub async fn stored_states(
    client: &async_nats::Client,
) -> HashMap<String, tribune_bridge::payload::MatchMessage> {
    let snap = tribune_bridge::snapshot::current_states_paged(
        client,
        "SPORTS",
        "sports.>",
        16,
        Duration::from_secs(10),
    )
    .await
    .expect("batch direct get");
    snap.messages
        .iter()
        .map(|m| {
            let subject = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Subject"))
                .expect("Nats-Subject")
                .to_string();
            (subject, serde_json::from_slice(&m.payload).unwrap())
        })
        .collect()
}

/// Asserts every match's last stored state is the merge of everything the
/// simulator sent for it (`run_sim` with this seed and count).
pub async fn assert_states_are_whole(client: &async_nats::Client, seed: u64, updates: u64) {
    let expected = expected_states(seed, updates);
    let stored = stored_states(client).await;
    assert_eq!(stored.len(), expected.len(), "one state per match");
    // The clock (and `minute`) is derived at the time the bridge received
    // the update that last changed the state, which the replay cannot know:
    // everything else must be equal, and the clock must be the one the
    // stored score gives at the stored `updated_at_ms`.
    let content = |s: &tribune_bridge::payload::MatchState| {
        (
            s.score.clone(),
            s.stats.clone(),
            s.incidents.clone(),
            s.tlive.clone(),
            s.extra.clone(),
        )
    };
    for (subject, want) in &expected {
        let got = &stored
            .get(subject)
            .unwrap_or_else(|| panic!("no state for {subject}"))
            .state;
        assert!(
            content(got) == content(want),
            "{subject}: stored state differs from the merge of the feed\ngot:  {got:?}\nwant: {want:?}"
        );
        let mut rederived = got.clone();
        rederived.derive_clock();
        assert_eq!(
            (&got.clock, got.minute),
            (&rederived.clock, rederived.minute),
            "{subject}: the clock is not the stored score's at updated_at_ms"
        );
        // Equal when every update was merged exactly once (each simulated
        // update changes the state); higher only after a duplicate the
        // applied ids did not cover.
        assert!(
            got.rev >= want.rev,
            "{subject}: rev {} < {}",
            got.rev,
            want.rev
        );
    }
    eprintln!("{} match states checked", expected.len());
}

/// Steps the SPORTS stream's leader down until node `name` leads it. The
/// step-down names `name` as the preferred new leader (both servers take
/// `placement.preferred`), so it does not depend on a random election; it is
/// repeated while `name` is not yet current enough to take over.
pub async fn lead_from(
    client: &async_nats::Client,
    js: &async_nats::jetstream::Context,
    name: &str,
) {
    let body = serde_json::json!({ "placement": { "preferred": name } }).to_string();
    for _ in 0..120 {
        let leader = match js.get_stream("SPORTS").await {
            Ok(mut s) => s
                .info()
                .await
                .ok()
                .and_then(|i| i.cluster.as_ref().and_then(|c| c.leader.clone())),
            Err(_) => None,
        };
        if leader.as_deref() == Some(name) {
            return;
        }
        if leader.is_some() {
            let _ = tokio::time::timeout(
                Duration::from_secs(10),
                client.request("$JS.API.STREAM.LEADER.STEPDOWN.SPORTS", body.clone().into()),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{name} never became the SPORTS stream's leader");
}
