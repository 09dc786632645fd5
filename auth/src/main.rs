//! `tribune-auth`: the auth-callout service. See `auth/README.md`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

use tribune_auth::callout::Callout;
use tribune_auth::config::Config;
use tribune_auth::metrics::{self, Metrics};
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
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Err(e) = rt.block_on(real_main(args)) {
        error!("{e:#}");
        std::process::exit(1);
    }
}

async fn real_main(args: Args) -> Result<()> {
    let cfg = Config::load(&args.config)?;
    let callout = Arc::new(Callout::from_config(&cfg)?);
    if args.check {
        println!("config ok; issuer {}", callout.issuer_public_key());
        return Ok(());
    }
    let metrics = Metrics::new();
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
    service::run(
        &cfg.nats,
        &cfg.callout.subject,
        &cfg.callout.queue_group,
        callout,
        metrics,
        shutdown_signal(),
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
