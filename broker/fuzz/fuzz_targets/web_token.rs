//! Web-token validation (`tribune_auth::token::TokenValidator::validate`):
//! the identity provider's JWT that a web user sends as the CONNECT token,
//! checked by tribune-auth before it answers an auth callout. The validator
//! is built with `TokenValidator::with_keys` (the `web-token` feature, no
//! service) over a JWKS holding the integration tests' RSA (`rsa-1`, RS256)
//! and P-256 (`ec-1`, ES256) keys plus two Ed25519 keys (`ed-1`, and one
//! without a kid), and an HS256 secret; issuers `https://idp.example` and
//! `https://login.example/tenant`, audiences `tribune` and `web`, 30 s of
//! leeway, user claim `sub`.
//!
//! Input byte 0 picks the mode:
//! - even: the rest, as text, is the token. It must never panic; an error's
//!   text (Display and Debug) never contains the token (when it has three
//!   non-empty parts: other text may be a word of a fixed message); a token that
//!   verifies has an accepted `alg`, claims that pass the checks below, and,
//!   for the deterministic algorithms (HS256, RS256, EdDSA), exactly the
//!   signature a configured key makes over it (so no second encoding of a
//!   signature is accepted).
//! - odd: this target signs a token itself. `byte0 >> 1` picks the signer
//!   and the algorithm it signs with ([`SIGNERS`]: the configured keys, a
//!   wrong HS256 secret, an unconfigured Ed25519 key, PS256/RS384/HS384 with
//!   configured keys pinned to other algorithms, HS256 keyed with the RSA
//!   public key (algorithm confusion), and `alg: none`); byte 1 the header's
//!   `alg` (low nibble: 0 = the one signed with, else a lie from [`ALGS`])
//!   and `kid` (high nibble, [`kid`]); byte 2 extra header fields
//!   ([`HEADER_EXTRAS`]: `jku`, an embedded `jwk`, `crit`, ...) and the
//!   signature byte to change; byte 3 `iss`, `aud` and `sub` ([`claims`]);
//!   bytes 4 and 5 `exp` and `nbf` as minutes from now (0x80: absent); the
//!   rest a JSON object of further claims (else a `note` claim). Checked
//!   against an independent oracle: a token verifies exactly when its header
//!   names the algorithm it was signed with, a configured key pinned to that
//!   algorithm fits its `kid` and made the signature, `iss` is an accepted
//!   issuer, `aud` names an accepted audience, `exp` is an integer not past
//!   (leeway included), `nbf`, if present, an integer not ahead, and `sub` a
//!   non-empty string. A verified token's identity carries exactly the
//!   signed claims; with one byte of its signature changed, or the
//!   signature's last character changed, it no longer verifies; and no
//!   error shows the token, its payload or its signature.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;
use tribune_auth::token::{KeySet, TokenError, TokenValidator, WebIdentity};

/// tribune-auth's integration-test keys (auth/tests/fixtures/README.md).
const RSA_DER: &[u8] = include_bytes!("../../../auth/tests/fixtures/rsa_private.der");
const EC_DER: &[u8] = include_bytes!("../../../auth/tests/fixtures/ec_private.der");
const JWKS: &str = include_str!("../../../auth/tests/fixtures/jwks.json");
/// The RSA public key as an HMAC secret: the classic algorithm confusion.
const RSA_PUBLIC_PEM: &[u8] = include_bytes!("../../../auth/tests/fixtures/rsa_public.pem");

const HS_SECRET: &[u8] = b"tribune-fuzz-hs256-secret-0123456789";
const HS_WRONG: &[u8] = b"tribune-fuzz-hs256-secret-0123456780";
const ISSUERS: [&str; 2] = ["https://idp.example", "https://login.example/tenant"];
const AUDIENCES: [&str; 2] = ["tribune", "web"];
const LEEWAY: i64 = 30;
/// Seconds around an `exp` / `nbf` limit where the clock may tick between
/// signing and checking: no verdict is asserted there.
const MARGIN: i64 = 3;

/// Which private key made a signature.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Signer {
    Hs,
    HsWrong,
    HsRsaPublic,
    Rsa,
    Ec,
    Ed1,
    Ed2,
    /// An Ed25519 key no JWKS names.
    Ed3,
    /// No signature at all (`alg: none`).
    Unsigned,
}

