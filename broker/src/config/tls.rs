//! `tls {}` blocks (top level and in `cluster`), `allow_non_tls`, `https`
//! and `https_port`, with nats-server's keys and error wording
//! (`parseTLS` / `GenTLSConfig`).
//!
//! Keys that would change who is trusted in ways Tribune does not implement
//! (`verify_and_map`, `pinned_certs`, OCSP, certificate stores, several
//! certificates) are refused, never ignored. Cipher suites and curves Go
//! knows but rustls does not offer are warned about and left out; TLS 1.2 is
//! always the floor.

use std::path::PathBuf;
use std::time::Duration;

use super::apply::{checked_port, listen, Ctx};
use super::value::{Node, Value};
use crate::options::Options;
use crate::tls::{
    classify_cipher, classify_curve, MinVersion, SuiteName, TlsOptions,
    DEFAULT_TLS_HANDSHAKE_FIRST_FALLBACK,
};

/// Where a block sits: the client port (also https) or routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TlsUse {
    Client,
    Route,
}

/// Keys refused: Tribune cannot honour them and ignoring them would weaken
/// or change authentication.
const REFUSED: &[&str] = &[
    "verify_and_map",
    "pinned_certs",
    "ocsp_peer",
    "cert_store",
    "cert_match_by",
    "cert_match",
    "ca_certs_match",
    "cert_match_skip_invalid",
    "certs",
    "certificates",
];

fn tls_err(cx: &mut Ctx, node: &Node, msg: impl AsRef<str>) {
    cx.error(
        &node.pos,
        format!("error parsing tls config, {}", msg.as_ref()),
    );
}

fn file(cx: &mut Ctx, k: &str, v: &Node) -> Option<PathBuf> {
    match &v.value {
        Value::String(s) => Some(PathBuf::from(s)),
        _ => {
            tls_err(cx, v, format!("expected '{k}' to be filename"));
            None
        }
    }
}

fn flag(cx: &mut Ctx, k: &str, v: &Node) -> Option<bool> {
    match v.value {
        Value::Bool(b) => Some(b),
        _ => {
            tls_err(cx, v, format!("expected '{k}' to be a boolean"));
            None
        }
    }
}

fn names(cx: &mut Ctx, k: &str, v: &Node) -> Option<Vec<(String, Node)>> {
    let Some(items) = v.value.as_array() else {
        cx.type_error(k, v, "array");
        return None;
    };
    if items.is_empty() {
        tls_err(cx, v, format!("'{k}' cannot be empty"));
        return None;
    }
    let mut out = Vec::new();
    for item in items {
        if let Some(s) = cx.string(k, item) {
            out.push((s, item.clone()));
        }
    }
    Some(out)
}

/// `handshake_first` (`first`, `immediate`): a boolean, `on`/`off`,
/// `auto`/`auto_fallback` (TLS first with nats-server's default fallback
/// delay) or a Go duration (TLS first with that fallback delay), read as
/// nats-server's `parseTLS` does. Returns whether TLS comes first and the
/// fallback delay (zero: no fallback, the handshake is required). A negative
/// duration is accepted and means no fallback, as nats-server only honours a
/// strictly positive delay.
fn handshake_first(cx: &mut Ctx, k: &str, v: &Node) -> Option<(bool, Duration)> {
    match &v.value {
        Value::Bool(b) => Some((*b, Duration::ZERO)),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "on" => Some((true, Duration::ZERO)),
            "false" | "off" => Some((false, Duration::ZERO)),
            "auto" | "auto_fallback" => Some((true, DEFAULT_TLS_HANDSHAKE_FIRST_FALLBACK)),
            _ => match super::parse_go_duration(s) {
                Ok((true, _)) => Some((true, Duration::ZERO)),
                Ok((false, d)) => Some((true, d)),
                Err(_) => {
                    cx.error(&v.pos, format!("field {k:?}'s value {s:?} is invalid"));
                    None
                }
            },
        },
        other => {
            cx.error(
                &v.pos,
                format!(
                    "field {k:?} should be a boolean or a string, got {}",
                    other.type_name()
                ),
            );
            None
        }
    }
}

