//! Per-user publish and subscribe permissions, with nats-server's
//! semantics:
//!
//! - An `allow` list, when present, is exhaustive: anything it does not
//!   cover is refused. A `deny` list always wins over `allow`.
//! - A subscription is allowed when its subject is covered by an allow
//!   filter (a wildcard subscription must fit entirely inside one), unless a
//!   deny filter covers it entirely. A wildcard subscription that only
//!   overlaps a deny filter is accepted, and the denied subjects are filtered
//!   out when messages are delivered.
//! - An allow entry may name a queue group (`"orders.* workers"`): it then
//!   permits only queue subscriptions in that group.
//! - `allow_responses` lets a user publish to the reply subject of a request
//!   it received, a limited number of times within a time window, even where
//!   publish permissions would forbid it: how a service answers without
//!   being allowed to publish anywhere else.

use std::time::Duration;

use crate::subject::{FWC, PWC, TSEP};

/// nats-server's defaults for `allow_responses: true`.
pub const DEFAULT_RESPONSE_MAX_MSGS: u64 = 1;
pub const DEFAULT_RESPONSE_EXPIRES: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectPermission {
    /// `None`: everything not denied is allowed.
    pub allow: Option<Vec<String>>,
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePermission {
    pub max_msgs: u64,
    pub expires: Duration,
}

impl Default for ResponsePermission {
    fn default() -> Self {
        ResponsePermission {
            max_msgs: DEFAULT_RESPONSE_MAX_MSGS,
            expires: DEFAULT_RESPONSE_EXPIRES,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Option<SubjectPermission>,
    pub subscribe: Option<SubjectPermission>,
    pub allow_responses: Option<ResponsePermission>,
}

/// The verdict on a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubVerdict {
    Allowed,
    Denied,
    /// Allowed, but messages on these subjects must not be delivered.
    AllowedExcept(Vec<String>),
}

fn tokens(s: &str) -> impl Iterator<Item = &[u8]> {
    s.as_bytes().split(|b| *b == TSEP)
}

/// Is every subject matched by `sub` also matched by `filter`?
pub fn is_subset(sub: &str, filter: &str) -> bool {
    let mut s = tokens(sub);
    let mut f = tokens(filter);
    loop {
        match (s.next(), f.next()) {
            (None, None) => return true,
            (Some(_), Some(ft)) if ft == [FWC] => return true,
            (Some(st), Some(ft)) => {
                if st == [FWC] {
                    return false;
                }
                if ft == [PWC] {
                    continue;
                }
                if st != ft {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Can any subject match both `a` and `b`?
pub fn overlaps(a: &str, b: &str) -> bool {
    let mut x = tokens(a);
    let mut y = tokens(b);
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(t), Some(_)) | (Some(_), Some(t)) if t == [FWC] => return true,
            (Some(p), Some(q)) => {
                if p != q && p != [PWC] && q != [PWC] {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Split an allow entry into its subject and optional queue group.
fn entry(e: &str) -> (&str, Option<&str>) {
    match e.split_once(' ') {
        Some((s, q)) => (s, Some(q.trim())),
        None => (e, None),
    }
}

impl SubjectPermission {
    /// May a message be published to the literal `subject`?
    pub fn permits_publish(&self, subject: &str) -> bool {
        let subj = subject.as_bytes();
        if self
            .deny
            .iter()
            .any(|d| crate::subject::matches(d.as_bytes(), subj))
        {
            return false;
        }
        match &self.allow {
            None => true,
            Some(allow) => allow
                .iter()
                .any(|a| crate::subject::matches(a.as_bytes(), subj)),
        }
    }

    /// May `subject` (maybe a wildcard) be subscribed to, in `queue`?
    pub fn check_subscribe(&self, subject: &str, queue: Option<&str>) -> SubVerdict {
        if let Some(allow) = &self.allow {
            let ok = allow.iter().any(|a| {
                let (filter, group) = entry(a);
                is_subset(subject, filter) && (group.is_none() || group == queue)
            });
            if !ok {
                return SubVerdict::Denied;
            }
        }
        if self.deny.iter().any(|d| {
            let (filter, group) = entry(d);
            is_subset(subject, filter) && (group.is_none() || group == queue)
        }) {
            return SubVerdict::Denied;
        }
        let partial: Vec<String> = self
            .deny
            .iter()
            .filter(|d| entry(d).1.is_none() && overlaps(subject, d))
            .cloned()
            .collect();
        if partial.is_empty() {
            SubVerdict::Allowed
        } else {
            SubVerdict::AllowedExcept(partial)
        }
    }
}

impl Permissions {
    /// nats-server's rule for `allow_responses`: a user who may answer
    /// requests but has no publish allow list may publish nothing else, and
    /// a zero max or expiry means the default.
    pub fn with_response_defaults(mut self) -> Self {
        if let Some(r) = &mut self.allow_responses {
            if r.max_msgs == 0 {
                r.max_msgs = DEFAULT_RESPONSE_MAX_MSGS;
            }
            if r.expires.is_zero() {
                r.expires = DEFAULT_RESPONSE_EXPIRES;
            }
            let publish = self.publish.get_or_insert_with(Default::default);
            publish.allow.get_or_insert_with(Vec::new);
        }
        self
    }

    pub fn can_publish(&self, subject: &str) -> bool {
        self.publish
            .as_ref()
            .is_none_or(|p| p.permits_publish(subject))
    }

    pub fn check_subscribe(&self, subject: &str, queue: Option<&str>) -> SubVerdict {
        self.subscribe
            .as_ref()
            .map_or(SubVerdict::Allowed, |p| p.check_subscribe(subject, queue))
    }
}

/// `-ERR` text for a refused publish, exactly as nats-server words it.
pub fn publish_violation(subject: &str) -> String {
    format!("Permissions Violation for Publish to {subject:?}")
}

/// Reply subjects only the server hands out: a service import's response
/// subject, a JetStream ack, a gateway reply. A client may not publish with
/// one as its reply (nats-server's `isReservedReply`): the answer would go
/// where the client may not publish itself.
pub fn is_reserved_reply(reply: &[u8]) -> bool {
    // `_R_.` alone counts; the others need something after the prefix.
    reply.starts_with(b"_R_.")
        || [&b"$JS.ACK."[..], b"_GR_."]
            .iter()
            .any(|p| reply.len() > p.len() && reply.starts_with(p))
}

/// `-ERR` text for a publish whose reply subject is reserved, as
/// nats-server words it.
pub fn reply_violation(reply: &str) -> String {
    format!("Permissions Violation for Publish with Reply of {reply:?}")
}

/// `-ERR` text for a refused subscription, exactly as nats-server 2.15
/// sends it (its log line names the sid; the client error does not).
pub fn subscribe_violation(subject: &str, queue: Option<&str>) -> String {
    match queue {
        Some(q) => {
            format!("Permissions Violation for Subscription to {subject:?} using queue {q:?}")
        }
        None => format!("Permissions Violation for Subscription to {subject:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(allow: Option<&[&str]>, deny: &[&str]) -> SubjectPermission {
        SubjectPermission {
            allow: allow.map(|a| a.iter().map(|s| s.to_string()).collect()),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn subsets() {
        assert!(is_subset("foo.bar", "foo.*"));
        assert!(is_subset("foo.*", "foo.*"));
        assert!(is_subset("foo.*", "foo.>"));
        assert!(is_subset("foo.bar.baz", "foo.>"));
        assert!(is_subset("foo.>", "foo.>"));
        assert!(!is_subset("foo.>", "foo.*"));
        assert!(!is_subset("foo", "foo.>"));
        assert!(!is_subset("foo.*", "foo.bar"));
        assert!(is_subset("anything.at.all", ">"));
    }

    #[test]
    fn overlap() {
        assert!(overlaps("foo.>", "foo.bar"));
        assert!(overlaps("foo.*", "*.bar"));
        assert!(!overlaps("foo.*", "bar.*"));
        assert!(!overlaps("foo.bar", "foo.baz"));
        assert!(!overlaps("foo", "foo.>"));
    }

    #[test]
    fn publish() {
        let p = perm(Some(&["sports.>", "_INBOX.>"]), &["sports.admin.>"]);
        assert!(p.permits_publish("sports.football.1"));
        assert!(p.permits_publish("_INBOX.x"));
        assert!(!p.permits_publish("sports.admin.reset"));
        assert!(!p.permits_publish("other"));
        let deny_all = perm(None, &[">"]);
        assert!(!deny_all.permits_publish("x"));
        assert!(perm(None, &[]).permits_publish("x"));
    }

    #[test]
    fn subscribe() {
        let p = perm(
            Some(&["sports.football.>", "jobs.* workers"]),
            &["sports.football.secret"],
        );
        assert_eq!(
            p.check_subscribe("sports.football.42", None),
            SubVerdict::Allowed
        );
        assert_eq!(
            p.check_subscribe("sports.tennis.1", None),
            SubVerdict::Denied
        );
        assert_eq!(p.check_subscribe("sports.>", None), SubVerdict::Denied);
        assert_eq!(
            p.check_subscribe("sports.football.secret", None),
            SubVerdict::Denied
        );
        assert_eq!(
            p.check_subscribe("sports.football.*", None),
            SubVerdict::AllowedExcept(vec!["sports.football.secret".into()])
        );
        assert_eq!(
            p.check_subscribe("jobs.a", Some("workers")),
            SubVerdict::Allowed
        );
        assert_eq!(p.check_subscribe("jobs.a", None), SubVerdict::Denied);
        assert_eq!(
            p.check_subscribe("jobs.a", Some("other")),
            SubVerdict::Denied
        );
    }

    #[test]
    fn error_texts() {
        assert_eq!(
            publish_violation("a.b"),
            r#"Permissions Violation for Publish to "a.b""#
        );
        assert_eq!(
            subscribe_violation("a.*", None),
            r#"Permissions Violation for Subscription to "a.*""#
        );
        assert_eq!(
            subscribe_violation("a", Some("q")),
            r#"Permissions Violation for Subscription to "a" using queue "q""#
        );
    }
}
