//! The client side of RFC 6455, as much as a load generator needs: the
//! upgrade request and the check of its answer, masked client frames, and
//! a decoder for the server's frames.
//!
//! Written for the benchmark rather than taken from the broker's own
//! `websocket` module, so that the broker's server side is measured
//! against an independent reading of the RFC (the same one nats-server is
//! measured against), and rather than a WebSocket crate, so that 10,000
//! clients cost the load generator little: a decoder that works in place
//! on one read buffer per connection and never allocates per frame.
//! No extension is offered (no permessage-deflate), so every server frame
//! must have its RSV bits clear.

use std::io;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

/// The GUID RFC 6455 section 1.3 appends to the key.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The largest frame payload the decoder accepts from the server; NATS
/// messages in the benchmark are a few hundred bytes, so anything near
/// this is a broken stream rather than a big message.
pub const MAX_FRAME: usize = 8 << 20;

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64 (section 4.1).
pub fn new_key() -> String {
    B64.encode(rand::random::<[u8; 16]>())
}

/// The `Sec-WebSocket-Accept` a server must answer `key` with.
pub fn accept_for(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    B64.encode(sha.digest().bytes())
}

/// The upgrade request for `host` (the `Host` header, `ip:port`).
pub fn upgrade_request(host: &str, key: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Check the server's answer to [`upgrade_request`] (section 4.1's list):
/// `101`, `Upgrade: websocket`, `Connection: upgrade`, the right accept
/// value, and no extension, since none was offered. `head` is everything
/// up to and including the blank line.
pub fn check_response(head: &[u8], key: &str) -> io::Result<()> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let status = resp
        .parse(head)
        .map_err(|e| io::Error::other(format!("bad upgrade response: {e}")))?;
    if status.is_partial() {
        return Err(io::Error::other("truncated upgrade response"));
    }
    if resp.code != Some(101) {
        return Err(io::Error::other(format!(
            "upgrade refused: {} {}",
            resp.code.unwrap_or(0),
            resp.reason.unwrap_or("")
        )));
    }
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    let upgrade_ok = header("Upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let connection_ok = header("Connection").is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    });
    if !upgrade_ok || !connection_ok {
        return Err(io::Error::other(
            "upgrade response lacks Upgrade: websocket or Connection: upgrade",
        ));
    }
    if header("Sec-WebSocket-Accept").as_deref() != Some(accept_for(key).as_str()) {
        return Err(io::Error::other("wrong Sec-WebSocket-Accept"));
    }
    if let Some(ext) = header("Sec-WebSocket-Extensions").filter(|e| !e.is_empty()) {
        return Err(io::Error::other(format!(
            "server chose extension {ext:?}, none was offered"
        )));
    }
    Ok(())
}

/// Append one final, masked frame (section 5.2: every client frame is
/// masked) carrying `payload` to `out`.
pub fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

/// [`push_frame`] with a fresh random masking key, as section 10.3 asks.
pub fn push_masked(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    push_frame(out, opcode, payload, rand::random());
}

/// One frame from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Bytes of a text, binary or continuation frame: to the NATS client
    /// protocol they are one byte stream, whatever the frame boundaries.
    Data(std::ops::Range<usize>),
    Ping(std::ops::Range<usize>),
    Pong,
    /// The server closes, with its status code if it sent one.
    Close(Option<u16>),
}

/// The server's frames, decoded in place. It remembers only whether a
/// fragmented message is under way, to check continuation frames.
#[derive(Debug, Default)]
pub struct Decoder {
    in_message: bool,
}

