//! `/varz`: general server information and counters, in nats-server's shape.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde::Serialize;

use super::gofmt::{my_uptime, GoFloat, GoTime};
use super::{accounts, procstat, Monitor};
use crate::server::NATS_COMPAT_VERSION;

/// nats-server reports its default handshake timeout (2s) even when TLS is
/// off, and so do we.
const DEFAULT_TLS_TIMEOUT_SECS: f64 = 2.0;

#[derive(Serialize)]
pub(super) struct Varz {
    server_id: String,
    server_name: String,
    version: &'static str,
    proto: u32,
    /// The commit the binary was built from (broker/build.rs), as nats-server
    /// reports its own: `make upgrade` checks a replaced node runs the commit
    /// its new AMI is tagged with.
    #[serde(skip_serializing_if = "str::is_empty")]
    git_commit: &'static str,
    go: String,
    host: String,
    port: u16,
    #[serde(skip_serializing_if = "is_false")]
    auth_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    tls_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    tls_verify: bool,
    /// The client URLs this server's INFO offers (its own, then its peers').
    #[serde(skip_serializing_if = "Vec::is_empty")]
    connect_urls: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ws_connect_urls: Vec<String>,
    max_connections: usize,
    #[serde(skip_serializing_if = "is_zero_usize")]
    max_subscriptions: usize,
    /// Nanoseconds, as Go encodes a `time.Duration`.
    ping_interval: u64,
    ping_max: u32,
    http_host: String,
    http_port: u16,
    http_base_path: String,
    https_port: u16,
    auth_timeout: GoFloat,
    max_control_line: usize,
    max_payload: usize,
    max_pending: usize,
    cluster: ClusterVarz,
    gateway: Empty,
    leaf: Empty,
    mqtt: Empty,
    websocket: WebsocketVarz,
    /// `{}` when JetStream is off.
    jetstream: JetStreamBlock,
    tls_timeout: GoFloat,
    write_deadline: u64,
    start: GoTime,
    now: GoTime,
    uptime: String,
    mem: u64,
    cores: usize,
    gomaxprocs: usize,
    cpu: GoFloat,
    connections: usize,
    total_connections: u64,
    routes: usize,
    remotes: usize,
    leafnodes: usize,
    in_msgs: u64,
    in_bytes: u64,
    in_client_msgs: u64,
    in_client_bytes: u64,
    out_msgs: u64,
    out_bytes: u64,
    out_client_msgs: u64,
    out_client_bytes: u64,
    slow_consumers: u64,
    stale_connections: u64,
    stalled_clients: u64,
    subscriptions: u64,
    http_req_stats: BTreeMap<&'static str, u64>,
    config_load_time: GoTime,
    config_digest: String,
    /// The system account's name (`$SYS` unless configured).
    #[serde(skip_serializing_if = "String::is_empty")]
    system_account: String,
    slow_consumer_stats: PerKind,
    stale_connection_stats: PerKind,
    disk_io_wait_stats: DiskIoWait,
}

/// `/varz`'s `jetstream`: nats-server's `JetStreamVarz`, or `{}`.
#[derive(Serialize)]
#[serde(untagged)]
enum JetStreamBlock {
    On(Box<super::jsz::JetStreamVarz>),
    Off(Empty),
}

/// A feature block that is off: nats-server emits `{}`.
#[derive(Serialize, Default)]
struct Empty {}

/// `cluster` of `/varz`. Empty until routes exist (configured-but-ignored
/// cluster settings are not reported, since nothing listens for them).
#[derive(Serialize, Default)]
struct ClusterVarz {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_port: Option<u16>,
    /// Seconds an accepted route has to send its CONNECT.
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_timeout: Option<GoFloat>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_timeout: Option<GoFloat>,
    #[serde(skip_serializing_if = "is_false")]
    tls_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    tls_verify: bool,
}

/// `websocket` of `/varz`: the listener's options, in nats-server's
/// `WebsocketOptsVarz` shape (every field omitted when empty, so `{}`
/// without a listener).
#[derive(Serialize, Default)]
struct WebsocketVarz {
    #[serde(skip_serializing_if = "String::is_empty")]
    host: String,
    #[serde(skip_serializing_if = "is_zero_u16")]
    port: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    advertise: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    no_auth_user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    jwt_cookie: String,
    /// Nanoseconds, as Go encodes a `time.Duration`.
    #[serde(skip_serializing_if = "is_zero_u64")]
    handshake_timeout: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_timeout: Option<GoFloat>,
    #[serde(skip_serializing_if = "is_false")]
    no_tls: bool,
    #[serde(skip_serializing_if = "is_false")]
    same_origin: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_origins: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    compression: bool,
}

