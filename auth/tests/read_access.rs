//! What a web user may do with `read_streams` and `user_inboxes`, as the
//! live-scores page uses them: read the last message of every subject of
//! the sports stream with one batch direct get (imported from the account
//! that holds the stream, `response_type: stream`), on a reply prefix of its
//! own, and follow the live subjects; and nothing else: no other publish, no
//! other JetStream API, no other user's inbox. Against nats-server and
//! tribune-broker, each with the real tribune-auth.

mod common;

use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, Event, HeaderMap};
use futures::StreamExt;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use nkeys::KeyPair;
use serde_json::json;
use sha2::{Digest, Sha256};

use common::{free_port, now, start_auth, start_server, Flavor, Proc};

const ISS: &str = "https://idp.test";
const AUD: &str = "tribune-web";
const SECRET: &str = "read-access-test-hs256-secret-0123456789";

struct Env {
    flavor: Flavor,
    _dir: tempfile::TempDir,
    port: u16,
    server: Proc,
    auth: Proc,
}

impl Env {
    fn start(flavor: Flavor) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let issuer = KeyPair::new_account();
        let port = free_port();
        let metrics = free_port();
        let store = dir.path().join("js");
        let conf = format!(
            r#"
listen: "127.0.0.1:{port}"
server_name: read_access
jetstream {{ store_dir: "{store}" }}
accounts {{
  SPORTS {{
    jetstream: enabled
    users: [ {{ user: feed, password: feedpwd }} ]
    exports: [
      {{ stream: "sports.>" }}
      {{ service: "$JS.API.DIRECT.GET.SPORTS", response_type: stream }}
    ]
  }}
  AUTH {{ users: [ {{ user: auth, password: authpwd }} ] }}
  APP {{
    imports: [
      {{ stream: {{ account: SPORTS, subject: "sports.>" }} }}
      {{ service: {{ account: SPORTS, subject: "$JS.API.DIRECT.GET.SPORTS" }} }}
    ]
  }}
  SYS {{}}
}}
system_account: SYS
authorization {{
  timeout: 2
  auth_callout {{ issuer: "{pk}", account: AUTH, auth_users: [ auth, feed ] }}
}}
"#,
            store = store.display(),
            pk = issuer.public_key()
        );
        let server = start_server(&flavor.bin(), dir.path(), &conf, port);

        std::fs::write(dir.path().join("issuer.nk"), issuer.seed().unwrap()).unwrap();
        let auth_conf = format!(
            r#"
[nats]
servers = ["nats://127.0.0.1:{port}"]
user = "auth"
password = {{ value = "authpwd" }}
[callout]
issuer_seed = {{ file = "{issuer}" }}
account = "APP"
[token]
issuers = ["{ISS}"]
audiences = ["{AUD}"]
hs256_secret = {{ env = "READ_ACCESS_HS" }}
[permissions]
read_streams = ["SPORTS"]
user_inboxes = true
[[permissions.claims]]
claim = "sports"
subject = "sports.{{value}}.>"
[metrics]
listen = "127.0.0.1:{metrics}"
"#,
            issuer = dir.path().join("issuer.nk").display()
        );
        let auth_path = dir.path().join("auth.toml");
        std::fs::write(&auth_path, auth_conf).unwrap();
        let auth = start_auth(
            dir.path(),
            &auth_path,
            &[("READ_ACCESS_HS", SECRET)],
            metrics,
        );
        Env {
            flavor,
            _dir: dir,
            port,
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
}

fn token(sub: Option<&str>, sports: &[&str]) -> String {
    let mut c = json!({"iss": ISS, "aud": AUD, "exp": now() + 300, "sports": sports});
    if let Some(s) = sub {
        c["sub"] = json!(s);
    }
    encode(
        &Header::new(Algorithm::HS256),
        &c,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// tribune-auth's private inbox id for (`ISS`, `sub`), computed independently.
fn inbox_prefix(sub: &str) -> String {
    let d = Sha256::digest(format!("{ISS}\n{sub}").as_bytes());
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("_INBOX.{hex}")
}

/// A web user's connection and the events (permission violations) it sees.
async fn web_user(
    env: &Env,
    sub: &str,
    sports: &[&str],
) -> (
    async_nats::Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let c = ConnectOptions::new()
        .token(token(Some(sub), sports))
        .custom_inbox_prefix(inbox_prefix(sub))
        .max_reconnects(0)
        .event_callback(move |ev: Event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(ev.to_string());
            }
        })
        .connect(env.url())
        .await
        .unwrap_or_else(|e| panic!("web user refused: {e}\n{}", env.logs()));
    (c, rx)
}

async fn expect_violation(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) if ev.contains(needle) => return,
            Ok(Some(_)) => continue,
            _ => panic!("no event containing {needle:?}"),
        }
    }
}

