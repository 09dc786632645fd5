//! `tribune-bridge dev-token`: an HS256 web token for local runs.
//!
//! In production web users get their token from the company's identity
//! provider. `make run` has no IdP, so it configures tribune-auth with a
//! shared HS256 secret and mints a short-lived token here, to show the web
//! path (auth callout, read-only permissions) end to end.

use anyhow::{bail, Context, Result};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

/// A JWT signed with HS256 over `claims` (`{"alg":"HS256","typ":"JWT"}`).
pub fn mint(secret: &[u8], claims: &serde_json::Value) -> Result<String> {
    if secret.len() < 32 {
        bail!("HS256 secret must be at least 32 bytes");
    }
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .context("signing the development token")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, DecodingKey, Validation};

    #[test]
    fn verifies_with_the_same_secret_only() {
        let claims = serde_json::json!({"sub": "u", "exp": 4_000_000_000u64});
        let t = mint(&[7u8; 32], &claims).unwrap();
        assert_eq!(t.split('.').count(), 3);
        let v = Validation::new(Algorithm::HS256);
        let got =
            decode::<serde_json::Value>(&t, &DecodingKey::from_secret(&[7u8; 32]), &v).unwrap();
        assert_eq!(got.claims, claims);
        assert!(
            decode::<serde_json::Value>(&t, &DecodingKey::from_secret(&[8u8; 32]), &v).is_err()
        );
        assert!(mint(b"short", &serde_json::json!({})).is_err());
    }
}
