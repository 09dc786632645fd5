//! The subscription index: a trie of subject tokens that answers "who is
//! interested in this subject?" for every published message.
//!
//! Writers (SUB/UNSUB) take a short write lock and bump a generation number.
//! Readers never allocate on the hot path: each connection's reader keeps a
//! small L1 cache of results keyed by subject and tagged with the generation
//! it was computed at (see [`MatchCache`]), so a stable subject costs one
//! atomic load and one hash lookup. A change anywhere invalidates every cache
//! at once, which keeps them correct without tracking which entries a change
//! touched.
//!
//! One subject may have 100k+ subscribers (and queue groups): every
//! subscription knows its index in its node's list, so removing one costs
//! O(1), and a batch removal (a closing connection) gives the lock up
//! between chunks; see [`REMOVE_CHUNK`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{RwLock, RwLockWriteGuard};

use crate::subject::{FWC, PWC, TSEP};
use crate::subscription::{Subscription, NOT_LISTED};

/// The subscriptions interested in one subject.
#[derive(Default, Debug)]
pub struct MatchResult {
    /// Plain subscribers: every one gets the message.
    pub psubs: Vec<Arc<Subscription>>,
    /// Queue groups, one entry per group name: one member of each gets it.
    pub qsubs: Vec<Vec<Arc<Subscription>>>,
}

impl MatchResult {
    pub fn is_empty(&self) -> bool {
        self.psubs.is_empty() && self.qsubs.is_empty()
    }
}

/// Errors from inserting a subscription.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SublistError {
    #[error("invalid subject")]
    InvalidSubject,
    /// The subscription is already in a sublist (this one or another): it
    /// records one position only, see [`Subscription`]'s slot.
    #[error("subscription already listed")]
    AlreadyListed,
}

/// How many subscriptions [`Sublist::remove_batch`] takes out per hold of
/// the write lock. A closing connection may hold 100k+ subscriptions;
/// removing them in one hold would stall every publisher of the account that
/// misses its cache for as long. Between chunks the lock is handed to
/// whoever waits for it. Callers on an async task chunk by the same size and
/// yield to the runtime in between, so tasks queued behind them run too.
pub const REMOVE_CHUNK: usize = 512;

/// The members of one node: its plain subscribers, or one queue group.
///
/// Order is not kept (nats-server defines none among the subscribers of a
/// subject): removal moves the last member into the hole. Each member
/// carries its own index ([`Subscription::slot`]), so removal costs O(1)
/// however many members share the subject, and matching stays a straight
/// copy of a `Vec`.
#[derive(Default)]
struct Members(Vec<Arc<Subscription>>);

impl Members {
    fn push(&mut self, sub: Arc<Subscription>) {
        sub.set_slot(self.0.len());
        self.0.push(sub);
    }

    /// Take `sub` out; false if it is not a member.
    fn remove(&mut self, sub: &Arc<Subscription>) -> bool {
        let i = sub.slot();
        if !self.0.get(i).is_some_and(|s| Arc::ptr_eq(s, sub)) {
            return false;
        }
        self.0.swap_remove(i);
        sub.set_slot(NOT_LISTED);
        if let Some(moved) = self.0.get(i) {
            moved.set_slot(i);
        }
        true
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn as_slice(&self) -> &[Arc<Subscription>] {
        &self.0
    }
}

/// The queue groups at one node, by name. Hashed, because a client may
/// create any number of groups on one subject; keyed (random per map),
/// because the names come from clients.
type QueueGroups = HashMap<Box<[u8]>, Members, ahash::RandomState>;

#[derive(Default)]
struct Node {
    next: Option<Box<Level>>,
    psubs: Members,
    /// Boxed: most nodes have no queue group.
    qsubs: Option<Box<QueueGroups>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.psubs.is_empty()
            && self.qsubs.is_none()
            && self.next.as_ref().is_none_or(|l| l.is_empty())
    }
}

#[derive(Default)]
struct Level {
    literals: HashMap<Box<[u8]>, Node>,
    pwc: Option<Box<Node>>,
    fwc: Option<Box<Node>>,
}

impl Level {
    fn is_empty(&self) -> bool {
        self.literals.is_empty() && self.pwc.is_none() && self.fwc.is_none()
    }
}

