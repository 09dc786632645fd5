//! The WebSocket upgrade (`tribune_broker::websocket::handshake`):
//! `read_request` reading a hostile client's HTTP request head off the
//! socket, cut into reads wherever the fuzzer likes, then `upgrade`
//! checking it against one of eight `websocket {}` option sets
//! (compression, `same_origin`, `allowed_origins`, the `*_cookie` names,
//! extra response headers, `no_auth_user`).
//!
//! Input: the protocol targets' header (see the crate docs; the flag bit
//! says the request came over TLS, the limits index picks the option set),
//! then the request bytes. The settings byte's high nibble (which `Framed`
//! ignores) picks a filler header (`X-Pad: aaa...`) put after the first
//! line, sized around `MAX_REQUEST_HEAD`, so that limit is reachable with
//! libFuzzer's short inputs. Checked:
//! - nothing panics;
//! - the bytes taken off the socket before an answer stay bounded:
//!   `MAX_REQUEST_HEAD` plus one read;
//! - the reads do not change the verdict: the outcome is what httparse
//!   says of the whole stream (a complete head is returned when the
//!   client paused right after it, refused as early data otherwise, 431
//!   when it is over `MAX_REQUEST_HEAD`; an incomplete one is 431 once
//!   past the limit, "closed" below it; a malformed one is 400 or 431);
//! - an upgrade is accepted only when the head, read with RFC 7230's
//!   rules (names ignoring case, values trimmed of spaces and tabs only),
//!   has `GET`, a `Host`, `Upgrade: websocket`, `Connection: upgrade`,
//!   `Sec-WebSocket-Version: 13` and a key that is 16 bytes of base64,
//!   and an origin the policy allows; its response is a 101 whose
//!   `Sec-WebSocket-Accept` is RFC 6455's SHA-1 of that key (computed
//!   here, independently), offers permessage-deflate only when enabled
//!   and asked for, and carries no line the client wrote;
//! - the flags and cookies of an accepted upgrade come from the head
//!   (cookies only under the configured names);
//! - a refusal carries a 4xx status whose response is a well-formed
//!   `http.Error` answer.
#![no_main]

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};
use tribune_broker::websocket::handshake::{
    read_request, unreadable_response, upgrade, Endpoint, ReadFailure, Request, MAX_REQUEST_HEAD,
};
use tribune_broker::websocket::origin::OriginPolicy;
use tribune_broker::websocket::WebsocketOptions;
use tribune_broker_fuzz::Framed;

/// Filler sizes (the settings byte's high nibble); 0 is none.
const PADS: [usize; 16] = [
    0,
    100,
    1000,
    4000,
    MAX_REQUEST_HEAD - 200,
    MAX_REQUEST_HEAD - 64,
    MAX_REQUEST_HEAD - 40,
    MAX_REQUEST_HEAD - 20,
    MAX_REQUEST_HEAD - 9,
    MAX_REQUEST_HEAD,
    MAX_REQUEST_HEAD + 10,
    MAX_REQUEST_HEAD + 1000,
    MAX_REQUEST_HEAD + 4000,
    0,
    20,
    0,
];

fn options(index: usize) -> WebsocketOptions {
    let mut o = WebsocketOptions::default();
    let cookies = |o: &mut WebsocketOptions| {
        o.jwt_cookie = Some("jwt".into());
        o.user_cookie = Some("u".into());
        o.pass_cookie = Some("p".into());
        o.token_cookie = Some("tok".into());
    };
    let allowed = || {
        vec![
            "https://good.example".to_string(),
            "http://localhost:8080".to_string(),
        ]
    };
    match index {
        0 => {}
        1 => o.compression = true,
        2 => o.same_origin = true,
        3 => o.allowed_origins = allowed(),
        4 => {
            o.compression = true;
            cookies(&mut o);
            o.headers
                .insert("Strict-Transport-Security".into(), "max-age=1".into());
        }
        5 => {
            o.compression = true;
            o.same_origin = true;
            o.allowed_origins = allowed();
        }
        6 => {
            cookies(&mut o);
            o.no_auth_user = Some("nobody".into());
            o.username = Some("ws".into());
            o.password = Some("pw".into());
        }
        _ => {
            o.compression = true;
            o.headers.insert("X-Served-By".into(), "tribune".into());
        }
    }
    o
}

