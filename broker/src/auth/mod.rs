//! Client authentication against the configured credentials.
//!
//! The forms nats-server offers in `authorization {}` and `accounts {}`: a
//! token, one user/password, a list of users (passwords in plain text or as
//! bcrypt hashes), and NKEY users, who prove they hold a key by signing the
//! nonce the server sent in INFO.
//!
//! The decision is all or nothing. A client that presents a credential is
//! judged on that credential alone: if it fails, the answer is no, never
//! the `no_auth_user` identity or any other. nats-server agrees except in
//! one corner, where it is more lenient: a client that sends an `nkey` (or
//! a JWT) to a server with only password users is made the `no_auth_user`;
//! Tribune refuses it. bcrypt checks run on [`SecretChecker`]'s bounded
//! blocking pool, so this is async.

pub mod claims;
pub mod secrets;

use std::net::IpAddr;
use std::time::SystemTime;

use base64::Engine;

pub use secrets::{constant_time_eq, is_bcrypt, Check, SecretChecker};

use crate::limits::ConnLimits;
use crate::options::{Options, User};
use crate::permissions::Permissions;
use crate::protocol::ConnectOptions;

/// Who a successfully authenticated client is: everything its connection
/// takes from the authentication, replaced as a whole on a re-CONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub user: Option<String>,
    pub account: Option<String>,
    pub permissions: Option<Permissions>,
    /// The user's own limits (from a user JWT); the server's and the
    /// account's still apply on top.
    pub limits: ConnLimits,
    /// `permissions` are the account's defaults (the user JWT brought
    /// none): they follow the account's JWT when it changes.
    pub default_permissions: bool,
    /// When the credentials expire (a user JWT's `exp`): the connection is
    /// closed then.
    pub expires: Option<SystemTime>,
    /// Whose expiry `expires` is: what the client is told then.
    pub expiry: Expiry,
    /// For a user JWT: who signed it and when, so that an account update
    /// revoking the user or dropping the signing key can end the connection.
    pub signed: Option<Signed>,
}

/// The signature on a user JWT a connection was admitted with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The account key or signing key that signed the user JWT.
    pub issuer: String,
    /// The user JWT's `iat` (unix seconds), which revocations compare.
    pub issued_at: i64,
    /// When the signer is a scoped key: its scope, as [`scope_digest`]
    /// writes it. A changed scope ends the connection, as in nats-server.
    pub scope: Option<String>,
    /// A bearer token: no nonce was signed.
    pub bearer: bool,
}

/// A scoped signing key's scope in a comparable form (its JSON).
pub fn scope_digest(scope: &tribune_auth::jwt::UserScope) -> String {
    serde_json::to_string(scope).unwrap_or_default()
}

/// Whose credentials end a connection when they expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expiry {
    /// The user's JWT (or its connect-time window): `User Authentication Expired`.
    #[default]
    User,
    /// The account's JWT: `Account Authentication Expired`.
    Account,
}

impl Expiry {
    /// The error nats-server sends when this expiry closes a connection.
    pub fn error(self) -> &'static str {
        match self {
            Expiry::User => crate::protocol::errors::AUTH_EXPIRED,
            Expiry::Account => crate::protocol::errors::ACCOUNT_AUTH_EXPIRED,
        }
    }
}

impl Identity {
    /// A configured user. Its permissions already include the defaults of
    /// its `authorization {}` block or account, filled in when the
    /// configuration was read, as nats-server does.
    fn of(u: &User) -> Identity {
        let name = u.nkey.clone().unwrap_or_else(|| u.username.clone());
        Identity {
            user: Some(name),
            account: u.account.clone(),
            permissions: u.permissions.clone(),
            ..Default::default()
        }
    }
}

/// A client connected over TCP, as `allowed_connection_types` names it.
pub const CONN_TYPE_STANDARD: &str = "STANDARD";
/// A client connected over WebSocket.
pub const CONN_TYPE_WEBSOCKET: &str = "WEBSOCKET";

