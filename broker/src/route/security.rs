//! Limits on who can occupy the route port, and a warning when anyone can
//! join the cluster through it.
//!
//! A registered route is trusted with every account's interest and
//! messages, so the route port is guarded in three ways:
//!
//! * an accepted connection must send a valid `CONNECT` within the route
//!   auth timeout or is closed (see `conn.rs`);
//! * at most [`MAX_UNREGISTERED`] accepted connections may be between accept
//!   and registration at once; more are closed at accept ([`Admission`]);
//! * a route listener on a non-loopback address with neither route
//!   authorization nor route TLS (mutual in Tribune) is reported at start
//!   ([`warn_if_open`]).
//!
//! nats-server 2.15 has the first (only when the cluster block sets
//! authorization) and neither of the others: it accepts any number of
//! unregistered route connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::warn;

use crate::options::ClusterOptions;

/// Accepted route connections that may wait for registration at once.
///
/// A legitimate peer needs one connection for the time of a handshake (a
/// round trip after the TCP and TLS handshakes). When a whole cluster starts
/// together, each member dials every other at once and may dial again on
/// gossip, and a pooled nats-server peer opens its pool (3 by default) plus
/// a pinned system-account connection, which Tribune refuses after their
/// INFO. 64 covers a mixed cluster of more than a dozen members starting at
/// once, far larger than NATS clusters usually are. Each waiting connection
/// holds a file descriptor, two tasks and a 64 KiB read buffer: 64 of them
/// cost a few MiB, where an unbounded number, held open for the auth timeout
/// each, would let anyone who reaches the port use up file descriptors.
pub const MAX_UNREGISTERED: usize = 64;

/// Refusals are logged at most this often (with a count), so a flood does
/// not also flood the log.
const REFUSAL_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Counts accepted route connections that have not registered yet.
pub struct Admission {
    permits: Arc<Semaphore>,
    max: usize,
    refused: AtomicU64,
    last_report: Mutex<Option<Instant>>,
}

/// A place among the unregistered route connections; dropping it (on
/// registration or close) frees it.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(MAX_UNREGISTERED)
    }
}

impl Admission {
    pub fn new(max: usize) -> Self {
        Admission {
            permits: Arc::new(Semaphore::new(max)),
            max,
            refused: AtomicU64::new(0),
            last_report: Mutex::new(None),
        }
    }

    /// A slot for a connection just accepted from `from`, or `None` (and a
    /// log line, rate limited) when every slot is taken.
    pub fn admit(&self, from: SocketAddr) -> Option<Slot> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Some(Slot { _permit: permit }),
            Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                self.report_refusal(from);
                None
            }
        }
    }

    /// Connections holding a slot now.
    pub fn waiting(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    fn report_refusal(&self, from: SocketAddr) {
        let mut last = self.last_report.lock();
        if last.is_some_and(|t| t.elapsed() < REFUSAL_REPORT_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let n = self.refused.swap(0, Ordering::Relaxed);
        let max = self.max;
        if n > 1 {
            warn!(
                "{from} - Refusing route connection: {max} accepted route connections have not registered yet ({n} refused since the last report)"
            );
        } else {
            warn!(
                "{from} - Refusing route connection: {max} accepted route connections have not registered yet"
            );
        }
    }
}

/// Does a route listener bound to `bound` let anyone who reaches it join?
/// Route TLS counts: Tribune's route TLS always requires and verifies the
/// peer's certificate.
pub fn is_open(opts: &ClusterOptions, bound: SocketAddr) -> bool {
    !bound.ip().is_loopback() && opts.username.is_none() && opts.tls.is_none()
}

/// Warn at start when the route listener is reachable from other hosts and
/// takes any peer. Returns whether it warned.
pub fn warn_if_open(opts: &ClusterOptions, bound: SocketAddr) -> bool {
    let open = is_open(opts, bound);
    if open {
        warn!(
            "Route listener on {bound} has no authorization and no TLS: anyone who can reach it can join the cluster, receive every account's messages and inject their own; set cluster {{ authorization {{ user, password }} }} or cluster {{ tls {{ ... }} }}"
        );
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn slots_are_bounded_and_freed_on_drop() {
        let a = Admission::new(2);
        let from = addr("10.0.0.9:40000");
        let one = a.admit(from).expect("first");
        let two = a.admit(from).expect("second");
        assert_eq!(a.waiting(), 2);
        assert!(a.admit(from).is_none(), "third refused");
        assert!(a.admit(from).is_none(), "fourth refused");
        drop(one);
        assert_eq!(a.waiting(), 1);
        let three = a.admit(from).expect("a freed slot is reused");
        drop((two, three));
        assert_eq!(a.waiting(), 0);
    }

    #[test]
    fn open_means_reachable_without_auth_or_tls() {
        let none = ClusterOptions::default();
        assert!(is_open(&none, addr("0.0.0.0:6222")));
        assert!(is_open(&none, addr("10.1.2.3:6222")));
        assert!(is_open(&none, addr("[::]:6222")));
        assert!(!is_open(&none, addr("127.0.0.1:6222")));
        assert!(!is_open(&none, addr("127.0.0.3:6222")));
        assert!(!is_open(&none, addr("[::1]:6222")));
        let auth = ClusterOptions {
            username: Some("r".into()),
            password: Some("p".into()),
            ..Default::default()
        };
        assert!(!is_open(&auth, addr("0.0.0.0:6222")));
        let tls = ClusterOptions {
            tls: Some(crate::tls::TlsOptions::default()),
            ..Default::default()
        };
        assert!(!is_open(&tls, addr("0.0.0.0:6222")));
    }
}
