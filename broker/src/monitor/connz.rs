//! `/connz`: open and recently closed client connections.

use std::cmp::Ordering as CmpOrdering;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::gofmt::{my_uptime, rtt_string, GoTime};
use super::query::{page_bounds, ConnState, Params};
use super::{Monitor, ZError};
use crate::accounts::GLOBAL_ACCOUNT;
use crate::client::ClientShared;
use crate::server::{ClosedClient, Server};
use crate::subscription::Subscription;

/// nats-server's `DefaultConnListSize`.
pub(super) const DEFAULT_LIST_SIZE: usize = 1024;

#[derive(Serialize)]
pub(super) struct Connz {
    server_id: String,
    now: GoTime,
    num_connections: usize,
    total: usize,
    offset: usize,
    limit: usize,
    /// `null` only in nats-server's answer for an unknown `acc`.
    connections: Option<Vec<ConnInfo>>,
}

/// One connection, with nats-server's field names and omissions.
#[derive(Serialize, Debug, Clone, Default)]
pub(super) struct ConnInfo {
    pub cid: u64,
    pub kind: &'static str,
    #[serde(rename = "type")]
    pub kind_type: &'static str,
    pub ip: String,
    pub port: u16,
    pub start: Option<GoTime>,
    pub last_activity: Option<GoTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<GoTime>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rtt: String,
    pub uptime: String,
    pub idle: String,
    pub pending_bytes: usize,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub subscriptions: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lang: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub authorized_user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list_detail: Vec<SubDetail>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name_tag: String,
    /// For sorting; not shown.
    #[serde(skip)]
    pub rtt_nanos: u64,
}

/// A subscription as `/connz` and `/subsz` list it.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubDetail {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account_tag: String,
    pub subject: String,
    #[serde(rename = "qgroup", skip_serializing_if = "String::is_empty")]
    pub queue: String,
    pub sid: String,
    pub msgs: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub cid: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl SubDetail {
    /// The client-side view (no account), as in `/connz`.
    pub fn of(sub: &Subscription) -> SubDetail {
        SubDetail {
            account: String::new(),
            account_tag: String::new(),
            subject: sub.subject_str(),
            queue: sub.queue_str().unwrap_or_default(),
            sid: sub.sid_str(),
            msgs: sub.delivered.load(Ordering::Relaxed),
            max: sub.max.load(Ordering::Relaxed),
            cid: sub.client.cid,
        }
    }
}

/// Sids are usually numbers: order them numerically, then as text.
pub(super) fn sid_order(a: &str, b: &str) -> CmpOrdering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => CmpOrdering::Less,
        (Err(_), Ok(_)) => CmpOrdering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// `sort=` of `/connz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SortOpt {
    Cid,
    Start,
    Subs,
    Pending,
    MsgsTo,
    MsgsFrom,
    BytesTo,
    BytesFrom,
    Last,
    Idle,
    Uptime,
    Stop,
    Reason,
    Rtt,
}

impl SortOpt {
    pub fn parse(s: &str) -> Result<SortOpt, String> {
        Ok(match s {
            "" | "cid" => SortOpt::Cid,
            "start" => SortOpt::Start,
            "subs" => SortOpt::Subs,
            "pending" => SortOpt::Pending,
            "msgs_to" => SortOpt::MsgsTo,
            "msgs_from" => SortOpt::MsgsFrom,
            "bytes_to" => SortOpt::BytesTo,
            "bytes_from" => SortOpt::BytesFrom,
            "last" => SortOpt::Last,
            "idle" => SortOpt::Idle,
            "uptime" => SortOpt::Uptime,
            "stop" => SortOpt::Stop,
            "reason" => SortOpt::Reason,
            "rtt" => SortOpt::Rtt,
            other => return Err(format!("invalid sorting option: {other}")),
        })
    }
}

fn nanos(t: Option<GoTime>) -> i128 {
    t.map_or(0, |t| t.unix_nanos())
}

