//! Validation of the identity provider's web token with `jsonwebtoken`.
//!
//! Every key is pinned to exactly one algorithm when it is loaded (from the
//! JWK's `alg`, else from its key type), and a token is only ever checked
//! against keys pinned to the `alg` in its header. That is what defeats
//! algorithm confusion: an HS256 token "signed" with an RSA public key as the
//! HMAC secret finds no HS256 key under that `kid`, and `alg: none` is not an
//! algorithm we know at all.

use std::collections::HashSet;
#[cfg(feature = "service")]
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

#[cfg(feature = "service")]
use crate::config::TokenConfig;
#[cfg(feature = "service")]
use crate::jwks::JwksCache;

/// Why a token was refused. `code()` is a short, fixed label used in logs and
/// metrics (never the token itself).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("no token supplied")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("algorithm {0:?} not accepted")]
    Algorithm(String),
    #[error("no key for kid {kid:?} and alg {alg}")]
    UnknownKey { kid: Option<String>, alg: String },
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("bad signature")]
    Signature,
    #[error("missing claim {0}")]
    MissingClaim(String),
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("identity provider keys not loaded yet")]
    KeysUnavailable,
}

impl TokenError {
    /// `code()` of [`TokenError::UnknownKey`]: the one refusal a key refresh can cure.
    pub const UNKNOWN_KEY: &'static str = "unknown_key";

    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Missing => "missing_token",
            TokenError::Malformed(_) => "malformed_token",
            TokenError::Algorithm(_) => "bad_algorithm",
            TokenError::UnknownKey { .. } => Self::UNKNOWN_KEY,
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::Issuer => "wrong_issuer",
            TokenError::Audience => "wrong_audience",
            TokenError::Signature => "bad_signature",
            TokenError::MissingClaim(_) => "missing_claim",
            TokenError::Invalid(_) => "invalid_token",
            TokenError::KeysUnavailable => "keys_unavailable",
        }
    }
}

/// A successfully validated web identity.
#[derive(Debug, Clone)]
pub struct WebIdentity {
    /// Value of the configured user claim (default `sub`).
    pub user: String,
    /// The token's `exp` (unix seconds).
    pub exp: i64,
    /// All claims, for the permission mapping.
    pub claims: Map<String, Value>,
}

struct PinnedKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// A parsed JWKS: every key pinned to one algorithm. Immutable; a refresh
/// builds a new one and swaps it in whole (see `jwks.rs`).
pub struct KeySet {
    keys: Vec<PinnedKey>,
}

impl KeySet {
    /// Parse a JWKS document. `what` names its origin in errors. One bad key
    /// refuses the whole set: a half-understood set is not a "last good" one.
    pub fn from_jwks_json(text: &[u8], what: &str) -> Result<KeySet> {
        let set: JwkSet =
            serde_json::from_slice(text).with_context(|| format!("parsing JWKS {what}"))?;
        let mut keys = Vec::new();
        let mut kids = HashSet::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let what = format!("JWKS {what} key #{i} (kid {:?})", jwk.common.key_id);
            let alg =
                pin_jwk_alg(jwk.common.key_algorithm, &jwk.algorithm).context(what.clone())?;
            let key = DecodingKey::from_jwk(jwk).context(what.clone())?;
            if let Some(k) = &jwk.common.key_id {
                if !kids.insert(k.clone()) {
                    bail!("{what}: duplicate kid");
                }
            }
            keys.push(PinnedKey {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            });
        }
        Ok(KeySet { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

pub struct TokenValidator {
    /// Keys fixed at config load: the JWKS file and the HS256 secret.
    keys: Vec<PinnedKey>,
    /// Keys fetched from the IdP, when `jwks_url` / `oidc_issuer` is set.
    #[cfg(feature = "service")]
    remote: Option<Arc<JwksCache>>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: u64,
    user_claim: String,
}

/// Asymmetric algorithms a JWKS key may be pinned to. HMAC keys are not taken
/// from a JWKS file: a shared secret belongs in `hs256_secret`.
fn pin_jwk_alg(alg: Option<KeyAlgorithm>, params: &AlgorithmParameters) -> Result<Algorithm> {
    let by_type = match params {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            ref c => bail!("unsupported curve {c:?}"),
        },
        AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
        _ => bail!("unsupported key type (symmetric keys go in hs256_secret)"),
    };
    let Some(alg) = alg else { return Ok(by_type) };
    let named = match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        other => bail!("alg {other:?} not accepted for a public key"),
    };
    // The JWK's alg must fit its key type (an RSA key declared ES256 is a broken JWKS).
    let same_family = matches!(
        (by_type, named),
        (
            Algorithm::RS256,
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512
        ) | (
            Algorithm::RS256,
            Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512
        ) | (Algorithm::ES256, Algorithm::ES256)
            | (Algorithm::ES384, Algorithm::ES384)
            | (Algorithm::EdDSA, Algorithm::EdDSA)
    );
    if !same_family {
        bail!("alg {named:?} does not match the key type");
    }
    Ok(named)
}

impl TokenValidator {
    /// A validator with only local keys, accepting `cfg.audiences`; refuses
    /// configs that need the IdP's JWKS.
    #[cfg(feature = "service")]
    pub fn from_config(cfg: &TokenConfig) -> Result<Self> {
        Self::new(cfg, cfg.audiences.clone(), None)
    }

