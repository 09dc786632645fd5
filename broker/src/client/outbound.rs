//! A connection's outbound buffer and its close state.
//!
//! Producers (any reader routing a message here) append under the client's
//! mutex; the writer swaps the whole buffer out and writes it with the lock
//! released. The buffer is bounded by `max_pending`: a consumer that cannot
//! keep up is cut off instead of growing memory without bound or slowing the
//! producers down.

use std::fmt;

/// Why a connection closed, with nats-server's names (shown in `/connz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedState {
    ClientClosed,
    AuthenticationTimeout,
    AuthenticationViolation,
    AuthenticationExpired,
    SlowConsumerPendingBytes,
    SlowConsumerWriteDeadline,
    WriteError,
    ReadError,
    ParseError,
    StaleConnection,
    ProtocolViolation,
    BadClientProtocolVersion,
    MaxConnectionsExceeded,
    MaxAccountConnectionsExceeded,
    MaxPayloadExceeded,
    MaxControlLineExceeded,
    ServerShutdown,
    NoRespondersRequiresHeaders,
    DuplicateRoute,
    /// A configuration reload removed the route.
    RouteRemoved,
    TlsHandshakeError,
    /// The account's JWT revoked the user's credentials.
    Revocation,
    /// An account update left the connection at or over its subscription
    /// limit.
    MaxSubscriptionsExceeded,
}

impl fmt::Display for ClosedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClosedState::ClientClosed => "Client Closed",
            ClosedState::AuthenticationTimeout => "Authentication Timeout",
            ClosedState::AuthenticationViolation => "Authentication Failure",
            ClosedState::AuthenticationExpired => "Authentication Expired",
            ClosedState::SlowConsumerPendingBytes => "Slow Consumer (Pending Bytes)",
            ClosedState::SlowConsumerWriteDeadline => "Slow Consumer (Write Deadline)",
            ClosedState::WriteError => "Write Error",
            ClosedState::ReadError => "Read Error",
            ClosedState::ParseError => "Parse Error",
            ClosedState::StaleConnection => "Stale Connection",
            ClosedState::ProtocolViolation => "Protocol Violation",
            ClosedState::BadClientProtocolVersion => "Bad Client Protocol Version",
            ClosedState::MaxConnectionsExceeded => "Maximum Connections Exceeded",
            ClosedState::MaxAccountConnectionsExceeded => "Maximum Account Connections Exceeded",
            ClosedState::MaxPayloadExceeded => "Maximum Message Payload Exceeded",
            ClosedState::MaxControlLineExceeded => "Maximum Control Line Exceeded",
            ClosedState::ServerShutdown => "Server Shutdown",
            ClosedState::NoRespondersRequiresHeaders => "No Responders Requires Headers",
            ClosedState::DuplicateRoute => "Duplicate Route",
            ClosedState::RouteRemoved => "Route Removed",
            ClosedState::TlsHandshakeError => "TLS Handshake Failure",
            ClosedState::Revocation => "Credentials Revoked",
            ClosedState::MaxSubscriptionsExceeded => "Maximum Subscriptions Exceeded",
        })
    }
}

/// Outcome of queueing a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Queued; `wake` says the caller must arrange a writer wake-up (it is
    /// the first producer since the writer last drained the buffer).
    Ok { wake: bool },
    /// Queueing would exceed `max_pending`: the consumer is too slow.
    SlowConsumer,
    /// The connection is closed; the bytes were dropped.
    Closed,
}

/// A route is cut off as slow only past this many times `max_pending`.
pub const ROUTE_CLOSE_FACTOR: usize = 16;

/// Room for control replies beyond `max_pending`.
const CONTROL_RESERVE: usize = 64 * 1024;

/// A buffer shrinks back after a burst once it is this large and drained.
const SHRINK_ABOVE: usize = 1 << 20;

