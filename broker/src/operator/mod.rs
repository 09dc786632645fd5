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

pub mod resolver;
pub mod times;
pub mod user;
pub mod verify;

use std::sync::Arc;

use tribune_auth::jwt::AccountClaims;

pub use resolver::{MemoryResolver, Resolver};

use crate::auth::claims::permissions_of;
use crate::auth::{Identity, Login};
use crate::limits::{AccountLimits, ConnLimits, Limit};
use crate::options::{AccountConfig, OperatorOptions};

/// What the server trusts in operator mode; built once at start.
#[derive(Debug, Clone)]
pub struct Trust {
    resolver: Arc<dyn Resolver>,
}

impl Trust {
    /// The memory resolver over the configured preloads.
    pub fn from_options(opts: &OperatorOptions) -> Trust {
        Trust::with_resolver(Arc::new(MemoryResolver::new(
            &opts.trusted_keys,
            &opts.preload,
        )))
    }

    /// Any resolver (a directory resolver kept up to date over
    /// `$SYS.REQ.CLAIMS.UPDATE` plugs in here).
    pub fn with_resolver(resolver: Arc<dyn Resolver>) -> Trust {
        Trust { resolver }
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
        ..Default::default()
    }
}
