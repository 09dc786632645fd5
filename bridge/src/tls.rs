//! TLS set-up shared by the MQTT and NATS sides.
//!
//! The workspace links rustls with both the ring and aws-lc-rs providers (the
//! latter comes with the AWS SDK), so rustls cannot pick a process default by
//! itself and `ClientConfig::builder()` (used inside async-nats) would panic.
//! We install ring as the default once, and build our own MQTT config with an
//! explicit provider. Verification is always on: there is no "insecure" switch.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::pki_types::{pem::PemObject, CertificateDer};
use rustls::{ClientConfig, RootCertStore};

/// Installs ring as the process-wide rustls provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Root store from a PEM bundle, or the system's roots.
pub fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading CA file {}", path.display()))?
            {
                let cert = cert.with_context(|| format!("parsing CA file {}", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("CA certificate in {}", path.display()))?;
            }
            if roots.is_empty() {
                bail!("CA file {} holds no certificates", path.display());
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "while loading system CA certificates");
            }
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                bail!("no system CA certificates found; set ca_file");
            }
        }
    }
    Ok(roots)
}

/// A verifying rustls client config for the MQTT connection.
pub fn mqtt_client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(root_store(ca_file)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ca_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a cert\n").unwrap();
        let err = mqtt_client_config(Some(&empty)).unwrap_err();
        assert!(format!("{err:#}").contains("no certificates"), "{err:#}");
        let missing = dir.path().join("missing.pem");
        assert!(mqtt_client_config(Some(&missing)).is_err());
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.cert.pem()).unwrap();
        mqtt_client_config(Some(&good)).unwrap();
    }
}
