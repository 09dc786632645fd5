//! Who may become a route: the route auth timeout, route passwords given as
//! bcrypt hashes, the limit on unregistered route connections, and the
//! startup warning for a route port anyone can join.
//!
//! Shared behaviour runs against nats-server (which validates the test) and
//! tribune-broker, and the outcomes are compared: the bytes a peer gets, the
//! log lines, whether the cluster forms (`/routez`). Where Tribune is
//! deliberately stricter, the test says so and why. Raw route peers speak
//! the protocol over a plain TCP socket; real peers are a second server.
//! Deadlines only keep a broken server from hanging the run; nothing here
//! asserts on timing.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::cluster::{get_json, routez_remote_ids, Flavor};
use common::{Server, ServerSpec};

/// Guard against hanging; never an expectation about speed.
const DEADLINE: Duration = Duration::from_secs(20);

const CLUSTER: &str = "rs";
const ROUTE_USER: &str = "ruser";
const ROUTE_PASS: &str = "s3cretRoutePassw0rd";

const AUTH_TIMEOUT_ERR: &str = "-ERR 'Authentication Timeout'\r\n";
const AUTH_VIOLATION_ERR: &str = "-ERR 'Authorization Violation'\r\n";

const BOTH: [Flavor; 2] = [Flavor::NatsServer, Flavor::Tribune];

/// bcrypt of [`ROUTE_PASS`] at the lowest cost, so the test stays quick.
fn route_hash() -> String {
    bcrypt::hash(ROUTE_PASS, 4).expect("bcrypt hash")
}

/// A `cluster {}` block on 127.0.0.1 (or `host`), a random port.
/// `authorization` is the inside of its authorization block, if any.
fn cluster_conf(host: &str, authorization: Option<&str>, routes: &[String]) -> String {
    let mut c = format!("cluster {{\n  name: {CLUSTER}\n  host: \"{host}\"\n  port: -1\n");
    if let Some(a) = authorization {
        c.push_str(&format!("  authorization {{ {a} }}\n"));
    }
    if !routes.is_empty() {
        let list: Vec<String> = routes.iter().map(|r| format!("\"{r}\"")).collect();
        c.push_str(&format!("  routes: [ {} ]\n", list.join(", ")));
    }
    c.push_str("}\n");
    c
}

fn start(flavor: Flavor, conf: &str) -> Server {
    ServerSpec::new(flavor.bin())
        .args(["-m", "-1"])
        .config(conf)
        .start()
        .unwrap_or_else(|e| panic!("{}: {e}", flavor.label()))
}

fn cluster_addr(s: &Server) -> String {
    s.addr_of("cluster")
        .unwrap_or_else(|| panic!("{}: no cluster port in {:?}", s.label, s.ports))
}

/// Wait until the log has `needle` (log lines may trail the socket close).
fn wait_for_log(s: &Server, needle: &str) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if s.log().contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{}: no {needle:?} in the log\n{}", s.label, s.log_excerpt());
}

/// A route peer on a plain socket, past the server's INFO.
struct RawRoute {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl RawRoute {
    fn open(addr: &str) -> RawRoute {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut info = String::new();
        r.read_line(&mut info).unwrap();
        assert!(info.starts_with("INFO {"), "route INFO first, got {info:?}");
        RawRoute { w: s, r }
    }

    fn send_connect(&mut self, user: &str, pass: &str) {
        let connect = serde_json::json!({
            "echo": true, "verbose": false, "pedantic": false, "tls_required": false,
            "headers": true, "name": "NRAWROUTEPEER", "cluster": CLUSTER,
            "user": user, "pass": pass,
        });
        write!(self.w, "CONNECT {connect}\r\n").unwrap();
    }

    /// Everything the server sends until it closes the connection.
    fn rest(&mut self) -> String {
        let mut out = Vec::new();
        self.r
            .read_to_end(&mut out)
            .expect("the server closes the connection");
        String::from_utf8_lossy(&out).into_owned()
    }

