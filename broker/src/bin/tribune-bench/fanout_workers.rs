//! The subscribers of the largest fan-outs, in worker processes.
//!
//! One process may hold only so many sockets (the open-files limit is per
//! process: 20,000 on the machine these figures come from), and a
//! 50,000-subscriber fan-out needs 50,000. Past [`PER_PROCESS`]
//! subscribers, a fan-out's clients are spread over worker processes
//! (`tribune-bench fanout-worker`), each holding its share: client `i`
//! still connects to node `i % nodes` from its own loopback address, as in
//! one process. The conductor publishes; each worker says when all of its
//! clients have read an event, and at the end sends every client's stamps
//! (the kernel's receive times), from which the conductor computes the
//! same percentiles as for a fan-out held in one process.
//!
//! Protocol, one line each way unless said: the worker says `ready` once
//! its clients are subscribed, then `got <e>` as its clients have read
//! event `e` (the warm-up is 0). After `stamps` from the conductor, it
//! answers with a JSON line (`clients`, `per`, `cpu_s`: its CPU from the
//! warm-up's end to the last event, `cpu_total_s`: its CPU since it
//! started) and then `clients * per` stamps of
//! [`STAMP_LEN`] bytes, and holds its connections until its stdin closes.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::proc_stats;
use crate::workers::{self, Share, Worker};
use crate::ws_bench;
use crate::ws_conn::Transport;
use crate::ws_fleet::{self, Stamp, SETUP_DEADLINE};

/// Subscribers one process holds at most by default (with room under a
/// 20,000 open-files limit for the rest of the process). A larger
/// fan-out is split evenly over as few workers as hold it at this many
/// each at most.
pub const PER_PROCESS: u64 = 15_000;
/// Bytes per stamp on the pipe: kernel time (ns since the epoch, -1 for
/// none), whether it is the message's own (1 byte), read time (ns).
const STAMP_LEN: usize = 17;

/// Worker processes a fan-out to `n` subscribers needs when one process
/// holds at most `per_process` (0: it fits in this one).
pub fn workers_for(n: u64, per_process: u64) -> u64 {
    if n <= per_process {
        0
    } else {
        n.div_ceil(per_process.max(1))
    }
}

/// Open files the busiest process of a fan-out to `n` subscribers over
/// `nodes` servers needs: the process holding the subscribers (this one
/// or a worker), or a server with its share.
pub fn files_needed(n: u64, nodes: u64, per_process: u64) -> u64 {
    let bench = match workers_for(n, per_process) {
        0 => n + 1024,
        w => n.div_ceil(w) + 1024,
    };
    bench.max(n.div_ceil(nodes.max(1)) + 64)
}

/// A fan-out's subscribers in worker processes, all subscribed.
pub struct Remote {
    workers: Vec<Worker>,
}

impl Remote {
    /// Start the workers for `n` clients that stay for `msgs` messages
    /// each, at most `per_process` in each worker, and wait until every
    /// client is subscribed.
    pub fn spawn(
        nodes: &[SocketAddr],
        transport: Transport,
        n: u64,
        msgs: usize,
        per_process: u64,
    ) -> io::Result<Remote> {
        let mut workers = Vec::new();
        for share in Share::split(nodes, n, workers_for(n, per_process)) {
            let mut args = share.args("fanout-worker");
            args.extend(["--msgs".into(), msgs.to_string()]);
            if transport == Transport::WebSocket {
                args.push("--websocket".into());
            }
            workers.push(Worker::spawn("fan-out worker", &args, &[])?);
        }
        for w in &mut workers {
            w.expect_line("ready")?;
        }
        Ok(Remote { workers })
    }

    /// How many worker processes hold the clients.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Returns once every worker's clients have read event `e`.
    pub fn delivered(&mut self, e: usize) -> io::Result<()> {
        let want = format!("got {e}");
        self.workers
            .iter_mut()
            .try_for_each(|w| w.expect_line(&want))
    }

    /// Every client's stamps, and the workers' CPU seconds: over the
    /// measured events, and in all.
    pub fn stamps(&mut self) -> io::Result<(Vec<Vec<Stamp>>, WorkersCpu)> {
        let mut all = Vec::new();
        let mut cpu = WorkersCpu::default();
        for w in &mut self.workers {
            w.say("stamps")?;
            let head = w.json()?;
            let field = |k: &str| {
                head[k]
                    .as_u64()
                    .ok_or_else(|| io::Error::other(format!("fan-out worker report without {k}")))
            };
            let (clients, per) = (field("clients")?, field("per")? as usize);
            cpu.events += head["cpu_s"].as_f64().unwrap_or(0.0);
            cpu.total += head["cpu_total_s"].as_f64().unwrap_or(0.0);
            let mut buf = vec![0u8; per * STAMP_LEN];
            for _ in 0..clients {
                w.read_exact(&mut buf)?;
                all.push(buf.chunks_exact(STAMP_LEN).map(decode).collect());
            }
        }
        Ok((all, cpu))
    }
}

/// CPU seconds of a fan-out's worker processes, summed.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkersCpu {
    /// From the warm-up's end to the last event.
    pub events: f64,
    /// Since they started.
    pub total: f64,
}

