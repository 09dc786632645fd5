//! Maps the parsed tree onto [`Options`], with nats-server's option names,
//! aliases, defaults-on-zero rules and error wording.
//!
//! Errors are collected, never returned early: nats-server lists every
//! problem of a file at once and operators expect that. Options nats-server
//! knows but Tribune does not implement are warnings, so that a working
//! nats-server config still starts Tribune (degraded, and saying so) instead of
//! refusing to; a misspelt option is an error because silently ignoring it is
//! how production outages start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::duration::parse_go_duration;
use super::value::{Map, Node, Pos, Value};
use super::{blocks, validate, ConfigError, ConfigErrors};
use crate::options::{Options, DEFAULT_PORT};

/// Top-level options nats-server accepts that Tribune ignores for now (the
/// security ones are in `SECURITY_TOP` instead, which is checked first).
const UNSUPPORTED_TOP: &[&str] = &[
    "trace_verbose",
    "trace_headers",
    "mappings",
    "maps",
    "disable_sublist_cache",
    "no_sublist_cache",
    "gateway",
    "leaf",
    "leafnodes",
    "logfile_size_limit",
    "log_size_limit",
    "logfile_max_num",
    "log_max_num",
    "syslog",
    "remote_syslog",
    "prof_port",
    "prof_block_rate",
    "proxy_protocol",
    "max_traced_msg_len",
    "max_sub_tokens",
    "max_subscription_tokens",
    "ocsp",
    "write_timeout",
    "resolver_tls",
    "no_system_account",
    "no_system",
    "no_sys_acc",
    "connect_error_reports",
    "reconnect_error_reports",
    "mqtt",
    "server_tags",
    "server_metadata",
    "feature_flags",
    "default_js_domain",
    "ocsp_cache",
    "max_closed_clients",
    "proxies",
];

/// Options that protect the server. Running without them would silently
/// weaken security (plain text instead of TLS, one shared account instead of
/// isolated ones), so until Tribune supports them it refuses to start.
/// (Operator mode itself is read by `super::operator`.)
const SECURITY_TOP: &[&str] = &["resolver_pinned_accounts", "default_sentinel"];

/// Collects errors and warnings while options are applied.
pub(super) struct Ctx {
    pub(super) errors: Vec<ConfigError>,
    pub(super) warnings: Vec<String>,
    /// `store_dir` may be given at the top level or in `jetstream {}`, not both.
    pub(super) store_dir_set: bool,
}

impl Ctx {
    pub(super) fn error(&mut self, pos: &Pos, msg: impl Into<String>) {
        self.errors.push(ConfigError::at(pos, msg));
    }

    pub(super) fn warn(&mut self, pos: &Pos, msg: impl AsRef<str>) {
        self.warnings.push(format!("{pos}: {}", msg.as_ref()));
    }

    /// nats-server's "invalid use of field" warning.
    pub(super) fn warn_field(&mut self, pos: &Pos, field: &str, reason: impl AsRef<str>) {
        self.warn(
            pos,
            format!("invalid use of field {field:?}: {}", reason.as_ref()),
        );
    }

    pub(super) fn unsupported(&mut self, path: &str, node: &Node) {
        self.warn(
            &node.pos,
            format!("option {path:?} is not supported by tribune-broker yet; ignoring"),
        );
    }

    /// A security option Tribune cannot honour yet: an error, never a silent downgrade.
    pub(super) fn refuse(&mut self, path: &str, node: &Node) {
        self.error(&node.pos, format!("option {path:?} is not supported by tribune-broker yet; refusing to run without it"));
    }

    /// An unknown key is an error unless it only exists to be a `$variable`.
    pub(super) fn unknown(&mut self, key: &str, node: &Node) {
        if !node.used_as_variable {
            self.error(&node.pos, format!("unknown field {key:?}"));
        }
    }

    pub(super) fn type_error(&mut self, key: &str, node: &Node, expected: &str) {
        let got = node.value.type_name();
        self.error(
            &node.pos,
            format!("invalid type for field {key:?}: expected {expected}, got {got}"),
        );
    }

