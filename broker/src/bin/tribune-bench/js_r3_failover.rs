//! `js-r3-failover`: how long a stream with three replicas accepts no
//! publishes after its leader dies.
//!
//! A client on another node publishes at a steady pace, one publish
//! awaiting its ack at a time. Between two publishes (none outstanding)
//! the bench SIGKILLs the stream's leader (named by `STREAM.INFO`) and
//! starts the clock; the client goes on publishing, retrying a publish
//! that is not answered within [`ACK_TIMEOUT`] or is answered with no
//! responders (nobody holds the stream's subjects until a new leader
//! takes them), as a client with short timeouts would. The clock stops at
//! the first ack of a publish sent after the kill. The killed node is then
//! started again, and the next repetition waits until both other replicas
//! are current again before it kills the (possibly new) leader.
//!
//! The measured time is the election (detecting the dead leader and
//! voting) plus the new leader taking the subjects and the interest
//! crossing the routes, plus up to one retry interval of the client.

use std::io;
use std::time::{Duration, Instant};

use crate::js_cluster::{self, AckedPub, Answer};
use crate::scenarios::Outcome;
use crate::servers::Cluster;

const STREAM: &str = "BENCH_FAILOVER";
const SUBJECT: &str = "bench.r3.failover";
/// How long a publish may go unanswered before the client tries again.
pub const ACK_TIMEOUT: Duration = Duration::from_millis(250);
/// One publish per this interval at most: the steady rate (100/s), and the
/// pause before retrying a publish answered with no responders.
pub const PACE: Duration = Duration::from_millis(10);
/// Steady publishing before each kill.
const WARM: Duration = Duration::from_millis(500);
/// A guard against a cluster that never recovers, not an expectation.
const GIVE_UP: Duration = Duration::from_secs(60);

pub fn run(cluster: &mut Cluster, failovers: u64) -> io::Result<Outcome> {
    js_cluster::create_stream(cluster, STREAM, SUBJECT)?;
    let start = Instant::now();
    let mut samples_ms = Vec::with_capacity(failovers as usize);
    for _ in 0..failovers {
        let leader = js_cluster::wait_for_leader(cluster, STREAM, true)?;
        let mut p = AckedPub::connect(cluster, js_cluster::follower(cluster, leader), SUBJECT)?;
        p.until_stored(ACK_TIMEOUT)?;
        steady(&mut p, Instant::now() + WARM)?;
        let killed = Instant::now();
        cluster.kill(leader)?;
        let back = first_stored(&mut p, killed)?;
        samples_ms.push(back.as_secs_f64() * 1000.0);
        cluster.restart(leader)?;
    }
    Ok(Outcome {
        failover_ms: samples_ms,
        elapsed: start.elapsed(),
        ..Default::default()
    })
}

/// Publish at [`PACE`] until `until`, one publish at a time, each
/// awaited for up to [`ACK_TIMEOUT`] (the cluster is healthy now; a slow
/// fsync on a busy machine may still miss that, which is not an error).
fn steady(p: &mut AckedPub, until: Instant) -> io::Result<()> {
    while Instant::now() < until {
        let sent = Instant::now();
        let id = p.send();
        p.flush()?;
        while let Some((got, _)) = p.next(sent + ACK_TIMEOUT)? {
            if got == id {
                break;
            }
        }
        std::thread::sleep((sent + PACE).saturating_duration_since(Instant::now()));
    }
    Ok(())
}

/// Publish and retry until a publish sent after `killed` is stored; the
/// time from `killed` to that ack.
fn first_stored(p: &mut AckedPub, killed: Instant) -> io::Result<Duration> {
    let first = p.next_id();
    loop {
        if killed.elapsed() > GIVE_UP {
            return Err(io::Error::other(format!(
                "no publish stored within {GIVE_UP:?} of killing the leader"
            )));
        }
        let sent = Instant::now();
        let id = p.send();
        p.flush()?;
        // Wait for this publish's answer; an earlier retry's late ack
        // counts too, it was also sent after the kill.
        let retry_at = loop {
            match p.next(sent + ACK_TIMEOUT)? {
                Some((got, Answer::Stored)) if got >= first => return Ok(killed.elapsed()),
                Some((got, _)) if got == id => break sent + PACE,
                Some(_) => {}
                None => break Instant::now(),
            }
        };
        // Wait out the pace, still watching for a late ack.
        while let Some((got, answer)) = p.next(retry_at)? {
            if answer == Answer::Stored && got >= first {
                return Ok(killed.elapsed());
            }
        }
    }
}
