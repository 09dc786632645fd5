//! The `discovery` block inside `cluster { ... }`:
//!
//! ```text
//! cluster {
//!   name: tribune
//!   listen: 0.0.0.0:6222
//!   discovery {
//!     ec2 {
//!       tag_key: "tribune:cluster"   # required
//!       tag_value: "prod"            # required
//!       region: "eu-west-1"          # default: SDK chain (env, profile, IMDS)
//!       endpoint: "http://127.0.0.1:4566"  # API override (LocalStack)
//!       vpc_id: "vpc-123"            # only instances in this VPC
//!       port: 6222                   # default: the port of cluster.listen
//!       refresh: "30s"               # Go duration, >= 1s, default 30s
//!       scheme: "nats-route"         # route URL scheme: nats-route | nats | tls
//!     }
//!   }
//! }
//! ```
//!
//! `ec2` is a sub-block (not flat keys in `discovery`) so other providers
//! (DNS, static files) can sit next to it later without renaming anything.
//!
//! This module cannot use the config module's private `Ctx`, so it collects
//! its own [`ConfigError`]s, worded like the rest of the config code
//! (`unknown field "x"`, `invalid type for field "x": expected string, got
//! integer`), and the caller appends them to its error list. Keys are matched
//! case-insensitively, like every other option name.

use std::time::Duration;

use super::{
    Ec2DiscoveryConfig, DEFAULT_REFRESH, DEFAULT_SCHEME, MIN_REFRESH, PORT_FROM_CLUSTER_LISTEN,
};
use crate::config::{format_go_duration, parse_go_duration, ConfigError, Map, Node, Pos, Value};

/// Route URL schemes nats-server accepts in `routes`.
const SCHEMES: &[&str] = &["nats-route", "nats", "tls"];

/// Parses the value of the `discovery` key of a `cluster` block.
///
/// Returns every problem at once (like `apply_file`), each at the line of the
/// offending key. Without the `ec2-discovery` feature a well-formed `ec2`
/// block is still an error: a config asking for discovery on a binary that
/// cannot do it must not start a node that silently has no peers.
pub fn parse_discovery_block(node: &Node) -> Result<Ec2DiscoveryConfig, Vec<ConfigError>> {
    let mut p = Errors::default();
    let Some(map) = p.map(node, "Expected map to define cluster discovery") else {
        return Err(p.0);
    };
    let mut ec2 = None;
    for (k, v) in map.iter() {
        match k.to_ascii_lowercase().as_str() {
            "ec2" => ec2 = Some((parse_ec2(&mut p, v), v)),
            _ => p.unknown(k, v),
        }
    }
    let cfg = match ec2 {
        None => {
            p.at(
                &node.pos,
                "cluster discovery requires a provider block: ec2 { tag_key: ..., tag_value: ... }",
            );
            None
        }
        Some((_, v)) if !super::EC2_DISCOVERY_BUILT => {
            p.at(&v.pos, "option \"cluster.discovery.ec2\" is not supported: tribune-broker was built without EC2 discovery (cargo feature \"ec2-discovery\")");
            None
        }
        Some((cfg, _)) => cfg,
    };
    match cfg {
        Some(cfg) if p.0.is_empty() => Ok(cfg),
        _ => Err(p.0),
    }
}

/// The `ec2 { ... }` block. `None` if anything in it was wrong.
fn parse_ec2(p: &mut Errors, node: &Node) -> Option<Ec2DiscoveryConfig> {
    let map = p.map(node, "Expected map to define cluster discovery ec2")?;
    let before = p.0.len();
    let mut cfg = Ec2DiscoveryConfig::new("", "", PORT_FROM_CLUSTER_LISTEN);
    let (mut key_set, mut value_set) = (false, false);
    for (k, v) in map.iter() {
        match k.to_ascii_lowercase().as_str() {
            "tag_key" => {
                key_set = true;
                cfg.tag_key = p.non_empty(k, v).unwrap_or_default();
            }
            // Empty is allowed: EC2 tags may have an empty value.
            "tag_value" => {
                value_set = true;
                cfg.tag_value = p.string(k, v).unwrap_or_default();
            }
            "region" => cfg.region = p.non_empty(k, v),
            "endpoint" => cfg.endpoint = p.endpoint(k, v),
            "vpc_id" | "vpc" => cfg.vpc_id = p.non_empty(k, v),
            "port" => cfg.cluster_port = p.port(k, v).unwrap_or(cfg.cluster_port),
            "refresh" | "refresh_interval" => {
                cfg.refresh = p.refresh(k, v).unwrap_or(DEFAULT_REFRESH)
            }
            "scheme" => cfg.scheme = p.scheme(k, v).unwrap_or_else(|| DEFAULT_SCHEME.to_string()),
            _ => p.unknown(k, v),
        }
    }
    // Checked on presence, not validity: a mistyped key already has its error.
    if !key_set {
        p.at(&node.pos, "cluster discovery ec2 requires a tag_key");
    }
    if !value_set {
        p.at(&node.pos, "cluster discovery ec2 requires a tag_value");
    }
    (p.0.len() == before).then_some(cfg)
}