/// Counters reported by `/subsz`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SublistStats {
    pub num_subs: u64,
    pub num_inserts: u64,
    pub num_removes: u64,
    pub num_matches: u64,
}

/// The trie plus its generation counter.
#[derive(Default)]
pub struct Sublist {
    root: RwLock<Level>,
    genid: AtomicU64,
    count: AtomicU64,
    inserts: AtomicU64,
    removes: AtomicU64,
    matches: AtomicU64,
    /// Who waits for a first subscriber on a subject (push consumers).
    pub watch: crate::sublist_watch::InterestWatch,
}

/// Split a subject into tokens, or `None` if it has an empty token.
fn tokens(subject: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::with_capacity(8);
    for t in subject.split(|&b| b == TSEP) {
        if t.is_empty() {
            return None;
        }
        out.push(t);
    }
    Some(out)
}

fn is_pwc(t: &[u8]) -> bool {
    t.len() == 1 && t[0] == PWC
}

fn is_fwc(t: &[u8]) -> bool {
    t.len() == 1 && t[0] == FWC
}

impl Sublist {
    pub fn new() -> Self {
        Self::default()
    }

    /// Current generation; changes whenever the set of subscriptions does.
    #[inline]
    pub fn genid(&self) -> u64 {
        self.genid.load(Ordering::Acquire)
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> SublistStats {
        SublistStats {
            num_subs: self.count(),
            num_inserts: self.inserts.load(Ordering::Relaxed),
            num_removes: self.removes.load(Ordering::Relaxed),
            num_matches: self.matches.load(Ordering::Relaxed),
        }
    }

    /// Add a subscription. Rejects subjects with empty tokens or a `>` that
    /// is not last, as nats-server does, before touching the trie (so a
    /// rejected subject leaves no empty nodes behind).
    pub fn insert(&self, sub: Arc<Subscription>) -> Result<(), SublistError> {
        let toks = tokens(&sub.subject).ok_or(SublistError::InvalidSubject)?;
        let (&leaf, path) = toks.split_last().ok_or(SublistError::InvalidSubject)?;
        if path.iter().any(|t| is_fwc(t)) {
            return Err(SublistError::InvalidSubject);
        }
        let watched = self.watch.is_armed().then(|| sub.clone());
        let mut root = self.root.write();
        if sub.slot() != NOT_LISTED {
            return Err(SublistError::AlreadyListed);
        }
        let mut level: &mut Level = &mut root;
        for t in path {
            level = child(level, t).next.get_or_insert_with(Default::default);
        }
        let node = child(level, leaf);
        match &sub.queue {
            None => node.psubs.push(sub),
            Some(q) => {
                let groups = node.qsubs.get_or_insert_with(Default::default);
                match groups.get_mut(&**q) {
                    Some(members) => members.push(sub),
                    None => {
                        let mut members = Members::default();
                        let name = q.clone();
                        members.push(sub);
                        groups.insert(name, members);
                    }
                }
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inserts.fetch_add(1, Ordering::Relaxed);
        self.genid.fetch_add(1, Ordering::Release);
        drop(root);
        if let Some(sub) = watched {
            self.watch.added(&sub.subject);
        }
        Ok(())
    }

    /// Remove a subscription; returns whether it was present.
    pub fn remove(&self, sub: &Arc<Subscription>) -> bool {
        let mut root = self.root.write();
        self.remove_locked(&mut root, std::slice::from_ref(sub)) == 1
    }

    /// Remove many subscriptions, e.g. when a client closes; returns how many
    /// were present. Takes them out [`REMOVE_CHUNK`] at a time, handing the
    /// write lock to waiting readers and writers between chunks, so a
    /// connection with 100k subscriptions does not stall its account's
    /// publishers for the whole batch. Each chunk bumps the generation, so
    /// match caches never hold a result older than the last chunk.
    pub fn remove_batch(&self, subs: &[Arc<Subscription>]) -> u64 {
        let mut chunks = subs.chunks(REMOVE_CHUNK);
        let Some(first) = chunks.next() else {
            return 0;
        };
        let mut root = self.root.write();
        let mut n = self.remove_locked(&mut root, first);
        for chunk in chunks {
            RwLockWriteGuard::bump(&mut root);
            n += self.remove_locked(&mut root, chunk);
        }
        n
    }

    fn remove_locked(&self, root: &mut Level, subs: &[Arc<Subscription>]) -> u64 {
        let mut n = 0;
        for sub in subs {
            // Never inserted, or already removed: nothing to look for.
            if sub.slot() == NOT_LISTED {
                continue;
            }
            if let Some(toks) = tokens(&sub.subject) {
                if remove_from(root, &toks, sub) {
                    n += 1;
                }
            }
        }
        if n > 0 {
            self.count.fetch_sub(n, Ordering::Relaxed);
            self.removes.fetch_add(n, Ordering::Relaxed);
            self.genid.fetch_add(1, Ordering::Release);
        }
        n
    }

    /// Every subscription interested in the literal `subject`.
    pub fn match_subject(&self, subject: &[u8]) -> MatchResult {
        self.matches.fetch_add(1, Ordering::Relaxed);
        let Some(toks) = tokens(subject) else {
            return MatchResult::default();
        };
        let root = self.root.read();
        let mut acc = Collector::default();
        match_level(&root, &toks, &mut acc);
        acc.result
    }

    /// Every subscription, for monitoring and (later) route interest sync.
    pub fn all(&self) -> Vec<Arc<Subscription>> {
        let root = self.root.read();
        let mut out = Vec::with_capacity(self.count() as usize);
        collect_level(&root, &mut out);
        out
    }
}

/// The node for token `t` under `level`, created if missing.
fn child<'l>(level: &'l mut Level, t: &[u8]) -> &'l mut Node {
    if is_pwc(t) {
        level.pwc.get_or_insert_with(Default::default)
    } else if is_fwc(t) {
        level.fwc.get_or_insert_with(Default::default)
    } else {
        level.literals.entry(Box::from(t)).or_default()
    }
}

/// Above this many groups in a result, a group is found by a hash lookup
/// rather than by comparing names.
const GROUPS_SCANNED: usize = 8;

/// A match result being built, with the names of its queue groups: groups
/// of the same name at different nodes (`foo.bar` and `foo.*`) form one.
#[derive(Default)]
struct Collector<'a> {
    result: MatchResult,
    /// The name of each of `result.qsubs`, by position.
    names: Vec<&'a [u8]>,
    /// Name to position, built once there are many groups.
    index: Option<HashMap<&'a [u8], usize>>,
}

