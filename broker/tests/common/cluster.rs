//! A three-node (or N-node) cluster of real server processes for the
//! clustering tests (`tests/cluster.rs`).
//!
//! Every node gets its own loopback address (node 0 → 127.0.0.1, node 1 →
//! 127.0.0.2, ...; Linux routes all of 127/8 to `lo`) and, on that address, a
//! client port, a cluster (route) port and a monitoring port, chosen by
//! binding port 0 and releasing it just before the start. The ports stay the
//! same across [`Cluster::restart`], so a restarted node comes back on the
//! addresses its peers know.
//!
//! Every node is started with the shared nats-server flags only (so a cluster
//! can mix binaries, see [`Cluster::start_mixed`]):
//!
//! ```text
//! <bin> -a 127.0.0.X -p CLIENT -m HTTP -n node-x --ports_file_dir DIR
//!       --cluster nats://127.0.0.X:CLUSTER --cluster_name tribune-test
//!       --routes nats://127.0.0.1:C1,nats://127.0.0.2:C2,nats://127.0.0.3:C3
//! ```
//!
//! The `--routes` list contains the node itself; servers must ignore that
//! self-route. Readiness is the ports file (`<exe>_<pid>.ports`), as for
//! [`super::Server`]; the mesh is checked through `/routez` by counting
//! *distinct* `remote_id`s, because nats-server keeps several connections per
//! peer (3 pooled + 1 pinned `$SYS`).
//!
//! Everything that waits polls with a generous deadline ([`CLUSTER_DEADLINE`])
//! that only guards against hanging; nothing here asserts on timing.
//!
//! The flavour switch: `CLUSTER_FLAVOR` = comma-separated subset of
//! `nats`, `tribune`, `mixed`; `both`/`all`/unset = everything. See
//! [`flavor_selected`].

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{nats_server_bin, parse_ports_file, tribune_bin, STARTUP_DEADLINE};

/// The cluster name every node is given.
pub const CLUSTER_NAME: &str = "tribune-test";

/// How long the cluster may take to form, heal, propagate interest, ... before
/// a test gives up. A guard against hanging, not an expectation.
pub const CLUSTER_DEADLINE: Duration = Duration::from_secs(20);

/// Which server binary a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// The reference nats-server (see [`nats_server_bin`]).
    NatsServer,
    /// tribune-broker (`$TRIBUNE_BROKER_BIN`, else the binary cargo built).
    Tribune,
}

impl Flavor {
    pub fn bin(self) -> PathBuf {
        match self {
            Flavor::NatsServer => nats_server_bin(),
            Flavor::Tribune => tribune_bin(env!("CARGO_BIN_EXE_tribune-broker")),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Flavor::NatsServer => "nats-server",
            Flavor::Tribune => "tribune-broker",
        }
    }

    /// The `CLUSTER_FLAVOR` keyword that selects this flavour.
    pub fn keyword(self) -> &'static str {
        match self {
            Flavor::NatsServer => "nats",
            Flavor::Tribune => "tribune",
        }
    }
}

