//! A client connection.
//!
//! Each connection is two tasks: a reader that parses and routes inbound
//! messages, and a writer that drains the connection's outbound buffer to the
//! socket. Routing a message to a subscriber means appending bytes to that
//! subscriber's [`ClientShared`] outbound buffer under a short mutex and, once
//! per read batch, waking its writer. No lock is ever held across I/O: the
//! writer swaps the buffer out under the lock and writes it after releasing it.

mod conn;
mod deliver;
mod outbound;
mod transport;

pub use conn::{run_client, write_loop, ClientConfig};
pub use deliver::{
    deliver_one, deliver_to_match, put_usize, DeliverHooks, FlushSet, Msg, Origin, QueueRng,
    RouteFanout,
};
pub use outbound::{ClosedState, Outbound};
pub use transport::{ClientType, CookieCredentials, Plain, TransportWriter};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::accounts::Account;
use crate::permissions::ResponsePermission;
use crate::subscription::Subscription;

/// Per-connection counters, read by monitoring.
#[derive(Debug, Default)]
/// Outbound counters live in [`Outbound`], under the lock producers hold anyway.
pub struct ClientStats {
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
}

/// Descriptive details, filled in at CONNECT and read by `/connz`.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    pub name: String,
    pub lang: String,
    pub version: String,
    pub user: Option<String>,
    pub account: String,
    pub rtt_nanos: u64,
    /// Who signed the user JWT the client was admitted with, if any.
    pub signed: Option<crate::auth::Signed>,
    /// Its login was announced (`$SYS.ACCOUNT.<account>.CONNECT`): only
    /// then is its close announced too.
    pub announced: bool,
}

/// What is on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    /// An application client speaking the client protocol.
    Client,
    /// Another server of the cluster speaking the route protocol.
    Route,
    /// A part of this server (auth callout, JetStream) that subscribes and
    /// publishes like a client but is handed messages in-process.
    Internal,
}

/// Receives the messages of an internal connection's subscriptions.
///
/// It is called on the publisher's task, in the middle of routing, so it must
/// not block: copy what it needs and hand it to a channel.
pub trait InternalHandler: Send + Sync {
    fn deliver(&self, sub: &Subscription, msg: &Msg<'_>);
}

/// The part of a connection that other connections touch: its outbound
/// buffer, its subscriptions and its counters.
pub struct ClientShared {
    pub cid: u64,
    pub kind: ConnKind,
    /// For [`ConnKind::Client`]: TCP or WebSocket.
    pub client_type: ClientType,
    pub addr: Option<SocketAddr>,
    /// A WebSocket client's `X-Forwarded-For` address, shown in log lines
    /// before the socket's, as nats-server shows it.
    pub forwarded_for: Option<std::net::IpAddr>,
    pub start: SystemTime,
    pub out: Mutex<Outbound>,
    /// Wakes the writer task when data or a close is queued.
    pub(crate) wake: Notify,
    /// Wakes the reader task when someone else closes the connection.
    pub(crate) kill: Notify,
    /// Wakes the reader task when its account's JWT changed: it applies
    /// the account's limits and default permissions again.
    pub(crate) account_changed: Notify,
    /// Wakes producers stalled on this consumer once it has drained.
    pub(crate) drained: Notify,
    /// Echo our own publishes back to our subscriptions.
    pub echo: AtomicBool,
    /// The client (or route peer) understands HMSG.
    pub headers: AtomicBool,
    /// The client takes asynchronous INFO updates (protocol 1, after its
    /// first PONG), e.g. when cluster members come and go.
    pub async_info: AtomicBool,
    pub stats: ClientStats,
    pub subs: Mutex<std::collections::HashMap<Box<[u8]>, Arc<Subscription>>>,
    pub meta: Mutex<ClientMeta>,
    /// Unix nanos of the last inbound or outbound activity.
    pub last_activity: AtomicU64,
    /// The account the client is bound to, set when it starts and on auth.
    pub account: Mutex<Option<Arc<Account>>>,
    /// `allow_responses`: replies this client may publish to, with how many
    /// messages each still allows and until when.
    replies: Mutex<Option<ReplyAllowance>>,
    tracks_replies: AtomicBool,
    /// Set for [`ConnKind::Internal`]: where its messages go instead of a socket.
    pub(crate) handler: Option<Arc<dyn InternalHandler>>,
}

/// Open reply allowances one client may hold. Anyone who may publish to a
/// service adds one per request, so the bound keeps a request flood from
/// growing the service's memory for the whole allowance TTL; past it, the
/// oldest open request can no longer be answered.
const REPLY_ALLOWANCE_LIMIT: usize = 100_000;

/// Reply subjects a client with `allow_responses` may answer.
struct ReplyAllowance {
    perm: ResponsePermission,
    /// Reply subject -> responses still allowed.
    open: crate::expiring::ExpiringMap<u64>,
}

pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl std::fmt::Debug for ClientShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientShared")
            .field("cid", &self.cid)
            .field("kind", &self.kind)
            .field("addr", &self.addr)
            .finish()
    }
}

impl ClientShared {
    pub fn new(cid: u64, addr: Option<SocketAddr>, max_pending: usize) -> Self {
        Self::with_kind(ConnKind::Client, cid, addr, max_pending)
    }

