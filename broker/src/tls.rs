//! TLS for the client port, routes and the https monitor, with rustls (the
//! *ring* provider), TLS 1.2 and 1.3 only.
//!
//! Options follow nats-server's `tls {}` block (`TLSConfigOpts`): the same
//! keys, the same defaults (2 s handshake timeout), and the same flows on
//! the wire:
//!
//! * client port: INFO in the clear (`tls_required: true`), then the client
//!   starts the handshake and everything after it is encrypted; with
//!   `handshake_first` the handshake comes first and INFO goes out encrypted
//!   (`tls_required: true`). With a fallback delay (`handshake_first: auto`
//!   or a duration) a client that sends nothing within the delay gets the
//!   INFO-first flow instead, so TLS-first and classic clients share a port.
//!   A client that does not start a handshake is closed without a word, as
//!   nats-server does (it logs `TLS handshake error: ...` at debug level).
//! * routes: both sides handshake right after the TCP connect, before any
//!   protocol; routes always require and verify the peer's certificate, and
//!   the dialler checks the server's certificate against the route URL host.
//! * https monitoring: the client `tls {}` certificates, no client auth.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{debug, error};

use crate::client::{run_client, ClientConfig, ClientShared, ClosedState, Plain};
use crate::protocol::{Info, Parser};
use crate::server::Server;

/// nats-server's `TLS_TIMEOUT`: how long a handshake may take.
pub const DEFAULT_TLS_TIMEOUT: Duration = Duration::from_secs(2);

/// nats-server's `DEFAULT_TLS_HANDSHAKE_FIRST_FALLBACK_DELAY`: the wait
/// `handshake_first: auto` gives a client to start its handshake before the
/// server sends INFO in the clear instead.
pub const DEFAULT_TLS_HANDSHAKE_FIRST_FALLBACK: Duration = Duration::from_millis(50);

/// The first byte of a TLS record carrying a handshake (the ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Lowest TLS version to accept. Anything below 1.2 is never offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinVersion {
    #[default]
    Tls12,
    Tls13,
}

/// A `tls {}` block, as nats-server's `TLSConfigOpts` (the subset Tribune
/// implements; the config module refuses the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// Require and verify client certificates (always on for routes).
    pub verify: bool,
    /// Dialled routes: do not check the server certificate's host name
    /// (the chain is still verified against `ca_file`).
    pub insecure: bool,
    /// Handshake timeout (`timeout`, seconds).
    pub timeout: Duration,
    /// TLS handshake before INFO (`handshake_first`).
    pub handshake_first: bool,
    /// With `handshake_first`: how long to wait for the client's first bytes
    /// before falling back to INFO in the clear (`handshake_first: auto` or a
    /// duration). Zero means no fallback: the handshake must come first.
    pub handshake_first_fallback: Duration,
    /// TLS 1.2 cipher suites by Go name, in preference order; empty means the
    /// provider's defaults. TLS 1.3 suites are always enabled, as in Go.
    pub cipher_suites: Vec<String>,
    /// Key exchange groups by Go name (`X25519`, `CurveP256`, `CurveP384`);
    /// empty means the provider's defaults.
    pub curve_preferences: Vec<String>,
    pub min_version: MinVersion,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            cert_file: None,
            key_file: None,
            ca_file: None,
            verify: false,
            insecure: false,
            timeout: DEFAULT_TLS_TIMEOUT,
            handshake_first: false,
            handshake_first_fallback: Duration::ZERO,
            cipher_suites: Vec::new(),
            curve_preferences: Vec::new(),
            min_version: MinVersion::Tls12,
        }
    }
}

// ------------------------------------------------------------ names