/// Parse a `tls {}` block and check that its files load. `path` is the
/// block's dotted name (`tls`, `cluster.tls`) for messages.
pub(super) fn tls_block(
    cx: &mut Ctx,
    path: &str,
    node: &Node,
    usage: TlsUse,
) -> Option<TlsOptions> {
    let Some(map) = node.value.as_map() else {
        cx.error(
            &node.pos,
            format!("Expected map to define tls, got {}", node.value.type_name()),
        );
        return None;
    };
    let errors_before = cx.errors.len();
    let mut t = TlsOptions::default();
    let mut insecure_suites = Vec::new();
    let mut allow_insecure = false;
    for (k, v) in map.iter() {
        match k.to_ascii_lowercase().as_str() {
            "cert_file" => t.cert_file = file(cx, k, v),
            "key_file" => t.key_file = file(cx, k, v),
            "ca_file" => t.ca_file = file(cx, k, v),
            "verify" => t.verify = flag(cx, k, v).unwrap_or(t.verify),
            "insecure" => {
                t.insecure = flag(cx, k, v).unwrap_or(t.insecure);
                if t.insecure {
                    match usage {
                        TlsUse::Client => cx.warn(
                            &v.pos,
                            format!("{path}.insecure only applies to connections this server dials; ignoring"),
                        ),
                        TlsUse::Route => cx.warn(
                            &v.pos,
                            format!("{path}.insecure: tribune-broker still verifies route certificates against ca_file and only skips the host name check"),
                        ),
                    }
                }
            }
            "timeout" => {
                let secs = match &v.value {
                    Value::Int(i) => Some(*i as f64),
                    Value::Float(f) => Some(*f),
                    Value::String(s) => match super::parse_go_duration(s) {
                        Ok((neg, d)) => Some(d.as_secs_f64() * if neg { -1.0 } else { 1.0 }),
                        Err(e) => {
                            tls_err(cx, v, format!("'timeout' {e}"));
                            None
                        }
                    },
                    _ => {
                        tls_err(cx, v, "'timeout' wrong type");
                        None
                    }
                };
                match secs {
                    // nats-server treats zero as the default.
                    Some(0.0) => {}
                    Some(s) if s.is_finite() && s > 0.0 && s <= 1e9 => {
                        t.timeout = Duration::from_secs_f64(s)
                    }
                    Some(_) => tls_err(cx, v, "'timeout' out of range"),
                    None => {}
                }
            }
            "handshake_first" | "first" | "immediate" => {
                if let Some((first, fallback)) = handshake_first(cx, k, v) {
                    t.handshake_first = first;
                    t.handshake_first_fallback = fallback;
                    if first && path.contains('.') {
                        cx.warn(
                            &v.pos,
                            format!("{path}.{k} only applies to the client port (nats-server ignores it here too); ignoring"),
                        );
                    }
                }
            }
            "allow_insecure_cipher_suites" => {
                allow_insecure = flag(cx, k, v).unwrap_or(allow_insecure)
            }
            "cipher_suites" => {
                let Some(list) = names(cx, k, v) else {
                    continue;
                };
                let mut suites = Vec::new();
                for (name, item) in list {
                    match classify_cipher(&name) {
                        SuiteName::Supported => suites.push(name),
                        SuiteName::Unavailable => cx.warn(
                            &item.pos,
                            format!("cipher suite {name} is not available in tribune-broker (rustls); ignoring"),
                        ),
                        SuiteName::Insecure => insecure_suites.push((name, item)),
                        SuiteName::Unknown => {
                            cx.error(&item.pos, format!("unrecognized cipher {name}"))
                        }
                    }
                }
                if suites.is_empty() {
                    // Nothing usable named: keep the defaults rather than
                    // offering no TLS 1.2 suite at all.
                    cx.warn(&v.pos, format!("{path}.{k}: no supported TLS 1.2 cipher suite named; using the defaults"));
                }
                t.cipher_suites = suites;
            }
            "curve_preferences" => {
                let Some(list) = names(cx, k, v) else {
                    continue;
                };
                let mut curves = Vec::new();
                for (name, item) in list {
                    match classify_curve(&name) {
                        Some(true) => curves.push(name),
                        Some(false) => cx.warn(
                            &item.pos,
                            format!("curve {name} is not available in tribune-broker (rustls); ignoring"),
                        ),
                        None => cx.error(
                            &item.pos,
                            format!("unrecognized curve preference {name}"),
                        ),
                    }
                }
                if curves.is_empty() {
                    cx.warn(
                        &v.pos,
                        format!("{path}.{k}: no supported curve named; using the defaults"),
                    );
                }
                t.curve_preferences = curves;
            }
            "min_version" | "minimum_version" => match &v.value {
                Value::String(s) => match s.as_str() {
                    "1.2" => t.min_version = MinVersion::Tls12,
                    "1.3" => t.min_version = MinVersion::Tls13,
                    "1.0" | "1.1" => cx.error(
                        &v.pos,
                        format!("error parsing tls config: unsupported TLS version: TLS {s}"),
                    ),
                    _ => cx.error(
                        &v.pos,
                        format!("error parsing tls config: unknown version: {s}"),
                    ),
                },
                _ => cx.error(
                    &v.pos,
                    format!(
                        "error parsing tls config: 'min_version' wrong type: {}",
                        v.value.type_name()
                    ),
                ),
            },
            "verify_cert_and_check_known_urls" => match usage {
                TlsUse::Client => {
                    if flag(cx, k, v) == Some(true) {
                        cx.error(
                            &v.pos,
                            "verify_cert_and_check_known_urls not supported in this context",
                        );
                    }
                }
                TlsUse::Route => {
                    if flag(cx, k, v) == Some(true) {
                        cx.refuse(&format!("{path}.{k}"), v);
                    }
                }
            },
            "connection_rate_limit" => cx.unsupported(&format!("{path}.{k}"), v),
            lk if REFUSED.contains(&lk) => cx.refuse(&format!("{path}.{k}"), v),
            _ => {
                if !v.used_as_variable {
                    tls_err(cx, v, format!("unknown field {k:?}"));
                }
            }
        }
    }
    if !insecure_suites.is_empty() {
        let list = insecure_suites
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if allow_insecure {
            cx.warn(
                &node.pos,
                format!(
                    "insecure cipher suites are never offered by tribune-broker; ignoring: {list}"
                ),
            );
        } else {
            cx.error(
                &node.pos,
                format!("insecure cipher suites configured without 'allow_insecure_cipher_suites' option set: {list}"),
            );
        }
    }
    if cx.errors.len() > errors_before {
        return None;
    }
    // Load the certificates now, so a bad file is reported at the block.
    let checked = match usage {
        TlsUse::Client => crate::tls::check_server_block(&t),
        TlsUse::Route => crate::tls::check_route_block(&t),
    };
    if let Err(e) = checked {
        cx.error(&node.pos, format!("{e:#}"));
        return None;
    }
    Some(t)
}

