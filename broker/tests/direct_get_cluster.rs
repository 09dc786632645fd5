//! Batch direct gets on a three-node JetStream cluster, asked through a
//! node that does not lead the stream, on three nats-server nodes and on
//! three tribune-broker nodes (`on_both_flavors!`, see `tests/cluster.rs`):
//!
//! - `r3_and_r1_from_other_nodes`: a replicated (R3) stream and a
//!   single-replica one; `multi_last`, batches and the subject form answer
//!   the same through every node, also after the stream's leader moved.
//! - `across_accounts_r3`: a user of account `APP`, connected to a node that
//!   does not lead the stream, reads a whole batch of account `SPORTS`'s
//!   stream through a service import with `response_type: stream` (the
//!   responses cross a route back to the importer's node).
//!
//! Every answer is compared with what the published messages say it must
//! be, so both servers give the same answers. Deadlines only guard against
//! hanging.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{json, Value};

use common::cluster::{Flavor, JsOptions};
use common::direct_get::replies;
use common::js_cluster::{JsCluster, REQUEST_TIMEOUT};
use common::js_publish::publish_sure;

/// seq -> (subject, payload) of what was published.
type Log = BTreeMap<u64, (String, String)>;

async fn create(jc: &JsCluster, via: usize, name: &str, subject: &str, replicas: i64) {
    let cfg = json!({
        "name": name,
        "subjects": [subject],
        "num_replicas": replicas,
        "allow_direct": true,
    });
    let v: Value = jc
        .poll(&format!("create {name}"), || async {
            jc.request_ok(
                via,
                &format!("$JS.API.STREAM.CREATE.{name}"),
                &cfg.to_string(),
            )
            .await
        })
        .await;
    assert_eq!(v["config"]["num_replicas"], replicas, "{v}");
}

/// Matches of `prefix` (`<prefix>.m<i>`) updated in turn, some more often.
async fn publish_scores(jc: &JsCluster, via: usize, prefix: &str, log: &mut Log) {
    let js = jc.js_patient(via);
    for round in 0..3 {
        for m in [2, 4, 1, 3] {
            if (m + round) % 4 == 0 {
                continue;
            }
            let subject = format!("{prefix}.m{m}");
            let payload = format!("{m}:{round}");
            let ack = publish_sure(&js, subject.clone(), Bytes::from(payload.clone())).await;
            log.insert(ack.sequence, (subject, payload));
        }
    }
}

/// What `multi_last` over `filter` as of `up_to` must answer.
fn want_multi(log: &Log, filter_prefix: &str, up_to: u64) -> Vec<String> {
    let mut last: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
    for (seq, (subject, payload)) in log.range(..=up_to) {
        if subject.starts_with(filter_prefix) {
            last.insert(subject, (*seq, payload));
        }
    }
    let mut by_seq: Vec<(u64, &str, &str)> =
        last.into_iter().map(|(s, (q, p))| (q, s, p)).collect();
    by_seq.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for (i, (seq, subject, payload)) in by_seq.iter().enumerate() {
        let np = by_seq.len() - i - 1;
        out.push(format!("{subject}#{seq} {payload} np={np} last={prev}"));
        prev = *seq;
    }
    out.push(format!("204 EOB np=0 last={prev} upto={up_to}"));
    out
}

/// A batch of everything from sequence 1, as it must be answered.
fn want_batch(log: &Log) -> Vec<String> {
    let n = log.len();
    let mut out = Vec::new();
    let mut prev = 0;
    for (i, (seq, (subject, payload))) in log.iter().enumerate() {
        out.push(format!(
            "{subject}#{seq} {payload} np={} last={prev}",
            n - i - 1
        ));
        prev = *seq;
    }
    out.push(format!("204 EOB np=0 last={prev}"));
    out
}

