//! Web applications, and which one a token belongs to.
//!
//! One auth callout serves every web application of a deployment (a NATS
//! server has a single `auth_callout`), and all of them sign in through the
//! same identity provider. What tells them apart is the token's audience:
//! each application owns a set of audiences, the sets are disjoint, and a
//! token is admitted only when its `aud` names exactly one application. It
//! then lands in that application's account with that application's
//! permissions, and nowhere else: a token that names no application, or
//! several, is refused outright, never placed in a "default" account.

use std::collections::HashMap;

use anyhow::{bail, Result};
use serde_json::{Map, Value};

use crate::config::{AppConfig, Config, PermissionsConfig};

/// One application as the callout uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    /// For logs and metric labels (`^[a-z][a-z0-9_-]*$`).
    pub name: String,
    /// NATS account its users are placed in.
    pub account: String,
    /// Token audiences that select it.
    pub audiences: Vec<String>,
    pub permissions: PermissionsConfig,
}

/// Why no single application could be chosen. `code()` feeds logs and metrics.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    /// No audience of the token belongs to an application. Worded like the
    /// token check's audience mismatch: to a client it is the same refusal.
    #[error("wrong audience")]
    NoMatch,
    /// The token's audiences belong to two or more applications.
    #[error("audience matches several applications ({})", .0.join(", "))]
    Ambiguous(Vec<String>),
    /// `aud` is missing or neither a string nor an array of strings.
    #[error("audience claim must be a string or an array of strings")]
    Malformed,
}

impl SelectError {
    pub fn code(&self) -> &'static str {
        match self {
            SelectError::NoMatch | SelectError::Malformed => "wrong_audience",
            SelectError::Ambiguous(_) => "ambiguous_audience",
        }
    }
}

/// Every configured application, indexed by audience.
#[derive(Debug, Clone)]
pub struct Apps {
    apps: Vec<App>,
    /// audience -> index in `apps`.
    by_audience: HashMap<String, usize>,
}

impl Apps {
    /// From a checked config; the disjointness checks are repeated here
    /// because an audience shared by two apps would make selection ambiguous
    /// for every token carrying it.
    pub fn from_config(cfg: &Config) -> Result<Apps> {
        Self::new(cfg.applications())
    }

    pub fn new(configs: Vec<AppConfig>) -> Result<Apps> {
        if configs.is_empty() {
            bail!("no application configured");
        }
        let mut apps = Vec::with_capacity(configs.len());
        let mut by_audience = HashMap::new();
        for (i, c) in configs.into_iter().enumerate() {
            if c.audiences.is_empty() {
                bail!("application {:?} has no audience", c.name);
            }
            for aud in &c.audiences {
                match by_audience.insert(aud.clone(), i) {
                    Some(j) if j != i => {
                        let other: &App = &apps[j];
                        bail!(
                            "audience {aud:?} is in applications {:?} and {:?}",
                            other.name,
                            c.name
                        );
                    }
                    _ => {}
                }
            }
            if let Some(other) = apps.iter().find(|a: &&App| a.account == c.account) {
                bail!(
                    "applications {:?} and {:?} both use account {:?}",
                    other.name,
                    c.name,
                    c.account
                );
            }
            if apps.iter().any(|a: &App| a.name == c.name) {
                bail!("two applications are named {:?}", c.name);
            }
            apps.push(App {
                name: c.name,
                account: c.account,
                audiences: c.audiences,
                permissions: c.permissions,
            });
        }
        Ok(Apps { apps, by_audience })
    }

    /// Every audience of every application: the token check accepts these,
    /// then [`Apps::select`] decides which application a token is for.
    pub fn audiences(&self) -> Vec<String> {
        let mut all: Vec<String> = self.by_audience.keys().cloned().collect();
        all.sort();
        all
    }

    pub fn iter(&self) -> impl Iterator<Item = &App> {
        self.apps.iter()
    }

