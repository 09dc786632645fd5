//! Authenticating a client connection: its first operation, each CONNECT,
//! and what a successful one binds.
//!
//! Every CONNECT is a complete authentication. nats-server decodes it onto
//! the options the connection already has, runs the whole pipeline again
//! and registers the result, so a re-CONNECT gets a new account,
//! permissions, limits and reply allowances, or is refused and closed; it
//! never keeps part of the old identity and part of the new. The decision
//! is made off the read path: bcrypt checks wait for the bounded pool and
//! the auth callout for its service, while reading pauses.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, error, info, trace, warn};

use super::{Flow, Reader};
use crate::accounts::Account;
use crate::auth::{self, Identity};
use crate::callout;
use crate::client::ClosedState;
use crate::limits::Limit;
use crate::protocol::{errors, ConnectOptions, CLIENT_PROTO_INFO};

/// A CONNECT whose decision takes time: reading pauses until it is made.
pub(super) struct PendingAuth {
    connect: ConnectOptions,
    /// No CONNECT was sent: the client's first operation was something
    /// else, and the server admits it as the `no_auth_user`.
    implicit: bool,
}

impl Reader {
    /// Before a client that must authenticate has sent CONNECT, look at the
    /// first byte of each operation, as nats-server's parser does, and stop
    /// anything else there, before its arguments or body are buffered. With
    /// a `no_auth_user` (a user name, not an nkey) the operation is allowed
    /// once the client is admitted as that user, through the same pipeline.
    pub(super) fn gate_before_connect(&mut self, first: u8) -> Option<Flow> {
        if !self.cfg.auth_required || self.connect_received || !self.parser.at_op_start() {
            return None;
        }
        if first.eq_ignore_ascii_case(&b'C') {
            return None;
        }
        let opts = self.server.opts();
        let realm = auth::Realm::of(&opts, self.cfg.client_type.conn_type());
        let named_user = realm.no_auth_user.is_some_and(|n| {
            opts.users
                .iter()
                .any(|u| u.nkey.is_none() && u.username == n)
        });
        if !named_user {
            return Some(self.auth_violation());
        }
        Some(Flow::Authenticate(Box::new(PendingAuth {
            connect: ConnectOptions::default(),
            implicit: true,
        })))
    }

    pub(super) fn on_connect(&mut self, arg: &[u8]) -> Flow {
        trace!(
            "{} - <<- [CONNECT {}]",
            self.tag(),
            crate::redact::connect_trace(arg)
        );
        let mut c = match ConnectOptions::parse_onto(&mut self.connect_sent, arg) {
            Ok(c) => c,
            Err(e) => {
                error!("{} - {e}", self.tag());
                return Flow::Close(ClosedState::ProtocolViolation);
            }
        };
        if let Some(cookies) = &self.cfg.cookies {
            cookies.apply(&mut c);
        }
        Flow::Authenticate(Box::new(PendingAuth {
            connect: c,
            implicit: false,
        }))
    }

    /// Decide a CONNECT: local credentials, then the auth callout where it
    /// applies. Ends early if the connection is closed meanwhile.
    pub(super) async fn authenticate(&mut self, pending: PendingAuth) -> Flow {
        let shared = self.shared.clone();
        tokio::select! {
            flow = self.decide(pending) => flow,
            _ = shared.kill.notified() => {
                Flow::Close(shared.closed_reason().unwrap_or(ClosedState::ServerShutdown))
            }
        }
    }

