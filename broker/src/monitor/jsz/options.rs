//! `/jsz`'s query parameters, decoded as nats-server's `HandleJsz` decodes
//! them (same names, same order, so the first bad one gives the same 400)
//! and completed as its `Jsz` completes `JSzOptions` (defaults, and the
//! options one implies).

use super::super::query::Params;

/// Accounts listed at most when `limit` is not given (nats-server's default).
const DEFAULT_LIMIT: i64 = 1024;

/// What a `/jsz` request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct JszOptions {
    /// `acc`: this account alone, whatever `accounts`, `offset` and `limit` say.
    pub account: String,
    /// `accounts`: one `account_details` entry per account.
    pub accounts: bool,
    /// `streams`: each account's `stream_detail`.
    pub streams: bool,
    /// `consumers`: each stream's `consumer_detail`.
    pub consumers: bool,
    /// `config`: stream and consumer configurations.
    pub config: bool,
    /// `leader-only`: answer only on the meta leader.
    pub leader_only: bool,
    /// `offset` into the accounts sorted by name (never negative).
    pub offset: usize,
    /// `limit` on the accounts listed; zero or less lists every account,
    /// unsorted (nats-server pages only for a positive limit).
    pub limit: i64,
    /// `raft`: Raft group names and the leader counts.
    pub raft: bool,
    /// `stream-leader-only`: only the streams this server leads.
    pub stream_leader_only: bool,
}

impl JszOptions {
    /// Decode `p`. `Err` is the 400 body nats-server writes for the first
    /// parameter that does not decode.
    pub fn parse(p: &Params) -> Result<JszOptions, String> {
        // nats-server's decoding order: the first failure is reported.
        let accounts = p.bool("accounts")?;
        let streams = p.bool("streams")?;
        let consumers = p.bool("consumers")?;
        // The internal consumers of mirrors and sources: Tribune has none,
        // so the parameter is only decoded (for its 400).
        p.bool("direct-consumers")?;
        let config = p.bool("config")?;
        let offset = p.int("offset")?;
        let limit = p.int("limit")?;
        let leader_only = p.bool("leader-only")?;
        let raft = p.bool("raft")?;
        let stream_leader_only = p.bool("stream-leader-only")?;
        let account = p.get("acc").to_string();
        // What `Server.Jsz` implies: consumers need their streams, and
        // streams of every account need the accounts listed.
        let streams = streams || consumers;
        let accounts = accounts || (streams && account.is_empty());
        Ok(JszOptions {
            account,
            accounts,
            streams,
            consumers,
            config,
            leader_only,
            offset: usize::try_from(offset).unwrap_or(0),
            limit: if limit == 0 { DEFAULT_LIMIT } else { limit },
            raft,
            stream_leader_only,
        })
    }

    /// The part of `items` (sorted here by `name`) that a listing of every
    /// account shows: nats-server sorts and pages only for a positive limit.
    pub fn page<T>(&self, mut items: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
        let Ok(limit) = usize::try_from(self.limit) else {
            return items;
        };
        if limit == 0 {
            return items;
        }
        items.sort_by(|a, b| name(a).cmp(name(b)));
        let (lo, hi) = super::super::query::page_bounds(self.offset, limit, items.len());
        items.truncate(hi);
        items.drain(..lo);
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<JszOptions, String> {
        JszOptions::parse(&Params::parse(Some(q)))
    }

    #[test]
    fn defaults() {
        let o = JszOptions::parse(&Params::parse(None)).unwrap();
        assert_eq!(
            o,
            JszOptions {
                account: String::new(),
                accounts: false,
                streams: false,
                consumers: false,
                config: false,
                leader_only: false,
                offset: 0,
                limit: 1024,
                raft: false,
                stream_leader_only: false,
            }
        );
    }

    #[test]
    fn implied_options_follow_nats_server() {
        let o = parse("consumers=true").unwrap();
        assert!(o.consumers && o.streams && o.accounts);
        let o = parse("streams=1").unwrap();
        assert!(o.streams && o.accounts && !o.consumers);
        // A named account is reported alone: streams do not list the others.
        let o = parse("streams=true&acc=APP").unwrap();
        assert!(o.streams && !o.accounts);
        assert_eq!(o.account, "APP");
        let o = parse("acc=APP&accounts=t").unwrap();
        assert!(o.accounts && !o.streams);
        // Go's strconv.ParseBool spellings.
        let o = parse("config=T&raft=TRUE&leader-only=0&stream-leader-only=F").unwrap();
        assert!(o.config && o.raft && !o.leader_only && !o.stream_leader_only);
    }

    #[test]
    fn offset_and_limit() {
        let o = parse("offset=-3&limit=-1").unwrap();
        assert_eq!((o.offset, o.limit), (0, -1));
        let o = parse("offset=2&limit=0").unwrap();
        assert_eq!((o.offset, o.limit), (2, 1024));
    }

    #[test]
    fn errors_are_nats_servers_and_in_its_order() {
        assert_eq!(
            parse("accounts=maybe").unwrap_err(),
            r#"Error decoding boolean for 'accounts': strconv.ParseBool: parsing "maybe": invalid syntax"#
        );
        assert_eq!(
            parse("offset=x").unwrap_err(),
            r#"Error decoding int for 'offset': strconv.Atoi: parsing "x": invalid syntax"#
        );
        // `raft` is decoded before `stream-leader-only`, `config` before `limit`.
        assert_eq!(
            parse("stream-leader-only=no&raft=no").unwrap_err(),
            r#"Error decoding boolean for 'raft': strconv.ParseBool: parsing "no": invalid syntax"#
        );
        assert_eq!(
            parse("limit=z&config=z").unwrap_err(),
            r#"Error decoding boolean for 'config': strconv.ParseBool: parsing "z": invalid syntax"#
        );
        assert_eq!(
            parse("direct-consumers=2").unwrap_err(),
            r#"Error decoding boolean for 'direct-consumers': strconv.ParseBool: parsing "2": invalid syntax"#
        );
    }

    #[test]
    fn paging_sorts_by_name_for_a_positive_limit_only() {
        let names = || vec!["c", "a", "b"];
        let page = |q: &str| parse(q).unwrap().page(names(), |s| s);
        assert_eq!(page(""), vec!["a", "b", "c"]);
        assert_eq!(page("offset=1&limit=1"), vec!["b"]);
        assert_eq!(page("offset=7"), Vec::<&str>::new());
        assert_eq!(page("limit=-1&offset=1"), vec!["c", "a", "b"]);
    }
}
