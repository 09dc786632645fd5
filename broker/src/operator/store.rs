//! The full resolver's directory: one `<account public key>.jwt` file per
//! account, as nats-server's directory store lays it out, so an operator
//! can move a directory between the two servers.
//!
//! The store knows files, not trust: the resolver above it verifies every
//! JWT before it gets here. Writes go to a temporary file that is synced
//! and renamed over the old one, so a crash leaves either JWT whole.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What `allow_delete` and `hard_delete` ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeleteMode {
    /// Deletes are refused (the default).
    #[default]
    Refuse,
    /// The file is renamed to `<key>.jwt.deleted`, as nats-server does.
    Rename,
    /// The file is removed.
    Remove,
}

const EXTENSION: &str = ".jwt";

/// Why a JWT was not stored.
#[derive(Debug)]
pub enum StoreError {
    /// `limit` accounts are stored already.
    Full,
    /// Deletes are not allowed by the configuration.
    DeleteRefused,
    Io(io::Error),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // nats-server's words.
            StoreError::Full => f.write_str("jwt store is full"),
            StoreError::DeleteRefused => f.write_str("store is not set up to for delete"),
            StoreError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::Io(e)
    }
}

/// The directory, with the SHA-256 of every JWT in it: their XOR is the
/// store's hash, which servers compare to know whether they hold the same
/// set without sending it.
#[derive(Debug)]
pub struct DirStore {
    dir: PathBuf,
    delete: DeleteMode,
    limit: usize,
    hashes: HashMap<String, [u8; 32]>,
}

impl DirStore {
    /// Open (creating) `dir` and read every JWT in it; `limit` 0 is none.
    /// Returns the store and the JWTs it holds, by account key.
    pub fn open(
        dir: &Path,
        delete: DeleteMode,
        limit: usize,
    ) -> io::Result<(DirStore, Vec<(String, String)>)> {
        fs::create_dir_all(dir)?;
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(key) = name.to_str().and_then(|n| n.strip_suffix(EXTENSION)) else {
                continue;
            };
            if !entry.file_type()?.is_file() {
                continue;
            }
            // One unreadable file costs its account, not the server.
            match fs::read_to_string(entry.path()) {
                Ok(text) => found.push((key.to_string(), text.trim().to_string())),
                Err(e) => {
                    tracing::warn!("Account JWT file {} not read: {e}", entry.path().display())
                }
            }
        }
        let mut store = DirStore {
            dir: dir.to_path_buf(),
            delete,
            limit: if limit == 0 { usize::MAX } else { limit },
            hashes: HashMap::new(),
        };
        for (key, jwt) in &found {
            store.hashes.insert(key.clone(), digest(jwt));
        }
        Ok((store, found))
    }

    /// Leave a file's JWT out of the hash, the keys and the limit (it did
    /// not verify); the file stays.
    pub fn forget(&mut self, key: &str) {
        self.hashes.remove(key);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Store `jwt` for `key`. `Ok(false)` when the same JWT is there
    /// already.
    pub fn save(&mut self, key: &str, jwt: &str) -> Result<bool, StoreError> {
        let hash = digest(jwt);
        match self.hashes.get(key) {
            Some(old) if *old == hash => return Ok(false),
            None if self.hashes.len() >= self.limit => return Err(StoreError::Full),
            _ => {}
        }
        let path = self.path(key);
        let tmp = self.dir.join(format!(".{key}{EXTENSION}.tmp"));
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(jwt.as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        if let Ok(d) = fs::File::open(&self.dir) {
            // The rename is durable once the directory is synced.
            let _ = d.sync_all();
        }
        self.hashes.insert(key.to_string(), hash);
        Ok(true)
    }

    /// Delete `key`'s JWT as configured. `Ok(false)` when there was none.
    pub fn delete(&mut self, key: &str) -> Result<bool, StoreError> {
        let path = self.path(key);
        let done = match self.delete {
            DeleteMode::Refuse => return Err(StoreError::DeleteRefused),
            DeleteMode::Rename => fs::rename(&path, path.with_extension("jwt.deleted")),
            DeleteMode::Remove => fs::remove_file(&path),
        };
        match done {
            Ok(()) => Ok(self.hashes.remove(key).is_some()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(self.hashes.remove(key).is_some()),
            Err(e) => Err(e.into()),
        }
    }

    /// The stored accounts' keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.hashes.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// The XOR of every stored JWT's SHA-256 (all zeros when empty).
    pub fn hash(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for h in self.hashes.values() {
            for (o, b) in out.iter_mut().zip(h) {
                *o ^= b;
            }
        }
        out
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}{EXTENSION}"))
    }
}

fn digest(jwt: &str) -> [u8; 32] {
    Sha256::digest(jwt.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_reopens_and_hashes_like_a_set() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, found) = DirStore::open(dir.path(), DeleteMode::Refuse, 0).unwrap();
        assert!(found.is_empty());
        assert_eq!(s.hash(), [0; 32]);
        assert!(s.save("AA", "one").unwrap());
        assert!(!s.save("AA", "one").unwrap(), "the same JWT is no change");
        assert!(s.save("BB", "two").unwrap());
        let h = s.hash();
        assert_eq!(s.keys(), ["AA", "BB"]);
        assert!(matches!(s.delete("AA"), Err(StoreError::DeleteRefused)));

        let (s2, mut found) = DirStore::open(dir.path(), DeleteMode::Refuse, 0).unwrap();
        found.sort();
        assert_eq!(
            found,
            [("AA".into(), "one".into()), ("BB".into(), "two".into())]
        );
        assert_eq!(s2.hash(), h, "order does not matter");
    }

    #[test]
    fn limit_refuses_new_accounts_but_not_updates() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = DirStore::open(dir.path(), DeleteMode::Refuse, 1).unwrap();
        s.save("AA", "one").unwrap();
        assert!(s.save("AA", "newer").unwrap());
        let e = s.save("BB", "two").unwrap_err();
        assert_eq!(e.to_string(), "jwt store is full");
    }

    #[test]
    fn deletes_rename_or_remove() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = DirStore::open(dir.path(), DeleteMode::Rename, 0).unwrap();
        s.save("AA", "one").unwrap();
        assert!(s.delete("AA").unwrap());
        assert!(dir.path().join("AA.jwt.deleted").exists());
        assert!(!s.delete("AA").unwrap());
        let (mut s, found) = DirStore::open(dir.path(), DeleteMode::Remove, 0).unwrap();
        assert!(found.is_empty(), "a renamed JWT is not read back");
        s.save("BB", "two").unwrap();
        assert!(s.delete("BB").unwrap());
        assert!(!dir.path().join("BB.jwt").exists());
    }
}
