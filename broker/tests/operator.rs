//! Operator mode (decentralized JWT auth) against nats-server: the same
//! config (`operator`, `system_account`, `resolver: MEMORY`,
//! `resolver_preload`) on both servers, users with `.creds` files made here
//! with nkeys and the JWT encoder, and every answer compared byte for byte.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::creds::write_creds;
use common::raw::{sign_nonce, RawConn, CLOSED};
use common::ServerSpec;
use futures::StreamExt;
use nkeys::KeyPair;
use tribune_auth::jwt::{
    self, AccountClaims, OperatorClaims, Permission, SigningKey, UserClaims, UserPermissionLimits,
    UserScope,
};

/// Keys and JWTs of one operator, its accounts and their users.
struct World {
    dir: tempfile::TempDir,
    operator_jwt: String,
    sys: KeyPair,
    preload: Vec<(String, String)>,
    /// Account A (signed by the operator); alice may use `a.>` only.
    alice: User,
    /// Account B, whose user bob is signed by B's signing key.
    bob: User,
    b_key: String,
    revoked: User,
    expired: User,
    /// Names A as its account but is signed by a key A does not list.
    forged: User,
    /// Signed by an account the resolver does not know.
    orphan: User,
    bearer: User,
    /// Signed by B's scoped key: its template allows `b.<name>.>` only.
    scoped: User,
    /// At most one subscription and 4-byte payloads.
    limited: User,
    /// Account A's key, to sign short-lived users when they are needed.
    a: KeyPair,
    /// Account C allows one connection.
    c_user: User,
}

struct User {
    key: KeyPair,
    jwt: String,
    creds: PathBuf,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let (op, operator_jwt, sys) = common::creds::operator_with_system_account();

        let (a, b, c) = (
            KeyPair::new_account(),
            KeyPair::new_account(),
            KeyPair::new_account(),
        );
        let b_signer = KeyPair::new_account();
        let b_scoped = KeyPair::new_account();
        let now = jwt::now_unix();
        let user = |name: &str, signer: &KeyPair, edit: &dyn Fn(&mut UserClaims)| {
            let key = KeyPair::new_user();
            let mut uc = UserClaims::new(&key.public_key(), "");
            uc.std.name = name.into();
            edit(&mut uc);
            let token = jwt::encode(&mut uc, signer).unwrap();
            let creds = dir.path().join(format!("{name}.creds"));
            write_creds(&creds, &token, &key);
            User {
                key,
                jwt: token,
                creds,
            }
        };
        let alice = user("alice", &a, &|u| {
            u.nats.pub_.allow = vec!["a.>".into(), "_BARRIER.>".into()];
            u.nats.sub.allow = vec!["a.>".into(), "_BARRIER.>".into()];
        });
        let b_key = b.public_key();
        let bob = user("bob", &b_signer, &|u| u.nats.issuer_account = b_key.clone());
        let revoked = user("revoked", &a, &|_| {});
        let expired = user("expired", &a, &|u| u.std.exp = now - 60);
        let a_key = a.public_key();
        let forged = user("forged", &KeyPair::new_account(), &|u| {
            u.nats.issuer_account = a_key.clone()
        });
        let orphan = user("orphan", &KeyPair::new_account(), &|_| {});
        let bearer = user("bearer", &a, &|u| u.nats.bearer_token = true);
        let c_user = user("carol", &c, &|_| {});
        // As nsc writes a scoped user: no limits at all, not even -1.
        let scoped = user("scoped", &b_scoped, &|u| {
            u.nats.issuer_account = b_key.clone();
            (u.nats.subs, u.nats.data, u.nats.payload) = (0, 0, 0);
        });
        let limited = user("limited", &a, &|u| {
            u.nats.subs = 1;
            u.nats.payload = 4;
        });

