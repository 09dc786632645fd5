//! Core NATS across a 3-node cluster: the publisher on the first node,
//! every subscriber on the other two, so each message crosses a route.
//!
//! - `cluster-fanout`: [`FANOUT_SUBS`] plain subscribers, half on each of
//!   the other nodes: every message goes down both routes.
//! - `cluster-queue`: a queue group of [`QUEUE_MEMBERS`], half on each of
//!   the other nodes (none on the publisher's, which would take every
//!   message locally): each message goes to one member over one route.
//!
//! Before the clock starts, a probe subscription made on each subscribers'
//! node after all of that node's subscriptions must receive a probe from
//! the publisher's node: routes forward interest in order, so the probe's
//! arrival means every subscription is known where the publisher is.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::proc_stats;
use crate::scenarios::{publish_all, Outcome};
use crate::wire::{count_msgs, pub_batch, Conn};

/// Subscribers of the cluster fan-out.
pub const FANOUT_SUBS: usize = 10;
/// Members of the queue group spread over the cluster.
pub const QUEUE_MEMBERS: usize = 4;
const SUBJECT: &str = "bench.cluster";
/// A guard against a cluster that never routes; not an expectation.
const DEADLINE: Duration = Duration::from_secs(120);

/// Publisher on `nodes[0]`, subscribers (a queue group if `queue`) on the
/// rest in turn; `pids` are the nodes' processes (CPU summed).
pub fn run(nodes: &[SocketAddr], queue: bool, msgs: u64, pids: &[u32]) -> io::Result<Outcome> {
    let (publisher_node, others) = nodes
        .split_first()
        .filter(|(_, rest)| !rest.is_empty())
        .ok_or_else(|| io::Error::other("a cluster row needs at least two nodes"))?;
    let subs = if queue { QUEUE_MEMBERS } else { FANOUT_SUBS };
    let group = queue.then_some("bench-workers");
    let mut conns = Vec::with_capacity(subs);
    for i in 0..subs {
        let mut c = Conn::connect(others[i % others.len()], &format!("bench-sub-{i}"))?;
        c.sub(SUBJECT, group, 1)?;
        c.ping()?;
        conns.push(c);
    }
    let mut publisher = Conn::connect(*publisher_node, "bench-pub")?;
    for (k, node) in others.iter().enumerate() {
        wait_for_interest(&mut publisher, *node, k)?;
    }
    let total = Arc::new(AtomicU64::new(0));
    let expected = if queue { msgs } else { msgs * subs as u64 };
    let ready = Arc::new(Barrier::new(subs + 1));
    let mut shutdowns = Vec::with_capacity(subs);
    let mut handles = Vec::with_capacity(subs);
    for mut c in conns {
        shutdowns.push(c.writer.try_clone()?);
        let (total, ready) = (total.clone(), ready.clone());
        let want = if queue { u64::MAX } else { msgs };
        handles.push(thread::spawn(move || {
            ready.wait();
            count_msgs(&mut c, want, |_| {
                total.fetch_add(1, Ordering::Relaxed);
            })
        }));
    }
    ready.wait();
    let cpu0 = proc_stats::cpu_sum(pids);
    let start = Instant::now();
    publish_all(&mut publisher, SUBJECT, 128, msgs)?;
    if queue {
        // Members do not know their share: watch the shared count.
        let end = Instant::now() + DEADLINE;
        while total.load(Ordering::Relaxed) < expected {
            if Instant::now() > end {
                return Err(io::Error::other(format!(
                    "the queue group got {} of {expected}",
                    total.load(Ordering::Relaxed)
                )));
            }
            thread::sleep(Duration::from_micros(200));
        }
    } else {
        // Each subscriber ends with all its messages (or its error).
        for h in handles.drain(..) {
            h.join()
                .map_err(|_| io::Error::other("subscriber panicked"))??;
        }
    }
    let elapsed = start.elapsed();
    let server_cpu = proc_stats::cpu_since(cpu0, pids);
    for s in &shutdowns {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    for h in handles {
        // Queue members end on the shutdown; their errors say nothing.
        let _ = h.join();
    }
    Ok(Outcome {
        rate: Some(expected as f64 / elapsed.as_secs_f64()),
        cpu_per_million: server_cpu.map(|c| c / (expected as f64 / 1e6)),
        server_cpu,
        elapsed,
        ..Default::default()
    })
}

/// Subscribe a probe on `node` (after that node's subscribers) and publish
/// probes from the publisher's node until one arrives: every subscription
/// made on `node` before is then known where the publisher is.
pub(crate) fn wait_for_interest(
    publisher: &mut Conn,
    node: SocketAddr,
    k: usize,
) -> io::Result<()> {
    let subject = format!("bench.cluster.probe.{k}");
    let mut probe = Conn::connect(node, "bench-probe")?;
    probe.sub(&subject, None, 1)?;
    probe.ping()?;
    probe
        .reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(100)))?;
    let frame = pub_batch(&subject, None, b"p", 1);
    let end = Instant::now() + DEADLINE;
    loop {
        publisher.writer.write_all(&frame)?;
        match count_msgs(&mut probe, 1, |_| {}) {
            Ok(_) => return publisher.ping(),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) && Instant::now() < end => {}
            Err(e) => {
                return Err(io::Error::other(format!(
                    "interest on {node} never reached the publisher's node: {e}"
                )))
            }
        }
    }
}
