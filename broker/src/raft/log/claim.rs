//! One store per directory in this process: two stores on one directory
//! would interleave their writes, so `open` waits for an earlier one (whose
//! writer may still be finishing) to be gone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The directories open in this process.
static OPEN_DIRS: parking_lot::Mutex<BTreeSet<PathBuf>> = parking_lot::Mutex::new(BTreeSet::new());

/// This process's claim on a log directory, released on drop.
pub(super) struct Claim(PathBuf);

impl Claim {
    /// Claims `dir`, waiting up to `wait` for an earlier claim to go.
    pub fn take(dir: &Path, wait: Duration) -> anyhow::Result<Claim> {
        let deadline = Instant::now() + wait;
        loop {
            if OPEN_DIRS.lock().insert(dir.to_path_buf()) {
                return Ok(Claim(dir.to_path_buf()));
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the Raft log in {} is already open in this process",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        OPEN_DIRS.lock().remove(&self.0);
    }
}
