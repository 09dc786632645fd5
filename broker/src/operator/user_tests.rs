use base64::Engine;
use nkeys::KeyPair;
use tribune_auth::jwt::{
    account::UserScope, AccountClaims, Permission, SigningKey, UserClaims, UserPermissionLimits,
};

use super::*;
use crate::auth::{Login, CONN_TYPE_STANDARD, CONN_TYPE_WEBSOCKET};
use crate::operator::MemoryResolver;
use crate::protocol::ConnectOptions;

const NONCE: &str = "nonce-for-tests";

/// An operator with one account (a plain and a scoped signing key).
struct Fixture {
    op: KeyPair,
    acc: KeyPair,
    signer: KeyPair,
    scoped: KeyPair,
    claims: AccountClaims,
}

impl Fixture {
    fn new() -> Fixture {
        let acc = KeyPair::new_account();
        let signer = KeyPair::new_account();
        let scoped = KeyPair::new_account();
        let mut claims = AccountClaims::new(&acc.public_key());
        claims.nats.signing_keys = vec![
            SigningKey::Plain(signer.public_key()),
            SigningKey::Scoped(Box::new(UserScope {
                kind: "user_scope".into(),
                key: scoped.public_key(),
                role: "team".into(),
                template: UserPermissionLimits {
                    pub_: Permission {
                        allow: vec!["team.{{name()}}.>".into()],
                        deny: vec![],
                    },
                    subs: 5,
                    ..Default::default()
                },
            })),
        ];
        Fixture {
            op: KeyPair::new_operator(),
            acc,
            signer,
            scoped,
            claims,
        }
    }

    fn resolver(&self) -> MemoryResolver {
        let mut c = self.claims.clone();
        let token = jwt::encode(&mut c, &self.op).unwrap();
        MemoryResolver::new(&[self.op.public_key()], &[(self.acc.public_key(), token)])
    }

    fn user(&self) -> (KeyPair, UserClaims) {
        let u = KeyPair::new_user();
        let c = UserClaims::new(&u.public_key(), "");
        (u, c)
    }
}

fn connect(token: &str, user: &KeyPair) -> ConnectOptions {
    let sig = user.sign(NONCE.as_bytes()).unwrap();
    ConnectOptions {
        jwt: Some(token.to_string()),
        sig: Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)),
        ..Default::default()
    }
}

fn login<'a>(c: &'a ConnectOptions, conn_type: &'a str) -> Login<'a> {
    Login {
        connect: c,
        nonce: NONCE,
        conn_type,
        source: Some("127.0.0.1".parse().unwrap()),
    }
}

fn check(r: &MemoryResolver, c: &ConnectOptions) -> Result<Identity, String> {
    authenticate(r, login(c, CONN_TYPE_STANDARD))
}

#[test]
fn a_user_of_the_account_is_admitted_into_it() {
    let f = Fixture::new();
    let r = f.resolver();
    let (u, mut c) = f.user();
    c.nats.sub.allow = vec!["a.>".into()];
    c.nats.subs = 3;
    let token = jwt::encode(&mut c, &f.acc).unwrap();
    let id = check(&r, &connect(&token, &u)).unwrap();
    assert_eq!(id.account.as_deref(), Some(f.acc.public_key().as_str()));
    assert_eq!(id.user.as_deref(), Some(u.public_key().as_str()));
    assert_eq!(id.limits.subs, Limit::AtMost(3));
    assert!(id.permissions.is_some());
    assert_eq!(id.expires, None);
}

#[test]
fn signatures_and_issuers_are_checked() {
    let f = Fixture::new();
    let r = f.resolver();
    let (u, mut c) = f.user();
    let token = jwt::encode(&mut c, &f.acc).unwrap();
    // Signed by another key than the user's.
    let other = KeyPair::new_user();
    let mut bad = connect(&token, &other);
    assert_eq!(check(&r, &bad).unwrap_err(), "Signature not verified");
    bad.sig = None;
    assert_eq!(check(&r, &bad).unwrap_err(), "Signature missing");
    // An account key the account does not list.
    let stranger = KeyPair::new_account();
    let token = jwt::encode(&mut c, &stranger).unwrap();
    assert!(check(&r, &connect(&token, &u))
        .unwrap_err()
        .starts_with("Account JWT lookup error"));
    c.nats.issuer_account = f.acc.public_key();
    let token = jwt::encode(&mut c, &stranger).unwrap();
    assert_eq!(
        check(&r, &connect(&token, &u)).unwrap_err(),
        "User JWT issuer is not known"
    );
    // The account's plain signing key, naming the account.
    let token = jwt::encode(&mut c, &f.signer).unwrap();
    assert!(check(&r, &connect(&token, &u)).is_ok());
    // No JWT at all.
    assert!(check(&r, &ConnectOptions::default()).is_err());
}

#[test]
fn bearer_tokens_skip_the_signature_unless_the_account_forbids_them() {
    let mut f = Fixture::new();
    let (_, mut c) = f.user();
    c.nats.bearer_token = true;
    let token = jwt::encode(&mut c, &f.acc).unwrap();
    let bare = ConnectOptions {
        jwt: Some(token),
        ..Default::default()
    };
    assert!(check(&f.resolver(), &bare).is_ok());
    f.claims.nats.limits.disallow_bearer = true;
    assert!(check(&f.resolver(), &bare).is_err());
}