/// (signer, the algorithm it signs with, that algorithm's `alg` name).
const SIGNERS: [(Signer, Option<Algorithm>, &str); 12] = [
    (Signer::Hs, Some(Algorithm::HS256), "HS256"),
    (Signer::Rsa, Some(Algorithm::RS256), "RS256"),
    (Signer::Ec, Some(Algorithm::ES256), "ES256"),
    (Signer::Ed1, Some(Algorithm::EdDSA), "EdDSA"),
    (Signer::Ed2, Some(Algorithm::EdDSA), "EdDSA"),
    (Signer::HsWrong, Some(Algorithm::HS256), "HS256"),
    (Signer::Ed3, Some(Algorithm::EdDSA), "EdDSA"),
    (Signer::Rsa, Some(Algorithm::PS256), "PS256"),
    (Signer::Rsa, Some(Algorithm::RS384), "RS384"),
    (Signer::Hs, Some(Algorithm::HS384), "HS384"),
    (Signer::HsRsaPublic, Some(Algorithm::HS256), "HS256"),
    (Signer::Unsigned, None, "none"),
];

/// `alg` values a header may claim instead of the one signed with.
const ALGS: [&str; 15] = [
    "HS256", "RS256", "ES256", "EdDSA", "PS256", "none", "None", "NONE", "hs256", "ES384", "HS512",
    "", "RS256 ", "ed25519", "ED25519",
];

/// The configured keys: (kid, algorithm, the signer whose public half or
/// secret it is).
const CONFIGURED: [(Option<&str>, Algorithm, Signer); 5] = [
    (Some("rsa-1"), Algorithm::RS256, Signer::Rsa),
    (Some("ec-1"), Algorithm::ES256, Signer::Ec),
    (Some("ed-1"), Algorithm::EdDSA, Signer::Ed1),
    (None, Algorithm::EdDSA, Signer::Ed2),
    (None, Algorithm::HS256, Signer::Hs),
];

/// Extra header fields; only the last one makes the header unreadable.
const HEADER_EXTRAS: [&str; 8] = [
    "",
    r#","typ":"at+jwt""#,
    r#","jku":"https://attacker.example/jwks.json""#,
    r#","jwk":$ED3_JWK"#,
    r#","x5u":"https://attacker.example/cert.pem","cty":"JWT""#,
    r#","crit":["exp"]"#,
    r#","typ":"JWT","alg2":"none""#,
    r#","jwk":"not a key""#,
];

struct Fixture {
    validator: TokenValidator,
    keys: Vec<(Signer, EncodingKey)>,
    ed3_jwk: String,
}

fn ed25519_pkcs8(seed: u8) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&[seed; 32]);
    der
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let keys = vec![
            (Signer::Hs, EncodingKey::from_secret(HS_SECRET)),
            (Signer::HsWrong, EncodingKey::from_secret(HS_WRONG)),
            (
                Signer::HsRsaPublic,
                EncodingKey::from_secret(RSA_PUBLIC_PEM),
            ),
            (Signer::Rsa, EncodingKey::from_rsa_der(RSA_DER)),
            (Signer::Ec, EncodingKey::from_ec_der(EC_DER)),
            (Signer::Ed1, EncodingKey::from_ed_der(&ed25519_pkcs8(0x41))),
            (Signer::Ed2, EncodingKey::from_ed_der(&ed25519_pkcs8(0x42))),
            (Signer::Ed3, EncodingKey::from_ed_der(&ed25519_pkcs8(0x43))),
        ];
        let key = |s: Signer| &keys.iter().find(|(k, _)| *k == s).expect("a key").1;
        let ed_jwk = |s: Signer, kid: Option<&str>| {
            let mut jwk = Jwk::from_encoding_key(key(s), Algorithm::EdDSA).expect("Ed25519 JWK");
            jwk.common.key_id = kid.map(str::to_owned);
            serde_json::to_value(jwk).expect("a JWK serialises")
        };
        let mut jwks: Value = serde_json::from_str(JWKS).expect("the fixture JWKS");
        let list = jwks["keys"].as_array_mut().expect("a JWKS key list");
        list.push(ed_jwk(Signer::Ed1, Some("ed-1")));
        list.push(ed_jwk(Signer::Ed2, None));
        let set = KeySet::from_jwks_json(jwks.to_string().as_bytes(), "fuzz").expect("JWKS loads");
        assert_eq!(set.len(), 4);
        let validator = TokenValidator::with_keys(
            Some(set),
            Some(HS_SECRET),
            ISSUERS.iter().map(|s| (*s).to_owned()).collect(),
            AUDIENCES.iter().map(|s| (*s).to_owned()).collect(),
            LEEWAY as u64,
            "sub".into(),
        )
        .expect("validator");
        let ed3_jwk = ed_jwk(Signer::Ed3, Some("ed-1")).to_string();
        Fixture {
            validator,
            keys,
            ed3_jwk,
        }
    })
}

