//! Configuration file (TOML). See `auth/README.md` for a documented example.
//!
//! Secrets (nkey seeds, passwords, HMAC secrets) can be given inline for dev,
//! but production configs should point at a file or an environment variable
//! so the config itself can be world-readable and checked in.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub nats: NatsConfig,
    pub callout: CalloutConfig,
    pub token: TokenConfig,
    /// Permissions of the implicit application (the one of `callout.account`).
    /// An `Option` so that a `[permissions]` table without `callout.account`,
    /// which would silently apply to nobody, can be refused.
    pub permissions: Option<PermissionsConfig>,
    /// Further web applications, each in an account of its own. See
    /// [`Config::applications`].
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// Name of the application that `callout.account`, `token.audiences` and
/// `[permissions]` describe. Fixed rather than derived from the account, so
/// that metric labels and logs stay put when the account is renamed.
pub const IMPLICIT_APP: &str = "default";

/// Longest application name: it is a metric label and a log field.
const MAX_APP_NAME_LEN: usize = 64;

/// One web application (`[[apps]]`): the tokens whose `aud` names one of
/// `audiences` are placed in `account` with `permissions`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Label in logs and metrics; `^[a-z][a-z0-9_-]*$`, unique.
    pub name: String,
    /// NATS account the app's users land in (the user JWT's `aud`); unique.
    pub account: String,
    /// Token audiences that select this app; disjoint from every other app's.
    pub audiences: Vec<String>,
    /// Same shape and meaning as the top-level `[permissions]`.
    #[serde(default)]
    pub permissions: PermissionsConfig,
}

/// A secret value: inline (dev only), from a file, or from an environment variable.
/// Exactly one of the three must be set wherever a `Secret` is required.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    pub value: Option<String>,
    pub file: Option<PathBuf>,
    pub env: Option<String>,
}

impl std::fmt::Debug for Secret {
    // Never print the inline value: configs get logged on startup errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .field("file", &self.file)
            .field("env", &self.env)
            .finish()
    }
}

impl Secret {
    /// Resolve the secret, trimming surrounding whitespace (seed files end in a newline).
    pub fn load(&self, what: &str) -> Result<String> {
        let set = [
            self.value.is_some(),
            self.file.is_some(),
            self.env.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set != 1 {
            bail!("{what}: set exactly one of value, file, env");
        }
        let raw = if let Some(v) = &self.value {
            v.clone()
        } else if let Some(p) = &self.file {
            std::fs::read_to_string(p)
                .with_context(|| format!("{what}: reading {}", p.display()))?
        } else {
            let name = self.env.as_ref().expect("checked above");
            std::env::var(name).with_context(|| format!("{what}: environment variable {name}"))?
        };
        let s = raw.trim().to_string();
        if s.is_empty() {
            bail!("{what}: empty secret");
        }
        Ok(s)
    }
}

/// How tribune-auth itself connects to NATS.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), e.g. `nats://127.0.0.1:4222` or `tls://nats:4222`.
    pub servers: Vec<String>,
    /// NKEY seed (`SU...`) of the auth user. Preferred in production.
    pub nkey_seed: Option<Secret>,
    /// Dev alternative to `nkey_seed`.
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// CA bundle to verify the server with (PEM).
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate + key (PEM) for mutual TLS.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Refuse to talk to a server that does not offer TLS.
    #[serde(default)]
    pub tls_required: bool,
    /// Connection name shown in the server's monitoring.
    #[serde(default = "default_conn_name")]
    pub name: String,
}

fn default_conn_name() -> String {
    "tribune-auth".into()
}

