//! Auth callout: clients that are not `auth_users` are authorized by an
//! external service, as nats-server does it (ADR-26, `auth_callout.go`).
//!
//! For each such CONNECT the server makes an ephemeral user nkey, signs an
//! `authorization_request` JWT with its own server nkey (`aud`
//! `nats-authorization-request`, `sub` the configured issuer, expiring after
//! the auth timeout), optionally seals it to the service's xkey, and
//! publishes it on `$SYS.REQ.USER.AUTH` in the callout account. The service
//! answers with an `authorization_response` JWT for that ephemeral key,
//! carrying either an error or a user JWT whose `aud` names the account the
//! user lands in and whose `nats` section holds its permissions and limits.
//!
//! Every check nats-server makes is made here, plus one it leaves to
//! operator mode: the response must be signed by the configured issuer.
//! The replay defence is the ephemeral key: a response (or user JWT) made
//! for another connection names another key and is refused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tracing::{debug, error, warn};

use tribune_auth::jwt::{
    self, AuthorizationRequest, AuthorizationRequestClaims, AuthorizationResponseClaims,
    ClientInformation, ServerId, StdClaims, UserClaims,
};

use crate::accounts::Account;
use crate::auth::claims::{check_times, cidr_contains, permissions_from_jwt};
use crate::auth::Identity;
use crate::client::{InternalHandler, Msg};
use crate::internal::InternalClient;
use crate::limits::{ConnLimits, Limit};
use crate::options::{AuthCalloutOptions, Options};
use crate::protocol::ConnectOptions;
use crate::server::Server;
use crate::subscription::Subscription;

/// Where requests go.
pub const AUTH_CALLOUT_SUBJECT: &str = "$SYS.REQ.USER.AUTH";
/// The `aud` of every request.
const AUTH_REQUEST_AUDIENCE: &str = "nats-authorization-request";
/// Header naming the server's xkey on a sealed request.
const XKEY_HEADER: &str = "Nats-Server-Xkey";
/// A JWT starts with the base64 of `{"`: how a plaintext response is told
/// from a sealed one.
const JWT_PREFIX: &[u8] = b"eyJ";

/// The connection being authorized, as the request describes it.
#[derive(Debug)]
pub struct CalloutClient<'a> {
    pub cid: u64,
    pub addr: Option<SocketAddr>,
    pub connect: &'a ConnectOptions,
    /// The nonce this connection was sent (signed by NKEY clients).
    pub nonce: &'a str,
    /// The name nats-server reports as the client's user: its nkey, user
    /// name, or `[REDACTED]` for a token.
    pub raw_user: String,
    /// How the client connected: its `type` in the request, and what the
    /// user JWT's `allowed_connection_types` is checked against.
    pub client_type: crate::client::ClientType,
}

/// Where one connection waits for its answer.
type Waiter = oneshot::Sender<Vec<u8>>;

/// Replies by inbox subject, each waited on by one connection.
#[derive(Default)]
struct Replies(Mutex<HashMap<Box<[u8]>, Waiter>>);

impl InternalHandler for Replies {
    fn deliver(&self, _sub: &Subscription, msg: &Msg<'_>) {
        if let Some(tx) = self.0.lock().remove(msg.subject) {
            let _ = tx.send(msg.body[msg.hdr_len..].to_vec());
        }
    }
}

/// Removes a connection's waiter when its wait ends, however it ends.
struct Waiting<'a>(&'a Replies, &'a [u8]);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0 .0.lock().remove(self.1);
    }
}

/// The server's side of auth callout, built once at start.
pub struct AuthCallout {
    cfg: AuthCalloutOptions,
    client: InternalClient,
    replies: Arc<Replies>,
    /// `$SYS._INBOX.<server>.`: each request's reply is this plus a random token.
    inbox: String,
    service_xkey: Option<nkeys::XKey>,
}

impl std::fmt::Debug for AuthCallout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCallout")
            .field("account", &self.cfg.account)
            .finish()
    }
}

impl AuthCallout {
    /// Set up the reply subscription in the callout account. Logs, as
    /// nats-server does, an account that does not exist (auth users that do
    /// not exist were refused with the configuration).
    pub fn start(server: &Server, opts: &Options) -> Option<AuthCallout> {
        let cfg = opts.auth_callout.clone()?;
        let Some(account) = server.account(cfg.account.as_bytes()) else {
            error!("Authorization callout account {:?} not valid", cfg.account);
            return None;
        };
        let service_xkey = match cfg.xkey.as_deref().map(nkeys::XKey::from_public_key) {
            None => None,
            Some(Ok(k)) => Some(k),
            Some(Err(e)) => {
                error!("Authorization callout xkey not valid: {e}");
                return None;
            }
        };
        let replies = Arc::new(Replies::default());
        let client = InternalClient::new(server, account, replies.clone());
        let inbox = format!("$SYS._INBOX.{}.", &server.id[1..9]);
        if let Err(e) = client.subscribe(server, &format!("{inbox}*"), None) {
            error!("Error setting up reply subscription for auth request: {e}");
            return None;
        }
        Some(AuthCallout {
            cfg,
            client,
            replies,
            inbox,
            service_xkey,
        })
    }

