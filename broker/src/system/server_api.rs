//! The system account's requests about servers, and the events a server
//! sends about itself, on nats-server's subjects and in its JSON:
//!
//! | Subject | Answer |
//! |---|---|
//! | `$SYS.REQ.SERVER.PING` | every server's `STATSZ` (how `nats server list` finds the cluster) |
//! | `$SYS.REQ.SERVER.PING.<KIND>` | every server's `<KIND>` |
//! | `$SYS.REQ.SERVER.<id>.<KIND>` | that server's `<KIND>` |
//! | `$SYS.REQ.ACCOUNT.<account>.<KIND>` | `CONNZ`, `SUBSZ`, `JSZ`, `INFO` or `STATZ` of one account, from every server |
//! | `$SYS.REQ.ACCOUNT.PING.STATZ` | every server's `STATZ` of the accounts with clients there |
//! | `$SYS.SERVER.<id>.STATSZ` | sent by each server: at a quarter second after start, backing off to every 10s |
//! | `$SYS.ACCOUNT.<account>.CONNECT`, `.DISCONNECT`, `.SERVER.CONNS` | a client of the account came or went ([`super::client_events`]); CONNS also every 30s while it has clients |
//! | `$SYS.SERVER.<id>.LAMEDUCK`, `.SHUTDOWN` | sent when a server enters lame duck mode or shuts down |
//!
//! `<KIND>` is `STATSZ`, `IDZ`, or an HTTP endpoint (`VARZ`, `CONNZ`,
//! `SUBSZ`, `ROUTEZ`, `JSZ`, `HEALTHZ`) answered from the same code as its
//! HTTP twin, with the request's JSON options in place of the query string.
//! Kinds nats-server has and Tribune does not (gateways, leaf nodes,
//! profiling) are answered with nats-server's error object, so a tool gets
//! a reason instead of a timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::debug;

use super::client_events;
use super::options::{self, EventFilter, Identity};
use super::ServerInfo;
use crate::client::{ClientShared, ClosedState};
use crate::internal::{ChannelHandler, InternalClient, OwnedMsg};
use crate::monitor::statsz::{self, ServerStats};
use crate::monitor::{Monitor, ZError, Z};
use crate::server::Server;

/// The request every server answers with its `STATSZ`.
pub const PING: &str = "$SYS.REQ.SERVER.PING";

/// How often a server sends its `STATSZ` once started (nats-server's
/// `statsHBInterval`).
const STATSZ_INTERVAL: Duration = Duration::from_secs(10);

/// How often each account with clients sends its CONNS event (nats-server's
/// `eventsHBInterval`).
const ACCOUNT_CONNS_INTERVAL: Duration = Duration::from_secs(30);

/// What one request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Statsz,
    Idz,
    Z(Z),
    /// Gateways or leaf nodes: Tribune has none, and says so in
    /// nats-server's shape (an empty `Gatewayz` or `Leafz`).
    Empty(&'static str),
    /// A kind nats-server answers and Tribune has nothing for.
    Unsupported(&'static str),
    /// `$SYS.REQ.SERVER.<id>.RELOAD`: read the configuration file again.
    /// Only by id: no `PING` form reloads every server at once.
    Reload,
}

const KINDS: &[(&str, Kind)] = &[
    ("STATSZ", Kind::Statsz),
    ("IDZ", Kind::Idz),
    ("VARZ", Kind::Z(Z::Varz)),
    ("CONNZ", Kind::Z(Z::Connz)),
    ("SUBSZ", Kind::Z(Z::Subsz)),
    ("ROUTEZ", Kind::Z(Z::Routez)),
    ("JSZ", Kind::Z(Z::Jsz)),
    ("HEALTHZ", Kind::Z(Z::Healthz)),
    ("ACCOUNTZ", Kind::Z(Z::Accountz)),
    ("GATEWAYZ", Kind::Empty("GATEWAYZ")),
    ("LEAFZ", Kind::Empty("LEAFZ")),
    ("EXPVARZ", Kind::Unsupported("EXPVARZ")),
    ("IPQUEUESZ", Kind::Unsupported("IPQUEUESZ")),
    ("RAFTZ", Kind::Unsupported("RAFTZ")),
    ("PROFILEZ", Kind::Unsupported("PROFILEZ")),
];

/// What `$SYS.REQ.ACCOUNT.<account>.<KIND>` may ask.
const ACCOUNT_KINDS: &[&str] = &["CONNZ", "SUBSZ", "JSZ", "INFO", "STATZ", "LEAFZ"];

/// `(account, kind)` of an account request subject.
fn account_request(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.strip_prefix("$SYS.REQ.ACCOUNT.")?;
    let (account, kind) = rest.split_once('.')?;
    (ACCOUNT_KINDS.contains(&kind) && !account.is_empty()).then_some((account, kind))
}

/// nats-server's `ApiError` in a system reply.
#[derive(Debug, Serialize)]
struct ApiError {
    code: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
}

/// nats-server's `ServerAPIResponse` with an error instead of data.
#[derive(Serialize)]
struct ErrorResponse {
    server: ServerInfo,
    /// `null` when the endpoint itself failed: nats-server's reply carries
    /// the empty result next to the error then.
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<()>,
    error: ApiError,
}

/// nats-server's answer to a successful `RELOAD`: the server block only.
#[derive(Serialize)]
struct Reloaded {
    server: ServerInfo,
}

/// nats-server's `ServerStatsMsg`.
#[derive(Serialize)]
struct StatszMsg {
    server: ServerInfo,
    statsz: ServerStats,
}

/// nats-server's `ServerID`, the answer to `IDZ`.
#[derive(Serialize)]
struct ServerId<'a> {
    name: &'a str,
    host: &'a str,
    id: &'a str,
}

