//! NATS side: connection (NKEY / creds, TLS) and the JetStream streams.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_nats::jetstream::{self, stream};

use crate::config::{JetStreamConfig, NatsConfig};
use crate::metrics::Metrics;

/// Connection options shared by the bridge and the `tail` tool.
pub async fn connect_options(cfg: &NatsConfig) -> Result<async_nats::ConnectOptions> {
    let mut opts = async_nats::ConnectOptions::new()
        .name(&cfg.name)
        .max_reconnects(None)
        .ping_interval(Duration::from_secs(10))
        .connection_timeout(Duration::from_secs(5));
    if let Some(seed) = &cfg.nkey_seed {
        let seed = seed.resolve().context("nats.nkey_seed")?;
        // Fail early with a clear message rather than at the server's auth step.
        nkeys::KeyPair::from_seed(seed.expose())
            .map_err(|e| anyhow::anyhow!("nats.nkey_seed is not a valid NKEY seed: {e}"))?;
        opts = opts.nkey(seed.expose().to_owned());
    }
    if let Some(path) = &cfg.creds_file {
        opts = opts
            .credentials_file(path)
            .await
            .with_context(|| format!("nats.creds_file {}", path.display()))?;
    }
    if let Some(ca) = &cfg.tls_ca_file {
        opts = opts.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&cfg.tls_cert_file, &cfg.tls_key_file) {
        opts = opts.add_client_certificate(cert.clone(), key.clone());
    }
    if cfg.tls_required || cfg.servers.iter().any(|s| s.starts_with("tls://")) {
        opts = opts.require_tls(true);
    }
    Ok(opts)
}

/// Server URLs for a log line: a password in one (`nats://user:pw@host`)
/// shows as `xxxxx`, as nats-server and Go's `url.Redacted` print it. A
/// lone user part is a token to NATS clients (`nats://token@host`), so it
/// goes too.
pub fn redacted(servers: &[String]) -> Vec<String> {
    servers
        .iter()
        .map(|s| {
            let Some((scheme, rest)) = s.split_once("://") else {
                return s.clone();
            };
            let Some((userinfo, host)) = rest.rsplit_once('@') else {
                return s.clone();
            };
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:xxxxx@{host}"),
                None => format!("{scheme}://xxxxx@{host}"),
            }
        })
        .collect()
}

/// Connects (retrying in the background until a server answers) and keeps the
/// connection gauges and reconnect counter up to date.
pub async fn connect(cfg: &NatsConfig, metrics: Arc<Metrics>) -> Result<async_nats::Client> {
    // One direct attempt first: its error says *why* (bad certificate, auth),
    // whereas the background retries only report "IO error".
    match connect_options(cfg)
        .await?
        .connect(cfg.servers.clone())
        .await
    {
        Ok(probe) => {
            let _ = probe.drain().await;
        }
        Err(e) => {
            tracing::error!(servers = ?redacted(&cfg.servers), error = %error_chain(&e), "NATS connection failed; retrying in the background")
        }
    }
    let m = metrics.clone();
    let opts = connect_options(cfg)
        .await?
        .retry_on_initial_connect()
        .event_callback(move |event| {
            let m = m.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        if m.nats_connected.swap(true, Relaxed) {
                            return;
                        }
                        tracing::info!("NATS connected");
                    }
                    async_nats::Event::Disconnected => {
                        m.nats_connected.store(false, Relaxed);
                        Metrics::inc(&m.nats_reconnects);
                        tracing::warn!("NATS disconnected; reconnecting");
                    }
                    other => tracing::warn!(event = %other, "NATS event"),
                }
            }
        });
    let client = opts
        .connect(cfg.servers.clone())
        .await
        .with_context(|| format!("connecting to NATS {:?}", redacted(&cfg.servers)))?;
    if client.connection_state() == async_nats::connection::State::Connected {
        metrics.nats_connected.store(true, Relaxed);
    }
    Ok(client)
}

/// A JetStream context whose publish acks time out after `ack_timeout_ms`
/// (a timed-out publish is retried with the same Nats-Msg-Id).
pub fn context(
    client: async_nats::Client,
    cfg: &JetStreamConfig,
    max_inflight: usize,
) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(cfg.ack_timeout_ms))
        .max_ack_inflight(max_inflight.max(1))
        .backpressure_on_inflight(true)
        .build(client)
}

