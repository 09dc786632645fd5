//! The bad-credentials table: every way a login can be wrong, as raw
//! protocol against nats-server and tribune-broker. Both must answer each
//! with the same bytes, an `Authorization Violation` and a closed
//! connection, and never with another identity: a `no_auth_user` in another
//! account is configured throughout, so a fallback to it would show as a
//! `PONG`. Wrong auth-callout answers (expired, forged, for another server
//! or user, of the wrong type) are in `callout.rs`.
//!
//! Also here: a flood of wrong bcrypt passwords from clients that never
//! authenticate must not stall an authenticated client's request/reply.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::raw::{sign_nonce, RawConn, CLOSED};
use common::ServerSpec;
use futures::StreamExt;

const VIOLATION: &str = "-ERR 'Authorization Violation'\r\n";

/// Builds a CONNECT argument for a connection (which may sign its nonce).
type ConnectLine<'a> = Box<dyn FnOnce(&RawConn) -> String + 'a>;

/// What one login attempt gets back: the lines up to `PONG` or the close.
fn attempt(port: u16, connect: impl FnOnce(&RawConn) -> String) -> Vec<String> {
    let mut c = RawConn::open(port);
    let line = connect(&c);
    c.send(&format!("CONNECT {line}\r\nPING\r\n"));
    c.until_pong()
}

/// Users of APP with every kind of credential, and an anonymous user in
/// OTHER that a failed login must never turn into.
fn users_conf(nkey: &str, bcrypt_hash: &str) -> String {
    format!(
        "accounts {{\n\
           APP: {{ users: [ {{user: hashed, password: \"{bcrypt_hash}\"}}, {{user: plain, password: plainpw}}, {{nkey: {nkey}}} ] }}\n\
           OTHER: {{ users: [ {{user: anon, password: x}} ] }}\n\
         }}\n\
         no_auth_user: anon\n"
    )
}

