//! The bridge's provider-payload path (tribune-bridge without its `service`
//! feature): one MQTT message (topic + payload bytes) through
//! `process::Router::process` (topic -> sport, `payload::split_payload`,
//! `payload::normalise_match`, `subject::match_subject`) into match updates
//! and dead letters, and each update merged into its match's state and
//! serialised as the bridge publishes it (`state::Held`,
//! `MatchState::merge`, `StateMessage`), as the pipeline does for a new
//! match. The router is configured as the bridge's default config with the
//! subscriptions `thesports/football/match/v1`, `thesports/+/match/v1` and
//! `feeds/special` (sport `tennis`).
//!
//! Input:
//! ```text
//! byte 0   bit 7 clear: index into TOPICS (provider topic layouts from
//!          bridge/PROVIDER_FORMAT.md §2 and the bridge's tests);
//!          bit 7 set: byte 1 is a length n and the next n bytes the topic
//!          (lossy UTF-8, as MQTT topics are strings)
//! byte     receive time: 0xff u64::MAX, 0xfe 0, else the fixtures'
//!          kick-off time (2026-01-01 18:51 UTC) + that many minutes
//! rest     the payload
//! ```
//! Checked:
//! - nothing panics;
//! - processing is deterministic: the same message twice, and through
//!   `process_as` with its `message_hash`, gives the same updates, ids and
//!   dead letters;
//! - every payload entry becomes exactly one update or one dead letter, in
//!   order, with ids `<hash>:<i>` / `<hash>:dl:<i>`; a payload that is not
//!   JSON / not a list of matches, a topic without a sport level and a sport
//!   without a known layout become exactly one dead letter holding the raw
//!   bytes (`<hash>:dl`); a dead-lettered entry is JSON and, replayed as
//!   `replay` does (`route_entry`), fails the same way again;
//! - each update's subject is `sports.<sport>.<matchId>`: three tokens, each
//!   non-empty, without `.`, `*`, `>`, whitespace or control characters,
//!   the sport a supported one, the match id the entry's `id`;
//! - the update's JSON (the old v1 message) reads back as the same update,
//!   and a v1 message of it starts the same state;
//! - the published state parses (as `MatchMessage`) into the state merged,
//!   with its `changed` / `added`; `rev` moves by one exactly when
//!   something changed; merging the same update again changes nothing
//!   (idempotence); and the stored message read back (`Held::from_stored`,
//!   as after a restart) is that state, with the update among the applied.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;
use tribune_bridge::payload::{
    split_payload, MatchMessage, MatchUpdate, Sport, StateMessage, LEGACY_SCHEMA_V1, SCHEMA_ID,
};
use tribune_bridge::process::{message_hash, Processed, Router};
use tribune_bridge::state::{Held, LoadKind, StoredMsg};

const PREFIX: &str = "sports";
const DEAD_LETTERS: &str = "deadletter.sports";
const PROVIDER: &str = "thesports";

const TOPICS: [&str; 16] = [
    "thesports/football/match/v1",
    "thesports/basketball/match/v1",
    "thesports/tennis/match/v1",
    "thesports/baseball/match/v1",
    "thesports/american_football/match/v1",
    "thesports/cricket/match/v1",
    "feeds/special",
    "thesports/Football/match/v1",
    "bench/football/match/v1",
    "t/football",
    "thesports/",
    "a",
    "thesports/foot.ball/x",
    "thesports/foot ball/match/v1",
    "production/thesportswww/match/lives",
    "thesports/+/match/v1",
];

/// The fixtures' football kick-off (`score[4]` of football-score.json), ms.
const KICKOFF_MS: u64 = 1_767_293_460_000;

fn router() -> &'static Router {
    static R: OnceLock<Router> = OnceLock::new();
    R.get_or_init(|| {
        Router::from_parts(
            PREFIX,
            DEAD_LETTERS,
            PROVIDER,
            1,
            [
                ("thesports/football/match/v1", None),
                ("thesports/+/match/v1", None),
                ("feeds/special", Some("tennis")),
            ],
        )
    })
}

/// A subject token as NATS needs it, checked here rather than with the
/// bridge's own `validate_token`.
fn assert_token(t: &str, subject: &str) {
    assert!(!t.is_empty(), "empty token in {subject:?}");
    assert!(
        !t.chars()
            .any(|c| matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control()),
        "bad token {t:?} in {subject:?}"
    );
}