/// Go's secure cipher suite names (`tls.CipherSuites()`), with the rustls
/// suite each maps to, if the ring provider has it.
const GO_SECURE_SUITES: &[(&str, Option<&str>)] = &[
    ("TLS_AES_128_GCM_SHA256", Some("TLS13_AES_128_GCM_SHA256")),
    ("TLS_AES_256_GCM_SHA384", Some("TLS13_AES_256_GCM_SHA384")),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        Some("TLS13_CHACHA20_POLY1305_SHA256"),
    ),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", None),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", None),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", None),
    ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", None),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        Some("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        Some("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        Some("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        Some("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        Some("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    ),
    // Go's legacy constant names for the two ChaCha suites.
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        Some("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        Some("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    ),
];

/// Go's insecure cipher suite names (`tls.InsecureCipherSuites()`).
const GO_INSECURE_SUITES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// Go's curve names, with the rustls (ring) group each maps to, if any.
const GO_CURVES: &[(&str, Option<&str>)] = &[
    ("X25519", Some("X25519")),
    ("CurveP256", Some("secp256r1")),
    ("CurveP384", Some("secp384r1")),
    ("CurveP521", None),
    ("X25519MLKEM768", None),
    ("SecP256r1MLKEM768", None),
    ("SecP384r1MLKEM1024", None),
];

/// How a configured cipher suite name fares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuiteName {
    /// Known to Go and available here.
    Supported,
    /// Known to Go (and secure) but not offered by rustls: ignored.
    Unavailable,
    /// One of Go's insecure suites: never offered here.
    Insecure,
    /// Not a name Go knows: nats-server refuses it.
    Unknown,
}

pub fn classify_cipher(name: &str) -> SuiteName {
    if let Some((_, m)) = GO_SECURE_SUITES.iter().find(|(n, _)| *n == name) {
        return if m.is_some() {
            SuiteName::Supported
        } else {
            SuiteName::Unavailable
        };
    }
    if GO_INSECURE_SUITES.contains(&name) {
        SuiteName::Insecure
    } else {
        SuiteName::Unknown
    }
}

/// `Some(true)`: a Go curve available here; `Some(false)`: a Go curve
/// rustls/ring lacks (ignored); `None`: not a curve Go knows.
pub fn classify_curve(name: &str) -> Option<bool> {
    GO_CURVES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| m.is_some())
}

// ------------------------------------------------------------ configs

/// The crypto provider for a block: ring, with the configured TLS 1.2
/// suites and key exchange groups (unknown or unavailable names dropped;
/// the config module has already warned about them).
pub fn provider(opts: &TlsOptions) -> Result<Arc<CryptoProvider>> {
    let mut p = rustls::crypto::ring::default_provider();
    if !opts.cipher_suites.is_empty() {
        let all = p.cipher_suites.clone();
        let mut suites: Vec<_> = all
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        for name in &opts.cipher_suites {
            let Some((_, Some(rname))) = GO_SECURE_SUITES.iter().find(|(n, _)| n == name) else {
                continue;
            };
            if rname.starts_with("TLS13_") {
                continue;
            }
            if let Some(s) = all.iter().find(|s| format!("{:?}", s.suite()) == *rname) {
                if !suites.iter().any(|x| x.suite() == s.suite()) {
                    suites.push(*s);
                }
            }
        }
        p.cipher_suites = suites;
    }
    if !opts.curve_preferences.is_empty() {
        let all = p.kx_groups.clone();
        let mut groups = Vec::new();
        for name in &opts.curve_preferences {
            let Some((_, Some(rname))) = GO_CURVES.iter().find(|(n, _)| n == name) else {
                continue;
            };
            if let Some(g) = all
                .iter()
                .find(|g| format!("{:?}", g.name()).eq_ignore_ascii_case(rname))
            {
                groups.push(*g);
            }
        }
        if groups.is_empty() {
            bail!("none of the configured 'curve_preferences' is supported");
        }
        p.kx_groups = groups;
    }
    Ok(Arc::new(p))
}