/// Every connection type nats-server knows.
const CONN_TYPES: &[&str] = &[
    "STANDARD",
    "WEBSOCKET",
    "LEAFNODE",
    "LEAFNODE_WS",
    "MQTT",
    "MQTT_WS",
    "IN_PROCESS",
];

/// An `allowed_connection_types` list, upper-cased and split into the
/// types nats-server knows and the ones it does not.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConnectionTypes {
    pub known: Vec<String>,
    pub unknown: Vec<String>,
}

pub fn connection_types(list: &[String]) -> ConnectionTypes {
    let mut out = ConnectionTypes::default();
    for t in list {
        let t = t.to_ascii_uppercase();
        if CONN_TYPES.contains(&t.as_str()) {
            out.known.push(t);
        } else {
            out.unknown.push(t);
        }
    }
    out
}

/// May a client of `conn_type` use an identity limited to `allowed`? An
/// empty list allows every type.
pub fn connection_type_allowed(allowed: &[String], conn_type: &str) -> bool {
    allowed.is_empty() || allowed.iter().any(|t| t == conn_type)
}

/// Does the CONNECT present a credential of its own? Only a client that
/// presents none may be given the `no_auth_user` identity.
pub fn presents_credentials(c: &ConnectOptions) -> bool {
    [&c.user, &c.pass, &c.auth_token, &c.nkey, &c.jwt]
        .iter()
        .any(|f| f.as_deref().is_some_and(|s| !s.is_empty()))
}

/// Decode a nonce signature: clients send base64 URL encoding without
/// padding, some send standard encoding; accept both, as nats-server does.
fn decode_sig(sig: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [URL_SAFE_NO_PAD, URL_SAFE, STANDARD_NO_PAD, STANDARD]
        .iter()
        .find_map(|e| e.decode(sig).ok())
}

/// Does `sig` prove possession of `nkey` for this `nonce`?
pub fn nkey_signature_ok(nkey: &str, nonce: &str, sig: &str) -> bool {
    let (Ok(kp), Some(sig)) = (nkeys::KeyPair::from_public_key(nkey), decode_sig(sig)) else {
        return false;
    };
    !nonce.is_empty() && kp.verify(nonce.as_bytes(), &sig).is_ok()
}

/// A fresh nonce for INFO: 11 random bytes, base64url without padding.
pub fn new_nonce() -> String {
    let mut b = [0u8; 11];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// What a client presents, and how it came.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    pub connect: &'a ConnectOptions,
    /// The nonce this connection was sent (NKEY users sign it).
    pub nonce: &'a str,
    /// What `allowed_connection_types` calls this kind of client.
    pub conn_type: &'a str,
    /// The client's address: bcrypt checks are shared out by it.
    pub source: Option<IpAddr>,
}

/// Why a login was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong or missing credentials: `Authorization Violation`.
    Violation,
    /// The password could not be checked now: this address already has
    /// its share of bcrypt checks pending. The client may try again.
    Busy,
}

fn outcome(check: Check) -> Result<(), Refusal> {
    match check {
        Check::Match => Ok(()),
        Check::Mismatch => Err(Refusal::Violation),
        Check::Busy => Err(Refusal::Busy),
    }
}

/// The simple credentials a kind of client is checked against: the
/// server's, or for WebSocket clients those of `websocket { authorization
/// {} }` (and its `no_auth_user`) when the block has any, which then
/// replace the server's, as nats-server's auth override does. Users and
/// NKEY users are the server's either way.
#[derive(Debug, Clone, Copy)]
pub struct Realm<'a> {
    pub token: Option<&'a str>,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub no_auth_user: Option<&'a str>,
    /// Clients of this kind must authenticate.
    pub required: bool,
}

