//! Operator mode's life cycle in the server: the resolver set up at start,
//! its accounts made real, and account JWT changes applied to the
//! accounts and the clients bound to them.
//!
//! The claims service (`crate::system::claims`) decides what changed; this
//! is where the server acts on it, since only the server holds the account
//! map, the client list and JetStream.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use tracing::{debug, info, warn};
use tribune_auth::jwt::AccountClaims;

use super::Server;
use crate::accounts::Account;
use crate::client::{ClientShared, ClosedState, ConnKind};
use crate::operator::{self, Trust};
use crate::options::{AccountConfig, Options, ResolverOptions};
use crate::protocol::errors;

impl Server {
    /// Open the configured resolver and create an account for every JWT it
    /// holds, before JetStream starts so that they get it too.
    pub(super) fn start_trust(self: &Arc<Self>, opts: &Options) -> Result<()> {
        let Some(op) = &opts.operator else {
            return Ok(());
        };
        let trust = Trust::from_options(op).with_context(|| match &op.resolver {
            ResolverOptions::Full(f) => format!("could not open resolver dir {}", f.dir.display()),
            ResolverOptions::Memory => "could not set up the memory resolver".to_string(),
        })?;
        if let Some(dir) = trust.dir() {
            info!(
                "Managing all jwt in exclusive directory {}",
                dir.dir().display()
            );
            for key in dir.keys() {
                if let Some(claims) = trust.account(&key) {
                    // A preload made the account already: the directory's
                    // JWT (maybe pushed since) is the one in force.
                    let cfg = operator::account_config(&claims);
                    let (acc, created) = self.register_account(&cfg);
                    if !created {
                        acc.reconfigure(&cfg);
                    }
                }
            }
        }
        let _ = self.trust.set(trust);
        if matches!(op.resolver, ResolverOptions::Full(_)) {
            self.relink_operator_accounts();
        }
        Ok(())
    }

    /// Link every operator-mode account's JWT imports anew (an account
    /// JWT came, changed or went), and bring the interest this server
    /// advertises to its routes for stream imports in line with the new
    /// links: each local subscription's upstream interest is counted
    /// before and after, and only the difference is sent.
    fn relink_operator_accounts(self: &Arc<Self>) {
        let Some(trust) = self.trust() else {
            return;
        };
        let accounts = self.accounts.read().clone();
        let configs: Vec<AccountConfig> = accounts
            .keys()
            .filter_map(|k| trust.account(k))
            .map(|c| operator::account_config(&c))
            .collect();
        self.relink_when_an_activation_expires(&configs);
        let clustered = self.opts().cluster.enabled();
        let before = clustered.then(|| self.upstream_interest(&accounts));
        let exporters_before = self.service_exporters();
        for acc in accounts.values() {
            acc.clear_links();
        }
        crate::accounts::link_imports(&accounts, &configs);
        let Some(before) = before else {
            return;
        };
        let after = self.upstream_interest(&accounts);
        let keys: std::collections::BTreeSet<&(String, String)> =
            before.keys().chain(after.keys()).collect();
        for key in keys {
            let (was, is) = (
                before.get(key).copied().unwrap_or(0),
                after.get(key).copied().unwrap_or(0),
            );
            let (exporter, filter) = key;
            for _ in is..was {
                self.routes
                    .add_local_subject(exporter, filter.as_bytes(), false);
            }
            for _ in was..is {
                self.routes
                    .add_local_subject(exporter, filter.as_bytes(), true);
            }
        }
        for e in self.service_exporters().difference(&exporters_before) {
            self.advertise_responses_from(e);
        }
    }