fn encoding_key(s: Signer) -> Option<&'static EncodingKey> {
    fixture().keys.iter().find(|(k, _)| *k == s).map(|(_, k)| k)
}

/// The header's `kid`: `None` absent, `Some(Err)` not a string.
fn kid(nibble: u8, default: Option<&'static str>) -> Option<Result<&'static str, Value>> {
    match nibble % 8 {
        0 => default.map(Ok),
        1 => None,
        2 => Some(Ok("rsa-1")),
        3 => Some(Ok("ec-1")),
        4 => Some(Ok("ed-1")),
        5 => Some(Ok("unknown-kid")),
        6 => Some(Ok("")),
        _ => Some(Err(json!(7))),
    }
}

/// The kid a signer's key has in the JWKS.
fn own_kid(s: Signer) -> Option<&'static str> {
    CONFIGURED
        .iter()
        .find(|(_, _, k)| *k == s)
        .and_then(|(kid, _, _)| *kid)
}

/// The claims: `iss`, `aud`, `sub` from `sel`, `exp` / `nbf` from their
/// bytes, and the fuzzer's own claims, which override the chosen ones when
/// bit 6 of `sel` is set.
fn claims(sel: u8, exp: u8, nbf: u8, rest: &[u8], now: i64) -> Map<String, Value> {
    let mut chosen = Map::new();
    match sel & 3 {
        0 => chosen.insert("iss".into(), json!(ISSUERS[0])),
        1 => chosen.insert("iss".into(), json!(ISSUERS[1])),
        2 => chosen.insert("iss".into(), json!("https://evil.example")),
        _ => None,
    };
    match (sel >> 2) & 3 {
        0 => chosen.insert("aud".into(), json!("tribune")),
        1 => chosen.insert("aud".into(), json!(["other", "web"])),
        2 => chosen.insert("aud".into(), json!("evil")),
        _ => None,
    };
    match (sel >> 4) & 3 {
        0 => chosen.insert("sub".into(), json!("alice")),
        1 => None,
        2 => chosen.insert("sub".into(), json!("")),
        _ => chosen.insert("sub".into(), json!(42)),
    };
    for (name, byte) in [("exp", exp), ("nbf", nbf)] {
        if byte != 0x80 {
            let minutes = i64::from(byte as i8);
            chosen.insert(name.into(), json!(now + minutes * 60));
        }
    }
    let own = match serde_json::from_slice::<Value>(rest) {
        Ok(Value::Object(m)) => m,
        _ if rest.is_empty() => Map::new(),
        _ => Map::from_iter([("note".to_owned(), json!(String::from_utf8_lossy(rest)))]),
    };
    let (mut base, over) = if sel & 0x40 != 0 {
        (chosen, own)
    } else {
        (own, chosen)
    };
    base.extend(over);
    base
}

