//! The chain of trust above a user: operator JWTs, the keys they trust to
//! sign accounts, and account JWTs checked against those keys.
//!
//! Every check here is a signature or key-type check, made once when the
//! configuration is read or an account is loaded; the per-connection checks
//! are in [`super::user`].

use nkeys::KeyPairType;
use tribune_auth::jwt::{self, AccountClaims, OperatorClaims};

/// Is `key` a valid public nkey of this type?
pub fn is_public_key(key: &str, kind: KeyPairType) -> bool {
    jwt::public_key_type(key).is_some_and(|t| t == kind)
}

/// The JWT inside a file's text: the text itself, or the first JWT
/// between the `-----BEGIN ... JWT-----` / `------END ... JWT------` lines
/// of a decorated file (what `nsc` writes into `.creds` and `--raw` exports).
pub fn undecorate(text: &str) -> &str {
    let mut lines = text.lines().map(str::trim);
    let mut in_block = false;
    for line in lines.by_ref() {
        if line.starts_with("-----BEGIN") && line.contains("JWT") {
            in_block = true;
            continue;
        }
        if in_block && !line.is_empty() {
            if line.starts_with("---") {
                break;
            }
            return line;
        }
    }
    text.trim()
}

/// Decode an operator JWT and check it is signed by the operator itself or
/// one of its own signing keys.
pub fn operator(token: &str) -> Result<OperatorClaims, String> {
    let op: OperatorClaims = jwt::decode_verified(token).map_err(|e| format!("{e:#}"))?;
    if !is_public_key(&op.std.sub, KeyPairType::Operator) {
        return Err(format!("{:?} is not an operator public key", op.std.sub));
    }
    if let Some(bad) = op
        .nats
        .signing_keys
        .iter()
        .find(|k| !is_public_key(k, KeyPairType::Operator))
    {
        return Err(format!("signing key {bad:?} is not an operator public key"));
    }
    if op.std.iss != op.std.sub && !op.nats.signing_keys.contains(&op.std.iss) {
        return Err(format!(
            "issuer {:?} is neither the operator nor one of its signing keys",
            op.std.iss
        ));
    }
    Ok(op)
}

/// The keys trusted to sign accounts, as nats-server expands them: each
/// operator's own key unless `strict_signing_key_usage`, and its signing keys.
pub fn trusted_keys(operators: &[OperatorClaims]) -> Vec<String> {
    let mut keys = Vec::new();
    for op in operators {
        if !op.nats.strict_signing_key_usage {
            keys.push(op.std.sub.clone());
        }
        keys.extend(op.nats.signing_keys.iter().cloned());
    }
    keys
}

/// Decode an account JWT stored under `key` and check it: signed by a
/// trusted key, about an account key, about `key` itself, and every signing
/// key an account key. Expiry is not checked here: an expired account is
/// known but refuses its users, as in nats-server.
pub fn account(key: &str, token: &str, trusted: &[String]) -> Result<AccountClaims, String> {
    let acc: AccountClaims = jwt::decode_verified(token).map_err(|e| format!("{e:#}"))?;
    if !is_public_key(&acc.std.sub, KeyPairType::Account) {
        return Err(format!("{:?} is not an account public key", acc.std.sub));
    }
    if acc.std.sub != key {
        return Err(format!(
            "account JWT is for {:?}, stored under {key:?}",
            acc.std.sub
        ));
    }
    if !trusted.contains(&acc.std.iss) {
        return Err("Account JWT not signed by trusted operator".to_string());
    }
    if let Some(bad) = acc
        .nats
        .signing_keys
        .iter()
        .find(|k| !is_public_key(k.key(), KeyPairType::Account))
    {
        return Err(format!(
            "signing key {:?} is not an account public key",
            bad.key()
        ));
    }
    if let Some(s) = acc.nats.signing_keys.iter().find_map(|k| match k {
        jwt::SigningKey::Scoped(s) if s.kind != USER_SCOPE => Some(s),
        _ => None,
    }) {
        return Err(format!("unknown signing key scope {:?}", s.kind));
    }
    let problems = validation_problems(token, &acc);
    if !problems.is_empty() {
        return Err(validation_errors(&problems));
    }
    Ok(acc)
}

