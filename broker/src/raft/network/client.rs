//! The asking side: openraft's network factory and connections.

use std::error::Error;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{RaftNetwork, RaftNetworkFactory, RaftTypeConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

use super::error::TransportError;
use super::router::{Contact, Router};
use super::subject::{self, InvalidGroup, Op};
use super::wire::{self, Reply};

/// A connection keeps at most this much of its encode buffer between
/// requests: one buffer per (group, peer) pair, and a node may have
/// thousands of groups.
const RETAINED_BUFFER: usize = 64 * 1024;

/// Room for what a snapshot piece adds around its data: the data's length
/// prefix and the piece's offset and flags, all varints.
const PIECE_SLACK: usize = 32;

type RpcError<C, E = openraft::error::Infallible> =
    RPCError<u64, <C as RaftTypeConfig>::Node, RaftError<u64, E>>;

/// openraft's network factory for one group of this node.
pub struct Network<C> {
    router: Arc<Router>,
    group: Arc<str>,
    _config: PhantomData<fn() -> C>,
}

impl<C> Network<C> {
    /// The network of `group` on `router`'s node.
    pub fn new(router: Arc<Router>, group: &str) -> Result<Self, InvalidGroup> {
        subject::validate_group(group)?;
        Ok(Self {
            router,
            group: group.into(),
            _config: PhantomData,
        })
    }
}

impl<C> Clone for Network<C> {
    fn clone(&self) -> Self {
        Self {
            router: self.router.clone(),
            group: self.group.clone(),
            _config: PhantomData,
        }
    }
}

impl<C> RaftNetworkFactory<C> for Network<C>
where
    C: RaftTypeConfig<NodeId = u64>,
{
    type Network = Connection<C>;

    async fn new_client(&mut self, target: u64, _node: &C::Node) -> Connection<C> {
        Connection {
            router: self.router.clone(),
            group: self.group.clone(),
            target,
            subjects: Op::ALL.map(|op| subject::request(target, &self.group, op)),
            buf: Vec::new(),
            reply: String::new(),
            contact: self.router.contact(&self.group, target),
            _config: PhantomData,
        }
    }
}

/// openraft's connection to one peer for one group. Nothing is connected:
/// each RPC is a request on the bus, so a peer that is down costs a
/// timeout per RPC and nothing else.
pub struct Connection<C> {
    router: Arc<Router>,
    group: Arc<str>,
    target: u64,
    /// Request subjects, indexed like [`Op::ALL`].
    subjects: [String; 3],
    /// The encode buffer, reused across requests.
    buf: Vec<u8>,
    /// The reply subject, reused across requests.
    reply: String,
    /// When the peer last answered (monitoring).
    contact: Arc<Contact>,
    _config: PhantomData<fn() -> C>,
}

impl<C> Connection<C>
where
    C: RaftTypeConfig<NodeId = u64>,
{
    /// Sends `req` and waits up to `ttl` for the answer.
    async fn call<Q, T, E>(&mut self, op: Op, req: &Q, ttl: Duration) -> Result<T, RpcError<C, E>>
    where
        Q: Serialize,
        T: DeserializeOwned,
        E: Error + DeserializeOwned,
    {
        if let Err(error) = wire::encode_into(&mut self.buf, req) {
            return Err(self.unreachable(TransportError::Encode {
                op,
                group: self.group.clone(),
                error,
            }));
        }
        let max = self.router.config().max_message;
        if self.buf.len() > max {
            self.router.count_oversized();
            let e = TransportError::TooLarge {
                op,
                group: self.group.clone(),
                size: self.buf.len(),
                max,
            };
            release(&mut self.buf);
            return Err(self.unreachable(e));
        }

        let router = &*self.router;
        let mut pending = router.begin();
        subject::write_reply(&mut self.reply, router.id(), pending.id);
        router
            .bus()
            .publish(&self.subjects[op.index()], Some(&self.reply), &self.buf);
        release(&mut self.buf);

        let answer = match tokio::time::timeout(ttl, &mut pending.rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => {
                drop(pending);
                return Err(self.network(TransportError::Lost {
                    op,
                    target: self.target,
                    group: self.group.clone(),
                }));
            }
            Err(_) => {
                drop(pending);
                self.router.count_timeout();
                return Err(RPCError::Timeout(Timeout {
                    action: op.rpc_type(),
                    id: self.router.id(),
                    target: self.target,
                    timeout: ttl,
                }));
            }
        };
        drop(pending);
        self.router.touch(&self.contact);
        match wire::decode::<Reply<T, RaftError<u64, E>>>(&answer) {
            Ok(Reply::Ok(v)) => Ok(v),
            Ok(Reply::Raft(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Ok(Reply::Failed(failure)) => Err(self.unreachable(TransportError::Refused {
                op,
                target: self.target,
                group: self.group.clone(),
                failure,
            })),
            Err(error) => Err(self.unreachable(TransportError::BadReply {
                op,
                target: self.target,
                group: self.group.clone(),
                error,
            })),
        }
    }

    /// A failure that retrying at once would only repeat: openraft backs
    /// off (see [`RaftNetwork::backoff`]).
    fn unreachable<E: Error>(&self, e: TransportError) -> RpcError<C, E> {
        self.router.count_failure();
        tracing::debug!(error = %e, "raft rpc failed");
        RPCError::Unreachable(Unreachable::new(&e))
    }

    /// A failure worth retrying at once.
    fn network<E: Error>(&self, e: TransportError) -> RpcError<C, E> {
        self.router.count_failure();
        tracing::debug!(error = %e, "raft rpc failed");
        RPCError::Network(NetworkError::new(&e))
    }

    /// How many of `rpc`'s entries fit in one message, if not all of them.
    fn entries_that_fit(&self, rpc: &AppendEntriesRequest<C>) -> Result<Fit, postcard::Error> {
        let max = self.router.config().max_message;
        let total = wire::encoded_len(rpc)?;
        if total <= max {
            return Ok(Fit::All);
        }
        let mut sizes = Vec::with_capacity(rpc.entries.len());
        for entry in &rpc.entries {
            sizes.push(wire::serialized_size(entry)?);
        }
        // What the request costs besides its entries; the entry count's
        // varint only shrinks with fewer entries.
        let mut used = total - sizes.iter().sum::<usize>();
        let mut n = 0u64;
        for size in sizes {
            used += size;
            if used > max {
                break;
            }
            n += 1;
        }
        Ok(Fit::First(n, total))
    }
}

/// Frees a connection's encode buffer if a large message grew it.
fn release(buf: &mut Vec<u8>) {
    if buf.capacity() > RETAINED_BUFFER {
        *buf = Vec::new();
    }
}

enum Fit {
    All,
    /// Only the first `.0` entries fit; `.1` is the whole request's size.
    First(u64, usize),
}

impl<C> RaftNetwork<C> for Connection<C>
where
    C: RaftTypeConfig<NodeId = u64>,
{
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcError<C>> {
        match self.entries_that_fit(&rpc) {
            Ok(Fit::All) => {}
            Ok(Fit::First(n, size)) if rpc.entries.len() > 1 => {
                // openraft retries at once with at most `hint` entries; an
                // entry too large on its own still gets a hint of 1, so the
                // next attempt reports it below.
                self.router.count_oversized();
                let hint = n.max(1);
                tracing::debug!(
                    group = %self.group,
                    entries = rpc.entries.len(),
                    size,
                    hint,
                    "raft append-entries too large, splitting"
                );
                return Err(RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint(hint),
                ));
            }
            Ok(Fit::First(_, size)) => {
                // One entry larger than a message: openraft cannot split it
                // and this follower cannot catch up until the limit grows.
                // Producers must keep entries under max_message.
                self.router.count_oversized();
                let e = TransportError::TooLarge {
                    op: Op::Append,
                    group: self.group.clone(),
                    size,
                    max: self.router.config().max_message,
                };
                tracing::error!(error = %e, target = self.target, "raft entry cannot be replicated");
                return Err(self.unreachable(e));
            }
            Err(error) => {
                return Err(self.unreachable(TransportError::Encode {
                    op: Op::Append,
                    group: self.group.clone(),
                    error,
                }))
            }
        }
        self.call(Op::Append, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcError<C>> {
        self.call(Op::Vote, &rpc, option.hard_ttl()).await
    }

    /// Sends one snapshot chunk, in pieces if it does not fit a message
    /// (openraft's `snapshot_max_chunk_size` defaults to 3 MiB). The
    /// receiver writes each piece at its offset, so pieces are chunks as
    /// far as it is concerned; only the last one carries `done`.
    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcError<C, InstallSnapshotError>> {
        let ttl = option.hard_ttl();
        let max = self.router.config().max_message;
        let header = match wire::encoded_len(&rpc.clone_header()) {
            Ok(n) => n,
            Err(error) => {
                return Err(self.unreachable(TransportError::Encode {
                    op: Op::Snapshot,
                    group: self.group.clone(),
                    error,
                }))
            }
        };
        let room = max.saturating_sub(header + PIECE_SLACK);
        if header + PIECE_SLACK + rpc.data.len() <= max || room == 0 {
            // Fits, or nothing would: `call` reports the latter.
            return self.call(Op::Snapshot, &rpc, ttl).await;
        }

        let deadline = Instant::now() + ttl;
        let mut start = 0;
        loop {
            let end = (start + room).min(rpc.data.len());
            let last = end == rpc.data.len();
            let piece = InstallSnapshotRequest::<C> {
                offset: rpc.offset + start as u64,
                data: rpc.data[start..end].to_vec(),
                done: rpc.done && last,
                ..rpc.clone_header()
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let resp: InstallSnapshotResponse<u64> =
                match self.call(Op::Snapshot, &piece, left).await {
                    Err(RPCError::Timeout(mut t)) => {
                        t.timeout = ttl;
                        return Err(RPCError::Timeout(t));
                    }
                    other => other?,
                };
            if last || resp.vote > rpc.vote {
                return Ok(resp);
            }
            start = end;
        }
    }

    fn backoff(&self) -> Backoff {
        let config = self.router.config();
        let max = config.backoff_max.max(config.backoff_initial);
        Backoff::new(std::iter::successors(
            Some(config.backoff_initial),
            move |d| Some((*d * 2).min(max)),
        ))
    }
}

/// The parts of a snapshot request besides its data.
trait CloneHeader {
    fn clone_header(&self) -> Self;
}

impl<C: RaftTypeConfig> CloneHeader for InstallSnapshotRequest<C> {
    fn clone_header(&self) -> Self {
        Self {
            vote: self.vote.clone(),
            meta: self.meta.clone(),
            offset: self.offset,
            data: Vec::new(),
            done: self.done,
        }
    }
}
