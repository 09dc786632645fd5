//! `accounts { NAME { jetstream { ... } } }`: an account's JetStream limits,
//! with nats-server's keys, aliases and error wording
//! (`parseJetStreamForAccount`). Unset limits stay -1 (unlimited).

use super::apply::Ctx;
use super::value::{Node, Value};
use crate::jetstream::account_info::AccountLimits;

/// How Go's `%v` prints a config value, for nats-server's messages.
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        other => other.type_name().to_string(),
    }
}

/// Parse the limits map. `None` when an entry is wrong (the error is
/// recorded), as nats-server stops reading the block at its first error.
pub(super) fn account_js_limits(cx: &mut Ctx, node: &Node) -> Option<AccountLimits> {
    let map = node.value.as_map()?;
    let mut l = AccountLimits::default();
    for (k, v) in map.iter() {
        let size = |cx: &mut Ctx| match v.value {
            Value::Int(i) => Some(i),
            _ => {
                cx.error(
                    &v.pos,
                    format!(
                        "Expected a parseable size for {k:?}, got {}",
                        go_value(&v.value)
                    ),
                );
                None
            }
        };
        match k.to_ascii_lowercase().as_str() {
            "max_memory" | "max_mem" | "mem" | "memory" => l.max_memory = size(cx)?,
            "max_store" | "max_file" | "max_disk" | "store" | "disk" => l.max_storage = size(cx)?,
            "max_streams" | "streams" => l.max_streams = size(cx)?,
            "max_consumers" | "consumers" => l.max_consumers = size(cx)?,
            "max_ack_pending" => l.max_ack_pending = size(cx)?,
            "mem_max_stream_bytes" | "memory_max_stream_bytes" => {
                l.memory_max_stream_bytes = size(cx)?
            }
            "disk_max_stream_bytes" | "store_max_stream_bytes" => {
                l.storage_max_stream_bytes = size(cx)?
            }
            "max_bytes_required" | "max_stream_bytes" | "max_bytes" => match v.value {
                Value::Bool(b) => l.max_bytes_required = b,
                _ => {
                    cx.error(
                        &v.pos,
                        format!(
                            "Expected a parseable bool for {k:?}, got {}",
                            go_value(&v.value)
                        ),
                    );
                    return None;
                }
            },
            // Which account's Raft traffic carries the account's replication:
            // Tribune's always goes over the routes' own channel.
            "cluster_traffic" => match &v.value {
                Value::String(s) if matches!(s.as_str(), "system" | "") => {}
                Value::String(s) if s == "owner" => cx.unsupported(k, v),
                Value::String(s) => {
                    cx.error(
                        &v.pos,
                        format!("Expected 'system' or 'owner' string value for {k:?}, got {s}"),
                    );
                    return None;
                }
                other => {
                    cx.error(
                        &v.pos,
                        format!(
                            "Expected either 'system' or 'owner' string value for {k:?}, got {}",
                            go_value(other)
                        ),
                    );
                    return None;
                }
            },
            _ => cx.unknown(k, v),
        }
    }
    Some(l)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{apply_str, ConfigErrors};
    use crate::jetstream::account_info::AccountLimits;
    use crate::options::Options;

    fn limits(block: &str) -> Result<Option<AccountLimits>, Vec<String>> {
        let mut o = Options::default();
        let src = format!("accounts {{ A {{ jetstream {block} }} }}\n");
        match apply_str(&mut o, &src, Path::new("x.conf")) {
            Ok(_) => Ok(o.accounts[0].jetstream_limits),
            Err(ConfigErrors(errs)) => Err(errs.iter().map(ToString::to_string).collect()),
        }
    }

    #[test]
    fn keys_and_aliases() {
        let l = limits(
            "{ max_mem: 1MB, store: 2GB, streams: 3, consumers: 4, max_ack_pending: 5, \
             max_bytes: true, mem_max_stream_bytes: 6, disk_max_stream_bytes: 7 }",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            l,
            AccountLimits {
                max_memory: 1 << 20,
                max_storage: 2 << 30,
                max_streams: 3,
                max_consumers: 4,
                max_ack_pending: 5,
                memory_max_stream_bytes: 6,
                storage_max_stream_bytes: 7,
                max_bytes_required: true,
            }
        );
        // Unset limits stay unlimited.
        assert_eq!(
            limits("{ max_streams: 1 }").unwrap().unwrap(),
            AccountLimits {
                max_streams: 1,
                ..AccountLimits::default()
            }
        );
        assert_eq!(limits("enabled").unwrap(), None);
        assert_eq!(limits("enable").unwrap(), None);
    }

    #[test]
    fn errors_read_like_nats_server() {
        let e = limits("{ max_mem: \"lots\" }").unwrap_err();
        assert!(
            e[0].ends_with("Expected a parseable size for \"max_mem\", got lots"),
            "{e:?}"
        );
        let e = limits("{ max_bytes_required: 1 }").unwrap_err();
        assert!(
            e[0].ends_with("Expected a parseable bool for \"max_bytes_required\", got 1"),
            "{e:?}"
        );
        let e = limits("{ cluster_traffic: \"nobody\" }").unwrap_err();
        assert!(
            e[0].ends_with(
                "Expected 'system' or 'owner' string value for \"cluster_traffic\", got nobody"
            ),
            "{e:?}"
        );
        let e = limits("{ max_bogus: 1 }").unwrap_err();
        assert!(e[0].contains("max_bogus"), "{e:?}");
    }
}
