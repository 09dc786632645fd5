//! The `$JS.API.INFO` answer (nats-server's `JetStreamAccountStats`): the
//! account's usage, reservations, limits and API counters, with the fields
//! in nats-server's order so byte-level comparisons and picky clients see
//! the same document.

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::cluster::usage::ApiCounts;
use super::types::Storage;
use super::JsAccount;

/// The JetStream API level Tribune implements (`api.level` of
/// `$JS.API.INFO` and `/jsz`): nats-server 2.11's, the first numbered one.
/// Clients switch features on this number, so it names only what Tribune
/// serves, not the level of the nats-server release it is compared with.
pub(crate) const API_LEVEL: u32 = 1;

/// An account's JetStream limits (`JetStreamAccountLimits`); -1 is
/// unlimited, as nats-server writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AccountLimits {
    pub max_memory: i64,
    pub max_storage: i64,
    pub max_streams: i64,
    pub max_consumers: i64,
    pub max_ack_pending: i64,
    pub memory_max_stream_bytes: i64,
    pub storage_max_stream_bytes: i64,
    pub max_bytes_required: bool,
}

impl Default for AccountLimits {
    fn default() -> Self {
        AccountLimits {
            max_memory: -1,
            max_storage: -1,
            max_streams: -1,
            max_consumers: -1,
            max_ack_pending: -1,
            memory_max_stream_bytes: -1,
            storage_max_stream_bytes: -1,
            max_bytes_required: false,
        }
    }
}

impl AccountLimits {
    /// No storage of either kind: nothing more can be created or stored
    /// (a stream without `max_bytes` still reserves a byte).
    pub fn nothing() -> Self {
        AccountLimits {
            max_memory: 0,
            max_storage: 0,
            ..Default::default()
        }
    }
}

/// `api` of the answer (`JetStreamAPIStats`; `inflight` is omitted when
/// zero there, and Tribune serves an account's requests one at a time).
#[derive(Debug, Serialize)]
struct ApiStats {
    level: u32,
    total: u64,
    errors: u64,
}

#[derive(Debug, Serialize)]
struct AccountInfo {
    memory: u64,
    storage: u64,
    reserved_memory: u64,
    reserved_storage: u64,
    streams: usize,
    consumers: usize,
    limits: AccountLimits,
    api: ApiStats,
}

/// The body of an `account_info_response` for `acc`, read now: as in
/// nats-server, the request being answered is counted only once the answer
/// is sent, so it does not count itself. `remote` is what the domain's
/// other servers last reported for the account (zero on a server of its
/// own).
pub(crate) fn body(acc: &JsAccount, limits: AccountLimits, remote: ApiCounts) -> impl Serialize {
    let u = acc.usage();
    let (reserved_memory, reserved_storage) = reserved(acc);
    AccountInfo {
        memory: u.memory,
        storage: u.storage,
        reserved_memory,
        reserved_storage,
        streams: u.streams,
        consumers: u.consumers,
        limits,
        api: ApiStats {
            level: API_LEVEL,
            total: acc
                .api_total
                .load(Ordering::Relaxed)
                .saturating_add(remote.total),
            errors: acc
                .api_errors
                .load(Ordering::Relaxed)
                .saturating_add(remote.errors),
        },
    }
}

/// Bytes the account's streams reserve (their `max_bytes`, where set), per
/// storage type: nats-server's `reservedStorage`.
fn reserved(acc: &JsAccount) -> (u64, u64) {
    let (mut mem, mut file) = (0u64, 0u64);
    for s in acc.streams.read().values() {
        let c = s.config();
        if c.max_bytes > 0 {
            let n = c.max_bytes as u64;
            match c.storage {
                Storage::Memory => mem = mem.saturating_add(n),
                Storage::File => file = file.saturating_add(n),
            }
        }
    }
    (mem, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_in_nats_server_order() {
        let info = AccountInfo {
            memory: 1,
            storage: 2,
            reserved_memory: 3,
            reserved_storage: 4,
            streams: 5,
            consumers: 6,
            limits: AccountLimits::default(),
            api: ApiStats {
                level: API_LEVEL,
                total: 7,
                errors: 8,
            },
        };
        assert_eq!(
            serde_json::to_string(&info).unwrap(),
            "{\"memory\":1,\"storage\":2,\"reserved_memory\":3,\"reserved_storage\":4,\
             \"streams\":5,\"consumers\":6,\"limits\":{\"max_memory\":-1,\"max_storage\":-1,\
             \"max_streams\":-1,\"max_consumers\":-1,\"max_ack_pending\":-1,\
             \"memory_max_stream_bytes\":-1,\"storage_max_stream_bytes\":-1,\
             \"max_bytes_required\":false},\"api\":{\"level\":1,\"total\":7,\"errors\":8}}"
        );
    }
}
