//! A raw WebSocket client for tests that need exact bytes: the upgrade
//! request as written, masked (or deliberately bad) frames, and every frame
//! the server sends, decoded, until it closes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// Only a guard against hanging, never an assertion about speed.
const READ_DEADLINE: Duration = Duration::from_secs(10);

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A request head with the headers a valid upgrade needs, plus `extra`
/// lines (each ending in CRLF).
pub fn upgrade_request(extra: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// A frame the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv1: bool,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

pub struct WsConn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The upgrade response head (status line and headers).
    pub response: String,
}

/// Send `request` raw and read the response head. Returns the status line
/// and the connection (for the frames after a 101).
pub fn open_raw(addr: &str, request: &[u8]) -> (String, WsConn) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(READ_DEADLINE)).unwrap();
    stream.write_all(request).expect("send request");
    let mut conn = WsConn {
        stream,
        buf: Vec::new(),
        response: String::new(),
    };
    let head_end = loop {
        if let Some(i) = conn.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if !conn.fill() {
            break conn.buf.len();
        }
    };
    conn.response = String::from_utf8_lossy(&conn.buf[..head_end]).into_owned();
    conn.buf.drain(..head_end);
    let status = conn.response.lines().next().unwrap_or_default().to_string();
    (status, conn)
}

/// Upgrade with `extra` headers; panics unless the server switches.
pub fn open(addr: &str, extra: &str) -> WsConn {
    let (status, conn) = open_raw(addr, upgrade_request(extra).as_bytes());
    assert_eq!(
        status, "HTTP/1.1 101 Switching Protocols",
        "{}",
        conn.response
    );
    conn
}

/// A masked client frame.
pub fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    masked_frame(b0, payload, [0x37, 0xfa, 0x21, 0x3d])
}

pub fn masked_frame(b0: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut out = vec![b0];
    push_len(&mut out, 0x80, payload.len());
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// An unmasked frame, as a client must never send one.
pub fn unmasked_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
    push_len(&mut out, 0, payload.len());
    out.extend_from_slice(payload);
    out
}

fn push_len(out: &mut Vec<u8>, mask: u8, len: usize) {
    if len <= 125 {
        out.push(mask | len as u8);
    } else if len < 65536 {
        out.push(mask | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// A message compressed as permessage-deflate without context takeover.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::fast(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    loop {
        let rest = &data[c.total_in() as usize..];
        c.compress_vec(rest, &mut out, FlushCompress::Sync).unwrap();
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// Inflate one permessage-deflate message.
pub fn inflate(data: &[u8]) -> Vec<u8> {
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff]);
    let mut d = Decompress::new(false);
    let mut out = Vec::with_capacity(data.len() * 4 + 64);
    loop {
        let rest = &input[d.total_in() as usize..];
        let st = d
            .decompress_vec(rest, &mut out, FlushDecompress::None)
            .unwrap();
        let done = st == flate2::Status::StreamEnd || d.total_in() as usize == input.len();
        if done && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity().max(64));
    }
}

impl WsConn {
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    pub fn send(&mut self, bytes: &[u8]) -> &mut Self {
        let _ = self.stream.write_all(bytes);
        self
    }

    /// Send protocol bytes in one masked binary frame.
    pub fn send_proto(&mut self, proto: &str) -> &mut Self {
        self.send(&client_frame(0x82, proto.as_bytes()))
    }

