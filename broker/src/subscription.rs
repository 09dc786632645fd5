//! One subscription: a subject (maybe with wildcards), an optional queue
//! group, the client's sid, and the auto-unsubscribe limit from `UNSUB sid max`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::client::ClientShared;

pub struct Subscription {
    /// The connection that receives the messages.
    pub client: Arc<ClientShared>,
    pub subject: Box<[u8]>,
    pub queue: Option<Box<[u8]>>,
    pub sid: Box<[u8]>,
    /// Auto-unsubscribe after this many deliveries; 0 means never.
    pub max: AtomicU64,
    /// Messages delivered so far.
    pub delivered: AtomicU64,
    /// For a queue subscription that stands for a route peer's interest:
    /// how many members the peer has in that group, which weights the
    /// cluster-wide choice of a member. 1 for a local subscription.
    pub weight: AtomicU32,
    /// Set once removed, so that stale cached match results skip it.
    closed: AtomicBool,
    /// Where the sublist keeps it: its index in the member list of its
    /// subject's node (plain subscribers or its queue group), or
    /// [`NOT_LISTED`]. Lets the sublist remove it without searching a list
    /// that may hold 100k others. Only the sublist touches it, under its
    /// write lock, which is also what orders the accesses.
    slot: AtomicUsize,
    /// Subjects this subscription's wildcard may match but its user may not
    /// receive (a deny permission that overlaps it); checked on delivery.
    /// A boxed slice rather than a Vec: with `slot`, that keeps the whole
    /// Arc allocation at 128 bytes, an allocator size class, which matters
    /// with 100k+ subscriptions.
    deny: std::sync::OnceLock<Box<[String]>>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("cid", &self.client.cid)
            .field("subject", &String::from_utf8_lossy(&self.subject))
            .field(
                "queue",
                &self
                    .queue
                    .as_ref()
                    .map(|q| String::from_utf8_lossy(q).into_owned()),
            )
            .field("sid", &String::from_utf8_lossy(&self.sid))
            .finish()
    }
}

/// What happened when a message was offered to a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Deliver it.
    Deliver,
    /// Deliver it; it was the last one allowed, so remove the subscription.
    DeliverLast,
    /// Do not deliver: the subscription is closed or past its limit.
    Skip,
}

/// [`Subscription::slot`] of a subscription that is in no sublist.
pub(crate) const NOT_LISTED: usize = usize::MAX;

impl Subscription {
    pub fn new(
        client: Arc<ClientShared>,
        subject: &[u8],
        queue: Option<&[u8]>,
        sid: &[u8],
    ) -> Self {
        Subscription {
            client,
            subject: Box::from(subject),
            queue: queue.map(Box::from),
            sid: Box::from(sid),
            max: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            weight: AtomicU32::new(1),
            closed: AtomicBool::new(false),
            slot: AtomicUsize::new(NOT_LISTED),
            deny: std::sync::OnceLock::new(),
        }
    }

    /// A subscription owned by a client with no connection, for tests.
    pub fn detached(subject: &[u8], queue: Option<&[u8]>, sid: &[u8]) -> Self {
        Self::new(Arc::new(ClientShared::detached()), subject, queue, sid)
    }

    pub fn set_deny(&self, filters: Vec<String>) {
        let _ = self.deny.set(filters.into_boxed_slice());
    }

    /// Is delivery of `subject` to this subscription forbidden?
    #[inline]
    pub fn denies(&self, subject: &[u8]) -> bool {
        self.deny.get().is_some_and(|d| {
            d.iter()
                .any(|f| crate::subject::matches(f.as_bytes(), subject))
        })
    }

    #[inline]
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Count one delivery against the auto-unsubscribe limit.
    #[inline]
    pub fn offer(&self) -> Delivery {
        if self.is_closed() {
            return Delivery::Skip;
        }
        let n = self.delivered.fetch_add(1, Ordering::AcqRel) + 1;
        let max = self.max.load(Ordering::Acquire);
        if max == 0 || n < max {
            Delivery::Deliver
        } else if n == max {
            Delivery::DeliverLast
        } else {
            Delivery::Skip
        }
    }

    /// Its index in its sublist node's member list, or [`NOT_LISTED`].
    #[inline]
    pub(crate) fn slot(&self) -> usize {
        self.slot.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn set_slot(&self, slot: usize) {
        self.slot.store(slot, Ordering::Relaxed);
    }

    pub fn subject_str(&self) -> String {
        String::from_utf8_lossy(&self.subject).into_owned()
    }

    pub fn queue_str(&self) -> Option<String> {
        self.queue
            .as_ref()
            .map(|q| String::from_utf8_lossy(q).into_owned())
    }

    pub fn sid_str(&self) -> String {
        String::from_utf8_lossy(&self.sid).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adding a field can push the allocation into the next size class
    /// (144 or 160 bytes): 6 MB more for 200k subscriptions. Check it stays.
    #[test]
    fn fits_in_128_bytes_with_its_arc() {
        assert!(std::mem::size_of::<Subscription>() + 16 <= 128);
    }
}
