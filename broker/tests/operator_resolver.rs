//! The full account resolver (`resolver { type: full, dir }`) against
//! nats-server: account JWTs pushed over `$SYS.REQ.CLAIMS.UPDATE` as `nsc
//! push` sends them, looked up, listed, revoked and deleted, with the same
//! configuration on both servers and the answers compared.

mod common;

use std::time::Duration;

use common::operator::{ask, cluster_node, push_ok};
use common::raw::{sign_nonce, RawConn, CLOSED};
use common::ServerSpec;
use futures::StreamExt;
use nkeys::KeyPair;
use serde_json::Value;
use tribune_auth::jwt::{self, AccountClaims, OperatorClaims, UserClaims};

/// An operator, its system account with a user, and an application
/// account whose JWT the test pushes.
struct World {
    dir: tempfile::TempDir,
    op: KeyPair,
    operator_jwt: String,
    sys: KeyPair,
    sys_jwt: String,
    sys_user: std::path::PathBuf,
    app: KeyPair,
}

/// One user of the application account.
struct AppUser {
    key: KeyPair,
    jwt: String,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let (op, operator_jwt, sys) = common::creds::operator_with_system_account();
        let mut sc = AccountClaims::new(&sys.public_key());
        sc.std.name = "SYS".into();
        let sys_jwt = jwt::encode(&mut sc, &op).unwrap();
        let key = KeyPair::new_user();
        let mut uc = UserClaims::new(&key.public_key(), "");
        uc.std.name = "admin".into();
        let sys_user = dir.path().join("sys.creds");
        common::creds::write_creds(&sys_user, &jwt::encode(&mut uc, &sys).unwrap(), &key);
        World {
            dir,
            op,
            operator_jwt,
            sys,
            sys_jwt,
            sys_user,
            app: KeyPair::new_account(),
        }
    }

    /// The configuration both servers run: the system account preloaded,
    /// everything else pushed. `jwt_dir` is where the resolver keeps JWTs.
    fn config(&self, jwt_dir: &str, extra: &str) -> String {
        format!(
            "operator: {}\nsystem_account: {}\n\
             resolver: {{ type: full, dir: {jwt_dir:?}, allow_delete: true, interval: \"1s\" }}\n\
             resolver_preload: {{ {}: {} }}\n{extra}",
            self.operator_jwt,
            self.sys.public_key(),
            self.sys.public_key(),
            self.sys_jwt
        )
    }

    /// The application account's JWT, signed now.
    fn app_jwt(&self, edit: impl Fn(&mut AccountClaims)) -> String {
        let mut ac = AccountClaims::new(&self.app.public_key());
        ac.std.name = "APP".into();
        edit(&mut ac);
        jwt::encode(&mut ac, &self.op).unwrap()
    }

    fn app_user(&self) -> AppUser {
        let key = KeyPair::new_user();
        let mut uc = UserClaims::new(&key.public_key(), "");
        uc.std.name = "fan".into();
        let token = jwt::encode(&mut uc, &self.app).unwrap();
        AppUser { key, jwt: token }
    }

    async fn admin(&self, url: &str) -> async_nats::Client {
        async_nats::ConnectOptions::with_credentials_file(self.sys_user.clone())
            .await
            .unwrap()
            .connect(url)
            .await
            .unwrap()
    }

    /// An operator-signed request to delete `accounts`, as `nsc` sends it.
    fn delete_request(&self, accounts: &[String]) -> String {
        let mut oc = OperatorClaims::new(&self.op.public_key());
        let token = jwt::encode(&mut oc, &self.op).unwrap();
        let mut p: Value = jwt::decode_payload(&token).unwrap();
        p["nats"] = serde_json::json!({ "accounts": accounts, "type": "generic", "version": 2 });
        common::creds::sign_json(&p, &self.op)
    }
}

/// A raw login as `user`: the lines up to `PONG`, or the close.
fn login(port: u16, user: &AppUser) -> (RawConn, Vec<String>) {
    let mut c = RawConn::open(port);
    let sig = sign_nonce(&user.key, &c.nonce());
    c.send(&format!(
        "CONNECT {{\"verbose\":false,\"protocol\":1,\"jwt\":\"{}\",\"sig\":\"{sig}\"}}\r\nPING\r\n",
        user.jwt
    ));
    let lines = c.until_pong();
    (c, lines)
}