/// Is the test kind `kind` (`"nats"`, `"tribune"` or `"mixed"`) selected by
/// `CLUSTER_FLAVOR`? Unset, empty, `both` or `all` select everything.
/// Unknown words panic, so a typo does not silently skip every test.
pub fn flavor_selected(kind: &str) -> bool {
    let raw = std::env::var("CLUSTER_FLAVOR").unwrap_or_default();
    let words: Vec<String> = raw
        .split(',')
        .map(|w| w.trim().to_ascii_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    for w in &words {
        assert!(
            ["nats", "nats-server", "tribune", "mixed", "both", "all"].contains(&w.as_str()),
            "CLUSTER_FLAVOR={raw:?}: unknown word {w:?} (use nats, tribune, mixed, both)"
        );
    }
    if words.is_empty() || words.iter().any(|w| w == "both" || w == "all") {
        return true;
    }
    words
        .iter()
        .any(|w| w == kind || (kind == "nats" && w == "nats-server"))
}

/// `true` (after saying so) when `CLUSTER_FLAVOR` leaves out `kind`: the
/// test returns early and passes.
pub fn skip_flavor(kind: &str) -> bool {
    if flavor_selected(kind) {
        return false;
    }
    eprintln!(
        "skipped: CLUSTER_FLAVOR={:?} excludes {kind}",
        std::env::var("CLUSTER_FLAVOR").unwrap_or_default()
    );
    true
}

/// `on_both_flavors!(name => body)` defines `mod name { fn nats_server();
/// fn tribune(); }`, each a multi-threaded tokio test running
/// `body(Flavor)` (an `async fn` of the test file) on three nodes of that
/// flavour, unless `CLUSTER_FLAVOR` leaves it out. nats-server validates the
/// scenario; tribune-broker is the server under test. A name filter selects
/// too: `cargo nextest run --test js_chaos nats_server`.
#[macro_export]
macro_rules! on_both_flavors {
    ($(#[$doc:meta])* $name:ident => $body:ident) => {
        $(#[$doc])*
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn nats_server() {
                if $crate::common::cluster::skip_flavor("nats") {
                    return;
                }
                super::$body($crate::common::cluster::Flavor::NatsServer).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tribune() {
                if $crate::common::cluster::skip_flavor("tribune") {
                    return;
                }
                super::$body($crate::common::cluster::Flavor::Tribune).await
            }
        }
    };
}

/// One node of a [`Cluster`]: fixed addresses, and the process if running.
pub struct Node {
    pub index: usize,
    /// `node-a`, `node-b`, ... (passed with `-n`).
    pub name: String,
    pub flavor: Flavor,
    pub ip: Ipv4Addr,
    pub client_port: u16,
    pub cluster_port: u16,
    pub http_port: u16,
    /// The server ID of the running process (new on every restart), from /varz.
    pub server_id: Option<String>,
    /// Server IDs of earlier processes of this node (before restarts).
    pub old_server_ids: Vec<String>,
    /// Parsed ports file of the running process.
    pub ports: BTreeMap<String, Vec<String>>,
    child: Option<Child>,
    /// How many times the node has been started (names the log file).
    generation: u32,
    dir: tempfile::TempDir,
}

impl Node {
    /// `nats://127.0.0.X:PORT`
    pub fn client_url(&self) -> String {
        format!("nats://{}:{}", self.ip, self.client_port)
    }

    /// `127.0.0.X:PORT`, the form nats-server uses in `connect_urls`.
    pub fn client_hostport(&self) -> String {
        format!("{}:{}", self.ip, self.client_port)
    }

    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.client_port))
    }

    /// `nats://127.0.0.X:PORT`, as given in `--routes`.
    pub fn route_url(&self) -> String {
        format!("nats://{}:{}", self.ip, self.cluster_port)
    }

    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.http_port))
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("server-{}.log", self.generation))
    }

    /// The last lines of the current log, labelled.
    pub fn log_excerpt(&self) -> String {
        let path = self.log_path();
        let log = fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(30);
        format!(
            "--- last {} lines of {} ({}, {}) log {} ---\n{}\n--- end of log ---",
            lines.len() - start,
            self.name,
            self.flavor.label(),
            if self.is_running() {
                "running"
            } else {
                "stopped"
            },
            path.display(),
            lines[start..].join("\n")
        )
    }
}

/// N server processes forming one cluster. Killed (SIGKILL) on drop.
pub struct Cluster {
    pub nodes: Vec<Node>,
    routes: String,
    /// A configuration file every node is started with (`-c`), if any.
    config: Option<String>,
    /// JetStream on every node (`-js -sd <node dir>/js`).
    jetstream: bool,
    /// Node i runs with group id `gid_base + i` (see [`JsOptions::node_gids`]).
    gid_base: Option<u32>,
    /// See [`JsOptions::tribune_env`].
    tribune_env: Vec<(String, String)>,
}

