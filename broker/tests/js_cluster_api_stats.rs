//! `$JS.API.INFO`'s `api` counters in a three-node cluster, against
//! nats-server: each API call is counted once, by the server that answers
//! it, and the account info (answered by the meta leader) adds up what every
//! server reported, so calls made through any node show.
//!
//! Reports travel every 1.5 s (nats-server's `usageTick`), so the counters
//! are read once they have settled: polled until several reads in a row
//! moved by nothing but the reads themselves (each read is an API call the
//! meta leader counts). Waiting is only a guard; nothing asserts a time.

mod common;

use std::time::Duration;

use common::cluster::Flavor;
use common::js_cluster::{JsCluster, JS_DEADLINE};
use serde_json::Value;
use tokio::time::Instant;

/// Reads in a row that must agree before the counters count as settled,
/// and the pause between them (more than two report periods in all).
const STEADY_READS: usize = 8;
const READ_PAUSE: Duration = Duration::from_millis(500);

struct Reader {
    reads: u64,
}

impl Reader {
    /// `(total, errors, reads before this one)` from one account info.
    async fn read(&mut self, c: &JsCluster) -> (u64, u64, u64) {
        let v: Value = c
            .request_ok(0, "$JS.API.INFO", "")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let before = self.reads;
        self.reads += 1;
        (
            v["api"]["total"].as_u64().unwrap_or(0),
            v["api"]["errors"].as_u64().unwrap_or(0),
            before,
        )
    }

    /// Counters once only the reads move them: `(total, errors, reads)`.
    async fn settled(&mut self, c: &JsCluster) -> (u64, u64, u64) {
        let end = Instant::now() + JS_DEADLINE;
        let mut last = self.read(c).await;
        let mut steady = 0;
        while steady < STEADY_READS {
            assert!(Instant::now() < end, "API counters never settled: {last:?}");
            tokio::time::sleep(READ_PAUSE).await;
            let next = self.read(c).await;
            let moved_by_reads_only = next.0 - last.0 == next.2 - last.2 && next.1 == last.1;
            steady = if moved_by_reads_only { steady + 1 } else { 0 };
            last = next;
        }
        last
    }
}

/// What the calls below added to the account's counters: `(total, errors)`.
async fn calls_counted(c: &JsCluster) -> (u64, u64) {
    // A stream led by a server other than the meta leader, so one call below
    // is answered (and counted) elsewhere.
    let meta = c.wait_meta_leader().await;
    let away = "S";
    c.request_ok(
        0,
        "$JS.API.STREAM.CREATE.S",
        r#"{"name":"S","subjects":["s"],"num_replicas":3}"#,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut leader = c.wait_stream_leader(away, None).await.0;
    for _ in 0..5 {
        if leader != meta {
            break;
        }
        let old = c.c.node(leader).name.clone();
        c.request_ok(0, "$JS.API.STREAM.LEADER.STEPDOWN.S", "")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        leader = c.wait_stream_leader(away, Some(&old)).await.0;
    }
    assert_ne!(leader, meta, "stream S still led by the meta leader");
    // Stored data on every server: nats-server sends an account's usage
    // report only from servers holding some.
    c.request_ok(leader, "s", "{}")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut r = Reader { reads: 0 };
    let before = r.settled(c).await;
    // Answered by the stream's leader.
    c.request_ok(0, &format!("$JS.API.STREAM.INFO.{away}"), "")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Through every node, answered by the meta leader: an error, a listing,
    // another error and an account info.
    let _ = c.request(0, "$JS.API.STREAM.INFO.NOPE", "").await;
    let _ = c.request(1, "$JS.API.STREAM.NAMES", "").await;
    let _ = c.request(2, "$JS.API.STREAM.INFO.NOPE", "").await;
    let _ = c.request(1, "$JS.API.INFO", "").await;
    let after = r.settled(c).await;
    let reads_between = after.2 - before.2;
    (after.0 - before.0 - reads_between, after.1 - before.1)
}

/// The same five calls count (5 calls, 2 errors) on either server.
async fn calls_through_every_node_add_up(flavor: Flavor) {
    let c = JsCluster::start(flavor).await;
    assert_eq!(calls_counted(&c).await, (5, 2), "{flavor:?}");
}

on_both_flavors!(calls_through_every_node_add_up_as_on_nats_server => calls_through_every_node_add_up);

/// Account JetStream limits in a cluster: the meta leader checks stream
/// count and reservations (replicated streams reserve on every replica)
/// against the domain's assignments before proposing.
const LIMITED: &str = r#"
accounts {
  APP: {
    jetstream { max_mem: 1MB, max_streams: 2, mem_max_stream_bytes: 400K }
    users: [ { user: app, password: app } ]
  }
  SYS: { users: [ { user: sys, password: sys } ] }
}
system_account: SYS
no_auth_user: app
"#;

async fn limits_in_a_cluster(flavor: Flavor) -> Vec<(String, String)> {
    let opts = common::cluster::JsOptions {
        base_config: Some(LIMITED.to_string()),
        ..Default::default()
    };
    let c = JsCluster::start_with(flavor, &opts).await;
    let mut seen = Vec::new();
    let create = |name: &str, replicas: u32, max_bytes: i64| {
        let body = format!(
            r#"{{"name":"{name}","subjects":["{name}"],"storage":"memory","num_replicas":{replicas},"max_bytes":{max_bytes}}}"#
        );
        let subject = format!("$JS.API.STREAM.CREATE.{name}");
        let c = &c;
        async move {
            match c.request(1, &subject, &body).await {
                Ok(v) => match v.get("error") {
                    Some(e) => format!("error {e}"),
                    None => "ok".to_string(),
                },
                Err(e) => format!("no answer: {e}"),
            }
        }
    };
    seen.push((
        "R3 over the per-stream cap".into(),
        create("A", 3, 500 * 1024).await,
    ));
    seen.push((
        "R3 300K (900K reserved)".into(),
        create("A", 3, 300 * 1024).await,
    ));
    seen.push((
        "R1 200K over max_mem".into(),
        create("B", 1, 200 * 1024).await,
    ));
    seen.push(("R1 100K".into(), create("B", 1, 100 * 1024).await));
    seen.push(("third stream".into(), create("C", 1, 1).await));
    seen.push((
        "A again, same config".into(),
        create("A", 3, 300 * 1024).await,
    ));
    let info = c
        .request_ok(0, "$JS.API.INFO", "")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    seen.push(("limits".into(), info["limits"].to_string()));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_limits_in_a_cluster_as_on_nats_server() {
    let theirs = limits_in_a_cluster(Flavor::NatsServer).await;
    let ours = limits_in_a_cluster(Flavor::Tribune).await;
    for (t, o) in theirs.iter().zip(&ours) {
        assert_eq!(
            o, t,
            "{:?}: tribune-broker (left) and nats-server (right) differ",
            t.0
        );
    }
    assert_eq!(ours.len(), theirs.len());
}
