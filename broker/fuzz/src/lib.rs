//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! The two protocol targets read their input as a small header followed by
//! the bytes a peer sends:
//!
//! ```text
//! byte 0      settings: bit 0 = a per-target flag (headers for clients,
//!             `ready` for routes), bits 1-3 = index into the target's
//!             table of (max_control_line, max_payload) limits
//! byte 1      n = low 4 bits: how many chunk-length bytes follow
//! n bytes     read sizes: each is 1 + the byte, used in turn, cycling;
//!             with n = 0 the stream arrives one byte per read
//! rest        the stream
//! ```
//!
//! So the fuzzer chooses where the socket reads split the stream, the way
//! it chooses the bytes. The seeds in `corpus/` start with such a header.

pub mod damage;

/// The decoded header of a protocol target's input.
#[derive(Debug)]
pub struct Framed<'a> {
    /// Bit 0 of the settings byte.
    pub flag: bool,
    /// Index (0..8) into the target's limits table.
    pub limits: usize,
    /// Read sizes, cycled; empty means one byte per read.
    pub reads: Vec<usize>,
    /// The stream.
    pub data: &'a [u8],
}

impl<'a> Framed<'a> {
    /// `None` when the input is too short to hold a header.
    pub fn decode(input: &'a [u8]) -> Option<Self> {
        let (&settings, rest) = input.split_first()?;
        let (&count, rest) = rest.split_first()?;
        let n = usize::from(count & 0x0f).min(rest.len());
        let (sizes, data) = rest.split_at(n);
        Some(Framed {
            flag: settings & 1 == 1,
            limits: usize::from((settings >> 1) & 0x07),
            reads: sizes.iter().map(|&b| usize::from(b) + 1).collect(),
            data,
        })
    }

    /// The stream cut into the reads the header asks for.
    pub fn chunks(&self) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = self.data;
        let mut i = 0;
        while !rest.is_empty() {
            let size = if self.reads.is_empty() {
                1
            } else {
                self.reads[i % self.reads.len()]
            };
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            out.push(chunk);
            rest = tail;
            i += 1;
        }
        out
    }

    /// The largest read.
    pub fn max_read(&self) -> usize {
        self.reads.iter().copied().max().unwrap_or(1)
    }
}

/// Number of (possibly overlapping) occurrences of `needle` in `hay`.
pub fn occurrences(hay: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() || needle.len() > hay.len() {
        return 0;
    }
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}