#[tokio::test]
async fn pushed_accounts_admit_their_users_until_revoked_or_deleted() {
    let w = World::new();
    let app = w.app.public_key();
    let mut recorded: Vec<(&str, Vec<(String, Value)>)> = Vec::new();
    for (label, bin) in common::both_servers() {
        let jwt_dir = w.dir.path().join(format!("jwt-{label}"));
        let config = w.config(jwt_dir.to_str().unwrap(), "");
        let server = ServerSpec::new(bin).config(config).start().unwrap();
        let admin = w.admin(&server.client_url()).await;
        let mut seen = Vec::new();
        let fan = w.app_user();

        // Unknown until pushed.
        let (_, refused) = login(server.port, &fan);
        assert_eq!(
            refused,
            ["-ERR 'Authorization Violation'\r\n", CLOSED],
            "{label}"
        );
        let lookup = format!("$SYS.REQ.ACCOUNT.{app}.CLAIMS.LOOKUP");
        seen.push((
            "lookup unknown".into(),
            ask(&admin, &lookup, String::new()).await,
        ));

        let first = w.app_jwt(|_| {});
        seen.push((
            "push".into(),
            ask(&admin, "$SYS.REQ.CLAIMS.UPDATE", first.clone()).await,
        ));
        let (mut conn, admitted) = login(server.port, &fan);
        assert_eq!(admitted, ["PONG\r\n"], "{label}: the pushed account's user");
        assert_eq!(
            ask(&admin, &lookup, String::new()).await,
            Value::String(first.clone()),
            "{label}: lookup answers the stored JWT"
        );
        let mut list = ask(&admin, "$SYS.REQ.CLAIMS.LIST", String::new()).await;
        list["data"]
            .as_array_mut()
            .unwrap()
            .sort_by_key(|v| v.as_str().map(str::to_string));
        seen.push(("list".into(), list));
        let mut want = vec![Value::from(app.clone()), Value::from(w.sys.public_key())];
        want.sort_by_key(|v| v.as_str().map(str::to_string));
        assert_eq!(
            seen.last().unwrap().1["data"],
            Value::Array(want),
            "{label}"
        );
        assert!(
            jwt_dir.join(format!("{app}.jwt")).exists(),
            "{label}: one file per account, named as nats-server names it"
        );

        // Refused pushes change nothing.
        seen.push((
            "push garbage".into(),
            ask(&admin, "$SYS.REQ.CLAIMS.UPDATE", "garbage".into()).await,
        ));
        seen.push((
            "push for another subject".into(),
            ask(
                &admin,
                &format!("$SYS.REQ.ACCOUNT.{}.CLAIMS.UPDATE", w.sys.public_key()),
                first.clone(),
            )
            .await,
        ));

        let too_many = w.app_jwt(|ac| {
            ac.nats.limits.exports = 0;
            ac.nats.limits.wildcards = false;
            ac.nats.exports = vec![tribune_auth::jwt::JwtExport {
                subject: "scores.>".into(),
                kind: "stream".into(),
                ..Default::default()
            }];
        });
        seen.push((
            "push beyond the account's own export limits".into(),
            ask(&admin, "$SYS.REQ.CLAIMS.UPDATE", too_many).await,
        ));

        // Revoking the user ends its connection at once.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let fan_key = fan.key.public_key();
        let revoking = w.app_jwt(|ac| {
            ac.nats.revocations.insert(fan_key.clone(), jwt::now_unix());
        });
        seen.push((
            "push revocation".into(),
            ask(
                &admin,
                &format!("$SYS.REQ.ACCOUNT.{app}.CLAIMS.UPDATE"),
                revoking,
            )
            .await,
        ));
        let mut ended = conn.until_pong();
        // The first PONG's connect INFO and the server's RTT PING may come first.
        ended.retain(|l| l != "PING\r\n" && !l.starts_with("INFO "));
        assert_eq!(
            ended,
            ["-ERR 'User Authentication Revoked'\r\n", CLOSED],
            "{label}: the revoked user's connection"
        );
        let (_, again) = login(server.port, &fan);
        assert_eq!(
            again,
            ["-ERR 'Authorization Violation'\r\n", CLOSED],
            "{label}"
        );
        let other = w.app_user();
        let (mut other_conn, ok) = login(server.port, &other);
        assert_eq!(ok, ["PONG\r\n"], "{label}: users not revoked still connect");

        // Deleting the account ends its connections and refuses its users.
        seen.push((
            "delete".into(),
            ask(
                &admin,
                "$SYS.REQ.CLAIMS.DELETE",
                w.delete_request(std::slice::from_ref(&app)),
            )
            .await,
        ));
        let mut ended = other_conn.until_pong();
        // The first PONG's connect INFO and the server's RTT PING may come first.
        ended.retain(|l| l != "PING\r\n" && !l.starts_with("INFO "));
        assert_eq!(
            ended,
            ["-ERR 'Account Authentication Expired'\r\n", CLOSED],
            "{label}: the deleted account's connection"
        );
        assert_eq!(
            ask(&admin, &lookup, String::new()).await,
            Value::Null,
            "{label}"
        );
        assert!(
            jwt_dir.join(format!("{app}.jwt.deleted")).exists(),
            "{label}"
        );
        seen.push((
            "delete the system account".into(),
            ask(
                &admin,
                "$SYS.REQ.CLAIMS.DELETE",
                w.delete_request(&[w.sys.public_key()]),
            )
            .await,
        ));
        recorded.push((label, seen));
    }
    let (_, reference) = &recorded[0];
    let (_, tribune) = &recorded[1];
    for ((what, want), (_, got)) in reference.iter().zip(tribune) {
        assert_eq!(got, want, "{what}: tribune vs nats-server");
    }
}

