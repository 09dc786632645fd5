//! One provider match object -> one [`MatchUpdate`].

use serde_json::{Map, Value};

use super::coerce::{opt_int, opt_number, opt_string};
use super::schema::{Incident, MatchUpdate, Score, Side, Stat, TextLive};
use super::{json_kind, ElementError};
use crate::subject::validate_token;

/// Where an update came from; filled in by the bridge per MQTT message.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub sport: &'a str,
    pub provider: &'a str,
    pub topic: &'a str,
    pub received_at_ms: u64,
}

/// Sports whose headline score is the sum of the detail array (per-period
/// points); for all others it is the first element (goals, sets, runs).
const SUMMED_SPORTS: [&str; 1] = ["basketball"];

/// Known top-level keys; everything else goes to `extra`.
const KNOWN_KEYS: [&str; 5] = ["id", "score", "stats", "incidents", "tlive"];

/// Normalises one match object, validating its id for use in a subject.
pub fn normalise_match(element: &Value, origin: &Origin<'_>) -> Result<MatchUpdate, ElementError> {
    let obj = element
        .as_object()
        .ok_or_else(|| ElementError::NotObject(json_kind(element)))?;
    let match_id = match obj.get("id") {
        None | Some(Value::Null) => return Err(ElementError::MissingId),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(_) => return Err(ElementError::IdType),
    };
    validate_token(&match_id).map_err(|reason| ElementError::BadId {
        id: match_id.chars().take(64).collect(),
        reason,
    })?;

    let score = match obj.get("score") {
        None | Some(Value::Null) => None,
        Some(v) => Some(score(v, origin.sport)?),
    };
    let stats = section(obj.get("stats"), "stats", stat)?;
    let incidents = section(obj.get("incidents"), "incidents", incident)?;
    let tlive = section(obj.get("tlive"), "tlive", text_live)?;
    let extra: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| !KNOWN_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    Ok(MatchUpdate {
        sport: origin.sport.to_owned(),
        match_id,
        provider: origin.provider.to_owned(),
        source_topic: origin.topic.to_owned(),
        received_at_ms: origin.received_at_ms,
        score,
        stats,
        incidents,
        tlive,
        extra,
    })
}

