//! Service exports' `response_type` across accounts, on one server, run the
//! same way on nats-server and (per the flavor switch in `common/js.rs`)
//! tribune-broker. Account `SPORTS` holds the streams and exports
//! services; account `APP` (no JetStream of its own) imports them.
//!
//! - `streamed_responses`: a `stream` or `chunked` export carries every
//!   response to one request back, until an empty message ends them or the
//!   response threshold passes without one; a `singleton` export only the
//!   first.
//! - `direct_get_through_an_import`: a user in `APP` reads a whole batch
//!   direct get and `multi_last` of `SPORTS` through a `stream` import,
//!   identical to what `SPORTS` itself reads; through a singleton import
//!   only the first message of the batch arrives.

mod common;

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;

use common::direct_get::{replies, replies_before_sentinel};
use common::js::{flavors, Flavor, WAIT};
use common::{barrier, Server, ServerSpec};

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

const CONFIG: &str = r#"
jetstream { store_dir: "{dir}/js" }
accounts {
  SPORTS: {
    jetstream: enabled
    users: [ { user: feed, password: feed } ]
    exports: [
      { service: "$JS.API.DIRECT.GET.SPORTS", response_type: stream, response_threshold: "30s" }
      { service: "$JS.API.DIRECT.GET.SPORTS.>", response_type: stream }
      { service: "$JS.API.DIRECT.GET.ARCHIVE" }
      { service: "svc.stream", response_type: stream, response_threshold: "1s" }
      { service: "svc.chunked", response_type: chunked }
      { service: "svc.single" }
      { service: "svc.ping" }
    ]
  }
  APP: {
    users: [ { user: web, password: web } ]
    imports: [
      { service: { account: SPORTS, subject: "$JS.API.DIRECT.GET.SPORTS" } }
      { service: { account: SPORTS, subject: "$JS.API.DIRECT.GET.SPORTS.>" } }
      { service: { account: SPORTS, subject: "$JS.API.DIRECT.GET.ARCHIVE" } }
      { service: { account: SPORTS, subject: "svc.stream" } }
      { service: { account: SPORTS, subject: "svc.chunked" } }
      { service: { account: SPORTS, subject: "svc.single" } }
      { service: { account: SPORTS, subject: "svc.ping" } }
    ]
  }
}
"#;

/// The server, a client in `SPORTS` and one in `APP`.
async fn start(f: &Flavor) -> (Server, async_nats::Client, async_nats::Client) {
    let server = ServerSpec::new(&f.bin)
        .config(CONFIG)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let connect = |user: &str| {
        let url = server.client_url();
        let user = user.to_string();
        async move {
            let opts = async_nats::ConnectOptions::with_user_and_password(user.clone(), user);
            tokio::time::timeout(WAIT, opts.connect(url))
                .await
                .expect("connect in time")
                .expect("connect")
        }
    };
    let feed = connect("feed").await;
    let web = connect("web").await;
    (server, feed, web)
}