struct Service {
    server: Weak<Server>,
    monitor: Arc<Monitor>,
    client: InternalClient,
    /// Counts the messages this service sent (`server.seq`).
    seq: AtomicU64,
    statsz_subject: String,
}

/// The events a server sends about itself; held by the server.
#[derive(Clone)]
pub struct Events(Arc<Service>);

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// `$SYS.SERVER.<id>.LAMEDUCK`: this server stops taking clients.
    pub fn lame_duck(&self, server: &Server) {
        self.0.send_server_event(server, "LAMEDUCK");
    }

    /// `$SYS.SERVER.<id>.SHUTDOWN`: this server is going away.
    pub fn shutdown(&self, server: &Server) {
        self.0.send_server_event(server, "SHUTDOWN");
    }

    /// This server's `server` block for a system message sent now.
    pub fn server_info(&self, server: &Server) -> ServerInfo {
        self.0.info(server)
    }

    /// `$SYS.ACCOUNT.<account>.CONNECT`: `c` logged in.
    pub fn client_connected(&self, server: &Server, c: &ClientShared) {
        let account = c.meta.lock().account.clone();
        self.0.send_account_conns(server, &account);
        if !self
            .0
            .listened(server, &format!("$SYS.ACCOUNT.{account}.CONNECT"))
        {
            return;
        }
        if let Some((subject, event)) = client_events::connect(c, self.0.info(server)) {
            self.0.send(server, &subject, &event);
        }
    }

    /// `$SYS.ACCOUNT.<account>.DISCONNECT`: `c` closed for `reason`.
    pub fn client_disconnected(&self, server: &Server, c: &ClientShared, reason: ClosedState) {
        let (account, announced) = {
            let meta = c.meta.lock();
            (meta.account.clone(), meta.announced)
        };
        if account.is_empty() || !announced {
            return;
        }
        if self
            .0
            .listened(server, &format!("$SYS.ACCOUNT.{account}.DISCONNECT"))
        {
            if let Some((subject, event)) =
                client_events::disconnect(c, reason, self.0.info(server))
            {
                self.0.send(server, &subject, &event);
            }
        }
        self.0.send_account_conns(server, &account);
    }
}

/// Subscribe in the system account and serve until the server shuts down.
pub fn start(server: &Arc<Server>, monitor: Arc<Monitor>) -> Result<Events> {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = InternalClient::new(
        server,
        server.system_account(),
        Arc::new(ChannelHandler(tx)),
    );
    client.subscribe(server, PING, None)?;
    for name in ACCOUNT_KINDS {
        client.subscribe(server, &format!("$SYS.REQ.ACCOUNT.*.{name}"), None)?;
    }
    client.subscribe(
        server,
        &format!("$SYS.REQ.SERVER.{}.RELOAD", server.id),
        None,
    )?;
    for (name, _) in KINDS {
        client.subscribe(server, &format!("{PING}.{name}"), None)?;
        client.subscribe(
            server,
            &format!("$SYS.REQ.SERVER.{}.{name}", server.id),
            None,
        )?;
    }
    let svc = Arc::new(Service {
        server: Arc::downgrade(server),
        monitor,
        client,
        seq: AtomicU64::new(0),
        statsz_subject: format!("$SYS.SERVER.{}.STATSZ", server.id),
    });
    tokio::spawn(svc.clone().serve(rx));
    tokio::spawn(svc.clone().heartbeat());
    tokio::spawn(svc.clone().account_conns_heartbeat());
    Ok(Events(svc))
}