/// Variations on [`Cluster::start_js`] for the chaos tests.
#[derive(Clone, Debug, Default)]
pub struct JsOptions {
    /// Appended to [`JS_CLUSTER_CONFIG`] (e.g. `ping_interval: "1s"`; the
    /// top-level ping settings govern routes on both servers).
    pub extra_config: String,
    /// Start node i with group id [`NODE_GID_BASE`]` + i` (user id stays
    /// root), so iptables' `owner --gid-owner` match can tell which node a
    /// socket belongs to: every node's outgoing route connections come from
    /// 127.0.0.1, whatever address the node listens on.
    pub node_gids: bool,
    /// Environment variables for the tribune-broker nodes (tunables such
    /// as `TRIBUNE_STREAM_SNAPSHOT_EVERY`); nats-server nodes ignore them.
    pub tribune_env: Vec<(String, String)>,
    /// Replaces [`JS_CLUSTER_CONFIG`] (the accounts) for scenarios that need
    /// other ones. The pinned clients connect without credentials, so it
    /// must name a `no_auth_user` in an account with JetStream.
    pub base_config: Option<String>,
}

/// The first group id [`JsOptions::node_gids`] gives out.
pub const NODE_GID_BASE: u32 = 47_100;

/// The configuration [`Cluster::start_js`] gives every node: JetStream in
/// account `APP` (the `no_auth_user`'s), and a system account user
/// `sys`/`sys` for the `$JS.API.META.*` requests nats-server takes only
/// from the system account.
pub const JS_CLUSTER_CONFIG: &str = r#"
accounts {
  APP: { jetstream: enabled, users: [ { user: app, password: app } ] }
  SYS: { users: [ { user: sys, password: sys } ] }
}
system_account: SYS
no_auth_user: app
"#;

impl Cluster {
    /// Three nodes of `flavor`, meshed (waits for the full mesh).
    pub async fn start(flavor: Flavor) -> Cluster {
        Cluster::start_mixed(&[flavor, flavor, flavor]).await
    }

    /// One node per entry, node i running `flavors[i]`, meshed (waits for the
    /// full mesh). At most 254 nodes (127.0.0.1 ..).
    pub async fn start_mixed(flavors: &[Flavor]) -> Cluster {
        let c = Cluster::spawn(flavors).await;
        c.wait_for_mesh().await;
        c
    }

    /// Three nodes of `flavor` with JetStream on each (their stores survive
    /// restarts) and [`JS_CLUSTER_CONFIG`], meshed.
    pub async fn start_js(flavor: Flavor) -> Cluster {
        Cluster::start_js_mixed(&[flavor, flavor, flavor]).await
    }

    /// Like [`Cluster::start_js`], node i running `flavors[i]`.
    pub async fn start_js_mixed(flavors: &[Flavor]) -> Cluster {
        Cluster::start_js_with(flavors, &JsOptions::default()).await
    }

    /// Like [`Cluster::start_js_mixed`], with [`JsOptions`].
    pub async fn start_js_with(flavors: &[Flavor], opts: &JsOptions) -> Cluster {
        let base = opts.base_config.as_deref().unwrap_or(JS_CLUSTER_CONFIG);
        let config = format!("{base}{}\n", opts.extra_config);
        let gid_base = opts.node_gids.then_some(NODE_GID_BASE);
        let c =
            Cluster::spawn_with(flavors, Some(&config), true, gid_base, &opts.tribune_env).await;
        c.wait_for_mesh().await;
        c
    }

    /// The group id node `i` runs with, if [`JsOptions::node_gids`] was set.
    pub fn node_gid(&self, i: usize) -> Option<u32> {
        self.gid_base.map(|b| b + i as u32)
    }

