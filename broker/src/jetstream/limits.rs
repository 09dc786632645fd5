//! An account's JetStream limits (`accounts { A { jetstream { ... } } }`)
//! and the server's (`jetstream { max_memory_store, max_file_store }`),
//! checked where nats-server checks them on a server of its own: stream
//! create and update (stream count, `max_bytes` rules, and the bytes the
//! streams reserve with their `max_bytes`) and consumer create (consumers
//! per stream). The errors are nats-server's.
//!
//! As in nats-server, a stream without `max_bytes` reserves one byte, so
//! the reservation check stops creating streams once a limit is taken by
//! reservations. What streams actually store is checked on publish with a
//! [`StoreBudget`]: a message that would take the account past its
//! `max_mem`/`max_file` is refused (10002), and while the server is over
//! its `max_memory_store`/`max_file_store` every publish of that storage
//! is (10023).

use super::consumer_limits::ConsumerLimits;
use super::errors::{self, ApiError};
use super::store::{file_store_msg_size, mem_store_msg_size};
use super::types::{AckPolicy, ConsumerConfig, Storage, StreamConfig};
use super::{JetStream, JsAccount};

/// The account's limit for this storage type (negative: none).
fn account_limit(acc: &JsAccount, storage: Storage) -> i64 {
    match storage {
        Storage::Memory => acc.limits().max_memory,
        Storage::File => acc.limits().max_storage,
    }
}

fn exceeded(storage: Storage) -> ApiError {
    match storage {
        Storage::Memory => errors::memory_resources_exceeded(),
        Storage::File => errors::storage_resources_exceeded(),
    }
}

/// Bytes reserved with `max_bytes` by the account's streams of `storage`,
/// leaving out the stream named `except` (the one being updated).
pub(crate) fn reserved(acc: &JsAccount, storage: Storage, except: Option<&str>) -> i64 {
    acc.streams
        .read()
        .values()
        .filter(|s| except != Some(s.name.as_str()))
        .map(|s| s.config())
        .filter(|c| c.storage == storage && c.max_bytes > 0)
        .fold(0i64, |sum, c| sum.saturating_add(c.max_bytes))
}

/// nats-server's `checkBytesLimits` test: may `add` bytes join `current`
/// under `limit` (negative: unlimited)?
fn fits(limit: i64, current: i64, add: i64) -> bool {
    limit < 0 || (current <= limit && add <= limit - current)
}

/// The `max_bytes` rules of the account (`maxBytesLimits`): checked with
/// the stream's configuration, on create and update.
pub(crate) fn check_max_bytes(acc: &JsAccount, cfg: &StreamConfig) -> Result<(), ApiError> {
    let l = &acc.limits();
    let per_stream = match cfg.storage {
        Storage::Memory => l.memory_max_stream_bytes,
        Storage::File => l.storage_max_stream_bytes,
    };
    if l.max_bytes_required && cfg.max_bytes <= 0 {
        return Err(errors::stream_max_bytes_required());
    }
    if per_stream > 0 && cfg.max_bytes > per_stream {
        return Err(errors::stream_max_stream_bytes_exceeded());
    }
    Ok(())
}

/// Stream create (`jsNonClusteredStreamLimitsCheck`): the stream count,
/// then the bytes it reserves against the account and the server.
pub(crate) fn check_stream_create(
    js: Option<&JetStream>,
    acc: &JsAccount,
    cfg: &StreamConfig,
) -> Result<(), ApiError> {
    // The `max_bytes` rules belong to the configuration check, which
    // nats-server runs first (`checkStreamCfg`).
    check_max_bytes(acc, cfg)?;
    // A stream of the same name is not counted: creating it again with the
    // same configuration is an idempotent success in nats-server.
    let max_streams = acc.limits().max_streams;
    let others = acc
        .streams
        .read()
        .keys()
        .filter(|n| **n != cfg.name)
        .count();
    if max_streams > 0 && others as i64 >= max_streams {
        return Err(errors::max_streams());
    }
    // No max_bytes still takes a byte.
    let add = if cfg.max_bytes < 0 { 1 } else { cfg.max_bytes };
    check_bytes(js, acc, cfg, add, 0)
}

/// Stream update: only growth of `max_bytes` needs room; the stream's own
/// current reservation is not counted twice.
pub(crate) fn check_stream_update(
    js: Option<&JetStream>,
    acc: &JsAccount,
    old: &StreamConfig,
    cfg: &StreamConfig,
) -> Result<(), ApiError> {
    check_max_bytes(acc, cfg)?;
    let new = cfg.max_bytes.max(0);
    let diff = if cfg.max_bytes == old.max_bytes {
        0
    } else {
        (new - old.max_bytes.max(0)).max(0)
    };
    check_bytes(js, acc, cfg, diff, new - diff)
}