impl<'a> Realm<'a> {
    pub fn of(opts: &'a Options, conn_type: &str) -> Realm<'a> {
        let ws = &opts.websocket;
        if conn_type == CONN_TYPE_WEBSOCKET && ws.auth_override() {
            return Realm {
                token: ws.token.as_deref(),
                username: ws.username.as_deref(),
                password: ws.password.as_deref(),
                no_auth_user: ws.no_auth_user.as_deref(),
                required: true,
            };
        }
        Realm {
            token: opts.authorization.as_deref(),
            username: opts.username.as_deref(),
            password: opts.password.as_deref(),
            no_auth_user: opts.no_auth_user.as_deref(),
            required: opts.auth_required(),
        }
    }
}

/// Check a login against the options.
pub async fn authenticate(
    opts: &Options,
    secrets: &SecretChecker,
    login: Login<'_>,
) -> Result<Identity, Refusal> {
    use Refusal::Violation;
    let c = login.connect;
    let realm = Realm::of(opts, login.conn_type);
    if !realm.required {
        return Ok(Identity::default());
    }
    if let Some(token) = realm.token {
        outcome(
            secrets
                .check(login.source, given(&c.auth_token), token)
                .await,
        )?;
        return Ok(Identity {
            // What nats-server reports (`/connz` `authorized_user`) for a
            // token user: never the token.
            user: Some("[REDACTED]".to_string()),
            permissions: opts.default_permissions.clone(),
            ..Default::default()
        });
    }
    if let Some(user) = realm.username {
        let want = realm.password.unwrap_or("");
        // Both checks always run, so a wrong name costs what a wrong
        // password does.
        let name_ok = constant_time_eq(given(&c.user).as_bytes(), user.as_bytes());
        outcome(secrets.check(login.source, given(&c.pass), want).await)?;
        if !name_ok {
            return Err(Violation);
        }
        return Ok(Identity {
            user: Some(user.to_string()),
            // Tribune applies the block's permissions to its single user;
            // nats-server gives that user none at all.
            permissions: opts.default_permissions.clone(),
            ..Default::default()
        });
    }
    if !presents_credentials(c) {
        return no_auth_identity(opts, login.conn_type).ok_or(Violation);
    }
    let allowed = |u: &User| connection_type_allowed(&u.allowed_connection_types, login.conn_type);
    let nkey = given(&c.nkey);
    if !nkey.is_empty() && opts.users.iter().any(|u| u.nkey.is_some()) {
        let u = opts
            .users
            .iter()
            .find(|u| u.nkey.as_deref() == Some(nkey))
            .filter(|u| allowed(u))
            .ok_or(Violation)?;
        return nkey_signature_ok(nkey, login.nonce, given(&c.sig))
            .then(|| Identity::of(u))
            .ok_or(Violation);
    }
    let (name, pass) = (given(&c.user), given(&c.pass));
    if name.is_empty() {
        return Err(Violation);
    }
    let Some(u) = opts
        .users
        .iter()
        .find(|u| u.nkey.is_none() && u.username == name)
    else {
        // Spend what a real check would, so timing does not tell which
        // user names exist.
        if let Some(hashed) = opts.users.iter().find(|u| is_bcrypt(&u.password)) {
            outcome(secrets.waste(login.source, pass, &hashed.password).await)?;
        }
        return Err(Violation);
    };
    outcome(secrets.check(login.source, pass, &u.password).await)?;
    if !allowed(u) {
        return Err(Violation);
    }
    Ok(Identity::of(u))
}

fn given(field: &Option<String>) -> &str {
    field.as_deref().unwrap_or("")
}

/// The identity for a client that presented no credentials, via
/// `no_auth_user` (a user name or an NKEY user's public key).
pub fn no_auth_identity(opts: &Options, conn_type: &str) -> Option<Identity> {
    let name = Realm::of(opts, conn_type).no_auth_user?;
    let u = opts
        .users
        .iter()
        .find(|u| u.username == name || u.nkey.as_deref() == Some(name))?;
    connection_type_allowed(&u.allowed_connection_types, conn_type).then(|| Identity::of(u))
}

/// The user name nats-server reports for a client and matches against
/// `auth_users`: its nkey, its user name, `[REDACTED]` for a token, else
/// the `no_auth_user` it will be given.
pub fn raw_auth_user(c: &ConnectOptions, opts: &Options, conn_type: &str) -> String {
    for (field, shown) in [
        (&c.nkey, None),
        (&c.user, None),
        (&c.auth_token, Some("[REDACTED]")),
    ] {
        if let Some(v) = field.as_deref().filter(|s| !s.is_empty()) {
            return shown.unwrap_or(v).to_string();
        }
    }
    if presents_credentials(c) {
        return String::new();
    }
    Realm::of(opts, conn_type)
        .no_auth_user
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::User;

    fn connect(user: Option<&str>, pass: Option<&str>, token: Option<&str>) -> ConnectOptions {
        ConnectOptions {
            user: user.map(String::from),
            pass: pass.map(String::from),
            auth_token: token.map(String::from),
            ..Default::default()
        }
    }

    async fn auth(opts: &Options, c: &ConnectOptions, nonce: &str) -> Option<Identity> {
        let login = Login {
            connect: c,
            nonce,
            conn_type: CONN_TYPE_STANDARD,
            source: None,
        };
        authenticate(opts, &SecretChecker::new(1), login).await.ok()
    }

    fn sign(kp: &nkeys::KeyPair, nonce: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kp.sign(nonce.as_bytes()).unwrap())
    }

