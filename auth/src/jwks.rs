//! The identity provider's signing keys, fetched from its JWKS URL (or the
//! `jwks_uri` of its OIDC discovery document) and cached.
//!
//! - Reads are lock-free: the current [`KeySet`] sits in an `ArcSwapOption`
//!   and a refresh swaps in a complete new set, so a request sees either the
//!   old set or the new one, never a mix.
//! - Refreshes run one at a time (an async mutex held across the fetch, never
//!   touched by readers): on a schedule with jitter, and on demand when a
//!   token names an unknown `kid`, at most once per `jwks_min_refresh_secs`.
//!   Requests that arrive while a refresh is running wait for it and then use
//!   its result (single flight) rather than fetching again.
//! - A failed fetch (provider down, TLS error, garbage, empty set) keeps the
//!   last good set, logs a warning and counts in the metrics.

use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::idp_url::check_url;

use anyhow::{bail, Context, Result};
use arc_swap::ArcSwapOption;
use reqwest::{Client, Url};
use serde::Deserialize;
use tracing::{debug, info, warn};

use crate::config::TokenConfig;
use crate::metrics::Metrics;
use crate::token::KeySet;

/// A JWKS or discovery document larger than this is refused as garbage.
const MAX_BODY: usize = 1024 * 1024;
/// Pause between attempts while the very first fetch keeps failing.
const MAX_STARTUP_RETRY: Duration = Duration::from_secs(30);

/// Where the keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A JWKS document at this URL.
    Url(String),
    /// An OIDC issuer: its discovery document names the JWKS URL.
    Discovery(String),
}

/// Everything that shapes a cache; two equal settings can share one cache
/// (a SIGHUP reload that does not touch them keeps the cached keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSettings {
    pub source: Source,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    pub refresh: Duration,
    pub min_refresh: Duration,
}

impl JwksSettings {
    /// `None` when the config has no remote key source.
    pub fn from_config(t: &TokenConfig) -> Option<Self> {
        let source = match (&t.jwks_url, &t.oidc_issuer) {
            (Some(u), _) => Source::Url(u.clone()),
            (None, Some(i)) => Source::Discovery(i.clone()),
            (None, None) => return None,
        };
        Some(JwksSettings {
            source,
            ca_file: t.jwks_ca_file.clone(),
            timeout: Duration::from_secs(t.jwks_fetch_timeout_secs),
            refresh: Duration::from_secs(t.jwks_refresh_secs),
            min_refresh: Duration::from_secs(t.jwks_min_refresh_secs),
        })
    }
}

