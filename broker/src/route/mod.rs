//! Routes: the full mesh between cluster members.
//!
//! Every server keeps one connection to every other server. Tribune does
//! not pool route connections: it leaves `route_pool_size` out of its INFO,
//! which nats-server 2.15 answers by using a single connection that carries
//! every account, so Tribune and nats-server nodes can share a cluster.
//!
//! Interest travels as `RS+`/`RS-`: a server tells its peers which subjects
//! its own clients listen on (and how many members each queue group has),
//! and a peer stores that interest in its subscription index as
//! subscriptions owned by the route connection. A message then crosses a
//! route only when the remote side has interest, and crosses one hop only:
//! what arrives from a route is delivered to local clients, never forwarded.
//!
//! Peers find each other by gossip: when a server registers a new peer it
//! forwards that peer's INFO to the others, which dial it, so a node that
//! knows a single seed ends up connected to all.

mod conn;
pub mod js_deliver;
pub mod parser;
pub mod security;
pub mod url;

pub use self::url::RouteUrl;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::client::{ClientShared, ClosedState};
use crate::server::Server;
use crate::subscription::Subscription;

/// Route protocol level we speak: 2 (accounts in RS+/RMSG). Level 3 adds
/// message tracing, which Tribune does not implement.
pub const ROUTE_PROTO: i32 = 2;

/// The INFO a server sends on a route. Leaving out `route_pool_size` puts
/// nats-server peers in single-connection mode; `compression: "off"` keeps
/// them from switching the stream to S2.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RouteInfo {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub proto: i32,
    pub go: String,
    pub host: String,
    pub port: u16,
    pub headers: bool,
    /// Peers must present `cluster { authorization }` credentials.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auth_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_verify: bool,
    pub max_payload: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ip: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    /// The server's WebSocket URLs (`host:port`), for WebSocket clients to
    /// fail over to, as nats-server gossips them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ws_connect_urls: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub compression: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ldm: bool,
    /// JetStream runs on this server (nats-server sends the same flag):
    /// peers count it as a member of the JetStream domain.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub jetstream: bool,
    #[serde(skip_serializing_if = "is_zero_u8")]
    pub gossip_mode: u8,
    /// Set by a pooled nats-server on connections dedicated to one account,
    /// which a single-connection peer refuses.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub route_account: String,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub route_pool_idx: i64,
}

fn is_zero_u8(v: &u8) -> bool {
    *v == 0
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

impl RouteInfo {
    pub fn to_line(&self) -> Vec<u8> {
        let mut out = b"INFO ".to_vec();
        if serde_json::to_writer(&mut out, self).is_err() {
            out.extend_from_slice(b"{}");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The URL to dial this server's route port: `ip` if it advertised one,
    /// else its host and port, with the host taken from the connection when
    /// it bound to a wildcard.
    pub fn route_url(&self, peer_addr: Option<SocketAddr>) -> String {
        if !self.ip.is_empty() {
            return self.ip.clone();
        }
        let host = match (self.host.as_str(), peer_addr) {
            ("" | "0.0.0.0" | "::", Some(a)) => a.ip().to_string(),
            (h, _) => h.to_string(),
        };
        format!(
            "nats-route://{}/",
            crate::server::join_host_port(&host, self.port)
        )
    }
}

/// The CONNECT a soliciting server sends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteConnect {
    pub echo: bool,
    pub verbose: bool,
    pub pedantic: bool,
    pub tls_required: bool,
    pub headers: bool,
    pub name: String,
    pub cluster: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    /// Only clients send `lang`: its presence on the route port means a
    /// client dialled the wrong port.
    #[serde(skip_serializing)]
    pub lang: Option<String>,
}

/// A registered cluster peer.
#[derive(Debug, Clone)]
pub struct Peer {
    pub id: String,
    pub name: String,
    pub conn: Arc<ClientShared>,
    pub info: RouteInfo,
    /// Where to dial it.
    pub url: String,
    pub solicited: bool,
    pub configured: bool,
    pub start: SystemTime,
}

/// A key of local interest: account, subject, queue.
type InterestKey = (String, Box<[u8]>, Option<Box<[u8]>>);

#[derive(Default)]
struct State {
    /// Local client subscriptions, counted per subject and queue group.
    interest: HashMap<InterestKey, u32>,
    peers: Vec<Peer>,
    /// Route URLs being dialled or known to lead to a peer, so gossip does
    /// not start a second dial to the same place.
    dialing: HashSet<String>,
}

/// The cluster side of a server.
pub struct Routes {
    state: Mutex<State>,
    /// Bumped whenever a peer registers or leaves; solicit loops wait on it.
    changed: watch::Sender<u64>,
    /// Route URLs that turned out to be this server itself.
    self_urls: Mutex<HashSet<String>>,
    /// Accepted connections that have not registered yet, bounded.
    admission: security::Admission,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
            self_urls: Mutex::new(HashSet::new()),
            admission: security::Admission::default(),
        }
    }
}

