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
//! Plain-text secrets are compared in constant time, so the response time
//! does not tell how much of a guess was right.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Verifies secrets, bcrypt ones on a bounded blocking pool.
#[derive(Debug, Clone)]
pub struct SecretChecker {
    permits: Arc<Semaphore>,
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
    /// for passwords, tokens and route passwords; anything else is compared
    /// in constant time.
    pub async fn matches(&self, given: &str, want: &str) -> bool {
        if is_bcrypt(want) {
            self.bcrypt(given, want).await
        } else {
            constant_time_eq(given.as_bytes(), want.as_bytes())
        }
    }

    /// Spend what a bcrypt check of `hash` costs, whatever `given` is: used
    /// for unknown user names, so timing does not tell which names exist.
    pub async fn waste(&self, given: &str, hash: &str) {
        let _ = self.bcrypt(given, hash).await;
    }

    async fn bcrypt(&self, given: &str, hash: &str) -> bool {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return false;
        };
        let (given, hash) = (given.to_owned(), hash.to_owned());
        // The permit moves into the blocking task: if the connection goes
        // away while the check runs, the check still counts against the
        // bound until it ends.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            bcrypt::verify(given, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false)
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
        assert!(c.matches("s3cret", "s3cret").await);
        assert!(!c.matches("s3cre", "s3cret").await);
        assert!(!c.matches("", "s3cret").await);
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        assert!(c.matches("s3cret", &hash).await);
        assert!(!c.matches("wrong", &hash).await);
        // The hash itself is not the credential.
        assert!(!c.matches(&hash, &hash).await);
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
                tokio::spawn(async move { c.matches("nope", &h).await })
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
            assert!(!f.await.unwrap());
        }
    }
}
