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
        // A user JWT with no permissions: the account's defaults apply.
        "no_perms" => ok(user_jwt(user, "APP", &|uc| {
            uc.nats.pub_.allow.clear();
            uc.nats.sub.allow.clear();
        })),
        "wrong_type" => ok(user_jwt(user, "APP", &|uc| {
            uc.nats.kind = "activation".into()
        })),
        "ws_only" => ok(user_jwt(user, "APP", &|uc| {
            uc.nats.allowed_connection_types = vec!["WEBSOCKET".into()]
        })),
        "standard" => ok(user_jwt(user, "APP", &|uc| {
            uc.nats.allowed_connection_types = vec!["standard".into(), "FUTURE".into()]
        })),
        "bogus_type" => ok(user_jwt(user, "APP", &|uc| {
            uc.nats.allowed_connection_types = vec!["FOO".into()]
        })),
        "bearer" => ok(user_jwt(user, "APP", &|uc| uc.nats.bearer_token = true)),
        "subs0" => ok(user_jwt(user, "APP", &|uc| uc.nats.subs = 0)),
        "subs2" => ok(user_jwt(user, "APP", &|uc| uc.nats.subs = 2)),
        "subs_many" => ok(user_jwt(user, "APP", &|uc| uc.nats.subs = 1000)),
        "garbage" => return Some("not a jwt".into()),
        "silent" => return None,
        _ => AuthorizationResponseClaims::error(user, server, "unknown test user"),
    };
    Some(jwt::encode(&mut resp, issuer).unwrap())
}

/// The server's `max_subscriptions` in these tests.
const MAX_SUBS: usize = 3;