fn same(a: &Processed, b: &Processed) {
    assert_eq!(a.sport, b.sport);
    assert_eq!(
        (a.malformed_payload, a.malformed_elements, a.empty),
        (b.malformed_payload, b.malformed_elements, b.empty)
    );
    assert_eq!(a.updates.len(), b.updates.len());
    for (x, y) in a.updates.iter().zip(&b.updates) {
        assert_eq!((&x.subject, &x.msg_id), (&y.subject, &y.msg_id));
        assert_eq!(x.update, y.update, "normalising is not deterministic");
    }
    assert_eq!(a.dead_letters.len(), b.dead_letters.len());
    for (x, y) in a.dead_letters.iter().zip(&b.dead_letters) {
        assert_eq!(
            (&x.subject, &x.msg_id, &x.payload, &x.reason, x.entry),
            (&y.subject, &y.msg_id, &y.payload, &y.reason, y.entry)
        );
    }
}

/// The entry's `id` as the match id it must become.
fn entry_id(entry: &Value) -> Option<String> {
    match entry.get("id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn check_message(topic: &str, payload: &[u8], at: u64) {
    let r = router();
    let p = r.process(topic, payload, at);
    same(&p, &r.process(topic, payload, at));
    let hash = message_hash(topic, payload);
    same(&p, &r.process_as(&hash, topic, payload, at));
    assert_eq!(p.sport, r.sport_for(topic));
    if let Some(s) = &p.sport {
        assert_token(s, s);
    }

    let sport = p.sport.as_deref().filter(|s| Sport::from_name(s).is_some());
    let entries = match (sport, split_payload(payload)) {
        (Some(sport), Ok(entries)) => Some((sport, entries)),
        _ => None,
    };
    let Some((sport, entries)) = entries else {
        // Refused whole: one dead letter with the bytes as received.
        assert!(p.malformed_payload && p.updates.is_empty() && !p.empty);
        assert_eq!(p.dead_letters.len(), 1);
        let dl = &p.dead_letters[0];
        assert_eq!(dl.subject, DEAD_LETTERS);
        assert_eq!(dl.msg_id, format!("{hash}:dl"));
        assert_eq!(&dl.payload[..], payload);
        assert_eq!(dl.entry, None);
        assert!(!dl.reason.is_empty());
        return;
    };

    assert!(!p.malformed_payload);
    assert_eq!(p.empty, entries.is_empty());
    assert_eq!(p.updates.len() + p.malformed_elements, entries.len());
    assert_eq!(p.dead_letters.len(), p.malformed_elements);
    let (mut updates, mut dead) = (p.updates.iter(), p.dead_letters.iter());
    for (i, entry) in entries.iter().enumerate() {
        let replayed = r.route_entry(&hash, topic, sport, i, entry, at);
        if let Ok(want) = &replayed {
            let u = updates.next().expect("an update for a valid entry");
            assert_eq!(u.msg_id, format!("{hash}:{i}"));
            assert_eq!((&u.subject, &u.update), (&want.subject, &want.update));
            let tokens: Vec<&str> = u.subject.split('.').collect();
            assert_eq!(tokens.len(), 3, "subject {:?}", u.subject);
            tokens.iter().for_each(|t| assert_token(t, &u.subject));
            assert_eq!(tokens[0], PREFIX);
            assert_eq!(tokens[1], sport);
            assert_eq!(Some(tokens[2].to_owned()), entry_id(entry));
            let m = &u.update;
            assert_eq!(
                (m.sport.as_str(), m.match_id.as_str()),
                (tokens[1], tokens[2])
            );
            assert_eq!(
                (m.provider.as_str(), m.source_topic.as_str()),
                (PROVIDER, topic)
            );
            assert_eq!(m.received_at_ms, at);
            continue;
        }
        let dl = dead.next().expect("a dead letter for a bad entry");
        assert_eq!(dl.msg_id, format!("{hash}:dl:{i}"));
        assert_eq!((dl.subject.as_str(), dl.entry), (DEAD_LETTERS, Some(i)));
        let stored: Value =
            serde_json::from_slice(&dl.payload).expect("a dead-lettered entry is JSON");
        match r.route_entry(&hash, topic, sport, i, &stored, at) {
            Ok(_) => panic!("dead letter {i} parses when replayed: {:?}", dl.reason),
            Err(e) => assert_eq!(e.to_string(), dl.reason, "replayed, it fails differently"),
        }
        assert_eq!(
            replayed.err().map(|e| e.to_string()).as_ref(),
            Some(&dl.reason)
        );
    }
    assert!(updates.next().is_none() && dead.next().is_none());

    // Each update merged into its match's state, in order, as published.
    let mut held: HashMap<&str, Held> = HashMap::new();
    for u in &p.updates {
        let text = serde_json::to_vec(&u.update).expect("an update serialises");
        let back: MatchUpdate = serde_json::from_slice(&text).expect("the update parses");
        assert_eq!(back, u.update, "the update's JSON reads back differently");

        let h = held
            .entry(u.subject.as_str())
            .or_insert_with(|| Held::from_stored(None, &u.update).0);
        let before = h.state.clone();
        let delta = h.state.merge(&u.update, 0);
        h.note_merged(&u.msg_id, u.update.received_at_ms);
        if delta.changed.is_empty() {
            assert_eq!(h.state, before, "changed, but no section says so");
        } else {
            assert_eq!(h.state.rev, before.rev + 1);
            assert_ne!(h.state, before);
        }
        if let Some(clock) = &h.state.clock {
            let _ = clock.text(&h.state.sport);
        }
        let body = serde_json::to_vec(&StateMessage {
            state: &h.state,
            changed: &delta.changed,
            added: delta.added,
        })
        .expect("the state serialises");
        let msg: MatchMessage = serde_json::from_slice(&body).expect("the published state parses");
        assert_eq!(
            msg.state, h.state,
            "the published state reads back differently"
        );
        assert_eq!(
            (msg.changed, msg.added),
            (delta.changed.clone(), delta.added)
        );
        assert_eq!(msg.state.schema, SCHEMA_ID);
        assert_eq!(
            format!("{PREFIX}.{}.{}", msg.state.sport, msg.state.match_id),
            u.subject
        );

        let mut again = h.state.clone();
        let d = again.merge(&u.update, 0);
        assert!(
            d.changed.is_empty() && again == h.state,
            "merging the same update again changed {:?}",
            d.changed
        );

        let stored = StoredMsg {
            seq: 1,
            msg_id: Some(u.msg_id.clone()),
            applied: Some(h.applied_header()),
            received_ms: Some(h.received_ms),
            payload: Bytes::from(body),
        };
        let (reloaded, kind) = Held::from_stored(Some(stored), &u.update);
        assert_eq!(kind, LoadKind::Found);
        assert_eq!(
            reloaded.state, h.state,
            "the stored state reloads differently"
        );
        assert!(reloaded.has_applied(&u.msg_id));

        if before.rev == 0 {
            // The first update of the match: a v1 message of it starts the
            // same state.
            let mut v1 = serde_json::to_value(&u.update).expect("serialises");
            v1["schema"] = Value::from(LEGACY_SCHEMA_V1);
            let stored = StoredMsg {
                seq: 1,
                msg_id: Some(u.msg_id.clone()),
                applied: None,
                received_ms: None,
                payload: Bytes::from(v1.to_string()),
            };
            let (legacy, kind) = Held::from_stored(Some(stored), &u.update);
            assert_eq!(kind, LoadKind::Legacy);
            assert_eq!(legacy.state, h.state, "the v1 message starts another state");
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&sel, rest)) = input.split_first() else {
        return;
    };
    let (topic, rest) = if sel & 0x80 == 0 {
        (TOPICS[usize::from(sel) % TOPICS.len()].to_owned(), rest)
    } else {
        let Some((&n, rest)) = rest.split_first() else {
            return;
        };
        let (t, rest) = rest.split_at(usize::from(n).min(rest.len()));
        (String::from_utf8_lossy(t).into_owned(), rest)
    };
    let Some((&when, payload)) = rest.split_first() else {
        return;
    };
    let at = match when {
        0xff => u64::MAX,
        0xfe => 0,
        m => KICKOFF_MS + u64::from(m) * 60_000,
    };
    check_message(&topic, payload, at);
});
