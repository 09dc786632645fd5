//! One route connection: the handshake, interest from the peer, and
//! messages in both directions.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context, Result};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{sleep, Instant};
use tracing::{debug, error, info, trace};

use super::parser::{RouteOp, RouteParseError, RouteParser, RouteStep};
use super::security::Slot;
use super::{Peer, RegisterError, RouteConnect, RouteInfo, RouteUrl};
use crate::auth::constant_time_eq;
use crate::client::{
    deliver_to_match, write_loop, ClientShared, ClosedState, ConnKind, FlushSet, Msg, Origin,
    QueueRng, RouteFanout,
};
use crate::protocol::err_line;
use crate::server::Server;
use crate::sublist::MatchCache;
use crate::subscription::Subscription;

/// nats-server pings routes every 30 s at most, and first after about 1 s.
const ROUTE_PING_MAX: Duration = Duration::from_secs(30);
const FIRST_PING: Duration = Duration::from_secs(1);
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);

/// Dial `url` and run the route until it closes.
pub async fn dial(server: &Arc<Server>, url: &RouteUrl, configured: bool) -> Result<()> {
    let target = url.host_port();
    let addr = tokio::net::lookup_host(&target)
        .await
        .with_context(|| format!("could not resolve {target}"))?
        .next()
        .ok_or_else(|| anyhow!("{target} resolved to no address"))?;
    let stream = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow!("timed out connecting to {target}"))?
        .with_context(|| format!("could not connect to {target}"))?;
    run(server.clone(), stream, addr, Some(url), configured, None).await;
    Ok(())
}

/// Serve a route connection a peer opened to our cluster port, unless too
/// many accepted ones are still waiting to register: then it is closed at
/// once (see [`super::security::MAX_UNREGISTERED`]).
pub fn accept(server: Arc<Server>, stream: TcpStream, addr: SocketAddr) {
    let Some(slot) = server.routes.admit(addr) else {
        return;
    };
    tokio::spawn(async move { run(server, stream, addr, None, false, Some(slot)).await });
}

async fn run(
    server: Arc<Server>,
    stream: TcpStream,
    addr: SocketAddr,
    url: Option<&RouteUrl>,
    configured: bool,
    slot: Option<Slot>,
) {
    let _ = stream.set_nodelay(true);
    let shared = Arc::new(ClientShared::with_kind(
        ConnKind::Route,
        server.next_cid(),
        Some(addr),
        server.opts().max_pending,
    ));
    debug!("{} - Route connection created", shared.tag());
    let Some(tls) = server.tls().route else {
        serve(
            server,
            shared,
            stream.into_split(),
            url,
            configured,
            false,
            slot,
        )
        .await;
        return;
    };
    // Route TLS comes first, before any protocol, on both sides.
    let tag = shared.tag();
    let stream = match url {
        Some(u) => crate::tls::route_connect(&tls, &u.host, stream, &tag).await,
        None => crate::tls::route_accept(&tls, stream, &tag).await,
    };
    match stream {
        Some(s) => {
            let halves = tokio::io::split(s);
            serve(server, shared, halves, url, configured, true, slot).await
        }
        None => {
            shared.close(ClosedState::TlsHandshakeError);
            debug!(
                "{tag} - Router connection closed: {}",
                ClosedState::TlsHandshakeError
            );
        }
    }
}

