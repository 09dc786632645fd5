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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::subject::{FWC, PWC, TSEP};
use crate::subscription::Subscription;

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

/// Errors from inserting a subscription with a malformed subject.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SublistError {
    #[error("invalid subject")]
    InvalidSubject,
}

/// A queue group at one node: its name and members.
type QueueGroup = (Box<[u8]>, Vec<Arc<Subscription>>);

#[derive(Default)]
struct Node {
    next: Option<Box<Level>>,
    psubs: Vec<Arc<Subscription>>,
    /// Queue groups at this node, by queue name.
    qsubs: Vec<QueueGroup>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.psubs.is_empty()
            && self.qsubs.is_empty()
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
    /// is not last, as nats-server does.
    pub fn insert(&self, sub: Arc<Subscription>) -> Result<(), SublistError> {
        let toks = tokens(&sub.subject).ok_or(SublistError::InvalidSubject)?;
        let mut root = self.root.write();
        let mut level: &mut Level = &mut root;
        let last = toks.len() - 1;
        let mut node: Option<&mut Node> = None;
        for (i, t) in toks.iter().enumerate() {
            let n: &mut Node = if t.len() == 1 && t[0] == PWC {
                level.pwc.get_or_insert_with(Default::default)
            } else if t.len() == 1 && t[0] == FWC {
                if i != last {
                    return Err(SublistError::InvalidSubject);
                }
                level.fwc.get_or_insert_with(Default::default)
            } else {
                level.literals.entry(Box::from(*t)).or_default()
            };
            if i == last {
                node = Some(n);
                break;
            }
            level = n.next.get_or_insert_with(Default::default);
        }
        let node = node.ok_or(SublistError::InvalidSubject)?;
        match &sub.queue {
            None => node.psubs.push(sub),
            Some(q) => match node.qsubs.iter_mut().find(|(name, _)| name == q) {
                Some((_, members)) => members.push(sub),
                None => node.qsubs.push((q.clone(), vec![sub])),
            },
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inserts.fetch_add(1, Ordering::Relaxed);
        self.genid.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Remove a subscription; returns whether it was present.
    pub fn remove(&self, sub: &Arc<Subscription>) -> bool {
        let Some(toks) = tokens(&sub.subject) else {
            return false;
        };
        let mut root = self.root.write();
        let removed = remove_from(&mut root, &toks, sub);
        if removed {
            self.count.fetch_sub(1, Ordering::Relaxed);
            self.removes.fetch_add(1, Ordering::Relaxed);
            self.genid.fetch_add(1, Ordering::Release);
        }
        removed
    }

    /// Remove many subscriptions under one lock, e.g. when a client closes.
    pub fn remove_batch(&self, subs: &[Arc<Subscription>]) {
        if subs.is_empty() {
            return;
        }
        let mut root = self.root.write();
        let mut n = 0;
        for sub in subs {
            if let Some(toks) = tokens(&sub.subject) {
                if remove_from(&mut root, &toks, sub) {
                    n += 1;
                }
            }
        }
        if n > 0 {
            self.count.fetch_sub(n, Ordering::Relaxed);
            self.removes.fetch_add(n, Ordering::Relaxed);
            self.genid.fetch_add(1, Ordering::Release);
        }
    }

    /// Every subscription interested in the literal `subject`.
    pub fn match_subject(&self, subject: &[u8]) -> MatchResult {
        self.matches.fetch_add(1, Ordering::Relaxed);
        let mut result = MatchResult::default();
        let Some(toks) = tokens(subject) else {
            return result;
        };
        let root = self.root.read();
        match_level(&root, &toks, &mut result);
        result
    }

    /// Every subscription, for monitoring and (later) route interest sync.
    pub fn all(&self) -> Vec<Arc<Subscription>> {
        let root = self.root.read();
        let mut out = Vec::with_capacity(self.count() as usize);
        collect_level(&root, &mut out);
        out
    }
}

fn add_node(node: &Node, result: &mut MatchResult) {
    result.psubs.extend(node.psubs.iter().cloned());
    for (name, members) in &node.qsubs {
        if members.is_empty() {
            continue;
        }
        // Groups of the same name at different nodes form one group.
        let existing = result
            .qsubs
            .iter_mut()
            .find(|g| g.first().and_then(|s| s.queue.as_ref()) == Some(name));
        match existing {
            Some(g) => g.extend(members.iter().cloned()),
            None => result.qsubs.push(members.clone()),
        }
    }
}

fn match_level(level: &Level, toks: &[&[u8]], result: &mut MatchResult) {
    let Some((first, rest)) = toks.split_first() else {
        return;
    };
    if let Some(fwc) = &level.fwc {
        add_node(fwc, result);
    }
    if let Some(pwc) = &level.pwc {
        visit(pwc, rest, result);
    }
    if let Some(lit) = level.literals.get(*first) {
        visit(lit, rest, result);
    }
}

fn visit(node: &Node, rest: &[&[u8]], result: &mut MatchResult) {
    if rest.is_empty() {
        add_node(node, result);
    } else if let Some(next) = &node.next {
        match_level(next, rest, result);
    }
}

fn remove_from(level: &mut Level, toks: &[&[u8]], sub: &Arc<Subscription>) -> bool {
    let Some((first, rest)) = toks.split_first() else {
        return false;
    };
    let is_pwc = first.len() == 1 && first[0] == PWC;
    let is_fwc = first.len() == 1 && first[0] == FWC;
    let node: &mut Node = if is_pwc {
        match level.pwc.as_deref_mut() {
            Some(n) => n,
            None => return false,
        }
    } else if is_fwc {
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
        if is_pwc {
            level.pwc = None;
        } else if is_fwc {
            level.fwc = None;
        } else {
            level.literals.remove(*first);
        }
    }
    removed
}

fn remove_sub(node: &mut Node, sub: &Arc<Subscription>) -> bool {
    match &sub.queue {
        None => match node.psubs.iter().position(|s| Arc::ptr_eq(s, sub)) {
            Some(i) => {
                node.psubs.swap_remove(i);
                true
            }
            None => false,
        },
        Some(q) => {
            let Some(gi) = node.qsubs.iter().position(|(name, _)| name == q) else {
                return false;
            };
            let members = &mut node.qsubs[gi].1;
            let Some(i) = members.iter().position(|s| Arc::ptr_eq(s, sub)) else {
                return false;
            };
            members.swap_remove(i);
            if members.is_empty() {
                node.qsubs.swap_remove(gi);
            }
            true
        }
    }
}

fn collect_level(level: &Level, out: &mut Vec<Arc<Subscription>>) {
    let nodes = level
        .literals
        .values()
        .chain(level.pwc.as_deref())
        .chain(level.fwc.as_deref());
    for node in nodes {
        out.extend(node.psubs.iter().cloned());
        for (_, members) in &node.qsubs {
            out.extend(members.iter().cloned());
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
