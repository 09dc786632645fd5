//! Worker processes of the bench: the same binary started with a hidden
//! subcommand, spoken to in lines over its stdin and stdout.
//!
//! A load generator in one process is limited by that process: one core
//! for a single-threaded runtime, and the open-files limit (per process)
//! for its sockets. The storm and the largest fan-outs therefore spread
//! their clients over workers. A worker says what it did on stdout, one
//! line per step (some steps follow with bytes of a known length), and
//! exits when its stdin closes.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// One worker's part of a fleet of clients numbered from 0: clients
/// `first..first + count`, client `i` on `nodes[i % nodes.len()]`. The
/// same arguments on every worker subcommand.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct Share {
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<SocketAddr>,
    #[arg(long)]
    pub first: u64,
    #[arg(long)]
    pub count: u64,
}

impl Share {
    /// `n` clients over at most `workers` shares of equal size (the last
    /// one smaller), none empty.
    pub fn split(nodes: &[SocketAddr], n: u64, workers: u64) -> Vec<Share> {
        let per = n.div_ceil(workers.max(1));
        (0..workers.max(1))
            .map(|w| w * per)
            .filter(|&first| first < n)
            .map(|first| Share {
                nodes: nodes.to_vec(),
                first,
                count: per.min(n - first),
            })
            .collect()
    }

    /// `subcommand` with this share's arguments, for [`Worker::spawn`].
    pub fn args(&self, subcommand: &str) -> Vec<String> {
        let list: Vec<String> = self.nodes.iter().map(SocketAddr::to_string).collect();
        vec![
            subcommand.to_string(),
            "--nodes".into(),
            list.join(","),
            "--first".into(),
            self.first.to_string(),
            "--count".into(),
            self.count.to_string(),
        ]
    }
}

/// A worker process and its pipes; killed on drop if still there.
pub struct Worker {
    what: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    /// Start `tribune-bench <args>` with `env` added to its environment
    /// (for secrets, which no command line should show). `what` names it
    /// in errors.
    pub fn spawn(what: &'static str, args: &[String], env: &[(&str, &str)]) -> io::Result<Worker> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::other(format!("starting a {what}: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(io::Error::other(format!("a {what} without pipes")));
        };
        Ok(Worker {
            what,
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
        })
    }

    /// Send one line.
    pub fn say(&mut self, line: &str) -> io::Result<()> {
        let what = self.what;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other(format!("{what}'s stdin closed")))?;
        writeln!(stdin, "{line}")?;
        stdin.flush()
    }

    /// The worker's next line; its end (it failed, and said why on
    /// stderr) is an error.
    pub fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            let status = self.child.wait()?;
            return Err(io::Error::other(format!(
                "a {} ended early ({status}); its error is above",
                self.what
            )));
        }
        Ok(line.trim_end().to_string())
    }

    /// The next line, which must be `want`.
    pub fn expect_line(&mut self, want: &str) -> io::Result<()> {
        let got = self.line()?;
        if got == want {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "a {} said {got:?}, not {want:?}",
                self.what
            )))
        }
    }

    /// The next line, as JSON.
    pub fn json(&mut self) -> io::Result<serde_json::Value> {
        let line = self.line()?;
        serde_json::from_str(&line)
            .map_err(|e| io::Error::other(format!("{} report {line:?}: {e}", self.what)))
    }

    /// Exactly `buf.len()` bytes the worker wrote after a line.
    pub fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.stdout.read_exact(buf)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // A worker told to stop exits at once; one stuck is killed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The worker's side: print one line and flush it (the parent waits for
/// it).
pub fn tell(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// The worker's side: the parent's next line, `None` once its stdin
/// closed.
pub fn hear() -> io::Result<Option<String>> {
    let mut line = String::new();
    if io::stdin().lock().read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end().to_string()))
}

/// The worker's side: wait until the parent closes stdin (holding
/// whatever the caller keeps alive meanwhile).
pub fn until_closed() -> io::Result<()> {
    while hear()?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_client_once() {
        let nodes: Vec<SocketAddr> = vec!["127.0.0.1:4222".parse().unwrap()];
        let counts = |n, w| -> Vec<(u64, u64)> {
            Share::split(&nodes, n, w)
                .iter()
                .map(|s| (s.first, s.count))
                .collect()
        };
        assert_eq!(counts(20, 3), [(0, 7), (7, 7), (14, 6)]);
        assert_eq!(
            counts(50_000, 4),
            [
                (0, 12_500),
                (12_500, 12_500),
                (25_000, 12_500),
                (37_500, 12_500)
            ]
        );
        // More workers than clients: no empty share.
        assert_eq!(counts(2, 4), [(0, 1), (1, 1)]);
        let args = Share::split(&nodes, 10, 2)[1].args("x-worker");
        assert_eq!(
            args,
            [
                "x-worker",
                "--nodes",
                "127.0.0.1:4222",
                "--first",
                "5",
                "--count",
                "5"
            ]
        );
    }
}
