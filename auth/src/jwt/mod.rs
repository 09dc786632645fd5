//! NATS JWTs (`alg: ed25519-nkey`), the format nats-server uses for auth-callout
//! requests, responses and user JWTs.
//!
//! `jsonwebtoken` cannot produce or check these (the signature is a raw
//! ed25519 signature by an nkey over `header.payload`, and the key is the
//! `iss` claim itself), so they are built here from nkeys + base64url, with the
//! `jti` computed the way nats-io/jwt v2 does (base32 of SHA-512/256 over the
//! standard claims with an empty `jti`).

pub mod account;
pub mod claims;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use nkeys::KeyPair;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512_256};

pub use account::{
    AccountClaims, Export as JwtExport, Import as JwtImport, JetStreamLimits, OperatorClaims,
    OperatorLimits, SigningKey, UserLimitsClaims, UserPermissionLimits, UserScope,
};
pub use claims::*;

/// The `alg` nats-io/jwt v2 writes; the older `ed25519` is accepted on read as it does.
pub const ALG_NKEY: &str = "ed25519-nkey";
const ALG_NKEY_OLD: &str = "ed25519";

#[derive(Serialize, Deserialize)]
struct Header {
    typ: String,
    alg: String,
}

/// The standard claims in the exact field order Go's `json.Marshal(ClaimsData)`
/// emits, so the `jti` hash matches what nats-io/jwt would compute.
#[derive(Serialize)]
struct StdClaimsForHash<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    aud: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    exp: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    jti: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    iat: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    iss: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    nbf: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    sub: &'a str,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Sign `claims` with `kp`: sets `iss` (the signer's public key), `iat` and `jti`.
pub fn encode<C: NatsClaims + Serialize>(claims: &mut C, kp: &KeyPair) -> Result<String> {
    {
        let std = claims.std_mut();
        if std.sub.is_empty() {
            bail!("subject is not set");
        }
        std.iss = kp.public_key();
        std.iat = now_unix();
        std.jti.clear();
        let h = StdClaimsForHash {
            aud: &std.aud,
            exp: std.exp,
            jti: "",
            iat: std.iat,
            iss: &std.iss,
            name: &std.name,
            nbf: std.nbf,
            sub: &std.sub,
        };
        let digest = Sha512_256::digest(serde_json::to_vec(&h)?);
        std.jti = data_encoding::BASE32_NOPAD.encode(&digest);
    }
    let header = Header {
        typ: "JWT".into(),
        alg: ALG_NKEY.into(),
    };
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?)
    );
    let sig = kp
        .sign(signing_input.as_bytes())
        .map_err(|e| anyhow!("signing: {e}"))?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// Decode a NATS JWT and verify its signature against its own `iss` key.
///
/// This proves only that the holder of `iss` signed it; callers must still
/// check that `iss` is someone they trust, and the claim times/audience.
pub fn decode_verified<C: NatsClaims + DeserializeOwned>(token: &str) -> Result<C> {
    let claims: C = verified_payload(token)?;
    if claims.claim_type() != C::TYPE {
        bail!("{}", C::WRONG_TYPE);
    }
    Ok(claims)
}

/// A signed JWT of any type: the standard claims, and `nats` as JSON. The
/// signature is checked against `iss`, as for typed claims. nats-server
/// reads operator requests (account deletes) this way.
#[derive(Debug, Clone, Deserialize)]
pub struct GenericClaims {
    #[serde(flatten)]
    pub std: StdClaims,
    #[serde(default)]
    pub nats: serde_json::Map<String, serde_json::Value>,
}

pub fn decode_verified_generic(token: &str) -> Result<GenericClaims> {
    verified_payload(token)
}

