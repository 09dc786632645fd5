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