/// nats-server's `Gatewayz` or `Leafz` of a server with none.
fn empty_data(server: &Server, kind: &str) -> String {
    let now = crate::monitor::gofmt::rfc3339_nano(std::time::SystemTime::now());
    let id = &server.id;
    if kind == "GATEWAYZ" {
        format!(
            "{{\"server_id\":\"{id}\",\"now\":\"{now}\",\"outbound_gateways\":{{}},\"inbound_gateways\":{{}}}}"
        )
    } else {
        format!("{{\"server_id\":\"{id}\",\"now\":\"{now}\",\"leafnodes\":0,\"leafs\":[]}}")
    }
}

/// A request whose JSON holds only the filter.
fn filter_only(body: &[u8]) -> Result<((), EventFilter), String> {
    options::filter(body).map(|f| ((), f))
}

/// The kind a request subject asks for.
fn kind_of(subject: &str, id: &str) -> Option<Kind> {
    if subject == PING {
        return Some(Kind::Statsz);
    }
    let rest = subject.strip_prefix("$SYS.REQ.SERVER.")?;
    let (target, name) = rest.split_once('.')?;
    if target != "PING" && target != id {
        return None;
    }
    if name == "RELOAD" {
        return (target == id).then_some(Kind::Reload);
    }
    KINDS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

impl Service {
    async fn serve(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<OwnedMsg>) {
        loop {
            let msg = tokio::select! {
                m = rx.recv() => m,
                () = self.shutting_down() => None,
            };
            let (Some(msg), Some(server)) = (msg, self.server.upgrade()) else {
                return;
            };
            self.handle(&server, &msg).await;
        }
    }

    async fn shutting_down(&self) {
        if let Some(s) = self.server.upgrade() {
            s.wait_for_shutdown().await;
        }
    }

    /// Send `STATSZ` a quarter second after start, then ever less often up
    /// to every [`STATSZ_INTERVAL`]. A server without routes sends only when
    /// someone listens, as nats-server does.
    async fn heartbeat(self: Arc<Self>) {
        let mut n = 0;
        loop {
            let wait = statsz::heartbeat_delay(n, STATSZ_INTERVAL);
            n = n.saturating_add(1);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.shutting_down() => return,
            }
            let Some(server) = self.server.upgrade() else {
                return;
            };
            let clustered = server.opts().cluster.enabled();
            if clustered || self.listened(&server, &self.statsz_subject) {
                self.send_statsz(&server, &self.statsz_subject);
            }
        }
    }

    /// Someone (here or, through a route, elsewhere) subscribes to `subject`
    /// in the system account: events nobody hears are not even built.
    fn listened(&self, server: &Server, subject: &str) -> bool {
        !server
            .system_account()
            .sublist
            .match_subject(subject.as_bytes())
            .is_empty()
    }

    /// Every [`ACCOUNT_CONNS_INTERVAL`], the CONNS event of each account
    /// with clients here.
    async fn account_conns_heartbeat(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(ACCOUNT_CONNS_INTERVAL) => {}
                () = self.shutting_down() => return,
            }
            let Some(server) = self.server.upgrade() else {
                return;
            };
            for acc in server.accounts() {
                if acc.num_clients() > 0 {
                    self.send_account_conns(&server, &acc.name);
                }
            }
        }
    }

    /// `$SYS.ACCOUNT.<account>.SERVER.CONNS` and its old subject, if anyone
    /// listens (never for the global account, as nats-server).
    fn send_account_conns(&self, server: &Server, account: &str) {
        if account.is_empty() || account == crate::accounts::GLOBAL_ACCOUNT {
            return;
        }
        let subjects = [
            format!("$SYS.ACCOUNT.{account}.SERVER.CONNS"),
            format!("$SYS.SERVER.ACCOUNT.{account}.CONNS"),
        ];
        if !subjects.iter().any(|s| self.listened(server, s)) {
            return;
        }
        let Some(acc) = server.account(account.as_bytes()) else {
            return;
        };
        let event = client_events::AccountConnsEvent {
            head: client_events::EventHead::new(
                client_events::ACCOUNT_CONNS_TYPE,
                self.info(server),
                std::time::SystemTime::now(),
            ),
            stat: crate::monitor::accountz::account_stat(server, &acc),
        };
        for s in &subjects {
            self.send(server, s, &event);
        }
    }

    fn info(&self, server: &Server) -> ServerInfo {
        ServerInfo::of(server, self.seq.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// The options of a request if it is for this server: `None` when its
    /// filter names other servers, or when its JSON does not decode (then
    /// answered on `to` with nats-server's 400).
    fn addressed<T>(
        &self,
        server: &Server,
        to: &str,
        decoded: Result<(T, EventFilter), String>,
    ) -> Option<T> {
        match decoded {
            Ok((opts, filter)) => (!self.excluded(server, &filter)).then_some(opts),
            Err(e) => {
                self.send_error(server, to, 400, e);
                None
            }
        }
    }

    fn excluded(&self, server: &Server, filter: &EventFilter) -> bool {
        let opts = server.opts();
        let cluster = server.cluster_name_if_clustered();
        filter.excludes(&Identity {
            name: &server.name,
            host: &opts.host,
            cluster: &cluster,
        })
    }

    async fn handle(&self, server: &Arc<Server>, msg: &OwnedMsg) {
        if let Some((account, kind)) = account_request(&msg.subject) {
            return self.handle_account(server, msg, account, kind).await;
        }
        let Some(kind) = kind_of(&msg.subject, &server.id) else {
            return;
        };
        let reply = msg.reply.as_deref().filter(|r| !r.is_empty());
        match kind {
            Kind::Statsz => {
                // No reply: send on the broadcast subject, as nats-server does.
                let to = reply.unwrap_or(&self.statsz_subject);
                if self
                    .addressed(server, to, filter_only(&msg.payload))
                    .is_some()
                {
                    self.send_statsz(server, to);
                }
            }
            Kind::Idz => {
                let Some(reply) = reply else { return };
                let opts = server.opts();
                let id = ServerId {
                    name: &server.name,
                    host: &opts.host,
                    id: &server.id,
                };
                self.send(server, reply, &id);
            }
            Kind::Z(z) => {
                let Some(reply) = reply else { return };
                if let Some(params) =
                    self.addressed(server, reply, options::decode(z, &msg.payload))
                {
                    self.answer(server, reply, z, &params).await;
                }
            }
            Kind::Empty(name) => {
                let Some(reply) = reply else { return };
                if self
                    .addressed(server, reply, filter_only(&msg.payload))
                    .is_some()
                {
                    self.send_data(server, reply, &empty_data(server, name));
                }
            }
            Kind::Reload => {
                // As nats-server: a request nobody waits on reloads nothing.
                let Some(reply) = reply else { return };
                if self
                    .addressed(server, reply, filter_only(&msg.payload))
                    .is_none()
                {
                    return;
                }
                let s = server.clone();
                let reloaded = tokio::task::spawn_blocking(move || s.reload_config())
                    .await
                    .unwrap_or_else(|e| Err(format!("reload failed: {e}")));
                match reloaded {
                    // nats-server's answer has no `data` at all.
                    Ok(()) => self.send(
                        server,
                        reply,
                        &Reloaded {
                            server: self.info(server),
                        },
                    ),
                    Err(e) => self.send_error(server, reply, 500, e),
                }
            }
            Kind::Unsupported(name) => {
                let Some(reply) = reply else { return };
                let filter = options::filter(&msg.payload).unwrap_or_default();
                if self.excluded(server, &filter) {
                    return;
                }
                debug!("System request {:?}: {name} is not supported", msg.subject);
                self.send_error(
                    server,
                    reply,
                    501,
                    format!("{name} is not supported by tribune-broker"),
                );
            }
        }
    }

    /// `$SYS.REQ.ACCOUNT.<account>.<kind>`, as nats-server answers it: the
    /// endpoint's options with the account taken from the subject.
    async fn handle_account(
        &self,
        server: &Arc<Server>,
        msg: &OwnedMsg,
        account: &str,
        kind: &str,
    ) {
        let Some(reply) = msg.reply.as_deref().filter(|r| !r.is_empty()) else {
            return;
        };
        let z = match kind {
            "STATZ" => {
                let Some(opts) =
                    self.addressed(server, reply, options::account_statz(&msg.payload))
                else {
                    return;
                };
                let accounts = if account == "PING" {
                    opts.accounts
                } else {
                    vec![account.to_string()]
                };
                // No answer from a server where none of them has a client.
                if let Some(data) = self
                    .monitor
                    .account_statz_json(&accounts, opts.include_unused)
                {
                    self.send_data(server, reply, &data);
                }
                return;
            }
            "LEAFZ" => {
                if self
                    .addressed(server, reply, filter_only(&msg.payload))
                    .is_some()
                {
                    self.send_data(server, reply, &empty_data(server, "LEAFZ"));
                }
                return;
            }
            "CONNZ" => Z::Connz,
            "SUBSZ" => Z::Subsz,
            "JSZ" => Z::JszAccount,
            _ => Z::AccountInfo,
        };
        if account == "PING" {
            return;
        }
        let Some(params) = self.addressed(server, reply, options::decode(z, &msg.payload)) else {
            return;
        };
        let params = match z {
            Z::Subsz => params.with("acc", account).with("subs", "true"),
            _ => params.with("acc", account),
        };
        self.answer(server, reply, z, &params).await;
    }

    /// The `data` of `z` for `params`, or nats-server's error for it.
    async fn answer(&self, server: &Server, reply: &str, z: Z, params: &crate::monitor::Params) {
        match self.monitor.json(z, params).await {
            Ok(data) => self.send_data(server, reply, &data),
            // nats-server answers an endpoint's own error with 500.
            Err(ZError::BadRequest(e)) => self.send_endpoint_error(server, reply, e),
            Err(ZError::Filtered(_)) => {}
        }
    }

    /// `{"server": ..., "data": <data>}`, `data` being JSON already.
    fn send_data(&self, server: &Server, reply: &str, data: &str) {
        let info = crate::monitor::gofmt::to_json(&self.info(server));
        let body = format!("{{\"server\":{info},\"data\":{data}}}");
        self.client
            .publish(server, reply, None, &[], body.as_bytes());
    }

    fn send_statsz(&self, server: &Server, to: &str) {
        let msg = StatszMsg {
            server: self.info(server),
            statsz: self.monitor.statsz(),
        };
        self.send(server, to, &msg);
    }

    fn send_error(&self, server: &Server, to: &str, code: u16, description: String) {
        let msg = ErrorResponse {
            server: self.info(server),
            data: None,
            error: ApiError { code, description },
        };
        self.send(server, to, &msg);
    }

    /// The endpoint failed: code 500, and `"data": null`, as nats-server.
    fn send_endpoint_error(&self, server: &Server, to: &str, description: String) {
        let msg = ErrorResponse {
            server: self.info(server),
            data: Some(()),
            error: ApiError {
                code: 500,
                description,
            },
        };
        self.send(server, to, &msg);
    }

    /// `$SYS.SERVER.<id>.<what>` with this server's `ServerInfo` as body.
    fn send_server_event(&self, server: &Server, what: &str) {
        let subject = format!("$SYS.SERVER.{}.{what}", server.id);
        let info = self.info(server);
        self.send(server, &subject, &info);
    }

    fn send<T: Serialize>(&self, server: &Server, to: &str, msg: &T) {
        let body = crate::monitor::gofmt::to_json(msg);
        self.client.publish(server, to, None, &[], body.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_their_kind() {
        let id = "NABC";
        assert_eq!(kind_of(PING, id), Some(Kind::Statsz));
        assert_eq!(
            kind_of("$SYS.REQ.SERVER.PING.STATSZ", id),
            Some(Kind::Statsz)
        );
        assert_eq!(
            kind_of("$SYS.REQ.SERVER.PING.CONNZ", id),
            Some(Kind::Z(Z::Connz))
        );
        assert_eq!(kind_of("$SYS.REQ.SERVER.NABC.IDZ", id), Some(Kind::Idz));
        assert_eq!(
            kind_of("$SYS.REQ.SERVER.NABC.LEAFZ", id),
            Some(Kind::Empty("LEAFZ"))
        );
        assert_eq!(kind_of("$SYS.REQ.SERVER.NOTME.VARZ", id), None);
        assert_eq!(
            kind_of("$SYS.REQ.SERVER.NABC.RELOAD", id),
            Some(Kind::Reload)
        );
        assert_eq!(kind_of("$SYS.REQ.SERVER.PING.RELOAD", id), None);
        assert_eq!(kind_of("$SYS.REQ.SERVER.PING.NOPE", id), None);
        assert_eq!(kind_of("$SYS.REQ.ACCOUNT.PING.STATZ", id), None);
        assert_eq!(
            account_request("$SYS.REQ.ACCOUNT.PING.STATZ"),
            Some(("PING", "STATZ"))
        );
        assert_eq!(
            account_request("$SYS.REQ.ACCOUNT.APP.CONNZ"),
            Some(("APP", "CONNZ"))
        );
        assert_eq!(account_request("$SYS.REQ.ACCOUNT.APP.CLAIMS.LOOKUP"), None);
        assert_eq!(account_request("$SYS.REQ.ACCOUNT.APP.NOPE"), None);
    }
}