    /// PING, then read up to the PONG: the connection is still being served.
    /// Other lines (the server's own PINGs) are returned.
    fn ping_pong(&mut self) -> Vec<String> {
        self.w.write_all(b"PING\r\n").unwrap();
        let mut other = Vec::new();
        loop {
            let mut line = String::new();
            self.r.read_line(&mut line).unwrap();
            assert!(!line.is_empty(), "closed before PONG; got {other:?}");
            if line == "PONG\r\n" {
                return other;
            }
            other.push(line);
        }
    }
}

/// (a) An accepted route that sends nothing is closed after the route auth
/// timeout (`cluster { authorization { timeout } }`) with nats-server's
/// error and log lines, on both servers. `/varz` reports the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_route_is_closed_after_the_auth_timeout() {
    let auth = format!("user: {ROUTE_USER}, password: {ROUTE_PASS}, timeout: 0.5");
    let mut got = Vec::new();
    for flavor in BOTH {
        let s = start(flavor, &cluster_conf("127.0.0.1", Some(&auth), &[]));
        let varz = get_json(monitor_addr(&s), "/varz").await.unwrap();
        assert_eq!(
            varz["cluster"]["auth_timeout"],
            serde_json::json!(0.5),
            "{}: {}",
            flavor.label(),
            varz["cluster"]
        );
        let rest = RawRoute::open(&cluster_addr(&s)).rest();
        wait_for_log(&s, "Router connection closed: Authentication Timeout");
        let log = s.log();
        let line = log
            .lines()
            .find(|l| l.contains("Router connection closed: Authentication Timeout"))
            .unwrap_or_default();
        assert!(
            line.contains("[INF] 127.0.0.1:") && line.contains(" - rid:"),
            "{}: {line:?}",
            flavor.label()
        );
        got.push((flavor.label(), rest));
    }
    assert_eq!(got[0].1, AUTH_TIMEOUT_ERR, "nats-server (the test itself)");
    assert_eq!(
        got[1].1, got[0].1,
        "tribune-broker sends what nats-server sends"
    );
}

/// Stricter than nats-server: without route authorization Tribune still
/// closes a route that has not sent CONNECT within the auth timeout.
/// nats-server 2.15 arms that timer only when the cluster block sets
/// authorization, and otherwise keeps a silent connection until it is found
/// stale (90 s with its defaults). Tribune holds few places for unregistered
/// connections (see `unregistered_route_connections_are_limited`), so a
/// silent connection (a port scan, a load-balancer probe) must not keep
/// one; every real peer sends CONNECT right after connecting.
#[test]
fn tribune_closes_a_silent_route_without_authorization_too() {
    let s = start(Flavor::Tribune, &cluster_conf("127.0.0.1", None, &[]));
    let rest = RawRoute::open(&cluster_addr(&s)).rest();
    assert_eq!(rest, AUTH_TIMEOUT_ERR);
    wait_for_log(&s, "Router connection closed: Authentication Timeout");
}

/// (b) A route password configured as a bcrypt hash: the plain password
/// lets a real peer join (`/routez`) and a raw peer in; a wrong password,
/// or the hash itself presented as the password, is refused with
/// nats-server's error and log line; `/varz` does not show the password in
/// the dialler's route URL. Listener and dialer in every combination of the
/// two servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bcrypt_route_password() {
    let hash = route_hash();
    let auth = format!("user: {ROUTE_USER}, password: \"{hash}\"");
    let mut refusals = Vec::new();
    for listener_flavor in BOTH {
        for dialer_flavor in BOTH {
            let what = format!(
                "{} listening, {} dialling",
                listener_flavor.label(),
                dialer_flavor.label()
            );
            let listener = start(
                listener_flavor,
                &cluster_conf("127.0.0.1", Some(&auth), &[]),
            );
            let addr = cluster_addr(&listener);
            let url = format!("nats-route://{ROUTE_USER}:{ROUTE_PASS}@{addr}");
            let dialer = start(
                dialer_flavor,
                &cluster_conf("127.0.0.1", Some(&auth), &[url]),
            );
            let varz = get_json(monitor_addr(&dialer), "/varz").await.unwrap();
            let dialer_id = varz["server_id"].as_str().expect("server_id").to_string();
            wait_for_route(&listener, &dialer_id, &what).await;
            // /varz lists configured routes as host:port, without the
            // password the URL carries.
            assert_eq!(
                varz["cluster"]["urls"],
                serde_json::json!([addr]),
                "{what}: dialer's /varz"
            );

            // Raw peers against the same listener.
            for (label, pass) in [("wrong password", "nope"), ("the hash itself", &hash)] {
                let mut peer = RawRoute::open(&addr);
                peer.send_connect(ROUTE_USER, pass);
                let rest = peer.rest();
                refusals.push((format!("{what}: {label}"), rest));
            }
            wait_for_log(
                &listener,
                &format!("authentication error - User \"{ROUTE_USER}\""),
            );
            wait_for_log(
                &listener,
                "Router connection closed: Authentication Failure",
            );
            let mut peer = RawRoute::open(&addr);
            peer.send_connect(ROUTE_USER, ROUTE_PASS);
            peer.ping_pong();
        }
    }
    for (what, rest) in &refusals {
        assert_eq!(rest, AUTH_VIOLATION_ERR, "{what}");
    }
}

