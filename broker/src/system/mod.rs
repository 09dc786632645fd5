//! The system account's services: requests on `$SYS.REQ.*` answered by the
//! server itself through an internal client, as nats-server answers them.
//!
//! Each service subscribes in the system account like any client, so its
//! requests and replies cross the cluster over routes; it acts on the
//! server only through the methods made for it.

pub mod claims;
pub mod client_events;
pub mod options;
pub mod server_api;
pub mod user_info;

use serde::Serialize;

/// The `server` block every system reply carries (nats-server's
/// `ServerInfo`).
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    pub name: String,
    pub host: String,
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    pub ver: String,
    pub jetstream: bool,
    pub flags: u64,
    pub seq: u64,
    /// RFC 3339 with nanoseconds, as Go writes a `time.Time`.
    pub time: String,
}

impl ServerInfo {
    /// This server, for the `seq`-th system message it sends.
    pub fn of(server: &crate::server::Server, seq: u64) -> ServerInfo {
        let opts = server.opts();
        let jetstream = server.jetstream().is_some();
        ServerInfo {
            name: server.name.clone(),
            host: opts.host.clone(),
            id: server.id.clone(),
            cluster: server.cluster_name_if_clustered(),
            domain: String::new(),
            ver: crate::server::NATS_COMPAT_VERSION.to_string(),
            jetstream,
            // nats-server's `JetStreamEnabled` capability bit.
            flags: u64::from(jetstream),
            seq,
            time: crate::monitor::gofmt::rfc3339_nano(std::time::SystemTime::now()),
        }
    }
}