#[test]
fn scoped_keys_impose_their_template() {
    let f = Fixture::new();
    let r = f.resolver();
    let (u, mut c) = f.user();
    c.std.name = "blue".into();
    c.nats.issuer_account = f.acc.public_key();
    // As nsc writes a scoped user: no limits at all, not even -1.
    (c.nats.subs, c.nats.data, c.nats.payload) = (0, 0, 0);
    let token = jwt::encode(&mut c, &f.scoped).unwrap();
    let id = check(&r, &connect(&token, &u)).unwrap();
    let p = id.permissions.unwrap();
    assert!(p.can_publish("team.blue.x"));
    assert!(!p.can_publish("team.red.x"));
    assert_eq!(id.limits.subs, Limit::AtMost(5));
    assert_eq!(id.limits.payload, Limit::AtMost(0), "0 in the template");
    // A scoped user may not bring permissions of its own.
    c.nats.pub_.allow = vec![">".into()];
    let token = jwt::encode(&mut c, &f.scoped).unwrap();
    assert!(check(&r, &connect(&token, &u))
        .unwrap_err()
        .contains("scoped users require no permissions"));
}

#[test]
fn templates_fill_or_refuse() {
    let v = TemplateValues {
        name: "n",
        subject: "UX",
        account_name: "acc",
        account_subject: "AX",
    };
    assert_eq!(
        v.fill("a.{{name()}}.{{ subject() }}.{{account-name()}}.{{account-subject()}}")
            .unwrap(),
        "a.n.UX.acc.AX"
    );
    assert!(v.fill("a.{{tag(x)}}").is_err());
    assert!(v.fill("a.{{name()").is_err());
    let empty = TemplateValues { name: "", ..v };
    assert!(
        empty.fill("a.{{name()}}.b").is_err(),
        "an empty token is no subject"
    );
}

#[test]
fn revoked_expired_and_not_yet_valid_users_are_refused() {
    let mut f = Fixture::new();
    let (u, mut c) = f.user();
    let token = jwt::encode(&mut c, &f.acc).unwrap();
    f.claims
        .nats
        .revocations
        .insert(u.public_key(), jwt::now_unix() + 10);
    assert_eq!(
        check(&f.resolver(), &connect(&token, &u)).unwrap_err(),
        "User authentication revoked"
    );
    f.claims.nats.revocations.clear();
    f.claims
        .nats
        .revocations
        .insert("*".into(), jwt::now_unix() + 10);
    assert!(check(&f.resolver(), &connect(&token, &u)).is_err());
    f.claims.nats.revocations.clear();
    let r = f.resolver();
    c.std.exp = jwt::now_unix() - 10;
    let token = jwt::encode(&mut c, &f.acc).unwrap();
    assert!(check(&r, &connect(&token, &u))
        .unwrap_err()
        .contains("expired"));
    c.std.exp = 0;
    c.std.nbf = jwt::now_unix() + 3600;
    let token = jwt::encode(&mut c, &f.acc).unwrap();
    assert!(check(&r, &connect(&token, &u)).is_err());
}

#[test]
fn expiry_is_the_first_of_user_account_and_window() {
    let mut f = Fixture::new();
    let (u, mut c) = f.user();
    let now = jwt::now_unix();
    c.std.exp = now + 3600;
    f.claims.std.exp = now + 60;
    let token = jwt::encode(&mut c, &f.acc).unwrap();
    let id = check(&f.resolver(), &connect(&token, &u)).unwrap();
    let at = id.expires.unwrap();
    let want = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs((now + 60) as u64);
    assert_eq!(at, want, "the account's exp comes first");
    assert_eq!(id.expiry, crate::auth::Expiry::Account);
    f.claims.std.exp = now + 7200;
    let id = check(&f.resolver(), &connect(&token, &u)).unwrap();
    assert_eq!(id.expiry, crate::auth::Expiry::User, "then the user's");
    f.claims.std.exp = now - 1;
    assert_eq!(
        check(&f.resolver(), &connect(&token, &u)).unwrap_err(),
        "Account JWT has expired"
    );
}

#[test]
fn src_and_connection_types_are_enforced() {
    let f = Fixture::new();
    let r = f.resolver();
    let (u, mut c) = f.user();
    c.nats.src = vec!["10.0.0.0/8".into()];
    let token = jwt::encode(&mut c, &f.acc).unwrap();
    assert!(check(&r, &connect(&token, &u))
        .unwrap_err()
        .starts_with("Bad src Ip"));
    c.nats.src = vec!["127.0.0.0/8".into()];
    c.nats.allowed_connection_types = vec!["WEBSOCKET".into()];
    let token = jwt::encode(&mut c, &f.acc).unwrap();
    let co = connect(&token, &u);
    assert_eq!(check(&r, &co).unwrap_err(), "Connection type not allowed");
    assert!(authenticate(&r, login(&co, CONN_TYPE_WEBSOCKET)).is_ok());
    c.nats.allowed_connection_types = vec!["PIGEON".into()];
    let token = jwt::encode(&mut c, &f.acc).unwrap();
    assert!(check(&r, &connect(&token, &u)).is_err());
    c.nats.allowed_connection_types.clear();
    for bad in ["not-a-cidr", "127.0.0.1"] {
        c.nats.src = vec![bad.into()];
        let token = jwt::encode(&mut c, &f.acc).unwrap();
        assert!(check(&r, &connect(&token, &u)).is_err(), "{bad}");
    }
}

#[test]
fn account_default_permissions_apply_to_users_without_their_own() {
    let mut f = Fixture::new();
    f.claims.nats.default_permissions = Some(tribune_auth::jwt::account::Permissions {
        pub_: Permission {
            allow: vec![],
            deny: vec![">".into()],
        },
        ..Default::default()
    });
    let (u, mut c) = f.user();
    let token = jwt::encode(&mut c, &f.acc).unwrap();
    let id = check(&f.resolver(), &connect(&token, &u)).unwrap();
    assert!(!id.permissions.unwrap().can_publish("x"));
}
