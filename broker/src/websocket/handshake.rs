//! The HTTP/1.1 upgrade (RFC 6455 section 4.2), with nats-server's checks
//! in its order, its HTTP statuses, and its log texts (`websocket handshake
//! error: ...`). nats-server answers through Go's `http.Error`, whose
//! response shape (status text as body, `Sec-Websocket-Version: 13`,
//! `nosniff`) is reproduced; the connection is then closed.
//!
//! The request head is read whole, at most [`MAX_REQUEST_HEAD`] bytes, and
//! parsed by httparse. Data sent before the upgrade response is refused, as
//! nats-server refuses it.

use std::net::IpAddr;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::origin::OriginPolicy;
use super::WebsocketOptions;
use crate::client::CookieCredentials;

/// Largest request head accepted (request line and headers). Browsers
/// stay far below it even with cookies.
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;
/// Most headers a request may have.
const MAX_HEADERS: usize = 100;
/// RFC 6455's key GUID.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const PMC_RESPONSE: &str = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n";
const NO_MASKING_HEADER: &str = "nats-no-masking";

/// A parsed request head: what the checks look at.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The request target's path (absolute-form targets reduced to it).
    pub path: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Names lower-cased, in order, repeated names kept.
    headers: Vec<(String, String)>,
}

impl Request {
    /// Parse a complete head; `Ok(None)` when more bytes are needed,
    /// else the request and the head's length.
    pub fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, String> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let len = match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let target = req.path.unwrap_or("/");
        let path = match target.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
            None => target,
        };
        let path = path
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_string();
        Ok(Some((
            Request {
                method: req.method.unwrap_or_default().to_string(),
                path,
                version: req.version.unwrap_or(1),
                headers: req
                    .headers
                    .iter()
                    .map(|h| {
                        // Spaces and tabs only (RFC 7230's OWS, Go's
                        // textproto): `str::trim` would also drop Unicode
                        // spaces, and take `websocket\u{a0}` for `websocket`.
                        let value = String::from_utf8_lossy(h.value);
                        (
                            h.name.to_ascii_lowercase(),
                            value.trim_matches([' ', '\t']).to_string(),
                        )
                    })
                    .collect(),
            },
            len,
        )))
    }

    /// The first value of a header (Go's `Header.Get`).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// nats-server's `wsHeaderContains`: a comma-separated token of any
    /// value of the header equals `token`, ignoring case.
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim_matches([' ', '\t']).eq_ignore_ascii_case(token))
    }

    /// Cookies as Go's `Request.Cookies` reads them: `name=value` pairs
    /// separated by `;`, surrounding quotes dropped, malformed pairs
    /// skipped.
    fn cookies(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.values("cookie")
            .flat_map(|v| v.split(';'))
            .filter_map(|part| {
                let (name, value) = part.trim_matches([' ', '\t']).split_once('=')?;
                let valid_name = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                let valid_value = value
                    .bytes()
                    .all(|b| (0x20..0x7f).contains(&b) && !matches!(b, b'"' | b';' | b'\\'));
                (valid_name && valid_value).then_some((name, value))
            })
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub enum ReadFailure {
    /// The client closed (or sent nothing at all).
    Closed,
    Io(std::io::Error),
    /// Over [`MAX_REQUEST_HEAD`]: 431.
    TooLarge,
    /// Not HTTP: 400.
    Malformed(String),
    /// Bytes after the head, before our answer: closed without a word,
    /// as nats-server does.
    EarlyData,
}

/// Up to this much of a head, every read is parsed; beyond it, only reads
/// that end a line.
const EAGER_PARSE: usize = 1024;

/// Read one request head from `stream`.
pub async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Request, ReadFailure> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    // How much of `buf` the last parse saw.
    let mut parsed = 0;
    loop {
        let n = stream.read(&mut chunk).await.map_err(ReadFailure::Io)?;
        if n == 0 {
            // Bytes no parse has seen (a long line never ended) still get
            // their verdict: malformed is malformed however it was read.
            if parsed < buf.len() {
                if let Err(e) = Request::parse(&buf) {
                    return Err(ReadFailure::Malformed(e));
                }
            }
            return Err(ReadFailure::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        // Parsed again only when a line has ended, or while the head is
        // short enough that a parse is cheap (so what is not HTTP at all
        // is refused at once): a client dribbling a long line a byte at a
        // time must not make every byte cost a parse of all before it.
        if buf.len() > EAGER_PARSE && memchr::memchr(b'\n', &chunk[..n]).is_none() {
            if buf.len() > MAX_REQUEST_HEAD {
                return Err(ReadFailure::TooLarge);
            }
            continue;
        }
        parsed = buf.len();
        match Request::parse(&buf) {
            // A head that ends in the read that crossed the limit is over
            // it all the same: the verdict must not depend on where the
            // socket reads happened to split it.
            Ok(Some((_, len))) if len > MAX_REQUEST_HEAD => return Err(ReadFailure::TooLarge),
            Ok(Some((req, len))) => {
                return if len < buf.len() {
                    Err(ReadFailure::EarlyData)
                } else {
                    Ok(req)
                };
            }
            Ok(None) if buf.len() > MAX_REQUEST_HEAD => return Err(ReadFailure::TooLarge),
            Ok(None) => {}
            Err(e) => return Err(ReadFailure::Malformed(e)),
        }
    }
}

/// Where a request leads, by its path (nats-server's listener serves
/// leaf nodes on `.../leafnode` and MQTT on `.../mqtt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Client,
    Leafnode,
}

/// An accepted upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    pub endpoint: Endpoint,
    /// permessage-deflate in both directions.
    pub compress: bool,
    /// The client asked to send unmasked frames (`Nats-No-Masking: true`).
    pub no_masking: bool,
    /// A browser (`User-Agent: Mozilla/...`): outbound messages are cut
    /// into 4 KiB frames, which browsers handle better.
    pub browser: bool,
    /// Safari: compressed messages are never fragmented.
    pub no_compressed_fragments: bool,
    /// A valid IP in `X-Forwarded-For`, shown in log lines.
    pub forwarded_for: Option<IpAddr>,
    pub cookies: CookieCredentials,
    /// The `101 Switching Protocols` response to send.
    pub response: Vec<u8>,
}