        let account = |kp: &KeyPair, edit: &dyn Fn(&mut AccountClaims)| {
            let mut ac = AccountClaims::new(&kp.public_key());
            edit(&mut ac);
            (kp.public_key(), jwt::encode(&mut ac, &op).unwrap())
        };
        let revoked_key = revoked.key.public_key();
        let preload = vec![
            account(&sys, &|ac| ac.std.name = "SYS".into()),
            account(&a, &|ac| {
                ac.std.name = "A".into();
                // Revoked from a minute on: its JWT was issued before.
                ac.nats.revocations.insert(revoked_key.clone(), now + 60);
            }),
            account(&b, &|ac| {
                ac.std.name = "B".into();
                ac.nats.signing_keys = vec![
                    SigningKey::Plain(b_signer.public_key()),
                    SigningKey::Scoped(Box::new(UserScope {
                        kind: "user_scope".into(),
                        key: b_scoped.public_key(),
                        role: "team".into(),
                        template: UserPermissionLimits {
                            pub_: Permission {
                                allow: vec!["b.{{name()}}.>".into()],
                                deny: vec![],
                            },
                            subs: -1,
                            data: -1,
                            payload: -1,
                            ..Default::default()
                        },
                    })),
                ];
            }),
            account(&c, &|ac| {
                ac.std.name = "C".into();
                ac.nats.limits.conn = 1;
            }),
        ];
        World {
            dir,
            operator_jwt,
            sys,
            preload,
            alice,
            bob,
            b_key: b.public_key(),
            revoked,
            expired,
            forged,
            orphan,
            bearer,
            scoped,
            limited,
            c_user,
            a,
        }
    }

    fn config(&self) -> String {
        let op_path = self.dir.path().join("op.jwt");
        std::fs::write(&op_path, &self.operator_jwt).unwrap();
        let mut s = format!(
            "operator: {:?}\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n",
            op_path,
            self.sys.public_key()
        );
        for (key, token) in &self.preload {
            s.push_str(&format!("  {key}: {token}\n"));
        }
        s.push_str("}\n");
        s
    }
}

