//! A connection holding very many subscriptions on one subject goes away
//! while another client of the same account keeps publishing (to that
//! subject and to others) and doing request/reply round trips.
//!
//! The same scenario runs against nats-server and tribune-broker and the
//! outcomes are compared. Only correctness is asserted: every round trip
//! completes, `/subsz` drops back to where it was, and afterwards nobody is
//! left listening on the subject. How long the removal stalls the other
//! client is measured separately (see the sublist's commit), never here.
//!
//! `TRIBUNE_MANY_SUBS` sets the number of subscriptions (default
//! [`DEFAULT_SUBS`], small enough for a debug build on 2 cores).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use common::cluster::get_json;
use common::{barrier, nats_server_bin, tribune_bin, Server, ServerSpec};

const DEFAULT_SUBS: usize = 100_000;

/// Guard against a hung server, per step; never a measurement.
const DEADLINE: Duration = Duration::from_secs(30);

/// Guard for the whole removal to show in `/subsz`.
const REMOVAL_DEADLINE: Duration = Duration::from_secs(300);

fn sub_count() -> usize {
    match std::env::var("TRIBUNE_MANY_SUBS") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|e| panic!("TRIBUNE_MANY_SUBS={v:?}: {e}")),
        Err(_) => DEFAULT_SUBS,
    }
}

fn start(bin: PathBuf) -> Server {
    ServerSpec::new(bin)
        .args(["-m", "-1"])
        .start()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn monitor_addr(s: &Server) -> SocketAddr {
    let a = s.addr_of("monitoring").expect("a monitoring URL");
    let port: u16 = a
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {a:?}"));
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn num_subscriptions(mon: SocketAddr) -> u64 {
    let v = get_json(mon, "/subsz")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    v["num_subscriptions"]
        .as_u64()
        .unwrap_or_else(|| panic!("no num_subscriptions in {v}"))
}

/// A raw client that sends `n` × `SUB x <sid>` in large writes and waits
/// for the PONG that says the server has handled them all.
async fn subscribe_many(port: u16, n: usize) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    timeout(DEADLINE, stream.read_line(&mut line))
        .await
        .expect("INFO in time")
        .expect("read INFO");
    assert!(line.starts_with("INFO "), "{line:?}");
    let mut out = b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n".to_vec();
    for sid in 1..=n {
        out.extend_from_slice(format!("SUB x {sid}\r\n").as_bytes());
        if out.len() >= 1 << 20 {
            stream.get_mut().write_all(&out).await.expect("write SUBs");
            out.clear();
        }
    }
    out.extend_from_slice(b"PING\r\n");
    stream.get_mut().write_all(&out).await.expect("write SUBs");
    loop {
        line.clear();
        let read = timeout(DEADLINE, stream.read_line(&mut line))
            .await
            .expect("PONG in time")
            .expect("read PONG");
        assert!(read > 0, "server closed the subscribing connection");
        match line.trim_end() {
            "PONG" => break,
            "PING" => stream.get_mut().write_all(b"PONG\r\n").await.expect("PONG"),
            other => panic!("unexpected {other:?} while subscribing"),
        }
    }
    stream.into_inner()
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// `/subsz` after the subscribing client's PONG, minus the baseline.
    added: u64,
    /// `/subsz` once the removal has shown, minus the baseline (0).
    left: i64,
    /// Every request/reply round trip during the removal came back intact.
    round_trips_intact: bool,
    /// A request to `x` afterwards found nobody listening.
    no_responders_on_x: bool,
    /// A new subscription on `x` still receives.
    new_sub_receives: bool,
}

async fn scenario(server: &Server, n: usize) -> Outcome {
    let mon = monitor_addr(server);
    let url = server.client_url();
    // A service, and a client that publishes and calls it.
    let svc = async_nats::connect(&url).await.expect("svc connects");
    let mut requests = svc.subscribe("svc").await.expect("svc sub");
    let responder = svc.clone();
    tokio::spawn(async move {
        while let Some(m) = requests.next().await {
            if let Some(reply) = m.reply {
                let _ = responder.publish(reply, m.payload).await;
            }
        }
    });
    barrier(&svc).await;
    let client = async_nats::connect(&url).await.expect("client connects");
    // The first request creates the client's reply subscription.
    timeout(DEADLINE, client.request("svc", "warm-up".into()))
        .await
        .expect("warm-up in time")
        .expect("warm-up reply");
    let baseline = num_subscriptions(mon).await;

    let many = subscribe_many(server.port, n).await;
    let added = num_subscriptions(mon).await.saturating_sub(baseline);

    // Close it, and keep publishing and calling until the removal shows
    // in /subsz, and a few times more.
    drop(many);
    let started = Instant::now();
    let mut intact = true;
    let mut after = 0;
    let mut round = 0u64;
    let left = loop {
        client
            .publish("y", "unrelated".into())
            .await
            .expect("publish y");
        client
            .publish("x", "related".into())
            .await
            .expect("publish x");
        let payload = format!("round {round}");
        let reply = timeout(DEADLINE, client.request("svc", payload.clone().into()))
            .await
            .unwrap_or_else(|_| panic!("round trip {round} hung"));
        intact &= matches!(&reply, Ok(m) if m.payload == payload.as_bytes());
        round += 1;
        let now = num_subscriptions(mon).await;
        if now <= baseline {
            after += 1;
            if after == 3 {
                break now as i64 - baseline as i64;
            }
        }
        assert!(
            started.elapsed() < REMOVAL_DEADLINE,
            "{}: still {now} subscriptions (baseline {baseline})",
            server.label
        );
    };

    let no_responders_on_x = matches!(
        timeout(DEADLINE, client.request("x", "anyone?".into()))
            .await
            .expect("request to x answered in time"),
        Err(e) if e.kind() == async_nats::client::RequestErrorKind::NoResponders
    );
    let mut fresh = svc.subscribe("x").await.expect("sub x");
    barrier(&svc).await;
    client
        .publish("x", "after".into())
        .await
        .expect("publish x");
    client.flush().await.expect("client flush");
    let new_sub_receives = matches!(
        timeout(DEADLINE, fresh.next()).await,
        Ok(Some(m)) if m.payload == "after"
    );
    Outcome {
        added,
        left,
        round_trips_intact: intact,
        no_responders_on_x,
        new_sub_receives,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_connection_with_many_subscriptions() {
    let n = sub_count();
    let want = Outcome {
        added: n as u64,
        left: 0,
        round_trips_intact: true,
        no_responders_on_x: true,
        new_sub_receives: true,
    };
    let nats = start(nats_server_bin());
    let reference = scenario(&nats, n).await;
    assert_eq!(reference, want, "nats-server");
    drop(nats);
    let tribune = start(tribune_bin(env!("CARGO_BIN_EXE_tribune-broker")));
    let got = scenario(&tribune, n).await;
    assert_eq!(got, reference, "tribune-broker vs nats-server");
}
