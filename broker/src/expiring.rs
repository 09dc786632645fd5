//! A map of reply subjects whose entries expire: the open replies of a client
//! with `allow_responses`, and the pending responses of a service import.
//!
//! Expired entries are dropped lazily, when the map has doubled since the
//! last sweep. Sweeping whenever it is over a fixed size would cost a full
//! scan per insert once that many entries are live at once (a busy service
//! within its response TTL); doubling keeps the cost per insert constant.

use std::collections::HashMap;
use std::time::Instant;

/// Entries below this never trigger a sweep.
const SWEEP_FLOOR: usize = 4096;

#[derive(Debug)]
pub struct ExpiringMap<V> {
    map: HashMap<Vec<u8>, (V, Instant)>,
    sweep_at: usize,
}

impl<V> Default for ExpiringMap<V> {
    fn default() -> Self {
        ExpiringMap {
            map: HashMap::new(),
            sweep_at: SWEEP_FLOOR,
        }
    }
}

impl<V> ExpiringMap<V> {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Adds or replaces `key`, valid until `until`.
    pub fn insert(&mut self, key: Vec<u8>, value: V, until: Instant) {
        if self.map.len() >= self.sweep_at {
            let now = Instant::now();
            self.map.retain(|_, (_, u)| *u > now);
            self.sweep_at = (self.map.len() * 2).max(SWEEP_FLOOR);
        }
        self.map.insert(key, (value, until));
    }

    /// The live entry for `key`; an expired one is removed and not returned.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let expired = self.map.get(key).is_some_and(|(_, u)| *u <= Instant::now());
        if expired {
            self.map.remove(key);
            return None;
        }
        self.map.get_mut(key).map(|(v, _)| v)
    }

    /// Removes `key`, returning it if it was still live.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let (v, until) = self.map.remove(key)?;
        (until > Instant::now()).then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn live_entries_are_found_expired_ones_are_not() {
        let mut m = ExpiringMap::default();
        let later = Instant::now() + Duration::from_secs(60);
        m.insert(b"a".to_vec(), 1, later);
        m.insert(b"gone".to_vec(), 2, Instant::now());
        assert_eq!(m.get_mut(b"a").copied(), Some(1));
        assert_eq!(m.get_mut(b"gone"), None);
        assert_eq!(m.len(), 1, "the expired entry was removed on lookup");
        assert_eq!(m.remove(b"a"), Some(1));
        assert!(m.is_empty());
    }

    /// With many live entries, sweeps happen at doubling sizes, not on every
    /// insert, and expired entries do not pile up past twice the live ones.
    #[test]
    fn sweeps_are_amortised_and_bound_expired_entries() {
        let mut m = ExpiringMap::default();
        let later = Instant::now() + Duration::from_secs(600);
        for i in 0..20_000u32 {
            m.insert(i.to_be_bytes().to_vec(), i, later);
        }
        assert_eq!(m.len(), 20_000);
        assert!(m.sweep_at > 20_000, "thresholds doubled: {}", m.sweep_at);
        let mut m = ExpiringMap::default();
        let past = Instant::now();
        for i in 0..50_000u32 {
            m.insert(i.to_be_bytes().to_vec(), i, past);
        }
        assert!(m.len() <= SWEEP_FLOOR, "expired entries swept: {}", m.len());
    }
}
