//! Client authentication against the configured credentials.
//!
//! The forms nats-server offers in `authorization {}` and `accounts {}`: a
//! token, one user/password, a list of users (passwords in plain text or as
//! bcrypt hashes), and NKEY users, who prove they hold a key by signing the
//! nonce the server sent in INFO. Plain secrets are compared in constant
//! time so response timing does not leak how much of a guess was right.

pub mod secrets;

use base64::Engine;

pub use secrets::{constant_time_eq, is_bcrypt, SecretChecker};

use crate::options::{Options, User};
use crate::permissions::Permissions;
use crate::protocol::ConnectOptions;

/// Who a successfully authenticated client is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub user: Option<String>,
    pub account: Option<String>,
    pub permissions: Option<Permissions>,
}

impl Identity {
    fn of(u: &User, opts: &Options) -> Identity {
        let name = u.nkey.clone().unwrap_or_else(|| u.username.clone());
        Identity {
            user: Some(name),
            account: u.account.clone(),
            permissions: u
                .permissions
                .clone()
                .or_else(|| opts.default_permissions.clone()),
        }
    }
}

/// A password check: bcrypt hashes are verified with bcrypt, anything else
/// is compared in constant time.
fn password_ok(given: &str, want: &str) -> bool {
    if is_bcrypt(want) {
        return bcrypt::verify(given, want).unwrap_or(false);
    }
    constant_time_eq(given.as_bytes(), want.as_bytes())
}

/// Decode a nonce signature: clients send base64 URL encoding without
/// padding, some send standard encoding; accept both, as nats-server does.
fn decode_sig(sig: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [URL_SAFE_NO_PAD, URL_SAFE, STANDARD_NO_PAD, STANDARD]
        .iter()
        .find_map(|e| e.decode(sig).ok())
}

/// Does `sig` prove possession of `nkey` for this `nonce`?
pub fn nkey_signature_ok(nkey: &str, nonce: &str, sig: &str) -> bool {
    let (Ok(kp), Some(sig)) = (nkeys::KeyPair::from_public_key(nkey), decode_sig(sig)) else {
        return false;
    };
    !nonce.is_empty() && kp.verify(nonce.as_bytes(), &sig).is_ok()
}

