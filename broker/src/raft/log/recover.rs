//! Opening a log directory: the state files, then every segment in order.
//!
//! A crash can only damage the end of the newest segment that holds data
//! (the writer fsyncs a segment before writing to the next one), plus leave
//! an empty segment just created after it, or one holding only the zeros
//! the writer puts ahead of its records. So a damaged record there ends
//! the log and is cut away with a warning: it was never reported stored.
//! Damage anywhere else, a gap between segments or before the first one,
//! or an intact record holding the wrong index is not a crash artefact,
//! and opening fails rather than silently losing entries a quorum may
//! count on.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use openraft::{Entry, LogId, RaftTypeConfig, Vote};

use super::segment::{self, Segment};
use super::state::State;
use super::{meta, LogOptions};

pub(super) fn recover<C>(dir: &Path, log_dir: &Path, opts: &LogOptions) -> anyhow::Result<State<C>>
where
    C: RaftTypeConfig<NodeId = u64, Entry = Entry<C>>,
{
    meta::remove_leftovers(dir)?;
    let vote: Option<Vote<u64>> = meta::read(dir, meta::VOTE)?;
    let committed: Option<LogId<u64>> =
        meta::read::<Option<LogId<u64>>>(dir, meta::COMMITTED)?.flatten();
    let purged: Option<LogId<u64>> = meta::read(dir, meta::PURGED)?;

    let files = segment::list(log_dir)?;
    let mut segments: VecDeque<Segment> = VecDeque::new();
    let mut leaders = VecDeque::new();
    let mut removed = false;
    for (k, (first, path)) in files.iter().enumerate() {
        let later = &files[k + 1..];
        let scan = segment::scan(path, *first)?;
        // An empty segment is not checked: it may have been created for
        // the entry after a purge whose deletions had not run yet.
        if let (Some(prev), false) = (segments.back(), scan.offsets.is_empty()) {
            anyhow::ensure!(
                prev.next_index() == *first,
                "Raft log segments do not join up: {} ends before index {}, {} starts at {first}",
                prev.path.display(),
                prev.next_index(),
                path.display()
            );
        }
        let ends_here = scan.bad.is_some() || scan.offsets.is_empty();
        if ends_here {
            if let Some(with_data) = first_with_data(later)? {
                let at = match scan.bad {
                    Some((offset, bad)) => format!("a {bad} at offset {offset}"),
                    None => "no record".to_string(),
                };
                anyhow::bail!(
                    "Raft log segment {} has {at}, but the later segment {} holds data: refusing to open a damaged log",
                    path.display(),
                    with_data.display()
                );
            }
            if let Some((offset, bad)) = scan.bad {
                tracing::warn!(
                    path = %path.display(),
                    offset,
                    reason = %bad,
                    dropped_bytes = scan.file_len - offset,
                    "dropping the torn tail of the Raft log (a write cut short by a crash)"
                );
                segment::cut(&scan.file, scan.end)
                    .with_context(|| format!("truncating {}", path.display()))?;
            }
            let empty = scan.offsets.is_empty();
            if !empty {
                extend_leaders(&mut leaders, scan.leaders);
                segments.push_back(loaded(*first, path, scan.file, scan.offsets, scan.end));
            }
            let skip = usize::from(!empty);
            for (_, p) in files[k + skip..].iter() {
                tracing::warn!(path = %p.display(), "removing an empty Raft log segment left by a crash");
                remove(p)?;
                removed = true;
            }
            break;
        }
        extend_leaders(&mut leaders, scan.leaders);
        segments.push_back(loaded(*first, path, scan.file, scan.offsets, scan.end));
    }

    // Segments a purge had not deleted yet when the process stopped.
    if let Some(p) = purged {
        while let Some(s) = segments.pop_front() {
            if s.next_index() > p.index + 1 {
                segments.push_front(s);
                break;
            }
            tracing::debug!(path = %s.path.display(), "removing a purged Raft log segment");
            remove(&s.path)?;
            removed = true;
        }
        if segments.is_empty() {
            leaders.clear();
        }
        while leaders
            .get(1)
            .is_some_and(|(first, _)| *first <= p.index + 1)
        {
            leaders.pop_front();
        }
    }
    // The entries go on from the purged id (from index 0 if none): a log
    // that starts later lost its first segments, and openraft would look
    // for entries that are gone.
    let start = purged.map_or(0, |p| p.index + 1);
    if let Some(s) = segments.front() {
        anyhow::ensure!(
            s.first <= start,
            "Raft log segment {} starts at index {}, but the log starts at index {start}: entries are missing, refusing to open a damaged log",
            s.path.display(),
            s.first
        );
    }
    if removed {
        meta::sync_dir(log_dir).with_context(|| format!("syncing {}", log_dir.display()))?;
    }

    let mut state = State::new(segments, leaders, purged, opts.cache_bytes);
    state.vote = vote;
    state.committed = committed;
    let last = state.last_log_id();
    if committed.is_some_and(|c| Some(c.index) > last.map(|l| l.index)) {
        // Cannot happen if the disk keeps its promises (committed is
        // written after the entries); a lower committed id is always safe.
        tracing::warn!(dir = %dir.display(), ?committed, ?last, "the saved committed log id is past the log; ignoring it");
        state.committed = None;
    }
    Ok(state)
}

fn loaded(first: u64, path: &Path, file: fs::File, offsets: Vec<u32>, end: u64) -> Segment {
    Segment {
        first,
        path: path.to_path_buf(),
        file: std::sync::Arc::new(file),
        offsets,
        end,
    }
}

fn extend_leaders(
    leaders: &mut VecDeque<(u64, openraft::CommittedLeaderId<u64>)>,
    runs: Vec<(u64, openraft::CommittedLeaderId<u64>)>,
) {
    for (first, id) in runs {
        if leaders.back().is_none_or(|(_, l)| *l != id) {
            leaders.push_back((first, id));
        }
    }
}

/// The first of `files` that is not empty.
fn first_with_data(files: &[(u64, PathBuf)]) -> anyhow::Result<Option<&Path>> {
    for (_, p) in files {
        let len = fs::metadata(p)
            .with_context(|| format!("reading {}", p.display()))?
            .len();
        if len > 0 {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

fn remove(path: &Path) -> anyhow::Result<()> {
    fs::remove_file(path).with_context(|| format!("removing {}", path.display()))
}