    /// The next frame, or `None` once the server has closed the socket.
    pub fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((f, n)) = parse_frame(&self.buf) {
                self.buf.drain(..n);
                return Some(f);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Data (inflated when compressed) until a close frame or the socket
    /// closes: the protocol text and the close (status, reason) if any.
    pub fn until_close(&mut self) -> (String, Option<(u16, String)>) {
        let mut text = Vec::new();
        let mut message = Vec::new();
        let mut compressed = false;
        while let Some(f) = self.frame() {
            match f.opcode {
                0..=2 => {
                    if f.opcode != 0 {
                        compressed = f.rsv1;
                    }
                    message.extend_from_slice(&f.payload);
                    if f.fin {
                        if compressed {
                            text.extend(inflate(&message));
                        } else {
                            text.extend_from_slice(&message);
                        }
                        message.clear();
                    }
                }
                8 => {
                    // An empty close frame (no status) reads as (0, "").
                    let close = if f.payload.len() >= 2 {
                        (
                            u16::from_be_bytes([f.payload[0], f.payload[1]]),
                            String::from_utf8_lossy(&f.payload[2..]).into_owned(),
                        )
                    } else {
                        (0, String::new())
                    };
                    return (String::from_utf8_lossy(&text).into_owned(), Some(close));
                }
                _ => {}
            }
        }
        (String::from_utf8_lossy(&text).into_owned(), None)
    }

    /// Protocol text up to and including the first `PONG` (the server's
    /// answer to a PING the test sent).
    pub fn until_pong(&mut self) -> String {
        let mut text = Vec::new();
        let mut message = Vec::new();
        let mut compressed = false;
        while let Some(f) = self.frame() {
            if f.opcode > 2 {
                assert_ne!(
                    f.opcode,
                    8,
                    "closed: {f:?} after {:?}",
                    String::from_utf8_lossy(&text)
                );
                continue;
            }
            if f.opcode != 0 {
                compressed = f.rsv1;
            }
            message.extend_from_slice(&f.payload);
            if f.fin {
                if compressed {
                    text.extend(inflate(&message));
                } else {
                    text.extend_from_slice(&message);
                }
                message.clear();
                if text.windows(6).any(|w| w == b"PONG\r\n") {
                    break;
                }
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    }

    /// After a CONNECT and PING: `PONG\r\n` when admitted, else the text
    /// the server sent before closing (its `-ERR`).
    pub fn until_close_or_pong(&mut self) -> String {
        let mut text = String::new();
        while let Some(f) = self.frame() {
            match f.opcode {
                8 => break,
                0..=2 => {
                    let payload = if f.rsv1 {
                        inflate(&f.payload)
                    } else {
                        f.payload
                    };
                    text.push_str(&String::from_utf8_lossy(&payload));
                    if text.ends_with("PONG\r\n") {
                        break;
                    }
                }
                _ => {}
            }
        }
        text.lines()
            .filter(|l| !l.starts_with("INFO "))
            .map(|l| format!("{l}\r\n"))
            .collect()
    }

    /// Read the INFO greeting's JSON.
    pub fn info(&mut self) -> serde_json::Value {
        let f = self.frame().expect("INFO frame");
        let text = if f.rsv1 {
            inflate(&f.payload)
        } else {
            f.payload
        };
        let text = String::from_utf8_lossy(&text);
        let json = text
            .strip_prefix("INFO ")
            .unwrap_or_else(|| panic!("not INFO: {text:?}"))
            .trim();
        serde_json::from_str(json).unwrap()
    }
}

/// Decode one server frame at the start of `buf`.
fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    let b0 = *buf.first()?;
    let b1 = *buf.get(1)?;
    let mut at = 2;
    let len = match b1 & 0x7f {
        126 => {
            let b = buf.get(2..4)?;
            at = 4;
            u16::from_be_bytes([b[0], b[1]]) as usize
        }
        127 => {
            let b = buf.get(2..10)?;
            at = 10;
            u64::from_be_bytes(b.try_into().ok()?) as usize
        }
        n => n as usize,
    };
    let masked = b1 & 0x80 != 0;
    let key = if masked {
        let k = buf.get(at..at + 4)?;
        at += 4;
        Some([k[0], k[1], k[2], k[3]])
    } else {
        None
    };
    let payload = buf.get(at..at + len)?;
    let payload = match key {
        Some(k) => payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ k[i % 4])
            .collect(),
        None => payload.to_vec(),
    };
    Some((
        Frame {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            opcode: b0 & 0x0f,
            masked,
            payload,
        },
        at + len,
    ))
}
