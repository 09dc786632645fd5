//! The NATS side: connect as the auth user, subscribe to the callout subject,
//! hand each request to [`Callout`], reply, log, count.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use arc_swap::ArcSwap;
use async_nats::{ConnectOptions, Event};
use bytes::Bytes;
use futures::StreamExt;
use tracing::{info, warn};

use crate::callout::{Callout, Decision, Handled, XKEY_HEADER};
use crate::config::NatsConfig;
use crate::metrics::Metrics;
use crate::token::TokenError;

/// Build async-nats connect options from config (auth and TLS).
pub fn connect_options(cfg: &NatsConfig, metrics: Arc<Metrics>) -> Result<ConnectOptions> {
    let mut o = if let Some(seed) = &cfg.nkey_seed {
        ConnectOptions::with_nkey(seed.load("nats.nkey_seed")?)
    } else if let (Some(u), Some(p)) = (&cfg.user, &cfg.password) {
        ConnectOptions::with_user_and_password(u.clone(), p.load("nats.password")?)
    } else {
        ConnectOptions::new()
    };
    if let Some(ca) = &cfg.tls_ca_file {
        o = o.add_root_certificates(ca.clone());
    }
    if let (Some(c), Some(k)) = (&cfg.tls_cert_file, &cfg.tls_key_file) {
        o = o.add_client_certificate(c.clone(), k.clone());
    }
    if cfg.tls_required {
        o = o.require_tls(true);
    }
    o = o
        .name(cfg.name.clone())
        .retry_on_initial_connect()
        .event_callback(move |ev| {
            let m = metrics.clone();
            async move {
                match ev {
                    Event::Connected => {
                        info!("connected to NATS");
                        m.set_connected(true);
                    }
                    Event::Disconnected => {
                        warn!("disconnected from NATS");
                        m.set_connected(false);
                    }
                    other => warn!(event = %other, "NATS event"),
                }
            }
        });
    Ok(o)
}

/// Serve callouts until `shutdown` completes; then drain and return.
pub async fn run(
    nats: &NatsConfig,
    subject: &str,
    queue: &str,
    callout: Arc<ArcSwap<Callout>>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let opts = connect_options(nats, metrics.clone())?;
    let client = opts
        .connect(nats.servers.as_slice())
        .await
        .with_context(|| format!("connecting to {:?}", nats.servers))?;
    let mut sub = client
        .queue_subscribe(subject.to_string(), queue.to_string())
        .await
        .map_err(|e| anyhow!("subscribing to {subject}: {e}"))?;
    client.flush().await.map_err(|e| anyhow!("flush: {e}"))?;
    metrics.set_connected(true);
    let first = callout.load();
    info!(
        subject,
        queue,
        issuer = first.issuer_public_key(),
        encrypted = first.xkey_public_key().is_some(),
        apps = %first.apps(),
        "serving auth callout"
    );

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            msg = sub.next() => {
                let Some(msg) = msg else { break };
                let callout = callout.clone();
                let metrics = metrics.clone();
                let client = client.clone();
                tokio::spawn(async move {
                    let Some(reply_to) = msg.reply.clone() else {
                        warn!("callout request without reply subject; ignored");
                        return;
                    };
                    let start = Instant::now();
                    let xkey = msg.headers.as_ref().and_then(|h| h.get(XKEY_HEADER)).map(|v| v.as_str().to_string());
                    // Signature checks (RSA, ed25519) are CPU work; keep them off the I/O threads.
                    // The config in force when the request arrived serves it whole,
                    // even if a reload lands meanwhile.
                    let callout = callout.load_full();
                    let Some(handled) = handle(callout, msg.payload.clone(), xkey).await else { return };
                    if let Err(e) = client.publish(reply_to, handled.reply.into()).await {
                        warn!(error = %e, "failed to send callout reply");
                    }
                    let elapsed = start.elapsed();
                    log_decision(&handled.decision, &handled.server, &handled.client, elapsed);
                    let reason = match &handled.decision {
                        Decision::Allow { .. } => None,
                        Decision::Deny { reason, .. } | Decision::Invalid { reason, .. } => Some(*reason),
                    };
                    metrics.record(handled.decision.result_label(), reason, elapsed);
                    if let Some(app) = handled.decision.app() {
                        metrics.record_app(app, handled.decision.result_label(), reason);
                    }
                });
            }
        }
    }
    info!("shutting down: draining");
    metrics.set_connected(false);
    let _ = sub.unsubscribe().await;
    let _ = client.flush().await;
    Ok(())
}

/// Run the (CPU-bound) callout off the I/O threads. A token with an unknown
/// `kid` may be signed by a key the IdP just rotated in: refresh the key set
/// (rate-limited, coalesced) and decide once more against the new set.
async fn handle(callout: Arc<Callout>, payload: Bytes, xkey: Option<String>) -> Option<Handled> {
    let run = |callout: Arc<Callout>, payload: Bytes, xkey: Option<String>| async move {
        match tokio::task::spawn_blocking(move || callout.handle(&payload, xkey.as_deref())).await {
            Ok(h) => Some(h),
            Err(e) => {
                warn!(error = %e, "callout handler panicked");
                None
            }
        }
    };
    let handled = run(callout.clone(), payload.clone(), xkey.clone()).await?;
    let unknown_kid = matches!(&handled.decision, Decision::Deny { reason, .. } if *reason == TokenError::UNKNOWN_KEY);
    match callout.key_cache() {
        Some(cache) if unknown_kid && cache.refresh_for_unknown_kid().await => {
            run(callout, payload, xkey).await
        }
        _ => Some(handled),
    }
}

/// One line per decision. Carries who and why — never the token.
fn log_decision(d: &Decision, server: &str, client: &str, elapsed: std::time::Duration) {
    let ms = elapsed.as_secs_f64() * 1000.0;
    match d {
        Decision::Allow {
            app,
            account,
            user,
            summary,
            expires,
        } => {
            info!(
                decision = "allow",
                app,
                account,
                user,
                claims = summary,
                expires,
                server,
                client,
                ms,
                "auth callout"
            )
        }
        Decision::Deny {
            app,
            user,
            reason,
            detail,
        } => {
            info!(
                decision = "deny",
                app = app.as_deref().unwrap_or("-"),
                user = user.as_deref().unwrap_or("-"),
                reason,
                detail,
                server,
                client,
                ms,
                "auth callout"
            )
        }
        Decision::Invalid { reason, detail } => {
            warn!(
                decision = "invalid",
                reason, detail, ms, "auth callout request refused"
            )
        }
    }
}
