//! A WebSocket connection's inbound side, sans-IO: raw bytes from the
//! socket in, the client protocol byte stream out (exactly what a TCP
//! client would have sent), control frames handed to the caller.
//!
//! The raw buffer only ever has to hold a frame header or a control frame
//! whole (139 bytes at most); data payloads are unmasked in place and
//! copied straight out, so it starts small and grows only while reads keep
//! filling it, like the TCP read buffer.

use tokio::io::ReadBuf;

use super::decode::{Decoder, Frame, ProtocolError};
use super::deflate::{InflateError, Inflater};

const RAW_MIN: usize = 512;
const RAW_MAX: usize = 64 * 1024;

/// What a control frame asks of the writer.
#[derive(Debug, PartialEq, Eq)]
pub enum Control<'a> {
    /// Answer a ping with a pong carrying this payload.
    Pong(&'a [u8]),
    /// The client closed: send this close frame last, then close.
    Close(Vec<u8>),
}

/// Why reading stopped for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundError {
    /// A frame nats-server refuses: close with 1002 and this text.
    Protocol(ProtocolError),
    /// A compressed message over the limits, or not valid DEFLATE.
    Inflate(InflateError),
}

impl std::fmt::Display for InboundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InboundError::Protocol(e) => e.fmt(f),
            InboundError::Inflate(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for InboundError {}

/// Result of [`Inbound::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Protocol bytes were added to the destination.
    Data,
    /// Nothing more can be produced until more raw bytes arrive.
    NeedInput,
    /// The client sent a close frame: no more data, ever.
    Closed,
}

pub struct Inbound {
    decoder: Decoder,
    inflater: Option<Inflater>,
    raw: Vec<u8>,
    start: usize,
    end: usize,
    /// How much to offer the next socket read: grows while reads fill it.
    read_size: usize,
    closed: bool,
    /// An error found after data that is still to be read.
    failed: Option<InboundError>,
}

impl Inbound {
    /// `compression`: permessage-deflate was negotiated; `mask_required`:
    /// client frames must be masked; `max_payload` bounds compressed
    /// messages as nats-server does.
    pub fn new(compression: bool, mask_required: bool, max_payload: usize) -> Self {
        Inbound {
            decoder: Decoder::new(compression, mask_required),
            inflater: compression.then(|| Inflater::new(max_payload)),
            raw: Vec::new(),
            start: 0,
            end: 0,
            read_size: RAW_MIN,
            closed: false,
            failed: None,
        }
    }

    /// Raw bytes received and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Where the next socket read should go: free space after what is
    /// buffered. Never empty.
    pub fn input(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.raw.len() > 4 * self.read_size {
                self.raw = Vec::new();
            }
        } else if self.start > 0 && self.raw.len() - self.end < self.read_size / 2 {
            self.raw.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let want = self.end + self.read_size;
        if self.raw.len() < want {
            self.raw.resize(want, 0);
        }
        &mut self.raw[self.end..]
    }

    /// `n` bytes were read into [`Self::input`].
    pub fn filled(&mut self, n: usize) {
        let offered = self.raw.len() - self.end;
        self.end += n.min(offered);
        if n >= offered && self.read_size < RAW_MAX {
            self.read_size *= 2;
        } else if n < self.read_size / 4 && self.read_size > RAW_MIN {
            self.read_size /= 2;
        }
    }

    /// Decode what is buffered into `dst` (as much as fits), handing each
    /// control frame to `control`. Errors are final.
    pub fn read(
        &mut self,
        dst: &mut ReadBuf<'_>,
        control: &mut dyn FnMut(Control<'_>),
    ) -> Result<Status, InboundError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let before = dst.filled().len();
        match self.decode(dst, control) {
            // What came before the bad frame is served first, as
            // nats-server parses it before it sees the error.
            Err(e) if dst.filled().len() > before => {
                self.failed = Some(e);
                Ok(Status::Data)
            }
            other => other,
        }
    }

