//! Direct gets (`$JS.API.DIRECT.GET.<stream>`, ADR-31): reading a stream's
//! messages without a consumer, answered with the messages themselves (not
//! JSON), as nats-server 2.11+ answers them:
//!
//! - one message by `seq`, `last_by_subj`, `next_by_subj` or `start_time`;
//! - a `batch` of them, each with `Nats-Num-Pending` and
//!   `Nats-Last-Sequence`, then a `204 EOB` status;
//! - `multi_last`: the last message of every subject matching some filters
//!   (a page showing the current score of every match), as of `up_to_seq`
//!   or `up_to_time`, then an EOB that also says `Nats-UpTo-Sequence`;
//! - `$JS.API.DIRECT.GET.<stream>.<subject>`: the last message on a subject.
//!
//! Problems are status messages with nats-server's words: `408 Empty
//! Request`, `408 Malformed Request`, `408 Bad Request`, `404 Message Not
//! Found`, `404 No Results`, `413 Too Many Results`, `412 Required Api
//! Level`.
//!
//! - [`request`]: decoding and checking the request body.
//! - [`read`]: walking the store (under the stream's lock).
//! - [`replies`]: the bytes of each reply.

mod read;
mod replies;
pub(super) mod request;

use tracing::debug;

use super::headers;
use super::types::Storage;
use super::JsAccount;
use crate::internal::OwnedMsg;
use crate::server::Server;
use read::{Progress, SeqRead, Target};
use replies::Replies;
use request::Request;

/// The header a client sets to refuse servers below an API level.
const REQUIRED_API_LEVEL: &str = "Nats-Required-Api-Level";

/// Answer a direct get on `stream`; `subject` is what follows the stream's
/// name in the request subject (empty for the JSON form). The answer goes
/// to `m`'s `reply`.
pub(crate) fn serve(
    acc: &JsAccount,
    server: &Server,
    stream: &str,
    subject: &[&str],
    reply: &str,
    m: &OwnedMsg,
) {
    let send = |hdr: &[u8], payload: &[u8]| {
        acc.client.publish(server, reply, None, hdr, payload);
    };
    let found = acc.stream(stream).and_then(|s| {
        let inner = s.inner.lock();
        let file_store = inner.config.storage == Storage::File;
        let direct = inner.config.allow_direct;
        drop(inner);
        direct.then_some((s, file_store))
    });
    // nats-server subscribes only streams that allow direct gets: anything
    // else finds no responder.
    let Some((s, file_store)) = found else {
        send(&no_responders(&m.subject), b"");
        return;
    };
    if requires_newer_api(&m.headers) {
        send(&headers::build(Some((412, "Required Api Level")), &[]), b"");
        return;
    }
    let parsed = if subject.is_empty() {
        Request::from_body(&m.payload)
    } else {
        Request::last_for(&subject.join("."), &m.payload)
    };
    let req = match parsed {
        Ok(req) => req,
        Err(refusal) => {
            debug!("direct get {:?}: {}", m.subject, refusal.description());
            send(
                &headers::build(Some((408, refusal.description())), &[]),
                b"",
            );
            return;
        }
    };
    let max_pending = i64::try_from(server.opts().max_pending).unwrap_or(i64::MAX);
    let target = Target {
        stream: &s.name,
        file_store,
        max_pending,
    };
    let mut out = Replies::default();
    let publish = |out: &Replies| {
        for (hdr, payload) in out.iter() {
            send(hdr, payload);
        }
    };
    if !req.multi_last.is_empty() {
        read::multi_last(&*s.inner.lock().store, &req, &target, &mut out);
        publish(&out);
        return;
    }
    let mut read = SeqRead::new(&req, &target);
    loop {
        // The lock is held per chunk; replies go out between chunks.
        let progress = read.fill(&*s.inner.lock().store, &req, &target, &mut out);
        publish(&out);
        out.clear();
        if progress == Progress::Done {
            return;
        }
    }
}

/// nats-server's no-responders status for a request nobody serves.
pub(crate) fn no_responders(subject: &str) -> Vec<u8> {
    headers::build(Some((503, "")), &[("Nats-Subject", subject)])
}

/// Whether the request demands a JetStream API level above Tribune's
/// (a level that is not a number counts as too high, as in nats-server).
fn requires_newer_api(hdr: &[u8]) -> bool {
    match headers::get(hdr, REQUIRED_API_LEVEL) {
        None | Some("") => false,
        Some(level) => level
            .parse::<i64>()
            .map_or(true, |l| l > i64::from(super::api::API_LEVEL)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_level_and_no_responders() {
        let h = |v: &str| format!("NATS/1.0\r\n{REQUIRED_API_LEVEL}: {v}\r\n\r\n");
        assert!(!requires_newer_api(b""));
        assert!(!requires_newer_api(h("1").as_bytes()));
        assert!(!requires_newer_api(h("0").as_bytes()));
        assert!(requires_newer_api(h("99").as_bytes()));
        assert!(requires_newer_api(h("x").as_bytes()));
        assert_eq!(
            no_responders("$JS.API.DIRECT.GET.S"),
            b"NATS/1.0 503\r\nNats-Subject: $JS.API.DIRECT.GET.S\r\n\r\n"
        );
    }
}
