//! Authentication, accounts and permissions with real clients, each test
//! run against nats-server (to prove the test) and against tribune-broker:
//! NKEY users (and a signature replayed against a new nonce), bcrypt
//! passwords, account isolation, stream and service imports, and accounts
//! carried across a cluster.

mod common;

use std::time::Duration;

use common::raw::RawConn;
use common::ServerSpec;
use futures::StreamExt;
use tribune_broker::accounts::RESPONSE_MAP_LIMIT;

const DEADLINE: Duration = Duration::from_secs(10);

fn accounts_conf(web_nkey: &str) -> String {
    let hash = bcrypt::hash(APP_PASSWORD, 4).expect("bcrypt");
    format!(
        "accounts {{\n\
           APP: {{\n\
             users: [ {{user: app, password: \"{hash}\"}} ]\n\
             exports: [ {{stream: \"sports.>\"}}, {{service: \"svc.time\"}} ]\n\
           }}\n\
           WEB: {{\n\
             users: [ {{nkey: {web_nkey}, permissions: {{ publish: [\"time\"], subscribe: [\"feed.>\", \"_INBOX.>\"] }} }} ]\n\
             imports: [ {{stream: {{account: APP, subject: \"sports.>\"}}, prefix: feed}}, {{service: {{account: APP, subject: \"svc.time\"}}, to: time}} ]\n\
           }}\n\
         }}\n"
    )
}

/// APP's password, stored as a bcrypt hash (cost 4, for test speed).
const APP_PASSWORD: &str = "s3cret";

async fn nkey_client(
    url: &str,
    seed: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::with_nkey(seed.to_string())
        .connect(url)
        .await
}

#[tokio::test]
async fn nkeys_bcrypt_accounts_and_imports() {
    for (label, bin) in common::both_servers() {
        let web = nkeys::KeyPair::new_user();
        let web_seed = web.seed().unwrap();
        let server = ServerSpec::new(bin)
            .config(accounts_conf(&web.public_key()))
            .start()
            .unwrap();
        let url = server.client_url();

        // bcrypt password user in APP; a wrong password is refused.
        let app =
            async_nats::ConnectOptions::with_user_and_password("app".into(), APP_PASSWORD.into())
                .connect(&url)
                .await
                .unwrap_or_else(|e| panic!("{label}: bcrypt user: {e}"));
        let bad = async_nats::ConnectOptions::with_user_and_password("app".into(), "nope".into())
            .connect(&url)
            .await;
        assert_eq!(
            bad.unwrap_err().kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation,
            "{label}"
        );

        // NKEY user in WEB; an unknown key is refused.
        let webc = nkey_client(&url, &web_seed)
            .await
            .unwrap_or_else(|e| panic!("{label}: nkey user: {e}"));
        let stranger = nkeys::KeyPair::new_user().seed().unwrap();
        let err = nkey_client(&url, &stranger).await.unwrap_err();
        assert_eq!(
            err.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation,
            "{label}"
        );

        // Service: APP answers svc.time; WEB calls it as `time`.
        let mut svc = app.subscribe("svc.time").await.unwrap();
        let mut same_subject = app.subscribe("feed.sports.football.1").await.unwrap();
        common::barrier(&app).await;
        let responder = app.clone();
        tokio::spawn(async move {
            while let Some(m) = svc.next().await {
                if let Some(reply) = m.reply {
                    responder.publish(reply, "12:00".into()).await.unwrap();
                }
            }
        });
        let answer = tokio::time::timeout(DEADLINE, webc.request("time", "?".into()))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{label}: service request timed out\n{}",
                    server.log_excerpt()
                )
            })
            .unwrap_or_else(|e| panic!("{label}: service request: {e}\n{}", server.log_excerpt()));
        assert_eq!(answer.payload, "12:00", "{label}: service import");

        // Stream: what APP publishes on sports.> reaches WEB under feed.
        let mut feed = webc.subscribe("feed.sports.football.*").await.unwrap();
        // WEB may only publish `time`: the service request is its round trip.
        webc.request("time", "?".into()).await.unwrap();
        app.publish("sports.football.1", "goal".into())
            .await
            .unwrap();
        app.flush().await.unwrap();
        let m = tokio::time::timeout(DEADLINE, feed.next())
            .await
            .unwrap_or_else(|_| panic!("{label}: stream import\n{}", server.log_excerpt()))
            .unwrap();
        assert_eq!(
            (m.subject.as_str(), &m.payload[..]),
            ("feed.sports.football.1", &b"goal"[..]),
            "{label}"
        );
        // APP's own subscription on the same subject name as WEB sees is
        // separate: nothing crossed into APP.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), same_subject.next())
                .await
                .is_err(),
            "{label}: accounts are isolated"
        );
    }
}