    pub(super) fn string(&mut self, key: &str, node: &Node) -> Option<String> {
        match &node.value {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.type_error(key, node, "string");
                None
            }
        }
    }

    pub(super) fn bool(&mut self, key: &str, node: &Node) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.type_error(key, node, "boolean");
                None
            }
        }
    }

    pub(super) fn int(&mut self, key: &str, node: &Node) -> Option<i64> {
        match node.value {
            Value::Int(i) => Some(i),
            _ => {
                self.type_error(key, node, "integer");
                None
            }
        }
    }

    /// A non-negative integer no larger than `max`.
    fn limit(&mut self, key: &str, node: &Node, max: i64) -> Option<usize> {
        let v = self.int(key, node)?;
        if v < 0 {
            self.error(&node.pos, format!("{key} value can not be negative"));
            return None;
        }
        if v > max {
            self.error(&node.pos, format!("{key} value is too big"));
            return None;
        }
        usize::try_from(v).ok()
    }

    /// A Go duration string, or (deprecated, warned) an integer of seconds.
    pub(super) fn duration(&mut self, key: &str, node: &Node) -> Option<Duration> {
        match &node.value {
            Value::Int(secs) => {
                self.warn_field(
                    &node.pos,
                    key,
                    format!("{key} should be converted to a duration"),
                );
                match u64::try_from(*secs) {
                    Ok(s) => Some(Duration::from_secs(s)),
                    Err(_) => {
                        self.error(&node.pos, format!("{key} can not be negative"));
                        None
                    }
                }
            }
            Value::String(_) => match self.duration_str(key, node)? {
                (true, _) => {
                    self.error(&node.pos, format!("{key} can not be negative"));
                    None
                }
                (false, d) => Some(d),
            },
            _ => {
                self.type_error(key, node, "duration string");
                None
            }
        }
    }

    /// A Go duration string only; the sign is returned separately.
    fn duration_str(&mut self, key: &str, node: &Node) -> Option<(bool, Duration)> {
        let s = self.string(key, node)?;
        match parse_go_duration(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(&node.pos, format!("error parsing {key}: {e}"));
                None
            }
        }
    }
}

/// Applies every top-level entry, then runs the cross-option checks.
pub(super) fn apply_map(
    opts: &mut Options,
    root: &Map,
    file: &Path,
) -> Result<Vec<String>, ConfigErrors> {
    let mut cx = Ctx {
        errors: Vec::new(),
        warnings: Vec::new(),
        store_dir_set: false,
    };
    if root.is_empty() {
        cx.warnings.push(format!(
            "{}: config has no values or is empty",
            file.display()
        ));
    }
    for (key, node) in root.iter() {
        apply_top(opts, &mut cx, key, node);
    }
    super::operator::apply(opts, &mut cx, root);
    validate::check_applied(opts, root, file, &mut cx);
    if cx.errors.is_empty() {
        Ok(cx.warnings)
    } else {
        Err(ConfigErrors(cx.errors))
    }
}

pub(super) fn is_any(key: &str, names: &[&str]) -> bool {
    names.iter().any(|n| key.eq_ignore_ascii_case(n))
}

