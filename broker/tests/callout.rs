//! Auth callout edge cases, with a hand-rolled callout service (async-nats
//! plus the NATS JWT code) that can answer wrongly on purpose. Every case
//! runs against nats-server first (proving the expectation) and then
//! tribune-broker. The real `tribune-auth` service is exercised against both
//! servers in `auth/tests/callout.rs`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ServerSpec;
use futures::StreamExt;
use nkeys::{KeyPair, XKey};
use tribune_auth::jwt::{
    self, AuthorizationRequestClaims, AuthorizationResponseClaims, UserClaims,
};

const DEADLINE: Duration = Duration::from_secs(20);

/// How the fake service answers, chosen by the connecting user's name.
fn answer(req: &AuthorizationRequestClaims, issuer: &KeyPair) -> Option<String> {
    let user = &req.nats.user_nkey;
    let server = &req.nats.server_id.id;
    let name = req.nats.connect_opts.user.as_str();
    let user_jwt = |subject: &str, account: &str, tweak: &dyn Fn(&mut UserClaims)| {
        let mut uc = UserClaims::new(subject, account);
        uc.nats.sub.allow = vec!["allowed.>".into(), "_INBOX.>".into()];
        uc.nats.pub_.allow = vec!["allowed.>".into()];
        tweak(&mut uc);
        jwt::encode(&mut uc, issuer).unwrap()
    };
    let ok = |user_jwt: String| AuthorizationResponseClaims::ok(user, server, user_jwt);
    let mut resp = match name {
        "good" => ok(user_jwt(user, "APP", &|_| {})),
        "named" => ok(user_jwt(user, "APP", &|uc| uc.std.name = "alice".into())),
        "expiring" => ok(user_jwt(user, "APP", &|uc| {
            uc.std.exp = jwt::now_unix() + 2
        })),
        "denied" => AuthorizationResponseClaims::error(user, server, "not today"),
        "other_user" => {
            let other = KeyPair::new_user().public_key();
            ok(user_jwt(&other, "APP", &|_| {}))
        }
        "wrong_response_user" => AuthorizationResponseClaims::ok(
            &KeyPair::new_user().public_key(),
            server,
            user_jwt(user, "APP", &|_| {}),
        ),
        "wrong_server" => {
            AuthorizationResponseClaims::ok(user, "NSOMEONEELSE", user_jwt(user, "APP", &|_| {}))
        }
        "no_account" => ok(user_jwt(user, "NOPE", &|_| {})),
        "expired_user" => ok(user_jwt(user, "APP", &|uc| {
            uc.std.exp = jwt::now_unix() - 60
        })),
        "forged_user" => {
            let mut uc = UserClaims::new(user, "APP");
            ok(jwt::encode(&mut uc, &KeyPair::new_account()).unwrap())
        }
        "garbage" => return Some("not a jwt".into()),
        "silent" => return None,
        _ => AuthorizationResponseClaims::error(user, server, "unknown test user"),
    };
    Some(jwt::encode(&mut resp, issuer).unwrap())
}

fn config(issuer: &str, xkey: Option<&str>) -> String {
    let xkey = xkey.map(|k| format!("xkey: {k}")).unwrap_or_default();
    format!(
        r#"
accounts {{
  AUTH {{ users: [ {{ user: auth, password: pwd }} ] }}
  APP {{}}
}}
authorization {{
  timeout: 2
  auth_callout {{
    issuer: {issuer}
    account: AUTH
    auth_users: [ auth ]
    {xkey}
  }}
}}
"#
    )
}

/// Serve the callout until the connection drops. Returns the requests seen.
async fn serve(
    url: &str,
    issuer: KeyPair,
    xkey: Option<XKey>,
) -> Arc<Mutex<Vec<AuthorizationRequestClaims>>> {
    let nc = async_nats::ConnectOptions::with_user_and_password("auth".into(), "pwd".into())
        .connect(url)
        .await
        .expect("auth user connects without the callout");
    let mut sub = nc.subscribe("$SYS.REQ.USER.AUTH").await.unwrap();
    common::barrier(&nc).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let Some(reply) = m.reply.clone() else {
                continue;
            };
            let (token, server_xkey) = match &xkey {
                None => (m.payload.to_vec(), None),
                Some(x) => {
                    let server_xkey = m
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("Nats-Server-Xkey"))
                        .map(|v| v.to_string())
                        .expect("sealed request names the server xkey");
                    let sender = XKey::from_public_key(&server_xkey).unwrap();
                    (
                        x.open(&m.payload, &sender).expect("request opens"),
                        Some(sender),
                    )
                }
            };
            let req: AuthorizationRequestClaims =
                jwt::decode_verified(std::str::from_utf8(&token).unwrap()).unwrap();
            let out = answer(&req, &issuer);
            log.lock().unwrap().push(req);
            let Some(out) = out else { continue };
            let body = match (&xkey, server_xkey) {
                (Some(x), Some(s)) => x.seal(out.as_bytes(), &s).unwrap(),
                _ => out.into_bytes(),
            };
            nc.publish(reply, body.into()).await.unwrap();
        }
    });
    seen
}

