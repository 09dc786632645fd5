//! The `websocket {}` (alias `ws`) block, with nats-server's keys, aliases
//! and value rules (`parseWebsocket`), and its cross-option checks
//! (`validateWebsocketOptions`), which [`problems`] words as nats-server
//! does. Every key nats-server knows is implemented; anything else is an
//! unknown field.

use std::time::Duration;

use super::apply::{checked_port, listen, Ctx};
use super::value::{Node, Value};
use crate::options::Options;

pub(super) fn websocket(opts: &mut Options, cx: &mut Ctx, key: &str, node: &Node) {
    let Some(map) = node.value.as_map() else {
        cx.error(
            &node.pos,
            format!(
                "Expected websocket to be a map, got {}",
                node.value.type_name()
            ),
        );
        return;
    };
    let ws = &mut opts.websocket;
    for (k, v) in map.iter() {
        match k.to_ascii_lowercase().as_str() {
            "listen" => {
                if let Some((host, port)) = listen(cx, k, v) {
                    ws.host = host;
                    if let Some(p) = ws_port(cx, v, port) {
                        ws.port = p;
                    }
                }
            }
            "port" => {
                if let Some(p) = cx.int(k, v).and_then(|p| ws_port(cx, v, p)) {
                    ws.port = p;
                }
            }
            "host" | "net" => ws.host = cx.string(k, v).unwrap_or_default(),
            "advertise" => ws.advertise = cx.string(k, v),
            "no_tls" => ws.no_tls = cx.bool(k, v).unwrap_or(ws.no_tls),
            "tls" => {
                ws.tls =
                    super::tls::tls_block(cx, &format!("{key}.{k}"), v, super::tls::TlsUse::Client)
            }
            "same_origin" => ws.same_origin = cx.bool(k, v).unwrap_or(ws.same_origin),
            "allowed_origins" | "allowed_origin" | "allow_origins" | "allow_origin" | "origins"
            | "origin" => {
                ws.allowed_origins = super::accounts::strings(cx, k, v).unwrap_or_default()
            }
            "handshake_timeout" => {
                if let Some(d) = handshake_timeout(cx, v) {
                    ws.handshake_timeout = d;
                }
            }
            "compress" | "compression" => ws.compression = cx.bool(k, v).unwrap_or(ws.compression),
            "authorization" | "authentication" => authorization(cx, v, ws),
            "jwt_cookie" => ws.jwt_cookie = cx.string(k, v),
            "user_cookie" => ws.user_cookie = cx.string(k, v),
            "pass_cookie" => ws.pass_cookie = cx.string(k, v),
            "token_cookie" => ws.token_cookie = cx.string(k, v),
            "no_auth_user" => ws.no_auth_user = cx.string(k, v),
            "headers" => headers(cx, v, ws),
            "ping_interval" => {
                if let Some(d) = cx.duration(k, v) {
                    ws.ping_interval = d;
                }
            }
            _ => cx.unknown(k, v),
        }
    }
}

/// `port: -1` picks a random port, `0` leaves the listener off.
fn ws_port(cx: &mut Ctx, node: &Node, v: i64) -> Option<Option<u16>> {
    match v {
        -1 => Some(Some(0)),
        0 => Some(None),
        _ => checked_port(cx, node, v).map(Some),
    }
}

/// Seconds as an integer, or a Go duration string. A negative duration is
/// no limit to nats-server; here it means the default limit.
fn handshake_timeout(cx: &mut Ctx, v: &Node) -> Option<Duration> {
    match &v.value {
        Value::Int(i) => Some(Duration::from_secs(u64::try_from(*i).unwrap_or(0))),
        Value::String(s) => match super::parse_go_duration(s) {
            Ok((true, _)) => Some(Duration::ZERO),
            Ok((false, d)) => Some(d),
            Err(e) => {
                cx.error(&v.pos, e.to_string());
                None
            }
        },
        other => {
            cx.error(
                &v.pos,
                format!(
                    "error parsing handshake timeout: unsupported type {}",
                    other.type_name()
                ),
            );
            None
        }
    }
}

