//! The shape of a JSON document, for comparing what nats-server and
//! tribune-broker write without comparing values that differ by nature
//! (ids, times): key paths, nested objects as `a.b`, array elements as
//! `a[].b`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Key paths of `v`, arrays by their first element (`replicas[].name`).
pub fn shape(v: &Value) -> BTreeSet<String> {
    typed_shape_first(v).into_keys().collect()
}

/// Key paths of `v` with the JSON type found there (`string`, `number`,
/// `bool`, `object`, `array`, `null`), over every element of every array,
/// so an optional field one element has and another lacks still shows.
/// A path holding different types in different elements gets them joined
/// with `|`.
pub fn typed_shape(v: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(v, "", true, &mut out);
    out
}

fn typed_shape_first(v: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(v, "", false, &mut out);
    out
}

/// The JSON type name of `v`.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(v: &Value, prefix: &str, every: bool, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let t = type_name(child);
                out.entry(path.clone())
                    .and_modify(|have: &mut String| {
                        if !have.split('|').any(|h| h == t) {
                            have.push('|');
                            have.push_str(t);
                        }
                    })
                    .or_insert_with(|| t.to_string());
                walk(child, &path, every, out);
            }
        }
        Value::Array(a) => {
            let elems = if every { &a[..] } else { &a[..a.len().min(1)] };
            for e in elems {
                walk(e, &format!("{prefix}[]"), every, out);
            }
        }
        _ => {}
    }
}

/// What `a` has that `b` lacks, and what `b` has that `a` lacks, or types
/// that differ: one line per difference, empty when the shapes agree.
pub fn diff(
    a_label: &str,
    a: &BTreeMap<String, String>,
    b_label: &str,
    b: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, t) in a {
        match b.get(k) {
            None => out.push(format!("{k}: only {a_label} ({t})")),
            Some(u) if u != t => out.push(format!("{k}: {a_label} {t}, {b_label} {u}")),
            Some(_) => {}
        }
    }
    for (k, t) in b {
        if !a.contains_key(k) {
            out.push(format!("{k}: only {b_label} ({t})"));
        }
    }
    out
}
