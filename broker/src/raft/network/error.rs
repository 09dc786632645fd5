//! Transport failures, as openraft sees them inside `Unreachable` and
//! `NetworkError`.

use std::sync::Arc;

use super::subject::Op;
use super::wire::{DecodeError, Failure};

/// Why a request failed below Raft.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("raft {op} to {target:016x} for group {group}: {failure}")]
    Refused {
        op: Op,
        target: u64,
        group: Arc<str>,
        failure: Failure,
    },
    #[error("raft {op} to {target:016x} for group {group}: undecodable answer: {error}")]
    BadReply {
        op: Op,
        target: u64,
        group: Arc<str>,
        error: DecodeError,
    },
    #[error("raft {op} for group {group}: cannot encode the request: {error}")]
    Encode {
        op: Op,
        group: Arc<str>,
        error: postcard::Error,
    },
    #[error("raft {op} for group {group}: {size} bytes exceed max_message {max}")]
    TooLarge {
        op: Op,
        group: Arc<str>,
        size: usize,
        max: usize,
    },
    #[error("raft {op} to {target:016x} for group {group}: the answer was lost")]
    Lost {
        op: Op,
        target: u64,
        group: Arc<str>,
    },
}