/// nats-server's `parseSimpleAuth`: one user or a token, and a timeout.
fn authorization(cx: &mut Ctx, node: &Node, ws: &mut crate::websocket::WebsocketOptions) {
    let Some(map) = node.value.as_map() else {
        cx.error(
            &node.pos,
            format!(
                "Expected map to define authorization, got {}",
                node.value.type_name()
            ),
        );
        return;
    };
    for (k, v) in map.iter() {
        match k.to_ascii_lowercase().as_str() {
            "user" | "username" => ws.username = cx.string(k, v),
            "pass" | "password" => ws.password = cx.string(k, v),
            "token" => ws.token = cx.string(k, v),
            "timeout" => {
                // nats-server takes a number of seconds, and any other
                // value as one second.
                let secs = match v.value {
                    Value::Int(i) => i as f64,
                    Value::Float(f) => f,
                    _ => 1.0,
                };
                if secs.is_finite() && (0.0..=1e9).contains(&secs) {
                    ws.auth_timeout = Duration::from_secs_f64(secs);
                } else {
                    cx.error(
                        &v.pos,
                        "error parsing authorization config, 'timeout' out of range",
                    );
                }
            }
            _ => cx.unknown(k, v),
        }
    }
}

/// `headers { Name: value }` for the upgrade response.
fn headers(cx: &mut Ctx, node: &Node, ws: &mut crate::websocket::WebsocketOptions) {
    let Some(map) = node.value.as_map() else {
        cx.error(
            &node.pos,
            format!(
                "error parsing headers: unsupported type {}",
                node.value.type_name()
            ),
        );
        return;
    };
    ws.headers.clear();
    for (k, v) in map.iter() {
        match &v.value {
            Value::String(s) => {
                ws.headers.insert(k.to_string(), s.clone());
            }
            other => cx.error(
                &v.pos,
                format!(
                    "error parsing header key {k}: unsupported type {}",
                    other.type_name()
                ),
            ),
        }
    }
}

