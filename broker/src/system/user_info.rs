//! `$SYS.REQ.USER.INFO`: any client asks who it is. The server it is
//! connected to answers, with nats-server's `UserInfo`: the user, its
//! account, its permissions and how long its credentials last.
//!
//! nats-server answers through a service import every account gets from
//! the system account; Tribune answers where the request is published
//! (`client::conn`), after the publish permission check, with the same
//! reply on the same subject. The request still reaches the account's own
//! subscribers of the subject, as with the import.

use std::time::Duration;

use serde::Serialize;

use super::ServerInfo;
use crate::permissions::{Permissions, SubjectPermission};

/// The request subject.
pub const SUBJECT: &[u8] = b"$SYS.REQ.USER.INFO";

#[derive(Serialize)]
struct SubjectPerm<'a> {
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    allow: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    deny: &'a [String],
}

impl<'a> SubjectPerm<'a> {
    /// `{}` for no rules, as nats-server shows a user with permissions.
    fn of(p: &'a Option<SubjectPermission>) -> SubjectPerm<'a> {
        match p {
            Some(p) => SubjectPerm {
                allow: p.allow.as_deref().unwrap_or_default(),
                deny: &p.deny,
            },
            None => SubjectPerm {
                allow: &[],
                deny: &[],
            },
        }
    }
}

#[derive(Serialize)]
struct ResponsePerm {
    max: u64,
    /// Nanoseconds, as Go writes a `time.Duration`.
    ttl: u64,
}

/// nats-server's public `Permissions`.
#[derive(Serialize)]
struct PublicPermissions<'a> {
    publish: SubjectPerm<'a>,
    subscribe: SubjectPerm<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    responses: Option<ResponsePerm>,
}

/// nats-server's `UserInfo`.
#[derive(Serialize)]
struct UserInfo<'a> {
    user: &'a str,
    account: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    account_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<PublicPermissions<'a>>,
    /// Nanoseconds until the credentials expire; left out when they do not.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<u64>,
}

#[derive(Serialize)]
struct Reply<'a> {
    server: ServerInfo,
    data: UserInfo<'a>,
}

/// The reply to one client's request.
pub fn reply(
    server: ServerInfo,
    user: &str,
    account: &str,
    perms: Option<&Permissions>,
    expires_in: Option<Duration>,
) -> Vec<u8> {
    let permissions = perms.map(|p| PublicPermissions {
        publish: SubjectPerm::of(&p.publish),
        subscribe: SubjectPerm::of(&p.subscribe),
        responses: p.allow_responses.map(|r| ResponsePerm {
            max: r.max_msgs,
            ttl: u64::try_from(r.expires.as_nanos()).unwrap_or(u64::MAX),
        }),
    });
    let msg = Reply {
        server,
        data: UserInfo {
            user,
            account,
            account_name: account,
            permissions,
            // Whole seconds, left out at zero, as nats-server shows it.
            expires: expires_in
                .map(|d| d.as_secs().saturating_mul(1_000_000_000))
                .filter(|n| *n > 0),
        },
    };
    crate::monitor::gofmt::to_json(&msg).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ServerInfo {
        ServerInfo {
            name: "n".into(),
            host: "h".into(),
            id: "I".into(),
            cluster: String::new(),
            domain: String::new(),
            ver: "2.11.0".into(),
            jetstream: false,
            flags: 0,
            seq: 1,
            time: "t".into(),
        }
    }

    #[test]
    fn shapes_match_nats_server() {
        let p = Permissions {
            publish: Some(SubjectPermission {
                allow: Some(vec!["a.>".into()]),
                deny: vec!["a.b".into()],
            }),
            subscribe: Some(SubjectPermission {
                allow: Some(vec!["_INBOX.>".into()]),
                deny: vec![],
            }),
            allow_responses: Some(crate::permissions::ResponsePermission {
                max_msgs: 2,
                expires: Duration::from_secs(60),
            }),
        };
        let v: serde_json::Value =
            serde_json::from_slice(&reply(info(), "a", "APP", Some(&p), None)).unwrap();
        assert_eq!(
            v["data"],
            serde_json::json!({"user": "a", "account": "APP", "account_name": "APP",
                "permissions": {"publish": {"allow": ["a.>"], "deny": ["a.b"]},
                    "subscribe": {"allow": ["_INBOX.>"]},
                    "responses": {"max": 2, "ttl": 60_000_000_000u64}}})
        );
        let v: serde_json::Value = serde_json::from_slice(&reply(
            info(),
            "free",
            "APP",
            None,
            Some(Duration::from_millis(5_700)),
        ))
        .unwrap();
        assert_eq!(
            v["data"],
            serde_json::json!({"user": "free", "account": "APP", "account_name": "APP",
                "expires": 5_000_000_000u64})
        );
    }
}
