//! Where account JWTs come from. nats-server has several resolvers
//! (`MEMORY`, `URL(...)`, `full`/`cache` directories updated over
//! `$SYS.REQ.CLAIMS.UPDATE`); they answer the same question, so the user
//! checks only see this trait.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tracing::{debug, warn};
use tribune_auth::jwt::{self, AccountClaims};

use super::store::{DeleteMode, DirStore};
use super::verify;

/// Finds the verified claims of an account by its public key.
pub trait Resolver: Send + Sync + std::fmt::Debug {
    /// The account's claims, already checked against the trusted keys; `None`
    /// for an account that is unknown or not trusted.
    fn account(&self, key: &str) -> Option<Arc<AccountClaims>>;
}

/// `resolver: MEMORY`: the accounts of `resolver_preload`, fixed at start.
#[derive(Debug, Default)]
pub struct MemoryResolver {
    accounts: HashMap<String, Arc<AccountClaims>>,
}

impl MemoryResolver {
    /// Verify every preloaded account JWT against `trusted`. One that does
    /// not verify is left out, and its users are refused, as nats-server
    /// starts and then fails their lookups (the configuration already
    /// warned about it when it was read).
    pub fn new(trusted: &[String], preload: &[(String, String)]) -> MemoryResolver {
        let mut accounts = HashMap::new();
        for (key, token) in preload {
            match verify::account(key, token, trusted) {
                Ok(claims) => {
                    accounts.insert(key.clone(), Arc::new(claims));
                }
                Err(e) => debug!("Preloaded account [{key}] left out: {e}"),
            }
        }
        MemoryResolver { accounts }
    }
}

impl Resolver for MemoryResolver {
    fn account(&self, key: &str) -> Option<Arc<AccountClaims>> {
        self.accounts.get(key).cloned()
    }
}

/// `resolver { type: full, dir: ... }`: every account JWT this server
/// trusts, kept in a directory and changed at run time by pushes over
/// `$SYS.REQ.CLAIMS.UPDATE`, deletes, and the merges that keep the
/// servers of a cluster in step. Only JWTs that verify against the trusted
/// keys are stored: an untrusted push is refused, not kept for later.
#[derive(Debug)]
pub struct DirResolver {
    trusted: Vec<String>,
    /// The files; writers take it in turn (and fsync under it).
    store: Mutex<DirStore>,
    /// The verified accounts, which every login reads: never locked
    /// across a write to disk.
    accounts: RwLock<HashMap<String, Known>>,
}

#[derive(Debug)]
struct Known {
    jwt: String,
    claims: Arc<AccountClaims>,
}

/// Why an update or delete was refused: the account it was for (or
/// `n/a`), the headline and the cause, as nats-server words its replies
/// (`<headline> - <cause>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub account: String,
    pub headline: String,
    pub cause: String,
}

impl Refusal {
    fn new(account: &str, headline: &str, cause: impl std::fmt::Display) -> Refusal {
        Refusal {
            account: account.to_string(),
            headline: headline.to_string(),
            cause: cause.to_string(),
        }
    }
}

const UPDATE_ERROR: &str = "jwt update resulted in error";

impl DirResolver {
    /// Open `dir`, keep the JWTs in it that verify (the others are logged
    /// and left on disk), then store each preload that is newer than what
    /// the directory holds, as nats-server applies `resolver_preload`.
    pub fn open(
        dir: &Path,
        delete: DeleteMode,
        limit: usize,
        trusted: &[String],
        preload: &[(String, String)],
    ) -> std::io::Result<DirResolver> {
        let (mut store, found) = DirStore::open(dir, delete, limit)?;
        let mut accounts = HashMap::new();
        for (key, token) in found {
            match verify::account(&key, &token, trusted) {
                Ok(claims) => {
                    accounts.insert(
                        key,
                        Known {
                            jwt: token,
                            claims: Arc::new(claims),
                        },
                    );
                }
                Err(e) => {
                    warn!("Account JWT [{key}] in {} left out: {e}", dir.display());
                    // Not counted in the store's hash, list or limit.
                    store.forget(&key);
                }
            }
        }
        let r = DirResolver {
            trusted: trusted.to_vec(),
            store: Mutex::new(store),
            accounts: RwLock::new(accounts),
        };
        for (key, token) in preload {
            if let Err(e) = r.store_if_newer(key, token) {
                warn!("Preloaded account [{key}] not stored: {e}");
            }
        }
        Ok(r)
    }