/// Error list with the typed accessors of the config module's `Ctx`.
#[derive(Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    fn at(&mut self, pos: &Pos, msg: impl Into<String>) {
        self.0.push(ConfigError {
            file: pos.file.to_path_buf(),
            line: pos.line,
            col: pos.col,
            message: msg.into(),
        });
    }

    fn unknown(&mut self, key: &str, node: &Node) {
        if !node.used_as_variable {
            self.at(&node.pos, format!("unknown field {key:?}"));
        }
    }

    fn type_error(&mut self, key: &str, node: &Node, expected: &str) {
        let got = node.value.type_name();
        self.at(
            &node.pos,
            format!("invalid type for field {key:?}: expected {expected}, got {got}"),
        );
    }

    fn map<'n>(&mut self, node: &'n Node, msg: &str) -> Option<&'n Map> {
        match &node.value {
            Value::Map(m) => Some(m),
            other => {
                self.at(&node.pos, format!("{msg}, got {}", other.type_name()));
                None
            }
        }
    }

    fn string(&mut self, key: &str, node: &Node) -> Option<String> {
        match &node.value {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.type_error(key, node, "string");
                None
            }
        }
    }

    fn non_empty(&mut self, key: &str, node: &Node) -> Option<String> {
        let s = self.string(key, node)?;
        if s.trim().is_empty() {
            self.at(&node.pos, format!("{key} can not be empty"));
            return None;
        }
        Some(s)
    }

    fn endpoint(&mut self, key: &str, node: &Node) -> Option<String> {
        let s = self.non_empty(key, node)?;
        if !(s.starts_with("http://") || s.starts_with("https://"))
            || s.chars().any(char::is_whitespace)
        {
            self.at(
                &node.pos,
                format!("invalid {key} {s:?}: expected an http:// or https:// URL"),
            );
            return None;
        }
        Some(s)
    }

    fn port(&mut self, key: &str, node: &Node) -> Option<u16> {
        let Value::Int(v) = node.value else {
            self.type_error(key, node, "integer");
            return None;
        };
        match u16::try_from(v) {
            Ok(p) if p != 0 => Some(p),
            _ => {
                self.at(
                    &node.pos,
                    format!("invalid port {v}, must be between 1 and 65535"),
                );
                None
            }
        }
    }

    fn refresh(&mut self, key: &str, node: &Node) -> Option<Duration> {
        let Value::String(s) = &node.value else {
            self.type_error(key, node, "duration string");
            return None;
        };
        match parse_go_duration(s) {
            Err(e) => {
                self.at(&node.pos, format!("error parsing {key}: {e}"));
                None
            }
            Ok((neg, d)) if neg || d < MIN_REFRESH => {
                let shown = format!("{}{}", if neg { "-" } else { "" }, format_go_duration(d));
                self.at(
                    &node.pos,
                    format!("invalid {key} of {shown}, minimum is 1 second"),
                );
                None
            }
            Ok((_, d)) => Some(d),
        }
    }

    fn scheme(&mut self, key: &str, node: &Node) -> Option<String> {
        let s = self.string(key, node)?;
        let lower = s.to_ascii_lowercase();
        if SCHEMES.contains(&lower.as_str()) {
            Some(lower)
        } else {
            self.at(
                &node.pos,
                format!(
                    "invalid {key} {s:?}, expected one of: {}",
                    SCHEMES.join(", ")
                ),
            );
            None
        }
    }
}