    fn decode(
        &mut self,
        dst: &mut ReadBuf<'_>,
        control: &mut dyn FnMut(Control<'_>),
    ) -> Result<Status, InboundError> {
        if self.closed {
            return Ok(Status::Closed);
        }
        let before = dst.filled().len();
        let wrote = |dst: &ReadBuf<'_>| dst.filled().len() > before;
        loop {
            if dst.remaining() == 0 {
                return Ok(Status::Data);
            }
            if let Some(inf) = self.inflater.as_mut().filter(|i| i.active()) {
                let room = dst.initialize_unfilled();
                let n = inf.inflate(room).map_err(InboundError::Inflate)?;
                dst.advance(n);
                continue;
            }
            let room = dst.remaining();
            let (used, frame) = self
                .decoder
                .next(&mut self.raw[self.start..self.end], room)
                .map_err(InboundError::Protocol)?;
            self.start += used;
            match frame {
                Frame::NeedMore => {
                    return Ok(if wrote(dst) {
                        Status::Data
                    } else {
                        Status::NeedInput
                    });
                }
                Frame::Data {
                    bytes,
                    compressed: false,
                    ..
                } => dst.put_slice(bytes),
                Frame::Data {
                    bytes,
                    compressed: true,
                    last,
                } => match self.inflater.as_mut() {
                    Some(inf) => inf.push(bytes, last).map_err(InboundError::Inflate)?,
                    // The decoder refuses RSV1 unless compression was
                    // negotiated, and then there is an inflater.
                    None => {
                        return Err(InboundError::Protocol(ProtocolError(
                            "compressed frame received without negotiated permessage-deflate"
                                .into(),
                        )))
                    }
                },
                Frame::Ping(payload) => control(Control::Pong(payload)),
                Frame::Pong => {}
                Frame::Close { reply } => {
                    self.closed = true;
                    control(Control::Close(reply));
                    return Ok(if wrote(dst) {
                        Status::Data
                    } else {
                        Status::Closed
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::deflate::Deflater;

    fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        crate::websocket::decode::tests::client_frame(b0, payload, [9, 8, 7, 6])
    }

    /// Feed `wire` in reads of `chunk` bytes, reading into a buffer of
    /// `room` bytes; returns the protocol bytes, controls and the end.
    fn drive(
        inb: &mut Inbound,
        wire: &[u8],
        chunk: usize,
        room: usize,
    ) -> (Vec<u8>, Vec<String>, Result<Status, InboundError>) {
        let mut out = Vec::new();
        let mut controls = Vec::new();
        let mut fed = 0;
        let mut buf = vec![0u8; room];
        loop {
            let mut rb = ReadBuf::new(&mut buf);
            let r = inb.read(&mut rb, &mut |c| controls.push(format!("{c:?}")));
            out.extend_from_slice(rb.filled());
            match r {
                Ok(Status::Data) => continue,
                Ok(Status::NeedInput) if fed < wire.len() => {
                    let space = inb.input();
                    let n = chunk.min(space.len()).min(wire.len() - fed);
                    space[..n].copy_from_slice(&wire[fed..fed + n]);
                    inb.filled(n);
                    fed += n;
                }
                other => return (out, controls, other),
            }
        }
    }

    #[test]
    fn streams_protocol_bytes_whatever_the_reads() {
        let body = vec![b'z'; 70_000];
        let mut proto = b"PUB a 70000\r\n".to_vec();
        proto.extend_from_slice(&body);
        proto.extend_from_slice(b"\r\n");
        let mut wire = client_frame(0x02, &proto[..100]);
        wire.extend(client_frame(0x89, b"p"));
        wire.extend(client_frame(0x80, &proto[100..]));
        for (chunk, room) in [(1, 1), (7, 3), (1000, 64 * 1024), (100_000, 100_000)] {
            let mut inb = Inbound::new(false, true, 1 << 20);
            let (out, controls, end) = drive(&mut inb, &wire, chunk, room);
            assert_eq!(end, Ok(Status::NeedInput));
            assert_eq!(out, proto, "chunk {chunk} room {room}");
            assert_eq!(controls, ["Pong([112])"]);
            assert!(inb.raw.len() <= RAW_MAX + 64 * 1024);
        }
    }

    #[test]
    fn compressed_messages() {
        let proto = b"PUB a 5\r\nhello\r\n".repeat(50);
        let mut d = Deflater::default();
        let c = d.compress(&proto).to_vec();
        let mut wire = client_frame(0x42, &c[..10]);
        wire.extend(client_frame(0x80, &c[10..]));
        wire.extend(client_frame(0x82, b"PING\r\n"));
        let mut inb = Inbound::new(true, true, 1 << 20);
        let (out, _, end) = drive(&mut inb, &wire, 5, 17);
        assert_eq!(end, Ok(Status::NeedInput));
        let mut want = proto.clone();
        want.extend_from_slice(b"PING\r\n");
        assert_eq!(out, want);
        // Over max_payload once inflated.
        let mut inb = Inbound::new(true, true, 100);
        let wire = client_frame(0xc2, &c);
        let (_, _, end) = drive(&mut inb, &wire, 1000, 1000);
        assert_eq!(end, Err(InboundError::Inflate(InflateError::TooBig)));
    }

    #[test]
    fn close_ends_reading_after_the_data_before_it() {
        let mut wire = client_frame(0x82, b"PING\r\n");
        wire.extend(client_frame(0x88, &1000u16.to_be_bytes()));
        wire.extend(client_frame(0x82, b"never"));
        let mut inb = Inbound::new(false, true, 1024);
        let (out, controls, end) = drive(&mut inb, &wire, 1000, 1000);
        assert_eq!(out, b"PING\r\n");
        assert_eq!(end, Ok(Status::Closed));
        assert_eq!(controls.len(), 1);
        assert!(controls[0].starts_with("Close"));
    }

    #[test]
    fn protocol_errors_surface_after_the_data_before_them() {
        let mut inb = Inbound::new(false, true, 1024);
        let mut wire = client_frame(0x82, b"PING\r\n");
        wire.extend_from_slice(&[0x82, 0x01, b'x']);
        let (out, _, end) = drive(&mut inb, &wire, 100, 100);
        assert_eq!(out, b"PING\r\n");
        let want = ProtocolError("mask bit missing".into());
        assert_eq!(end, Err(InboundError::Protocol(want)));
    }
}