    async fn decide(&mut self, pending: PendingAuth) -> Flow {
        let PendingAuth {
            connect: c,
            implicit,
        } = pending;
        let server = self.server.clone();
        let opts = server.opts();
        // As in nats-server, a CONNECT stops the auth timer; the check it
        // starts gets the auth timeout of its own. Only a bcrypt check
        // queued behind a flood of others can take that long.
        let login = auth::Login {
            connect: &c,
            nonce: &self.cfg.nonce,
            conn_type: self.cfg.client_type.conn_type(),
            source: self.shared.addr.map(|a| a.ip()),
        };
        if let Some(trust) = server.trust() {
            // Operator mode: a user JWT or nothing, never another identity.
            // An account this server does not hold may be held by a peer.
            if let Some(key) = crate::operator::user::account_of(c.jwt.as_deref()) {
                if trust.dir().is_some() && trust.account(&key).is_none() {
                    server.fetch_account(&key).await;
                }
            }
            return match trust.authenticate(login) {
                Ok(identity) => self.complete_connect(c, identity, implicit),
                Err(why) => {
                    debug!("{} - {why}", self.tag());
                    self.auth_violation()
                }
            };
        }
        let local = tokio::time::timeout(
            self.cfg.auth_timeout,
            auth::authenticate(&opts, server.secrets(), login),
        )
        .await;
        let Ok(local) = local else {
            debug!("{} - Authentication Timeout", self.tag());
            self.send_err(errors::AUTH_TIMEOUT);
            return Flow::Close(ClosedState::AuthenticationTimeout);
        };
        if opts.auth_callout.is_some() {
            let Some(co) = server.callout() else {
                warn!(
                    "{} - Auth callout is configured but not available",
                    self.tag()
                );
                return self.auth_violation();
            };
            let raw_user = auth::raw_auth_user(&c, &opts, self.cfg.client_type.conn_type());
            if co.applies(&raw_user, local.as_ref().ok()) {
                let req = callout::CalloutClient {
                    cid: self.shared.cid,
                    addr: self.shared.addr,
                    connect: &c,
                    nonce: &self.cfg.nonce,
                    raw_user,
                    client_type: self.cfg.client_type,
                };
                // The callout bounds its own wait by the auth timeout.
                return match co.authorize(&server, req, self.cfg.auth_timeout).await {
                    Ok(identity) => self.complete_connect(c, identity, implicit),
                    Err(_) => self.auth_violation(),
                };
            }
        }
        match local {
            Ok(identity) => self.complete_connect(c, identity, implicit),
            Err(auth::Refusal::Violation) => self.auth_violation(),
            Err(auth::Refusal::Busy) => {
                // Not a wrong password: the client may retry, and its
                // library will (an authorization violation can make it
                // give up).
                debug!(
                    "{} - Authentication Timeout: too many password checks pending from this address",
                    self.tag()
                );
                self.send_err(errors::AUTH_TIMEOUT);
                Flow::Close(ClosedState::AuthenticationTimeout)
            }
        }
    }

    /// Bind an authenticated CONNECT as a whole: account, permissions,
    /// limits, reply allowances, expiry, options. Nothing of an earlier
    /// identity survives it.
    fn complete_connect(&mut self, c: ConnectOptions, identity: Identity, implicit: bool) -> Flow {
        if self.connect_received {
            // nats-server re-registers the connection on a second CONNECT
            // and its existing subscriptions stop receiving; do the same so
            // that clients see identical behaviour.
            self.drop_all_subscriptions();
        }
        let account = match &identity.account {
            None => self.server.global_account(),
            Some(name) => match self.server.account(name.as_bytes()) {
                Some(acc) => acc,
                None => {
                    error!(
                        "{} - Account {name:?} of user {:?} does not exist",
                        self.tag(),
                        identity.user
                    );
                    return self.auth_violation();
                }
            },
        };
        if let Err(flow) = self.bind_account(account) {
            return flow;
        }
        self.perms = self.guarded(identity.permissions.clone()).map(Arc::new);
        self.default_perms = identity.default_permissions;
        self.pub_cache.clear();
        self.shared.set_reply_allowance(
            identity
                .permissions
                .as_ref()
                .and_then(|p| p.allow_responses),
        );
        self.user_limits = identity.limits;
        self.apply_limits();
        self.expires = identity.expires.map(|at| {
            let left = at
                .duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO);
            Instant::now() + left
        });
        self.expiry = identity.expiry;
        self.connect_received = true;
        let headers = c.headers && self.cfg.headers_supported;
        self.parser.headers = headers;
        self.shared.headers.store(headers, Ordering::Relaxed);
        self.shared.echo.store(c.echo, Ordering::Relaxed);
        {
            let mut meta = self.shared.meta.lock();
            meta.name = c.name.clone();
            meta.lang = c.lang.clone();
            meta.version = c.version.clone();
            meta.user = identity.user.clone();
            meta.account = self.account.name.clone();
            meta.signed = identity.signed.clone();
            // First estimate, as nats-server makes it: connect to CONNECT.
            if meta.rtt_nanos == 0 {
                meta.rtt_nanos = self.accepted.elapsed().as_nanos() as u64;
            }
        }
        if !implicit {
            if c.protocol < 0 || c.protocol > CLIENT_PROTO_INFO {
                self.send_err(errors::BAD_CLIENT_PROTOCOL);
                return Flow::Close(ClosedState::BadClientProtocolVersion);
            }
            if c.no_responders && !headers {
                self.send_err(errors::NO_RESPONDERS_REQUIRES_HEADERS);
                return Flow::Close(ClosedState::NoRespondersRequiresHeaders);
            }
            if c.verbose {
                self.shared.send(b"+OK\r\n");
            }
        }
        self.connect = c;
        self.server.client_connected(&self.shared);
        Flow::Continue
    }

    /// Move the connection into `account`, taking a seat there (counted
    /// against the account's `max_connections`) and giving back its old one.
    fn bind_account(&mut self, account: Arc<Account>) -> Result<(), Flow> {
        // Give the old seat back first: re-authenticating into the same
        // full account must not count the connection twice.
        self.seat = None;
        let Some(seat) = account.take_seat() else {
            error!(
                "{} - {}",
                self.tag(),
                errors::MAX_ACCOUNT_CONNECTIONS_EXCEEDED
            );
            self.send_err(errors::MAX_ACCOUNT_CONNECTIONS_EXCEEDED);
            return Err(Flow::Close(ClosedState::MaxAccountConnectionsExceeded));
        };
        self.seat = Some(seat);
        if !Arc::ptr_eq(&account, &self.account) {
            // Subscriptions made before CONNECT belonged to the old account.
            self.drop_all_subscriptions();
            *self.shared.account.lock() = Some(account.clone());
            self.account = account;
            self.cache.clear();
        }
        Ok(())
    }
}

