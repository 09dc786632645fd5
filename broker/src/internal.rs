//! In-process clients: parts of the server (auth callout, JetStream) that
//! subscribe and publish in an account like any connection.
//!
//! Their subscriptions live in the account's sublist and are advertised to
//! the cluster like a client's, so messages published anywhere reach them;
//! what matches is handed to an [`InternalHandler`] instead of a socket.
//! Their publishes go through the same router as a client's, responses to
//! requests made through a service import included.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Result};

use crate::accounts::{Account, ResponseRoute};
use crate::client::{
    deliver_to_match, ClientShared, ConnKind, FlushSet, InternalHandler, Msg, Origin, QueueRng,
    RouteFanout,
};
use crate::server::Server;
use crate::sublist::MatchResult;
use crate::subscription::Subscription;

/// One internal connection bound to one account.
pub struct InternalClient {
    shared: Arc<ClientShared>,
    account: Arc<Account>,
    next_sid: AtomicU64,
}

impl std::fmt::Debug for InternalClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalClient")
            .field("cid", &self.shared.cid)
            .field("account", &self.account.name)
            .finish()
    }
}

impl InternalClient {
    pub fn new(server: &Server, account: Arc<Account>, handler: Arc<dyn InternalHandler>) -> Self {
        let shared = Arc::new(ClientShared::internal(server.next_cid(), handler));
        *shared.account.lock() = Some(account.clone());
        InternalClient {
            shared,
            account,
            next_sid: AtomicU64::new(1),
        }
    }

    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }

    /// Subscribe to `subject` (wildcards allowed), optionally in a queue group.
    pub fn subscribe(
        &self,
        server: &Server,
        subject: &str,
        queue: Option<&str>,
    ) -> Result<Arc<Subscription>> {
        let sid = self.next_sid.fetch_add(1, Ordering::Relaxed).to_string();
        let sub = Arc::new(Subscription::new(
            self.shared.clone(),
            subject.as_bytes(),
            queue.map(str::as_bytes),
            sid.as_bytes(),
        ));
        self.account
            .sublist
            .insert(sub.clone())
            .map_err(|_| anyhow!("invalid subject {subject:?}"))?;
        self.shared
            .subs
            .lock()
            .insert(Box::from(sid.as_bytes()), sub.clone());
        server.local_sub_added(&self.account, &sub);
        Ok(sub)
    }

    pub fn unsubscribe(&self, server: &Server, sub: &Arc<Subscription>) {
        server.remove_subscription(sub);
    }

    /// Remove every subscription, withdrawing them from the cluster too.
    pub fn close(&self, server: &Server) {
        let subs: Vec<Arc<Subscription>> = self.shared.subs.lock().values().cloned().collect();
        for s in &subs {
            server.remove_subscription(s);
        }
    }

    /// Publish a message; `headers` is a full `NATS/1.0` block or empty.
    /// Returns how many deliveries were made (local and route).
    pub fn publish(
        &self,
        server: &Server,
        subject: &str,
        reply: Option<&str>,
        headers: &[u8],
        payload: &[u8],
    ) -> usize {
        self.deliver(server, subject, subject, reply, headers, payload)
    }

    /// Deliver to the subscribers of `to` a message that shows `subject`, as
    /// JetStream delivers a stored message to a consumer's inbox under the
    /// subject it was published on. Route peers get it on `to`, since they
    /// route by the subject on the wire, with `subject` after an `@` in an
    /// ack reply so that they show it too ([`crate::route::js_deliver`]).
    pub fn deliver(
        &self,
        server: &Server,
        to: &str,
        subject: &str,
        reply: Option<&str>,
        headers: &[u8],
        payload: &[u8],
    ) -> usize {
        let cross = self.account.has_cross();
        if cross {
            let ends = headers.is_empty() && payload.is_empty();
            if let Some(resp) = self.account.response_for(to.as_bytes(), ends) {
                return self.respond(server, &resp, to, headers, payload);
            }
        }
        let result = self.account.sublist.match_subject(to.as_bytes());
        if result.is_empty() && !cross {
            return 0;
        }
        let body;
        let body_ref: &[u8] = if headers.is_empty() {
            payload
        } else {
            let mut b = Vec::with_capacity(headers.len() + payload.len());
            b.extend_from_slice(headers);
            b.extend_from_slice(payload);
            body = b;
            &body
        };
        let msg = Msg {
            subject: subject.as_bytes(),
            reply: reply.map(str::as_bytes),
            hdr_len: headers.len(),
            body: body_ref,
        };
        let crossed = if cross {
            self.cross_account(server, to, &msg)
        } else {
            0
        };
        if result.is_empty() {
            return crossed;
        }
        let is_route = |s: &Arc<Subscription>| s.client.kind == ConnKind::Route;
        let has_route =
            result.psubs.iter().any(is_route) || result.qsubs.iter().flatten().any(is_route);
        if to == subject || !has_route {
            return crossed + self.route(server, &result, &msg);
        }
        let (mut local, mut remote) = (MatchResult::default(), MatchResult::default());
        for s in result.psubs {
            if is_route(&s) {
                remote.psubs.push(s)
            } else {
                local.psubs.push(s)
            }
        }
        for g in result.qsubs {
            let (r, l): (Vec<_>, Vec<_>) = g.into_iter().partition(is_route);
            if !l.is_empty() {
                local.qsubs.push(l);
            } else if !r.is_empty() {
                remote.qsubs.push(r);
            }
        }
        let suffixed = msg
            .reply
            .and_then(|r| crate::route::js_deliver::encode_reply(r, msg.subject));
        let on_wire = Msg {
            subject: to.as_bytes(),
            reply: suffixed.as_deref().or(msg.reply),
            ..msg
        };
        crossed + self.route(server, &local, &msg) + self.route(server, &remote, &on_wire)
    }

    /// An internal publish on `to` crossing into other accounts, as a
    /// client's does: into the importers of a stream export (under the
    /// import's subject, or the message's own when it is a JetStream
    /// delivery shown under its stored subject), and to the exporter of
    /// an imported service (the reply mapped so the answer comes back).
    /// A mirror or source fed from another account relies on both.
    fn cross_account(&self, server: &Server, to: &str, msg: &Msg<'_>) -> usize {
        let mut n = 0;
        for (importer, mapped) in self.account.stream_targets(to.as_bytes()) {
            let result = importer.sublist.match_subject(&mapped);
            let shown = if msg.subject == to.as_bytes() {
                &mapped[..]
            } else {
                msg.subject
            };
            let m = Msg {
                subject: shown,
                ..*msg
            };
            // Only on this server (`Import` keeps off the routes): every
            // node applies stream imports itself, as for a client's publish.
            n += self.deliver_as(server, &result, &m, &importer.name, Origin::Import);
        }
        if let Some((exporter, target, policy)) = self.account.service_for(to.as_bytes()) {
            let mapped = msg.reply.map(|r| {
                let mapped = server.response_subject();
                exporter.add_response(mapped.clone(), self.account.clone(), r.to_vec(), policy);
                mapped
            });
            let result = exporter.sublist.match_subject(&target);
            let m = Msg {
                subject: &target,
                reply: mapped.as_deref(),
                ..*msg
            };
            let origin = Origin::Client {
                cid: self.shared.cid,
                echo: true,
            };
            n += self.deliver_as(server, &result, &m, &exporter.name, origin);
        }
        n
    }

    /// A response to a request that came in through a service import (this
    /// server's JetStream answering another account, say): delivered into
    /// the importing account on the requester's reply subject, as a client's
    /// response is. `mapped` is the `_R_.` subject it was published on.
    fn respond(
        &self,
        server: &Server,
        resp: &ResponseRoute,
        mapped: &str,
        headers: &[u8],
        payload: &[u8],
    ) -> usize {
        let result = resp.importer.sublist.match_subject(&resp.reply);
        if result.is_empty() {
            // The requester is gone: nothing more goes back.
            self.account.forget_response(mapped.as_bytes());
            return 0;
        }
        let body = [headers, payload].concat();
        let msg = Msg {
            subject: &resp.reply,
            reply: None,
            hdr_len: headers.len(),
            body: &body,
        };
        self.deliver_as(server, &result, &msg, &resp.importer.name, Origin::Import)
    }

    fn route(&self, server: &Server, result: &MatchResult, msg: &Msg<'_>) -> usize {
        let origin = Origin::Client {
            cid: self.shared.cid,
            echo: true,
        };
        self.deliver_as(server, result, msg, &self.account.name, origin)
    }

    /// Deliver `msg` to `result`'s subscribers in `account`.
    fn deliver_as(
        &self,
        server: &Server,
        result: &MatchResult,
        msg: &Msg<'_>,
        account: &str,
        origin: Origin<'_>,
    ) -> usize {
        if result.is_empty() {
            return 0;
        }
        let mut flush = FlushSet::default();
        let (delivered, bytes) = deliver_to_match(
            result,
            msg,
            account.as_bytes(),
            origin,
            &mut QueueRng::new(rand::random()),
            &mut flush,
            &mut RouteFanout::default(),
            server,
        );
        flush.flush();
        server.count_outbound(delivered as u64, bytes as u64);
        delivered
    }
}

