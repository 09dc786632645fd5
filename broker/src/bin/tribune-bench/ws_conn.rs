//! One NATS client connection over WebSocket (or plain TCP, for the same
//! fleets on the client port), lean enough to run 10,000 of them in the
//! load generator: one read buffer per connection, frames decoded in place
//! ([`crate::ws_frame`]), the NATS protocol scanned from the frames' bytes
//! without copying payloads out, and every read stamped by the kernel
//! ([`crate::rx_stamp`]).
//!
//! Reading ([`WsConn::next_op`]) never writes, so it can be abandoned at
//! any await without cutting a frame in half; the answers to the server's
//! pings wait in a buffer for [`WsConn::flush_replies`].

use std::io;
use std::net::SocketAddr;
use std::time::SystemTime;

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::rx_stamp::{self, CONTROL_LEN};
use crate::ws_frame::{self, Decoder, Frame, OP_BINARY, OP_PONG};

/// First size of a connection's read buffer: an INFO and a few messages.
const READ_BUF: usize = 2048;
/// Longest upgrade response accepted.
const MAX_HEAD: usize = 16 * 1024;

/// An operation from the server and what the kernel says of its arrival.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub op: Op,
    /// The kernel's receive time of the read that completed the operation:
    /// of the newest segment that read took in.
    pub stamp: Option<SystemTime>,
    /// Nothing came after the operation in that read, so the stamp is its
    /// own (a segment that arrived later and was read with it would have
    /// given the read a later stamp).
    pub last: bool,
}

/// A NATS operation the server sent, as far as the benchmark cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Info,
    Msg,
    Pong,
}

/// How a fleet's clients reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The `websocket {}` listener: upgrade, then NATS in binary frames.
    WebSocket,
    /// The client port: NATS protocol bytes as they are.
    Tcp,
}

/// A client connection: upgraded to WebSocket, or plain TCP.
pub struct WsConn {
    stream: TcpStream,
    transport: Transport,
    /// Raw bytes from the socket; `start..end` not decoded yet.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    decoder: Decoder,
    /// NATS protocol bytes out of data frames; `proto_at..` not parsed yet.
    proto: Vec<u8>,
    proto_at: usize,
    control: [u8; CONTROL_LEN],
    /// Frames to send, reused.
    out: Vec<u8>,
    /// Answers to the server's pings, not sent yet.
    replies: Vec<u8>,
    /// The kernel's receive time of the newest read.
    stamp: Option<SystemTime>,
}

impl WsConn {
    /// Connect client `i` to `addr` ([`connect_from_own_address`]) and,
    /// over WebSocket, upgrade and check the server's answer.
    pub async fn open(addr: SocketAddr, transport: Transport, i: u64) -> io::Result<WsConn> {
        let stream = connect_from_own_address(addr, i).await?;
        stream.set_nodelay(true)?;
        rx_stamp::enable(&stream)?;
        let mut c = WsConn {
            stream,
            transport,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            decoder: Decoder::default(),
            proto: Vec::new(),
            proto_at: 0,
            control: [0; CONTROL_LEN],
            out: Vec::new(),
            replies: Vec::new(),
            stamp: None,
        };
        if transport == Transport::Tcp {
            return Ok(c);
        }
        let key = ws_frame::new_key();
        c.stream
            .write_all(ws_frame::upgrade_request(&addr.to_string(), &key).as_bytes())
            .await?;
        let head_len = loop {
            if let Some(i) = memchr::memmem::find(&c.buf[..c.end], b"\r\n\r\n") {
                break i + 4;
            }
            if c.end >= MAX_HEAD {
                return Err(io::Error::other("upgrade response too long"));
            }
            c.read_more().await?;
        };
        ws_frame::check_response(&c.buf[..head_len], &key)?;
        c.start = head_len;
        // Frames may have followed the response in the same read.
        c.decode()?;
        c.flush_replies().await?;
        Ok(c)
    }