impl Reader {
    /// `perms` with what the server adds: users of the callout account may
    /// not forge requests to it.
    fn guarded(
        &self,
        mut perms: Option<crate::permissions::Permissions>,
    ) -> Option<crate::permissions::Permissions> {
        if let Some(co) = self.server.callout() {
            if self.account.name == co.account_name() {
                let p = perms.get_or_insert_with(Default::default);
                p.publish
                    .get_or_insert_with(Default::default)
                    .deny
                    .push(callout::AUTH_CALLOUT_SUBJECT.to_string());
            }
        }
        perms
    }

    /// The server's limits, narrowed by the account's and the user's.
    fn apply_limits(&mut self) {
        let limits = self.account.limits().conn.min(self.user_limits);
        self.max_subs = Limit::from_option(self.cfg.max_subs).min(limits.subs);
        self.parser.max_payload = match (self.base_max_payload, limits.payload.as_usize()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// The account's JWT changed: its limits apply again, and its default
    /// permissions to a user who brought none (subscriptions they no
    /// longer allow are removed), as nats-server's `applyAccountLimits`
    /// and `updateDefaultPermissions` do. A connection left at or over its
    /// subscription limit is closed.
    pub(super) fn account_changed(&mut self) -> Flow {
        if !self.connect_received {
            return Flow::Continue;
        }
        self.apply_limits();
        if self.default_perms {
            self.perms = self
                .guarded(self.account.default_permissions())
                .map(Arc::new);
            self.pub_cache.clear();
            self.drop_forbidden_subscriptions();
        }
        if self.max_subs.reached(self.shared.num_subs()) {
            error!("{} - {}", self.tag(), errors::MAX_SUBS);
            self.send_err(errors::MAX_SUBS);
            return Flow::Close(ClosedState::MaxSubscriptionsExceeded);
        }
        Flow::Continue
    }

    /// Remove the subscriptions the connection's permissions no longer
    /// allow, each with nats-server's error.
    fn drop_forbidden_subscriptions(&mut self) {
        let Some(perms) = self.perms.clone() else {
            return;
        };
        let subs: Vec<Arc<crate::subscription::Subscription>> =
            self.shared.subs.lock().values().cloned().collect();
        for sub in subs {
            let subject = String::from_utf8_lossy(&sub.subject).into_owned();
            let queue = sub.queue.as_deref().map(String::from_utf8_lossy);
            match perms.check_subscribe(&subject, queue.as_deref()) {
                crate::permissions::SubVerdict::Denied => {
                    let sid = String::from_utf8_lossy(&sub.sid);
                    let what = match &queue {
                        Some(q) => format!("{subject:?} using queue {q:?} (sid {sid:?})"),
                        None => format!("{subject:?} (sid {sid:?})"),
                    };
                    let user = self.shared.meta.lock().user.clone().unwrap_or_default();
                    info!("Removed sub {what} for {user} - not authorized");
                    self.send_err(&format!("Permissions Violation for Subscription to {what}"));
                    self.server.remove_subscription(&sub);
                }
                crate::permissions::SubVerdict::AllowedExcept(deny) => sub.set_deny(deny),
                crate::permissions::SubVerdict::Allowed => {}
            }
        }
        self.cache.clear();
    }
}