    #[tokio::test]
    async fn open_server_accepts_anyone() {
        assert!(auth(&Options::default(), &connect(None, None, None), "")
            .await
            .is_some());
    }

    #[tokio::test]
    async fn token_plain_and_bcrypt() {
        for token in ["s3cret".to_string(), bcrypt::hash("s3cret", 4).unwrap()] {
            let opts = Options {
                authorization: Some(token.clone()),
                ..Default::default()
            };
            assert!(auth(&opts, &connect(None, None, Some("s3cret")), "")
                .await
                .is_some());
            assert!(auth(&opts, &connect(None, None, Some("s3cre")), "")
                .await
                .is_none());
            assert!(auth(&opts, &connect(None, None, None), "").await.is_none());
            if is_bcrypt(&token) {
                assert!(
                    auth(&opts, &connect(None, None, Some(&token)), "")
                        .await
                        .is_none(),
                    "the hash itself is not the token"
                );
            }
        }
    }

    #[tokio::test]
    async fn user_pass_and_users() {
        let opts = Options {
            username: Some("a".into()),
            password: Some("b".into()),
            ..Default::default()
        };
        assert!(auth(&opts, &connect(Some("a"), Some("b"), None), "")
            .await
            .is_some());
        assert!(auth(&opts, &connect(Some("a"), Some("x"), None), "")
            .await
            .is_none());
        assert!(auth(&opts, &connect(Some("z"), Some("b"), None), "")
            .await
            .is_none());
        let opts = Options {
            users: vec![User {
                username: "u1".into(),
                password: "p1".into(),
                ..Default::default()
            }],
            no_auth_user: Some("u1".into()),
            ..Default::default()
        };
        let id = auth(&opts, &connect(Some("u1"), Some("p1"), None), "").await;
        assert_eq!(id.unwrap().user.as_deref(), Some("u1"));
        assert!(auth(&opts, &connect(Some("u1"), Some("p2"), None), "")
            .await
            .is_none());
        let id = auth(&opts, &connect(None, None, None), "").await;
        assert_eq!(
            id.unwrap().user.as_deref(),
            Some("u1"),
            "no credentials: no_auth_user"
        );
    }

