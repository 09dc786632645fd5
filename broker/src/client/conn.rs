//! Driving one client connection: the reader (parse, authenticate, route)
//! and the writer (drain the outbound buffer to the socket).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::{sleep, Instant};
use tracing::{debug, error, trace};

use super::deliver::{deliver_one, deliver_to_match, FlushSet, Msg, Origin, QueueRng, RouteFanout};
use super::{ClientShared, ClientType, ClosedState, CookieCredentials, Plain, TransportWriter};
use login::PendingAuth;

mod login;
use crate::accounts::{Account, AccountSeat};
use crate::limits::{ConnLimits, Limit};
use crate::permissions::{self, Permissions, SubVerdict};
use crate::protocol::{
    err_line, errors, ConnectOptions, Op, ParseError, Parser, Step, CLIENT_PROTO_INFO,
};
use crate::server::Server;
use crate::subject;
use crate::sublist::{MatchCache, REMOVE_CHUNK};
use crate::subscription::Subscription;

/// Read buffer bounds: start small so idle connections cost little memory,
/// grow under load so bursts are read in few syscalls.
const READ_MIN: usize = 512;
const READ_MAX: usize = 64 * 1024;

/// Settings a connection snapshots from the server options when it starts.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub auth_required: bool,
    pub auth_timeout: Duration,
    pub ping_interval: Duration,
    pub ping_max: u32,
    pub write_deadline: Duration,
    /// The server's `max_subscriptions` (0: unlimited).
    pub max_subs: usize,
    pub headers_supported: bool,
    pub no_fast_producer_stall: bool,
    /// The nonce sent in INFO, which NKEY users sign (empty when unused).
    pub nonce: String,
    /// How the client reached us (`allowed_connection_types`, callout).
    pub client_type: ClientType,
    /// WebSocket clients: credentials from the upgrade's cookies, filling
    /// in what each CONNECT leaves empty.
    pub cookies: Option<CookieCredentials>,
}

