//! `$SYS.ACCOUNT.<account>.CONNECT` and `.DISCONNECT`: the events a server
//! sends when a client logs in to an account and when it goes, in
//! nats-server's JSON (`ConnectEventMsg`, `DisconnectEventMsg`). Operators
//! bill and audit by them.
//!
//! One difference on purpose: nats-server puts the user JWT a client came
//! with into the event. Tribune leaves it out: a bearer JWT is a credential,
//! and these events reach every subscriber of the system account.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde::Serialize;

use super::ServerInfo;
use crate::client::{ClientShared, ClosedState};
use crate::monitor::gofmt::GoTime;
use crate::monitor::statsz::DataStats;

pub const CONNECT_TYPE: &str = "io.nats.server.advisory.v1.client_connect";
pub const DISCONNECT_TYPE: &str = "io.nats.server.advisory.v1.client_disconnect";
pub const ACCOUNT_CONNS_TYPE: &str = "io.nats.server.advisory.v1.account_connections";

/// nats-server's `AccountNumConns`: an account's connections and traffic on
/// one server, sent on `$SYS.ACCOUNT.<account>.SERVER.CONNS` (and the old
/// `$SYS.SERVER.ACCOUNT.<account>.CONNS`) when they change, and every 30s
/// while the account has clients there.
#[derive(Serialize)]
pub struct AccountConnsEvent {
    #[serde(flatten)]
    pub head: EventHead,
    #[serde(flatten)]
    pub stat: crate::monitor::accountz::AccountStat,
}

/// What every event starts with: nats-server's `TypedEvent` (type, a new
/// id, the time) and the sending server's `server` block.
#[derive(Serialize)]
pub struct EventHead {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    timestamp: GoTime,
    server: ServerInfo,
}

impl EventHead {
    pub fn new(kind: &'static str, server: ServerInfo, at: SystemTime) -> EventHead {
        EventHead {
            kind,
            id: crate::nuid::next(),
            timestamp: GoTime(at),
            server,
        }
    }
}

/// nats-server's `ClientInfo`, the fields Tribune knows.
#[derive(Debug, Serialize)]
pub struct ClientInfo {
    pub start: GoTime,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    pub id: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub acc: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lang: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ver: String,
    /// Nanoseconds, as Go writes a `time.Duration`.
    #[serde(skip_serializing_if = "is_zero")]
    pub rtt: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<GoTime>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issuer_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name_tag: String,
    pub kind: &'static str,
    pub client_type: &'static str,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl ClientInfo {
    /// What the events say about `c`; `None` before it logged in.
    pub fn of(c: &ClientShared) -> Option<ClientInfo> {
        let meta = c.meta.lock().clone();
        if meta.account.is_empty() {
            return None;
        }
        Some(ClientInfo {
            start: GoTime(c.start),
            host: c
                .forwarded_for
                .or(c.addr.map(|a| a.ip()))
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            id: c.cid,
            acc: meta.account.clone(),
            user: meta.user.clone().unwrap_or_default(),
            name: meta.name,
            lang: meta.lang,
            ver: meta.version,
            rtt: 0,
            server: String::new(),
            cluster: String::new(),
            stop: None,
            issuer_key: meta.signed.map(|s| s.issuer).unwrap_or_default(),
            // nats-server's name tag: the account's name (Tribune keeps no
            // separate display name for JWT accounts).
            name_tag: meta.account.clone(),
            kind: "Client",
            client_type: c.client_type.as_str(),
        })
    }
}

/// nats-server's `ConnectEventMsg`.
#[derive(Serialize)]
pub struct ConnectEvent {
    #[serde(flatten)]
    pub head: EventHead,
    pub client: ClientInfo,
}

/// nats-server's `DisconnectEventMsg`.
#[derive(Serialize)]
pub struct DisconnectEvent {
    #[serde(flatten)]
    pub head: EventHead,
    pub client: ClientInfo,
    /// What the client sent (the server's inbound).
    pub sent: DataStats,
    /// What the client was sent.
    pub received: DataStats,
    pub reason: String,
}

/// The connect event of `c` as seen by `server`, on its subject.
pub fn connect(c: &ClientShared, server: ServerInfo) -> Option<(String, ConnectEvent)> {
    let client = ClientInfo::of(c)?;
    let subject = format!("$SYS.ACCOUNT.{}.CONNECT", client.acc);
    Some((
        subject,
        ConnectEvent {
            head: EventHead::new(CONNECT_TYPE, server, SystemTime::now()),
            client,
        },
    ))
}

/// The disconnect event of `c`, closed for `reason`, on its subject.
pub fn disconnect(
    c: &ClientShared,
    reason: ClosedState,
    server: ServerInfo,
) -> Option<(String, DisconnectEvent)> {
    let mut client = ClientInfo::of(c)?;
    let now = SystemTime::now();
    client.stop = Some(GoTime(now));
    client.rtt = c.meta.lock().rtt_nanos;
    let (out_msgs, out_bytes) = c.out.lock().out_counts();
    let subject = format!("$SYS.ACCOUNT.{}.DISCONNECT", client.acc);
    Some((
        subject,
        DisconnectEvent {
            head: EventHead::new(DISCONNECT_TYPE, server, now),
            client,
            sent: DataStats {
                msgs: c.stats.in_msgs.load(Ordering::Relaxed),
                bytes: c.stats.in_bytes.load(Ordering::Relaxed),
            },
            received: DataStats {
                msgs: out_msgs,
                bytes: out_bytes,
            },
            reason: reason.to_string(),
        },
    ))
}
