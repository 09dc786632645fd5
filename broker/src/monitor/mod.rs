//! HTTP monitoring endpoints, compatible with nats-server's (`/varz`,
//! `/connz`, `/subsz`, `/routez`, `/healthz`), plus a Prometheus `/metrics`.
//!
//! Field names, query parameters, error texts and JSON formatting follow
//! nats-server's `monitor.go`, so that dashboards, `nats server` CLI commands
//! and exporters written for nats-server work unchanged. Everything is read
//! from the live [`Server`]; nothing here mutates broker state.

pub(crate) mod accountz;
mod connz;
pub(crate) mod gofmt;
mod jsz;
mod metrics;
mod procstat;
pub(crate) mod query;
pub(crate) mod statsz;
mod subsz;
mod varz;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::accounts::Account;
use crate::server::Server;

use gofmt::GoTime;
pub(crate) use query::Params;

/// The endpoints, by path relative to the base path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Root,
    Varz,
    Connz,
    Routez,
    Subsz,
    Healthz,
    Metrics,
    Jsz,
    Accountz,
    AccountStatz,
}

const ENDPOINTS: &[(&str, Endpoint)] = &[
    ("/varz", Endpoint::Varz),
    ("/connz", Endpoint::Connz),
    ("/routez", Endpoint::Routez),
    ("/subsz", Endpoint::Subsz),
    ("/subscriptionsz", Endpoint::Subsz),
    ("/healthz", Endpoint::Healthz),
    ("/metrics", Endpoint::Metrics),
    ("/jsz", Endpoint::Jsz),
    ("/accountz", Endpoint::Accountz),
    ("/accstatz", Endpoint::AccountStatz),
];

/// Keys of `http_req_stats` (nats-server counts `/subscriptionsz` as `/subsz`).
mod stat_key {
    pub const ROOT: &str = "/";
    pub const VARZ: &str = "/varz";
    pub const CONNZ: &str = "/connz";
    pub const ROUTEZ: &str = "/routez";
    pub const SUBSZ: &str = "/subsz";
    pub const HEALTHZ: &str = "/healthz";
    pub const METRICS: &str = "/metrics";
}

/// Why a monitoring request has no data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZError {
    /// The options do not decode or make no sense: nats-server's 400 text.
    BadRequest(String),
    /// Not asked of this server (`leader-only` anywhere but on the meta
    /// leader): HTTP answers 400 with the text, the system account nothing.
    Filtered(String),
}

/// The endpoints the system account serves too (`$SYS.REQ.SERVER.*.<KIND>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Z {
    Varz,
    Connz,
    Routez,
    Subsz,
    Jsz,
    Healthz,
    Accountz,
    /// One account's JetStream (`$SYS.REQ.ACCOUNT.<account>.JSZ`).
    JszAccount,
    /// One account's `AccountInfo` (`$SYS.REQ.ACCOUNT.<account>.INFO`).
    AccountInfo,
}

/// State shared by the HTTP handlers and the system account's requests:
/// one per server, so both show the same CPU sample and request counts.
pub struct Monitor {
    server: Arc<Server>,
    /// Normalized base path: `/` or `/prefix` (nats-server's `normalizeBasePath`).
    base: String,
    req_stats: Mutex<BTreeMap<&'static str, u64>>,
    cpu: procstat::CpuSampler,
}

