//! One callout, several web applications: the token's audience chooses the
//! application, and with it the account the user lands in and the
//! permissions it gets. Two accounts, WEB (the implicit application of
//! `callout.account`) and PARTNERS (an `[[apps]]` entry), both import the
//! live subjects from SPORTS and have subjects of their own. A token is
//! admitted into exactly one of them or refused: one naming both
//! applications, or neither, gets in nowhere. A SIGHUP that removes an
//! application shuts its tokens out. Against nats-server and tribune-broker,
//! each with the real tribune-auth.

mod common;

use std::path::Path;
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, Event, Subscriber};
use futures::StreamExt;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use nkeys::KeyPair;
use serde_json::{json, Value};

use common::{free_port, http_get, now, poll_until, start_auth, start_server, Flavor, Proc};

const ISS: &str = "https://idp.test";
const WEB_AUD: &str = "scores-web";
const PARTNERS_AUD: &str = "partners-web";
const SECRET: &str = "apps-test-hs256-secret-0123456789abcdef";
/// How long a message that must arrive may take on a loaded machine.
const DELIVERY_WAIT: Duration = Duration::from_secs(15);
/// How long we watch for a message that must not arrive.
const QUIET_WAIT: Duration = Duration::from_millis(500);

/// The `[[apps]]` part of the tribune-auth config: the partners portal.
const PARTNERS_APP: &str = r#"
[[apps]]
name = "partners"
account = "PARTNERS"
audiences = ["partners-web"]
[apps.permissions]
static_subscribe = ["partners.news.>"]
read_streams = ["SPORTS"]
user_inboxes = true
[[apps.permissions.claims]]
claim = "sports"
subject = "sports.{value}.>"
"#;

struct Env {
    flavor: Flavor,
    dir: tempfile::TempDir,
    port: u16,
    metrics: u16,
    server: Proc,
    auth: Proc,
}

fn auth_config(dir: &Path, port: u16, metrics: u16, apps: &str) -> String {
    format!(
        r#"
[nats]
servers = ["nats://127.0.0.1:{port}"]
user = "auth"
password = {{ value = "authpwd" }}

[callout]
issuer_seed = {{ file = "{issuer}" }}
account = "WEB"

[token]
issuers = ["{ISS}"]
audiences = ["{WEB_AUD}"]
hs256_secret = {{ env = "APPS_TEST_HS" }}

[permissions]
static_subscribe = ["web.news.>"]
[[permissions.claims]]
claim = "sports"
subject = "sports.{{value}}.>"

[metrics]
listen = "127.0.0.1:{metrics}"
{apps}
"#,
        issuer = dir.join("issuer.nk").display()
    )
}

impl Env {
    fn start(flavor: Flavor) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let issuer = KeyPair::new_account();
        let port = free_port();
        let metrics = free_port();
        let conf = format!(
            r#"
listen: "127.0.0.1:{port}"
server_name: apps_test
accounts {{
  SPORTS {{
    users: [ {{ user: feed, password: feedpwd }} ]
    exports: [ {{ stream: "sports.>" }} ]
  }}
  AUTH {{ users: [ {{ user: auth, password: authpwd }} ] }}
  WEB {{
    users: [ {{ user: webpub, password: webpubpwd }} ]
    imports: [ {{ stream: {{ account: SPORTS, subject: "sports.>" }} }} ]
  }}
  PARTNERS {{
    users: [ {{ user: partnerpub, password: partnerpubpwd }} ]
    imports: [ {{ stream: {{ account: SPORTS, subject: "sports.>" }} }} ]
  }}
  SYS {{}}
}}
system_account: SYS
authorization {{
  timeout: 2
  auth_callout {{
    issuer: "{pk}"
    account: AUTH
    auth_users: [ auth, feed, webpub, partnerpub ]
  }}
}}
"#,
            pk = issuer.public_key()
        );
        let server = start_server(&flavor.bin(), dir.path(), &conf, port);
        std::fs::write(dir.path().join("issuer.nk"), issuer.seed().unwrap()).unwrap();
        let auth_path = dir.path().join("auth.toml");
        std::fs::write(
            &auth_path,
            auth_config(dir.path(), port, metrics, PARTNERS_APP),
        )
        .unwrap();
        let auth = start_auth(dir.path(), &auth_path, &[("APPS_TEST_HS", SECRET)], metrics);
        Env {
            flavor,
            dir,
            port,
            metrics,
            server,
            auth,
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn logs(&self) -> String {
        format!(
            "--- {:?} ---\n{}\n--- tribune-auth ---\n{}",
            self.flavor,
            self.server.log_text(),
            self.auth.log_text()
        )
    }

    /// The value of the metric line starting with `key` (0 if absent).
    fn metric(&self, key: &str) -> u64 {
        http_get(self.metrics, "/metrics")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    async fn user(&self, name: &str, password: &str) -> async_nats::Client {
        ConnectOptions::new()
            .user_and_password(name.into(), password.into())
            .connect(self.url())
            .await
            .unwrap_or_else(|e| panic!("{name} refused: {e}\n{}", self.logs()))
    }

    /// A web user with a token for `aud`, and the events its connection sees.
    async fn web_user(
        &self,
        aud: Value,
    ) -> Result<
        (
            async_nats::Client,
            tokio::sync::mpsc::UnboundedReceiver<String>,
        ),
        async_nats::ConnectError,
    > {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let c = ConnectOptions::new()
            .token(token(aud))
            .connection_timeout(Duration::from_secs(10))
            .max_reconnects(0)
            .event_callback(move |ev: Event| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(ev.to_string());
                }
            })
            .connect(self.url())
            .await?;
        Ok((c, rx))
    }