    /// A pushed account JWT (`$SYS.REQ.CLAIMS.UPDATE`, or
    /// `$SYS.REQ.ACCOUNT.<key>.CLAIMS.UPDATE` with `subject` the `<key>`).
    /// Returns the claims now in force, and whether they changed.
    pub fn update(
        &self,
        token: &str,
        subject: Option<&str>,
    ) -> Result<(Arc<AccountClaims>, bool), Refusal> {
        let token = token.trim();
        let claims: AccountClaims =
            jwt::decode_verified(token).map_err(|e| Refusal::new("n/a", UPDATE_ERROR, e))?;
        let key = claims.std.sub.clone();
        if let Some(want) = subject.filter(|s| *s != key) {
            return Err(Refusal::new(
                want,
                UPDATE_ERROR,
                "subject does not match jwt content",
            ));
        }
        // An expired JWT is taken, as nats-server takes it: it ends the
        // account's connections (how an operator cuts an account off).
        let problems = verify::validation_problems(token, &claims);
        if !problems.is_empty() {
            return Err(Refusal::new(
                &key,
                "jwt validation failed",
                verify::validation_errors(&problems),
            ));
        }
        let iss = &claims.std.iss;
        if !self.trusted.contains(iss) {
            let cause = if verify::is_public_key(iss, nkeys::KeyPairType::Operator) {
                "operator requires issuer to be a signing key"
            } else {
                "issuer is not a trusted operator key"
            };
            return Err(Refusal::new(&key, UPDATE_ERROR, cause));
        }
        self.store_if_newer(&key, token)
            .map_err(|e| Refusal::new(&key, UPDATE_ERROR, e))
    }

    /// Store `token` for `key` once it verifies, unless the stored JWT was
    /// issued later: an older JWT replayed must not undo a revocation.
    fn store_if_newer(&self, key: &str, token: &str) -> Result<(Arc<AccountClaims>, bool), String> {
        let claims = Arc::new(verify::account(key, token, &self.trusted)?);
        let mut store = self.store.lock();
        if let Some(old) = self.accounts.read().get(key) {
            if old.jwt == token {
                return Ok((old.claims.clone(), false));
            }
            if old.claims.std.iat > claims.std.iat {
                return Err("a newer JWT of the account is stored".into());
            }
        }
        store.save(key, token).map_err(|e| e.to_string())?;
        self.accounts.write().insert(
            key.to_string(),
            Known {
                jwt: token.to_string(),
                claims: claims.clone(),
            },
        );
        Ok((claims, true))
    }

    /// One `<key>|<jwt>` line of another server's pack: stored when it
    /// verifies and is newer. Returns the claims when they changed.
    pub fn merge(&self, line: &str) -> Option<Arc<AccountClaims>> {
        let (key, token) = line.split_once('|')?;
        match self.store_if_newer(key, token) {
            Ok((claims, true)) => Some(claims),
            Ok((_, false)) => None,
            Err(e) => {
                debug!("DirResolver - Merge of [{key}] skipped: {e}");
                None
            }
        }
    }

    /// The stored JWT of an account.
    pub fn jwt(&self, key: &str) -> Option<String> {
        self.accounts.read().get(key).map(|k| k.jwt.clone())
    }

