//! `/jsz`: JetStream's state on this server, in nats-server's shape
//! (`server_id`, `now`, `config`, usage totals, `api`), so tools that poll it
//! (the rolling-upgrade playbook, dashboards) read Tribune the same way.
//!
//! Tribune's JetStream is not clustered yet, so there is no `meta_cluster`:
//! a node with JetStream serves its streams alone.

use std::sync::atomic::Ordering;

use axum::response::Response;
use serde::Serialize;

use super::gofmt::GoTime;
use super::{json_ok, Monitor};
use crate::options::SyncPolicy;

#[derive(Serialize)]
struct JszConfig {
    max_memory: i64,
    max_storage: i64,
    store_dir: String,
    sync_interval: i64,
    sync_always: bool,
}

#[derive(Serialize)]
struct Api {
    total: u64,
    errors: u64,
}

#[derive(Serialize)]
struct Jsz {
    server_id: String,
    now: GoTime,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<JszConfig>,
    memory: u64,
    storage: u64,
    reserved_memory: u64,
    reserved_storage: u64,
    accounts: usize,
    ha_assets: usize,
    api: Api,
    streams: usize,
    consumers: usize,
    messages: u64,
    bytes: u64,
}

pub(super) fn handle(m: &Monitor) -> Response {
    m.count("/jsz");
    let server = &m.server;
    let mut out = Jsz {
        server_id: server.id.clone(),
        now: Monitor::now(),
        disabled: true,
        config: None,
        memory: 0,
        storage: 0,
        reserved_memory: 0,
        reserved_storage: 0,
        accounts: 0,
        ha_assets: 0,
        api: Api {
            total: 0,
            errors: 0,
        },
        streams: 0,
        consumers: 0,
        messages: 0,
        bytes: 0,
    };
    if let Some(js) = server.jetstream() {
        let opts = server.opts();
        out.disabled = false;
        out.config = Some(JszConfig {
            max_memory: opts.jetstream.max_memory_store.unwrap_or(-1),
            max_storage: opts.jetstream.max_file_store.unwrap_or(-1),
            store_dir: js.store_dir.display().to_string(),
            sync_interval: match js.sync {
                SyncPolicy::Always => 0,
                SyncPolicy::Interval(d) => d.as_nanos() as i64,
            },
            sync_always: js.sync == SyncPolicy::Always,
        });
        for acc in js.accounts() {
            out.accounts += 1;
            out.api.total += acc.api_total.load(Ordering::Relaxed);
            out.api.errors += acc.api_errors.load(Ordering::Relaxed);
            let u = acc.usage();
            out.memory += u.memory;
            out.storage += u.storage;
            out.streams += u.streams;
            out.consumers += u.consumers;
            out.messages += u.messages;
            out.bytes += u.memory + u.storage;
        }
    }
    json_ok(&out)
}
