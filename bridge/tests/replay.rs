//! Operations: `tribune-bridge replay-dlq` against a real server while the
//! bridge runs, and the per-sport metrics.
//!
//! The simulator's malformed messages land in `SPORTS_DLQ`; none of them
//! parses with today's parser either, so they stand for what is still
//! malformed. Dead letters an older parser wrote, which today's accepts, are
//! put in the stream directly, with the headers the bridge writes: that is
//! the state "after a parser fix". Replaying stores their updates once (a
//! second run stores nothing), an old one does not roll its live match back,
//! the live bridge carries on from the replayed states, the still-malformed
//! ones stay, and `--delete-replayed` deletes only the replayed ones.

mod support;

use std::path::Path;
use std::time::Duration;

use async_nats::HeaderMap;
use serde_json::{json, Value};
use support::*;
use tribune_bridge::process::message_hash;

const UPDATES: u64 = 300;
const FOOTBALL: &str = "thesports/football/match/v1";
const BASKETBALL: &str = "thesports/basketball/match/v1";
const SPORTS: [&str; 3] = ["football", "basketball", "tennis"];

/// Runs `replay-dlq` with `args`; returns its per-dead-letter lines and the summary.
async fn replay(config: &Path, args: &[&str]) -> (Vec<Value>, Value) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tribune-bridge"))
        .arg("replay-dlq")
        .arg("-c")
        .arg(config)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("running replay-dlq");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "replay-dlq {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let summary = lines
        .pop()
        .and_then(|mut l| l.get_mut("summary").map(Value::take))
        .expect("the last line is the summary");
    (lines, summary)
}

/// Stores a dead letter as the bridge writes one; returns its sequence.
async fn put_dead_letter(
    js: &async_nats::jetstream::Context,
    topic: Option<&str>,
    entry: Option<usize>,
    received_ms: u64,
    payload: &str,
) -> u64 {
    let mut h = HeaderMap::new();
    if let Some(topic) = topic {
        let hash = message_hash(topic, payload.as_bytes());
        let id = match entry {
            Some(i) => format!("{hash}:dl:{i}"),
            None => format!("{hash}:dl"),
        };
        h.insert("Nats-Msg-Id", id.as_str());
        h.insert("Tribune-Mqtt-Topic", topic);
    }
    if let Some(i) = entry {
        h.insert("Tribune-Entry", i.to_string().as_str());
    }
    h.insert("Tribune-Error", "rejected by an older parser");
    h.insert("Tribune-Received-Ms", received_ms.to_string().as_str());
    js.publish_with_headers("deadletter.sports", h, payload.to_owned().into())
        .await
        .expect("publish")
        .await
        .expect("dead letter stored")
        .sequence
}

fn count(summary: &Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {summary}"))
}

fn by_seq(lines: &[Value], seq: u64) -> &Value {
    lines
        .iter()
        .find(|l| l["seq"] == seq)
        .unwrap_or_else(|| panic!("no line for dead letter {seq}"))
}