/// The protocol versions to offer: never below TLS 1.2.
pub fn versions(opts: &TlsOptions) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static BOTH: &[&rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    static ONLY13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    match opts.min_version {
        MinVersion::Tls12 => BOTH,
        MinVersion::Tls13 => ONLY13,
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow!("open {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate found", path.display());
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// The certificate chain and key of a block; both files are required.
fn load_pair(opts: &TlsOptions) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    match (&opts.cert_file, &opts.key_file) {
        (Some(c), Some(k)) => {
            let certs = load_certs(c)
                .map_err(|e| anyhow!("error parsing X509 certificate/key pair: {e}"))?;
            let key =
                load_key(k).map_err(|e| anyhow!("error parsing X509 certificate/key pair: {e}"))?;
            Ok((certs, key))
        }
        (Some(_), None) => bail!("missing 'key_file' in TLS configuration"),
        (None, Some(_)) => bail!("missing 'cert_file' in TLS configuration"),
        (None, None) => bail!("missing 'cert_file' and 'key_file' in TLS configuration"),
    }
}

fn load_roots(path: &Path) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path).map_err(|e| anyhow!("failed to parse root ca certificate: {e}"))? {
        roots
            .add(c)
            .map_err(|e| anyhow!("failed to parse root ca certificate: {e}"))?;
    }
    Ok(Arc::new(roots))
}

/// Server side of a block. `require_client_cert` is `verify` for clients,
/// always true for routes, never for the https monitor.
pub fn server_config(
    opts: &TlsOptions,
    require_client_cert: bool,
) -> Result<Arc<rustls::ServerConfig>> {
    let p = provider(opts)?;
    let (certs, key) = load_pair(opts)?;
    let builder = rustls::ServerConfig::builder_with_provider(p.clone())
        .with_protocol_versions(versions(opts))?;
    let builder = if require_client_cert {
        let ca = opts.ca_file.as_ref().ok_or_else(|| {
            anyhow!("'verify' requires a 'ca_file' to verify client certificates against")
        })?;
        let verifier = WebPkiClientVerifier::builder_with_provider(load_roots(ca)?, p)
            .build()
            .context("could not build the client certificate verifier")?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("error parsing X509 certificate/key pair: {e}"))?;
    cfg.alpn_protocols.clear();
    Ok(Arc::new(cfg))
}

/// Client side of a block (dialled routes): the server's certificate is
/// verified against `ca_file` and our own certificate is presented.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<rustls::ClientConfig>> {
    let p = provider(opts)?;
    let ca = opts
        .ca_file
        .as_ref()
        .ok_or_else(|| anyhow!("route TLS requires a 'ca_file' to verify peers against"))?;
    let inner = WebPkiServerVerifier::builder_with_provider(load_roots(ca)?, p.clone())
        .build()
        .context("could not build the server certificate verifier")?;
    let verifier = Arc::new(RouteVerifier {
        inner,
        skip_name: opts.insecure,
    });
    let (certs, key) = load_pair(opts)?;
    let cfg = rustls::ClientConfig::builder_with_provider(p)
        .with_protocol_versions(versions(opts))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(certs, key)
        .map_err(|e| anyhow!("error parsing X509 certificate/key pair: {e}"))?;
    Ok(Arc::new(cfg))
}

/// WebPKI verification, optionally without the host name check (`insecure`
/// keeps chain verification: stricter than Go's InsecureSkipVerify).
struct RouteVerifier {
    inner: Arc<WebPkiServerVerifier>,
    skip_name: bool,
}

impl fmt::Debug for RouteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteVerifier")
            .field("skip_name", &self.skip_name)
            .finish()
    }
}

impl ServerCertVerifier for RouteVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.skip_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Check a client-port (or https) block: what the config module runs so a
/// bad file is reported at the block's position.
pub fn check_server_block(opts: &TlsOptions) -> Result<()> {
    server_config(opts, opts.verify).map(|_| ())
}