/// Can `cfg`'s stream reserve `add` more bytes? `own` is what it already
/// holds of its new size; the other streams' reservations (not a stream of
/// the same name) count against the account's limit and, with every
/// account's, against the server's.
fn check_bytes(
    js: Option<&JetStream>,
    acc: &JsAccount,
    cfg: &StreamConfig,
    add: i64,
    own: i64,
) -> Result<(), ApiError> {
    let storage = cfg.storage;
    let except = Some(cfg.name.as_str());
    let current = reserved(acc, storage, except).saturating_add(own);
    if !fits(account_limit(acc, storage), current, add) {
        return Err(exceeded(storage));
    }
    if let Some(js) = js {
        let server_limit = match storage {
            Storage::Memory => js.max_memory,
            Storage::File => js.max_storage,
        };
        if let Some(limit) = server_limit {
            let others: i64 = js
                .accounts
                .lock()
                .values()
                .filter(|a| a.name != acc.name)
                .map(|a| reserved(a, storage, None))
                .fold(0i64, i64::saturating_add);
            if !fits(limit, others.saturating_add(current), add) {
                return Err(exceeded(storage));
            }
        }
    }
    Ok(())
}

/// Stream create in a cluster (`jsClusteredStreamLimitsCheck`), by the
/// meta leader before it proposes: the stream count and the reservations
/// come from the domain's assignments (`others`: the account's other
/// streams), and a replicated stream reserves its `max_bytes` on each
/// replica, as nats-server counts without tiers. Only the account's limits
/// are checked there, as in nats-server.
pub(crate) fn check_clustered_stream_create(
    acc: &JsAccount,
    cfg: &StreamConfig,
    others: &[StreamConfig],
) -> Result<(), ApiError> {
    // The configuration is checked first there (`checkStreamCfg`).
    check_max_bytes(acc, cfg)?;
    let others: Vec<&StreamConfig> = others.iter().filter(|o| o.name != cfg.name).collect();
    let max_streams = acc.limits().max_streams;
    if max_streams > 0 && others.len() as i64 >= max_streams {
        return Err(errors::max_streams());
    }
    let footprint = |c: &StreamConfig, bytes: i64| bytes.saturating_mul(c.num_replicas.max(1));
    let current = others
        .iter()
        .filter(|o| o.storage == cfg.storage && o.max_bytes > 0)
        .fold(0i64, |sum, o| sum.saturating_add(footprint(o, o.max_bytes)));
    let add = footprint(cfg, if cfg.max_bytes < 0 { 1 } else { cfg.max_bytes });
    if !fits(account_limit(acc, cfg.storage), current, add) {
        return Err(exceeded(cfg.storage));
    }
    Ok(())
}

/// Consumer create: at most the stream's `max_consumers`, or the account's
/// when that is lower or the stream sets none.
pub(crate) fn check_consumer_create(
    acc: &JsAccount,
    stream_max: i64,
    existing: usize,
) -> Result<(), ApiError> {
    let account_max = acc.limits().max_consumers;
    let max = if stream_max <= 0 || (account_max > 0 && account_max < stream_max) {
        account_max
    } else {
        stream_max
    };
    if max > 0 && existing as i64 >= max {
        return Err(errors::max_consumers());
    }
    Ok(())
}