/// Monitoring port conversion: -1 random (`Some(0)`), 0 disabled (`None`).
fn monitor_port(cx: &mut Ctx, node: &Node, v: i64) -> Option<Option<u16>> {
    match v {
        -1 => Some(Some(0)),
        0 => Some(None),
        _ => checked_port(cx, node, v).map(Some),
    }
}

/// `https: host:port` (or a port).
pub(super) fn https(opts: &mut Options, cx: &mut Ctx, key: &str, node: &Node) {
    if let Some((host, port)) = listen(cx, key, node) {
        if !host.is_empty() {
            opts.http_host = host;
        }
        if let Some(p) = monitor_port(cx, node, port) {
            opts.https_port = p;
        }
    }
}

/// `https_port: N`.
pub(super) fn https_port(opts: &mut Options, cx: &mut Ctx, key: &str, node: &Node) {
    if let Some(p) = cx.int(key, node).and_then(|v| monitor_port(cx, node, v)) {
        opts.https_port = p;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::{apply_str, ConfigErrors};
    use crate::options::Options;
    use crate::tls::MinVersion;

    /// A CA and a leaf signed by it, as PEM files in a temp dir.
    fn pki() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        dir
    }

    fn apply(src: &str) -> (Options, Vec<String>) {
        let mut o = Options::default();
        match apply_str(&mut o, src, Path::new("x.conf")) {
            Ok(w) => (o, w),
            Err(e) => panic!("apply failed:\n{e}\n--- source ---\n{src}"),
        }
    }

    fn errors(src: &str) -> Vec<String> {
        let mut o = Options::default();
        match apply_str(&mut o, src, Path::new("x.conf")) {
            Ok(w) => panic!("expected errors, got Ok (warnings {w:?})"),
            Err(ConfigErrors(errs)) => errs.iter().map(ToString::to_string).collect(),
        }
    }

    fn files(d: &tempfile::TempDir) -> String {
        let p = d.path().display();
        format!(
            "cert_file: \"{p}/cert.pem\"\n key_file: \"{p}/key.pem\"\n ca_file: \"{p}/ca.pem\"\n"
        )
    }

    #[test]
    fn client_tls_block() {
        let d = pki();
        let (o, w) = apply(&format!(
            "tls {{\n {} verify: true\n timeout: 0.5\n handshake_first: true\n min_version: \"1.3\"\n \
             cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n \
             curve_preferences: [X25519, CurveP521]\n}}\nallow_non_tls: true\nhttps: \"127.0.0.1:8443\"\n",
            files(&d)
        ));
        let t = o.tls.expect("tls parsed");
        assert!(t.verify && t.handshake_first);
        assert_eq!(t.timeout, Duration::from_millis(500));
        assert_eq!(t.min_version, MinVersion::Tls13);
        assert_eq!(
            t.cipher_suites,
            vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
        );
        assert_eq!(t.curve_preferences, vec!["X25519"]);
        assert!(o.allow_non_tls);
        assert_eq!(o.https_port, Some(8443));
        assert_eq!(o.http_host, "127.0.0.1");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA is not available"),
            "{w:?}"
        );
        assert!(w[1].contains("curve CurveP521 is not available"), "{w:?}");
    }

    #[test]
    fn timeout_forms_and_default() {
        let d = pki();
        let (o, _) = apply(&format!("tls {{\n {} }}\n", files(&d)));
        assert_eq!(o.tls.unwrap().timeout, Duration::from_secs(2));
        let (o, _) = apply(&format!("tls {{\n {} timeout: \"3s\" }}\n", files(&d)));
        assert_eq!(o.tls.unwrap().timeout, Duration::from_secs(3));
        let (o, _) = apply(&format!(
            "tls {{\n {} timeout: 5 }}\nhttps_port: -1\n",
            files(&d)
        ));
        assert_eq!(o.tls.unwrap().timeout, Duration::from_secs(5));
        assert_eq!(o.https_port, Some(0));
    }

    #[test]
    fn cluster_tls_block() {
        let d = pki();
        let (o, w) = apply(&format!(
            "cluster {{\n port: 6222\n tls {{\n {} verify: true\n insecure: true\n }}\n}}\n",
            files(&d)
        ));
        let t = o.cluster.tls.expect("cluster tls parsed");
        assert!(t.insecure);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("cluster.tls.insecure"), "{w:?}");
    }

    #[test]
    fn errors_have_positions_and_nats_wording() {
        let d = pki();
        let f = files(&d);
        let e = errors("tls {\n cert_file: 1\n key_file: \"k\"\n}\n");
        assert_eq!(
            e,
            vec!["x.conf:2:2: error parsing tls config, expected 'cert_file' to be filename"]
        );
        let e = errors(&format!("tls {{\n {f} bogus: 1\n}}\n"));
        assert!(
            e[0].ends_with("error parsing tls config, unknown field \"bogus\""),
            "{e:?}"
        );
        let e = errors(&format!("tls {{\n {f} cipher_suites: [NOPE]\n}}\n"));
        assert!(e[0].ends_with("unrecognized cipher NOPE"), "{e:?}");
        let e = errors(&format!(
            "tls {{\n {f} cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n}}\n"
        ));
        assert!(
            e[0].ends_with("insecure cipher suites configured without 'allow_insecure_cipher_suites' option set: TLS_RSA_WITH_RC4_128_SHA"),
            "{e:?}"
        );
        let e = errors(&format!("tls {{\n {f} curve_preferences: [P-999]\n}}\n"));
        assert!(
            e[0].ends_with("unrecognized curve preference P-999"),
            "{e:?}"
        );
        let e = errors(&format!("tls {{\n {f} min_version: \"1.1\"\n}}\n"));
        assert!(
            e[0].ends_with("error parsing tls config: unsupported TLS version: TLS 1.1"),
            "{e:?}"
        );
        let e = errors(&format!("tls {{\n {f} timeout: true\n}}\n"));
        assert!(
            e[0].ends_with("error parsing tls config, 'timeout' wrong type"),
            "{e:?}"
        );
        let e = errors(
            "tls {\n cert_file: \"/nonexistent/c.pem\"\n key_file: \"/nonexistent/k.pem\"\n}\n",
        );
        assert!(
            e[0].starts_with("x.conf:1:1: error parsing X509 certificate/key pair"),
            "{e:?}"
        );
        let e = errors(&format!(
            "tls {{\n cert_file: \"{}/cert.pem\"\n}}\n",
            d.path().display()
        ));
        assert_eq!(
            e,
            vec!["x.conf:1:1: missing 'key_file' in TLS configuration"]
        );
        let e = errors(&format!(
            "tls {{\n cert_file: \"{}/cert.pem\"\n key_file: \"{}/key.pem\"\n verify: true\n}}\n",
            d.path().display(),
            d.path().display()
        ));
        assert!(e[0].contains("'verify' requires a 'ca_file'"), "{e:?}");
    }

    #[test]
    fn security_keys_are_refused() {
        let d = pki();
        let f = files(&d);
        for key in [
            "verify_and_map: true",
            "pinned_certs: []",
            "ocsp_peer: true",
        ] {
            let e = errors(&format!("tls {{\n {f} {key}\n}}\n"));
            assert!(e[0].contains("refusing to run without it"), "{key}: {e:?}");
        }
        let e = errors(&format!(
            "cluster {{\n port: 6222\n tls {{\n {f} verify_cert_and_check_known_urls: true\n }}\n}}\n"
        ));
        assert!(e[0].contains("refusing to run without it"), "{e:?}");
    }

    #[test]
    fn handshake_first_forms() {
        let d = pki();
        let f = files(&d);
        let first = |v: &str| {
            let (o, w) = apply(&format!("tls {{\n {f} handshake_first: {v}\n}}\n"));
            assert!(w.is_empty(), "{v}: {w:?}");
            let t = o.tls.expect("tls parsed");
            (t.handshake_first, t.handshake_first_fallback)
        };
        let none = Duration::ZERO;
        assert_eq!(first("true"), (true, none));
        assert_eq!(first("false"), (false, none));
        assert_eq!(first("\"on\""), (true, none));
        assert_eq!(first("\"OFF\""), (false, none));
        assert_eq!(first("auto"), (true, Duration::from_millis(50)));
        assert_eq!(
            first("\"Auto_Fallback\""),
            (true, Duration::from_millis(50))
        );
        assert_eq!(first("\"300ms\""), (true, Duration::from_millis(300)));
        assert_eq!(first("\"1m0.5s\""), (true, Duration::from_millis(60_500)));
        // Zero and negative delays mean TLS first with no fallback.
        assert_eq!(first("\"0s\""), (true, none));
        assert_eq!(first("\"-1s\""), (true, none));
        // The aliases.
        let (o, _) = apply(&format!("tls {{\n {f} first: \"2s\"\n}}\n"));
        assert_eq!(
            o.tls.map(|t| t.handshake_first_fallback),
            Some(Duration::from_secs(2))
        );
        let (o, _) = apply(&format!("tls {{\n {f} immediate: true\n}}\n"));
        assert!(o.tls.is_some_and(|t| t.handshake_first));
    }

    #[test]
    fn handshake_first_errors_as_nats_server() {
        let d = pki();
        let f = files(&d);
        let e = errors(&format!("tls {{\n {f} handshake_first: \"soon\"\n}}\n"));
        assert!(
            e[0].ends_with("field \"handshake_first\"'s value \"soon\" is invalid"),
            "{e:?}"
        );
        // The key as written, and a duration is case-sensitive as in Go.
        let e = errors(&format!("tls {{\n {f} First: \"300MS\"\n}}\n"));
        assert!(
            e[0].ends_with("field \"First\"'s value \"300MS\" is invalid"),
            "{e:?}"
        );
        let e = errors(&format!("tls {{\n {f} handshake_first: 5\n}}\n"));
        assert!(
            e[0].contains("field \"handshake_first\" should be a boolean or a string, got"),
            "{e:?}"
        );
    }

    #[test]
    fn handshake_first_outside_the_client_port_is_ignored_with_a_warning() {
        let d = pki();
        let f = files(&d);
        let (_, w) = apply(&format!(
            "cluster {{\n port: 6222\n tls {{\n {f} handshake_first: auto\n }}\n}}\n"
        ));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("cluster.tls.handshake_first only applies to the client port"),
            "{w:?}"
        );
        let (_, w) = apply(&format!(
            "websocket {{\n port: 8080\n tls {{\n {f} handshake_first: \"300ms\"\n }}\n}}\n"
        ));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("websocket.tls.handshake_first only applies"),
            "{w:?}"
        );
    }
}
