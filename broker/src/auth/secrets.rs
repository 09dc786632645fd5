//! Checking a presented secret (password, token, route password) against
//! the configured one, without blocking the async runtime.
//!
//! bcrypt is slow by design: tens of milliseconds of CPU per check at the
//! usual costs. Run on a tokio worker, a flood of `CONNECT`s with wrong
//! passwords from clients that never authenticate would occupy every worker
//! and stall authenticated traffic, route pings and auth callouts with it.
//! So bcrypt checks run on tokio's blocking pool, at most a fixed number at
//! a time (half the cores, at least one), in arrival order. The runtime's
//! workers only ever wait for a permit, which costs nothing.
//!
//! The pool is shared fairly between client addresses: at most
//! [`PER_SOURCE`] checks from one address wait or run at a time, and a
//! login past that is told to come back ([`Check::Busy`]) without costing
//! anything. A flood from one address then holds a few places in the
//! queue, not all of them, and logins from elsewhere keep getting through
//! within their auth timeout. (A plain first-come queue fails everyone once
//! the flood outruns the pool: every login waits longer than its timeout.)
//!
//! Plain-text secrets are compared in constant time, so the response time
//! does not tell how much of a guess was right.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Semaphore;

/// bcrypt checks one client address may have waiting or running at once.
pub const PER_SOURCE: usize = 4;

/// How checking a secret ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Match,
    Mismatch,
    /// Not checked: this address already has [`PER_SOURCE`] checks pending.
    Busy,
}

impl Check {
    pub fn is_match(self) -> bool {
        self == Check::Match
    }

    fn of(ok: bool) -> Check {
        if ok {
            Check::Match
        } else {
            Check::Mismatch
        }
    }
}

/// bcrypt checks waiting or running, by client address.
type Pending = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Verifies secrets, bcrypt ones on a bounded blocking pool.
#[derive(Debug, Clone)]
pub struct SecretChecker {
    permits: Arc<Semaphore>,
    pending: Pending,
}

impl Default for SecretChecker {
    fn default() -> Self {
        Self::for_this_machine()
    }
}

impl SecretChecker {
    /// At most `limit` bcrypt checks run at once (at least one).
    pub fn new(limit: usize) -> Self {
        SecretChecker {
            permits: Arc::new(Semaphore::new(limit.max(1))),
            pending: Arc::default(),
        }
    }

    /// Half the cores: the other half keeps serving connections while an
    /// authentication flood is being refused.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cores / 2)
    }

    /// Does `given` match the configured `want`? A bcrypt hash (`$2a$`,
    /// `$2b$`, `$2x$`, `$2y$`) is verified with bcrypt, as nats-server does
    /// for passwords, tokens and route passwords, unless `source` already
    /// has its share of checks pending; anything else is compared in
    /// constant time.
    pub async fn check(&self, source: Option<IpAddr>, given: &str, want: &str) -> Check {
        if is_bcrypt(want) {
            self.bcrypt(source, given, want).await
        } else {
            Check::of(constant_time_eq(given.as_bytes(), want.as_bytes()))
        }
    }

    /// Spend what a bcrypt check of `hash` costs, whatever `given` is: used
    /// for unknown user names, so timing does not tell which names exist.
    pub async fn waste(&self, source: Option<IpAddr>, given: &str, hash: &str) -> Check {
        match self.bcrypt(source, given, hash).await {
            Check::Busy => Check::Busy,
            _ => Check::Mismatch,
        }
    }

    async fn bcrypt(&self, source: Option<IpAddr>, given: &str, hash: &str) -> Check {
        let Some(place) = self.reserve(source) else {
            return Check::Busy;
        };
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return Check::Mismatch;
        };
        let (given, hash) = (given.to_owned(), hash.to_owned());
        // The permit and the place move into the blocking task: if the
        // connection goes away while the check runs, the check still counts
        // against both bounds until it ends.
        tokio::task::spawn_blocking(move || {
            let _held = (permit, place);
            Check::of(bcrypt::verify(given, &hash).unwrap_or(false))
        })
        .await
        .unwrap_or(Check::Mismatch)
    }

    /// A place in the queue for `source`, unless it has its share already.
    fn reserve(&self, source: Option<IpAddr>) -> Option<Place> {
        let Some(ip) = source else {
            return Some(Place(None));
        };
        let mut pending = self.pending.lock();
        let n = pending.entry(ip).or_insert(0);
        if *n >= PER_SOURCE {
            return None;
        }
        *n += 1;
        Some(Place(Some((self.pending.clone(), ip))))
    }

    /// bcrypt checks `source` has waiting or running.
    pub fn pending_from(&self, source: IpAddr) -> usize {
        self.pending.lock().get(&source).copied().unwrap_or(0)
    }
}