/// What a raw login gets back: the lines up to `PONG`, or the close.
fn login(port: u16, token: &str, signer: Option<&KeyPair>, then: &str) -> Vec<String> {
    let mut c = RawConn::open(port);
    let sig = signer
        .map(|k| format!(r#","sig":"{}""#, sign_nonce(k, &c.nonce())))
        .unwrap_or_default();
    c.send(&format!(
        "CONNECT {{\"verbose\":false,\"protocol\":1,\"jwt\":\"{token}\"{sig}}}\r\n{then}PING\r\n"
    ));
    c.until_pong()
}

#[test]
fn logins_answer_like_nats_server() {
    let w = World::new();
    let mut recorded = Vec::new();
    for (label, bin) in common::both_servers() {
        let server = ServerSpec::new(bin).config(w.config()).start().unwrap();
        let port = server.port;
        let info = RawConn::open(port).info;
        assert!(
            info["nonce"].as_str().is_some_and(|n| !n.is_empty()),
            "{label}: a nonce to sign"
        );
        assert_eq!(info["auth_required"], true, "{label}");
        let stranger = KeyPair::new_user();
        let cases: Vec<(&str, Vec<String>)> = vec![
            ("valid", login(port, &w.alice.jwt, Some(&w.alice.key), "")),
            (
                "signing-key user",
                login(port, &w.bob.jwt, Some(&w.bob.key), ""),
            ),
            (
                "wrong signature",
                login(port, &w.alice.jwt, Some(&stranger), ""),
            ),
            ("no signature", login(port, &w.alice.jwt, None, "")),
            (
                "unknown account",
                login(port, &w.orphan.jwt, Some(&w.orphan.key), ""),
            ),
            (
                "revoked",
                login(port, &w.revoked.jwt, Some(&w.revoked.key), ""),
            ),
            (
                "expired",
                login(port, &w.expired.jwt, Some(&w.expired.key), ""),
            ),
            (
                "not a signing key",
                login(port, &w.forged.jwt, Some(&w.forged.key), ""),
            ),
            ("bearer", login(port, &w.bearer.jwt, None, "")),
            ("garbage jwt", login(port, "eyJnotajwt", None, "")),
            (
                "publish denied",
                login(
                    port,
                    &w.alice.jwt,
                    Some(&w.alice.key),
                    "PUB b.x 2\r\nhi\r\n",
                ),
            ),
            (
                "scoped key template",
                login(
                    port,
                    &w.scoped.jwt,
                    Some(&w.scoped.key),
                    "PUB b.scoped.x 2\r\nhi\r\nPUB b.other.x 2\r\nhi\r\n",
                ),
            ),
            (
                "subscription limit",
                login(
                    port,
                    &w.limited.jwt,
                    Some(&w.limited.key),
                    "SUB a.1 1\r\nSUB a.2 2\r\n",
                ),
            ),
            (
                "payload limit",
                login(
                    port,
                    &w.limited.jwt,
                    Some(&w.limited.key),
                    "PUB a.x 10\r\n0123456789\r\n",
                ),
            ),
            (
                "subscribe denied",
                login(port, &w.alice.jwt, Some(&w.alice.key), "SUB b.> 1\r\n"),
            ),
        ];
        // The account's connection limit: the second one is refused.
        let mut first = RawConn::open(port);
        first.send(&format!(
            "CONNECT {{\"verbose\":false,\"jwt\":\"{}\",\"sig\":\"{}\"}}\r\n",
            w.c_user.jwt,
            sign_nonce(&w.c_user.key, &first.nonce())
        ));
        assert_eq!(first.ping(), ["PONG\r\n"], "{label}: first of C");
        let second = login(port, &w.c_user.jwt, Some(&w.c_user.key), "");
        let mut cases = cases;
        cases.push(("account connection limit", second));
        drop(first);
        // A connection ends when its user JWT expires (in a second or two).
        let short_key = KeyPair::new_user();
        let mut uc = UserClaims::new(&short_key.public_key(), "");
        uc.std.exp = jwt::now_unix() + 2;
        let short_jwt = jwt::encode(&mut uc, &w.a).unwrap();
        let mut short = RawConn::open(port);
        short.send(&format!(
            "CONNECT {{\"verbose\":false,\"jwt\":\"{short_jwt}\",\"sig\":\"{}\"}}\r\nPING\r\n",
            sign_nonce(&short_key, &short.nonce())
        ));
        let mut lines = short.until_pong();
        lines.extend(short.until_pong());
        lines.retain(|l| l != "PING\r\n");
        cases.push(("user expires", lines));
        recorded.push((label, cases));
    }
    let (_, reference) = &recorded[0];
    let (_, ours) = &recorded[1];
    for ((case, want), (_, got)) in reference.iter().zip(ours) {
        assert_eq!(got, want, "{case}: tribune vs nats-server");
    }
    // What nats-server answered, so a change there shows here.
    let want_violation = ["-ERR 'Authorization Violation'\r\n", CLOSED];
    for (case, lines) in reference {
        match *case {
            "user expires" => assert_eq!(
                lines,
                &["PONG\r\n", "-ERR 'User Authentication Expired'\r\n", CLOSED],
                "{case}"
            ),
            "scoped key template" => assert_eq!(
                lines,
                &[
                    "-ERR 'Permissions Violation for Publish to \"b.other.x\"'\r\n",
                    "PONG\r\n"
                ],
                "{case}"
            ),
            "subscription limit" => assert_eq!(
                lines,
                &["-ERR 'maximum subscriptions exceeded'\r\n", "PONG\r\n"],
                "{case}"
            ),
            "payload limit" => assert_eq!(
                lines,
                &["-ERR 'Maximum Payload Violation'\r\n", CLOSED],
                "{case}"
            ),
            "valid" | "signing-key user" | "bearer" => {
                assert_eq!(lines, &["PONG\r\n"], "{case}")
            }
            "publish denied" => assert_eq!(
                lines,
                &[
                    "-ERR 'Permissions Violation for Publish to \"b.x\"'\r\n",
                    "PONG\r\n"
                ],
                "{case}"
            ),
            "subscribe denied" => assert_eq!(
                lines,
                &[
                    "-ERR 'Permissions Violation for Subscription to \"b.>\"'\r\n",
                    "PONG\r\n"
                ],
                "{case}"
            ),
            "account connection limit" => assert_eq!(
                lines,
                &[
                    "-ERR 'maximum account active connections exceeded'\r\n",
                    CLOSED
                ],
                "{case}"
            ),
            _ => assert_eq!(lines, &want_violation, "{case}"),
        }
    }
}

/// Real clients with `.creds` files: pub/sub works inside an account and
/// nothing crosses into another.
#[tokio::test]
async fn creds_files_and_account_isolation() {
    let w = World::new();
    for (label, bin) in common::both_servers() {
        let server = ServerSpec::new(bin)
            .args(["-m", "-1"])
            .config(w.config())
            .start()
            .unwrap();
        let url = server.client_url();
        let connect = |creds: PathBuf| {
            let url = url.clone();
            async move {
                async_nats::ConnectOptions::with_credentials_file(creds)
                    .await
                    .unwrap()
                    .connect(url)
                    .await
            }
        };
        let alice = connect(w.alice.creds.clone()).await.unwrap();
        let alice2 = connect(w.alice.creds.clone()).await.unwrap();
        let bob = connect(w.bob.creds.clone()).await.unwrap();
        let mut sub = alice.subscribe("a.news").await.unwrap();
        let mut bob_sub = bob.subscribe("a.news").await.unwrap();
        common::barrier(&alice).await;
        common::barrier(&bob).await;
        alice2.publish("a.news", "hello".into()).await.unwrap();
        let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap_or_else(|_| panic!("{label}: alice's message arrives"))
            .unwrap();
        assert_eq!(&msg.payload[..], b"hello", "{label}");
        // Bob is in another account: the same subject is another subject.
        bob.publish("a.news", "from b".into()).await.unwrap();
        common::barrier(&bob).await;
        common::barrier(&alice2).await;
        common::barrier(&alice).await;
        let got = tokio::time::timeout(Duration::from_millis(200), sub.next()).await;
        assert!(got.is_err(), "{label}: bob's message stayed in B");
        let own = bob_sub.next().await.unwrap();
        assert_eq!(&own.payload[..], b"from b", "{label}: bob got alice's?");
        // The account is named by its public key, and the user by its own.
        let monitor = server.addr_of("monitoring").unwrap().parse().unwrap();
        let connz = common::cluster::get_json(monitor, "/connz?auth=true")
            .await
            .unwrap();
        let conns = connz["connections"].as_array().unwrap();
        let bob_conn = conns
            .iter()
            .find(|c| c["authorized_user"] == w.bob.key.public_key().as_str())
            .unwrap_or_else(|| panic!("{label}: bob in /connz: {connz}"));
        assert_eq!(bob_conn["account"], w.b_key.as_str(), "{label}");
        // Refused users get an error from the client too.
        for creds in [&w.expired.creds, &w.revoked.creds, &w.forged.creds] {
            assert!(
                connect(creds.clone()).await.is_err(),
                "{label}: {creds:?} refused"
            );
        }
    }
}

/// JetStream is on for an account whose JWT grants storage, and off for
/// one whose JWT does not. nats-server answers the latter's API requests
/// with an error (10039, "jetstream not enabled for account"); Tribune has
/// no API there at all, so its clients see no responders. Either way the
/// account has no JetStream.
#[tokio::test]
async fn jetstream_follows_the_account_jwt() {
    let dir = tempfile::tempdir().unwrap();
    let op = KeyPair::new_operator();
    let mut oc = OperatorClaims::new(&op.public_key());
    let operator_jwt = jwt::encode(&mut oc, &op).unwrap();
    let (sys, with_js, without_js) = (
        KeyPair::new_account(),
        KeyPair::new_account(),
        KeyPair::new_account(),
    );
    let mut preload = String::new();
    for (acc, js) in [(&sys, false), (&with_js, true), (&without_js, false)] {
        let mut ac = AccountClaims::new(&acc.public_key());
        if js {
            ac.nats.limits.jetstream.mem_storage = -1;
            ac.nats.limits.jetstream.disk_storage = -1;
        }
        let token = jwt::encode(&mut ac, &op).unwrap();
        preload.push_str(&format!("  {}: {token}\n", acc.public_key()));
    }
    let creds = |acc: &KeyPair, name: &str| {
        let key = KeyPair::new_user();
        let mut uc = UserClaims::new(&key.public_key(), "");
        let token = jwt::encode(&mut uc, acc).unwrap();
        let path = dir.path().join(format!("{name}.creds"));
        write_creds(&path, &token, &key);
        path
    };
    let (js_creds, plain_creds) = (creds(&with_js, "js"), creds(&without_js, "plain"));
    for (label, bin) in common::both_servers() {
        let store = dir.path().join(format!("js-{label}"));
        let config = format!(
            "operator: {operator_jwt}\nsystem_account: {}\nresolver: MEMORY\n\
             resolver_preload: {{\n{preload}}}\njetstream {{ store_dir: {:?} }}\n",
            sys.public_key(),
            store
        );
        let server = ServerSpec::new(bin).config(config).start().unwrap();
        let connect = |path: PathBuf| {
            let url = server.client_url();
            async move {
                async_nats::ConnectOptions::with_credentials_file(path)
                    .await
                    .unwrap()
                    .connect(url)
                    .await
                    .unwrap()
            }
        };
        let js_client = connect(js_creds.clone()).await;
        let info = js_client
            .request("$JS.API.INFO", "".into())
            .await
            .unwrap_or_else(|e| panic!("{label}: JetStream answers the JWT account: {e}"));
        let v: serde_json::Value = serde_json::from_slice(&info.payload).unwrap();
        assert_eq!(v["type"], "io.nats.jetstream.api.v1.account_info_response");
        assert!(v.get("error").is_none(), "{label}: {v}");
        let plain = connect(plain_creds.clone()).await;
        match plain.request("$JS.API.INFO", "".into()).await {
            Err(_) => {}
            Ok(msg) => {
                let v: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
                assert_eq!(v["error"]["err_code"], 10039, "{label}: {v}");
            }
        }
    }
}

/// An account JWT's `exp` ends its users' connections, with nats-server's
/// `Account Authentication Expired`.
#[test]
fn account_expiry_closes_its_connections() {
    let op = KeyPair::new_operator();
    let mut oc = OperatorClaims::new(&op.public_key());
    let operator_jwt = jwt::encode(&mut oc, &op).unwrap();
    let mut recorded = Vec::new();
    for (label, bin) in common::both_servers() {
        // Made per server, so each gets the same few seconds.
        let acc = KeyPair::new_account();
        let mut ac = AccountClaims::new(&acc.public_key());
        ac.std.exp = jwt::now_unix() + 3;
        let account_jwt = jwt::encode(&mut ac, &op).unwrap();
        let user = KeyPair::new_user();
        let mut uc = UserClaims::new(&user.public_key(), "");
        let user_jwt = jwt::encode(&mut uc, &acc).unwrap();
        let config = format!(
            "operator: {operator_jwt}\nresolver: MEMORY\nresolver_preload: {{ {}: {account_jwt} }}\n",
            acc.public_key()
        );
        let server = ServerSpec::new(bin).config(config).start().unwrap();
        let mut c = RawConn::open(server.port);
        c.send(&format!(
            "CONNECT {{\"verbose\":false,\"jwt\":\"{user_jwt}\",\"sig\":\"{}\"}}\r\nPING\r\n",
            sign_nonce(&user, &c.nonce())
        ));
        let mut lines = c.until_pong();
        lines.extend(c.until_pong());
        // The server's own early PING (nats-server measures the RTT) may
        // come before the expiry; it is not what this test is about.
        lines.retain(|l| l != "PING\r\n");
        recorded.push((label, lines));
    }
    assert_eq!(
        recorded[0].1,
        [
            "PONG\r\n",
            "-ERR 'Account Authentication Expired'\r\n",
            CLOSED
        ],
        "nats-server"
    );
    assert_eq!(recorded[1].1, recorded[0].1, "tribune vs nats-server");
}