pub struct Outbound {
    buf: Vec<u8>,
    /// Bytes handed to the writer and not yet written: they still count
    /// against the pending limit, as in nats-server.
    inflight: usize,
    max_pending: usize,
    /// Past this many pending bytes the consumer is cut off as slow:
    /// `max_pending` for clients; more for routes (see
    /// [`Outbound::for_route`]).
    close_above: usize,
    closed: Option<ClosedState>,
    /// A producer has taken responsibility for waking the writer.
    wake_pending: bool,
    /// Messages and payload bytes queued to this client, counted under the
    /// lock the producer already holds so they cost no extra atomics.
    out_msgs: u64,
    out_bytes: u64,
    /// Producers are waiting for this consumer to drain (fast-producer stall).
    stalled: bool,
}

impl Outbound {
    pub fn new(max_pending: usize) -> Self {
        Outbound {
            buf: Vec::new(),
            inflight: 0,
            max_pending,
            close_above: max_pending,
            closed: None,
            wake_pending: false,
            out_msgs: 0,
            out_bytes: 0,
            stalled: false,
        }
    }

    /// A route's buffer. nats-server never cuts a route off for pending
    /// bytes (only for a write deadline): dropping a route loses every
    /// message on its way and all interest until it reconnects. Producers
    /// still stall at three quarters of `max_pending`, as for a client;
    /// the route is cut off only past [`ROUTE_CLOSE_FACTOR`] times it, a
    /// bound on the memory one stuck peer can hold.
    pub fn for_route(max_pending: usize) -> Self {
        Outbound {
            close_above: max_pending.saturating_mul(ROUTE_CLOSE_FACTOR),
            ..Outbound::new(max_pending)
        }
    }

    /// Bytes queued or being written.
    pub fn pending(&self) -> usize {
        self.buf.len() + self.inflight
    }

    /// Above three quarters of the limit, producers should pause briefly
    /// and let this consumer catch up before it has to be cut off.
    #[inline]
    pub fn should_stall(&self) -> bool {
        self.pending() > self.max_pending / 4 * 3
    }

    /// Over the limit itself: stall producers for longer.
    pub fn is_full(&self) -> bool {
        self.pending() >= self.max_pending
    }

    /// Record that a producer waits on this consumer; true if the writer must notify.
    pub fn set_stalled(&mut self) {
        self.stalled = true;
    }

    /// After queuing: if this consumer is behind ([`Self::should_stall`]),
    /// record that its producer will wait on it, and say so.
    #[inline]
    pub fn stall_if_behind(&mut self) -> bool {
        let behind = self.should_stall();
        if behind {
            self.stalled = true;
        }
        behind
    }

    /// The writer finished writing its batch. Returns whether stalled
    /// producers should be released.
    pub fn written(&mut self) -> bool {
        self.inflight = 0;
        let release = self.stalled && !self.should_stall();
        if release {
            self.stalled = false;
        }
        release
    }

    #[inline]
    pub fn count_out(&mut self, payload: usize) {
        self.out_msgs += 1;
        self.out_bytes += payload as u64;
    }

