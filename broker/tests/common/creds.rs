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
