//! The small state files beside the segments (vote, committed log id, last
//! purged log id), each one framed record, replaced atomically: written to a
//! temporary file, fsynced, renamed over the old one, and the directory
//! fsynced, so a crash leaves either the old value or the new one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::record;

/// The vote file's name.
pub(super) const VOTE: &str = "vote";
/// The committed log id file's name.
pub(super) const COMMITTED: &str = "committed";
/// The last purged log id file's name.
pub(super) const PURGED: &str = "purged";

const TMP_SUFFIX: &str = ".tmp";

/// Replaces `dir/name` with `value`, durably.
pub(super) fn write<T: Serialize>(dir: &Path, name: &str, value: &T) -> io::Result<()> {
    let mut buf = Vec::with_capacity(64);
    record::encode(&mut buf, value).map_err(|e| io::Error::other(format!("{e:#}")))?;
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let mut f = File::create(&tmp)?;
    f.write_all(&buf)?;
    f.sync_data()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// The value in `dir/name`, or `None` if the file does not exist. A
/// damaged file is an error: it is only ever replaced by rename, so damage
/// is not a crash artefact.
pub(super) fn read<T: DeserializeOwned>(dir: &Path, name: &str) -> anyhow::Result<Option<T>> {
    let path = dir.join(name);
    let buf = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let (payload, len) = record::parse(&buf)
        .map_err(|bad| anyhow::anyhow!("{} is damaged: {bad}", path.display()))?;
    anyhow::ensure!(
        len == buf.len(),
        "{} has {} trailing bytes",
        path.display(),
        buf.len() - len
    );
    let v =
        postcard::from_bytes(payload).with_context(|| format!("decoding {}", path.display()))?;
    Ok(Some(v))
}

/// Removes temporary files a crash left behind mid-replacement.
pub(super) fn remove_leftovers(dir: &Path) -> anyhow::Result<()> {
    for name in [VOTE, COMMITTED, PURGED] {
        let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
        match fs::remove_file(&tmp) {
            Ok(()) => {
                tracing::debug!(path = %tmp.display(), "removed a half-written Raft state file")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", tmp.display())),
        }
    }
    Ok(())
}

/// Makes the directory's entries (created, renamed, removed files) durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_replace_and_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read::<u64>(dir.path(), VOTE).expect("read"), None);
        write(dir.path(), VOTE, &5u64).expect("write");
        write(dir.path(), VOTE, &6u64).expect("write");
        assert_eq!(read::<u64>(dir.path(), VOTE).expect("read"), Some(6));
        assert!(!dir.path().join("vote.tmp").exists());

        let path = dir.path().join(VOTE);
        let mut bytes = fs::read(&path).expect("read");
        bytes[record::HEADER] ^= 1;
        fs::write(&path, &bytes).expect("write");
        let err = read::<u64>(dir.path(), VOTE).expect_err("damaged");
        assert!(format!("{err:#}").contains("vote is damaged"), "{err:#}");

        fs::write(dir.path().join("purged.tmp"), b"x").expect("write");
        remove_leftovers(dir.path()).expect("cleanup");
        assert!(!dir.path().join("purged.tmp").exists());
    }
}
