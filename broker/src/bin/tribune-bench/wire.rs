//! A minimal blocking NATS wire client for load generation.
//!
//! The load generator must not be the bottleneck, so it does not use a
//! general-purpose client: publishers write pre-rendered batches of `PUB`
//! frames with one syscall each, and subscribers scan `MSG` frames in a
//! large buffer, counting them without copying payloads.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One connection, with its read side buffered.
pub struct Conn {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
}

impl Conn {
    /// Connect, read INFO, send CONNECT, and wait for the PONG that proves
    /// the server took it.
    pub fn connect(addr: SocketAddr, name: &str) -> io::Result<Conn> {
        Self::connect_as(addr, name, None)
    }

    /// [`Conn::connect`] with a user and password in the CONNECT.
    pub fn connect_as(
        addr: SocketAddr,
        name: &str,
        user_pass: Option<(&str, &str)>,
    ) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let writer = stream.try_clone()?;
        let mut c = Conn {
            reader: BufReader::with_capacity(1 << 20, stream),
            writer,
        };
        let mut line = String::new();
        c.reader.read_line(&mut line)?;
        if !line.starts_with("INFO ") {
            return Err(io::Error::other(format!("expected INFO, got {line:?}")));
        }
        let creds = match user_pass {
            Some((user, pass)) => format!(",\"user\":\"{user}\",\"pass\":\"{pass}\""),
            None => String::new(),
        };
        let connect = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true,\"name\":\"{name}\",\"lang\":\"tribune-bench\",\"version\":\"0\",\"protocol\":1{creds}}}\r\n"
        );
        c.writer.write_all(connect.as_bytes())?;
        c.ping()?;
        Ok(c)
    }

    /// Send PING and read until PONG: a barrier proving the server has
    /// processed everything sent before it. Returns bytes of other traffic seen.
    pub fn ping(&mut self) -> io::Result<()> {
        self.writer.write_all(b"PING\r\n")?;
        self.wait_pong()
    }

    fn wait_pong(&mut self) -> io::Result<()> {
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = self.reader.read_until(b'\n', &mut line).map_err(|e| {
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) {
                    io::Error::new(e.kind(), "no PONG within the read timeout")
                } else {
                    e
                }
            })?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed",
                ));
            }
            if line.starts_with(b"PONG") {
                return Ok(());
            }
            if line.starts_with(b"-ERR") {
                return Err(io::Error::other(
                    String::from_utf8_lossy(&line).trim().to_string(),
                ));
            }
            if line.starts_with(b"MSG ") || line.starts_with(b"HMSG ") {
                let size = frame_size(&line)?;
                skip(&mut self.reader, size + 2)?;
            }
        }
    }

    pub fn sub(&mut self, subject: &str, queue: Option<&str>, sid: u32) -> io::Result<()> {
        let line = match queue {
            Some(q) => format!("SUB {subject} {q} {sid}\r\n"),
            None => format!("SUB {subject} {sid}\r\n"),
        };
        self.writer.write_all(line.as_bytes())
    }
}

/// The payload size announced by a `MSG`/`HMSG` control line.
pub fn frame_size(line: &[u8]) -> io::Result<usize> {
    let text = std::str::from_utf8(line).map_err(io::Error::other)?;
    text.split_ascii_whitespace()
        .last()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad frame {text:?}")))
}

fn skip<R: Read>(r: &mut R, mut n: usize) -> io::Result<()> {
    let mut buf = [0u8; 8192];
    while n > 0 {
        let k = r.read(&mut buf[..n.min(8192)])?;
        if k == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed",
            ));
        }
        n -= k;
    }
    Ok(())
}

/// Render `count` copies of a PUB frame into one buffer.
pub fn pub_batch(subject: &str, reply: Option<&str>, payload: &[u8], count: usize) -> Vec<u8> {
    let head = match reply {
        Some(r) => format!("PUB {subject} {r} {}\r\n", payload.len()),
        None => format!("PUB {subject} {}\r\n", payload.len()),
    };
    let mut out = Vec::with_capacity(count * (head.len() + payload.len() + 2));
    for _ in 0..count {
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Count `MSG`/`HMSG` frames arriving on `reader` until `want` have arrived.
/// Scans the buffered bytes in place; PINGs from the server are answered.
pub fn count_msgs(conn: &mut Conn, want: u64, mut on_msg: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut got = 0u64;
    let mut line = Vec::with_capacity(256);
    while got < want {
        line.clear();
        // A read timeout surfaces as EAGAIN ("Resource temporarily
        // unavailable"); say what was missing instead.
        let n = conn.reader.read_until(b'\n', &mut line).map_err(|e| {
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                io::Error::new(
                    e.kind(),
                    format!("no message within the read timeout after {got} of {want}"),
                )
            } else {
                e
            }
        })?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("server closed after {got} of {want}"),
            ));
        }
        if line.starts_with(b"MSG ") || line.starts_with(b"HMSG ") {
            let size = frame_size(&line)?;
            let avail = conn.reader.buffer().len();
            if avail >= size + 2 {
                on_msg(&conn.reader.buffer()[..size]);
                conn.reader.consume(size + 2);
            } else {
                let mut body = vec![0u8; size + 2];
                conn.reader.read_exact(&mut body)?;
                on_msg(&body[..size]);
            }
            got += 1;
        } else if line.starts_with(b"PING") {
            conn.writer.write_all(b"PONG\r\n")?;
        } else if line.starts_with(b"-ERR") {
            return Err(io::Error::other(
                String::from_utf8_lossy(&line).trim().to_string(),
            ));
        }
    }
    Ok(got)
}

impl Conn {
    /// One request/reply over this connection: subscribe a private inbox,
    /// publish `body` to `subject` with it as reply, and return the payload
    /// of the first message that arrives there. Used for `$JS.API` calls,
    /// which are few and not timed.
    pub fn request(&mut self, subject: &str, body: &[u8]) -> io::Result<Vec<u8>> {
        const SID: u32 = 999_999;
        let inbox = "_BENCH_API.reply";
        self.writer.write_all(
            format!(
                "SUB {inbox} {SID}\r\nPUB {subject} {inbox} {}\r\n",
                body.len()
            )
            .as_bytes(),
        )?;
        self.writer.write_all(body)?;
        self.writer.write_all(b"\r\n")?;
        let mut line = Vec::new();
        let payload = loop {
            line.clear();
            if self.reader.read_until(b'\n', &mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed",
                ));
            }
            if line.starts_with(b"MSG ") || line.starts_with(b"HMSG ") {
                let size = frame_size(&line)?;
                let mut body = vec![0u8; size + 2];
                self.reader.read_exact(&mut body)?;
                body.truncate(size);
                let sid_ok = std::str::from_utf8(&line)
                    .ok()
                    .and_then(|l| l.split_ascii_whitespace().nth(2))
                    .is_some_and(|s| s == SID.to_string());
                if sid_ok {
                    break body;
                }
            } else if line.starts_with(b"PING") {
                self.writer.write_all(b"PONG\r\n")?;
            } else if line.starts_with(b"-ERR") {
                return Err(io::Error::other(
                    String::from_utf8_lossy(&line).trim().to_string(),
                ));
            }
        };
        self.writer
            .write_all(format!("UNSUB {SID}\r\n").as_bytes())?;
        Ok(payload)
    }
}