fn apply_top(opts: &mut Options, cx: &mut Ctx, key: &str, node: &Node) {
    let d = Options::default();
    match key.to_ascii_lowercase().as_str() {
        "listen" => {
            if let Some((host, port)) = listen(cx, key, node) {
                opts.host = if host.is_empty() { d.host } else { host };
                if let Some(p) = client_port(cx, node, port) {
                    opts.port = p;
                }
            }
        }
        "port" => {
            if let Some(p) = cx.int(key, node).and_then(|v| client_port(cx, node, v)) {
                opts.port = p;
            }
        }
        "host" | "net" => set(&mut opts.host, cx.string(key, node)),
        "server_name" => {
            if let Some(name) = cx.string(key, node) {
                if name.contains(' ') {
                    cx.error(&node.pos, "server name cannot contain spaces");
                } else {
                    opts.server_name = Some(name);
                }
            }
        }
        "client_advertise" => {
            opts.client_advertise = cx.string(key, node).or(opts.client_advertise.take())
        }
        "http" => {
            if let Some((host, port)) = listen(cx, key, node) {
                if !host.is_empty() {
                    opts.http_host = host;
                }
                if let Some(p) = http_port(cx, node, port) {
                    opts.http_port = p;
                }
            }
        }
        "http_port" | "monitor_port" => {
            if let Some(p) = cx.int(key, node).and_then(|v| http_port(cx, node, v)) {
                opts.http_port = p;
            }
        }
        "http_base_path" => set(&mut opts.http_base_path, cx.string(key, node)),
        "debug" => set(&mut opts.debug, cx.bool(key, node)),
        "trace" => set(&mut opts.trace, cx.bool(key, node)),
        "logtime" => set(&mut opts.logtime, cx.bool(key, node)),
        "logtime_utc" => set(&mut opts.logtime_utc, cx.bool(key, node)),
        "logfile" | "log_file" => set_path(&mut opts.log_file, cx.string(key, node)),
        "pidfile" | "pid_file" => set_path(&mut opts.pid_file, cx.string(key, node)),
        "ports_file_dir" => set_path(&mut opts.ports_file_dir, cx.string(key, node)),
        "max_control_line" => set(
            &mut opts.max_control_line,
            cx.limit(key, node, i32::MAX.into())
                .map(|v| or(v, d.max_control_line)),
        ),
        "max_payload" => set(
            &mut opts.max_payload,
            cx.limit(key, node, i32::MAX.into())
                .map(|v| or(v, d.max_payload)),
        ),
        "max_pending" => set(
            &mut opts.max_pending,
            cx.limit(key, node, i64::MAX).map(|v| or(v, d.max_pending)),
        ),
        // Zero or less refuses every client, as in nats-server.
        "max_connections" | "max_conn" => set(
            &mut opts.max_connections,
            cx.int(key, node).map(|v| usize::try_from(v).unwrap_or(0)),
        ),
        "max_subscriptions" | "max_subs" => set(&mut opts.max_subs, cx.limit(key, node, i64::MAX)),
        "ping_interval" => set(
            &mut opts.ping_interval,
            cx.duration(key, node).map(|v| or_dur(v, d.ping_interval)),
        ),
        "ping_max" => set(
            &mut opts.ping_max,
            cx.limit(key, node, u32::MAX.into())
                .and_then(|v| u32::try_from(v).ok())
                .map(|v| or(v, d.ping_max)),
        ),
        "write_deadline" => set(
            &mut opts.write_deadline,
            cx.duration(key, node).map(|v| or_dur(v, d.write_deadline)),
        ),
        "lame_duck_duration" => {
            if let Some((neg, dur)) = cx.duration_str(key, node) {
                if neg || dur < Duration::from_secs(30) {
                    let shown = format!(
                        "{}{}",
                        if neg { "-" } else { "" },
                        super::format_go_duration(dur)
                    );
                    cx.error(
                        &node.pos,
                        format!("invalid lame_duck_duration of {shown}, minimum is 30 seconds"),
                    );
                } else {
                    opts.lame_duck_duration = dur;
                }
            }
        }
        "lame_duck_grace_period" => {
            if let Some((neg, dur)) = cx.duration_str(key, node) {
                if neg {
                    cx.error(
                        &node.pos,
                        "invalid lame_duck_grace_period, needs to be positive",
                    );
                } else {
                    opts.lame_duck_grace_period = or_dur(dur, d.lame_duck_grace_period);
                }
            }
        }
        "no_header_support" => set(&mut opts.no_header_support, cx.bool(key, node)),
        "no_fast_producer_stall" => set(&mut opts.no_fast_producer_stall, cx.bool(key, node)),
        "accounts" => super::accounts::accounts(opts, cx, node),
        "system_account" | "system" => opts.system_account = cx.string(key, node),
        "no_auth_user" => opts.no_auth_user = cx.string(key, node).or(opts.no_auth_user.take()),
        "authorization" => blocks::authorization(opts, cx, key, node),
        "cluster" => blocks::cluster(opts, cx, key, node),
        "tls" => opts.tls = super::tls::tls_block(cx, key, node, super::tls::TlsUse::Client),
        "allow_non_tls" => set(&mut opts.allow_non_tls, cx.bool(key, node)),
        "https" => super::tls::https(opts, cx, key, node),
        "https_port" => super::tls::https_port(opts, cx, key, node),
        "jetstream" => blocks::jetstream(opts, cx, key, node),
        "websocket" | "ws" => super::websocket::websocket(opts, cx, key, node),
        "store_dir" | "storedir" => {
            if let Some(dir) = cx.string(key, node) {
                blocks::set_store_dir(opts, cx, node, dir);
            }
        }
        // Read after everything else, by `super::operator::apply`.
        k if super::operator::is_operator_key(k) => {}
        k if SECURITY_TOP.contains(&k) => cx.refuse(key, node),
        k if UNSUPPORTED_TOP.contains(&k) => cx.unsupported(key, node),
        _ => cx.unknown(key, node),
    }
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

fn set_path(slot: &mut Option<PathBuf>, v: Option<String>) {
    if let Some(v) = v {
        *slot = Some(PathBuf::from(v));
    }
}

/// nats-server treats a zero limit as "use the default".
fn or<T: PartialEq + Default>(v: T, default: T) -> T {
    if v == T::default() {
        default
    } else {
        v
    }
}

fn or_dur(v: Duration, default: Duration) -> Duration {
    if v.is_zero() {
        default
    } else {
        v
    }
}

/// `listen`-style value: a port number or `host:port`.
pub(super) fn listen(cx: &mut Ctx, key: &str, node: &Node) -> Option<(String, i64)> {
    match &node.value {
        Value::Int(p) => Some((String::new(), *p)),
        Value::String(s) => match split_host_port(s) {
            None => {
                cx.error(&node.pos, format!("could not parse address string {s:?}"));
                None
            }
            Some((host, port)) => match port.parse::<i64>() {
                Ok(p) => Some((host, p)),
                Err(_) => {
                    cx.error(&node.pos, format!("could not parse port {port:?}"));
                    None
                }
            },
        },
        other => {
            let _ = key;
            cx.error(
                &node.pos,
                format!("expected port or host:port, got {}", other.type_name()),
            );
            None
        }
    }
}

/// Go's `net.SplitHostPort`: `host:port`, `[v6]:port` or `:port`.
fn split_host_port(s: &str) -> Option<(String, String)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host.to_string(), port.to_string()));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') || host.contains('[') || host.contains(']') {
        return None;
    }
    Some((host.to_string(), port.to_string()))
}

/// Client port: -1 picks a random port (stored as 0), 0 means the default.
fn client_port(cx: &mut Ctx, node: &Node, v: i64) -> Option<u16> {
    match v {
        -1 => Some(0),
        0 => Some(DEFAULT_PORT),
        _ => checked_port(cx, node, v),
    }
}

/// Monitoring port: -1 random (`Some(0)`), 0 disabled (`None`).
fn http_port(cx: &mut Ctx, node: &Node, v: i64) -> Option<Option<u16>> {
    match v {
        -1 => Some(Some(0)),
        0 => Some(None),
        _ => checked_port(cx, node, v).map(Some),
    }
}

pub(super) fn checked_port(cx: &mut Ctx, node: &Node, v: i64) -> Option<u16> {
    match u16::try_from(v) {
        Ok(p) => Some(p),
        Err(_) => {
            cx.error(
                &node.pos,
                format!("invalid port {v}, must be between -1 and 65535"),
            );
            None
        }
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
