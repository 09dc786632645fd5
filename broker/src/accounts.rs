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
//!   exporter, with its reply subject replaced by an unguessable `_R_.`
//!   subject whose answers are carried back into the importer: the first
//!   one only for a `Singleton` export (the default), any number for a
//!   `Stream` or `Chunked` one (a batch direct get answers with many
//!   messages) until the export's response threshold passes without one.
//!
//! With no accounts configured every client binds to the global account
//! `$G`, exactly as nats-server does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use tracing::{error, warn};

use crate::limits::AccountLimits;
use crate::options::{AccountConfig, Export, ExportKind, Import, ResponsePolicy, ResponseType};
use crate::sublist::Sublist;

/// Name of the default account, as nats-server names it.
pub const GLOBAL_ACCOUNT: &str = "$G";
/// Name of the system account when none is configured.
pub const SYSTEM_ACCOUNT: &str = "$SYS";
/// Prefix of the reply subjects that carry service responses back.
pub const RESPONSE_PREFIX: &str = "_R_.";
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
    /// The export's response rules, for the requests made through it.
    pub response: ResponsePolicy,
}

/// Where the responses to one mapped request go, and for how long.
struct PendingResponse {
    importer: Arc<Account>,
    reply: bytes::Bytes,
    policy: ResponsePolicy,
}

/// Where a service response must be delivered: into `importer`, on the
/// requester's own reply subject.
#[derive(Clone)]
pub struct ResponseRoute {
    pub importer: Arc<Account>,
    pub reply: bytes::Bytes,
}

/// What an account's closed connections sent and were sent, kept so that
/// `/accstatz` adds it to the live connections' counters. Updated once per
/// closed connection, never on the message path.
#[derive(Debug, Default)]
pub struct AccountTraffic {
    in_msgs: std::sync::atomic::AtomicU64,
    in_bytes: std::sync::atomic::AtomicU64,
    out_msgs: std::sync::atomic::AtomicU64,
    out_bytes: std::sync::atomic::AtomicU64,
    slow_consumers: std::sync::atomic::AtomicU64,
}

/// [`AccountTraffic`] read at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrafficSnapshot {
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
    pub slow_consumers: u64,
}

impl AccountTraffic {
    /// A connection of the account closed with these counts.
    pub fn add_closed(&self, in_msgs: u64, in_bytes: u64, out_msgs: u64, out_bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.in_msgs.fetch_add(in_msgs, Relaxed);
        self.in_bytes.fetch_add(in_bytes, Relaxed);
        self.out_msgs.fetch_add(out_msgs, Relaxed);
        self.out_bytes.fetch_add(out_bytes, Relaxed);
    }

