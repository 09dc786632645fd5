//! Subscription churn: matches start and end all evening, and with them
//! web users' subscriptions. A publisher sends 128-byte updates on
//! `sports.football.1` to a subscriber of `sports.football.*` as fast as
//! it can, once alone and once while [`CHURNERS`] connections subscribe
//! and unsubscribe [`TARGET_PAIRS`] times a second between them. The row
//! is the publisher's throughput with churn against without: what the
//! subscription index costs everyone else.
//!
//! Each phase publishes for a set time (`--churn-secs`), not a set count:
//! a fast server finished a million messages in 0.3 s, too short for the
//! churners to reach their pace and too noisy to judge a 10% goal, while
//! a server slowed to a tenth by churn would take minutes over a count
//! sized for the fast one.
//!
//! The churned subscriptions all go to `sports.football.hot`, a subject
//! that [`HELD`] other subscriptions already hold (spread over a few
//! connections): a server whose removal walked a subject's whole list
//! would pay for every one of them on each `UNSUB`.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::proc_stats;
use crate::scenarios::{publish_all, Outcome};
use crate::wire::{count_msgs, Conn};

/// Connections subscribing and unsubscribing.
pub const CHURNERS: usize = 8;
/// Subscribe/unsubscribe pairs per second, all churners together.
pub const TARGET_PAIRS: u64 = 100_000;
/// Subscriptions held on the churned subject throughout.
pub const HELD: u32 = 10_000;
/// Connections holding them.
pub const HOLDERS: usize = 10;
/// Pairs per write: the pace is kept per batch.
const BATCH: u64 = 250;
/// Messages per publish step; the subscriber counts in the same steps.
const CHUNK: u64 = 8_192;
const HOT: &str = "sports.football.hot";
const PUBLISHED: &str = "sports.football.1";

/// Run both phases, each publishing for `phase`.
pub fn run(addr: SocketAddr, phase: Duration, server_pid: Option<u32>) -> io::Result<Outcome> {
    let mut holders = Vec::with_capacity(HOLDERS);
    for h in 0..HOLDERS {
        let mut c = Conn::connect(addr, &format!("bench-churn-holder-{h}"))?;
        let each = HELD / HOLDERS as u32;
        let mut subs = Vec::with_capacity(each as usize * 32);
        for sid in 1..=each {
            subs.extend_from_slice(format!("SUB {HOT} {sid}\r\n").as_bytes());
        }
        c.writer.write_all(&subs)?;
        c.ping()?;
        holders.push(c);
    }
    let (alone, _) = publish_phase(addr, phase)?;
    let stop = Arc::new(AtomicBool::new(false));
    let pairs = Arc::new(AtomicU64::new(0));
    let mut churners = Vec::with_capacity(CHURNERS);
    for k in 0..CHURNERS {
        let c = Conn::connect(addr, &format!("bench-churner-{k}"))?;
        let (stop, pairs) = (stop.clone(), pairs.clone());
        churners.push(thread::spawn(move || churn(c, &stop, &pairs)));
    }
    let cpu0 = server_pid.and_then(proc_stats::proc_cpu);
    let pairs0 = pairs.load(Ordering::Relaxed);
    let (with_churn, elapsed) = publish_phase(addr, phase)?;
    let churned = pairs.load(Ordering::Relaxed) - pairs0;
    let server_cpu = match (cpu0, server_pid.and_then(proc_stats::proc_cpu)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    stop.store(true, Ordering::Relaxed);
    for h in churners {
        h.join()
            .map_err(|_| io::Error::other("churner panicked"))??;
    }
    drop(holders);
    Ok(Outcome {
        rate: Some(with_churn),
        server_cpu,
        notes: vec![
            ("msgs/s without churn", alone),
            ("kept under churn %", 100.0 * with_churn / alone),
            ("churn pairs/s", churned as f64 / elapsed.as_secs_f64()),
        ],
        elapsed,
        ..Default::default()
    })
}

/// One publisher, one wildcard subscriber, publishing for `phase`:
/// delivered messages per second from the first publish to the last
/// delivery, and that time.
fn publish_phase(addr: SocketAddr, phase: Duration) -> io::Result<(f64, Duration)> {
    let mut sub = Conn::connect(addr, "bench-churn-sub")?;
    sub.sub("sports.football.*", None, 1)?;
    sub.ping()?;
    // The count published, once the publisher knows it (0 until then):
    // set before the last chunk is written, so a reader that finished a
    // chunk while it is 0 knows another is coming.
    let total = Arc::new(AtomicU64::new(0));
    let reader = {
        let total = total.clone();
        thread::spawn(move || -> io::Result<()> {
            let mut got = 0;
            loop {
                got += count_msgs(&mut sub, CHUNK, |_| {})?;
                let t = total.load(Ordering::Acquire);
                if t != 0 && got >= t {
                    return Ok(());
                }
            }
        })
    };
    let mut publisher = Conn::connect(addr, "bench-churn-pub")?;
    let start = Instant::now();
    let mut sent = 0;
    loop {
        sent += CHUNK;
        let last = start.elapsed() >= phase;
        if last {
            total.store(sent, Ordering::Release);
        }
        publish_all(&mut publisher, PUBLISHED, 128, CHUNK)?;
        if last {
            break;
        }
    }
    reader
        .join()
        .map_err(|_| io::Error::other("subscriber panicked"))??;
    let elapsed = start.elapsed();
    Ok((sent as f64 / elapsed.as_secs_f64(), elapsed))
}

/// Subscribe and unsubscribe at this churner's share of the target pace
/// until told to stop; then a PING proves the server took every pair.
fn churn(mut c: Conn, stop: &AtomicBool, pairs: &AtomicU64) -> io::Result<()> {
    let per_sec = TARGET_PAIRS / CHURNERS as u64;
    let every = Duration::from_secs_f64(BATCH as f64 / per_sec as f64);
    let mut buf = Vec::with_capacity(BATCH as usize * 48);
    let mut sid: u64 = 1;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        buf.clear();
        for _ in 0..BATCH {
            buf.extend_from_slice(format!("SUB {HOT} {sid}\r\nUNSUB {sid}\r\n").as_bytes());
            sid += 1;
        }
        c.writer.write_all(&buf)?;
        pairs.fetch_add(BATCH, Ordering::Relaxed);
        next += every;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
    c.ping()
}