/// The JWTs pushed survive a restart, and a server that was down while an
/// account was pushed to its peer learns it from the peer within the sync
/// interval, without anyone pushing again.
#[tokio::test]
async fn a_restarted_server_catches_up_with_its_peer() {
    let w = World::new();
    for (label, bin) in common::both_servers() {
        let dirs = [
            w.dir.path().join(format!("{label}-n1")),
            w.dir.path().join(format!("{label}-n2")),
        ];
        let n1 = ServerSpec::new(&bin)
            .config(w.config(dirs[0].to_str().unwrap(), &cluster_node("n1", None)))
            .start()
            .unwrap();
        let route = n1.addr_of("cluster").expect("n1's route port");
        let n2_config = w.config(dirs[1].to_str().unwrap(), &cluster_node("n2", Some(&route)));
        let spec2 = ServerSpec::new(&bin).config(n2_config);
        let n2 = spec2.start().unwrap();
        let admin = w.admin(&n1.client_url()).await;
        let watcher = w.admin(&n2.client_url()).await;
        common::wait_for_route(&admin, &watcher).await;

        // One push reaches both servers.
        push_ok(&admin, w.app_jwt(|_| {}), label).await;
        let fan = w.app_user();
        let port2 = n2.port;
        poll_login(
            port2,
            &fan,
            &format!("{label}: n2 admits the pushed account"),
        )
        .await;
        drop(watcher);

        // n2 is down while the account changes.
        drop(n2);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let fan_key = fan.key.public_key();
        let revoking = w.app_jwt(|ac| {
            ac.nats.revocations.insert(fan_key.clone(), jwt::now_unix());
        });
        push_ok(&admin, revoking.clone(), label).await;
        let n2 = spec2.start().unwrap();
        let lookup = format!("$SYS.REQ.ACCOUNT.{}.CLAIMS.LOOKUP", w.app.public_key());
        let file = dirs[1].join(format!("{}.jwt", w.app.public_key()));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if std::fs::read_to_string(&file).is_ok_and(|t| t.trim() == revoking) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{label}: n2 never caught up\n{}",
                n2.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (_, refused) = login(n2.port, &fan);
        assert_eq!(
            refused,
            ["-ERR 'Authorization Violation'\r\n", CLOSED],
            "{label}: n2 applies the revocation it caught up with"
        );
        let _ = lookup;
    }
}