/// The payload of a JWT whose header and signature (by its `iss`) check.
fn verified_payload<C: DeserializeOwned + HasIssuer>(token: &str) -> Result<C> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!("expected 3 chunks");
    };
    let header: Header =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).context("header base64")?)
            .context("header json")?;
    if !header.typ.eq_ignore_ascii_case("JWT") {
        bail!("unsupported typ {:?}", header.typ);
    }
    let alg = header.alg.to_ascii_lowercase();
    if alg != ALG_NKEY && alg != ALG_NKEY_OLD {
        bail!("unexpected alg {:?}", header.alg);
    }
    let claims: C = claims_from(
        &URL_SAFE_NO_PAD.decode(p).context("payload base64")?,
        alg == ALG_NKEY_OLD,
    )?;
    let sig = URL_SAFE_NO_PAD.decode(s).context("signature base64")?;
    let iss = claims.issuer();
    let kp =
        KeyPair::from_public_key(iss).map_err(|e| anyhow!("issuer {iss:?} is not an nkey: {e}"))?;
    // Version 1 JWTs (`ed25519`) signed the payload alone.
    let (signed, failed) = if alg == ALG_NKEY_OLD {
        (p, "claim failed V1 signature verification")
    } else {
        (&token[..h.len() + 1 + p.len()], "bad signature")
    };
    kp.verify(signed.as_bytes(), &sig)
        .map_err(|_| anyhow!(failed))?;
    Ok(claims)
}

/// Who signed a claim set: typed or generic.
trait HasIssuer {
    fn issuer(&self) -> &str;
}

impl<C: NatsClaims> HasIssuer for C {
    fn issuer(&self) -> &str {
        &self.std().iss
    }
}

impl HasIssuer for GenericClaims {
    fn issuer(&self) -> &str {
        &self.std.iss
    }
}

pub fn decode_payload<C: DeserializeOwned>(token: &str) -> Result<C> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| anyhow!("not a JWT (expected 3 parts)"))?;
    let v1 = token
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|h| serde_json::from_slice::<Header>(&h).ok())
        .is_some_and(|h| h.alg.eq_ignore_ascii_case(ALG_NKEY_OLD));
    claims_from(
        &URL_SAFE_NO_PAD.decode(payload).context("payload base64")?,
        v1,
    )
}

/// A JWT payload as claims. Version 1 JWTs (nsc before 2.0, still in old
/// deployments and client test suites) carry their `type` at the top and
/// may have no `nats` object at all; they are read as nats-io/jwt reads
/// them, with the type moved into `nats` (version 1).
fn claims_from<C: DeserializeOwned>(payload: &[u8], v1: bool) -> Result<C> {
    let mut v: serde_json::Value = serde_json::from_slice(payload).context("payload json")?;
    if let Some(obj) = v.as_object_mut().filter(|_| v1) {
        if let Some(kind) = obj.get("type").and_then(|t| t.as_str()).map(str::to_string) {
            let nats = obj
                .entry("nats")
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            if let Some(nats) = nats.as_object_mut() {
                nats.entry("version").or_insert(serde_json::Value::from(1));
                // A version 1 user JWT had no limits: none apply.
                if kind == "user" {
                    for limit in ["subs", "data", "payload"] {
                        nats.entry(limit).or_insert(serde_json::Value::from(-1));
                    }
                }
                nats.entry("type")
                    .or_insert(serde_json::Value::String(kind));
            }
        }
    }
    serde_json::from_value(v).context("payload json")
}

