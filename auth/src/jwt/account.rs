//! Claim shapes of nats-io/jwt v2 for operator mode: `operator` and
//! `account` JWTs, and the user scopes an account's signing keys may carry.
//!
//! Only the fields a server reads to trust accounts and authenticate their
//! users are modelled; unknown fields are ignored on read, as nats-io/jwt
//! does, and skipped when empty on write so encoded tokens stay small.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::claims::{
    nats_claims, NatsClaims, Permission, ResponsePermission, StdClaims, TimeRange, User,
};

// ---------------------------------------------------------------- operator

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperatorClaims {
    #[serde(flatten)]
    pub std: StdClaims,
    pub nats: Operator,
}

/// `nats` section of an operator JWT.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Operator {
    /// Keys that may sign account JWTs on the operator's behalf.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<String>,
    /// The account the operator designates as the system account.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub system_account: String,
    /// Only the signing keys may sign accounts, not the operator's own key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict_signing_key_usage: bool,
    /// The oldest server version the operator works with (`major.minor.patch`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub assert_server_version: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: i64,
}

impl OperatorClaims {
    /// A self-describing operator claim set for `operator_key` (tests and tools).
    pub fn new(operator_key: &str) -> Self {
        OperatorClaims {
            std: StdClaims {
                sub: operator_key.into(),
                ..Default::default()
            },
            nats: Operator {
                kind: "operator".into(),
                version: 2,
                ..Default::default()
            },
        }
    }
}

// ---------------------------------------------------------------- account

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountClaims {
    #[serde(flatten)]
    pub std: StdClaims,
    pub nats: Account,
}

/// `nats` section of an account JWT.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Account {
    #[serde(default)]
    pub limits: OperatorLimits,
    /// Keys that may sign user JWTs for this account, each plain or scoped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<SigningKey>,
    /// User public key (or `*` for every user) → unix time: user JWTs
    /// issued at or before that time are revoked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, i64>,
    /// What users of the account whose JWT names no permissions get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_permissions: Option<Permissions>,
    /// Streams and services the account offers other accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<Export>,
    /// Streams and services it takes from other accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<Import>,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: i64,
}

/// One entry of an account JWT's `exports` (nats-io/jwt v2).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Export {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub subject: String,
    /// `stream` or `service`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Private: importers need an activation token the exporter signed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub token_req: bool,
    /// Importing account (or `*`) → unix time: activations issued at or
    /// before it are revoked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, i64>,
    /// Services: `Singleton`, `Stream` or `Chunked`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub response_type: String,
    /// Services: nanoseconds the way back stays open without a response.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub response_threshold: i64,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub account_token_position: u32,
}

/// One entry of an account JWT's `imports` (nats-io/jwt v2).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Import {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The exporter's subject.
    pub subject: String,
    /// The exporting account's public key.
    pub account: String,
    /// An activation JWT, for a private export.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// Deprecated: a stream import's prefix; a service import's subject in
    /// the exporter.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub to: String,
    /// The subject in the importing account.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub local_subject: String,
    /// `stream` or `service`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub share: bool,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// An account's `limits`: NATS, account and JetStream limits in one map,
/// as nats-io/jwt flattens them. -1 means unlimited.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OperatorLimits {
    #[serde(default = "unlimited")]
    pub subs: i64,
    #[serde(default = "unlimited")]
    pub data: i64,
    #[serde(default = "unlimited")]
    pub payload: i64,
    #[serde(default = "unlimited")]
    pub imports: i64,
    #[serde(default = "unlimited")]
    pub exports: i64,
    #[serde(default = "yes")]
    pub wildcards: bool,
    /// User JWTs with `bearer_token` are refused in this account.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disallow_bearer: bool,
    /// Maximum client connections.
    #[serde(default = "unlimited")]
    pub conn: i64,
    #[serde(default = "unlimited")]
    pub leaf: i64,
    /// The account's JetStream limits, flat in the same map as in
    /// nats-io/jwt; storage 0 (the default) means no JetStream.
    #[serde(flatten)]
    pub jetstream: JetStreamLimits,
    /// Per-replication-tier JetStream limits (`R1`, `R3`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tiered_limits: BTreeMap<String, JetStreamLimits>,
}