    /// A client of the account was cut off as a slow consumer.
    pub fn add_slow_consumer(&self) {
        self.slow_consumers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> TrafficSnapshot {
        use std::sync::atomic::Ordering::Relaxed;
        TrafficSnapshot {
            in_msgs: self.in_msgs.load(Relaxed),
            in_bytes: self.in_bytes.load(Relaxed),
            out_msgs: self.out_msgs.load(Relaxed),
            out_bytes: self.out_bytes.load(Relaxed),
            slow_consumers: self.slow_consumers.load(Relaxed),
        }
    }
}

pub struct Account {
    pub name: String,
    /// What its closed connections sent and were sent (`/accstatz`).
    pub traffic: AccountTraffic,
    /// `default_permissions`, for auth-callout users whose JWT carries none
    /// (configured users had them filled in when the config was read).
    /// An account JWT update replaces it.
    default_permissions: RwLock<Option<crate::permissions::Permissions>>,
    /// `limits {}`: clients bound here, and what each of them may do. An
    /// account JWT update replaces them for the clients that bind next.
    limits: RwLock<AccountLimits>,
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
            traffic: AccountTraffic::default(),
            default_permissions: RwLock::new(cfg.default_permissions.clone()),
            limits: RwLock::new(cfg.limits),
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
        let limit = self.limits.read().max_connections;
        self.clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (!limit.reached(n)).then_some(n + 1)
            })
            .ok()?;
        Some(AccountSeat(self.clone()))
    }

    /// The account's limits now.
    pub fn limits(&self) -> AccountLimits {
        *self.limits.read()
    }

    /// The permissions of users who bring none of their own.
    pub fn default_permissions(&self) -> Option<crate::permissions::Permissions> {
        self.default_permissions.read().clone()
    }

    /// Apply what an updated account JWT says: limits and default
    /// permissions for the clients that bind from now on.
    pub fn reconfigure(&self, cfg: &AccountConfig) {
        *self.limits.write() = cfg.limits;
        *self.default_permissions.write() = cfg.default_permissions.clone();
    }

    /// Forget every import link this account takes part in, as importer
    /// or exporter, before they are linked anew from updated JWTs.
    pub fn clear_links(&self) {
        self.stream_links.write().clear();
        self.service_imports.write().clear();
        self.stream_imports.write().clear();
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

    /// Whether a message on `subject` reaches anyone: a subscriber here,
    /// or one in an account that imports it as a stream (a JetStream push
    /// consumer delivering to another account, say).
    pub fn has_interest(&self, subject: &[u8]) -> bool {
        if !self.sublist.match_subject(subject).is_empty() {
            return true;
        }
        self.has_cross()
            && self
                .stream_targets(subject)
                .iter()
                .any(|(importer, mapped)| !importer.sublist.match_subject(mapped).is_empty())
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

    /// The service a request on `subject` in this (importing) account
    /// calls: its account, the subject there, and its response rules.
    pub fn service_for(&self, subject: &[u8]) -> Option<(Arc<Account>, Vec<u8>, ResponsePolicy)> {
        let imports = self.service_imports.read();
        let si = imports
            .iter()
            .find(|s| crate::subject::matches(s.local.as_bytes(), subject))?;
        // A literal mapping renames the subject; a wildcard one keeps what
        // its wildcards matched, under the exported subject's other tokens.
        let target = if !crate::subject::has_wildcard_token(si.subject.as_bytes()) {
            si.subject.as_bytes().to_vec()
        } else if si.local == si.subject {
            subject.to_vec()
        } else {
            rename_wildcards(&si.local, &si.subject, subject)
        };
        Some((si.exporter.clone(), target, si.response))
    }

    /// Remember where the answers to a mapped request go, for the export's
    /// response threshold.
    pub fn add_response(
        &self,
        mapped: Vec<u8>,
        importer: Arc<Account>,
        reply: Vec<u8>,
        policy: ResponsePolicy,
    ) {
        let until = Instant::now() + policy.threshold;
        let pending = PendingResponse {
            importer,
            reply: reply.into(),
            policy,
        };
        let evicted = self.responses.lock().insert(mapped, pending, until);
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

    /// Where a response published on `subject` goes, if it is one. A
    /// `Singleton` request's way back is used up by its first response; a
    /// `Stream` or `Chunked` one stays open for another threshold after
    /// each response, until `ends` (an empty message: no headers, no
    /// payload, nats-server's end of a stream of responses).
    pub fn response_for(&self, subject: &[u8], ends: bool) -> Option<ResponseRoute> {
        if !subject.starts_with(RESPONSE_PREFIX.as_bytes()) {
            return None;
        }
        let mut responses = self.responses.lock();
        let once = |p: &PendingResponse| ends || p.policy.kind == ResponseType::Singleton;
        let until = match responses.get_mut(subject) {
            None => return None,
            Some(p) if once(p) => None,
            Some(p) => Some(Instant::now() + p.policy.threshold),
        };
        let route = |p: &PendingResponse| ResponseRoute {
            importer: p.importer.clone(),
            reply: p.reply.clone(),
        };
        match until {
            None => responses.remove(subject).map(|p| route(&p)),
            Some(until) => responses.renew(subject, until).map(|p| route(p)),
        }
    }

    /// A response could not be delivered (the requester is gone): close the
    /// way back, as nats-server does, so a stream of responses stops
    /// holding an entry.
    pub fn forget_response(&self, subject: &[u8]) {
        self.responses.lock().remove(subject);
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

/// The export of `kind` that lets `importer` import `subject`, if any: the
/// one for exactly that subject first, else the first wildcard export that
/// covers it (nats-server looks an import's export up the same way).
fn export_for<'a>(cfg: &'a AccountConfig, imp: &Import, importer: &str) -> Option<&'a Export> {
    let subject = imp.subject.as_str();
    let usable = |e: &&Export| {
        e.kind == imp.kind
            && crate::permissions::is_subset(subject, &e.subject)
            && (e.accounts.is_empty() || e.accounts.iter().any(|a| a == importer))
            && (!e.token_required || activated(cfg, e, imp, importer))
    };
    let mut candidates = cfg.exports.iter().filter(usable);
    let first = candidates.clone().next()?;
    Some(candidates.find(|e| e.subject == subject).unwrap_or(first))
}

/// A private export's import carries an activation signed by the
/// exporter (or one of its signing keys) that the export has not revoked.
fn activated(exporter: &AccountConfig, e: &Export, imp: &Import, importer: &str) -> bool {
    let Some(a) = &imp.activation else {
        return false;
    };
    let signer_known = a.issuer == exporter.name || exporter.signing_keys.contains(&a.issuer);
    let revoked = [importer, "*"]
        .iter()
        .any(|k| e.revocations.get(*k).is_some_and(|&t| t >= a.issued_at));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let expired = a.expires > 0 && now >= a.expires;
    signer_known && !revoked && !expired
}

/// Whether a wildcard service import may be renamed from `subject` to
/// `to`: the same `*` count, and a `>` in both or neither, so that each
/// wildcard of one has its place in the other.
fn same_wildcards(subject: &str, to: &str) -> bool {
    let shape = |s: &str| {
        let toks: Vec<&str> = s.split('.').collect();
        (
            toks.iter().filter(|t| **t == "*").count(),
            toks.last() == Some(&">"),
        )
    };
    shape(subject) == shape(to)
}

/// `subject` (matching the importer's `local` pattern) renamed into the
/// exported pattern `target`: the tokens the `*`s of `local` matched fill
/// the `*`s of `target` in order, and what `>` matched follows its `>`.
fn rename_wildcards(local: &str, target: &str, subject: &[u8]) -> Vec<u8> {
    let subject = String::from_utf8_lossy(subject);
    let toks: Vec<&str> = subject.split('.').collect();
    let pattern: Vec<&str> = local.split('.').collect();
    let mut stars = Vec::new();
    let mut rest: &[&str] = &[];
    for (i, p) in pattern.iter().enumerate() {
        match *p {
            "*" => stars.push(toks.get(i).copied().unwrap_or_default()),
            ">" => rest = toks.get(i..).unwrap_or_default(),
            _ => {}
        }
    }
    let mut stars = stars.into_iter();
    let mut out: Vec<&str> = Vec::with_capacity(toks.len());
    for t in target.split('.') {
        match t {
            "*" => out.push(stars.next().unwrap_or_default()),
            ">" => out.extend_from_slice(rest),
            lit => out.push(lit),
        }
    }
    out.join(".").into_bytes()
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
            let Some(export) = export_for(exp_cfg, imp, &cfg.name) else {
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
            };
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
                    if imp.to.as_ref().is_some_and(|to| {
                        to != &imp.subject
                            && crate::subject::has_wildcard_token(imp.subject.as_bytes())
                            && !same_wildcards(&imp.subject, to)
                    }) =>
                {
                    // Its wildcards would have no place in the export's
                    // subject: refused, as nats-server refuses it.
                    error!(
                        "Account {:?}: a wildcard service import of {:?} cannot be renamed to {:?}",
                        cfg.name, imp.subject, imp.to
                    );
                }
                ExportKind::Service => importer.service_imports.write().push(ServiceImport {
                    local: imp.to.clone().unwrap_or_else(|| imp.subject.clone()),
                    exporter: exporter.clone(),
                    subject: imp.subject.clone(),
                    response: export.response,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Import;
    use std::time::Duration;

    fn cfg(name: &str, exports: Vec<Export>, imports: Vec<Import>) -> AccountConfig {
        AccountConfig {
            name: name.into(),
            exports,
            imports,
            ..Default::default()
        }
    }

    #[test]
    fn wildcard_service_imports_rename_around_their_wildcards() {
        assert!(same_wildcards("$JS.API.>", "$JS.A.API.>"));
        assert!(same_wildcards("svc.*.x", "a.*.b.c"));
        assert!(!same_wildcards("svc.*", "a.>"));
        assert_eq!(
            rename_wildcards("$JS.A.API.>", "$JS.API.>", b"$JS.A.API.CONSUMER.CREATE.O"),
            b"$JS.API.CONSUMER.CREATE.O"
        );
        assert_eq!(
            rename_wildcards("a.*.b.*", "svc.*.x.*", b"a.1.b.2"),
            b"svc.1.x.2"
        );
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
                        response: ResponsePolicy::default(),
                        ..Default::default()
                    },
                    Export {
                        kind: ExportKind::Service,
                        subject: "svc.time".into(),
                        accounts: vec!["WEB".into()],
                        response: ResponsePolicy::default(),
                        ..Default::default()
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
                        activation: None,
                    },
                    Import {
                        kind: ExportKind::Service,
                        account: "APP".into(),
                        subject: "svc.time".into(),
                        to: Some("time".into()),
                        activation: None,
                    },
                    Import {
                        kind: ExportKind::Stream,
                        account: "APP".into(),
                        subject: "secret.>".into(),
                        to: None,
                        activation: None,
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
                    activation: None,
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
        let (exp, subj, _) = accounts["WEB"].service_for(b"time").unwrap();
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
    fn singleton_responses_are_used_once() {
        let a = Account::new("A");
        let b = Account::new("B");
        a.add_response(
            b"_R_.x.1".to_vec(),
            b.clone(),
            b"_INBOX.1".to_vec(),
            ResponsePolicy::default(),
        );
        assert!(a.response_for(b"other", false).is_none());
        let r = a.response_for(b"_R_.x.1", false).expect("mapped");
        assert_eq!(
            (r.importer.name.as_str(), &r.reply[..]),
            ("B", &b"_INBOX.1"[..])
        );
        assert!(a.response_for(b"_R_.x.1", false).is_none());
    }

    #[test]
    fn streamed_responses_flow_until_the_end_or_the_threshold() {
        let a = Account::new("A");
        let b = Account::new("B");
        for kind in [ResponseType::Stream, ResponseType::Chunked] {
            let policy = ResponsePolicy {
                kind,
                threshold: Duration::from_secs(60),
            };
            a.add_response(b"_R_.s".to_vec(), b.clone(), b"_INBOX.s".to_vec(), policy);
            for _ in 0..3 {
                assert!(a.response_for(b"_R_.s", false).is_some(), "{kind:?}");
            }
            // An empty message is the last one.
            assert!(a.response_for(b"_R_.s", true).is_some());
            assert!(a.response_for(b"_R_.s", false).is_none());
        }
        // Undeliverable: forgotten.
        let policy = ResponsePolicy {
            kind: ResponseType::Stream,
            threshold: Duration::from_secs(60),
        };
        a.add_response(b"_R_.t".to_vec(), b.clone(), b"_INBOX.t".to_vec(), policy);
        a.forget_response(b"_R_.t");
        assert!(a.response_for(b"_R_.t", false).is_none());
        // Past the threshold nothing goes back; each response renews it.
        let short = ResponsePolicy {
            kind: ResponseType::Stream,
            threshold: Duration::from_millis(300),
        };
        a.add_response(b"_R_.u".to_vec(), b.clone(), b"_INBOX.u".to_vec(), short);
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(150));
            assert!(a.response_for(b"_R_.u", false).is_some(), "renewed");
        }
        std::thread::sleep(Duration::from_millis(400));
        assert!(a.response_for(b"_R_.u", false).is_none(), "expired");
    }

    #[test]
    fn imports_take_the_response_rules_of_their_export() {
        let streamed = ResponsePolicy {
            kind: ResponseType::Stream,
            threshold: Duration::from_secs(5),
        };
        let exporter = AccountConfig {
            name: "S".into(),
            exports: vec![
                Export {
                    kind: ExportKind::Service,
                    subject: "$JS.API.>".into(),
                    accounts: vec![],
                    response: ResponsePolicy::default(),
                    ..Default::default()
                },
                Export {
                    kind: ExportKind::Service,
                    subject: "$JS.API.DIRECT.GET.S".into(),
                    accounts: vec![],
                    response: streamed,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let service = |subject: &str| Import {
            kind: ExportKind::Service,
            account: "S".into(),
            subject: subject.into(),
            to: None,
            activation: None,
        };
        let importer = cfg(
            "APP",
            vec![],
            vec![
                service("$JS.API.DIRECT.GET.S"),
                service("$JS.API.STREAM.INFO.S"),
            ],
        );
        let configs = vec![exporter, importer];
        let accounts: HashMap<String, Arc<Account>> = configs
            .iter()
            .map(|c| (c.name.clone(), Account::new(&c.name)))
            .collect();
        link_imports(&accounts, &configs);
        let app = &accounts["APP"];
        let (_, _, direct) = app.service_for(b"$JS.API.DIRECT.GET.S").expect("imported");
        assert_eq!(direct, streamed, "the exact export wins over the wildcard");
        let (_, _, info) = app.service_for(b"$JS.API.STREAM.INFO.S").expect("imported");
        assert_eq!(info, ResponsePolicy::default());
    }
}
