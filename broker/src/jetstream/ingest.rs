//! What a stream's writer takes in: a message published on its subjects,
//! or one a mirror copies, which keeps its origin's sequence and time.

use crate::client::{InternalHandler, Msg};
use crate::internal::OwnedMsg;
use crate::subscription::Subscription;

/// A mirrored message's place in its origin: stored at `seq`, with the
/// origin's timestamp `ts` (unix nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct At {
    pub seq: u64,
    pub ts: i64,
}

/// One message for the writer.
#[derive(Debug)]
pub(crate) struct Ingest {
    pub msg: OwnedMsg,
    /// Set for a mirror's messages only.
    pub at: Option<At>,
}

impl Ingest {
    pub fn published(msg: OwnedMsg) -> Ingest {
        Ingest { msg, at: None }
    }
}

/// Feeds what a stream's subscriptions receive to its writer.
pub(crate) struct IngestHandler(pub tokio::sync::mpsc::UnboundedSender<Ingest>);

impl InternalHandler for IngestHandler {
    fn deliver(&self, _sub: &Subscription, msg: &Msg<'_>) {
        let _ = self.0.send(Ingest::published(OwnedMsg::from_msg(msg)));
    }
}
