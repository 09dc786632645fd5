//! `tribune-bridge keygen`: NKEY pairs for local set-ups (`make run`, tests).
//!
//! Production keys come from the ops tooling; this exists so a fresh clone
//! can run the whole system without the `nsc`/`nk` Go tools.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nkeys::{KeyPair, XKey};

/// Generates a key of `kind` (`user`, `account`, `server`, `curve`); returns `(seed, public)`.
pub fn generate(kind: &str) -> Result<(String, String)> {
    let pair = match kind {
        "user" => KeyPair::new_user(),
        "account" => KeyPair::new_account(),
        "server" => KeyPair::new_server(),
        "curve" => {
            let x = XKey::new();
            let seed = x.seed().map_err(|e| anyhow::anyhow!("xkey seed: {e}"))?;
            return Ok((seed, x.public_key()));
        }
        other => bail!("unknown key kind {other:?}: use user, account, server or curve"),
    };
    let seed = pair.seed().map_err(|e| anyhow::anyhow!("seed: {e}"))?;
    Ok((seed, pair.public_key()))
}

/// Writes `seed` to `path`, readable by the owner only.
pub fn write_seed(path: &Path, seed: &str) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "{seed}").with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        for (kind, seed_prefix, pub_prefix) in [
            ("user", "SU", "U"),
            ("account", "SA", "A"),
            ("server", "SN", "N"),
            ("curve", "SX", "X"),
        ] {
            let (seed, public) = generate(kind).unwrap();
            assert!(seed.starts_with(seed_prefix), "{kind}");
            assert!(public.starts_with(pub_prefix), "{kind}");
        }
        assert!(generate("operator?").is_err());
    }
}
