//! `authorization { auth_callout { issuer, account, auth_users, xkey, allowed_accounts } }`.
//!
//! The messages are nats-server's, so a config rejected by one is rejected
//! by the other with the same words.

use super::apply::Ctx;
use super::value::{Node, Value};
use crate::options::AuthCalloutOptions;

pub(super) fn auth_callout(cx: &mut Ctx, node: &Node) -> Option<AuthCalloutOptions> {
    let Value::Map(map) = &node.value else {
        cx.error(
            &node.pos,
            format!(
                "Expected authorization callout to be a map/struct, got {}",
                node.value.type_name()
            ),
        );
        return None;
    };
    let mut ac = AuthCalloutOptions::default();
    let mut ok = true;
    for (k, v) in map.iter() {
        match k.to_ascii_lowercase().as_str() {
            "issuer" => {
                ac.issuer = cx.string(k, v).unwrap_or_default();
                if !is_public_key(&ac.issuer, nkeys::KeyPairType::Account) {
                    cx.error(
                        &v.pos,
                        format!(
                            "Expected callout user to be a valid public account nkey, got {:?}",
                            ac.issuer
                        ),
                    );
                    ok = false;
                }
            }
            "account" | "acc" => ac.account = cx.string(k, v).unwrap_or_default(),
            "auth_users" | "users" => match names(cx, k, v, "auth_users field") {
                Some(list) => ac.auth_users = list,
                None => ok = false,
            },
            "xkey" | "key" => {
                let key = cx.string(k, v).unwrap_or_default();
                if !is_curve_key(&key) {
                    cx.error(
                        &v.pos,
                        format!("Expected callout xkey to be a valid public xkey, got {key:?}"),
                    );
                    ok = false;
                }
                ac.xkey = Some(key);
            }
            "allowed_accounts" => match names(cx, k, v, "allowed accounts field") {
                Some(list) => ac.allowed_accounts = list,
                None => ok = false,
            },
            _ if v.used_as_variable => {}
            _ => cx.error(
                &v.pos,
                format!("Unknown field {k:?} parsing authorization callout"),
            ),
        }
    }
    if !ok {
        return None;
    }
    if ac.account.is_empty() {
        ac.account = crate::accounts::GLOBAL_ACCOUNT.to_string();
    }
    if ac.issuer.is_empty() {
        cx.error(
            &node.pos,
            "Authorization callouts require an issuer to be specified",
        );
        return None;
    }
    if ac.auth_users.is_empty() {
        cx.error(
            &node.pos,
            "Authorization callouts require authorized users to be specified",
        );
        return None;
    }
    Some(ac)
}

fn names(cx: &mut Ctx, key: &str, node: &Node, what: &str) -> Option<Vec<String>> {
    let Value::Array(items) = &node.value else {
        cx.error(
            &node.pos,
            format!(
                "Expected {what} to be an array, got {}",
                node.value.type_name()
            ),
        );
        return None;
    };
    items.iter().map(|i| cx.string(key, i)).collect()
}

fn is_public_key(key: &str, kind: nkeys::KeyPairType) -> bool {
    nkeys::KeyPair::from_public_key(key).is_ok_and(|k| k.key_pair_type() == kind)
}

fn is_curve_key(key: &str) -> bool {
    nkeys::XKey::from_public_key(key).is_ok()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::apply_str;
    use crate::options::Options;

    fn load_str(conf: &str) -> Result<Options, crate::config::ConfigErrors> {
        let mut o = Options::default();
        apply_str(&mut o, conf, Path::new("x.conf")).map(|_| o)
    }

    fn err(conf: &str) -> String {
        load_str(conf).expect_err("must fail").to_string()
    }

    #[test]
    fn parses_all_fields() {
        let issuer = nkeys::KeyPair::new_account().public_key();
        let xkey = nkeys::XKey::new().public_key();
        let conf = format!(
            r#"
accounts {{ AUTH {{ users: [{{user: auth, password: pwd}}] }}, APP {{}} }}
authorization {{ auth_callout {{
  issuer: {issuer}
  account: AUTH
  auth_users: [ auth ]
  xkey: {xkey}
  allowed_accounts: [ APP ]
}} }}"#
        );
        let opts = load_str(&conf).expect("valid");
        let ac = opts.auth_callout.expect("callout");
        assert_eq!(ac.issuer, issuer);
        assert_eq!(ac.account, "AUTH");
        assert_eq!(ac.auth_users, vec!["auth"]);
        assert_eq!(ac.xkey.as_deref(), Some(xkey.as_str()));
        assert_eq!(ac.allowed_accounts, vec!["APP"]);
    }

    #[test]
    fn defaults_to_global_account() {
        let issuer = nkeys::KeyPair::new_account().public_key();
        let conf = format!(
            "authorization {{ users: [{{user: a, password: b}}]\n auth_callout {{ issuer: {issuer}, auth_users: [a] }} }}"
        );
        assert_eq!(load_str(&conf).unwrap().auth_callout.unwrap().account, "$G");
    }

    #[test]
    fn nats_server_errors() {
        let user = nkeys::KeyPair::new_user().public_key();
        let issuer = nkeys::KeyPair::new_account().public_key();
        assert!(err(&format!(
            "authorization {{ auth_callout {{ issuer: {user}, auth_users: [a] }} }}"
        ))
        .contains("Expected callout user to be a valid public account nkey"));
        assert!(err(&format!(
            "authorization {{ auth_callout {{ issuer: {issuer} }} }}"
        ))
        .contains("Authorization callouts require authorized users to be specified"));
        assert!(err("authorization { auth_callout { auth_users: [a] } }")
            .contains("Authorization callouts require an issuer to be specified"));
        assert!(err(&format!(
            "authorization {{ auth_callout {{ issuer: {issuer}, auth_users: [a], xkey: nope }} }}"
        ))
        .contains("Expected callout xkey to be a valid public xkey"));
        assert!(err(&format!(
            "authorization {{ auth_callout {{ issuer: {issuer}, auth_users: a }} }}"
        ))
        .contains("Expected auth_users field to be an array"));
        assert!(err(&format!(
            "authorization {{ auth_callout {{ issuer: {issuer}, auth_users: [a], bogus: 1 }} }}"
        ))
        .contains("Unknown field \"bogus\" parsing authorization callout"));
        assert!(err(&format!(
            "authorization {{ auth_callout {{ issuer: {issuer}, auth_users: [a], allowed_accounts: [NOPE] }} }}"
        ))
        .contains("auth_callout allowed account \"NOPE\" not found in configured accounts"));
        assert!(err("authorization { auth_callout: 1 }")
            .contains("Expected authorization callout to be a map/struct"));
    }
}