impl Drop for InternalClient {
    fn drop(&mut self) {
        // Nothing may deliver to a dropped handler's owner: close the subs.
        let subs: Vec<Arc<Subscription>> =
            self.shared.subs.lock().drain().map(|(_, s)| s).collect();
        for s in &subs {
            s.close();
        }
        self.account.sublist.remove_batch(&subs);
    }
}

/// A handler that copies each message into a channel, for services that
/// process requests on their own task.
#[derive(Debug, Clone)]
pub struct OwnedMsg {
    pub subject: String,
    pub reply: Option<String>,
    /// The header block (`NATS/1.0 ...`), empty when there is none.
    pub headers: bytes::Bytes,
    pub payload: bytes::Bytes,
}

impl OwnedMsg {
    pub fn from_msg(msg: &Msg<'_>) -> Self {
        let body = bytes::Bytes::copy_from_slice(msg.body);
        OwnedMsg {
            subject: String::from_utf8_lossy(msg.subject).into_owned(),
            reply: msg.reply.map(|r| String::from_utf8_lossy(r).into_owned()),
            headers: body.slice(..msg.hdr_len),
            payload: body.slice(msg.hdr_len..),
        }
    }
}

/// Sends every delivered message, copied, to an unbounded channel. The
/// receiving service is expected to keep up; the channel only absorbs bursts.
pub struct ChannelHandler(pub tokio::sync::mpsc::UnboundedSender<OwnedMsg>);

