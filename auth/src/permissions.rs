//! Mapping web-token claims to NATS permissions.
//!
//! Web users only *read*. They may publish to nothing but the direct-get
//! request subject of each configured read stream (`$JS.API.DIRECT.GET.<stream>`,
//! which answers with stored messages and cannot change anything); with no
//! read stream the user JWT carries `pub deny ">"` (an empty pub section would
//! mean "publish anywhere" to nats-server). The subscribe allow list is built
//! from claim values through subject templates; each value must be one plain
//! subject token, so a claim like `"*"` or `"football.>"` cannot widen what the
//! template grants. With `user_inboxes`, answers come back on a reply prefix
//! of the user's own ([`inbox_id`]), which no other user may subscribe to.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::subjects::is_plain_token;

use crate::config::PermissionsConfig;
use crate::jwt::{Permission, User};

/// Upper bound on subjects derived from one token, to keep user JWTs small.
const MAX_SUBJECTS: usize = 256;

/// The private reply-prefix id of a token's subject: the first 16 bytes of
/// SHA-256 over `iss`, a newline and `sub`, in lowercase hex. A client uses
/// `_INBOX.<id>` as its inbox prefix (nats.js `inboxPrefix`, async-nats
/// `custom_inbox_prefix`); the page computes the same from its token. The
/// issuer is part of it so that two IdPs' equal `sub`s stay apart.
pub fn inbox_id(iss: &str, sub: &str) -> String {
    let mut h = Sha256::new();
    h.update(iss.as_bytes());
    h.update(b"\n");
    h.update(sub.as_bytes());
    data_encoding::HEXLOWER.encode(&h.finalize()[..16])
}

/// What a token maps to.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub sub_allow: Vec<String>,
    /// Direct-get request subjects of the read streams; empty: no publish at all.
    pub pub_allow: Vec<String>,
    /// Short human summary for logs, e.g. `sports=[football,tennis]`.
    pub summary: String,
}

/// Why claims could not be mapped. `code()` feeds logs and metrics.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantError {
    #[error("claim {claim:?} has an invalid value")]
    BadValue { claim: String },
    #[error("claim {claim:?} must be a string or an array of strings")]
    BadType { claim: String },
    #[error("token grants no subjects")]
    Empty,
    #[error("token grants too many subjects")]
    TooMany,
    #[error("token has no string `sub` and `iss` for a private inbox")]
    NoSubject,
}

impl GrantError {
    pub fn code(&self) -> &'static str {
        match self {
            GrantError::BadValue { .. } => "bad_claim_value",
            GrantError::BadType { .. } => "bad_claim_type",
            GrantError::Empty => "no_permissions",
            GrantError::TooMany => "too_many_subjects",
            GrantError::NoSubject => "no_subject",
        }
    }
}

pub fn grant(cfg: &PermissionsConfig, claims: &Map<String, Value>) -> Result<Grant, GrantError> {
    let mut subs: Vec<String> = Vec::new();
    let mut summary = Vec::new();
    for rule in &cfg.claims {
        let values: Vec<&str> = match claims.get(&rule.claim) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str().ok_or_else(|| GrantError::BadType {
                        claim: rule.claim.clone(),
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(GrantError::BadType {
                    claim: rule.claim.clone(),
                })
            }
        };
        if let Some(_bad) = values.iter().find(|v| !is_plain_token(v)) {
            return Err(GrantError::BadValue {
                claim: rule.claim.clone(),
            });
        }
        summary.push(format!("{}=[{}]", rule.claim, values.join(",")));
        subs.extend(values.iter().map(|v| rule.subject.replace("{value}", v)));
    }
    if subs.is_empty() && cfg.deny_if_empty {
        return Err(GrantError::Empty);
    }
    subs.extend(cfg.static_subscribe.iter().cloned());
    subs.extend(cfg.reply_subjects.iter().cloned());
    if cfg.user_inboxes {
        let text = |k: &str| {
            claims
                .get(k)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };
        let (Some(iss), Some(sub)) = (text("iss"), text("sub")) else {
            return Err(GrantError::NoSubject);
        };
        subs.push(format!("_INBOX.{}.>", inbox_id(iss, sub)));
    }
    let mut seen = std::collections::HashSet::new();
    subs.retain(|s| seen.insert(s.clone()));
    if subs.is_empty() {
        return Err(GrantError::Empty);
    }
    if subs.len() > MAX_SUBJECTS {
        return Err(GrantError::TooMany);
    }
    Ok(Grant {
        sub_allow: subs,
        pub_allow: cfg
            .read_streams
            .iter()
            .map(|s| format!("$JS.API.DIRECT.GET.{s}"))
            .collect(),
        summary: summary.join(" "),
    })
}

