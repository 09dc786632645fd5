use std::path::Path;

use nkeys::KeyPair;
use tribune_auth::jwt::{self, AccountClaims, OperatorClaims};

use crate::config::{apply_str, ConfigErrors};
use crate::limits::Limit;
use crate::options::Options;

struct Keys {
    op: KeyPair,
    sys: KeyPair,
    app: KeyPair,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            op: KeyPair::new_operator(),
            sys: KeyPair::new_account(),
            app: KeyPair::new_account(),
        }
    }

    fn operator(&self, system_account: Option<&str>) -> String {
        let mut c = OperatorClaims::new(&self.op.public_key());
        c.nats.system_account = system_account.unwrap_or_default().to_string();
        jwt::encode(&mut c, &self.op).unwrap()
    }

    fn account(&self, acc: &KeyPair, edit: impl FnOnce(&mut AccountClaims)) -> String {
        let mut c = AccountClaims::new(&acc.public_key());
        edit(&mut c);
        jwt::encode(&mut c, &self.op).unwrap()
    }

    /// A whole operator-mode config, with `extra` appended.
    fn config(&self, extra: &str) -> String {
        let app = self.account(&self.app, |c| {
            c.nats.limits.conn = 2;
            c.nats.limits.subs = 10;
            c.nats.limits.jetstream.disk_storage = -1;
        });
        let sys = self.account(&self.sys, |_| {});
        format!(
            "operator: {}\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n  {}: {}\n  {}: {}\n}}\n{extra}",
            self.operator(None),
            self.sys.public_key(),
            self.app.public_key(),
            app,
            self.sys.public_key(),
            sys,
        )
    }
}

fn apply(src: &str) -> Result<(Options, Vec<String>), Vec<String>> {
    let mut o = Options::default();
    match apply_str(&mut o, src, Path::new("x.conf")) {
        Ok(w) => Ok((o, w)),
        Err(ConfigErrors(errs)) => Err(errs.iter().map(|e| e.message.clone()).collect()),
    }
}

#[test]
fn preloaded_accounts_become_accounts_named_by_key() {
    let k = Keys::new();
    let (o, w) = apply(&k.config("")).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let op = o.operator.as_ref().unwrap();
    assert_eq!(op.trusted_keys, vec![k.op.public_key()]);
    assert_eq!(op.preload.len(), 2);
    assert_eq!(o.system_account, Some(k.sys.public_key()));
    let app = o
        .accounts
        .iter()
        .find(|a| a.name == k.app.public_key())
        .unwrap();
    assert_eq!(app.limits.max_connections, Limit::AtMost(2));
    assert_eq!(app.limits.conn.subs, Limit::AtMost(10));
    assert_eq!(app.jetstream, Some(true));
    let sys = o
        .accounts
        .iter()
        .find(|a| a.name == k.sys.public_key())
        .unwrap();
    assert_eq!(sys.jetstream, Some(false));
    assert!(o.auth_required() && o.nonce_required());
}

#[test]
fn operator_from_a_decorated_file_and_system_account_from_the_jwt() {
    let k = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("op.jwt");
    let text = format!(
        "-----BEGIN NATS OPERATOR JWT-----\n{}\n------END NATS OPERATOR JWT------\n",
        k.operator(Some(&k.sys.public_key()))
    );
    std::fs::write(&path, text).unwrap();
    let (o, _) = apply(&format!("operator: {:?}\nresolver: MEM\n", path)).unwrap();
    assert_eq!(o.system_account, Some(k.sys.public_key()));
    let errs = apply(&format!(
        "operator: {:?}\nresolver: MEM\nsystem_account: {}\n",
        path,
        k.app.public_key()
    ))
    .unwrap_err();
    assert_eq!(
        errs,
        ["system_account in config and operator JWT must be identical"]
    );
}

#[test]
fn bad_preloads_are_warned_about_and_left_out() {
    let k = Keys::new();
    let stranger = KeyPair::new_operator();
    let mut c = AccountClaims::new(&k.app.public_key());
    let untrusted = jwt::encode(&mut c, &stranger).unwrap();
    let src = format!(
        "operator: {}\nresolver: MEMORY\nresolver_preload: {{ {}: {} }}\n",
        k.operator(None),
        k.app.public_key(),
        untrusted
    );
    let (o, w) = apply(&src).unwrap();
    assert!(o.accounts.is_empty());
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("not signed by trusted operator"), "{w:?}");
    let errs = apply(&format!(
        "operator: {}\nresolver: MEMORY\nresolver_preload: {{ {}: garbage }}\n",
        k.operator(None),
        k.app.public_key()
    ))
    .unwrap_err();
    assert_eq!(errs, ["invalid account JWT"]);
}

#[test]
fn nats_server_refuses_these_combinations() {
    let k = Keys::new();
    let op = k.operator(None);
    let err = |src: String| apply(&src).unwrap_err();
    assert_eq!(
        err(format!("operator: {op}\n")),
        ["operators require an account resolver to be configured"]
    );
    assert_eq!(
        err(format!(
            "operator: {op}\nresolver: MEMORY\naccounts {{ A {{}} }}\n"
        )),
        ["operators do not allow Accounts to be configured directly"]
    );
    assert_eq!(
        err(format!(
            "operator: {op}\nresolver: MEMORY\nauthorization {{ users: [ {{user: a, password: b}} ] }}\n"
        )),
        ["operators do not allow users to be configured directly"]
    );
    assert_eq!(
        err(format!(
            "operator: {op}\nresolver: MEMORY\ntrusted_keys: [{}]\n",
            k.op.public_key()
        )),
        ["conflicting options for 'TrustedKeys' and 'TrustedOperators'"]
    );
    assert_eq!(
        err("trusted_keys: [NOTAKEY]\nresolver: MEMORY\n".into()),
        ["trusted Keys \"NOTAKEY\" are required to be a valid public operator nkey"]
    );
    assert!(
        err("operator: /nonexistent/op.jwt\nresolver: MEMORY\n".into())[0]
            .starts_with("error parsing operator JWT: ")
    );
}

