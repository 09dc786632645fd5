//! What the recovery targets (`filestore_recovery`, `raft_log_recovery`)
//! share: reading their input a field at a time, and damaging one file the
//! way a bad disk or a crash would.

use std::path::Path;

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
pub fn damage_file(kind: u8, path: Option<&Path>, inp: &mut Input<'_>) -> Option<()> {
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
