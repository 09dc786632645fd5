//! What the recovery targets (`filestore_recovery`, `raft_log_recovery`)
//! share: reading their input a field at a time, copying a directory's
//! files (what a crash leaves) and putting them back, and damaging them the
//! way a bad disk or a crash would.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The rest of an input, read a field at a time; `None` once it runs out.
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    pub fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
}

/// Every file under a directory, by path relative to it (sorted: the
/// targets' inputs pick files by their index in this order).
pub type Files = BTreeMap<PathBuf, Vec<u8>>;

/// The files under `dir`, subdirectories included. A file that goes while
/// the directory is listed (replaced by a rename) is left out.
///
/// # Panics
///
/// On any other I/O error: the targets' directories are their own.
pub fn snapshot(dir: &Path) -> Files {
    fn walk(root: &Path, dir: &Path, out: &mut Files) {
        let list = match std::fs::read_dir(dir) {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return,
            Err(e) => panic!("listing {}: {e}", dir.display()),
        };
        for e in list {
            let path = e.expect("list a directory").path();
            if path.is_dir() {
                walk(root, &path, out);
                continue;
            }
            match std::fs::read(&path) {
                Ok(data) => {
                    let rel = path.strip_prefix(root).expect("under the root");
                    out.insert(rel.to_path_buf(), data);
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => panic!("reading {}: {e}", path.display()),
            }
        }
    }
    let mut out = Files::new();
    walk(dir, dir, &mut out);
    out
}

/// Removes `dir` and everything under it; one that is not there is fine.
pub fn remove_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => panic!("removing {}: {e}", dir.display()),
    }
}

/// Makes `dir` hold exactly `files`.
pub fn restore(dir: &Path, files: &Files) {
    remove_dir(dir);
    std::fs::create_dir_all(dir).expect("create a directory");
    for (rel, data) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create a subdirectory");
        }
        std::fs::write(path, data).expect("write a file");
    }
}

/// Applies up to `max` damages to the files under `dir`, read from `inp`
/// until it runs out: each is a kind byte, a file byte, then the kind's
/// arguments (see [`damage_file`]). `kind_of` maps the kind byte to a
/// damage kind and the files it may hit; the file byte picks among those
/// (in [`Files`] order, modulo their number) that are still there. Returns
/// whether any file changed.
pub fn damage_files(
    dir: &Path,
    inp: &mut Input<'_>,
    max: usize,
    kind_of: impl Fn(u8) -> (u8, fn(&Path) -> bool),
) -> bool {
    let before = snapshot(dir);
    for _ in 0..max {
        let (Some(kind), Some(pick)) = (inp.byte(), inp.byte()) else {
            break;
        };
        let (kind, eligible) = kind_of(kind);
        // Files may have been deleted by an earlier damage.
        let names: Vec<&PathBuf> = before
            .keys()
            .filter(|p| eligible(p) && dir.join(p).exists())
            .collect();
        let path = (!names.is_empty()).then(|| dir.join(names[usize::from(pick) % names.len()]));
        if damage_file(kind, path.as_deref(), inp).is_none() {
            break;
        }
    }
    snapshot(dir) != before
}

/// Any file.
pub fn any_file(_: &Path) -> bool {
    true
}

/// Damages the file at `path` (none picked: only the arguments are read)
/// by `kind`, reading its arguments from `inp`:
///
/// ```text
/// 0  xor: offset u16 LE, count byte (1 + c % 16), that many bytes XORed
///         into the file at offset % len
/// 1  truncate to u16 LE % (len + 1)
/// 2  append: count byte (1 + c % 64), that many bytes XORed with a fixed
///         key stream
/// 3  delete the file
/// 4  zero: offset u16 LE, count byte (1 + c), zeroes written at
///         offset % len (a torn write)
/// ```
///
/// Bytes are XORed in rather than written verbatim so the input never
/// holds a checksum the reader compares against: with comparison hints,
/// libFuzzer could otherwise copy one in and forge a record no reader can
/// tell from a real one. `None` when the input ran out (no more damage).
///
/// # Panics
///
/// On an I/O error: the targets' directories are their own.
fn damage_file(kind: u8, path: Option<&Path>, inp: &mut Input<'_>) -> Option<()> {
    let data = path.map(|p| std::fs::read(p).expect("read a file to damage"));
    let write = |d: &[u8]| {
        if let Some(p) = path {
            std::fs::write(p, d).expect("write a damaged file");
        }
    };
    match kind {
        0 => {
            let off = usize::from(inp.u16()?);
            let n = 1 + usize::from(inp.byte()? % 16);
            let mask = inp.take(n)?;
            if let Some(mut d) = data.filter(|d| !d.is_empty()) {
                let off = off % d.len();
                for (b, m) in d[off..].iter_mut().zip(mask) {
                    *b ^= m;
                }
                write(&d);
            }
        }
        1 => {
            let to = usize::from(inp.u16()?);
            if let Some(d) = data {
                write(&d[..to % (d.len() + 1)]);
            }
        }
        2 => {
            let n = 1 + usize::from(inp.byte()? % 64);
            let bytes = inp.take(n)?;
            if let Some(mut d) = data {
                d.extend(
                    bytes
                        .iter()
                        .enumerate()
                        .map(|(i, b)| b ^ 0xa5u8.wrapping_add((i as u8).wrapping_mul(61))),
                );
                write(&d);
            }
        }
        3 => {
            if let Some(p) = path {
                std::fs::remove_file(p).expect("delete a file");
            }
        }
        4 => {
            let off = usize::from(inp.u16()?);
            let n = 1 + usize::from(inp.byte()?);
            if let Some(mut d) = data.filter(|d| !d.is_empty()) {
                let off = off % d.len();
                let end = (off + n).min(d.len());
                d[off..end].fill(0);
                write(&d);
            }
        }
        other => panic!("no damage of kind {other}"),
    }
    Some(())
}