    /// Does this client go to the service? Not if it is an auth user, nor
    /// (with `allowed_accounts`) if it authenticated into another account.
    pub fn applies(&self, raw_user: &str, local: Option<&Identity>) -> bool {
        if self.cfg.auth_users.iter().any(|u| u == raw_user) {
            return false;
        }
        if self.cfg.allowed_accounts.is_empty() {
            return true;
        }
        match local.and_then(|id| id.account.as_deref()) {
            None | Some(crate::accounts::GLOBAL_ACCOUNT) => true,
            Some(acc) => self.cfg.allowed_accounts.iter().any(|a| a == acc),
        }
    }

    /// The callout account's name (its users may not publish requests).
    pub fn account_name(&self) -> &str {
        &self.cfg.account
    }

    /// Ask the service. `Err` carries the reason, already logged.
    pub async fn authorize(
        &self,
        server: &Server,
        client: CalloutClient<'_>,
        timeout: Duration,
    ) -> Result<Identity, String> {
        let user = nkeys::KeyPair::new_user();
        let user_pub = user.public_key();
        let account = self.client.account().name.clone();
        let request = match self.request_jwt(server, &client, &user_pub, timeout) {
            Ok(r) => r,
            Err(e) => {
                let e = format!("Error encoding auth request claim on account {account:?}: {e}");
                warn!("{e}");
                return Err(e);
            }
        };
        let (headers, body) = match &self.service_xkey {
            None => (Vec::new(), request.into_bytes()),
            Some(svc) => match server.xkey.seal(request.as_bytes(), svc) {
                Ok(sealed) => (
                    format!(
                        "NATS/1.0\r\n{XKEY_HEADER}: {}\r\n\r\n",
                        server.xkey.public_key()
                    )
                    .into_bytes(),
                    sealed,
                ),
                Err(e) => {
                    let e =
                        format!("Error encrypting auth request claim on account {account:?}: {e}");
                    warn!("{e}");
                    return Err(e);
                }
            },
        };
        let reply = format!("{}{:016x}", self.inbox, rand::random::<u64>());
        let (tx, rx) = oneshot::channel();
        self.replies
            .0
            .lock()
            .insert(Box::from(reply.as_bytes()), tx);
        // However this wait ends (answer, timeout, or the connection going
        // away and dropping this future), the waiter leaves the map.
        let _waiting = Waiting(&self.replies, reply.as_bytes());
        self.client
            .publish(server, AUTH_CALLOUT_SUBJECT, Some(&reply), &headers, &body);
        let response = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            _ => {
                let e = format!(
                    "Authorization callout response not received in time on account {account:?}"
                );
                debug!("{e}");
                return Err(e);
            }
        };
        let result = self.check_response(server, &response, &user_pub, &client);
        if let Err(e) = &result {
            warn!("{e}");
        }
        result
    }

    fn request_jwt(
        &self,
        server: &Server,
        client: &CalloutClient<'_>,
        user_pub: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let c = client.connect;
        let sig = c.sig.clone().unwrap_or_default();
        let mut claims = AuthorizationRequestClaims {
            std: StdClaims {
                sub: self.cfg.issuer.clone(),
                aud: AUTH_REQUEST_AUDIENCE.to_string(),
                exp: jwt::now_unix() + timeout.as_secs().max(1) as i64,
                ..Default::default()
            },
            nats: AuthorizationRequest {
                server_id: ServerId {
                    name: server.name.clone(),
                    host: server.opts().host.clone(),
                    id: server.id.clone(),
                    version: crate::server::NATS_COMPAT_VERSION.to_string(),
                    cluster: server.cluster_name_if_clustered(),
                    xkey: if self.service_xkey.is_some() {
                        server.xkey.public_key()
                    } else {
                        String::new()
                    },
                },
                user_nkey: user_pub.to_string(),
                client_info: ClientInformation {
                    host: client.addr.map(|a| a.ip().to_string()).unwrap_or_default(),
                    id: client.cid,
                    user: client.raw_user.clone(),
                    name: c.name.clone(),
                    kind: "Client".to_string(),
                    client_type: client.client_type.as_str().to_string(),
                    nonce: if sig.is_empty() {
                        String::new()
                    } else {
                        client.nonce.to_string()
                    },
                },
                connect_opts: jwt::ConnectOptions {
                    jwt: c.jwt.clone().unwrap_or_default(),
                    nkey: c.nkey.clone().unwrap_or_default(),
                    auth_token: c.auth_token.clone().unwrap_or_default(),
                    user: c.user.clone().unwrap_or_default(),
                    pass: c.pass.clone().unwrap_or_default(),
                    name: c.name.clone(),
                    lang: c.lang.clone(),
                    version: c.version.clone(),
                    sig,
                    protocol: i64::from(c.protocol),
                },
                kind: "authorization_request".to_string(),
                version: 2,
            },
        };
        jwt::encode(&mut claims, &server.key_pair)
    }

    /// Every check on the service's answer, in nats-server's order and words.
    fn check_response(
        &self,
        server: &Server,
        raw: &[u8],
        user_pub: &str,
        client: &CalloutClient<'_>,
    ) -> Result<Identity, String> {
        let account = &self.client.account().name;
        if raw.is_empty() {
            return Err(format!(
                "Auth callout violation: \"no reason supplied\" on account {account:?}"
            ));
        }
        let opened;
        let raw = match &self.service_xkey {
            Some(svc) if !raw.starts_with(JWT_PREFIX) => {
                opened = server.xkey.open(raw, svc).map_err(|e| {
                    format!("Error decrypting auth callout response on account {account:?}: {e}")
                })?;
                &opened[..]
            }
            _ => raw,
        };
        let text = std::str::from_utf8(raw)
            .map_err(|_| "Auth callout response is not a JWT".to_string())?;
        let resp: AuthorizationResponseClaims = jwt::decode_verified(text)
            .map_err(|e| format!("Authorization response is not valid: {e}"))?;
        check_times(&resp.std)
            .map_err(|e| format!("Authorization response had validation errors: {e}"))?;
        if resp.std.sub != user_pub {
            return Err(
                "Auth callout violation: auth callout response is not for expected user".into(),
            );
        }
        if resp.std.aud != server.id {
            return Err("Auth callout violation: auth callout response is not for server".into());
        }
        if resp.std.iss != self.cfg.issuer {
            return Err(format!(
                "Auth callout violation: response on account {account:?} not signed by the configured issuer"
            ));
        }
        if !resp.nats.error.is_empty() {
            return Err(format!(
                "Auth callout service returned an error: {}",
                resp.nats.error
            ));
        }
        let user: UserClaims = jwt::decode_verified(&resp.nats.jwt)
            .map_err(|e| format!("Error validating user JWT: {e}"))?;
        self.check_user(server, &user, user_pub, client)
    }

    fn check_user(
        &self,
        server: &Server,
        user: &UserClaims,
        user_pub: &str,
        client: &CalloutClient<'_>,
    ) -> Result<Identity, String> {
        let account = &self.client.account().name;
        check_times(&user.std).map_err(|e| format!("Error validating user JWT: {e}"))?;
        if user.std.sub != user_pub {
            return Err(format!(
                "Expected authorized user of {user_pub:?} but got {:?} on account {account:?}",
                user.std.sub
            ));
        }
        if !user.nats.times.is_empty() {
            return Err(format!(
                "Authorized user on account {account:?} has connect-time windows, which tribune-broker does not enforce"
            ));
        }
        if !user.nats.src.is_empty() {
            let ip = client.addr.map(|a| a.ip());
            if !ip.is_some_and(|ip| user.nats.src.iter().any(|c| cidr_contains(c, ip))) {
                return Err(format!(
                    "Authorized user on account {account:?} not allowed from this address"
                ));
            }
        }
        if !user.nats.issuer_account.is_empty() {
            return Err(format!(
                "Error non operator mode account {account:?}: attempted to use issuer_account"
            ));
        }
        if user.std.iss != self.cfg.issuer {
            return Err(format!(
                "Wrong issuer for auth callout response on account {account:?}, expected {:?} got {:?}",
                self.cfg.issuer, user.std.iss
            ));
        }
        let placement = &user.std.aud;
        let target: Arc<Account> = server.account(placement.as_bytes()).ok_or_else(|| {
            format!(
                "No valid account {placement:?} for auth callout response on account {account:?}: account not found"
            )
        })?;
        // nats-server reads the list and refuses a user whose types are all
        // unknown; it does not hold the connection to them. Tribune does.
        let allowed = crate::auth::connection_types(&user.nats.allowed_connection_types);
        if allowed.known.is_empty() && !allowed.unknown.is_empty() {
            return Err(format!(
                "Authorized user on account {account:?} using invalid connection type"
            ));
        }
        if !crate::auth::connection_type_allowed(&allowed.known, client.client_type.conn_type()) {
            return Err(format!(
                "Authorized user on account {account:?} not allowed to connect as {}",
                client.client_type.conn_type()
            ));
        }
        let name = if user.std.name.is_empty() {
            user_pub.to_string()
        } else {
            user.std.name.clone()
        };
        // A JWT with no permissions gets the account's defaults, as
        // nats-server's buildInternalNkeyUser gives them.
        let permissions = permissions_from_jwt(&user.nats).or_else(|| target.default_permissions());
        Ok(Identity {
            user: Some(name),
            account: Some(target.name.clone()),
            permissions,
            limits: ConnLimits {
                subs: Limit::from_jwt(user.nats.subs),
                payload: Limit::from_jwt(user.nats.payload),
            },
            expires: (user.std.exp > 0)
                .then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(user.std.exp as u64)),
            ..Default::default()
        })
    }
}