/// The request stream, offered in the given pieces; records the reads it
/// gives.
struct Socket<'a> {
    chunks: Vec<&'a [u8]>,
    next: usize,
    offset: usize,
    /// Where each read it gave ended, in stream bytes.
    ends: Vec<usize>,
    taken: usize,
    largest: usize,
}

impl AsyncRead for Socket<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(chunk) = self.chunks.get(self.next).copied() else {
            return Poll::Ready(Ok(()));
        };
        let n = buf.remaining().min(chunk.len() - self.offset);
        buf.put_slice(&chunk[self.offset..self.offset + n]);
        self.offset += n;
        if self.offset == chunk.len() {
            self.next += 1;
            self.offset = 0;
        }
        self.taken += n;
        let taken = self.taken;
        self.ends.push(taken);
        self.largest = self.largest.max(n);
        Poll::Ready(Ok(()))
    }
}

struct Read {
    result: Result<Request, ReadFailure>,
    ends: Vec<usize>,
    taken: usize,
    largest: usize,
}

fn read(chunks: Vec<&[u8]>) -> Read {
    let mut sock = Socket {
        chunks,
        next: 0,
        offset: 0,
        ends: Vec::new(),
        taken: 0,
        largest: 0,
    };
    let result = {
        let mut fut = std::pin::pin!(read_request(&mut sock));
        let mut cx = Context::from_waker(Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(r) => r,
            Poll::Pending => panic!("read_request waits on a socket that is always ready"),
        }
    };
    Read {
        result,
        ends: sock.ends,
        taken: sock.taken,
        largest: sock.largest,
    }
}

/// The header lines of a complete head, RFC 7230 style: (name, value),
/// values trimmed of spaces and tabs.
fn header_lines(head: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        out.push((&line[..colon], trim(&line[colon + 1..])));
    }
    out
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn values<'a>(h: &'a [(&'a [u8], &'a [u8])], name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    h.iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| *v)
}

fn first<'a>(h: &'a [(&'a [u8], &'a [u8])], name: &'a str) -> Option<&'a [u8]> {
    values(h, name).next()
}

/// A comma-separated token of some value of the header.
fn has_token(h: &[(&[u8], &[u8])], name: &str, token: &str) -> bool {
    values(h, name)
        .flat_map(|v| v.split(|&b| b == b','))
        .any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
}

fn contains_ci(hay: &[u8], needle: &str) -> bool {
    hay.to_ascii_lowercase()
        .windows(needle.len())
        .any(|w| w == needle.to_ascii_lowercase().as_bytes())
}

/// SHA-1 (FIPS 180-4), written out here so the accept key is checked
/// against an implementation the broker does not use.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn rfc6455_accept(key: &[u8]) -> String {
    let mut input = key.to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha1(&input))
}

/// The kind of outcome (a request is compared on its own: it may be 64K).
fn describe(r: &Result<Request, ReadFailure>) -> String {
    match r {
        Ok(_) => "request".into(),
        Err(ReadFailure::Closed) => "closed".into(),
        Err(ReadFailure::Io(e)) => format!("io {e}"),
        Err(ReadFailure::TooLarge) => "too large".into(),
        Err(ReadFailure::Malformed(_)) => "malformed".into(),
        Err(ReadFailure::EarlyData) => "early data".into(),
    }
}

/// The outcome fits what httparse says of the whole stream, and the reads
/// stayed bounded.
fn check_read(stream: &[u8], whole: &Result<Option<(Request, usize)>, String>, r: &Read) {
    let outcome = describe(&r.result);
    assert!(
        r.taken <= MAX_REQUEST_HEAD + r.largest,
        "{} bytes taken before an answer (largest read {})",
        r.taken,
        r.largest
    );
    if matches!(r.result, Err(ReadFailure::TooLarge)) {
        assert!(r.taken > MAX_REQUEST_HEAD, "431 after {} bytes", r.taken);
    }
    if let Err(ReadFailure::Malformed(e)) = &r.result {
        assert!(e.len() < 100, "httparse's error text is short: {e:?}");
    }
    if let Some(resp) = r.result.as_ref().err().and_then(unreadable_response) {
        let text = String::from_utf8(resp).expect("ASCII response");
        assert!(
            text.starts_with("HTTP/1.1 400 Bad Request\r\n")
                || text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{text:?}"
        );
    }
    match whole {
        Ok(Some((_, n))) if *n > MAX_REQUEST_HEAD => {
            assert_eq!(outcome, "too large", "a {n}-byte head");
        }
        Ok(Some((req, n))) => {
            if r.ends.contains(n) {
                assert_eq!(outcome, "request", "head of {n} bytes");
                let got = r.result.as_ref().map(|g| format!("{g:?}")).unwrap_or_default();
                assert!(got == format!("{req:?}"), "another request read from a {n}-byte head");
                assert_eq!(r.taken, *n, "read past the head");
            } else {
                assert_eq!(outcome, "early data", "head of {n} bytes, no pause after it");
            }
        }
        Ok(None) => {
            let expect = if stream.len() > MAX_REQUEST_HEAD {
                "too large"
            } else {
                "closed"
            };
            assert_eq!(outcome, expect, "an incomplete head of {} bytes", stream.len());
        }
        Err(_) => {
            assert!(
                outcome == "malformed" || (outcome == "too large" && stream.len() > MAX_REQUEST_HEAD),
                "a malformed head read as {outcome}"
            );
        }
    }
}

