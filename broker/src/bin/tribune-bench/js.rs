//! JetStream scenarios: acknowledged publishing into a file-backed stream,
//! and pull-consumer fetch throughput. Streams and consumers are created
//! with raw `$JS.API` requests over the same minimal wire client, so the
//! measurement covers the server and not a client library.
//!
//! Both servers must run with `jetstream { sync_interval: always }` (see
//! compare.rs): an ack then means the message was fsynced, which is
//! Tribune's default and what the row label says.

use std::io::{self, BufRead, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use crate::scenarios::Outcome;
use crate::wire::{frame_size, pub_batch, Conn};

/// Publishes awaiting their ack at any time.
pub const WINDOW: u64 = 256;
/// Acks to read before topping the window up again (one write per group).
const REFILL: u64 = 32;
/// Messages per pull request.
pub const FETCH_BATCH: u64 = 256;
/// Times the preloaded stream is read, each by a fresh consumer.
pub const FETCH_PASSES: u64 = 10;

const PAYLOAD: [u8; 128] = [b'x'; 128];

/// Send a `$JS.API` request and fail unless the reply is a JSON response
/// without `"error"`.
fn api(c: &mut Conn, subject: &str, body: &str) -> io::Result<String> {
    let reply = c.request(subject, body.as_bytes())?;
    let text = String::from_utf8_lossy(&reply).into_owned();
    if !text.starts_with('{') || text.contains("\"error\"") {
        return Err(io::Error::other(format!("{subject}: {text}")));
    }
    Ok(text)
}

/// (Re)create a file stream `name` on `subject`.
fn fresh_stream(c: &mut Conn, name: &str, subject: &str) -> io::Result<()> {
    // A stream left over from an earlier run: remove it (errors ignored).
    let _ = c.request(&format!("$JS.API.STREAM.DELETE.{name}"), b"");
    api(
        c,
        &format!("$JS.API.STREAM.CREATE.{name}"),
        &format!(
            r#"{{"name":"{name}","subjects":["{subject}"],"storage":"file","retention":"limits"}}"#
        ),
    )?;
    Ok(())
}

fn delete_stream(c: &mut Conn, name: &str) {
    let _ = c.request(&format!("$JS.API.STREAM.DELETE.{name}"), b"");
}

/// Publish `msgs` messages of 128 B to `subject` with reply `ack_inbox`
/// (already subscribed as sid 1), keeping up to WINDOW unacknowledged.
/// Every reply must be a PubAck.
fn publish_acked(c: &mut Conn, subject: &str, ack_inbox: &str, msgs: u64) -> io::Result<()> {
    let one = pub_batch(subject, Some(ack_inbox), &PAYLOAD, 1);
    let window = pub_batch(subject, Some(ack_inbox), &PAYLOAD, WINDOW as usize);
    let mut sent = msgs.min(WINDOW);
    c.writer.write_all(&window[..one.len() * sent as usize])?;
    let mut acked = 0u64;
    let mut bad: Option<String> = None;
    while acked < msgs {
        let want = (sent - acked).min(REFILL);
        read_frames(c, want, |body| {
            if bad.is_none()
                && (!body.starts_with(b"{\"stream\"") || body.windows(7).any(|w| w == b"\"error\""))
            {
                bad = Some(String::from_utf8_lossy(body).into_owned());
            }
        })?;
        if let Some(b) = bad.take() {
            return Err(io::Error::other(format!("publish not acknowledged: {b}")));
        }
        acked += want;
        let more = (msgs - sent).min(want);
        if more > 0 {
            c.writer.write_all(&window[..one.len() * more as usize])?;
            sent += more;
        }
    }
    Ok(())
}

/// Read `n` MSG/HMSG frames, passing each payload (headers included) to `f`.
fn read_frames(c: &mut Conn, n: u64, mut f: impl FnMut(&[u8])) -> io::Result<()> {
    let mut got = 0;
    let mut line = Vec::with_capacity(256);
    while got < n {
        line.clear();
        if c.reader.read_until(b'\n', &mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("server closed after {got} of {n} replies"),
            ));
        }
        if line.starts_with(b"MSG ") || line.starts_with(b"HMSG ") {
            let size = frame_size(&line)?;
            let mut body = vec![0u8; size + 2];
            c.reader.read_exact(&mut body)?;
            f(&body[..size]);
            got += 1;
        } else if line.starts_with(b"PING") {
            c.writer.write_all(b"PONG\r\n")?;
        } else if line.starts_with(b"-ERR") {
            return Err(io::Error::other(
                String::from_utf8_lossy(&line).trim().to_string(),
            ));
        }
    }
    Ok(())
}