/// What `web` receives for one request to `subject`, answered by `feed`
/// with `answers` (an empty one is an empty message) and, `late` after
/// them, one more. What arrived is read once a later request to
/// `svc.ping` was answered: everything sent before it was delivered
/// before its answer.
async fn responses(
    feed: &async_nats::Client,
    web: &async_nats::Client,
    subject: &str,
    answers: &[&str],
    late: Option<Duration>,
) -> Vec<String> {
    let mut service = feed.subscribe(subject.to_string()).await.expect("sub");
    let mut ping = feed.subscribe("svc.ping").await.expect("sub");
    // The server has both subscriptions before `web` asks.
    barrier(feed).await;
    let inbox = web.new_inbox();
    let mut mine = web.subscribe(inbox.clone()).await.expect("sub");
    barrier(web).await;
    web.publish_with_reply(subject.to_string(), inbox, Bytes::from_static(b"?"))
        .await
        .expect("request");
    let req = tokio::time::timeout(WAIT, service.next())
        .await
        .expect("request arrives")
        .expect("sub open");
    let reply = req.reply.expect("mapped reply subject");
    for a in answers {
        feed.publish(reply.clone(), Bytes::from(a.to_string()))
            .await
            .expect("answer");
    }
    if let Some(after) = late {
        feed.flush().await.expect("flush");
        tokio::time::sleep(after).await;
        feed.publish(reply.clone(), Bytes::from_static(b"late"))
            .await
            .expect("answer");
    }
    // The sentinel: its answer comes after everything sent above.
    let ask = web.request("svc.ping", Bytes::from_static(b"sentinel"));
    let answer = async {
        let m = tokio::time::timeout(WAIT, ping.next())
            .await
            .expect("sentinel arrives")
            .expect("sub open");
        let r = m.reply.expect("reply");
        feed.publish(r, Bytes::from_static(b"done"))
            .await
            .expect("answer");
    };
    let (got, ()) = tokio::join!(ask, answer);
    got.expect("sentinel answered");
    let mut out = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), mine.next()).await {
        out.push(format!("<{}>", String::from_utf8_lossy(&m.payload)));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_responses() {
    for f in flavors(BIN) {
        eprintln!("=== {}", f.label);
        let (_server, feed, web) = start(&f).await;
        let three = ["a", "b", "c"];
        assert_eq!(
            responses(&feed, &web, "svc.stream", &three, None).await,
            ["<a>", "<b>", "<c>"],
            "[{}] stream",
            f.label
        );
        assert_eq!(
            responses(&feed, &web, "svc.chunked", &three, None).await,
            ["<a>", "<b>", "<c>"],
            "[{}] chunked",
            f.label
        );
        assert_eq!(
            responses(&feed, &web, "svc.single", &three, None).await,
            ["<a>"],
            "[{}] singleton",
            f.label
        );
        // An empty message is delivered and ends the responses.
        assert_eq!(
            responses(&feed, &web, "svc.stream", &["a", "", "b"], None).await,
            ["<a>", "<>"],
            "[{}] ended",
            f.label
        );
        // Past the threshold (1 s; nats-server checks it on a timer of
        // that period) without a response, the way back is closed.
        let late = Some(Duration::from_millis(2600));
        assert_eq!(
            responses(&feed, &web, "svc.stream", &["a"], late).await,
            ["<a>"],
            "[{}] threshold",
            f.label
        );
    }
}

/// Create the `SPORTS` and `ARCHIVE` streams as `feed` and publish scores:
/// three matches, each updated, and a tennis match.
async fn scores(feed: &async_nats::Client) {
    let js = async_nats::jetstream::new(feed.clone());
    for (name, subject) in [("SPORTS", "sports.>"), ("ARCHIVE", "archive.>")] {
        let cfg = json!({"name": name, "subjects": [subject], "allow_direct": true});
        let reply = feed
            .request(
                format!("$JS.API.STREAM.CREATE.{name}"),
                Bytes::from(cfg.to_string()),
            )
            .await
            .expect("create");
        let v: serde_json::Value = serde_json::from_slice(&reply.payload).expect("json");
        assert!(v.get("error").is_none(), "{v}");
    }
    for (subject, score) in [
        ("sports.football.m1", "0-0"),
        ("sports.football.m2", "0-0"),
        ("sports.tennis.t1", "15-0"),
        ("sports.football.m1", "1-0"),
        ("sports.football.m3", "0-0"),
        ("sports.football.m2", "0-1"),
        ("sports.football.m1", "2-0"),
        ("archive.football.m0", "3-3"),
        ("archive.football.m9", "1-2"),
    ] {
        js.publish(subject, Bytes::from(score))
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_get_through_an_import() {
    for f in flavors(BIN) {
        eprintln!("=== {}", f.label);
        let (_server, feed, web) = start(&f).await;
        scores(&feed).await;
        let dg = "$JS.API.DIRECT.GET.SPORTS";
        for body in [
            r#"{"multi_last":["sports.football.*"]}"#,
            r#"{"multi_last":["sports.football.*"],"up_to_seq":5}"#,
            r#"{"batch":10,"seq":1}"#,
            r#"{"batch":2,"next_by_subj":"sports.football.m1"}"#,
            r#"{"multi_last":["sports.golf.*"]}"#,
            r#"{"batch":2}"#,
        ] {
            let own = replies(&feed, "SPORTS", dg, body, true).await;
            let imported = replies(&web, "SPORTS", dg, body, true).await;
            assert_eq!(imported, own, "[{}] {body}", f.label);
        }
        let football = replies(
            &web,
            "SPORTS",
            dg,
            r#"{"multi_last":["sports.football.*"]}"#,
            true,
        )
        .await;
        assert_eq!(
            football,
            [
                "sports.football.m3#5 0-0 np=2 last=0",
                "sports.football.m2#6 0-1 np=1 last=5",
                "sports.football.m1#7 2-0 np=0 last=6",
                "204 EOB np=0 last=7 upto=7",
            ],
            "[{}]",
            f.label
        );
        // The subject form through the wildcard import.
        let last = replies(
            &web,
            "SPORTS",
            &format!("{dg}.sports.football.m2"),
            "",
            false,
        )
        .await;
        assert_eq!(last, ["sports.football.m2#6 0-1"], "[{}]", f.label);
        // A singleton import delivers the first message of a batch only.
        let archive = "$JS.API.DIRECT.GET.ARCHIVE";
        let multi = r#"{"multi_last":["archive.>"]}"#;
        let own = replies(&feed, "ARCHIVE", archive, multi, true).await;
        assert_eq!(own.len(), 3, "[{}] {own:?}", f.label);
        let sentinel = (archive, r#"{"seq":8}"#);
        let cut = replies_before_sentinel(&web, "ARCHIVE", archive, multi, sentinel).await;
        assert_eq!(cut, own[..1], "[{}] singleton", f.label);
    }
}
