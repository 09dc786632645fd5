//! The on-disk message record.
//!
//! ```text
//! 0   len      u32  total record length, this field and the checksum included
//! 4   seq      u64
//! 12  ts       i64  unix nanos
//! 20  subj_len u16
//! 22  hdr_len  u32
//! 26  subject, headers, payload
//! len-4 crc32  u32  CRC-32 (IEEE) of bytes [0, len-4)
//! ```
//!
//! All integers are little endian. The checksum covers the length field, so
//! a torn or garbage tail fails validation instead of being mis-framed.

use bytes::Bytes;

use crate::jetstream::store::StoredMsg;

/// Fixed bytes before the subject.
pub(crate) const HEADER_LEN: usize = 26;
/// Fixed bytes per record (header + checksum).
pub(crate) const OVERHEAD: usize = HEADER_LEN + 4;
/// Largest record accepted: keeps offsets inside a block within `u32`.
pub(crate) const MAX_RECORD: usize = 1 << 30;

/// The fixed part of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub len: usize,
    pub seq: u64,
    pub ts: i64,
    pub subj_len: usize,
    pub hdr_len: usize,
}

impl RecordHeader {
    /// Parses and sanity-checks the fixed part; `None` when `buf` is too
    /// short or the lengths do not add up (a torn or garbage record).
    pub(crate) fn parse(buf: &[u8]) -> Option<RecordHeader> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        let len = u32::from_le_bytes(buf[0..4].try_into().ok()?) as usize;
        let seq = u64::from_le_bytes(buf[4..12].try_into().ok()?);
        let ts = i64::from_le_bytes(buf[12..20].try_into().ok()?);
        let subj_len = u16::from_le_bytes(buf[20..22].try_into().ok()?) as usize;
        let hdr_len = u32::from_le_bytes(buf[22..26].try_into().ok()?) as usize;
        if !(OVERHEAD..=MAX_RECORD).contains(&len)
            || subj_len == 0
            || seq == 0
            || OVERHEAD + subj_len + hdr_len > len
        {
            return None;
        }
        Some(RecordHeader {
            len,
            seq,
            ts,
            subj_len,
            hdr_len,
        })
    }

    pub(crate) fn subject<'a>(&self, rec: &'a [u8]) -> &'a [u8] {
        &rec[HEADER_LEN..HEADER_LEN + self.subj_len]
    }

    /// nats-server's byte count for this record's message.
    pub(crate) fn nats_size(&self) -> u64 {
        let payload = self.len - OVERHEAD - self.subj_len - self.hdr_len;
        if self.hdr_len == 0 {
            (22 + self.subj_len + payload + 8) as u64
        } else {
            (22 + self.subj_len + 4 + self.hdr_len + payload + 8) as u64
        }
    }
}

/// Length of the record for these parts.
pub(crate) fn record_len(subject: &str, headers: &[u8], payload: &[u8]) -> usize {
    OVERHEAD + subject.len() + headers.len() + payload.len()
}

/// Appends one encoded record to `out`.
pub(crate) fn encode(
    out: &mut Vec<u8>,
    seq: u64,
    ts: i64,
    subject: &str,
    headers: &[u8],
    payload: &[u8],
) {
    let len = record_len(subject, headers, payload);
    let start = out.len();
    out.reserve(len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&ts.to_le_bytes());
    out.extend_from_slice(&(subject.len() as u16).to_le_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    out.extend_from_slice(subject.as_bytes());
    out.extend_from_slice(headers);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// True when `rec` (exactly one record) carries a matching checksum.
pub(crate) fn checksum_ok(rec: &[u8]) -> bool {
    if rec.len() < OVERHEAD {
        return false;
    }
    let (body, crc) = rec.split_at(rec.len() - 4);
    crc.try_into()
        .map(u32::from_le_bytes)
        .is_ok_and(|c| c == crc32fast::hash(body))
}

/// Decodes a verified record into a message without copying the payload.
pub(crate) fn decode(rec: Bytes) -> Result<StoredMsg, &'static str> {
    let h = RecordHeader::parse(&rec).ok_or("bad record header")?;
    if h.len != rec.len() {
        return Err("record length mismatch");
    }
    if !checksum_ok(&rec) {
        return Err("checksum mismatch");
    }
    let subject = std::str::from_utf8(h.subject(&rec))
        .map_err(|_| "subject is not UTF-8")?
        .to_owned();
    let hdr_start = HEADER_LEN + h.subj_len;
    let pay_start = hdr_start + h.hdr_len;
    Ok(StoredMsg {
        seq: h.seq,
        ts: h.ts,
        subject,
        headers: rec.slice(hdr_start..pay_start),
        payload: rec.slice(pay_start..h.len - 4),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jetstream::store::file_store_msg_size;

    #[test]
    fn round_trip_and_sizes() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, 99, "a.b", b"NATS/1.0\r\n\r\n", b"hello");
        let h = RecordHeader::parse(&buf).expect("header");
        assert_eq!(h.len, buf.len());
        assert_eq!(
            h.nats_size(),
            file_store_msg_size("a.b", b"NATS/1.0\r\n\r\n", b"hello")
        );
        let m = decode(Bytes::from(buf.clone())).expect("decode");
        assert_eq!((m.seq, m.ts, m.subject.as_str()), (7, 99, "a.b"));
        assert_eq!(&m.headers[..], b"NATS/1.0\r\n\r\n");
        assert_eq!(&m.payload[..], b"hello");
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(decode(Bytes::from(bad)).is_err(), "flip at {i} undetected");
        }
    }
}