/// The stream configs the bridge publishes into.
pub fn stream_configs(cfg: &JetStreamConfig) -> [stream::Config; 2] {
    let storage = if cfg.storage == "memory" {
        stream::StorageType::Memory
    } else {
        stream::StorageType::File
    };
    let base = stream::Config {
        duplicate_window: Duration::from_secs(cfg.duplicate_window_secs),
        max_age: Duration::from_secs(cfg.max_age_secs),
        storage,
        num_replicas: cfg.replicas,
        ..Default::default()
    };
    [
        stream::Config {
            name: cfg.stream.clone(),
            subjects: vec![format!("{}.>", cfg.subject_prefix)],
            description: Some("Live match states from tribune-bridge".into()),
            // Readers get every match's current state, the last message of
            // each subject, with one batch direct get (`multi_last`), which
            // any replica may answer. An existing stream is updated to it.
            allow_direct: true,
            ..base.clone()
        },
        stream::Config {
            name: cfg.dead_letter_stream.clone(),
            subjects: vec![cfg.dead_letter_subject.clone()],
            description: Some("Provider messages tribune-bridge could not parse".into()),
            ..base
        },
    ]
}

/// Creates or updates both streams, retrying until JetStream answers (the
/// cluster may still be electing a meta leader when the bridge starts).
/// Returns whether the match stream allows direct gets.
pub async fn ensure_streams(js: &jetstream::Context, cfg: &JetStreamConfig) -> Result<bool> {
    if !cfg.manage_streams {
        let mut direct = false;
        for name in [&cfg.stream, &cfg.dead_letter_stream] {
            let s = js.get_stream(name).await.with_context(|| {
                format!("stream {name} (manage_streams = false, so it must exist)")
            })?;
            if *name == cfg.stream {
                direct = check_direct(name, s.cached_info().config.allow_direct);
            }
        }
        return Ok(direct);
    }
    let mut direct = false;
    for config in stream_configs(cfg) {
        let name = config.name.clone();
        let mut delay = Duration::from_millis(200);
        let mut attempts = 0u32;
        let allowed = loop {
            attempts += 1;
            match js.create_or_update_stream(config.clone()).await {
                Ok(info) => break info.config.allow_direct,
                Err(e) => {
                    // An existing stream we may not change (e.g. storage type) is still usable.
                    if let Ok(s) = js.get_stream(&name).await {
                        tracing::warn!(stream = %name, error = %e, "stream exists but could not be updated; using it as is");
                        break s.cached_info().config.allow_direct;
                    }
                    if attempts >= 60 {
                        return Err(anyhow::anyhow!(e))
                            .with_context(|| format!("creating stream {name}"));
                    }
                    tracing::warn!(stream = %name, error = %e, "creating stream failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        if name == cfg.stream {
            direct = check_direct(&name, allowed);
        }
        tracing::info!(stream = %name, "stream ready");
    }
    Ok(direct)
}

/// Readers need direct get to fetch every match's state at once (the
/// bridge does without it, reading through the stream leader).
fn check_direct(stream: &str, allow_direct: bool) -> bool {
    if !allow_direct {
        tracing::warn!(
            stream,
            "stream has allow_direct = false: readers cannot get the current match states with a batch direct get (multi_last)"
        );
    }
    allow_direct
}

/// `error: cause: cause` (async-nats errors keep the TLS/auth reason in the source chain).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_match_stream_allows_direct_get() {
        let cfg = crate::config::JetStreamConfig::default();
        let [sports, dlq] = stream_configs(&cfg);
        assert_eq!(sports.name, "SPORTS");
        assert!(sports.allow_direct);
        assert_eq!(sports.subjects, ["sports.>"]);
        assert!(!dlq.allow_direct);
    }

    #[test]
    fn passwords_in_server_urls_are_redacted() {
        let got = redacted(&[
            "nats://bridge:s3cret@10.0.0.1:4222".into(),
            "tls://token@host:4222".into(),
            "nats://host:4222".into(),
            "host:4222".into(),
        ]);
        assert_eq!(
            got,
            [
                "nats://bridge:xxxxx@10.0.0.1:4222",
                "tls://xxxxx@host:4222",
                "nats://host:4222",
                "host:4222"
            ]
        );
    }
}