    /// `(messages, bytes)` delivered to this client so far.
    pub fn out_counts(&self) -> (u64, u64) {
        (self.out_msgs, self.out_bytes)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    pub fn closed_reason(&self) -> Option<ClosedState> {
        self.closed
    }

    /// Reserve room for `n` more bytes, enforcing the pending limit.
    #[inline]
    pub fn reserve(&mut self, n: usize) -> Queued {
        if self.closed.is_some() {
            return Queued::Closed;
        }
        if self.pending() + n > self.close_above {
            return Queued::SlowConsumer;
        }
        let need = self.buf.len() + n;
        if need > self.buf.capacity() {
            // Double as `Vec` does, but never past what the pending limit
            // lets this buffer hold: a stalled consumer then costs at most
            // `max_pending` of capacity, not the next power of two above it.
            let room = self.close_above.saturating_sub(self.inflight).max(need);
            let target = self.buf.capacity().saturating_mul(2).max(need).min(room);
            self.buf.reserve_exact(target - self.buf.len());
        }
        let wake = !self.wake_pending;
        self.wake_pending = true;
        Queued::Ok { wake }
    }

    /// The buffer to append to after a successful [`reserve`](Self::reserve).
    #[inline]
    pub fn buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Queue protocol control bytes (`PONG`, `+OK`, `-ERR`). They may use a
    /// small reserve above the pending limit, so that the `-ERR` explaining
    /// a close still fits; past that, a client that sends PINGs and never
    /// reads is a slow consumer like any other.
    pub fn push_control(&mut self, bytes: &[u8]) -> Queued {
        if self.closed.is_some() {
            return Queued::Closed;
        }
        if self.pending() + bytes.len() > self.close_above.saturating_add(CONTROL_RESERVE) {
            return Queued::SlowConsumer;
        }
        self.buf.extend_from_slice(bytes);
        self.wake_pending = true;
        Queued::Ok { wake: true }
    }

    /// Mark closed; returns true the first time.
    pub fn mark_closed(&mut self, reason: ClosedState) -> bool {
        if self.closed.is_some() {
            return false;
        }
        self.closed = Some(reason);
        true
    }

    /// Hand the queued bytes to the writer, leaving `spare` (empty) in their place.
    pub fn take(&mut self, spare: &mut Vec<u8>) {
        debug_assert!(spare.is_empty());
        std::mem::swap(&mut self.buf, spare);
        self.inflight = spare.len();
        self.wake_pending = false;
    }

    /// Give a drained buffer back its memory limit after a burst.
    pub fn recycle(buf: &mut Vec<u8>) {
        buf.clear();
        if buf.capacity() > SHRINK_ABOVE {
            *buf = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_full_buffer_holds_no_more_capacity_than_the_limit() {
        let limit = 3 * 1024 * 1024 + 17;
        let mut o = Outbound::new(limit);
        let chunk = vec![b'x'; 1000];
        while let Queued::Ok { .. } = o.reserve(chunk.len()) {
            o.buf_mut().extend_from_slice(&chunk);
        }
        assert!(o.pending() > limit - chunk.len());
        assert!(
            o.buf.capacity() <= limit,
            "capacity {} over {limit}",
            o.buf.capacity()
        );
    }

    use super::*;

    #[test]
    fn pending_limit_and_wakeups() {
        let mut o = Outbound::new(10);
        assert_eq!(o.reserve(4), Queued::Ok { wake: true });
        o.buf_mut().extend_from_slice(b"abcd");
        assert_eq!(o.reserve(4), Queued::Ok { wake: false });
        o.buf_mut().extend_from_slice(b"efgh");
        assert_eq!(o.reserve(4), Queued::SlowConsumer);
        let mut spare = Vec::new();
        o.take(&mut spare);
        assert_eq!(spare, b"abcdefgh");
        assert_eq!(
            o.reserve(4),
            Queued::SlowConsumer,
            "in-flight bytes still count"
        );
        assert!(o.should_stall());
        o.set_stalled();
        assert!(o.written(), "drained: release stalled producers");
        assert_eq!(o.reserve(4), Queued::Ok { wake: true });
        assert!(o.mark_closed(ClosedState::ClientClosed));
        assert!(!o.mark_closed(ClosedState::ReadError));
        assert_eq!(o.reserve(1), Queued::Closed);
        assert_eq!(o.push_control(b"x"), Queued::Closed);
        let mut o = Outbound::new(4);
        assert_eq!(o.push_control(&[0u8; 1024]), Queued::Ok { wake: true });
        assert_eq!(
            o.push_control(&vec![0u8; CONTROL_RESERVE]),
            Queued::SlowConsumer,
            "reserve exhausted"
        );
    }

    #[test]
    fn a_route_stalls_its_producers_but_is_not_cut_off_at_max_pending() {
        let mut o = Outbound::for_route(1000);
        assert!(matches!(o.reserve(900), Queued::Ok { .. }));
        o.buf_mut().extend_from_slice(&[0; 900]);
        assert!(o.should_stall(), "over three quarters: producers pause");
        // A client would be cut off here; a route takes more.
        assert!(matches!(o.reserve(5000), Queued::Ok { .. }));
        o.buf_mut().extend_from_slice(&[0; 5000]);
        assert_eq!(o.reserve(1000 * ROUTE_CLOSE_FACTOR), Queued::SlowConsumer);
        let mut client = Outbound::new(1000);
        client.buf_mut().extend_from_slice(&[0; 900]);
        assert_eq!(client.reserve(200), Queued::SlowConsumer);
    }
}
