//! A bounded map of reply subjects whose entries expire: the open replies of
//! a client with `allow_responses`, and the pending responses of a service
//! import.
//!
//! Entries of one map mostly live equally long (a client's allowance TTL, an
//! export's response threshold), so insertion order is (nearly) expiry
//! order: the map keeps its entries in that order, a renewed entry moves to
//! the back, and expired ones are dropped from the front as new ones arrive,
//! which costs constant time per insert with no full scans. Where lifetimes
//! differ (two exports of one account with different thresholds), an
//! expired entry behind a longer-lived one waits until that one goes or it
//! is looked up; lookups never return an expired entry, and the bound below
//! holds either way.
//!
//! Both maps grow with traffic from others (requests into a service, or
//! requests an importer sends that no one answers), so each also has a hard
//! bound: once full, the oldest entry makes room for the newest. The cost of
//! hitting it is a late answer to a request older than every other open one
//! being dropped, the same as if it had expired; the alternative is memory
//! that a requester can fill at line rate.

use std::time::Instant;

use hashlink::LinkedHashMap;

#[derive(Debug)]
pub struct ExpiringMap<V> {
    map: LinkedHashMap<Vec<u8>, (V, Instant)>,
    limit: usize,
    /// Live entries dropped to stay within `limit`, ever.
    evicted: u64,
}

impl<V> ExpiringMap<V> {
    /// An empty map holding at most `limit` entries (at least one).
    pub fn with_limit(limit: usize) -> Self {
        ExpiringMap {
            map: LinkedHashMap::new(),
            limit: limit.max(1),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Live entries dropped so far because the map was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Adds or replaces `key`, valid until `until`. Returns true when a live
    /// entry had to be dropped to make room.
    pub fn insert(&mut self, key: Vec<u8>, value: V, until: Instant) -> bool {
        let now = Instant::now();
        while self.map.front().is_some_and(|(_, (_, u))| *u <= now) {
            self.map.pop_front();
        }
        // A replaced key moves to the back, where its new expiry belongs.
        self.map.remove(&key);
        let full = self.map.len() >= self.limit;
        if full {
            self.map.pop_front();
            self.evicted += 1;
        }
        self.map.insert(key, (value, until));
        full
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

    /// Keeps a live `key` until `until` instead, moving it to the back
    /// (where a fresh entry of the same lifetime goes), and returns it; an
    /// expired one is removed and not returned.
    pub fn renew(&mut self, key: &[u8], until: Instant) -> Option<&mut V> {
        self.get_mut(key)?;
        let (v, u) = self.map.to_back(key)?;
        *u = until;
        Some(v)
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
        let mut m = ExpiringMap::with_limit(100);
        let later = Instant::now() + Duration::from_secs(60);
        m.insert(b"gone".to_vec(), 2, Instant::now());
        m.insert(b"a".to_vec(), 1, later);
        assert_eq!(m.get_mut(b"a").copied(), Some(1));
        assert_eq!(m.get_mut(b"gone"), None);
        assert_eq!(m.len(), 1, "the expired entry was removed");
        assert_eq!(m.remove(b"a"), Some(1));
        assert!(m.is_empty());
    }

    /// Expired entries at the front go as new ones arrive, so a stream of
    /// unanswered requests never piles up past what is still live.
    #[test]
    fn expired_entries_do_not_pile_up() {
        let mut m = ExpiringMap::with_limit(1_000_000);
        let past = Instant::now();
        for i in 0..50_000u32 {
            m.insert(i.to_be_bytes().to_vec(), i, past);
        }
        assert!(m.len() <= 1, "expired entries dropped: {}", m.len());
        assert_eq!(m.evicted(), 0, "expiry is not eviction");
    }

    /// A full map drops its oldest live entry for the newest, and says so.
    #[test]
    fn the_bound_holds_and_evicts_the_oldest() {
        let mut m = ExpiringMap::with_limit(3);
        let later = Instant::now() + Duration::from_secs(600);
        for k in [b"a", b"b", b"c"] {
            assert!(!m.insert(k.to_vec(), 0, later));
        }
        assert!(
            m.insert(b"d".to_vec(), 0, later),
            "full: an entry was dropped"
        );
        assert_eq!(m.len(), 3);
        assert_eq!(m.evicted(), 1);
        assert!(m.remove(b"a").is_none(), "the oldest went");
        assert!(m.remove(b"b").is_some());
        // Replacing a key does not count against the bound twice.
        let mut m = ExpiringMap::with_limit(2);
        m.insert(b"x".to_vec(), 1, later);
        m.insert(b"x".to_vec(), 2, later);
        m.insert(b"y".to_vec(), 3, later);
        assert_eq!(m.evicted(), 0);
        assert_eq!(m.get_mut(b"x").copied(), Some(2));
    }

    #[test]
    fn renewing_keeps_an_entry_and_moves_it_back() {
        let mut m = ExpiringMap::with_limit(2);
        let later = Instant::now() + Duration::from_secs(60);
        m.insert(b"a".to_vec(), 1, later);
        m.insert(b"b".to_vec(), 2, later);
        assert_eq!(m.renew(b"a", later).copied(), Some(1));
        // "b" is now the oldest: a new entry evicts it, not "a".
        m.insert(b"c".to_vec(), 3, later);
        assert!(m.remove(b"b").is_none());
        assert_eq!(m.remove(b"a"), Some(1));
        // An expired entry is not renewed.
        m.insert(b"d".to_vec(), 4, Instant::now());
        assert!(m.renew(b"d", later).is_none());
        assert!(m.renew(b"missing", later).is_none());
    }
}
