//! Fan a published message out to the subscriptions that match it.
//!
//! This is the hot path. It formats each `MSG`/`HMSG` straight into the
//! subscriber's outbound buffer (one short lock per delivery, no allocation)
//! and records which writers need waking; the reader wakes them once per read
//! batch via [`FlushSet`], so a burst of small messages becomes one write.

use std::sync::Arc;

use std::sync::atomic::Ordering;

use super::outbound::Queued;
use super::{ClientShared, ConnKind};
use crate::sublist::MatchResult;
use crate::subscription::{Delivery, Subscription};

/// A message as it arrived: subject, optional reply, and body, whose first
/// `hdr_len` bytes are the header block.
#[derive(Debug, Clone, Copy)]
pub struct Msg<'a> {
    pub subject: &'a [u8],
    pub reply: Option<&'a [u8]>,
    pub hdr_len: usize,
    pub body: &'a [u8],
}

/// Where a message came from, which decides where it may go.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// Published by a local client: deliver locally and forward to routes.
    Client { cid: u64, echo: bool },
    /// Received from a route: deliver to local clients only (one hop), and
    /// to queue groups only if the sender chose this server for them.
    Route { queues: Option<&'a [u8]> },
    /// Carried into an importing account: local clients only (every node
    /// applies imports itself), one local member of each queue group.
    Import,
}

/// The route peers a message must be forwarded to, each with the queue
/// groups it was chosen for. Reused across messages to avoid allocating.
#[derive(Default)]
pub struct RouteFanout {
    targets: Vec<(Arc<ClientShared>, Vec<Arc<Subscription>>)>,
    len: usize,
}

impl RouteFanout {
    fn entry(&mut self, route: &Arc<ClientShared>) -> &mut Vec<Arc<Subscription>> {
        let i = match self.targets[..self.len]
            .iter()
            .position(|(r, _)| Arc::ptr_eq(r, route))
        {
            Some(i) => i,
            None => {
                if self.len == self.targets.len() {
                    self.targets.push((route.clone(), Vec::new()));
                } else {
                    self.targets[self.len].0 = route.clone();
                    self.targets[self.len].1.clear();
                }
                self.len += 1;
                self.len - 1
            }
        };
        &mut self.targets[i].1
    }

    fn clear(&mut self) {
        for (_, q) in &mut self.targets[..self.len] {
            q.clear();
        }
        self.len = 0;
    }
}

/// What the router needs from the server when a delivery has side effects.
pub trait DeliverHooks {
    /// The subscriber's buffer is over its pending limit: cut it off.
    fn slow_consumer(&self, client: &Arc<ClientShared>);
    /// The subscription reached its `UNSUB` max: remove it.
    fn auto_unsubscribe(&self, sub: &Arc<Subscription>);
}

/// Writers to wake at the end of a read batch, and consumers that are
/// falling behind, which the producer waits on briefly before reading more.
#[derive(Default)]
pub struct FlushSet {
    clients: Vec<Arc<ClientShared>>,
    stalled: Vec<Arc<ClientShared>>,
}

impl FlushSet {
    #[inline]
    pub fn add(&mut self, client: &Arc<ClientShared>) {
        self.clients.push(client.clone());
    }

    /// Wake every writer that was handed data since the last flush.
    pub fn flush(&mut self) {
        for c in self.clients.drain(..) {
            c.wake.notify_one();
        }
    }

    /// Wait on `consumer` (once) before reading more: it fell behind.
    #[inline]
    fn stall_on(&mut self, consumer: &Arc<ClientShared>) {
        if !self.stalled.iter().any(|c| Arc::ptr_eq(c, consumer)) {
            self.stalled.push(consumer.clone());
        }
    }

    /// Consumers over three quarters of their pending limit, to wait on.
    pub fn take_stalled(&mut self) -> Vec<Arc<ClientShared>> {
        std::mem::take(&mut self.stalled)
    }
}

/// A tiny xorshift generator for picking queue members: fast, per-reader,
/// and good enough to spread load evenly (it is not used for secrets).
#[derive(Debug, Clone)]
pub struct QueueRng(u64);