fn interest_line(
    sub: bool,
    account: &str,
    subject: &[u8],
    queue: Option<&[u8]>,
    weight: u32,
) -> Vec<u8> {
    let mut l = Vec::with_capacity(16 + account.len() + subject.len());
    l.extend_from_slice(if sub { b"RS+ " } else { b"RS- " });
    l.extend_from_slice(account.as_bytes());
    l.push(b' ');
    l.extend_from_slice(subject);
    if let Some(q) = queue {
        l.push(b' ');
        l.extend_from_slice(q);
        if sub {
            l.extend_from_slice(format!(" {weight}").as_bytes());
        }
    }
    l.extend_from_slice(b"\r\n");
    l
}

/// Why a route could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// A route to that server exists already.
    Duplicate,
}

impl Routes {
    /// A place for a route connection just accepted from `from`, or `None`
    /// (logged) when [`security::MAX_UNREGISTERED`] are waiting already.
    pub fn admit(&self, from: SocketAddr) -> Option<security::Slot> {
        self.admission.admit(from)
    }

    /// A local client subscribed: tell the peers on the first subscriber
    /// (plain) or on every change of a queue group's size.
    pub fn add_local(&self, account: &str, sub: &Subscription) {
        let mut st = self.state.lock();
        let key = (account.to_string(), sub.subject.clone(), sub.queue.clone());
        let n = st.interest.entry(key).or_insert(0);
        *n += 1;
        let count = *n;
        if sub.queue.is_some() || count == 1 {
            let line = interest_line(true, account, &sub.subject, sub.queue.as_deref(), count);
            for p in &st.peers {
                p.conn.send(&line);
            }
        }
    }

    /// Interest that is not a client subscription (a stream import's shadow
    /// interest, service response subjects): counted like one.
    pub fn add_local_subject(&self, account: &str, subject: &[u8], add: bool) {
        let mut st = self.state.lock();
        let key = (account.to_string(), Box::from(subject), None);
        let n = st.interest.entry(key.clone()).or_insert(0);
        let line = if add {
            *n += 1;
            (*n == 1).then(|| interest_line(true, account, subject, None, 0))
        } else {
            *n = n.saturating_sub(1);
            let gone = *n == 0;
            if gone {
                st.interest.remove(&key);
            }
            gone.then(|| interest_line(false, account, subject, None, 0))
        };
        if let Some(line) = line {
            for p in &st.peers {
                p.conn.send(&line);
            }
        }
    }

