//! The client protocol parser (`tribune_broker::protocol::Parser`) on what
//! a hostile client may send, cut into reads wherever the fuzzer likes (see
//! the crate docs for the input layout).
//!
//! It is driven as `client::conn` drives it: each read is appended to the
//! unconsumed bytes, `next` is called until it says `NeedMore(consumed)`,
//! and the bytes it consumed are dropped. Checked, for each limits setting
//! (nats-server's defaults, tiny ones, no payload limit):
//! - it never panics, never reports consuming more than it was given, and
//!   every operation consumes at least one byte;
//! - the operations it returns respect the limits and their own fields
//!   (a body no larger than `max_payload`, headers inside the body,
//!   subjects, replies, queues and sids non-empty and free of blanks and
//!   line ends, `HPUB` only with headers on);
//! - what it asks the caller to keep between reads stays bounded by the
//!   limits (plus the last read): no input makes the connection buffer
//!   without end;
//! - the stream parsed in one buffer and parsed read by read yields the same
//!   operations and the same error, since the parser is incremental by
//!   design. Errors compare by kind: the snippet of an unknown operation
//!   and the length in a control-line error depend on how much had arrived.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tribune_broker::protocol::{Op, ParseError, Parser, Step};
use tribune_broker_fuzz::Framed;

/// (max_control_line, max_payload): nats-server's defaults first.
const LIMITS: [(usize, Option<usize>); 8] = [
    (4096, Some(1024 * 1024)),
    (16, Some(16)),
    (1, Some(0)),
    (32, None),
    (64, Some(8)),
    (8, Some(64)),
    (0, Some(0)),
    (4096, None),
];

/// What the parser reported, owned so two runs can be compared.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Op(String),
    Err(String),
}

fn error_kind(e: &ParseError) -> String {
    match e {
        ParseError::UnknownOp { .. } => "UnknownOp".into(),
        ParseError::MaxControlLine { .. } => "MaxControlLine".into(),
        other => format!("{other:?}"),
    }
}

/// A token of a control line: non-empty, no blanks or line ends in it.
fn token(t: &[u8]) -> bool {
    !t.is_empty() && !t.iter().any(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn check_op(p: &Parser, op: &Op<'_>) {
    match op {
        Op::Pub {
            subject,
            reply,
            hdr_len,
            msg,
            is_hpub,
        } => {
            assert!(token(subject), "bad subject");
            assert!(reply.is_none_or(token), "bad reply");
            assert!(*hdr_len <= msg.len(), "headers longer than the message");
            assert!(!is_hpub || p.headers, "HPUB without headers");
            assert!(*is_hpub || *hdr_len == 0, "PUB with headers");
            if let Some(max) = p.max_payload {
                assert!(msg.len() <= max, "body over max_payload");
            }
        }
        Op::Sub {
            subject,
            queue,
            sid,
        } => {
            assert!(token(subject) && token(sid), "bad SUB argument");
            assert!(queue.is_none_or(token), "bad queue");
        }
        Op::Unsub { sid, .. } => assert!(token(sid), "bad sid"),
        Op::Connect(arg) | Op::Err(arg) => {
            assert!(
                arg.len() <= p.max_control_line,
                "argument over max_control_line"
            );
        }
        Op::Ping | Op::Pong | Op::Info | Op::Ok => {}
    }
}

fn parser(f: &Framed<'_>) -> Parser {
    let (mcl, mp) = LIMITS[f.limits];
    let mut p = Parser::new(mcl, mp);
    p.headers = f.flag;
    p
}

/// The whole stream in one buffer.
fn whole(f: &Framed<'_>) -> Vec<Event> {
    let mut p = parser(f);
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let buf = &f.data[pos..];
        match p.next(buf) {
            Err(e) => {
                out.push(Event::Err(error_kind(&e)));
                return out;
            }
            Ok(Step::NeedMore(n)) => {
                assert!(n <= buf.len(), "consumed {n} of {}", buf.len());
                return out;
            }
            Ok(Step::Op(op, n)) => {
                assert!(n >= 1 && n <= buf.len(), "consumed {n} of {}", buf.len());
                check_op(&p, &op);
                out.push(Event::Op(format!("{op:?}")));
                pos += n;
            }
        }
    }
}

/// Read by read, as the connection does.
fn chunked(f: &Framed<'_>) -> Vec<Event> {
    let mut p = parser(f);
    let (mcl, mp) = LIMITS[f.limits];
    let mut out = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    for chunk in f.chunks() {
        buf.extend_from_slice(chunk);
        loop {
            match p.next(&buf) {
                Err(e) => {
                    out.push(Event::Err(error_kind(&e)));
                    return out;
                }
                Ok(Step::NeedMore(n)) => {
                    assert!(n <= buf.len(), "consumed {n} of {}", buf.len());
                    buf.drain(..n);
                    break;
                }
                Ok(Step::Op(op, n)) => {
                    assert!(n >= 1 && n <= buf.len(), "consumed {n} of {}", buf.len());
                    check_op(&p, &op);
                    out.push(Event::Op(format!("{op:?}")));
                    buf.drain(..n);
                }
            }
        }
        // Kept between reads: at most an operation name, one read's worth
        // of blanks, a control line with its CRLF, and a body with its CRLF.
        if let Some(mp) = mp {
            let bound = "CONNECT".len() + f.max_read() + mcl + 2 + mp + 2;
            assert!(
                buf.len() <= bound,
                "{} bytes kept between reads (bound {bound})",
                buf.len()
            );
        }
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Some(f) = Framed::decode(input) else {
        return;
    };
    let whole = whole(&f);
    let chunked = chunked(&f);
    assert_eq!(whole, chunked, "one buffer vs read by read");
});
