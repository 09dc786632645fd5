//! `mirror` and `sources` in a stream's configuration: their JSON, the
//! checks nats-server makes on create and update, and the "index name"
//! that tells one source of a stream from another.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::jetstream::errors::{self, ApiError};
use crate::jetstream::subject_transform::SubjectTransformConfig;
use crate::jetstream::transform::SubjectTransform;
use crate::permissions::{is_subset, overlaps};

/// A stream to mirror or source from (`StreamSource` in nats-server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StreamSource {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub opt_start_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_transforms: Vec<SubjectTransformConfig>,
    /// The origin lives in another account or domain: reach its API and
    /// receive its deliveries through these prefixes (imports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStream>,
    /// Durable sourcing (nats-server 2.14): feed from this existing
    /// consumer of the origin, which must use the `flow_control` ack
    /// policy, instead of an ephemeral one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<ConsumerSource>,
}

/// `consumer` in a mirror or source: the durable's name and the subject
/// it delivers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConsumerSource {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub deliver_subject: String,
}

impl ConsumerSource {
    /// nats-server's checks: a valid consumer name and a literal subject.
    fn is_valid(&self) -> bool {
        is_valid_name(&self.name)
            && !self.deliver_subject.contains(['*', '>'])
            && crate::subject::is_valid(self.deliver_subject.as_bytes())
    }
}

/// `external`: the API prefix (`$JS.<domain>.API` or an import) and the
/// prefix deliveries come back under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ExternalStream {
    #[serde(default)]
    pub api: String,
    #[serde(default)]
    pub deliver: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl StreamSource {
    /// nats-server's index name: `<name>[:<api hash>] <filters> <dests>`,
    /// `>` standing for an empty filter or destination; several
    /// transforms are joined with form feeds. The `Nats-Stream-Source`
    /// header carries its filter and destination parts.
    pub fn iname(&self) -> String {
        let mut name = self.name.clone();
        if let Some(ext) = &self.external {
            name.push(':');
            name.push_str(&api_hash(&ext.api));
        }
        if let Some(c) = &self.consumer {
            name.push_str(":C=");
            name.push_str(&api_hash(&c.name));
        }
        let or_all = |s: &str| {
            if s.is_empty() {
                ">".to_string()
            } else {
                s.to_string()
            }
        };
        let (src, dest) = if self.subject_transforms.is_empty() {
            (or_all(&self.filter_subject), ">".to_string())
        } else {
            let srcs: Vec<String> = self
                .subject_transforms
                .iter()
                .map(|t| or_all(&t.src))
                .collect();
            let dests: Vec<String> = self
                .subject_transforms
                .iter()
                .map(|t| or_all(&t.dest))
                .collect();
            (srcs.join("\x0c"), dests.join("\x0c"))
        };
        format!("{name} {src} {dest}")
    }

    /// nats-server's checks of a durable `consumer`: a valid consumer name
    /// and literal deliver subject, and no start options or filter (the
    /// consumer's own configuration decides those).
    fn bad_durable(&self) -> bool {
        self.consumer.as_ref().is_some_and(|c| {
            !c.is_valid()
                || self.opt_start_seq != 0
                || self.opt_start_time.is_some()
                || !self.filter_subject.is_empty()
        })
    }

    /// The origin and durable consumer a durable source reads (two
    /// sources may not share one).
    fn consumer_key(&self) -> String {
        let mut key = self.name.clone();
        if let Some(ext) = &self.external {
            key.push(':');
            key.push_str(&api_hash(&ext.api));
        }
        let consumer = self.consumer.as_ref().map_or("", |c| c.name.as_str());
        format!("{key} {consumer}")
    }

    /// The filters the origin's consumer is created with.
    pub fn filters(&self) -> Vec<String> {
        if !self.filter_subject.is_empty() {
            return vec![self.filter_subject.clone()];
        }
        self.subject_transforms
            .iter()
            .map(|t| {
                if t.src.is_empty() {
                    ">".to_string()
                } else {
                    t.src.clone()
                }
            })
            .collect()
    }

    /// The transforms applied to what arrives, in order; the first that
    /// matches renames the subject.
    pub fn transforms(&self) -> Vec<SubjectTransform> {
        self.subject_transforms
            .iter()
            .filter(|t| !t.dest.is_empty())
            .filter_map(|t| SubjectTransform::new(&t.src, &t.dest).ok())
            .collect()
    }
}

/// nats-server's `getHash`: the first eight bytes of the SHA-256 of
/// `api` (or a consumer name), each mapped onto the 62 digits and letters.
fn api_hash(api: &str) -> String {
    use sha2::{Digest, Sha256};
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    Sha256::digest(api.as_bytes())[..8]
        .iter()
        .map(|b| DIGITS[usize::from(*b) % 62] as char)
        .collect()
}

