//! Accounts: isolated subject namespaces, each with its own subscription
//! index. The same subject in two accounts never crosses, except through an
//! explicit export and import:
//!
//! - A **stream** export lets other accounts receive what is published on
//!   some subjects: the exporter keeps a link to each importer, and every
//!   message that matches is delivered into the importer too (optionally
//!   under a prefix).
//! - A **service** export lets other accounts send requests: a request
//!   published on the importer's local subject is delivered into the
//!   exporter, with its reply subject replaced by a one-time `_R_.` subject
//!   whose answer is carried back into the importer.
//!
//! With no accounts configured every client binds to the global account
//! `$G`, exactly as nats-server does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tracing::{error, warn};

use crate::limits::AccountLimits;
use crate::options::{AccountConfig, ExportKind};
use crate::sublist::Sublist;

/// Name of the default account, as nats-server names it.
pub const GLOBAL_ACCOUNT: &str = "$G";
/// Name of the system account when none is configured.
pub const SYSTEM_ACCOUNT: &str = "$SYS";
/// Prefix of the reply subjects that carry service responses back.
pub const RESPONSE_PREFIX: &str = "_R_.";
/// How long a service response may take before its mapping is dropped.
const RESPONSE_TTL: Duration = Duration::from_secs(120);
/// Open service-import responses one exporting account keeps. Every request
/// with a reply subject adds one, answered or not, so without a bound an
/// importer could fill memory at line rate for the whole TTL; past it, the
/// oldest unanswered request loses its answer (as if it had expired).
pub const RESPONSE_MAP_LIMIT: usize = 100_000;

/// Messages on `filter` in the exporting account are also delivered into `importer`.
pub struct StreamLink {
    pub filter: String,
    pub importer: Arc<Account>,
    /// Prepended (with a dot) to the subject in the importer.
    pub prefix: Option<String>,
}

/// As importer: a stream from `exporter` on `filter`, seen under `prefix`.
pub type StreamImport = (Arc<Account>, String, Option<String>);

/// Requests on `local` in the importing account go to `subject` in `exporter`.
pub struct ServiceImport {
    pub local: String,
    pub exporter: Arc<Account>,
    pub subject: String,
}

/// Where a service response must go (until the map holding it expires it).
pub struct PendingResponse {
    pub importer: Arc<Account>,
    pub reply: Vec<u8>,
}

pub struct Account {
    pub name: String,
    /// `default_permissions`, for auth-callout users whose JWT carries none
    /// (configured users had them filled in when the config was read).
    pub default_permissions: Option<crate::permissions::Permissions>,
    /// `limits {}`: clients bound here, and what each of them may do.
    pub limits: AccountLimits,
    /// Clients bound to the account on this node, for `max_connections`.
    clients: std::sync::atomic::AtomicUsize,
    pub sublist: Sublist,
    /// As exporter: importers of streams.
    pub stream_links: RwLock<Vec<StreamLink>>,
    /// As importer: services it may call.
    pub service_imports: RwLock<Vec<ServiceImport>>,
    /// As exporter: reply subjects handed to responders, by mapped subject.
    responses: Mutex<crate::expiring::ExpiringMap<PendingResponse>>,
    /// As importer: streams it receives, for advertising interest upstream.
    pub stream_imports: RwLock<Vec<StreamImport>>,
    /// Takes part in any import or export, so the cross-account path must
    /// run; a single atomic load for every other account.
    cross: std::sync::atomic::AtomicBool,
    /// When the full response map was last reported (unix nanos).
    responses_full_warned: std::sync::atomic::AtomicU64,
}

impl Account {
    pub fn new(name: &str) -> Arc<Self> {
        Self::configured(&AccountConfig {
            name: name.to_string(),
            ..Default::default()
        })
    }

