//! `/subsz` (alias `/subscriptionsz`): subscription index statistics and,
//! with `subs=1`, the subscriptions themselves.

use serde::Serialize;

use super::connz::{sid_order, SubDetail, DEFAULT_LIST_SIZE};
use super::gofmt::{GoFloat, GoTime};
use super::query::{page_bounds, Params};
use super::{accounts, Monitor, ZError};
use crate::subject;

#[derive(Serialize)]
pub(super) struct Subsz {
    server_id: String,
    now: GoTime,
    num_subscriptions: u64,
    /// Tribune caches match results per connection, not in the shared
    /// index, so the index-cache figures are zero.
    num_cache: u64,
    num_inserts: u64,
    num_removes: u64,
    num_matches: u64,
    cache_hit_rate: GoFloat,
    max_fanout: u64,
    avg_fanout: GoFloat,
    total: usize,
    offset: usize,
    limit: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscriptions_list: Vec<SubDetail>,
}

/// nats-server's `IsValidLiteralSubject`: no empty token, no wildcard token.
fn is_literal_subject(s: &str) -> bool {
    s.split('.').all(|t| !t.is_empty() && t != "*" && t != ">")
}

pub(super) fn data(m: &Monitor, p: &Params) -> Result<Subsz, ZError> {
    let subs = p.bool("subs").map_err(ZError::BadRequest)?;
    let offset = p.int("offset").map_err(ZError::BadRequest)?.max(0) as usize;
    let limit = match p.int("limit").map_err(ZError::BadRequest)? {
        v if v <= 0 => DEFAULT_LIST_SIZE,
        v => v as usize,
    };
    let test = p.get("test");
    if !test.is_empty() && !is_literal_subject(test) {
        return Err(ZError::BadRequest(format!(
            "invalid test subject, must be valid publish subject: {test}"
        )));
    }
    let filter_acc = p.get("acc");

    let mut out = Subsz {
        server_id: m.server.id.clone(),
        now: GoTime(std::time::SystemTime::now()),
        num_subscriptions: 0,
        num_cache: 0,
        num_inserts: 0,
        num_removes: 0,
        num_matches: 0,
        cache_hit_rate: GoFloat(0.0),
        max_fanout: 0,
        avg_fanout: GoFloat(0.0),
        total: 0,
        offset,
        limit,
        subscriptions_list: Vec::new(),
    };
    let mut details: Vec<SubDetail> = Vec::new();
    for acc in accounts(&m.server) {
        if !filter_acc.is_empty() && acc.name != filter_acc {
            continue;
        }
        let st = acc.sublist.stats();
        out.num_subscriptions += st.num_subs;
        out.num_inserts += st.num_inserts;
        out.num_removes += st.num_removes;
        out.num_matches += st.num_matches;
        if !subs {
            continue;
        }
        for sub in acc.sublist.all() {
            // Local subscriptions only, as nats-server lists them: a
            // route's stand for another server's, listed there.
            if sub.is_closed() || sub.client.kind == crate::client::ConnKind::Route {
                continue;
            }
            if !test.is_empty() && !subject::matches(&sub.subject, test.as_bytes()) {
                continue;
            }
            let mut d = SubDetail::of(&sub);
            d.account = acc.name.clone();
            d.account_tag = acc.name.clone();
            details.push(d);
        }
    }
    if subs {
        // The index has no stable order; list by account, connection and sid
        // so that paging is consistent between requests.
        details.sort_by(|a, b| {
            a.account
                .cmp(&b.account)
                .then(a.cid.cmp(&b.cid))
                .then_with(|| sid_order(&a.sid, &b.sid))
        });
        out.total = details.len();
        let (lo, hi) = page_bounds(offset, limit, details.len());
        out.subscriptions_list = details.drain(lo..hi).collect();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_subjects() {
        assert!(is_literal_subject("foo.bar"));
        assert!(is_literal_subject("foo.b*r"));
        assert!(!is_literal_subject("foo.*"));
        assert!(!is_literal_subject("foo.>"));
        assert!(!is_literal_subject("foo..bar"));
        assert!(!is_literal_subject(""));
    }
}
