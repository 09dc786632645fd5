//! Client authentication against the configured credentials.
//!
//! This covers the single-account forms nats-server offers on the command
//! line and in `authorization {}`: a token, one user/password, or a list of
//! users. Secrets are compared in constant time so response timing does not
//! leak how much of a guess was right. NKEYs, JWTs, bcrypt and auth callout
//! join in the security work (issue 5).

use crate::options::Options;
use crate::protocol::ConnectOptions;

/// Who a successfully authenticated client is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub user: Option<String>,
    pub account: Option<String>,
}

/// Compare two secrets without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

fn same(given: Option<&str>, want: &str) -> bool {
    constant_time_eq(given.unwrap_or("").as_bytes(), want.as_bytes())
}

/// Check a CONNECT against the options. `None` means "Authorization Violation".
pub fn authenticate(opts: &Options, c: &ConnectOptions) -> Option<Identity> {
    if !opts.auth_required() {
        return Some(Identity::default());
    }
    if let Some(token) = &opts.authorization {
        return same(c.auth_token.as_deref(), token).then(Identity::default);
    }
    if let Some(user) = &opts.username {
        let ok = same(c.user.as_deref(), user)
            & same(c.pass.as_deref(), opts.password.as_deref().unwrap_or(""));
        return ok.then(|| Identity {
            user: Some(user.clone()),
            account: None,
        });
    }
    let name = c.user.as_deref()?;
    let u = opts.users.iter().find(|u| u.username == name)?;
    same(c.pass.as_deref(), &u.password).then(|| Identity {
        user: Some(u.username.clone()),
        account: u.account.clone(),
    })
}

/// The identity for a client that sent no credentials, via `no_auth_user`.
pub fn no_auth_identity(opts: &Options) -> Option<Identity> {
    let name = opts.no_auth_user.as_deref()?;
    let u = opts.users.iter().find(|u| u.username == name)?;
    Some(Identity {
        user: Some(u.username.clone()),
        account: u.account.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::User;

    fn connect(user: Option<&str>, pass: Option<&str>, token: Option<&str>) -> ConnectOptions {
        ConnectOptions {
            user: user.map(String::from),
            pass: pass.map(String::from),
            auth_token: token.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn open_server_accepts_anyone() {
        assert!(authenticate(&Options::default(), &connect(None, None, None)).is_some());
    }

    #[test]
    fn token() {
        let opts = Options {
            authorization: Some("s3cret".into()),
            ..Default::default()
        };
        assert!(authenticate(&opts, &connect(None, None, Some("s3cret"))).is_some());
        assert!(authenticate(&opts, &connect(None, None, Some("s3cre"))).is_none());
        assert!(authenticate(&opts, &connect(None, None, None)).is_none());
    }

    #[test]
    fn user_pass_and_users() {
        let opts = Options {
            username: Some("a".into()),
            password: Some("b".into()),
            ..Default::default()
        };
        assert!(authenticate(&opts, &connect(Some("a"), Some("b"), None)).is_some());
        assert!(authenticate(&opts, &connect(Some("a"), Some("x"), None)).is_none());
        assert!(authenticate(&opts, &connect(Some("z"), Some("b"), None)).is_none());
        let opts = Options {
            users: vec![User {
                username: "u1".into(),
                password: "p1".into(),
                account: None,
            }],
            no_auth_user: Some("u1".into()),
            ..Default::default()
        };
        assert_eq!(
            authenticate(&opts, &connect(Some("u1"), Some("p1"), None))
                .unwrap()
                .user
                .as_deref(),
            Some("u1")
        );
        assert!(authenticate(&opts, &connect(Some("u1"), Some("p2"), None)).is_none());
        assert!(authenticate(&opts, &connect(None, None, None)).is_none());
        assert_eq!(no_auth_identity(&opts).unwrap().user.as_deref(), Some("u1"));
    }

    #[test]
    fn ct_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
