//! The statistics a server sends as `$SYS.SERVER.<id>.STATSZ` and answers
//! `STATSZ` requests with: nats-server's `ServerStats`, read from the same
//! counters as `/varz`, so the two never disagree.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use super::gofmt::{GoFloat, GoTime};
use super::{accounts, procstat, varz, Monitor};

/// Messages and bytes (nats-server's `DataStats` without the per-kind parts).
#[derive(Debug, Serialize, Default, Clone, Copy, PartialEq, Eq)]
pub struct DataStats {
    pub msgs: u64,
    pub bytes: u64,
}

/// One route's traffic (nats-server's `RouteStat`).
#[derive(Debug, Serialize)]
pub struct RouteStat {
    pub rid: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub sent: DataStats,
    pub received: DataStats,
    pub pending: usize,
}

/// Slow consumers by connection kind, shown only when one is not zero.
#[derive(Debug, Serialize, Default)]
pub struct SlowConsumersStats {
    pub clients: u64,
    pub routes: u64,
    pub gateways: u64,
    pub leafs: u64,
}

/// nats-server's `ServerStats`.
#[derive(Serialize)]
pub struct ServerStats {
    pub start: GoTime,
    pub mem: u64,
    pub cores: usize,
    pub cpu: GoFloat,
    pub connections: usize,
    pub total_connections: u64,
    pub active_accounts: usize,
    pub subscriptions: u64,
    pub sent: DataStats,
    pub sent_to_clients: DataStats,
    pub received: DataStats,
    pub received_from_clients: DataStats,
    pub slow_consumers: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_consumer_stats: Option<SlowConsumersStats>,
    #[serde(skip_serializing_if = "is_zero")]
    pub stale_connections: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteStat>,
    /// This server and the peers it has routes to.
    #[serde(skip_serializing_if = "is_zero_usize")]
    pub active_servers: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<super::jsz::JetStreamVarz>,
    #[serde(skip_serializing_if = "is_zero_usize")]
    pub gomaxprocs: usize,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}

impl Monitor {
    /// This server's statistics now.
    pub(crate) fn statsz(&self) -> ServerStats {
        let s = self.server();
        let st = &s.stats;
        let received = DataStats {
            msgs: st.in_msgs.load(Ordering::Relaxed),
            bytes: st.in_bytes.load(Ordering::Relaxed),
        };
        let sent = DataStats {
            msgs: st.out_msgs.load(Ordering::Relaxed),
            bytes: st.out_bytes.load(Ordering::Relaxed),
        };
        let slow = st.slow_consumers.load(Ordering::Relaxed);
        let peers = s.routes.peers();
        let routes = peers
            .iter()
            .map(|p| {
                let c = &p.conn;
                let (out_msgs, out_bytes, pending) = {
                    let out = c.out.lock();
                    let (m, b) = out.out_counts();
                    (m, b, out.pending())
                };
                RouteStat {
                    rid: c.cid,
                    name: p.name.clone(),
                    sent: DataStats {
                        msgs: out_msgs,
                        bytes: out_bytes,
                    },
                    received: DataStats {
                        msgs: c.stats.in_msgs.load(Ordering::Relaxed),
                        bytes: c.stats.in_bytes.load(Ordering::Relaxed),
                    },
                    pending,
                }
            })
            .collect();
        let active = s.accounts().iter().filter(|a| a.num_clients() > 0).count();
        ServerStats {
            start: GoTime(s.start_time),
            mem: procstat::rss_bytes(),
            cores: varz::cores(),
            cpu: GoFloat(self.cpu.percent()),
            connections: s.num_clients(),
            total_connections: st.total_connections.load(Ordering::Relaxed),
            active_accounts: active,
            subscriptions: accounts(s).iter().map(|a| a.sublist.count()).sum(),
            sent,
            sent_to_clients: sent,
            received,
            received_from_clients: received,
            slow_consumers: slow,
            slow_consumer_stats: (slow != 0).then(|| SlowConsumersStats {
                clients: slow,
                ..Default::default()
            }),
            stale_connections: varz::stale_connections(self),
            routes,
            active_servers: peers.len() + 1,
            jetstream: super::jsz::varz_block(self),
            gomaxprocs: varz::worker_threads(),
        }
    }
}

/// How long the `n`-th periodic STATSZ waits after the one before: a
/// quarter second at first, doubling up to `max` (nats-server's schedule,
/// so a new server shows up in `nats server list` at once).
pub fn heartbeat_delay(n: u32, max: Duration) -> Duration {
    Duration::from_millis(250)
        .saturating_mul(1u32 << n.min(16))
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_back_off_to_the_interval() {
        let max = Duration::from_secs(10);
        let got: Vec<u64> = (0..8)
            .map(|n| heartbeat_delay(n, max).as_millis() as u64)
            .collect();
        assert_eq!(got, [250, 500, 1000, 2000, 4000, 8000, 10000, 10000]);
        assert_eq!(heartbeat_delay(100, max), max);
    }
}
