//! `/accountz` and `/accstatz`: the accounts this server knows, one
//! account's configuration and use, and each account's traffic, in
//! nats-server's shapes (`Accountz`, `AccountInfo`, `AccountStatz`). The
//! system account serves the same through `$SYS.REQ.ACCOUNT.<account>.*`.
//!
//! An account's traffic is what its clients sent and were sent: the live
//! connections' counters plus what closed ones left behind
//! ([`crate::accounts::Account::traffic`]), so the message path counts
//! nothing extra.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use super::gofmt::GoTime;
use super::{Monitor, Params, ZError};
use crate::accounts::Account;
use crate::options::{Export, ExportKind, Import, ResponseType};
use crate::server::Server;

/// nats-server's `Accountz`.
#[derive(Serialize)]
pub(super) struct Accountz {
    server_id: String,
    now: GoTime,
    #[serde(skip_serializing_if = "String::is_empty")]
    system_account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    accounts: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_detail: Option<AccountInfo>,
}

/// nats-server's `AccountInfo`, for what Tribune has.
#[derive(Serialize)]
pub(super) struct AccountInfo {
    account_name: String,
    update_time: GoTime,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    is_system: bool,
    expired: bool,
    complete: bool,
    jetstream_enabled: bool,
    leafnode_connections: usize,
    client_connections: usize,
    subscriptions: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    exports: Vec<ExtExport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    imports: Vec<ExtImport>,
    #[serde(skip_serializing_if = "String::is_empty")]
    name_tag: String,
    sublist_stats: SublistStats,
}

/// An export as nats-server's `ExtExport` writes it (the `jwt.Export`
/// fields Tribune reads, and who may import).
#[derive(Serialize)]
struct ExtExport {
    subject: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    token_req: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    revocations: BTreeMap<String, i64>,
    #[serde(skip_serializing_if = "str::is_empty")]
    response_type: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    approved_accounts: Vec<String>,
}

/// An import as nats-server's `ExtImport` writes it.
#[derive(Serialize)]
struct ExtImport {
    subject: String,
    account: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    local_subject: String,
    #[serde(rename = "type")]
    kind: &'static str,
    invalid: bool,
    share: bool,
    tracking: bool,
}

/// nats-server's `SublistStats` as `/accountz` shows it.
#[derive(Serialize)]
struct SublistStats {
    num_subscriptions: u64,
    num_cache: u64,
    num_inserts: u64,
    num_removes: u64,
    num_matches: u64,
    cache_hit_rate: super::gofmt::GoFloat,
    max_fanout: u64,
    avg_fanout: super::gofmt::GoFloat,
}

/// nats-server's `AccountStatz`.
#[derive(Serialize)]
pub(super) struct AccountStatz {
    server_id: String,
    now: GoTime,
    account_statz: Vec<AccountStat>,
}

/// Messages and bytes of an account, as nats-server's `DataStats` writes
/// them for accounts. Gateways and leaf nodes Tribune has not, so theirs are
/// zero; per-route traffic of an account it does not count, so `routes` is
/// left out rather than shown as zero.
#[derive(Serialize, Default)]
pub struct DataStats {
    msgs: u64,
    bytes: u64,
    gateways: MsgBytes,
    leafs: MsgBytes,
}

#[derive(Serialize, Default)]
pub struct MsgBytes {
    msgs: u64,
    bytes: u64,
}

/// nats-server's `AccountStat`.
#[derive(Serialize)]
pub struct AccountStat {
    acc: String,
    name: String,
    conns: usize,
    leafnodes: usize,
    total_conns: usize,
    num_subscriptions: u64,
    sent: DataStats,
    received: DataStats,
    slow_consumers: u64,
}

fn kind_str(k: ExportKind) -> &'static str {
    match k {
        ExportKind::Stream => "stream",
        ExportKind::Service => "service",
    }
}

fn ext_export(e: &Export) -> ExtExport {
    ExtExport {
        subject: e.subject.clone(),
        kind: kind_str(e.kind),
        token_req: e.token_required,
        revocations: e.revocations.clone(),
        response_type: match (e.kind, e.response.kind) {
            (ExportKind::Stream, _) => "",
            (_, ResponseType::Singleton) => "Singleton",
            (_, ResponseType::Stream) => "Stream",
            (_, ResponseType::Chunked) => "Chunked",
        },
        approved_accounts: e.accounts.clone(),
    }
}

fn ext_import(i: &Import) -> ExtImport {
    ExtImport {
        subject: i.subject.clone(),
        account: i.account.clone(),
        local_subject: i.to.clone().unwrap_or_default(),
        kind: kind_str(i.kind),
        invalid: false,
        share: false,
        tracking: false,
    }
}