fn check_upgrade(head: &[u8], req: &Request, opts: &WebsocketOptions, tls: bool) {
    // Empty lines before the request line are skipped, as RFC 9112 2.2
    // asks of a server (and httparse does): the checks below read what
    // follows them.
    let start = head.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(head.len());
    let head = &head[start..];
    let origins = OriginPolicy::new(opts.same_origin, &opts.allowed_origins);
    let h = header_lines(head);
    let result = upgrade(req, opts, &origins, tls);
    let up = match result {
        Err(refusal) => {
            assert!(
                matches!(refusal.status, 400 | 403 | 404 | 405),
                "status {} ({})",
                refusal.status,
                refusal.reason
            );
            assert!(!refusal.reason.is_empty());
            let resp = String::from_utf8(refusal.response()).expect("ASCII response");
            let status_line = resp.lines().next().unwrap_or_default();
            assert!(
                status_line.starts_with(&format!("HTTP/1.1 {} ", refusal.status))
                    && !status_line.ends_with("Internal Server Error"),
                "{status_line:?}"
            );
            assert!(resp.contains("\r\nSec-Websocket-Version: 13\r\n"), "{resp:?}");
            let (head, body) = resp.split_once("\r\n\r\n").expect("a head and a body");
            assert!(
                head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
                "{resp:?}"
            );
            return;
        }
        Ok(up) => up,
    };

    // The required pieces, read independently.
    assert!(head.starts_with(b"GET "), "accepted a method other than GET");
    assert!(
        first(&h, "host").is_some_and(|v| !v.is_empty()),
        "accepted without a Host"
    );
    assert!(has_token(&h, "upgrade", "websocket"), "accepted without Upgrade: websocket");
    assert!(has_token(&h, "connection", "upgrade"), "accepted without Connection: upgrade");
    assert!(
        has_token(&h, "sec-websocket-version", "13"),
        "accepted without Sec-WebSocket-Version: 13"
    );
    let key = first(&h, "sec-websocket-key").expect("accepted without a key");
    let decoded = base64::engine::general_purpose::STANDARD.decode(key);
    assert!(
        decoded.is_ok_and(|k| k.len() == 16),
        "accepted key {:?} is not 16 bytes of base64",
        String::from_utf8_lossy(key)
    );
    let path_end = head.split(|&b| b == b' ').nth(1).unwrap_or_default();
    assert!(!req.path.ends_with("/mqtt"), "mqtt endpoint accepted");
    assert_eq!(
        up.endpoint == Endpoint::Leafnode,
        req.path.ends_with("/leafnode"),
        "endpoint of {:?}",
        String::from_utf8_lossy(path_end)
    );

    // The origin, when the policy looks at one.
    let origin = first(&h, "origin")
        .filter(|o| !o.is_empty())
        .or_else(|| first(&h, "sec-websocket-origin"))
        .filter(|o| !o.is_empty());
    if let Some(o) = origin {
        if !opts.allowed_origins.is_empty() {
            assert!(
                contains_ci(o, "good.example") || contains_ci(o, "localhost"),
                "origin {:?} accepted, not in the list",
                String::from_utf8_lossy(o)
            );
        }
        if opts.same_origin {
            let host = first(&h, "host").unwrap_or_default();
            let host = host.split(|&b| b == b':').next().unwrap_or_default();
            let host = String::from_utf8_lossy(host).to_ascii_lowercase();
            assert!(
                contains_ci(o, &host),
                "origin {:?} accepted as the same as host {host:?}",
                String::from_utf8_lossy(o)
            );
        }
    }

    // The response.
    let resp = String::from_utf8(up.response.clone()).expect("the response is text");
    let accept = rfc6455_accept(key);
    assert!(
        resp.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{resp:?}"
    );
    assert!(
        resp.contains(&format!("\r\nSec-WebSocket-Accept: {accept}\r\n")),
        "accept key is not SHA-1(key + GUID): {resp:?}"
    );
    assert!(resp.ends_with("\r\n\r\n"), "{resp:?}");
    let lines: Vec<&str> = resp[..resp.len() - 4].split("\r\n").collect();
    for line in &lines[1..] {
        assert!(
            line.contains(": ") && !line.contains(['\r', '\n']),
            "response line {line:?}"
        );
    }
    let offers_deflate = values(&h, "sec-websocket-extensions")
        .flat_map(|v| v.split(|&b| b == b',' || b == b';'))
        .any(|p| trim(p).eq_ignore_ascii_case(b"permessage-deflate"));
    assert_eq!(up.compress, opts.compression && offers_deflate, "compression");
    assert_eq!(
        resp.contains("\r\nSec-WebSocket-Extensions: permessage-deflate;"),
        up.compress
    );
    assert_eq!(
        up.no_masking,
        first(&h, "nats-no-masking") == Some(&b"true"[..]),
        "no masking"
    );
    assert_eq!(resp.contains("\r\nNats-No-Masking: true\r\n"), up.no_masking);
    let ua = first(&h, "user-agent").unwrap_or_default();
    assert_eq!(
        up.browser,
        up.endpoint == Endpoint::Client && ua.starts_with(b"Mozilla/")
    );
    assert!(!up.no_compressed_fragments || (up.browser && up.compress));
    if let Some(ip) = up.forwarded_for {
        let v = first(&h, "x-forwarded-for").expect("forwarded_for without the header");
        assert_eq!(v.to_ascii_lowercase(), ip.to_string().as_bytes().to_ascii_lowercase(), "forwarded for");
    }
    let cookie_headers: Vec<&[u8]> = values(&h, "cookie").collect();
    for (value, name) in [
        (&up.cookies.jwt, &opts.jwt_cookie),
        (&up.cookies.user, &opts.user_cookie),
        (&up.cookies.pass, &opts.pass_cookie),
        (&up.cookies.token, &opts.token_cookie),
    ] {
        let Some(value) = value else { continue };
        assert!(name.is_some(), "a cookie taken under no configured name");
        assert!(up.endpoint == Endpoint::Client, "cookies taken on a leaf node upgrade");
        assert!(
            !value.contains([';', '"', '\\']) && value.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "cookie value {value:?}"
        );
        // An empty value (`u=`) is in any header; `windows(0)` panics.
        assert!(
            value.is_empty()
                || cookie_headers
                    .iter()
                    .any(|c| c.windows(value.len()).any(|w| w == value.as_bytes())),
            "cookie value {value:?} not in a Cookie header"
        );
    }
}

fuzz_target!(|input: &[u8]| {
    let Some(f) = Framed::decode(input) else {
        return;
    };
    let pad = PADS[usize::from(input[0] >> 4)];
    let mut stream = f.data.to_vec();
    if pad > 0 {
        let mut filler = b"X-Pad: ".to_vec();
        filler.resize(filler.len() + pad, b'a');
        filler.extend_from_slice(b"\r\n");
        let at = stream
            .iter()
            .position(|&b| b == b'\n')
            .map_or(stream.len(), |i| i + 1);
        stream.splice(at..at, filler);
    }
    let framed = Framed {
        flag: f.flag,
        limits: f.limits,
        reads: f.reads.clone(),
        data: &stream,
    };
    let whole = Request::parse(&stream);

    // One read of everything (read_request cuts it to its buffer), and the
    // fuzzer's reads.
    check_read(&stream, &whole, &read(vec![&stream[..]]));
    check_read(&stream, &whole, &read(framed.chunks()));

    if let Ok(Some((req, n))) = &whole {
        if *n <= MAX_REQUEST_HEAD {
            check_upgrade(&stream[..*n], req, &options(f.limits), f.flag);
        }
    }
});
