//! `STREAM.INFO` with `subjects_filter`: the per-subject message counts,
//! one page at a time, with nats-server's paging fields (`total`,
//! `offset`, `limit`) on the response.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// The most subjects one STREAM.INFO answer lists (nats-server's
/// `JSMaxSubjectDetails`).
pub const MAX_SUBJECT_DETAILS: usize = 100_000;

/// Put the page of `totals` (every subject matching the filter, sorted)
/// that starts at the request's `offset` into `info`, and the paging
/// fields, as nats-server does: `total`/`offset`/`limit` are 0 unless
/// some subject matched, and a page past the end lists none.
pub fn page(info: &mut Value, totals: BTreeMap<String, u64>, req: &Value) {
    let offset = req
        .get("offset")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .max(0);
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let total = totals.len();
    let (mut shown_offset, mut limit) = (0, 0);
    if total > 0 {
        shown_offset = offset;
        limit = MAX_SUBJECT_DETAILS;
        let start = offset.min(total);
        let end = start.saturating_add(MAX_SUBJECT_DETAILS).min(total);
        let subjects: serde_json::Map<String, Value> = totals
            .into_iter()
            .skip(start)
            .take(end - start)
            .map(|(s, n)| (s, json!(n)))
            .collect();
        if !subjects.is_empty() {
            info["state"]["subjects"] = Value::Object(subjects);
        }
    }
    info["total"] = json!(total);
    info["offset"] = json!(shown_offset);
    info["limit"] = json!(limit);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(n: usize) -> BTreeMap<String, u64> {
        (0..n).map(|i| (format!("s.{i:06}"), 1)).collect()
    }

    #[test]
    fn pages_and_paging_fields() {
        let mut info = json!({"state": {}});
        page(&mut info, totals(3), &json!({}));
        assert_eq!(info["state"]["subjects"].as_object().unwrap().len(), 3);
        assert_eq!(
            (
                info["total"].clone(),
                info["offset"].clone(),
                info["limit"].clone()
            ),
            (json!(3), json!(0), json!(MAX_SUBJECT_DETAILS))
        );

        let mut info = json!({"state": {}});
        page(&mut info, totals(3), &json!({"offset": 2}));
        let s = info["state"]["subjects"].as_object().unwrap();
        assert_eq!(s.keys().collect::<Vec<_>>(), vec!["s.000002"]);

        let mut info = json!({"state": {}});
        page(&mut info, totals(3), &json!({"offset": 9}));
        assert!(info["state"].get("subjects").is_none());
        assert_eq!(info["offset"], json!(9));

        let mut info = json!({"state": {}});
        page(&mut info, BTreeMap::new(), &json!({"offset": 4}));
        assert!(info["state"].get("subjects").is_none());
        assert_eq!(
            (
                info["total"].clone(),
                info["offset"].clone(),
                info["limit"].clone()
            ),
            (json!(0), json!(0), json!(0))
        );

        let mut info = json!({"state": {}});
        page(
            &mut info,
            totals(MAX_SUBJECT_DETAILS + 5),
            &json!({"offset": 3}),
        );
        assert_eq!(
            info["state"]["subjects"].as_object().unwrap().len(),
            MAX_SUBJECT_DETAILS
        );
    }
}
