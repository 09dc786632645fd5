//! Throw-away TLS material for the tests: a CA and a server certificate for
//! localhost / 127.0.0.1, as PEM files.

use std::path::Path;

/// Writes `<prefix>ca.pem`, `<prefix>server.pem` and `<prefix>server-key.pem`
/// into `dir`: a fresh CA, and a server certificate it signed.
pub fn pki(dir: &Path, prefix: &str) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{prefix} bridge test CA"));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join(format!("{prefix}ca.pem")), ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = p.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join(format!("{prefix}server.pem")), cert.pem()).unwrap();
    std::fs::write(
        dir.join(format!("{prefix}server-key.pem")),
        key.serialize_pem(),
    )
    .unwrap();
}
