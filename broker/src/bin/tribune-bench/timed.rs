//! A wire client whose reads take a deadline, for the clustered JetStream
//! scenarios: a publish whose ack does not come within a few hundred
//! milliseconds is retried, so a read must be able to give up without
//! losing a frame that was half received (the blocking [`crate::wire::Conn`]
//! reads a line at a time and cannot resume one).
//!
//! Frames are parsed in place in one receive buffer; [`Client::next`]
//! hands out views into it, so reading acks allocates nothing per message.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One message received, borrowed from the receive buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Msg<'a> {
    pub subject: &'a [u8],
    /// The status of a header-only status message (`NATS/1.0 503`: no
    /// responders), if it is one.
    pub status: Option<u16>,
    /// The payload after any headers.
    pub payload: &'a [u8],
}

/// Where the parts of one complete frame lie in the buffer.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    /// A message: subject, headers and payload ranges, whole frame length.
    Msg {
        subject: (usize, usize),
        headers: (usize, usize),
        payload: (usize, usize),
        len: usize,
    },
    Ping(usize),
    /// `-ERR` with its text.
    Err(String),
    /// Anything else (`PONG`, `+OK`, `INFO`): skipped.
    Other(usize),
}

/// Parse the frame at the start of `buf`; `None` until it is complete.
fn parse(buf: &[u8]) -> io::Result<Option<Frame>> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = &buf[..eol];
    let body = eol + 2;
    let is = |op: &[u8]| line.len() >= op.len() && line[..op.len()].eq_ignore_ascii_case(op);
    if is(b"MSG ") || is(b"HMSG ") {
        let hmsg = is(b"HMSG ");
        let fields: Vec<(usize, usize)> = fields(line);
        let bad = || io::Error::other(format!("bad frame {:?}", String::from_utf8_lossy(line)));
        let number = |(a, b): (usize, usize)| -> io::Result<usize> {
            std::str::from_utf8(&line[a..b])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)
        };
        // MSG subject sid [reply] size / HMSG subject sid [reply] hsize size
        let min = if hmsg { 5 } else { 4 };
        if fields.len() < min || fields.len() > min + 1 {
            return Err(bad());
        }
        let total = number(fields[fields.len() - 1])?;
        let hdr = if hmsg {
            number(fields[fields.len() - 2])?
        } else {
            0
        };
        if hdr > total {
            return Err(bad());
        }
        let len = body + total + 2;
        if buf.len() < len {
            return Ok(None);
        }
        return Ok(Some(Frame::Msg {
            subject: fields[1],
            headers: (body, body + hdr),
            payload: (body + hdr, body + total),
            len,
        }));
    }
    if is(b"PING") {
        return Ok(Some(Frame::Ping(body)));
    }
    if is(b"-ERR") {
        return Ok(Some(Frame::Err(
            String::from_utf8_lossy(line).trim().to_string(),
        )));
    }
    Ok(Some(Frame::Other(body)))
}

/// Start and end of each whitespace-separated field of `line`.
fn fields(line: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(6);
    let mut start = None;
    for (i, b) in line.iter().enumerate() {
        match (b.is_ascii_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, line.len()));
    }
    out
}

