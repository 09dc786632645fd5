//! The Prometheus text exposition format (0.0.4) as a scraper reads it:
//! tests that read `/metrics` check its syntax and look samples up.

use std::collections::{BTreeMap, BTreeSet};

/// Checks the Prometheus text format (0.0.4): every sample belongs to a
/// family announced by `# HELP` and `# TYPE`, names and label syntax are
/// valid, and values parse. Returns sample (name with labels) -> value.
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    fn valid_name(n: &str) -> bool {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped: BTreeSet<String> = BTreeSet::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(valid_name(name), "{line}");
            assert!(helped.insert(name.to_string()), "HELP twice: {line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice: {line}"
            );
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("no value: {line}"));
            let name = series.split('{').next().unwrap();
            assert!(valid_name(name), "{line}");
            assert!(typed.contains_key(name), "sample before its TYPE: {line}");
            assert!(helped.contains(name), "sample without HELP: {line}");
            if typed[name] == "counter" {
                assert!(
                    name.ends_with("_total"),
                    "counter names end in _total: {line}"
                );
            }
            if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                // label="value" pairs; values may hold escaped quotes.
                let inner = &labels[1..labels.len() - 1];
                let mut rest = inner;
                while !rest.is_empty() {
                    let (lname, after) = rest
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("label syntax: {line}"));
                    assert!(valid_name(lname), "{line}");
                    let mut end = None;
                    let mut escaped = false;
                    for (i, ch) in after.char_indices() {
                        match (escaped, ch) {
                            (true, _) => escaped = false,
                            (false, '\\') => escaped = true,
                            (false, '"') => {
                                end = Some(i);
                                break;
                            }
                            _ => {}
                        }
                    }
                    let end = end.unwrap_or_else(|| panic!("unterminated label value: {line}"));
                    rest = after[end + 1..]
                        .strip_prefix(',')
                        .unwrap_or(&after[end + 1..]);
                }
            }
            let v: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
            };
            samples.insert(series.to_string(), v);
        }
    }
    samples
}

/// The value of `series` (its name and labels as written, e.g.
/// `x{a="1"}`), if present.
pub fn value(samples: &BTreeMap<String, f64>, series: &str) -> Option<f64> {
    samples.get(series).copied()
}

/// The samples of family `name`, keyed by their label text (`{...}` or
/// an empty string).
pub fn family<'a>(samples: &'a BTreeMap<String, f64>, name: &str) -> BTreeMap<&'a str, f64> {
    samples
        .iter()
        .filter_map(|(k, v)| {
            let labels = k.strip_prefix(name)?;
            (labels.is_empty() || labels.starts_with('{')).then_some((labels, *v))
        })
        .collect()
}