    /// A credential that fails never falls back to `no_auth_user`.
    #[tokio::test]
    async fn failed_credentials_never_become_the_no_auth_user() {
        let kp = nkeys::KeyPair::new_user();
        let opts = Options {
            users: vec![
                User {
                    username: "anon".into(),
                    password: "x".into(),
                    account: Some("OTHER".into()),
                    ..Default::default()
                },
                User {
                    nkey: Some(kp.public_key()),
                    account: Some("APP".into()),
                    ..Default::default()
                },
            ],
            no_auth_user: Some("anon".into()),
            ..Default::default()
        };
        let nonce = new_nonce();
        let forged = ConnectOptions {
            nkey: Some(kp.public_key()),
            sig: Some("AAAA".into()),
            ..Default::default()
        };
        assert!(
            auth(&opts, &forged, &nonce).await.is_none(),
            "forged signature"
        );
        let unsigned = ConnectOptions {
            nkey: Some(kp.public_key()),
            ..Default::default()
        };
        assert!(
            auth(&opts, &unsigned, &nonce).await.is_none(),
            "no signature"
        );
        for c in [
            connect(Some("nobody"), None, None),
            connect(None, Some("x"), None),
            connect(None, None, Some("t")),
            ConnectOptions {
                jwt: Some("eyJ".into()),
                ..Default::default()
            },
        ] {
            assert!(auth(&opts, &c, &nonce).await.is_none(), "{c:?}");
        }
        // Empty strings are no credential at all, as in nats-server.
        let id = auth(&opts, &connect(Some(""), Some(""), None), &nonce).await;
        assert_eq!(id.unwrap().account.as_deref(), Some("OTHER"));
    }

    #[tokio::test]
    async fn bcrypt_passwords() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let opts = Options {
            users: vec![User {
                username: "b".into(),
                password: hash.clone(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(auth(&opts, &connect(Some("b"), Some("s3cret"), None), "")
            .await
            .is_some());
        assert!(auth(&opts, &connect(Some("b"), Some("wrong"), None), "")
            .await
            .is_none());
        assert!(auth(&opts, &connect(Some("b"), Some(&hash), None), "")
            .await
            .is_none());
    }

    #[tokio::test]
    async fn nkey_users_sign_the_nonce() {
        let kp = nkeys::KeyPair::new_user();
        let opts = Options {
            users: vec![User {
                nkey: Some(kp.public_key()),
                account: Some("APP".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let nonce = new_nonce();
        let mut c = ConnectOptions {
            nkey: Some(kp.public_key()),
            sig: Some(sign(&kp, &nonce)),
            ..Default::default()
        };
        let id = auth(&opts, &c, &nonce).await.expect("valid signature");
        assert_eq!(id.account.as_deref(), Some("APP"));
        assert!(
            auth(&opts, &c, &new_nonce()).await.is_none(),
            "a signature replayed against a new nonce fails"
        );
        c.sig = Some("AAAA".into());
        assert!(
            auth(&opts, &c, &nonce).await.is_none(),
            "a wrong signature fails"
        );
        let other = nkeys::KeyPair::new_user();
        c.nkey = Some(other.public_key());
        c.sig = Some(sign(&other, &nonce));
        assert!(
            auth(&opts, &c, &nonce).await.is_none(),
            "an unknown nkey fails"
        );
    }

    #[test]
    fn raw_auth_user_is_what_nats_server_reports() {
        let opts = Options {
            no_auth_user: Some("anon".into()),
            ..Default::default()
        };
        assert_eq!(
            raw_auth_user(
                &connect(Some("u"), Some("p"), None),
                &opts,
                CONN_TYPE_STANDARD
            ),
            "u"
        );
        assert_eq!(
            raw_auth_user(&connect(None, None, Some("t")), &opts, CONN_TYPE_STANDARD),
            "[REDACTED]"
        );
        assert_eq!(
            raw_auth_user(&connect(None, None, None), &opts, CONN_TYPE_STANDARD),
            "anon"
        );
        assert_eq!(
            raw_auth_user(&connect(None, Some("p"), None), &opts, CONN_TYPE_STANDARD),
            ""
        );
        let c = ConnectOptions {
            nkey: Some("UKEY".into()),
            user: Some("u".into()),
            ..Default::default()
        };
        assert_eq!(raw_auth_user(&c, &opts, CONN_TYPE_STANDARD), "UKEY");
    }
}