    /// A local client subscription went away.
    pub fn remove_local(&self, account: &str, sub: &Subscription) {
        let mut st = self.state.lock();
        let key = (account.to_string(), sub.subject.clone(), sub.queue.clone());
        let Some(n) = st.interest.get_mut(&key) else {
            return;
        };
        *n -= 1;
        let count = *n;
        if count == 0 {
            st.interest.remove(&key);
        }
        let line = match (&sub.queue, count) {
            (None, 0) => interest_line(false, account, &sub.subject, None, 0),
            (None, _) => return,
            (Some(q), 0) => interest_line(false, account, &sub.subject, Some(q), 0),
            (Some(q), c) => interest_line(true, account, &sub.subject, Some(q), c),
        };
        for p in &st.peers {
            p.conn.send(&line);
        }
    }

    /// Register a peer whose INFO arrived, and send it all local interest
    /// under the same lock that orders interest updates, so it misses none.
    ///
    /// Two servers that dial each other at once each end up with two
    /// connections to the other. Both must keep the same one, or each closes
    /// the one the other kept and they start over: the one kept is the one
    /// dialled by the server with the smaller id. When the connection already
    /// registered is not that one, it is closed and replaced.
    pub fn register(&self, peer: Peer, own_id: &str) -> Result<(), RegisterError> {
        let mut st = self.state.lock();
        if let Some(i) = st.peers.iter().position(|p| p.id == peer.id) {
            let dialled_by_smaller = |p: &Peer| {
                if p.solicited {
                    own_id < p.id.as_str()
                } else {
                    p.id.as_str() < own_id
                }
            };
            if dialled_by_smaller(&st.peers[i]) || !dialled_by_smaller(&peer) {
                return Err(RegisterError::Duplicate);
            }
            let old = st.peers.remove(i);
            st.dialing.remove(&old.url);
            debug!(
                "Replacing duplicate route to {:?} with the one it dialled",
                old.id
            );
            old.conn.close(ClosedState::DuplicateRoute);
        }
        let mut batch = Vec::new();
        for ((acc, subject, queue), n) in &st.interest {
            batch.extend_from_slice(&interest_line(true, acc, subject, queue.as_deref(), *n));
        }
        if !batch.is_empty() {
            peer.conn.send(&batch);
        }
        st.dialing.insert(peer.url.clone());
        st.peers.push(peer);
        drop(st);
        self.changed.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Forget a peer whose connection closed.
    pub fn unregister(&self, conn: &Arc<ClientShared>) -> Option<Peer> {
        let mut st = self.state.lock();
        let i = st.peers.iter().position(|p| Arc::ptr_eq(&p.conn, conn))?;
        let peer = st.peers.remove(i);
        st.dialing.remove(&peer.url);
        drop(st);
        self.changed.send_modify(|v| *v += 1);
        Some(peer)
    }

    pub fn peers(&self) -> Vec<Peer> {
        self.state.lock().peers.clone()
    }

    pub fn has_peer(&self, id: &str) -> bool {
        self.state.lock().peers.iter().any(|p| p.id == id)
    }

    /// The id of a registered peer whose route listener is at `host:port`,
    /// as its INFO told (or as seen on its connection when it listens on
    /// every address). A configured route that peer dialled first is
    /// thereby known to be connected, and is not dialled again: the second
    /// connection would replace the first one, traffic and all, and lose
    /// what was in flight on it.
    pub fn peer_listening_at(&self, host: &str, port: u16) -> Option<String> {
        let st = self.state.lock();
        st.peers
            .iter()
            .find(|p| RouteUrl::parse(&p.url).is_ok_and(|u| u.port == port && u.host == host))
            .map(|p| p.id.clone())
    }

    pub fn num_peers(&self) -> usize {
        self.state.lock().peers.len()
    }

    /// Mark a URL as being dialled; false if it already is or leads to a known peer.
    fn claim_dial(&self, url: &str) -> bool {
        self.state.lock().dialing.insert(url.to_string())
    }

    fn release_dial(&self, url: &str) {
        let mut st = self.state.lock();
        let registered = st.peers.iter().any(|p| p.url == url);
        if !registered {
            st.dialing.remove(url);
        }
    }

    /// Update a peer's INFO (e.g. lame duck); returns true if it changed
    /// the client URLs the cluster advertises.
    pub fn update_peer_info(&self, conn: &Arc<ClientShared>, info: RouteInfo) -> bool {
        let mut st = self.state.lock();
        let Some(p) = st.peers.iter_mut().find(|p| Arc::ptr_eq(&p.conn, conn)) else {
            return false;
        };
        let changed = p.info.ldm != info.ldm
            || p.info.connect_urls != info.connect_urls
            || p.info.ws_connect_urls != info.ws_connect_urls;
        p.info = info;
        changed
    }

    /// Client URLs of the peers, in the order they joined; lame-duck peers
    /// are left out so clients do not reconnect to a server that is leaving.
    pub fn peer_client_urls(&self) -> Vec<String> {
        let st = self.state.lock();
        st.peers
            .iter()
            .filter(|p| !p.info.ldm)
            .flat_map(|p| p.info.connect_urls.iter().cloned())
            .collect()
    }

    /// WebSocket URLs of the peers, as [`Self::peer_client_urls`].
    pub fn peer_ws_urls(&self) -> Vec<String> {
        let st = self.state.lock();
        st.peers
            .iter()
            .filter(|p| !p.info.ldm)
            .flat_map(|p| p.info.ws_connect_urls.iter().cloned())
            .collect()
    }

    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn is_self_url(&self, url: &str) -> bool {
        self.self_urls.lock().contains(url)
    }

    fn mark_self_url(&self, url: &str) {
        self.self_urls.lock().insert(url.to_string());
    }
}

/// The largest message a route peer may send: nats-server's ceiling for
/// `max_payload` (64 MiB). Routes are not held to the clients' limit.
pub const MAX_ROUTE_MESSAGE: usize = 64 * 1024 * 1024;

/// How long an explicit route waits before redialling, at most.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Keep an explicitly configured (or discovered) route connected for as
/// long as `keep` says true: dial, run the connection, and on failure or
/// close dial again with capped, jittered backoff.
pub async fn solicit_forever(server: Arc<Server>, url: RouteUrl, mut keep: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(200);
    let mut changes = server.routes.subscribe_changes();
    loop {
        if !*keep.borrow() || server.is_shutting_down() {
            return;
        }
        if server.routes.is_self_url(&url.text) {
            debug!(
                "Route {} is this server itself, not dialling it",
                url.redacted()
            );
            return;
        }
        let mut peer_known = url
            .peer_id
            .lock()
            .clone()
            .is_some_and(|id| server.routes.has_peer(&id));
        if !peer_known {
            if let Some(id) = server.routes.peer_listening_at(&url.host, url.port) {
                // The peer dialled us before our dial reached it.
                *url.peer_id.lock() = Some(id);
                peer_known = true;
            }
        }
        if peer_known {
            // Connected already (maybe through the peer dialling us): wait
            // until the set of peers changes, then look again.
            tokio::select! {
                _ = changes.changed() => {}
                _ = keep.changed() => {}
            }
            continue;
        }
        match conn::dial(&server, &url, true).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => {
                debug!("Error trying to connect to route {}: {e:#}", url.redacted());
            }
        }
        if server.routes.is_self_url(&url.text) {
            return;
        }
        // Random jitter, so two nodes that dialled each other at once (and
        // each dropped the other's connection as a duplicate) do not keep
        // colliding.
        let jitter = Duration::from_millis(rand::random_range(0..250));
        tokio::select! {
            _ = tokio::time::sleep(backoff + jitter) => {}
            _ = keep.changed() => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Dial a peer learned through gossip: a few tries, then give up (the peer
/// or another member will dial us if it is really there). Gossip carries no
/// credentials, so a peer that requires them gets this node's own
/// `cluster { authorization }`, as nats-server sends them.
pub fn dial_gossiped(server: &Arc<Server>, url: String, auth_required: bool) {
    if server.routes.is_self_url(&url) || !server.routes.claim_dial(&url) {
        return;
    }
    // A configured (or discovered) route is dialled by its keeper, with the
    // credentials in its URL: this node's own may be a bcrypt hash, which
    // can never authenticate (nats-server: `hasThisRouteConfigured`).
    if RouteUrl::parse(&url).is_ok_and(|u| server.keeps_route_to(&u.host, u.port)) {
        server.routes.release_dial(&url);
        return;
    }
    let server = server.clone();
    tokio::spawn(async move {
        let parsed = match RouteUrl::parse(&url) {
            Ok(mut u) => {
                let opts = server.opts();
                if auth_required && u.user.is_none() {
                    u.user = opts.cluster.username.clone();
                    u.pass = opts.cluster.password.clone();
                }
                u
            }
            Err(e) => {
                warn!("Ignoring gossiped route {}: {e}", crate::redact::url(&url));
                server.routes.release_dial(&url);
                return;
            }
        };
        for attempt in 0..3u32 {
            match conn::dial(&server, &parsed, false).await {
                Ok(()) => break,
                Err(e) => debug!(
                    "Error trying to connect to route {} (attempt {}): {e:#}",
                    parsed.redacted(),
                    attempt + 1
                ),
            }
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt + 1))).await;
        }
        server.routes.release_dial(&url);
    });
}

pub use conn::accept;

/// Log the set of routes when it changes, as operators expect to see it.
pub fn log_peer_added(p: &Peer) {
    info!("{} - Route connection created", p.conn.tag());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, solicited: bool) -> Peer {
        Peer {
            id: id.into(),
            name: id.into(),
            conn: Arc::new(ClientShared::detached()),
            info: RouteInfo::default(),
            url: format!("nats-route://{id}:6222"),
            solicited,
            configured: true,
            start: SystemTime::now(),
        }
    }