/// JetStream limits of an account (or of one tier), as nats-io/jwt names
/// them. 0 is "not set" (storage: no JetStream), -1 unlimited.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct JetStreamLimits {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mem_storage: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disk_storage: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub streams: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consumer: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_ack_pending: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mem_max_stream_bytes: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disk_max_stream_bytes: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub max_bytes_required: bool,
}

impl JetStreamLimits {
    fn has_storage(&self) -> bool {
        self.mem_storage != 0 || self.disk_storage != 0
    }
}

impl Default for OperatorLimits {
    fn default() -> Self {
        OperatorLimits {
            subs: -1,
            data: -1,
            payload: -1,
            imports: -1,
            exports: -1,
            wildcards: true,
            disallow_bearer: false,
            conn: -1,
            leaf: -1,
            jetstream: JetStreamLimits::default(),
            tiered_limits: BTreeMap::new(),
        }
    }
}

impl OperatorLimits {
    /// Does the account have JetStream? As in nats-io/jwt, when any storage
    /// limit (global or of a tier) is not zero.
    pub fn jetstream_enabled(&self) -> bool {
        self.jetstream.has_storage()
            || self
                .tiered_limits
                .values()
                .any(JetStreamLimits::has_storage)
    }
}

fn unlimited() -> i64 {
    -1
}

fn yes() -> bool {
    true
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// `pub`/`sub`/`resp` as an account's default permissions carry them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Permissions {
    #[serde(default, rename = "pub")]
    pub pub_: Permission,
    #[serde(default)]
    pub sub: Permission,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<ResponsePermission>,
}

/// An entry of an account's `signing_keys`: a bare public key, or a scope
/// whose template replaces the permissions and limits of users it signs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SigningKey {
    Plain(String),
    Scoped(Box<UserScope>),
}

impl SigningKey {
    pub fn key(&self) -> &str {
        match self {
            SigningKey::Plain(k) => k,
            SigningKey::Scoped(s) => &s.key,
        }
    }
}

/// `{"kind": "user_scope", "key", "role", "template"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserScope {
    pub kind: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
    /// Absent limits in a template are -1 (unlimited), as nats-io/jwt
    /// reads a scope; in a user JWT they are 0.
    #[serde(
        default = "UserPermissionLimits::unlimited",
        deserialize_with = "template"
    )]
    pub template: UserPermissionLimits,
}

/// A scope's template, with nats-io/jwt's -1 for each absent limit.
fn template<'de, D: serde::Deserializer<'de>>(d: D) -> Result<UserPermissionLimits, D::Error> {
    let mut v = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
    for k in ["subs", "data", "payload"] {
        v.entry(k).or_insert(serde_json::Value::from(-1));
    }
    serde_json::from_value(serde_json::Value::Object(v)).map_err(serde::de::Error::custom)
}

/// The permission and limit fields of a user JWT: what a scope imposes on
/// the users it signs, and the exact view of a user's own. Read as
/// nats-io/jwt reads a user: an absent limit is 0, which nats-server
/// enforces as zero (nsc writes -1 for unlimited).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UserPermissionLimits {
    #[serde(default, rename = "pub")]
    pub pub_: Permission,
    #[serde(default)]
    pub sub: Permission,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<ResponsePermission>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub src: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<TimeRange>,
    #[serde(
        default,
        rename = "times_location",
        skip_serializing_if = "String::is_empty"
    )]
    pub locale: String,
    // Always written: 0 (zero) and absent (-1 in a template) differ.
    #[serde(default)]
    pub subs: i64,
    #[serde(default)]
    pub data: i64,
    #[serde(default)]
    pub payload: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bearer_token: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_connection_types: Vec<String>,
}

impl UserPermissionLimits {
    /// No permissions, no limits (-1 everywhere).
    pub fn unlimited() -> Self {
        UserPermissionLimits {
            subs: -1,
            data: -1,
            payload: -1,
            ..Default::default()
        }
    }