/// A fresh nonce for INFO: 11 random bytes, base64url without padding.
pub fn new_nonce() -> String {
    let mut b = [0u8; 11];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn same(given: Option<&str>, want: &str) -> bool {
    constant_time_eq(given.unwrap_or("").as_bytes(), want.as_bytes())
}

/// Check a CONNECT against the options, with the `nonce` this connection
/// was sent. `None` means "Authorization Violation".
pub fn authenticate(opts: &Options, c: &ConnectOptions, nonce: &str) -> Option<Identity> {
    if !opts.auth_required() {
        return Some(Identity::default());
    }
    if let Some(token) = &opts.authorization {
        return same(c.auth_token.as_deref(), token).then(Identity::default);
    }
    if let Some(user) = &opts.username {
        let want = opts.password.as_deref().unwrap_or("");
        let ok = same(c.user.as_deref(), user) & password_ok(c.pass.as_deref().unwrap_or(""), want);
        return ok.then(|| Identity {
            user: Some(user.clone()),
            permissions: opts.default_permissions.clone(),
            ..Default::default()
        });
    }
    if let Some(nkey) = c.nkey.as_deref() {
        let u = opts
            .users
            .iter()
            .find(|u| u.nkey.as_deref() == Some(nkey))?;
        let sig = c.sig.as_deref().unwrap_or("");
        return nkey_signature_ok(nkey, nonce, sig).then(|| Identity::of(u, opts));
    }
    let name = c.user.as_deref()?;
    let pass = c.pass.as_deref().unwrap_or("");
    let Some(u) = opts
        .users
        .iter()
        .find(|u| u.nkey.is_none() && u.username == name)
    else {
        // Spend what a real check would, so timing does not tell which
        // user names exist.
        if let Some(hashed) = opts.users.iter().find(|u| is_bcrypt(&u.password)) {
            let _ = bcrypt::verify(pass, &hashed.password);
        }
        return None;
    };
    password_ok(pass, &u.password).then(|| Identity::of(u, opts))
}

/// The identity for a client that sent no credentials, via `no_auth_user`.
pub fn no_auth_identity(opts: &Options) -> Option<Identity> {
    let name = opts.no_auth_user.as_deref()?;
    let u = opts.users.iter().find(|u| u.username == name)?;
    Some(Identity::of(u, opts))
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
        assert!(authenticate(&Options::default(), &connect(None, None, None), "").is_some());
    }

    #[test]
    fn token() {
        let opts = Options {
            authorization: Some("s3cret".into()),
            ..Default::default()
        };
        assert!(authenticate(&opts, &connect(None, None, Some("s3cret")), "").is_some());
        assert!(authenticate(&opts, &connect(None, None, Some("s3cre")), "").is_none());
        assert!(authenticate(&opts, &connect(None, None, None), "").is_none());
    }

    #[test]
    fn user_pass_and_users() {
        let opts = Options {
            username: Some("a".into()),
            password: Some("b".into()),
            ..Default::default()
        };
        assert!(authenticate(&opts, &connect(Some("a"), Some("b"), None), "").is_some());
        assert!(authenticate(&opts, &connect(Some("a"), Some("x"), None), "").is_none());
        assert!(authenticate(&opts, &connect(Some("z"), Some("b"), None), "").is_none());
        let opts = Options {
            users: vec![User {
                username: "u1".into(),
                password: "p1".into(),
                account: None,
                ..Default::default()
            }],
            no_auth_user: Some("u1".into()),
            ..Default::default()
        };
        assert_eq!(
            authenticate(&opts, &connect(Some("u1"), Some("p1"), None), "")
                .unwrap()
                .user
                .as_deref(),
            Some("u1")
        );
        assert!(authenticate(&opts, &connect(Some("u1"), Some("p2"), None), "").is_none());
        assert!(authenticate(&opts, &connect(None, None, None), "").is_none());
        assert_eq!(no_auth_identity(&opts).unwrap().user.as_deref(), Some("u1"));
    }

    #[test]
    fn bcrypt_passwords() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let opts = Options {
            users: vec![User {
                username: "b".into(),
                password: hash,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(authenticate(&opts, &connect(Some("b"), Some("s3cret"), None), "").is_some());
        assert!(authenticate(&opts, &connect(Some("b"), Some("wrong"), None), "").is_none());
    }

    #[test]
    fn nkey_users_sign_the_nonce() {
        let kp = nkeys::KeyPair::new_user();
        let opts = Options {
            users: vec![User {
                nkey: Some(kp.public_key()),
                account: Some("APP".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let nonce = new_nonce();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(kp.sign(nonce.as_bytes()).unwrap());
        let mut c = ConnectOptions {
            nkey: Some(kp.public_key()),
            sig: Some(sig.clone()),
            ..Default::default()
        };
        let id = authenticate(&opts, &c, &nonce).expect("valid signature");
        assert_eq!(id.account.as_deref(), Some("APP"));
        assert!(
            authenticate(&opts, &c, &new_nonce()).is_none(),
            "a signature replayed against a new nonce fails"
        );
        c.sig = Some("AAAA".into());
        assert!(
            authenticate(&opts, &c, &nonce).is_none(),
            "a wrong signature fails"
        );
        let other = nkeys::KeyPair::new_user();
        c.nkey = Some(other.public_key());
        c.sig = Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(other.sign(nonce.as_bytes()).unwrap()),
        );
        assert!(
            authenticate(&opts, &c, &nonce).is_none(),
            "an unknown nkey fails"
        );
    }
}