impl Decoder {
    /// Decode the frame at the start of `buf`: `Ok(None)` until all of it
    /// is there, else the frame (ranges into `buf`) and its length.
    pub fn next(&mut self, buf: &[u8]) -> io::Result<Option<(Frame, usize)>> {
        let bad = |what: &str| Err(io::Error::new(io::ErrorKind::InvalidData, what.to_string()));
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0f;
        if b0 & 0x70 != 0 {
            return bad("server frame with RSV bits set, no extension was negotiated");
        }
        if b1 & 0x80 != 0 {
            // Section 5.1: a client closes on a masked server frame.
            return bad("masked server frame");
        }
        let (len, head) = match b1 & 0x7f {
            126 if buf.len() < 4 => return Ok(None),
            126 => (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4),
            127 if buf.len() < 10 => return Ok(None),
            127 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&buf[2..10]);
                (u64::from_be_bytes(n), 10)
            }
            n => (n as u64, 2),
        };
        if len > MAX_FRAME as u64 {
            return bad("server frame over the benchmark's limit");
        }
        let len = len as usize;
        let control = opcode & 0x08 != 0;
        if control && (!fin || len > 125) {
            return bad("fragmented or oversized control frame");
        }
        if buf.len() < head + len {
            return Ok(None);
        }
        let body = head..head + len;
        let frame = match opcode {
            OP_TEXT | OP_BINARY if self.in_message => {
                return bad("new data frame inside a fragmented message")
            }
            OP_CONTINUATION if !self.in_message => {
                return bad("continuation frame outside a fragmented message")
            }
            OP_TEXT | OP_BINARY | OP_CONTINUATION => {
                self.in_message = !fin;
                Frame::Data(body)
            }
            OP_PING => Frame::Ping(body),
            OP_PONG => Frame::Pong,
            OP_CLOSE => {
                Frame::Close((len >= 2).then(|| u16::from_be_bytes([buf[head], buf[head + 1]])))
            }
            _ => return bad("reserved opcode"),
        };
        Ok(Some((frame, head + len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_matches_the_rfc_example() {
        // RFC 6455 section 1.3.
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(B64.decode(new_key()).unwrap().len(), 16);
    }

    #[test]
    fn response_checks() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        check_response(ok.as_bytes(), key).unwrap();
        let wrong_key = ok.replace("s3pP", "x3pP");
        assert!(check_response(wrong_key.as_bytes(), key).is_err());
        let refused = "HTTP/1.1 403 Forbidden\r\n\r\n";
        assert!(check_response(refused.as_bytes(), key).is_err());
        let ext = ok.replace(
            "\r\n\r\n",
            "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        );
        assert!(check_response(ext.as_bytes(), key).is_err());
        assert!(check_response(b"HTTP/1.1 101 Switching", key).is_err());
    }

    #[test]
    fn client_frames_are_masked() {
        let mut out = Vec::new();
        push_frame(&mut out, OP_BINARY, b"PING\r\n", [1, 2, 3, 4]);
        assert_eq!(&out[..2], &[0x82, 0x80 | 6]);
        assert_eq!(&out[2..6], &[1, 2, 3, 4]);
        let unmasked: Vec<u8> = out[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4])
            .collect();
        assert_eq!(unmasked, b"PING\r\n");
        for (len, head) in [(125, 6), (126, 8), (65535, 8), (65536, 14)] {
            let mut out = Vec::new();
            push_masked(&mut out, OP_BINARY, &vec![b'x'; len]);
            assert_eq!(out.len(), head + len, "{len}");
        }
    }

    /// An unmasked server frame.
    fn server_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![b0];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n <= 65535 => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_server_frames_whole_or_in_pieces() {
        let mut wire = server_frame(0x82, b"INFO {}\r\n");
        wire.extend(server_frame(0x89, b"hi"));
        wire.extend(server_frame(0x02, &[b'a'; 300]));
        wire.extend(server_frame(0x80, &[b'b'; 70_000]));
        wire.extend(server_frame(0x88, &[0x03, 0xe8]));
        let mut d = Decoder::default();
        // Every prefix short of a whole frame asks for more.
        for cut in 0..11 {
            assert_eq!(d.next(&wire[..cut]).unwrap(), None, "{cut}");
        }
        let mut at = 0;
        let mut got = Vec::new();
        while at < wire.len() {
            let (f, n) = d.next(&wire[at..]).unwrap().unwrap();
            got.push(match f {
                Frame::Data(r) => (b'd', wire[at..][r].to_vec()),
                Frame::Ping(r) => (b'p', wire[at..][r].to_vec()),
                Frame::Pong => (b'o', Vec::new()),
                Frame::Close(code) => (b'c', code.unwrap_or(0).to_be_bytes().to_vec()),
            });
            at += n;
        }
        assert_eq!(got[0], (b'd', b"INFO {}\r\n".to_vec()));
        assert_eq!(got[1], (b'p', b"hi".to_vec()));
        assert_eq!(got[2].1.len(), 300);
        assert_eq!(got[3].1.len(), 70_000);
        assert_eq!(got[4], (b'c', 1000u16.to_be_bytes().to_vec()));
    }

    #[test]
    fn refuses_what_a_client_must_refuse() {
        let cases: [Vec<u8>; 6] = [
            // Masked.
            vec![0x82, 0x81, 1, 2, 3, 4, b'x'],
            // RSV1 without permessage-deflate.
            server_frame(0xc2, b"x"),
            // Continuation with no message under way.
            server_frame(0x80, b"x"),
            // Fragmented ping.
            server_frame(0x09, b"x"),
            // Reserved opcode.
            server_frame(0x83, b"x"),
            // Over the limit.
            vec![0x82, 127, 0, 0, 0, 0, 0x10, 0, 0, 0],
        ];
        for wire in cases {
            assert!(Decoder::default().next(&wire).is_err(), "{wire:?}");
        }
        let mut d = Decoder::default();
        d.next(&server_frame(0x02, b"x")).unwrap();
        assert!(
            d.next(&server_frame(0x82, b"y")).is_err(),
            "new message mid-fragment"
        );
    }
}