#[derive(Serialize, Default)]
struct PerKind {
    clients: u64,
    routes: u64,
    gateways: u64,
    leafs: u64,
}

#[derive(Serialize, Default)]
struct DiskIoWait {
    waiters: i64,
    waits: u64,
    wait_time: u64,
    max_wait_time: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_usize(n: &usize) -> bool {
    *n == 0
}

fn is_zero_u16(n: &u16) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// The `websocket` section: empty without a listener.
fn websocket_varz(s: &crate::server::Server, opts: &crate::options::Options) -> WebsocketVarz {
    let ws = &opts.websocket;
    let Some(port) = ws.port else {
        return WebsocketVarz::default();
    };
    WebsocketVarz {
        host: ws.listen_host().to_string(),
        port: s.listeners().websocket.map_or(port, |a| a.port()),
        advertise: ws.advertise.clone().unwrap_or_default(),
        no_auth_user: ws.no_auth_user.clone().unwrap_or_default(),
        jwt_cookie: ws.jwt_cookie.clone().unwrap_or_default(),
        handshake_timeout: ws.handshake_timeout.as_nanos() as u64,
        auth_timeout: (!ws.auth_timeout.is_zero())
            .then_some(GoFloat(ws.auth_timeout.as_secs_f64())),
        no_tls: ws.no_tls,
        same_origin: ws.same_origin,
        allowed_origins: ws.allowed_origins.clone(),
        compression: ws.compression,
    }
}

/// The worker threads of the runtime, Tribune's counterpart of GOMAXPROCS.
pub(super) fn worker_threads() -> usize {
    tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_workers())
}

