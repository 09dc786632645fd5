//! A stream's `subject_transform`: incoming messages whose subject matches
//! `src` are stored under the transformed subject (others keep theirs), as
//! nats-server does before any other check on the message.

use serde::{Deserialize, Serialize};

use super::errors::ApiError;
use super::transform::SubjectTransform;

/// `subject_transform` as nats-server reads and writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SubjectTransformConfig {
    #[serde(default)]
    pub src: String,
    #[serde(default)]
    pub dest: String,
}

/// nats-server's checks: a source that is not a valid subject (10155),
/// a destination that is not a valid mapping of it (10156).
pub(crate) fn validate(t: &SubjectTransformConfig) -> Result<(), ApiError> {
    if !t.src.is_empty() && !crate::subject::is_valid(t.src.as_bytes()) {
        return Err(ApiError::new(
            400,
            10155,
            format!("stream transform source: invalid subject {}", t.src),
        ));
    }
    if t.dest.is_empty() {
        return Ok(());
    }
    if let Some(tok) = t.dest.split('.').find(|tok| {
        tok.is_empty() || (!tok.starts_with("{{") && tok.contains([' ', '\t', '\n', '\r', '\x0c']))
    }) {
        return Err(ApiError::new(
            400,
            10156,
            format!("stream transform: invalid mapping destination: invalid transform in {tok}"),
        ));
    }
    SubjectTransform::new(&t.src, &t.dest)
        .map(|_| ())
        .map_err(|e| ApiError::new(400, 10156, format!("stream transform: {e}")))
}

/// The parsed transform a stream applies, `None` when there is none (an
/// empty destination transforms nothing).
pub(crate) fn compile(t: Option<&SubjectTransformConfig>) -> Option<SubjectTransform> {
    let t = t.filter(|t| !t.dest.is_empty())?;
    match SubjectTransform::new(&t.src, &t.dest) {
        Ok(tr) => Some(tr),
        Err(e) => {
            tracing::warn!(
                "stream subject transform from {:?} to {:?} not valid: {e}",
                t.src,
                t.dest
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(src: &str, dest: &str) -> SubjectTransformConfig {
        SubjectTransformConfig {
            src: src.into(),
            dest: dest.into(),
        }
    }

    #[test]
    fn checks_as_nats_server() {
        assert!(validate(&cfg("in.*", "out.$1")).is_ok());
        assert!(validate(&cfg("", "")).is_ok());
        assert_eq!(validate(&cfg("in..x", "out")).unwrap_err().err_code, 10155);
        let e = validate(&cfg("in.*", "out.$2")).unwrap_err();
        assert_eq!(e.err_code, 10156);
        assert_eq!(
            e.description,
            "stream transform: invalid mapping destination: wildcard index out of range in $2: [2]"
        );
        assert_eq!(
            validate(&cfg("in.*", "out..x")).unwrap_err().err_code,
            10156
        );
    }

    #[test]
    fn compiles_only_a_real_transform() {
        assert!(compile(None).is_none());
        assert!(compile(Some(&cfg("a", ""))).is_none());
        let t = compile(Some(&cfg("in.*", "out.$1"))).unwrap();
        assert_eq!(t.apply("in.x").as_deref(), Some("out.x"));
    }
}
