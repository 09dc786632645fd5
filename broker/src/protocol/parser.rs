//! The client protocol parser.
//!
//! It works on the connection's read buffer in place and hands out slices of
//! it, so a message costs no allocation between the socket and the
//! subscribers' outbound buffers. It is incremental: when a buffer ends in the
//! middle of an operation it reports how much it consumed and is called again
//! with more bytes. Its accept/reject decisions mirror nats-server's byte
//! state machine: operation names are case-insensitive, arguments are
//! separated by any run of spaces or tabs, a bad operation name is rejected as
//! soon as the offending byte arrives, and `PING`/`PONG`/`+OK` ignore anything
//! after the name up to the end of the line.

use std::ops::Range;

/// One protocol operation from a client, borrowing from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    Connect(&'a [u8]),
    /// `PUB` or `HPUB`. `msg` is the whole body: headers (the first
    /// `hdr_len` bytes, 0 for `PUB`) followed by the payload.
    Pub {
        subject: &'a [u8],
        reply: Option<&'a [u8]>,
        hdr_len: usize,
        msg: &'a [u8],
        is_hpub: bool,
    },
    Sub {
        subject: &'a [u8],
        queue: Option<&'a [u8]>,
        sid: &'a [u8],
    },
    /// `UNSUB sid [max]`; a malformed max reads as `None`, like nats-server.
    Unsub {
        sid: &'a [u8],
        max: Option<u64>,
    },
    Ping,
    Pong,
    /// `INFO` from a client is accepted and ignored.
    Info,
    Ok,
    Err(&'a [u8]),
}

/// Why the parser gave up. Every variant closes the connection.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum ParseError {
    /// Sent as `-ERR 'Unknown Protocol Operation'`.
    UnknownOp { snippet: String },
    /// Sent as `-ERR 'maximum control line exceeded'`.
    MaxControlLine { len: usize },
    /// Sent as `-ERR 'Maximum Payload Violation'`.
    MaxPayload { size: usize, max: usize },
    /// Malformed arguments: nats-server closes without an `-ERR`.
    BadArgs(String),
}