    /// An account from its `accounts {}` entry (imports are linked later,
    /// once every account exists).
    pub fn configured(cfg: &AccountConfig) -> Arc<Self> {
        Arc::new(Account {
            name: cfg.name.clone(),
            default_permissions: cfg.default_permissions.clone(),
            limits: cfg.limits,
            clients: std::sync::atomic::AtomicUsize::new(0),
            sublist: Sublist::new(),
            stream_links: RwLock::new(Vec::new()),
            service_imports: RwLock::new(Vec::new()),
            responses: Mutex::new(crate::expiring::ExpiringMap::with_limit(RESPONSE_MAP_LIMIT)),
            stream_imports: RwLock::new(Vec::new()),
            cross: std::sync::atomic::AtomicBool::new(false),
            responses_full_warned: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Bind one more client, unless `max_connections` is reached: the seat
    /// is given back when the returned guard is dropped.
    pub fn take_seat(self: &Arc<Self>) -> Option<AccountSeat> {
        use std::sync::atomic::Ordering;
        let limit = self.limits.max_connections;
        self.clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (!limit.reached(n)).then_some(n + 1)
            })
            .ok()?;
        Some(AccountSeat(self.clone()))
    }

    /// Clients bound to the account on this node.
    pub fn num_clients(&self) -> usize {
        self.clients.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether publishes in this account need the cross-account path.
    #[inline]
    pub fn has_cross(&self) -> bool {
        self.cross.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn mark_cross(&self) {
        self.cross.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Importers of a message on `subject`, with the subject they see.
    pub fn stream_targets(&self, subject: &[u8]) -> Vec<(Arc<Account>, Vec<u8>)> {
        let links = self.stream_links.read();
        links
            .iter()
            .filter(|l| crate::subject::matches(l.filter.as_bytes(), subject))
            .map(|l| {
                let mapped = match &l.prefix {
                    Some(p) => [p.as_bytes(), b".", subject].concat(),
                    None => subject.to_vec(),
                };
                (l.importer.clone(), mapped)
            })
            .collect()
    }

    /// The service a request on `subject` in this (importing) account calls.
    pub fn service_for(&self, subject: &[u8]) -> Option<(Arc<Account>, Vec<u8>)> {
        let imports = self.service_imports.read();
        let si = imports
            .iter()
            .find(|s| crate::subject::matches(s.local.as_bytes(), subject))?;
        // A literal mapping renames the subject; a wildcard keeps it.
        let target = if crate::subject::has_wildcard_token(si.subject.as_bytes()) {
            subject.to_vec()
        } else {
            si.subject.as_bytes().to_vec()
        };
        Some((si.exporter.clone(), target))
    }

    /// Remember where the answer to a mapped request goes.
    pub fn add_response(&self, mapped: Vec<u8>, importer: Arc<Account>, reply: Vec<u8>) {
        let evicted = self.responses.lock().insert(
            mapped,
            PendingResponse { importer, reply },
            Instant::now() + RESPONSE_TTL,
        );
        if evicted {
            self.warn_responses_full();
        }
    }

    /// Say so when the response map is full, at most once a minute.
    fn warn_responses_full(&self) {
        let now = crate::client::now_nanos();
        let last = self
            .responses_full_warned
            .load(std::sync::atomic::Ordering::Relaxed);
        if now.saturating_sub(last) < 60_000_000_000 {
            return;
        }
        self.responses_full_warned
            .store(now, std::sync::atomic::Ordering::Relaxed);
        warn!(
            "Account {:?}: {RESPONSE_MAP_LIMIT} service import responses are open; \
             dropping the oldest to make room (their answers will not be delivered)",
            self.name
        );
    }

    /// Open service-import responses, and how many were dropped for room.
    pub fn response_map_stats(&self) -> (usize, u64) {
        let m = self.responses.lock();
        (m.len(), m.evicted())
    }

    /// The destination of a response published on `subject`, used once.
    pub fn take_response(&self, subject: &[u8]) -> Option<PendingResponse> {
        if !subject.starts_with(RESPONSE_PREFIX.as_bytes()) {
            return None;
        }
        self.responses.lock().remove(subject)
    }
}

/// A client's place in an account, counted against `max_connections`
/// for as long as it is held.
#[derive(Debug)]
pub struct AccountSeat(Arc<Account>);

impl AccountSeat {
    pub fn account(&self) -> &Arc<Account> {
        &self.0
    }
}

impl Drop for AccountSeat {
    fn drop(&mut self) {
        self.0
            .clients
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
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

/// Is `subject` within an export of `kind` that `importer` may use?
fn exported(cfg: &AccountConfig, kind: ExportKind, subject: &str, importer: &str) -> bool {
    cfg.exports.iter().any(|e| {
        e.kind == kind
            && crate::permissions::is_subset(subject, &e.subject)
            && (e.accounts.is_empty() || e.accounts.iter().any(|a| a == importer))
    })
}

/// Wire the configured imports between accounts. An import of something
/// the exporter does not export to the importer is refused and logged, as
/// nats-server refuses it.
pub fn link_imports(accounts: &HashMap<String, Arc<Account>>, configs: &[AccountConfig]) {
    for cfg in configs {
        let Some(importer) = accounts.get(&cfg.name) else {
            continue;
        };
        for imp in &cfg.imports {
            let (Some(exporter), Some(exp_cfg)) = (
                accounts.get(&imp.account),
                configs.iter().find(|c| c.name == imp.account),
            ) else {
                error!(
                    "Account {:?}: import from unknown account {:?}",
                    cfg.name, imp.account
                );
                continue;
            };
            if !exported(exp_cfg, imp.kind, &imp.subject, &cfg.name) {
                let what = if imp.kind == ExportKind::Stream {
                    "stream"
                } else {
                    "service"
                };
                error!(
                    "Account {:?}: {what} import of {:?} from {:?} not authorized",
                    cfg.name, imp.subject, imp.account
                );
                continue;
            }
            exporter.mark_cross();
            importer.mark_cross();
            match imp.kind {
                ExportKind::Stream => {
                    exporter.stream_links.write().push(StreamLink {
                        filter: imp.subject.clone(),
                        importer: importer.clone(),
                        prefix: imp.to.clone(),
                    });
                    importer.stream_imports.write().push((
                        exporter.clone(),
                        imp.subject.clone(),
                        imp.to.clone(),
                    ));
                }
                ExportKind::Service
                    if imp.to.as_ref().is_some_and(|to| to != &imp.subject)
                        && crate::subject::has_wildcard_token(imp.subject.as_bytes()) =>
                {
                    // The local subject would be delivered into the exporter
                    // as is, outside what it exports.
                    error!(
                        "Account {:?}: a wildcard service import of {:?} cannot be renamed to {:?}",
                        cfg.name, imp.subject, imp.to
                    );
                }
                ExportKind::Service => importer.service_imports.write().push(ServiceImport {
                    local: imp.to.clone().unwrap_or_else(|| imp.subject.clone()),
                    exporter: exporter.clone(),
                    subject: imp.subject.clone(),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Export, Import};

    fn cfg(name: &str, exports: Vec<Export>, imports: Vec<Import>) -> AccountConfig {
        AccountConfig {
            name: name.into(),
            exports,
            imports,
            ..Default::default()
        }
    }

    #[test]
    fn imports_need_a_matching_export() {
        let configs = vec![
            cfg(
                "APP",
                vec![
                    Export {
                        kind: ExportKind::Stream,
                        subject: "sports.>".into(),
                        accounts: vec![],
                    },
                    Export {
                        kind: ExportKind::Service,
                        subject: "svc.time".into(),
                        accounts: vec!["WEB".into()],
                    },
                ],
                vec![],
            ),
            cfg(
                "WEB",
                vec![],
                vec![
                    Import {
                        kind: ExportKind::Stream,
                        account: "APP".into(),
                        subject: "sports.football.>".into(),
                        to: Some("feed".into()),
                    },
                    Import {
                        kind: ExportKind::Service,
                        account: "APP".into(),
                        subject: "svc.time".into(),
                        to: Some("time".into()),
                    },
                    Import {
                        kind: ExportKind::Stream,
                        account: "APP".into(),
                        subject: "secret.>".into(),
                        to: None,
                    },
                ],
            ),
            cfg(
                "OTHER",
                vec![],
                vec![Import {
                    kind: ExportKind::Service,
                    account: "APP".into(),
                    subject: "svc.time".into(),
                    to: None,
                }],
            ),
        ];
        let accounts: HashMap<String, Arc<Account>> = configs
            .iter()
            .map(|c| (c.name.clone(), Account::new(&c.name)))
            .collect();
        link_imports(&accounts, &configs);
        let app = &accounts["APP"];
        assert_eq!(
            app.stream_links.read().len(),
            1,
            "the secret.> import is refused"
        );
        let t = app.stream_targets(b"sports.football.1");
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].0.name.as_str(), t[0].1.as_slice()),
            ("WEB", &b"feed.sports.football.1"[..])
        );
        assert!(app.stream_targets(b"sports.tennis.1").is_empty());
        let (exp, subj) = accounts["WEB"].service_for(b"time").unwrap();
        assert_eq!(
            (exp.name.as_str(), subj.as_slice()),
            ("APP", &b"svc.time"[..])
        );
        assert!(
            accounts["OTHER"].service_for(b"svc.time").is_none(),
            "export restricted to WEB"
        );
    }

    #[test]
    fn responses_are_used_once() {
        let a = Account::new("A");
        let b = Account::new("B");
        a.add_response(b"_R_.x.1".to_vec(), b.clone(), b"_INBOX.1".to_vec());
        assert!(a.take_response(b"other").is_none());
        assert_eq!(a.take_response(b"_R_.x.1").unwrap().reply, b"_INBOX.1");
        assert!(a.take_response(b"_R_.x.1").is_none());
    }
}
