//! Per-sport counters and the receive-to-ack lag histogram, labelled `sport`.
//!
//! Sports come from MQTT topics, which the provider controls, so the label's
//! cardinality is bounded: the first [`MAX_SPORT_LABELS`] distinct sports get
//! a label of their own, every later one (and any name that is not a plain
//! `[A-Za-z0-9_-]` word) is counted under [`OTHER`].
//!
//! A sport is registered once (its name stored in a fixed slot) and referred
//! to by a [`SportId`] afterwards, so the message path does no allocation and
//! takes no lock: looking a sport up compares it with the names registered so
//! far (a handful), counting is a relaxed `fetch_add`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

/// Distinct sport labels at most (besides [`OTHER`]).
pub const MAX_SPORT_LABELS: usize = 32;

/// The label of everything beyond [`MAX_SPORT_LABELS`], of unusable names,
/// and of messages whose topic names no sport.
pub const OTHER: &str = "other";

/// Longest sport name given a label of its own.
const MAX_NAME: usize = 64;

/// Upper bounds (seconds) of the lag histogram: MQTT receive to JetStream
/// ack, queueing behind the match's earlier updates included.
const LAG_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A registered sport (an index into the slots).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SportId(usize);

impl SportId {
    /// The [`OTHER`] slot.
    pub const OTHER: SportId = SportId(MAX_SPORT_LABELS);
}

#[derive(Default)]
struct Slot {
    name: OnceLock<Box<str>>,
    received: AtomicU64,
    published: AtomicU64,
    dead_lettered: AtomicU64,
    duplicates: AtomicU64,
    lag_buckets: [AtomicU64; LAG_BUCKETS.len()],
    lag_count: AtomicU64,
    lag_sum_ms: AtomicU64,
}

/// Every sport's counters. Slots `0..MAX_SPORT_LABELS` are filled in order
/// of first appearance; the last one is [`OTHER`].
pub struct SportMetrics {
    slots: Box<[Slot]>,
}

impl Default for SportMetrics {
    fn default() -> Self {
        let slots: Box<[Slot]> = (0..=MAX_SPORT_LABELS).map(|_| Slot::default()).collect();
        let _ = slots[SportId::OTHER.0].name.set(OTHER.into());
        SportMetrics { slots }
    }
}