    /// The one application the token's `aud` (a string or an array of
    /// strings, RFC 7519 §4.1.3) names. Audiences that belong to no
    /// application are ignored (a token may be meant for other services
    /// too); an array with anything but strings is refused whole.
    pub fn select(&self, claims: &Map<String, Value>) -> Result<&App, SelectError> {
        let auds: Vec<&str> = match claims.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().ok_or(SelectError::Malformed))
                .collect::<Result<_, _>>()?,
            _ => return Err(SelectError::Malformed),
        };
        let mut found: Vec<usize> = auds
            .iter()
            .filter_map(|a| self.by_audience.get(*a).copied())
            .collect();
        found.sort_unstable();
        found.dedup();
        match found.as_slice() {
            [] => Err(SelectError::NoMatch),
            [one] => Ok(&self.apps[*one]),
            many => Err(SelectError::Ambiguous(
                many.iter().map(|i| self.apps[*i].name.clone()).collect(),
            )),
        }
    }
}

/// `name -> ACCOUNT [aud, …]; …`, for startup, reload and `--check` output.
impl std::fmt::Display for Apps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.apps.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(
                f,
                "{} -> {} [{}]",
                a.name,
                a.account,
                a.audiences.join(", ")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(name: &str, account: &str, audiences: &[&str]) -> AppConfig {
        AppConfig {
            name: name.into(),
            account: account.into(),
            audiences: audiences.iter().map(|s| s.to_string()).collect(),
            permissions: PermissionsConfig::default(),
        }
    }

    fn two() -> Apps {
        Apps::new(vec![
            app("default", "WEB", &["scores-web", "scores-mobile"]),
            app("partners", "PARTNERS", &["partners-web"]),
        ])
        .unwrap()
    }

    fn aud(v: Value) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("aud".into(), v);
        m
    }

    #[test]
    fn a_string_or_array_audience_selects_its_one_app() {
        let apps = two();
        assert_eq!(
            apps.select(&aud(json!("scores-web"))).unwrap().account,
            "WEB"
        );
        assert_eq!(
            apps.select(&aud(json!(["partners-web"]))).unwrap().account,
            "PARTNERS"
        );
        // Two audiences of the same app, and one no app owns: still that app.
        let a = apps
            .select(&aud(json!(["scores-web", "scores-mobile", "billing-api"])))
            .unwrap();
        assert_eq!(a.name, "default");
    }

    #[test]
    fn no_app_several_apps_or_a_malformed_aud_are_refused() {
        let apps = two();
        assert_eq!(
            apps.select(&aud(json!("other"))).unwrap_err(),
            SelectError::NoMatch
        );
        assert_eq!(
            apps.select(&aud(json!([]))).unwrap_err(),
            SelectError::NoMatch
        );
        let e = apps
            .select(&aud(json!(["partners-web", "scores-web"])))
            .unwrap_err();
        assert_eq!(
            e,
            SelectError::Ambiguous(vec!["default".into(), "partners".into()])
        );
        assert_eq!(e.code(), "ambiguous_audience");
        assert!(e
            .to_string()
            .contains("audience matches several applications"));
        for bad in [json!(["partners-web", 7]), json!(3), json!(null)] {
            assert_eq!(
                apps.select(&aud(bad.clone())).unwrap_err(),
                SelectError::Malformed,
                "{bad}"
            );
        }
        assert_eq!(
            apps.select(&Map::new()).unwrap_err(),
            SelectError::Malformed
        );
        assert_eq!(SelectError::NoMatch.to_string(), "wrong audience");
    }

    #[test]
    fn overlapping_apps_are_refused() {
        let e = Apps::new(vec![
            app("default", "WEB", &["a"]),
            app("partners", "PARTNERS", &["b", "a"]),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("\"default\"") && e.contains("\"partners\""),
            "{e}"
        );
        assert!(Apps::new(vec![
            app("default", "WEB", &["a"]),
            app("partners", "WEB", &["b"])
        ])
        .is_err());
        assert!(Apps::new(vec![app("x", "A", &["a"]), app("x", "B", &["b"])]).is_err());
        assert!(Apps::new(vec![app("x", "A", &[])]).is_err());
        assert!(Apps::new(vec![]).is_err());
    }

    #[test]
    fn audiences_are_the_union() {
        assert_eq!(
            two().audiences(),
            vec!["partners-web", "scores-mobile", "scores-web"]
        );
        assert_eq!(
            two().to_string(),
            "default -> WEB [scores-web, scores-mobile]; partners -> PARTNERS [partners-web]"
        );
    }
}
