//! An account's `exports: [...]`, in nats-server's syntax:
//!
//! ```text
//! exports: [
//!   {stream: "sports.>"}
//!   {service: "svc.time", accounts: [WEB]}
//!   {service: "$JS.API.DIRECT.GET.SPORTS", response_type: stream, response_threshold: "30s"}
//! ]
//! ```
//!
//! A service's `response_type` (`singleton`, `stream`, `chunked`; also
//! `single`/`chunk`, key also `response`) says whether a request may get
//! several responses; `response_threshold` (also `threshold`,
//! `response_max_time`, `response_time`; a Go duration string) how long the
//! way back stays open without one. Errors use nats-server's words.

use std::time::Duration;

use super::apply::Ctx;
use super::duration::parse_go_duration;
use super::value::{Node, Value};
use crate::options::{Export, ExportKind, ResponsePolicy, ResponseType};

/// The `exports` array of an account.
pub(super) fn exports(cx: &mut Ctx, node: &Node) -> Vec<Export> {
    let Some(items) = node.value.as_array() else {
        cx.type_error("exports", node, "array");
        return Vec::new();
    };
    items.iter().filter_map(|item| export(cx, item)).collect()
}

fn export(cx: &mut Ctx, item: &Node) -> Option<Export> {
    let Some(map) = item.value.as_map() else {
        cx.type_error("exports", item, "map");
        return None;
    };
    let mut kind = None;
    let mut subject = String::new();
    let mut accounts = Vec::new();
    let mut response = ResponsePolicy::default();
    // Where each response directive was given (the first one seen).
    let mut type_at: Option<&Node> = None;
    let mut threshold_at: Option<&Node> = None;
    for (k, v) in map.iter() {
        match k.to_ascii_lowercase().as_str() {
            "stream" => {
                kind = Some(ExportKind::Stream);
                subject = cx.string(k, v).unwrap_or_default();
            }
            "service" => {
                kind = Some(ExportKind::Service);
                subject = cx.string(k, v).unwrap_or_default();
            }
            "accounts" => accounts = super::accounts::strings(cx, k, v).unwrap_or_default(),
            "response" | "response_type" => {
                if type_at.is_some() {
                    cx.error(&v.pos, "Duplicate response type definition");
                    continue;
                }
                type_at = Some(v);
                if let Some(t) = response_type(cx, k, v) {
                    response.kind = t;
                }
            }
            "threshold" | "response_threshold" | "response_max_time" | "response_time" => {
                if threshold_at.is_some() {
                    cx.error(&v.pos, "Duplicate response threshold detected");
                    continue;
                }
                threshold_at = Some(v);
                if let Some(t) = threshold(cx, k, v) {
                    response.threshold = t;
                }
            }
            "latency" | "allow_trace" => cx.unsupported(&format!("exports.{k}"), v),
            // Decides which importers may use a wildcard export.
            "account_token_position" => cx.refuse(&format!("exports.{k}"), v),
            _ => cx.unknown(k, v),
        }
    }
    if kind == Some(ExportKind::Stream) {
        for at in [type_at, threshold_at].into_iter().flatten() {
            cx.error(&at.pos, "Detected response directive on non-service");
        }
    }
    match kind {
        Some(kind) if crate::subject::is_valid(subject.as_bytes()) => Some(Export {
            kind,
            subject,
            accounts,
            response,
            ..Default::default()
        }),
        Some(_) => {
            cx.error(&item.pos, format!("invalid export subject {subject:?}"));
            None
        }
        None => {
            cx.error(&item.pos, "Export needs a stream or service");
            None
        }
    }
}

fn response_type(cx: &mut Ctx, key: &str, v: &Node) -> Option<ResponseType> {
    let Value::String(s) = &v.value else {
        cx.type_error(key, v, "string");
        return None;
    };
    match s.to_ascii_lowercase().as_str() {
        "single" | "singleton" => Some(ResponseType::Singleton),
        "stream" => Some(ResponseType::Stream),
        "chunk" | "chunked" => Some(ResponseType::Chunked),
        _ => {
            cx.error(&v.pos, format!("Unknown response type: {s:?}"));
            None
        }
    }
}

/// A positive Go duration string. (nats-server also takes zero or a
/// negative duration, after which no response would ever get through.)
fn threshold(cx: &mut Ctx, key: &str, v: &Node) -> Option<Duration> {
    let Value::String(s) = &v.value else {
        cx.type_error(key, v, "duration string");
        return None;
    };
    match parse_go_duration(s) {
        Ok((false, d)) if !d.is_zero() => Some(d),
        Ok(_) => {
            cx.error(
                &v.pos,
                format!("response threshold must be positive, got {s:?}"),
            );
            None
        }
        Err(_) => {
            cx.error(
                &v.pos,
                format!("Expected response threshold to be a parseable time duration, got {s:?}"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{apply_str, ConfigErrors};
    use crate::options::{ExportKind, Options, ResponseType, DEFAULT_RESPONSE_THRESHOLD};

    fn apply(src: &str) -> Result<Options, Vec<String>> {
        let mut o = Options::default();
        match apply_str(&mut o, src, Path::new("x.conf")) {
            Ok(_) => Ok(o),
            Err(ConfigErrors(errs)) => Err(errs.iter().map(ToString::to_string).collect()),
        }
    }

    fn exports_of(list: &str) -> Result<Options, Vec<String>> {
        apply(&format!("accounts {{ A: {{ exports: [ {list} ] }} }}\n"))
    }

    #[test]
    fn response_types_and_thresholds() {
        let o = exports_of(concat!(
            "{service: a}, {service: b, response_type: stream}, ",
            "{service: c, response: Chunk, response_threshold: \"30s\"}, ",
            "{response_type: single, threshold: \"1m30s\", service: d}"
        ))
        .expect("valid");
        let e = &o.accounts[0].exports;
        let got: Vec<_> = e
            .iter()
            .map(|x| (x.subject.as_str(), x.response.kind, x.response.threshold))
            .collect();
        let secs = std::time::Duration::from_secs;
        assert_eq!(
            got,
            [
                ("a", ResponseType::Singleton, DEFAULT_RESPONSE_THRESHOLD),
                ("b", ResponseType::Stream, DEFAULT_RESPONSE_THRESHOLD),
                ("c", ResponseType::Chunked, secs(30)),
                ("d", ResponseType::Singleton, secs(90)),
            ]
        );
        assert!(e.iter().all(|x| x.kind == ExportKind::Service));
    }

    #[test]
    fn bad_response_directives_in_nats_server_words() {
        let err = |list: &str| exports_of(list).expect_err("refused").join("\n");
        assert!(
            err("{service: a, response_type: many}").contains("Unknown response type: \"many\"")
        );
        assert!(err("{stream: a, response_type: stream}")
            .contains("Detected response directive on non-service"));
        assert!(err("{stream: a, response_threshold: \"1s\"}")
            .contains("Detected response directive on non-service"));
        assert!(
            err("{service: a, response: stream, response_type: singleton}")
                .contains("Duplicate response type definition")
        );
        assert!(
            err("{service: a, threshold: \"1s\", response_time: \"2s\"}")
                .contains("Duplicate response threshold detected")
        );
        assert!(err("{service: a, response_threshold: \"soon\"}")
            .contains("Expected response threshold to be a parseable time duration, got \"soon\""));
        assert!(err("{service: a, response_threshold: \"-1s\"}").contains("must be positive"));
        assert!(err("{service: a, response_threshold: 5}").contains("response_threshold"));
    }
}
