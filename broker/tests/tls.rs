//! TLS end to end: client port (mutual TLS, plain-text rejection, untrusted
//! certificates, handshake first), mutual-TLS routes, https monitoring, and
//! the client-side checks run against the reference nats-server too, with the
//! same certificates, to show both accept and reject the same clients.
//!
//! Certificates are made at test time with rcgen: a CA, a server/route
//! certificate valid for `localhost` and `127.0.0.1`, a client certificate,
//! and a second, unrelated CA with its own certificates.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{nats_server_bin, tribune_bin, ServerSpec};
use futures::StreamExt;

fn tribune() -> PathBuf {
    tribune_bin(env!("CARGO_BIN_EXE_tribune-broker"))
}

/// PEM files of two unrelated CAs and certificates they issued.
struct Pki {
    dir: tempfile::TempDir,
}

fn issue(dir: &std::path::Path, prefix: &str) -> Result<(), rcgen::Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{prefix} test CA"));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    std::fs::write(dir.join(format!("{prefix}ca.pem")), ca_cert.pem()).unwrap();

    let leaf = |name: &str, sans: Vec<String>, eku: Vec<ExtendedKeyUsagePurpose>| {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(sans)?;
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = eku;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = p.signed_by(&key, &issuer)?;
        std::fs::write(dir.join(format!("{prefix}{name}.pem")), cert.pem()).unwrap();
        std::fs::write(
            dir.join(format!("{prefix}{name}-key.pem")),
            key.serialize_pem(),
        )
        .unwrap();
        Ok::<(), rcgen::Error>(())
    };
    // Servers and routes: both ends of a route present this one.
    leaf(
        "server",
        vec!["localhost".into(), "127.0.0.1".into()],
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    )?;
    leaf(
        "client",
        vec!["client.test".into()],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    )?;
    Ok(())
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        issue(dir.path(), "").unwrap();
        issue(dir.path(), "rogue-").unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// `cert_file`/`key_file`/`ca_file` lines for a server (`prefix` "" or "rogue-").
    fn server_files(&self, prefix: &str) -> String {
        format!(
            "cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n",
            self.p(&format!("{prefix}server.pem")),
            self.p(&format!("{prefix}server-key.pem")),
            self.p(&format!("{prefix}ca.pem")),
        )
    }
}

/// What a client saw when it tried to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Connected, and a message went round trip.
    Works,
    /// Refused (the connect call failed).
    Refused,
}

/// async-nats asks rustls for the process-wide provider, and with the AWS
/// SDK's aws-lc-rs and our ring both compiled in there is none by default.
fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn try_client(url: &str, opts: async_nats::ConnectOptions) -> Outcome {
    install_provider();
    let opts = opts.connection_timeout(Duration::from_secs(3));
    let client = match tokio::time::timeout(Duration::from_secs(8), opts.connect(url)).await {
        Ok(Ok(c)) => c,
        Ok(Err(_)) | Err(_) => return Outcome::Refused,
    };
    let mut sub = client.subscribe("tls.check").await.unwrap();
    client.flush().await.unwrap();
    client.publish("tls.check", "hello".into()).await.unwrap();
    client.flush().await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), sub.next()).await {
        Ok(Some(m)) if m.payload.as_ref() == b"hello" => Outcome::Works,
        other => panic!("connected over TLS but pub/sub failed: {other:?}"),
    }
}

/// Plain TCP: read INFO, send CONNECT and PING, and return INFO and what
/// came back (until EOF or 2 s of silence).
fn plaintext_client(port: u16) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut info = Vec::new();
    let mut b = [0u8; 1];
    while !info.ends_with(b"\r\n") {
        match s.read(&mut b) {
            Ok(1) => info.push(b[0]),
            other => panic!(
                "no INFO line: {other:?} after {:?}",
                String::from_utf8_lossy(&info)
            ),
        }
    }
    let _ = s.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n");
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut rest = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => rest.extend_from_slice(&buf[..n]),
        }
    }
    (String::from_utf8_lossy(&info).into_owned(), rest)
}

fn mtls_config(pki: &Pki) -> String {
    format!(
        "tls {{\n  {}  verify: true\n  timeout: 2\n}}\n",
        pki.server_files("")
    )
}

