//! permessage-deflate (RFC 7692) without context takeover in either
//! direction, as nats-server negotiates it: every message is a raw DEFLATE
//! stream of its own, ended with a sync flush whose last four bytes
//! (`00 00 ff ff`) are left off the wire.
//!
//! The DEFLATE codec itself is flate2's; this module only frames messages
//! and bounds memory. Inbound, nats-server buffers a compressed message
//! whole before inflating it, and so do we, with its limits: at most eight
//! times `max_payload` (and never over 64 MiB) of compressed bytes, and at
//! most `max_payload` bytes once inflated.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// What a sync flush ends with; stripped from each compressed message.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Appended to a received message before inflating it: the stripped sync
/// tail and an empty final stored block, so the stream has a proper end.
const INFLATE_TAIL: [u8; 9] = [0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff];
/// Below this many bytes a batch goes out uncompressed (nats-server's
/// `wsCompressThreshold`).
pub const COMPRESS_THRESHOLD: usize = 64;
/// nats-server's `wsMaxMsgPayloadMultiple` and `wsMaxMsgPayloadLimit`.
const COMPRESSED_MULTIPLE: usize = 8;
const COMPRESSED_LIMIT: usize = 64 * 1024 * 1024;
/// Buffers larger than this are given back once a message is done.
const KEEP_CAPACITY: usize = 1 << 20;

/// Compresses outbound batches, one message each. The codec (a few hundred
/// KiB) is made on first use, as nats-server makes its compressor: an idle
/// connection that negotiated compression costs nothing for it.
#[derive(Default)]
pub struct Deflater {
    codec: Option<Compress>,
    out: Vec<u8>,
}

impl Deflater {
    /// `input` as one compressed message payload (sync tail stripped). The
    /// slice lives until the next call.
    pub fn compress(&mut self, input: &[u8]) -> &[u8] {
        // Level 1: nats-server uses flate.BestSpeed.
        let codec = self
            .codec
            .get_or_insert_with(|| Compress::new(Compression::fast(), false));
        codec.reset();
        self.out.clear();
        if self.out.capacity() > KEEP_CAPACITY.max(input.len()) {
            self.out = Vec::new();
        }
        self.out.reserve(input.len() / 2 + 64);
        loop {
            let consumed = codec.total_in() as usize;
            let rest = input.get(consumed..).unwrap_or_default();
            // compress_vec writes into the spare capacity only; it never
            // fails for a raw stream with valid arguments, and the loop
            // ends either way once no progress is made.
            let before = (codec.total_in(), self.out.len());
            let _ = codec.compress_vec(rest, &mut self.out, FlushCompress::Sync);
            let done =
                codec.total_in() as usize >= input.len() && self.out.len() < self.out.capacity();
            if done {
                break;
            }
            if before == (codec.total_in(), self.out.len()) && self.out.len() < self.out.capacity()
            {
                break;
            }
            self.out.reserve(self.out.capacity().max(64));
        }
        let len = self.out.len();
        if self.out.ends_with(&SYNC_TAIL) {
            &self.out[..len - SYNC_TAIL.len()]
        } else {
            &self.out[..]
        }
    }
}

/// Why an inbound compressed message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InflateError {
    /// Over the compressed or the inflated limit: nats-server's
    /// "maximum payload exceeded".
    TooBig,
    /// Not a valid DEFLATE stream.
    Corrupt(String),
}

impl std::fmt::Display for InflateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InflateError::TooBig => f.write_str("maximum payload exceeded"),
            InflateError::Corrupt(e) => write!(f, "flate: {e}"),
        }
    }
}

impl std::error::Error for InflateError {}

/// Collects a compressed message, then inflates it a piece at a time. The
/// codec is made with the first compressed message.
pub struct Inflater {
    codec: Option<Decompress>,
    compressed: Vec<u8>,
    /// Where inflating has got to in `compressed`, while a message is
    /// being inflated.
    pos: Option<usize>,
    inflated: usize,
    max_compressed: usize,
    max_inflated: usize,
}

impl Inflater {
    /// Limits for a connection whose `max_payload` is this (nats-server's
    /// `wsMaxMessageSize`).
    pub fn new(max_payload: usize) -> Self {
        Inflater {
            codec: None,
            compressed: Vec::new(),
            pos: None,
            inflated: 0,
            max_compressed: max_payload
                .saturating_mul(COMPRESSED_MULTIPLE)
                .min(COMPRESSED_LIMIT),
            max_inflated: max_payload,
        }
    }

    /// Add a piece of a compressed message; `last` starts inflating it.
    pub fn push(&mut self, bytes: &[u8], last: bool) -> Result<(), InflateError> {
        let tail = if last { INFLATE_TAIL.len() } else { 0 };
        if self.compressed.len() + bytes.len() + tail > self.max_compressed {
            self.reset();
            return Err(InflateError::TooBig);
        }
        self.compressed.extend_from_slice(bytes);
        if last {
            self.compressed.extend_from_slice(&INFLATE_TAIL);
            self.codec
                .get_or_insert_with(|| Decompress::new(false))
                .reset(false);
            self.pos = Some(0);
            self.inflated = 0;
        }
        Ok(())
    }