pub(super) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Connections closed as stale since start.
pub(super) fn stale_connections(m: &Monitor) -> u64 {
    m.server
        .stats
        .stale_connections
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// The `cluster` section: name, route listen address and configured routes.
fn cluster_varz(s: &crate::server::Server) -> ClusterVarz {
    let opts = s.opts();
    if !opts.cluster.enabled() {
        return ClusterVarz::default();
    }
    let port = s
        .listeners()
        .cluster
        .map(|a| a.port())
        .or(opts.cluster.port);
    ClusterVarz {
        name: Some(s.cluster_name()),
        addr: Some(if opts.cluster.host.is_empty() {
            "0.0.0.0".to_string()
        } else {
            opts.cluster.host.clone()
        }),
        cluster_port: port,
        auth_timeout: Some(GoFloat(opts.cluster.auth_timeout.as_secs_f64())),
        urls: opts.cluster.routes.iter().map(|r| route_host(r)).collect(),
        // nats-server defaults the route handshake timeout whenever
        // clustering is on, TLS or not.
        tls_timeout: Some(GoFloat(
            opts.cluster
                .tls
                .as_ref()
                .map_or(DEFAULT_TLS_TIMEOUT_SECS, |t| t.timeout.as_secs_f64()),
        )),
        tls_required: opts.cluster.tls.is_some(),
        tls_verify: opts.cluster.tls.is_some(),
    }
}

/// A configured route as `/varz` lists it: `host:port` alone, as
/// nats-server shows each route URL's host, so credentials in the URL never
/// reach monitoring. A URL that does not parse is shown without its
/// userinfo.
fn route_host(url: &str) -> String {
    match crate::route::RouteUrl::parse(url) {
        Ok(u) => u.host_port(),
        Err(_) => {
            let rest = url.split_once("://").map_or(url, |(_, r)| r);
            let rest = rest.split(['/', '?', '#']).next().unwrap_or_default();
            rest.rsplit_once('@').map_or(rest, |(_, h)| h).to_string()
        }
    }
}

pub(super) fn build(m: &Monitor) -> Varz {
    let s = &m.server;
    let opts = s.opts();
    let l = s.listeners();
    let now = SystemTime::now();
    let st = &s.stats;
    let in_msgs = st.in_msgs.load(Ordering::Relaxed);
    let in_bytes = st.in_bytes.load(Ordering::Relaxed);
    let out_msgs = st.out_msgs.load(Ordering::Relaxed);
    let out_bytes = st.out_bytes.load(Ordering::Relaxed);
    let slow = st.slow_consumers.load(Ordering::Relaxed);
    let stale = stale_connections(m);
    Varz {
        server_id: s.id.clone(),
        server_name: s.name.clone(),
        version: NATS_COMPAT_VERSION,
        proto: 1,
        git_commit: crate::GIT_COMMIT,
        go: format!("tribune-broker {}", crate::VERSION),
        host: opts.host.clone(),
        port: l.client.map_or(opts.port, |a| a.port()),
        auth_required: opts.auth_required(),
        tls_required: opts.tls.is_some() && !opts.allow_non_tls,
        tls_verify: opts.tls.as_ref().is_some_and(|t| t.verify),
        connect_urls: s.client_connect_urls(),
        ws_connect_urls: s.ws_connect_urls(),
        max_connections: opts.max_connections,
        max_subscriptions: opts.max_subs,
        ping_interval: opts.ping_interval.as_nanos() as u64,
        ping_max: opts.ping_max,
        http_host: opts.http_host.clone(),
        http_port: if opts.https_port.is_some() {
            0
        } else {
            l.http.map(|a| a.port()).or(opts.http_port).unwrap_or(0)
        },
        http_base_path: opts.http_base_path.clone(),
        https_port: if opts.https_port.is_some() {
            l.http.map(|a| a.port()).or(opts.https_port).unwrap_or(0)
        } else {
            0
        },
        auth_timeout: GoFloat(opts.auth_timeout.as_secs_f64()),
        max_control_line: opts.max_control_line,
        max_payload: opts.max_payload,
        max_pending: opts.max_pending,
        cluster: cluster_varz(s),
        gateway: Empty {},
        leaf: Empty {},
        mqtt: Empty {},
        websocket: websocket_varz(s, &opts),
        jetstream: match super::jsz::varz_block(m) {
            Some(js) => JetStreamBlock::On(Box::new(js)),
            None => JetStreamBlock::Off(Empty {}),
        },
        tls_timeout: GoFloat(
            opts.tls
                .as_ref()
                .map_or(DEFAULT_TLS_TIMEOUT_SECS, |t| t.timeout.as_secs_f64()),
        ),
        write_deadline: opts.write_deadline.as_nanos() as u64,
        start: GoTime(s.start_time),
        now: GoTime(now),
        uptime: my_uptime(now.duration_since(s.start_time).unwrap_or_default()),
        mem: procstat::rss_bytes(),
        cores: cores(),
        gomaxprocs: worker_threads(),
        cpu: GoFloat(m.cpu.percent()),
        connections: s.num_clients(),
        total_connections: st.total_connections.load(Ordering::Relaxed),
        routes: s.routes.num_peers(),
        remotes: 0,
        leafnodes: 0,
        in_msgs,
        in_bytes,
        in_client_msgs: in_msgs,
        in_client_bytes: in_bytes,
        out_msgs,
        out_bytes,
        out_client_msgs: out_msgs,
        out_client_bytes: out_bytes,
        slow_consumers: slow,
        stale_connections: stale,
        stalled_clients: 0,
        subscriptions: accounts(s).iter().map(|a| a.sublist.count()).sum(),
        http_req_stats: m.req_stats(),
        config_load_time: GoTime(m.config_load_time()),
        config_digest: String::new(),
        system_account: s.system_account().name.clone(),
        slow_consumer_stats: PerKind {
            clients: slow,
            ..Default::default()
        },
        stale_connection_stats: PerKind {
            clients: stale,
            ..Default::default()
        },
        disk_io_wait_stats: DiskIoWait::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::route_host;

    #[test]
    fn route_urls_show_as_host_and_port() {
        for (url, want) in [
            (
                "nats-route://ruser:T0pS3cr3t@127.0.0.1:6222/",
                "127.0.0.1:6222",
            ),
            ("nats://10.0.0.2:6222", "10.0.0.2:6222"),
            ("nats://u:p@[::1]:6222", "[::1]:6222"),
            ("nats://u:p@host", "host"),
        ] {
            assert_eq!(route_host(url), want, "{url}");
        }
    }
}