fn config(issuer: &str, xkey: Option<&str>) -> String {
    let xkey = xkey.map(|k| format!("xkey: {k}")).unwrap_or_default();
    format!(
        r#"
max_subscriptions: {MAX_SUBS}
accounts {{
  AUTH {{ users: [ {{ user: auth, password: pwd }} ] }}
  APP {{ default_permissions: {{ publish: {{ deny: "secret.>" }} }} }}
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callout_plaintext() {
    for (label, bin) in common::both_servers() {
        scenario(label, bin, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callout_sealed_with_xkey() {
    for (label, bin) in common::both_servers() {
        scenario(label, bin, true).await;
    }
}

/// What the user JWT says beyond permissions: its type, the connection
/// types it allows, bearer_token, limits; and the account's default
/// permissions for a JWT that has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callout_user_jwt_claims() {
    for (label, bin) in common::both_servers() {
        let issuer = KeyPair::new_account();
        let server = ServerSpec::new(bin)
            .config(config(&issuer.public_key(), None))
            .start()
            .unwrap();
        let url = server.client_url();
        let _seen = serve(&url, issuer, None).await;
        let tribune = label == "tribune";

        // Refused by both: a JWT that is not a user JWT, and one that
        // allows only connection types no server knows.
        for name in ["wrong_type", "bogus_type"] {
            refused(&url, name, label, &server).await;
        }
        // nats-server reads allowed_connection_types from a callout's JWT
        // but does not hold the connection to them; Tribune does, so a
        // WebSocket-only user cannot log in over TCP.
        if tribune {
            refused(&url, "ws_only", label, &server).await;
        } else {
            user("ws_only").connect(&url).await.unwrap();
        }
        // A list with STANDARD in it (and a type from the future) is fine;
        // bearer_token changes nothing for a callout user, who signs no
        // nonce either way.
        for name in ["standard", "bearer"] {
            user(name)
                .connect(&url)
                .await
                .unwrap_or_else(|e| panic!("{label}: {name}: {e}"));
        }

        // No permissions in the JWT: APP's default_permissions apply, as
        // nats-server's buildInternalNkeyUser means them to. nats-server
        // 2.15 in config mode loses an account's defaults when it copies the
        // parsed accounts at start (`shallowCopy` leaves them out), so its
        // callout users get full access; Tribune applies them.
        let mut raw = common::raw::RawConn::open(server.port);
        raw.send(r#"CONNECT {"verbose":false,"user":"no_perms","pass":"web-token"}"#)
            .send("\r\nPUB secret.x 1\r\nx\r\nPUB open.x 1\r\ny\r\n");
        let violation = "-ERR 'Permissions Violation for Publish to \"secret.x\"'\r\n";
        let want: &[&str] = if tribune {
            &[violation, "PONG\r\n"]
        } else {
            &["PONG\r\n"]
        };
        assert_eq!(raw.ping(), want, "{label}");

        // Subscriptions: the tighter of the server's max_subscriptions and
        // the JWT's `subs` (where 0 means none, -1 no limit). nats-server
        // ignores a callout JWT's limits (only the server's apply); Tribune
        // holds the user to the JWT too, and never lets it raise the
        // server's limit.
        let too_many = "-ERR 'maximum subscriptions exceeded'\r\n";
        for (name, allowed_tribune) in [("subs0", 0), ("subs2", 2), ("subs_many", MAX_SUBS)] {
            let allowed = if tribune { allowed_tribune } else { MAX_SUBS };
            let mut raw = common::raw::RawConn::open(server.port);
            raw.send(&format!(
                r#"CONNECT {{"verbose":false,"user":"{name}","pass":"web-token"}}"#
            ))
            .send("\r\n");
            for sid in 1..=MAX_SUBS + 1 {
                raw.send(&format!("SUB allowed.{sid} {sid}\r\n"));
            }
            let mut want = vec![too_many; MAX_SUBS + 1 - allowed];
            want.push("PONG\r\n");
            assert_eq!(raw.ping(), want, "{label}: {name}");
        }
    }
}

/// Review item 12: auth_users must be users the server knows. nats-server
/// logs an unknown one and starts; with no local users it then says
/// `auth_required: false`, sets no auth timeout and serves SUB and PUB
/// before any CONNECT (it does send the claimed auth user to the callout,
/// so that name alone does not get in). Tribune refuses to start.
#[test]
fn auth_users_must_exist() {
    let issuer = KeyPair::new_account().public_key();
    let conf = format!(
        "accounts {{ AUTH {{}} }}\nauthorization {{ auth_callout {{ issuer: {issuer}, account: AUTH, auth_users: [ svc ] }} }}\n"
    );
    let nats = ServerSpec::new(common::nats_server_bin())
        .config(conf.clone())
        .start()
        .unwrap();
    let mut raw = common::raw::RawConn::open(nats.port);
    assert!(
        raw.info.get("auth_required").is_none(),
        "nats-server: no auth required"
    );
    raw.send("SUB foo 1\r\n");
    assert_eq!(
        raw.ping(),
        ["+OK\r\n", "PONG\r\n"],
        "nats-server: served before CONNECT"
    );

    let err = ServerSpec::new(common::tribune_bin(env!("CARGO_BIN_EXE_tribune-broker")))
        .config(conf)
        .start()
        .err()
        .expect("tribune refuses the configuration");
    assert!(
        err.contains("Authorization callout user \"svc\" not valid"),
        "{err}"
    );
}

/// Config errors are worded as nats-server's, and reported by both.
#[test]
fn bad_callout_config_is_refused() {
    for (label, bin) in common::both_servers() {
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

/// WebSocket clients go through the same callout; credentials from the
/// `user_cookie`/`pass_cookie` cookies reach the service as CONNECT's user
/// and password, the request says the client is a websocket one, and a
/// user JWT's `allowed_connection_types` is checked against WEBSOCKET.
#[tokio::test]
async fn websocket_clients_use_the_callout_with_cookie_credentials() {
    for (label, bin) in common::both_servers() {
        let issuer = KeyPair::new_account();
        let cfg = config(&issuer.public_key(), None)
            + "websocket { host: 127.0.0.1, port: -1, no_tls: true, user_cookie: web_user, pass_cookie: web_pass }\n";
        let server = ServerSpec::new(bin).config(cfg).start().unwrap();
        let seen = serve(&server.client_url(), issuer, None).await;
        let addr = server.addr_of("websocket").expect("websocket listener");
        let outcome = |name: &'static str| {
            let addr = addr.clone();
            tokio::task::spawn_blocking(move || {
                let cookie = format!("Cookie: web_user={name}; web_pass=web-token\r\n");
                let mut c = common::ws::open(&addr, &cookie);
                c.info();
                c.send_proto("CONNECT {\"verbose\":false}\r\nPING\r\n");
                c.until_close_or_pong()
            })
        };
        assert_eq!(outcome("good").await.unwrap(), "PONG\r\n", "{label}");
        {
            let reqs = seen.lock().unwrap();
            let r = reqs.last().expect("a request was made");
            assert_eq!(r.nats.connect_opts.user, "good", "{label}");
            assert_eq!(r.nats.connect_opts.pass, "web-token", "{label}");
            assert_eq!(r.nats.client_info.client_type, "websocket", "{label}");
            assert_eq!(r.nats.client_info.kind, "Client", "{label}");
        }
        assert_eq!(outcome("ws_only").await.unwrap(), "PONG\r\n", "{label}");
        // As over TCP (see above), nats-server does not hold a callout
        // user to the JWT's allowed_connection_types; Tribune does.
        let standard_only = outcome("standard").await.unwrap();
        if label == "tribune" {
            assert_eq!(
                standard_only, "-ERR 'Authorization Violation'\r\n",
                "{label}: a JWT for STANDARD clients only"
            );
            refused(&server.client_url(), "ws_only", label, &server).await;
        } else {
            assert_eq!(standard_only, "PONG\r\n", "{label}");
        }
    }
}