    /// A peer that dialled in is found by the address its INFO advertises,
    /// so the configured route to it is not dialled a second time.
    #[test]
    fn a_peer_that_dialled_in_is_found_by_its_listen_address() {
        let routes = Routes::default();
        routes.register(peer("B", false), "A").unwrap();
        assert_eq!(routes.peer_listening_at("B", 6222).as_deref(), Some("B"));
        assert_eq!(routes.peer_listening_at("B", 6223), None);
        assert_eq!(routes.peer_listening_at("C", 6222), None);
    }

    /// Servers "A" < "B" dialled each other at once. Whatever order the two
    /// connections register in, each side keeps the one A dialled: on A
    /// that is its solicited route, on B the one it accepted. The other is
    /// refused when it comes second (its reader then closes it) and closed
    /// here when it came first.
    #[test]
    fn crossed_dials_keep_the_connection_the_smaller_id_dialled() {
        for (own, remote, keeps_own_dial) in [("A", "B", true), ("B", "A", false)] {
            for accepted_first in [true, false] {
                let routes = Routes::default();
                let (mine, theirs) = (peer(remote, true), peer(remote, false));
                let (first, second) = if accepted_first {
                    (theirs.clone(), mine.clone())
                } else {
                    (mine.clone(), theirs.clone())
                };
                let (kept, lost) = if keeps_own_dial {
                    (&mine, &theirs)
                } else {
                    (&theirs, &mine)
                };
                let lost_came_first = Arc::ptr_eq(&lost.conn, &first.conn);
                routes.register(first, own).unwrap();
                let second_kept = routes.register(second, own).is_ok();
                let peers = routes.peers();
                assert_eq!(peers.len(), 1, "{own}");
                assert!(
                    Arc::ptr_eq(&peers[0].conn, &kept.conn),
                    "{own} keeps A's dial"
                );
                assert_eq!(second_kept, lost_came_first, "{own}");
                assert_eq!(
                    lost.conn.closed_reason(),
                    lost_came_first.then_some(ClosedState::DuplicateRoute),
                    "{own}"
                );
                assert_eq!(kept.conn.closed_reason(), None, "{own}");
            }
        }
    }
}
