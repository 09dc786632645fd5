//! Mapping web-token claims to NATS permissions.
//!
//! Web users only ever *receive*: the user JWT always carries `pub deny ">"`
//! (an empty pub section would mean "publish anywhere" to nats-server). The
//! subscribe allow list is built from claim values through subject templates;
//! each value must be one plain subject token, so a claim like `"*"` or
//! `"football.>"` cannot widen what the template grants.

use anyhow::{bail, Result};
use serde_json::{Map, Value};

use crate::config::PermissionsConfig;
use crate::jwt::{Permission, User};

/// Longest accepted claim value; IdP values are short identifiers.
const MAX_VALUE_LEN: usize = 64;
/// Upper bound on subjects derived from one token, to keep user JWTs small.
const MAX_SUBJECTS: usize = 256;

/// Is `v` a single, literal subject token (no wildcards, dots or whitespace)?
pub fn is_plain_token(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_VALUE_LEN
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A syntactically valid NATS subject (wildcards allowed, `>` only last).
pub fn check_subject(s: &str) -> Result<()> {
    if s.is_empty() {
        bail!("empty subject");
    }
    let toks: Vec<&str> = s.split('.').collect();
    for (i, t) in toks.iter().enumerate() {
        if t.is_empty() {
            bail!("empty token in {s:?}");
        }
        if t.chars().any(char::is_whitespace) {
            bail!("whitespace in {s:?}");
        }
        if t.contains('>') && (*t != ">" || i + 1 != toks.len()) {
            bail!("'>' must be the last token in {s:?}");
        }
        if t.contains('*') && *t != "*" {
            bail!("'*' must be a whole token in {s:?}");
        }
    }
    Ok(())
}

/// A claim subject template: a valid subject with `{value}` as exactly one whole token.
pub fn check_template(t: &str) -> Result<()> {
    if t.matches("{value}").count() != 1 {
        bail!("template {t:?} must contain {{value}} exactly once");
    }
    if !t.split('.').any(|tok| tok == "{value}") {
        bail!("{{value}} must be a whole subject token in {t:?}");
    }
    check_subject(&t.replace("{value}", "x"))
}

/// What a token maps to.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub sub_allow: Vec<String>,
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
}

impl GrantError {
    pub fn code(&self) -> &'static str {
        match self {
            GrantError::BadValue { .. } => "bad_claim_value",
            GrantError::BadType { .. } => "bad_claim_type",
            GrantError::Empty => "no_permissions",
            GrantError::TooMany => "too_many_subjects",
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
        summary: summary.join(" "),
    })
}

/// Apply a grant and the configured limits to the `nats` section of a user JWT.
pub fn apply(cfg: &PermissionsConfig, grant: &Grant, user: &mut User) {
    user.pub_ = Permission {
        allow: vec![],
        deny: vec![">".into()],
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
    fn subject_and_template_checks() {
        assert!(check_subject("a.*.>").is_ok());
        assert!(check_subject("a.>.b").is_err());
        assert!(check_subject("a..b").is_err());
        assert!(check_subject("a*.b").is_err());
        assert!(check_template("sports.{value}.>").is_ok());
        assert!(check_template("sports.x{value}.>").is_err());
        assert!(check_template("sports.>").is_err());
    }
}