/// Result of one parser step.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// A complete operation that used `consumed` bytes of the buffer.
    Op(Op<'a>, usize),
    /// Not enough data. Drop `consumed` bytes (0 or more) and call again
    /// when more arrive.
    NeedMore(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Ping,
    Pong,
    Ok,
}

/// A `PUB`/`HPUB` whose control line is parsed and whose body is pending.
/// Offsets are relative to the start of the unconsumed buffer, which the
/// caller keeps in place while the parser waits for the body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingPub {
    subject: Range<usize>,
    reply: Option<Range<usize>>,
    hdr_len: usize,
    size: usize,
    body_start: usize,
    is_hpub: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum State {
    #[default]
    Start,
    /// Discarding the rest of a `PING`/`PONG`/`+OK` line.
    Skipping(Skip),
    /// The operation's name and the blanks after it are consumed; the rest
    /// of its line has not arrived yet.
    Args(Kind),
    Body(PendingPub),
}

/// Parser state for one connection.
#[derive(Debug, Clone)]
pub struct Parser {
    state: State,
    pub max_control_line: usize,
    /// `None` means no limit.
    pub max_payload: Option<usize>,
    /// Whether `HPUB` is allowed (the client asked for headers).
    pub headers: bool,
}

const SNIPPET: usize = 32;

pub(crate) fn snippet(buf: &[u8]) -> String {
    let end = buf.len().min(SNIPPET);
    format!("{:?}", String::from_utf8_lossy(&buf[..end]))
}

fn unknown(buf: &[u8]) -> ParseError {
    ParseError::UnknownOp {
        snippet: snippet(buf),
    }
}

/// Match an upper-case keyword case-insensitively at the start of `buf`.
/// `Ok(None)` means the buffer ended before the keyword did.
#[inline]
pub(crate) fn keyword(buf: &[u8], kw: &[u8]) -> Result<Option<usize>, ()> {
    for (i, k) in kw.iter().enumerate() {
        match buf.get(i) {
            None => return Ok(None),
            Some(b) if b.to_ascii_uppercase() == *k => {}
            Some(_) => return Err(()),
        }
    }
    Ok(Some(kw.len()))
}

/// Split arguments on runs of spaces and tabs (and stray CR/LF, which
/// nats-server also treats as separators for SUB and UNSUB).
pub(crate) fn split_args<'a, const N: usize>(arg: &'a [u8], out: &mut [&'a [u8]; N]) -> usize {
    let mut n = 0;
    for part in arg.split(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
        if part.is_empty() {
            continue;
        }
        if n == out.len() {
            return n + 1;
        }
        out[n] = part;
        n += 1;
    }
    n
}

/// Parse a decimal size the way nats-server does: digits only, no sign, and
/// anything unparsable or overflowing is rejected.
pub fn parse_size(d: &[u8]) -> Option<usize> {
    if d.is_empty() || d.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in d {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    usize::try_from(n).ok()
}

/// Offset of `part` inside `base`; both must come from the same buffer.
pub(crate) fn offset_in(base: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - base.as_ptr() as usize
}

impl Parser {
    pub fn new(max_control_line: usize, max_payload: Option<usize>) -> Self {
        Parser {
            state: State::Start,
            max_control_line,
            max_payload,
            headers: false,
        }
    }

    /// Whether the next byte starts a new operation (the parser is not in
    /// the middle of one): where a server that requires auth looks at the
    /// first byte and refuses anything but `CONNECT` before reading more.
    pub fn at_op_start(&self) -> bool {
        matches!(self.state, State::Start)
    }

    /// Parse the next operation from `buf`, the unconsumed bytes.
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> Result<Step<'a>, ParseError> {
        match std::mem::take(&mut self.state) {
            State::Start => self.start(buf),
            State::Skipping(skip) => Ok(self.skip_line(buf, 0, skip)),
            State::Args(kind) => self.args(buf, 0, kind),
            State::Body(p) => self.body(buf, p),
        }
    }

    fn start<'a>(&mut self, buf: &'a [u8]) -> Result<Step<'a>, ParseError> {
        let Some(&first) = buf.first() else {
            return Ok(Step::NeedMore(0));
        };
        let (kw, kind): (&[u8], Kind) = match first.to_ascii_uppercase() {
            b'P' => match buf.get(1).map(u8::to_ascii_uppercase) {
                None => return Ok(Step::NeedMore(0)),
                Some(b'U') => (b"PUB", Kind::Pub),
                Some(b'I') => (b"PING", Kind::Skip(Skip::Ping)),
                Some(b'O') => (b"PONG", Kind::Skip(Skip::Pong)),
                Some(_) => return Err(unknown(buf)),
            },
            b'H' => (b"HPUB", Kind::HPub),
            b'S' => (b"SUB", Kind::Sub),
            b'U' => (b"UNSUB", Kind::Unsub),
            b'C' => (b"CONNECT", Kind::Connect),
            b'I' => (b"INFO", Kind::Info),
            b'+' => (b"+OK", Kind::Skip(Skip::Ok)),
            b'-' => (b"-ERR", Kind::Err),
            _ => return Err(unknown(buf)),
        };
        let after = match keyword(buf, kw) {
            Err(()) => return Err(unknown(buf)),
            Ok(None) => return Ok(Step::NeedMore(0)),
            Ok(Some(n)) => n,
        };
        if let Kind::Skip(skip) = kind {
            return Ok(self.skip_line(buf, after, skip));
        }
        // Every other operation needs a separator after its name, except
        // CONNECT, which nats-server lets run straight into its argument.
        match buf.get(after) {
            None => return Ok(Step::NeedMore(0)),
            Some(b' ' | b'\t') => {}
            Some(_) if kind == Kind::Connect => {}
            Some(_) => return Err(unknown(buf)),
        }
        self.args(buf, after, kind)
    }

    /// The rest of an operation's line, from `from` (after its name):
    /// blanks, then the arguments up to the end of the line.
    fn args<'a>(&mut self, buf: &'a [u8], from: usize, kind: Kind) -> Result<Step<'a>, ParseError> {
        let arg_start = from
            + buf[from..]
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count();
        let Some(nl) = memchr::memchr(b'\n', &buf[arg_start..]) else {
            // Only the argument so far counts against the limit, as in
            // nats-server: not the blanks before it, nor a CR that may turn
            // out to end the line. The name and the blanks are consumed, so
            // a client sending blanks without end makes us buffer nothing.
            let pending = &buf[arg_start..];
            let len = pending.len() - usize::from(pending.ends_with(b"\r"));
            if len > self.max_control_line {
                return Err(ParseError::MaxControlLine { len });
            }
            self.state = State::Args(kind);
            return Ok(Step::NeedMore(arg_start));
        };
        let line_end = arg_start + nl + 1;
        let mut arg = &buf[arg_start..arg_start + nl];
        if let Some(stripped) = arg.strip_suffix(b"\r") {
            arg = stripped;
        }
        if arg.len() > self.max_control_line {
            return Err(ParseError::MaxControlLine { len: arg.len() });
        }
        match kind {
            Kind::Connect => Ok(Step::Op(Op::Connect(arg), line_end)),
            Kind::Info => Ok(Step::Op(Op::Info, line_end)),
            Kind::Err => Ok(Step::Op(Op::Err(arg), line_end)),
            Kind::Sub => {
                let mut a = [&[][..]; 6];
                match split_args(arg, &mut a) {
                    2 => Ok(Step::Op(
                        Op::Sub {
                            subject: a[0],
                            queue: None,
                            sid: a[1],
                        },
                        line_end,
                    )),
                    3 => Ok(Step::Op(
                        Op::Sub {
                            subject: a[0],
                            queue: Some(a[1]),
                            sid: a[2],
                        },
                        line_end,
                    )),
                    _ => Err(ParseError::BadArgs(format!(
                        "processSub Parse Error: {:?}",
                        String::from_utf8_lossy(arg)
                    ))),
                }
            }
            Kind::Unsub => {
                let mut a = [&[][..]; 6];
                match split_args(arg, &mut a) {
                    1 => Ok(Step::Op(
                        Op::Unsub {
                            sid: a[0],
                            max: None,
                        },
                        line_end,
                    )),
                    2 => Ok(Step::Op(
                        Op::Unsub {
                            sid: a[0],
                            max: parse_size(a[1]).map(|m| m as u64),
                        },
                        line_end,
                    )),
                    _ => Err(ParseError::BadArgs(format!(
                        "processUnsub Parse Error: {:?}",
                        String::from_utf8_lossy(arg)
                    ))),
                }
            }
            Kind::Pub | Kind::HPub => {
                let pending = self.pub_line(buf, arg, line_end, kind == Kind::HPub)?;
                self.body(buf, pending)
            }
            Kind::Skip(_) => unreachable!("handled above"),
        }
    }

    /// Validate a PUB/HPUB control line and remember where its body starts.
    fn pub_line(
        &self,
        buf: &[u8],
        arg: &[u8],
        body_start: usize,
        is_hpub: bool,
    ) -> Result<PendingPub, ParseError> {
        let name = if is_hpub {
            "processHeaderPub"
        } else {
            "processPub"
        };
        let lossy = || String::from_utf8_lossy(arg).into_owned();
        if is_hpub && !self.headers {
            return Err(ParseError::BadArgs("message headers not supported".into()));
        }
        let mut a = [&[][..]; 6];
        let n = split_args(arg, &mut a);
        let (subject, reply, hdr, size) = match (is_hpub, n) {
            (false, 2) => (a[0], None, None, a[1]),
            (false, 3) => (a[0], Some(a[1]), None, a[2]),
            (true, 3) => (a[0], None, Some(a[1]), a[2]),
            (true, 4) => (a[0], Some(a[1]), Some(a[2]), a[3]),
            _ => {
                return Err(ParseError::BadArgs(format!(
                    "{name} Parse Error: {:?}",
                    lossy()
                )))
            }
        };
        let hdr_len = match hdr {
            None => 0,
            Some(h) => parse_size(h).ok_or_else(|| {
                ParseError::BadArgs(format!("{name} Bad or Missing Header Size: {:?}", lossy()))
            })?,
        };
        let size = parse_size(size).ok_or_else(|| {
            let what = if is_hpub { "Total Size" } else { "Size" };
            ParseError::BadArgs(format!("{name} Bad or Missing {what}: {:?}", lossy()))
        })?;
        if hdr_len > size {
            return Err(ParseError::BadArgs(format!(
                "{name} Header Size larger then TotalSize: {:?}",
                lossy()
            )));
        }
        if let Some(max) = self.max_payload {
            if size > max {
                return Err(ParseError::MaxPayload { size, max });
            }
        }
        let range = |p: &[u8]| {
            let o = offset_in(buf, p);
            o..o + p.len()
        };
        Ok(PendingPub {
            subject: range(subject),
            reply: reply.map(range),
            hdr_len,
            size,
            body_start,
            is_hpub,
        })
    }

    fn body<'a>(&mut self, buf: &'a [u8], p: PendingPub) -> Result<Step<'a>, ParseError> {
        let end = p.body_start + p.size;
        if buf.len() < end + 2 {
            // A byte where the CR belongs is already an error.
            if buf.len() > end && buf[end] != b'\r' {
                return Err(unknown(&buf[end..]));
            }
            self.state = State::Body(p);
            return Ok(Step::NeedMore(0));
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(unknown(&buf[end..]));
        }
        let op = Op::Pub {
            subject: &buf[p.subject],
            reply: p.reply.map(|r| &buf[r]),
            hdr_len: p.hdr_len,
            msg: &buf[p.body_start..end],
            is_hpub: p.is_hpub,
        };
        Ok(Step::Op(op, end + 2))
    }

    /// Discard up to and including the end of line, then report the op.
    fn skip_line<'a>(&mut self, buf: &'a [u8], from: usize, skip: Skip) -> Step<'a> {
        match memchr::memchr(b'\n', &buf[from..]) {
            Some(i) => {
                let op = match skip {
                    Skip::Ping => Op::Ping,
                    Skip::Pong => Op::Pong,
                    Skip::Ok => Op::Ok,
                };
                Step::Op(op, from + i + 1)
            }
            None => {
                self.state = State::Skipping(skip);
                Step::NeedMore(buf.len())
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pub,
    HPub,
    Sub,
    Unsub,
    Connect,
    Info,
    Err,
    Skip(Skip),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser() -> Parser {
        let mut p = Parser::new(4096, Some(1024 * 1024));
        p.headers = true;
        p
    }

    /// Feed `input` one byte at a time and collect the ops, as rendered
    /// strings, to prove split reads behave like whole ones.
    fn feed_bytewise(input: &[u8]) -> Result<Vec<String>, ParseError> {
        let mut p = parser();
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for &b in input {
            buf.push(b);
            loop {
                match p.next(&buf)? {
                    Step::Op(op, n) => {
                        out.push(format!("{op:?}"));
                        buf.drain(..n);
                    }
                    Step::NeedMore(n) => {
                        buf.drain(..n);
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    fn feed_whole(input: &[u8]) -> Result<Vec<String>, ParseError> {
        let mut p = parser();
        let mut pos = 0;
        let mut out = Vec::new();
        loop {
            match p.next(&input[pos..])? {
                Step::Op(op, n) => {
                    out.push(format!("{op:?}"));
                    pos += n;
                }
                Step::NeedMore(_) => return Ok(out),
            }
        }
    }

    #[test]
    fn whole_and_split_reads_agree() {
        let input: &[u8] = b"CONNECT {\"verbose\":false}\r\nsub foo.* 1\r\nSUB  bar\tq  2\r\nPUB foo.x 5\r\nhello\r\n\
            pub foo.y reply 0\r\n\r\nHPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\npong extra\r\nUNSUB 1 5\r\nUNSUB 2\r\n+OK\r\n";
        let whole = feed_whole(input).unwrap();
        assert_eq!(whole.len(), 11, "{whole:#?}");
        assert_eq!(whole, feed_bytewise(input).unwrap());
    }

    #[test]
    fn pub_fields() {
        let mut p = parser();
        let buf = b"PUB a.b r.1 3\r\nabc\r\n";
        match p.next(buf).unwrap() {
            Step::Op(
                Op::Pub {
                    subject,
                    reply,
                    hdr_len,
                    msg,
                    is_hpub,
                },
                n,
            ) => {
                assert_eq!(
                    (subject, reply, hdr_len, msg, is_hpub, n),
                    (
                        &b"a.b"[..],
                        Some(&b"r.1"[..]),
                        0,
                        &b"abc"[..],
                        false,
                        buf.len()
                    )
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_ops_fail_fast() {
        for bad in [
            &b"FOO\r\n"[..],
            b"PX",
            b"PUBX foo 1\r\n",
            b"MSG foo 1 1\r\n",
            b"SUBfoo 1\r\n",
            b"*",
        ] {
            assert!(
                matches!(parser().next(bad), Err(ParseError::UnknownOp { .. })),
                "{bad:?}"
            );
        }
        // Partial but valid so far.
        assert_eq!(parser().next(b"PU").unwrap(), Step::NeedMore(0));
        assert_eq!(parser().next(b"CONNEC").unwrap(), Step::NeedMore(0));
    }

    #[test]
    fn payload_size_mismatch_is_unknown_op() {
        assert!(matches!(
            feed_whole(b"PUB foo 3\r\nabcd\r\n"),
            Err(ParseError::UnknownOp { .. })
        ));
        assert!(matches!(
            feed_bytewise(b"PUB foo 3\r\nabcd\r\n"),
            Err(ParseError::UnknownOp { .. })
        ));
    }

    #[test]
    fn limits() {
        let mut p = Parser::new(16, Some(10));
        assert_eq!(
            p.next(b"PUB foo 11\r\n"),
            Err(ParseError::MaxPayload { size: 11, max: 10 })
        );
        let mut p = Parser::new(16, Some(10));
        assert!(matches!(
            p.next(b"SUB aaaaaaaaaaaaaaaaaaaaaaaaa"),
            Err(ParseError::MaxControlLine { .. })
        ));
        let mut p = Parser::new(16, Some(10));
        assert!(matches!(
            p.next(b"SUB aaaaaaaaaaaaaaaaaaaaaaaaa 1\r\n"),
            Err(ParseError::MaxControlLine { .. })
        ));
    }

    #[test]
    fn bad_arguments() {
        for bad in [
            &b"PUB foo\r\n"[..],
            b"PUB foo bar\r\n",
            b"PUB a b c d\r\n",
            b"SUB foo\r\n",
            b"UNSUB\t\r\n",
            b"HPUB foo 10 5\r\n",
            b"PUB foo -1\r\n",
        ] {
            assert!(
                matches!(parser().next(bad), Err(ParseError::BadArgs(_))),
                "{bad:?}"
            );
        }
        let mut p = Parser::new(4096, None);
        assert!(
            matches!(p.next(b"HPUB foo 2 2\r\n"), Err(ParseError::BadArgs(_))),
            "headers not negotiated"
        );
    }

    #[test]
    fn unsub_bad_max_means_now() {
        assert_eq!(
            parser().next(b"UNSUB 1 x\r\n").unwrap(),
            Step::Op(
                Op::Unsub {
                    sid: b"1",
                    max: None
                },
                11
            )
        );
    }

    #[test]
    fn ping_skips_long_tails_without_buffering() {
        let mut p = parser();
        assert_eq!(p.next(b"PING xxxxxxxx").unwrap(), Step::NeedMore(13));
        assert_eq!(p.next(b"yyyy").unwrap(), Step::NeedMore(4));
        assert_eq!(p.next(b"z\nPONG\n").unwrap(), Step::Op(Op::Ping, 2));
    }

    /// nats-server skips the blanks after an operation's name without
    /// keeping them; so do we, or a client sending `SUB` and then blanks
    /// without end would make the connection buffer without end (the
    /// `client_protocol` fuzz target's bound on what is kept between reads
    /// catches it).
    #[test]
    fn blanks_after_the_name_are_not_buffered() {
        let mut p = Parser::new(4, Some(16));
        assert_eq!(p.next(b"SUB  ").unwrap(), Step::NeedMore(5));
        for _ in 0..1000 {
            assert_eq!(p.next(b" \t  ").unwrap(), Step::NeedMore(4));
        }
        assert!(!p.at_op_start(), "still inside the SUB");
        assert_eq!(p.next(b"a 1").unwrap(), Step::NeedMore(0));
        assert_eq!(
            p.next(b"a 1\r\n").unwrap(),
            Step::Op(
                Op::Sub {
                    subject: b"a",
                    queue: None,
                    sid: b"1"
                },
                5
            )
        );
        assert!(p.at_op_start());
        // A body whose control line arrived in pieces.
        let mut p = parser();
        assert_eq!(p.next(b"PUB ").unwrap(), Step::NeedMore(4));
        assert_eq!(p.next(b"foo 2\r\nh").unwrap(), Step::NeedMore(0));
        match p.next(b"foo 2\r\nhi\r\n").unwrap() {
            Step::Op(Op::Pub { subject, msg, .. }, 11) => {
                assert_eq!((subject, msg), (&b"foo"[..], &b"hi"[..]))
            }
            other => panic!("{other:?}"),
        }
    }

    /// Found by the `client_protocol` fuzz target: a control line exactly
    /// `max_control_line` long was refused when a read ended between its CR
    /// and LF, and accepted when both came in one read. nats-server does not
    /// count the CR in either case.
    #[test]
    fn a_cr_ending_a_read_is_not_part_of_the_argument() {
        let mut p = Parser::new(5, Some(16));
        assert_eq!(p.next(b"SUB ab 12\r").unwrap(), Step::NeedMore(4));
        assert!(matches!(
            p.next(b"ab 12\r\n").unwrap(),
            Step::Op(Op::Sub { .. }, 7)
        ));
        let mut p = Parser::new(5, Some(16));
        assert_eq!(
            p.next(b"SUB ab 123\r"),
            Err(ParseError::MaxControlLine { len: 6 })
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size(b"0"), Some(0));
        assert_eq!(parse_size(b"1048576"), Some(1048576));
        assert_eq!(parse_size(b""), None);
        assert_eq!(parse_size(b"-1"), None);
        assert_eq!(parse_size(b"99999999999999999999"), None);
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic fuzz: random bytes biased toward protocol text.
        let alphabet = b"PUBSHCONECTIGRKUXM+-* .\t\r\n0123456789{}";
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..2000 {
            let mut buf = Vec::new();
            for _ in 0..(x % 64) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let _ = feed_whole(&buf);
            let _ = feed_bytewise(&buf);
        }
    }
}