/// Run a client connection to completion over its two halves: the protocol
/// bytes the client sends, and the transport that carries ours (for TCP,
/// `into_split` halves, which need no lock between them, the write half in
/// [`Plain`]). `info` is the INFO line to greet with.
pub async fn run_client<R, W>(
    server: Arc<Server>,
    shared: Arc<ClientShared>,
    (rd, wr): (R, W),
    info: Vec<u8>,
    cfg: ClientConfig,
    parser: Parser,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: TransportWriter,
{
    shared.send(&info);
    let writer = tokio::spawn(drive_writer(
        server.clone(),
        shared.clone(),
        wr,
        cfg.write_deadline,
    ));
    let account = server.global_account();
    *shared.account.lock() = Some(account.clone());
    let max_subs = Limit::from_option(cfg.max_subs);
    let base_max_payload = parser.max_payload;
    let mut reader = Reader {
        rng: QueueRng::new(shared.cid.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        server,
        shared,
        account,
        parser,
        cfg,
        connect: ConnectOptions::default(),
        connect_sent: Default::default(),
        connect_received: false,
        first_pong_sent: false,
        perms: None,
        pub_cache: Default::default(),
        cache: MatchCache::default(),
        flush: FlushSet::default(),
        fanout: RouteFanout::default(),
        pings_out: 0,
        ping_sent: None,
        expires: None,
        expiry: crate::auth::Expiry::User,
        max_subs,
        base_max_payload,
        user_limits: ConnLimits::default(),
        default_perms: false,
        seat: None,
        accepted: Instant::now(),
        in_msgs: 0,
        in_bytes: 0,
        out_msgs: 0,
        out_bytes: 0,
    };
    let reason = reader.run(rd).await;
    reader.shared.close(reason);
    let _ = writer.await;
    reader.cleanup().await;
}

struct Reader {
    server: Arc<Server>,
    shared: Arc<ClientShared>,
    account: Arc<Account>,
    parser: Parser,
    cfg: ClientConfig,
    connect: ConnectOptions,
    /// Every field of the CONNECTs so far, merged: the next CONNECT is
    /// decoded onto them, as nats-server does.
    connect_sent: serde_json::Map<String, serde_json::Value>,
    connect_received: bool,
    first_pong_sent: bool,
    /// The user's permissions, if restricted.
    perms: Option<Arc<Permissions>>,
    /// Publish verdicts by subject.
    pub_cache: std::collections::HashMap<Vec<u8>, bool>,
    cache: MatchCache,
    flush: FlushSet,
    fanout: RouteFanout,
    rng: QueueRng,
    pings_out: u32,
    /// When our outstanding PING went out, for the round-trip time.
    ping_sent: Option<Instant>,
    /// When the user's credentials expire (a callout user JWT's `exp`).
    expires: Option<Instant>,
    /// Whose expiry `expires` is, for the error sent then.
    expiry: crate::auth::Expiry,
    /// Subscriptions allowed: the server's, account's and user's tightest.
    max_subs: Limit,
    /// The server's `max_payload`, before the account's and user's limits.
    base_max_payload: Option<usize>,
    /// The user's own limits (applied again with the account's when its
    /// JWT changes).
    user_limits: ConnLimits,
    /// The user brought no permissions: the account's defaults apply, and
    /// follow the account's JWT.
    default_perms: bool,
    /// The connection's place in its account (`max_connections`).
    seat: Option<AccountSeat>,
    accepted: Instant,
    in_msgs: u64,
    in_bytes: u64,
    out_msgs: u64,
    out_bytes: u64,
}

/// Control flow out of processing one operation.
enum Flow {
    Continue,
    Close(ClosedState),
    /// A CONNECT whose decision takes time (bcrypt on the blocking pool,
    /// or the auth-callout service); reading pauses until it is made.
    Authenticate(Box<PendingAuth>),
}

impl Reader {
    fn tag(&self) -> String {
        self.shared.tag()
    }

    async fn run<R: AsyncRead + Unpin>(&mut self, mut rd: R) -> ClosedState {
        let mut buf = BytesMut::with_capacity(READ_MIN);
        let mut read_size = READ_MIN;
        let auth_deadline = sleep(self.cfg.auth_timeout);
        tokio::pin!(auth_deadline);
        let start = Instant::now()
            .checked_add(self.cfg.ping_interval)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        let mut ping = tokio::time::interval_at(start, self.cfg.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let expiry = sleep(Duration::ZERO);
        tokio::pin!(expiry);
        let mut armed = None;
        loop {
            if self.expires != armed {
                armed = self.expires;
                if let Some(at) = armed {
                    expiry.as_mut().reset(at);
                }
            }
            if buf.capacity() - buf.len() < read_size {
                buf.reserve(read_size);
            }
            let waiting_auth = self.cfg.auth_required && !self.connect_received;
            tokio::select! {
                r = rd.read_buf(&mut buf) => {
                    let n = match r {
                        Ok(0) => return ClosedState::ClientClosed,
                        Ok(n) => n,
                        Err(e) => {
                            debug!("{} - Client read error: {e}", self.tag());
                            return ClosedState::ReadError;
                        }
                    };
                    if n >= read_size && read_size < READ_MAX {
                        read_size *= 2;
                    } else if n < read_size / 4 && read_size > READ_MIN {
                        read_size /= 2;
                    }
                    self.shared.touch();
                    let mut flow = self.process(&mut buf);
                    while let Flow::Authenticate(pending) = flow {
                        // Boxed: deciding a login (bcrypt on the blocking
                        // pool, the callout's round trip) is a future of
                        // over 2 KiB; inline, every connection's task would
                        // carry it for its whole life, not just its login.
                        flow = Box::pin(self.authenticate(*pending)).await;
                        if let Flow::Continue = flow {
                            flow = self.process(&mut buf);
                        }
                    }
                    self.flush.flush();
                    self.publish_stats();
                    self.stall_for_slow_consumers().await;
                    if let Flow::Close(reason) = flow {
                        return reason;
                    }
                    if buf.is_empty() && buf.capacity() > 4 * read_size {
                        buf = BytesMut::with_capacity(read_size);
                    }
                }
                _ = self.shared.kill.notified() => {
                    return self.shared.closed_reason().unwrap_or(ClosedState::ServerShutdown);
                }
                _ = self.shared.account_changed.notified() => {
                    if let Flow::Close(reason) = self.account_changed() {
                        return reason;
                    }
                }
                _ = &mut expiry, if armed.is_some() => {
                    let error = self.expiry.error();
                    debug!("{} - {error}", self.tag());
                    self.send_err(error);
                    return ClosedState::AuthenticationExpired;
                }
                _ = &mut auth_deadline, if waiting_auth => {
                    debug!("{} - Authentication Timeout", self.tag());
                    self.send_err(errors::AUTH_TIMEOUT);
                    return ClosedState::AuthenticationTimeout;
                }
                _ = ping.tick() => {
                    if self.pings_out + 1 > self.cfg.ping_max {
                        debug!("{} - Stale Client Connection - Closing", self.tag());
                        self.send_err(errors::STALE_CONNECTION);
                        self.server.stats.stale_connections.fetch_add(1, Ordering::Relaxed);
                        return ClosedState::StaleConnection;
                    }
                    self.pings_out += 1;
                    self.ping_sent = Some(Instant::now());
                    trace!("{} - ->> [PING]", self.tag());
                    self.shared.send(b"PING\r\n");
                }
            }
        }
    }

    /// Fast-producer stall, as nats-server does it: when a consumer we just
    /// fed is over three quarters of its pending limit, pause reading for a
    /// few milliseconds (at most 10 ms per batch) so it can drain, rather
    /// than cut off a consumer that is merely a little slower than us.
    async fn stall_for_slow_consumers(&mut self) {
        const MIN: Duration = Duration::from_millis(2);
        const MAX: Duration = Duration::from_millis(5);
        const TOTAL: Duration = Duration::from_millis(10);
        let stalled = self.flush.take_stalled();
        if stalled.is_empty() || self.cfg.no_fast_producer_stall {
            return;
        }
        let start = Instant::now();
        for c in stalled {
            let spent = start.elapsed();
            if spent >= TOTAL {
                break;
            }
            let drained = c.drained.notified();
            let ttl = {
                let out = c.out.lock();
                if !out.should_stall() || out.is_closed() {
                    continue;
                }
                if out.is_full() {
                    MAX
                } else {
                    MIN
                }
            };
            let _ = tokio::time::timeout(ttl.min(TOTAL - spent), drained).await;
        }
    }

    /// Parse and handle every complete operation in `buf`.
    fn process(&mut self, buf: &mut BytesMut) -> Flow {
        loop {
            if let Some(&first) = buf.first() {
                if let Some(flow) = self.gate_before_connect(first) {
                    return flow;
                }
            }
            let step = match self.parser.next(&buf[..]) {
                Ok(s) => s,
                Err(e) => return self.parse_error(e),
            };
            match step {
                Step::NeedMore(n) => {
                    buf.advance(n);
                    return Flow::Continue;
                }
                Step::Op(op, n) => {
                    let flow = self.handle(op);
                    buf.advance(n);
                    if !matches!(flow, Flow::Continue) {
                        return flow;
                    }
                }
            }
        }
    }

    fn parse_error(&mut self, e: ParseError) -> Flow {
        // Before CONNECT on a server that requires auth, anything but a
        // CONNECT is an authorization failure, not a parse error.
        if self.cfg.auth_required && !self.connect_received {
            return self.auth_violation();
        }
        match e {
            ParseError::UnknownOp { snippet } => {
                self.send_err(errors::UNKNOWN_OP);
                error!("{} - Client parser ERROR: proto='{snippet}...'", self.tag());
                Flow::Close(ClosedState::ProtocolViolation)
            }
            ParseError::MaxControlLine { len } => {
                self.send_err(errors::MAX_CONTROL_LINE);
                error!(
                    "{} - {}: {} vs {}",
                    self.tag(),
                    errors::MAX_CONTROL_LINE,
                    len,
                    self.parser.max_control_line
                );
                Flow::Close(ClosedState::MaxControlLineExceeded)
            }
            ParseError::MaxPayload { size, max } => {
                error!("{} - maximum payload exceeded: {size} vs {max}", self.tag());
                self.send_err(errors::MAX_PAYLOAD);
                Flow::Close(ClosedState::MaxPayloadExceeded)
            }
            ParseError::BadArgs(msg) => {
                error!("{} - {msg}", self.tag());
                Flow::Close(ClosedState::ProtocolViolation)
            }
        }
    }

    fn send_err(&self, text: &str) {
        self.shared.send(&err_line(text));
    }

    fn auth_violation(&mut self) -> Flow {
        error!("{} - authentication error", self.tag());
        self.send_err(errors::AUTH_VIOLATION);
        self.server
            .stats
            .auth_errors
            .fetch_add(1, Ordering::Relaxed);
        Flow::Close(ClosedState::AuthenticationViolation)
    }

    fn handle(&mut self, op: Op<'_>) -> Flow {
        if self.cfg.auth_required && !self.connect_received && !matches!(op, Op::Connect(_)) {
            return self.auth_violation();
        }
        match op {
            Op::Connect(arg) => self.on_connect(arg),
            Op::Pub {
                subject,
                reply,
                hdr_len,
                msg,
                is_hpub: _,
            } => {
                self.on_pub(Msg {
                    subject,
                    reply,
                    hdr_len,
                    body: msg,
                });
                Flow::Continue
            }
            Op::Sub {
                subject,
                queue,
                sid,
            } => self.on_sub(subject, queue, sid),
            Op::Unsub { sid, max } => {
                self.on_unsub(sid, max);
                Flow::Continue
            }
            Op::Ping => {
                trace!("{} - <<- [PING]", self.tag());
                self.shared.send(b"PONG\r\n");
                self.cache.drop_if_stale(&self.account.sublist);
                // The first PONG after CONNECT is followed, for clients that
                // take async INFO, by an INFO naming their account.
                if self.connect_received && !self.first_pong_sent {
                    self.first_pong_sent = true;
                    if self.connect.protocol >= CLIENT_PROTO_INFO {
                        self.send_connect_info();
                    }
                }
                Flow::Continue
            }
            Op::Pong => {
                trace!("{} - <<- [PONG]", self.tag());
                self.pings_out = 0;
                self.cache.drop_if_stale(&self.account.sublist);
                if let Some(sent) = self.ping_sent.take() {
                    self.shared.meta.lock().rtt_nanos = sent.elapsed().as_nanos() as u64;
                }
                Flow::Continue
            }
            Op::Ok | Op::Info => Flow::Continue,
            Op::Err(text) => {
                error!(
                    "{} - Client Error {}",
                    self.tag(),
                    String::from_utf8_lossy(text)
                );
                Flow::Close(ClosedState::ParseError)
            }
        }
    }

    fn send_connect_info(&self) {
        let addr = self
            .shared
            .addr
            .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut info = self.server.info_for(&self.shared, &addr);
        info.connect_info = true;
        info.remote_account = self.account.name.clone();
        self.shared.send(&info.to_line());
        self.shared.async_info.store(true, Ordering::Relaxed);
    }

    fn on_pub(&mut self, msg: Msg<'_>) {
        self.in_msgs += 1;
        self.in_bytes += msg.body.len() as u64;
        if self.connect.pedantic && !subject::is_valid_literal(msg.subject) {
            self.send_err(errors::INVALID_PUB_SUBJECT);
        }
        if !self.may_publish(msg.subject) {
            let subj = String::from_utf8_lossy(msg.subject);
            error!("{} - Publish Violation - Subject {subj:?}", self.tag());
            self.send_err(&permissions::publish_violation(&subj));
            return;
        }
        if let Some(reply) = msg.reply.filter(|r| permissions::is_reserved_reply(r)) {
            let reply = String::from_utf8_lossy(reply);
            error!("{} - Publish Violation - Reply {reply:?}", self.tag());
            self.send_err(&permissions::reply_violation(&reply));
            return;
        }
        if self.connect.verbose {
            self.shared.send(b"+OK\r\n");
        }
        let mut crossed = 0;
        if msg.subject == crate::system::user_info::SUBJECT {
            if let Some(reply) = msg.reply {
                crossed += self.answer_user_info(reply);
            }
        }
        if self.account.has_cross() {
            match self.cross_account(&msg) {
                None => return,
                Some(n) => crossed += n,
            }
        }
        let result = self.cache.get(&self.account.sublist, msg.subject);
        let echo = self.connect.echo;
        let (delivered, bytes) = if result.is_empty() {
            (0, 0)
        } else {
            let origin = Origin::Client {
                cid: self.shared.cid,
                echo,
            };
            let acc = self.account.name.as_bytes();
            deliver_to_match(
                &result,
                &msg,
                acc,
                origin,
                &mut self.rng,
                &mut self.flush,
                &mut self.fanout,
                &*self.server,
            )
        };
        if delivered > 0 {
            self.out_msgs += delivered as u64;
            self.out_bytes += bytes as u64;
        } else if let Some(reply) = msg.reply {
            // A request served through a service import was delivered.
            if self.connect.no_responders && crossed == 0 {
                self.no_responders(msg.subject, reply);
            }
        }
    }

    /// Publish permission, with a per-connection cache of verdicts, and the
    /// one-time allowance to answer requests this client received.
    fn may_publish(&mut self, subject: &[u8]) -> bool {
        let Some(perms) = &self.perms else {
            return true;
        };
        let allowed = match self.pub_cache.get(subject) {
            Some(v) => *v,
            None => {
                let v = perms.can_publish(&String::from_utf8_lossy(subject));
                if self.pub_cache.len() >= 1024 {
                    self.pub_cache.clear();
                }
                self.pub_cache.insert(subject.to_vec(), v);
                v
            }
        };
        allowed || self.shared.use_reply_allowance(subject)
    }

    /// Cross-account delivery for this publish: a service response going
    /// back to its importer, stream exports into importers, and requests to
    /// imported services. `None` when the message was a response and is
    /// fully handled, else how many deliveries it made in other accounts.
    fn cross_account(&mut self, msg: &Msg<'_>) -> Option<usize> {
        let acc = self.account.clone();
        if let Some(resp) = acc.response_for(msg.subject, msg.body.is_empty()) {
            let m = Msg {
                subject: &resp.reply,
                reply: None,
                ..*msg
            };
            if self.deliver_into(&resp.importer, &m, true) == 0 {
                acc.forget_response(msg.subject);
            }
            return None;
        }
        let mut n = 0;
        for (importer, subject) in acc.stream_targets(msg.subject) {
            let m = Msg {
                subject: &subject,
                ..*msg
            };
            n += self.deliver_into(&importer, &m, true);
        }
        if let Some((exporter, subject, policy)) = acc.service_for(msg.subject) {
            let mapped = msg.reply.map(|r| {
                let mapped = self.server.response_subject();
                exporter.add_response(mapped.clone(), acc.clone(), r.to_vec(), policy);
                mapped
            });
            let m = Msg {
                subject: &subject,
                reply: mapped.as_deref(),
                ..*msg
            };
            n += self.deliver_into(&exporter, &m, false);
        }
        Some(n)
    }

    /// Deliver into another account; `local_only` keeps it off the routes
    /// (every node applies stream imports itself, so forwarding would
    /// deliver twice).
    fn deliver_into(&mut self, account: &Arc<Account>, msg: &Msg<'_>, local_only: bool) -> usize {
        let result = account.sublist.match_subject(msg.subject);
        if result.is_empty() {
            return 0;
        }
        let origin = if local_only {
            Origin::Import
        } else {
            Origin::Client {
                cid: self.shared.cid,
                echo: true,
            }
        };
        let (n, bytes) = deliver_to_match(
            &result,
            msg,
            account.name.as_bytes(),
            origin,
            &mut self.rng,
            &mut self.flush,
            &mut self.fanout,
            &*self.server,
        );
        self.out_msgs += n as u64;
        self.out_bytes += bytes as u64;
        n
    }

    /// `$SYS.REQ.USER.INFO`: the server answers on `reply`, in this
    /// client's account, who the client is (`system::user_info`).
    fn answer_user_info(&mut self, reply: &[u8]) -> usize {
        let user = self.shared.meta.lock().user.clone().unwrap_or_default();
        let expires_in = self
            .expires
            .map(|at| at.saturating_duration_since(Instant::now()));
        let body = self.server.user_info_reply(
            &user,
            &self.account.name,
            self.perms.as_deref(),
            expires_in,
        );
        // Only to this connection's own subscriptions on the reply subject:
        // published into the account, the server's answer would reach
        // subjects the client may not publish to (a JetStream API subject
        // as the reply would run that request).
        let msg = Msg {
            subject: reply,
            reply: None,
            hdr_len: 0,
            body: &body,
        };
        let r = self.account.sublist.match_subject(reply);
        let mut n = 0;
        for sub in r.psubs.iter().filter(|s| s.client.cid == self.shared.cid) {
            if let Some(bytes) = deliver_one(sub, &msg, &mut self.flush, &*self.server) {
                n += 1;
                self.out_bytes += bytes as u64;
            }
        }
        self.out_msgs += n as u64;
        // Answered, even if the client does not listen on the reply: no
        // "no responders" for it.
        n.max(1)
    }

    /// Tell a requester nobody is listening: a 503 status to its own
    /// subscription on the reply subject, as nats-server does.
    fn no_responders(&mut self, subject: &[u8], reply: &[u8]) {
        let r = self.account.sublist.match_subject(reply);
        let Some(sub) = r.psubs.iter().find(|s| s.client.cid == self.shared.cid) else {
            return;
        };
        let hdr_len = 32 + subject.len();
        let mut out = Vec::with_capacity(64 + reply.len() + 2 * subject.len());
        out.extend_from_slice(b"HMSG ");
        out.extend_from_slice(reply);
        out.push(b' ');
        out.extend_from_slice(&sub.sid);
        out.extend_from_slice(
            format!(" {hdr_len} {hdr_len}\r\nNATS/1.0 503\r\nNats-Subject: ").as_bytes(),
        );
        out.extend_from_slice(subject);
        out.extend_from_slice(b"\r\n\r\n\r\n");
        self.shared.send(&out);
    }

    fn on_sub(&mut self, subj: &[u8], queue: Option<&[u8]>, sid: &[u8]) -> Flow {
        // Count (under the subs lock) only when there is a limit.
        if self.max_subs != Limit::Unlimited && self.max_subs.reached(self.shared.num_subs()) {
            error!("{} - {}", self.tag(), errors::MAX_SUBS);
            self.send_err(errors::MAX_SUBS);
            return Flow::Continue;
        }
        let sub = Arc::new(Subscription::new(self.shared.clone(), subj, queue, sid));
        if let Some(perms) = &self.perms {
            let subject = String::from_utf8_lossy(subj);
            let q = queue.map(String::from_utf8_lossy);
            match perms.check_subscribe(&subject, q.as_deref()) {
                SubVerdict::Allowed => {}
                SubVerdict::AllowedExcept(deny) => sub.set_deny(deny),
                SubVerdict::Denied => {
                    let text = permissions::subscribe_violation(&subject, q.as_deref());
                    let sid = String::from_utf8_lossy(sid);
                    error!(
                        "{} - Subscription Violation - Subject {subject:?}, SID {sid}",
                        self.tag()
                    );
                    self.send_err(&text);
                    return Flow::Continue;
                }
            }
        }
        {
            let mut subs = self.shared.subs.lock();
            if !subs.contains_key(sid) {
                if self.account.sublist.insert(sub.clone()).is_err() {
                    drop(subs);
                    self.send_err(errors::INVALID_SUBJECT);
                    return Flow::Continue;
                }
                subs.insert(Box::from(sid), sub.clone());
                drop(subs);
                self.server.local_sub_added(&self.account, &sub);
            }
        }
        if self.connect.verbose {
            self.shared.send(b"+OK\r\n");
        }
        Flow::Continue
    }

    fn on_unsub(&mut self, sid: &[u8], max: Option<u64>) {
        let existing = self.shared.subs.lock().get(sid).cloned();
        if let Some(sub) = existing {
            match max {
                Some(m) if m > sub.delivered.load(Ordering::Acquire) => {
                    sub.max.store(m, Ordering::Release);
                    // A delivery may have reached the limit between the
                    // check and the store: then nothing else will remove it.
                    if sub.delivered.load(Ordering::Acquire) >= m {
                        self.server.remove_subscription(&sub);
                    }
                }
                _ => self.server.remove_subscription(&sub),
            }
        }
        if self.connect.verbose {
            self.shared.send(b"+OK\r\n");
        }
    }

    fn publish_stats(&mut self) {
        self.server.count_outbound(self.out_msgs, self.out_bytes);
        self.server
            .count_inbound(&self.shared, self.in_msgs, self.in_bytes);
        (self.out_msgs, self.out_bytes, self.in_msgs, self.in_bytes) = (0, 0, 0, 0);
    }

    /// Remove every subscription of this connection.
    fn drop_all_subscriptions(&mut self) {
        self.cache.clear();
        let subs: Vec<Arc<Subscription>> =
            self.shared.subs.lock().drain().map(|(_, s)| s).collect();
        for s in &subs {
            s.close();
        }
        self.account.sublist.remove_batch(&subs);
        self.server.local_subs_removed(&self.account, &subs);
    }

    /// Remove every subscription and forget the connection.
    ///
    /// A connection may hold 100k+ subscriptions. Everything done per
    /// subscription (closing, removal from the sublist, withdrawal from the
    /// cluster, finally freeing) goes a chunk at a time, and the task yields
    /// between chunks, so neither the sublist lock nor this worker thread is
    /// taken from the account's publishers for the whole batch.
    async fn cleanup(&mut self) {
        self.cache.clear();
        let taken = std::mem::take(&mut *self.shared.subs.lock());
        let mut subs: Vec<Arc<Subscription>> = Vec::with_capacity(taken.len());
        let mut rest = taken.into_values();
        loop {
            let start = subs.len();
            subs.extend(rest.by_ref().take(REMOVE_CHUNK));
            let chunk = &subs[start..];
            if chunk.is_empty() {
                break;
            }
            for s in chunk {
                s.close();
            }
            self.account.sublist.remove_batch(chunk);
            self.server.local_subs_removed(&self.account, chunk);
            tokio::task::yield_now().await;
        }
        // The seat goes back first, so what unregistering reports (the
        // account's connection count) no longer counts this connection.
        self.seat = None;
        self.server.unregister(&self.shared, &subs);
        while !subs.is_empty() {
            subs.truncate(subs.len().saturating_sub(REMOVE_CHUNK));
            tokio::task::yield_now().await;
        }
    }
}

/// Drain the outbound buffer to a byte stream until the connection closes
/// (routes, and clients over TCP or TLS).
pub async fn write_loop<W: AsyncWrite + Unpin + Send + 'static>(
    server: Arc<Server>,
    shared: Arc<ClientShared>,
    wr: W,
    deadline: Duration,
) {
    drive_writer(server, shared, Plain(wr), deadline).await
}

/// Drain the outbound buffer through the transport until the connection
/// closes, then let the transport say its last words.
pub async fn drive_writer<W: TransportWriter>(
    server: Arc<Server>,
    shared: Arc<ClientShared>,
    mut wr: W,
    deadline: Duration,
) {
    let mut batch: Vec<u8> = Vec::new();
    let mut healthy = true;
    loop {
        let closing = {
            let mut out = shared.out.lock();
            if out.pending() == 0 {
                if out.is_closed() {
                    break;
                }
                None
            } else {
                out.take(&mut batch);
                Some(out.is_closed())
            }
        };
        let closing = match closing {
            Some(closing) => closing,
            None if wr.has_control() => false,
            None => {
                tokio::select! {
                    _ = shared.wake.notified() => {}
                    _ = wr.control_ready() => {}
                }
                continue;
            }
        };
        match tokio::time::timeout(deadline, wr.write_batch(&batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!("{} - Error writing to client: {e}", shared.tag());
                shared.close(ClosedState::WriteError);
                healthy = false;
                break;
            }
            Err(_) => {
                server.note_slow_consumer(&shared, ClosedState::SlowConsumerWriteDeadline);
                healthy = false;
                break;
            }
        }
        super::Outbound::recycle(&mut batch);
        if shared.out.lock().written() {
            shared.drained.notify_waiters();
        }
        if closing && shared.pending_bytes() == 0 {
            break;
        }
    }
    let reason = shared.closed_reason().unwrap_or(ClosedState::ClientClosed);
    let _ = tokio::time::timeout(deadline, wr.finish(reason, healthy)).await;
}