/// Everything a client can observe of a mutual-TLS client port.
async fn client_port_behaviour(bin: PathBuf, pki: &Pki) -> Vec<(String, Outcome)> {
    let srv = ServerSpec::new(bin)
        .config(mtls_config(pki))
        .start()
        .unwrap();
    let tls_url = format!("tls://127.0.0.1:{}", srv.port);
    let mut out = Vec::new();

    let good = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(pki.path("ca.pem"))
        .add_client_certificate(pki.path("client.pem"), pki.path("client-key.pem"));
    out.push((
        "trusted client cert".into(),
        try_client(&tls_url, good).await,
    ));

    let no_cert = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(pki.path("ca.pem"));
    out.push(("no client cert".into(), try_client(&tls_url, no_cert).await));

    let rogue = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(pki.path("ca.pem"))
        .add_client_certificate(
            pki.path("rogue-client.pem"),
            pki.path("rogue-client-key.pem"),
        );
    out.push((
        "client cert from another CA".into(),
        try_client(&tls_url, rogue).await,
    ));

    let wrong_root = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(pki.path("rogue-ca.pem"))
        .add_client_certificate(pki.path("client.pem"), pki.path("client-key.pem"));
    out.push((
        "server not trusted by client".into(),
        try_client(&tls_url, wrong_root).await,
    ));

    let (info, rest) = plaintext_client(srv.port);
    assert!(info.starts_with("INFO {"), "{}: {info}", srv.label);
    assert!(
        info.contains("\"tls_required\":true"),
        "{}: {info}",
        srv.label
    );
    assert!(
        info.contains("\"tls_verify\":true"),
        "{}: {info}",
        srv.label
    );
    // nats-server closes a client that does not start the handshake without
    // a word (no -ERR: the stream is expected to be TLS by then).
    out.push((
        format!(
            "plain-text CONNECT gets {:?}",
            String::from_utf8_lossy(&rest)
        ),
        Outcome::Refused,
    ));
    out
}

#[tokio::test]
async fn client_mtls_matches_nats_server() {
    let pki = Pki::new();
    let ours = client_port_behaviour(tribune(), &pki).await;
    let want = vec![
        ("trusted client cert".to_string(), Outcome::Works),
        ("no client cert".to_string(), Outcome::Refused),
        ("client cert from another CA".to_string(), Outcome::Refused),
        ("server not trusted by client".to_string(), Outcome::Refused),
        ("plain-text CONNECT gets \"\"".to_string(), Outcome::Refused),
    ];
    assert_eq!(ours, want, "tribune-broker");
    let theirs = client_port_behaviour(nats_server_bin(), &pki).await;
    assert_eq!(theirs, ours, "nats-server and tribune-broker differ");
}

#[tokio::test]
async fn plaintext_client_is_logged_and_counted_like_nats_server() {
    let pki = Pki::new();
    let srv = ServerSpec::new(tribune())
        .config(mtls_config(&pki))
        .args(["-D"])
        .start()
        .unwrap();
    let _ = plaintext_client(srv.port);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = srv.log();
        if log.contains("TLS handshake error: tls: first record does not look like a TLS handshake")
            && log.contains("Client connection closed: TLS Handshake Failure")
        {
            break;
        }
        assert!(Instant::now() < deadline, "{}", srv.log_excerpt());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(srv.log().contains("TLS required for client connections"));
}

async fn handshake_first_behaviour(bin: PathBuf, pki: &Pki) -> (Outcome, Outcome, bool) {
    let conf = format!(
        "tls {{\n  {}  handshake_first: true\n}}\n",
        pki.server_files("")
    );
    let srv = ServerSpec::new(bin).config(conf).start().unwrap();
    let url = format!("tls://localhost:{}", srv.port);
    let first = async_nats::ConnectOptions::new()
        .tls_first()
        .add_root_certificates(pki.path("ca.pem"));
    let first = try_client(&url, first).await;
    let classic = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(pki.path("ca.pem"));
    let classic = try_client(&url, classic).await;
    // Nothing comes in the clear: the server waits for a ClientHello.
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut b = [0u8; 16];
    let silent = !matches!(s.read(&mut b), Ok(n) if n > 0);
    (first, classic, silent)
}

#[tokio::test]
async fn handshake_first_matches_nats_server() {
    let pki = Pki::new();
    let ours = handshake_first_behaviour(tribune(), &pki).await;
    assert_eq!(ours, (Outcome::Works, Outcome::Refused, true));
    let theirs = handshake_first_behaviour(nats_server_bin(), &pki).await;
    assert_eq!(theirs, ours, "nats-server and tribune-broker differ");
}