/// The blocking issues nats-io/jwt finds in an account's exports and
/// imports against its own limits, in its words. nats-io/jwt reads an
/// absent `imports`/`exports` limit as 0 and an absent `wildcards` as
/// false, so they are read here as written, not with the defaults that
/// fill the claims for everything else.
pub fn validation_problems(token: &str, acc: &AccountClaims) -> Vec<String> {
    #[derive(serde::Deserialize, Default)]
    struct Written {
        #[serde(default)]
        nats: WrittenNats,
    }
    #[derive(serde::Deserialize, Default)]
    struct WrittenNats {
        #[serde(default)]
        limits: WrittenLimits,
    }
    #[derive(serde::Deserialize, Default)]
    struct WrittenLimits {
        imports: Option<i64>,
        exports: Option<i64>,
        wildcards: Option<bool>,
    }
    let l = jwt::decode_payload::<Written>(token)
        .map(|w| w.nats.limits)
        .unwrap_or_default();
    let mut out = Vec::new();
    let (imports, exports) = (l.imports.unwrap_or(0), l.exports.unwrap_or(0));
    if imports >= 0 && acc.nats.imports.len() as i64 > imports {
        out.push("the account contains more imports than allowed by the operator".to_string());
    }
    if exports >= 0 && acc.nats.exports.len() as i64 > exports {
        out.push("the account contains more exports than allowed by the operator".to_string());
    }
    if !l.wildcards.unwrap_or(false) {
        for e in &acc.nats.exports {
            if crate::subject::has_wildcard_token(e.subject.as_bytes()) {
                out.push(
                    "the account contains wildcard exports that are not allowed by the operator"
                        .to_string(),
                );
            }
        }
    }
    out
}

/// `validation errors: [a b]`, as nats-server prints a list of them.
pub fn validation_errors(problems: &[String]) -> String {
    format!("validation errors: [{}]", problems.join(" "))
}

/// The only kind of scope nats-io/jwt knows; an account JWT with another
/// does not decode there.
pub const USER_SCOPE: &str = "user_scope";

#[cfg(test)]
mod tests {
    use super::*;
    use nkeys::KeyPair;

    fn op_jwt(op: &KeyPair, signer: &KeyPair, signing: &[&KeyPair], strict: bool) -> String {
        let mut c = OperatorClaims::new(&op.public_key());
        c.nats.signing_keys = signing.iter().map(|k| k.public_key()).collect();
        c.nats.strict_signing_key_usage = strict;
        jwt::encode(&mut c, signer).unwrap()
    }

    #[test]
    fn operator_must_sign_itself_or_by_its_signing_key() {
        let op = KeyPair::new_operator();
        let sk = KeyPair::new_operator();
        assert!(operator(&op_jwt(&op, &op, &[], false)).is_ok());
        assert!(operator(&op_jwt(&op, &sk, &[&sk], false)).is_ok());
        let other = KeyPair::new_operator();
        assert!(operator(&op_jwt(&op, &other, &[], false)).is_err());
        let acc = KeyPair::new_account();
        let mut c = OperatorClaims::new(&acc.public_key());
        assert!(operator(&jwt::encode(&mut c, &acc).unwrap()).is_err());
    }

    #[test]
    fn strict_operators_trust_only_signing_keys() {
        let op = KeyPair::new_operator();
        let sk = KeyPair::new_operator();
        let loose = operator(&op_jwt(&op, &op, &[&sk], false)).unwrap();
        assert_eq!(
            trusted_keys(&[loose]),
            vec![op.public_key(), sk.public_key()]
        );
        let strict = operator(&op_jwt(&op, &op, &[&sk], true)).unwrap();
        assert_eq!(trusted_keys(&[strict]), vec![sk.public_key()]);
    }

    #[test]
    fn accounts_must_be_signed_by_a_trusted_key_and_match_their_key() {
        let op = KeyPair::new_operator();
        let sk = KeyPair::new_operator();
        let trusted = vec![op.public_key(), sk.public_key()];
        let acc = KeyPair::new_account();
        let key = acc.public_key();
        let mut c = AccountClaims::new(&key);
        let by_op = jwt::encode(&mut c, &op).unwrap();
        assert!(account(&key, &by_op, &trusted).is_ok());
        let by_sk = jwt::encode(&mut c, &sk).unwrap();
        assert!(account(&key, &by_sk, &trusted).is_ok());
        let stranger = KeyPair::new_operator();
        let by_stranger = jwt::encode(&mut c, &stranger).unwrap();
        assert_eq!(
            account(&key, &by_stranger, &trusted).unwrap_err(),
            "Account JWT not signed by trusted operator"
        );
        let other = KeyPair::new_account().public_key();
        assert!(account(&other, &by_op, &trusted).is_err(), "key mismatch");
        // A self-signed account is not trusted.
        let self_signed = jwt::encode(&mut c, &acc).unwrap();
        assert!(account(&key, &self_signed, &trusted).is_err());
        // A scope of a kind nats-io/jwt does not know.
        c.nats.signing_keys = vec![jwt::SigningKey::Scoped(Box::new(jwt::UserScope {
            kind: "user_template".into(),
            key: KeyPair::new_account().public_key(),
            role: String::new(),
            template: jwt::UserPermissionLimits::unlimited(),
        }))];
        let odd = jwt::encode(&mut c, &op).unwrap();
        assert!(account(&key, &odd, &trusted)
            .unwrap_err()
            .starts_with("unknown signing key scope"));
    }

    #[test]
    fn decorated_files() {
        let text = "-----BEGIN NATS OPERATOR JWT-----\neyJabc.def.ghi\n------END NATS OPERATOR JWT------\n";
        assert_eq!(undecorate(text), "eyJabc.def.ghi");
        assert_eq!(undecorate("  eyJx.y.z\n"), "eyJx.y.z");
    }
}