/// A URL fit for logs: no user info, no query (either may carry a secret).
fn redact(u: &Url) -> String {
    format!(
        "{}://{}{}",
        u.scheme(),
        u.host_str().unwrap_or("?"),
        u.port().map(|p| format!(":{p}")).unwrap_or_default()
    ) + u.path()
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// The cached key set of one provider. Shared by every request and by the
/// background refresher (which holds only a `Weak`, so it stops when a
/// reload replaces the cache).
pub struct JwksCache {
    settings: JwksSettings,
    client: Client,
    keys: ArcSwapOption<KeySet>,
    /// Bumped on every successful swap; lets a waiter see "someone refreshed".
    generation: AtomicU64,
    /// Serializes fetches; holds the time of the last on-demand refresh.
    refresh_lock: tokio::sync::Mutex<Option<Instant>>,
    metrics: Arc<Metrics>,
}

impl JwksCache {
    /// Build the HTTP client (with the CA file, if any). Does not fetch.
    pub fn new(settings: JwksSettings, metrics: Arc<Metrics>) -> Result<Arc<Self>> {
        match &settings.source {
            Source::Url(u) | Source::Discovery(u) => {
                check_url(u)?;
            }
        }
        let mut b = Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A redirect could downgrade to http or leave the provider.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("tribune-auth/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &settings.ca_file {
            let pem = std::fs::read(ca)
                .with_context(|| format!("token.jwks_ca_file: reading {}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("token.jwks_ca_file: parsing {}", ca.display()))?;
            if certs.is_empty() {
                bail!("token.jwks_ca_file {}: no certificates", ca.display());
            }
            b = b.tls_certs_only(certs);
        }
        let client = b.build().context("building the JWKS HTTP client")?;
        Ok(Arc::new(JwksCache {
            settings,
            client,
            keys: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            refresh_lock: tokio::sync::Mutex::new(None),
            metrics,
        }))
    }

    pub fn settings(&self) -> &JwksSettings {
        &self.settings
    }

    /// The current key set; `None` until the first fetch succeeded.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.keys.load_full()
    }

    /// Fetch now and swap in the result; on failure keep the old set.
    pub async fn refresh(&self, why: &str) -> Result<()> {
        let _guard = self.refresh_lock.lock().await;
        self.fetch_and_swap(why).await
    }

    /// Keep trying the first fetch until it succeeds (the service is not
    /// ready before: it has no keys to check tokens with).
    pub async fn initial_load(&self) {
        let mut pause = self.settings.min_refresh.min(Duration::from_secs(1));
        while self.refresh("startup").await.is_err() {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_STARTUP_RETRY);
        }
    }

    /// A token named a `kid` we do not have. Refresh unless one ran on demand
    /// within `min_refresh`; callers that queue behind a running refresh use
    /// its result. Returns whether the key set changed since the call began,
    /// i.e. whether checking the token again can help.
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        let seen = self.generation.load(Ordering::Acquire);
        let mut last = self.refresh_lock.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < self.settings.min_refresh) {
            debug!("unknown kid: refresh rate-limited");
            return false;
        }
        *last = Some(Instant::now());
        self.fetch_and_swap("unknown kid").await.is_ok()
            && self.generation.load(Ordering::Acquire) != seen
    }

    /// Refresh on schedule until the cache is dropped.
    pub fn spawn_refresher(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = self.settings.refresh;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(jittered(every)).await;
                let Some(cache) = weak.upgrade() else { return };
                // Errors are logged and counted inside; the old set stays.
                let _ = cache.refresh("scheduled").await;
            }
        });
    }

    /// Caller holds `refresh_lock`.
    async fn fetch_and_swap(&self, why: &str) -> Result<()> {
        match self.fetch().await {
            Ok(set) => {
                let n = set.len();
                self.keys.store(Some(Arc::new(set)));
                self.generation.fetch_add(1, Ordering::AcqRel);
                self.metrics.jwks_fetched(n);
                info!(keys = n, why, "JWKS loaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.jwks_fetch_failed();
                let kept = self.current().map_or(0, |k| k.len());
                warn!(
                    why,
                    kept_keys = kept,
                    error = format!("{e:#}"),
                    "JWKS fetch failed; keeping the last good key set"
                );
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet> {
        let jwks_url = match &self.settings.source {
            Source::Url(u) => check_url(u)?,
            Source::Discovery(issuer) => self.discover(issuer).await?,
        };
        let body = self.get(&jwks_url).await?;
        let set = KeySet::from_jwks_json(&body, &redact(&jwks_url))?;
        if set.is_empty() {
            bail!("JWKS {} has no keys", redact(&jwks_url));
        }
        Ok(set)
    }

    /// Read the discovery document; its `issuer` must be the configured one
    /// (OpenID Connect Discovery 1.0, section 4.3), its `jwks_uri` obeys [`check_url`].
    async fn discover(&self, issuer: &str) -> Result<Url> {
        let url = check_url(&format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ))?;
        let body = self.get(&url).await?;
        let doc: Discovery = serde_json::from_slice(&body)
            .with_context(|| format!("parsing discovery document {}", redact(&url)))?;
        if doc.issuer != issuer {
            bail!(
                "discovery document {} names issuer {:?}, configured {issuer:?}",
                redact(&url),
                doc.issuer
            );
        }
        check_url(&doc.jwks_uri).context("discovery jwks_uri")
    }

    /// GET with a status check and a size cap.
    async fn get(&self, url: &Url) -> Result<Vec<u8>> {
        let shown = redact(url);
        let mut resp = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GET {shown}: {}", e.without_url()))?;
        if !resp.status().is_success() {
            bail!("GET {shown}: HTTP {}", resp.status());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| anyhow::anyhow!("GET {shown}: reading body: {}", e.without_url()))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                bail!("GET {shown}: body larger than {MAX_BODY} bytes");
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// `base` plus a random 0-10%, so replicas do not hit the provider in step.
fn jittered(base: Duration) -> Duration {
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    base + base.mul_f64((r % 1000) as f64 / 10_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_userinfo_and_query() {
        let u = Url::parse("https://user:pw@idp.example:8443/keys?token=s3cret").unwrap();
        assert_eq!(redact(&u), "https://idp.example:8443/keys");
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let j = jittered(Duration::from_secs(100));
            assert!(j >= Duration::from_secs(100) && j <= Duration::from_secs(110));
        }
    }
}
