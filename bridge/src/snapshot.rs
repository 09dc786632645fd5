//! The reader's side of the contract: every match's current state at once,
//! then live updates, keeping the newest state per match.
//!
//! [`current_states`] sends one batch direct get (`multi_last`, nats-server
//! 2.11+) to `$JS.API.DIRECT.GET.<stream>` and reads the last message of every
//! matching subject, page by page, all as of one stream sequence.
//! [`Newest`] then decides which live message is news: per subject, only a
//! higher `rev` than the one shown.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::StreamExt;

use crate::payload::MatchMessage;

/// Messages asked for per page.
pub const PAGE: usize = 1000;

/// The last message of every subject matching a filter, as of `up_to_seq`.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub messages: Vec<async_nats::Message>,
    /// The stream sequence the snapshot is consistent with: everything
    /// stored up to it is reflected, nothing after.
    pub up_to_seq: u64,
}

/// Reads the last message of every subject matching `filter` (wildcards
/// allowed) from `stream`, which must have `allow_direct`.
pub async fn current_states(
    client: &async_nats::Client,
    stream: &str,
    filter: &str,
    timeout: Duration,
) -> Result<Snapshot> {
    current_states_paged(client, stream, filter, PAGE, timeout).await
}

/// [`current_states`] with `page` messages per request: the pages after the
/// first ask for the same `up_to_seq`, from after the last sequence received.
pub async fn current_states_paged(
    client: &async_nats::Client,
    stream: &str,
    filter: &str,
    page: usize,
    timeout: Duration,
) -> Result<Snapshot> {
    let api = format!("$JS.API.DIRECT.GET.{stream}");
    let inbox = client.new_inbox();
    let mut replies = client
        .subscribe(inbox.clone())
        .await
        .context("subscribing to the reply inbox")?;
    let mut snap = Snapshot::default();
    let mut from_seq = 0u64;
    loop {
        let mut req = serde_json::json!({"multi_last": [filter], "batch": page.max(1)});
        if snap.up_to_seq > 0 {
            req["up_to_seq"] = snap.up_to_seq.into();
            req["seq"] = from_seq.into();
        }
        client
            .publish_with_reply(api.clone(), inbox.clone(), req.to_string().into())
            .await
            .with_context(|| format!("sending {api}"))?;
        loop {
            let msg = tokio::time::timeout(timeout, replies.next())
                .await
                .with_context(|| format!("{api}: no answer within {timeout:?} (a server before 2.11 answers a batch request with one message only)"))?
                .context("reply subscription closed")?;
            match msg.status.map(u16::from) {
                None => {
                    from_seq = header_u64(&msg, "Nats-Sequence").map_or(from_seq, |s| s + 1);
                    snap.messages.push(msg);
                }
                Some(204) => {
                    if snap.up_to_seq == 0 {
                        snap.up_to_seq = header_u64(&msg, "Nats-UpTo-Sequence").unwrap_or(0);
                    }
                    if header_u64(&msg, "Nats-Num-Pending").unwrap_or(0) == 0 || snap.up_to_seq == 0
                    {
                        return Ok(snap);
                    }
                    break;
                }
                // Nothing matches the filter.
                Some(404) => return Ok(snap),
                Some(503) => bail!("{api}: no responders (no stream {stream}, or allow_direct is off)"),
                Some(code) => bail!(
                    "{api}: status {code} {} (does the server support batch direct get with multi_last?)",
                    msg.description.as_deref().unwrap_or("")
                ),
            }
        }
    }
}

fn header_u64(msg: &async_nats::Message, name: &str) -> Option<u64> {
    msg.headers.as_ref()?.get(name)?.as_str().parse().ok()
}

/// The revision shown per subject: a message is news only with a higher one.
#[derive(Debug, Default)]
pub struct Newest {
    shown: HashMap<String, u64>,
}

impl Newest {
    /// Whether `m` (published on `subject`) is newer than what was shown;
    /// if so it becomes what is shown.
    pub fn accept(&mut self, subject: &str, m: &MatchMessage) -> bool {
        match self.shown.get_mut(subject) {
            Some(rev) if *rev >= m.state.rev => false,
            Some(rev) => {
                *rev = m.state.rev;
                true
            }
            None => {
                self.shown.insert(subject.to_owned(), m.state.rev);
                true
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shown.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::MatchState;

    fn msg(rev: u64) -> MatchMessage {
        let mut state = MatchState::new("football", "m", "p");
        state.rev = rev;
        MatchMessage {
            state,
            changed: vec![],
            added: Default::default(),
        }
    }

    #[test]
    fn only_higher_revisions_are_news() {
        let mut n = Newest::default();
        assert!(n.accept("s.a", &msg(5)));
        assert!(!n.accept("s.a", &msg(5)), "same revision, same state");
        assert!(!n.accept("s.a", &msg(4)), "older");
        assert!(n.accept("s.a", &msg(6)));
        assert!(n.accept("s.b", &msg(1)));
        assert_eq!(n.len(), 2);
    }
}