    /// Every stored account key, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.store.lock().keys()
    }

    /// The store's hash: equal on two servers holding the same JWTs.
    pub fn hash(&self) -> [u8; 32] {
        self.store.lock().hash()
    }

    /// Every stored JWT as a pack line, `<key>|<jwt>`.
    pub fn pack(&self) -> Vec<String> {
        let accounts = self.accounts.read();
        let mut lines: Vec<String> = accounts
            .iter()
            .map(|(k, v)| format!("{k}|{}", v.jwt))
            .collect();
        lines.sort();
        lines
    }

    /// An operator's delete request: a generic JWT the operator signed
    /// for itself, naming the accounts in `nats.accounts`. Returns the
    /// accounts deleted.
    pub fn delete(&self, token: &str, system_account: &str) -> Result<Vec<String>, Refusal> {
        let generic = jwt::decode_verified_generic(token.trim());
        let by = generic
            .as_ref()
            .map(|g| g.std.sub.clone())
            .unwrap_or_default();
        let headline = format!("delete accounts request by {by} failed");
        let refuse = |cause: &str| Refusal::new("", &headline, cause);
        let g = generic.map_err(|e| Refusal::new("", &headline, e))?;
        if g.std.sub != g.std.iss {
            return Err(refuse("not self signed"));
        }
        if !self.trusted.contains(&g.std.iss) {
            return Err(refuse("not trusted"));
        }
        let Some(list) = g.nats.get("accounts").and_then(|v| v.as_array()) else {
            return Err(refuse("malformed request"));
        };
        let mut keys = Vec::new();
        for v in list {
            match v.as_str() {
                Some(k) if verify::is_public_key(k, nkeys::KeyPairType::Account) => {
                    if k == system_account {
                        return Err(refuse("not allowed to delete system account"));
                    }
                    keys.push(k.to_string());
                }
                _ => return Err(refuse("malformed request")),
            }
        }
        let mut store = self.store.lock();
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for k in keys {
            match store.delete(&k) {
                Ok(_) => {
                    self.accounts.write().remove(&k);
                    deleted.push(k);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        if errors.is_empty() {
            Ok(deleted)
        } else {
            Err(Refusal::new(
                "",
                &format!(
                    "deleted {} accounts, failed for {}",
                    deleted.len(),
                    errors.len()
                ),
                errors.join("\n"),
            ))
        }
    }

    pub fn dir(&self) -> std::path::PathBuf {
        self.store.lock().dir().to_path_buf()
    }
}

impl Resolver for DirResolver {
    fn account(&self, key: &str) -> Option<Arc<AccountClaims>> {
        self.accounts.read().get(key).map(|k| k.claims.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nkeys::KeyPair;

    #[test]
    fn only_verified_preloads_are_known() {
        let op = KeyPair::new_operator();
        let good = KeyPair::new_account();
        let bad = KeyPair::new_account();
        let mut g = AccountClaims::new(&good.public_key());
        let mut b = AccountClaims::new(&bad.public_key());
        let preload = vec![
            (good.public_key(), jwt::encode(&mut g, &op).unwrap()),
            (
                bad.public_key(),
                jwt::encode(&mut b, &KeyPair::new_operator()).unwrap(),
            ),
        ];
        let r = MemoryResolver::new(&[op.public_key()], &preload);
        assert!(r.account(&good.public_key()).is_some());
        assert!(r.account(&bad.public_key()).is_none());
        assert!(r.account("ANOTHER").is_none());
    }
}

#[cfg(test)]
mod dir_tests {
    use super::*;
    use nkeys::KeyPair;
    use tribune_auth::jwt::OperatorClaims;

    struct Keys {
        op: KeyPair,
        acc: KeyPair,
        dir: tempfile::TempDir,
    }

    impl Keys {
        fn new() -> Keys {
            Keys {
                op: KeyPair::new_operator(),
                acc: KeyPair::new_account(),
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn account(&self, iat_shift: i64, edit: impl Fn(&mut AccountClaims)) -> String {
            let mut c = AccountClaims::new(&self.acc.public_key());
            edit(&mut c);
            let token = jwt::encode(&mut c, &self.op).unwrap();
            if iat_shift == 0 {
                return token;
            }
            // Re-sign with a shifted issue time: encode stamps "now".
            let mut c: AccountClaims = jwt::decode_payload(&token).unwrap();
            c.std.iat += iat_shift;
            resign(&c, &self.op)
        }

        fn open(&self, delete: DeleteMode) -> DirResolver {
            DirResolver::open(self.dir.path(), delete, 0, &[self.op.public_key()], &[]).unwrap()
        }
    }

    /// Sign claims as they are, keeping their `iat`.
    fn resign(c: &AccountClaims, kp: &KeyPair) -> String {
        sign_json(&serde_json::to_value(c).unwrap(), kp)
    }

    /// Sign a payload exactly as given.
    fn sign_json(payload: &serde_json::Value, kp: &KeyPair) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let h = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).unwrap());
        let input = format!("{h}.{p}");
        let sig = kp.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    #[test]
    fn pushes_are_verified_stored_and_survive_a_restart() {
        let k = Keys::new();
        let r = k.open(DeleteMode::Refuse);
        let token = k.account(0, |c| c.nats.limits.conn = 3);
        let (claims, changed) = r.update(&token, None).unwrap();
        assert!(changed);
        assert_eq!(claims.nats.limits.conn, 3);
        assert!(!r.update(&token, None).unwrap().1, "the same JWT again");
        assert_eq!(r.keys(), [k.acc.public_key()]);
        let again = k.open(DeleteMode::Refuse);
        assert_eq!(
            again.jwt(&k.acc.public_key()).as_deref(),
            Some(token.as_str())
        );
        assert!(again.account(&k.acc.public_key()).is_some());
        assert_eq!(again.hash(), r.hash());
    }

    #[test]
    fn refusals_in_nats_server_words() {
        let k = Keys::new();
        let r = k.open(DeleteMode::Refuse);
        let e = r.update("not a jwt", None).unwrap_err();
        assert_eq!(
            (e.account.as_str(), e.headline.as_str()),
            ("n/a", UPDATE_ERROR)
        );
        let token = k.account(0, |_| {});
        let e = r.update(&token, Some("AOTHER")).unwrap_err();
        assert_eq!(e.cause, "subject does not match jwt content");
        // Signed by an operator this server does not trust.
        let mut c = AccountClaims::new(&k.acc.public_key());
        let stranger = jwt::encode(&mut c, &KeyPair::new_operator()).unwrap();
        let e = r.update(&stranger, None).unwrap_err();
        assert_eq!(e.cause, "operator requires issuer to be a signing key");
        assert!(r.keys().is_empty(), "nothing refused was stored");
        let expired = k.account(0, |c| c.std.exp = 1);
        assert!(
            r.update(&expired, None).is_ok(),
            "taken, to end the account"
        );
    }

    #[test]
    fn an_older_jwt_does_not_replace_a_newer_one() {
        let k = Keys::new();
        let r = k.open(DeleteMode::Refuse);
        let newer = k.account(0, |c| {
            c.nats.revocations.insert("UREVOKED".into(), 10);
        });
        r.update(&newer, None).unwrap();
        let older = k.account(-100, |_| {});
        let e = r.update(&older, None).unwrap_err();
        assert_eq!(e.cause, "a newer JWT of the account is stored");
        assert!(r
            .merge(&format!("{}|{older}", k.acc.public_key()))
            .is_none());
        assert_eq!(r.jwt(&k.acc.public_key()).as_deref(), Some(newer.as_str()));
    }

    #[test]
    fn packs_merge_into_another_store() {
        let k = Keys::new();
        let a = k.open(DeleteMode::Refuse);
        a.update(&k.account(0, |_| {}), None).unwrap();
        let other = tempfile::tempdir().unwrap();
        let b = DirResolver::open(
            other.path(),
            DeleteMode::Refuse,
            0,
            &[k.op.public_key()],
            &[],
        )
        .unwrap();
        assert_ne!(a.hash(), b.hash());
        for line in a.pack() {
            assert!(b.merge(&line).is_some());
        }
        assert_eq!(a.hash(), b.hash());
        assert!(b.merge("garbage").is_none());
        assert!(b
            .merge(&format!("{}|garbage", k.acc.public_key()))
            .is_none());
    }

    #[test]
    fn deletes_need_the_operator_and_spare_the_system_account() {
        let k = Keys::new();
        let r = k.open(DeleteMode::Rename);
        r.update(&k.account(0, |_| {}), None).unwrap();
        let request = |signer: &KeyPair, accounts: &[String]| {
            // A generic claim, as nsc sends it: signed by the operator for itself.
            let mut oc = OperatorClaims::new(&signer.public_key());
            let token = jwt::encode(&mut oc, signer).unwrap();
            let mut p: serde_json::Value = jwt::decode_payload(&token).unwrap();
            p["nats"] = serde_json::json!({ "accounts": accounts });
            sign_json(&p, signer)
        };
        let acc = k.acc.public_key();
        let e = r
            .delete(
                &request(&KeyPair::new_operator(), std::slice::from_ref(&acc)),
                "ASYS",
            )
            .unwrap_err();
        assert_eq!(e.cause, "not trusted");
        let e = r
            .delete(&request(&k.op, std::slice::from_ref(&acc)), &acc)
            .unwrap_err();
        assert_eq!(e.cause, "not allowed to delete system account");
        let e = r
            .delete(&request(&k.op, &["nope".into()]), "ASYS")
            .unwrap_err();
        assert_eq!(e.cause, "malformed request");
        assert_eq!(
            r.delete(&request(&k.op, std::slice::from_ref(&acc)), "ASYS")
                .unwrap(),
            [acc.as_str()]
        );
        assert!(r.account(&acc).is_none());
        assert!(r.keys().is_empty());
    }
}