/// `allow_responses`: a user who may not publish may answer each request
/// it received, `max` times, and nothing else; the errors and deliveries are
/// byte-for-byte nats-server's. Enough requests are open at once for the
/// open-reply map to sweep (it holds one entry per request still unanswered).
#[test]
fn allow_responses_answers_each_request_once() {
    const OPEN: usize = 5000;
    let conf = "authorization { users: [\n\
          {user: svc, password: s, permissions: { subscribe: \"svc\", allow_responses: {max: 1} }}\n\
          {user: req, password: r}\n\
        ] }\n";
    let mut transcripts = Vec::new();
    for (label, bin) in common::both_servers() {
        let server = ServerSpec::new(bin).config(conf).start().unwrap();
        let mut svc = login(server.port, "svc", "s");
        svc.send("SUB svc 1\r\n");
        assert_eq!(svc.ping(), ["PONG\r\n"], "{label}");
        let mut req = login(server.port, "req", "r");
        let mut batch = String::from("SUB _INBOX.> 1\r\n");
        for i in 0..OPEN {
            batch.push_str(&format!("PUB svc _INBOX.{i} 1\r\n?\r\n"));
        }
        req.send(&batch);
        assert_eq!(req.ping(), ["PONG\r\n"], "{label}");
        let got = svc.ping();
        assert_eq!(got.len(), OPEN * 2 + 1, "{label}: every request delivered");

        // Answer the last request twice, the first once, and publish
        // somewhere no request came from.
        let last = OPEN - 1;
        svc.send(&format!(
            "PUB _INBOX.{last} 2\r\nok\r\nPUB _INBOX.{last} 5\r\nagain\r\n\
             PUB _INBOX.0 5\r\nfirst\r\nPUB elsewhere 1\r\nx\r\n"
        ));
        let svc_lines = svc.ping();
        let req_lines = req.ping();
        transcripts.push((label, svc_lines, req_lines));
    }
    let (_, svc_ref, req_ref) = &transcripts[0];
    assert_eq!(
        svc_ref,
        &[
            format!(
                "-ERR 'Permissions Violation for Publish to \"_INBOX.{}\"'\r\n",
                OPEN - 1
            ),
            "-ERR 'Permissions Violation for Publish to \"elsewhere\"'\r\n".to_string(),
            "PONG\r\n".to_string(),
        ],
        "nats-server's errors (the test itself)"
    );
    assert_eq!(req_ref.len(), 5, "two answers delivered: {req_ref:?}");
    for (label, svc_lines, req_lines) in &transcripts[1..] {
        assert_eq!(svc_lines, svc_ref, "{label}: errors to the responder");
        assert_eq!(req_lines, req_ref, "{label}: answers to the requester");
    }
}

/// A raw connection logged in as `user`.
fn login(port: u16, user: &str, pass: &str) -> RawConn {
    let mut c = RawConn::open(port);
    c.send(&format!(
        "CONNECT {{\"verbose\":false,\"user\":\"{user}\",\"pass\":\"{pass}\"}}\r\n"
    ));
    c
}

