//! Counters and gauges, rendered in the Prometheus text format.
//!
//! Plain atomics rather than a metrics crate: the set is small and fixed, and the
//! hot path (one increment per message) stays a single relaxed `fetch_add`.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::sport_metrics::SportMetrics;

/// Upper bounds (seconds) of the JetStream publish-to-ack latency histogram.
const ACK_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
pub struct Metrics {
    pub mqtt_received_qos0: AtomicU64,
    pub mqtt_received_qos1: AtomicU64,
    pub mqtt_acked: AtomicU64,
    /// Acks not sent because the MQTT connection they belonged to is gone;
    /// the broker redelivers those messages (deduplicated downstream).
    pub mqtt_stale_acks: AtomicU64,
    pub updates_published: AtomicU64,
    pub duplicates: AtomicU64,
    pub malformed_payloads: AtomicU64,
    pub malformed_elements: AtomicU64,
    pub empty_payloads: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub qos0_dropped: AtomicU64,
    pub publish_retries: AtomicU64,
    pub mqtt_reconnects: AtomicU64,
    pub nats_reconnects: AtomicU64,
    pub mqtt_connected: AtomicBool,
    /// Set when the broker has granted the subscriptions on the current connection.
    pub mqtt_subscribed: AtomicBool,
    pub nats_connected: AtomicBool,
    /// `ha.mode = "single_active"`: set while another bridge holds the lease
    /// (a standby is healthy without an MQTT connection).
    pub standby: AtomicBool,
    /// Times this bridge took the active lease.
    pub leases_taken: AtomicU64,
    /// Times it lost the lease while active (replaced or unable to renew).
    pub leases_lost: AtomicU64,
    pub inflight: AtomicI64,
    /// Reads of a subject's last stored message (a match not held).
    pub state_reads: AtomicU64,
    pub state_loads_new: AtomicU64,
    pub state_loads_found: AtomicU64,
    pub state_loads_legacy: AtomicU64,
    pub state_loads_unreadable: AtomicU64,
    /// Publishes refused because another writer changed the subject first.
    pub state_conflicts: AtomicU64,
    /// Redelivered updates the held state already contained (not republished).
    pub redeliveries_skipped: AtomicU64,
    pub state_evictions: AtomicU64,
    pub state_matches: AtomicI64,
    /// The same counts by sport, and the receive-to-ack lag (bounded labels).
    pub sports: SportMetrics,
    ack_buckets: [AtomicU64; ACK_BUCKETS.len()],
    ack_count: AtomicU64,
    ack_sum_micros: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Records one publish-to-ack latency.
    pub fn observe_ack(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = ACK_BUCKETS.iter().position(|b| secs <= *b) {
            self.ack_buckets[i].fetch_add(1, Relaxed);
        }
        self.ack_count.fetch_add(1, Relaxed);
        self.ack_sum_micros
            .fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }

    /// Counts how a match's state was rebuilt from the stream.
    pub fn state_loaded(&self, kind: crate::state::LoadKind) {
        use crate::state::LoadKind;
        Metrics::inc(match kind {
            LoadKind::New => &self.state_loads_new,
            LoadKind::Found => &self.state_loads_found,
            LoadKind::Legacy => &self.state_loads_legacy,
            LoadKind::Unreadable => &self.state_loads_unreadable,
        });
    }