/// One pending check's place in its address's share; given back on drop.
struct Place(Option<(Pending, IpAddr)>);

impl Drop for Place {
    fn drop(&mut self) {
        let Some((pending, ip)) = &self.0 else {
            return;
        };
        let mut pending = pending.lock();
        if let Some(n) = pending.get_mut(ip) {
            *n -= 1;
            if *n == 0 {
                pending.remove(ip);
            }
        }
    }
}

/// nats-server's test for a bcrypt hash: `$2a$`, `$2b$`, `$2x$` or `$2y$`
/// followed by a two-digit cost.
pub fn is_bcrypt(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 7
        && b.starts_with(b"$2")
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
}

/// Compare two secrets without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_and_bcrypt_secrets() {
        let c = SecretChecker::new(1);
        let ok = |given: &'static str, want: String| {
            let c = c.clone();
            async move { c.check(None, given, &want).await }
        };
        assert_eq!(ok("s3cret", "s3cret".into()).await, Check::Match);
        assert_eq!(ok("s3cre", "s3cret".into()).await, Check::Mismatch);
        assert_eq!(ok("", "s3cret".into()).await, Check::Mismatch);
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        assert_eq!(ok("s3cret", hash.clone()).await, Check::Match);
        assert_eq!(ok("wrong", hash.clone()).await, Check::Mismatch);
        // The hash itself is not the credential.
        assert_eq!(c.check(None, &hash, &hash).await, Check::Mismatch);
    }

    /// One address holds at most its share of the queue; the next login
    /// from it is turned away at once, and others still get in line.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_address_holds_at_most_its_share() {
        let c = SecretChecker::new(1);
        let hash = bcrypt::hash("pw", 8).unwrap();
        let flood: IpAddr = "10.0.0.1".parse().unwrap();
        // The test holds the only permit, so the flood's checks all wait in
        // line and none can finish (and give its place back) before the
        // share is full: without it, a slow machine could finish the first
        // check before the last one queued, and the wait below never ends.
        let gate = c.permits.clone().acquire_owned().await.unwrap();
        let held: Vec<_> = (0..PER_SOURCE)
            .map(|_| {
                let (c, h) = (c.clone(), hash.clone());
                tokio::spawn(async move { c.check(Some(flood), "nope", &h).await })
            })
            .collect();
        while c.pending_from(flood) < PER_SOURCE {
            tokio::task::yield_now().await;
        }
        assert_eq!(c.check(Some(flood), "pw", &hash).await, Check::Busy);
        assert_eq!(
            c.check(Some(flood), "pw", "pw").await,
            Check::Match,
            "plain secrets cost nothing"
        );
        drop(gate);
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(c.check(Some(other), "pw", &hash).await, Check::Match);
        for h in held {
            assert_eq!(h.await.unwrap(), Check::Mismatch);
        }
        assert_eq!(c.pending_from(flood), 0, "places given back");
        assert_eq!(c.check(Some(flood), "pw", &hash).await, Check::Match);
    }

    #[test]
    fn bcrypt_prefixes() {
        assert!(is_bcrypt("$2a$11$abcdefghijklmnopqrstuv"));
        assert!(is_bcrypt("$2y$04$x"));
        assert!(!is_bcrypt("$2c$11$abc"));
        assert!(!is_bcrypt("$2a$1x$abc"));
        assert!(!is_bcrypt("plain"));
    }

    #[test]
    fn ct_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    /// The bound holds: with one permit, a second check waits for the
    /// first, and the runtime's worker is never the one running bcrypt.
    #[tokio::test(flavor = "current_thread")]
    async fn checks_leave_the_runtime_free() {
        let c = SecretChecker::new(1);
        let hash = bcrypt::hash("pw", 8).unwrap();
        let flood: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                let h = hash.clone();
                tokio::spawn(async move { c.check(None, "nope", &h).await })
            })
            .collect();
        // On a current-thread runtime, this timer fires while the checks
        // are still running: they are not on this thread.
        let mut ticks = 0;
        while flood.iter().any(|f| !f.is_finished()) {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            ticks += 1;
        }
        assert!(ticks > 1, "the runtime kept running during the checks");
        for f in flood {
            assert_eq!(f.await.unwrap(), Check::Mismatch);
        }
    }
}
