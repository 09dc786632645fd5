//! A publisher faster than its route: every message still crosses. A
//! burst of a million messages (about 170 MB) passes the route's 64 MiB
//! `max_pending` when the route writes slower than the publisher parses
//! (as `make bench`'s cross-node row found). nats-server stalls
//! the publisher and never cuts a route off for pending bytes; Tribune
//! used to close the route as a slow consumer, losing everything on its
//! way (what made `make bench`'s cross-node row fail). Raw protocol on
//! both ends, so no client library's own buffering decides the outcome.
//! Run on both servers (`on_both_flavors!`).
//!
//! A debug build parses too slowly to fill the route, so this guards the
//! path rather than reproducing the old failure, which showed in release
//! builds (`make bench`, cross-node and cluster rows); the limits
//! themselves are unit-tested in `client/outbound.rs`.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::cluster::{Cluster, Flavor};

const MSGS: usize = 1_000_000;
const SUBJECT: &str = "bench.route";
/// A guard against hanging; nothing asserts a duration.
const DEADLINE: Duration = Duration::from_secs(180);

async fn hello(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n")
        .await
        .expect("hello");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(6).any(|w| w == b"PONG\r\n") {
        let n = s.read(&mut buf).await.expect("read");
        assert!(n > 0, "server closed: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    s
}

async fn burst_crosses_the_route_whole(flavor: Flavor) {
    let c = Cluster::start(flavor).await;
    let mut sub = hello(c.node(1).client_addr()).await;
    sub.write_all(format!("SUB {SUBJECT} 1\r\nPING\r\n").as_bytes())
        .await
        .expect("sub");
    c.wait_for_route_interest(0, 1, SUBJECT).await;
    let payload = "x".repeat(128);
    let frame = format!("MSG {SUBJECT} 1 128\r\n{payload}\r\n");
    let publisher = tokio::spawn({
        let addr = c.node(0).client_addr();
        async move {
            let mut p = hello(addr).await;
            let batch = format!("PUB {SUBJECT} 128\r\n{payload}\r\n").repeat(500);
            for _ in 0..MSGS / 500 {
                p.write_all(batch.as_bytes()).await.expect("publish");
            }
            p
        }
    });
    // Everything after the subscriber's PONG is messages of one size.
    let want = MSGS * frame.len();
    let mut got = 0usize;
    let mut pong_seen = false;
    let mut buf = vec![0u8; 1 << 16];
    let mut head = Vec::new();
    let read_all = async {
        while got < want {
            let n = sub.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "server closed the subscriber after {got} of {want} bytes"
            );
            if pong_seen {
                got += n;
                continue;
            }
            head.extend_from_slice(&buf[..n]);
            if let Some(at) = head.windows(6).position(|w| w == b"PONG\r\n") {
                pong_seen = true;
                got += head.len() - at - 6;
            }
        }
    };
    if tokio::time::timeout(DEADLINE, read_all).await.is_err() {
        panic!(
            "{flavor:?}: the subscriber got {} of {MSGS} messages\n{}",
            got / frame.len(),
            c.diagnostics().await
        );
    }
    assert_eq!(got, want, "{flavor:?}: more bytes than messages");
    let _publisher = publisher.await.expect("publisher");
}

on_both_flavors!(burst_crosses_the_route_whole => burst_crosses_the_route_whole);