    /// `audiences` are the accepted `aud` values: every application's (the
    /// callout then picks the one application a token names), not only
    /// `cfg.audiences`. `remote` must be given exactly when the config names a
    /// JWKS URL or OIDC issuer.
    #[cfg(feature = "service")]
    pub fn new(
        cfg: &TokenConfig,
        audiences: Vec<String>,
        remote: Option<Arc<JwksCache>>,
    ) -> Result<Self> {
        if audiences.is_empty() {
            bail!("token: no accepted audience");
        }
        let wants_remote = cfg.jwks_url.is_some() || cfg.oidc_issuer.is_some();
        if wants_remote != remote.is_some() {
            bail!("token: a JWKS key cache is needed exactly when jwks_url or oidc_issuer is set");
        }
        let jwks = match &cfg.jwks_file {
            Some(path) => Some(load_jwks(path)?),
            None => None,
        };
        let secret = match &cfg.hs256_secret {
            Some(secret) => Some(secret.load("token.hs256_secret")?),
            None => None,
        };
        let keys = local_keys(jwks, secret.as_deref().map(str::as_bytes))?;
        if keys.is_empty() && remote.is_none() {
            bail!("token: no verification keys configured");
        }
        Ok(TokenValidator {
            keys,
            remote,
            issuers: cfg.issuers.clone(),
            audiences,
            leeway: cfg.leeway_secs,
            user_claim: cfg.user_claim.clone(),
        })
    }

    /// A validator over fixed keys alone: those of `jwks` and the HS256
    /// secret, if given (what [`TokenValidator::new`] loads from a config
    /// without a JWKS URL), checking what `new` checks. Available without
    /// the `service` feature (the fuzz targets in broker/fuzz use it).
    pub fn with_keys(
        jwks: Option<KeySet>,
        hs256_secret: Option<&[u8]>,
        issuers: Vec<String>,
        audiences: Vec<String>,
        leeway_secs: u64,
        user_claim: String,
    ) -> Result<Self> {
        if audiences.is_empty() {
            bail!("token: no accepted audience");
        }
        let keys = local_keys(jwks, hs256_secret)?;
        if keys.is_empty() {
            bail!("token: no verification keys configured");
        }
        Ok(TokenValidator {
            keys,
            #[cfg(feature = "service")]
            remote: None,
            issuers,
            audiences,
            leeway: leeway_secs,
            user_claim,
        })
    }

    #[cfg(feature = "service")]
    pub fn key_count(&self) -> usize {
        let remote = self
            .remote
            .as_ref()
            .and_then(|r| r.current())
            .map_or(0, |k| k.len());
        self.keys.len() + remote
    }

    /// The IdP key cache, if keys come from a JWKS URL.
    #[cfg(feature = "service")]
    pub fn remote(&self) -> Option<&Arc<JwksCache>> {
        self.remote.as_ref()
    }