impl InternalHandler for ChannelHandler {
    fn deliver(&self, _sub: &Subscription, msg: &Msg<'_>) {
        let _ = self.0.send(OwnedMsg::from_msg(msg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Options;

    #[tokio::test]
    async fn subscribe_receive_publish_unsubscribe() {
        let server = Server::new(Options::default());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let ic = InternalClient::new(
            &server,
            server.global_account(),
            Arc::new(ChannelHandler(tx)),
        );
        let sub = ic.subscribe(&server, "svc.*", None).unwrap();
        assert_eq!(
            ic.publish(
                &server,
                "svc.a",
                Some("r.1"),
                b"NATS/1.0\r\nk: v\r\n\r\n",
                b"hi"
            ),
            1
        );
        let m = rx.recv().await.unwrap();
        assert_eq!(m.subject, "svc.a");
        assert_eq!(m.reply.as_deref(), Some("r.1"));
        assert_eq!(&m.headers[..], b"NATS/1.0\r\nk: v\r\n\r\n");
        assert_eq!(&m.payload[..], b"hi");
        ic.unsubscribe(&server, &sub);
        assert_eq!(ic.publish(&server, "svc.a", None, b"", b"x"), 0);
        assert!(ic.subscribe(&server, "bad..subject", None).is_err());
    }
}
