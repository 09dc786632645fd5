//! The route protocol parser: what one cluster member sends another.
//!
//! Operations: `INFO`, `CONNECT`, `PING`, `PONG`, `+OK`, `-ERR`, interest
//! (`RS+ <acc> <subject> [<queue> <weight>]`, `RS- <acc> <subject> [<queue>]`)
//! and messages (`RMSG <acc> <subject> [reply | + reply q… | | q…] <size>`,
//! with `HMSG` carrying a header length before the total). Like the client
//! parser it is incremental and hands out slices of the read buffer.

use std::ops::Range;

use crate::protocol::parser::{keyword, offset_in, parse_size, snippet, split_args};

#[derive(Debug, PartialEq, Eq)]
pub enum RouteOp<'a> {
    Info(&'a [u8]),
    Connect(&'a [u8]),
    Ping,
    Pong,
    Ok,
    Err(&'a [u8]),
    /// `RS+`: `queue` and `weight` for queue interest.
    Sub {
        account: &'a [u8],
        subject: &'a [u8],
        queue: Option<&'a [u8]>,
        weight: u32,
    },
    /// `RS-`.
    Unsub {
        account: &'a [u8],
        subject: &'a [u8],
        queue: Option<&'a [u8]>,
    },
    /// `RMSG`/`HMSG`. `queues` is the list of queue groups the sender
    /// picked this server for, if any, separated by spaces (or by tabs or
    /// CRs, which nats-server also reads as separators).
    Msg {
        account: &'a [u8],
        subject: &'a [u8],
        reply: Option<&'a [u8]>,
        queues: Option<&'a [u8]>,
        hdr_len: usize,
        body: &'a [u8],
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteParseError {
    UnknownOp(String),
    MaxControlLine(usize),
    BadArgs(String),
}

#[derive(Debug, PartialEq, Eq)]
pub enum RouteStep<'a> {
    Op(RouteOp<'a>, usize),
    NeedMore,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingMsg {
    account: Range<usize>,
    subject: Range<usize>,
    reply: Option<Range<usize>>,
    queues: Option<Range<usize>>,
    hdr_len: usize,
    size: usize,
    body_start: usize,
}

/// Parser state for one route connection.
#[derive(Debug, Default)]
pub struct RouteParser {
    pending: Option<PendingMsg>,
    /// Arguments longer than this are refused. Route lines carry accounts,
    /// replies and queue lists, so the limit is larger than for clients.
    pub max_control_line: usize,
    /// Bodies larger than this are refused before they are buffered.
    pub max_payload: usize,
    /// Interest and messages are only accepted once the peer is registered,
    /// so an unauthenticated connection cannot make us buffer a body.
    pub ready: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Info,
    Connect,
    Ping,
    Pong,
    Ok,
    Err,
    Sub,
    Unsub,
    Rmsg,
    Hmsg,
}

fn bad(what: &str, arg: &[u8]) -> RouteParseError {
    RouteParseError::BadArgs(format!(
        "{what} Parse Error: {:?}",
        String::from_utf8_lossy(arg)
    ))
}

impl RouteParser {
    pub fn new(max_control_line: usize, max_payload: usize) -> Self {
        RouteParser {
            pending: None,
            max_control_line,
            max_payload,
            ready: false,
        }
    }

    pub fn next<'a>(&mut self, buf: &'a [u8]) -> Result<RouteStep<'a>, RouteParseError> {
        if let Some(p) = self.pending.take() {
            return self.body(buf, p);
        }
        let Some(&first) = buf.first() else {
            return Ok(RouteStep::NeedMore);
        };
        let second = buf.get(1).map(u8::to_ascii_uppercase);
        let (kw, kind): (&[u8], Kind) = match (first.to_ascii_uppercase(), second) {
            (_, None) => return Ok(RouteStep::NeedMore),
            (b'I', _) => (b"INFO", Kind::Info),
            (b'C', _) => (b"CONNECT", Kind::Connect),
            (b'P', Some(b'I')) => (b"PING", Kind::Ping),
            (b'P', Some(b'O')) => (b"PONG", Kind::Pong),
            (b'+', _) => (b"+OK", Kind::Ok),
            (b'-', _) => (b"-ERR", Kind::Err),
            (b'R', Some(b'S')) => match buf.get(2) {
                None => return Ok(RouteStep::NeedMore),
                Some(b'+') => (b"RS+", Kind::Sub),
                Some(b'-') => (b"RS-", Kind::Unsub),
                Some(_) => return Err(RouteParseError::UnknownOp(snippet(buf))),
            },
            (b'R', Some(b'M')) => (b"RMSG", Kind::Rmsg),
            (b'H', _) => (b"HMSG", Kind::Hmsg),
            _ => return Err(RouteParseError::UnknownOp(snippet(buf))),
        };
        let after = match keyword(buf, kw) {
            Err(()) => return Err(RouteParseError::UnknownOp(snippet(buf))),
            Ok(None) => return Ok(RouteStep::NeedMore),
            Ok(Some(n)) => n,
        };
        if !self.ready && matches!(kind, Kind::Sub | Kind::Unsub | Kind::Rmsg | Kind::Hmsg) {
            return Err(RouteParseError::BadArgs(
                "route sent interest or messages before it was registered".into(),
            ));
        }
        let Some(nl) = memchr::memchr(b'\n', &buf[after..]) else {
            // A CR that ends the buffer may be the line's end, which does
            // not count against the limit once the LF arrives either.
            let pending = &buf[after..];
            let len = pending.len() - usize::from(pending.ends_with(b"\r"));
            if len > self.max_control_line {
                return Err(RouteParseError::MaxControlLine(len));
            }
            return Ok(RouteStep::NeedMore);
        };
        let line_end = after + nl + 1;
        let mut arg = &buf[after..after + nl];
        if let Some(a) = arg.strip_suffix(b"\r") {
            arg = a;
        }
        if arg.len() > self.max_control_line {
            return Err(RouteParseError::MaxControlLine(arg.len()));
        }
        let trimmed = {
            let start = arg
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t'))
                .unwrap_or(arg.len());
            &arg[start..]
        };
        let op = match kind {
            Kind::Ping => RouteOp::Ping,
            Kind::Pong => RouteOp::Pong,
            Kind::Ok => RouteOp::Ok,
            Kind::Info => RouteOp::Info(trimmed),
            Kind::Connect => RouteOp::Connect(trimmed),
            Kind::Err => RouteOp::Err(trimmed),
            Kind::Sub => {
                let mut a = [&[][..]; 5];
                match split_args(arg, &mut a) {
                    2 => RouteOp::Sub {
                        account: a[0],
                        subject: a[1],
                        queue: None,
                        weight: 0,
                    },
                    4 => {
                        let weight = parse_size(a[3])
                            .and_then(|w| u32::try_from(w).ok())
                            .ok_or_else(|| bad("processRemoteSub", arg))?;
                        RouteOp::Sub {
                            account: a[0],
                            subject: a[1],
                            queue: Some(a[2]),
                            weight,
                        }
                    }
                    _ => return Err(bad("processRemoteSub", arg)),
                }
            }
            Kind::Unsub => {
                let mut a = [&[][..]; 4];
                match split_args(arg, &mut a) {
                    2 => RouteOp::Unsub {
                        account: a[0],
                        subject: a[1],
                        queue: None,
                    },
                    3 => RouteOp::Unsub {
                        account: a[0],
                        subject: a[1],
                        queue: Some(a[2]),
                    },
                    _ => return Err(bad("processRemoteUnsub", arg)),
                }
            }
            Kind::Rmsg | Kind::Hmsg => {
                let p = msg_line(buf, arg, line_end, kind == Kind::Hmsg)?;
                if p.size > self.max_payload {
                    return Err(RouteParseError::BadArgs(format!(
                        "maximum payload exceeded: {} vs {}",
                        p.size, self.max_payload
                    )));
                }
                return self.body(buf, p);
            }
        };
        Ok(RouteStep::Op(op, line_end))
    }

    fn body<'a>(&mut self, buf: &'a [u8], p: PendingMsg) -> Result<RouteStep<'a>, RouteParseError> {
        let end = p.body_start + p.size;
        if buf.len() < end + 2 {
            self.pending = Some(p);
            return Ok(RouteStep::NeedMore);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(RouteParseError::UnknownOp(snippet(&buf[end..])));
        }
        let op = RouteOp::Msg {
            account: &buf[p.account],
            subject: &buf[p.subject],
            reply: p.reply.map(|r| &buf[r]),
            queues: p.queues.map(|r| &buf[r]),
            hdr_len: p.hdr_len,
            body: &buf[p.body_start..end],
        };
        Ok(RouteStep::Op(op, end + 2))
    }
}

/// Parse the arguments of `RMSG`/`HMSG`.
fn msg_line(
    buf: &[u8],
    arg: &[u8],
    body_start: usize,
    hmsg: bool,
) -> Result<PendingMsg, RouteParseError> {
    // Queue lists can be long: split without a fixed cap. The separators
    // are nats-server's: blanks and stray CR/LF, which are never part of a
    // subject, reply or queue name.
    let a: Vec<&[u8]> = arg
        .split(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .filter(|p| !p.is_empty())
        .collect();
    let n = a.len();
    let sizes = if hmsg { 2 } else { 1 };
    if n < 2 + sizes {
        return Err(bad("processRoutedMsgArgs", arg));
    }
    let range = |p: &[u8]| {
        let o = offset_in(buf, p);
        o..o + p.len()
    };
    let (reply, queues) = match n - sizes {
        2 => (None, None),
        3 => (Some(range(a[2])), None),
        _ => {
            let last_queue = a[n - sizes - 1];
            match a[2] {
                b"+" if n - sizes >= 5 => {
                    let first_queue = a[4];
                    let q =
                        offset_in(buf, first_queue)..offset_in(buf, last_queue) + last_queue.len();
                    (Some(range(a[3])), Some(q))
                }
                b"|" => {
                    let first_queue = a[3];
                    let q =
                        offset_in(buf, first_queue)..offset_in(buf, last_queue) + last_queue.len();
                    (None, Some(q))
                }
                _ => return Err(bad("processRoutedMsgArgs", arg)),
            }
        }
    };
    let size = parse_size(a[n - 1]).ok_or_else(|| bad("processRoutedMsgArgs", arg))?;
    let hdr_len = if hmsg {
        parse_size(a[n - 2]).ok_or_else(|| bad("processRoutedHeaderMsgArgs", arg))?
    } else {
        0
    };
    if hdr_len > size {
        return Err(bad("processRoutedHeaderMsgArgs", arg));
    }
    Ok(PendingMsg {
        account: range(a[0]),
        subject: range(a[1]),
        reply,
        queues,
        hdr_len,
        size,
        body_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8]) -> Vec<String> {
        let mut p = RouteParser {
            ready: true,
            ..RouteParser::new(65536, 1 << 20)
        };
        let mut pos = 0;
        let mut out = Vec::new();
        while let RouteStep::Op(op, n) = p.next(&input[pos..]).unwrap() {
            out.push(format!("{op:?}"));
            pos += n;
        }
        out
    }

    fn bytewise(input: &[u8]) -> Vec<String> {
        let mut p = RouteParser {
            ready: true,
            ..RouteParser::new(65536, 1 << 20)
        };
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for &b in input {
            buf.push(b);
            while let RouteStep::Op(op, n) = p.next(&buf).unwrap() {
                out.push(format!("{op:?}"));
                buf.drain(..n);
            }
        }
        out
    }

    #[test]
    fn captured_nats_server_traffic() {
        let input: &[u8] =
            b"INFO {\"server_id\":\"X\"} \r\nCONNECT {\"name\":\"X\"}\r\nPING\r\nPONG\r\n\
            RS+ $G foo\r\nRS+ $G q.sub grp 2\r\nRS- $G foo\r\nRS- $G q.sub grp\r\n\
            RMSG $G foo 5\r\nhello\r\nRMSG $G foo rep.1 5\r\nhello\r\n\
            HMSG $G foo 20 25\r\nNATS/1.0\r\nX-K: v\r\n\r\nhello\r\n\
            RMSG $G q.sub | grp 1\r\nq\r\nRMSG $G q.sub + rr grp g2 1\r\nq\r\n\
            HMSG $G q.sub | grp 20 25\r\nNATS/1.0\r\nX-K: v\r\n\r\nhello\r\n-ERR 'x'\r\n";
        let ops = all(input);
        assert_eq!(ops.len(), 15, "{ops:#?}");
        assert_eq!(ops, bytewise(input));
        let mut p = RouteParser {
            ready: true,
            ..RouteParser::new(4096, 1 << 20)
        };
        match p.next(b"RMSG $G q.sub + rr grp g2 1\r\nq\r\n").unwrap() {
            RouteStep::Op(
                RouteOp::Msg {
                    account,
                    subject,
                    reply,
                    queues,
                    hdr_len,
                    body,
                },
                _,
            ) => {
                assert_eq!(
                    (account, subject, reply, queues, hdr_len, body),
                    (
                        &b"$G"[..],
                        &b"q.sub"[..],
                        Some(&b"rr"[..]),
                        Some(&b"grp g2"[..]),
                        0,
                        &b"q"[..]
                    )
                );
            }
            other => panic!("{other:?}"),
        }
        match p.next(b"RS+ $G q.sub grp 3\r\n").unwrap() {
            RouteStep::Op(RouteOp::Sub { weight, queue, .. }, _) => {
                assert_eq!((weight, queue), (3, Some(&b"grp"[..])))
            }
            other => panic!("{other:?}"),
        }
    }

    /// Found by the `route_protocol` fuzz target: a control line exactly
    /// `max_control_line` long was refused when a read ended between its CR
    /// and LF, and accepted when both came in one read.
    #[test]
    fn a_cr_ending_a_read_is_not_part_of_the_line() {
        let mut p = RouteParser::new(8, 64);
        p.ready = true;
        assert_eq!(p.next(b"RS+ $G abcd\r").unwrap(), RouteStep::NeedMore);
        assert!(matches!(
            p.next(b"RS+ $G abcd\r\n").unwrap(),
            RouteStep::Op(RouteOp::Sub { .. }, 13)
        ));
        assert_eq!(
            p.next(b"RS+ $G abcde\r"),
            Err(RouteParseError::MaxControlLine(9))
        );
    }

    /// Found by the `route_protocol` fuzz target: a CR inside an `RMSG`
    /// line was taken into the subject; nats-server splits there.
    #[test]
    fn msg_arguments_split_where_nats_server_splits() {
        let mut p = RouteParser::new(4096, 1 << 20);
        p.ready = true;
        match p.next(b"RMSG $G fo\ro 1\r\nx\r\n").unwrap() {
            RouteStep::Op(RouteOp::Msg { subject, reply, .. }, _) => {
                assert_eq!((subject, reply), (&b"fo"[..], Some(&b"o"[..])))
            }
            other => panic!("{other:?}"),
        }
        match p.next(b"RMSG $G q | g1\tg2\rg3 1\r\nx\r\n").unwrap() {
            RouteStep::Op(RouteOp::Msg { queues, .. }, _) => {
                assert_eq!(queues, Some(&b"g1\tg2\rg3"[..]))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b"RMSG $G foo\r\n"[..],
            b"RMSG $G foo x y 1\r\n",
            b"RS+ $G\r\n",
            b"RS+ $G a q x\r\n",
            b"HMSG $G a 5 2\r\n",
            b"XYZ\r\n",
        ] {
            assert!(
                RouteParser {
                    ready: true,
                    ..RouteParser::new(4096, 1 << 20)
                }
                .next(bad)
                .is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(
            RouteParser::new(4096, 1 << 20)
                .next(b"RMSG $G a 1\r\nx\r\n")
                .is_err(),
            "not before registration"
        );
        assert!(
            RouteParser {
                ready: true,
                ..RouteParser::new(4096, 10)
            }
            .next(b"RMSG $G a 11\r\n")
            .is_err(),
            "over max payload"
        );
        assert!(matches!(
            RouteParser {
                ready: true,
                ..RouteParser::new(8, 1 << 20)
            }
            .next(b"RS+ $G aaaaaaaaaaaaaaaaa\r\n"),
            Err(RouteParseError::MaxControlLine(_))
        ));
    }
}