fn err(code: u16, err_code: u16, desc: impl Into<String>) -> ApiError {
    ApiError::new(code, err_code, desc.into())
}

/// Stream and consumer names: no `.`, `*`, `>`, path separators or spaces.
fn is_valid_name(n: &str) -> bool {
    !n.is_empty()
        && !n.contains(['.', '*', '>', '/', '\\'])
        && !n.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The transforms of a mirror or a source: each source a valid subject,
/// each destination a valid mapping of it.
fn check_transforms(
    ts: &[SubjectTransformConfig],
    bad_filter: u16,
    bad_dest: u16,
    what: &str,
) -> Result<(), ApiError> {
    for t in ts {
        if !t.src.is_empty() && !crate::subject::is_valid(t.src.as_bytes()) {
            return Err(err(
                400,
                bad_filter,
                format!("{what} transform source: invalid subject {}", t.src),
            ));
        }
        if !t.dest.is_empty() {
            SubjectTransform::new(&t.src, &t.dest)
                .map_err(|e| err(400, bad_dest, format!("{what} transform: {e}")))?;
        }
    }
    Ok(())
}

/// What is known of another stream of the account, for the checks.
pub struct Origin {
    pub max_msg_size: i32,
    pub subjects: Vec<String>,
    pub mirror: Option<String>,
    pub sources: Vec<StreamSource>,
}

/// What the mirror and sources name, for the checks made across them.
#[derive(Default)]
struct Seen {
    deliver_prefixes: Vec<String>,
    api_prefixes: Vec<String>,
    /// The subjects of the origins within the account.
    origin_subjects: Vec<String>,
}

impl Seen {
    /// An external origin's prefixes; an origin within the account, its
    /// subjects, and `too_big` if its messages may not fit this stream.
    fn note(
        &mut self,
        src: &StreamSource,
        max_msg_size: i32,
        lookup: &dyn Fn(&str) -> Option<Origin>,
        too_big: impl Fn() -> ApiError,
    ) -> Result<(), ApiError> {
        match &src.external {
            None => {
                if let Some(o) = lookup(&src.name) {
                    self.origin_subjects.extend(o.subjects);
                    if max_msg_size > 0 && o.max_msg_size > 0 && max_msg_size < o.max_msg_size {
                        return Err(too_big());
                    }
                }
            }
            Some(ext) => {
                if !ext.deliver.is_empty() {
                    self.deliver_prefixes.push(ext.deliver.clone());
                }
                if !ext.api.is_empty() {
                    self.api_prefixes.push(ext.api.clone());
                }
            }
        }
        Ok(())
    }
}

/// nats-server's checks of a stream's `mirror` and `sources`, in its
/// order. `subjects` are the stream's own; `lookup` finds another stream
/// of the account by name.
#[allow(clippy::too_many_arguments)]
pub fn check(
    name: &str,
    subjects: &[String],
    max_msg_size: i32,
    delete_marker_ttl: i64,
    mirror: Option<&StreamSource>,
    sources: &[StreamSource],
    extra: &Map<String, Value>,
    lookup: &dyn Fn(&str) -> Option<Origin>,
) -> Result<(), ApiError> {
    let mut seen = Seen::default();
    let first_seq = extra.get("first_seq").and_then(Value::as_u64).unwrap_or(0);
    if let Some(m) = mirror {
        if first_seq > 0 {
            return Err(err(
                400,
                10143,
                "stream mirrors can not have first sequence configured",
            ));
        }
        if !subjects.is_empty() {
            return Err(err(400, 10034, "stream mirrors can not contain subjects"));
        }
        if !sources.is_empty() {
            return Err(err(
                400,
                10031,
                "stream mirrors can not also contain other sources",
            ));
        }
        if m.bad_durable() {
            return Err(errors::mirror_consumer_invalid());
        }
        if !m.filter_subject.is_empty() && !m.subject_transforms.is_empty() {
            return Err(err(
                400,
                10150,
                "mirror with multiple subject transforms cannot also have a single subject filter",
            ));
        }
        if delete_marker_ttl > 0 {
            // Markers would take sequences the origin does not have.
            return Err(err(
                500,
                10052,
                "subject delete markers forbidden on mirrors",
            ));
        }
        check_transforms(&m.subject_transforms, 10151, 10154, "mirror")?;
        for (i, a) in m.subject_transforms.iter().enumerate() {
            for (j, b) in m.subject_transforms.iter().enumerate() {
                if i != j && overlaps(or_all(&a.src), or_all(&b.src)) {
                    return Err(err(400, 10152, "mirror subject filters can not overlap"));
                }
            }
        }
        if m.external.is_none() && !is_valid_name(&m.name) {
            return Err(err(400, 10142, "mirrored stream name is invalid"));
        }
        let too_big = || {
            err(
                400,
                10030,
                "stream mirror must have max message size >= source",
            )
        };
        seen.note(m, max_msg_size, lookup, too_big)?;
    }
    let mut inames = std::collections::HashSet::new();
    let mut durables = std::collections::HashSet::new();
    for s in sources {
        if !is_valid_name(&s.name) {
            return Err(err(400, 10141, "sourced stream name is invalid"));
        }
        if !inames.insert(s.iname()) {
            return Err(err(400, 10140, "duplicate source configuration detected"));
        }
        if !s.filter_subject.is_empty() && !s.subject_transforms.is_empty() {
            return Err(err(
                400,
                10144,
                "source with multiple subject transforms cannot also have a single subject filter",
            ));
        }
        check_transforms(&s.subject_transforms, 10145, 10146, "source")?;
        for (i, a) in s.subject_transforms.iter().enumerate() {
            for (j, b) in s.subject_transforms.iter().enumerate() {
                if i != j && is_subset(or_all(&a.src), or_all(&b.src)) {
                    return Err(err(400, 10147, "source filters can not overlap"));
                }
            }
        }
        if s.bad_durable() {
            return Err(errors::source_consumer_invalid());
        }
        if s.consumer.is_some() && !durables.insert(s.consumer_key()) {
            return Err(errors::source_consumer_duplicate());
        }
        let too_big = || {
            err(
                400,
                10046,
                "stream source must have max message size >= target",
            )
        };
        seen.note(s, max_msg_size, lookup, too_big)?;
    }
    for pfx in &seen.deliver_prefixes {
        if pfx.contains(['*', '>']) || !crate::subject::is_valid(pfx.as_bytes()) {
            return Err(err(
                400,
                10024,
                format!("stream external delivery prefix {pfx} must not contain wildcards"),
            ));
        }
        for sub in &seen.origin_subjects {
            if overlaps(sub, &format!("{pfx}.{sub}")) {
                return Err(err(
                    400,
                    10022,
                    format!(
                        "stream external delivery prefix {pfx} overlaps with stream subject {sub}"
                    ),
                ));
            }
        }
    }
    for pfx in &seen.api_prefixes {
        if pfx.contains(['*', '>']) || !crate::subject::is_valid(pfx.as_bytes()) {
            return Err(err(
                500,
                10052,
                format!(
                    "stream external api prefix {pfx:?} must be a valid subject without wildcards"
                ),
            ));
        }
        if overlaps(pfx, "$JS.API") {
            return Err(err(
                400,
                10021,
                format!("stream external api prefix {pfx} must not overlap with $JS.API"),
            ));
        }
    }
    check_cycles(name, subjects, mirror, sources, lookup)
}

fn or_all(s: &str) -> &str {
    if s.is_empty() {
        ">"
    } else {
        s
    }
}

/// nats-server's cycle check: following sources (whose filter meets the
/// subjects of the stream that sources them) and mirrors within the
/// account must not come back to a stream already visited.
fn check_cycles(
    name: &str,
    subjects: &[String],
    mirror: Option<&StreamSource>,
    sources: &[StreamSource],
    lookup: &dyn Fn(&str) -> Option<Origin>,
) -> Result<(), ApiError> {
    let cycle = || err(500, 10052, "detected cycle");
    let mut to_visit: Vec<(String, Origin)> = vec![(
        name.to_string(),
        Origin {
            max_msg_size: -1,
            subjects: subjects.to_vec(),
            mirror: mirror
                .filter(|m| m.external.is_none())
                .map(|m| m.name.clone()),
            sources: sources.to_vec(),
        },
    )];
    let mut visited = std::collections::HashSet::new();
    let mut steps = 0;
    while let Some((name, o)) = to_visit.pop() {
        steps += 1;
        if steps > 10_000 {
            return Err(cycle());
        }
        visited.insert(name);
        for src in o.sources.iter().filter(|s| s.external.is_none()) {
            if visited.contains(&src.name) {
                let meets = src.filter_subject.is_empty()
                    || o.subjects.iter().any(|s| overlaps(s, &src.filter_subject));
                if meets {
                    return Err(cycle());
                }
            } else if let Some(next) = lookup(&src.name) {
                to_visit.push((src.name.clone(), next));
            }
        }
        if let Some(m) = o.mirror {
            if visited.contains(&m) {
                return Err(cycle());
            }
            if let Some(next) = lookup(&m) {
                to_visit.push((m, next));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(json: &str) -> StreamSource {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn index_names_as_nats_server_composes_them() {
        assert_eq!(src(r#"{"name":"O"}"#).iname(), "O > >");
        assert_eq!(
            src(r#"{"name":"O","filter_subject":"a.*"}"#).iname(),
            "O a.* >"
        );
        assert_eq!(
            src(r#"{"name":"O","subject_transforms":[{"src":"a.>","dest":"b.>"},{"src":"c","dest":""}]}"#)
                .iname(),
            "O a.>\x0cc b.>\x0c>"
        );
    }

    #[test]
    fn a_durable_source_names_its_consumer_in_the_index_name() {
        // nats-server 2.15 writes `O:C=MItBWn8j` for consumer "agg".
        assert_eq!(
            src(r#"{"name":"O","consumer":{"name":"agg","deliver_subject":"agg.deliver"}}"#)
                .iname(),
            "O:C=MItBWn8j > >"
        );
        let codes = |json: &str| check_one(None, &[json], &[]);
        assert_eq!(
            codes(
                r#"{"name":"O","filter_subject":"a","consumer":{"name":"c","deliver_subject":"d"}}"#
            ),
            Err(10215)
        );
        assert_eq!(
            codes(r#"{"name":"O","consumer":{"name":"c","deliver_subject":"d.>"}}"#),
            Err(10215)
        );
        assert_eq!(
            codes(r#"{"name":"O","consumer":{"name":"c","deliver_subject":"d"}}"#),
            Ok(())
        );
        assert_eq!(
            check_one(
                Some(
                    r#"{"name":"O","opt_start_seq":3,"consumer":{"name":"c","deliver_subject":"d"}}"#
                ),
                &[],
                &[]
            ),
            Err(10213)
        );
    }

    #[test]
    fn round_trips_without_empty_fields() {
        let s = src(r#"{"name":"O","opt_start_seq":0,"filter_subject":""}"#);
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"name":"O"}"#);
    }

    fn check_one(mirror: Option<&str>, sources: &[&str], subjects: &[&str]) -> Result<(), u16> {
        let m = mirror.map(src);
        let ss: Vec<StreamSource> = sources.iter().map(|s| src(s)).collect();
        let subjects: Vec<String> = subjects.iter().map(|s| s.to_string()).collect();
        let lookup = |n: &str| -> Option<Origin> {
            (n == "LOOP").then(|| Origin {
                max_msg_size: -1,
                subjects: vec![],
                mirror: None,
                sources: vec![src(r#"{"name":"S"}"#)],
            })
        };
        check("S", &subjects, -1, 0, m.as_ref(), &ss, &Map::new(), &lookup).map_err(|e| e.err_code)
    }

    #[test]
    fn refusals_carry_nats_server_codes() {
        assert_eq!(check_one(Some(r#"{"name":"O"}"#), &[], &["x"]), Err(10034));
        assert_eq!(
            check_one(Some(r#"{"name":"O"}"#), &[r#"{"name":"P"}"#], &[]),
            Err(10031)
        );
        assert_eq!(check_one(Some(r#"{"name":"O.x"}"#), &[], &[]), Err(10142));
        assert_eq!(
            check_one(
                Some(
                    r#"{"name":"O","filter_subject":"a","subject_transforms":[{"src":"b","dest":"c"}]}"#
                ),
                &[],
                &[]
            ),
            Err(10150)
        );
        assert_eq!(
            check_one(
                Some(
                    r#"{"name":"O","subject_transforms":[{"src":"a.>","dest":""},{"src":"a.b","dest":""}]}"#
                ),
                &[],
                &[]
            ),
            Err(10152)
        );
        assert_eq!(check_one(None, &[r#"{"name":""}"#], &[]), Err(10141));
        assert_eq!(
            check_one(None, &[r#"{"name":"P"}"#, r#"{"name":"P"}"#], &[]),
            Err(10140)
        );
        assert_eq!(
            check_one(
                None,
                &[
                    r#"{"name":"P","subject_transforms":[{"src":"a.*","dest":"b.{{wildcard(2)}}"}]}"#
                ],
                &[]
            ),
            Err(10146)
        );
        assert_eq!(check_one(None, &[r#"{"name":"LOOP"}"#], &["s"]), Err(10052));
        assert_eq!(
            check_one(
                None,
                &[r#"{"name":"P"}"#, r#"{"name":"P","filter_subject":"a"}"#],
                &[]
            ),
            Ok(())
        );
    }
}
