//! `.creds` files as nsc writes them, for operator-mode tests.

use std::path::Path;

use nkeys::KeyPair;

/// Write the standard `.creds` layout: the user JWT, then the user's seed.
pub fn write_creds(path: &Path, token: &str, key: &KeyPair) {
    let seed = key.seed().expect("a user key with its seed");
    let text = format!(
        "-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    );
    std::fs::write(path, text).expect("write the creds file");
}

/// A new operator (named `OP`) whose JWT names a new system account:
/// the operator's key, its JWT, and the system account's key.
pub fn operator_with_system_account() -> (KeyPair, String, KeyPair) {
    use tribune_auth::jwt::{self, OperatorClaims};
    let op = KeyPair::new_operator();
    let sys = KeyPair::new_account();
    let mut oc = OperatorClaims::new(&op.public_key());
    oc.std.name = "OP".into();
    oc.nats.system_account = sys.public_key();
    let token = jwt::encode(&mut oc, &op).expect("sign the operator JWT");
    (op, token, sys)
}

/// An activation token, as `nsc generate activation` writes one:
/// `exporter` lets `importer` import `subject` (a `stream` or `service`).
pub fn activation_token(exporter: &KeyPair, importer: &str, subject: &str, kind: &str) -> String {
    let claims = serde_json::json!({
        "jti": format!("{:x}", rand::random::<u64>()),
        "iat": tribune_auth::jwt::now_unix(),
        "iss": exporter.public_key(),
        "name": subject,
        "sub": importer,
        "nats": { "subject": subject, "kind": kind, "type": "activation", "version": 2 },
    });
    sign_json(&claims, exporter)
}

/// A NATS JWT whose payload is `claims` exactly as given, signed by
/// `signer`: for claim types the JWT encoder has no struct for.
pub fn sign_json(claims: &serde_json::Value, signer: &KeyPair) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let head = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let input = format!(
        "{head}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims as JSON"))
    );
    let sig = signer.sign(input.as_bytes()).expect("sign the JWT");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}