/// The per-sport counters add up to the totals, and every stored live
/// update has a lag observation.
fn check_sport_metrics(bridge: &BridgeProc, messages: u64, malformed: u64) {
    let text = bridge.metrics();
    let sum = |family: &str| -> u64 {
        SPORTS
            .iter()
            .chain(std::iter::once(&"other"))
            .map(|s| bridge.metric(&format!("{family}{{sport=\"{s}\"}}")))
            .sum()
    };
    assert_eq!(
        sum("tribune_bridge_sport_received_total"),
        messages,
        "{text}"
    );
    assert_eq!(
        sum("tribune_bridge_sport_published_total"),
        UPDATES,
        "{text}"
    );
    assert_eq!(
        sum("tribune_bridge_sport_dead_lettered_total"),
        malformed,
        "{text}"
    );
    assert_eq!(sum("tribune_bridge_sport_duplicates_total"), 0, "{text}");
    for s in SPORTS {
        let published = bridge.metric(&format!(
            "tribune_bridge_sport_published_total{{sport=\"{s}\"}}"
        ));
        assert!(published > 0, "{s}: {text}");
        assert_eq!(
            bridge.metric(&format!(
                "tribune_bridge_sport_lag_seconds_count{{sport=\"{s}\"}}"
            )),
            published,
            "{s}: one lag observation per stored update"
        );
        assert!(
            text.contains(&format!(
                "tribune_bridge_sport_lag_seconds_bucket{{sport=\"{s}\",le=\"+Inf\"}} {published}\n"
            )),
            "{text}"
        );
    }
    assert_eq!(
        bridge.metric("tribune_bridge_sport_received_total{sport=\"other\"}"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_replay_once_after_a_parser_fix() {
    init();
    let url = embedded_broker();
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path(), None);
    let config = bridge_config(&url, &[nats.url()], "bridge-replay", "");
    let mut bridge = BridgeProc::start(dir.path(), &config);
    bridge.wait_healthy().await;
    let replay_config = dir.path().join("replay.toml");
    std::fs::write(&replay_config, format!("{config}\n[http]\nlisten = \"\"\n")).unwrap();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());

    // The live feed, every 5th message malformed.
    let report = run_sim(&url, UPDATES, 0.0, 5, 21).await;
    assert!(report.malformed >= 30, "{report:?}");
    wait_for("all acked", Duration::from_secs(60), || async {
        bridge.metric("tribune_bridge_mqtt_acks_total") == report.messages
    })
    .await;
    assert_eq!(stream_messages(&js, "SPORTS").await, UPDATES);
    assert_eq!(stream_messages(&js, "SPORTS_DLQ").await, report.malformed);
    check_sport_metrics(&bridge, report.messages, report.malformed);

    // A live football match, and dead letters the parser accepts now.
    let live = stored_states(&client).await;
    let (live_subject, before) = live
        .iter()
        .filter(|(s, m)| s.starts_with("sports.football.") && m.state.score.is_some())
        .max_by_key(|(_, m)| m.state.rev)
        .map(|(s, m)| (s.clone(), m.state.clone()))
        .expect("a live football match");
    let live_id = before.match_id.clone();
    let now = tribune_bridge::mqtt::now_ms();
    let whole = put_dead_letter(
        &js,
        Some(FOOTBALL),
        None,
        now,
        r#"[{"id":"replay1","score":["replay1",2,[1,0,0,0,0,0,0],[0,0,0,0,0,0,0],0,""],"incidents":[{"type":1,"time":10}]},{"id":"replay2","score":["replay2",2,[0,0,0,0,0,0,0],[0,0,0,0,0,0,0],0,""]}]"#,
    )
    .await;
    let entry = put_dead_letter(
        &js,
        Some(BASKETBALL),
        Some(1),
        now,
        r#"{"id":"replay3","score":["replay3",2,300,[10,12,0,0,0],[8,9,0,0,0]]}"#,
    )
    .await;
    // Received long before the live match's current state: it may only
    // add what the state lacks (a key; its incident list only if the state
    // has none, as the state's would be a newer snapshot), not set the
    // score back.
    let old = put_dead_letter(
        &js,
        Some(FOOTBALL),
        None,
        1,
        &json!({"id": live_id, "score": [live_id, 2, [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], 0, ""],
                "incidents": [{"type": 3, "time": 1, "player_name": "Replayed Card"}],
                "replay_note": "late"})
        .to_string(),
    )
    .await;
    let foreign = put_dead_letter(&js, None, None, now, r#"{"id":"x"}"#).await;
    let replayable = [whole, entry, old];
    let dlq_total = report.malformed + 4;
    let stored_before = stream_messages(&js, "SPORTS").await;

    // Dry run: the report of a real run, nothing stored or deleted.
    let (lines, summary) = replay(&replay_config, &["--dry-run"]).await;
    assert_eq!(lines.len() as u64, dlq_total);
    assert_eq!(
        (
            count(&summary, "examined"),
            count(&summary, "replayed"),
            count(&summary, "still_malformed"),
            count(&summary, "skipped"),
            count(&summary, "stored"),
        ),
        (dlq_total, 3, report.malformed, 1, 4),
        "{summary}"
    );
    assert_eq!(summary["dry_run"], true);
    assert_eq!(stream_messages(&js, "SPORTS").await, stored_before);
    assert_eq!(stream_messages(&js, "SPORTS_DLQ").await, dlq_total);

    // The replay.
    let (lines, summary) = replay(&replay_config, &[]).await;
    assert_eq!(
        (
            count(&summary, "replayed"),
            count(&summary, "still_malformed"),
            count(&summary, "skipped"),
            count(&summary, "stored"),
            count(&summary, "deleted"),
        ),
        (3, report.malformed, 1, 4, 0),
        "{summary}"
    );
    for l in &lines {
        let seq = l["seq"].as_u64().unwrap();
        let want = if replayable.contains(&seq) {
            "replayed"
        } else if seq == foreign {
            "skipped"
        } else {
            "still_malformed"
        };
        assert_eq!(l["result"], want, "{l}");
        if want != "replayed" {
            assert!(l["reason"].as_str().is_some_and(|r| !r.is_empty()), "{l}");
        }
    }
    assert_eq!(by_seq(&lines, whole)["stored"], 2);
    assert_eq!(stream_messages(&js, "SPORTS").await, stored_before + 4);
    let states = stored_states(&client).await;
    let r1 = &states["sports.football.replay1"].state;
    assert_eq!((r1.rev, r1.incidents.len()), (1, 1));
    assert_eq!(r1.updated_at_ms, now, "the original receive time");
    assert!(states.contains_key("sports.football.replay2"));
    let r3 = &states["sports.basketball.replay3"].state;
    assert_eq!(r3.score.as_ref().and_then(|s| s.home.score), Some(22));
    let after = &states[&live_subject].state;
    assert_eq!(
        after.score, before.score,
        "an old dead letter does not roll back"
    );
    assert_eq!(after.extra.get("replay_note"), Some(&json!("late")));
    if before.incidents.is_empty() {
        assert_eq!(
            after
                .incidents
                .last()
                .and_then(|i| i.player_name.as_deref()),
            Some("Replayed Card")
        );
    } else {
        assert_eq!(after.incidents, before.incidents, "the newer list kept");
    }
    assert_eq!(after.rev, before.rev + 1);

    // The live bridge carries on from the replayed state (its own copy is
    // stale: the stream refuses it, it reloads and merges on top).
    publish_mqtt(
        &url,
        FOOTBALL,
        &[json!({"id": live_id, "score": [live_id, 4, [7, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], 0, ""]}).to_string()],
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let latest = loop {
        let state = stored_states(&client).await.remove(&live_subject);
        if let Some(m) =
            state.filter(|m| m.state.score.as_ref().and_then(|s| s.home.score) == Some(7))
        {
            break m.state;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the live update never landed; bridge log:\n{}",
            bridge.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        latest.incidents.len(),
        after.incidents.len(),
        "the incidents are kept"
    );
    assert_eq!(latest.rev, after.rev + 1);
    assert!(bridge.metric("tribune_bridge_state_conflicts_total") >= 1);
    let stored_now = stream_messages(&js, "SPORTS").await;

    // Again: nothing new stored.
    let (_, summary) = replay(&replay_config, &[]).await;
    assert_eq!(
        (
            count(&summary, "replayed"),
            count(&summary, "stored"),
            count(&summary, "already")
        ),
        (3, 0, 4),
        "{summary}"
    );
    assert_eq!(stream_messages(&js, "SPORTS").await, stored_now);

    // A range, deleting: only that dead letter goes.
    let seq = entry.to_string();
    let (lines, summary) = replay(
        &replay_config,
        &["--from-seq", &seq, "--to-seq", &seq, "--delete-replayed"],
    )
    .await;
    assert_eq!(lines.len(), 1);
    assert_eq!(
        (count(&summary, "examined"), count(&summary, "deleted")),
        (1, 1)
    );
    assert_eq!(stream_messages(&js, "SPORTS_DLQ").await, dlq_total - 1);

    // Everything, deleting: the replayed ones go, the rest stays.
    let (lines, summary) = replay(&replay_config, &["--delete-replayed"]).await;
    assert_eq!(count(&summary, "examined"), dlq_total - 1);
    assert_eq!(
        (count(&summary, "deleted"), count(&summary, "stored")),
        (2, 0)
    );
    assert!(lines
        .iter()
        .all(|l| l["deleted"] == (l["result"] == "replayed")));
    assert_eq!(
        stream_messages(&js, "SPORTS_DLQ").await,
        report.malformed + 1,
        "still-malformed and foreign dead letters stay"
    );
    let dlq = js.get_stream("SPORTS_DLQ").await.unwrap();
    for seq in replayable {
        assert!(dlq.get_raw_message(seq).await.is_err(), "{seq} deleted");
    }
    assert!(dlq.get_raw_message(foreign).await.is_ok());
    assert_eq!(stream_messages(&js, "SPORTS").await, stored_now);

    // Nothing left to replay.
    let (_, summary) = replay(&replay_config, &["--delete-replayed"]).await;
    assert_eq!(
        (count(&summary, "replayed"), count(&summary, "deleted")),
        (0, 0)
    );
    assert!(bridge.alive());
    assert!(bridge.terminate(), "clean exit on SIGTERM");
}
