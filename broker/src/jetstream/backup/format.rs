//! The bytes of a Tribune stream snapshot.
//!
//! nats-server's snapshots are tar archives of its own file layout; a
//! Tribune snapshot is a record stream that does not depend on how the
//! store lays out its files (so it restores into file or memory storage,
//! and into later versions): the magic `TRIBSNAP`, a version, then records
//! of one kind byte, a little-endian `u32` length and the body:
//!
//! - `1` meta: JSON `{config, created}`;
//! - `2` message: `seq u64`, `ts i64`, `subject` and `headers` each with a
//!   `u32` length, then the payload;
//! - `3` consumer: JSON `{name, config, created, state}`;
//! - `4` end: the number of messages (`u64`) and the CRC-32 of every byte
//!   before this record, so a truncated or damaged snapshot is refused.

use serde::{Deserialize, Serialize};

use crate::jetstream::store::ConsumerState;
use crate::jetstream::types::{ConsumerConfig, StreamConfig};

pub const MAGIC: &[u8; 8] = b"TRIBSNAP";
pub const VERSION: u32 = 1;

const META: u8 = 1;
const MSG: u8 = 2;
const CONSUMER: u8 = 3;
const END: u8 = 4;

/// The largest record a reader accepts (a message is at most a few MB).
const MAX_RECORD: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub config: StreamConfig,
    pub created: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedConsumer {
    pub name: String,
    pub config: ConsumerConfig,
    pub created: String,
    pub state: ConsumerState,
}

/// A stored message as the snapshot carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedMsg {
    pub seq: u64,
    pub ts: i64,
    pub subject: String,
    pub headers: Vec<u8>,
    pub payload: Vec<u8>,
}

/// One record read back.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Meta(Meta),
    Msg(SavedMsg),
    Consumer(SavedConsumer),
}

/// Appends records to a buffer, keeping the running checksum.
pub struct Writer {
    crc: crc32fast::Hasher,
    msgs: u64,
}