/// Check a `cluster { tls {} }` block (both sides).
pub fn check_route_block(opts: &TlsOptions) -> Result<()> {
    server_config(opts, true)?;
    client_config(opts).map(|_| ())
}

// ------------------------------------------------------------ contexts

/// Client-port TLS, ready to use.
#[derive(Clone)]
pub struct ClientTls {
    pub acceptor: TlsAcceptor,
    pub timeout: Duration,
    pub handshake_first: bool,
    /// See [`TlsOptions::handshake_first_fallback`].
    pub fallback: Duration,
}

/// Route TLS, both directions.
#[derive(Clone)]
pub struct RouteTls {
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
    pub timeout: Duration,
}

/// Every TLS context a server needs, built from its options at start.
#[derive(Clone, Default)]
pub struct TlsContexts {
    pub client: Option<ClientTls>,
    pub route: Option<RouteTls>,
    pub monitor: Option<TlsAcceptor>,
    /// The WebSocket listener's (`websocket { tls {} }`).
    pub websocket: Option<TlsAcceptor>,
}

impl TlsContexts {
    pub fn build(opts: &crate::options::Options) -> Result<TlsContexts> {
        let mut out = TlsContexts::default();
        if let Some(t) = &opts.tls {
            let cfg = server_config(t, t.verify).context("client TLS")?;
            out.client = Some(ClientTls {
                acceptor: TlsAcceptor::from(cfg),
                timeout: t.timeout,
                handshake_first: t.handshake_first,
                fallback: t.handshake_first_fallback,
            });
            if opts.https_port.is_some() {
                let cfg = server_config(t, false).context("https TLS")?;
                out.monitor = Some(TlsAcceptor::from(cfg));
            }
        }
        if let Some(t) = &opts.websocket.tls {
            let cfg = server_config(t, t.verify).context("websocket TLS")?;
            out.websocket = Some(TlsAcceptor::from(cfg));
        }
        if let Some(t) = &opts.cluster.tls {
            out.route = Some(RouteTls {
                acceptor: TlsAcceptor::from(server_config(t, true).context("route TLS")?),
                connector: TlsConnector::from(client_config(t).context("route TLS")?),
                timeout: t.timeout,
            });
        }
        Ok(out)
    }
}

// ------------------------------------------------------------ client port

fn version_name(v: Option<rustls::ProtocolVersion>) -> &'static str {
    match v {
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        _ => "unknown",
    }
}

fn suite_name(s: Option<rustls::SupportedCipherSuite>) -> String {
    s.map(|s| {
        let n = format!("{:?}", s.suite());
        n.strip_prefix("TLS13_")
            .map(|rest| format!("TLS_{rest}"))
            .unwrap_or(n)
    })
    .unwrap_or_default()
}

/// Wait for the first byte the peer sends, without consuming it.
async fn first_byte(stream: &TcpStream, timeout: Duration) -> Result<Option<u8>, String> {
    let mut b = [0u8; 1];
    match tokio::time::timeout(timeout, stream.peek(&mut b)).await {
        Ok(Ok(0)) => Ok(None),
        Ok(Ok(_)) => Ok(Some(b[0])),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(io_timeout(stream)),
    }
}

fn io_timeout(stream: &TcpStream) -> String {
    match (stream.local_addr(), stream.peer_addr()) {
        (Ok(l), Ok(p)) => format!("read tcp {l}->{p}: i/o timeout"),
        _ => "i/o timeout".to_string(),
    }
}

/// Whether the peer sends anything within `delay`, without consuming it.
/// End of stream and errors count as nothing: the caller then sends INFO and
/// the next read reports what happened, as nats-server's fallback does.
async fn sends_within(stream: &TcpStream, delay: Duration) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(delay, stream.peek(&mut b)).await,
        Ok(Ok(n)) if n > 0
    )
}