#[test]
fn bad_credentials_table() {
    let user = nkeys::KeyPair::new_user();
    let stranger = nkeys::KeyPair::new_user();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let nkey = user.public_key();
    let mut recorded = Vec::new();
    for (label, bin) in common::both_servers() {
        let server = ServerSpec::new(bin)
            .config(users_conf(&nkey, &hash))
            .start()
            .unwrap();
        let port = server.port;
        let signed_by = |kp: &nkeys::KeyPair, nonce: &str| {
            format!(
                r#"{{"verbose":false,"nkey":"{nkey}","sig":"{}"}}"#,
                sign_nonce(kp, nonce)
            )
        };
        // A signature made for another connection's nonce.
        let other = RawConn::open(port);
        let replayed = signed_by(&user, &other.nonce());
        let other_nonce = other.nonce();
        let cases: Vec<(&str, ConnectLine)> = vec![
            (
                "wrong password",
                Box::new(|_| r#"{"verbose":false,"user":"plain","pass":"nope"}"#.into()),
            ),
            (
                "wrong bcrypt password",
                Box::new(|_| r#"{"verbose":false,"user":"hashed","pass":"nope"}"#.into()),
            ),
            (
                "the bcrypt hash as the password",
                Box::new(|_| format!(r#"{{"verbose":false,"user":"hashed","pass":"{hash}"}}"#)),
            ),
            (
                "unknown user",
                Box::new(|_| r#"{"verbose":false,"user":"ghost","pass":"plainpw"}"#.into()),
            ),
            (
                "password without a user",
                Box::new(|_| r#"{"verbose":false,"pass":"plainpw"}"#.into()),
            ),
            (
                "token where users are configured",
                Box::new(|_| r#"{"verbose":false,"auth_token":"plainpw"}"#.into()),
            ),
            (
                "forged nkey signature",
                Box::new(|c| signed_by(&stranger, &c.nonce())),
            ),
            (
                "replayed nonce signature",
                Box::new(move |c| {
                    assert_ne!(
                        c.nonce(),
                        other_nonce,
                        "every connection gets its own nonce"
                    );
                    replayed
                }),
            ),
            (
                "garbage signature",
                Box::new(|_| format!(r#"{{"verbose":false,"nkey":"{nkey}","sig":"garbage"}}"#)),
            ),
            (
                "nkey without a signature",
                Box::new(|_| format!(r#"{{"verbose":false,"nkey":"{nkey}"}}"#)),
            ),
            (
                "unknown nkey, properly signed",
                Box::new(|c| {
                    format!(
                        r#"{{"verbose":false,"nkey":"{}","sig":"{}"}}"#,
                        stranger.public_key(),
                        sign_nonce(&stranger, &c.nonce())
                    )
                }),
            ),
        ];
        let mut outcomes = Vec::new();
        for (case, connect) in cases {
            let got = attempt(port, connect);
            assert_eq!(
                got,
                [VIOLATION, CLOSED],
                "{label}: {case}\n{}",
                server.log_excerpt()
            );
            outcomes.push((case, got));
        }

        // A second CONNECT as someone else, with a wrong password, ends the
        // connection; it does not keep the first identity either.
        let mut c = RawConn::open(port);
        c.send(r#"CONNECT {"verbose":false,"user":"plain","pass":"plainpw"}"#)
            .send("\r\n");
        assert_eq!(c.ping(), ["PONG\r\n"], "{label}: the first login");
        c.send(r#"CONNECT {"user":"hashed","pass":"nope"}"#)
            .send("\r\n");
        let second = c.ping();
        assert_eq!(second, [VIOLATION, CLOSED], "{label}: second CONNECT");
        outcomes.push(("second CONNECT as someone else", second));

        // The controls: each right credential, and none at all.
        for (case, line) in [
            (
                "right password",
                r#"{"verbose":false,"user":"plain","pass":"plainpw"}"#.to_string(),
            ),
            (
                "right bcrypt password",
                r#"{"verbose":false,"user":"hashed","pass":"s3cret"}"#.to_string(),
            ),
            (
                "no credentials: the no_auth_user",
                r#"{"verbose":false}"#.to_string(),
            ),
        ] {
            assert_eq!(attempt(port, |_| line), ["PONG\r\n"], "{label}: {case}");
        }
        assert_eq!(
            attempt(port, |c| signed_by(&user, &c.nonce())),
            ["PONG\r\n"],
            "{label}: right nkey signature"
        );
        recorded.push(outcomes);
    }
    assert_eq!(recorded[0], recorded[1], "the two servers answer alike");
}

/// A JWT sent to a server that is not in operator mode cannot be checked.
/// nats-server drops it and, with no other credential, makes the client the
/// `no_auth_user`; Tribune counts it as a credential that failed (stricter:
/// a client that meant to log in as someone is never silently anonymous).
#[test]
fn a_jwt_to_a_config_mode_server() {
    let user = nkeys::KeyPair::new_user();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let line =
        r#"{"verbose":false,"jwt":"eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.AAAA"}"#;
    for (label, bin) in common::both_servers() {
        let server = ServerSpec::new(bin)
            .config(users_conf(&user.public_key(), &hash))
            .start()
            .unwrap();
        let got = attempt(server.port, |_| line.to_string());
        let expected: &[&str] = if label == "nats-server" {
            &["PONG\r\n"]
        } else {
            &[VIOLATION, CLOSED]
        };
        assert_eq!(got, expected, "{label}");
    }
}

#[test]
fn bad_tokens() {
    for token in ["t0ken".to_string(), bcrypt::hash("t0ken", 4).unwrap()] {
        let mut recorded = Vec::new();
        for (label, bin) in common::both_servers() {
            let server = ServerSpec::new(bin)
                .config(format!("authorization {{ token: \"{token}\" }}\n"))
                .start()
                .unwrap();
            let mut outcomes = Vec::new();
            for (case, line) in [
                (
                    "wrong token",
                    r#"{"verbose":false,"auth_token":"t0ke"}"#.to_string(),
                ),
                ("no token", r#"{"verbose":false}"#.to_string()),
                (
                    "user and password",
                    r#"{"verbose":false,"user":"t0ken","pass":"t0ken"}"#.to_string(),
                ),
                (
                    "the configured text itself",
                    format!(r#"{{"verbose":false,"auth_token":"{token}"}}"#),
                ),
                (
                    "right token",
                    r#"{"verbose":false,"auth_token":"t0ken"}"#.to_string(),
                ),
            ] {
                let got = attempt(server.port, |_| line);
                let want: &[&str] = match case {
                    "right token" => &["PONG\r\n"],
                    "the configured text itself" if !token.starts_with('$') => &["PONG\r\n"],
                    _ => &[VIOLATION, CLOSED],
                };
                assert_eq!(got, want, "{label}: {case} ({token})");
                outcomes.push(got);
            }
            recorded.push(outcomes);
        }
        assert_eq!(recorded[0], recorded[1], "the two servers answer alike");
    }
}

/// Review item 8: bcrypt runs off the async runtime. While clients that
/// never authenticate flood the server with wrong bcrypt passwords, an
/// authenticated client's request/reply keeps working. The round-trip
/// times are printed for both servers (`--nocapture`), never asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_flood_does_not_stall_authenticated_clients() {
    let flooders: usize = std::env::var("AUTH_FLOOD_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let round_trips: usize = std::env::var("AUTH_FLOOD_ROUND_TRIPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    // Cost 8: about 20 ms of CPU a check, slow enough to matter.
    let hash = bcrypt::hash("right", 8).unwrap();
    for (label, bin) in common::both_servers() {
        let server = ServerSpec::new(bin)
            .config(format!(
                "authorization {{ timeout: 10, users: [ {{user: svc, password: svcpw}}, {{user: victim, password: \"{hash}\"}} ] }}\n"
            ))
            .start()
            .unwrap();
        let url = server.client_url();
        let client =
            async_nats::ConnectOptions::with_user_and_password("svc".into(), "svcpw".into())
                .connect(&url)
                .await
                .unwrap();
        let mut requests = client.subscribe("echo").await.unwrap();
        let responder = client.clone();
        tokio::spawn(async move {
            while let Some(m) = requests.next().await {
                if let Some(reply) = m.reply {
                    let _ = responder.publish(reply, m.payload).await;
                }
            }
        });
        common::barrier(&client).await;

        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicU64::new(0));
        let port = server.port;
        let flood: Vec<_> = (0..flooders)
            .map(|_| {
                let (stop, refused) = (stop.clone(), refused.clone());
                tokio::task::spawn_blocking(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let got = attempt(port, |_| {
                            r#"{"verbose":false,"user":"victim","pass":"wrong"}"#.into()
                        });
                        assert_eq!(got.last().map(String::as_str), Some(CLOSED), "{got:?}");
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        // Measure once the flood is under way.
        while refused.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut times = Vec::with_capacity(round_trips);
        for i in 0..round_trips {
            let t = Instant::now();
            let r = tokio::time::timeout(
                Duration::from_secs(30),
                client.request("echo", format!("{i}").into()),
            )
            .await
            .unwrap_or_else(|_| panic!("{label}: round trip {i} hung\n{}", server.log_excerpt()))
            .unwrap_or_else(|e| panic!("{label}: round trip {i}: {e}"));
            assert_eq!(r.payload, format!("{i}"), "{label}");
            times.push(t.elapsed());
        }
        stop.store(true, Ordering::Relaxed);
        for f in flood {
            f.await.unwrap();
        }
        times.sort();
        println!(
            "{label}: {} wrong logins refused meanwhile; round trip p50 {:?}, p99 {:?}, max {:?}",
            refused.load(Ordering::Relaxed),
            times[times.len() / 2],
            times[times.len() * 99 / 100],
            times[times.len() - 1]
        );
        // A right bcrypt password still gets in after the flood.
        let ok =
            async_nats::ConnectOptions::with_user_and_password("victim".into(), "right".into())
                .connect(&url)
                .await;
        assert!(ok.is_ok(), "{label}: {:?}", ok.err());
    }
}
