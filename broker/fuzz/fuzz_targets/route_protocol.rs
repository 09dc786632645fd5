//! The route protocol parser (`tribune_broker::route::parser::RouteParser`)
//! on what a hostile cluster peer may send, cut into reads wherever the
//! fuzzer likes (see the crate docs for the input layout; the flag bit is
//! `ready`, whether the peer has registered).
//!
//! It is driven as `route::conn` drives it: each read is appended to the
//! buffer, `next` is called until it says `NeedMore` (which consumes
//! nothing), and each operation's bytes are dropped. Checked, for each
//! limits setting:
//! - it never panics, and every operation consumes at least one byte and
//!   no more than it was given;
//! - the operations respect the limits and their own fields (a body no
//!   larger than `max_payload`, headers inside it, accounts, subjects,
//!   replies and queues non-empty and free of blanks and line ends, no
//!   interest or messages before the peer is registered);
//! - what it asks the caller to keep between reads is bounded by the
//!   limits: a peer cannot make us buffer without end;
//! - the stream parsed in one buffer and read by read yields the same
//!   operations and the same error (errors compare by kind: the snippet and
//!   the length in a control-line error depend on how much had arrived).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tribune_broker::route::parser::{RouteOp, RouteParseError, RouteParser, RouteStep};
use tribune_broker_fuzz::Framed;

/// (max_control_line, max_payload): a route's defaults (16 x the client's
/// control line) first.
const LIMITS: [(usize, usize); 8] = [
    (65536, 1024 * 1024),
    (16, 16),
    (1, 0),
    (64, 8),
    (8, 64),
    (0, 0),
    (4096, 4096),
    (256, 1),
];

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Op(String),
    Err(String),
}

fn error_kind(e: &RouteParseError) -> String {
    match e {
        RouteParseError::UnknownOp(_) => "UnknownOp".into(),
        RouteParseError::MaxControlLine(_) => "MaxControlLine".into(),
        other => format!("{other:?}"),
    }
}

/// A token of a control line: non-empty, no blanks or line ends in it.
fn token(t: &[u8]) -> bool {
    !t.is_empty() && !t.iter().any(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn check_op(p: &RouteParser, op: &RouteOp<'_>) {
    match op {
        RouteOp::Msg {
            account,
            subject,
            reply,
            queues,
            hdr_len,
            body,
        } => {
            assert!(p.ready, "message before registration");
            assert!(token(account) && token(subject), "bad RMSG argument");
            assert!(reply.is_none_or(token), "bad reply");
            assert!(queues.is_none_or(|q| !q.is_empty()), "empty queue list");
            assert!(*hdr_len <= body.len(), "headers longer than the body");
            assert!(body.len() <= p.max_payload, "body over max_payload");
        }
        RouteOp::Sub {
            account,
            subject,
            queue,
            ..
        } => {
            assert!(p.ready, "interest before registration");
            assert!(token(account) && token(subject), "bad RS+ argument");
            assert!(queue.is_none_or(token), "bad queue");
        }
        RouteOp::Unsub {
            account,
            subject,
            queue,
        } => {
            assert!(p.ready, "interest before registration");
            assert!(token(account) && token(subject), "bad RS- argument");
            assert!(queue.is_none_or(token), "bad queue");
        }
        RouteOp::Info(arg) | RouteOp::Connect(arg) | RouteOp::Err(arg) => {
            assert!(
                arg.len() <= p.max_control_line,
                "argument over max_control_line"
            );
        }
        RouteOp::Ping | RouteOp::Pong | RouteOp::Ok => {}
    }
}

fn parser(f: &Framed<'_>) -> RouteParser {
    let (mcl, mp) = LIMITS[f.limits];
    let mut p = RouteParser::new(mcl, mp);
    p.ready = f.flag;
    p
}

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
            Ok(RouteStep::NeedMore) => return out,
            Ok(RouteStep::Op(op, n)) => {
                assert!(n >= 1 && n <= buf.len(), "consumed {n} of {}", buf.len());
                check_op(&p, &op);
                out.push(Event::Op(format!("{op:?}")));
                pos += n;
            }
        }
    }
}

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
                Ok(RouteStep::NeedMore) => break,
                Ok(RouteStep::Op(op, n)) => {
                    assert!(n >= 1 && n <= buf.len(), "consumed {n} of {}", buf.len());
                    check_op(&p, &op);
                    out.push(Event::Op(format!("{op:?}")));
                    buf.drain(..n);
                }
            }
        }
        // Kept between reads: an operation name, a control line (blanks
        // included) with its CRLF, and a body with its CRLF.
        let bound = "CONNECT".len() + mcl + 2 + mp + 2;
        assert!(
            buf.len() <= bound,
            "{} bytes kept between reads (bound {bound})",
            buf.len()
        );
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
