//! Operator mode: decentralized authentication with NATS JWTs, as
//! nats-server does it when `operator` is configured.
//!
//! An operator JWT names the keys trusted to sign accounts; a resolver
//! holds the account JWTs those keys signed; a client presents a user JWT
//! signed by its account (or one of the account's signing keys) and signs
//! the server's nonce with the user's key. The account a user lands in is
//! named by its public key, as in nats-server.
//!
//! This module depends on nothing above the auth layer: the server hands it
//! the resolver and asks [`Trust::authenticate`] for an identity; accounts
//! exist because the configuration turned every verified preloaded account
//! JWT into an account configuration ([`account_config`]).

pub mod links;
pub mod resolver;
pub mod store;
pub mod times;
pub mod user;
pub mod verify;

use std::sync::Arc;

use tribune_auth::jwt::{AccountClaims, JetStreamLimits, OperatorLimits};

pub use resolver::{DirResolver, MemoryResolver, Refusal, Resolver};

use crate::auth::claims::permissions_of;
use crate::auth::{Identity, Login};
use crate::jetstream::account_info::AccountLimits as JsAccountLimits;
use crate::limits::{AccountLimits, ConnLimits, Limit};
use crate::options::{AccountConfig, OperatorOptions, ResolverOptions};

/// What the server trusts in operator mode; built once at start.
#[derive(Debug, Clone)]
pub struct Trust {
    resolver: Arc<dyn Resolver>,
    /// The directory resolver, when configured: the system account's
    /// claims service changes it at run time.
    dir: Option<Arc<DirResolver>>,
}

impl Trust {
    /// The configured resolver: memory over the preloads, or the
    /// directory (created if missing, preloads stored into it).
    pub fn from_options(opts: &OperatorOptions) -> std::io::Result<Trust> {
        Ok(match &opts.resolver {
            ResolverOptions::Memory => Trust::with_resolver(Arc::new(MemoryResolver::new(
                &opts.trusted_keys,
                &opts.preload,
            ))),
            ResolverOptions::Full(full) => {
                let dir = Arc::new(DirResolver::open(
                    &full.dir,
                    full.delete,
                    full.limit,
                    &opts.trusted_keys,
                    &opts.preload,
                )?);
                Trust {
                    resolver: dir.clone(),
                    dir: Some(dir),
                }
            }
        })
    }

    /// Any resolver that does not change at run time.
    pub fn with_resolver(resolver: Arc<dyn Resolver>) -> Trust {
        Trust {
            resolver,
            dir: None,
        }
    }

    /// The directory resolver, when that is the one configured.
    pub fn dir(&self) -> Option<&Arc<DirResolver>> {
        self.dir.as_ref()
    }

    /// An account's verified claims, if the resolver knows it.
    pub fn account(&self, key: &str) -> Option<Arc<AccountClaims>> {
        self.resolver.account(key)
    }

    /// Admit a client by its user JWT, or say why not (for the debug log;
    /// the client is told `Authorization Violation`).
    pub fn authenticate(&self, login: Login<'_>) -> Result<Identity, String> {
        user::authenticate(self.resolver.as_ref(), login)
    }
}

/// The account configuration a verified account JWT stands for: named by
/// its public key, with its limits, default permissions and JetStream
/// (on when the JWT grants storage and the server runs JetStream).
pub fn account_config(claims: &AccountClaims) -> AccountConfig {
    let l = &claims.nats.limits;
    AccountConfig {
        name: claims.std.sub.clone(),
        jetstream: Some(l.jetstream_enabled()),
        jetstream_limits: jetstream_limits(l),
        default_permissions: claims
            .nats
            .default_permissions
            .as_ref()
            .and_then(|p| permissions_of(&p.pub_, &p.sub, p.resp)),
        limits: AccountLimits {
            max_connections: Limit::from_jwt(l.conn),
            conn: ConnLimits {
                subs: Limit::from_jwt(l.subs),
                payload: Limit::from_jwt(l.payload),
            },
        },
        signing_keys: claims
            .nats
            .signing_keys
            .iter()
            .map(|k| k.key().to_string())
            .collect(),
        exports: claims
            .nats
            .exports
            .iter()
            .filter_map(|e| links::export(&claims.std.sub, e))
            .collect(),
        imports: claims
            .nats
            .imports
            .iter()
            .filter_map(|i| links::import(&claims.std.sub, i))
            .collect(),
    }
}