    /// Link again when the first activation token in use expires, so the
    /// import it opened closes then, not at the next change. Only the
    /// newest relink's timer acts.
    fn relink_when_an_activation_expires(self: &Arc<Self>, configs: &[AccountConfig]) {
        let generation = self
            .relinks
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            + 1;
        let now = tribune_auth::jwt::now_unix();
        let Some(first) = configs
            .iter()
            .flat_map(|c| &c.imports)
            .filter_map(|i| i.activation.as_ref())
            .map(|a| a.expires)
            .filter(|&t| t > now)
            .min()
        else {
            return;
        };
        let server = Arc::downgrade(self);
        let wait = std::time::Duration::from_secs(u64::try_from(first - now).unwrap_or(0));
        let timer = tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let Some(server) = server.upgrade() else {
                return;
            };
            let _one_at_a_time = server.account_changes.lock();
            if server.relinks.load(std::sync::atomic::Ordering::Acquire) == generation {
                server.relink_operator_accounts();
            }
        });
        // One timer at a time: the newest relink's.
        if let Some(old) = self.relink_timer.lock().replace(timer.abort_handle()) {
            old.abort();
        }
    }

    /// How many local subscriptions draw on each (exporter, filter) stream
    /// import, as [`Server::local_sub_added`] advertised them.
    fn upstream_interest(
        &self,
        accounts: &HashMap<String, Arc<Account>>,
    ) -> HashMap<(String, String), usize> {
        let mut out = HashMap::new();
        for acc in accounts.values() {
            for sub in acc.sublist.all() {
                if sub.client.kind == ConnKind::Route {
                    continue;
                }
                for pair in Server::upstream(acc, &sub) {
                    *out.entry(pair).or_insert(0) += 1;
                }
            }
        }
        out
    }

    /// Serve the directory resolver's `$SYS.REQ.CLAIMS.*` requests, when
    /// that resolver is configured.
    pub(super) fn start_claims_service(self: &Arc<Self>, opts: &Options) -> Result<()> {
        let (Some(dir), Some(op)) = (self.trust().and_then(Trust::dir), &opts.operator) else {
            return Ok(());
        };
        let ResolverOptions::Full(full) = &op.resolver else {
            return Ok(());
        };
        let claims = crate::system::claims::start(self, dir.clone(), full.interval, full.timeout)
            .context("could not set up the account JWT requests")?;
        let _ = self.claims.set(claims);
        Ok(())
    }

    /// Before a login names an account this server does not hold, ask the
    /// other servers for it (full resolver only). True when it is held now.
    pub async fn fetch_account(self: &Arc<Self>, key: &str) -> bool {
        match self.claims.get() {
            Some(c) => c.clone().fetch(self, key).await,
            None => false,
        }
    }

    /// An account's configuration: from `accounts {}`, or in operator mode
    /// from its verified JWT.
    pub fn account_config(&self, name: &str) -> Option<AccountConfig> {
        if let Some(claims) = self.trust().and_then(|t| t.account(name)) {
            return Some(operator::account_config(&claims));
        }
        self.opts()
            .accounts
            .iter()
            .find(|a| a.name == name)
            .cloned()
    }

    /// With a directory resolver, interest a peer sends for an account this
    /// server has not heard of yet is kept in an empty account of that
    /// name (as nats-server keeps it), so it is there when the account's
    /// JWT arrives. No one can log into it until then: logins ask the
    /// resolver.
    pub fn placeholder_account(&self, name: &[u8]) -> Option<Arc<Account>> {
        self.trust()?.dir()?;
        let name = std::str::from_utf8(name).ok()?;
        if !operator::verify::is_public_key(name, nkeys::KeyPairType::Account) {
            return None;
        }
        let cfg = AccountConfig {
            name: name.to_string(),
            ..Default::default()
        };
        Some(self.register_account(&cfg).0)
    }

    /// The account named by `cfg`, created if this server has none yet.
    fn register_account(&self, cfg: &AccountConfig) -> (Arc<Account>, bool) {
        let mut accounts = self.accounts.write();
        if let Some(acc) = accounts.get(&cfg.name) {
            return (acc.clone(), false);
        }
        let acc = Account::configured(cfg);
        accounts.insert(cfg.name.clone(), acc.clone());
        (acc, true)
    }

    /// A new or changed account JWT is in force: create the account, or
    /// apply the JWT to it and to its clients, as nats-server does on an
    /// account update (limits and default permissions, for new clients
    /// and, through their own tasks, for those connected; JetStream; the
    /// end of revoked users and of users signed by a key the account no
    /// longer lists).
    pub fn account_claims_changed(self: &Arc<Self>, claims: &AccountClaims) {
        let _one_at_a_time = self.account_changes.lock();
        // The resolver's claims now: a later change may have overtaken
        // the one this call was made for.
        // Every caller stored the claims first, so an account the resolver
        // no longer holds was deleted since: nothing to apply.
        let Some(current) = self.trust().and_then(|t| t.account(&claims.std.sub)) else {
            return;
        };
        let claims = current.as_ref();
        let cfg = operator::account_config(claims);
        let (acc, created) = self.register_account(&cfg);
        if created {
            debug!("Account [{}] registered", cfg.name);
        } else {
            acc.reconfigure(&cfg);
        }
        if let Some(js) = self.jetstream() {
            if !Arc::ptr_eq(&acc, &self.system_account()) {
                if let Err(e) = js.account_changed(self, acc.clone(), &cfg) {
                    warn!("JetStream for account {:?} not updated: {e:#}", cfg.name);
                }
            }
        }
        self.relink_operator_accounts();
        self.expire_account_at(&cfg.name, claims.std.exp);
        // An account JWT whose `exp` has passed ends its connections.
        let expired = claims.std.exp > 0 && tribune_auth::jwt::now_unix() >= claims.std.exp;
        // The oldest connections keep their seats, as in nats-server.
        let limit = acc.limits().max_connections;
        let mut seated = 0;
        for c in self.clients_of(&acc) {
            if limit.reached(seated) {
                debug!("{} - {}", c.tag(), errors::MAX_ACCOUNT_CONNECTIONS_EXCEEDED);
                c.send(
                    format!("-ERR '{}'\r\n", errors::MAX_ACCOUNT_CONNECTIONS_EXCEEDED).as_bytes(),
                );
                c.close(ClosedState::MaxAccountConnectionsExceeded);
                continue;
            }
            seated += 1;
            if expired {
                c.send(format!("-ERR '{}'\r\n", errors::ACCOUNT_AUTH_EXPIRED).as_bytes());
                c.close(ClosedState::AuthenticationExpired);
                continue;
            }
            // Its own task applies the new limits and default permissions.
            c.account_changed.notify_one();
            let signed = c.meta.lock().signed.clone();
            let user = c.meta.lock().user.clone().unwrap_or_default();
            let Some(signed) = signed else { continue };
            let scope = claims
                .issuer_scope(&signed.issuer)
                .map(|s| s.map(crate::auth::scope_digest));
            let bearer_refused = signed.bearer && claims.nats.limits.disallow_bearer;
            if claims.is_revoked(&user, signed.issued_at) {
                debug!("{} - {}", c.tag(), errors::AUTH_REVOKED);
                c.send(format!("-ERR '{}'\r\n", errors::AUTH_REVOKED).as_bytes());
                c.close(ClosedState::Revocation);
            } else if bearer_refused {
                debug!("{} - Bearer User JWT not allowed", c.tag());
                c.send(format!("-ERR '{}'\r\n", errors::AUTH_VIOLATION).as_bytes());
                c.close(ClosedState::AuthenticationViolation);
            } else if scope.is_none_or(|s| s != signed.scope) {
                // Its signing key is gone or its scope changed: closed
                // without a word, as nats-server closes it.
                debug!("{} - User JWT signing key no longer valid", c.tag());
                c.close(ClosedState::AuthenticationViolation);
            }
        }
    }

    /// The account's JWT expires at `exp` (unix seconds; 0: never): its
    /// connections end then with `Account Authentication Expired`, as
    /// nats-server's account expiration timer ends them, whenever they
    /// logged in. A later change of the JWT replaces the timer.
    fn expire_account_at(self: &Arc<Self>, name: &str, exp: i64) {
        let now = tribune_auth::jwt::now_unix();
        let timer = (exp > now).then(|| {
            let server = Arc::downgrade(self);
            let name = name.to_string();
            let wait = std::time::Duration::from_secs(u64::try_from(exp - now).unwrap_or(0));
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                if let Some(server) = server.upgrade() {
                    server.account_expired(&name, exp);
                }
            })
            .abort_handle()
        });
        let mut timers = self.account_expiry.lock();
        let old = match timer {
            Some(t) => timers.insert(name.to_string(), t),
            None => timers.remove(name),
        };
        if let Some(old) = old {
            old.abort();
        }
    }

    /// An account's expiration timer fired: if its JWT in force still
    /// expires then, its connections end.
    fn account_expired(&self, name: &str, exp: i64) {
        let _one_at_a_time = self.account_changes.lock();
        self.account_expiry.lock().remove(name);
        let still = self
            .trust()
            .and_then(|t| t.account(name))
            .is_some_and(|c| c.std.exp == exp);
        let Some(acc) = self.account(name.as_bytes()).filter(|_| still) else {
            return;
        };
        debug!("Account [{name}] expired");
        for c in self.clients_of(&acc) {
            c.send(format!("-ERR '{}'\r\n", errors::ACCOUNT_AUTH_EXPIRED).as_bytes());
            c.close(ClosedState::AuthenticationExpired);
        }
    }

    /// An account JWT was deleted: its clients are told their account
    /// expired and closed, and no new one is admitted (the resolver no
    /// longer knows it). Its JetStream data stays on disk, as in
    /// nats-server, and stores nothing more.
    pub fn account_claims_deleted(self: &Arc<Self>, key: &str) {
        let _one_at_a_time = self.account_changes.lock();
        let Some(acc) = self.account(key.as_bytes()) else {
            return;
        };
        debug!("Disable account {key} due to remove");
        if let Some(t) = self.account_expiry.lock().remove(key) {
            t.abort();
        }
        if let Some(js) = self.jetstream() {
            let cfg = AccountConfig {
                name: key.to_string(),
                jetstream: Some(false),
                ..Default::default()
            };
            if let Err(e) = js.account_changed(self, acc.clone(), &cfg) {
                warn!("JetStream for account {key:?} not disabled: {e:#}");
            }
        }
        self.relink_operator_accounts();
        for c in self.clients_of(&acc) {
            c.send(format!("-ERR '{}'\r\n", errors::ACCOUNT_AUTH_EXPIRED).as_bytes());
            c.close(ClosedState::AuthenticationExpired);
        }
    }

    /// The client connections bound to `acc` on this server, oldest first.
    fn clients_of(&self, acc: &Arc<Account>) -> Vec<Arc<ClientShared>> {
        let mut out: Vec<Arc<ClientShared>> = self
            .clients()
            .into_iter()
            .filter(|c| c.kind == ConnKind::Client)
            .filter(|c| {
                c.account
                    .lock()
                    .as_ref()
                    .is_some_and(|a| Arc::ptr_eq(a, acc))
            })
            .collect();
        // Oldest first: a lowered connection limit keeps these.
        out.sort_by_key(|c| c.cid);
        out
    }
}