/// `/accountz`: every account's name, or with `acc` that account's detail.
pub(super) fn data(m: &Monitor, p: &Params) -> Result<Accountz, ZError> {
    let s = m.server();
    let mut out = Accountz {
        server_id: s.id.clone(),
        now: GoTime(SystemTime::now()),
        system_account: s.system_account().name.clone(),
        accounts: None,
        account_detail: None,
    };
    let name = p.get("acc");
    if name.is_empty() {
        let mut names: Vec<String> = s.accounts().iter().map(|a| a.name.clone()).collect();
        names.sort();
        out.accounts = Some(names);
    } else {
        out.account_detail = Some(info(s, name)?);
    }
    Ok(out)
}

/// One account's `AccountInfo`, or nats-server's error for an unknown one.
pub(super) fn info(s: &Arc<Server>, name: &str) -> Result<AccountInfo, ZError> {
    let acc = s
        .account(name.as_bytes())
        .ok_or_else(|| ZError::BadRequest(format!("Account {name} does not exist")))?;
    let cfg = s.account_config(name).unwrap_or_default();
    let st = acc.sublist.stats();
    Ok(AccountInfo {
        account_name: acc.name.clone(),
        update_time: GoTime(s.config_load_time()),
        is_system: Arc::ptr_eq(&acc, &s.system_account()),
        expired: false,
        complete: true,
        jetstream_enabled: s
            .jetstream()
            .is_some_and(|js| js.account(&acc.name).is_some()),
        leafnode_connections: 0,
        client_connections: acc.num_clients(),
        subscriptions: acc.sublist.count(),
        exports: cfg.exports.iter().map(ext_export).collect(),
        imports: cfg.imports.iter().map(ext_import).collect(),
        name_tag: acc.name.clone(),
        sublist_stats: SublistStats {
            num_subscriptions: st.num_subs,
            num_cache: 0,
            num_inserts: st.num_inserts,
            num_removes: st.num_removes,
            num_matches: st.num_matches,
            cache_hit_rate: super::gofmt::GoFloat(0.0),
            max_fanout: 0,
            avg_fanout: super::gofmt::GoFloat(0.0),
        },
    })
}

/// One account's traffic and connections on this server.
pub fn account_stat(s: &Server, acc: &Account) -> AccountStat {
    let (clients, t) = s.clients_with(|| acc.traffic.snapshot());
    let (mut sent, mut received) = (
        DataStats {
            msgs: t.out_msgs,
            bytes: t.out_bytes,
            ..Default::default()
        },
        DataStats {
            msgs: t.in_msgs,
            bytes: t.in_bytes,
            ..Default::default()
        },
    );
    for c in clients {
        let same = c
            .account
            .lock()
            .as_ref()
            .is_some_and(|a| a.name == acc.name);
        if !same {
            continue;
        }
        received.msgs += c.stats.in_msgs.load(Ordering::Relaxed);
        received.bytes += c.stats.in_bytes.load(Ordering::Relaxed);
        let (m, b) = c.out.lock().out_counts();
        sent.msgs += m;
        sent.bytes += b;
    }
    let conns = acc.num_clients();
    AccountStat {
        acc: acc.name.clone(),
        name: acc.name.clone(),
        conns,
        leafnodes: 0,
        total_conns: conns,
        num_subscriptions: acc.sublist.count(),
        sent,
        received,
        slow_consumers: t.slow_consumers,
    }
}

/// `/accstatz`: the accounts with clients here (all of them with
/// `unused`), or only those `accounts` names.
pub(super) fn statz(m: &Monitor, accounts: &[String], include_unused: bool) -> AccountStatz {
    let s = m.server();
    let mut list: Vec<Arc<Account>> = if accounts.is_empty() {
        s.accounts()
    } else {
        accounts
            .iter()
            .filter_map(|n| s.account(n.as_bytes()))
            .collect()
    };
    list.sort_by(|a, b| a.name.cmp(&b.name));
    AccountStatz {
        server_id: s.id.clone(),
        now: GoTime(SystemTime::now()),
        account_statz: list
            .iter()
            .filter(|a| include_unused || a.num_clients() != 0)
            .map(|a| account_stat(s, a))
            .collect(),
    }
}

/// `/accstatz` over HTTP: `unused` is its one parameter.
pub(super) fn statz_data(m: &Monitor, p: &Params) -> Result<AccountStatz, ZError> {
    let unused = p.bool("unused").map_err(ZError::BadRequest)?;
    Ok(statz(m, &[], unused))
}

impl AccountStatz {
    pub(super) fn is_empty(&self) -> bool {
        self.account_statz.is_empty()
    }
}
