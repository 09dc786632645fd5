//! Process signals: handling the ones a running server receives, and
//! sending them for `--signal`, as nats-server does.
//!
//! | signal  | `--signal` | effect                         |
//! |---------|------------|--------------------------------|
//! | SIGINT  | quit       | graceful shutdown              |
//! | SIGTERM | term       | graceful shutdown              |
//! | SIGKILL | stop       | immediate kill                 |
//! | SIGHUP  | reload     | reload the configuration       |
//! | SIGUSR1 | reopen     | reopen the log file            |
//! | SIGUSR2 | ldm        | lame-duck mode, then shutdown  |

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Map a `--signal` command to its signal.
pub fn signal_for(command: &str) -> Result<Signal> {
    Ok(match command {
        "stop" => Signal::SIGKILL,
        "quit" => Signal::SIGINT,
        "term" => Signal::SIGTERM,
        "reopen" => Signal::SIGUSR1,
        "reload" => Signal::SIGHUP,
        "ldm" => Signal::SIGUSR2,
        other => bail!("unknown signal {other:?}"),
    })
}

/// Resolve `pid`, a pid file path, or (when empty) the one running broker.
fn resolve_pid(target: &str) -> Result<i32> {
    if !target.is_empty() {
        if let Ok(pid) = target.parse::<i32>() {
            return Ok(pid);
        }
        let text = std::fs::read_to_string(target)
            .with_context(|| format!("could not read pid file {target}"))?;
        return text
            .trim()
            .parse::<i32>()
            .map_err(|_| anyhow!("invalid pid in {target}: {:?}", text.trim()));
    }
    let me = std::process::id() as i32;
    let exe = std::env::current_exe().ok();
    let name = exe
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tribune-broker".into());
    // /proc/<pid>/comm holds at most 15 bytes of the name.
    let comm: String = name.chars().take(15).collect();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .context("could not list processes")?
        .flatten()
    {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(c) = std::fs::read_to_string(entry.path().join("comm")) {
            if c.trim_end() == comm {
                pids.push(pid);
            }
        }
    }
    match pids.as_slice() {
        [] => bail!("no {name} processes running"),
        [one] => Ok(*one),
        many => {
            let list: Vec<String> = many.iter().map(i32::to_string).collect();
            bail!("multiple {name} processes running:\n{}", list.join("\n"))
        }
    }
}

/// Carry out `--signal <command>[=<pid|pidfile>]`.
pub fn send(spec: &str) -> Result<()> {
    let (command, target) = spec.split_once('=').unwrap_or((spec, ""));
    let signal = signal_for(command)?;
    let pid = resolve_pid(target)?;
    kill(Pid::from_raw(pid), signal).with_context(|| format!("could not signal process {pid}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(signal_for("ldm").unwrap(), Signal::SIGUSR2);
        assert_eq!(signal_for("reload").unwrap(), Signal::SIGHUP);
        assert_eq!(signal_for("quit").unwrap(), Signal::SIGINT);
        assert!(signal_for("bogus").is_err());
    }

    #[test]
    fn pid_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.pid");
        std::fs::write(&f, "4321").unwrap();
        assert_eq!(resolve_pid(f.to_str().unwrap()).unwrap(), 4321);
        assert_eq!(resolve_pid("77").unwrap(), 77);
        std::fs::write(&f, "nope").unwrap();
        assert!(resolve_pid(f.to_str().unwrap()).is_err());
    }
}
