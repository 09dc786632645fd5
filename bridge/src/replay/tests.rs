//! replay_letter against the in-memory stream.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::process::message_hash;
use crate::state::fake::FakeStream;

const TOPIC: &str = "thesports/football/match/v1";

/// The router of a bridge subscribed to every sport's match topic (shared
/// with `letter`'s tests).
pub(super) fn router() -> Router {
    let cfg = Config::parse(
        r#"
        [mqtt]
        url = "mqtts://x:8883"
        [[mqtt.subscriptions]]
        topic = "thesports/+/match/v1"
        [nats]
    "#,
    )
    .expect("config");
    Router::new(&cfg)
}

fn states() -> MatchStates {
    MatchStates::new(state::Limits {
        max_matches: 100,
        idle_evict: Duration::from_secs(3600),
        ended_evict: Duration::from_secs(600),
        ended_status: HashMap::new(),
    })
}

/// A dead letter as the bridge writes one for a whole payload.
fn payload_letter(seq: u64, payload: &str, received_ms: u64) -> DeadLetter {
    DeadLetter {
        seq,
        msg_id: Some(format!("{}:dl", message_hash(TOPIC, payload.as_bytes()))),
        topic: Some(TOPIC.into()),
        entry: Ok(None),
        error: Some("an older parser's reason".into()),
        received_ms,
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    }
}

/// One run of `replay-dlq`: its own memory, the shared stream.
async fn run_once(stream: &FakeStream, letters: &[DeadLetter]) -> Vec<Report> {
    let (metrics, router, mut states) = (Metrics::default(), router(), states());
    let mut out = Vec::new();
    for l in letters {
        out.push(replay_letter(stream, &metrics, &mut states, &router, l).await);
    }
    out
}

#[tokio::test]
async fn replayed_once_however_often_it_runs() {
    let stream = FakeStream::default();
    let letters = [
        payload_letter(
            1,
            r#"[{"id":"m1","score":["m1",2,[1,0,0,0,0,0,0],[0,0,0,0,0,0,0],0,""]},{"id":"m2"}]"#,
            100,
        ),
        payload_letter(2, r#"{"id":"m1","incidents":[{"type":1,"time":9}]}"#, 200),
    ];
    let first = run_once(&stream, &letters).await;
    assert_eq!(
        first
            .iter()
            .map(|r| (r.result, r.updates, r.stored, r.already))
            .collect::<Vec<_>>(),
        [(Verdict::Replayed, 2, 2, 0), (Verdict::Replayed, 1, 1, 0)]
    );
    assert_eq!(stream.count(), 3);
    let m1 = stream.last("sports.football.m1").expect("m1 stored");
    assert_eq!((m1.state.rev, m1.state.incidents.len()), (2, 1));
    assert_eq!(m1.state.score.expect("score").home.score, Some(1));
    // Stored under the ids the live bridge would have used.
    let ids: Vec<String> = stream
        .inner
        .lock()
        .expect("lock")
        .msgs
        .iter()
        .filter_map(|(_, h, _)| h.get("Nats-Msg-Id").map(|v| v.to_string()))
        .collect();
    let h = message_hash(TOPIC, letters[0].payload.as_ref());
    assert_eq!(ids[..2], [format!("{h}:0"), format!("{h}:1")]);

    for _ in 0..2 {
        let again = run_once(&stream, &letters).await;
        assert!(
            again
                .iter()
                .all(|r| r.result == Verdict::Replayed && r.stored == 0),
            "{again:?}"
        );
        assert_eq!(again.iter().map(|r| r.already).sum::<usize>(), 3);
        assert_eq!(stream.count(), 3, "nothing stored twice");
    }
}

#[tokio::test]
async fn what_still_does_not_parse_is_reported_and_kept_apart() {
    let stream = FakeStream::default();
    let letters = [
        payload_letter(1, "{truncated", 100),
        payload_letter(2, r#"[{"id":"ok"},{"id":"bad.id"}]"#, 100),
        DeadLetter {
            topic: None,
            ..payload_letter(3, "[]", 100)
        },
    ];
    let r = run_once(&stream, &letters).await;
    assert_eq!(r[0].result, Verdict::StillMalformed);
    assert!(r[0]
        .reason
        .as_deref()
        .unwrap_or("")
        .contains("not valid JSON"));
    assert_eq!((r[1].result, r[1].stored), (Verdict::Partial, 1));
    assert!(r[1].reason.as_deref().unwrap_or("").contains("bad.id"));
    assert_eq!(r[2].result, Verdict::Skipped);
    assert_eq!(stream.count(), 1, "only the good entry");
}

/// Live traffic moved on after the dead letter: the replay fills in the
/// incident list the state does not have and leaves the newer score alone.
#[tokio::test]
async fn an_old_dead_letter_does_not_roll_the_match_back() {
    let stream = FakeStream::default();
    run_once(
        &stream,
        &[payload_letter(
            1,
            r#"{"id":"m1","score":["m1",4,[3,0,0,0,0,0,0],[1,0,0,0,0,0,0],0,""]}"#,
            500,
        )],
    )
    .await;
    let old = payload_letter(
        2,
        r#"{"id":"m1","score":["m1",2,[1,0,0,0,0,0,0],[0,0,0,0,0,0,0],0,""],"incidents":[{"type":1,"time":12}]}"#,
        100,
    );
    let r = run_once(&stream, &[old]).await;
    assert_eq!((r[0].result, r[0].stored), (Verdict::Replayed, 1));
    let m1 = stream.last("sports.football.m1").expect("m1");
    let score = m1.state.score.expect("score");
    assert_eq!((score.status_id, score.home.score), (Some(4), Some(3)));
    assert_eq!(m1.state.incidents.len(), 1);
    assert_eq!(m1.state.updated_at_ms, 500);
}

/// A dry run stores nothing but reports what a real run would, dead
/// letters of one match building on each other.
#[tokio::test]
async fn a_dry_run_stores_nothing() {
    struct Dry<'a>(&'a FakeStream);
    impl Backend for Dry<'_> {
        async fn load_last(&self, subject: &str, from_leader: bool) -> Option<StoredMsg> {
            self.0.load_last(subject, from_leader).await
        }
        async fn publish(&self, _: &str, _: HeaderMap, _: Bytes) -> Outcome {
            Outcome::Stored { seq: u64::MAX }
        }
    }
    let stream = FakeStream::default();
    let same = payload_letter(
        1,
        r#"{"id":"m1","score":["m1",2,[1,0,0,0,0,0,0],[0,0,0,0,0,0,0],0,""]}"#,
        100,
    );
    let (metrics, router, mut states) = (Metrics::default(), router(), states());
    let dry = Dry(&stream);
    let a = replay_letter(&dry, &metrics, &mut states, &router, &same).await;
    let b = replay_letter(&dry, &metrics, &mut states, &router, &same).await;
    assert_eq!((a.stored, b.stored, b.already), (1, 0, 1));
    assert_eq!(stream.count(), 0);
}