    /// Remove node `i`'s JetStream store (the node must be stopped): it
    /// comes back as the same server with an empty disk.
    pub fn wipe_store(&self, i: usize) {
        assert!(
            !self.nodes[i].is_running(),
            "{} is running: stop it before wiping its store",
            self.nodes[i].name
        );
        let dir = self.store_dir(i);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("remove {}: {e}", dir.display()),
        }
    }

    /// Node `i`'s JetStream store directory (what `-sd` names).
    pub fn store_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.path().join("js")
    }

    /// Like [`Cluster::start_mixed`] but does not wait for the mesh.
    ///
    /// If a node fails to come up (e.g. a port picked by [`free_ports`] was
    /// taken by something else in between), the whole cluster is started
    /// again on fresh ports, up to three times.
    pub async fn spawn(flavors: &[Flavor]) -> Cluster {
        Cluster::spawn_with(flavors, None, false, None, &[]).await
    }

    async fn spawn_with(
        flavors: &[Flavor],
        config: Option<&str>,
        jetstream: bool,
        gid_base: Option<u32>,
        tribune_env: &[(String, String)],
    ) -> Cluster {
        assert!(!flavors.is_empty() && flavors.len() < 255);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut c = Cluster::new(flavors);
            c.config = config.map(str::to_string);
            c.jetstream = jetstream;
            c.gid_base = gid_base;
            c.tribune_env = tribune_env.to_vec();
            for i in 0..c.nodes.len() {
                c.launch(i);
            }
            let mut failure = None;
            for i in 0..c.nodes.len() {
                if let Err(e) = c.try_wait_ready(i).await {
                    failure = Some(e);
                    break;
                }
            }
            match failure {
                None => return c,
                Some(e) if attempt < 3 => {
                    eprintln!("cluster start attempt {attempt} failed, retrying on new ports: {e}")
                }
                Some(e) => panic!("cluster did not start after {attempt} attempts: {e}"),
            }
        }
    }

    fn new(flavors: &[Flavor]) -> Cluster {
        let mut nodes = Vec::new();
        for (i, &flavor) in flavors.iter().enumerate() {
            let ip = Ipv4Addr::new(127, 0, 0, (i + 1) as u8);
            let [client_port, cluster_port, http_port] = free_ports(ip);
            let dir = tempfile::Builder::new()
                .prefix(&format!("tribune-cluster-{}-", node_letter(i)))
                .tempdir()
                .expect("tempdir");
            nodes.push(Node {
                index: i,
                name: format!("node-{}", node_letter(i)),
                flavor,
                ip,
                client_port,
                cluster_port,
                http_port,
                server_id: None,
                old_server_ids: Vec::new(),
                ports: BTreeMap::new(),
                child: None,
                generation: 0,
                dir,
            });
        }
        let routes = nodes
            .iter()
            .map(Node::route_url)
            .collect::<Vec<_>>()
            .join(",");
        Cluster {
            nodes,
            routes,
            config: None,
            jetstream: false,
            gid_base: None,
            tribune_env: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// Indices of the nodes whose process is running.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .collect()
    }

    pub fn client_url(&self, i: usize) -> String {
        self.nodes[i].client_url()
    }

    /// Client URLs of all nodes (running or not), in node order.
    pub fn client_urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::client_url).collect()
    }

    /// The running server ID of node `i` (panics if it is not running).
    pub fn server_id(&self, i: usize) -> &str {
        self.nodes[i]
            .server_id
            .as_deref()
            .unwrap_or_else(|| panic!("{} is not running", self.nodes[i].name))
    }

    /// Connect an async-nats client to node `i` only.
    pub async fn connect(&self, i: usize) -> async_nats::Client {
        let url = self.client_url(i);
        async_nats::ConnectOptions::new()
            .name(format!("cluster-test@{}", self.nodes[i].name))
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}\n{}", self.nodes[i].log_excerpt()))
    }

    /// SIGKILL node `i` (`Child::kill`) and reap it. Its ports stay reserved
    /// in the sense that [`Cluster::restart`] reuses them.
    pub fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let mut child = node
            .child
            .take()
            .unwrap_or_else(|| panic!("{} is not running", node.name));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        if let Some(id) = node.server_id.take() {
            node.old_server_ids.push(id);
        }
        node.ports.clear();
    }

    /// Start node `i` again on the same addresses and ports (new process,
    /// hence a new server ID). Waits for its ports file and /varz, not for the
    /// mesh: call [`Cluster::wait_for_mesh`] for that.
    pub async fn restart(&mut self, i: usize) {
        assert!(
            !self.nodes[i].is_running(),
            "{} is still running",
            self.nodes[i].name
        );
        // The listening sockets of a SIGKILLed process are gone at once, and
        // both Go and Rust listeners set SO_REUSEADDR, so TIME_WAIT
        // connections on the port do not block the bind. Retry anyway if the
        // new process exits early (e.g. "address in use" on a busy machine).
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            self.launch(i);
            match self.try_wait_ready(i).await {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline && !self.nodes[i].is_running() => {
                    eprintln!("restart of {} failed, retrying: {e}", self.nodes[i].name);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn launch(&mut self, i: usize) {
        let routes = self.routes.clone();
        let (config, jetstream) = (self.config.clone(), self.jetstream);
        let gid = self.node_gid(i);
        let node = &mut self.nodes[i];
        node.generation += 1;
        let ports_dir = node.dir.path().join(format!("ports-{}", node.generation));
        fs::create_dir_all(&ports_dir).expect("mkdir ports dir");
        let log = File::create(node.log_path()).expect("create log");
        let log2 = log.try_clone().expect("dup log");
        let mut cmd = Command::new(node.flavor.bin());
        if let Some(text) = &config {
            let path = node.dir.path().join("node.conf");
            fs::write(&path, text).expect("write node config");
            cmd.arg("-c").arg(path);
        }
        if jetstream {
            cmd.arg("-js").arg("-sd").arg(node.dir.path().join("js"));
        }
        cmd.arg("-a")
            .arg(node.ip.to_string())
            .arg("-p")
            .arg(node.client_port.to_string())
            .arg("-m")
            .arg(node.http_port.to_string())
            .arg("-n")
            .arg(&node.name)
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .arg("--cluster")
            .arg(node.route_url())
            .arg("--cluster_name")
            .arg(CLUSTER_NAME)
            .arg("--routes")
            .arg(&routes);
        if node.flavor == Flavor::Tribune {
            cmd.envs(self.tribune_env.iter().map(|(k, v)| (k, v)));
        }
        if let Some(gid) = gid {
            std::os::unix::process::CommandExt::gid(&mut cmd, gid);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} ({cmd:?})",
                node.flavor.bin().display()
            )
        });
        node.child = Some(child);
    }

    async fn wait_ready(&mut self, i: usize) {
        if let Err(e) = self.try_wait_ready(i).await {
            panic!("{e}");
        }
    }

    /// Wait for the ports file of the current process, then for /varz to
    /// answer with a server ID.
    async fn try_wait_ready(&mut self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_DEADLINE;
        let node = &mut self.nodes[i];
        let ports_dir = node.dir.path().join(format!("ports-{}", node.generation));
        let pid = node.pid().expect("launched");
        let suffix = format!("_{pid}.ports");
        let mut problem = String::from("no ports file yet");
        loop {
            if let Some(status) = node
                .child
                .as_mut()
                .unwrap()
                .try_wait()
                .map_err(|e| e.to_string())?
            {
                node.child = None;
                return Err(format!(
                    "{} exited ({status}) before becoming ready\n{}",
                    node.name,
                    node.log_excerpt()
                ));
            }
            let found = fs::read_dir(&ports_dir)
                .map_err(|e| e.to_string())?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(&suffix));
            if let Some(path) = found {
                match fs::read_to_string(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|s| parse_ports_file(&s))
                {
                    Ok((ports, _)) => {
                        node.ports = ports;
                        break;
                    }
                    Err(e) => problem = e,
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not ready ({problem})\n{}",
                    node.name,
                    node.log_excerpt()
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        loop {
            match get_json(node.http_addr(), "/varz").await {
                Ok(v) if v["server_id"].as_str().is_some_and(|s| !s.is_empty()) => {
                    node.server_id = Some(v["server_id"].as_str().unwrap().to_string());
                    return Ok(());
                }
                Ok(v) => problem = format!("/varz without server_id: {v}"),
                Err(e) => problem = e,
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{}: /varz not answering ({problem})\n{}",
                    node.name,
                    node.log_excerpt()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// GET `path` from node `i`'s monitoring port and parse the JSON.
    pub async fn get_json(&self, i: usize, path: &str) -> Result<Value, String> {
        get_json(self.nodes[i].http_addr(), path).await
    }

    /// Like [`Cluster::get_json`] but panics (with the node's log) on error.
    pub async fn json(&self, i: usize, path: &str) -> Value {
        match self.get_json(i, path).await {
            Ok(v) => v,
            Err(e) => panic!(
                "{} GET {path}: {e}\n{}",
                self.nodes[i].name,
                self.nodes[i].log_excerpt()
            ),
        }
    }

    /// Distinct `remote_id`s in node `i`'s `/routez`.
    pub async fn route_ids(&self, i: usize) -> Result<BTreeSet<String>, String> {
        let v = self.get_json(i, "/routez").await?;
        Ok(routez_remote_ids(&v))
    }

    /// Is every running node routed to every other running node, and to
    /// nothing else (no route to a dead or former process)?
    /// `Err` describes the first node that is not there yet.
    pub async fn mesh_state(&self) -> Result<(), String> {
        let live = self.live();
        for &i in &live {
            let want: BTreeSet<String> = live
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| self.server_id(j).to_string())
                .collect();
            let have = self.route_ids(i).await?;
            if have != want {
                return Err(format!(
                    "{} routes to {:?}, want {:?}",
                    self.nodes[i].name,
                    self.names_of(&have),
                    self.names_of(&want)
                ));
            }
        }
        Ok(())
    }

    /// Poll until [`Cluster::mesh_state`] is Ok (panics with every node's
    /// /routez and log after [`CLUSTER_DEADLINE`]).
    pub async fn wait_for_mesh(&self) {
        let start = Instant::now();
        let deadline = start + CLUSTER_DEADLINE;
        loop {
            let state = self.mesh_state().await;
            match state {
                Ok(()) => {
                    // Informational (visible with --nocapture), never asserted.
                    eprintln!(
                        "mesh of {:?} complete after {:?} of polling",
                        self.live(),
                        start.elapsed()
                    );
                    return;
                }
                Err(e) if Instant::now() > deadline => {
                    panic!(
                        "the cluster did not form a full mesh: {e}\n{}",
                        self.diagnostics().await
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Subjects of the interest node `at` has learned from node `from`: the
    /// union of `subscriptions_list` over all of `at`'s routes whose
    /// `remote_id` is `from`'s server ID (`/routez?subs=1`). A subject is
    /// listed once per interest entry, so a plain and a queue subscription on
    /// the same subject give two entries (nats-server's shape).
    pub async fn route_interest(&self, at: usize, from: usize) -> Result<Vec<String>, String> {
        let v = self.get_json(at, "/routez?subs=1").await?;
        let id = self.server_id(from);
        let mut out = Vec::new();
        for r in v["routes"].as_array().into_iter().flatten() {
            if r["remote_id"].as_str() == Some(id) {
                for s in r["subscriptions_list"].as_array().into_iter().flatten() {
                    out.push(s.as_str().unwrap_or_default().to_string());
                }
            }
        }
        Ok(out)
    }

    /// Poll until node `at` has learned interest in `subject` from `from`
    /// (see [`Cluster::route_interest`]). Use this before publishing on `at`
    /// to a subscriber on `from`: interest crosses routes asynchronously.
    pub async fn wait_for_route_interest(&self, at: usize, from: usize, subject: &str) {
        self.wait_for_route_interest_count(at, from, subject, 1)
            .await
    }

    /// Like [`Cluster::wait_for_route_interest`], but for at least `n` entries.
    pub async fn wait_for_route_interest_count(
        &self,
        at: usize,
        from: usize,
        subject: &str,
        n: usize,
    ) {
        self.poll_route_interest(at, from, subject, |c| c >= n, &format!("at least {n}"))
            .await
    }

    /// Poll until node `at` no longer lists `subject` among `from`'s interest.
    pub async fn wait_for_no_route_interest(&self, at: usize, from: usize, subject: &str) {
        self.poll_route_interest(at, from, subject, |c| c == 0, "none")
            .await
    }

    async fn poll_route_interest(
        &self,
        at: usize,
        from: usize,
        subject: &str,
        ok: impl Fn(usize) -> bool,
        what: &str,
    ) {
        let start = Instant::now();
        let deadline = start + CLUSTER_DEADLINE;
        loop {
            let got = self.route_interest(at, from).await;
            if let Ok(list) = &got {
                if ok(list.iter().filter(|s| *s == subject).count()) {
                    eprintln!(
                        "{}: {what} interest in {subject:?} from {} after {:?}",
                        self.nodes[at].name,
                        self.nodes[from].name,
                        start.elapsed()
                    );
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "{} never showed {what} interest in {subject:?} from {} (last: {got:?})\n{}",
                    self.nodes[at].name,
                    self.nodes[from].name,
                    self.diagnostics().await
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Node names for server IDs (unknown IDs shown as themselves).
    pub fn names_of(&self, ids: &BTreeSet<String>) -> Vec<String> {
        ids.iter()
            .map(|id| {
                self.nodes
                    .iter()
                    .find(|n| n.server_id.as_deref() == Some(id))
                    .map(|n| n.name.clone())
                    .or_else(|| {
                        self.nodes
                            .iter()
                            .find(|n| n.old_server_ids.contains(id))
                            .map(|n| format!("{} (old process)", n.name))
                    })
                    .unwrap_or_else(|| id.clone())
            })
            .collect()
    }

    /// Every node's /routez summary and log tail, for failure messages.
    pub async fn diagnostics(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let routez = if n.is_running() {
                match get_json(n.http_addr(), "/routez").await {
                    Ok(v) => {
                        let ids = routez_remote_ids(&v);
                        format!(
                            "num_routes={} remotes={:?}",
                            v["num_routes"],
                            self.names_of(&ids)
                        )
                    }
                    Err(e) => e,
                }
            } else {
                "not running".into()
            };
            out += &format!(
                "== {} ({}) {}: /routez {routez}\n{}\n",
                n.name,
                n.flavor.label(),
                n.client_url(),
                n.log_excerpt()
            );
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::env::var_os("TRIBUNE_KEEP_LOGS").is_some() {
            for n in &mut self.nodes {
                let dir = std::mem::replace(&mut n.dir, tempfile::TempDir::new().expect("tempdir"));
                eprintln!("kept {} logs in {}", n.name, dir.keep().display());
            }
        }
    }
}

/// `a`, `b`, `c`, ...
fn node_letter(i: usize) -> char {
    (b'a' + (i % 26) as u8) as char
}

/// Three distinct free TCP ports on `ip` (bound together, then released).
///
/// Ports are never handed out twice within one test process: the kernel may
/// return a just-released port to the next `bind(0)`, and tests run in
/// parallel threads, so every port given out is remembered (and stays
/// reserved for the life of the process, which also keeps a restarted node's
/// ports from going to another test).
pub fn free_ports(ip: Ipv4Addr) -> [u16; 3] {
    static GIVEN: std::sync::Mutex<BTreeSet<(Ipv4Addr, u16)>> =
        std::sync::Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut held = Vec::new();
    let mut out = Vec::new();
    while out.len() < 3 {
        let l = TcpListener::bind((ip, 0))
            .unwrap_or_else(|e| panic!("bind {ip}:0: {e} (is 127/8 routed to lo?)"));
        let port = l.local_addr().unwrap().port();
        // Keep every listener open until all three are chosen, so the
        // kernel cannot hand the same port out again meanwhile.
        held.push(l);
        if given.insert((ip, port)) {
            out.push(port);
        }
    }
    [out[0], out[1], out[2]]
}

/// Distinct `remote_id` values of a /routez document.
pub fn routez_remote_ids(v: &Value) -> BTreeSet<String> {
    v["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["remote_id"].as_str().map(String::from))
        .collect()
}

/// `GET path HTTP/1.0` → (status, body). The server closes the connection
/// after answering. Errors (refused, timeout, garbage) are `Err`.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .map_err(|e| format!("write {addr}: {e}"))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read {addr}{path}: {e}"))?;
        let text = String::from_utf8(raw).map_err(|e| format!("{addr}{path}: not utf-8: {e}"))?;
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("{addr}{path}: no header end in {text:?}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{addr}{path}: bad status line in {head:?}"))?;
        Ok((status, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| Err(format!("GET {addr}{path}: no answer in 10 s")))
}

/// GET and parse JSON; non-200 is an error.
pub async fn get_json(addr: SocketAddr, path: &str) -> Result<Value, String> {
    let (status, body) = http_get(addr, path).await?;
    if status != 200 {
        return Err(format!("GET {addr}{path}: status {status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("GET {addr}{path}: {e}: {body}"))
}

/// A raw client connection that tracks the server's INFO messages,
/// including asynchronous ones (which async-nats 0.51 does not surface:
/// its `server_info()` only changes on reconnect).
///
/// It connects, reads the first INFO, sends `CONNECT` with `protocol:1`
/// (required for async INFO) and `PING`, and answers the server's PINGs.
pub struct InfoWatcher {
    reader: tokio::io::BufReader<tokio::net::TcpStream>,
    /// The most recent INFO received.
    pub last_info: Value,
    /// Every INFO received, in order.
    pub infos: Vec<Value>,
}

impl InfoWatcher {
    pub async fn connect(addr: SocketAddr) -> InfoWatcher {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let mut w = InfoWatcher {
            reader: tokio::io::BufReader::new(stream),
            last_info: Value::Null,
            infos: Vec::new(),
        };
        let first = w.read_op(CLUSTER_DEADLINE).await.expect("first line");
        assert!(first.starts_with("INFO "), "expected INFO, got {first:?}");
        w.reader
            .get_mut()
            .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"lang\":\"rust-raw\",\"version\":\"0\",\"headers\":true,\"no_responders\":true}\r\nPING\r\n")
            .await
            .expect("write CONNECT");
        // Until the first PONG; INFOs in between are recorded.
        loop {
            let op = w.read_op(CLUSTER_DEADLINE).await.expect("PONG");
            if op == "PONG" {
                break;
            }
            assert!(!op.starts_with("-ERR"), "server refused CONNECT: {op}");
        }
        w
    }

    /// The `connect_urls` of the last INFO (empty if absent).
    pub fn connect_urls(&self) -> Vec<String> {
        self.last_info["connect_urls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u.as_str().map(String::from))
            .collect()
    }

    /// Read until the last INFO's `connect_urls`, as a set, equals `want`.
    /// Returns the list in the server's order. Panics after the deadline.
    pub async fn wait_for_connect_urls(&mut self, want: &BTreeSet<String>) -> Vec<String> {
        let deadline = Instant::now() + CLUSTER_DEADLINE;
        loop {
            let have: BTreeSet<String> = self.connect_urls().into_iter().collect();
            if &have == want {
                return self.connect_urls();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "connect_urls never became {want:?}; INFOs seen: {:#?}",
                    self.infos
                        .iter()
                        .map(|i| &i["connect_urls"])
                        .collect::<Vec<_>>()
                );
            }
            match self.read_op(left).await {
                Some(_) => {}
                None => panic!(
                    "connection closed or deadline passed while waiting for connect_urls {want:?}; last {:?}",
                    self.connect_urls()
                ),
            }
        }
    }

    fn record_info(&mut self, line: &str) {
        let v: Value = serde_json::from_str(line["INFO ".len()..].trim())
            .unwrap_or_else(|e| panic!("bad INFO {line:?}: {e}"));
        self.last_info = v.clone();
        self.infos.push(v);
    }

    /// Read one protocol line (skipping MSG payloads never happens: this
    /// client subscribes to nothing). Answers PING, records INFO. `None` on
    /// EOF or timeout.
    async fn read_op(&mut self, within: Duration) -> Option<String> {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        let n = tokio::time::timeout(within, self.reader.read_line(&mut line))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        let line = line.trim_end().to_string();
        if line == "PING" {
            let _ = self.reader.get_mut().write_all(b"PONG\r\n").await;
        } else if line.starts_with("INFO ") {
            self.record_info(&line);
        }
        Some(line)
    }
}