fn monitor_addr(s: &Server) -> std::net::SocketAddr {
    s.addr_of("monitoring")
        .and_then(|a| a.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("{}: no monitoring port in {:?}", s.label, s.ports))
}

/// Poll `/routez` on `s` until `remote_id` is a route.
async fn wait_for_route(s: &Server, remote_id: &str, what: &str) {
    let http = monitor_addr(s);
    let end = Instant::now() + DEADLINE;
    loop {
        if let Ok(v) = get_json(http, "/routez").await {
            if routez_remote_ids(&v).contains(remote_id) {
                return;
            }
        }
        if Instant::now() > end {
            panic!("{what}: no route to {remote_id}\n{}", s.log_excerpt());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (c) Stricter than nats-server: Tribune keeps at most 64 accepted route
/// connections waiting to register and closes further ones at accept, so a
/// flood of half-open route connections cannot use up file descriptors and
/// memory. nats-server 2.15 has no such limit (the control run below
/// accepts every one). A place frees when a connection registers or closes.
#[test]
fn unregistered_route_connections_are_limited() {
    const LIMIT: usize = 64;
    // A long auth timeout, so the held connections keep their places.
    let auth = format!("user: {ROUTE_USER}, password: {ROUTE_PASS}, timeout: 60");
    let conf = cluster_conf("127.0.0.1", Some(&auth), &[]);

    // Control: nats-server serves all of them.
    let nats = start(Flavor::NatsServer, &conf);
    let addr = cluster_addr(&nats);
    let held: Vec<RawRoute> = (0..=LIMIT).map(|_| RawRoute::open(&addr)).collect();
    drop(held);

    let s = start(Flavor::Tribune, &conf);
    let addr = cluster_addr(&s);
    // Every one of these got INFO, so each holds a place.
    let mut held: Vec<RawRoute> = (0..LIMIT).map(|_| RawRoute::open(&addr)).collect();
    let mut extra = TcpStream::connect(&addr).unwrap();
    extra.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut got = Vec::new();
    extra.read_to_end(&mut got).expect("closed without a word");
    assert!(got.is_empty(), "refused before INFO, got {got:?}");
    wait_for_log(
        &s,
        "Refusing route connection: 64 accepted route connections have not registered yet",
    );

    // One leaves: its place goes to the next connection.
    drop(held.pop());
    let end = Instant::now() + DEADLINE;
    loop {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut first = [0u8; 5];
        if c.read_exact(&mut first).is_ok() {
            assert_eq!(&first, b"INFO ");
            break;
        }
        assert!(Instant::now() < end, "no place freed\n{}", s.log_excerpt());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (d) A route listener on a non-loopback address without route
/// authorization or route TLS gets a `[WRN]` at start; with authorization,
/// or on loopback, it does not. nats-server has no such warning.
#[test]
fn open_route_listener_warns_at_start() {
    const WARNING: &str =
        "has no authorization and no TLS: anyone who can reach it can join the cluster";
    let open = start(Flavor::Tribune, &cluster_conf("0.0.0.0", None, &[]));
    wait_for_log(&open, "[WRN] Route listener on 0.0.0.0:");
    wait_for_log(&open, WARNING);

    let auth = format!("user: {ROUTE_USER}, password: \"{}\"", route_hash());
    for conf in [
        cluster_conf("0.0.0.0", Some(&auth), &[]),
        cluster_conf("127.0.0.1", None, &[]),
    ] {
        let s = start(Flavor::Tribune, &conf);
        wait_for_log(&s, "Server is ready");
        assert!(!s.log().contains(WARNING), "{conf}\n{}", s.log_excerpt());
    }
}

/// Gossip tells members where a new peer listens, never how we log in to
/// it: a route dialled with `user:password@` in its URL is announced to
/// the other members as `nats-route://host:port/` by both servers. (Tribune
/// used to pass the configured URL on, password and all.)
#[test]
fn gossip_carries_no_route_credentials() {
    let auth = format!("user: {ROUTE_USER}, password: {ROUTE_PASS}");
    for flavor in BOTH {
        // L's port is fixed in advance, so D can dial it once L starts.
        let l_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let l_conf = cluster_conf("127.0.0.1", Some(&auth), &[])
            .replace("port: -1", &format!("port: {l_port}"));
        let url = format!("nats-route://{ROUTE_USER}:{ROUTE_PASS}@127.0.0.1:{l_port}");
        let d = start(flavor, &cluster_conf("127.0.0.1", Some(&auth), &[url]));
        // A member already in D's cluster when D's route to L comes up.
        let mut r = RawRoute::open(&cluster_addr(&d));
        r.send_connect(ROUTE_USER, ROUTE_PASS);
        write!(
            r.w,
            "INFO {{\"server_id\":\"NRAWROUTEPEER\",\"name\":\"raw\",\"host\":\"127.0.0.1\",\"port\":1,\"cluster\":\"{CLUSTER}\",\"headers\":true}}\r\n"
        )
        .unwrap();
        r.ping_pong();
        let l = start(flavor, &l_conf);
        let l_id = get_server_id(&l);
        let end = Instant::now() + DEADLINE;
        let gossip = loop {
            assert!(
                Instant::now() < end,
                "{}: no gossip about L\n{}",
                flavor.label(),
                d.log_excerpt()
            );
            let mut line = String::new();
            match r.r.read_line(&mut line) {
                Ok(0) => panic!(
                    "{}: D closed the member's route\n{}",
                    flavor.label(),
                    d.log_excerpt()
                ),
                Ok(_) => {}
                Err(_) => continue,
            }
            if line.starts_with("PING") {
                r.w.write_all(b"PONG\r\n").unwrap();
            }
            if line.starts_with("INFO ") && line.contains(&l_id) {
                break line;
            }
        };
        assert!(!gossip.contains(ROUTE_PASS), "{}: {gossip}", flavor.label());
        let info: serde_json::Value =
            serde_json::from_str(gossip.trim_start_matches("INFO ").trim()).unwrap();
        assert_eq!(
            info["ip"],
            format!("nats-route://127.0.0.1:{l_port}/"),
            "{}",
            flavor.label()
        );
    }
}

fn get_server_id(s: &Server) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let v = rt.block_on(get_json(monitor_addr(s), "/varz")).unwrap();
    v["server_id"].as_str().expect("server_id").to_string()
}

/// Gossip about a peer this node already has a configured route to is not
/// dialled (nats-server's `hasThisRouteConfigured`): the route's keeper
/// dials it with the URL's own credentials. A gossiped dial carries this
/// node's `cluster { authorization }` instead, which as a bcrypt hash can
/// never log in: three nodes started together, each listing all three,
/// logged `authentication error` on most starts and lost a working route
/// to duplicate resolution. Here a member gossips L's address to D, which
/// routes to L already; L must see no failed login. tribune-broker only:
/// the raw member's INFO names a server id that is not L's, which
/// nats-server's own check does not look at.
#[test]
fn gossip_about_a_configured_route_is_not_dialled() {
    let hash = route_hash();
    let auth = format!("user: {ROUTE_USER}, password: \"{hash}\"");
    let l = start(
        Flavor::Tribune,
        &cluster_conf("127.0.0.1", Some(&auth), &[]),
    );
    let l_addr = cluster_addr(&l);
    let url = format!("nats-route://{ROUTE_USER}:{ROUTE_PASS}@{l_addr}");
    let d = ServerSpec::new(Flavor::Tribune.bin())
        .args(["-m", "-1", "-D"])
        .config(cluster_conf("127.0.0.1", Some(&auth), &[url]))
        .start()
        .unwrap_or_else(|e| panic!("tribune-broker: {e}"));
    let l_id = get_server_id(&l);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(wait_for_route(&d, &l_id, "D's configured route to L"));

    // A member of D's cluster tells D about a server listening at L's
    // address (as the third node does while the mesh forms).
    let mut r = RawRoute::open(&cluster_addr(&d));
    r.send_connect(ROUTE_USER, ROUTE_PASS);
    write!(
        r.w,
        "INFO {{\"server_id\":\"NRAWROUTEPEER\",\"name\":\"raw\",\"host\":\"127.0.0.1\",\"port\":1,\"cluster\":\"{CLUSTER}\",\"headers\":true}}\r\n"
    )
    .unwrap();
    r.ping_pong();
    let (host, port) = l_addr.rsplit_once(':').unwrap();
    write!(
        r.w,
        "INFO {{\"server_id\":\"NGOSSIPEDPEER\",\"name\":\"gossiped\",\"host\":\"{host}\",\"port\":{port},\"cluster\":\"{CLUSTER}\",\"auth_required\":true,\"headers\":true,\"ip\":\"nats-route://{l_addr}/\"}}\r\n"
    )
    .unwrap();
    r.ping_pong();
    wait_for_log(&d, "Learned of route");
    // A dial would follow within milliseconds; watch L for a while.
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        let log = l.log_excerpt();
        assert!(
            !log.contains("authentication error"),
            "D dialled gossip about its configured route with its bcrypt hash:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    rt.block_on(wait_for_route(&d, &l_id, "D's route to L, still up"));
}