/// The route protocol over an established (plain or TLS) connection.
async fn serve<R, W>(
    server: Arc<Server>,
    shared: Arc<ClientShared>,
    (rd, wr): (R, W),
    url: Option<&RouteUrl>,
    configured: bool,
    tls_required: bool,
    slot: Option<Slot>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let opts = server.opts();
    let writer = tokio::spawn(write_loop(
        server.clone(),
        shared.clone(),
        wr,
        opts.write_deadline,
    ));
    let info = server.route_info().to_line();
    if let Some(url) = url {
        let connect = RouteConnect {
            echo: true,
            tls_required,
            headers: true,
            name: server.id.clone(),
            cluster: server.cluster_name(),
            user: url.user.clone(),
            pass: url.pass.clone(),
            ..Default::default()
        };
        let mut hello = b"CONNECT ".to_vec();
        hello.extend_from_slice(&serde_json::to_vec(&connect).unwrap_or_default());
        hello.extend_from_slice(b"\r\n");
        hello.extend_from_slice(&info);
        shared.send(&hello);
    } else {
        shared.send(&info);
    }
    let ping_every = opts.ping_interval.min(ROUTE_PING_MAX);
    let mut reader = RouteReader {
        rng: QueueRng::new(shared.cid.wrapping_mul(0x2545_f491_4f6c_dd1d)),
        server: server.clone(),
        shared: shared.clone(),
        // A peer forwards what its own clients and services may publish, and
        // system replies can be larger than a client's max_payload (a CONNZ of
        // many connections): nats-server does not limit route messages by it.
        // Only the largest max_payload a server may be given bounds them.
        parser: RouteParser::new(
            opts.max_control_line * 16,
            opts.max_payload.max(super::MAX_ROUTE_MESSAGE),
        ),
        url,
        solicited: url.is_some(),
        configured,
        connect_received: url.is_some(),
        slot,
        peer: None,
        cache: MatchCache::default(),
        flush: FlushSet::default(),
        fanout: RouteFanout::default(),
        pings_out: 0,
        ping_max: opts.ping_max,
        in_msgs: 0,
        in_bytes: 0,
    };
    let reason = reader.run(rd, ping_every, opts.cluster.auth_timeout).await;
    shared.close(reason);
    let _ = writer.await;
    reader.cleanup(reason);
}

struct RouteReader<'u> {
    server: Arc<Server>,
    shared: Arc<ClientShared>,
    parser: RouteParser,
    url: Option<&'u RouteUrl>,
    solicited: bool,
    configured: bool,
    /// On accepted connections the peer's CONNECT must come first.
    connect_received: bool,
    /// Held by an accepted connection until it registers.
    slot: Option<Slot>,
    /// The registered peer's server id.
    peer: Option<String>,
    cache: MatchCache,
    flush: FlushSet,
    fanout: RouteFanout,
    rng: QueueRng,
    pings_out: u32,
    ping_max: u32,
    in_msgs: u64,
    in_bytes: u64,
}

enum Flow {
    Continue,
    Close(ClosedState),
    /// A CONNECT whose credentials must be checked (bcrypt may take tens of
    /// milliseconds): reading pauses until the check, which runs off the
    /// runtime, is done.
    Authorize(Box<RouteConnect>),
}

