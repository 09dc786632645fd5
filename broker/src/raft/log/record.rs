//! The record framing shared by segment files and the small state files:
//! `[u32 len LE][u32 crc32 LE][len bytes of postcard]`.
//!
//! The checksum covers the length field as well as the payload, so a
//! length mangled by a torn write is caught by the checksum and not trusted
//! to skip over the next records.

use serde::Serialize;

/// Bytes before a record's payload: length and checksum.
pub(super) const HEADER: usize = 8;

/// Why bytes at some offset are not a whole, intact record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bad {
    /// Fewer bytes than a header, or than the header says the payload has:
    /// a write cut short.
    Short,
    /// The checksum does not match: a torn or corrupted write.
    Checksum,
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Bad::Short => "incomplete record",
            Bad::Checksum => "checksum mismatch",
        })
    }
}

/// Appends `value` as one record to `out` and returns the record's length
/// (header included). On error `out` is left as it was.
pub(super) fn encode<T: Serialize>(out: &mut Vec<u8>, value: &T) -> anyhow::Result<u32> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    if let Err(e) = postcard::to_io(value, &mut *out) {
        out.truncate(start);
        return Err(anyhow::Error::new(e).context("encoding a Raft log record"));
    }
    let payload = out.len() - start - HEADER;
    let total = u32::try_from(payload)
        .ok()
        .and_then(|p| p.checked_add(HEADER as u32));
    let Some(total) = total else {
        out.truncate(start);
        anyhow::bail!("Raft log record of {payload} bytes is too large");
    };
    let len = (total - HEADER as u32).to_le_bytes();
    out[start..start + 4].copy_from_slice(&len);
    let crc = checksum(len, &out[start + HEADER..]);
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(total)
}

/// The payload of the record at the start of `buf` and the record's total
/// length (header included).
pub(super) fn parse(buf: &[u8]) -> Result<(&[u8], usize), Bad> {
    let (Some(len), Some(crc)) = (read_u32(buf, 0), read_u32(buf, 4)) else {
        return Err(Bad::Short);
    };
    let Some(payload) = buf.get(HEADER..HEADER + len as usize) else {
        return Err(Bad::Short);
    };
    if checksum(len.to_le_bytes(), payload) != crc {
        return Err(Bad::Checksum);
    }
    Ok((payload, HEADER + len as usize))
}

/// The payload length a header announces, if `header` holds a whole header.
pub(super) fn payload_len(header: &[u8]) -> Option<u32> {
    read_u32(header, 0)
}

/// Whether `payload` matches the checksum in `header`.
pub(super) fn check(header: &[u8], payload: &[u8]) -> bool {
    match (read_u32(header, 0), read_u32(header, 4)) {
        (Some(len), Some(crc)) => {
            len as usize == payload.len() && checksum(len.to_le_bytes(), payload) == crc
        }
        _ => false,
    }
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

fn checksum(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(payload);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let mut buf = vec![7u8];
        let n = encode(&mut buf, &("hello", 42u64)).expect("encode") as usize;
        assert_eq!(buf.len(), 1 + n);
        let (payload, len) = parse(&buf[1..]).expect("parse");
        assert_eq!(len, n);
        let v: (String, u64) = postcard::from_bytes(payload).expect("decode");
        assert_eq!(v, ("hello".to_string(), 42));
        assert!(check(&buf[1..1 + HEADER], payload));

        assert_eq!(parse(&buf[1..n]), Err(Bad::Short));
        assert_eq!(parse(&buf[1..4]), Err(Bad::Short));
        for i in 1..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(parse(&bad[1..]).is_err(), "flip at {i} not caught");
        }
    }
}