/// A worker's part (`tribune-bench fanout-worker`; see the module doc).
pub fn worker(share: &Share, msgs: usize, transport: Transport) -> io::Result<()> {
    let (nodes, first, count) = (&share.nodes[..], share.first, share.count);
    if nodes.is_empty() || msgs == 0 {
        return Err(io::Error::other("fan-out worker: no nodes or no messages"));
    }
    crate::compare::raise_fd_limit(count);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let subject = |_| crate::ws_bench::FANOUT_SUBJECT.to_string();
    let (clients, cpu) = rt.block_on(async {
        let (fleet, mut tasks) = ws_fleet::spawn(nodes, transport, first, count, msgs, subject);
        let mut done = Vec::with_capacity(count as usize);
        let tasks = &mut tasks;
        ws_fleet::wait_for(
            &fleet.ready,
            count,
            tasks,
            &mut done,
            SETUP_DEADLINE,
            "subscribed",
        )
        .await?;
        workers::tell("ready")?;
        let mut cpu0 = proc_stats::self_cpu();
        for e in 0..msgs {
            // The conductor publishes the warm-up once every worker is
            // ready and a pause has passed, which may take as long as the
            // slowest worker's setup; later events come at once.
            let deadline = if e == 0 {
                SETUP_DEADLINE + ws_bench::SETTLE
            } else {
                ws_bench::DELIVERY_DEADLINE
            };
            let want = count * (e as u64 + 1);
            ws_fleet::wait_for(
                &fleet.delivered,
                want,
                tasks,
                &mut done,
                deadline,
                "delivered",
            )
            .await?;
            if e == 0 {
                cpu0 = proc_stats::self_cpu();
            }
            workers::tell(&format!("got {e}"))?;
        }
        let cpu = proc_stats::self_cpu() - cpu0;
        ws_fleet::join_all(tasks, &mut done).await?;
        Ok::<_, io::Error>((done, cpu))
    })?;
    if workers::hear()?.as_deref() != Some("stamps") {
        return Ok(());
    }
    let mut out = Vec::with_capacity(clients.len() * msgs * STAMP_LEN);
    for (_, stamps) in &clients {
        if stamps.len() != msgs {
            return Err(io::Error::other(format!(
                "fan-out worker: a client has {} stamps, not {msgs}",
                stamps.len()
            )));
        }
        for s in stamps {
            encode(s, &mut out);
        }
    }
    // The CPU after encoding, as a bench holding its clients in-process
    // counts its own computing of the figures (but not closing them).
    let head = serde_json::json!({
        "clients": clients.len(),
        "per": msgs,
        "cpu_s": cpu,
        "cpu_total_s": proc_stats::self_cpu(),
    });
    workers::tell(&head.to_string())?;
    {
        use std::io::Write;
        let mut stdout = io::stdout().lock();
        stdout.write_all(&out)?;
        stdout.flush()?;
    }
    // Hold the connections until the parent is done with the servers.
    workers::until_closed()?;
    drop(clients);
    Ok(())
}

fn nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64)
}

fn time(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
}

fn encode(s: &Stamp, out: &mut Vec<u8>) {
    out.extend_from_slice(&s.kernel.map_or(-1, nanos).to_le_bytes());
    out.push(u8::from(s.own));
    out.extend_from_slice(&nanos(s.read).to_le_bytes());
}

fn decode(b: &[u8]) -> Stamp {
    let int = |at: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[at..at + 8]);
        i64::from_le_bytes(x)
    };
    let kernel = int(0);
    Stamp {
        kernel: (kernel >= 0).then(|| time(kernel)),
        own: b[8] != 0,
        read: time(int(9)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_survive_the_pipe() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_765_000_000_123_456_789);
        let stamps = [
            Stamp {
                kernel: Some(t),
                own: true,
                read: t + Duration::from_micros(40),
            },
            Stamp {
                kernel: None,
                own: false,
                read: t,
            },
        ];
        let mut out = Vec::new();
        for s in &stamps {
            encode(s, &mut out);
        }
        assert_eq!(out.len(), 2 * STAMP_LEN);
        let back: Vec<Stamp> = out.chunks_exact(STAMP_LEN).map(decode).collect();
        assert_eq!(back[0].kernel, Some(t));
        assert!(back[0].own);
        assert_eq!(back[0].read, t + Duration::from_micros(40));
        assert_eq!(back[1].kernel, None);
        assert!(!back[1].own);
    }

    #[test]
    fn fifty_thousand_subscribers_fit_in_workers_but_not_one_server() {
        assert_eq!(workers_for(10_000, PER_PROCESS), 0);
        assert_eq!(workers_for(50_000, PER_PROCESS), 4);
        // Over 3 nodes: a node's 16,667 are the most in one process.
        assert_eq!(files_needed(50_000, 3, PER_PROCESS), 16_667 + 64);
        // On one node, the server holds all 50,000.
        assert_eq!(files_needed(50_000, 1, PER_PROCESS), 50_064);
        // In one process, as before.
        assert_eq!(files_needed(10_000, 1, PER_PROCESS), 11_024);
    }
}