/// The status code of a status message's header block (`NATS/1.0 503\r\n...`).
fn status(headers: &[u8]) -> Option<u16> {
    let rest = headers.strip_prefix(b"NATS/1.0 ")?;
    let code = rest.get(..3)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// A connection with a deadline on every read.
pub struct Client {
    stream: TcpStream,
    /// Receive buffer: bytes `pos..end` are received and not yet parsed.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    out: Vec<u8>,
    /// Numbers the inboxes of [`Client::request`].
    request_seq: u64,
}

impl Client {
    /// Connect and say hello (headers and no-responders on, so a publish
    /// nobody receives is answered with a 503 status at once).
    pub fn connect(addr: SocketAddr, name: &str, timeout: Duration) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| io::Error::new(e.kind(), format!("connecting to {addr}: {e}")))?;
        stream.set_nodelay(true)?;
        let mut c = Client {
            stream,
            buf: vec![0; 1 << 16],
            pos: 0,
            end: 0,
            request_seq: 0,
            out: Vec::with_capacity(1 << 16),
        };
        let connect = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true,\"name\":\"{name}\",\"lang\":\"tribune-bench\",\"version\":\"0\",\"protocol\":1}}\r\nPING\r\n"
        );
        c.out.extend_from_slice(connect.as_bytes());
        c.flush()?;
        c.wait_pong(Instant::now() + timeout)?;
        Ok(c)
    }

    /// Queue a `SUB`.
    pub fn sub(&mut self, subject: &str, sid: u32) {
        self.out
            .extend_from_slice(format!("SUB {subject} {sid}\r\n").as_bytes());
    }

    /// Queue a `PUB` with a reply subject; `reply` is written as given
    /// followed by `reply_suffix` (no allocation for numbered inboxes).
    pub fn publish(&mut self, subject: &str, reply: &str, reply_suffix: u64, payload: &[u8]) {
        // Writes into a Vec cannot fail.
        let _ = write!(
            self.out,
            "PUB {subject} {reply}{reply_suffix} {}\r\n",
            payload.len()
        );
        self.out.extend_from_slice(payload);
        self.out.extend_from_slice(b"\r\n");
    }

    /// Send everything queued.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    /// Send PING and wait for the PONG (or fail at `deadline`), dropping
    /// messages that arrive meanwhile.
    pub fn wait_pong(&mut self, deadline: Instant) -> io::Result<()> {
        self.out.extend_from_slice(b"PING\r\n");
        self.flush()?;
        loop {
            match self.frame(deadline)? {
                None => return Err(io::Error::new(io::ErrorKind::TimedOut, "no PONG in time")),
                Some(Frame::Other(len)) => {
                    let pong = self.buf[self.pos..self.end].starts_with(b"PONG");
                    self.pos += len;
                    if pong {
                        return Ok(());
                    }
                }
                Some(Frame::Msg { len, .. }) => self.pos += len,
                Some(_) => unreachable!("frame() handles PING and -ERR"),
            }
        }
    }

    /// The next message, or `None` once `deadline` passes without one.
    pub fn next(&mut self, deadline: Instant) -> io::Result<Option<Msg<'_>>> {
        loop {
            match self.frame(deadline)? {
                None => return Ok(None),
                Some(Frame::Msg {
                    subject,
                    headers,
                    payload,
                    len,
                }) => {
                    let at = self.pos;
                    self.pos += len;
                    let b = &self.buf[at..self.end];
                    return Ok(Some(Msg {
                        subject: &b[subject.0..subject.1],
                        status: status(&b[headers.0..headers.1]),
                        payload: &b[payload.0..payload.1],
                    }));
                }
                Some(Frame::Other(len)) => self.pos += len,
                Some(_) => unreachable!("frame() handles PING and -ERR"),
            }
        }
    }

    /// The next frame other than PING (answered) and -ERR (an error),
    /// reading until `deadline`. Offsets are relative to `self.pos`, which
    /// the caller advances past it.
    fn frame(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        loop {
            match parse(&self.buf[self.pos..self.end])? {
                Some(Frame::Ping(len)) => {
                    self.pos += len;
                    self.out.extend_from_slice(b"PONG\r\n");
                    self.flush()?;
                }
                Some(Frame::Err(text)) => {
                    return Err(io::Error::other(format!("server said {text}")))
                }
                Some(f) => return Ok(Some(f)),
                None => {
                    if !self.fill(deadline)? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Read more bytes; `false` if `deadline` passed first.
    fn fill(&mut self, deadline: Instant) -> io::Result<bool> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        // Move the partial frame to the front, and grow for a frame larger
        // than the buffer.
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        // set_read_timeout rejects zero; sub-millisecond rests round up.
        self.stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        match self.stream.read(&mut self.buf[self.end..]) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            )),
            Ok(n) => {
                self.end += n;
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// One request: publish `body` to `subject` with a fresh inbox and wait
    /// until `timeout` for the answer (`None`: none came). Other messages
    /// arriving meanwhile are dropped. For the few, untimed `$JS.API` calls.
    pub fn request(
        &mut self,
        subject: &str,
        body: &[u8],
        timeout: Duration,
    ) -> io::Result<Option<Reply>> {
        const SID: u32 = 999_999;
        let deadline = Instant::now() + timeout;
        self.sub("_BENCH_REQ.>", SID);
        self.request_seq += 1;
        let seq = self.request_seq;
        self.publish(subject, "_BENCH_REQ.", seq, body);
        self.flush()?;
        let want = format!("_BENCH_REQ.{seq}");
        let reply = loop {
            match self.next(deadline)? {
                None => break None,
                Some(m) if m.subject == want.as_bytes() => {
                    break Some(Reply {
                        status: m.status,
                        body: String::from_utf8_lossy(m.payload).into_owned(),
                    })
                }
                Some(_) => {}
            }
        };
        self.out
            .extend_from_slice(format!("UNSUB {SID}\r\n").as_bytes());
        self.flush()?;
        Ok(reply)
    }
}

/// The answer to [`Client::request`].
#[derive(Debug, Clone)]
pub struct Reply {
    /// A status message's code (503: no responders).
    pub status: Option<u16>,
    pub body: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg_of(buf: &[u8]) -> (String, Option<u16>, String, usize) {
        match parse(buf).unwrap().unwrap() {
            Frame::Msg {
                subject,
                headers,
                payload,
                len,
            } => (
                String::from_utf8_lossy(&buf[subject.0..subject.1]).into_owned(),
                status(&buf[headers.0..headers.1]),
                String::from_utf8_lossy(&buf[payload.0..payload.1]).into_owned(),
                len,
            ),
            f => panic!("not a message: {f:?}"),
        }
    }

    #[test]
    fn parses_msg_with_and_without_reply() {
        let m = b"MSG a.b 1 5\r\nhello\r\nMSG";
        assert_eq!(msg_of(m), ("a.b".into(), None, "hello".into(), 20));
        let m = b"MSG a.b 1 r.1 2\r\nhi\r\n";
        assert_eq!(msg_of(m), ("a.b".into(), None, "hi".into(), m.len()));
    }

    #[test]
    fn parses_status_messages() {
        let m = b"HMSG _INBOX.7 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n";
        assert_eq!(
            msg_of(m),
            ("_INBOX.7".into(), Some(503), "".into(), m.len())
        );
        let m = b"HMSG s 1 12 14\r\nNATS/1.0\r\n\r\nok\r\n";
        assert_eq!(msg_of(m), ("s".into(), None, "ok".into(), m.len()));
    }

    #[test]
    fn waits_for_whole_frames() {
        let m = b"MSG a.b 1 5\r\nhello\r\n";
        for cut in 0..m.len() {
            assert_eq!(parse(&m[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn other_frames() {
        assert_eq!(parse(b"PING\r\n").unwrap(), Some(Frame::Ping(6)));
        assert_eq!(parse(b"PONG\r\nMSG").unwrap(), Some(Frame::Other(6)));
        assert_eq!(
            parse(b"-ERR 'Stale Connection'\r\n").unwrap(),
            Some(Frame::Err("-ERR 'Stale Connection'".into()))
        );
    }

    /// A frame cut by a read deadline is kept and completed by the next read.
    #[test]
    fn a_deadline_keeps_half_a_frame() {
        use std::io::BufRead;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (go_on, wait) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut r = io::BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while !line.starts_with("PING") {
                line.clear();
                r.read_line(&mut line).unwrap();
            }
            s.write_all(b"PING\r\nPONG\r\nMSG a.b 1 5\r\nhel").unwrap();
            wait.recv().unwrap();
            s.write_all(b"lo\r\nHMSG r 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n")
                .unwrap();
            // The client answered the server's PING.
            line.clear();
            while !line.starts_with("PONG") {
                line.clear();
                r.read_line(&mut line).unwrap();
            }
        });
        let mut c = Client::connect(addr, "test", Duration::from_secs(5)).unwrap();
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(c.next(soon).unwrap().is_none());
        go_on.send(()).unwrap();
        let later = Instant::now() + Duration::from_secs(5);
        let m = c.next(later).unwrap().unwrap();
        assert_eq!(
            (m.subject, m.status, m.payload),
            (&b"a.b"[..], None, &b"hello"[..])
        );
        let m = c.next(later).unwrap().unwrap();
        assert_eq!((m.subject, m.status), (&b"r"[..], Some(503)));
        server.join().unwrap();
    }

    #[test]
    fn rejects_garbage_sizes() {
        assert!(parse(b"MSG a 1 x\r\n").is_err());
        assert!(parse(b"MSG a\r\n").is_err());
        assert!(parse(b"HMSG a 1 9 4\r\n").is_err());
    }
}
