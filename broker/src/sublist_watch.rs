//! Interest notifications: who waits for a first subscriber on a subject.
//!
//! A push consumer delivers only while its deliver subject has interest.
//! Clients commonly create the consumer first and subscribe second (the
//! KV watcher of async-nats does), so the consumer must start the moment
//! the subscription lands, not at its next look: a late start lets newer
//! messages slip in ahead of the ones it should deliver first, and shifts
//! the pending counts clients read "caught up" from. nats-server's sublist
//! has the same kind of registry for the same reason.
//!
//! The check runs on every inserted subscription, so it is one atomic load
//! while nobody waits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Weak;

use parking_lot::RwLock;

use crate::subject;

/// Told when a subscription that matches its subject appears.
pub trait InterestWaker: Send + Sync {
    fn interest_appeared(&self);
}

struct Watcher {
    subject: Box<[u8]>,
    waker: Weak<dyn InterestWaker>,
}

/// The waiting parties of one sublist, by a key of the caller's choosing.
#[derive(Default)]
pub struct InterestWatch {
    armed: AtomicBool,
    watchers: RwLock<HashMap<String, Watcher>>,
}

impl InterestWatch {
    /// Wake `waker` whenever a subscription matching the literal `subject`
    /// is added; `key` names the registration (a later call with the same
    /// key replaces it).
    pub fn watch(&self, key: &str, subject: &str, waker: Weak<dyn InterestWaker>) {
        let mut w = self.watchers.write();
        w.retain(|_, v| v.waker.strong_count() > 0);
        w.insert(
            key.to_string(),
            Watcher {
                subject: subject.as_bytes().into(),
                waker,
            },
        );
        self.armed.store(true, Ordering::Release);
    }

    /// The registration `key` now waits for `subject` instead.
    pub fn retarget(&self, key: &str, subject: &str) {
        if let Some(v) = self.watchers.write().get_mut(key) {
            v.subject = subject.as_bytes().into();
        }
    }

    /// Drop the registration `key`, if it is still `who`'s (a successor
    /// under the same key may have replaced it).
    pub fn unwatch(&self, key: &str, who: *const ()) {
        let mut w = self.watchers.write();
        if w.get(key)
            .is_some_and(|v| std::ptr::eq(v.waker.as_ptr() as *const (), who))
        {
            w.remove(key);
        }
        self.armed.store(!w.is_empty(), Ordering::Release);
    }

    /// Whether anyone waits (one atomic load).
    pub fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    /// A subscription on `sub_subject` (wildcards allowed) was added.
    pub fn added(&self, sub_subject: &[u8]) {
        if !self.is_armed() {
            return;
        }
        let due: Vec<_> = self
            .watchers
            .read()
            .values()
            .filter(|v| subject::matches(sub_subject, &v.subject))
            .filter_map(|v| v.waker.upgrade())
            .collect();
        for w in due {
            w.interest_appeared();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl InterestWaker for Count {
        fn interest_appeared(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn weak(c: &Arc<Count>) -> Weak<dyn InterestWaker> {
        let c: Arc<dyn InterestWaker> = c.clone();
        Arc::downgrade(&c)
    }

    #[test]
    fn wakes_on_matching_subscriptions_only() {
        let w = InterestWatch::default();
        let c = Arc::new(Count::default());
        w.watch("S.C", "deliver.a", weak(&c));
        w.added(b"deliver.b");
        w.added(b"deliver.a");
        w.added(b"deliver.*");
        w.added(b">");
        assert_eq!(c.0.load(Ordering::Relaxed), 3);
        w.retarget("S.C", "deliver.b");
        w.added(b"deliver.b");
        assert_eq!(c.0.load(Ordering::Relaxed), 4);
        let other = Arc::new(Count::default());
        w.unwatch("S.C", Arc::as_ptr(&other) as *const ());
        w.added(b"deliver.b");
        assert_eq!(
            c.0.load(Ordering::Relaxed),
            5,
            "only its own waker unwatches"
        );
        w.unwatch("S.C", Arc::as_ptr(&c) as *const ());
        w.added(b"deliver.b");
        assert_eq!(c.0.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn gone_wakers_are_skipped_and_pruned() {
        let w = InterestWatch::default();
        let c = Arc::new(Count::default());
        w.watch("one", "x", weak(&c));
        drop(c);
        w.added(b"x");
        let d = Arc::new(Count::default());
        w.watch("two", "y", weak(&d));
        assert_eq!(w.watchers.read().len(), 1);
    }
}