/// Sort as nats-server does: ascending by cid/start, uptime and reason,
/// descending by everything else. Ties keep cid order.
pub(super) fn sort_conns(conns: &mut [ConnInfo], by: SortOpt, now: SystemTime) {
    let now_ns = GoTime(now).unix_nanos();
    let uptime = |c: &ConnInfo| match c.stop {
        Some(stop) => stop.unix_nanos() - nanos(c.start),
        None => now_ns - nanos(c.start),
    };
    conns.sort_by_key(|c| c.cid);
    match by {
        SortOpt::Cid | SortOpt::Start => {}
        SortOpt::Subs => conns.sort_by_key(|c| std::cmp::Reverse(c.subscriptions)),
        SortOpt::Pending => conns.sort_by_key(|c| std::cmp::Reverse(c.pending_bytes)),
        SortOpt::MsgsTo => conns.sort_by_key(|c| std::cmp::Reverse(c.out_msgs)),
        SortOpt::MsgsFrom => conns.sort_by_key(|c| std::cmp::Reverse(c.in_msgs)),
        SortOpt::BytesTo => conns.sort_by_key(|c| std::cmp::Reverse(c.out_bytes)),
        SortOpt::BytesFrom => conns.sort_by_key(|c| std::cmp::Reverse(c.in_bytes)),
        SortOpt::Last => conns.sort_by_key(|c| std::cmp::Reverse(nanos(c.last_activity))),
        // Most idle first: the oldest last activity.
        SortOpt::Idle => conns.sort_by_key(|c| nanos(c.last_activity)),
        SortOpt::Uptime => conns.sort_by_key(|c| uptime(c)),
        SortOpt::Stop => conns.sort_by_key(|c| std::cmp::Reverse(nanos(c.stop))),
        SortOpt::Reason => conns.sort_by(|a, b| a.reason.cmp(&b.reason)),
        SortOpt::Rtt => conns.sort_by_key(|c| std::cmp::Reverse(c.rtt_nanos)),
    }
}

fn since(now: SystemTime, then: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or_default()
}

/// The account a live client is bound to ("" before it is known).
fn client_account(c: &ClientShared) -> String {
    if let Some(acc) = c.account.lock().as_ref() {
        return acc.name.clone();
    }
    c.meta.lock().account.clone()
}

fn open_info(
    c: &Arc<ClientShared>,
    now: SystemTime,
    auth: bool,
    subs: bool,
    detail: bool,
) -> ConnInfo {
    let meta = c.meta.lock().clone();
    let (out_msgs, out_bytes, pending) = {
        let out = c.out.lock();
        let (m, b) = out.out_counts();
        (m, b, out.pending())
    };
    let last = GoTime::from_unix_nanos(c.last_activity.load(Ordering::Relaxed));
    let account = client_account(c);
    let mut ci = ConnInfo {
        cid: c.cid,
        kind: "Client",
        kind_type: c.client_type.as_str(),
        ip: c.addr.map(|a| a.ip().to_string()).unwrap_or_default(),
        port: c.addr.map_or(0, |a| a.port()),
        start: Some(GoTime(c.start)),
        last_activity: Some(last),
        rtt: rtt_string(meta.rtt_nanos),
        rtt_nanos: meta.rtt_nanos,
        uptime: my_uptime(since(now, c.start)),
        idle: my_uptime(since(now, last.0)),
        pending_bytes: pending,
        in_msgs: c.stats.in_msgs.load(Ordering::Relaxed),
        in_bytes: c.stats.in_bytes.load(Ordering::Relaxed),
        out_msgs,
        out_bytes,
        name: meta.name,
        lang: meta.lang,
        version: meta.version,
        ..Default::default()
    };
    {
        let map = c.subs.lock();
        ci.subscriptions = map.len() as u32;
        if detail {
            ci.subscriptions_list_detail = map.values().map(|s| SubDetail::of(s)).collect();
            ci.subscriptions_list_detail
                .sort_by(|a, b| sid_order(&a.sid, &b.sid));
        } else if subs {
            let mut v: Vec<(String, String)> = map
                .values()
                .map(|s| (s.sid_str(), s.subject_str()))
                .collect();
            v.sort_by(|a, b| sid_order(&a.0, &b.0));
            ci.subscriptions_list = v.into_iter().map(|(_, subj)| subj).collect();
        }
    }
    if auth {
        ci.authorized_user = meta.user.unwrap_or_default();
        if account != GLOBAL_ACCOUNT {
            ci.account = account.clone();
        }
        ci.name_tag = account;
    }
    ci
}

fn closed_info(cc: &ClosedClient, auth: bool, subs: bool, detail: bool) -> ConnInfo {
    let meta = cc.meta.clone();
    // What the ring keeps: counters, metadata, last activity and the
    // subscriptions as they stood at the close.
    let mut ci = ConnInfo {
        cid: cc.cid,
        kind: "Client",
        kind_type: cc.client_type.as_str(),
        ip: cc.addr.map(|a| a.ip().to_string()).unwrap_or_default(),
        port: cc.addr.map_or(0, |a| a.port()),
        start: Some(GoTime(cc.start)),
        last_activity: Some(GoTime(cc.last_activity)),
        stop: Some(GoTime(cc.stop)),
        reason: cc.reason.clone(),
        rtt: rtt_string(meta.rtt_nanos),
        rtt_nanos: meta.rtt_nanos,
        uptime: my_uptime(since(cc.stop, cc.start)),
        idle: my_uptime(since(cc.stop, cc.last_activity)),
        in_msgs: cc.in_msgs,
        in_bytes: cc.in_bytes,
        out_msgs: cc.out_msgs,
        out_bytes: cc.out_bytes,
        subscriptions: cc.subs.len() as u32,
        name: meta.name,
        lang: meta.lang,
        version: meta.version,
        ..Default::default()
    };
    if detail {
        ci.subscriptions_list_detail = cc
            .subs
            .iter()
            .map(|sub| SubDetail {
                account: String::new(),
                account_tag: String::new(),
                subject: sub.subject.clone(),
                queue: sub.queue.clone().unwrap_or_default(),
                sid: sub.sid.clone(),
                msgs: sub.msgs,
                max: sub.max,
                cid: cc.cid,
            })
            .collect();
    } else if subs {
        ci.subscriptions_list = cc.subs.iter().map(|s| s.subject.clone()).collect();
    }
    if auth {
        ci.authorized_user = meta.user.unwrap_or_default();
        if !meta.account.is_empty() && meta.account != GLOBAL_ACCOUNT {
            ci.account = meta.account.clone();
            ci.name_tag = meta.account;
        }
    }
    ci
}