/// A refused upgrade: the HTTP status, and the reason nats-server logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

impl Refusal {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        Refusal {
            status,
            reason: reason.into(),
        }
    }

    /// The response, in the shape of Go's `http.Error` with nats-server's
    /// `Sec-Websocket-Version` header.
    pub fn response(&self) -> Vec<u8> {
        let text = status_text(self.status);
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT");
        format!(
            "HTTP/1.1 {status} {text}\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Sec-Websocket-Version: 13\r\n\
             X-Content-Type-Options: nosniff\r\n\
             Date: {date}\r\n\
             Content-Length: {len}\r\n\
             Connection: close\r\n\r\n{text}\n",
            status = self.status,
            len = text.len() + 1,
        )
        .into_bytes()
    }
}

/// Go's answer to a request it cannot read at all (before any handler).
pub fn unreadable_response(failure: &ReadFailure) -> Option<Vec<u8>> {
    let (status, body) = match failure {
        ReadFailure::Malformed(_) => (400, "400 Bad Request"),
        ReadFailure::TooLarge => (431, "431 Request Header Fields Too Large"),
        // nats-server has already handed the socket over (hijacked it)
        // when it sees this, and closes it without an answer.
        ReadFailure::EarlyData | ReadFailure::Closed | ReadFailure::Io(_) => return None,
    };
    let text = status_text(status);
    Some(
        format!(
            "HTTP/1.1 {status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n{body}"
        )
        .into_bytes(),
    )
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

/// `Sec-WebSocket-Accept` for a key.
pub fn accept_key(key: &str) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.digest().bytes())
}

/// nats-server's `wsPMCExtensionSupport(..., true)`: is `permessage-deflate`
/// among the offered extensions (or their parameters)?
fn offers_deflate(req: &Request) -> bool {
    req.values("sec-websocket-extensions")
        .flat_map(|v| v.split(','))
        .flat_map(|ext| ext.split(';'))
        .any(|p| {
            p.trim_matches([' ', '\t'])
                .eq_ignore_ascii_case("permessage-deflate")
        })
}