impl<'a> Collector<'a> {
    fn add_node(&mut self, node: &'a Node) {
        self.result
            .psubs
            .extend(node.psubs.as_slice().iter().cloned());
        let Some(groups) = node.qsubs.as_deref() else {
            return;
        };
        // Names are unique within a node, so only groups from earlier nodes
        // can have the same name as one of this node's.
        let earlier = self.names.len();
        for (name, members) in groups {
            let name: &'a [u8] = name;
            let found = if earlier == 0 { None } else { self.find(name) };
            match found {
                Some(i) => self.result.qsubs[i].extend(members.as_slice().iter().cloned()),
                None => {
                    if let Some(index) = &mut self.index {
                        index.insert(name, self.names.len());
                    }
                    self.names.push(name);
                    self.result.qsubs.push(members.as_slice().to_vec());
                }
            }
        }
    }

    fn find(&mut self, name: &[u8]) -> Option<usize> {
        if self.names.len() <= GROUPS_SCANNED {
            return self.names.iter().position(|n| *n == name);
        }
        let names = &self.names;
        self.index
            .get_or_insert_with(|| names.iter().enumerate().map(|(i, n)| (*n, i)).collect())
            .get(name)
            .copied()
    }
}

fn match_level<'a>(level: &'a Level, toks: &[&[u8]], acc: &mut Collector<'a>) {
    let Some((first, rest)) = toks.split_first() else {
        return;
    };
    if let Some(fwc) = &level.fwc {
        acc.add_node(fwc);
    }
    if let Some(pwc) = &level.pwc {
        visit(pwc, rest, acc);
    }
    if let Some(lit) = level.literals.get(*first) {
        visit(lit, rest, acc);
    }
}

fn visit<'a>(node: &'a Node, rest: &[&[u8]], acc: &mut Collector<'a>) {
    if rest.is_empty() {
        acc.add_node(node);
    } else if let Some(next) = &node.next {
        match_level(next, rest, acc);
    }
}

