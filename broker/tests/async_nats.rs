//! The official Rust client, async-nats, against an in-process tribune-broker.
//!
//! These prove that a real client works unchanged: pub/sub, wildcards, queue
//! groups, request/reply, headers, no responders, payload limits, auto
//! unsubscribe, and that a slow consumer is cut off without hurting others.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tribune_broker::options::Options;
use tribune_broker::server::Server;

/// Generous bound so a broken server fails the test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(10);

async fn start(mut opts: Options) -> (Arc<Server>, String) {
    opts.host = "127.0.0.1".into();
    opts.port = 0;
    let server = Server::new(opts);
    server.start().await.expect("server starts");
    let addr = server.listeners().client.expect("bound");
    (server, format!("nats://{addr}"))
}

async fn default_server() -> (Arc<Server>, String) {
    start(Options::default()).await
}

async fn next_msg(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    timeout(DEADLINE, sub.next())
        .await
        .expect("message in time")
        .expect("subscription open")
}

#[tokio::test]
async fn pub_sub_and_wildcards() {
    let (_s, url) = default_server().await;
    let nc = async_nats::connect(&url).await.unwrap();
    let mut exact = nc.subscribe("sports.football.42").await.unwrap();
    let mut star = nc.subscribe("sports.football.*").await.unwrap();
    let mut tail = nc.subscribe("sports.>").await.unwrap();
    let mut other = nc.subscribe("sports.tennis.*").await.unwrap();
    nc.flush().await.unwrap();

    nc.publish("sports.football.42", "goal".into())
        .await
        .unwrap();
    nc.publish("sports.football.42.stats", "x".into())
        .await
        .unwrap();
    nc.publish("sports.tennis.7", "ace".into()).await.unwrap();
    nc.flush().await.unwrap();

    assert_eq!(next_msg(&mut exact).await.payload, "goal");
    assert_eq!(next_msg(&mut star).await.payload, "goal");
    let got: Vec<String> = vec![
        next_msg(&mut tail).await,
        next_msg(&mut tail).await,
        next_msg(&mut tail).await,
    ]
    .into_iter()
    .map(|m| m.subject.to_string())
    .collect();
    assert_eq!(
        got,
        vec![
            "sports.football.42",
            "sports.football.42.stats",
            "sports.tennis.7"
        ]
    );
    assert_eq!(
        next_msg(&mut other).await.subject.as_str(),
        "sports.tennis.7"
    );
}