/// The callout itself: which key signs, which key decrypts, where users go.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalloutConfig {
    /// Account nkey seed (`SA...`) whose public key is the server's `auth_callout.issuer`.
    /// Signs both the authorization response and the user JWT.
    pub issuer_seed: Secret,
    /// Curve (xkey) seed (`SX...`) whose public key is the server's `auth_callout.xkey`.
    /// When set, encrypted requests are decrypted and their responses encrypted.
    pub xkey_seed: Option<Secret>,
    /// When true, refuse plaintext requests (only meaningful with `xkey_seed`).
    #[serde(default)]
    pub require_encryption: bool,
    /// Account the users of the implicit application are placed in
    /// (non-operator mode: the account *name*, which nats-server reads from the
    /// user JWT's `aud`). Optional when `[[apps]]` define every application.
    pub account: Option<String>,
    /// Upper bound on a user JWT's lifetime; the web token's own `exp` may cut it shorter.
    #[serde(default = "default_max_ttl")]
    pub max_user_ttl_secs: u64,
    /// If non-empty, only requests signed by these server public keys (`N...`) are served.
    #[serde(default)]
    pub allowed_servers: Vec<String>,
    /// Subject the service listens on. Only change it for tests.
    #[serde(default = "default_subject")]
    pub subject: String,
    /// Queue group, so several replicas share the load.
    #[serde(default = "default_queue")]
    pub queue_group: String,
}

fn default_max_ttl() -> u64 {
    3600
}
fn default_subject() -> String {
    "$SYS.REQ.USER.AUTH".into()
}
fn default_queue() -> String {
    "tribune-auth".into()
}

/// Validation of the identity provider's token.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Accepted `iss` values (at least one).
    pub issuers: Vec<String>,
    /// Accepted `aud` values of the implicit application (the one of
    /// `callout.account`); required with it, refused without it. `[[apps]]`
    /// bring their own.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// JWKS file with the IdP's RSA / EC public keys.
    pub jwks_file: Option<PathBuf>,
    /// The IdP's JWKS URL, fetched, cached and refreshed (see `jwks.rs`).
    /// https, or http to a loopback address only.
    pub jwks_url: Option<String>,
    /// OIDC issuer: the JWKS URL is the `jwks_uri` of
    /// `<issuer>/.well-known/openid-configuration`, whose `issuer` must equal this.
    pub oidc_issuer: Option<String>,
    /// Scheduled JWKS refresh, seconds (a random 0-10% is added per round).
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_secs: u64,
    /// At most one refresh per this many seconds is triggered by tokens with an
    /// unknown `kid`, so a flood of forged kids cannot hammer the IdP.
    #[serde(default = "default_jwks_min_refresh")]
    pub jwks_min_refresh_secs: u64,
    /// Timeout of one HTTP request to the IdP (connect + response), seconds.
    #[serde(default = "default_jwks_timeout")]
    pub jwks_fetch_timeout_secs: u64,
    /// PEM CA bundle trusted for the IdP instead of the system roots.
    pub jwks_ca_file: Option<PathBuf>,
    /// Shared HS256 secret (for IdPs or dev setups that use HMAC).
    pub hs256_secret: Option<Secret>,
    /// Clock skew allowance for exp / nbf, seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Claim used as the user's display name (NATS `name` of the user JWT and in logs).
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
}

fn default_jwks_refresh() -> u64 {
    300
}
fn default_jwks_min_refresh() -> u64 {
    30
}
fn default_jwks_timeout() -> u64 {
    5
}
fn default_leeway() -> u64 {
    30
}
fn default_user_claim() -> String {
    "sub".into()
}

