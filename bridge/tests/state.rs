//! Every message is the whole match, also across bridge crashes: after a
//! restart the bridge continues from the last stored state of each match (an
//! incident sent before the crash is still there after an update that only
//! carried the score), and a redelivered update the stored state already
//! contains does not roll it back; and an upgrade from the v1 messages
//! continues live matches. (crash.rs and failover.rs check every match's last
//! state after a `kill -9` mid-feed and a node failure.)

mod support;

use std::time::Duration;

use support::*;
use tribune_bridge::payload::{Section, SCHEMA_ID};

const TOPIC: &str = "thesports/football/match/v1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_sent_before_a_restart_is_still_listed_after_it() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path(), None);
    let mqtt = embedded_broker();
    let mut bridge = BridgeProc::start(
        dir.path(),
        &bridge_config(&mqtt, &[nats.url()], "bridge-state-restart", ""),
    );
    bridge.wait_healthy().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());

    let a = r#"[{"id":"m1","score":["m1",2,[1,1,0,0,0,0,0],[0,0,0,0,0,0,0],1760000000,""],
        "incidents":[{"type":1,"position":1,"time":10,"player_name":"A. Silva","home_score":1,"away_score":0}],
        "tlive":[{"time":"10'","data":"Goal! (A. Silva)","position":1,"type":1}]}]"#;
    let b = r#"[{"id":"m1","score":["m1",2,[2,2,0,0,0,0,0],[0,0,0,0,0,0,0],1760000000,""],
        "stats":[{"type":2,"home":1,"away":0}]}]"#;
    publish_mqtt(&mqtt, TOPIC, &[a.to_owned(), b.to_owned()]).await;
    wait_for(
        "both states stored and acked",
        Duration::from_secs(60),
        || async {
            stream_messages(&js, "SPORTS").await == 2
                && bridge.metric("tribune_bridge_mqtt_acks_total") == 2
        },
    )
    .await;

    bridge.kill9();
    bridge.spawn();
    bridge.wait_healthy().await;
    // `a` again, byte for byte: what the MQTT broker redelivers when the
    // bridge died between the JetStream ack and the PUBACK. Merged again it
    // would roll the score back to 1-0; the stored state already has it.
    let c = r#"[{"id":"m1","stats":[{"type":2,"home":3,"away":0}]}]"#;
    publish_mqtt(&mqtt, TOPIC, &[a.to_owned(), c.to_owned()]).await;
    wait_for("the new state stored", Duration::from_secs(60), || async {
        stream_messages(&js, "SPORTS").await == 3
            && bridge.metric("tribune_bridge_mqtt_acks_total") == 2
    })
    .await;
    assert_eq!(
        bridge.metric("tribune_bridge_redeliveries_skipped_total"),
        1
    );
    let last = last_state(&js, "sports.football.m1").await.unwrap();
    let score = last.state.score.as_ref().expect("score");
    assert_eq!(
        (score.home.score, score.away.score),
        (Some(2), Some(0)),
        "no rollback"
    );
    assert_eq!(last.changed, [Section::Stats]);

    // Only the score: everything else is still there. The second half
    // kicked off 20 minutes and 5 seconds ago: the bridge's clock says 66'.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let half = now - 20 * 60 - 5;
    let d =
        format!(r#"[{{"id":"m1","score":["m1",4,[3,2,0,0,1,0,0],[0,0,0,1,0,0,0],{half},""]}}]"#);
    publish_mqtt(&mqtt, TOPIC, &[d]).await;
    wait_for(
        "the score-only state stored",
        Duration::from_secs(60),
        || async { stream_messages(&js, "SPORTS").await == 4 },
    )
    .await;
    let last = last_state(&js, "sports.football.m1")
        .await
        .expect("a state for m1");
    let s = &last.state;
    assert_eq!(s.schema, SCHEMA_ID);
    assert_eq!(s.rev, 4);
    assert_eq!(last.changed, [Section::Score], "this update's delta");
    let score = s.score.as_ref().expect("score");
    assert_eq!(
        (score.status_id, score.kickoff_ts),
        (Some(4), Some(half as i64))
    );
    assert_eq!((score.home.score, score.away.score), (Some(3), Some(0)));
    assert_eq!(s.incidents.len(), 1, "the incident from before the restart");
    assert_eq!(s.incidents[0].player_name.as_deref(), Some("A. Silva"));
    assert_eq!(s.tlive.len(), 1);
    assert_eq!(s.stats.len(), 1);
    assert_eq!(s.stats[0].home, Some(3.into()));
    // Derived when the bridge received it (within the 55 s the minute lasts).
    assert_eq!(s.minute, Some(66));
    let clock = s.clock.as_ref().expect("a clock in the second half");
    assert_eq!(
        (clock.period, clock.kickoff_ts, clock.running),
        (Some(2), Some(half as i64), true)
    );
    assert_eq!(
        bridge.metric("tribune_bridge_state_loads_total{result=\"found\"}"),
        1,
        "{}",
        bridge.metrics()
    );
    assert!(bridge.terminate());
}

/// Upgrading a running system: the stream an earlier bridge created has no
/// `allow_direct` and holds v1 messages (one partial update each). The bridge
/// turns direct gets on, and a match live across the upgrade continues from
/// its last v1 message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_from_v1_turns_direct_get_on_and_continues_live_matches() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path(), None);
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "SPORTS".into(),
        subjects: vec!["sports.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let v1 = serde_json::json!({
        "schema": "tribune.sports.match_update.v1", "sport": "football", "match_id": "m9",
        "provider": "thesports", "source_topic": TOPIC, "received_at_ms": 1,
        "score": {"status_id": 2, "kickoff_ts": 1760000000,
                  "home": {"score": 1, "detail": [1, 1, 0, 0, 0, 0, 0]},
                  "away": {"score": 0, "detail": [0, 0, 0, 0, 0, 0, 0]}}
    });
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "v1hash:0");
    js.publish_with_headers("sports.football.m9", headers, v1.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();

    let mqtt = embedded_broker();
    let bridge = BridgeProc::start(
        dir.path(),
        &bridge_config(&mqtt, &[nats.url()], "bridge-state-upgrade", ""),
    );
    bridge.wait_healthy().await;
    let mut stream = js.get_stream("SPORTS").await.unwrap();
    assert!(stream.info().await.unwrap().config.allow_direct);

    let stats = r#"[{"id":"m9","stats":[{"type":2,"home":4,"away":1}]}]"#;
    publish_mqtt(&mqtt, TOPIC, &[stats.to_owned()]).await;
    wait_for("the first v2 state", Duration::from_secs(60), || async {
        stream_messages(&js, "SPORTS").await == 2
    })
    .await;
    let last = last_state(&js, "sports.football.m9").await.unwrap();
    assert_eq!(last.state.schema, SCHEMA_ID);
    let score = last
        .state
        .score
        .as_ref()
        .expect("the score of the v1 message");
    assert_eq!(score.home.score, Some(1));
    assert_eq!(last.state.stats.len(), 1);
    assert_eq!(last.state.rev, 2);
    assert_eq!(
        bridge.metric("tribune_bridge_state_loads_total{result=\"legacy\"}"),
        1
    );
}