/// Parsed and validated `/connz` options.
#[derive(Debug, Clone)]
pub(super) struct ConnzOpts {
    pub sort: SortOpt,
    pub auth: bool,
    pub subs: bool,
    pub detail: bool,
    pub offset: usize,
    pub limit: usize,
    pub cid: u64,
    pub state: ConnState,
    pub user: String,
    pub acc: String,
}

impl ConnzOpts {
    /// Decode in nats-server's order, so the first bad parameter is the one
    /// reported.
    pub fn from_params(p: &Params) -> Result<ConnzOpts, String> {
        let sort_raw = p.get("sort");
        let auth = p.bool("auth")?;
        let (subs, detail) = p.subs()?;
        let offset = p.int("offset")?;
        let limit = p.int("limit")?;
        let cid = p.uint64("cid")?;
        let state = p.state()?;
        Ok(ConnzOpts {
            // An invalid value is reported by `validate`, after the request
            // has been counted, like nats-server.
            sort: SortOpt::parse(sort_raw).unwrap_or(SortOpt::Cid),
            auth,
            subs,
            detail,
            offset: offset.max(0) as usize,
            limit: if limit <= 0 {
                DEFAULT_LIST_SIZE
            } else {
                limit as usize
            },
            cid,
            state,
            user: p.get("user").to_string(),
            acc: p.get("acc").to_string(),
        })
    }

    /// The checks nats-server makes in `Connz()` itself.
    pub fn validate(&self, sort_raw: &str) -> Result<(), String> {
        SortOpt::parse(sort_raw)?;
        if self.sort == SortOpt::Stop && self.state != ConnState::Closed {
            return Err("sort by stop only valid on closed connections".into());
        }
        if self.sort == SortOpt::Reason && self.state != ConnState::Closed {
            return Err("sort by reason only valid on closed connections".into());
        }
        Ok(())
    }
}

/// Account names this server knows about.
fn known_accounts(server: &Server) -> HashSet<String> {
    let mut names: HashSet<String> = HashSet::new();
    names.insert(GLOBAL_ACCOUNT.to_string());
    for u in &server.opts().users {
        if let Some(a) = &u.account {
            names.insert(a.clone());
        }
    }
    for c in server.clients() {
        names.insert(client_account(&c));
    }
    names
}

fn connz(m: &Monitor, o: &ConnzOpts) -> Connz {
    let s = &m.server;
    let now = SystemTime::now();
    let mut out = Connz {
        server_id: String::new(),
        now: GoTime(now),
        num_connections: 0,
        total: 0,
        offset: o.offset,
        limit: if o.cid > 0 { 1 } else { o.limit },
        connections: None,
    };
    if !o.acc.is_empty() && !known_accounts(s).contains(&o.acc) {
        // nats-server answers an unknown account with this bare document.
        return out;
    }
    out.server_id = s.id.clone();

    let want_open = matches!(o.state, ConnState::Open | ConnState::Any);
    let want_closed = matches!(o.state, ConnState::Closed | ConnState::Any);
    let mut open: Vec<Arc<ClientShared>> = if want_open { s.clients() } else { Vec::new() };
    let mut closed: Vec<ClosedClient> = if want_closed {
        s.closed_clients()
    } else {
        Vec::new()
    };
    if !o.acc.is_empty() {
        open.retain(|c| client_account(c) == o.acc);
        closed.retain(|c| c.meta.account == o.acc);
    }
    // nats-server's total counts before the cid and user filters.
    out.total = open.len() + closed.len();

    if o.cid > 0 {
        open.retain(|c| c.cid == o.cid);
        if open.is_empty() {
            closed.retain(|c| c.cid == o.cid);
            closed.truncate(1);
        } else {
            closed.clear();
        }
    } else if !o.user.is_empty() {
        open.retain(|c| c.meta.lock().user.as_deref() == Some(o.user.as_str()));
        closed.retain(|c| c.meta.user.as_deref() == Some(o.user.as_str()));
    }

    let mut conns: Vec<ConnInfo> = open
        .iter()
        .map(|c| open_info(c, now, o.auth, o.subs, o.detail))
        .collect();
    conns.extend(
        closed
            .iter()
            .map(|c| closed_info(c, o.auth, o.subs, o.detail)),
    );
    sort_conns(&mut conns, o.sort, now);
    let (lo, hi) = page_bounds(o.offset, out.limit, conns.len());
    let page: Vec<ConnInfo> = conns.drain(lo..hi).collect();
    out.num_connections = page.len();
    out.connections = Some(page);
    out
}

