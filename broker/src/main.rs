//! `tribune-broker`: command-line entry point. Parses flags and the
//! configuration file exactly as nats-server does, starts the server, and
//! turns signals into shutdown, reload and lame-duck mode.

use std::process::ExitCode;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use tribune_broker::cli::Cli;
use tribune_broker::logging::{self, LogHandle};
use tribune_broker::options::Options;
use tribune_broker::server::{ConfigSource, Server};
use tribune_broker::{config, signals, VERSION};

/// mimalloc rather than glibc malloc: the message path allocates and frees
/// small buffers per message on every thread, where glibc's arenas cost
/// about a sixth of the CPU (profiled in BENCHMARKS.md's bridge section).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Defaults, then the config file, then the flags.
fn load_options(cli: &Cli) -> Result<(Options, Vec<String>), String> {
    let mut opts = Options::default();
    let mut warnings = Vec::new();
    if let Some(path) = &cli.config {
        opts.config_file = Some(path.clone());
        warnings = config::apply_file(&mut opts, path).map_err(|e| e.to_string())?;
    }
    cli.apply(&mut opts)?;
    // Flags can create conflicts the file alone did not have.
    config::validate_options(&opts).map_err(|errs| errs.join("\n"))?;
    Ok((opts, warnings))
}

fn main() -> ExitCode {
    let cli = match Cli::parse_from_env() {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if cli.version {
        println!("tribune-broker: v{VERSION}");
        return ExitCode::SUCCESS;
    }
    if let Some(spec) = &cli.signal {
        return match signals::send(spec) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tribune-broker: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let (opts, warnings) = match load_options(&cli) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("tribune-broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.test_config {
        for w in &warnings {
            eprintln!("tribune-broker: {w}");
        }
        let name = cli
            .config
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        println!("tribune-broker: configuration file {name} test is successful");
        return ExitCode::SUCCESS;
    }
    let log = match logging::init(
        opts.debug,
        opts.trace,
        opts.logtime,
        opts.logtime_utc,
        opts.log_file.as_deref(),
    ) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("tribune-broker: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    for w in &warnings {
        warn!("{w}");
    }
    tribune_broker::listener::raise_open_files_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tribune-broker: could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli, opts, log))
}

/// What a reload reads again: the `-c` file, then the flags, as at start.
struct FileAndFlags {
    cli: Cli,
    log: LogHandle,
}

impl ConfigSource for FileAndFlags {
    fn load(&self) -> Result<(Options, Vec<String>), String> {
        load_options(&self.cli)
    }

    fn applied(&self, opts: &Options) {
        self.log
            .set_level(logging::level_for(opts.debug, opts.trace));
    }
}

async fn run(cli: Cli, opts: Options, log: LogHandle) -> ExitCode {
    let server = Server::new(opts);
    if cli.config.is_some() {
        server.set_config_source(Box::new(FileAndFlags {
            cli: cli.clone(),
            log: log.clone(),
        }));
    }
    if let Err(e) = server.start().await {
        error!("{e:#}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = handle_signals(&server).await {
        error!("signal handling failed: {e}");
        server.shutdown().await;
    }
    server.wait_for_shutdown().await;
    ExitCode::SUCCESS
}

/// Wait for signals until the server has shut down.
async fn handle_signals(server: &Arc<Server>) -> std::io::Result<()> {
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut sigusr1 = signal(SignalKind::user_defined1())?;
    let mut sigusr2 = signal(SignalKind::user_defined2())?;
    let done = server.clone();
    let finished = done.wait_for_shutdown();
    tokio::pin!(finished);
    loop {
        tokio::select! {
            _ = sigint.recv() => {
                info!("Trapped \"interrupt\" signal");
                server.shutdown().await;
                return Ok(());
            }
            _ = sigterm.recv() => {
                info!("Trapped \"terminated\" signal");
                server.shutdown().await;
                return Ok(());
            }
            _ = sighup.recv() => {
                info!("Trapped \"hangup\" signal");
                // Logged inside, in nats-server's words, either way.
                let _ = server.reload_config();
            }
            _ = sigusr1.recv() => {
                info!("Trapped \"user defined signal 1\" signal; log files are opened in append mode, nothing to reopen");
            }
            _ = sigusr2.recv() => {
                info!("Trapped \"user defined signal 2\" signal");
                let s = server.clone();
                tokio::spawn(async move { s.lame_duck().await });
            }
            _ = &mut finished => return Ok(()),
        }
    }
}
