//! Mirrors and sources: the same streams, publishes and API requests go to
//! nats-server and tribune-broker, and the transcripts must be equal: what
//! each mirror and source holds (sequence, subject, data, the
//! `Nats-Stream-Source` header), their `STREAM.INFO` sections, the
//! configuration checks and their errors, and what survives a restart
//! (a feed resumes where it stopped: nothing twice, nothing missed).
//!
//! Two sources of one stream interleave as their deliveries happen to
//! arrive, so a source stream's content is compared per subject. nats-server
//! 2.15 adds its origin's stream identity to `Nats-Stream-Source`; Tribune's
//! streams have none, so that last field is left out of the comparison.
//!
//! Waiting is by polling with a deadline that only guards against hanging;
//! nothing asserts a duration.

mod common;

use common::js::{same_on_every_flavor, Durable, Flavor, Js};
use common::sourcing::{config, contents, create, feed_info, outcome, publish, settle, C};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

async fn mirrors_and_sources(f: Flavor) -> Vec<String> {
    let server = Js::start(&f).await;
    let js = C::of(&server);
    let mut t = Vec::new();
    t.push(
        create(
            &js,
            json!({"name": "O", "subjects": ["o.>"], "allow_direct": true}),
        )
        .await,
    );
    for i in 1..=6 {
        t.push(publish(&js, &format!("o.{}", i % 2), &format!("m{i}")).await);
    }
    // A gap in the origin: the mirror keeps it as a gap.
    let v = js
        .api(
            "$JS.API.STREAM.MSG.DELETE.O",
            &json!({"seq": 3}).to_string(),
        )
        .await;
    t.push(format!("delete 3: {}", outcome(&v)));

    t.push(create(&js, json!({"name": "M", "mirror": {"name": "O"}})).await);
    t.push(
        create(
            &js,
            json!({"name": "MF", "mirror": {"name": "O", "filter_subject": "o.1"}}),
        )
        .await,
    );
    t.push(
        create(
            &js,
            json!({"name": "MS", "mirror": {"name": "O", "opt_start_seq": 4}}),
        )
        .await,
    );
    t.push(
        create(
            &js,
            json!({"name": "S", "subjects": ["s.>"], "sources": [
                {"name": "O", "filter_subject": "o.1"},
                {"name": "O", "subject_transforms": [{"src": "o.0", "dest": "t.0"}]}
            ]}),
        )
        .await,
    );
    t.push(settle(&js, "M", 5).await);
    t.push(settle(&js, "MF", 2).await);
    t.push(settle(&js, "MS", 3).await);
    t.push(settle(&js, "S", 5).await);
    // Later publishes flow through; the source's own subjects still work.
    t.push(publish(&js, "o.1", "later").await);
    t.push(settle(&js, "S", 6).await);
    t.push(publish(&js, "s.own", "own").await);
    t.push(settle(&js, "M", 6).await);
    t.push(settle(&js, "MF", 3).await);
    t.push(settle(&js, "MS", 4).await);
    t.push(settle(&js, "S", 7).await);
    for s in ["M", "MF", "MS"] {
        t.extend(contents(&js, s).await);
    }
    let mut sourced = contents(&js, "S").await;
    // Interleaving of the two sources is arrival order: compare the
    // messages without their sequence, sorted.
    for l in sourced.iter_mut() {
        *l = l
            .split_once(' ')
            .map(|(_, r)| r.to_string())
            .unwrap_or_default();
    }
    sourced.sort();
    t.extend(sourced);
    for s in ["M", "MF", "S"] {
        t.push(feed_info(&js, s).await);
        t.push(config(&js, s).await);
    }
    // The origin's consumers for the feeds are not listed nor counted.
    let v = js.api("$JS.API.CONSUMER.NAMES.O", "").await;
    t.push(format!("O consumers: {}", v["consumers"]));
    let v = js.api("$JS.API.STREAM.INFO.O", "").await;
    t.push(format!(
        "O consumer_count: {}",
        v["state"]["consumer_count"]
    ));

    // What a mirror or source may not be.
    for cfg in [
        json!({"name": "X", "mirror": {"name": "O"}, "subjects": ["x"]}),
        json!({"name": "X", "mirror": {"name": "O"}, "sources": [{"name": "O"}]}),
        json!({"name": "X", "mirror": {"name": "O.x"}}),
        json!({"name": "X", "mirror": {"name": "O", "filter_subject": "o.1",
            "subject_transforms": [{"src": "o.0", "dest": "x.0"}]}}),
        json!({"name": "X", "mirror": {"name": "O", "subject_transforms": [
            {"src": "o.>", "dest": ""}, {"src": "o.1", "dest": ""}]}}),
        json!({"name": "X", "mirror": {"name": "O", "subject_transforms": [
            {"src": "o.*", "dest": "x.{{wildcard(2)}}"}]}}),
        json!({"name": "X", "mirror": {"name": "O"}, "subject_delete_marker_ttl": 2_000_000_000i64}),
        json!({"name": "X", "sources": [{"name": ""}]}),
        json!({"name": "X", "sources": [{"name": "O"}, {"name": "O"}]}),
        json!({"name": "X", "sources": [{"name": "O", "filter_subject": "o.1",
            "subject_transforms": [{"src": "o.0", "dest": "x.0"}]}]}),
        json!({"name": "X", "sources": [{"name": "O", "subject_transforms": [
            {"src": "o.>", "dest": ""}, {"src": "o.1", "dest": ""}]}]}),
        json!({"name": "X", "sources": [{"name": "O", "subject_transforms": [
            {"src": "o.*", "dest": "x.{{wildcard(2)}}"}]}]}),
        json!({"name": "X", "sources": [{"name": "O", "external": {"api": "$JS.API"}}]}),
        json!({"name": "X", "sources": [{"name": "O", "external": {"api": "a.b", "deliver": "d.*"}}]}),
    ] {
        t.push(format!("{cfg}: {}", create(&js, cfg.clone()).await));
    }
    t.push(
        create(
            &js,
            json!({"name": "MAXED", "subjects": ["maxed"], "max_msg_size": 100}),
        )
        .await,
    );
    t.push(
        create(
            &js,
            json!({"name": "X", "max_msg_size": 10, "sources": [{"name": "MAXED"}]}),
        )
        .await,
    );
    t.push(
        create(
            &js,
            json!({"name": "X", "max_msg_size": 10, "mirror": {"name": "MAXED"}}),
        )
        .await,
    );
    // A cycle: A sources B, B sources A.
    t.push(create(&js, json!({"name": "A", "subjects": ["a"]})).await);
    t.push(
        create(
            &js,
            json!({"name": "B", "subjects": ["b"], "sources": [{"name": "A"}]}),
        )
        .await,
    );
    let v = js
        .api(
            "$JS.API.STREAM.UPDATE.A",
            &json!({"name": "A", "subjects": ["a"], "sources": [{"name": "B"}]}).to_string(),
        )
        .await;
    t.push(format!("update A to source B: {}", outcome(&v)));

    // A mirror's origin is fixed; a source list may change.
    let v = js
        .api(
            "$JS.API.STREAM.UPDATE.M",
            &json!({"name": "M", "mirror": {"name": "O", "filter_subject": "o.1"}}).to_string(),
        )
        .await;
    t.push(format!("update M's mirror: {}", outcome(&v)));
    let v = js
        .api(
            "$JS.API.STREAM.UPDATE.S",
            &json!({"name": "S", "subjects": ["s.>"], "sources": [
                {"name": "O", "filter_subject": "o.1"}]})
            .to_string(),
        )
        .await;
    t.push(format!("update S to one source: {}", outcome(&v)));
    t.push(publish(&js, "o.1", "after-update").await);
    t.push(publish(&js, "o.0", "not-sourced-any-more").await);
    t.push(settle(&js, "S", 8).await);
    t.push(feed_info(&js, "S").await);

    // A source whose origin does not exist yet starts once it does.
    t.push(
        create(
            &js,
            json!({"name": "LATE", "sources": [{"name": "NOTYET"}]}),
        )
        .await,
    );
    t.push(create(&js, json!({"name": "NOTYET", "subjects": ["notyet"]})).await);
    t.push(publish(&js, "notyet", "arrives").await);
    t.push(settle(&js, "LATE", 1).await);
    t.extend(contents(&js, "LATE").await);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_and_sources_as_nats_server_keeps_them() {
    same_on_every_flavor(BIN, mirrors_and_sources).await;
}

/// A mirror and a source stop with their server and resume after its
/// restart from what they hold: nothing twice, nothing missed.
async fn resume_after_restart(f: Flavor) -> Vec<String> {
    let store = Durable::new(&f.bin);
    let mut t = Vec::new();
    {
        let server = Js::on(f.label, store.start()).await;
        let js = C::of(&server);
        t.push(create(&js, json!({"name": "O", "subjects": ["o.>"]})).await);
        t.push(create(&js, json!({"name": "M", "mirror": {"name": "O"}})).await);
        t.push(
            create(
                &js,
                json!({"name": "S", "sources": [{"name": "O", "filter_subject": "o.s"}]}),
            )
            .await,
        );
        for i in 1..=4 {
            let subject = if i % 2 == 0 { "o.s" } else { "o.m" };
            t.push(publish(&js, subject, &format!("before{i}")).await);
        }
        t.push(settle(&js, "M", 4).await);
        t.push(settle(&js, "S", 2).await);
    }
    let server = Js::on(f.label, store.start()).await;
    let js = C::of(&server);
    for i in 5..=8 {
        let subject = if i % 2 == 0 { "o.s" } else { "o.m" };
        t.push(publish(&js, subject, &format!("after{i}")).await);
    }
    t.push(settle(&js, "M", 8).await);
    t.push(settle(&js, "S", 4).await);
    t.extend(contents(&js, "M").await);
    t.extend(contents(&js, "S").await);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_and_sources_resume_after_a_restart() {
    same_on_every_flavor(BIN, resume_after_restart).await;
}

/// Account A keeps the origin; account B mirrors and sources it through
/// `external` prefixes and the imports nats-server's documentation names:
/// A's JetStream API under `$JS.A.API`, its deliveries under `dlv.a`, and
/// the flow control replies.
const ACROSS: &str = r#"
jetstream { store_dir: "{dir}/js" }
accounts {
  A {
    jetstream: enabled
    users: [{user: a, password: a}]
    exports: [
      {service: "$JS.API.>"}
      {service: "$JS.FC.>"}
      {stream: "dlv.a.>"}
    ]
  }
  B {
    jetstream: enabled
    users: [{user: b, password: b}]
    imports: [
      {service: {account: A, subject: "$JS.API.>"}, to: "$JS.A.API.>"}
      {service: {account: A, subject: "$JS.FC.>"}}
      {stream: {account: A, subject: "dlv.a.>"}}
    ]
  }
}
"#;

async fn across_accounts(f: Flavor) -> Vec<String> {
    let srv = common::ServerSpec::new(&f.bin)
        .config(ACROSS)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("nats://127.0.0.1:{}", srv.port);
    let connect = |u: &'static str| {
        let url = url.clone();
        async move {
            async_nats::ConnectOptions::with_user_and_password(u.into(), u.into())
                .connect(&url)
                .await
                .unwrap_or_else(|e| panic!("connect {u}: {e}"))
        }
    };
    let a = C::new(f.label, connect("a").await);
    let b = C::new(f.label, connect("b").await);
    let mut t = Vec::new();
    t.push(create(&a, json!({"name": "O", "subjects": ["o.>"]})).await);
    for i in 1..=3 {
        t.push(publish(&a, &format!("o.{i}"), &format!("m{i}")).await);
    }
    let external = json!({"api": "$JS.A.API", "deliver": "dlv.a"});
    t.push(
        create(
            &b,
            json!({"name": "M", "mirror": {"name": "O", "external": external}}),
        )
        .await,
    );
    t.push(
        create(
            &b,
            json!({"name": "S", "sources": [{"name": "O", "filter_subject": "o.2",
                "external": external}]}),
        )
        .await,
    );
    t.push(settle(&b, "M", 3).await);
    t.push(settle(&b, "S", 1).await);
    t.push(publish(&a, "o.2", "later").await);
    t.push(settle(&b, "M", 4).await);
    t.push(settle(&b, "S", 2).await);
    t.extend(contents(&b, "M").await);
    t.extend(contents(&b, "S").await);
    t.push(feed_info(&b, "M").await);
    t.push(feed_info(&b, "S").await);
    drop(srv);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_and_sources_across_accounts() {
    same_on_every_flavor(BIN, across_accounts).await;
}
