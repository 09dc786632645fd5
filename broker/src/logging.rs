//! Log output in nats-server's line format:
//!
//! ```text
//! [4242] 2026/11/22 10:00:00.123456 [INF] Listening for client connections on 0.0.0.0:4222
//! ```
//!
//! Operators and tools grep these lines, so the shape matters more than
//! tracing's default. `-D` turns on `[DBG]`, `-V` turns on `[TRC]`, and the
//! level can be changed on reload.

use std::fmt;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

/// Formats events as nats-server does.
pub struct NatsFormat {
    pub pid: u32,
    pub logtime: bool,
    pub utc: bool,
}

fn level_tag(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "[ERR]",
        Level::WARN => "[WRN]",
        Level::INFO => "[INF]",
        Level::DEBUG => "[DBG]",
        Level::TRACE => "[TRC]",
    }
}

impl<S, N> FormatEvent<S, N> for NatsFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(w, "[{}] ", self.pid)?;
        if self.logtime {
            const FMT: &str = "%Y/%m/%d %H:%M:%S%.6f";
            if self.utc {
                write!(w, "{} ", chrono::Utc::now().format(FMT))?;
            } else {
                write!(w, "{} ", chrono::Local::now().format(FMT))?;
            }
        }
        write!(w, "{} ", level_tag(event.metadata().level()))?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// The level implied by `-D` / `-V`.
pub fn level_for(debug: bool, trace: bool) -> LevelFilter {
    if trace {
        LevelFilter::TRACE
    } else if debug {
        LevelFilter::DEBUG
    } else {
        LevelFilter::INFO
    }
}

/// Lets a reload change the level of the installed logger.
#[derive(Clone)]
pub struct LogHandle {
    inner: Arc<dyn Fn(LevelFilter) + Send + Sync>,
}

impl LogHandle {
    pub fn set_level(&self, level: LevelFilter) {
        (self.inner)(level)
    }
}

/// Install the global logger: stderr, or append to `log_file`.
pub fn init(
    debug: bool,
    trace: bool,
    logtime: bool,
    utc: bool,
    log_file: Option<&Path>,
) -> Result<LogHandle> {
    let (filter, handle) = reload::Layer::new(level_for(debug, trace));
    let format = NatsFormat {
        pid: std::process::id(),
        logtime,
        utc,
    };
    // openraft narrates elections and votes at INFO and logs every failed
    // heartbeat to a dead peer as an error, several times a second per
    // group. The server logs what matters (new leaders, storage failures,
    // groups that stop) in nats-server's words; the library's own lines
    // show with -D (warnings and errors) and -V (its debug).
    let openraft_level = if trace {
        LevelFilter::DEBUG
    } else if debug {
        LevelFilter::WARN
    } else {
        LevelFilter::OFF
    };
    let targets = tracing_subscriber::filter::Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("openraft", openraft_level);
    let layer = tracing_subscriber::fmt::layer().event_format(format);
    match log_file {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("could not open log file {}", path.display()))?;
            let layer = layer.with_ansi(false).with_writer(Arc::new(file));
            tracing_subscriber::registry()
                .with(filter)
                .with(targets)
                .with(layer)
                .try_init()?;
        }
        None => {
            let layer = layer.with_ansi(false).with_writer(std::io::stderr);
            tracing_subscriber::registry()
                .with(filter)
                .with(targets)
                .with(layer)
                .try_init()?;
        }
    }
    Ok(LogHandle {
        inner: Arc::new(move |level| {
            let _ = handle.modify(|f| *f = level);
        }),
    })
}