    /// A message is being inflated (call [`Self::inflate`] until it is not).
    pub fn active(&self) -> bool {
        self.pos.is_some()
    }

    /// Inflate the current message into `dst`; returns how many bytes were
    /// written. Once the message is done [`Self::active`] turns false. A
    /// message that inflates past the limit yields exactly the limit's
    /// worth of bytes, then the error (nats-server parses as much).
    pub fn inflate(&mut self, dst: &mut [u8]) -> Result<usize, InflateError> {
        let (Some(pos), Some(codec)) = (self.pos, self.codec.as_mut()) else {
            return Ok(0);
        };
        let allowed = self.max_inflated - self.inflated;
        let mut probe = [0u8; 1];
        let out: &mut [u8] = if allowed == 0 {
            // At the limit: one more byte means too much.
            &mut probe
        } else {
            let room = allowed.min(dst.len());
            &mut dst[..room]
        };
        let room = out.len();
        let (in0, out0) = (codec.total_in(), codec.total_out());
        let status = codec.decompress(&self.compressed[pos..], out, FlushDecompress::None);
        let read = (codec.total_in() - in0) as usize;
        let wrote = (codec.total_out() - out0) as usize;
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                self.reset();
                return Err(InflateError::Corrupt(e.to_string()));
            }
        };
        if allowed == 0 && wrote > 0 {
            self.reset();
            return Err(InflateError::TooBig);
        }
        self.inflated += wrote;
        let pos = pos + read;
        let exhausted = pos >= self.compressed.len();
        let stuck = read == 0 && wrote == 0 && room > 0;
        if status == Status::StreamEnd || (exhausted && wrote < room) || stuck {
            self.reset();
        } else {
            self.pos = Some(pos);
        }
        Ok(if allowed == 0 { 0 } else { wrote })
    }

    /// Forget the current message.
    fn reset(&mut self) {
        self.pos = None;
        self.compressed.clear();
        if self.compressed.capacity() > KEEP_CAPACITY {
            self.compressed = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(inf: &mut Inflater, chunk: usize) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; chunk];
        while inf.active() {
            let n = inf.inflate(&mut buf)?;
            out.extend_from_slice(&buf[..n]);
        }
        Ok(out)
    }

    #[test]
    fn round_trip_in_pieces() {
        let msg: Vec<u8> = b"PUB sports.football.1 11\r\nhello world\r\n"
            .iter()
            .copied()
            .cycle()
            .take(100_000)
            .collect();
        let mut d = Deflater::default();
        let wire = d.compress(&msg).to_vec();
        assert!(wire.len() < msg.len() / 10, "{}", wire.len());
        assert!(!wire.ends_with(&SYNC_TAIL));
        let mut inf = Inflater::new(1 << 20);
        for piece in wire.chunks(333) {
            inf.push(piece, false).unwrap();
        }
        inf.push(&[], true).unwrap();
        assert_eq!(inflate_all(&mut inf, 1000).unwrap(), msg);
        // And again, with the same inflater and deflater (no context).
        let wire2 = d.compress(b"PING\r\n").to_vec();
        inf.push(&wire2, true).unwrap();
        assert_eq!(inflate_all(&mut inf, 3).unwrap(), b"PING\r\n");
    }

    #[test]
    fn limits() {
        let big = vec![b'a'; 10_000];
        let wire = Deflater::default().compress(&big).to_vec();
        for chunk in [1, 7, 4096, 20_000] {
            let mut inf = Inflater::new(9_999);
            inf.push(&wire, true).unwrap();
            let mut buf = vec![0u8; chunk];
            let mut got = 0;
            let err = loop {
                match inf.inflate(&mut buf) {
                    Ok(n) => got += n,
                    Err(e) => break e,
                }
            };
            assert_eq!((got, err), (9_999, InflateError::TooBig), "chunk {chunk}");
            assert!(!inf.active());
        }
        let mut inf = Inflater::new(10_000);
        inf.push(&wire, true).unwrap();
        assert_eq!(inflate_all(&mut inf, 4096).unwrap().len(), 10_000);
        let mut inf = Inflater::new(1);
        assert_eq!(inf.push(&[0; 8], false), Ok(()));
        assert_eq!(inf.push(&[0], true), Err(InflateError::TooBig));
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let mut inf = Inflater::new(1000);
        inf.push(&[0xff, 0xff, 0xff, 0xff], true).unwrap();
        assert!(matches!(
            inflate_all(&mut inf, 100),
            Err(InflateError::Corrupt(_))
        ));
        assert!(!inf.active());
    }
}
