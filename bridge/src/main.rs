//! `tribune-bridge`: run the bridge, simulate the provider feed, tail subjects,
//! benchmark, or make NKEYs. `tribune-bridge --help` lists the subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tokio::sync::watch;

use tribune_bridge::{bench, bridge, config::Config, keygen, replay, sim, tail, tls};

/// mimalloc rather than glibc malloc: the message path allocates and frees
/// small buffers per message on every thread, where glibc's arenas cost
/// about a sixth of the CPU (profiled in BENCHMARKS.md's bridge section).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tribune-bridge",
    version,
    about = "MQTT provider feed -> NATS JetStream bridge"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the bridge.
    Run {
        /// TOML config (see bridge/README.md).
        #[arg(short, long)]
        config: PathBuf,
        /// Validate the config (and resolve its secrets), then exit.
        #[arg(long)]
        check: bool,
    },
    /// Replay the dead-letter stream through the current parser (after a
    /// parser fix): one JSON line per dead letter, then a JSON summary.
    ReplayDlq {
        /// The bridge's TOML config (NATS, streams, topics).
        #[arg(short, long)]
        config: PathBuf,
        /// First dead-letter sequence (default: the stream's first).
        #[arg(long)]
        from_seq: Option<u64>,
        /// Last dead-letter sequence, inclusive (default: the stream's last at start).
        #[arg(long)]
        to_seq: Option<u64>,
        /// Only report what would happen: store and delete nothing.
        #[arg(long, conflicts_with = "delete_replayed")]
        dry_run: bool,
        /// Delete each dead letter once all of it is in the match states.
        #[arg(long)]
        delete_replayed: bool,
    },
    /// Replay simulated matches into an MQTT broker (embedded rumqttd by default).
    Simulate {
        /// Start an embedded MQTT broker here and publish to it.
        #[arg(long, default_value = "127.0.0.1:1883", conflicts_with = "mqtt_url")]
        embedded_broker: SocketAddr,
        /// Publish to this external broker instead: mqtt://, mqtts://, ws:// or
        /// wss://host[:port][/path] (e.g. mqtt://127.0.0.1:1883 for mosquitto).
        #[arg(long)]
        mqtt_url: Option<String>,
        /// CA bundle (PEM) verifying a TLS broker given with --mqtt-url
        /// (mqtts://, wss://); default: the system roots.
        #[arg(long, requires = "mqtt_url")]
        mqtt_ca_file: Option<PathBuf>,
        /// Stop after N valid match updates (0 = run until Ctrl-C).
        #[arg(long, default_value_t = 0)]
        updates: u64,
        /// MQTT messages per second (0 = as fast as possible).
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Comma-separated sports.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "football,basketball,tennis"
        )]
        sports: Vec<String>,
        #[arg(long, default_value_t = 4)]
        matches_per_sport: usize,
        /// Up to this many match objects per MQTT message.
        #[arg(long, default_value_t = 3)]
        batch: usize,
        /// Every Nth message is malformed (0 = never).
        #[arg(long, default_value_t = 0)]
        malformed_every: u64,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
        qos: u8,
        /// With the embedded broker: exit when the feed ends instead of serving on.
        #[arg(long)]
        exit_when_done: bool,
        /// Log every message sent.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Print updates on a subject as they arrive, e.g. `tail 'sports.football.*'`.
    Tail {
        subject: String,
        #[arg(long = "server", default_value = "nats://127.0.0.1:4222")]
        servers: Vec<String>,
        /// File holding an NKEY user seed (internal systems).
        #[arg(long)]
        nkey_seed_file: Option<PathBuf>,
        #[arg(long)]
        creds: Option<PathBuf>,
        /// Environment variable holding a web user's token (auth callout).
        #[arg(long)]
        token_env: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        password_env: Option<String>,
        #[arg(long)]
        tls_ca_file: Option<PathBuf>,
        /// Exit after N messages.
        #[arg(long, default_value_t = 0)]
        count: u64,
        /// Raw JSON instead of one-liners.
        #[arg(long)]
        json: bool,
        /// First print every match's current state (the last message of each
        /// subject, one batch direct get), then only live states newer than it.
        #[arg(long)]
        current: bool,
        /// The stream for `--current`.
        #[arg(long, default_value = "SPORTS")]
        stream: String,
    },
    /// Measure MQTT -> JetStream throughput and latency (embedded MQTT broker).
    Bench {
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        #[arg(long, default_value_t = 100_000)]
        messages: u64,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
        qos: u8,
        #[arg(long, default_value = "server")]
        label: String,
        /// Paced messages/s for a latency run (0 = as fast as possible).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Live matches the updates are spread over (one subject each);
        /// 0 gives every update a match of its own.
        #[arg(long, default_value_t = 1000)]
        matches: u64,
        /// The stream's replicas (3 against a 3-node cluster).
        #[arg(long, default_value_t = 1)]
        replicas: usize,
    },
    /// Mint an HS256 web token for local runs (tribune-auth with `hs256_secret`).
    DevToken {
        /// File holding the shared secret (>= 32 bytes).
        #[arg(long)]
        secret_file: PathBuf,
        #[arg(long, default_value = "tribune-local-dev")]
        issuer: String,
        #[arg(long, default_value = "tribune-web")]
        audience: String,
        #[arg(long, default_value = "web-demo")]
        subject: String,
        /// Comma-separated sports the user may watch (the `sports` claim).
        #[arg(long, value_delimiter = ',', default_value = "football")]
        sports: Vec<String>,
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
    },
    /// Generate an NKEY pair: prints the public key, writes the seed to a file (0600).
    Keygen {
        /// user, account, server or curve (xkey).
        kind: String,
        #[arg(long)]
        seed_file: PathBuf,
    },
}

fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot install SIGTERM handler");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down (signal again to force)");
        let _ = tx.send(true);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        std::process::exit(130);
    });
    rx
}

async fn real_main(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Run { config, check } => {
            let cfg = Config::load(&config)?;
            if check {
                for s in [&cfg.mqtt.username, &cfg.mqtt.password, &cfg.nats.nkey_seed]
                    .into_iter()
                    .flatten()
                {
                    s.resolve()?;
                }
                tribune_bridge::mqtt::options(&cfg.mqtt, 16)?;
                println!("config ok");
                return Ok(());
            }
            bridge::run(cfg, shutdown_signal()).await
        }
        Cmd::ReplayDlq {
            config,
            from_seq,
            to_seq,
            dry_run,
            delete_replayed,
        } => {
            let cfg = Config::load(&config)?;
            let opts = replay::ReplayOptions {
                from_seq,
                to_seq,
                dry_run,
                delete_replayed,
            };
            let stdout = std::io::stdout();
            let summary = replay::run(&cfg, &opts, &mut stdout.lock(), shutdown_signal()).await?;
            println!("{}", serde_json::json!({ "summary": summary }));
            match summary.error {
                Some(e) => anyhow::bail!("replay stopped early: {e}"),
                None => Ok(()),
            }
        }
        Cmd::Simulate {
            embedded_broker,
            mqtt_url,
            mqtt_ca_file,
            updates,
            rate,
            seed,
            sports,
            matches_per_sport,
            batch,
            malformed_every,
            qos,
            exit_when_done,
            verbose,
        } => {
            let sports = sports
                .iter()
                .map(|s| {
                    sim::SPORTS
                        .iter()
                        .find(|k| **k == s.as_str())
                        .copied()
                        .with_context(|| format!("unknown sport {s:?}; known: {:?}", sim::SPORTS))
                })
                .collect::<Result<Vec<_>>>()?;
            let embedded = mqtt_url.is_none();
            let mqtt_url = match mqtt_url {
                Some(u) => u,
                None => {
                    sim::embedded::start(embedded_broker)?;
                    format!("mqtt://{embedded_broker}")
                }
            };
            let shutdown = shutdown_signal();
            let opts = sim::SimOptions {
                mqtt_url,
                ca_file: mqtt_ca_file,
                updates,
                rate,
                seed,
                sports,
                matches_per_sport,
                batch,
                malformed_every,
                qos,
                verbose,
                ..Default::default()
            };
            let report = sim::run(opts, shutdown.clone()).await?;
            println!("{}", serde_json::to_string(&report)?);
            if embedded && !exit_when_done && !*shutdown.borrow() {
                eprintln!("simulate: feed finished; embedded broker keeps serving until Ctrl-C");
                let mut s = shutdown;
                let _ = s.wait_for(|v| *v).await;
            }
            Ok(())
        }
        Cmd::Tail {
            subject,
            servers,
            nkey_seed_file,
            creds,
            token_env,
            user,
            password_env,
            tls_ca_file,
            count,
            json,
            current,
            stream,
        } => {
            let opts = tail::TailOptions {
                current: current.then_some(stream),
                subject,
                servers,
                nkey_seed_file,
                creds_file: creds,
                token_env,
                user,
                password_env,
                tls_ca_file,
                count,
                json,
            };
            let mut sd = shutdown_signal();
            tokio::select! {
                r = tail::run(opts) => r,
                _ = sd.wait_for(|v| *v) => Ok(()),
            }
        }
        Cmd::Bench {
            nats_url,
            messages,
            qos,
            label,
            rate,
            matches,
            replicas,
        } => {
            let r = bench::run(bench::BenchOptions {
                nats_url,
                messages,
                qos,
                label,
                rate,
                matches,
                replicas,
                mqtt: None,
            })
            .await?;
            println!("{}", serde_json::to_string(&r)?);
            println!("{}", r.markdown_row());
            Ok(())
        }
        Cmd::DevToken {
            secret_file,
            issuer,
            audience,
            subject,
            sports,
            ttl_secs,
        } => {
            let secret = std::fs::read(&secret_file)
                .with_context(|| format!("reading {}", secret_file.display()))?;
            let now = tribune_bridge::mqtt::now_ms() / 1000;
            let claims = serde_json::json!({
                "iss": issuer, "aud": audience, "sub": subject, "iat": now,
                "exp": now + ttl_secs, "sports": sports,
            });
            println!(
                "{}",
                tribune_bridge::devtoken::mint(trim_ascii(&secret), &claims)?
            );
            Ok(())
        }
        Cmd::Keygen { kind, seed_file } => {
            let (seed, public) = keygen::generate(&kind)?;
            keygen::write_seed(&seed_file, &seed)?;
            println!("{public}");
            Ok(())
        }
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // rumqttd logs aborted handshakes (e.g. port probes) as errors: off unless asked for.
    let default_filter = match cli.cmd {
        Cmd::Tail { .. } | Cmd::Keygen { .. } | Cmd::DevToken { .. } => "warn,rumqttd=off",
        _ => "info,rumqttd=off",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .init();
    tls::install_crypto_provider();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tribune-bridge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(real_main(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("tribune-bridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}