/// Serve a client on a TLS-configured port: INFO (unless handshake first),
/// the handshake, then the protocol over the encrypted stream. The client is
/// already registered; on failure it is closed and unregistered here.
///
/// With `handshake_first` and a fallback delay, the server first waits that
/// long for the client's first bytes (peeked, so the handshake still reads
/// them): any bytes mean TLS first; none mean INFO in the clear and the
/// usual flow (`tls_required` / `allow_non_tls`), as nats-server does.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve_client(
    server: Arc<Server>,
    shared: Arc<ClientShared>,
    mut stream: TcpStream,
    mut info: Info,
    cfg: ClientConfig,
    parser: Parser,
    tls: ClientTls,
    allow_non_tls: bool,
) {
    let tag = shared.tag();
    let mut tls_first = tls.handshake_first;
    if tls_first && !tls.fallback.is_zero() && !sends_within(&stream, tls.fallback).await {
        debug!("{tag} - No TLS handshake within the \"TLS Handshake First\" fallback delay, sending INFO first");
        tls_first = false;
    }
    let greeting = if tls_first {
        // The INFO goes out encrypted, after the handshake this client chose.
        info.tls_required = true;
        info.to_line()
    } else {
        // INFO goes out in the clear; the writer is not running yet.
        let wrote =
            tokio::time::timeout(cfg.write_deadline, stream.write_all(&info.to_line())).await;
        if !matches!(wrote, Ok(Ok(()))) {
            debug!("{tag} - Error writing INFO to client");
            fail(&server, &shared, ClosedState::WriteError);
            return;
        }
        Vec::new()
    };
    let deadline = tokio::time::Instant::now() + tls.timeout;
    match first_byte(&stream, tls.timeout).await {
        Ok(Some(TLS_HANDSHAKE_RECORD)) => {}
        Ok(Some(_)) if allow_non_tls && !tls_first => {
            debug!("{tag} - Client is not using TLS (allow_non_tls)");
            let (rd, wr) = stream.into_split();
            run_client(server, shared, (rd, Plain(wr)), greeting, cfg, parser).await;
            return;
        }
        Ok(Some(_)) => {
            // A plain-text client or a probe: closed without a word, and
            // logged at debug level only, as nats-server does.
            debug!("{tag} - Starting TLS client connection handshake");
            debug!(
                "{tag} - TLS handshake error: tls: first record does not look like a TLS handshake"
            );
            fail(&server, &shared, ClosedState::TlsHandshakeError);
            return;
        }
        Ok(None) => {
            error!("{tag} - TLS handshake error: EOF");
            fail(&server, &shared, ClosedState::TlsHandshakeError);
            return;
        }
        Err(e) => {
            debug!("{tag} - TLS handshake error: {e}");
            fail(&server, &shared, ClosedState::TlsHandshakeError);
            return;
        }
    }
    debug!("{tag} - Starting TLS client connection handshake");
    let timeout_text = io_timeout(&stream);
    let tls_stream = match tokio::time::timeout_at(deadline, tls.acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            error!("{tag} - TLS handshake error: {e}");
            fail(&server, &shared, ClosedState::TlsHandshakeError);
            return;
        }
        Err(_) => {
            debug!("{tag} - TLS handshake error: {timeout_text}");
            fail(&server, &shared, ClosedState::TlsHandshakeError);
            return;
        }
    };
    {
        let (_, conn) = tls_stream.get_ref();
        debug!("{tag} - TLS handshake complete");
        debug!(
            "{tag} - TLS version {}, cipher suite {}",
            version_name(conn.protocol_version()),
            suite_name(conn.negotiated_cipher_suite())
        );
    }
    let (rd, wr) = tokio::io::split(tls_stream);
    run_client(server, shared, (rd, Plain(wr)), greeting, cfg, parser).await;
}

fn fail(server: &Server, shared: &Arc<ClientShared>, reason: ClosedState) {
    shared.close(reason);
    // Logs "Client connection closed: ..." and keeps it for /connz?state=closed.
    server.unregister(shared, &[]);
}

