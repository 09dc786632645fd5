//! The WebSocket inbound side (`tribune_broker::websocket::inbound`: frame
//! decoder, unmasking, permessage-deflate) on what a hostile client may
//! send, cut into socket reads wherever the fuzzer likes (see the crate
//! docs for the input layout; the flag bit turns compression on, the
//! limits index picks `max_payload`, whether frames must be masked, and
//! how much room each read of the protocol stream offers).
//!
//! Driven as `WsReader` drives it: raw bytes go into `input()`, `read` is
//! called until it asks for more. Checked:
//! - it never panics, and never loops without progress;
//! - when it asks for more input, what it keeps is less than a frame
//!   header plus a control frame: no input makes it buffer without end
//!   (payloads stream through);
//! - the protocol bytes, the control frames and the end (closed, or the
//!   error's text) are the same whether the stream arrives in one read or
//!   in the fuzzer's pieces, and whatever room the reader offers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokio::io::ReadBuf;
use tribune_broker::websocket::inbound::{Control, Inbound, Status};
use tribune_broker_fuzz::Framed;

/// (max_payload, masks required, room per protocol read).
const LIMITS: [(usize, bool, usize); 8] = [
    (1024 * 1024, true, 64 * 1024),
    (64, true, 1),
    (1, true, 7),
    (1024, false, 512),
    (0, true, 3),
    (100_000, false, 1),
    (16, false, 4096),
    (4096, true, 13),
];

/// The largest a frame header (14) and a control frame (6 + 125) can make
/// the kept bytes while more input is awaited.
const MAX_KEPT: usize = 139;

#[derive(Debug, PartialEq, Eq, Default)]
struct Outcome {
    data: Vec<u8>,
    controls: Vec<String>,
    end: String,
}

fn run(f: &Framed<'_>, chunks: &[&[u8]], room: usize) -> Outcome {
    let (max_payload, masks, _) = LIMITS[f.limits];
    let mut inb = Inbound::new(f.flag, masks, max_payload);
    let mut out = Outcome::default();
    let mut buf = vec![0u8; room];
    let mut next = 0;
    let mut fed_from = 0;
    // Every step either produces data, takes input, or ends; the data a
    // step may produce is bounded by what can inflate from the input, so
    // this bound only catches a loop that makes no progress.
    let mut idle_steps = 0;
    loop {
        let mut rb = ReadBuf::new(&mut buf);
        let mut controls = Vec::new();
        let r = inb.read(&mut rb, &mut |c| {
            controls.push(match c {
                Control::Pong(p) => format!("pong {p:?}"),
                Control::Close(reply) => format!("close {reply:?}"),
            })
        });
        let produced = rb.filled().len();
        out.data.extend_from_slice(rb.filled());
        out.controls.extend(controls);
        match r {
            Err(e) => {
                out.end = format!("error: {e}");
                return out;
            }
            Ok(Status::Closed) => {
                out.end = "closed".into();
                return out;
            }
            Ok(Status::Data) => {
                assert!(produced > 0, "Data without data");
                idle_steps = 0;
            }
            Ok(Status::NeedInput) => {
                assert_eq!(produced, 0, "data while asking for input");
                assert!(
                    inb.buffered() <= MAX_KEPT,
                    "{} bytes kept while waiting for input",
                    inb.buffered()
                );
                // Feed the rest of the current chunk, or the next one.
                let Some(chunk) = chunks.get(next) else {
                    out.end = "need input".into();
                    return out;
                };
                let space = inb.input();
                assert!(!space.is_empty(), "no room for input");
                let n = space.len().min(chunk.len() - fed_from);
                space[..n].copy_from_slice(&chunk[fed_from..fed_from + n]);
                inb.filled(n);
                fed_from += n;
                if fed_from == chunk.len() {
                    next += 1;
                    fed_from = 0;
                }
                idle_steps += 1;
                assert!(idle_steps < 1_000_000, "no progress");
            }
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some(f) = Framed::decode(input) else {
        return;
    };
    let room = LIMITS[f.limits].2;
    let whole = run(&f, &[f.data], 64 * 1024);
    let chunked = run(&f, &f.chunks(), room);
    assert_eq!(whole, chunked, "one read vs the fuzzer's reads");
});