fn remove_from(level: &mut Level, toks: &[&[u8]], sub: &Arc<Subscription>) -> bool {
    let Some((first, rest)) = toks.split_first() else {
        return false;
    };
    let node: &mut Node = if is_pwc(first) {
        match level.pwc.as_deref_mut() {
            Some(n) => n,
            None => return false,
        }
    } else if is_fwc(first) {
        match level.fwc.as_deref_mut() {
            Some(n) => n,
            None => return false,
        }
    } else {
        match level.literals.get_mut(*first) {
            Some(n) => n,
            None => return false,
        }
    };
    let removed = if rest.is_empty() {
        remove_sub(node, sub)
    } else {
        match node.next.as_deref_mut() {
            Some(next) => {
                let r = remove_from(next, rest, sub);
                if next.is_empty() {
                    node.next = None;
                }
                r
            }
            None => false,
        }
    };
    // Prune nodes that no longer hold anything.
    if removed && node.is_empty() {
        if is_pwc(first) {
            level.pwc = None;
        } else if is_fwc(first) {
            level.fwc = None;
        } else {
            level.literals.remove(*first);
        }
    }
    removed
}

fn remove_sub(node: &mut Node, sub: &Arc<Subscription>) -> bool {
    let Some(q) = &sub.queue else {
        return node.psubs.remove(sub);
    };
    let Some(groups) = node.qsubs.as_deref_mut() else {
        return false;
    };
    let Some(members) = groups.get_mut(&**q) else {
        return false;
    };
    if !members.remove(sub) {
        return false;
    }
    if members.is_empty() {
        groups.remove(&**q);
        if groups.is_empty() {
            node.qsubs = None;
        }
    }
    true
}

fn collect_level(level: &Level, out: &mut Vec<Arc<Subscription>>) {
    let nodes = level
        .literals
        .values()
        .chain(level.pwc.as_deref())
        .chain(level.fwc.as_deref());
    for node in nodes {
        out.extend(node.psubs.as_slice().iter().cloned());
        for members in node.qsubs.iter().flat_map(|g| g.values()) {
            out.extend(members.as_slice().iter().cloned());
        }
        if let Some(next) = &node.next {
            collect_level(next, out);
        }
    }
}

/// Maximum entries a per-connection cache holds before it is cleared.
const CACHE_MAX: usize = 1024;

/// A connection-local cache of match results, valid for one generation.
///
/// Owned by a single reader, so it needs no lock; the only shared state it
/// reads is the sublist's generation counter.
#[derive(Default)]
pub struct MatchCache {
    genid: u64,
    entries: HashMap<Box<[u8]>, Arc<MatchResult>>,
}

