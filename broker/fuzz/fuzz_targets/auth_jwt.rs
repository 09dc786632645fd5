//! NATS JWT decoding (`tribune_auth::jwt::decode_verified`), as the broker
//! reads an auth callout's answer: an `AuthorizationResponseClaims` JWT
//! holding a `UserClaims` JWT, both from a service an attacker may
//! influence.
//!
//! Input byte 0 picks the mode:
//! - even: the rest, as text, is the token. It must never panic, and a
//!   token that decodes has an `iss` that is a valid public nkey and the
//!   claim type asked for.
//! - odd: the rest is a claims document that this target signs with a fixed
//!   account key, under the header `byte0 >> 1` picks (the valid
//!   `ed25519-nkey` and legacy `ed25519` ones, and several bad ones).
//!   `$ISS` in the document becomes the signer's public key and `$OTHER`
//!   another valid key. Checked: only the two valid headers ever verify; a
//!   token that verifies names the signer as `iss` (whoever signed it, a
//!   token verifies only as the signer's); it decodes as at most one claim
//!   type; and with one byte of its signature changed it no longer verifies.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use nkeys::{KeyPair, KeyPairType};
use std::sync::OnceLock;
use tribune_auth::jwt::{decode_verified, AuthorizationResponseClaims, NatsClaims, UserClaims};

const HEADERS: [&str; 8] = [
    r#"{"typ":"JWT","alg":"ed25519-nkey"}"#,
    r#"{"typ":"jwt","alg":"ED25519"}"#,
    r#"{"typ":"JWT","alg":"none"}"#,
    r#"{"typ":"JWS","alg":"ed25519-nkey"}"#,
    r#"{"alg":"ed25519-nkey"}"#,
    r#"{"typ":"JWT","alg":"HS256"}"#,
    r#"{"typ":"JWT","alg":""}"#,
    "not json",
];

struct Keys {
    signer: KeyPair,
    other: KeyPair,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        signer: KeyPair::new_from_raw(KeyPairType::Account, [7; 32]).expect("a fixed seed"),
        other: KeyPair::new_from_raw(KeyPairType::Account, [9; 32]).expect("a fixed seed"),
    })
}

/// Decodes as `C`; on success checks what any verified token must satisfy.
fn decode<C: NatsClaims + serde::de::DeserializeOwned>(token: &str) -> Option<C> {
    let c = decode_verified::<C>(token).ok()?;
    assert!(
        KeyPair::from_public_key(&c.std().iss).is_ok(),
        "verified with an issuer that is no public nkey"
    );
    assert_eq!(c.claim_type(), C::TYPE, "verified as the wrong claim type");
    Some(c)
}

fn arbitrary_token(text: &str) {
    let user = decode::<UserClaims>(text);
    let resp = decode::<AuthorizationResponseClaims>(text);
    assert!(
        user.is_none() || resp.is_none(),
        "one token, two claim types"
    );
}

fn signed_token(header: usize, claims: &str) {
    let k = keys();
    let claims = claims
        .replace("$ISS", &k.signer.public_key())
        .replace("$OTHER", &k.other.public_key());
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADERS[header]),
        URL_SAFE_NO_PAD.encode(claims.as_bytes())
    );
    let sig = k.signer.sign(input.as_bytes()).expect("signing");
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));

    let user = decode::<UserClaims>(&token);
    let resp = decode::<AuthorizationResponseClaims>(&token);
    assert!(
        user.is_none() || resp.is_none(),
        "one token, two claim types"
    );
    let iss = match (&user, &resp) {
        (Some(u), None) => &u.std().iss,
        (None, Some(r)) => &r.std().iss,
        _ => return,
    };
    assert!(header <= 1, "verified under header {:?}", HEADERS[header]);
    assert_eq!(
        *iss,
        k.signer.public_key(),
        "verified as issued by someone else"
    );

    // The same token with one signature byte changed.
    let mut forged = sig.clone();
    let at = claims.len() % forged.len();
    forged[at] ^= 0x01;
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&forged));
    assert!(
        decode_verified::<UserClaims>(&forged).is_err(),
        "forged signature accepted"
    );
    assert!(
        decode_verified::<AuthorizationResponseClaims>(&forged).is_err(),
        "forged signature accepted"
    );
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if mode & 1 == 0 {
        arbitrary_token(text);
    } else {
        signed_token(usize::from(mode >> 1) % HEADERS.len(), text);
    }
});
