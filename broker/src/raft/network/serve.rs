//! The answering side: a registered group's `Raft` handling requests.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{Raft, RaftTypeConfig};
use serde::Serialize;

use super::subject::Op;
use super::wire::{self, DecodeError, Failure, Reply};
use super::Bus;

/// A group's request handler, without its type configuration, so that one
/// router holds groups of different kinds (the meta group, streams).
pub(super) trait Serve: Send + Sync {
    /// Decodes the request here, on the caller's thread, and handles it on
    /// a task; the answer goes to `reply`. Never blocks.
    fn serve(&self, op: Op, payload: &[u8], reply: &str);
}

pub(super) struct RaftServer<C: RaftTypeConfig> {
    raft: Raft<C>,
    group: Arc<str>,
    bus: Arc<dyn Bus>,
    rt: tokio::runtime::Handle,
    inflight: Arc<AtomicUsize>,
    max_inflight: usize,
}

impl<C> RaftServer<C>
where
    C: RaftTypeConfig<NodeId = u64>,
{
    pub(super) fn new(
        raft: Raft<C>,
        group: &str,
        bus: Arc<dyn Bus>,
        rt: tokio::runtime::Handle,
        max_inflight: usize,
    ) -> Self {
        Self {
            raft,
            group: group.into(),
            bus,
            rt,
            inflight: Arc::default(),
            max_inflight,
        }
    }

    /// Runs `answer` on a task and publishes its result on `reply`.
    fn spawn<T, E, F>(&self, slot: Slot, reply: &str, answer: F)
    where
        T: Serialize + Send + 'static,
        E: Serialize + Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let bus = self.bus.clone();
        let reply = reply.to_owned();
        self.rt.spawn(async move {
            let result = match answer.await {
                Ok(v) => Reply::Ok(v),
                Err(e) => Reply::Raft(e),
            };
            drop(slot);
            publish(&*bus, &reply, &result);
        });
    }

    fn refuse(&self, op: Op, reply: &str, error: DecodeError) {
        tracing::warn!(group = %self.group, %op, %error, "undecodable raft request");
        let failure = match error {
            DecodeError::Version(v) => Failure::UnsupportedVersion(v),
            DecodeError::Empty | DecodeError::Body(_) => Failure::BadRequest,
        };
        fail(&*self.bus, reply, failure);
    }
}

impl<C> Serve for RaftServer<C>
where
    C: RaftTypeConfig<NodeId = u64>,
{
    fn serve(&self, op: Op, payload: &[u8], reply: &str) {
        let Some(slot) = Slot::take(&self.inflight, self.max_inflight) else {
            tracing::debug!(group = %self.group, %op, "raft group busy, request refused");
            fail(&*self.bus, reply, Failure::Busy);
            return;
        };
        let raft = self.raft.clone();
        match op {
            Op::Vote => match wire::decode::<VoteRequest<u64>>(payload) {
                Ok(req) => self.spawn(slot, reply, async move { raft.vote(req).await }),
                Err(e) => self.refuse(op, reply, e),
            },
            Op::Append => match wire::decode::<AppendEntriesRequest<C>>(payload) {
                Ok(req) => self.spawn(slot, reply, async move { raft.append_entries(req).await }),
                Err(e) => self.refuse(op, reply, e),
            },
            Op::Snapshot => match wire::decode::<InstallSnapshotRequest<C>>(payload) {
                Ok(req) => self.spawn(slot, reply, async move { raft.install_snapshot(req).await }),
                Err(e) => self.refuse(op, reply, e),
            },
            Op::Elect => match wire::decode::<()>(payload) {
                Ok(()) => self.spawn(slot, reply, async move { raft.trigger().elect().await }),
                Err(e) => self.refuse(op, reply, e),
            },
            // In a group: it has a membership, or a candidate or leader
            // has reached it (openraft never campaigns uninitialized, so a
            // term means another member wrote to it).
            Op::Joined => match wire::decode::<()>(payload) {
                Ok(()) => self.spawn(slot, reply, async move {
                    let initialized = raft.is_initialized().await?;
                    let term = raft.metrics().borrow().current_term;
                    Ok::<bool, openraft::error::Fatal<u64>>(initialized || term > 0)
                }),
                Err(e) => self.refuse(op, reply, e),
            },
            // The router answers these itself (see `Router::serve_catchup`).
            Op::Catchup => fail(&*self.bus, reply, Failure::BadRequest),
        }
    }
}

/// One of a group's in-flight request slots, given back when dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers `reply` with a transport failure.
pub(super) fn fail(bus: &dyn Bus, reply: &str, failure: Failure) {
    publish(bus, reply, &Reply::<(), ()>::Failed(failure));
}

pub(super) fn publish<T: Serialize, E: Serialize>(
    bus: &dyn Bus,
    reply: &str,
    answer: &Reply<T, E>,
) {
    match wire::encode(answer) {
        Ok(bytes) => bus.publish(reply, None, &bytes),
        Err(error) => {
            tracing::error!(%error, reply, "cannot encode a raft answer");
            if let Ok(bytes) = wire::encode(&Reply::<(), ()>::Failed(Failure::Internal)) {
                bus.publish(reply, None, &bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_returned() {
        let count = Arc::new(AtomicUsize::new(0));
        let a = Slot::take(&count, 2).expect("first");
        let b = Slot::take(&count, 2).expect("second");
        assert!(Slot::take(&count, 2).is_none());
        drop(a);
        let c = Slot::take(&count, 2).expect("freed");
        drop((b, c));
        assert_eq!(count.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_failure_decodes_as_any_reply_type() {
        // `fail` encodes Reply<(), ()>; the sender decodes its own types.
        let bytes = wire::encode(&Reply::<(), ()>::Failed(Failure::Busy)).expect("encode");
        let got: Reply<u64, String> = wire::decode(&bytes).expect("decode");
        assert!(matches!(got, Reply::Failed(Failure::Busy)));
    }
}
