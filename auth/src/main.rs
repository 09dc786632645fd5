//! `tribune-auth`: the auth-callout service. See `auth/README.md`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

use tribune_auth::config::Config;
use tribune_auth::metrics::{self, Metrics};
use tribune_auth::reload::{build_callout, FirstFetch, Reloader};
use tribune_auth::service;

#[derive(Parser)]
#[command(
    name = "tribune-auth",
    version,
    about = "NATS auth-callout service validating web tokens"
)]
struct Args {
    /// Path to the TOML config file.
    #[arg(long, short)]
    config: PathBuf,
    /// Validate the config and exit.
    #[arg(long)]
    check: bool,
}

fn main() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    // aws-lc-rs, the provider the JWKS client and token checks already use.
    // Err only if one is installed already, which is then used.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Err(e) = rt.block_on(real_main(args)) {
        error!("{e:#}");
        std::process::exit(1);
    }
}

async fn real_main(args: Args) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Before anything slow: SIGHUP's default action would kill the process.
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let cfg = Config::load(&args.config)?;
    let metrics = Metrics::new();
    if args.check {
        let callout = build_callout(&cfg, None, &metrics, FirstFetch::Once).await?;
        println!(
            "config ok; issuer {}; {} token keys; apps: {}",
            callout.issuer_public_key(),
            callout.key_count(),
            callout.apps()
        );
        return Ok(());
    }
    if !cfg.metrics.listen.is_empty() {
        let listener = tokio::net::TcpListener::bind(&cfg.metrics.listen)
            .await
            .with_context(|| format!("binding metrics listener {}", cfg.metrics.listen))?;
        info!(addr = %listener.local_addr()?, "metrics and /healthz listening");
        let app = metrics::router(metrics.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                error!("metrics server: {e}");
            }
        });
    }
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    // Not ready (not subscribed, /healthz 503) until the IdP's keys are loaded:
    // every token would be refused without them.
    let callout = tokio::select! {
        c = build_callout(&cfg, None, &metrics, FirstFetch::Retry) => c?,
        _ = &mut shutdown => { info!("stopped before the first JWKS load"); return Ok(()); }
    };
    let reloader = Arc::new(Reloader::new(
        &args.config,
        cfg.clone(),
        callout,
        metrics.clone(),
    ));
    let r = reloader.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            info!("SIGHUP received: reloading configuration");
            // Outcome logged and counted inside; a refused reload changes nothing.
            let _ = r.reload().await;
        }
    });
    service::run(
        &cfg.nats,
        &cfg.callout.subject,
        &cfg.callout.queue_group,
        reloader.callout(),
        metrics,
        shutdown,
    )
    .await?;
    info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
}