impl Default for Writer {
    fn default() -> Self {
        Writer::new()
    }
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            crc: crc32fast::Hasher::new(),
            msgs: 0,
        }
    }

    /// The magic and version.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        self.crc.update(&out[at..]);
    }

    fn record(&mut self, out: &mut Vec<u8>, kind: u8, body: &[&[u8]]) {
        let at = out.len();
        let len: usize = body.iter().map(|b| b.len()).sum();
        out.push(kind);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
        for b in body {
            out.extend_from_slice(b);
        }
        self.crc.update(&out[at..]);
    }

    pub fn meta(&mut self, out: &mut Vec<u8>, meta: &Meta) {
        let body = serde_json::to_vec(meta).unwrap_or_default();
        self.record(out, META, &[&body]);
    }

    pub fn consumer(&mut self, out: &mut Vec<u8>, c: &SavedConsumer) {
        let body = serde_json::to_vec(c).unwrap_or_default();
        self.record(out, CONSUMER, &[&body]);
    }

    pub fn msg(
        &mut self,
        out: &mut Vec<u8>,
        seq: u64,
        ts: i64,
        subject: &str,
        hdr: &[u8],
        payload: &[u8],
    ) {
        self.msgs += 1;
        let slen = u32::try_from(subject.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes();
        let hlen = u32::try_from(hdr.len()).unwrap_or(u32::MAX).to_le_bytes();
        self.record(
            out,
            MSG,
            &[
                &seq.to_le_bytes(),
                &ts.to_le_bytes(),
                &slen,
                subject.as_bytes(),
                &hlen,
                hdr,
                payload,
            ],
        );
    }

    /// The end record (not itself covered by the checksum).
    pub fn end(self, out: &mut Vec<u8>) {
        let crc = self.crc.finalize();
        out.push(END);
        out.extend_from_slice(&12u32.to_le_bytes());
        out.extend_from_slice(&self.msgs.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
    }
}

/// Reads records back from any `Read`, checking the end record.
pub struct Reader<R> {
    src: R,
    crc: crc32fast::Hasher,
    msgs: u64,
    done: bool,
}

fn bad(what: impl Into<String>) -> String {
    format!("invalid snapshot: {}", what.into())
}

impl<R: std::io::Read> Reader<R> {
    pub fn new(mut src: R) -> Result<Reader<R>, String> {
        let mut head = [0u8; 12];
        src.read_exact(&mut head)
            .map_err(|e| bad(format!("no header: {e}")))?;
        if &head[..8] != MAGIC {
            return Err(bad("not a Tribune stream snapshot"));
        }
        let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        if version != VERSION {
            return Err(bad(format!("version {version} is not known")));
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        Ok(Reader {
            src,
            crc,
            msgs: 0,
            done: false,
        })
    }

    /// The next record; `None` after a valid end record.
    pub fn next_record(&mut self) -> Result<Option<Record>, String> {
        if self.done {
            return Ok(None);
        }
        let mut head = [0u8; 5];
        self.src
            .read_exact(&mut head)
            .map_err(|_| bad("it ends before its end record"))?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_RECORD {
            return Err(bad(format!("a record of {len} bytes")));
        }
        let mut body = vec![0u8; len];
        self.src
            .read_exact(&mut body)
            .map_err(|_| bad("a record is cut short"))?;
        if head[0] == END {
            if len != 12 {
                return Err(bad("a malformed end record"));
            }
            let msgs = u64::from_le_bytes(body[..8].try_into().unwrap_or_default());
            let crc = u32::from_le_bytes(body[8..12].try_into().unwrap_or_default());
            let got = std::mem::take(&mut self.crc).finalize();
            if crc != got || msgs != self.msgs {
                return Err(bad("its checksum or message count does not match"));
            }
            self.done = true;
            return Ok(None);
        }
        self.crc.update(&head);
        self.crc.update(&body);
        match head[0] {
            META => serde_json::from_slice(&body)
                .map(|m| Some(Record::Meta(m)))
                .map_err(|e| bad(format!("meta: {e}"))),
            CONSUMER => serde_json::from_slice(&body)
                .map(|c| Some(Record::Consumer(c)))
                .map_err(|e| bad(format!("consumer: {e}"))),
            MSG => {
                self.msgs += 1;
                parse_msg(&body).map(|m| Some(Record::Msg(m)))
            }
            k => Err(bad(format!("record kind {k}"))),
        }
    }
}

fn parse_msg(b: &[u8]) -> Result<SavedMsg, String> {
    let short = || bad("a message record is cut short");
    let u64_at = |at: usize| -> Result<u64, String> {
        b.get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(short)
    };
    let u32_at = |at: usize| -> Result<usize, String> {
        b.get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .map(|a| u32::from_le_bytes(a) as usize)
            .ok_or_else(short)
    };
    let seq = u64_at(0)?;
    let ts = u64_at(8)? as i64;
    let slen = u32_at(16)?;
    let subject = b.get(20..20 + slen).ok_or_else(short)?;
    let subject = std::str::from_utf8(subject)
        .map_err(|_| bad("a subject is not UTF-8"))?
        .to_string();
    let hat = 20 + slen;
    let hlen = u32_at(hat)?;
    let headers = b.get(hat + 4..hat + 4 + hlen).ok_or_else(short)?.to_vec();
    let payload = b.get(hat + 4 + hlen..).ok_or_else(short)?.to_vec();
    if seq == 0 || subject.is_empty() {
        return Err(bad("a message without sequence or subject"));
    }
    Ok(SavedMsg {
        seq,
        ts,
        subject,
        headers,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer::new();
        w.start(&mut out);
        let config: StreamConfig =
            serde_json::from_str(r#"{"name":"S","subjects":["s.>"]}"#).unwrap();
        w.meta(
            &mut out,
            &Meta {
                config,
                created: "2026-01-01T00:00:00Z".into(),
            },
        );
        w.msg(&mut out, 1, 10, "s.a", b"", b"one");
        w.msg(&mut out, 5, 11, "s.b", b"NATS/1.0\r\nA: 1\r\n\r\n", b"");
        w.end(&mut out);
        out
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let mut r = Reader::new(&bytes[..]).unwrap();
        assert!(matches!(r.next_record().unwrap(), Some(Record::Meta(_))));
        let Some(Record::Msg(m)) = r.next_record().unwrap() else {
            panic!("a message")
        };
        assert_eq!(
            (m.seq, m.ts, m.subject.as_str(), &m.payload[..]),
            (1, 10, "s.a", &b"one"[..])
        );
        let Some(Record::Msg(m)) = r.next_record().unwrap() else {
            panic!("a message")
        };
        assert_eq!(
            (m.seq, &m.headers[..]),
            (5, &b"NATS/1.0\r\nA: 1\r\n\r\n"[..])
        );
        assert_eq!(r.next_record().unwrap(), None);
    }

    #[test]
    fn damage_and_truncation_are_refused() {
        let bytes = sample();
        for cut in [0, 5, 12, 20, bytes.len() - 1] {
            let mut r = match Reader::new(&bytes[..cut]) {
                Ok(r) => r,
                Err(_) => continue,
            };
            let mut ended = false;
            for _ in 0..10 {
                match r.next_record() {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            assert!(!ended, "cut at {cut} read as complete");
        }
        for i in 12..bytes.len() - 13 {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x40;
            let Ok(mut r) = Reader::new(&damaged[..]) else {
                continue;
            };
            let mut ok = true;
            loop {
                match r.next_record() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        ok = false;
                        break;
                    }
                }
            }
            assert!(!ok, "byte {i} flipped went unnoticed");
        }
    }
}