pub(super) fn data(m: &Monitor, p: &Params) -> Result<Connz, ZError> {
    let o = ConnzOpts::from_params(p).map_err(ZError::BadRequest)?;
    o.validate(p.get("sort")).map_err(ZError::BadRequest)?;
    Ok(connz(m, &o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ci(
        cid: u64,
        subs: u32,
        start_s: u64,
        last_s: u64,
        stop_s: Option<u64>,
        reason: &str,
    ) -> ConnInfo {
        let t = |s: u64| GoTime(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        ConnInfo {
            cid,
            subscriptions: subs,
            start: Some(t(start_s)),
            last_activity: Some(t(last_s)),
            stop: stop_s.map(t),
            reason: reason.into(),
            out_msgs: cid * 10,
            rtt_nanos: 100 - cid,
            ..Default::default()
        }
    }

    fn cids(v: &[ConnInfo]) -> Vec<u64> {
        v.iter().map(|c| c.cid).collect()
    }

    #[test]
    fn sort_orders_match_nats_server() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let base = vec![
            ci(3, 1, 30, 300, Some(900), "Read Error"),
            ci(1, 5, 10, 100, Some(500), "Client Closed"),
            ci(2, 5, 20, 200, Some(700), "Authentication Timeout"),
        ];
        let sorted = |by| {
            let mut v = base.clone();
            sort_conns(&mut v, by, now);
            cids(&v)
        };
        assert_eq!(sorted(SortOpt::Cid), vec![1, 2, 3]);
        assert_eq!(sorted(SortOpt::Start), vec![1, 2, 3]);
        // Descending, ties in cid order.
        assert_eq!(sorted(SortOpt::Subs), vec![1, 2, 3]);
        assert_eq!(sorted(SortOpt::MsgsTo), vec![3, 2, 1]);
        assert_eq!(sorted(SortOpt::Last), vec![3, 2, 1]);
        assert_eq!(sorted(SortOpt::Idle), vec![1, 2, 3]);
        assert_eq!(sorted(SortOpt::Stop), vec![3, 2, 1]);
        assert_eq!(sorted(SortOpt::Rtt), vec![1, 2, 3]);
        // Ascending.
        assert_eq!(sorted(SortOpt::Reason), vec![2, 1, 3]);
        // Uptimes: 490, 680, 870.
        assert_eq!(sorted(SortOpt::Uptime), vec![1, 2, 3]);
    }

    #[test]
    fn sort_option_names() {
        for name in [
            "cid",
            "start",
            "subs",
            "pending",
            "msgs_to",
            "msgs_from",
            "bytes_to",
            "bytes_from",
            "last",
            "idle",
            "uptime",
            "stop",
            "reason",
            "rtt",
            "",
        ] {
            assert!(SortOpt::parse(name).is_ok(), "{name}");
        }
        assert_eq!(
            SortOpt::parse("bogus").unwrap_err(),
            "invalid sorting option: bogus"
        );
    }

    #[test]
    fn options_decode_and_validate() {
        let p = Params::parse(Some("sort=stop&limit=0&offset=-4&cid=0"));
        let o = ConnzOpts::from_params(&p).unwrap();
        assert_eq!((o.offset, o.limit), (0, DEFAULT_LIST_SIZE));
        let o = ConnzOpts {
            sort: SortOpt::Stop,
            ..o
        };
        assert_eq!(
            o.validate("stop").unwrap_err(),
            "sort by stop only valid on closed connections"
        );
        let o = ConnzOpts {
            state: ConnState::Closed,
            ..o
        };
        assert!(o.validate("stop").is_ok());
        let o = ConnzOpts {
            sort: SortOpt::Reason,
            state: ConnState::Any,
            ..o
        };
        assert_eq!(
            o.validate("reason").unwrap_err(),
            "sort by reason only valid on closed connections"
        );
    }

    #[test]
    fn sids_sort_numerically() {
        let mut v = vec!["10", "9", "b", "1", "a"];
        v.sort_by(|a, b| sid_order(a, b));
        assert_eq!(v, vec!["1", "9", "10", "a", "b"]);
    }
}
