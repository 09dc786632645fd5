//! Where account JWTs come from. nats-server has several resolvers
//! (`MEMORY`, `URL(...)`, `full`/`cache` directories updated over
//! `$SYS.REQ.CLAIMS.UPDATE`); they answer the same question, so the user
//! checks only see this trait.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::debug;
use tribune_auth::jwt::AccountClaims;

use super::verify;

/// Finds the verified claims of an account by its public key.
pub trait Resolver: Send + Sync + std::fmt::Debug {
    /// The account's claims, already checked against the trusted keys; `None`
    /// for an account that is unknown or not trusted.
    fn account(&self, key: &str) -> Option<Arc<AccountClaims>>;
}

/// `resolver: MEMORY`: the accounts of `resolver_preload`, fixed at start.
#[derive(Debug, Default)]
pub struct MemoryResolver {
    accounts: HashMap<String, Arc<AccountClaims>>,
}

impl MemoryResolver {
    /// Verify every preloaded account JWT against `trusted`. One that does
    /// not verify is left out, and its users are refused, as nats-server
    /// starts and then fails their lookups (the configuration already
    /// warned about it when it was read).
    pub fn new(trusted: &[String], preload: &[(String, String)]) -> MemoryResolver {
        let mut accounts = HashMap::new();
        for (key, token) in preload {
            match verify::account(key, token, trusted) {
                Ok(claims) => {
                    accounts.insert(key.clone(), Arc::new(claims));
                }
                Err(e) => debug!("Preloaded account [{key}] left out: {e}"),
            }
        }
        MemoryResolver { accounts }
    }
}

impl Resolver for MemoryResolver {
    fn account(&self, key: &str) -> Option<Arc<AccountClaims>> {
        self.accounts.get(key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nkeys::KeyPair;
    use tribune_auth::jwt;

    #[test]
    fn only_verified_preloads_are_known() {
        let op = KeyPair::new_operator();
        let good = KeyPair::new_account();
        let bad = KeyPair::new_account();
        let mut g = AccountClaims::new(&good.public_key());
        let mut b = AccountClaims::new(&bad.public_key());
        let preload = vec![
            (good.public_key(), jwt::encode(&mut g, &op).unwrap()),
            (
                bad.public_key(),
                jwt::encode(&mut b, &KeyPair::new_operator()).unwrap(),
            ),
        ];
        let r = MemoryResolver::new(&[op.public_key()], &preload);
        assert!(r.account(&good.public_key()).is_some());
        assert!(r.account(&bad.public_key()).is_none());
        assert!(r.account("ANOTHER").is_none());
    }
}
