//! `tribune-bridge dev-token`: an HS256 web token for local runs.
//!
//! In production web users get their token from the company's identity
//! provider. `make run` has no IdP, so it configures tribune-auth with a
//! shared HS256 secret and mints a short-lived token here, to show the web
//! path (auth callout, subscribe-only permissions) end to end.

use anyhow::{bail, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// A signed JWT: `{"alg":"HS256","typ":"JWT"}` + `claims`.
pub fn mint(secret: &[u8], claims: &serde_json::Value) -> Result<String> {
    if secret.len() < 32 {
        bail!("HS256 secret must be at least 32 bytes");
    }
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?);
    let signing_input = format!("{header}.{body}");
    let sig = URL_SAFE_NO_PAD.encode(hmac_sha256(secret, signing_input.as_bytes()));
    Ok(format!("{signing_input}.{sig}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn shape() {
        let t = mint(&[7u8; 32], &serde_json::json!({"sub": "u"})).unwrap();
        assert_eq!(t.split('.').count(), 3);
        assert!(mint(b"short", &serde_json::json!({})).is_err());
    }
}