/// Apply a grant and the configured limits to the `nats` section of a user JWT.
pub fn apply(cfg: &PermissionsConfig, grant: &Grant, user: &mut User) {
    user.pub_ = if grant.pub_allow.is_empty() {
        Permission {
            allow: vec![],
            deny: vec![">".into()],
        }
    } else {
        // Only the listed literal subjects: an allow list denies everything else.
        Permission {
            allow: grant.pub_allow.clone(),
            deny: vec![],
        }
    };
    user.sub = Permission {
        allow: grant.sub_allow.clone(),
        deny: vec![],
    };
    user.subs = cfg.max_subscriptions;
    user.payload = cfg.max_payload;
    user.data = cfg.max_data;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClaimRule;
    use serde_json::json;

    fn cfg() -> PermissionsConfig {
        PermissionsConfig {
            claims: vec![ClaimRule {
                claim: "sports".into(),
                subject: "sports.{value}.>".into(),
            }],
            reply_subjects: vec!["_INBOX.>".into()],
            ..Default::default()
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn maps_claim_array_to_subjects() {
        let g = grant(&cfg(), &claims(json!({"sports":["football","tennis"]}))).unwrap();
        assert_eq!(
            g.sub_allow,
            vec!["sports.football.>", "sports.tennis.>", "_INBOX.>"]
        );
        assert_eq!(g.summary, "sports=[football,tennis]");
        let g = grant(&cfg(), &claims(json!({"sports":"golf"}))).unwrap();
        assert_eq!(g.sub_allow[0], "sports.golf.>");
    }

    #[test]
    fn wildcard_and_dotted_values_cannot_widen_the_grant() {
        for bad in ["*", ">", "a.b", "a b", "", "a.>"] {
            let e = grant(&cfg(), &claims(json!({ "sports": [bad] }))).unwrap_err();
            assert_eq!(e.code(), "bad_claim_value", "{bad:?}");
        }
        assert_eq!(
            grant(&cfg(), &claims(json!({"sports": 3})))
                .unwrap_err()
                .code(),
            "bad_claim_type"
        );
    }

    #[test]
    fn empty_grant_policy() {
        let mut c = cfg();
        // Only the reply subject: still admitted unless deny_if_empty.
        assert!(grant(&c, &claims(json!({}))).is_ok());
        c.deny_if_empty = true;
        assert_eq!(
            grant(&c, &claims(json!({}))).unwrap_err(),
            GrantError::Empty
        );
        c.deny_if_empty = false;
        c.reply_subjects.clear();
        assert_eq!(
            grant(&c, &claims(json!({}))).unwrap_err(),
            GrantError::Empty
        );
    }

    #[test]
    fn users_never_publish() {
        let g = grant(&cfg(), &claims(json!({"sports":["x"]}))).unwrap();
        let mut uc = crate::jwt::UserClaims::new("U", "APP");
        apply(&cfg(), &g, &mut uc.nats);
        assert_eq!(uc.nats.pub_.deny, vec![">"]);
        assert!(uc.nats.pub_.allow.is_empty());
    }

    #[test]
    fn read_streams_allow_exactly_their_direct_get_subject() {
        let mut c = cfg();
        c.read_streams = vec!["SPORTS".into()];
        let g = grant(&c, &claims(json!({"sports":["x"]}))).unwrap();
        let mut uc = crate::jwt::UserClaims::new("U", "APP");
        apply(&c, &g, &mut uc.nats);
        assert_eq!(uc.nats.pub_.allow, vec!["$JS.API.DIRECT.GET.SPORTS"]);
        assert!(uc.nats.pub_.deny.is_empty());
    }

    #[test]
    fn user_inboxes_are_private_per_issuer_and_subject() {
        let mut c = cfg();
        c.reply_subjects.clear();
        c.user_inboxes = true;
        let g = grant(&c, &claims(json!({"iss":"idp","sub":"bob","sports":["x"]}))).unwrap();
        let id = inbox_id("idp", "bob");
        assert_eq!(id.len(), 32);
        assert_eq!(g.sub_allow.last().unwrap(), &format!("_INBOX.{id}.>"));
        assert_ne!(id, inbox_id("idp", "alice"));
        assert_ne!(id, inbox_id("other", "bob"));
        // sha256("idp\nbob"), first 16 bytes: what the page computes with WebCrypto.
        assert_eq!(id, "ad4a59582425ee42e9719573de12c950");
        assert_eq!(
            grant(&c, &claims(json!({"iss":"idp","sports":["x"]}))).unwrap_err(),
            GrantError::NoSubject
        );
    }
}