/// Whether the claims pass; `None` when the clock may decide either way or
/// the case is one the oracle does not model.
fn claims_ok(c: &Map<String, Value>, now: i64) -> Option<bool> {
    let iss = match c.get("iss") {
        Some(Value::String(s)) => ISSUERS.contains(&s.as_str()),
        // jsonwebtoken takes an array `iss` naming an accepted issuer (no
        // IdP issues one); not modelled.
        Some(Value::Array(_)) => return None,
        _ => false,
    };
    let aud = match c.get("aud") {
        Some(Value::String(s)) => AUDIENCES.contains(&s.as_str()),
        Some(Value::Array(a)) => {
            a.iter().all(Value::is_string)
                && a.iter()
                    .any(|v| v.as_str().is_some_and(|s| AUDIENCES.contains(&s)))
        }
        _ => false,
    };
    let sub = matches!(c.get("sub"), Some(Value::String(s)) if !s.is_empty());
    let limit = |v: &Value, bound: i64| -> Option<std::cmp::Ordering> {
        let t = i64::try_from(v.as_u64()?).ok()?;
        if (t - bound).abs() <= MARGIN {
            return Some(std::cmp::Ordering::Equal);
        }
        Some(t.cmp(&bound))
    };
    // exp: an unsigned integer, not before now - leeway.
    let exp = match c.get("exp") {
        None => Some(false),
        Some(v) if v.as_u64().is_none() => Some(false),
        Some(v) => match limit(v, now - LEEWAY) {
            Some(std::cmp::Ordering::Greater) => Some(true),
            Some(std::cmp::Ordering::Less) => Some(false),
            // Past i64 (far future), or on the edge.
            None => Some(true),
            Some(std::cmp::Ordering::Equal) => None,
        },
    };
    let nbf = match c.get("nbf") {
        None => Some(true),
        Some(v) if v.as_u64().is_none() => Some(false),
        Some(v) => match limit(v, now + LEEWAY) {
            Some(std::cmp::Ordering::Less) => Some(true),
            Some(std::cmp::Ordering::Greater) | None => Some(false),
            Some(std::cmp::Ordering::Equal) => None,
        },
    };
    let definite = iss && aud && sub;
    match (exp, nbf) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        _ if !definite => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// No error text may show the token or, if long enough to mean anything,
/// its payload or signature.
fn assert_not_shown(e: &TokenError, parts: &[&str]) {
    let texts = [e.to_string(), format!("{e:?}")];
    for part in parts.iter().filter(|p| p.len() >= 16) {
        for t in &texts {
            assert!(
                !t.contains(part),
                "error {t:?} shows the token part {part:?}"
            );
        }
    }
    assert!(!e.code().is_empty());
}

/// What every verified token satisfies.
fn check_identity(id: &WebIdentity, now: i64) {
    assert_ne!(
        claims_ok(&id.claims, now),
        Some(false),
        "verified with claims that fail: {:?}",
        id.claims
    );
    assert_eq!(
        id.claims.get("sub").and_then(Value::as_str),
        Some(id.user.as_str())
    );
    let exp = id
        .claims
        .get("exp")
        .and_then(Value::as_f64)
        .map(|f| f as i64);
    assert_eq!(exp, Some(id.exp), "identity exp is not the claim");
}

fn arbitrary_token(text: &str) {
    let f = fixture();
    let now = tribune_auth::jwt::now_unix();
    match f.validator.validate(text) {
        Err(e) => {
            // Text that is no JWT may be a piece of a fixed message ("expected
            // 3 parts"); a token of three non-empty parts is in none.
            let t = text.trim();
            if t.len() >= 24 && t.split('.').filter(|p| !p.is_empty()).count() >= 3 {
                assert_not_shown(&e, &[t]);
            }
        }
        Ok(id) => {
            check_identity(&id, now);
            let token = text.trim();
            let (input, sig) = token
                .rsplit_once('.')
                .expect("a verified token has 3 parts");
            let header: Value = URL_SAFE_NO_PAD
                .decode(input.split('.').next().unwrap_or(""))
                .ok()
                .and_then(|h| serde_json::from_slice(&h).ok())
                .expect("a verified token has a readable header");
            let alg = header["alg"].as_str().unwrap_or("");
            let kid = header.get("kid").and_then(Value::as_str);
            let signers: Vec<(Algorithm, Signer)> = CONFIGURED
                .iter()
                .filter(|(k, a, _)| format!("{a:?}") == alg && (kid.is_none() || *k == kid))
                .map(|(_, a, s)| (*a, *s))
                .collect();
            assert!(
                !signers.is_empty(),
                "verified under alg {alg:?} kid {kid:?}"
            );
            if alg == "ES256" {
                return; // ECDSA signatures are randomised: nothing to compare.
            }
            let resigned: Vec<String> = signers
                .iter()
                .filter_map(|(a, s)| {
                    jsonwebtoken::crypto::sign(input.as_bytes(), encoding_key(*s)?, *a).ok()
                })
                .collect();
            assert!(
                resigned.iter().any(|r| r == sig),
                "verified a signature no configured key makes: {sig:?}"
            );
        }
    }
}

fn signed_token(input: &[u8]) {
    let [choice, algkid, extras, sel, exp, nbf, rest @ ..] = input else {
        return;
    };
    let f = fixture();
    let now = tribune_auth::jwt::now_unix();
    let (signer, alg, alg_name) = SIGNERS[usize::from(choice >> 1) % SIGNERS.len()];
    let header_alg = match algkid & 0x0f {
        0 => alg_name,
        n => ALGS[usize::from(n - 1) % ALGS.len()],
    };
    let kid = kid(algkid >> 4, own_kid(signer));
    let extra = HEADER_EXTRAS[usize::from(extras & 7)].replace("$ED3_JWK", &f.ed3_jwk);
    let mut header = format!(r#"{{"alg":{}"#, json!(header_alg));
    match &kid {
        Some(Ok(k)) => header += &format!(r#","kid":{}"#, json!(k)),
        Some(Err(v)) => header += &format!(r#","kid":{v}"#),
        None => {}
    }
    header += &extra;
    header += "}";
    let claims = claims(*sel, *exp, *nbf, rest, now);
    let payload = serde_json::to_vec(&claims).expect("claims serialise");
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&header),
        URL_SAFE_NO_PAD.encode(&payload)
    );
    let sig = match (alg, encoding_key(signer)) {
        (Some(alg), Some(key)) => {
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, alg).expect("signing")
        }
        _ => String::new(),
    };
    let token = format!("{signing_input}.{sig}");
    let payload_part = signing_input.split('.').nth(1).unwrap_or("");

    // The oracle.
    let header_ok = extras & 7 != 7;
    let key_ok = match (&kid, alg) {
        (Some(Err(_)), _) | (_, None) => false,
        (kid, Some(alg)) => {
            header_alg == alg_name
                && CONFIGURED.iter().any(|(k, a, s)| {
                    *a == alg
                        && *s == signer
                        && match kid {
                            Some(Ok(want)) => *k == Some(*want),
                            _ => true,
                        }
                })
        }
    };
    let want = if !(header_ok && key_ok) {
        Some(false)
    } else {
        claims_ok(&claims, now)
    };

    let got = f.validator.validate(&token);
    match (&got, want) {
        (Ok(_), Some(false)) => {
            panic!("verified: header {header} claims {claims:?} signer {signer:?}")
        }
        (Err(e), Some(true)) => {
            panic!("refused ({e}): header {header} claims {claims:?} signer {signer:?}")
        }
        _ => {}
    }
    match got {
        Err(e) => assert_not_shown(&e, &[&token, payload_part, &sig]),
        Ok(id) => {
            check_identity(&id, now);
            let signed: Map<String, Value> =
                serde_json::from_slice(&payload).expect("signed claims parse");
            assert_eq!(id.claims, signed, "verified claims are not the signed ones");
            let padded = f
                .validator
                .validate(&format!(" {token}\n"))
                .expect("surrounding blanks are trimmed");
            assert_eq!(padded.claims, id.claims);

            // One byte of the signature changed.
            let mut raw = URL_SAFE_NO_PAD.decode(&sig).expect("our own signature");
            assert!(!raw.is_empty(), "verified without a signature");
            let at = usize::from(extras >> 3) % raw.len();
            raw[at] ^= 1 << (sel & 7);
            let forged = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&raw));
            match f.validator.validate(&forged) {
                Ok(_) => panic!("signature byte {at} changed, still verified"),
                Err(e) => assert_not_shown(&e, &[&forged, payload_part]),
            }
            // The last character changed: its unused low bits too.
            let mut text = sig.clone().into_bytes();
            let last = text.len() - 1;
            text[last] = if text[last] == b'A' { b'B' } else { b'A' };
            let forged = format!("{signing_input}.{}", String::from_utf8_lossy(&text));
            assert!(
                f.validator.validate(&forged).is_err(),
                "signature's last character changed, still verified"
            );
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            arbitrary_token(text);
        }
    } else {
        signed_token(input);
    }
});