impl QueueRng {
    pub fn new(seed: u64) -> Self {
        QueueRng(seed | 1)
    }

    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        self.below_u64(n as u64) as usize
    }

    /// A value in `0..n` (0 when `n` is 0).
    #[inline]
    pub fn below_u64(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.checked_rem(n).unwrap_or(0)
    }
}

/// Write `n` in decimal into `out`.
#[inline]
pub fn put_usize(out: &mut Vec<u8>, mut n: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

#[inline]
fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Offer `msg` to one subscription. Returns the bytes queued (headers
/// included when the subscriber takes them), or `None` if not delivered.
pub fn deliver_one(
    sub: &Arc<Subscription>,
    msg: &Msg<'_>,
    flush: &mut FlushSet,
    hooks: &dyn DeliverHooks,
) -> Option<usize> {
    if sub.denies(msg.subject) {
        return None;
    }
    let verdict = sub.offer();
    if verdict == Delivery::Skip {
        return None;
    }
    let client = &sub.client;
    if let Some(handler) = &client.handler {
        handler.deliver(sub, msg);
        if verdict == Delivery::DeliverLast {
            hooks.auto_unsubscribe(sub);
        }
        return Some(msg.body.len());
    }
    let with_headers = msg.hdr_len > 0 && client.headers.load(Ordering::Relaxed);
    // Subscribers that did not ask for headers get the payload alone.
    let (body, hdr_len) = if with_headers {
        (msg.body, msg.hdr_len)
    } else {
        (&msg.body[msg.hdr_len..], 0)
    };

    let reply_len = msg.reply.map_or(0, |r| r.len() + 1);
    let size_field = if with_headers {
        digits(hdr_len) + 1 + digits(body.len())
    } else {
        digits(body.len())
    };
    let op_len = if with_headers { 5 } else { 4 };
    let total = op_len
        + msg.subject.len()
        + 1
        + sub.sid.len()
        + 1
        + reply_len
        + size_field
        + 2
        + body.len()
        + 2;

    let mut out = client.out.lock();
    match out.reserve(total) {
        Queued::Ok { wake } => {
            let b = out.buf_mut();
            b.extend_from_slice(if with_headers { b"HMSG " } else { b"MSG " });
            b.extend_from_slice(msg.subject);
            b.push(b' ');
            b.extend_from_slice(&sub.sid);
            b.push(b' ');
            if let Some(r) = msg.reply {
                b.extend_from_slice(r);
                b.push(b' ');
            }
            if with_headers {
                put_usize(b, hdr_len);
                b.push(b' ');
            }
            put_usize(b, body.len());
            b.extend_from_slice(b"\r\n");
            b.extend_from_slice(body);
            b.extend_from_slice(b"\r\n");
            out.count_out(body.len());
            if let Some(reply) = msg.reply {
                client.note_reply(reply);
            }
            let stall = out.stall_if_behind();
            drop(out);
            if wake {
                flush.add(client);
            }
            if stall {
                flush.stall_on(client);
            }
            if verdict == Delivery::DeliverLast {
                hooks.auto_unsubscribe(sub);
            }
            Some(body.len())
        }
        Queued::SlowConsumer => {
            drop(out);
            hooks.slow_consumer(client);
            None
        }
        Queued::Closed => None,
    }
}

/// Deliver to every plain subscriber and one member of each queue group,
/// cluster-wide. Local subscribers get `MSG`/`HMSG`; each route peer with
/// interest gets at most one `RMSG`/`HMSG` naming the queue groups it was
/// chosen for. `account` names the account on the wire. Returns how many
/// deliveries were queued and their total size.
#[allow(clippy::too_many_arguments)]
pub fn deliver_to_match(
    result: &MatchResult,
    msg: &Msg<'_>,
    account: &[u8],
    origin: Origin<'_>,
    rng: &mut QueueRng,
    flush: &mut FlushSet,
    fanout: &mut RouteFanout,
    hooks: &dyn DeliverHooks,
) -> (usize, usize) {
    let (mut delivered, mut bytes) = (0, 0);
    let from_route = matches!(origin, Origin::Route { .. } | Origin::Import);
    let skip_own = match origin {
        Origin::Client { cid, echo } if !echo => Some(cid),
        _ => None,
    };
    fanout.clear();
    for sub in &result.psubs {
        if sub.client.kind == ConnKind::Route {
            // One hop only: what came from a route never goes back out.
            if !from_route {
                fanout.entry(&sub.client);
            }
            continue;
        }
        if skip_own == Some(sub.client.cid) {
            continue;
        }
        if let Some(n) = deliver_one(sub, msg, flush, hooks) {
            delivered += 1;
            bytes += n;
        }
    }
    for group in &result.qsubs {
        if group.is_empty() {
            continue;
        }
        if let Origin::Route { queues } = origin {
            // Only the groups the sending server picked this server for.
            let name = group[0].queue.as_deref().unwrap_or_default();
            // Separated as the route parser splits them (`RouteOp::Msg`).
            let listed = queues.is_some_and(|q| {
                q.split(|b| matches!(b, b' ' | b'\t' | b'\r'))
                    .any(|n| n == name)
            });
            if listed {
                if let Some(n) = deliver_to_one_local(group, msg, None, rng, flush, hooks) {
                    delivered += 1;
                    bytes += n;
                }
            }
            continue;
        }
        if let Origin::Import = origin {
            if let Some(n) = deliver_to_one_local(group, msg, None, rng, flush, hooks) {
                delivered += 1;
                bytes += n;
            }
            continue;
        }
        // A uniform pick over members, each route counting as many members
        // as it has in the group, so the load spreads evenly cluster-wide.
        let total: u64 = group
            .iter()
            .map(|s| u64::from(s.weight.load(Ordering::Relaxed).max(1)))
            .sum();
        let mut pick = rng.below_u64(total);
        let mut chosen = &group[0];
        for s in group {
            let w = u64::from(s.weight.load(Ordering::Relaxed).max(1));
            if pick < w {
                chosen = s;
                break;
            }
            pick -= w;
        }
        if chosen.client.kind == ConnKind::Route
            && !chosen.is_closed()
            && !chosen.client.is_closed()
        {
            fanout.entry(&chosen.client).push(chosen.clone());
            continue;
        }
        let first = if skip_own == Some(chosen.client.cid) {
            None
        } else {
            Some(chosen)
        };
        if let Some(n) = first
            .and_then(|c| deliver_one(c, msg, flush, hooks))
            .or_else(|| deliver_to_one_local(group, msg, skip_own, rng, flush, hooks))
        {
            delivered += 1;
            bytes += n;
        }
    }
    for (route, queues) in &fanout.targets[..fanout.len] {
        if let Some(n) = deliver_route(route, account, msg, queues, flush, hooks) {
            delivered += 1;
            bytes += n;
        }
    }
    (delivered, bytes)
}

/// Deliver to one local member of a queue group, starting at a random one
/// and moving on past members that cannot take it.
fn deliver_to_one_local(
    group: &[Arc<Subscription>],
    msg: &Msg<'_>,
    skip_own: Option<u64>,
    rng: &mut QueueRng,
    flush: &mut FlushSet,
    hooks: &dyn DeliverHooks,
) -> Option<usize> {
    let n = group.len();
    let start = rng.below(n);
    (0..n).map(|i| &group[(start + i) % n]).find_map(|sub| {
        if sub.client.kind == ConnKind::Route || skip_own == Some(sub.client.cid) {
            return None;
        }
        deliver_one(sub, msg, flush, hooks)
    })
}

/// Queue one `RMSG`/`HMSG` for a route peer:
/// `RMSG <acc> <subject> [reply | + reply q… | | q…] <size>`.
fn deliver_route(
    route: &Arc<ClientShared>,
    account: &[u8],
    msg: &Msg<'_>,
    queues: &[Arc<Subscription>],
    flush: &mut FlushSet,
    hooks: &dyn DeliverHooks,
) -> Option<usize> {
    let with_headers = msg.hdr_len > 0 && route.headers.load(Ordering::Relaxed);
    let (body, hdr_len) = if with_headers {
        (msg.body, msg.hdr_len)
    } else {
        (&msg.body[msg.hdr_len..], 0)
    };
    let queue_len: usize = queues
        .iter()
        .map(|q| q.queue.as_ref().map_or(0, |n| n.len() + 1))
        .sum();
    let total = 64
        + account.len()
        + msg.subject.len()
        + msg.reply.map_or(0, |r| r.len())
        + queue_len
        + body.len();
    let mut out = route.out.lock();
    match out.reserve(total) {
        Queued::Ok { wake } => {
            let b = out.buf_mut();
            b.extend_from_slice(if with_headers { b"HMSG " } else { b"RMSG " });
            b.extend_from_slice(account);
            b.push(b' ');
            b.extend_from_slice(msg.subject);
            b.push(b' ');
            if !queues.is_empty() {
                match msg.reply {
                    Some(r) => {
                        b.extend_from_slice(b"+ ");
                        b.extend_from_slice(r);
                        b.push(b' ');
                    }
                    None => b.extend_from_slice(b"| "),
                }
                for q in queues {
                    if let Some(name) = &q.queue {
                        b.extend_from_slice(name);
                        b.push(b' ');
                    }
                }
            } else if let Some(r) = msg.reply {
                b.extend_from_slice(r);
                b.push(b' ');
            }
            if with_headers {
                put_usize(b, hdr_len);
                b.push(b' ');
            }
            put_usize(b, body.len());
            b.extend_from_slice(b"\r\n");
            b.extend_from_slice(body);
            b.extend_from_slice(b"\r\n");
            out.count_out(body.len());
            // A publisher outrunning the route pauses as for a slow
            // client, rather than the route filling up.
            let stall = out.stall_if_behind();
            drop(out);
            if wake {
                flush.add(route);
            }
            if stall {
                flush.stall_on(route);
            }
            Some(body.len())
        }
        Queued::SlowConsumer => {
            drop(out);
            hooks.slow_consumer(route);
            None
        }
        Queued::Closed => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sublist::Sublist;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder {
        slow: Mutex<Vec<u64>>,
        unsubbed: Mutex<Vec<String>>,
    }

    impl DeliverHooks for Recorder {
        fn slow_consumer(&self, c: &Arc<ClientShared>) {
            self.slow.lock().unwrap().push(c.cid);
        }
        fn auto_unsubscribe(&self, sub: &Arc<Subscription>) {
            self.unsubbed.lock().unwrap().push(sub.sid_str());
        }
    }

    fn drain(c: &ClientShared) -> String {
        let mut v = Vec::new();
        c.out.lock().take(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn formats_msg_and_hmsg_and_strips_headers() {
        let plain = Arc::new(ClientShared::new(1, None, 1 << 20));
        let hdrs = Arc::new(ClientShared::new(2, None, 1 << 20));
        hdrs.headers
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let sl = Sublist::new();
        sl.insert(Arc::new(Subscription::new(
            plain.clone(),
            b"a.*",
            None,
            b"7",
        )))
        .unwrap();
        sl.insert(Arc::new(Subscription::new(
            hdrs.clone(),
            b"a.b",
            None,
            b"9",
        )))
        .unwrap();
        let body = b"NATS/1.0\r\nk: v\r\n\r\nhello";
        let msg = Msg {
            subject: b"a.b",
            reply: Some(b"_INBOX.1"),
            hdr_len: 18,
            body,
        };
        let rec = Recorder::default();
        let mut fs = FlushSet::default();
        let r = sl.match_subject(b"a.b");
        assert_eq!(
            deliver_to_match(
                &r,
                &msg,
                b"$G",
                Origin::Client {
                    cid: 99,
                    echo: true
                },
                &mut QueueRng::new(1),
                &mut fs,
                &mut RouteFanout::default(),
                &rec
            ),
            (2, 5 + 23)
        );
        assert_eq!(drain(&plain), "MSG a.b 7 _INBOX.1 5\r\nhello\r\n");
        assert_eq!(
            drain(&hdrs),
            "HMSG a.b 9 _INBOX.1 18 23\r\nNATS/1.0\r\nk: v\r\n\r\nhello\r\n"
        );
        assert_eq!(fs.clients.len(), 2);
    }

    #[test]
    fn queue_group_gets_exactly_one_and_spreads() {
        let sl = Sublist::new();
        let members: Vec<_> = (0..4)
            .map(|i| Arc::new(ClientShared::new(i, None, 1 << 20)))
            .collect();
        for m in &members {
            sl.insert(Arc::new(Subscription::new(
                m.clone(),
                b"q",
                Some(b"g"),
                b"1",
            )))
            .unwrap();
        }
        let r = sl.match_subject(b"q");
        let rec = Recorder::default();
        let mut rng = QueueRng::new(42);
        let mut fs = FlushSet::default();
        let msg = Msg {
            subject: b"q",
            reply: None,
            hdr_len: 0,
            body: b"x",
        };
        for _ in 0..4000 {
            deliver_to_match(
                &r,
                &msg,
                b"$G",
                Origin::Client {
                    cid: 99,
                    echo: true,
                },
                &mut rng,
                &mut fs,
                &mut RouteFanout::default(),
                &rec,
            );
        }
        let counts: Vec<usize> = members
            .iter()
            .map(|m| drain(m).matches("MSG").count())
            .collect();
        assert_eq!(counts.iter().sum::<usize>(), 4000);
        assert!(counts.iter().all(|&c| c > 800), "uneven spread {counts:?}");
    }

    #[test]
    fn auto_unsubscribe_and_slow_consumer() {
        let c = Arc::new(ClientShared::new(5, None, 40));
        let sub = Arc::new(Subscription::new(c.clone(), b"x", None, b"1"));
        sub.max.store(2, std::sync::atomic::Ordering::Relaxed);
        let rec = Recorder::default();
        let mut fs = FlushSet::default();
        let msg = Msg {
            subject: b"x",
            reply: None,
            hdr_len: 0,
            body: b"12345",
        };
        assert_eq!(deliver_one(&sub, &msg, &mut fs, &rec), Some(5));
        assert_eq!(deliver_one(&sub, &msg, &mut fs, &rec), Some(5));
        assert_eq!(*rec.unsubbed.lock().unwrap(), vec!["1".to_string()]);
        assert_eq!(deliver_one(&sub, &msg, &mut fs, &rec), None, "past max");
        let sub2 = Arc::new(Subscription::new(c.clone(), b"x", None, b"2"));
        assert_eq!(
            deliver_one(&sub2, &msg, &mut fs, &rec),
            None,
            "over the 40-byte pending limit"
        );
        assert_eq!(*rec.slow.lock().unwrap(), vec![5]);
    }

    #[test]
    fn echo_off_skips_own_subs() {
        let me = Arc::new(ClientShared::new(3, None, 1 << 20));
        let sl = Sublist::new();
        sl.insert(Arc::new(Subscription::new(me.clone(), b"e", None, b"1")))
            .unwrap();
        let r = sl.match_subject(b"e");
        let msg = Msg {
            subject: b"e",
            reply: None,
            hdr_len: 0,
            body: b"",
        };
        let rec = Recorder::default();
        let mut fs = FlushSet::default();
        assert_eq!(
            deliver_to_match(
                &r,
                &msg,
                b"$G",
                Origin::Client {
                    cid: 3,
                    echo: false
                },
                &mut QueueRng::new(1),
                &mut fs,
                &mut RouteFanout::default(),
                &rec
            ),
            (0, 0)
        );
        assert_eq!(
            deliver_to_match(
                &r,
                &msg,
                b"$G",
                Origin::Client { cid: 3, echo: true },
                &mut QueueRng::new(1),
                &mut fs,
                &mut RouteFanout::default(),
                &rec
            ),
            (1, 0)
        );
        assert_eq!(drain(&me), "MSG e 1 0\r\n\r\n");
    }
}