/// What clients see of a port with `handshake_first` and a fallback delay.
#[derive(Debug, PartialEq, Eq)]
struct FallbackSeen {
    tls_first: Outcome,
    /// `tls_required` in the INFO the TLS-first client got (encrypted).
    tls_first_info_required: bool,
    classic: Outcome,
    /// INFO flags a plain TCP client got once nothing arrived in the delay.
    plain_info_flags: String,
    /// Whether the plain client's CONNECT/PING got a PONG back.
    plain_pong: bool,
    /// Whether the "will fail to connect" startup warning was logged.
    warned: bool,
}

async fn handshake_first_fallback_behaviour(
    bin: PathBuf,
    pki: &Pki,
    value: &str,
    allow_non_tls: bool,
) -> FallbackSeen {
    install_provider();
    let conf = format!(
        "allow_non_tls: {allow_non_tls}\ntls {{\n  {}  handshake_first: {value}\n}}\n",
        pki.server_files("")
    );
    let srv = ServerSpec::new(bin).config(conf).start().unwrap();
    let url = format!("tls://localhost:{}", srv.port);
    let first = || {
        async_nats::ConnectOptions::new()
            .tls_first()
            .add_root_certificates(pki.path("ca.pem"))
    };
    let tls_first_info_required = match first().connect(&url).await {
        Ok(c) => c.server_info().tls_required,
        Err(e) => panic!(
            "{}: TLS-first client: {e}\n{}",
            srv.label,
            srv.log_excerpt()
        ),
    };
    let tls_first = try_client(&url, first()).await;
    let classic = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(pki.path("ca.pem"));
    let classic = try_client(&url, classic).await;
    // A client that never starts TLS: it waits for INFO, which comes in the
    // clear once the delay has passed.
    let (info, rest) = plaintext_client(srv.port);
    let plain_info_flags = ["tls_required", "tls_available"]
        .iter()
        .filter(|f| info.contains(&format!("\"{f}\":true")))
        .copied()
        .collect::<Vec<_>>()
        .join(",");
    FallbackSeen {
        tls_first,
        tls_first_info_required,
        classic,
        plain_info_flags,
        plain_pong: String::from_utf8_lossy(&rest).contains("PONG"),
        warned: srv.log().contains(
            "Clients that are not using \"TLS Handshake First\" option will fail to connect",
        ),
    }
}

/// `handshake_first` with a fallback delay (a duration or `auto`): TLS-first
/// and INFO-first clients share the port; a client that never starts TLS
/// gets INFO in the clear and then the usual `tls_required` treatment.
#[tokio::test]
async fn handshake_first_fallback_matches_nats_server() {
    let pki = Pki::new();
    for (value, allow_non_tls) in [("\"300ms\"", false), ("auto", true)] {
        let ours = handshake_first_fallback_behaviour(tribune(), &pki, value, allow_non_tls).await;
        assert_eq!(
            ours,
            FallbackSeen {
                tls_first: Outcome::Works,
                tls_first_info_required: true,
                classic: Outcome::Works,
                plain_info_flags: if allow_non_tls {
                    "tls_available".to_string()
                } else {
                    "tls_required".to_string()
                },
                plain_pong: allow_non_tls,
                warned: false,
            },
            "handshake_first: {value}, allow_non_tls: {allow_non_tls}"
        );
        let theirs =
            handshake_first_fallback_behaviour(nats_server_bin(), &pki, value, allow_non_tls).await;
        assert_eq!(
            theirs, ours,
            "handshake_first: {value}, allow_non_tls: {allow_non_tls}: nats-server and tribune-broker differ"
        );
    }
}

/// A value nats-server refuses is refused with its words.
#[test]
fn handshake_first_bad_value_is_refused_like_nats_server() {
    let pki = Pki::new();
    for bin in [nats_server_bin(), tribune()] {
        let conf = format!(
            "tls {{\n  {}  handshake_first: \"soon\"\n}}\n",
            pki.server_files("")
        );
        let err = match ServerSpec::new(bin).config(conf).start() {
            Ok(srv) => panic!("{} started with handshake_first: soon", srv.label),
            Err(e) => e,
        };
        assert!(
            err.contains("field \"handshake_first\"'s value \"soon\" is invalid"),
            "{err}"
        );
    }
}

#[test]
fn never_offers_below_tls12() {
    use tribune_broker::tls::{versions, MinVersion, TlsOptions};
    let v: Vec<_> = versions(&TlsOptions::default())
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(
        v,
        vec![
            rustls::ProtocolVersion::TLSv1_3,
            rustls::ProtocolVersion::TLSv1_2
        ]
    );
    let t13 = TlsOptions {
        min_version: MinVersion::Tls13,
        ..Default::default()
    };
    assert!(versions(&t13)
        .iter()
        .all(|v| v.version == rustls::ProtocolVersion::TLSv1_3));
}

