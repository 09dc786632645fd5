//! Claim shapes of nats-io/jwt v2 (`authorization_request`,
//! `authorization_response`, `user`), only the fields this service reads or writes.
//!
//! Types holding the client's CONNECT options implement `Debug` by hand so the
//! web token (and passwords) can never end up in a log line by accident.

use serde::{Deserialize, Serialize};

/// Registered claims, as in nats-io/jwt `ClaimsData`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StdClaims {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub aud: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exp: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub iat: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub iss: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nbf: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub: String,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Access to the registered claims of any NATS claim set.
pub trait NatsClaims {
    /// The `nats.type` this claim set must carry (`user`,
    /// `authorization_request`, ...): a JWT of one type is never accepted
    /// as another, as nats-io/jwt's decoders refuse it.
    const TYPE: &'static str;
    /// What nats-io/jwt says when a JWT of another type is decoded as this one.
    const WRONG_TYPE: &'static str;
    fn std(&self) -> &StdClaims;
    fn std_mut(&mut self) -> &mut StdClaims;
    /// The `nats.type` the JWT carries.
    fn claim_type(&self) -> &str;
}

macro_rules! nats_claims {
    ($t:ty, $type:literal, $wrong:literal) => {
        impl NatsClaims for $t {
            const TYPE: &'static str = $type;
            const WRONG_TYPE: &'static str = $wrong;
            fn std(&self) -> &StdClaims {
                &self.std
            }
            fn std_mut(&mut self) -> &mut StdClaims {
                &mut self.std
            }
            fn claim_type(&self) -> &str {
                &self.nats.kind
            }
        }
    };
}
/// The operator and account claims (`account.rs`) implement it the same way.
pub(super) use nats_claims;

// ---------------------------------------------------------------- request

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationRequestClaims {
    #[serde(flatten)]
    pub std: StdClaims,
    pub nats: AuthorizationRequest,
}
nats_claims!(
    AuthorizationRequestClaims,
    "authorization_request",
    "not an authorization request claim"
);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub server_id: ServerId,
    pub user_nkey: String,
    #[serde(default)]
    pub client_info: ClientInformation,
    #[serde(default)]
    pub connect_opts: ConnectOptions,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub version: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerId {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub host: String,
    pub id: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub cluster: String,
    #[serde(default)]
    pub xkey: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientInformation {
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default, rename = "type")]
    pub client_type: String,
    /// The nonce the client signed, when it sent a signature.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nonce: String,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ConnectOptions {
    #[serde(default)]
    pub jwt: String,
    #[serde(default)]
    pub nkey: String,
    #[serde(default)]
    pub auth_token: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub pass: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub lang: String,
    #[serde(default)]
    pub version: String,
    /// The client's signature over the server nonce (NKEY clients).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sig: String,
    #[serde(default)]
    pub protocol: i64,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let red = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("ConnectOptions")
            .field("jwt", &red(&self.jwt))
            .field("nkey", &self.nkey)
            .field("auth_token", &red(&self.auth_token))
            .field("user", &self.user)
            .field("pass", &red(&self.pass))
            .field("name", &self.name)
            .field("lang", &self.lang)
            .field("version", &self.version)
            .field("sig", &red(&self.sig))
            .field("protocol", &self.protocol)
            .finish()
    }
}

// ---------------------------------------------------------------- response

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationResponseClaims {
    #[serde(flatten)]
    pub std: StdClaims,
    pub nats: AuthorizationResponse,
}
nats_claims!(
    AuthorizationResponseClaims,
    "authorization_response",
    "not an authorization response claim"
);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthorizationResponse {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jwt: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: i64,
}

/// How long a response stays valid. The server consumes it immediately; a
/// short expiry only limits replay of a captured response.
const RESPONSE_TTL_SECS: i64 = 60;

impl AuthorizationResponseClaims {
    fn base(user_nkey: &str, server_id: &str) -> Self {
        AuthorizationResponseClaims {
            std: StdClaims {
                sub: user_nkey.into(),
                aud: server_id.into(),
                exp: super::now_unix() + RESPONSE_TTL_SECS,
                ..Default::default()
            },
            nats: AuthorizationResponse {
                kind: "authorization_response".into(),
                version: 2,
                ..Default::default()
            },
        }
    }

    pub fn ok(user_nkey: &str, server_id: &str, user_jwt: String) -> Self {
        let mut c = Self::base(user_nkey, server_id);
        c.nats.jwt = user_jwt;
        c
    }

    pub fn error(user_nkey: &str, server_id: &str, error: &str) -> Self {
        let mut c = Self::base(user_nkey, server_id);
        c.nats.error = error.into();
        c
    }
}

// ---------------------------------------------------------------- user

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserClaims {
    #[serde(flatten)]
    pub std: StdClaims,
    pub nats: User,
}
nats_claims!(UserClaims, "user", "not user claim");

/// `nats` section of a user JWT. Limits use -1 for "unlimited" like nats-io/jwt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    #[serde(default, rename = "pub")]
    pub pub_: Permission,
    #[serde(default)]
    pub sub: Permission,
    /// `allow_responses`: how many replies, for how long (nanoseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<ResponsePermission>,
    /// Source networks (CIDRs) the user may connect from; empty = anywhere.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "string_list"
    )]
    pub src: Vec<String>,
    /// Time-of-day windows the user may connect in; empty = always.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<TimeRange>,
    /// The IANA time zone `times` are read in; empty = the server's local time.
    #[serde(
        default,
        rename = "times_location",
        skip_serializing_if = "String::is_empty"
    )]
    pub locale: String,
    /// `STANDARD`, `WEBSOCKET`, ...: how the user may connect; empty = any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_connection_types: Vec<String>,
    /// The JWT alone authenticates (no nonce signature). Callout users
    /// never sign a nonce anyway, so it changes nothing there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bearer_token: bool,
    #[serde(default = "unlimited")]
    pub subs: i64,
    #[serde(default = "unlimited")]
    pub data: i64,
    #[serde(default = "unlimited")]
    pub payload: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer_account: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: i64,
}

fn unlimited() -> i64 {
    -1
}

/// nats-io/jwt writes `src` as a list; older tokens carry one comma-separated string.
fn string_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Either::deserialize(d)? {
        Either::One(s) => s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        Either::Many(v) => v,
    })
}

/// `resp` in a user JWT: `max` replies within `ttl` nanoseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct ResponsePermission {
    #[serde(default)]
    pub max: i64,
    #[serde(default)]
    pub ttl: i64,
}

/// A connect-time window, `HH:MM:SS` to `HH:MM:SS` (may cross midnight).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TimeRange {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Permission {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

impl UserClaims {
    /// A user JWT for `user_nkey`, placed in account `account` (its `aud`,
    /// which is how nats-server picks the account in non-operator mode).
    pub fn new(user_nkey: &str, account: &str) -> Self {
        UserClaims {
            std: StdClaims {
                sub: user_nkey.into(),
                aud: account.into(),
                ..Default::default()
            },
            nats: User {
                pub_: Permission::default(),
                sub: Permission::default(),
                resp: None,
                src: Vec::new(),
                times: Vec::new(),
                locale: String::new(),
                allowed_connection_types: Vec::new(),
                bearer_token: false,
                subs: -1,
                data: -1,
                payload: -1,
                issuer_account: String::new(),
                kind: "user".into(),
                version: 2,
            },
        }
    }
}