    /// Send `bytes` of the NATS protocol (over WebSocket as one masked
    /// binary frame).
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.transport == Transport::Tcp {
            return self.stream.write_all(bytes).await;
        }
        self.out.clear();
        ws_frame::push_masked(&mut self.out, OP_BINARY, bytes);
        self.stream.write_all(&self.out).await
    }

    /// The next operation the server sends. The server's PINGs (NATS and
    /// WebSocket) are answered into [`Self::flush_replies`]'s buffer on the
    /// way. Cancel-safe: dropped at its await, it loses nothing.
    pub async fn next_op(&mut self) -> io::Result<Received> {
        loop {
            while let Some(op) = self.parse_op()? {
                match op {
                    Parsed::Op(op) => {
                        return Ok(Received {
                            op,
                            stamp: self.stamp,
                            last: self.proto_at == self.proto.len() && self.start == self.end,
                        })
                    }
                    Parsed::Ping => match self.transport {
                        Transport::WebSocket => {
                            ws_frame::push_masked(&mut self.replies, OP_BINARY, b"PONG\r\n")
                        }
                        Transport::Tcp => self.replies.extend_from_slice(b"PONG\r\n"),
                    },
                    Parsed::Ignored => {}
                }
            }
            self.read_more().await?;
            self.decode()?;
        }
    }

    /// Send the answers to the server's pings, if any.
    pub async fn flush_replies(&mut self) -> io::Result<()> {
        if !self.replies.is_empty() {
            self.stream.write_all(&self.replies).await?;
            self.replies.clear();
        }
        Ok(())
    }

    /// Read what is there into the buffer (growing it for a large frame),
    /// and remember the kernel's stamp.
    async fn read_more(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() > ws_frame::MAX_FRAME {
                return Err(io::Error::other("frame too large"));
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let end = self.end;
        let n = loop {
            self.stream.readable().await?;
            let (stream, buf, control) = (&self.stream, &mut self.buf, &mut self.control);
            match stream.try_io(Interest::READABLE, || {
                rx_stamp::recv(stream, &mut buf[end..], control)
            }) {
                Ok((n, stamp)) => {
                    self.stamp = stamp.or(self.stamp);
                    break n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        self.end += n;
        Ok(())
    }

    /// Decode every whole frame in the buffer: data to the protocol bytes,
    /// pings into pongs (to be sent), a close into an error. Over TCP all
    /// of it is protocol bytes.
    fn decode(&mut self) -> io::Result<()> {
        if self.transport == Transport::Tcp {
            // No frames: what was read is protocol.
            let (start, end) = (self.start, self.end);
            self.take_proto(start..end);
            self.start = end;
            return Ok(());
        }
        while let Some((frame, n)) = self.decoder.next(&self.buf[self.start..self.end])? {
            let at = self.start;
            match frame {
                Frame::Data(r) => self.take_proto(at + r.start..at + r.end),
                Frame::Ping(r) => ws_frame::push_masked(
                    &mut self.replies,
                    OP_PONG,
                    &self.buf[at + r.start..at + r.end],
                ),
                Frame::Pong => {}
                Frame::Close(code) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("server sent close {code:?}"),
                    ))
                }
            }
            self.start += n;
        }
        Ok(())
    }

    /// The next whole NATS operation in the protocol bytes, if any.
    /// Append `buf[range]` to the protocol bytes not parsed yet, dropping
    /// the parsed ones first.
    fn take_proto(&mut self, range: std::ops::Range<usize>) {
        if self.proto_at == self.proto.len() {
            self.proto.clear();
            self.proto_at = 0;
        } else if self.proto_at >= READ_BUF {
            self.proto.drain(..self.proto_at);
            self.proto_at = 0;
        }
        self.proto.extend_from_slice(&self.buf[range]);
    }

    fn parse_op(&mut self) -> io::Result<Option<Parsed>> {
        let (parsed, used) = match parse(&self.proto[self.proto_at..])? {
            Some(p) => p,
            None => return Ok(None),
        };
        self.proto_at += used;
        Ok(Some(parsed))
    }
}

/// An operation as parsed.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Op(Op),
    Ping,
    /// `+OK` (never asked for, but harmless).
    Ignored,
}

/// Parse the operation at the start of `bytes`: `None` until all of it
/// (for `MSG`, its payload too) is there; else the operation and its length.
fn parse(bytes: &[u8]) -> io::Result<Option<(Parsed, usize)>> {
    let Some(nl) = memchr::memchr(b'\n', bytes) else {
        return Ok(None);
    };
    let line = &bytes[..=nl];
    let parsed = if line.starts_with(b"MSG ") || line.starts_with(b"HMSG ") {
        let size = crate::wire::frame_size(line)?;
        let whole = line.len() + size + 2;
        if bytes.len() < whole {
            return Ok(None);
        }
        return Ok(Some((Parsed::Op(Op::Msg), whole)));
    } else if line.starts_with(b"PING") {
        Parsed::Ping
    } else if line.starts_with(b"PONG") {
        Parsed::Op(Op::Pong)
    } else if line.starts_with(b"INFO ") {
        Parsed::Op(Op::Info)
    } else if line.starts_with(b"+OK") {
        Parsed::Ignored
    } else if line.starts_with(b"-ERR") {
        return Err(io::Error::other(
            String::from_utf8_lossy(line).trim().to_string(),
        ));
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "unexpected from server: {:?}",
                String::from_utf8_lossy(line)
            ),
        ));
    };
    Ok(Some((parsed, line.len())))
}

/// Connect client `i` to `addr`. On loopback, from a source address of
/// its own (127.1.x.y): thousands of connections from one address to one
/// listener make the kernel search the ephemeral ports for a free
/// 4-tuple on every connect, and that search (`__inet_hash_connect`,
/// `__inet_check_established`) was a quarter of the bench's CPU in a
/// 19,000-client storm on one node.
pub async fn connect_from_own_address(addr: SocketAddr, i: u64) -> io::Result<TcpStream> {
    match addr {
        SocketAddr::V4(a) if a.ip().is_loopback() => {
            let socket = tokio::net::TcpSocket::new_v4()?;
            let [_, _, hi, lo] = (i as u32).to_be_bytes();
            socket.bind(SocketAddr::from(([127, 1, hi, lo], 0)))?;
            socket.connect(addr).await
        }
        _ => TcpStream::connect(addr).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operations_only_when_whole() {
        let stream = b"INFO {\"a\":1}\r\nMSG s.x 1 5\r\nhello\r\nPING\r\nPONG\r\n+OK\r\nHMSG s 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n";
        let mut at = 0;
        let mut got = Vec::new();
        while at < stream.len() {
            // No prefix of the next operation parses.
            for cut in at..at + 3 {
                assert_eq!(parse(&stream[at..cut]).unwrap(), None);
            }
            let (p, n) = parse(&stream[at..]).unwrap().unwrap();
            if got.is_empty() {
                assert_eq!(n, 14);
            }
            got.push(p);
            at += n;
        }
        assert_eq!(
            got,
            [
                Parsed::Op(Op::Info),
                Parsed::Op(Op::Msg),
                Parsed::Ping,
                Parsed::Op(Op::Pong),
                Parsed::Ignored,
                Parsed::Op(Op::Msg)
            ]
        );
        assert_eq!(parse(b"MSG s.x 1 5\r\nhel").unwrap(), None);
        assert!(parse(b"-ERR 'Authorization Violation'\r\n").is_err());
        assert!(parse(b"BOGUS\r\n").is_err());
    }
}