    /// Nothing set, not even a limit of -1: what nats-io/jwt requires of a
    /// user signed by a scoped key, whose permissions come from the scope.
    pub fn is_empty(&self) -> bool {
        *self == UserPermissionLimits::default()
    }

    /// Replace the permission and limit fields of `u` with these.
    pub fn apply_to(&self, u: &mut User) {
        u.pub_ = self.pub_.clone();
        u.sub = self.sub.clone();
        u.resp = self.resp;
        u.src = self.src.clone();
        u.times = self.times.clone();
        u.locale = self.locale.clone();
        u.subs = self.subs;
        u.data = self.data;
        u.payload = self.payload;
        u.bearer_token = self.bearer_token;
        u.allowed_connection_types = self.allowed_connection_types.clone();
    }
}

/// A user JWT's permission and limit fields exactly as nats-io/jwt reads
/// them (absent limits are 0). Operator mode enforces these, as
/// nats-server does; decode with [`crate::jwt::decode_payload`] only a
/// token already verified as [`crate::jwt::UserClaims`].
#[derive(Debug, Clone, Deserialize)]
pub struct UserLimitsClaims {
    pub nats: UserPermissionLimits,
}

impl AccountClaims {
    /// An account claim set for `account_key` with no limits (tests and tools).
    pub fn new(account_key: &str) -> Self {
        AccountClaims {
            std: StdClaims {
                sub: account_key.into(),
                ..Default::default()
            },
            nats: Account {
                kind: "account".into(),
                version: 2,
                ..Default::default()
            },
        }
    }

    /// Is `key` the account's identity key or one of its signing keys? The
    /// scope, when the key is a scoped one.
    pub fn issuer_scope(&self, key: &str) -> Option<Option<&UserScope>> {
        if key == self.std.sub {
            return Some(None);
        }
        self.nats
            .signing_keys
            .iter()
            .find(|k| k.key() == key)
            .map(|k| match k {
                SigningKey::Plain(_) => None,
                SigningKey::Scoped(s) => Some(&**s),
            })
    }

    /// Is a user JWT for `user` issued at `issued_at` revoked? As
    /// nats-server decides: revoked when the user's own entry, or the `*`
    /// entry, is at or after the issue time.
    pub fn is_revoked(&self, user: &str, issued_at: i64) -> bool {
        let hit = |k: &str| {
            self.nats
                .revocations
                .get(k)
                .is_some_and(|&t| t >= issued_at)
        };
        hit(user) || hit(REVOKE_ALL)
    }
}

/// The revocation entry that applies to every user.
pub const REVOKE_ALL: &str = "*";