/// Mapping from web-token claims to NATS permissions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionsConfig {
    /// Each rule turns the values of one claim into subscribe subjects.
    #[serde(default)]
    pub claims: Vec<ClaimRule>,
    /// Subjects every authenticated web user may subscribe to.
    #[serde(default)]
    pub static_subscribe: Vec<String>,
    /// Reply subjects (e.g. `_INBOX.>`) added to the subscribe allow list.
    /// Web users cannot publish, so this only matters for services that push
    /// replies to them; note `_INBOX.>` lets a user see every inbox in the account.
    #[serde(default)]
    pub reply_subjects: Vec<String>,
    /// Streams web users may read with direct get (`$JS.API.DIRECT.GET.<stream>`,
    /// a batch of last messages per subject included): the only subjects they
    /// may publish to. Empty: web users never publish.
    #[serde(default)]
    pub read_streams: Vec<String>,
    /// Give each user a private reply prefix `_INBOX.<id>.>` (see
    /// [`crate::permissions::inbox_id`]) instead of `reply_subjects`, so a
    /// user's read answers are not visible to other users of the account.
    #[serde(default)]
    pub user_inboxes: bool,
    /// Max subscriptions per connection (-1 = unlimited).
    #[serde(default = "default_max_subs")]
    pub max_subscriptions: i64,
    /// Max message payload bytes (-1 = unlimited).
    #[serde(default = "default_max_payload")]
    pub max_payload: i64,
    /// Max data bytes (-1 = unlimited).
    #[serde(default = "unlimited")]
    pub max_data: i64,
    /// Deny (rather than admit with only static subjects) a token that maps to no subject.
    #[serde(default)]
    pub deny_if_empty: bool,
}

impl Default for PermissionsConfig {
    fn default() -> Self {
        PermissionsConfig {
            claims: Vec::new(),
            static_subscribe: Vec::new(),
            reply_subjects: Vec::new(),
            read_streams: Vec::new(),
            user_inboxes: false,
            max_subscriptions: default_max_subs(),
            max_payload: default_max_payload(),
            max_data: unlimited(),
            deny_if_empty: false,
        }
    }
}

fn default_max_subs() -> i64 {
    100
}
fn default_max_payload() -> i64 {
    1024 * 1024
}
fn unlimited() -> i64 {
    -1
}

/// One claim → subjects rule, e.g. `claim = "sports"`, `subject = "sports.{value}.>"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRule {
    /// Claim name (top level of the token's payload). String or array of strings.
    pub claim: String,
    /// Subject template; `{value}` is replaced by each claim value. Values must be a
    /// single plain subject token (letters, digits, `-`, `_`), so a value like `*`
    /// or `a.>` can never widen the grant.
    pub subject: String,
}