/// nats-server's `validateWebsocketOptions`, in its order and words. Only
/// when the listener is on.
pub(super) fn problems(opts: &Options, check_no_auth_user: bool) -> Vec<String> {
    let ws = &opts.websocket;
    let mut out = Vec::new();
    if !ws.enabled() {
        return out;
    }
    if ws.tls.is_none() && !ws.no_tls {
        out.push("websocket requires TLS configuration".to_string());
    }
    for o in &ws.allowed_origins {
        if let Err(e) = crate::websocket::origin::validate_allowed(o) {
            out.push(e);
        }
    }
    if let (Some(nau), true) = (&ws.no_auth_user, check_no_auth_user) {
        if opts.users.is_empty() {
            out.push(format!(
                "no_auth_user: {nau:?} present, but users/nkeys are not defined"
            ));
        } else if !opts
            .users
            .iter()
            .any(|u| &u.username == nau || u.nkey.as_ref() == Some(nau))
        {
            out.push(format!(
                "no_auth_user: {nau:?} not present as user or nkey in authorization block or account configuration"
            ));
        }
    }
    if !opts.users.is_empty() {
        if ws.username.is_some() {
            out.push(
                "websocket authentication username not compatible with presence of users/nkeys"
                    .to_string(),
            );
        }
        if ws.token.is_some() {
            out.push(
                "websocket authentication token not compatible with presence of users/nkeys"
                    .to_string(),
            );
        }
    }
    if let Some(c) = ws.jwt_cookie.as_ref().filter(|_| opts.operator.is_none()) {
        // The cookie's JWT is checked as a CONNECT's would be, which only
        // operator mode does.
        out.push(format!(
            "trusted operators or trusted keys configuration is required for JWT authentication via cookie {c:?}"
        ));
    }
    for key in ws.headers.keys() {
        let k = key.to_ascii_lowercase();
        if matches!(
            k.as_str(),
            "host" | "content-length" | "connection" | "upgrade" | "nats-no-masking"
        ) {
            out.push(format!("websocket: invalid header {key:?} not allowed"));
        } else if k.starts_with("sec-websocket-") {
            out.push(format!(
                "websocket: invalid header {key:?}, \"Sec-WebSocket-\" prefix not allowed"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::{apply_str, ConfigErrors};
    use crate::options::Options;

    fn apply(src: &str) -> Result<(Options, Vec<String>), Vec<String>> {
        let mut o = Options::default();
        match apply_str(&mut o, src, Path::new("x.conf")) {
            Ok(w) => Ok((o, w)),
            Err(ConfigErrors(errs)) => Err(errs.iter().map(ToString::to_string).collect()),
        }
    }

    #[test]
    fn every_key_and_alias() {
        let (o, w) = apply(concat!(
            "ws {\n listen: \"127.0.0.1:8080\"\n advertise: \"ws.example.com:443\"\n no_tls: true\n",
            " same_origin: true\n origins: [\"https://a.example\", \"http://b.example:81\"]\n",
            " handshake_timeout: \"3s\"\n compress: true\n ping_interval: \"20s\"\n",
            " authentication { user: u, password: p, timeout: 1.5 }\n",
            " user_cookie: uc\n pass_cookie: pc\n token_cookie: tc\n",
            " headers { X-Frame-Options: DENY }\n}\n",
        ))
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(w.is_empty(), "{w:?}");
        let ws = &o.websocket;
        assert_eq!((ws.host.as_str(), ws.port), ("127.0.0.1", Some(8080)));
        assert_eq!(ws.advertise.as_deref(), Some("ws.example.com:443"));
        assert!(ws.no_tls && ws.same_origin && ws.compression);
        assert_eq!(ws.allowed_origins.len(), 2);
        assert_eq!(ws.handshake_timeout, Duration::from_secs(3));
        assert_eq!(ws.ping_interval, Duration::from_secs(20));
        assert_eq!(
            (ws.username.as_deref(), ws.password.as_deref()),
            (Some("u"), Some("p"))
        );
        assert_eq!(ws.auth_timeout, Duration::from_millis(1500));
        assert!(ws.auth_override());
        assert_eq!(ws.token_cookie.as_deref(), Some("tc"));
        assert_eq!(
            ws.headers.get("X-Frame-Options").map(String::as_str),
            Some("DENY")
        );
    }

    #[test]
    fn ports_and_timeouts() {
        let port = |src: &str| apply(src).map(|(o, _)| o.websocket.port);
        assert_eq!(port("websocket { port: -1, no_tls: true }"), Ok(Some(0)));
        assert_eq!(
            port("websocket { port: 0 }"),
            Ok(None),
            "off: nothing checked"
        );
        assert_eq!(
            port("websocket { listen: 8443, no_tls: true }"),
            Ok(Some(8443))
        );
        assert!(port("websocket { port: 70000, no_tls: true }").is_err());
        let ht = |v: &str| {
            apply(&format!(
                "websocket {{ port: 1, no_tls: true, handshake_timeout: {v} }}"
            ))
            .map(|(o, _)| o.websocket.handshake_timeout)
        };
        assert_eq!(ht("5"), Ok(Duration::from_secs(5)), "integer seconds");
        assert_eq!(ht("\"250ms\""), Ok(Duration::from_millis(250)));
        assert!(ht("\"soon\"").is_err());
        assert!(ht("true").is_err());
    }

    #[test]
    fn refusals() {
        for (src, want) in [
            (
                "websocket { port: 1 }",
                "websocket requires TLS configuration",
            ),
            (
                "websocket { port: 1, no_tls: true, foo: 1 }",
                "unknown field \"foo\"",
            ),
            (
                "websocket { port: 1, no_tls: true, headers { Connection: close } }",
                "websocket: invalid header \"Connection\" not allowed",
            ),
            (
                "websocket { port: 1, no_tls: true, no_auth_user: x }",
                "no_auth_user: \"x\" present, but users/nkeys are not defined",
            ),
            (
                "websocket: 1",
                "Expected websocket to be a map, got integer",
            ),
        ] {
            let errs = apply(src).err().unwrap_or_else(|| panic!("{src} accepted"));
            assert!(errs.iter().any(|e| e.contains(want)), "{src}: {errs:?}");
        }
    }
}