    pub fn with_kind(
        kind: ConnKind,
        cid: u64,
        addr: Option<SocketAddr>,
        max_pending: usize,
    ) -> Self {
        ClientShared {
            cid,
            kind,
            client_type: ClientType::Nats,
            addr,
            forwarded_for: None,
            start: SystemTime::now(),
            out: Mutex::new(if kind == ConnKind::Route {
                Outbound::for_route(max_pending)
            } else {
                Outbound::new(max_pending)
            }),
            wake: Notify::new(),
            kill: Notify::new(),
            account_changed: Notify::new(),
            drained: Notify::new(),
            echo: AtomicBool::new(true),
            headers: AtomicBool::new(false),
            async_info: AtomicBool::new(false),
            stats: ClientStats::default(),
            subs: Mutex::new(Default::default()),
            meta: Mutex::new(ClientMeta::default()),
            last_activity: AtomicU64::new(now_nanos()),
            account: Mutex::new(None),
            replies: Mutex::new(None),
            tracks_replies: AtomicBool::new(false),
            handler: None,
        }
    }

    /// An internal connection: no socket, messages go to `handler`. It
    /// takes headers, since internal services read them.
    pub fn internal(cid: u64, handler: Arc<dyn InternalHandler>) -> Self {
        let mut c = Self::with_kind(ConnKind::Internal, cid, None, usize::MAX);
        c.handler = Some(handler);
        c.headers = AtomicBool::new(true);
        c
    }

    /// A WebSocket client connection (`forwarded_for`: the address its
    /// proxy says it has, for logs).
    pub fn websocket(
        cid: u64,
        addr: SocketAddr,
        forwarded_for: Option<std::net::IpAddr>,
        max_pending: usize,
    ) -> Self {
        let mut c = Self::new(cid, Some(addr), max_pending);
        c.client_type = ClientType::Websocket;
        c.forwarded_for = forwarded_for;
        c
    }

    /// A client with no socket, for unit tests of routing structures.
    pub fn detached() -> Self {
        Self::new(0, None, crate::options::MAX_PENDING)
    }

    /// Queue raw protocol bytes (e.g. `+OK`, `PONG`, `-ERR`) and wake the writer now.
    pub fn send(&self, bytes: &[u8]) {
        let queued = self.out.lock().push_control(bytes);
        match queued {
            outbound::Queued::Ok { .. } => self.wake.notify_one(),
            outbound::Queued::Closed => {}
            outbound::Queued::SlowConsumer => {
                tracing::info!(
                    "{} - Slow Consumer Detected: control replies over the pending limit",
                    self.tag()
                );
                self.close(ClosedState::SlowConsumerPendingBytes);
            }
        }
    }

    /// Close with a reason: stop accepting output, let the writer flush what is
    /// queued, and stop the reader. Returns false if already closed.
    pub fn close(&self, reason: ClosedState) -> bool {
        let first = self.out.lock().mark_closed(reason);
        if first {
            self.wake.notify_one();
            self.kill.notify_one();
        }
        first
    }

    /// Turn `allow_responses` on (or off) for this client, forgetting any
    /// replies it could answer before.
    pub fn set_reply_allowance(&self, perm: Option<ResponsePermission>) {
        *self.replies.lock() = perm.map(|perm| ReplyAllowance {
            perm,
            open: crate::expiring::ExpiringMap::with_limit(REPLY_ALLOWANCE_LIMIT),
        });
        self.tracks_replies.store(perm.is_some(), Ordering::Release);
    }

    /// A request with this reply subject was delivered to the client.
    #[inline]
    pub fn note_reply(&self, reply: &[u8]) {
        if !self.tracks_replies.load(Ordering::Relaxed) {
            return;
        }
        if let Some(a) = self.replies.lock().as_mut() {
            let until = std::time::Instant::now() + a.perm.expires;
            a.open.insert(reply.to_vec(), a.perm.max_msgs.max(1), until);
        }
    }

    /// May the client publish to `subject` as a response? Uses one allowance.
    pub fn use_reply_allowance(&self, subject: &[u8]) -> bool {
        if !self.tracks_replies.load(Ordering::Relaxed) {
            return false;
        }
        let mut guard = self.replies.lock();
        let Some(a) = guard.as_mut() else {
            return false;
        };
        let Some(left) = a.open.get_mut(subject) else {
            return false; // never opened, used up, or expired
        };
        *left = left.saturating_sub(1);
        if *left == 0 {
            a.open.remove(subject);
        }
        true
    }

    /// Log prefix in nats-server's form: `127.0.0.1:5432 - cid:7` (`rid`
    /// for routes, `wid` for WebSocket clients, whose proxy's
    /// `X-Forwarded-For` address comes first: `10.0.0.9/127.0.0.1:5432`).
    pub fn tag(&self) -> String {
        let id = if self.kind == ConnKind::Route {
            "rid"
        } else {
            self.client_type.log_id()
        };
        match (self.addr, self.forwarded_for) {
            (Some(a), Some(std::net::IpAddr::V6(f))) => format!("[{f}]/{a} - {id}:{}", self.cid),
            (Some(a), Some(f)) => format!("{f}/{a} - {id}:{}", self.cid),
            (Some(a), None) => format!("{a} - {id}:{}", self.cid),
            (None, _) => format!("{id}:{}", self.cid),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.out.lock().is_closed()
    }

    pub fn closed_reason(&self) -> Option<ClosedState> {
        self.out.lock().closed_reason()
    }

    pub fn touch(&self) {
        self.last_activity.store(now_nanos(), Ordering::Relaxed);
    }

    pub fn num_subs(&self) -> usize {
        self.subs.lock().len()
    }

    pub fn pending_bytes(&self) -> usize {
        self.out.lock().pending()
    }
}