impl Monitor {
    /// The monitor of `server`, sampling CPU every second for as long as
    /// it is held.
    pub fn start(server: Arc<Server>) -> Arc<Monitor> {
        let monitor = Arc::new(Monitor::new(server.clone()));
        let m = Arc::downgrade(&monitor);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            let stopped = server.wait_for_shutdown();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    () = &mut stopped => break,
                }
                match m.upgrade() {
                    Some(m) => m.tick(),
                    None => break,
                }
            }
        });
        monitor
    }

    /// What `z` answers for `p`, as compact JSON (the `data` of a system
    /// account reply).
    pub async fn json(&self, z: Z, p: &Params) -> Result<String, ZError> {
        Ok(match z {
            Z::Varz => gofmt::to_json(&varz::build(self)),
            Z::Connz => gofmt::to_json(&connz::data(self, p)?),
            Z::Routez => gofmt::to_json(&routez(self, p)?),
            Z::Subsz => gofmt::to_json(&subsz::data(self, p)?),
            Z::Jsz => gofmt::to_json(&jsz::data(self, p)?),
            Z::Healthz => gofmt::to_json(&healthz(self, p).await?),
            Z::Accountz => gofmt::to_json(&accountz::data(self, p)?),
            Z::JszAccount => gofmt::to_json(&jsz::account_data(self, p)?),
            Z::AccountInfo => gofmt::to_json(&accountz::info(&self.server, p.get("acc"))?),
        })
    }

    /// `/accstatz` of `accounts` (every account when empty) as compact
    /// JSON, or `None` when it lists no account and `include_unused` is
    /// off: nats-server does not answer then.
    pub fn account_statz_json(&self, accounts: &[String], include_unused: bool) -> Option<String> {
        let statz = accountz::statz(self, accounts, include_unused);
        (include_unused || !statz.is_empty()).then(|| gofmt::to_json(&statz))
    }

    pub(crate) fn server(&self) -> &Arc<Server> {
        &self.server
    }

    fn new(server: Arc<Server>) -> Monitor {
        let base = normalize_base_path(&server.opts().http_base_path);
        Monitor {
            server,
            base,
            req_stats: Mutex::new(BTreeMap::new()),
            cpu: procstat::CpuSampler::new(),
        }
    }

    fn route(&self, path: &str) -> Option<Endpoint> {
        if path == self.base {
            return Some(Endpoint::Root);
        }
        ENDPOINTS
            .iter()
            .find(|(p, _)| join_path(&self.base, p) == path)
            .map(|(_, e)| *e)
    }

    fn count(&self, key: &'static str) {
        *self.req_stats.lock().entry(key).or_insert(0) += 1;
    }

    fn req_stats(&self) -> BTreeMap<&'static str, u64> {
        self.req_stats.lock().clone()
    }

    /// When the current configuration took effect (start or last reload).
    fn config_load_time(&self) -> SystemTime {
        self.server.config_load_time()
    }

    /// Periodic work: CPU sampling.
    fn tick(&self) {
        self.cpu.sample();
    }

    fn base_path(&self, p: &str) -> String {
        join_path(&self.base, p)
    }

    fn now() -> GoTime {
        GoTime(SystemTime::now())
    }
}

/// nats-server's `normalizeBasePath`: leading slash, `path.Clean`ed.
fn normalize_base_path(p: &str) -> String {
    let p = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    clean_path(&p)
}

/// Go's `path.Clean` for absolute paths.
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Go's `path.Join(base, p)` for an absolute, clean `base` and `p`.
fn join_path(base: &str, p: &str) -> String {
    if base == "/" {
        p.to_string()
    } else {
        format!("{base}{p}")
    }
}

/// Every account with local subscriptions or clients: the global account
/// plus any other account a connected client is bound to.
fn accounts(server: &Server) -> Vec<Arc<Account>> {
    let mut out = vec![server.global_account()];
    for c in server.clients() {
        if let Some(acc) = c.account.lock().clone() {
            if !out
                .iter()
                .any(|a| Arc::ptr_eq(a, &acc) || a.name == acc.name)
            {
                out.push(acc);
            }
        }
    }
    out
}

/// `200 OK` with a JSON body, headers as nats-server's `ResponseHandler`.
fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

fn json_ok<T: Serialize>(v: &T) -> Response {
    json_response(StatusCode::OK, gofmt::to_json_pretty(v))
}