/// The public-key type of an nkey string, if it is a valid public nkey.
pub fn public_key_type(key: &str) -> Option<nkeys::KeyPairType> {
    KeyPair::from_public_key(key)
        .ok()
        .map(|k| k.key_pair_type())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 1 JWT as nsc wrote them before 2.0: `ed25519`, the type
    /// at the top, the signature over the payload alone.
    fn v1_token(payload: serde_json::Value, kp: &KeyPair) -> String {
        let h = URL_SAFE_NO_PAD.encode(br#"{"typ":"jwt","alg":"ed25519"}"#);
        let p = URL_SAFE_NO_PAD.encode(payload.to_string());
        let sig = URL_SAFE_NO_PAD.encode(kp.sign(p.as_bytes()).unwrap());
        format!("{h}.{p}.{sig}")
    }

    #[test]
    fn version_1_jwts_read_as_nats_io_jwt_reads_them() {
        let acc = KeyPair::new_account();
        let user = KeyPair::new_user();
        let payload = serde_json::json!({
            "jti": "J", "iat": 1_553_840_944, "iss": acc.public_key(),
            "name": "old", "sub": user.public_key(), "type": "user",
            "nats": {"pub": {}, "sub": {}}
        });
        let tok = v1_token(payload.clone(), &acc);
        let back: UserClaims = decode_verified(&tok).unwrap();
        assert_eq!(back.nats.kind, "user");
        assert_eq!(
            (back.nats.subs, back.nats.data, back.nats.payload),
            (-1, -1, -1)
        );
        // Signed by someone else: refused in nats-io/jwt's words.
        let forged = v1_token(payload, &KeyPair::new_account());
        let err = decode_verified::<UserClaims>(&forged).unwrap_err();
        assert_eq!(err.to_string(), "claim failed V1 signature verification");
        // An operator JWT of version 1 may have no `nats` at all.
        let op = KeyPair::new_operator();
        let tok = v1_token(
            serde_json::json!({"jti": "J", "iat": 1, "iss": op.public_key(),
                "sub": op.public_key(), "name": "op", "type": "operator"}),
            &op,
        );
        let back: OperatorClaims = decode_verified(&tok).unwrap();
        assert_eq!(back.nats.kind, "operator");
    }

    #[test]
    fn user_jwt_roundtrip_and_tamper_detection() {
        let acc = KeyPair::new_account();
        let user = KeyPair::new_user();
        let mut uc = UserClaims::new(&user.public_key(), "APP");
        uc.nats.sub.allow = vec!["a.>".into()];
        let tok = encode(&mut uc, &acc).unwrap();
        let back: UserClaims = decode_verified(&tok).unwrap();
        assert_eq!(back.std.iss, acc.public_key());
        assert_eq!(back.std.sub, user.public_key());
        assert_eq!(back.std.aud, "APP");
        assert_eq!(back.nats.kind, "user");
        assert_eq!(back.std.jti.len(), 52);

        // Change the payload but keep the signature: must fail.
        let parts: Vec<&str> = tok.split('.').collect();
        let mut v: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        v["aud"] = "OTHER".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(v.to_string()),
            parts[2]
        );
        assert!(decode_verified::<UserClaims>(&forged).is_err());
    }

    #[test]
    fn jti_matches_go_hashing_of_std_claims() {
        // jti must be base32(sha512/256(json of std claims with empty jti)).
        let acc = KeyPair::new_account();
        let mut rc = AuthorizationResponseClaims::error("UABC", "SRV", "nope");
        encode(&mut rc, &acc).unwrap();
        let expect = format!(
            r#"{{"aud":"SRV","exp":{},"iat":{},"iss":"{}","sub":"UABC"}}"#,
            rc.std.exp,
            rc.std.iat,
            acc.public_key()
        );
        let d = Sha512_256::digest(expect.as_bytes());
        assert_eq!(rc.std.jti, data_encoding::BASE32_NOPAD.encode(&d));
    }

    /// A JWT of one type is never read as another: an authorization response
    /// signed by the issuer is not a user JWT, though its fields would parse.
    #[test]
    fn claim_types_are_checked() {
        let acc = KeyPair::new_account();
        let user = KeyPair::new_user();
        let mut rc = AuthorizationResponseClaims::error(&user.public_key(), "SRV", "nope");
        let tok = encode(&mut rc, &acc).unwrap();
        let err = decode_verified::<UserClaims>(&tok).unwrap_err();
        assert_eq!(err.to_string(), "not user claim");
        let mut uc = UserClaims::new(&user.public_key(), "APP");
        let tok = encode(&mut uc, &acc).unwrap();
        assert!(decode_verified::<UserClaims>(&tok).is_ok());
        uc.nats.kind = "operator".into();
        let tok = encode(&mut uc, &acc).unwrap();
        assert!(decode_verified::<UserClaims>(&tok).is_err());
    }

    #[test]
    fn rejects_other_algs() {
        let h = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"none"}"#);
        let p = URL_SAFE_NO_PAD.encode(r#"{"iss":"x","sub":"y"}"#);
        assert!(decode_verified::<UserClaims>(&format!("{h}.{p}.")).is_err());
    }
}
