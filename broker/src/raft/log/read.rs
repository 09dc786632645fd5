//! Reading entries back from segment files, for entries that have left the
//! cache (replication to a lagging follower, startup scans).

use std::os::unix::fs::FileExt;

use anyhow::Context;
use openraft::{Entry, RaftTypeConfig};

use super::record;
use super::state::FileRead;

/// Reads and decodes the records `reads` point at, checking each record's
/// checksum and index.
pub(super) fn entries<C>(reads: &[FileRead]) -> anyhow::Result<Vec<Entry<C>>>
where
    C: RaftTypeConfig<NodeId = u64, Entry = Entry<C>>,
{
    let count = reads.iter().map(|r| r.count as usize).sum();
    let mut out = Vec::with_capacity(count);
    let mut buf = Vec::new();
    for r in reads {
        let len = usize::try_from(r.len).context("read span too large")?;
        buf.resize(len, 0);
        r.file.read_exact_at(&mut buf, r.offset).with_context(|| {
            format!(
                "reading {} bytes at offset {} of {}",
                r.len,
                r.offset,
                r.path.display()
            )
        })?;
        let mut pos = 0usize;
        for k in 0..r.count {
            let at = r.offset + pos as u64;
            let (payload, n) = buf
                .get(pos..)
                .ok_or(record::Bad::Short)
                .and_then(record::parse)
                .map_err(|bad| anyhow::anyhow!("{bad} at offset {at} of {}", r.path.display()))?;
            let entry: Entry<C> = postcard::from_bytes(payload).with_context(|| {
                format!("decoding the record at offset {at} of {}", r.path.display())
            })?;
            anyhow::ensure!(
                entry.log_id.index == r.first + k,
                "the record at offset {at} of {} holds index {}, expected {}",
                r.path.display(),
                entry.log_id.index,
                r.first + k
            );
            out.push(entry);
            pos += n;
        }
    }
    Ok(out)
}
