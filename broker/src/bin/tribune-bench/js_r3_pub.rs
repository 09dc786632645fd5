//! `js-r3-pub`: acknowledged publishing into a stream with three replicas.
//!
//! The client connects to a node that does not lead the stream, so every
//! publish crosses a route to the leader and every ack crosses back (the
//! case for two clients in three; the leader's own clients save that
//! hop). It keeps [`crate::js::WINDOW`] publishes awaiting their ack, as
//! an async-publishing client does, and times each from its write to its
//! ack. The servers' CPU and peak memory are summed over the three nodes:
//! replication costs every replica, not just the leader.

use std::io;
use std::time::{Duration, Instant};

use crate::js::WINDOW;
use crate::js_cluster::{self, AckedPub, Answer};
use crate::scenarios::{percentiles, Outcome};
use crate::servers::Cluster;

const STREAM: &str = "BENCH_R3";
const SUBJECT: &str = "bench.r3.pub";
/// Acks to read before topping the window up again (one write per group).
const REFILL: u64 = 32;
/// A guard against a stalled cluster, not an expectation.
const ACK_DEADLINE: Duration = Duration::from_secs(30);
/// Answer time for the probe publishes before the measurement.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

pub fn run(cluster: &mut Cluster, msgs: u64) -> io::Result<Outcome> {
    if msgs == 0 {
        return Err(io::Error::other("js-r3-pub needs at least one message"));
    }
    js_cluster::create_stream(cluster, STREAM, SUBJECT)?;
    let leader = js_cluster::wait_for_leader(cluster, STREAM, true)?;
    let mut p = AckedPub::connect(cluster, js_cluster::follower(cluster, leader), SUBJECT)?;
    p.until_stored(PROBE_TIMEOUT)?;
    // Acks of the probes may still come; ids below `base` are not measured.
    let base = p.next_id();
    let pids = cluster.pids();
    let mut sent_at: Vec<Instant> = Vec::with_capacity(msgs as usize);
    let mut lat_us: Vec<f64> = Vec::with_capacity(msgs as usize);
    let cpu0 = js_cluster::cpu_of(&pids);
    let start = Instant::now();
    let top_up = |p: &mut AckedPub, sent_at: &mut Vec<Instant>, acked: u64| {
        let now = Instant::now();
        while (sent_at.len() as u64) < msgs && (sent_at.len() as u64) - acked < WINDOW {
            p.send();
            sent_at.push(now);
        }
        p.flush()
    };
    top_up(&mut p, &mut sent_at, 0)?;
    let mut acked = 0u64;
    while acked < msgs {
        let Some((id, answer)) = p.next(Instant::now() + ACK_DEADLINE)? else {
            return Err(io::Error::other(format!(
                "no ack for {ACK_DEADLINE:?} after {acked} of {msgs}"
            )));
        };
        if id < base {
            continue;
        }
        if answer != Answer::Stored {
            return Err(io::Error::other(format!(
                "publish {} of {msgs} not stored: {answer:?}",
                id - base
            )));
        }
        let t = sent_at
            .get((id - base) as usize)
            .ok_or_else(|| io::Error::other(format!("ack for publish {id} never sent")))?;
        lat_us.push(t.elapsed().as_nanos() as f64 / 1000.0);
        acked += 1;
        if acked.is_multiple_of(REFILL) {
            top_up(&mut p, &mut sent_at, acked)?;
        }
    }
    let elapsed = start.elapsed();
    let cpu = js_cluster::cpu_of(&pids) - cpu0;
    let peak: u64 = pids
        .iter()
        .filter_map(|&pid| crate::proc_stats::proc_peak_rss(pid))
        .sum();
    let (p50, p99, p999, max) = percentiles(&mut lat_us);
    Ok(Outcome {
        rate: Some(msgs as f64 / elapsed.as_secs_f64()),
        latency_us: Some((p50, p99, p999)),
        latency_max_us: Some(max),
        server_cpu: Some(cpu),
        rss: Some(peak),
        elapsed,
        ..Default::default()
    })
}