/// Check a request as nats-server's `wsUpgrade` does and build the answer.
/// `tls`: the request came over TLS (for `same_origin`).
pub fn upgrade(
    req: &Request,
    opts: &WebsocketOptions,
    origins: &OriginPolicy,
    tls: bool,
) -> Result<Upgrade, Refusal> {
    let endpoint = if req.path.ends_with("/leafnode") {
        Endpoint::Leafnode
    } else if req.path.ends_with("/mqtt") {
        return Err(Refusal::new(404, "mqtt websocket endpoint not enabled"));
    } else {
        Endpoint::Client
    };
    if req.method != "GET" {
        return Err(Refusal::new(405, "request method must be GET"));
    }
    let host = req.header("host").unwrap_or_default();
    if host.is_empty() {
        return Err(Refusal::new(400, "'Host' missing in request"));
    }
    if !req.has_token("upgrade", "websocket") {
        return Err(Refusal::new(400, "invalid value for header 'Upgrade'"));
    }
    if !req.has_token("connection", "Upgrade") {
        return Err(Refusal::new(400, "invalid value for header 'Connection'"));
    }
    let key = req.header("sec-websocket-key").unwrap_or_default();
    if key.is_empty() {
        return Err(Refusal::new(400, "key missing"));
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(key);
    if !matches!(decoded, Ok(ref k) if k.len() == 16) {
        return Err(Refusal::new(400, "invalid websocket key"));
    }
    if !req.has_token("sec-websocket-version", "13") {
        return Err(Refusal::new(400, "invalid version"));
    }
    let origin = req
        .header("origin")
        .filter(|o| !o.is_empty())
        .or_else(|| req.header("sec-websocket-origin"));
    if let Err(e) = origins.check(origin, host, tls) {
        return Err(Refusal::new(403, format!("origin not allowed: {e}")));
    }
    let compress = opts.compression && offers_deflate(req);
    let no_masking = req.header(NO_MASKING_HEADER) == Some("true");

    let mut response = String::with_capacity(256);
    response.push_str(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    response.push_str(&accept_key(key));
    response.push_str("\r\n");
    if compress {
        response.push_str(PMC_RESPONSE);
    }
    if no_masking {
        response.push_str("Nats-No-Masking: true\r\n");
    }
    for (k, v) in &opts.headers {
        response.push_str(k);
        response.push_str(": ");
        response.push_str(v);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");

    let forwarded_for = req
        .header("x-forwarded-for")
        .and_then(|v| v.parse::<IpAddr>().ok());
    let ua = req.header("user-agent").unwrap_or_default();
    let browser = endpoint == Endpoint::Client && ua.starts_with("Mozilla/");
    let no_compressed_fragments =
        browser && compress && ua.contains("Version/") && ua.contains("Safari/");
    let mut cookies = CookieCredentials::default();
    if endpoint == Endpoint::Client {
        let named = |n: &Option<String>, name: &str| n.as_deref() == Some(name);
        for (name, value) in req.cookies() {
            let slot = if named(&opts.jwt_cookie, name) {
                &mut cookies.jwt
            } else if named(&opts.user_cookie, name) {
                &mut cookies.user
            } else if named(&opts.pass_cookie, name) {
                &mut cookies.pass
            } else if named(&opts.token_cookie, name) {
                &mut cookies.token
            } else {
                continue;
            };
            *slot = Some(value.to_string());
        }
    }
    Ok(Upgrade {
        endpoint,
        compress,
        no_masking,
        browser,
        no_compressed_fragments,
        forwarded_for,
        cookies,
        response: response.into_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn request(extra: &str) -> Request {
        let text = format!(
            "GET /path?x=1 HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        );
        let (r, n) = Request::parse(text.as_bytes()).unwrap().unwrap();
        assert_eq!(n, text.len());
        r
    }

    fn refuse(req: &Request, opts: &WebsocketOptions) -> (u16, String) {
        let origins = OriginPolicy::new(opts.same_origin, &opts.allowed_origins);
        let r = upgrade(req, opts, &origins, false).unwrap_err();
        (r.status, r.reason)
    }

    #[test]
    fn rfc_example_accept_key() {
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn accepts_and_answers_like_nats_server() {
        let opts = WebsocketOptions::default();
        let u = upgrade(&request(""), &opts, &OriginPolicy::default(), false).unwrap();
        assert_eq!(
            String::from_utf8(u.response).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
        assert!(!u.compress && !u.browser && !u.no_masking);
        assert_eq!(u.endpoint, Endpoint::Client);
    }

    #[test]
    fn compression_masking_headers_cookies() {
        let mut opts = WebsocketOptions {
            compression: true,
            token_cookie: Some("tok".into()),
            user_cookie: Some("u".into()),
            ..Default::default()
        };
        opts.headers
            .insert("Strict-Transport-Security".into(), "max-age=1".into());
        let req = request(
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nNats-No-Masking: true\r\nCookie: a=b; tok=\"secret\"; u=me\r\nCookie: u=you\r\nUser-Agent: Mozilla/5.0 (Macintosh) Version/17 Safari/605\r\nX-Forwarded-For: 10.1.2.3\r\n",
        );
        let u = upgrade(&req, &opts, &OriginPolicy::default(), false).unwrap();
        let text = String::from_utf8(u.response).unwrap();
        assert!(text.contains("\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\nNats-No-Masking: true\r\nStrict-Transport-Security: max-age=1\r\n\r\n"), "{text}");
        assert!(u.compress && u.no_masking && u.browser && u.no_compressed_fragments);
        assert_eq!(u.cookies.token.as_deref(), Some("secret"));
        assert_eq!(
            u.cookies.user.as_deref(),
            Some("you"),
            "the last cookie wins"
        );
        assert_eq!(u.forwarded_for, Some("10.1.2.3".parse().unwrap()));
        opts.compression = false;
        let u = upgrade(&req, &opts, &OriginPolicy::default(), false).unwrap();
        assert!(!u.compress && !u.no_compressed_fragments);
    }

    #[test]
    fn refusals_in_nats_server_order() {
        let opts = WebsocketOptions::default();
        let mut r = request("");
        r.method = "POST".into();
        r.path = "/mqtt".into();
        assert_eq!(
            refuse(&r, &opts),
            (404, "mqtt websocket endpoint not enabled".into())
        );
        r.path = "/".into();
        assert_eq!(
            refuse(&r, &opts),
            (405, "request method must be GET".into())
        );
        let without = |name: &str| {
            let mut r = request("");
            r.headers.retain(|(n, _)| n != name);
            r
        };
        let set = |name: &str, value: &str| {
            let mut r = without(name);
            r.headers.push((name.into(), value.into()));
            r
        };
        assert_eq!(
            refuse(&without("host"), &opts),
            (400, "'Host' missing in request".into())
        );
        assert_eq!(
            refuse(&set("upgrade", "h2c"), &opts),
            (400, "invalid value for header 'Upgrade'".into())
        );
        assert_eq!(
            refuse(&without("connection"), &opts),
            (400, "invalid value for header 'Connection'".into())
        );
        assert_eq!(
            refuse(&without("sec-websocket-key"), &opts),
            (400, "key missing".into())
        );
        assert_eq!(
            refuse(&set("sec-websocket-key", "c2hvcnQ="), &opts),
            (400, "invalid websocket key".into())
        );
        assert_eq!(
            refuse(&set("sec-websocket-version", "8"), &opts),
            (400, "invalid version".into())
        );
        let opts = WebsocketOptions {
            allowed_origins: vec!["https://good.example".into()],
            ..Default::default()
        };
        assert_eq!(
            refuse(&request("Origin: http://evil.example\r\n"), &opts),
            (403, "origin not allowed: not in the allowed list".into())
        );
    }

    /// A long header line sent a byte per read is parsed once per line,
    /// not once per byte; the verdict is the same as for one read.
    #[tokio::test]
    async fn dribbled_head_reads_as_a_whole_one() {
        struct OneByte<'a>(&'a [u8]);
        impl tokio::io::AsyncRead for OneByte<'_> {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                if let Some((first, rest)) = self.0.split_first() {
                    buf.put_slice(&[*first]);
                    self.0 = rest;
                }
                std::task::Poll::Ready(Ok(()))
            }
        }
        let long = format!(
            "GET /x HTTP/1.1\r\nHost: h\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(MAX_REQUEST_HEAD / 2)
        );
        let r = read_request(&mut OneByte(long.as_bytes())).await.unwrap();
        assert_eq!(r.path, "/x");
        let over = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_REQUEST_HEAD));
        assert!(matches!(
            read_request(&mut OneByte(over.as_bytes())).await,
            Err(ReadFailure::TooLarge)
        ));
        assert!(matches!(
            read_request(&mut OneByte(b"\x16\x03\x01\x02\x00")).await,
            Err(ReadFailure::Malformed(_))
        ));
        // Past the eager part, a malformed line the client never ends is
        // parsed when it closes (found by the websocket_handshake fuzz
        // target: it read as closed).
        let unended = format!(
            "GET / HTTP/1.1\r\nX-Pad: {}\r\nBad Header",
            "a".repeat(EAGER_PARSE)
        );
        assert!(matches!(
            read_request(&mut OneByte(unended.as_bytes())).await,
            Err(ReadFailure::Malformed(_))
        ));
    }

    /// Found by the websocket_handshake fuzz target (corpus
    /// crash-unicode-space): header values were trimmed of Unicode spaces,
    /// so `Upgrade: websocket` followed by a no-break space (or a version
    /// of `\u{3000}13`) passed checks that nats-server, trimming spaces
    /// and tabs only, fails.
    #[test]
    fn header_values_trimmed_of_spaces_and_tabs_only() {
        let opts = WebsocketOptions::default();
        let r = request("X-Tabbed: \t a b \t\r\n");
        assert_eq!(r.header("x-tabbed"), Some("a b"));
        let head = |upgrade: &str, version: &str| {
            let text = format!(
                "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: {upgrade}\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: {version}\r\n\r\n"
            );
            Request::parse(text.as_bytes()).unwrap().unwrap().0
        };
        assert_eq!(
            refuse(&head("websocket\u{a0}", "13"), &opts),
            (400, "invalid value for header 'Upgrade'".into())
        );
        assert_eq!(
            refuse(&head("websocket", "\u{3000}13"), &opts),
            (400, "invalid version".into())
        );
        let origins = OriginPolicy::default();
        assert!(upgrade(&head("websocket \t", "\t13 "), &opts, &origins, false).is_ok());
    }

    #[test]
    fn error_responses() {
        let text = String::from_utf8(Refusal::new(400, "invalid version").response()).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("\r\nSec-Websocket-Version: 13\r\n"));
        assert!(text.ends_with("\r\n\r\nBad Request\n"));
        assert!(unreadable_response(&ReadFailure::EarlyData).is_none());
        let bad = unreadable_response(&ReadFailure::Malformed("x".into())).unwrap();
        assert!(bad.ends_with(b"\r\n\r\n400 Bad Request"));
    }

    #[tokio::test]
    async fn reading_heads() {
        let text = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let mut rd = &text[..];
        let r = read_request(&mut rd).await.unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/"));
        let mut with_data = text.to_vec();
        with_data.extend_from_slice(&[0x82, 0x80]);
        let mut rd = &with_data[..];
        assert!(matches!(
            read_request(&mut rd).await,
            Err(ReadFailure::EarlyData)
        ));
        let mut rd = &b"\x16\x03\x01\x02\x00"[..];
        assert!(matches!(
            read_request(&mut rd).await,
            Err(ReadFailure::Malformed(_))
        ));
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_REQUEST_HEAD));
        let mut rd = huge.as_bytes();
        assert!(matches!(
            read_request(&mut rd).await,
            Err(ReadFailure::TooLarge)
        ));
        let mut rd = &b""[..];
        assert!(matches!(
            read_request(&mut rd).await,
            Err(ReadFailure::Closed)
        ));
    }

    /// Found by the websocket_handshake fuzz target (corpus
    /// crash-head-over-limit): a complete head a little over the limit was
    /// accepted when it ended in the read that crossed the limit, and
    /// refused (431) when the client paused inside it.
    #[tokio::test]
    async fn head_over_limit_refused_whatever_the_reads() {
        let pad = "a".repeat(MAX_REQUEST_HEAD);
        let text = format!("GET / HTTP/1.1\r\nHost: h\r\nX-Pad: {pad}\r\n\r\n");
        assert!(
            text.len() < MAX_REQUEST_HEAD + 2048,
            "ends in the read after the limit"
        );
        // Read 2 KiB at a time: the head completes in the read that crosses
        // the limit.
        let mut rd = text.as_bytes();
        assert!(matches!(
            read_request(&mut rd).await,
            Err(ReadFailure::TooLarge)
        ));
        // The same head with a pause inside it.
        let (a, b) = text.as_bytes().split_at(MAX_REQUEST_HEAD + 1);
        let mut rd = tokio::io::AsyncReadExt::chain(a, b);
        assert!(matches!(
            read_request(&mut rd).await,
            Err(ReadFailure::TooLarge)
        ));
    }
}
