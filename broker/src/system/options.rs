//! The JSON options of a `$SYS.REQ.SERVER.*` request, read as nats-server
//! reads them (`ConnzEventOptions` and friends: the endpoint's options and
//! the `EventFilterOptions` side by side in one object).
//!
//! The endpoint's options become the query parameters its HTTP endpoint
//! takes, so both paths decode, check and answer alike.

use serde::Deserialize;

use crate::monitor::{Params, Z};

/// Which servers a request is for (nats-server's `EventFilterOptions`):
/// a server ignores a request that names another.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct EventFilter {
    pub server_name: String,
    pub cluster: String,
    pub host: String,
    pub exact_match: bool,
    pub tags: Vec<String>,
    pub domain: String,
}

/// What a server is, as a filter sees it.
#[derive(Debug)]
pub struct Identity<'a> {
    pub name: &'a str,
    pub host: &'a str,
    pub cluster: &'a str,
}

impl EventFilter {
    /// True when the request is not for `me` (nats-server's `filterRequest`):
    /// names match exactly or as substrings; Tribune has no server tags and
    /// no JetStream domain, so a request naming either is for others.
    pub fn excludes(&self, me: &Identity<'_>) -> bool {
        let differs = |want: &str, have: &str| {
            !want.is_empty()
                && if self.exact_match {
                    want != have
                } else {
                    !have.contains(want)
                }
        };
        differs(&self.server_name, me.name)
            || differs(&self.host, me.host)
            || differs(&self.cluster, me.cluster)
            || !self.tags.is_empty()
            || !self.domain.is_empty()
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConnzOptions {
    sort: String,
    auth: bool,
    subscriptions: bool,
    subscriptions_detail: bool,
    offset: i64,
    limit: i64,
    cid: u64,
    state: i64,
    user: String,
    acc: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RoutezOptions {
    subscriptions: bool,
    subscriptions_detail: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SubszOptions {
    offset: i64,
    limit: i64,
    subscriptions: bool,
    account: String,
    test: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JszOptions {
    account: String,
    accounts: bool,
    streams: bool,
    consumer: bool,
    direct_consumer: bool,
    config: bool,
    leader_only: bool,
    offset: i64,
    limit: i64,
    raft: bool,
    stream_leader_only: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AccountzOptions {
    account: String,
}

/// `$SYS.REQ.ACCOUNT.PING.STATZ` and `<account>.STATZ` (nats-server's
/// `AccountStatzOptions`).
#[derive(Debug, Deserialize, Default, PartialEq, Eq)]
#[serde(default)]
pub struct AccountStatzOptions {
    pub accounts: Vec<String>,
    pub include_unused: bool,
}

/// The options of an account STATZ request and its filter.
pub fn account_statz(body: &[u8]) -> Result<(AccountStatzOptions, EventFilter), String> {
    match object(body)? {
        Some(v) => Ok((read(&v)?, read(&v)?)),
        None => Ok(Default::default()),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HealthzOptions {
    #[serde(rename = "js-enabled")]
    js_enabled: bool,
    #[serde(rename = "js-enabled-only")]
    js_enabled_only: bool,
    #[serde(rename = "js-server-only")]
    js_server_only: bool,
    #[serde(rename = "js-meta-only")]
    js_meta_only: bool,
    account: String,
    stream: String,
    consumer: String,
    details: bool,
}

/// Collects the query parameters an endpoint reads; false, zero and empty
/// values are left out, as the HTTP endpoints read an absent one.
#[derive(Default)]
struct Pairs(Vec<(String, String)>);

impl Pairs {
    fn flag(mut self, key: &str, on: bool) -> Self {
        if on {
            self.0.push((key.into(), "true".into()));
        }
        self
    }

    fn text(mut self, key: &str, v: &str) -> Self {
        if !v.is_empty() {
            self.0.push((key.into(), v.into()));
        }
        self
    }

    fn num(self, key: &str, v: impl Into<i128>) -> Self {
        let v = v.into();
        if v == 0 {
            return self;
        }
        self.text(key, &v.to_string())
    }
}

/// The options object of a request body: `None` for an empty body or
/// `null` (Go's "nothing set"); anything but an object is an error.
fn object(body: &[u8]) -> Result<Option<serde_json::Value>, String> {
    if body.is_empty() {
        return Ok(None);
    }
    match serde_json::from_slice::<serde_json::Value>(body).map_err(|e| e.to_string())? {
        serde_json::Value::Null => Ok(None),
        // As Go decodes into a struct: a `null` leaves a field unset, and
        // keys match whatever their case (every option's name is lower case).
        serde_json::Value::Object(map) => Ok(Some(serde_json::Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.to_lowercase(), v))
                .collect(),
        ))),
        other => Err(format!(
            "json: cannot unmarshal {} into the request options",
            kind(&other)
        )),
    }
}

/// Go's name for a JSON value's type, as its decoding errors say it.
fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Array(_) => "array",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Object(_) => "object",
        serde_json::Value::Null => "null",
    }
}

/// The `subs` parameter of `/connz` and `/routez` for the JSON options
/// `subscriptions` and `subscriptions_detail`.
fn subs(subscriptions: bool, detail: bool) -> &'static str {
    match (subscriptions, detail) {
        (_, true) => "detail",
        (true, false) => "true",
        (false, false) => "",
    }
}

fn read<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<T, String> {
    T::deserialize(v).map_err(|e| e.to_string())
}

/// A request body's options for `z` and its filter. An empty body asks
/// for the defaults of every server. `Err` is the decoding error, answered
/// with code 400 as nats-server answers it.
pub fn decode(z: Z, body: &[u8]) -> Result<(Params, EventFilter), String> {
    let Some(body) = object(body)? else {
        return Ok((Params::default(), EventFilter::default()));
    };
    let body = &body;
    let filter: EventFilter = read(body)?;
    let p = match z {
        Z::Varz => Pairs::default(),
        Z::Connz => {
            let o: ConnzOptions = read(body)?;
            let state = match o.state {
                0 => "",
                1 => "closed",
                _ => "all",
            };
            Pairs::default()
                .text("sort", &o.sort)
                .flag("auth", o.auth)
                .text("subs", subs(o.subscriptions, o.subscriptions_detail))
                .num("offset", o.offset)
                .num("limit", o.limit)
                .num("cid", o.cid)
                .text("state", state)
                .text("user", &o.user)
                .text("acc", &o.acc)
        }
        Z::Routez => {
            let o: RoutezOptions = read(body)?;
            Pairs::default().text("subs", subs(o.subscriptions, o.subscriptions_detail))
        }
        Z::Subsz => {
            let o: SubszOptions = read(body)?;
            Pairs::default()
                .num("offset", o.offset)
                .num("limit", o.limit)
                .flag("subs", o.subscriptions)
                .text("acc", &o.account)
                .text("test", &o.test)
        }
        Z::Accountz => {
            let o: AccountzOptions = read(body)?;
            Pairs::default().text("acc", &o.account)
        }
        Z::AccountInfo => Pairs::default(),
        Z::Jsz | Z::JszAccount => {
            let o: JszOptions = read(body)?;
            Pairs::default()
                .text("acc", &o.account)
                .flag("accounts", o.accounts)
                .flag("streams", o.streams)
                .flag("consumers", o.consumer)
                .flag("direct-consumers", o.direct_consumer)
                .flag("config", o.config)
                .flag("leader-only", o.leader_only)
                .num("offset", o.offset)
                .num("limit", o.limit)
                .flag("raft", o.raft)
                .flag("stream-leader-only", o.stream_leader_only)
        }
        Z::Healthz => {
            let o: HealthzOptions = read(body)?;
            Pairs::default()
                .flag("js-enabled", o.js_enabled)
                .flag("js-enabled-only", o.js_enabled_only)
                .flag("js-server-only", o.js_server_only)
                .flag("js-meta-only", o.js_meta_only)
                .text("account", &o.account)
                .text("stream", &o.stream)
                .text("consumer", &o.consumer)
                .flag("details", o.details)
        }
    };
    Ok((Params::from_pairs(p.0), filter))
}

/// The filter alone, for requests without options of their own (`STATSZ`).
pub fn filter(body: &[u8]) -> Result<EventFilter, String> {
    match object(body)? {
        Some(v) => read(&v),
        None => Ok(EventFilter::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Identity<'static> = Identity {
        name: "node-a",
        host: "10.0.1.5",
        cluster: "tribune",
    };

    #[test]
    fn filters_match_by_substring_or_exactly() {
        let f = |json: &str| filter(json.as_bytes()).unwrap().excludes(&ME);
        assert!(!f(""));
        assert!(!f(r#"{"server_name":"node"}"#));
        assert!(f(r#"{"server_name":"node","exact_match":true}"#));
        assert!(!f(r#"{"server_name":"node-a","exact_match":true}"#));
        assert!(f(r#"{"cluster":"other"}"#));
        assert!(!f(r#"{"host":"10.0.1"}"#));
        assert!(f(r#"{"tags":["az:a"]}"#));
        assert!(f(r#"{"domain":"hub"}"#));
    }

    #[test]
    fn options_become_the_endpoint_parameters() {
        let (p, _) = decode(
            Z::Connz,
            br#"{"subscriptions_detail":true,"state":1,"acc":"APP","limit":2,"sort":"cid"}"#,
        )
        .unwrap();
        assert_eq!(p.subs(), Ok((false, true)));
        assert_eq!(p.get("state"), "closed");
        assert_eq!(p.get("acc"), "APP");
        assert_eq!(p.int("limit"), Ok(2));
        let (p, _) = decode(Z::Subsz, br#"{"account":"APP","subscriptions":true}"#).unwrap();
        assert_eq!(p.get("acc"), "APP");
        assert_eq!(p.bool("subs"), Ok(true));
        let (p, _) = decode(Z::Jsz, br#"{"consumer":true,"leader_only":true}"#).unwrap();
        assert_eq!(p.bool("consumers"), Ok(true));
        assert_eq!(p.bool("leader-only"), Ok(true));
        let (p, _) = decode(Z::Healthz, br#"{"js-meta-only":true}"#).unwrap();
        assert_eq!(p.bool("js-meta-only"), Ok(true));
    }

    #[test]
    fn bad_json_is_an_error() {
        assert!(decode(Z::Connz, b"{").is_err());
        assert!(decode(Z::Connz, br#"{"limit":"x"}"#).is_err());
        assert!(filter(b"[]").is_err());
        assert_eq!(filter(b"null"), Ok(EventFilter::default()));
        // What Go sends for `AccountStatzOptions{IncludeUnused: true}`.
        let (o, _) = account_statz(br#"{"accounts":null,"include_unused":true}"#).unwrap();
        assert_eq!(
            o,
            AccountStatzOptions {
                accounts: vec![],
                include_unused: true
            }
        );
        let (p, f) = decode(Z::Connz, br#"{"Acc":"APP","Server_Name":"n"}"#).unwrap();
        assert_eq!((p.get("acc"), f.server_name.as_str()), ("APP", "n"));
    }
}