// ------------------------------------------------------------ routes

/// A route connection after its handshake.
pub type RouteStream = tokio_rustls::TlsStream<TcpStream>;

/// Accept side of a route handshake (right after the TCP accept).
pub async fn route_accept(tls: &RouteTls, stream: TcpStream, tag: &str) -> Option<RouteStream> {
    debug!("{tag} - Starting TLS route server handshake");
    let timeout_text = io_timeout(&stream);
    let r = tokio::time::timeout(tls.timeout, tls.acceptor.accept(stream)).await;
    route_handshake_result(tag, &timeout_text, r).map(|s| {
        route_handshake_done(tag, s.get_ref().1);
        tokio_rustls::TlsStream::Server(s)
    })
}

/// Log a failed route handshake (error or timeout) as nats-server does.
fn route_handshake_result<S>(
    tag: &str,
    timeout_text: &str,
    r: Result<std::io::Result<S>, tokio::time::error::Elapsed>,
) -> Option<S> {
    match r {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            error!("{tag} - TLS route handshake error: {e}");
            None
        }
        Err(_) => {
            error!("{tag} - TLS route handshake error: {timeout_text}");
            None
        }
    }
}

/// Dial side of a route handshake: the peer's certificate must be valid for
/// the URL's host (an IP address is checked against the IP SANs).
pub async fn route_connect(
    tls: &RouteTls,
    host: &str,
    stream: TcpStream,
    tag: &str,
) -> Option<RouteStream> {
    debug!("{tag} - Starting TLS route client handshake");
    let name = match ServerName::try_from(host.to_string()) {
        Ok(n) => n,
        Err(e) => {
            error!("{tag} - TLS route handshake error: invalid server name {host:?}: {e}");
            return None;
        }
    };
    let timeout_text = io_timeout(&stream);
    let r = tokio::time::timeout(tls.timeout, tls.connector.connect(name, stream)).await;
    route_handshake_result(tag, &timeout_text, r).map(|s| {
        route_handshake_done(tag, s.get_ref().1);
        tokio_rustls::TlsStream::Client(s)
    })
}

fn route_handshake_done(tag: &str, conn: &rustls::CommonState) {
    debug!("{tag} - TLS handshake complete");
    debug!(
        "{tag} - TLS version {}, cipher suite {}",
        version_name(conn.protocol_version()),
        suite_name(conn.negotiated_cipher_suite())
    );
}

// ------------------------------------------------------------ startup

/// The notices nats-server logs about client TLS once the port is up.
pub fn log_client_tls(opts: &crate::options::Options) {
    let Some(t) = &opts.tls else {
        return;
    };
    // TLS first without a fallback always requires the handshake, which
    // overrides allow_non_tls.
    let first_only = t.handshake_first && t.handshake_first_fallback.is_zero();
    if opts.allow_non_tls && !first_only {
        tracing::info!("TLS available for client connections");
    } else {
        tracing::info!("TLS required for client connections");
    }
    if first_only {
        tracing::warn!(
            "Clients that are not using \"TLS Handshake First\" option will fail to connect"
        );
    }
}

