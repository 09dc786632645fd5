//! The frame decoder: client frames in, payload bytes and control frames
//! out, with nats-server's checks in nats-server's order and words (each
//! protocol error closes the connection with status 1002 and that text).
//!
//! It is sans-IO: it reads from a buffer the caller fills and never
//! buffers itself. A frame header and a whole control frame are taken only
//! once they are complete in the buffer (at most 14 and 139 bytes); data
//! payloads stream through in pieces of any size, unmasked in place, so a
//! message of any length costs no memory here.

use super::frame::{self, status, MAX_CONTROL_PAYLOAD};

/// A frame the client sent, as far as the connection cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The buffer ends before the next complete header (or control frame).
    NeedMore,
    /// Payload of a data message, unmasked, in the order sent. `compressed`:
    /// the message's first frame had RSV1; `last`: these are the message's
    /// final bytes. Pieces are empty for empty frames.
    Data {
        bytes: &'a [u8],
        compressed: bool,
        last: bool,
    },
    /// A ping with its payload, to be answered with a pong carrying it.
    Ping(&'a [u8]),
    Pong,
    /// A close: the connection ends after the server's `reply` (a complete
    /// close frame: the client's status and reason echoed, nothing when it
    /// sent no status, 1007 for a reason that is not UTF-8).
    Close {
        reply: Vec<u8>,
    },
}

/// A frame nats-server refuses; the text goes in the 1002 close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(msg.into()))
}

/// Decoder state between calls.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// permessage-deflate was negotiated: RSV1 is allowed.
    compression: bool,
    /// Frames must be masked (always, unless the client asked for
    /// `Nats-No-Masking`).
    mask_required: bool,
    /// Payload bytes left in the current data frame; `None` between frames.
    remaining: Option<u64>,
    /// The current data frame's masking key, and where in it we are.
    key: Option<[u8; 4]>,
    key_pos: usize,
    /// The current data frame is its message's last.
    frame_final: bool,
    /// A data message has started and its final frame has not been seen.
    in_message: bool,
    /// The current message is compressed.
    compressed: bool,
}

impl Decoder {
    pub fn new(compression: bool, mask_required: bool) -> Self {
        Decoder {
            compression,
            mask_required,
            remaining: None,
            key: None,
            key_pos: 0,
            frame_final: true,
            in_message: false,
            compressed: false,
        }
    }