/// The JetStream limits an account JWT sets, as nats-server reads them:
/// the flat limits when they grant storage, else the tiers'. Tribune has
/// no per-tier accounting, so tiers apply flat, each limit the strictest
/// any tier sets: never more than nats-server would allow.
fn jetstream_limits(l: &OperatorLimits) -> Option<JsAccountLimits> {
    if !l.jetstream_enabled() {
        return None;
    }
    if l.jetstream.mem_storage != 0 || l.jetstream.disk_storage != 0 {
        return Some(from_jwt(&l.jetstream));
    }
    l.tiered_limits
        .values()
        .map(from_jwt)
        .reduce(|a, b| JsAccountLimits {
            max_memory: strictest_bytes(a.max_memory, b.max_memory),
            max_storage: strictest_bytes(a.max_storage, b.max_storage),
            max_streams: strictest(a.max_streams, b.max_streams),
            max_consumers: strictest(a.max_consumers, b.max_consumers),
            max_ack_pending: strictest(a.max_ack_pending, b.max_ack_pending),
            memory_max_stream_bytes: strictest(
                a.memory_max_stream_bytes,
                b.memory_max_stream_bytes,
            ),
            storage_max_stream_bytes: strictest(
                a.storage_max_stream_bytes,
                b.storage_max_stream_bytes,
            ),
            max_bytes_required: a.max_bytes_required || b.max_bytes_required,
        })
}

/// One set of JWT limits: storage and counts as written (-1 and 0 both
/// leave them open), the per-stream and ack ceilings with 0 read as -1,
/// as nats-server does.
fn from_jwt(j: &JetStreamLimits) -> JsAccountLimits {
    let unlimited = |v: i64| if v > 0 { v } else { -1 };
    JsAccountLimits {
        max_memory: j.mem_storage,
        max_storage: j.disk_storage,
        max_streams: j.streams,
        max_consumers: j.consumer,
        max_ack_pending: unlimited(j.max_ack_pending),
        memory_max_stream_bytes: unlimited(j.mem_max_stream_bytes),
        storage_max_stream_bytes: unlimited(j.disk_max_stream_bytes),
        max_bytes_required: j.max_bytes_required,
    }
}

/// The stricter of two storage limits: any value from 0 up is a limit (0
/// allows no storage of that kind), a negative one none.
fn strictest_bytes(a: i64, b: i64) -> i64 {
    match (a >= 0, b >= 0) {
        (true, true) => a.min(b),
        (true, false) => a,
        (false, true) => b,
        (false, false) => -1,
    }
}

/// The stricter of two count limits, where nats-server reads anything
/// below 1 as none.
fn strictest(a: i64, b: i64) -> i64 {
    match (a > 0, b > 0) {
        (true, true) => a.min(b),
        (true, false) => a,
        (false, true) => b,
        (false, false) => a.max(b),
    }
}

#[cfg(test)]
mod limits_tests {
    use super::*;

    #[test]
    fn flat_limits_read_as_nats_server_reads_them() {
        let mut l = OperatorLimits::default();
        assert_eq!(jetstream_limits(&l), None);
        l.jetstream = JetStreamLimits {
            disk_storage: 1200,
            mem_storage: -1,
            streams: 2,
            consumer: 0,
            max_ack_pending: 0,
            ..Default::default()
        };
        let j = jetstream_limits(&l).unwrap();
        assert_eq!((j.max_storage, j.max_memory, j.max_streams), (1200, -1, 2));
        assert_eq!((j.max_consumers, j.max_ack_pending), (0, -1));
        assert_eq!(j.storage_max_stream_bytes, -1);
    }

    #[test]
    fn tiers_apply_flat_at_their_strictest() {
        let mut l = OperatorLimits::default();
        l.tiered_limits.insert(
            "R1".into(),
            JetStreamLimits {
                disk_storage: 5000,
                mem_storage: -1,
                streams: 10,
                ..Default::default()
            },
        );
        l.tiered_limits.insert(
            "R3".into(),
            JetStreamLimits {
                disk_storage: 3000,
                streams: -1,
                max_ack_pending: 7,
                ..Default::default()
            },
        );
        let j = jetstream_limits(&l).unwrap();
        assert_eq!((j.max_storage, j.max_streams), (3000, 10));
        assert_eq!(j.max_memory, 0, "R3 allows no memory storage");
        assert_eq!(j.max_ack_pending, 7);
    }
}