/// A GET over https, trusting `ca`.
async fn https_get(port: u16, ca: &std::path::Path, path: &str) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn https_monitoring_uses_the_client_certificates() {
    let pki = Pki::new();
    let conf = format!(
        "https: \"127.0.0.1:-1\"\ntls {{\n  {}  verify: true\n}}\n",
        pki.server_files("")
    );
    let srv = ServerSpec::new(tribune()).config(conf).start().unwrap();
    let mon = srv.ports.get("monitoring").cloned().unwrap_or_default();
    assert!(mon[0].starts_with("https://"), "{mon:?}");
    assert!(
        srv.ports["nats"][0].starts_with("tls://"),
        "{:?}",
        srv.ports
    );
    let port: u16 = mon[0].rsplit(':').next().unwrap().parse().unwrap();
    // No client certificate needed for monitoring, as in nats-server.
    let body = https_get(port, &pki.path("ca.pem"), "/varz").await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"server_id\""), "{body}");
    // A client that does not trust the CA cannot talk to it.
    assert!(https_get(port, &pki.path("rogue-ca.pem"), "/varz")
        .await
        .is_err());
    assert!(
        srv.log().contains("Starting https monitor on 127.0.0.1:"),
        "{}",
        srv.log()
    );
}

fn route_config(pki: &Pki, prefix: &str, name: &str, port: u16, routes: &[u16]) -> String {
    let routes = routes
        .iter()
        .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "server_name: {name}\ncluster {{\n  name: tlsc\n  listen: \"127.0.0.1:{port}\"\n  routes: [{routes}]\n  tls {{\n  {}  verify: true\n  timeout: 2\n  }}\n}}\n",
        pki.server_files(prefix)
    )
}

/// Publish on `from` until a subscriber on `to` gets a message (interest
/// takes a moment to cross the routes), or give up after `wait`.
async fn crosses(from: &str, to: &str, subject: &str, wait: Duration) -> bool {
    let sub_client = async_nats::connect(to).await.unwrap();
    let mut sub = sub_client.subscribe(subject.to_string()).await.unwrap();
    sub_client.flush().await.unwrap();
    let pub_client = async_nats::connect(from).await.unwrap();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        pub_client
            .publish(subject.to_string(), "over-tls".into())
            .await
            .unwrap();
        pub_client.flush().await.unwrap();
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
            assert_eq!(m.payload.as_ref(), b"over-tls");
            return true;
        }
    }
    false
}