#[tokio::test]
async fn queue_group_delivers_each_message_once() {
    let (_s, url) = default_server().await;
    let publisher = async_nats::connect(&url).await.unwrap();
    let mut members = Vec::new();
    for _ in 0..4 {
        let nc = async_nats::connect(&url).await.unwrap();
        let sub = nc.queue_subscribe("work", "workers".into()).await.unwrap();
        nc.flush().await.unwrap();
        members.push((nc, sub));
    }
    let mut plain = publisher.subscribe("work").await.unwrap();
    publisher.flush().await.unwrap();
    const N: usize = 2000;
    for i in 0..N {
        publisher
            .publish("work", i.to_string().into())
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();

    // The plain subscriber sees everything; the group sees each message once.
    for _ in 0..N {
        next_msg(&mut plain).await;
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut per_member = Vec::new();
    for (nc, sub) in &mut members {
        nc.flush().await.unwrap();
        let mut n = 0;
        while let Ok(Some(m)) = timeout(Duration::from_millis(300), sub.next()).await {
            *seen
                .entry(String::from_utf8_lossy(&m.payload).into_owned())
                .or_default() += 1;
            n += 1;
        }
        per_member.push(n);
    }
    assert_eq!(seen.len(), N, "every message delivered to the group");
    assert!(seen.values().all(|&c| c == 1), "no message delivered twice");
    assert!(
        per_member.iter().all(|&n| n > N / 10),
        "spread evenly: {per_member:?}"
    );
}

#[tokio::test]
async fn request_reply_and_no_responders() {
    let (_s, url) = default_server().await;
    let responder = async_nats::connect(&url).await.unwrap();
    let mut svc = responder.subscribe("svc.echo").await.unwrap();
    responder.flush().await.unwrap();
    let r2 = responder.clone();
    tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(reply) = m.reply {
                let mut body = b"echo:".to_vec();
                body.extend_from_slice(&m.payload);
                r2.publish(reply, body.into()).await.unwrap();
            }
        }
    });
    let requester = async_nats::connect(&url).await.unwrap();
    let resp = timeout(DEADLINE, requester.request("svc.echo", "hi".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.payload, "echo:hi");

    let err = timeout(DEADLINE, requester.request("svc.nobody", "hi".into()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
}

#[tokio::test]
async fn headers_pass_through() {
    let (_s, url) = default_server().await;
    let nc = async_nats::connect(&url).await.unwrap();
    let mut sub = nc.subscribe("h.test").await.unwrap();
    nc.flush().await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "abc-1");
    headers.insert("X-Match", "42");
    nc.publish_with_headers("h.test", headers, "body".into())
        .await
        .unwrap();
    let m = next_msg(&mut sub).await;
    let h = m.headers.expect("headers delivered");
    assert_eq!(h.get("Nats-Msg-Id").map(|v| v.as_str()), Some("abc-1"));
    assert_eq!(h.get("X-Match").map(|v| v.as_str()), Some("42"));
    assert_eq!(m.payload, "body");
}

#[tokio::test]
async fn payload_up_to_max() {
    let opts = Options {
        max_payload: 64 * 1024,
        ..Default::default()
    };
    let (_s, url) = start(opts).await;
    let nc = async_nats::connect(&url).await.unwrap();
    assert_eq!(nc.server_info().max_payload, 64 * 1024);
    let mut sub = nc.subscribe("big").await.unwrap();
    nc.flush().await.unwrap();
    for size in [0usize, 1, 4095, 4096, 65535, 64 * 1024] {
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        nc.publish("big", body.clone().into()).await.unwrap();
        let m = next_msg(&mut sub).await;
        assert_eq!(m.payload.len(), size);
        assert_eq!(&m.payload[..], &body[..]);
    }
}

#[tokio::test]
async fn unsubscribe_after_max() {
    let (s, url) = default_server().await;
    let nc = async_nats::connect(&url).await.unwrap();
    let mut sub = nc.subscribe("limited").await.unwrap();
    sub.unsubscribe_after(3).await.unwrap();
    nc.flush().await.unwrap();
    for i in 0..10 {
        nc.publish("limited", i.to_string().into()).await.unwrap();
    }
    nc.flush().await.unwrap();
    let mut got = Vec::new();
    while let Ok(Some(m)) = timeout(DEADLINE, sub.next()).await {
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    assert_eq!(got, vec!["0", "1", "2"]);
    assert_eq!(
        s.global_account().sublist.count(),
        0,
        "the server removed the subscription"
    );
}

#[tokio::test]
async fn echo_off_suppresses_own_messages() {
    let (_s, url) = default_server().await;
    let nc = async_nats::ConnectOptions::new()
        .no_echo()
        .connect(&url)
        .await
        .unwrap();
    let mut sub = nc.subscribe("echo").await.unwrap();
    let other = async_nats::connect(&url).await.unwrap();
    nc.flush().await.unwrap();
    nc.publish("echo", "mine".into()).await.unwrap();
    nc.flush().await.unwrap();
    other.publish("echo", "theirs".into()).await.unwrap();
    other.flush().await.unwrap();
    assert_eq!(next_msg(&mut sub).await.payload, "theirs");
}

/// A subscriber that never reads is cut off once its pending bytes pass the
/// limit; the publisher and a healthy subscriber carry on.
#[tokio::test]
async fn slow_consumer_is_disconnected_and_isolated() {
    let opts = Options {
        max_pending: 256 * 1024,
        ..Default::default()
    };
    let (s, url) = start(opts).await;
    let addr = s.listeners().client.unwrap();

    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"CONNECT {\"verbose\":false}\r\nSUB flood 1\r\nPING\r\n")
        .await
        .unwrap();
    // Wait for PONG so the subscription is in place, then stop reading.
    let mut buf = vec![0u8; 4096];
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("PONG") {
        let n = timeout(DEADLINE, slow.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }

    let healthy = async_nats::connect(&url).await.unwrap();
    let mut good = healthy.subscribe("flood").await.unwrap();
    healthy.flush().await.unwrap();
    let publisher = async_nats::connect(&url).await.unwrap();
    let payload = bytes::Bytes::from(vec![b'x'; 8 * 1024]);
    const N: usize = 2000;
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < N {
            timeout(DEADLINE, good.next()).await.unwrap().unwrap();
            n += 1;
        }
        n
    });
    for i in 0..N {
        publisher.publish("flood", payload.clone()).await.unwrap();
        // Pace the publisher so that a reading subscriber keeps up.
        if i % 16 == 15 {
            publisher.flush().await.unwrap();
        }
    }
    publisher.flush().await.unwrap();
    assert_eq!(
        reader.await.unwrap(),
        N,
        "the healthy subscriber got everything"
    );
    assert!(
        s.stats
            .slow_consumers
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    // The slow connection is torn down asynchronously; wait for it.
    let gone = timeout(DEADLINE, async {
        while !s
            .closed_clients()
            .iter()
            .any(|c| c.reason.starts_with("Slow Consumer"))
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "closed as slow consumer: {:?}",
        s.closed_clients()
    );
    // Its socket is closed: reading drains what was queued, then hits EOF.
    let eof = timeout(DEADLINE, async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(eof.is_ok(), "slow consumer socket closed");
}

#[tokio::test]
async fn user_password_auth() {
    let opts = Options {
        username: Some("app".into()),
        password: Some("s3cret".into()),
        ..Default::default()
    };
    let (_s, url) = start(opts).await;
    let ok = async_nats::ConnectOptions::with_user_and_password("app".into(), "s3cret".into())
        .connect(&url)
        .await;
    assert!(ok.is_ok());
    // async-nats reports the server's "Authorization Violation" as an auth error.
    let bad = async_nats::ConnectOptions::with_user_and_password("app".into(), "wrong".into())
        .connect(&url)
        .await;
    let err = bad.expect_err("wrong password is rejected");
    assert_eq!(
        err.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation,
        "{err}"
    );
}
