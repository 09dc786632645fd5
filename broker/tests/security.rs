//! Authentication, accounts and permissions with real clients, each test
//! run against nats-server (to prove the test) and against tribune-broker:
//! NKEY users (and a signature replayed against a new nonce), bcrypt
//! passwords, account isolation, stream and service imports, and accounts
//! carried across a cluster.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::ServerSpec;
use futures::StreamExt;

const DEADLINE: Duration = Duration::from_secs(10);

fn binaries() -> Vec<(&'static str, std::path::PathBuf)> {
    vec![
        ("nats-server", common::nats_server_bin()),
        (
            "tribune",
            common::tribune_bin(env!("CARGO_BIN_EXE_tribune-broker")),
        ),
    ]
}

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
    for (label, bin) in binaries() {
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
    for (label, bin) in binaries() {
        let server = ServerSpec::new(bin).config(conf).start().unwrap();
        let open = |user: &str, pass: &str| {
            let s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            s.set_read_timeout(Some(DEADLINE)).unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut info = String::new();
            r.read_line(&mut info).unwrap();
            let mut s2 = s;
            write!(
                s2,
                "CONNECT {{\"verbose\":false,\"user\":\"{user}\",\"pass\":\"{pass}\"}}\r\n"
            )
            .unwrap();
            (s2, r)
        };
        // Reads lines up to and including the next PONG.
        let until_pong = |r: &mut BufReader<TcpStream>| {
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                r.read_line(&mut line)
                    .unwrap_or_else(|e| panic!("{label}: {e}; so far {lines:?}"));
                assert!(!line.is_empty(), "{label}: closed after {lines:?}");
                if line == "PONG\r\n" {
                    return lines;
                }
                lines.push(line);
            }
        };
        let (mut svc, mut svc_r) = open("svc", "s");
        svc.write_all(b"SUB svc 1\r\nPING\r\n").unwrap();
        assert!(until_pong(&mut svc_r).is_empty(), "{label}");
        let (mut req, mut req_r) = open("req", "r");
        let mut batch = String::from("SUB _INBOX.> 1\r\n");
        for i in 0..OPEN {
            batch.push_str(&format!("PUB svc _INBOX.{i} 1\r\n?\r\n"));
        }
        batch.push_str("PING\r\n");
        req.write_all(batch.as_bytes()).unwrap();
        assert!(until_pong(&mut req_r).is_empty(), "{label}");
        svc.write_all(b"PING\r\n").unwrap();
        let got = until_pong(&mut svc_r);
        assert_eq!(got.len(), OPEN * 2, "{label}: every request delivered");

        // Answer the last request twice, the first once, and publish
        // somewhere no request came from.
        let last = OPEN - 1;
        write!(
            svc,
            "PUB _INBOX.{last} 2\r\nok\r\nPUB _INBOX.{last} 5\r\nagain\r\n\
             PUB _INBOX.0 5\r\nfirst\r\nPUB elsewhere 1\r\nx\r\nPING\r\n"
        )
        .unwrap();
        let svc_lines = until_pong(&mut svc_r);
        req.write_all(b"PING\r\n").unwrap();
        let req_lines = until_pong(&mut req_r);
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
        ],
        "nats-server's errors (the test itself)"
    );
    assert_eq!(req_ref.len(), 4, "two answers delivered: {req_ref:?}");
    for (label, svc_lines, req_lines) in &transcripts[1..] {
        assert_eq!(svc_lines, svc_ref, "{label}: errors to the responder");
        assert_eq!(req_lines, req_ref, "{label}: answers to the requester");
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
