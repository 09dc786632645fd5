//! Accounts: isolated subject namespaces, each with its own subscription
//! index. Until multi-account configuration lands (issue 5) every client
//! binds to the global account `$G`, exactly as nats-server does when no
//! accounts are configured.

use std::sync::Arc;

use crate::sublist::Sublist;

/// Name of the default account, as nats-server names it.
pub const GLOBAL_ACCOUNT: &str = "$G";

pub struct Account {
    pub name: String,
    pub sublist: Sublist,
}

impl Account {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Account {
            name: name.to_string(),
            sublist: Sublist::new(),
        })
    }
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("subs", &self.sublist.count())
            .finish()
    }
}