/// A name that can be a label value as is (no escaping needed).
fn labelable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl SportMetrics {
    /// The sport's id, registering it on first sight. `None` (a topic with
    /// no sport) and names beyond the cap go to [`OTHER`].
    pub fn id(&self, sport: Option<&str>) -> SportId {
        let Some(sport) = sport.filter(|s| labelable(s) && *s != OTHER) else {
            return SportId::OTHER;
        };
        for (i, slot) in self.slots[..MAX_SPORT_LABELS].iter().enumerate() {
            match slot.name.get() {
                Some(name) if **name == *sport => return SportId(i),
                Some(_) => continue,
                None => {
                    // Slots fill in order, so two registrations of the same
                    // new sport race for this very slot; the loser finds the
                    // winner's name here (or moves on if it was another sport).
                    if slot.name.set(sport.into()).is_ok() {
                        return SportId(i);
                    }
                    if slot.name.get().is_some_and(|n| **n == *sport) {
                        return SportId(i);
                    }
                }
            }
        }
        SportId::OTHER
    }

    fn slot(&self, id: SportId) -> &Slot {
        // Ids only come from `id`, so always in range; `OTHER` as a fallback
        // keeps this total.
        self.slots
            .get(id.0)
            .unwrap_or(&self.slots[SportId::OTHER.0])
    }

    /// One MQTT message received on a topic of this sport.
    pub fn received(&self, id: SportId) {
        self.slot(id).received.fetch_add(1, Relaxed);
    }

    /// One match state stored for an update of this sport.
    pub fn published(&self, id: SportId) {
        self.slot(id).published.fetch_add(1, Relaxed);
    }

    /// One dead letter stored for this sport's topic.
    pub fn dead_lettered(&self, id: SportId) {
        self.slot(id).dead_lettered.fetch_add(1, Relaxed);
    }

    /// One publish JetStream reported as a duplicate.
    pub fn duplicate(&self, id: SportId) {
        self.slot(id).duplicates.fetch_add(1, Relaxed);
    }

    /// One update's lag, MQTT receive to JetStream ack, in milliseconds.
    pub fn observe_lag_ms(&self, id: SportId, ms: u64) {
        let slot = self.slot(id);
        let secs = ms as f64 / 1e3;
        if let Some(i) = LAG_BUCKETS.iter().position(|b| secs <= *b) {
            slot.lag_buckets[i].fetch_add(1, Relaxed);
        }
        slot.lag_count.fetch_add(1, Relaxed);
        slot.lag_sum_ms.fetch_add(ms, Relaxed);
    }

    /// The registered slots with their names, in registration order, [`OTHER`] last.
    fn named(&self) -> impl Iterator<Item = (&str, &Slot)> {
        self.slots
            .iter()
            .filter_map(|s| s.name.get().map(|n| (&**n, s)))
    }

    /// Appends the per-sport families in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        for (name, help, get) in [
            (
                "tribune_bridge_sport_received_total",
                "MQTT messages received, by the sport of their topic.",
                (|s: &Slot| &s.received) as fn(&Slot) -> &AtomicU64,
            ),
            (
                "tribune_bridge_sport_published_total",
                "Match states stored by JetStream (new, not duplicates), by sport.",
                |s| &s.published,
            ),
            (
                "tribune_bridge_sport_dead_lettered_total",
                "Dead letters stored (whole payloads and single match entries), by sport.",
                |s| &s.dead_lettered,
            ),
            (
                "tribune_bridge_sport_duplicates_total",
                "Publishes JetStream reported as duplicates, by sport.",
                |s| &s.duplicates,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (sport, slot) in self.named() {
                let _ = writeln!(
                    out,
                    "{name}{{sport=\"{sport}\"}} {}",
                    get(slot).load(Relaxed)
                );
            }
        }
        let name = "tribune_bridge_sport_lag_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} MQTT receive to JetStream ack of an update's state, by sport (the provider's payloads carry no timestamp of their own).\n# TYPE {name} histogram"
        );
        for (sport, slot) in self.named() {
            let mut cumulative = 0;
            for (i, b) in LAG_BUCKETS.iter().enumerate() {
                cumulative += slot.lag_buckets[i].load(Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{sport=\"{sport}\",le=\"{b}\"}} {cumulative}"
                );
            }
            let count = slot.lag_count.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{sport=\"{sport}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "{name}_sum{{sport=\"{sport}\"}} {}",
                slot.lag_sum_ms.load(Relaxed) as f64 / 1e3
            );
            let _ = writeln!(out, "{name}_count{{sport=\"{sport}\"}} {count}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sports_register_once_in_order() {
        let m = SportMetrics::default();
        let football = m.id(Some("football"));
        assert_eq!(football, SportId(0));
        assert_eq!(m.id(Some("tennis")), SportId(1));
        assert_eq!(m.id(Some("football")), football);
        assert_eq!(m.id(None), SportId::OTHER);
        assert_eq!(m.id(Some("other")), SportId::OTHER);
        for bad in ["", "a b", "x\"y", "é", &"x".repeat(65)] {
            assert_eq!(m.id(Some(bad)), SportId::OTHER, "{bad:?}");
        }
    }

    #[test]
    fn sports_beyond_the_cap_fold_into_other() {
        let m = SportMetrics::default();
        for i in 0..MAX_SPORT_LABELS {
            assert_eq!(m.id(Some(&format!("s{i}"))), SportId(i));
        }
        assert_eq!(m.id(Some("one-too-many")), SportId::OTHER);
        assert_eq!(m.id(Some("s3")), SportId(3), "registered ones keep theirs");
        m.received(m.id(Some("one-too-many")));
        m.received(m.id(Some("another")));
        let text = {
            let mut s = String::new();
            m.render(&mut s);
            s
        };
        assert!(text.contains("tribune_bridge_sport_received_total{sport=\"other\"} 2\n"));
        let labels = text
            .lines()
            .filter(|l| l.starts_with("tribune_bridge_sport_received_total{"))
            .count();
        assert_eq!(labels, MAX_SPORT_LABELS + 1, "bounded: the cap plus other");
    }

    #[test]
    fn concurrent_registration_gives_one_slot_per_sport() {
        const NAMES: [&str; 4] = ["a", "b", "c", "d"];
        let m = std::sync::Arc::new(SportMetrics::default());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    (0..20)
                        .map(|i| {
                            let name = NAMES[(i + t) % NAMES.len()];
                            (name, m.id(Some(name)))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut ids = std::collections::HashMap::new();
        for t in threads {
            for (name, id) in t.join().expect("thread") {
                assert_eq!(*ids.entry(name).or_insert(id), id, "{name} got two slots");
            }
        }
        let mut slots: Vec<usize> = ids.values().map(|id| id.0).collect();
        slots.sort_unstable();
        assert_eq!(slots, [0, 1, 2, 3]);
    }

    #[test]
    fn renders_counters_and_lag_per_sport() {
        let m = SportMetrics::default();
        let f = m.id(Some("football"));
        let b = m.id(Some("basketball"));
        m.received(f);
        m.received(f);
        m.published(f);
        m.dead_lettered(b);
        m.duplicate(b);
        m.observe_lag_ms(f, 3);
        m.observe_lag_ms(f, 40_000);
        let mut text = String::new();
        m.render(&mut text);
        for line in [
            "tribune_bridge_sport_received_total{sport=\"football\"} 2\n",
            "tribune_bridge_sport_received_total{sport=\"basketball\"} 0\n",
            "tribune_bridge_sport_published_total{sport=\"football\"} 1\n",
            "tribune_bridge_sport_dead_lettered_total{sport=\"basketball\"} 1\n",
            "tribune_bridge_sport_duplicates_total{sport=\"basketball\"} 1\n",
            "tribune_bridge_sport_lag_seconds_bucket{sport=\"football\",le=\"0.0025\"} 0\n",
            "tribune_bridge_sport_lag_seconds_bucket{sport=\"football\",le=\"0.005\"} 1\n",
            "tribune_bridge_sport_lag_seconds_bucket{sport=\"football\",le=\"30\"} 1\n",
            "tribune_bridge_sport_lag_seconds_bucket{sport=\"football\",le=\"+Inf\"} 2\n",
            "tribune_bridge_sport_lag_seconds_sum{sport=\"football\"} 40.003\n",
            "tribune_bridge_sport_lag_seconds_count{sport=\"football\"} 2\n",
            "tribune_bridge_sport_lag_seconds_count{sport=\"other\"} 0\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert_eq!(text.matches("# TYPE").count(), 5, "one header per family");
    }
}