    /// Validate `token` (signature, alg pin, exp, nbf, iss, aud) and extract the identity.
    pub fn validate(&self, token: &str) -> Result<WebIdentity, TokenError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        let (alg_name, kid) = peek_header(token)?;
        let alg: Algorithm = alg_name
            .parse()
            .map_err(|_| TokenError::Algorithm(alg_name.clone()))?;
        // Held for this validation only; a refresh swaps in a new set meanwhile.
        #[cfg(feature = "service")]
        let remote = self.remote.as_ref().map(|r| r.current());
        #[cfg(not(feature = "service"))]
        let remote: Option<Option<Arc<KeySet>>> = None;
        let remote_keys: &[PinnedKey] = match &remote {
            Some(Some(set)) => &set.keys,
            _ => &[],
        };
        let candidates: Vec<&PinnedKey> = self
            .keys
            .iter()
            .chain(remote_keys)
            .filter(|k| k.alg == alg)
            .filter(|k| match (&kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
                (None, _) => true,
            })
            .collect();
        if candidates.is_empty() {
            if matches!(remote, Some(None)) {
                return Err(TokenError::KeysUnavailable);
            }
            return Err(TokenError::UnknownKey { kid, alg: alg_name });
        }
        let mut last = TokenError::Signature;
        for k in candidates {
            let mut v = Validation::new(k.alg);
            v.algorithms = vec![k.alg];
            v.set_issuer(&self.issuers);
            v.set_audience(&self.audiences);
            v.set_required_spec_claims(&["exp", "iss", "aud"]);
            v.validate_exp = true;
            v.validate_nbf = true;
            v.validate_aud = true;
            v.leeway = self.leeway;
            match jsonwebtoken::decode::<Map<String, Value>>(token, &k.key, &v) {
                Ok(data) => return self.identity(data.claims),
                Err(e) => {
                    last = map_err(e.kind());
                    // Only a bad signature means "maybe another key fits";
                    // anything else was decided on a verified token.
                    if last != TokenError::Signature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn identity(&self, claims: Map<String, Value>) -> Result<WebIdentity, TokenError> {
        let user = match claims.get(&self.user_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(TokenError::MissingClaim(self.user_claim.clone())),
        };
        let exp = claims
            .get("exp")
            .and_then(|v| v.as_f64())
            .map(|f| f as i64)
            .ok_or_else(|| TokenError::MissingClaim("exp".into()))?;
        Ok(WebIdentity { user, exp, claims })
    }
}

fn map_err(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::InvalidSignature => TokenError::Signature,
        ErrorKind::InvalidAlgorithm => TokenError::Algorithm("mismatch".into()),
        ErrorKind::MissingRequiredClaim(c) => TokenError::MissingClaim(c.clone()),
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => TokenError::Malformed(format!("{kind:?}")),
        other => TokenError::Invalid(format!("{other:?}")),
    }
}

/// Read `alg` and `kid` from the header ourselves, so that an unknown alg
/// (such as `none`) is reported as such rather than as a parse error.
fn peek_header(token: &str) -> Result<(String, Option<String>), TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected 3 parts".into()));
    };
    let raw = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| TokenError::Malformed("header base64".into()))?;
    let v: Value =
        serde_json::from_slice(&raw).map_err(|_| TokenError::Malformed("header json".into()))?;
    let alg = v
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| TokenError::Malformed("header has no alg".into()))?
        .to_string();
    let kid = v.get("kid").and_then(Value::as_str).map(str::to_string);
    Ok((alg, kid))
}

/// The keys of `jwks` and, if given, the HS256 secret (at least 32 bytes).
fn local_keys(jwks: Option<KeySet>, hs256_secret: Option<&[u8]>) -> Result<Vec<PinnedKey>> {
    let mut keys = jwks.map(|set| set.keys).unwrap_or_default();
    if let Some(s) = hs256_secret {
        if s.len() < 32 {
            bail!("token.hs256_secret must be at least 32 bytes");
        }
        keys.push(PinnedKey {
            kid: None,
            alg: Algorithm::HS256,
            key: DecodingKey::from_secret(s),
        });
    }
    Ok(keys)
}

#[cfg(feature = "service")]
fn load_jwks(path: &Path) -> Result<KeySet> {
    let text = std::fs::read(path).with_context(|| format!("reading JWKS {}", path.display()))?;
    KeySet::from_jwks_json(&text, &path.display().to_string())
}