/// Start the https monitor if `https`/`https_port` is set; returns the
/// bound address.
pub async fn start_https(
    server: &Arc<Server>,
    opts: &crate::options::Options,
    monitor: Arc<crate::monitor::Monitor>,
) -> Result<Option<SocketAddr>> {
    let Some(port) = opts.https_port else {
        return Ok(None);
    };
    if let Some(http) = opts.http_port {
        bail!("can't specify both HTTP ({http}) and HTTPs ({port}) ports");
    }
    let (Some(acceptor), Some(t)) = (server.tls().monitor, opts.tls.as_ref()) else {
        bail!("TLS cert and key required for HTTPS");
    };
    let host = opts.monitor_host();
    let addr = crate::server::join_host_port(host, port);
    let listener = crate::listener::bind(&addr)
        .await
        .with_context(|| format!("can't listen to the monitor port: {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        "Starting https monitor on {}",
        crate::server::join_host_port(host, local.port())
    );
    let listener = HttpsListener::new(listener, acceptor, t.timeout)?;
    tokio::spawn(async move {
        if let Err(e) = crate::monitor::serve_on(monitor, listener).await {
            error!("Error starting monitor: {e:#}");
        }
    });
    Ok(Some(local))
}

// ------------------------------------------------------------ https monitor

/// An axum listener that hands out connections once their TLS handshake is
/// done. Handshakes run in their own tasks so a slow client cannot hold up
/// the others.
pub struct HttpsListener {
    local: SocketAddr,
    rx: tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpsListener {
    pub fn new(
        listener: tokio::net::TcpListener,
        acceptor: TlsAcceptor,
        timeout: Duration,
    ) -> Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (stream, addr) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        error!("Temporary monitor accept error ({e}), sleeping 10ms");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => {
                            let _ = tx.send((s, addr)).await;
                        }
                        Ok(Err(e)) => debug!("{addr} - https monitor TLS handshake error: {e}"),
                        Err(_) => debug!("{addr} - https monitor TLS handshake timeout"),
                    }
                });
            }
        });
        Ok(HttpsListener { local, rx, task })
    }
}

impl Drop for HttpsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept task only ends when aborted, on drop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_below_tls12() {
        let d = TlsOptions::default();
        let v: Vec<_> = versions(&d).iter().map(|v| v.version).collect();
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
        let v: Vec<_> = versions(&t13).iter().map(|v| v.version).collect();
        assert_eq!(v, vec![rustls::ProtocolVersion::TLSv1_3]);
    }

    #[test]
    fn cipher_and_curve_names() {
        assert_eq!(
            classify_cipher("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            SuiteName::Supported
        );
        assert_eq!(
            classify_cipher("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
            SuiteName::Unavailable
        );
        assert_eq!(
            classify_cipher("TLS_RSA_WITH_RC4_128_SHA"),
            SuiteName::Insecure
        );
        assert_eq!(classify_cipher("NOPE"), SuiteName::Unknown);
        assert_eq!(classify_curve("X25519"), Some(true));
        assert_eq!(classify_curve("CurveP521"), Some(false));
        assert_eq!(classify_curve("P-256"), None);
    }

    #[test]
    fn provider_filters_tls12_suites_and_groups() {
        let o = TlsOptions {
            cipher_suites: vec![
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".into(),
                "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA".into(),
            ],
            curve_preferences: vec!["CurveP384".into(), "CurveP521".into(), "X25519".into()],
            ..Default::default()
        };
        let p = provider(&o).unwrap();
        let names: Vec<String> = p
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert!(names.iter().filter(|n| n.starts_with("TLS13_")).count() == 3);
        assert_eq!(
            names
                .iter()
                .filter(|n| !n.starts_with("TLS13_"))
                .collect::<Vec<_>>(),
            vec!["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]
        );
        let groups: Vec<String> = p
            .kx_groups
            .iter()
            .map(|g| format!("{:?}", g.name()))
            .collect();
        assert_eq!(groups, vec!["secp384r1", "X25519"]);
    }

    #[test]
    fn missing_files_are_reported() {
        let o = TlsOptions {
            cert_file: Some("/nonexistent/cert.pem".into()),
            key_file: Some("/nonexistent/key.pem".into()),
            ..Default::default()
        };
        let e = check_server_block(&o).unwrap_err().to_string();
        assert!(
            e.starts_with("error parsing X509 certificate/key pair"),
            "{e}"
        );
        let o = TlsOptions {
            cert_file: Some("/x".into()),
            ..Default::default()
        };
        assert_eq!(
            check_server_block(&o).unwrap_err().to_string(),
            "missing 'key_file' in TLS configuration"
        );
    }
}