/// Acknowledged publishing: msgs/s from the first publish to the last ack.
pub fn publish(addr: SocketAddr, msgs: u64) -> io::Result<Outcome> {
    let mut c = Conn::connect(addr, "bench-js-pub")?;
    fresh_stream(&mut c, "BENCH_PUB", "bench.js.pub")?;
    c.sub("_BENCH.ack", None, 1)?;
    c.ping()?;
    let start = Instant::now();
    publish_acked(&mut c, "bench.js.pub", "_BENCH.ack", msgs)?;
    let elapsed = start.elapsed();
    delete_stream(&mut c, "BENCH_PUB");
    Ok(Outcome {
        rate: Some(msgs as f64 / elapsed.as_secs_f64()),
        elapsed,
        ..Default::default()
    })
}

/// Fetch throughput: preload `msgs` messages (not timed), then drain them
/// FETCH_PASSES times, each through its own durable pull consumer (ack
/// none), in requests of FETCH_BATCH. Several passes over one preload keep
/// the measured part long enough without fsyncing more messages.
pub fn fetch(addr: SocketAddr, msgs: u64) -> io::Result<Outcome> {
    let mut c = Conn::connect(addr, "bench-js-fetch")?;
    fresh_stream(&mut c, "BENCH_FETCH", "bench.js.fetch")?;
    c.sub("_BENCH.ack", None, 1)?;
    c.ping()?;
    publish_acked(&mut c, "bench.js.fetch", "_BENCH.ack", msgs)?;
    for pass in 0..FETCH_PASSES {
        api(
            &mut c,
            &format!("$JS.API.CONSUMER.CREATE.BENCH_FETCH.bench{pass}"),
            &format!(
                r#"{{"stream_name":"BENCH_FETCH","config":{{"durable_name":"bench{pass}","ack_policy":"none","deliver_policy":"all"}}}}"#
            ),
        )?;
    }
    c.sub("_BENCH.fetch", None, 2)?;
    c.ping()?;
    let start = Instant::now();
    for pass in 0..FETCH_PASSES {
        drain(&mut c, &format!("bench{pass}"), msgs)?;
    }
    let elapsed = start.elapsed();
    delete_stream(&mut c, "BENCH_FETCH");
    let total = msgs * FETCH_PASSES;
    Ok(Outcome {
        rate: Some(total as f64 / elapsed.as_secs_f64()),
        elapsed,
        ..Default::default()
    })
}

/// Pull `msgs` messages through `consumer`, one request outstanding.
fn drain(c: &mut Conn, consumer: &str, msgs: u64) -> io::Result<()> {
    let mut got = 0u64;
    let mut bad: Option<String> = None;
    while got < msgs {
        let n = (msgs - got).min(FETCH_BATCH);
        let req = format!(r#"{{"batch":{n},"expires":10000000000}}"#);
        c.writer.write_all(
            format!(
                "PUB $JS.API.CONSUMER.MSG.NEXT.BENCH_FETCH.{consumer} _BENCH.fetch {}\r\n{req}\r\n",
                req.len()
            )
            .as_bytes(),
        )?;
        // The stream holds them all, so each request is filled at once; a
        // status message (HMSG without data) instead means it was not.
        read_frames(c, n, |body| {
            if bad.is_none() && body.starts_with(b"NATS/1.0 ") {
                bad = Some(String::from_utf8_lossy(body).trim().to_string());
            }
        })?;
        if let Some(b) = bad.take() {
            return Err(io::Error::other(format!("pull request ended early: {b}")));
        }
        got += n;
    }
    Ok(())
}