/// The server's (`jetstream { limits {} }`) and the account's ceilings on
/// a consumer, applied as nats-server applies them after the stream's
/// `consumer_limits`. `asked` is the request before any default.
///
/// `max_ack_pending`: left unset by the request and the stream, the
/// server default is lowered to the lowest limit; above a limit is 10121.
/// `max_batch` (pull): left unset, it becomes the server's
/// `max_request_batch`; above it is 10125.
pub(crate) fn check_consumer_limits(
    acc: &JsAccount,
    cfg: &mut ConsumerConfig,
    asked: &ConsumerConfig,
    stream: &ConsumerLimits,
) -> Result<(), ApiError> {
    let server = acc.server_limits;
    let account = acc.limits().max_ack_pending;
    if asked.max_ack_pending == 0
        && stream.max_ack_pending == 0
        && cfg.ack_policy != AckPolicy::None
    {
        for limit in [server.max_ack_pending, account] {
            if limit > 0 && cfg.max_ack_pending > limit {
                cfg.max_ack_pending = limit;
            }
        }
    }
    if cfg.is_pull() && cfg.max_batch == 0 && server.max_request_batch > 0 {
        cfg.max_batch = server.max_request_batch;
    }
    if cfg.is_pull() && server.max_request_batch > 0 && cfg.max_batch > server.max_request_batch {
        return Err(ApiError::new(
            400,
            10125,
            format!(
                "consumer max request batch exceeds server limit of {}",
                server.max_request_batch
            ),
        ));
    }
    for limit in [server.max_ack_pending, account] {
        if limit > 0 && cfg.max_ack_pending > limit {
            return Err(errors::max_ack_pending_excess(limit));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_as_nats_server() {
        assert!(fits(-1, i64::MAX, i64::MAX));
        assert!(fits(10, 4, 6));
        assert!(!fits(10, 4, 7));
        assert!(!fits(10, 11, 0));
        assert!(fits(0, 0, 0));
        assert!(!fits(0, 0, 1));
    }
}

/// What a stream's publishes may still store, measured once per write
/// batch outside the stream's lock (the measure locks every stream of the
/// account, and of the server when it has a limit) and spent as the batch
/// stores. `None` from [`budget`] when neither the account nor the server
/// limits this storage type: nothing to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreBudget {
    storage: Storage,
    /// The account's limit and what it uses.
    account: Option<(i64, i64)>,
    /// The server's limit and what all accounts use.
    server: Option<(i64, i64)>,
}

/// The budget of `acc`'s streams of `storage` now.
pub(crate) fn budget(
    js: Option<&JetStream>,
    acc: &JsAccount,
    storage: Storage,
) -> Option<StoreBudget> {
    let used = |a: &JsAccount| -> i64 {
        let u = a.usage();
        let bytes = match storage {
            Storage::Memory => u.memory,
            Storage::File => u.storage,
        };
        i64::try_from(bytes).unwrap_or(i64::MAX)
    };
    let limit = account_limit(acc, storage);
    let account = (limit >= 0).then(|| (limit, used(acc)));
    let server = js.and_then(|js| {
        let limit = match storage {
            Storage::Memory => js.max_memory,
            Storage::File => js.max_storage,
        }?;
        let all = js.accounts.lock().values().cloned().collect::<Vec<_>>();
        Some((
            limit,
            all.iter().map(|a| used(a)).fold(0i64, i64::saturating_add),
        ))
    });
    (account.is_some() || server.is_some()).then_some(StoreBudget {
        storage,
        account,
        server,
    })
}

impl StoreBudget {
    /// The bytes a message takes in this storage, as nats-server counts.
    pub(crate) fn size(&self, subject: &str, headers: &[u8], payload: &[u8]) -> i64 {
        let n = match self.storage {
            Storage::Memory => mem_store_msg_size(subject, headers, payload),
            Storage::File => file_store_msg_size(subject, headers, payload),
        };
        i64::try_from(n).unwrap_or(i64::MAX)
    }

    /// The server already uses more than it may (checked before anything
    /// else about a publish, as in nats-server).
    pub(crate) fn check_server(&self) -> Result<(), ApiError> {
        match self.server {
            Some((limit, used)) if used > limit => Err(errors::insufficient_resources()),
            _ => Ok(()),
        }
    }

    /// Would `size` more bytes take the account past its limit?
    pub(crate) fn check_account(&self, size: i64) -> Result<(), ApiError> {
        match self.account {
            Some((limit, used)) if used.saturating_add(size) > limit => {
                Err(errors::account_resources_exceeded())
            }
            _ => Ok(()),
        }
    }

    /// `size` bytes were stored.
    pub(crate) fn spend(&mut self, size: i64) {
        for (_, used) in [&mut self.account, &mut self.server].into_iter().flatten() {
            *used = used.saturating_add(size);
        }
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[test]
    fn the_account_limit_counts_the_message_and_the_server_limit_does_not() {
        let mut b = StoreBudget {
            storage: Storage::File,
            account: Some((100, 60)),
            server: Some((1000, 1000)),
        };
        assert_eq!(b.check_account(40), Ok(()));
        assert_eq!(
            b.check_account(41),
            Err(errors::account_resources_exceeded())
        );
        assert_eq!(b.check_server(), Ok(()), "at the limit is not over it");
        b.spend(1);
        assert_eq!(b.check_server(), Err(errors::insufficient_resources()));
        assert_eq!(
            b.check_account(40),
            Err(errors::account_resources_exceeded())
        );
        let open = StoreBudget {
            storage: Storage::Memory,
            account: None,
            server: None,
        };
        assert_eq!(open.check_account(i64::MAX), Ok(()));
        assert!(open.size("a", b"", b"xy") > 2);
    }
}
