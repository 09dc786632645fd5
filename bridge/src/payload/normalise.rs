//! One provider match object -> one [`MatchUpdate`].
//!
//! An element is `{"id": ..., <section>}` with the section one of `score`,
//! `stats`, `incidents`, `tlive` (the provider sends one per element; more
//! are accepted, as the REST `detail_live` shape has all four). The score's
//! layout depends on the sport (super::score); `incidents` and `tlive` are
//! whole lists, so only arrays are taken: a single entry taken for the list
//! would wipe the others from the state.

use serde_json::{Map, Value};

use super::coerce::{opt_int, opt_number, opt_string};
use super::schema::{Incident, MatchUpdate, Stat, TextLive};
use super::sport::{self, Sport};
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

/// Known top-level keys; everything else goes to `extra`.
const KNOWN_KEYS: [&str; 5] = ["id", "score", "stats", "incidents", "tlive"];

/// Normalises one match object, validating its id for use in a subject.
pub fn normalise_match(element: &Value, origin: &Origin<'_>) -> Result<MatchUpdate, ElementError> {
    let Some(sport) = Sport::from_name(origin.sport) else {
        return Err(ElementError::UnknownSport(sport::unsupported(origin.sport)));
    };
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
        Some(v) => Some(super::score::parse(v, sport, &match_id)?),
    };
    let stats = stats(obj.get("stats"))?;
    let incidents = list(obj.get("incidents"), "incidents", incident)?;
    let tlive = list(obj.get("tlive"), "tlive", text_live)?;
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

/// `stats`: an array, a single stat, or stats keyed by anything (merged by
/// `type`, so any of these forms is safe). `null` means absent.
fn stats(v: Option<&Value>) -> Result<Option<Vec<Stat>>, ElementError> {
    let items: Vec<&Value> = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(o)) if o.contains_key("type") => vec![v],
        Some(Value::Object(o)) => o.values().collect(),
        Some(other) => {
            return Err(bad(
                "stats",
                format!("is a JSON {}, expected an array", json_kind(other)),
            ))
        }
    };
    entries(items, "stats", stat).map(Some)
}

/// `incidents` / `tlive`: the provider's whole list, an array. `null` means
/// absent.
fn list<T>(
    v: Option<&Value>,
    field: &str,
    item: fn(&Map<String, Value>, &str) -> Result<T, ElementError>,
) -> Result<Option<Vec<T>>, ElementError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => entries(a.iter().collect(), field, item).map(Some),
        Some(other) => Err(bad(
            field,
            format!(
                "is a JSON {}, expected the whole list (an array)",
                json_kind(other)
            ),
        )),
    }
}

fn entries<T>(
    items: Vec<&Value>,
    field: &str,
    item: fn(&Map<String, Value>, &str) -> Result<T, ElementError>,
) -> Result<Vec<T>, ElementError> {
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
        .collect()
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
        extra: rest(obj, &INCIDENT_KEYS),
    })
}

const TEXT_LIVE_KEYS: [&str; 3] = ["time", "data", "position"];

fn text_live(obj: &Map<String, Value>, name: &str) -> Result<TextLive, ElementError> {
    Ok(TextLive {
        time: string_field(obj, "time", name)?,
        data: string_field(obj, "data", name)?.ok_or_else(|| bad(name, "missing `data`"))?,
        position: int_field(obj, "position", name)?,
        extra: rest(obj, &TEXT_LIVE_KEYS),
    })
}

/// The entries of `obj` whose keys are not in `known`.
fn rest(obj: &Map<String, Value>, known: &[&str]) -> Map<String, Value> {
    obj.iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
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
    fn all_sections_in_one_element() {
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
        let line = &u.tlive.as_ref().unwrap()[0];
        assert_eq!((line.data.as_str(), line.position), ("Goal!", Some(1)));
        assert_eq!(
            line.extra.get("type"),
            Some(&json!(1)),
            "an unknown key is kept"
        );
        assert_eq!(u.extra.get("seq"), Some(&json!(5)));
        // Round trip through the published JSON.
        let text = serde_json::to_string(&u).unwrap();
        assert_eq!(serde_json::from_str::<MatchUpdate>(&text).unwrap(), u);
    }

    #[test]
    fn stats_forms_numeric_ids_and_bare_elements() {
        let v = json!({"id": 42, "stats": {"a": {"type": 1}}});
        let u = normalise_match(&v, &origin("basketball")).unwrap();
        assert_eq!(u.match_id, "42");
        assert_eq!(u.stats.unwrap().len(), 1);
        let v = json!({"id": 42, "stats": {"type": 2, "home": 1, "away": 0}});
        assert_eq!(
            normalise_match(&v, &origin("tennis"))
                .unwrap()
                .stats
                .unwrap()
                .len(),
            1
        );
        let v = json!({"id": "x", "incidents": [], "tlive": []});
        let u = normalise_match(&v, &origin("football")).unwrap();
        assert_eq!(
            (u.incidents, u.tlive),
            (Some(vec![]), Some(vec![])),
            "empty lists are lists"
        );
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
            // The object form and the id-less array were never seen.
            (
                json!({"id": "m", "score": {"status_id": 2, "home": [1], "away": [0]}}),
                "field `score`: is a JSON object",
            ),
            (
                json!({"id": "m", "score": [2, [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], 0, ""]}),
                "has 5 entries, expected 6",
            ),
            (
                json!({"id": "m", "score": ["m", 2, ["x"], [0, 0, 0, 0, 0, 0, 0], 0, ""]}),
                "field `score[2]`",
            ),
            (
                json!({"id": "m", "score": ["m", {}, [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], 0, ""]}),
                "field `score[1]`",
            ),
            // Basketball's and tennis' arrays on the football topic.
            (
                json!({"id": "m", "score": ["m", 4, 431, [27, 22, 0, 0, 0], [24, 25, 0, 0, 0]]}),
                "expected 6 for football",
            ),
            (
                json!({"id": "m", "score": ["m", 52, 2, {"ft": [1, 0]}]}),
                "expected 6 for football",
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
            // One incident is not the list: taken as the list it would wipe the others.
            (
                json!({"id": "m", "incidents": {"type": 1, "time": 3}}),
                "expected the whole list",
            ),
            (
                json!({"id": "m", "incidents": {"a": {"type": 1}}}),
                "expected the whole list",
            ),
            (
                json!({"id": "m", "tlive": [{"time": "1'"}]}),
                "missing `data`",
            ),
            (json!({"id": "m", "tlive": "goal"}), "field `tlive`"),
            (
                json!({"id": "m", "tlive": {"data": "x"}}),
                "expected the whole list",
            ),
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

    /// A sport without a known layout is refused whole, even without a score.
    #[test]
    fn unknown_sports_are_refused() {
        for sport in ["baseball", "cricket", "american_football", ""] {
            let err =
                normalise_match(&json!({"id": "m", "stats": []}), &origin(sport)).expect_err(sport);
            assert!(matches!(err, ElementError::UnknownSport(_)), "{err}");
            assert!(err.to_string().contains("is not supported"), "{err}");
        }
    }
}