/// Prometheus and health endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` to listen on; empty disables the HTTP endpoint.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_metrics_listen(),
        }
    }
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9464".into()
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text).context("parsing config")?;
        cfg.check()?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("config {}", path.display()))
    }

    /// Exactly one public-key source (file, URL or discovery), optionally
    /// next to the HS256 secret; remote settings only where they mean something.
    fn check_token_keys(&self) -> Result<()> {
        let t = &self.token;
        let sources = [
            t.jwks_file.is_some(),
            t.jwks_url.is_some(),
            t.oidc_issuer.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if sources > 1 {
            bail!("token: set only one of jwks_file, jwks_url, oidc_issuer");
        }
        if sources == 0 && t.hs256_secret.is_none() {
            bail!("token: set one of jwks_file, jwks_url, oidc_issuer (and/or hs256_secret)");
        }
        if let Some(u) = &t.jwks_url {
            crate::idp_url::check_url(u).context("token.jwks_url")?;
        }
        if let Some(iss) = &t.oidc_issuer {
            crate::idp_url::check_url(iss).context("token.oidc_issuer")?;
            if !t.issuers.contains(iss) {
                bail!("token.oidc_issuer {iss:?} must also be listed in token.issuers");
            }
        }
        let remote = t.jwks_url.is_some() || t.oidc_issuer.is_some();
        if !remote && t.jwks_ca_file.is_some() {
            bail!("token.jwks_ca_file needs jwks_url or oidc_issuer");
        }
        if t.jwks_refresh_secs == 0
            || t.jwks_min_refresh_secs == 0
            || t.jwks_fetch_timeout_secs == 0
        {
            bail!("token: jwks_refresh_secs, jwks_min_refresh_secs and jwks_fetch_timeout_secs must be > 0");
        }
        Ok(())
    }

    /// Static sanity checks, so mistakes fail at startup rather than per request.
    fn check(&self) -> Result<()> {
        if self.nats.servers.is_empty() {
            bail!("nats.servers must not be empty");
        }
        if self.nats.nkey_seed.is_some()
            && (self.nats.user.is_some() || self.nats.password.is_some())
        {
            bail!("nats: use either nkey_seed or user/password, not both");
        }
        if self.nats.user.is_some() != self.nats.password.is_some() {
            bail!("nats: user and password go together");
        }
        if self.nats.tls_cert_file.is_some() != self.nats.tls_key_file.is_some() {
            bail!("nats: tls_cert_file and tls_key_file go together");
        }
        if self.token.issuers.is_empty() {
            bail!("token.issuers must not be empty");
        }
        self.check_token_keys()?;
        if self.callout.require_encryption && self.callout.xkey_seed.is_none() {
            bail!("callout.require_encryption needs callout.xkey_seed");
        }
        if self.callout.max_user_ttl_secs == 0 {
            bail!("callout.max_user_ttl_secs must be > 0");
        }
        self.check_apps()
    }

    /// The implicit application's settings belong together, and the
    /// applications must never compete for a token: names, accounts and
    /// audiences are each unique across them.
    fn check_apps(&self) -> Result<()> {
        match &self.callout.account {
            Some(a) if a.is_empty() => bail!("callout.account must not be empty"),
            Some(_) if self.token.audiences.is_empty() => {
                bail!("token.audiences must not be empty (the audiences of callout.account's application)")
            }
            Some(_) => {}
            None if !self.token.audiences.is_empty() => bail!(
                "token.audiences are the audiences of callout.account's application, \
                 and callout.account is not set: move them to an [[apps]] entry"
            ),
            None if self.permissions.is_some() => bail!(
                "[permissions] are the permissions of callout.account's application, \
                 and callout.account is not set: use [apps.permissions]"
            ),
            None => {}
        }
        let apps = self.applications();
        if apps.is_empty() {
            bail!("no application: set callout.account (with token.audiences and [permissions]) or add [[apps]]");
        }
        let mut names: HashSet<&str> = HashSet::new();
        let mut accounts: HashMap<&str, &str> = HashMap::new();
        let mut audiences: HashMap<&str, &str> = HashMap::new();
        for (i, app) in apps.iter().enumerate() {
            let implicit = i == 0 && self.callout.account.is_some();
            let what = if implicit {
                format!("application {IMPLICIT_APP:?} (callout.account)")
            } else {
                format!("[[apps]] {:?}", app.name)
            };
            check_app_name(&app.name).with_context(|| what.clone())?;
            if !names.insert(&app.name) {
                let note = if app.name == IMPLICIT_APP && self.callout.account.is_some() {
                    " (the name of callout.account's application)"
                } else {
                    ""
                };
                bail!("{what}: the name is taken by another application{note}");
            }
            if app.account.trim().is_empty() {
                bail!("{what}: account must not be empty");
            }
            if let Some(other) = accounts.insert(&app.account, &app.name) {
                bail!(
                    "applications {other:?} and {:?} both use account {:?}: each application needs an account of its own",
                    app.name,
                    app.account
                );
            }
            if app.audiences.is_empty() {
                bail!("{what}: audiences must not be empty");
            }
            for aud in &app.audiences {
                if aud.is_empty() {
                    bail!("{what}: empty audience");
                }
                match audiences.insert(aud, &app.name) {
                    Some(other) if other != app.name => bail!(
                        "audience {aud:?} is in applications {other:?} and {:?}: a token must select exactly one",
                        app.name
                    ),
                    _ => {}
                }
            }
            if implicit {
                app.permissions.check()?;
            } else {
                app.permissions.check().context(what)?;
            }
        }
        Ok(())
    }

    /// Every application, the implicit one (`callout.account`, with
    /// `token.audiences` and `[permissions]`, named [`IMPLICIT_APP`]) first,
    /// then `[[apps]]` in file order.
    pub fn applications(&self) -> Vec<AppConfig> {
        let implicit = self.callout.account.as_ref().map(|account| AppConfig {
            name: IMPLICIT_APP.to_string(),
            account: account.clone(),
            audiences: self.token.audiences.clone(),
            permissions: self.permissions.clone().unwrap_or_default(),
        });
        implicit
            .into_iter()
            .chain(self.apps.iter().cloned())
            .collect()
    }
}