#[tokio::test]
async fn mutual_tls_routes_carry_messages_and_keep_strangers_out() {
    let pki = Pki::new();
    let ports = common::cluster::free_ports(Ipv4Addr::LOCALHOST);
    let names = ["a", "b", "c"];
    let mut nodes = Vec::new();
    for i in 0..3 {
        let conf = route_config(&pki, "", names[i], ports[i], &ports);
        nodes.push(
            ServerSpec::new(tribune())
                .config(conf)
                .args(["-D"])
                .start()
                .unwrap(),
        );
    }
    let url = |i: usize| nodes[i].client_url();
    assert!(
        crosses(&url(0), &url(2), "tls.route.a", Duration::from_secs(15)).await,
        "a -> c over TLS routes\n{}\n{}",
        nodes[0].log_excerpt(),
        nodes[2].log_excerpt()
    );
    assert!(crosses(&url(1), &url(0), "tls.route.b", Duration::from_secs(15)).await);
    assert!(crosses(&url(2), &url(1), "tls.route.c", Duration::from_secs(15)).await);
    for n in &nodes {
        let log = n.log();
        assert!(
            log.contains("TLS handshake complete"),
            "{}",
            n.log_excerpt()
        );
        assert!(n.ports["cluster"][0].starts_with("tls://"), "{:?}", n.ports);
    }

    // A node whose certificate comes from another CA dials node a: neither
    // side trusts the other, so it never joins.
    let rogue_port = common::cluster::free_ports(Ipv4Addr::LOCALHOST)[0];
    let rogue = ServerSpec::new(tribune())
        .config(route_config(
            &pki,
            "rogue-",
            "rogue",
            rogue_port,
            &[ports[0]],
        ))
        .start()
        .unwrap();
    assert!(
        !crosses(
            &rogue.client_url(),
            &url(0),
            "tls.route.rogue",
            Duration::from_secs(3)
        )
        .await,
        "a node with an untrusted certificate joined the cluster"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !rogue.log().contains("TLS route handshake error") {
        assert!(Instant::now() < deadline, "{}", rogue.log_excerpt());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        nodes[0].log().contains("TLS route handshake error"),
        "{}",
        nodes[0].log_excerpt()
    );
}

#[tokio::test]
async fn tribune_joins_a_nats_server_cluster_over_tls() {
    let pki = Pki::new();
    let ports = common::cluster::free_ports(Ipv4Addr::LOCALHOST);
    let ns = ServerSpec::new(nats_server_bin())
        .config(route_config(&pki, "", "ns", ports[0], &[ports[1]]))
        .start()
        .unwrap();
    let tr = ServerSpec::new(tribune())
        .config(route_config(&pki, "", "tr", ports[1], &[ports[0]]))
        .start()
        .unwrap();
    assert!(
        crosses(
            &ns.client_url(),
            &tr.client_url(),
            "tls.mixed.1",
            Duration::from_secs(15)
        )
        .await,
        "nats-server -> tribune over TLS\n{}\n{}",
        ns.log_excerpt(),
        tr.log_excerpt()
    );
    assert!(
        crosses(
            &tr.client_url(),
            &ns.client_url(),
            "tls.mixed.2",
            Duration::from_secs(15)
        )
        .await
    );
}

async fn allow_non_tls_behaviour(bin: PathBuf, pki: &Pki) -> (Outcome, Outcome, String) {
    let conf = format!(
        "allow_non_tls: true\ntls {{\n  {}}}\n",
        pki.server_files("")
    );
    let srv = ServerSpec::new(bin).config(conf).start().unwrap();
    let plain = try_client(&srv.client_url(), async_nats::ConnectOptions::new()).await;
    let tls = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(pki.path("ca.pem"));
    let tls = try_client(&format!("tls://localhost:{}", srv.port), tls).await;
    let (info, _) = plaintext_client(srv.port);
    let flags = ["tls_required", "tls_verify", "tls_available"]
        .iter()
        .filter(|f| info.contains(&format!("\"{f}\":true")))
        .copied()
        .collect::<Vec<_>>()
        .join(",");
    (plain, tls, flags)
}

#[tokio::test]
async fn allow_non_tls_matches_nats_server() {
    let pki = Pki::new();
    let ours = allow_non_tls_behaviour(tribune(), &pki).await;
    assert_eq!(
        ours,
        (Outcome::Works, Outcome::Works, "tls_available".to_string())
    );
    let theirs = allow_non_tls_behaviour(nats_server_bin(), &pki).await;
    assert_eq!(theirs, ours, "nats-server and tribune-broker differ");
}

/// `websocket { tls {} }`: wss:// with mutual TLS, the same clients
/// accepted and refused by both servers, and INFO saying TLS is required.
#[tokio::test]
async fn websocket_tls_matches_nats_server() {
    let pki = Pki::new();
    let mut seen = Vec::new();
    for bin in [nats_server_bin(), tribune()] {
        let srv = ServerSpec::new(bin)
            .config(format!(
                "websocket {{\n host: 127.0.0.1\n port: -1\n tls {{\n  {}  verify: true\n }}\n}}\n",
                pki.server_files("")
            ))
            .start()
            .unwrap_or_else(|e| panic!("{e}"));
        let url = srv.ports["websocket"][0].clone();
        assert!(url.starts_with("wss://127.0.0.1:"), "{}: {url}", srv.label);
        let mut out = Vec::new();
        let good = async_nats::ConnectOptions::new()
            .add_root_certificates(pki.path("ca.pem"))
            .add_client_certificate(pki.path("client.pem"), pki.path("client-key.pem"));
        out.push(("trusted client cert", try_client(&url, good).await));
        let no_cert = async_nats::ConnectOptions::new().add_root_certificates(pki.path("ca.pem"));
        out.push(("no client cert", try_client(&url, no_cert).await));
        let wrong_root = async_nats::ConnectOptions::new()
            .add_root_certificates(pki.path("rogue-ca.pem"))
            .add_client_certificate(pki.path("client.pem"), pki.path("client-key.pem"));
        out.push(("server not trusted", try_client(&url, wrong_root).await));
        let plain = url.replacen("wss://", "ws://", 1);
        out.push((
            "plain ws://",
            try_client(&plain, async_nats::ConnectOptions::new()).await,
        ));
        seen.push((srv.label.clone(), out));
    }
    let want = vec![
        ("trusted client cert", Outcome::Works),
        ("no client cert", Outcome::Refused),
        ("server not trusted", Outcome::Refused),
        ("plain ws://", Outcome::Refused),
    ];
    for (label, out) in &seen {
        assert_eq!(out, &want, "{label}");
    }
}