    /// Decode from the start of `input`. Returns how many bytes were used
    /// (they are not to be passed again) and what they held. At most
    /// `max_data` payload bytes are returned at once.
    pub fn next<'a>(
        &mut self,
        input: &'a mut [u8],
        max_data: usize,
    ) -> Result<(usize, Frame<'a>), ProtocolError> {
        if let Some(rem) = self.remaining {
            return Ok(self.payload(input, rem, max_data));
        }
        let Some(h) = self.header(input)? else {
            return Ok((0, Frame::NeedMore));
        };
        if frame::is_control(h.opcode) {
            // Only taken whole: the payload is tiny.
            let end = h.len + h.payload_len as usize;
            if input.len() < end {
                return Ok((0, Frame::NeedMore));
            }
            let payload = &mut input[h.len..end];
            if let Some(key) = h.key {
                frame::unmask(payload, key, 0);
            }
            let f = match h.opcode {
                frame::OP_PING => Frame::Ping(payload),
                frame::OP_PONG => Frame::Pong,
                _ => Frame::Close {
                    reply: close_reply(payload)?,
                },
            };
            return Ok((end, f));
        }
        self.key = h.key;
        self.key_pos = 0;
        self.frame_final = h.fin;
        let (used, f) = self.payload(&mut input[h.len..], h.payload_len, max_data);
        Ok((h.len + used, f))
    }

    /// Payload bytes of the current data frame.
    fn payload<'a>(
        &mut self,
        input: &'a mut [u8],
        rem: u64,
        max_data: usize,
    ) -> (usize, Frame<'a>) {
        let n = usize::try_from(rem)
            .unwrap_or(usize::MAX)
            .min(input.len())
            .min(max_data);
        if n == 0 && rem > 0 {
            // The buffer is used up (or the caller has no room).
            self.remaining = Some(rem);
            return (0, Frame::NeedMore);
        }
        let left = rem - n as u64;
        let last = self.frame_final && left == 0;
        let bytes = &mut input[..n];
        if let Some(key) = self.key {
            self.key_pos = frame::unmask(bytes, key, self.key_pos);
        }
        self.remaining = (left > 0).then_some(left);
        let compressed = self.compressed;
        if last {
            self.compressed = false;
        }
        (
            n,
            Frame::Data {
                bytes,
                compressed,
                last,
            },
        )
    }

    /// Parse and check a frame header at the start of `input`, or `None`
    /// if it is not all there yet. Checks run as soon as the bytes they
    /// look at are present, in nats-server's order.
    fn header(&mut self, input: &[u8]) -> Result<Option<Header>, ProtocolError> {
        let Some(&b0) = input.first() else {
            return Ok(None);
        };
        let opcode = b0 & 0x0f;
        let fin = b0 & frame::FIN_BIT != 0;
        let rsv1 = b0 & frame::RSV1_BIT != 0;
        if b0 & (frame::RSV2_BIT | frame::RSV3_BIT) != 0 {
            return err("RSV2 and RSV3 must be clear");
        }
        if rsv1 && !self.compression {
            return err("compressed frame received without negotiated permessage-deflate");
        }
        let Some(&b1) = input.get(1) else {
            return Ok(None);
        };
        let masked = b1 & frame::MASK_BIT != 0;
        if self.mask_required && !masked {
            return err("mask bit missing");
        }
        let len7 = b1 & 0x7f;
        match opcode {
            frame::OP_PING | frame::OP_PONG | frame::OP_CLOSE => {
                if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                    return err(format!(
                        "control frame length bigger than maximum allowed of {MAX_CONTROL_PAYLOAD} bytes"
                    ));
                }
                if !fin {
                    return err("control frame does not have final bit set");
                }
                if rsv1 {
                    return err("control frame must not be compressed");
                }
            }
            frame::OP_TEXT | frame::OP_BINARY => {
                if self.in_message {
                    return err(
                        "new message started before final frame for previous message was received",
                    );
                }
            }
            frame::OP_CONTINUATION => {
                if !self.in_message || rsv1 {
                    return err("invalid continuation frame");
                }
            }
            other => return err(format!("unknown opcode {other}")),
        }
        let mut at = 2;
        let payload_len = match len7 {
            126 => {
                let Some(b) = input.get(2..4) else {
                    return Ok(None);
                };
                at = 4;
                u64::from(u16::from_be_bytes([b[0], b[1]]))
            }
            127 => {
                let Some(b) = input.get(2..10) else {
                    return Ok(None);
                };
                at = 10;
                let mut w = [0u8; 8];
                w.copy_from_slice(b);
                let len = u64::from_be_bytes(w);
                if len & (1 << 63) != 0 {
                    return err("invalid 64-bit payload length");
                }
                len
            }
            n => u64::from(n),
        };
        let key = if masked {
            let Some(k) = input.get(at..at + 4) else {
                return Ok(None);
            };
            at += 4;
            Some([k[0], k[1], k[2], k[3]])
        } else {
            None
        };
        // The header is complete: only now does it change the message state.
        match opcode {
            frame::OP_TEXT | frame::OP_BINARY => {
                self.in_message = !fin;
                self.compressed = rsv1;
            }
            frame::OP_CONTINUATION => self.in_message = !fin,
            _ => {}
        }
        Ok(Some(Header {
            len: at,
            opcode,
            fin,
            payload_len,
            key,
        }))
    }
}

/// A complete frame header.
struct Header {
    /// Header length in bytes.
    len: usize,
    opcode: u8,
    fin: bool,
    payload_len: u64,
    key: Option<[u8; 4]>,
}