/// One batch direct get: the data messages' (subject, payload), and the
/// status that ended the answer.
async fn last_per_subject(
    c: &async_nats::Client,
    filter: &str,
) -> (Vec<(String, String)>, Option<u16>) {
    let inbox = c.new_inbox();
    let mut replies = c.subscribe(inbox.clone()).await.unwrap();
    let body = json!({"multi_last": [filter], "batch": 100}).to_string();
    c.publish_with_reply("$JS.API.DIRECT.GET.SPORTS", inbox, body.into())
        .await
        .unwrap();
    let mut out = Vec::new();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await
            .expect("direct get answer")
            .unwrap();
        if let Some(status) = m.status {
            return (out, Some(status.as_u16()));
        }
        let h: &HeaderMap = m.headers.as_ref().expect("direct get headers");
        let subject = h.get("Nats-Subject").unwrap().to_string();
        out.push((subject, String::from_utf8_lossy(&m.payload).into_owned()));
    }
}

async fn scenario(flavor: Flavor) {
    let env = Env::start(flavor);
    let feed = ConnectOptions::new()
        .user_and_password("feed".into(), "feedpwd".into())
        .connect(env.url())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(feed);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "SPORTS".into(),
        subjects: vec!["sports.>".into()],
        allow_direct: true,
        ..Default::default()
    })
    .await
    .unwrap();
    for (subject, body) in [
        ("sports.football.1", "f1 rev1"),
        ("sports.football.2", "f2 rev1"),
        ("sports.tennis.7", "t7 rev1"),
        ("sports.football.1", "f1 rev2"),
    ] {
        js.publish(subject, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    let (web, mut events) = web_user(&env, "alice", &["football"]).await;

    // The current state of every football match, in one answer.
    let (msgs, end) = last_per_subject(&web, "sports.football.*").await;
    assert_eq!(
        msgs,
        vec![
            ("sports.football.2".to_string(), "f2 rev1".to_string()),
            ("sports.football.1".to_string(), "f1 rev2".to_string()),
        ],
        "{}",
        env.logs()
    );
    assert_eq!(end, Some(204), "ends with EOB");

    // Then live.
    let mut live = web.subscribe("sports.football.*").await.unwrap();
    // async-nats' flush only writes; a read is a round trip through the
    // server, which takes this connection's operations in order, so after it
    // the subscription is in place (the page reads after subscribing too).
    last_per_subject(&web, "sports.football.*").await;
    js.publish("sports.football.2", "f2 rev2".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(10), live.next())
        .await
        .unwrap_or_else(|_| panic!("no live update\n{}", env.logs()))
        .unwrap();
    assert_eq!(&m.payload[..], b"f2 rev2");

    // Nothing else.
    for subject in [
        "sports.football.1",
        "$JS.API.CONSUMER.CREATE.SPORTS",
        "$JS.API.STREAM.INFO.SPORTS",
        "$JS.API.DIRECT.GET.OTHER",
        "$JS.API.STREAM.MSG.GET.SPORTS",
    ] {
        web.publish(subject, "{}".into()).await.unwrap();
        web.flush().await.unwrap();
        expect_violation(
            &mut events,
            &format!("Permissions Violation for Publish to \"{subject}\""),
        )
        .await;
    }
    for subject in [
        "_INBOX.>".to_string(),
        format!("{}.>", inbox_prefix("bob")),
        "sports.tennis.*".into(),
    ] {
        let _s = web.subscribe(subject.clone()).await.unwrap();
        web.flush().await.unwrap();
        expect_violation(
            &mut events,
            &format!("Permissions Violation for Subscription to \"{subject}\""),
        )
        .await;
    }

    // A token without `sub` has no private inbox to give: refused.
    let e = ConnectOptions::new()
        .token(token(None, &["football"]))
        .max_reconnects(0)
        .connect(env.url())
        .await
        .expect_err("token without sub");
    assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_access_on_nats_server() {
    scenario(Flavor::NatsServer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_access_on_tribune() {
    scenario(Flavor::Tribune).await;
}