impl MatchCache {
    /// The match result for `subject`, from cache when still valid.
    pub fn get(&mut self, sublist: &Sublist, subject: &[u8]) -> Arc<MatchResult> {
        let genid = sublist.genid();
        if genid != self.genid {
            self.entries.clear();
            self.genid = genid;
        } else if let Some(r) = self.entries.get(subject) {
            return r.clone();
        }
        let result = Arc::new(sublist.match_subject(subject));
        // Only cache subjects someone listens on: unique inboxes with no
        // interest would otherwise churn the cache.
        if !result.is_empty() {
            if self.entries.len() >= CACHE_MAX {
                self.entries.clear();
            }
            self.entries.insert(Box::from(subject), result.clone());
        }
        result
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Drops the entries if the sublist changed since they were computed.
    /// `get` does this on every lookup, but a publisher that has gone quiet
    /// would otherwise keep the subscriptions of connections closed since
    /// (and what they hold) alive through its cache; its reader calls this on
    /// PING and PONG, which come at least once per ping interval.
    pub fn drop_if_stale(&mut self, sublist: &Sublist) {
        let genid = sublist.genid();
        if genid != self.genid {
            self.entries.clear();
            self.genid = genid;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscription::Subscription;

    fn sub(subject: &str, queue: Option<&str>) -> Arc<Subscription> {
        Arc::new(Subscription::detached(
            subject.as_bytes(),
            queue.map(str::as_bytes),
            b"1",
        ))
    }

    fn subjects(r: &MatchResult) -> Vec<String> {
        let mut v: Vec<String> = r
            .psubs
            .iter()
            .map(|s| String::from_utf8_lossy(&s.subject).into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn literal_and_wildcards() {
        let sl = Sublist::new();
        for s in [
            "foo.bar",
            "foo.*",
            "foo.>",
            ">",
            "*.bar",
            "foo.bar.baz",
            "*",
        ] {
            sl.insert(sub(s, None)).unwrap();
        }
        assert_eq!(
            subjects(&sl.match_subject(b"foo.bar")),
            vec!["*.bar", ">", "foo.*", "foo.>", "foo.bar"]
        );
        assert_eq!(
            subjects(&sl.match_subject(b"foo.bar.baz")),
            vec![">", "foo.>", "foo.bar.baz"]
        );
        assert_eq!(subjects(&sl.match_subject(b"foo")), vec!["*", ">"]);
        assert!(sl.match_subject(b"foo..bar").is_empty());
        assert_eq!(sl.count(), 7);
    }

    #[test]
    fn fwc_needs_a_token() {
        let sl = Sublist::new();
        sl.insert(sub("foo.>", None)).unwrap();
        assert!(sl.match_subject(b"foo").is_empty());
        assert_eq!(sl.match_subject(b"foo.a.b.c").psubs.len(), 1);
    }

    #[test]
    fn rejects_bad_subjects() {
        let sl = Sublist::new();
        for s in ["foo..bar", "foo.>.bar", ".foo", "foo."] {
            assert_eq!(
                sl.insert(sub(s, None)),
                Err(SublistError::InvalidSubject),
                "{s}"
            );
        }
        assert_eq!(sl.count(), 0);
    }

    #[test]
    fn queue_groups_merge_by_name() {
        let sl = Sublist::new();
        sl.insert(sub("foo.bar", Some("q1"))).unwrap();
        sl.insert(sub("foo.*", Some("q1"))).unwrap();
        sl.insert(sub("foo.*", Some("q2"))).unwrap();
        let r = sl.match_subject(b"foo.bar");
        assert!(r.psubs.is_empty());
        let mut sizes: Vec<usize> = r.qsubs.iter().map(Vec::len).collect();
        sizes.sort();
        assert_eq!(sizes, vec![1, 2]);
    }

    #[test]
    fn remove_prunes_and_bumps_generation() {
        let sl = Sublist::new();
        let a = sub("foo.bar.baz", None);
        let b = sub("foo.*.baz", Some("q"));
        sl.insert(a.clone()).unwrap();
        sl.insert(b.clone()).unwrap();
        let g = sl.genid();
        assert!(sl.remove(&a));
        assert!(!sl.remove(&a));
        assert!(sl.genid() > g);
        assert!(sl.remove(&b));
        assert_eq!(sl.count(), 0);
        assert!(sl.root.read().is_empty());
    }

    #[test]
    fn cache_stays_correct_across_changes() {
        let sl = Sublist::new();
        let mut cache = MatchCache::default();
        assert!(cache.get(&sl, b"a.b").is_empty());
        let s = sub("a.*", None);
        sl.insert(s.clone()).unwrap();
        assert_eq!(cache.get(&sl, b"a.b").psubs.len(), 1);
        assert_eq!(cache.get(&sl, b"a.b").psubs.len(), 1);
        sl.remove(&s);
        assert!(cache.get(&sl, b"a.b").is_empty());
    }

    #[test]
    fn stale_entries_let_go_of_removed_subscriptions() {
        let sl = Sublist::new();
        let mut cache = MatchCache::default();
        let s = sub("a.*", None);
        sl.insert(s.clone()).unwrap();
        assert_eq!(cache.get(&sl, b"a.b").psubs.len(), 1);
        let held = Arc::strong_count(&s);
        cache.drop_if_stale(&sl);
        assert_eq!(Arc::strong_count(&s), held, "unchanged sublist: kept");
        sl.remove(&s);
        cache.drop_if_stale(&sl);
        assert_eq!(Arc::strong_count(&s), 1, "only the test holds it now");
    }

    /// Every member's recorded slot is its index, and no list is empty.
    fn check_slots(sl: &Sublist) {
        fn level(l: &Level) {
            for node in l
                .literals
                .values()
                .chain(l.pwc.as_deref())
                .chain(l.fwc.as_deref())
            {
                for (i, s) in node.psubs.as_slice().iter().enumerate() {
                    assert_eq!(s.slot(), i, "{s:?}");
                }
                if let Some(groups) = &node.qsubs {
                    assert!(!groups.is_empty(), "empty group map kept");
                    for m in groups.values() {
                        assert!(!m.is_empty(), "empty group kept");
                        for (i, s) in m.as_slice().iter().enumerate() {
                            assert_eq!(s.slot(), i, "{s:?}");
                        }
                    }
                }
                if let Some(next) = &node.next {
                    assert!(!next.is_empty(), "empty level kept");
                    level(next);
                }
                assert!(!node.is_empty(), "empty node kept");
            }
        }
        level(&sl.root.read());
    }

    fn sub_sid(subject: &str, queue: Option<&str>, sid: usize) -> Arc<Subscription> {
        Arc::new(Subscription::detached(
            subject.as_bytes(),
            queue.map(str::as_bytes),
            sid.to_string().as_bytes(),
        ))
    }

    fn ptrs(subs: &[Arc<Subscription>]) -> Vec<usize> {
        let mut v: Vec<usize> = subs.iter().map(|s| Arc::as_ptr(s) as usize).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn many_subscribers_on_one_subject() {
        const N: usize = 10_000;
        let sl = Sublist::new();
        let subs: Vec<_> = (0..N).map(|i| sub_sid("x", None, i)).collect();
        for s in &subs {
            sl.insert(s.clone()).unwrap();
        }
        assert_eq!(sl.match_subject(b"x").psubs.len(), N);
        // The middle one, the last one, the first one.
        for i in [N / 2, N - 1, 0] {
            assert!(sl.remove(&subs[i]), "{i}");
            assert!(!sl.remove(&subs[i]), "{i} twice");
            check_slots(&sl);
        }
        let left: Vec<_> = subs
            .iter()
            .enumerate()
            .filter(|(i, _)| ![0, N / 2, N - 1].contains(i))
            .map(|(_, s)| s.clone())
            .collect();
        assert_eq!(ptrs(&sl.match_subject(b"x").psubs), ptrs(&left));
        assert_eq!(sl.count(), (N - 3) as u64);
        // The rest one by one, from the front: each moves the last member.
        for s in &left {
            assert!(sl.remove(s));
        }
        assert!(sl.match_subject(b"x").is_empty());
        assert!(sl.root.read().is_empty());
        let st = sl.stats();
        assert_eq!(
            (st.num_subs, st.num_inserts, st.num_removes),
            (0, N as u64, N as u64)
        );
    }

    #[test]
    fn many_queue_groups_on_one_subject() {
        const GROUPS: usize = 1_000;
        let sl = Sublist::new();
        let names: Vec<String> = (0..GROUPS).map(|g| format!("g{g}")).collect();
        let mut members = Vec::new();
        for (g, name) in names.iter().enumerate() {
            for m in 0..3 {
                let s = sub_sid("x", Some(name), g * 3 + m);
                sl.insert(s.clone()).unwrap();
                members.push(s);
            }
        }
        let r = sl.match_subject(b"x");
        assert_eq!(r.qsubs.len(), GROUPS);
        assert!(r.qsubs.iter().all(|g| g.len() == 3));
        // Empty every even group; take one member out of every odd one.
        for (i, s) in members.iter().enumerate() {
            let (g, m) = (i / 3, i % 3);
            if g % 2 == 0 || m == 1 {
                assert!(sl.remove(s));
                assert!(!sl.remove(s));
            }
        }
        check_slots(&sl);
        let r = sl.match_subject(b"x");
        assert_eq!(r.qsubs.len(), GROUPS / 2);
        for g in &r.qsubs {
            assert_eq!(g.len(), 2);
            let q = g[0].queue.clone();
            assert!(g.iter().all(|s| s.queue == q), "one group per entry");
        }
        let groups = sl.root.read().literals[&b"x"[..]]
            .qsubs
            .as_ref()
            .map_or(0, |g| g.len());
        assert_eq!(groups, GROUPS / 2, "emptied groups are dropped");
        assert_eq!(sl.remove_batch(&members), (GROUPS / 2 * 2) as u64);
        assert!(sl.root.read().is_empty());
    }

    #[test]
    fn many_groups_merge_across_nodes() {
        let sl = Sublist::new();
        for g in 0..3 * GROUPS_SCANNED {
            let name = format!("q{g}");
            sl.insert(sub("foo.bar", Some(&name))).unwrap();
            sl.insert(sub("foo.*", Some(&name))).unwrap();
            sl.insert(sub(">", Some(&name))).unwrap();
        }
        sl.insert(sub("foo.*", Some("only-star"))).unwrap();
        let r = sl.match_subject(b"foo.bar");
        let mut sizes: Vec<usize> = r.qsubs.iter().map(Vec::len).collect();
        sizes.sort();
        let mut want = vec![3; 3 * GROUPS_SCANNED];
        want.insert(0, 1);
        assert_eq!(sizes, want);
        for g in &r.qsubs {
            let q = g[0].queue.clone();
            assert!(g.iter().all(|s| s.queue == q));
        }
    }

    #[test]
    fn batch_removal_of_a_mixed_set() {
        let sl = Sublist::new();
        let mut batch = Vec::new();
        let mut kept = Vec::new();
        for i in 0..3 * REMOVE_CHUNK + 7 {
            let subject = ["x", "x.y", "x.*", "x.>", "a.b.c"][i % 5];
            let queue = [None, Some("q1"), Some("q2")][i % 3];
            let s = sub_sid(subject, queue, i);
            sl.insert(s.clone()).unwrap();
            if i % 4 == 0 {
                kept.push(s);
            } else {
                batch.push(s);
            }
        }
        let present = batch.len() as u64;
        // Already removed, never inserted, and a duplicate in the batch:
        // none of them counts.
        let gone = batch[1].clone();
        assert!(sl.remove(&gone));
        batch.push(sub("x", None));
        batch.push(batch[2].clone());
        let g = sl.genid();
        let before = sl.stats();
        assert_eq!(sl.remove_batch(&batch), present - 1);
        // One generation per chunk that removed something.
        assert_eq!(sl.genid() - g, batch.len().div_ceil(REMOVE_CHUNK) as u64);
        let after = sl.stats();
        assert_eq!(after.num_subs, kept.len() as u64);
        assert_eq!(after.num_removes - before.num_removes, present - 1);
        assert_eq!(after.num_inserts, before.num_inserts);
        check_slots(&sl);
        assert_eq!(ptrs(&sl.all()), ptrs(&kept));
        let r = sl.match_subject(b"x.y");
        let matched: Vec<_> = r
            .psubs
            .iter()
            .chain(r.qsubs.iter().flatten())
            .cloned()
            .collect();
        let want: Vec<_> = kept
            .iter()
            .filter(|s| crate::subject::matches(&s.subject, b"x.y"))
            .cloned()
            .collect();
        assert_eq!(ptrs(&matched), ptrs(&want));
        assert_eq!(sl.remove_batch(&[]), 0);
        let g = sl.genid();
        assert_eq!(sl.remove_batch(&batch), 0, "all gone already");
        assert_eq!(sl.genid(), g, "nothing changed, no new generation");
        assert_eq!(sl.remove_batch(&kept), kept.len() as u64);
        assert!(sl.root.read().is_empty(), "pruned to nothing");
    }

    #[test]
    fn a_subscription_is_listed_once() {
        let sl = Sublist::new();
        let other = Sublist::new();
        let s = sub("a.b", Some("q"));
        sl.insert(s.clone()).unwrap();
        assert_eq!(sl.insert(s.clone()), Err(SublistError::AlreadyListed));
        assert_eq!(other.insert(s.clone()), Err(SublistError::AlreadyListed));
        assert!(!other.remove(&s), "not in the other one");
        assert_eq!((sl.count(), other.count()), (1, 0));
        assert!(sl.remove(&s));
        other.insert(s.clone()).unwrap();
        assert!(!sl.remove(&s));
        assert!(other.remove(&s));
        assert!(other.root.read().is_empty());
    }

    #[test]
    fn rejected_subjects_leave_no_nodes() {
        let sl = Sublist::new();
        for s in ["foo.>.bar", "a.b.>.>", "x..y"] {
            assert_eq!(sl.insert(sub(s, None)), Err(SublistError::InvalidSubject));
        }
        assert!(sl.root.read().is_empty());
        assert_eq!(sl.genid(), 0);
    }

    /// Random inserts and removals (single, double, in batches) on a few
    /// subjects with wildcards and queue groups, compared after every step
    /// with a plain list of the live subscriptions.
    #[test]
    fn randomized_against_a_model() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5b1);
        let toks = ["a", "b", "*"];
        let queues = [None, Some("q1"), Some("q2"), Some("q3")];
        let probes = ["a", "b", "a.a", "a.b", "b.a", "a.b.a", "b.b.b"];
        let sl = Sublist::new();
        let mut live: Vec<Arc<Subscription>> = Vec::new();
        let mut dead: Vec<Arc<Subscription>> = Vec::new();
        for step in 0..4_000 {
            match rng.random_range(0..10) {
                0..=4 => {
                    let n = rng.random_range(1..=3);
                    let mut t: Vec<&str> = (0..n).map(|_| toks[rng.random_range(0..3)]).collect();
                    if rng.random_bool(0.15) {
                        t.push(">");
                    }
                    let q = queues[rng.random_range(0..queues.len())];
                    let s = sub_sid(&t.join("."), q, step);
                    sl.insert(s.clone()).unwrap();
                    live.push(s);
                }
                5..=7 if !live.is_empty() => {
                    let s = live.swap_remove(rng.random_range(0..live.len()));
                    assert!(sl.remove(&s), "step {step}");
                    dead.push(s);
                }
                8 if !dead.is_empty() => {
                    let s = &dead[rng.random_range(0..dead.len())];
                    assert!(!sl.remove(s), "step {step}: removed twice");
                }
                _ => {
                    let mut batch = Vec::new();
                    let mut want = 0;
                    for _ in 0..rng.random_range(0..20) {
                        if !live.is_empty() && rng.random_bool(0.7) {
                            let s = live.swap_remove(rng.random_range(0..live.len()));
                            batch.push(s.clone());
                            dead.push(s);
                            want += 1;
                        } else if !dead.is_empty() {
                            batch.push(dead[rng.random_range(0..dead.len())].clone());
                        }
                    }
                    assert_eq!(sl.remove_batch(&batch), want, "step {step}");
                }
            }
            assert_eq!(sl.count(), live.len() as u64, "step {step}");
            if step % 50 == 0 {
                check_slots(&sl);
                assert_eq!(ptrs(&sl.all()), ptrs(&live), "step {step}");
            }
            let probe = probes[rng.random_range(0..probes.len())];
            let r = sl.match_subject(probe.as_bytes());
            let matching: Vec<_> = live
                .iter()
                .filter(|s| crate::subject::matches(&s.subject, probe.as_bytes()))
                .cloned()
                .collect();
            let plain: Vec<_> = matching
                .iter()
                .filter(|s| s.queue.is_none())
                .cloned()
                .collect();
            assert_eq!(ptrs(&r.psubs), ptrs(&plain), "step {step} {probe}");
            let mut got: Vec<(Option<String>, Vec<usize>)> = r
                .qsubs
                .iter()
                .map(|g| (g[0].queue_str(), ptrs(g)))
                .collect();
            got.sort();
            let mut want: Vec<(Option<String>, Vec<usize>)> = queues[1..]
                .iter()
                .map(|q| {
                    let g: Vec<_> = matching
                        .iter()
                        .filter(|s| s.queue_str().as_deref() == *q)
                        .cloned()
                        .collect();
                    (q.map(String::from), ptrs(&g))
                })
                .filter(|(_, g)| !g.is_empty())
                .collect();
            want.sort();
            assert_eq!(got, want, "step {step} {probe}");
        }
        sl.remove_batch(&live);
        assert!(sl.root.read().is_empty());
    }

    #[test]
    fn all_lists_everything() {
        let sl = Sublist::new();
        for s in ["a", "a.b", "a.*", "a.>", "b.c.d"] {
            sl.insert(sub(s, None)).unwrap();
        }
        sl.insert(sub("a", Some("q"))).unwrap();
        assert_eq!(sl.all().len(), 6);
        sl.remove_batch(&sl.all());
        assert_eq!(sl.count(), 0);
    }
}