#[test]
fn other_resolvers_are_refused_not_ignored() {
    let k = Keys::new();
    let op = k.operator(None);
    let file = tempfile::NamedTempFile::new().unwrap();
    for (resolver, want) in [
        (
            "URL(http://localhost:9090/jwt/v1/accounts/)".to_string(),
            "is not supported by tribune-broker; use MEMORY or a full directory resolver",
        ),
        (
            "{ type: cache, dir: \"/tmp/jwt\" }".to_string(),
            "resolver of type \"cache\" is not supported by tribune-broker; use type: full",
        ),
        (
            "{ type: full }".to_string(),
            "dir has no value and needs to point to a directory",
        ),
        (
            format!("{{ type: full, dir: {:?} }}", file.path()),
            "dir needs to point to an accessible directory",
        ),
        (
            "{ type: full, dir: /tmp/jwt, ttl: \"1m\" }".to_string(),
            "FULL does not accept ttl",
        ),
        (
            "{ type: full, dir: /tmp/jwt, hard_delete: true }".to_string(),
            "hard_delete has no effect without delete",
        ),
        (
            "{ type: other, dir: /tmp/jwt }".to_string(),
            "should be MEM or  URL(\"url\") or a map containing dir and type",
        ),
    ] {
        let errs = apply(&format!("operator: {op}\nresolver: {resolver}\n")).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "{resolver}: {errs:?}"
        );
    }
}

#[test]
fn full_resolver_reads_as_nats_server_reads_it() {
    use crate::operator::store::DeleteMode;
    use crate::options::ResolverOptions;
    let k = Keys::new();
    let op = k.operator(None);
    let (o, _) = apply(&format!(
        "operator: {op}\nresolver: {{ type: full, dir: /tmp/jwt-x, allow_delete: true, \
         interval: \"2s\", timeout: \"500ms\", limit: 10 }}\n"
    ))
    .unwrap();
    let ResolverOptions::Full(f) = o.operator.unwrap().resolver else {
        panic!("a full resolver");
    };
    assert_eq!(f.dir, std::path::PathBuf::from("/tmp/jwt-x"));
    assert_eq!(f.delete, DeleteMode::Rename);
    assert_eq!(f.limit, 10);
    assert_eq!(f.interval, std::time::Duration::from_secs(2));
    assert_eq!(f.timeout, std::time::Duration::from_millis(500));
    let (o, _) = apply(&format!(
        "operator: {op}\nresolver: {{ type: FULL, dir: /tmp/jwt-x, allow_delete: true, hard_delete: true }}\n"
    ))
    .unwrap();
    let ResolverOptions::Full(f) = o.operator.unwrap().resolver else {
        panic!("a full resolver");
    };
    assert_eq!(f.delete, DeleteMode::Remove);
    assert_eq!(
        f.interval,
        std::time::Duration::from_secs(60),
        "nats-server's default"
    );
}

#[test]
fn trusted_keys_alone_work_like_an_operator() {
    let k = Keys::new();
    let app = k.account(&k.app, |_| {});
    let (o, _) = apply(&format!(
        "trusted_keys: {}\nresolver: MEMORY\nresolver_preload: {{ {}: {app} }}\n",
        k.op.public_key(),
        k.app.public_key()
    ))
    .unwrap();
    assert_eq!(o.accounts.len(), 1);
    assert_eq!(o.accounts[0].name, k.app.public_key());
}

#[test]
fn operators_asserting_a_newer_server_are_refused() {
    let k = Keys::new();
    let mut c = OperatorClaims::new(&k.op.public_key());
    let check = |c: &OperatorClaims| super::check_server_version(c, "2.11.0");
    assert!(check(&c).is_ok());
    c.nats.assert_server_version = "2.10.7".into();
    assert!(check(&c).is_ok());
    c.nats.assert_server_version = "2.11.0".into();
    assert!(check(&c).is_ok());
    c.nats.assert_server_version = "2.12.0".into();
    assert_eq!(
        check(&c).unwrap_err(),
        format!(
            "operator {} expected minor version 12 > server minor version 11",
            k.op.public_key()
        )
    );
    c.nats.assert_server_version = "3.0.0".into();
    assert!(check(&c)
        .unwrap_err()
        .contains("major version 3 > server major version 2"));
    c.nats.assert_server_version = "2.11.1".into();
    assert!(check(&c)
        .unwrap_err()
        .contains("update version 1 > server update version 0"));
    c.nats.assert_server_version = "two".into();
    assert!(check(&c).unwrap_err().contains("got error instead"));
    let src = {
        let op = jwt::encode(&mut c, &k.op).unwrap();
        format!("operator: {op}\nresolver: MEMORY\n")
    };
    assert!(apply(&src).is_err());
}