/// The replies to a direct get once they are `want`. nats-server lets any
/// current replica answer, and one may not have applied the very last
/// publish yet when asked, so a differing answer is asked again for a
/// while; tribune-broker's answers come from the leader.
async fn settled(
    client: &async_nats::Client,
    stream: &str,
    subject: &str,
    body: &str,
    batch: bool,
    want: &[String],
) {
    let end = std::time::Instant::now() + SETTLE;
    loop {
        let got = replies(client, stream, subject, body, batch).await;
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < end,
            "{subject} {body}:\n got {got:?}\nwant {want:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// How long replicas may take to apply what was acknowledged.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

/// Every check of one stream through the client of node `via`.
async fn check_stream(client: &async_nats::Client, stream: &str, prefix: &str, log: &Log) {
    let dg = format!("$JS.API.DIRECT.GET.{stream}");
    let last_seq = *log.keys().last().expect("published");
    let multi = format!(r#"{{"multi_last":["{prefix}.*"]}}"#);
    let want = want_multi(log, prefix, last_seq);
    settled(client, stream, &dg, &multi, true, &want).await;
    let mid = last_seq / 2;
    let multi_mid = format!(r#"{{"multi_last":["{prefix}.*"],"up_to_seq":{mid}}}"#);
    let want = want_multi(log, prefix, mid);
    settled(client, stream, &dg, &multi_mid, true, &want).await;
    let batch = format!(r#"{{"batch":{},"seq":1}}"#, log.len() + 5);
    settled(client, stream, &dg, &batch, true, &want_batch(log)).await;
    let (seq, (subject, payload)) = log
        .iter()
        .rev()
        .find(|(_, (s, _))| s.ends_with(".m1"))
        .expect("m1 scored");
    let want = [format!("{subject}#{seq} {payload}")];
    settled(client, stream, &format!("{dg}.{subject}"), "", false, &want).await;
    assert_eq!(
        replies(client, stream, &dg, r#"{"seq":99999}"#, false).await,
        ["404 Message Not Found"]
    );
    assert_eq!(
        replies(
            client,
            stream,
            &format!("{dg}.{subject}"),
            r#"{"batch":2}"#,
            false
        )
        .await,
        ["408 Bad Request"]
    );
}

/// The node hosting a single-replica stream (its leader).
async fn host_of(jc: &JsCluster, stream: &str) -> usize {
    let v = jc
        .poll(&format!("{stream} placed"), || async {
            let v = jc
                .request_ok(0, &format!("$JS.API.STREAM.INFO.{stream}"), "")
                .await?;
            match v["cluster"]["leader"].as_str() {
                Some(l) if !l.is_empty() => Ok(v.clone()),
                _ => Err(format!("no leader yet: {v}")),
            }
        })
        .await;
    jc.index_of(v["cluster"]["leader"].as_str().unwrap_or_default())
}

async fn r3_and_r1_from_other_nodes(flavor: Flavor) {
    let jc = JsCluster::start(flavor).await;
    create(&jc, 0, "SCORES", "football.>", 3).await;
    create(&jc, 0, "LOCAL", "tennis.>", 1).await;
    let (leader, _) = jc.wait_stream_leader("SCORES", None).await;
    let via = (leader + 1) % 3;
    let mut scores = Log::new();
    publish_scores(&jc, via, "football.live", &mut scores).await;
    let host = host_of(&jc, "LOCAL").await;
    let away = (host + 1) % 3;
    let mut local = Log::new();
    publish_scores(&jc, away, "tennis.live", &mut local).await;
    for i in [via, (via + 1) % 3] {
        if i != leader {
            check_stream(jc.client(i), "SCORES", "football.live", &scores).await;
        }
    }
    check_stream(jc.client(away), "LOCAL", "tennis.live", &local).await;
    // The leader moves: the old one now answers as a follower.
    let v = jc
        .request_ok(via, "$JS.API.STREAM.LEADER.STEPDOWN.SCORES", "")
        .await
        .unwrap_or_else(|e| panic!("stepdown: {e}"));
    assert_eq!(v["success"], true, "{v}");
    let old = jc.c.node(leader).name.clone();
    let (new_leader, _) = jc.wait_stream_leader("SCORES", Some(&old)).await;
    assert_ne!(new_leader, leader);
    publish_scores(&jc, leader, "football.live", &mut scores).await;
    check_stream(jc.client(leader), "SCORES", "football.live", &scores).await;
}

on_both_flavors!(r3_and_r1_from_other_nodes => r3_and_r1_from_other_nodes);

/// `SPORTS` holds the stream and is what the pinned clients use; `APP`
/// imports its direct gets as a stream of responses.
const ACCOUNTS: &str = r#"
accounts {
  SPORTS: {
    jetstream: enabled
    users: [ { user: feed, password: feed } ]
    exports: [
      { service: "$JS.API.DIRECT.GET.SCORES", response_type: stream }
      { service: "$JS.API.DIRECT.GET.SCORES.>", response_type: stream }
    ]
  }
  APP: {
    users: [ { user: web, password: web } ]
    imports: [
      { service: { account: SPORTS, subject: "$JS.API.DIRECT.GET.SCORES" } }
      { service: { account: SPORTS, subject: "$JS.API.DIRECT.GET.SCORES.>" } }
    ]
  }
  SYS: { users: [ { user: sys, password: sys } ] }
}
system_account: SYS
no_auth_user: feed
"#;

async fn across_accounts_r3(flavor: Flavor) {
    let opts = JsOptions {
        base_config: Some(ACCOUNTS.to_string()),
        ..JsOptions::default()
    };
    let jc = JsCluster::start_with(flavor, &opts).await;
    create(&jc, 0, "SCORES", "football.>", 3).await;
    let (leader, _) = jc.wait_stream_leader("SCORES", None).await;
    let via = (leader + 1) % 3;
    let mut scores = Log::new();
    publish_scores(&jc, via, "football.live", &mut scores).await;
    // The pinned client of a node is `feed`; `web` comes on the same node.
    let web = async_nats::ConnectOptions::with_user_and_password("web".into(), "web".into())
        .ignore_discovered_servers()
        .connect(jc.c.client_url(via));
    let web = tokio::time::timeout(REQUEST_TIMEOUT * 4, web)
        .await
        .expect("connect in time")
        .expect("connect as web");
    check_stream(&web, "SCORES", "football.live", &scores).await;
    // The same answers as the owner's own.
    let multi = r#"{"multi_last":["football.>"]}"#;
    let dg = "$JS.API.DIRECT.GET.SCORES";
    assert_eq!(
        replies(&web, "SCORES", dg, multi, true).await,
        replies(jc.client(via), "SCORES", dg, multi, true).await
    );
}

on_both_flavors!(across_accounts_r3 => across_accounts_r3);