#[cfg(all(test, feature = "service"))]
mod tests {
    use super::*;
    use crate::config::Secret;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn validator() -> TokenValidator {
        let cfg = TokenConfig {
            issuers: vec!["https://idp".into()],
            audiences: vec!["tribune".into()],
            jwks_file: None,
            jwks_url: None,
            oidc_issuer: None,
            jwks_refresh_secs: 300,
            jwks_min_refresh_secs: 30,
            jwks_fetch_timeout_secs: 5,
            jwks_ca_file: None,
            hs256_secret: Some(Secret {
                value: Some(SECRET.into()),
                file: None,
                env: None,
            }),
            leeway_secs: 0,
            user_claim: "sub".into(),
        };
        TokenValidator::from_config(&cfg).unwrap()
    }

    fn hs(claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> i64 {
        crate::jwt::now_unix()
    }

    #[test]
    fn accepts_good_hs256() {
        let t = hs(json!({"sub":"alice","iss":"https://idp","aud":"tribune","exp":now()+60}));
        let id = validator().validate(&t).unwrap();
        assert_eq!(id.user, "alice");
    }

    #[test]
    fn rejects_bad_claims() {
        let v = validator();
        let c =
            |iss: &str, aud: &str, exp: i64| hs(json!({"sub":"a","iss":iss,"aud":aud,"exp":exp}));
        assert_eq!(
            v.validate(&c("https://idp", "tribune", now() - 10))
                .unwrap_err(),
            TokenError::Expired
        );
        assert_eq!(
            v.validate(&c("https://evil", "tribune", now() + 60))
                .unwrap_err(),
            TokenError::Issuer
        );
        assert_eq!(
            v.validate(&c("https://idp", "other", now() + 60))
                .unwrap_err(),
            TokenError::Audience
        );
        let nbf = hs(
            json!({"sub":"a","iss":"https://idp","aud":"tribune","exp":now()+60,"nbf":now()+600}),
        );
        assert_eq!(v.validate(&nbf).unwrap_err(), TokenError::NotYetValid);
        let noexp = hs(json!({"sub":"a","iss":"https://idp","aud":"tribune"}));
        assert!(matches!(
            v.validate(&noexp).unwrap_err(),
            TokenError::MissingClaim(_)
        ));
        assert_eq!(v.validate("").unwrap_err(), TokenError::Missing);
    }

    #[test]
    fn rejects_alg_none_and_unpinned_algs() {
        let v = validator();
        let p = URL_SAFE_NO_PAD.encode(
            json!({"sub":"a","iss":"https://idp","aud":"tribune","exp":now()+60}).to_string(),
        );
        let none = format!(
            "{}.{p}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
        );
        assert!(matches!(
            v.validate(&none).unwrap_err(),
            TokenError::Algorithm(_)
        ));
        // HS384 is a real alg but no key is pinned to it.
        let hs384 = encode(
            &Header::new(Algorithm::HS384),
            &json!({"sub":"a","iss":"https://idp","aud":"tribune","exp":now()+60}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            v.validate(&hs384).unwrap_err(),
            TokenError::UnknownKey { .. }
        ));
    }

    #[test]
    fn rejects_tampered_payload() {
        let t = hs(
            json!({"sub":"a","iss":"https://idp","aud":"tribune","exp":now()+60,"sports":["x"]}),
        );
        let parts: Vec<&str> = t.split('.').collect();
        let p = URL_SAFE_NO_PAD.encode(
            json!({"sub":"a","iss":"https://idp","aud":"tribune","exp":now()+60,"sports":["y"]})
                .to_string(),
        );
        let forged = format!("{}.{p}.{}", parts[0], parts[2]);
        assert_eq!(
            validator().validate(&forged).unwrap_err(),
            TokenError::Signature
        );
    }

    #[test]
    fn jwk_alg_pinning() {
        use jsonwebtoken::jwk::{RSAKeyParameters, RSAKeyType};
        let rsa = AlgorithmParameters::RSA(RSAKeyParameters {
            key_type: RSAKeyType::RSA,
            n: "AQAB".into(),
            e: "AQAB".into(),
        });
        assert_eq!(pin_jwk_alg(None, &rsa).unwrap(), Algorithm::RS256);
        assert_eq!(
            pin_jwk_alg(Some(KeyAlgorithm::PS256), &rsa).unwrap(),
            Algorithm::PS256
        );
        assert!(pin_jwk_alg(Some(KeyAlgorithm::HS256), &rsa).is_err());
        assert!(pin_jwk_alg(Some(KeyAlgorithm::ES256), &rsa).is_err());
    }
}
