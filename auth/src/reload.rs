//! Building the active configuration, at startup and on SIGHUP.
//!
//! A reload parses and checks the whole new file, builds a complete new
//! [`Callout`] (loading the IdP keys first if their source changed) and only
//! then swaps it in with one atomic store. Any error leaves the old callout in
//! force: there is never a half-applied config.
//!
//! What a reload cannot change without reconnecting (`[nats]`, the callout
//! subject and queue group, `[metrics]`) is refused rather than ignored.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arc_swap::ArcSwap;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::callout::Callout;
use crate::config::Config;
use crate::jwks::{JwksCache, JwksSettings};
use crate::metrics::Metrics;

/// How to treat a failing first JWKS fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstFetch {
    /// Startup: retry until it succeeds (the service is not ready without keys).
    Retry,
    /// Reload or `--check`: one attempt; failure refuses the config.
    Once,
}

/// Build a callout for `cfg`. The key cache of `prev` is reused when the
/// JWKS settings are unchanged, so a permissions-only reload neither refetches
/// nor depends on the provider being up.
pub async fn build_callout(
    cfg: &Config,
    prev: Option<&Callout>,
    metrics: &Arc<Metrics>,
    first: FirstFetch,
) -> Result<Callout> {
    let settings = JwksSettings::from_config(&cfg.token);
    let reuse = prev.and_then(|p| p.key_cache()).cloned();
    let (cache, fresh) = match (settings, reuse) {
        (None, _) => (None, false),
        (Some(s), Some(old)) if old.settings() == &s => (Some(old), false),
        (Some(s), _) => {
            let cache = JwksCache::new(s, metrics.clone()).context("token")?;
            match first {
                FirstFetch::Retry => cache.initial_load().await,
                FirstFetch::Once => cache
                    .refresh("config load")
                    .await
                    .context("token: first JWKS fetch")?,
            }
            (Some(cache), true)
        }
    };
    let callout = Callout::build(cfg, cache.clone())?;
    if let (Some(c), true) = (&cache, fresh) {
        c.spawn_refresher();
    }
    metrics.register_apps(callout.apps().iter().map(|a| a.name.as_str()));
    Ok(callout)
}

/// The active config and callout, and the file they come from.
pub struct Reloader {
    path: PathBuf,
    metrics: Arc<Metrics>,
    callout: Arc<ArcSwap<Callout>>,
    /// The config in force; the mutex also serializes reloads.
    cfg: Mutex<Config>,
}

impl Reloader {
    pub fn new(path: &Path, cfg: Config, callout: Callout, metrics: Arc<Metrics>) -> Self {
        Reloader {
            path: path.to_path_buf(),
            metrics,
            callout: Arc::new(ArcSwap::from_pointee(callout)),
            cfg: Mutex::new(cfg),
        }
    }

    /// The handle request handlers read the current callout from.
    pub fn callout(&self) -> Arc<ArcSwap<Callout>> {
        self.callout.clone()
    }

    /// Re-read the config file and apply it whole, or not at all.
    pub async fn reload(&self) -> Result<()> {
        let result = self.try_reload().await;
        self.metrics.reloaded(result.is_ok());
        match &result {
            Ok(()) => info!(
                config = %self.path.display(),
                apps = %self.callout.load().apps(),
                "configuration reloaded"
            ),
            Err(e) => warn!(
                config = %self.path.display(),
                error = format!("{e:#}"),
                "configuration reload refused; the previous configuration stays in force"
            ),
        }
        result
    }

    async fn try_reload(&self) -> Result<()> {
        let mut active = self.cfg.lock().await;
        let new = Config::load(&self.path)?;
        fixed_parts_unchanged(&active, &new)?;
        let prev = self.callout.load_full();
        let callout = build_callout(&new, Some(&prev), &self.metrics, FirstFetch::Once).await?;
        self.callout.store(Arc::new(callout));
        *active = new;
        Ok(())
    }
}

fn fixed_parts_unchanged(old: &Config, new: &Config) -> Result<()> {
    if old.nats != new.nats {
        bail!("[nats] changed: that needs a restart");
    }
    if old.callout.subject != new.callout.subject
        || old.callout.queue_group != new.callout.queue_group
    {
        bail!("callout.subject / callout.queue_group changed: that needs a restart");
    }
    if old.metrics != new.metrics {
        bail!("[metrics] changed: that needs a restart");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [nats]
        servers = ["nats://127.0.0.1:4222"]
        [callout]
        issuer_seed = { env = "X" }
        account = "APP"
        [token]
        issuers = ["https://idp"]
        audiences = ["tribune"]
        hs256_secret = { value = "0123456789abcdef0123456789abcdef" }
    "#;

    #[test]
    fn only_reloadable_parts_may_change() {
        let old = Config::from_toml(BASE).unwrap();
        let perms = Config::from_toml(&format!(
            "{BASE}\n[permissions]\nstatic_subscribe = [\"public.>\"]"
        ))
        .unwrap();
        assert!(fixed_parts_unchanged(&old, &perms).is_ok());
        let nats = Config::from_toml(&BASE.replace("4222", "4223")).unwrap();
        assert!(fixed_parts_unchanged(&old, &nats).is_err());
        let metrics = Config::from_toml(&format!("{BASE}\n[metrics]\nlisten = \"\"")).unwrap();
        assert!(fixed_parts_unchanged(&old, &metrics).is_err());
    }

    #[tokio::test]
    async fn applications_are_reloadable() {
        let seed = nkeys::KeyPair::new_account().seed().unwrap();
        let base = BASE.replace("{ env = \"X\" }", &format!("{{ value = \"{seed}\" }}"));
        let old = Config::from_toml(&base).unwrap();
        let with_app = Config::from_toml(&format!(
            "{base}\n[[apps]]\nname = \"partners\"\naccount = \"PARTNERS\"\naudiences = [\"partners-web\"]"
        ))
        .unwrap();
        assert!(fixed_parts_unchanged(&old, &with_app).is_ok());
        let metrics = Metrics::new();
        let before = build_callout(&old, None, &metrics, FirstFetch::Once)
            .await
            .unwrap();
        let after = build_callout(&with_app, Some(&before), &metrics, FirstFetch::Once)
            .await
            .unwrap();
        let names: Vec<&str> = after.apps().iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, vec!["default", "partners"]);
        assert!(metrics
            .render()
            .contains("tribune_auth_app_requests_total{app=\"partners\",result=\"allow\"} 0"));
    }
}
