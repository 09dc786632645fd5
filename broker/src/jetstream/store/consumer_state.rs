//! Durable consumer state: delivered and ack-floor sequences, the pending
//! (delivered, unacknowledged) set and redelivery counts.
//!
//! Saved as JSON with a replace-by-rename: write `state.json.tmp`, fsync it,
//! rename over `state.json`, fsync the directory. A crash leaves either the
//! old or the new state, never a mix; a leftover temp file is ignored.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StoreError;

/// A consumer sequence and the stream sequence it corresponds to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencePair {
    pub consumer_seq: u64,
    pub stream_seq: u64,
}

/// One delivered, unacknowledged message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Consumer sequence of the (last) delivery.
    pub sequence: u64,
    /// Unix nanos of the (last) delivery.
    pub ts: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerState {
    pub delivered: SequencePair,
    pub ack_floor: SequencePair,
    /// By stream sequence.
    pub pending: BTreeMap<u64, Pending>,
    /// Stream sequence -> number of redeliveries.
    pub redelivered: BTreeMap<u64, u64>,
}

/// The state file of one consumer, in its own directory.
#[derive(Debug)]
pub struct ConsumerStateFile {
    dir: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
}

impl ConsumerStateFile {
    /// Uses (creating if needed) `dir` for this consumer's state.
    pub fn open(dir: &Path) -> Result<ConsumerStateFile, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create directory", dir, e))?;
        Ok(ConsumerStateFile {
            dir: dir.to_owned(),
            path: dir.join("state.json"),
            tmp: dir.join("state.json.tmp"),
        })
    }

    /// The directory holding this consumer's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Atomically and durably replaces the saved state.
    pub fn save(&self, state: &ConsumerState) -> Result<(), StoreError> {
        let buf = serde_json::to_vec(state).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            offset: 0,
            reason: format!("encoding consumer state: {e}"),
        })?;
        let mut f = File::create(&self.tmp).map_err(|e| StoreError::io("create", &self.tmp, e))?;
        f.write_all(&buf)
            .and_then(|_| f.sync_all())
            .map_err(|e| StoreError::io("write", &self.tmp, e))?;
        drop(f);
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|e| StoreError::io("rename consumer state", &self.path, e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io("fsync directory", &self.dir, e))
    }

    /// The saved state, or `None` if nothing was saved yet.
    pub fn load(&self) -> Result<Option<ConsumerState>, StoreError> {
        let buf = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("read consumer state", &self.path, e)),
        };
        serde_json::from_slice(&buf)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path: self.path.clone(),
                offset: e.column() as u64,
                reason: format!("decoding consumer state: {e}"),
            })
    }

    /// Removes the state and the consumer's directory.
    pub fn delete(self) -> Result<(), StoreError> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove consumer directory", &self.dir, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ConsumerState {
        let mut s = ConsumerState {
            delivered: SequencePair {
                consumer_seq: 10,
                stream_seq: 20,
            },
            ack_floor: SequencePair {
                consumer_seq: 7,
                stream_seq: 15,
            },
            ..Default::default()
        };
        s.pending.insert(
            18,
            Pending {
                sequence: 9,
                ts: 1_700_000_000_000_000_000,
            },
        );
        s.redelivered.insert(18, 2);
        s
    }

    #[test]
    fn save_load_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cdir = dir.path().join("c1");
        let f = ConsumerStateFile::open(&cdir).expect("open");
        assert_eq!(f.load().expect("load"), None);
        f.save(&sample()).expect("save");
        let mut s2 = sample();
        s2.delivered.stream_seq = 21;
        f.save(&s2).expect("save again");
        let again = ConsumerStateFile::open(&cdir).expect("reopen");
        assert_eq!(again.load().expect("load"), Some(s2));
        assert!(!cdir.join("state.json.tmp").exists());
        again.delete().expect("delete");
        assert!(!cdir.exists());
    }

    #[test]
    fn leftover_temp_file_is_ignored_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = ConsumerStateFile::open(dir.path()).expect("open");
        f.save(&sample()).expect("save");
        std::fs::write(dir.path().join("state.json.tmp"), b"{\"half").expect("write");
        assert_eq!(f.load().expect("load"), Some(sample()));
        std::fs::write(dir.path().join("state.json"), b"not json").expect("write");
        assert!(matches!(f.load(), Err(StoreError::Corrupt { .. })));
    }
}
