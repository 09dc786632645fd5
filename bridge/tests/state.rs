//! Every message is the whole match, also across bridge crashes: after a
//! restart the bridge continues from the last stored state of each match (an
//! incident sent before the crash is still there after an update that only
//! carried the score), and a redelivered update the stored state already
//! contains does not roll it back. (crash.rs checks every match's last state
//! after a `kill -9` mid-feed.)

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

    // Only the score: everything else is still there.
    let d = r#"[{"id":"m1","score":["m1",4,[3,2,0,0,1,0,0],[0,0,0,1,0,0,0],1760000000,""]}]"#;
    publish_mqtt(&mqtt, TOPIC, &[d.to_owned()]).await;
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
        (Some(4), Some(1760000000))
    );
    assert_eq!((score.home.score, score.away.score), (Some(3), Some(0)));
    assert_eq!(s.incidents.len(), 1, "the incident from before the restart");
    assert_eq!(s.incidents[0].player_name.as_deref(), Some("A. Silva"));
    assert_eq!(s.tlive.len(), 1);
    assert_eq!(s.stats.len(), 1);
    assert_eq!(s.stats[0].home, Some(3.into()));
    assert_eq!(s.minute, Some(10));
    assert_eq!(
        bridge.metric("tribune_bridge_state_loads_total{result=\"found\"}"),
        1,
        "{}",
        bridge.metrics()
    );
    assert!(bridge.terminate());
}