    pub fn healthy(&self) -> bool {
        if self.standby.load(Relaxed) {
            return self.nats_connected.load(Relaxed);
        }
        self.mqtt_connected.load(Relaxed)
            && self.mqtt_subscribed.load(Relaxed)
            && self.nats_connected.load(Relaxed)
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let c = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        let g = |out: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let _ = writeln!(
            out,
            "# HELP tribune_bridge_mqtt_messages_total MQTT messages received from the provider.\n\
             # TYPE tribune_bridge_mqtt_messages_total counter\n\
             tribune_bridge_mqtt_messages_total{{qos=\"0\"}} {}\n\
             tribune_bridge_mqtt_messages_total{{qos=\"1\"}} {}",
            self.mqtt_received_qos0.load(Relaxed),
            self.mqtt_received_qos1.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP tribune_bridge_malformed_total Malformed provider input (whole payloads, single match entries).\n\
             # TYPE tribune_bridge_malformed_total counter\n\
             tribune_bridge_malformed_total{{kind=\"payload\"}} {}\n\
             tribune_bridge_malformed_total{{kind=\"element\"}} {}",
            self.malformed_payloads.load(Relaxed),
            self.malformed_elements.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP tribune_bridge_state_loads_total Match states rebuilt from the stream, by what its last message was.\n\
             # TYPE tribune_bridge_state_loads_total counter\n\
             tribune_bridge_state_loads_total{{result=\"new\"}} {}\n\
             tribune_bridge_state_loads_total{{result=\"found\"}} {}\n\
             tribune_bridge_state_loads_total{{result=\"legacy\"}} {}\n\
             tribune_bridge_state_loads_total{{result=\"unreadable\"}} {}",
            self.state_loads_new.load(Relaxed),
            self.state_loads_found.load(Relaxed),
            self.state_loads_legacy.load(Relaxed),
            self.state_loads_unreadable.load(Relaxed)
        );
        for (name, help, v) in [
            (
                "tribune_bridge_mqtt_acks_total",
                "QoS 1 messages acknowledged to the MQTT broker after their JetStream acks.",
                &self.mqtt_acked,
            ),
            (
                "tribune_bridge_mqtt_stale_acks_total",
                "Acks skipped because their MQTT connection was replaced (the broker redelivers).",
                &self.mqtt_stale_acks,
            ),
            (
                "tribune_bridge_updates_published_total",
                "Match updates stored by JetStream (new, not duplicates).",
                &self.updates_published,
            ),
            (
                "tribune_bridge_duplicates_total",
                "Publishes JetStream reported as duplicates (redeliveries caught by Nats-Msg-Id).",
                &self.duplicates,
            ),
            (
                "tribune_bridge_redeliveries_skipped_total",
                "Redelivered updates the match state already contained; not published again.",
                &self.redeliveries_skipped,
            ),
            (
                "tribune_bridge_state_reads_total",
                "Reads of a match's last stored message, retries included.",
                &self.state_reads,
            ),
            (
                "tribune_bridge_state_conflicts_total",
                "State publishes refused because the subject changed meanwhile (another writer); merged again.",
                &self.state_conflicts,
            ),
            (
                "tribune_bridge_state_evictions_total",
                "Matches dropped from memory (ended, idle, or over state.max_matches).",
                &self.state_evictions,
            ),
            (
                "tribune_bridge_empty_payloads_total",
                "Payloads that were an empty list of matches.",
                &self.empty_payloads,
            ),
            (
                "tribune_bridge_dead_lettered_total",
                "Messages stored in the dead-letter stream.",
                &self.dead_lettered,
            ),
            (
                "tribune_bridge_qos0_dropped_total",
                "QoS 0 messages dropped because the bounded queue was full.",
                &self.qos0_dropped,
            ),
            (
                "tribune_bridge_publish_retries_total",
                "JetStream publishes retried after an error or ack timeout.",
                &self.publish_retries,
            ),
            (
                "tribune_bridge_mqtt_reconnects_total",
                "MQTT connections (re)established after the first.",
                &self.mqtt_reconnects,
            ),
            (
                "tribune_bridge_nats_reconnects_total",
                "NATS reconnections.",
                &self.nats_reconnects,
            ),
            (
                "tribune_bridge_leases_taken_total",
                "Times this bridge took the active lease (ha.mode single_active).",
                &self.leases_taken,
            ),
            (
                "tribune_bridge_leases_lost_total",
                "Times this bridge lost the active lease while active.",
                &self.leases_lost,
            ),
        ] {
            c(&mut out, name, help, v.load(Relaxed));
        }
        g(
            &mut out,
            "tribune_bridge_mqtt_connected",
            "1 while connected to the MQTT broker.",
            self.mqtt_connected.load(Relaxed) as i64,
        );
        g(
            &mut out,
            "tribune_bridge_standby",
            "1 while another bridge holds the active lease.",
            self.standby.load(Relaxed) as i64,
        );
        g(
            &mut out,
            "tribune_bridge_nats_connected",
            "1 while connected to NATS.",
            self.nats_connected.load(Relaxed) as i64,
        );
        g(
            &mut out,
            "tribune_bridge_inflight",
            "Publishes waiting for their JetStream ack.",
            self.inflight.load(Relaxed),
        );
        g(
            &mut out,
            "tribune_bridge_state_matches",
            "Matches whose state the bridge holds in memory.",
            self.state_matches.load(Relaxed),
        );
        let name = "tribune_bridge_publish_ack_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} JetStream publish to ack latency.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (i, b) in ACK_BUCKETS.iter().enumerate() {
            cumulative += self.ack_buckets[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.ack_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.ack_sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
        self.sports.render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        Metrics::inc(&m.dead_lettered);
        m.observe_ack(Duration::from_micros(700));
        m.observe_ack(Duration::from_secs(9));
        let text = m.render();
        assert!(
            text.contains("tribune_bridge_dead_lettered_total 1\n"),
            "{text}"
        );
        assert!(text.contains("tribune_bridge_publish_ack_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("tribune_bridge_publish_ack_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("tribune_bridge_publish_ack_seconds_count 2\n"));
        m.state_loaded(crate::state::LoadKind::Legacy);
        assert!(m
            .render()
            .contains("tribune_bridge_state_loads_total{result=\"legacy\"} 1\n"));
        assert!(!m.healthy());
        m.sports.published(m.sports.id(Some("tennis")));
        assert!(m
            .render()
            .contains("tribune_bridge_sport_published_total{sport=\"tennis\"} 1\n"));
    }
}