/// Review item 14: an importer's requests to a service each leave a
/// mapping for the answer, answered or not. nats-server keeps them all for
/// two minutes, so an importer can fill the exporter's memory at line rate;
/// Tribune keeps at most `RESPONSE_MAP_LIMIT` per exporting account and
/// drops the oldest for the newest (stricter: an answer to a request older
/// than that many open ones is lost, as if it had expired).
#[test]
fn service_import_responses_are_bounded() {
    let n = RESPONSE_MAP_LIMIT + 1;
    let conf = "accounts {\n\
          APP: { users: [ {user: app, password: a} ], exports: [ {service: svc} ] }\n\
          WEB: { users: [ {user: web, password: w} ], imports: [ {service: {account: APP, subject: svc}} ] }\n\
        }\n";
    for (label, bin) in common::both_servers() {
        let server = ServerSpec::new(bin).config(conf).start().unwrap();
        let mut app = login(server.port, "app", "a");
        app.send("SUB svc 1\r\n");
        assert_eq!(app.ping(), ["PONG\r\n"], "{label}");
        let mut web = login(server.port, "web", "w");
        let mut batch = String::with_capacity(n * 32);
        batch.push_str("SUB _INBOX.> 1\r\n");
        for i in 0..n {
            batch.push_str(&format!("PUB svc _INBOX.{i} 0\r\n\r\n"));
        }
        web.send(&batch);
        assert_eq!(web.ping(), ["PONG\r\n"], "{label}");
        // Each request reaches APP with a reply subject of its own.
        let replies: Vec<String> = app
            .ping()
            .iter()
            .filter_map(|l| l.strip_prefix("MSG svc 1 "))
            .map(|rest| rest.split(' ').next().unwrap_or_default().to_string())
            .collect();
        assert_eq!(replies.len(), n, "{label}: every request delivered");
        app.send(&format!(
            "PUB {} 5\r\nfirst\r\nPUB {} 4\r\nlast\r\n",
            replies[0],
            replies[n - 1]
        ));
        assert_eq!(app.ping(), ["PONG\r\n"], "{label}");
        let got = web.ping();
        let last = [
            format!("MSG _INBOX.{} 1 4\r\n", n - 1),
            "last\r\n".to_string(),
            "PONG\r\n".to_string(),
        ];
        if label == "tribune" {
            assert_eq!(got, last, "{label}: the oldest mapping made room");
        } else {
            let mut all = vec!["MSG _INBOX.0 1 5\r\n".to_string(), "first\r\n".to_string()];
            all.extend(last);
            assert_eq!(got, all, "{label}: every mapping kept");
        }
    }
}

/// Accounts cross routes by name: a stream import applies on the node
/// where the importer's subscriber is, and the same subject in another
/// account never crosses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_across_a_cluster() {
    let web = nkeys::KeyPair::new_user();
    let conf = accounts_conf(&web.public_key());
    let tribune = common::tribune_bin(env!("CARGO_BIN_EXE_tribune-broker"));
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let routes = ports
        .iter()
        .map(|p| format!("nats-route://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let nodes: Vec<_> = ports
        .iter()
        .map(|p| {
            ServerSpec::new(tribune.clone())
                .config(conf.clone())
                .args([
                    "--cluster".to_string(),
                    format!("nats://127.0.0.1:{p}"),
                    "--routes".to_string(),
                    routes.clone(),
                    "--cluster_name".to_string(),
                    "acc".to_string(),
                ])
                .start()
                .unwrap()
        })
        .collect();
    let app = async_nats::ConnectOptions::with_user_and_password("app".into(), APP_PASSWORD.into())
        .connect(nodes[0].client_url())
        .await
        .unwrap();
    let webc = nkey_client(&nodes[1].client_url(), &web.seed().unwrap())
        .await
        .unwrap();
    let mut feed = webc.subscribe("feed.sports.>").await.unwrap();
    webc.flush().await.unwrap();
    // Interest crosses the route asynchronously: publish until it lands.
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            app.publish("sports.tennis.3", "ace".into()).await.unwrap();
            app.flush().await.unwrap();
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), feed.next()).await
            {
                return m;
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "stream import across the route\n{}\n{}",
            nodes[0].log_excerpt(),
            nodes[1].log_excerpt()
        )
    });
    assert_eq!(got.subject.as_str(), "feed.sports.tennis.3");
    // The service import works across nodes too: APP answers on node 0.
    let mut svc = app.subscribe("svc.time").await.unwrap();
    app.flush().await.unwrap();
    let responder = app.clone();
    tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(reply) = m.reply {
                responder.publish(reply, "now".into()).await.unwrap();
            }
        }
    });
    let answer = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match webc.request("time", "?".into()).await {
                Ok(m) => return m,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await
    .expect("service import across the route");
    assert_eq!(answer.payload, "now");
}