/// `^[a-z][a-z0-9_-]*$`, so a name is safe as it is in a Prometheus label
/// and a log field.
fn check_app_name(name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let ok = matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
        && name.len() <= MAX_APP_NAME_LEN;
    if !ok {
        bail!(
            "name {name:?} must match ^[a-z][a-z0-9_-]*$ (at most {MAX_APP_NAME_LEN} characters)"
        );
    }
    Ok(())
}

impl PermissionsConfig {
    /// Subject syntax and the private-inbox rule; errors say `permissions…`,
    /// the caller adds which application's.
    fn check(&self) -> Result<()> {
        for r in &self.claims {
            crate::subjects::check_template(&r.subject)
                .with_context(|| format!("permissions rule for claim {:?}", r.claim))?;
        }
        for s in self.static_subscribe.iter().chain(&self.reply_subjects) {
            crate::subjects::check_subject(s)
                .with_context(|| format!("permissions subject {s:?}"))?;
        }
        if self.user_inboxes {
            if let Some(s) = self
                .static_subscribe
                .iter()
                .chain(&self.reply_subjects)
                .find(|s| s.starts_with("_INBOX") || s.starts_with('>') || s.starts_with("*"))
            {
                bail!("permissions: {s:?} would let a user read other users' inboxes; user_inboxes gives each user its own");
            }
        }
        for s in &self.read_streams {
            crate::subjects::check_stream_name(s)
                .with_context(|| format!("permissions.read_streams entry {s:?}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
        [nats]
        servers = ["nats://127.0.0.1:4222"]
        user = "auth"
        password = { value = "pwd" }
        [callout]
        issuer_seed = { env = "X" }
        account = "APP"
        [token]
        issuers = ["https://idp"]
        audiences = ["tribune"]
        jwks_file = "jwks.json"
        [[permissions.claims]]
        claim = "sports"
        subject = "sports.{value}.>"
    "#;

    #[test]
    fn parses_minimal_config_with_defaults() {
        let c = Config::from_toml(MIN).unwrap();
        assert_eq!(c.callout.subject, "$SYS.REQ.USER.AUTH");
        assert_eq!(c.callout.max_user_ttl_secs, 3600);
        let p = c.permissions.as_ref().unwrap();
        assert_eq!(p.max_subscriptions, 100);
        assert_eq!(p.claims[0].claim, "sports");
        // A config without [[apps]] has one application: the implicit one.
        let apps = c.applications();
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].name, IMPLICIT_APP);
        assert_eq!(apps[0].account, "APP");
        assert_eq!(apps[0].audiences, vec!["tribune"]);
        assert_eq!(&apps[0].permissions, p);
    }

    const PARTNERS: &str = r#"
        [[apps]]
        name = "partners"
        account = "PARTNERS"
        audiences = ["partners-web"]
        [apps.permissions]
        read_streams = ["SPORTS"]
        user_inboxes = true
        [[apps.permissions.claims]]
        claim = "sports"
        subject = "sports.{value}.>"
    "#;

    #[test]
    fn apps_follow_the_implicit_app() {
        let c = Config::from_toml(&format!("{MIN}\n{PARTNERS}")).unwrap();
        let apps = c.applications();
        let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, vec!["default", "partners"]);
        let p = &apps[1];
        assert_eq!(p.account, "PARTNERS");
        assert_eq!(p.audiences, vec!["partners-web"]);
        assert_eq!(p.permissions.read_streams, vec!["SPORTS"]);
        assert!(p.permissions.user_inboxes);
        assert_eq!(p.permissions.claims[0].subject, "sports.{value}.>");
        // Defaults as in [permissions].
        assert_eq!(p.permissions.max_subscriptions, 100);
    }

    /// MIN without the implicit app: no callout.account, token.audiences or [permissions].
    fn apps_only(apps: &str) -> String {
        let base = MIN
            .replace("account = \"APP\"", "")
            .replace("audiences = [\"tribune\"]", "");
        let base = &base[..base.find("[[permissions.claims]]").unwrap()];
        format!("{base}\n{apps}")
    }

    #[test]
    fn apps_alone_without_the_implicit_app() {
        let c = Config::from_toml(&apps_only(PARTNERS)).unwrap();
        assert_eq!(c.callout.account, None);
        let apps = c.applications();
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].name, "partners");
        // Nothing at all: refused.
        let e = err(&apps_only(""));
        assert!(e.contains("no application"), "{e}");
        // The implicit app's parts without callout.account: refused, not ignored.
        let e = err(&apps_only(PARTNERS).replace(
            "issuers = [\"https://idp\"]",
            "issuers = [\"https://idp\"]\naudiences = [\"tribune\"]",
        ));
        assert!(
            e.contains("token.audiences") && e.contains("callout.account"),
            "{e}"
        );
        let e = err(&format!(
            "{}\n[permissions]\nstatic_subscribe = [\"a\"]",
            apps_only(PARTNERS)
        ));
        assert!(
            e.contains("[permissions]") && e.contains("callout.account"),
            "{e}"
        );
        // callout.account without token.audiences: refused as before.
        let e = err(&MIN.replace("audiences = [\"tribune\"]", ""));
        assert!(e.contains("token.audiences must not be empty"), "{e}");
        let e = err(&MIN.replace("account = \"APP\"", "account = \"\""));
        assert!(e.contains("callout.account must not be empty"), "{e}");
    }

    fn partners_with(field: &str, value: &str) -> String {
        let line = PARTNERS
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{field} =")))
            .unwrap()
            .to_string();
        let new = format!("        {field} = {value}");
        format!("{MIN}\n{}", PARTNERS.replacen(&line, &new, 1))
    }

    #[test]
    fn app_names_accounts_and_audiences_are_unique() {
        // Audience shared with the implicit app: both apps named.
        let e = err(&partners_with(
            "audiences",
            "[\"partners-web\", \"tribune\"]",
        ));
        assert!(
            e.contains("\"tribune\"") && e.contains("\"default\"") && e.contains("\"partners\""),
            "{e}"
        );
        // Between two [[apps]].
        let other = PARTNERS
            .replace("\"partners\"", "\"portal\"")
            .replace("\"PARTNERS\"", "\"PORTAL\"");
        let e = err(&format!("{MIN}\n{PARTNERS}\n{other}"));
        assert!(
            e.contains("partners-web") && e.contains("\"partners\"") && e.contains("\"portal\""),
            "{e}"
        );
        assert!(Config::from_toml(&format!(
            "{MIN}\n{PARTNERS}\n{}",
            other.replace("partners-web", "portal-web")
        ))
        .is_ok());
        // Accounts.
        let e = err(&partners_with("account", "\"APP\""));
        assert!(
            e.contains("account \"APP\"") && e.contains("\"default\""),
            "{e}"
        );
        // Names: taken, and syntax.
        let e = err(&partners_with("name", "\"default\""));
        assert!(e.contains("taken"), "{e}");
        for bad in [
            "\"\"",
            "\"Partners\"",
            "\"1app\"",
            "\"a b\"",
            "\"a.b\"",
            "\"a\\\"b\"",
        ] {
            let e = err(&partners_with("name", bad));
            assert!(e.contains("must match"), "{bad}: {e}");
        }
        assert!(Config::from_toml(&partners_with("name", "\"p_2-x\"")).is_ok());
        // Empty parts.
        let e = err(&partners_with("audiences", "[]"));
        assert!(e.contains("audiences must not be empty"), "{e}");
        let e = err(&partners_with("audiences", "[\"\"]"));
        assert!(e.contains("empty audience"), "{e}");
        let e = err(&partners_with("account", "\"\""));
        assert!(e.contains("account must not be empty"), "{e}");
    }

    #[test]
    fn app_permissions_are_checked_like_the_top_level_ones() {
        let e = err(&partners_with("subject", "\"sports.>.{value}\""));
        assert!(
            e.contains("[[apps]] \"partners\"") && e.contains("claim \"sports\""),
            "{e}"
        );
        let e = err(&partners_with("read_streams", "[\"A.B\"]"));
        assert!(
            e.contains("[[apps]] \"partners\"") && e.contains("read_streams"),
            "{e}"
        );
        let e = err(&format!(
            "{MIN}\n{}",
            PARTNERS.replace(
                "user_inboxes = true",
                "user_inboxes = true\nstatic_subscribe = [\">\"]"
            )
        ));
        assert!(e.contains("other users' inboxes"), "{e}");
        // Unknown keys in an app are refused too.
        assert!(Config::from_toml(&format!("{MIN}\n{PARTNERS}").replace(
            "name = \"partners\"",
            "name = \"partners\"\nissuers = [\"x\"]"
        ))
        .is_err());
    }

    #[test]
    fn rejects_unknown_keys_and_bad_templates() {
        assert!(Config::from_toml(&format!("{MIN}\nbogus = 1")).is_err());
        let bad = MIN.replace("sports.{value}.>", "sports.>.{value}");
        assert!(Config::from_toml(&bad).is_err());
    }

    #[test]
    fn secret_needs_exactly_one_source_and_is_redacted() {
        let s = Secret {
            value: Some("hunter2".into()),
            file: None,
            env: None,
        };
        assert_eq!(s.load("x").unwrap(), "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        let two = Secret {
            value: Some("a".into()),
            env: Some("B".into()),
            file: None,
        };
        assert!(two.load("x").is_err());
    }

    fn with_token_source(src: &str) -> String {
        MIN.replace("jwks_file = \"jwks.json\"", src)
    }

    fn err(text: &str) -> String {
        format!("{:#}", Config::from_toml(text).unwrap_err())
    }

    #[test]
    fn remote_jwks_settings() {
        let c = Config::from_toml(&with_token_source(
            "jwks_url = \"https://idp/jwks\"\njwks_ca_file = \"ca.pem\"",
        ))
        .unwrap();
        assert_eq!(c.token.jwks_url.as_deref(), Some("https://idp/jwks"));
        assert_eq!(c.token.jwks_refresh_secs, 300);
        assert_eq!(c.token.jwks_min_refresh_secs, 30);
        assert_eq!(c.token.jwks_fetch_timeout_secs, 5);
        // http only to loopback.
        assert!(Config::from_toml(&with_token_source(
            "jwks_url = \"http://127.0.0.1:8080/jwks\""
        ))
        .is_ok());
        let e = err(&with_token_source("jwks_url = \"http://idp.example/jwks\""));
        assert!(e.contains("loopback"), "{e}");
        // Discovery: the issuer must also be accepted in tokens.
        assert!(Config::from_toml(&with_token_source("oidc_issuer = \"https://idp\"")).is_ok());
        let e = err(&with_token_source("oidc_issuer = \"https://other\""));
        assert!(e.contains("token.issuers"), "{e}");
    }

    #[test]
    fn contradictory_key_sources_are_refused() {
        let e = err(&with_token_source(
            "jwks_file = \"a.json\"\njwks_url = \"https://idp/jwks\"",
        ));
        assert!(e.contains("only one of"), "{e}");
        let e = err(&with_token_source(""));
        assert!(e.contains("set one of"), "{e}");
        let e = err(&format!("{MIN}\n").replace(
            "jwks_file = \"jwks.json\"",
            "jwks_file = \"jwks.json\"\njwks_ca_file = \"ca.pem\"",
        ));
        assert!(e.contains("jwks_ca_file"), "{e}");
        let e = err(&with_token_source(
            "jwks_url = \"https://idp/jwks\"\njwks_min_refresh_secs = 0",
        ));
        assert!(e.contains("> 0"), "{e}");
        let e = err(&with_token_source("jwks_url = \"ftp://idp/jwks\""));
        assert!(e.contains("https"), "{e}");
    }
}