fn user(name: &str) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::with_user_and_password(name.into(), "web-token".into())
        .connection_timeout(Duration::from_secs(10))
        .max_reconnects(Some(0))
}

async fn refused(url: &str, name: &str, label: &str, server: &common::Server) {
    match user(name).connect(url).await {
        Ok(_) => panic!("{label}: {name} was admitted\n{}", server.log_excerpt()),
        Err(e) => assert_eq!(
            e.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation,
            "{label}: {name}: {e}"
        ),
    }
}

async fn scenario(label: &str, bin: std::path::PathBuf, encrypted: bool) {
    let issuer = KeyPair::new_account();
    let service_xkey = encrypted.then(XKey::new);
    let server = ServerSpec::new(bin)
        .config(config(
            &issuer.public_key(),
            service_xkey.as_ref().map(|x| x.public_key()).as_deref(),
        ))
        .start()
        .unwrap();
    let url = server.client_url();
    let seen = serve(&url, issuer, service_xkey).await;

    // Admitted, into APP, with exactly the JWT's permissions.
    let good = user("good")
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{label}: good user refused: {e}\n{}", server.log_excerpt()));
    let mut sub = good.subscribe("allowed.x").await.unwrap();
    good.publish("allowed.x", "hi".into()).await.unwrap();
    let m = tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("own message")
        .unwrap();
    assert_eq!(&m.payload[..], b"hi", "{label}");
    {
        let reqs = seen.lock().unwrap();
        let r = reqs.last().expect("a request was made");
        assert_eq!(r.std.aud, "nats-authorization-request", "{label}");
        assert_eq!(r.nats.connect_opts.user, "good", "{label}");
        assert_eq!(r.nats.connect_opts.pass, "web-token", "{label}");
        assert_eq!(r.nats.client_info.user, "good", "{label}");
        assert_eq!(r.nats.client_info.kind, "Client", "{label}");
        assert_eq!(r.nats.kind, "authorization_request", "{label}");
        assert!(r.std.exp > 0, "{label}: the request expires");
        assert_eq!(
            r.nats.server_id.xkey.is_empty(),
            !encrypted,
            "{label}: the server names its xkey only when sealing"
        );
        assert!(
            KeyPair::from_public_key(&r.nats.user_nkey).is_ok(),
            "{label}"
        );
    }

    // An APP user may not publish outside its permissions; web users in
    // other accounts never see AUTH's subjects.
    let (tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let limited = user("named")
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e.to_string());
            }
        })
        .connect(&url)
        .await
        .unwrap();
    limited.publish("forbidden", "x".into()).await.unwrap();
    limited.flush().await.unwrap();
    let e = tokio::time::timeout(DEADLINE, async {
        while let Some(e) = errors.recv().await {
            if e.contains("Permissions Violation") {
                return e;
            }
        }
        String::new()
    })
    .await
    .expect("a permissions error");
    assert!(
        e.contains("Permissions Violation for Publish to \"forbidden\""),
        "{label}: {e}"
    );

    for name in [
        "denied",
        "other_user",
        "wrong_response_user",
        "wrong_server",
        "no_account",
        "expired_user",
        "forged_user",
        "garbage",
        "silent",
    ] {
        refused(&url, name, label, &server).await;
    }

    // A user JWT that expires ends the connection when it does.
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let _expiring = user("expiring")
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e.to_string());
            }
        })
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{label}: expiring user refused: {e}"));
    let closed = tokio::time::timeout(DEADLINE, async {
        while let Some(e) = events.recv().await {
            if e.to_lowercase().contains("authentication expired") {
                return e;
            }
        }
        String::new()
    })
    .await
    .unwrap_or_else(|_| panic!("{label}: no expiry\n{}", server.log_excerpt()));
    assert!(!closed.is_empty(), "{label}");
}

fn binaries() -> Vec<(&'static str, std::path::PathBuf)> {
    vec![
        ("nats-server", common::nats_server_bin()),
        (
            "tribune",
            common::tribune_bin(env!("CARGO_BIN_EXE_tribune-broker")),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callout_plaintext() {
    for (label, bin) in binaries() {
        scenario(label, bin, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callout_sealed_with_xkey() {
    for (label, bin) in binaries() {
        scenario(label, bin, true).await;
    }
}

/// Config errors are worded as nats-server's, and reported by both.
#[test]
fn bad_callout_config_is_refused() {
    for (label, bin) in binaries() {
        let user = KeyPair::new_user().public_key();
        let err = ServerSpec::new(bin)
            .config(format!(
                "authorization {{ users: [{{user: a, password: b}}]\n auth_callout {{ issuer: {user}, auth_users: [a] }} }}"
            ))
            .start()
            .err()
            .unwrap_or_else(|| panic!("{label}: started with a user key as issuer"));
        assert!(
            err.contains("Expected callout user to be a valid public account nkey"),
            "{label}: {err}"
        );
    }
}