nats_claims!(OperatorClaims, "operator", "not operator claim");
nats_claims!(AccountClaims, "account", "not account claim");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{decode_verified, encode};
    use nkeys::KeyPair;

    #[test]
    fn account_claims_roundtrip_with_scoped_and_plain_keys() {
        let op = KeyPair::new_operator();
        let acc = KeyPair::new_account();
        let sk = KeyPair::new_account();
        let scoped = KeyPair::new_account();
        let mut ac = AccountClaims::new(&acc.public_key());
        ac.nats.signing_keys = vec![
            SigningKey::Plain(sk.public_key()),
            SigningKey::Scoped(Box::new(UserScope {
                kind: "user_scope".into(),
                key: scoped.public_key(),
                role: "ro".into(),
                template: UserPermissionLimits {
                    sub: Permission {
                        allow: vec!["a.>".into()],
                        deny: vec![],
                    },
                    ..Default::default()
                },
            })),
        ];
        ac.nats.limits.conn = 2;
        ac.nats.limits.jetstream.disk_storage = -1;
        let tok = encode(&mut ac, &op).unwrap();
        let back: AccountClaims = decode_verified(&tok).unwrap();
        assert_eq!(back.std.iss, op.public_key());
        assert_eq!(back.nats.limits.conn, 2);
        assert!(back.nats.limits.jetstream_enabled());
        assert_eq!(back.issuer_scope(&acc.public_key()), Some(None));
        assert_eq!(back.issuer_scope(&sk.public_key()), Some(None));
        let s = back.issuer_scope(&scoped.public_key()).unwrap().unwrap();
        assert_eq!(s.template.sub.allow, vec!["a.>".to_string()]);
        assert_eq!(back.issuer_scope(&op.public_key()), None);
        assert!(decode_verified::<OperatorClaims>(&tok).is_err());
    }

    /// The JSON nats-io/jwt writes (nsc output) reads as expected: limits
    /// absent mean unlimited, JetStream off.
    #[test]
    fn reads_go_json() {
        let json = r#"{"jti":"X","iat":1,"iss":"O","name":"A","sub":"AA",
          "nats":{"limits":{"subs":-1,"data":-1,"payload":-1,"imports":-1,"exports":-1,
          "wildcards":true,"conn":-1,"leaf":-1},"default_permissions":{"pub":{},"sub":{}},
          "authorization":{},"type":"account","version":2}}"#;
        let c: AccountClaims = serde_json::from_str(json).unwrap();
        assert!(!c.nats.limits.jetstream_enabled());
        assert_eq!(c.nats.limits.conn, -1);
        assert_eq!(OperatorLimits::default(), c.nats.limits);
    }

    #[test]
    fn revocations_follow_nats_server() {
        let mut ac = AccountClaims::new("A");
        assert!(!ac.is_revoked("U1", 100));
        ac.nats.revocations.insert("U1".into(), 100);
        assert!(ac.is_revoked("U1", 100), "issued at the revocation time");
        assert!(ac.is_revoked("U1", 99));
        assert!(!ac.is_revoked("U1", 101), "issued after: a new JWT is fine");
        assert!(!ac.is_revoked("U2", 50));
        ac.nats.revocations.insert(REVOKE_ALL.into(), 200);
        assert!(ac.is_revoked("U2", 150));
        assert!(!ac.is_revoked("U2", 201));
    }

    #[test]
    fn scoped_template_replaces_user_fields() {
        let mut u = crate::jwt::UserClaims::new("U", "").nats;
        u.pub_.allow = vec!["x".into()];
        let t = UserPermissionLimits {
            subs: 3,
            ..Default::default()
        };
        t.apply_to(&mut u);
        assert!(u.pub_.allow.is_empty());
        assert_eq!(u.subs, 3);
        assert_eq!(u.payload, 0);
    }

    /// The exact view tells an absent limit from -1, as nats-io/jwt does:
    /// a scoped user must carry neither.
    #[test]
    fn exact_limits_view() {
        let bare = r#"{"sub":"U","nats":{"pub":{},"sub":{},"type":"user","version":2}}"#;
        let c: UserLimitsClaims = serde_json::from_str(bare).unwrap();
        assert!(c.nats.is_empty());
        let nsc = r#"{"sub":"U","nats":{"pub":{},"sub":{},"subs":-1,"data":-1,"payload":-1,"type":"user","version":2}}"#;
        let c: UserLimitsClaims = serde_json::from_str(nsc).unwrap();
        assert!(!c.nats.is_empty());
        assert_eq!(c.nats.subs, -1);
    }

    /// A scope's template reads absent limits as -1, as nats-io/jwt does.
    #[test]
    fn template_limits_default_to_unlimited() {
        let json = r#"{"kind":"user_scope","key":"AK","role":"r","template":{"pub":{"allow":["a"]},"subs":5}}"#;
        let s: UserScope = serde_json::from_str(json).unwrap();
        assert_eq!(
            (s.template.subs, s.template.payload, s.template.data),
            (5, -1, -1)
        );
        assert_eq!(s.template.pub_.allow, vec!["a".to_string()]);
        let bare = r#"{"kind":"user_scope","key":"AK"}"#;
        let s: UserScope = serde_json::from_str(bare).unwrap();
        assert_eq!(s.template, UserPermissionLimits::unlimited());
    }
}