fn text_response(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A parameter error: nats-server writes the bare message with status 400.
fn bad_request(msg: String) -> Response {
    text_response(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", msg)
}

/// Go's `http.NotFound`.
fn not_found() -> Response {
    let mut r = text_response(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "404 page not found\n".into(),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The HTTP answer to a data endpoint: pretty JSON, or the 400.
fn respond<T: Serialize>(r: Result<T, ZError>) -> Response {
    match r {
        Ok(v) => json_ok(&v),
        Err(ZError::BadRequest(e) | ZError::Filtered(e)) => bad_request(e),
    }
}

async fn handle(State(m): State<Arc<Monitor>>, uri: Uri) -> Response {
    let Some(ep) = m.route(uri.path()) else {
        return not_found();
    };
    let params = Params::parse(uri.query());
    match ep {
        Endpoint::Root => root(&m),
        Endpoint::Varz => {
            m.count(stat_key::VARZ);
            json_ok(&varz::build(&m))
        }
        Endpoint::Connz => {
            // Counted once the parameters decode, as nats-server counts.
            if connz::ConnzOpts::from_params(&params).is_ok() {
                m.count(stat_key::CONNZ);
            }
            respond(connz::data(&m, &params))
        }
        Endpoint::Routez => {
            if params.subs().is_ok() {
                m.count(stat_key::ROUTEZ);
            }
            respond(routez(&m, &params))
        }
        Endpoint::Subsz => {
            m.count(stat_key::SUBSZ);
            respond(subsz::data(&m, &params))
        }
        Endpoint::Healthz => {
            m.count(stat_key::HEALTHZ);
            match healthz(&m, &params).await {
                Ok(hs) => healthz_http(hs),
                Err(ZError::BadRequest(e) | ZError::Filtered(e)) => bad_request(e),
            }
        }
        Endpoint::Metrics => metrics::handle(&m),
        Endpoint::Jsz => {
            m.count("/jsz");
            respond(jsz::data(&m, &params))
        }
        Endpoint::Accountz => {
            m.count("/accountz");
            respond(accountz::data(&m, &params))
        }
        Endpoint::AccountStatz => {
            m.count("/accstatz");
            respond(accountz::statz_data(&m, &params))
        }
    }
}

/// Serve the monitoring endpoints on `listener` until the server shuts down.
pub async fn serve(monitor: Arc<Monitor>, listener: TcpListener) -> Result<()> {
    serve_on(monitor, listener).await
}

/// Serve the endpoints on any listener (plain TCP, or TLS for https).
pub async fn serve_on<L>(monitor: Arc<Monitor>, listener: L) -> Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let server = monitor.server.clone();
    let app = axum::Router::new().fallback(handle).with_state(monitor);
    let stopped = async move { server.wait_for_shutdown().await };
    axum::serve(listener, app)
        .with_graceful_shutdown(stopped)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- `/`

fn root(m: &Monitor) -> Response {
    m.count(stat_key::ROOT);
    let links = [
        ("General", "/varz"),
        ("Connections", "/connz"),
        ("Subscriptions", "/subsz"),
        ("Routes", "/routez"),
        ("Health Probe", "/healthz"),
        ("Metrics (Prometheus)", "/metrics"),
    ];
    let mut body = String::from(
        "<html lang=\"en\">\n  <head>\n    <title>tribune-broker monitoring</title>\n    <style type=\"text/css\">\n      body { font-family: ui-sans-serif, system-ui, sans-serif; margin-left: 32px }\n      a { display: block; margin-left: 7px; padding-bottom: 6px; color: rgb(72 72 92); text-decoration: none }\n      a:hover { font-weight: 600; color: rgb(59 50 202) }\n      .endpoint { font-size: 12px; color: #999; font-family: monospace }\n    </style>\n  </head>\n  <body>\n",
    );
    body.push_str(&format!(
        "    <h1>tribune-broker</h1>\n    <p class=\"version\">v{} (nats-server {} compatible)</p>\n",
        crate::VERSION,
        crate::server::NATS_COMPAT_VERSION
    ));
    for (label, p) in links {
        body.push_str(&format!(
            "    <a href=.{}>{label}<span class=\"endpoint\"> {p}</span></a>\n",
            m.base_path(p)
        ));
    }
    body.push_str("    <a href=https://docs.nats.io/running-a-nats-service/nats_admin/monitoring>Help</a>\n  </body>\n</html>\n");
    text_response(StatusCode::OK, "text/html; charset=utf-8", body)
}

// ---------------------------------------------------------------- `/routez`

/// `/routez`: one entry per route peer (Tribune keeps one connection per peer).
#[derive(Serialize)]
struct Routez {
    server_id: String,
    server_name: String,
    now: GoTime,
    num_routes: usize,
    routes: Vec<RouteInfo>,
}

/// One route, in nats-server's shape.
#[derive(Serialize)]
struct RouteInfo {
    rid: u64,
    remote_id: String,
    remote_name: String,
    did_solicit: bool,
    is_configured: bool,
    ip: String,
    port: u16,
    start: GoTime,
    last_activity: GoTime,
    #[serde(skip_serializing_if = "String::is_empty")]
    rtt: String,
    uptime: String,
    idle: String,
    pending_size: usize,
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
    subscriptions: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscriptions_list: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscriptions_list_detail: Vec<connz::SubDetail>,
    #[serde(skip_serializing_if = "String::is_empty")]
    account: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    compression: String,
}

fn routez(m: &Monitor, p: &Params) -> Result<Routez, ZError> {
    let (subs, detail) = p.subs().map_err(ZError::BadRequest)?;
    let now = SystemTime::now();
    let routes: Vec<RouteInfo> = m
        .server
        .routes
        .peers()
        .iter()
        .map(|peer| route_entry(peer, now, subs, detail))
        .collect();
    Ok(Routez {
        server_id: m.server.id.clone(),
        server_name: m.server.name.clone(),
        now: Monitor::now(),
        num_routes: routes.len(),
        routes,
    })
}

fn route_entry(peer: &crate::route::Peer, now: SystemTime, subs: bool, detail: bool) -> RouteInfo {
    use std::sync::atomic::Ordering;
    let c = &peer.conn;
    let last =
        SystemTime::UNIX_EPOCH + Duration::from_nanos(c.last_activity.load(Ordering::Relaxed));
    let (out_msgs, out_bytes, pending) = {
        let out = c.out.lock();
        let (m, b) = out.out_counts();
        (m, b, out.pending())
    };
    let list: Vec<Arc<crate::subscription::Subscription>> =
        c.subs.lock().values().cloned().collect();
    let elapsed = |a: SystemTime, b: SystemTime| a.duration_since(b).unwrap_or_default();
    let (ip, port) = match url_host_port(&peer.url) {
        Some(hp) => hp,
        None => (
            c.addr.map(|a| a.ip().to_string()).unwrap_or_default(),
            c.addr.map_or(0, |a| a.port()),
        ),
    };
    RouteInfo {
        rid: c.cid,
        remote_id: peer.id.clone(),
        remote_name: peer.name.clone(),
        did_solicit: peer.solicited,
        is_configured: peer.configured,
        ip,
        port,
        start: GoTime(peer.start),
        last_activity: GoTime(last),
        rtt: gofmt::rtt_string(c.meta.lock().rtt_nanos),
        uptime: gofmt::my_uptime(elapsed(now, peer.start)),
        idle: gofmt::my_uptime(elapsed(now, last)),
        pending_size: pending,
        in_msgs: c.stats.in_msgs.load(Ordering::Relaxed),
        out_msgs,
        in_bytes: c.stats.in_bytes.load(Ordering::Relaxed),
        out_bytes,
        subscriptions: list.len() as u32,
        subscriptions_list: if subs && !detail {
            list.iter().map(|s| s.subject_str()).collect()
        } else {
            Vec::new()
        },
        subscriptions_list_detail: if detail {
            list.iter().map(|s| connz::SubDetail::of(s)).collect()
        } else {
            Vec::new()
        },
        account: String::new(),
        compression: "off".to_string(),
    }
}

/// `(host, port)` of a route URL.
fn url_host_port(url: &str) -> Option<(String, u16)> {
    let u = crate::route::RouteUrl::parse(url).ok()?;
    Some((u.host, u.port))
}

// ---------------------------------------------------------------- `/healthz`

#[derive(Serialize, Default)]
struct HealthStatus {
    status: &'static str,
    /// The HTTP status; shown only in system account replies (nats-server
    /// leaves it out of the HTTP body).
    #[serde(skip_serializing_if = "is_zero_u16")]
    status_code: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    error: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<HealthzError>,
}

#[derive(Serialize)]
struct HealthzError {
    #[serde(rename = "type")]
    kind: &'static str,
    error: String,
}

/// JetStream's part of `/healthz`, as nats-server checks it: nothing
/// without JetStream, or with `js-enabled-only` / `js-server-only`;
/// otherwise a clustered server must be current with the meta leader and
/// (unless `js-meta-only`) every stream replica it holds must be caught
/// up, so a rolling upgrade waits for a restarted node to catch up before
/// taking down the next.
async fn jetstream_health(m: &Monitor, p: &Params) -> Option<String> {
    let flag = |k: &str| p.bool(k).unwrap_or(false);
    let js = m.server.jetstream()?;
    if flag("js-enabled-only") || flag("js-server-only") {
        return None;
    }
    let Some(cluster) = js.cluster() else {
        // Clustered but not in the domain yet (starting up).
        return m
            .server
            .opts()
            .cluster
            .enabled()
            .then(|| "JetStream has not established contact with a meta leader".to_string());
    };
    cluster
        .health_problems(flag("js-meta-only"))
        .await
        .into_iter()
        .next()
}

fn is_zero_u16(v: &u16) -> bool {
    *v == 0
}

/// `/healthz`'s answer over HTTP: the status code, and the body without it.
fn healthz_http(mut hs: HealthStatus) -> Response {
    let code = StatusCode::from_u16(hs.status_code).unwrap_or(StatusCode::OK);
    hs.status_code = 0;
    json_response(code, gofmt::to_json(&hs))
}

/// `/healthz`, as nats-server answers it with JetStream disabled: `ok` once
/// the client listener is up, and the readiness error (status 500) before
/// that and in lame-duck mode, when the client listener is closed. The
/// status code travels in the answer (`status_code`), as nats-server's
/// system account replies show it.
async fn healthz(m: &Monitor, p: &Params) -> Result<HealthStatus, ZError> {
    // Decoded here for their 400s; `jetstream_health` reads them.
    for key in [
        "js-enabled",
        "js-enabled-only",
        "js-server-only",
        "js-meta-only",
    ] {
        p.bool(key).map_err(ZError::BadRequest)?;
    }
    let details = p.bool("details").map_err(ZError::BadRequest)?;
    let (code, problem, kind) = if p.get("account").is_empty() && !p.get("stream").is_empty() {
        (
            StatusCode::BAD_REQUEST,
            "\"account\" must not be empty when checking stream health".to_string(),
            "BAD_REQUEST",
        )
    } else if p.get("stream").is_empty() && !p.get("consumer").is_empty() {
        (
            StatusCode::BAD_REQUEST,
            "\"stream\" must not be empty when checking consumer health".to_string(),
            "BAD_REQUEST",
        )
    } else if m.server.listeners().client.is_none()
        || m.server.is_lame_duck()
        || m.server.is_shutting_down()
    {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to be ready for connections after 1ms: server".to_string(),
            "CONNECTION",
        )
    } else if let Some(problem) = jetstream_health(m, p).await {
        (StatusCode::SERVICE_UNAVAILABLE, problem, "JETSTREAM")
    } else {
        return Ok(HealthStatus {
            status: "ok",
            status_code: 200,
            ..Default::default()
        });
    };
    let mut hs = if details {
        HealthStatus {
            status: "error",
            errors: vec![HealthzError {
                kind,
                error: problem,
            }],
            ..Default::default()
        }
    } else {
        HealthStatus {
            status: "error",
            error: problem,
            ..Default::default()
        }
    };
    hs.status_code = code.as_u16();
    Ok(hs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Options;

    #[test]
    fn base_paths_normalize_like_nats_server() {
        assert_eq!(normalize_base_path(""), "/");
        assert_eq!(normalize_base_path("/"), "/");
        assert_eq!(normalize_base_path("mon"), "/mon");
        assert_eq!(normalize_base_path("/mon/"), "/mon");
        assert_eq!(normalize_base_path("/a//b/../c"), "/a/c");
        assert_eq!(join_path("/", "/varz"), "/varz");
        assert_eq!(join_path("/mon", "/varz"), "/mon/varz");
    }

    #[test]
    fn routing_is_exact() {
        let opts = Options {
            http_base_path: "/mon".into(),
            ..Default::default()
        };
        let m = Monitor::new(Server::new(opts));
        assert_eq!(m.route("/mon"), Some(Endpoint::Root));
        assert_eq!(m.route("/mon/varz"), Some(Endpoint::Varz));
        assert_eq!(m.route("/mon/subscriptionsz"), Some(Endpoint::Subsz));
        assert_eq!(m.route("/mon/varz/"), None);
        assert_eq!(m.route("/varz"), None);
        assert_eq!(m.route("/"), None);
        let m = Monitor::new(Server::new(Options::default()));
        assert_eq!(m.route("/"), Some(Endpoint::Root));
        assert_eq!(m.route("/metrics"), Some(Endpoint::Metrics));
        assert_eq!(m.route("/nope"), None);
    }
}