/// Log in as `user` until it is admitted.
async fn poll_login(port: u16, user: &AppUser, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, lines) = login(port, user);
        if lines == ["PONG\r\n"] {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {lines:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An account pushed at run time gets JetStream when its JWT grants it,
/// and an update's JetStream limits apply at once.
#[tokio::test]
async fn pushed_accounts_get_jetstream_with_their_limits() {
    let w = World::new();
    let mut recorded = Vec::new();
    for (label, bin) in common::both_servers() {
        let jwt_dir = w.dir.path().join(format!("js-{label}"));
        let config = w.config(
            jwt_dir.to_str().unwrap(),
            "jetstream { store_dir: \"{dir}/js\" }\n",
        );
        let server = ServerSpec::new(bin).config(config).start().unwrap();
        let admin = w.admin(&server.client_url()).await;
        let grant = |streams: i64| {
            w.app_jwt(move |ac| {
                ac.nats.limits.jetstream.disk_storage = 1 << 20;
                ac.nats.limits.jetstream.mem_storage = 0;
                ac.nats.limits.jetstream.streams = streams;
            })
        };
        push_ok(&admin, grant(2), label).await;
        let user = w.app_user();
        let creds = w.dir.path().join(format!("fan-{label}.creds"));
        common::creds::write_creds(&creds, &user.jwt, &user.key);
        let fan = async_nats::ConnectOptions::with_credentials_file(creds)
            .await
            .unwrap()
            .connect(server.client_url())
            .await
            .unwrap();
        let js = async_nats::jetstream::new(fan);
        let stream = |name: &str| async_nats::jetstream::stream::Config {
            name: name.into(),
            subjects: vec![format!("{name}.>")],
            max_bytes: 1024,
            ..Default::default()
        };
        js.create_stream(stream("ONE"))
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        // Down to one stream: the second is refused.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        push_ok(&admin, grant(1), label).await;
        let refused = js.create_stream(stream("TWO")).await.unwrap_err();
        let info = js.query_account().await.unwrap();
        recorded.push((label, refused.to_string(), info.limits.max_streams));
    }
    assert_eq!(recorded[0].2, Some(1), "nats-server applies the update");
    assert_eq!(
        (&recorded[1].1, recorded[1].2),
        (&recorded[0].1, recorded[0].2),
        "tribune vs nats-server"
    );
}

/// A push that lowers the account's `conn` limit below the connections
/// open keeps the oldest and closes the rest, as nats-server does.
#[tokio::test]
async fn a_lowered_connection_limit_closes_the_newest() {
    let w = World::new();
    let mut recorded = Vec::new();
    for (label, bin) in common::both_servers() {
        let jwt_dir = w.dir.path().join(format!("conn-{label}"));
        let server = ServerSpec::new(bin)
            .config(w.config(jwt_dir.to_str().unwrap(), ""))
            .start()
            .unwrap();
        let admin = w.admin(&server.client_url()).await;
        push_ok(&admin, w.app_jwt(|_| {}), label).await;
        let (mut first, a) = login(server.port, &w.app_user());
        let (mut second, b) = login(server.port, &w.app_user());
        assert_eq!(
            (a, b),
            (vec!["PONG\r\n".to_string()], vec!["PONG\r\n".to_string()])
        );
        push_ok(&admin, w.app_jwt(|ac| ac.nats.limits.conn = 1), label).await;
        let mut ended = second.until_pong();
        ended.retain(|l| l != "PING\r\n" && !l.starts_with("INFO "));
        let mut kept = first.ping();
        kept.retain(|l| l != "PING\r\n" && !l.starts_with("INFO "));
        recorded.push((label, ended, kept));
    }
    assert_eq!(
        recorded[0].1,
        [
            "-ERR 'maximum account active connections exceeded'\r\n",
            CLOSED
        ],
        "nats-server closes the newest"
    );
    assert_eq!(recorded[0].2, ["PONG\r\n"], "nats-server keeps the oldest");
    assert_eq!(
        (&recorded[1].1, &recorded[1].2),
        (&recorded[0].1, &recorded[0].2),
        "tribune vs nats-server"
    );
}

/// A login on a server that never saw an account's push (it joined
/// later) is admitted: the server asks its peers for the account first.
#[tokio::test]
async fn a_login_for_an_account_only_a_peer_holds_is_admitted() {
    let w = World::new();
    for (label, bin) in common::both_servers() {
        let dirs = [
            w.dir.path().join(format!("fetch-{label}-n1")),
            w.dir.path().join(format!("fetch-{label}-n2")),
        ];
        // Only n1's directory holds the account, as after a push n2 missed.
        std::fs::create_dir_all(&dirs[0]).unwrap();
        std::fs::write(
            dirs[0].join(format!("{}.jwt", w.app.public_key())),
            w.app_jwt(|_| {}),
        )
        .unwrap();
        let n1 = ServerSpec::new(&bin)
            .config(w.config(dirs[0].to_str().unwrap(), &cluster_node("n1", None)))
            .start()
            .unwrap();
        let route = n1.addr_of("cluster").unwrap();
        // A long interval: nats-server then syncs only on a lookup.
        let n2_config = w
            .config(dirs[1].to_str().unwrap(), &cluster_node("n2", Some(&route)))
            .replace("interval: \"1s\"", "interval: \"1h\"");
        let n2 = ServerSpec::new(&bin).config(n2_config).start().unwrap();
        let a = w.admin(&n1.client_url()).await;
        let b = w.admin(&n2.client_url()).await;
        common::wait_for_route(&a, &b).await;
        // A subscriber on n1 before n2 knows the account: n2 must keep
        // its interest for when it does.
        let fan = w.app_user();
        let creds = w.dir.path().join(format!("fetch-{label}.creds"));
        common::creds::write_creds(&creds, &fan.jwt, &fan.key);
        let listener = async_nats::ConnectOptions::with_credentials_file(creds)
            .await
            .unwrap()
            .connect(n1.client_url())
            .await
            .unwrap();
        let mut sub = listener.subscribe("scores.>").await.unwrap();
        listener.flush().await.unwrap();
        common::barrier(&a).await;
        common::barrier(&b).await;
        let (mut publisher, lines) = login(n2.port, &w.app_user());
        assert_eq!(
            lines,
            ["PONG\r\n"],
            "{label}: n2 fetched the account\n{}",
            n2.log()
        );
        publisher.send("PUB scores.1 4\r\ngoal\r\nPING\r\n");
        let got = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap_or_else(|_| panic!("{label}: n1's subscriber got nothing from n2"))
            .unwrap();
        assert_eq!(&got.payload[..], b"goal", "{label}");
        assert!(
            dirs[1].join(format!("{}.jwt", w.app.public_key())).exists(),
            "{label}: and stored it"
        );
    }
}

/// Pushes that end connections the way nats-server ends them: an account
/// JWT already expired, a scoped signing key whose scope changed, and a
/// bearer user once the account disallows bearer tokens.
#[tokio::test]
async fn pushes_end_connections_their_jwt_no_longer_admits() {
    use tribune_auth::jwt::{Permission, SigningKey, UserPermissionLimits, UserScope};
    let w = World::new();
    let scoped = KeyPair::new_account();
    let scope = |allow: &str| {
        SigningKey::Scoped(Box::new(UserScope {
            kind: "user_scope".into(),
            key: scoped.public_key(),
            role: "fans".into(),
            template: UserPermissionLimits {
                sub: Permission {
                    allow: vec![allow.into()],
                    deny: vec![],
                },
                subs: -1,
                data: -1,
                payload: -1,
                ..Default::default()
            },
        }))
    };
    let app = w.app.public_key();
    let user_of = |signer: &KeyPair, bearer: bool| {
        let key = KeyPair::new_user();
        let mut uc = UserClaims::new(&key.public_key(), "");
        uc.nats.issuer_account = app.clone();
        uc.nats.bearer_token = bearer;
        if !bearer {
            (uc.nats.subs, uc.nats.data, uc.nats.payload) = (0, 0, 0);
        }
        AppUser {
            jwt: jwt::encode(&mut uc, signer).unwrap(),
            key,
        }
    };
    let mut recorded = Vec::new();
    for (label, bin) in common::both_servers() {
        let jwt_dir = w.dir.path().join(format!("ends-{label}"));
        let server = ServerSpec::new(bin)
            .config(w.config(jwt_dir.to_str().unwrap(), ""))
            .start()
            .unwrap();
        let admin = w.admin(&server.client_url()).await;
        let mut seen: Vec<(String, Value)> = Vec::new();
        let mut ends: Vec<(String, Vec<String>)> = Vec::new();
        let push = |token: String| {
            let admin = admin.clone();
            async move { ask(&admin, "$SYS.REQ.CLAIMS.UPDATE", token).await }
        };
        seen.push((
            "push".into(),
            push(w.app_jwt(|ac| ac.nats.signing_keys = vec![scope("sports.>")])).await,
        ));
        let fan = user_of(&scoped, false);
        let (mut conn, ok) = login(server.port, &fan);
        assert_eq!(ok, ["PONG\r\n"], "{label}: the scoped user");
        let bearer = user_of(&w.app, true);
        let mut c = RawConn::open(server.port);
        c.send(&format!(
            "CONNECT {{\"verbose\":false,\"protocol\":1,\"jwt\":\"{}\"}}\r\nPING\r\n",
            bearer.jwt
        ));
        assert_eq!(c.until_pong(), ["PONG\r\n"], "{label}: the bearer user");
        let (mut plain, ok) = login(server.port, &w.app_user());
        assert_eq!(ok, ["PONG\r\n"], "{label}: a plain user");
        tokio::time::sleep(Duration::from_millis(1100)).await;

        seen.push((
            "narrow the scope".into(),
            push(w.app_jwt(|ac| ac.nats.signing_keys = vec![scope("sports.football.>")])).await,
        ));
        ends.push(("scoped user".into(), quiet(conn.ping())));
        seen.push((
            "disallow bearer".into(),
            push(w.app_jwt(|ac| {
                ac.nats.signing_keys = vec![scope("sports.football.>")];
                ac.nats.limits.disallow_bearer = true;
            }))
            .await,
        ));
        ends.push(("bearer user".into(), quiet(c.ping())));
        seen.push((
            "expire the account".into(),
            push(w.app_jwt(|ac| ac.std.exp = jwt::now_unix() - 1)).await,
        ));
        // nats-server ends them from a timer: give it a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        ends.push(("plain user".into(), quiet(plain.ping())));
        recorded.push((label, seen, ends));
    }
    let (_, want_seen, want_ends) = &recorded[0];
    for (what, reply) in want_seen {
        assert_eq!(
            reply["data"]["message"], "jwt updated",
            "nats-server: {what}"
        );
    }
    let ended = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    assert_eq!(
        want_ends,
        &[
            ("scoped user".to_string(), ended(&[CLOSED])),
            (
                "bearer user".to_string(),
                ended(&["-ERR 'Authorization Violation'\r\n", CLOSED])
            ),
            // nats-server stores the expired JWT but does not apply it
            // (its claims fail verification): the connection stays.
            ("plain user".to_string(), ended(&["PONG\r\n"])),
        ],
        "nats-server"
    );
    let (_, seen, ends) = &recorded[1];
    assert_eq!(seen, want_seen, "tribune vs nats-server: replies");
    assert_eq!(
        ends[..2],
        want_ends[..2],
        "tribune vs nats-server: connections"
    );
    // Tribune applies it: an operator pushing an expired JWT means to end
    // the account, and its connections end as they would at `exp`.
    assert_eq!(
        ends[2].1,
        ended(&["-ERR 'Account Authentication Expired'\r\n", CLOSED]),
        "tribune ends the expired account's connections"
    );
}

/// The lines that matter: not the connect INFO nor the server's PING.
fn quiet(mut lines: Vec<String>) -> Vec<String> {
    lines.retain(|l| l != "PING\r\n" && !l.starts_with("INFO "));
    lines
}

/// An account JWT pushed with an `exp` in the near future ends the
/// account's connections when it comes, whenever they logged in (its
/// account had no `exp` then): nats-server's account expiration timer.
#[tokio::test]
async fn an_account_exp_pushed_later_ends_its_connections_then() {
    let w = World::new();
    let mut recorded = Vec::new();
    for (label, bin) in common::both_servers() {
        let jwt_dir = w.dir.path().join(format!("exp-{label}"));
        let server = ServerSpec::new(bin)
            .config(w.config(jwt_dir.to_str().unwrap(), ""))
            .start()
            .unwrap();
        let admin = w.admin(&server.client_url()).await;
        let pushed = ask(&admin, "$SYS.REQ.CLAIMS.UPDATE", w.app_jwt(|_| {})).await;
        assert_eq!(pushed["data"]["message"], "jwt updated", "{label}");
        let (mut conn, ok) = login(server.port, &w.app_user());
        assert_eq!(ok, ["PONG\r\n"], "{label}");
        let exp = jwt::now_unix() + 2;
        let pushed = ask(
            &admin,
            "$SYS.REQ.CLAIMS.UPDATE",
            w.app_jwt(|ac| ac.std.exp = exp),
        )
        .await;
        assert_eq!(pushed["data"]["message"], "jwt updated", "{label}");
        let before = quiet(conn.ping());
        // Past `exp` (whole seconds) with room for the timer.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        recorded.push((label, before, quiet(conn.ping())));
    }
    for (label, before, after) in &recorded {
        assert_eq!(before, &["PONG\r\n"], "{label}: before exp");
        assert_eq!(
            after,
            &["-ERR 'Account Authentication Expired'\r\n", CLOSED],
            "{label}: after exp"
        );
    }
}

/// A pushed account JWT reaches the connections already bound to it, as
/// nats-server applies an update: its default permissions (for users with
/// none of their own) remove the subscriptions they no longer allow, a
/// lowered payload limit refuses the next big publish, and a subscription
/// limit a connection is at (or over) closes it.
#[tokio::test]
async fn pushed_limits_and_default_permissions_reach_live_connections() {
    use tribune_auth::jwt::account::Permissions;
    use tribune_auth::jwt::Permission;
    let w = World::new();
    let defaults = |sub: &str| {
        Some(Permissions {
            pub_: Permission::default(),
            sub: Permission {
                allow: vec![sub.into()],
                deny: vec![],
            },
            resp: None,
        })
    };
    let big = "x".repeat(2000);
    let mut recorded = Vec::new();
    for (label, bin) in common::both_servers() {
        let jwt_dir = w.dir.path().join(format!("live-{label}"));
        let server = ServerSpec::new(bin)
            .config(w.config(jwt_dir.to_str().unwrap(), ""))
            .start()
            .unwrap();
        let admin = w.admin(&server.client_url()).await;
        let push = |token: String| {
            let admin = admin.clone();
            async move {
                let v = ask(&admin, "$SYS.REQ.CLAIMS.UPDATE", token).await;
                assert_eq!(v["data"]["message"], "jwt updated", "{v}");
            }
        };
        push(w.app_jwt(|ac| ac.nats.default_permissions = defaults(">"))).await;
        let mut t: Vec<String> = Vec::new();
        let (mut a, ok) = login(server.port, &w.app_user());
        assert_eq!(ok, ["PONG\r\n"], "{label}");
        a.send("SUB sports.a 1\r\nSUB news.b 2\r\nSUB news.c 3\r\n");
        t.extend(quiet(a.ping()));
        let (mut b, ok) = login(server.port, &w.app_user());
        assert_eq!(ok, ["PONG\r\n"], "{label}");
        b.send("SUB sports.a 1\r\nSUB sports.b 2\r\n");
        t.extend(quiet(b.ping()));

        // Narrower defaults: a's news subscriptions go (in either order).
        push(w.app_jwt(|ac| ac.nats.default_permissions = defaults("sports.>"))).await;
        let mut lines = quiet(a.ping());
        lines.sort();
        t.push(format!("a after narrower defaults: {lines:?}"));
        t.push(format!("b after narrower defaults: {:?}", quiet(b.ping())));

        // A payload limit under what a sends next.
        push(w.app_jwt(|ac| {
            ac.nats.default_permissions = defaults("sports.>");
            ac.nats.limits.payload = 1024;
        }))
        .await;
        t.push(format!("b after payload limit: {:?}", quiet(b.ping())));
        a.send(&format!("PUB sports.a {}\r\n{big}\r\n", big.len()));
        t.push(format!("a publishes 2000 bytes: {:?}", quiet(a.ping())));

        // A subscription limit b is at.
        push(w.app_jwt(|ac| {
            ac.nats.default_permissions = defaults("sports.>");
            ac.nats.limits.payload = 1024;
            ac.nats.limits.subs = 2;
        }))
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        t.push(format!("b after subs limit: {:?}", quiet(b.ping())));
        recorded.push((label, t));
    }
    let (_, want) = &recorded[0];
    for l in want {
        eprintln!("nats-server: {l}");
    }
    assert_eq!(&recorded[1].1, want, "tribune vs nats-server");
}