fn bad(field: &str, reason: impl Into<String>) -> ElementError {
    ElementError::BadField {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// A list section (`stats`, `incidents`, `tlive`): an array, a single object, or
/// an object keyed by anything (its values are taken). `null` means absent.
fn section<T>(
    v: Option<&Value>,
    field: &str,
    item: fn(&Map<String, Value>, &str) -> Result<T, ElementError>,
) -> Result<Option<Vec<T>>, ElementError> {
    let items: Vec<&Value> = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(Value::Object(o)) if o.contains_key("type") || o.contains_key("data") => {
            vec![v.unwrap_or(&Value::Null)]
        }
        Some(Value::Object(o)) => o.values().collect(),
        Some(other) => {
            return Err(bad(
                field,
                format!("is a JSON {}, expected an array", json_kind(other)),
            ))
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let name = format!("{field}[{i}]");
            let obj = v.as_object().ok_or_else(|| {
                bad(
                    &name,
                    format!("is a JSON {}, expected an object", json_kind(v)),
                )
            })?;
            item(obj, &name)
        })
        .collect::<Result<Vec<T>, _>>()
        .map(Some)
}

fn int_field(obj: &Map<String, Value>, key: &str, name: &str) -> Result<Option<i64>, ElementError> {
    opt_int(obj.get(key)).map_err(|_| bad(&format!("{name}.{key}"), "not an integer"))
}

fn string_field(
    obj: &Map<String, Value>,
    key: &str,
    name: &str,
) -> Result<Option<String>, ElementError> {
    opt_string(obj.get(key)).map_err(|_| bad(&format!("{name}.{key}"), "not a string"))
}

fn stat(obj: &Map<String, Value>, name: &str) -> Result<Stat, ElementError> {
    let kind = int_field(obj, "type", name)?.ok_or_else(|| bad(name, "missing `type`"))?;
    let num = |key: &str| {
        opt_number(obj.get(key)).map_err(|_| bad(&format!("{name}.{key}"), "not a number"))
    };
    Ok(Stat {
        kind,
        home: num("home")?,
        away: num("away")?,
    })
}

const INCIDENT_KEYS: [&str; 7] = [
    "type",
    "position",
    "time",
    "player_id",
    "player_name",
    "home_score",
    "away_score",
];

fn incident(obj: &Map<String, Value>, name: &str) -> Result<Incident, ElementError> {
    Ok(Incident {
        kind: int_field(obj, "type", name)?.ok_or_else(|| bad(name, "missing `type`"))?,
        position: int_field(obj, "position", name)?,
        time: int_field(obj, "time", name)?,
        player_id: string_field(obj, "player_id", name)?,
        player_name: string_field(obj, "player_name", name)?,
        home_score: int_field(obj, "home_score", name)?,
        away_score: int_field(obj, "away_score", name)?,
        extra: obj
            .iter()
            .filter(|(k, _)| !INCIDENT_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

fn text_live(obj: &Map<String, Value>, name: &str) -> Result<TextLive, ElementError> {
    Ok(TextLive {
        time: string_field(obj, "time", name)?,
        data: string_field(obj, "data", name)?.ok_or_else(|| bad(name, "missing `data`"))?,
        position: int_field(obj, "position", name)?,
        kind: int_field(obj, "type", name)?,
    })
}

/// Score in the provider's array form `[matchId?, status, [home..], [away..], kickoff, ...]`
/// or an object form `{status_id, home, away, kickoff_ts}`.
fn score(v: &Value, sport: &str) -> Result<Score, ElementError> {
    let (status, home, away, kickoff) = match v {
        Value::Array(a) => {
            // thesports puts the match id first; tolerate its absence.
            let a: &[Value] = match a.first() {
                Some(Value::String(_)) => &a[1..],
                _ => a,
            };
            if a.len() < 3 {
                return Err(bad(
                    "score",
                    format!("array has {} entries, expected >= 3", a.len()),
                ));
            }
            (Some(&a[0]), Some(&a[1]), Some(&a[2]), a.get(3))
        }
        Value::Object(o) => (
            o.get("status_id").or_else(|| o.get("status")),
            o.get("home").or_else(|| o.get("home_scores")),
            o.get("away").or_else(|| o.get("away_scores")),
            o.get("kickoff_ts").or_else(|| o.get("kickoff")),
        ),
        other => {
            return Err(bad(
                "score",
                format!(
                    "is a JSON {}, expected an array or object",
                    json_kind(other)
                ),
            ))
        }
    };
    Ok(Score {
        status_id: opt_int(status).map_err(|_| bad("score.status_id", "not an integer"))?,
        kickoff_ts: opt_int(kickoff).map_err(|_| bad("score.kickoff_ts", "not an integer"))?,
        home: side(home, "score.home", sport)?,
        away: side(away, "score.away", sport)?,
    })
}

fn side(v: Option<&Value>, name: &str, sport: &str) -> Result<Side, ElementError> {
    let detail: Vec<i64> = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| super::coerce::int(x).ok_or_else(|| bad(name, "non-integer entry")))
            .collect::<Result<_, _>>()?,
        Some(x) => vec![super::coerce::int(x).ok_or_else(|| bad(name, "not an integer or array"))?],
    };
    let score = if detail.is_empty() {
        None
    } else if SUMMED_SPORTS.contains(&sport) {
        Some(detail.iter().sum())
    } else {
        detail.first().copied()
    };
    Ok(Side { score, detail })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subject::TokenError;
    use serde_json::json;

    fn origin(sport: &str) -> Origin<'_> {
        Origin {
            sport,
            provider: "thesports",
            topic: "thesports/football/match/v1",
            received_at_ms: 1,
        }
    }

    #[test]
    fn full_football_update() {
        let v = json!({
            "id": "l7oqdehe1xy4r51",
            "score": ["l7oqdehe1xy4r51", 2, [1,0,0,1,3,0,0], [0,0,1,0,2,0,0], 1700000000, ""],
            "stats": [{"type": 3, "home": 2, "away": "1"}],
            "incidents": [{"type": 1, "position": 1, "time": 23, "player_name": "A. Striker",
                           "home_score": 1, "away_score": 0, "assist1_name": "B"}],
            "tlive": [{"time": "23'", "data": "Goal!", "position": 1, "type": 1}],
            "seq": 5
        });
        let u = normalise_match(&v, &origin("football")).unwrap();
        assert_eq!(u.match_id, "l7oqdehe1xy4r51");
        let s = u.score.as_ref().unwrap();
        assert_eq!((s.status_id, s.kickoff_ts), (Some(2), Some(1700000000)));
        assert_eq!((s.home.score, s.away.score), (Some(1), Some(0)));
        assert_eq!(s.home.detail, vec![1, 0, 0, 1, 3, 0, 0]);
        let stats = u.stats.as_ref().unwrap();
        assert_eq!((stats[0].kind, stats[0].away.clone()), (3, Some(1.into())));
        let inc = &u.incidents.as_ref().unwrap()[0];
        assert_eq!(inc.extra.get("assist1_name"), Some(&json!("B")));
        assert_eq!(u.tlive.as_ref().unwrap()[0].data, "Goal!");
        assert_eq!(u.extra.get("seq"), Some(&json!(5)));
        // Round trip through the published JSON.
        let text = serde_json::to_string(&u).unwrap();
        assert_eq!(serde_json::from_str::<MatchUpdate>(&text).unwrap(), u);
    }

    #[test]
    fn object_shapes_and_sums() {
        let v = json!({"id": 42, "score": {"status": "3", "home": [20, 25, 18, 30], "away": 90},
                       "incidents": {"type": 9, "time": 12}, "stats": {"a": {"type": 1}}});
        let u = normalise_match(&v, &origin("basketball")).unwrap();
        assert_eq!(u.match_id, "42");
        let s = u.score.unwrap();
        assert_eq!(
            (s.status_id, s.home.score, s.away.score),
            (Some(3), Some(93), Some(90))
        );
        assert_eq!(u.incidents.unwrap().len(), 1);
        assert_eq!(u.stats.unwrap().len(), 1);
        let bare = normalise_match(&json!({"id": "x"}), &origin("tennis")).unwrap();
        assert!(bare.score.is_none() && bare.stats.is_none() && bare.extra.is_empty());
    }

    /// The malformed-element table: each is a clear error, none panics.
    #[test]
    fn malformed_elements() {
        let table = [
            (json!(null), "JSON null"),
            (json!(7), "JSON number"),
            (json!([]), "JSON array"),
            (json!({}), "no `id`"),
            (json!({"id": null}), "no `id`"),
            (json!({"id": 1.5}), "string or integer"),
            (json!({"id": {"x": 1}}), "string or integer"),
            (json!({"id": "a.b"}), "cannot be used in a subject"),
            (json!({"id": "*"}), "cannot be used in a subject"),
            (json!({"id": ">"}), "cannot be used in a subject"),
            (json!({"id": "a b"}), "cannot be used in a subject"),
            (json!({"id": ""}), "cannot be used in a subject"),
            (json!({"id": "m", "score": "1-0"}), "field `score`"),
            (json!({"id": "m", "score": [1, 2]}), "field `score`"),
            (
                json!({"id": "m", "score": [2, ["x"], [0]]}),
                "field `score.home`",
            ),
            (
                json!({"id": "m", "score": [{}, [1], [0]]}),
                "field `score.status_id`",
            ),
            (json!({"id": "m", "stats": 5}), "field `stats`"),
            (json!({"id": "m", "stats": [1]}), "field `stats[0]`"),
            (json!({"id": "m", "stats": [{"home": 1}]}), "missing `type`"),
            (
                json!({"id": "m", "stats": [{"type": 1, "home": "lots"}]}),
                "stats[0].home",
            ),
            (
                json!({"id": "m", "incidents": [{"type": "goal"}]}),
                "incidents[0].type",
            ),
            (
                json!({"id": "m", "incidents": [{"type": 1, "player_name": []}]}),
                "player_name",
            ),
            (
                json!({"id": "m", "tlive": [{"time": "1'"}]}),
                "missing `data`",
            ),
            (json!({"id": "m", "tlive": "goal"}), "field `tlive`"),
        ];
        for (v, want) in table {
            let err = normalise_match(&v, &origin("football")).expect_err(&v.to_string());
            assert!(err.to_string().contains(want), "{v}: {err}");
        }
        let long = json!({"id": "x".repeat(500)});
        match normalise_match(&long, &origin("football")) {
            Err(ElementError::BadId { id, reason }) => {
                assert_eq!((id.len(), reason), (64, TokenError::TooLong))
            }
            other => panic!("{other:?}"),
        }
    }
}