    async fn admitted(
        &self,
        what: &str,
        aud: Value,
    ) -> (
        async_nats::Client,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ) {
        self.web_user(aud)
            .await
            .unwrap_or_else(|e| panic!("{what}: refused: {e}\n{}", self.logs()))
    }

    async fn refused(&self, what: &str, aud: Value) {
        match self.web_user(aud).await {
            Ok(_) => panic!("{what}: admitted\n{}", self.logs()),
            Err(e) => assert_eq!(
                e.kind(),
                ConnectErrorKind::AuthorizationViolation,
                "{what}: {e}\n{}",
                self.logs()
            ),
        }
    }
}

fn token(aud: Value) -> String {
    let c =
        json!({"sub": "alice", "iss": ISS, "aud": aud, "exp": now() + 300, "sports": ["football"]});
    encode(
        &Header::new(Algorithm::HS256),
        &c,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// What a publisher in the other account sends; it must never arrive.
const FOREIGN: &str = "from the other account";

/// Publish `payload` on `subject` from `from` until `sub` receives it (the
/// server may register the subscription after a first publish). Repeats of
/// earlier payloads are skipped; [`FOREIGN`] fails the test.
async fn until_received(
    sub: &mut Subscriber,
    from: &async_nats::Client,
    subject: &str,
    payload: &str,
) {
    let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
    while tokio::time::Instant::now() < deadline {
        from.publish(subject.to_string(), payload.to_string().into())
            .await
            .unwrap();
        from.flush().await.unwrap();
        let round = tokio::time::Instant::now() + Duration::from_millis(200);
        while let Ok(Some(m)) = tokio::time::timeout_at(round, sub.next()).await {
            let got = String::from_utf8_lossy(&m.payload);
            assert_ne!(
                got, FOREIGN,
                "a message from the other account on {}",
                m.subject
            );
            if got == payload {
                return;
            }
        }
    }
    panic!("{payload:?} on {subject} never arrived");
}

/// [`FOREIGN`] does not arrive on `sub` for a while.
async fn no_foreign(sub: &mut Subscriber) {
    let until = tokio::time::Instant::now() + QUIET_WAIT;
    while let Ok(Some(m)) = tokio::time::timeout_at(until, sub.next()).await {
        assert_ne!(
            String::from_utf8_lossy(&m.payload),
            FOREIGN,
            "a message from the other account on {}",
            m.subject
        );
    }
}

async fn expect_event(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) if ev.contains(needle) => return,
            Ok(Some(_)) => continue,
            _ => panic!("no event containing {needle:?}"),
        }
    }
}

/// The user of `client` is in the account of `own` (a user of that account)
/// and not in the account of `other`: both publish on `subject`, which the
/// user may subscribe to, and only `own`'s message arrives.
async fn in_account_of(
    client: &async_nats::Client,
    own: &async_nats::Client,
    other: &async_nats::Client,
    subject: &str,
) {
    let mut sub = client.subscribe(subject.to_string()).await.unwrap();
    until_received(&mut sub, own, subject, "own account, 1").await;
    other
        .publish(subject.to_string(), FOREIGN.into())
        .await
        .unwrap();
    other.flush().await.unwrap();
    until_received(&mut sub, own, subject, "own account, 2").await;
    no_foreign(&mut sub).await;
}

