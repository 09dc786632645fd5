//! An account JWT's `exports` and `imports` read into the account
//! configuration the configured accounts use, so one linking step serves
//! both. What cannot be honoured is left out and logged, as nats-server
//! logs an import it cannot add: an import refused grants nothing, and an
//! export refused offers nothing.

use std::time::Duration;

use tracing::error;
use tribune_auth::jwt::{self, JwtExport, JwtImport};

use crate::auth::claims::check_times;
use crate::options::{Activation, Export, ExportKind, Import, ResponsePolicy, ResponseType};

/// An export's or import's `type`; an unknown one is logged (`what`:
/// "export" or "import").
fn kind(account: &str, what: &str, subject: &str, text: &str) -> Option<ExportKind> {
    match text.to_ascii_lowercase().as_str() {
        "stream" => Some(ExportKind::Stream),
        "service" => Some(ExportKind::Service),
        _ => {
            error!("Account {account}: {what} of {subject:?} has an unknown type {text:?}");
            None
        }
    }
}

/// One JWT export of `account`.
pub fn export(account: &str, e: &JwtExport) -> Option<Export> {
    let k = kind(account, "export", &e.subject, &e.kind)?;
    if !crate::subject::is_valid(e.subject.as_bytes()) {
        error!("Account {account}: invalid export subject {:?}", e.subject);
        return None;
    }
    if e.account_token_position != 0 {
        error!(
            "Account {account}: export of {:?} with account_token_position is not supported by tribune-broker",
            e.subject
        );
        return None;
    }
    let mut response = ResponsePolicy::default();
    if k == ExportKind::Service {
        response.kind = match e.response_type.as_str() {
            "" | "Singleton" => ResponseType::Singleton,
            "Stream" => ResponseType::Stream,
            "Chunked" => ResponseType::Chunked,
            other => {
                error!(
                    "Account {account}: export of {:?} has an unknown response type {other:?}",
                    e.subject
                );
                return None;
            }
        };
        if e.response_threshold > 0 {
            response.threshold = Duration::from_nanos(e.response_threshold as u64);
        }
    }
    Some(Export {
        kind: k,
        subject: e.subject.clone(),
        accounts: Vec::new(),
        response,
        token_required: e.token_req,
        revocations: e.revocations.clone(),
    })
}

/// One JWT import of `account`, with its activation token checked.
pub fn import(account: &str, i: &JwtImport) -> Option<Import> {
    let k = kind(account, "import", &i.subject, &i.kind)?;
    let fail = |why: &str| {
        error!(
            "Account {account}: import of {:?} from {} not added: {why}",
            i.subject, i.account
        );
        None
    };
    // nats-server's reading: a service import's local subject is where
    // the importer sends, its subject where the exporter listens (`to`,
    // deprecated, named the latter); a stream import's `to` is a prefix.
    let (subject, to) = match (k, i.local_subject.as_str(), i.to.as_str()) {
        (ExportKind::Service, "", "") => (i.subject.clone(), None),
        (ExportKind::Service, "", to) => (to.to_string(), Some(i.subject.clone())),
        (ExportKind::Service, local, _) => (i.subject.clone(), Some(local.to_string())),
        (ExportKind::Stream, "", "") => (i.subject.clone(), None),
        (ExportKind::Stream, "", prefix) => (i.subject.clone(), Some(prefix.to_string())),
        (ExportKind::Stream, local, _) if local == i.subject => (i.subject.clone(), None),
        (ExportKind::Stream, _, _) => {
            return fail(
                "a stream import's local_subject mapping is not supported by tribune-broker",
            )
        }
    };
    for s in [Some(&subject), to.as_ref()].into_iter().flatten() {
        if !crate::subject::is_valid(s.as_bytes()) {
            return fail(&format!("invalid subject {s:?}"));
        }
    }
    let activation = if i.token.is_empty() {
        None
    } else {
        match activation(account, &i.subject, &i.token) {
            Ok(a) => Some(a),
            Err(why) => return fail(&why),
        }
    };
    Some(Import {
        kind: k,
        account: i.account.clone(),
        subject,
        to,
        activation,
    })
}

/// An activation token for `importer`'s import of `subject`: signed, for
/// this account, covering the subject, in its time. Whether its signer
/// speaks for the exporter is decided when the import is linked.
fn activation(importer: &str, subject: &str, token: &str) -> Result<Activation, String> {
    let g = jwt::decode_verified_generic(token.trim())
        .map_err(|e| format!("activation token not valid: {e:#}"))?;
    let field = |k: &str| g.nats.get(k).and_then(|v| v.as_str()).unwrap_or("");
    if field("type") != "activation" {
        return Err("activation token not valid: not an activation claim".into());
    }
    if g.std.sub != importer {
        return Err("activation token is for another account".into());
    }
    let covered = field("subject");
    if !crate::permissions::is_subset(subject, covered) {
        return Err(format!(
            "activation token import subject {covered:?} doesn't match import {subject:?}"
        ));
    }
    check_times(&g.std).map_err(|e| format!("activation token {e}"))?;
    Ok(Activation {
        issuer: g.std.iss.clone(),
        issued_at: g.std.iat,
        expires: g.std.exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_import(kind: &str, subject: &str, to: &str, local: &str) -> JwtImport {
        JwtImport {
            subject: subject.into(),
            account: "AEXP".into(),
            kind: kind.into(),
            to: to.into(),
            local_subject: local.into(),
            ..Default::default()
        }
    }

    #[test]
    fn imports_read_as_nats_server_reads_them() {
        let i = import("AIMP", &jwt_import("service", "svc.time", "", "time")).unwrap();
        assert_eq!(
            (i.subject.as_str(), i.to.as_deref()),
            ("svc.time", Some("time"))
        );
        let i = import("AIMP", &jwt_import("service", "time", "svc.time", "")).unwrap();
        assert_eq!(
            (i.subject.as_str(), i.to.as_deref()),
            ("svc.time", Some("time"))
        );
        let i = import("AIMP", &jwt_import("stream", "sports.>", "feed", "")).unwrap();
        assert_eq!(
            (i.subject.as_str(), i.to.as_deref()),
            ("sports.>", Some("feed"))
        );
        assert!(import("AIMP", &jwt_import("stream", "sports.>", "", "mine.>")).is_none());
        assert!(import("AIMP", &jwt_import("other", "x", "", "")).is_none());
    }

    #[test]
    fn a_bad_activation_token_leaves_the_import_out() {
        let mut i = jwt_import("stream", "private.>", "", "");
        i.token = "not a token".into();
        assert!(import("AIMP", &i).is_none());
    }

    #[test]
    fn exports_keep_privacy_and_response_rules() {
        let e = export(
            "AEXP",
            &JwtExport {
                subject: "svc.>".into(),
                kind: "service".into(),
                token_req: true,
                response_type: "Stream".into(),
                response_threshold: 5_000_000_000,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(e.token_required);
        assert_eq!(e.response.kind, ResponseType::Stream);
        assert_eq!(e.response.threshold, Duration::from_secs(5));
        let positioned = JwtExport {
            subject: "x.*".into(),
            kind: "stream".into(),
            account_token_position: 2,
            ..Default::default()
        };
        assert!(
            export("AEXP", &positioned).is_none(),
            "refused, not ignored"
        );
    }
}
