//! CONNECT documents (`tribune_broker::protocol::ConnectOptions`): the
//! first thing an unauthenticated client sends, credentials included.
//!
//! The input is a sequence of CONNECT arguments separated by 0xFF (a byte
//! no UTF-8 JSON contains), sent one after another on one connection.
//! Checked:
//! - `parse` and `parse_onto` never panic, and accept only JSON objects
//!   (as Go's decoder into nats-server's options does);
//! - `parse_onto` merges as documented: a CONNECT that fails leaves the
//!   merged map exactly as it was; one that succeeds leaves every non-null
//!   field it sent in the map, and returns the options the merged map
//!   describes; a document `parse` accepts, `parse_onto` accepts with the
//!   same result on a fresh connection;
//! - an error's text never shows a credential: each document that is a JSON
//!   object is also sent with the values of its `pass`, `auth_token`,
//!   `nkey`, `sig` and `jwt` fields swapped for marked ones (strings
//!   wrapped in a character serde's messages never use, numbers replaced by
//!   a sentinel), and no error text may contain a mark.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::{Map, Value};
use tribune_broker::protocol::ConnectOptions;

const SECRET_FIELDS: [&str; 5] = ["pass", "auth_token", "nkey", "sig", "jwt"];
/// Wraps a marked string value; serde_json's messages are ASCII.
const MARK: char = '\u{1F511}';
const INT_SENTINEL: i64 = -918_273_645;
const FLOAT_SENTINEL: f64 = 918_273.645;
/// Digits every rendering of either sentinel contains.
const SENTINEL_DIGITS: [&str; 2] = ["918273645", "918273.645"];

/// The document with its secret values marked, if it is an object.
fn marked(doc: &[u8]) -> Option<Vec<u8>> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(doc) else {
        return None;
    };
    for field in SECRET_FIELDS {
        if let Some(v) = map.get_mut(field) {
            mark(v);
        }
    }
    serde_json::to_vec(&map).ok()
}

fn mark(v: &mut Value) {
    match v {
        Value::String(s) => *s = format!("{MARK}{s}{MARK}"),
        Value::Number(n) if n.is_f64() => *v = Value::from(FLOAT_SENTINEL),
        Value::Number(_) => *v = Value::from(INT_SENTINEL),
        Value::Array(items) => items.iter_mut().for_each(mark),
        Value::Object(m) => m.values_mut().for_each(mark),
        Value::Null | Value::Bool(_) => {}
    }
}

fn assert_no_secret(err: &str, doc: &[u8]) {
    assert!(
        !err.contains(MARK) && !SENTINEL_DIGITS.iter().any(|d| err.contains(d)),
        "error text shows a credential: {err:?} for {:?}",
        String::from_utf8_lossy(doc)
    );
}

fn check_merge(sent: &mut Map<String, Value>, doc: &[u8]) {
    let before = sent.clone();
    match ConnectOptions::parse_onto(sent, doc) {
        Err(_) => assert_eq!(*sent, before, "a failed CONNECT changed the merged map"),
        Ok(c) => {
            if let Ok(Value::Object(new)) = serde_json::from_slice::<Value>(doc) {
                for (k, v) in new.iter().filter(|(_, v)| !v.is_null()) {
                    assert_eq!(sent.get(k), Some(v), "field {k} not merged");
                }
                for (k, v) in &before {
                    if new.get(k).is_none_or(Value::is_null) {
                        assert_eq!(sent.get(k), Some(v), "field {k} lost");
                    }
                }
                let described = ConnectOptions::deserialize(Value::Object(sent.clone()))
                    .expect("the merged map parsed a moment ago");
                assert_eq!(c, described, "result differs from the merged map");
            } else {
                assert_eq!(*sent, before, "a non-object CONNECT changed the merged map");
            }
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let mut sent = Map::new();
    let mut sent_marked = Map::new();
    for doc in input.split(|&b| b == 0xff) {
        match ConnectOptions::parse(doc) {
            Ok(c) => {
                let first = doc.iter().find(|b| !b.is_ascii_whitespace());
                assert_eq!(
                    first,
                    Some(&b'{'),
                    "a CONNECT that is no JSON object accepted"
                );
                let fresh = ConnectOptions::parse_onto(&mut Map::new(), doc);
                assert_eq!(
                    fresh.ok().as_ref(),
                    Some(&c),
                    "parse and parse_onto disagree"
                );
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
        check_merge(&mut sent, doc);

        let Some(doc) = marked(doc) else {
            continue;
        };
        if let Err(e) = ConnectOptions::parse(&doc) {
            assert_no_secret(&e.to_string(), &doc);
        }
        let before = sent_marked.clone();
        if let Err(e) = ConnectOptions::parse_onto(&mut sent_marked, &doc) {
            assert_no_secret(&e.to_string(), &doc);
            assert_eq!(sent_marked, before);
        }
    }
});