/// The server's answer to a close frame with this (unmasked) payload.
fn close_reply(payload: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    match payload.len() {
        0 => {
            // No status: answer with an empty close frame (1005 may not be
            // sent).
            let mut out = Vec::with_capacity(2);
            frame::push_control(&mut out, frame::OP_CLOSE, &[]);
            Ok(out)
        }
        1 => err("close frame payload cannot be 1 byte"),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !frame::is_valid_close_status(code) {
                return err(format!("invalid close status code {code}"));
            }
            Ok(match std::str::from_utf8(&payload[2..]) {
                Ok(reason) => frame::close_frame(code, reason),
                Err(_) => frame::close_frame(
                    status::INVALID_PAYLOAD_DATA,
                    "invalid utf8 body in close frame",
                ),
            })
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A masked client frame (the other websocket tests build theirs here too).
    pub(crate) fn client_frame(b0: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut out = vec![b0];
        let len = payload.len();
        if len <= 125 {
            out.push(0x80 | len as u8);
        } else if len < 65536 {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&key);
        let mut p = payload.to_vec();
        frame::unmask(&mut p, key, 0);
        out.extend_from_slice(&p);
        out
    }

    /// Everything the decoder yields from `input`, data concatenated.
    fn run(d: &mut Decoder, input: &[u8]) -> Result<(Vec<u8>, Vec<String>), ProtocolError> {
        let mut buf = input.to_vec();
        let mut at = 0;
        let mut data = Vec::new();
        let mut events = Vec::new();
        loop {
            let (n, f) = d.next(&mut buf[at..], 7)?;
            at += n;
            match f {
                Frame::NeedMore => return Ok((data, events)),
                Frame::Data { bytes, last, .. } => {
                    assert!(bytes.len() <= 7, "max_data respected");
                    data.extend_from_slice(bytes);
                    if last {
                        events.push("end".into());
                    }
                }
                Frame::Ping(p) => events.push(format!("ping {}", String::from_utf8_lossy(p))),
                Frame::Pong => events.push("pong".into()),
                Frame::Close { reply } => events.push(format!("close {reply:?}")),
            }
        }
    }

    const K: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

    #[test]
    fn binary_text_fragments_and_interleaved_control() {
        let mut input = client_frame(0x82, b"PING\r\n", K);
        input.extend(client_frame(0x01, b"PUB a 2\r\n", K));
        input.extend(client_frame(0x89, b"hi", K));
        input.extend(client_frame(0x00, b"ok", K));
        input.extend(client_frame(0x80, b"\r\n", K));
        let (data, events) = run(&mut Decoder::new(false, true), &input).unwrap();
        assert_eq!(data, b"PING\r\nPUB a 2\r\nok\r\n");
        assert_eq!(events, ["end", "ping hi", "end"]);
    }

    #[test]
    fn incomplete_headers_wait_and_payloads_stream() {
        let input = client_frame(0x82, &[b'x'; 300], K);
        let mut d = Decoder::new(false, true);
        let mut buf = input.clone();
        // Two bytes of a header with a 2-byte length: not yet.
        assert_eq!(d.next(&mut buf[..3], 100).unwrap(), (0, Frame::NeedMore));
        let (n, f) = d.next(&mut buf[..20], 100).unwrap();
        assert_eq!(n, 20);
        assert!(matches!(f, Frame::Data { bytes, last: false, .. } if bytes == [b'x'; 12]));
        let (n, f) = d.next(&mut buf[20..], 1000).unwrap();
        assert_eq!(n, input.len() - 20);
        assert!(matches!(f, Frame::Data { bytes, last: true, .. } if bytes.len() == 288));
    }

    #[test]
    fn nats_server_protocol_errors() {
        let cases: Vec<(Vec<u8>, bool, &str)> = vec![
            (vec![0x82, 0x02, b'h', b'i'], false, "mask bit missing"),
            (vec![0xa2, 0x80], false, "RSV2 and RSV3 must be clear"),
            (
                vec![0xc2, 0x80],
                false,
                "compressed frame received without negotiated permessage-deflate",
            ),
            (
                vec![0xc9, 0x80],
                true,
                "control frame must not be compressed",
            ),
            (
                client_frame(0x89, &[0; 126], K),
                false,
                "control frame length bigger than maximum allowed of 125 bytes",
            ),
            (
                client_frame(0x09, b"x", K),
                false,
                "control frame does not have final bit set",
            ),
            (client_frame(0x83, b"x", K), false, "unknown opcode 3"),
            (client_frame(0x8b, b"x", K), false, "unknown opcode 11"),
            (
                client_frame(0x80, b"x", K),
                false,
                "invalid continuation frame",
            ),
            (
                [client_frame(0x02, b"x", K), client_frame(0x82, b"y", K)].concat(),
                false,
                "new message started before final frame for previous message was received",
            ),
            (
                [client_frame(0x42, b"x", K), client_frame(0xc0, b"y", K)].concat(),
                true,
                "invalid continuation frame",
            ),
            (
                vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1],
                false,
                "invalid 64-bit payload length",
            ),
            (
                client_frame(0x88, &[3], K),
                false,
                "close frame payload cannot be 1 byte",
            ),
            (
                client_frame(0x88, &1005u16.to_be_bytes(), K),
                false,
                "invalid close status code 1005",
            ),
            (
                client_frame(0x88, &999u16.to_be_bytes(), K),
                false,
                "invalid close status code 999",
            ),
        ];
        for (input, compression, want) in cases {
            let got = run(&mut Decoder::new(compression, true), &input);
            assert_eq!(got, Err(ProtocolError(want.into())), "{input:x?}");
        }
    }

    #[test]
    fn close_replies() {
        let mut d = Decoder::new(false, true);
        let (_, ev) = run(&mut d, &client_frame(0x88, b"", K)).unwrap();
        assert_eq!(ev, [format!("close {:?}", vec![0x88u8, 0])]);
        let mut payload = 4000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        let (_, ev) = run(
            &mut Decoder::new(false, true),
            &client_frame(0x88, &payload, K),
        )
        .unwrap();
        assert_eq!(ev, [format!("close {:?}", frame::close_frame(4000, "bye"))]);
        let mut bad = 1000u16.to_be_bytes().to_vec();
        bad.extend_from_slice(&[0xff, 0xfe]);
        let (_, ev) = run(&mut Decoder::new(false, true), &client_frame(0x88, &bad, K)).unwrap();
        assert_eq!(
            ev,
            [format!(
                "close {:?}",
                frame::close_frame(1007, "invalid utf8 body in close frame")
            )]
        );
    }

    #[test]
    fn unmasked_frames_when_masking_is_waived() {
        let input = [0x82, 0x02, b'h', b'i'];
        let (data, _) = run(&mut Decoder::new(false, false), &input).unwrap();
        assert_eq!(data, b"hi");
    }

    #[test]
    fn empty_frames() {
        // An empty final frame ends a fragmented uncompressed message.
        let input = [client_frame(0x02, b"ab", K), client_frame(0x80, b"", K)].concat();
        let (data, ev) = run(&mut Decoder::new(false, true), &input).unwrap();
        assert_eq!(
            (data.as_slice(), ev.as_slice()),
            (&b"ab"[..], &["end".to_string()][..])
        );
        // A compressed message's empty final frame is still reported.
        let mut d = Decoder::new(true, true);
        let mut buf = [client_frame(0x42, b"ab", K), client_frame(0x80, b"", K)].concat();
        let (n, f) = d.next(&mut buf, 100).unwrap();
        assert!(matches!(
            f,
            Frame::Data {
                compressed: true,
                last: false,
                ..
            }
        ));
        let (_, f) = d.next(&mut buf[n..], 100).unwrap();
        assert!(matches!(
            f,
            Frame::Data {
                bytes: [],
                compressed: true,
                last: true
            }
        ));
    }
}