async fn scenario(flavor: Flavor) {
    let env = Env::start(flavor);
    let feed = env.user("feed", "feedpwd").await;
    let webpub = env.user("webpub", "webpubpwd").await;
    let partnerpub = env.user("partnerpub", "partnerpubpwd").await;

    // --- aud of the implicit app: in WEB, with WEB's permissions.
    let (web, mut web_events) = env.admitted("WEB token", json!(WEB_AUD)).await;
    in_account_of(&web, &webpub, &partnerpub, "sports.football.1").await;
    in_account_of(&web, &webpub, &partnerpub, "web.news.today").await;
    // The shared feed reaches it through WEB's import.
    let mut live = web.subscribe("sports.football.>").await.unwrap();
    until_received(&mut live, &feed, "sports.football.9", "from the feed").await;
    // Not PARTNERS' permissions: no partners subjects, no direct get.
    let _s = web.subscribe("partners.news.>").await.unwrap();
    web.flush().await.unwrap();
    expect_event(
        &mut web_events,
        "Permissions Violation for Subscription to \"partners.news.>\"",
    )
    .await;
    web.publish("$JS.API.DIRECT.GET.SPORTS", "{}".into())
        .await
        .unwrap();
    web.flush().await.unwrap();
    expect_event(
        &mut web_events,
        "Permissions Violation for Publish to \"$JS.API.DIRECT.GET.SPORTS\"",
    )
    .await;

    // --- aud of the partners app (as an array, RFC 7519): in PARTNERS, with its permissions.
    let (partner, mut partner_events) = env
        .admitted("PARTNERS token", json!([PARTNERS_AUD, "some-other-api"]))
        .await;
    in_account_of(&partner, &partnerpub, &webpub, "sports.football.1").await;
    in_account_of(&partner, &partnerpub, &webpub, "partners.news.today").await;
    let mut live = partner.subscribe("sports.football.>").await.unwrap();
    until_received(&mut live, &feed, "sports.football.9", "from the feed").await;
    // Its one publish subject goes to PARTNERS: a PARTNERS user sees it.
    let mut direct = partnerpub
        .subscribe("$JS.API.DIRECT.GET.SPORTS")
        .await
        .unwrap();
    until_received(&mut direct, &partner, "$JS.API.DIRECT.GET.SPORTS", "{}").await;
    let _s = partner.subscribe("web.news.>").await.unwrap();
    partner.flush().await.unwrap();
    expect_event(
        &mut partner_events,
        "Permissions Violation for Subscription to \"web.news.>\"",
    )
    .await;

    // --- Both apps at once, or neither: refused.
    env.refused("aud naming both apps", json!([WEB_AUD, PARTNERS_AUD]))
        .await;
    env.refused("unknown aud", json!("someone-else")).await;

    // --- Per-app metrics and logs.
    let app = |app: &str, result: &str| {
        env.metric(&format!(
            "tribune_auth_app_requests_total{{app=\"{app}\",result=\"{result}\"}} "
        ))
    };
    assert_eq!(app("default", "allow"), 1, "{}", env.logs());
    assert_eq!(app("partners", "allow"), 1, "{}", env.logs());
    assert_eq!(app("partners", "deny"), 0);
    assert_eq!(
        env.metric("tribune_auth_rejections_total{result=\"deny\",reason=\"ambiguous_audience\"} "),
        1
    );
    assert_eq!(
        env.metric("tribune_auth_rejections_total{result=\"deny\",reason=\"wrong_audience\"} "),
        1
    );
    assert_eq!(
        env.metric("tribune_auth_requests_total{result=\"allow\"} "),
        2
    );
    let log = env.auth.log_text();
    assert!(
        log.contains("app=\"partners\"") || log.contains("app=partners"),
        "{log}"
    );
    assert!(
        log.contains("account=\"PARTNERS\"") || log.contains("account=PARTNERS"),
        "{log}"
    );

    // --- Reload without the partners app: its tokens are refused, WEB's still admitted.
    let auth_path = env.dir.path().join("auth.toml");
    std::fs::write(
        &auth_path,
        auth_config(env.dir.path(), env.port, env.metrics, ""),
    )
    .unwrap();
    env.auth.signal("-HUP");
    poll_until("the reload", || {
        env.metric("tribune_auth_config_reloads_total{result=\"ok\"} ") == 1
    })
    .await;
    env.refused(
        "PARTNERS token after its app was removed",
        json!(PARTNERS_AUD),
    )
    .await;
    env.admitted("WEB token after the reload", json!(WEB_AUD))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_on_nats_server() {
    scenario(Flavor::NatsServer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_on_tribune() {
    scenario(Flavor::Tribune).await;
}
