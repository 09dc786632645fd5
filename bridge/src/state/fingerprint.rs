//! Hashes of list entries, so merging a resent list finds the entries the
//! state already has without comparing every pair.
//!
//! A fingerprint only narrows the search: equal entries have equal
//! fingerprints, and the merge still confirms with `==`. It is consistent with
//! `serde_json`'s equality: numbers hash by their exact representation (`1`
//! and `1.0` are different values there too) and an object's keys are
//! combined in an order-independent way (`Map` equality ignores key order
//! when serde_json keeps insertion order).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value};

use crate::payload::{Incident, TextLive};

/// An entry of a list section that the merge accumulates.
pub trait Fingerprint {
    fn fingerprint(&self) -> u64;
}

impl Fingerprint for Incident {
    fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.kind.hash(&mut h);
        self.position.hash(&mut h);
        self.time.hash(&mut h);
        self.player_id.hash(&mut h);
        self.player_name.hash(&mut h);
        self.home_score.hash(&mut h);
        self.away_score.hash(&mut h);
        h.write_u64(map(&self.extra));
        h.finish()
    }
}

impl Fingerprint for TextLive {
    fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.time.hash(&mut h);
        self.data.hash(&mut h);
        self.position.hash(&mut h);
        self.kind.hash(&mut h);
        h.finish()
    }
}

/// An object's hash: the entries' hashes summed, so key order does not matter.
fn map(m: &Map<String, Value>) -> u64 {
    let mut sum = (m.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for (k, v) in m {
        let mut h = DefaultHasher::new();
        k.hash(&mut h);
        value(v, &mut h);
        sum = sum.wrapping_add(h.finish());
    }
    sum
}

fn value(v: &Value, h: &mut DefaultHasher) {
    match v {
        Value::Null => h.write_u8(0),
        Value::Bool(b) => {
            h.write_u8(1);
            b.hash(h);
        }
        Value::Number(n) => {
            if let Some(i) = n.as_u64() {
                h.write_u8(2);
                i.hash(h);
            } else if let Some(i) = n.as_i64() {
                h.write_u8(3);
                i.hash(h);
            } else {
                h.write_u8(4);
                n.as_f64().map(f64::to_bits).hash(h);
            }
        }
        Value::String(s) => {
            h.write_u8(5);
            s.hash(h);
        }
        Value::Array(a) => {
            h.write_u8(6);
            a.len().hash(h);
            for x in a {
                value(x, h);
            }
        }
        Value::Object(o) => {
            h.write_u8(7);
            h.write_u64(map(o));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn incident(extra: Value) -> Incident {
        Incident {
            kind: 1,
            position: Some(1),
            time: Some(23),
            player_id: None,
            player_name: Some("A. Silva".into()),
            home_score: Some(1),
            away_score: Some(0),
            extra: extra.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn equal_entries_hash_alike_and_key_order_does_not_matter() {
        let a = incident(json!({"assist1_name": "B", "var": {"x": 1, "y": [1, 2]}}));
        let b = incident(json!({"var": {"y": [1, 2], "x": 1}, "assist1_name": "B"}));
        assert_eq!(a, b);
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = incident(json!({"assist1_name": "C", "var": {"x": 1, "y": [1, 2]}}));
        assert_ne!(a.fingerprint(), c.fingerprint());
        let mut d = a.clone();
        d.time = Some(24);
        assert_ne!(a.fingerprint(), d.fingerprint());
    }

    #[test]
    fn text_live_lines() {
        let line = |data: &str| TextLive {
            time: Some("23'".into()),
            data: data.into(),
            position: Some(1),
            kind: Some(1),
        };
        assert_eq!(line("Goal!").fingerprint(), line("Goal!").fingerprint());
        assert_ne!(line("Goal!").fingerprint(), line("Corner").fingerprint());
    }
}