impl RouteReader<'_> {
    fn tag(&self) -> String {
        self.shared.tag()
    }

    /// Read and handle until the connection ends. An accepted connection
    /// must send a valid CONNECT within `auth_timeout`; until it has, it is
    /// not pinged (as nats-server, which arms only the auth timer then).
    ///
    /// nats-server arms that timer only when the cluster block sets
    /// authorization; without it, a silent connection stays until it is
    /// found stale (90 s with 2.15's defaults). Tribune applies the timeout
    /// either way: every peer sends CONNECT right after connecting, and the
    /// places for unregistered connections are few, so a silent connection
    /// (a port scan, a load-balancer probe) must not hold one for long.
    async fn run<R: AsyncRead + Unpin>(
        &mut self,
        mut rd: R,
        ping_every: Duration,
        auth_timeout: Duration,
    ) -> ClosedState {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut ping = tokio::time::interval_at(Instant::now() + FIRST_PING, ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let auth_deadline = sleep(auth_timeout);
        tokio::pin!(auth_deadline);
        loop {
            if buf.capacity() - buf.len() < 16 * 1024 {
                buf.reserve(64 * 1024);
            }
            tokio::select! {
                r = rd.read_buf(&mut buf) => {
                    match r {
                        Ok(0) => return ClosedState::ClientClosed,
                        Ok(_) => {}
                        Err(e) => {
                            debug!("{} - Route read error: {e}", self.tag());
                            return ClosedState::ReadError;
                        }
                    }
                    self.shared.touch();
                    let mut flow = self.process(&mut buf);
                    while let Flow::Authorize(connect) = flow {
                        flow = self.authorize(*connect).await;
                        if let Flow::Continue = flow {
                            flow = self.process(&mut buf);
                        }
                    }
                    self.flush.flush();
                    self.publish_stats();
                    if let Flow::Close(reason) = flow {
                        return reason;
                    }
                }
                _ = self.shared.kill.notified() => {
                    return self.shared.closed_reason().unwrap_or(ClosedState::ServerShutdown);
                }
                _ = &mut auth_deadline, if !self.connect_received => {
                    debug!("{} - Authentication Timeout", self.tag());
                    self.shared.send(&err_line("Authentication Timeout"));
                    return ClosedState::AuthenticationTimeout;
                }
                _ = ping.tick(), if self.connect_received => {
                    if self.pings_out + 1 > self.ping_max {
                        debug!("{} - Stale Route Connection - Closing", self.tag());
                        self.shared.send(&err_line("Stale Connection"));
                        return ClosedState::StaleConnection;
                    }
                    self.pings_out += 1;
                    self.shared.send(b"PING\r\n");
                }
            }
        }
    }

    fn process(&mut self, buf: &mut BytesMut) -> Flow {
        loop {
            let step = match self.parser.next(&buf[..]) {
                Ok(s) => s,
                Err(e) => {
                    let text = match &e {
                        RouteParseError::UnknownOp(snip) => {
                            format!("Route parser ERROR: proto='{snip}...'")
                        }
                        RouteParseError::MaxControlLine(n) => {
                            format!("maximum control line exceeded: {n}")
                        }
                        RouteParseError::BadArgs(m) => m.clone(),
                    };
                    error!("{} - {text}", self.tag());
                    if matches!(e, RouteParseError::UnknownOp(_)) {
                        self.shared.send(&err_line("Unknown Protocol Operation"));
                    }
                    return Flow::Close(ClosedState::ProtocolViolation);
                }
            };
            match step {
                RouteStep::NeedMore => return Flow::Continue,
                RouteStep::Op(op, n) => {
                    let flow = self.handle(op);
                    buf.advance(n);
                    if !matches!(flow, Flow::Continue) {
                        return flow;
                    }
                }
            }
        }
    }

    fn handle(&mut self, op: RouteOp<'_>) -> Flow {
        if !self.connect_received && !matches!(op, RouteOp::Connect(_)) {
            error!("{} - authentication error", self.tag());
            self.shared.send(&err_line("Authorization Violation"));
            return Flow::Close(ClosedState::AuthenticationViolation);
        }
        match op {
            RouteOp::Connect(arg) => self.on_connect(arg),
            RouteOp::Info(arg) => self.on_info(arg),
            RouteOp::Ping => {
                self.shared.send(b"PONG\r\n");
                Flow::Continue
            }
            RouteOp::Pong => {
                self.pings_out = 0;
                Flow::Continue
            }
            RouteOp::Ok => Flow::Continue,
            RouteOp::Err(text) => {
                let text = String::from_utf8_lossy(text);
                if text.contains("dedicated route for account") {
                    // A pooled nats-server refusing its own extra per-account
                    // connection to us: expected, the main route carries all.
                    debug!("{} - Router Error: {text}", self.tag());
                } else {
                    error!("{} - Router Error: {text}", self.tag());
                }
                Flow::Close(ClosedState::ParseError)
            }
            _ if self.peer.is_none() => {
                // Interest and messages only make sense once the peer is known.
                error!("{} - Route sent data before its INFO", self.tag());
                Flow::Close(ClosedState::ProtocolViolation)
            }
            RouteOp::Sub {
                account,
                subject,
                queue,
                weight,
            } => {
                self.on_remote_sub(account, subject, queue, weight);
                Flow::Continue
            }
            RouteOp::Unsub {
                account,
                subject,
                queue,
            } => {
                self.on_remote_unsub(account, subject, queue);
                Flow::Continue
            }
            RouteOp::Msg {
                account,
                subject,
                reply,
                queues,
                hdr_len,
                body,
            } => {
                self.on_msg(
                    account,
                    Msg {
                        subject,
                        reply,
                        hdr_len,
                        body,
                    },
                    queues,
                );
                Flow::Continue
            }
        }
    }

    /// A peer's CONNECT: credentials first, as nats-server checks them
    /// before anything else in it, then the rest in [`Self::connected`].
    fn on_connect(&mut self, arg: &[u8]) -> Flow {
        trace!(
            "{} - <<- [CONNECT {}]",
            self.tag(),
            crate::redact::connect_trace(arg)
        );
        if self.solicited {
            // We dialled; a CONNECT from the other side makes no sense.
            return Flow::Close(ClosedState::ProtocolViolation);
        }
        let c: RouteConnect = match serde_json::from_slice(arg) {
            Ok(c) => c,
            Err(e) => {
                error!("{} - Route CONNECT is not valid JSON: {e}", self.tag());
                return Flow::Close(ClosedState::ProtocolViolation);
            }
        };
        if self.server.opts().cluster.username.is_some() {
            return Flow::Authorize(Box::new(c));
        }
        self.connected(c)
    }

    /// Check a CONNECT's user and password against `cluster {
    /// authorization }`. The password may be configured as a bcrypt hash,
    /// which is verified with bcrypt on the secret checker's bounded
    /// blocking pool, never on this task's worker; a plain one is compared
    /// in constant time. The user name is compared in constant time too,
    /// and the password is checked even when the name is wrong, so timing
    /// does not tell which was.
    async fn authorize(&mut self, c: RouteConnect) -> Flow {
        let server = self.server.clone();
        let opts = server.opts();
        let want_user = opts.cluster.username.as_deref().unwrap_or("");
        let want_pass = opts.cluster.password.as_deref().unwrap_or("");
        let given_user = c.user.as_deref().unwrap_or("");
        let user_ok = constant_time_eq(given_user.as_bytes(), want_user.as_bytes());
        let check = server.secrets().check(
            self.shared.addr.map(|a| a.ip()),
            c.pass.as_deref().unwrap_or(""),
            want_pass,
        );
        // A peer over its share of pending checks is refused like a wrong
        // password: it will dial again.
        let pass_ok = tokio::select! {
            check = check => check.is_match(),
            _ = self.shared.kill.notified() => {
                return Flow::Close(
                    self.shared.closed_reason().unwrap_or(ClosedState::ServerShutdown),
                );
            }
        };
        if !(user_ok && pass_ok) {
            if given_user.is_empty() {
                error!("{} - authentication error", self.tag());
            } else {
                error!(
                    "{} - authentication error - User {given_user:?}",
                    self.tag()
                );
            }
            self.shared.send(&err_line("Authorization Violation"));
            return Flow::Close(ClosedState::AuthenticationViolation);
        }
        self.connected(c)
    }

    /// The rest of an authorized CONNECT: a client on the wrong port, or a
    /// peer from another cluster, is turned away.
    fn connected(&mut self, c: RouteConnect) -> Flow {
        if c.lang.is_some() {
            self.shared
                .send(&err_line("attempted to connect to route port"));
            return Flow::Close(ClosedState::ProtocolViolation);
        }
        let ours = self.server.cluster_name();
        if !c.cluster.is_empty() && c.cluster != ours {
            let text = format!(
                "Rejecting connection, cluster name {:?} does not match {:?}",
                c.cluster, ours
            );
            error!("{} - {text}", self.tag());
            self.shared.send(&err_line(&text));
            return Flow::Close(ClosedState::ProtocolViolation);
        }
        self.connect_received = true;
        Flow::Continue
    }

    fn on_info(&mut self, arg: &[u8]) -> Flow {
        let info: RouteInfo = match serde_json::from_slice(arg) {
            Ok(i) => i,
            Err(e) => {
                error!("{} - Route INFO is not valid JSON: {e}", self.tag());
                return Flow::Close(ClosedState::ProtocolViolation);
            }
        };
        match &self.peer {
            None => self.register(info),
            Some(id) if *id != info.server_id => {
                // Gossip: the peer tells us about another member.
                if info.route_account.is_empty()
                    && info.server_id != self.server.id
                    && !self.server.routes.has_peer(&info.server_id)
                {
                    debug!(
                        "{} - Learned of route {} ({}) through gossip",
                        self.tag(),
                        info.server_name,
                        info.server_id
                    );
                    super::dial_gossiped(&self.server, info.route_url(None), info.auth_required);
                }
                Flow::Continue
            }
            Some(_) => {
                if self.server.routes.update_peer_info(&self.shared, info) {
                    self.server.broadcast_client_info();
                }
                Flow::Continue
            }
        }
    }

    fn register(&mut self, info: RouteInfo) -> Flow {
        if info.server_id == self.server.id {
            if let Some(url) = self.url {
                info!("Detected route to self, ignoring {:?}", url.redacted());
                self.server.routes.mark_self_url(&url.text);
            }
            return Flow::Close(ClosedState::ClientClosed);
        }
        let ours = self.server.cluster_name();
        if !info.cluster.is_empty() && info.cluster != ours {
            error!(
                "{} - Rejecting connection, cluster name {:?} does not match {:?}",
                self.tag(),
                info.cluster,
                ours
            );
            return Flow::Close(ClosedState::ProtocolViolation);
        }
        if !info.route_account.is_empty() || info.route_pool_idx != 0 {
            // A pooled peer's extra connection; the main one carries everything.
            debug!(
                "{} - Not accepting a pooled or pinned route connection",
                self.tag()
            );
            return Flow::Close(ClosedState::ClientClosed);
        }
        self.shared.headers.store(info.headers, Ordering::Relaxed);
        let url = match self.url {
            Some(u) => {
                *u.peer_id.lock() = Some(info.server_id.clone());
                u.text.clone()
            }
            None => info.route_url(self.shared.addr),
        };
        let peer = Peer {
            id: info.server_id.clone(),
            name: info.server_name.clone(),
            conn: self.shared.clone(),
            info,
            url,
            solicited: self.solicited,
            configured: self.configured,
            start: SystemTime::now(),
        };
        match self.server.routes.register(peer.clone(), &self.server.id) {
            Ok(()) => {
                self.peer = Some(peer.id.clone());
                self.parser.ready = true;
                // Registered: no longer counts against the accept limit.
                self.slot = None;
                super::log_peer_added(&peer);
                self.server.route_registered(&peer);
                Flow::Continue
            }
            Err(RegisterError::Duplicate) => {
                debug!(
                    "{} - Detected duplicate remote route {:?}",
                    self.tag(),
                    peer.id
                );
                Flow::Close(ClosedState::DuplicateRoute)
            }
        }
    }

    fn sid_for(account: &[u8], subject: &[u8], queue: Option<&[u8]>) -> Vec<u8> {
        let mut key = Vec::with_capacity(account.len() + subject.len() + 16);
        key.extend_from_slice(account);
        key.push(b' ');
        key.extend_from_slice(subject);
        if let Some(q) = queue {
            key.push(b' ');
            key.extend_from_slice(q);
        }
        key
    }

    fn on_remote_sub(&mut self, account: &[u8], subject: &[u8], queue: Option<&[u8]>, weight: u32) {
        let acc = self
            .server
            .account(account)
            .or_else(|| self.server.placeholder_account(account));
        let Some(acc) = acc else {
            debug!(
                "{} - Unknown account {:?} for remote subject {:?}",
                self.tag(),
                String::from_utf8_lossy(account),
                String::from_utf8_lossy(subject)
            );
            return;
        };
        let sid = Self::sid_for(account, subject, queue);
        let mut subs = self.shared.subs.lock();
        if let Some(existing) = subs.get(sid.as_slice()) {
            existing.weight.store(weight.max(1), Ordering::Relaxed);
            return;
        }
        let sub = Arc::new(Subscription::new(self.shared.clone(), subject, queue, &sid));
        sub.weight.store(weight.max(1), Ordering::Relaxed);
        if acc.sublist.insert(sub.clone()).is_err() {
            debug!(
                "{} - Invalid remote subject {:?}",
                self.tag(),
                String::from_utf8_lossy(subject)
            );
            return;
        }
        subs.insert(sid.into_boxed_slice(), sub);
    }

    fn on_remote_unsub(&mut self, account: &[u8], subject: &[u8], queue: Option<&[u8]>) {
        let sid = Self::sid_for(account, subject, queue);
        let removed = self.shared.subs.lock().remove(sid.as_slice());
        if let (Some(sub), Some(acc)) = (removed, self.server.account(account)) {
            sub.close();
            acc.sublist.remove(&sub);
        }
    }

    fn on_msg(&mut self, account: &[u8], msg: Msg<'_>, queues: Option<&[u8]>) {
        self.in_msgs += 1;
        self.in_bytes += msg.body.len() as u64;
        let Some(acc) = self.server.account(account) else {
            return;
        };
        if acc.has_cross() && self.cross_account(&acc, &msg) {
            return;
        }
        let result = self.cache.get(&acc.sublist, msg.subject);
        if result.is_empty() {
            return;
        }
        // A JetStream delivery matches on its inbox but shows the subject
        // the message was published on (see `js_deliver`).
        let shown = match msg.reply.and_then(super::js_deliver::decode_reply) {
            Some((subject, reply)) => Msg {
                subject,
                reply: Some(reply),
                ..msg
            },
            None => msg,
        };
        self.deliver(&result, account, &shown, Origin::Route { queues });
    }

    /// Responses to service requests made here, and stream imports, which
    /// every node applies for its own clients. True if `msg` was a response.
    fn cross_account(&mut self, acc: &Arc<crate::accounts::Account>, msg: &Msg<'_>) -> bool {
        if let Some(resp) = acc.response_for(msg.subject, msg.body.is_empty()) {
            let m = Msg {
                subject: &resp.reply,
                reply: None,
                ..*msg
            };
            let r = resp.importer.sublist.match_subject(m.subject);
            if r.is_empty() {
                acc.forget_response(msg.subject);
                return true;
            }
            self.deliver(&r, resp.importer.name.as_bytes(), &m, Origin::Import);
            return true;
        }
        for (importer, subject) in acc.stream_targets(msg.subject) {
            let m = Msg {
                subject: &subject,
                ..*msg
            };
            let r = importer.sublist.match_subject(m.subject);
            self.deliver(&r, importer.name.as_bytes(), &m, Origin::Import);
        }
        false
    }

    fn deliver(
        &mut self,
        result: &crate::sublist::MatchResult,
        account: &[u8],
        msg: &Msg<'_>,
        origin: Origin<'_>,
    ) {
        if result.is_empty() {
            return;
        }
        let (n, bytes) = deliver_to_match(
            result,
            msg,
            account,
            origin,
            &mut self.rng,
            &mut self.flush,
            &mut self.fanout,
            &*self.server,
        );
        self.server.count_outbound(n as u64, bytes as u64);
    }

    fn publish_stats(&mut self) {
        self.server
            .count_inbound(&self.shared, self.in_msgs, self.in_bytes);
        (self.in_msgs, self.in_bytes) = (0, 0);
    }

    /// Drop the peer's interest and, if it was registered, the peer.
    fn cleanup(&mut self, reason: ClosedState) {
        self.cache.clear();
        let subs: Vec<Arc<Subscription>> =
            self.shared.subs.lock().drain().map(|(_, s)| s).collect();
        for s in &subs {
            s.close();
        }
        // Remote interest is keyed "<account> <subject> [<queue>]".
        let mut by_account: std::collections::HashMap<Vec<u8>, Vec<Arc<Subscription>>> =
            Default::default();
        for s in subs {
            let acc = s
                .sid
                .split(|b| *b == b' ')
                .next()
                .unwrap_or_default()
                .to_vec();
            by_account.entry(acc).or_default().push(s);
        }
        for (name, subs) in by_account {
            if let Some(acc) = self.server.account(&name) {
                acc.sublist.remove_batch(&subs);
            }
        }
        if let Some(peer) = self.server.routes.unregister(&self.shared) {
            info!("{} - Router connection closed: {reason}", self.tag());
            self.server.route_unregistered(&peer);
        } else if matches!(
            reason,
            ClosedState::AuthenticationTimeout | ClosedState::AuthenticationViolation
        ) {
            // A failed handshake: nats-server logs it at INF like every
            // route close, and operators need to see who is knocking.
            info!("{} - Router connection closed: {reason}", self.tag());
        } else {
            debug!("{} - Router connection closed: {reason}", self.tag());
        }
    }
}
