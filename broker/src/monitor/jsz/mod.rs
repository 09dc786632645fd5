//! `/jsz`: JetStream's state on this server, in nats-server's `JSInfo`
//! shape (usage totals, `api`, `server_id`, `now`, `config`, `limits`,
//! counts), so tools that poll it (`nats server report jetstream`,
//! exporters, the rolling-upgrade playbook) read Tribune the same way.
//!
//! A clustered server adds `meta_cluster` ([`meta`]). The query options
//! ([`options`]) add `account_details` ([`detail`]): per account, and on
//! request per stream and consumer, as nats-server reports them.

mod detail;
mod meta;
mod metrics;
mod options;

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::gofmt::GoTime;
use super::query::Params;
use super::{Monitor, ZError};
use crate::jetstream::JetStream;
use crate::options::SyncPolicy;
use crate::server::Server;
use detail::{AccountDetail, Stats};
use meta::MetaCluster;
pub(super) use metrics::metrics;
use options::JszOptions;

/// nats-server's `JetStreamConfig`; all zero when JetStream is off.
#[derive(Serialize, Default)]
struct JszConfig {
    max_memory: i64,
    max_storage: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    store_dir: String,
    #[serde(skip_serializing_if = "is_zero")]
    sync_interval: i64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    sync_always: bool,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_zero_usize(n: &usize) -> bool {
    *n == 0
}

/// nats-server's `JSLimitOpts`: server-wide JetStream limits, each left out
/// when unset. Tribune has none of them, so this is `{}`, as nats-server
/// without a `limits` block writes it.
#[derive(Serialize)]
struct JsLimits {}

/// nats-server's `JetStreamVarz`: the `jetstream` block of `/varz` and of
/// `STATSZ`, from the same numbers as `/jsz`.
#[derive(Serialize)]
pub(crate) struct JetStreamVarz {
    config: JszConfig,
    stats: Stats,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<MetaCluster>,
    limits: JsLimits,
}

/// The `jetstream` block, or `None` when JetStream is off.
pub(crate) fn varz_block(m: &Monitor) -> Option<JetStreamVarz> {
    let jsz = data(m, &Params::default()).ok()?;
    if jsz.disabled {
        return None;
    }
    Some(JetStreamVarz {
        config: jsz.config,
        stats: jsz.stats,
        meta: jsz.meta_cluster,
        limits: JsLimits {},
    })
}

/// nats-server's `JSInfo`, fields in its order.
#[derive(Serialize)]
pub(super) struct Jsz {
    #[serde(flatten)]
    stats: Stats,
    server_id: String,
    now: GoTime,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
    config: JszConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<JsLimits>,
    streams: usize,
    #[serde(skip_serializing_if = "is_zero_usize")]
    streams_leader: usize,
    consumers: usize,
    #[serde(skip_serializing_if = "is_zero_usize")]
    consumers_leader: usize,
    messages: u64,
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta_cluster: Option<MetaCluster>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    account_details: Vec<AccountDetail>,
    total: usize,
}

/// nats-server's answer to `leader-only` anywhere but on the meta leader
/// (and where JetStream is off): status 400 with this text.
const NOT_LEADER: &str = "filtered response: not leader";

/// `/jsz` for `p`; a `leader-only` request anywhere but on the meta
/// leader is [`ZError::Filtered`].
pub(super) fn data(m: &Monitor, p: &Params) -> Result<Jsz, ZError> {
    let opts = JszOptions::parse(p).map_err(ZError::BadRequest)?;
    let server = &m.server;
    let mut out = Jsz {
        stats: Stats::default(),
        server_id: server.id.clone(),
        now: Monitor::now(),
        disabled: true,
        config: JszConfig::default(),
        limits: None,
        streams: 0,
        streams_leader: 0,
        consumers: 0,
        consumers_leader: 0,
        messages: 0,
        bytes: 0,
        meta_cluster: None,
        account_details: Vec::new(),
        total: 0,
    };
    let Some(js) = server.jetstream() else {
        if opts.leader_only {
            return Err(ZError::Filtered(NOT_LEADER.to_string()));
        }
        return Ok(out);
    };
    if opts.leader_only && !is_meta_leader(server, js) {
        return Err(ZError::Filtered(NOT_LEADER.to_string()));
    }
    out.disabled = false;
    out.limits = Some(JsLimits {});
    out.stats.api.level = crate::jetstream::api::API_LEVEL;
    out.config = config(server, js);
    if let Some(c) = js.cluster() {
        out.meta_cluster = Some(MetaCluster::of(c));
        // The meta group is one of this server's Raft groups.
        out.stats.ha_assets = 1;
    }
    let accounts = js.accounts();
    out.total = accounts.len();
    out.stats.accounts = accounts.len();
    // The totals cover every account, whatever the options select.
    for acc in &accounts {
        out.stats.api.total += acc.api_total.load(Ordering::Relaxed);
        out.stats.api.errors += acc.api_errors.load(Ordering::Relaxed);
        let u = acc.usage();
        out.stats.memory += u.memory;
        out.stats.storage += u.storage;
        out.streams += u.streams;
        out.consumers += u.consumers;
        out.messages += u.messages;
        out.bytes += u.memory + u.storage;
        let streams: Vec<_> = acc.streams.read().values().cloned().collect();
        for s in &streams {
            out.stats.ha_assets += usize::from(detail::is_ha_asset(server, s));
            if opts.raft && detail::leads(server, s) {
                out.streams_leader += 1;
                out.consumers_leader += s.consumers.read().len();
            }
        }
    }
    // A named account takes precedence over the listing of all.
    let named = accounts.iter().find(|a| a.name == opts.account).cloned();
    let selected = match named {
        Some(acc) => vec![acc],
        None if opts.accounts => opts.page(accounts, |a| a.name.as_str()),
        None => Vec::new(),
    };
    out.account_details = selected
        .iter()
        .map(|acc| AccountDetail::of(server, acc, &opts))
        .collect();
    Ok(out)
}

/// nats-server's `JszAccount`: the `acc` account's detail alone.
pub(super) fn account_data(m: &Monitor, p: &Params) -> Result<AccountDetail, ZError> {
    let opts = JszOptions::parse(p).map_err(ZError::BadRequest)?;
    let server = &m.server;
    let js = server
        .jetstream()
        .ok_or_else(|| ZError::BadRequest("jetstream not enabled".into()))?;
    if server.account(opts.account.as_bytes()).is_none() {
        return Err(ZError::BadRequest(format!(
            "account {:?} not found",
            opts.account
        )));
    }
    let acc = js.account(&opts.account).ok_or_else(|| {
        ZError::BadRequest(format!("account {:?} not jetstream enabled", opts.account))
    })?;
    Ok(AccountDetail::of(server, &acc, &opts))
}

/// Whether `leader-only` lets this server answer: it runs by itself, or it
/// leads the meta group. A clustered server that has not joined the
/// domain yet knows no leader, so it is not one.
fn is_meta_leader(server: &Server, js: &JetStream) -> bool {
    match js.cluster() {
        Some(c) => c.meta.is_leader(),
        None => !server.opts().cluster.enabled(),
    }
}

fn config(server: &Server, js: &JetStream) -> JszConfig {
    let opts = server.opts();
    JszConfig {
        max_memory: opts.jetstream.max_memory_store.unwrap_or(-1),
        max_storage: opts.jetstream.max_file_store.unwrap_or(-1),
        store_dir: js.store_dir.display().to_string(),
        sync_interval: match js.sync {
            SyncPolicy::Always => 0,
            SyncPolicy::Interval(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        },
        sync_always: js.sync == SyncPolicy::Always,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_config_is_two_zeros_and_limits_an_empty_object() {
        let v = serde_json::to_value(JszConfig::default()).unwrap();
        assert_eq!(v, serde_json::json!({"max_memory": 0, "max_storage": 0}));
        let v = serde_json::to_value(JsLimits {}).unwrap();
        assert_eq!(v, serde_json::json!({}));
    }
}
