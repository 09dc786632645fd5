//! Key-value buckets the way async-nats builds them on JetStream streams
//! (`KV_<bucket>`, subjects `$KV.<bucket>.<key>`, rollup headers for purge,
//! direct get for reads), against nats-server and, per the flavor switch in
//! `common/js.rs`, tribune-broker.

mod common;

use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::stream::DiscardPolicy;
use common::js::{for_each_flavor, Flavor, Js, WAIT};
use futures::StreamExt;
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

async fn bucket(t: &Js, name: &str, history: i64) -> kv::Store {
    t.js.create_key_value(kv::Config {
        bucket: name.into(),
        history,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{}: create bucket {name}: {e}", t.label))
}

async fn next_entry(w: &mut kv::Watch, what: &str) -> kv::Entry {
    timeout(WAIT, w.next())
        .await
        .unwrap_or_else(|_| panic!("no watch entry in time: {what}"))
        .expect("watch open")
        .expect("watch entry")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_is_a_stream() {
    for_each_flavor(BIN, bucket_is_a_stream_on).await;
}

async fn bucket_is_a_stream_on(f: Flavor) {
    let t = Js::start(&f).await;
    let kv = bucket(&t, "config", 5).await;
    let mut s = t.js.get_stream("KV_config").await.expect("backing stream");
    let cfg = s.info().await.unwrap().config.clone();
    assert_eq!(cfg.subjects, vec!["$KV.config.>"], "{}", f.label);
    assert_eq!(cfg.max_messages_per_subject, 5);
    assert!(cfg.allow_rollup, "purge needs rollup headers");
    assert!(cfg.deny_delete);
    assert!(cfg.allow_direct, "gets use direct get");
    assert_eq!(cfg.discard, DiscardPolicy::New);
    let st = kv.status().await.unwrap();
    assert_eq!((st.bucket(), st.history(), st.values()), ("config", 5, 0));

    // Opening it again finds the same bucket; a missing one is an error.
    let again = t.js.get_key_value("config").await.unwrap();
    assert_eq!(again.name, "config");
    assert!(t.js.get_key_value("missing").await.is_err());
    t.js.delete_key_value("config").await.unwrap();
    assert!(t.js.get_stream("KV_config").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_update_delete_purge() {
    for_each_flavor(BIN, crud_on).await;
}

async fn crud_on(f: Flavor) {
    let t = Js::start(&f).await;
    let kv = bucket(&t, "app", 10).await;

    let r1 = kv.put("color", "red".into()).await.unwrap();
    let r2 = kv.put("size", "L".into()).await.unwrap();
    let r3 = kv.put("color", "blue".into()).await.unwrap();
    assert_eq!((r1, r2, r3), (1, 2, 3), "{}", f.label);
    assert_eq!(
        kv.get("color").await.unwrap().as_deref(),
        Some(&b"blue"[..])
    );
    assert_eq!(kv.get("nothing").await.unwrap(), None);
    let e = kv.entry("color").await.unwrap().unwrap();
    assert_eq!(
        (e.revision, e.operation, e.key.as_str()),
        (3, Operation::Put, "color")
    );
    // entry_for_revision reads an older value.
    let old = kv.entry_for_revision("color", 1).await.unwrap().unwrap();
    assert_eq!(old.value.as_ref(), b"red");

    // update: compare-and-set on the key's last revision.
    let r4 = kv.update("color", "green".into(), 3).await.unwrap();
    assert_eq!(r4, 4);
    let stale = kv.update("color", "black".into(), 3).await;
    assert!(stale.is_err(), "update with a stale revision must fail");
    // create: only when the key does not exist (or was deleted).
    assert!(kv.create("color", "x".into()).await.is_err());
    let r5 = kv.create("shape", "round".into()).await.unwrap();
    assert_eq!(r5, 5);

    // delete leaves a marker: get says None, entry says Delete.
    kv.delete("size").await.unwrap();
    assert_eq!(kv.get("size").await.unwrap(), None);
    // after a delete the key can be created again.
    let r7 = kv.create("size", "M".into()).await.unwrap();
    assert_eq!(r7, 7);

    // history keeps every revision up to `history`.
    let hist: Vec<kv::Entry> = kv
        .history("color")
        .await
        .unwrap()
        .map(|e| e.unwrap())
        .collect()
        .await;
    let values: Vec<&[u8]> = hist.iter().map(|e| e.value.as_ref()).collect();
    assert_eq!(values, vec![&b"red"[..], b"blue", b"green"]);
    assert_eq!(
        hist.iter().map(|e| e.revision).collect::<Vec<_>>(),
        vec![1, 3, 4]
    );

    // purge: one marker replaces the whole history of the key (rollup).
    kv.purge("color").await.unwrap();
    assert_eq!(kv.get("color").await.unwrap(), None);
    let hist: Vec<kv::Entry> = kv
        .history("color")
        .await
        .unwrap()
        .map(|e| e.unwrap())
        .collect()
        .await;
    assert_eq!(hist.len(), 1, "{}: {hist:?}", f.label);
    assert_eq!(hist[0].operation, Operation::Purge);

    let mut keys: Vec<String> = kv.keys().await.unwrap().map(|k| k.unwrap()).collect().await;
    keys.sort();
    assert_eq!(keys, vec!["shape", "size"]);

    // Keys with dots and the allowed punctuation; invalid keys are refused
    // by the client before anything is sent.
    kv.put("a.b.c", "deep".into()).await.unwrap();
    kv.put("x-y_z=1/2", "punct".into()).await.unwrap();
    assert_eq!(
        kv.get("a.b.c").await.unwrap().as_deref(),
        Some(&b"deep"[..])
    );
    assert!(kv.put("bad key", "v".into()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_limit_and_max_value_size() {
    for_each_flavor(BIN, limits_on).await;
}

async fn limits_on(f: Flavor) {
    let t = Js::start(&f).await;
    let kv =
        t.js.create_key_value(kv::Config {
            bucket: "lim".into(),
            history: 2,
            max_value_size: 8,
            ..Default::default()
        })
        .await
        .unwrap();
    for v in ["1", "2", "3", "4"] {
        kv.put("k", v.to_string().into()).await.unwrap();
    }
    let hist: Vec<kv::Entry> = kv
        .history("k")
        .await
        .unwrap()
        .map(|e| e.unwrap())
        .collect()
        .await;
    let values: Vec<&[u8]> = hist.iter().map(|e| e.value.as_ref()).collect();
    assert_eq!(values, vec![&b"3"[..], b"4"], "{}", f.label);
    assert!(
        kv.put("k", "123456789".into()).await.is_err(),
        "value over max_value_size"
    );
    // (Store::status() is the cached info from creation; ask the stream.)
    let mut s = t.js.get_stream("KV_lim").await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_initial_values_and_updates() {
    for_each_flavor(BIN, watch_on).await;
}

async fn watch_on(f: Flavor) {
    let t = Js::start(&f).await;
    let kv = bucket(&t, "w", 3).await;
    kv.put("a", "1".into()).await.unwrap();
    kv.put("b", "1".into()).await.unwrap();
    kv.put("a", "2".into()).await.unwrap();

    // watch_with_history (deliver last_per_subject): the current value of
    // each key, in revision order, the last one marked seen_current.
    let mut current = kv.watch_with_history(">").await.unwrap();
    let b = next_entry(&mut current, "current b").await;
    let a = next_entry(&mut current, "current a").await;
    assert_eq!(
        (b.key.as_str(), b.revision, a.key.as_str(), a.revision),
        ("b", 2, "a", 3),
        "{}",
        f.label
    );
    assert_eq!(a.value.as_ref(), b"2");
    assert!(a.seen_current, "the initial values end with seen_current");

    // watch / watch_all (deliver new): live updates only.
    let mut all = kv.watch_all().await.unwrap();
    let mut one = kv.watch("a").await.unwrap();
    let mut pattern = kv.watch("sub.>").await.unwrap();
    kv.put("a", "3".into()).await.unwrap();
    kv.put("sub.x", "p".into()).await.unwrap();
    kv.delete("b").await.unwrap();

    let e = next_entry(&mut one, "a update").await;
    assert_eq!(
        (e.key.as_str(), e.value.as_ref(), e.revision),
        ("a", &b"3"[..], 4)
    );
    let e = next_entry(&mut pattern, "sub.x").await;
    assert_eq!((e.key.as_str(), e.operation), ("sub.x", Operation::Put));
    let want = vec![
        ("a".to_string(), Operation::Put, 4),
        ("sub.x".to_string(), Operation::Put, 5),
        ("b".to_string(), Operation::Delete, 6),
    ];
    for (w, what) in [(&mut all, "watch_all"), (&mut current, "with history")] {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let e = next_entry(w, what).await;
            seen.push((e.key, e.operation, e.revision));
        }
        assert_eq!(seen, want, "{what}");
    }

    // watch_all_from_revision replays everything kept from that revision.
    let mut from = kv.watch_all_from_revision(2).await.unwrap();
    let mut revs = Vec::new();
    for _ in 0..5 {
        revs.push(next_entry(&mut from, "from revision").await.revision);
    }
    assert_eq!(revs, vec![2, 3, 4, 5, 6]);

    // Nothing arrives on a quiet watcher (bounded wait, not a timing claim),
    // and the next change does.
    let mut quiet = kv.watch("a").await.unwrap();
    assert!(timeout(Duration::from_millis(300), quiet.next())
        .await
        .is_err());
    kv.put("a", "4".into()).await.unwrap();
    assert_eq!(next_entry(&mut quiet, "quiet").await.revision, 7);
}

/// `watch_with_history`: every entry says whether the watcher has caught
/// up (`seen_current`): false for the stored values but the last, true
/// for the last and everything put after (async-nats reads it from the
/// consumer's `num_pending` at creation and each delivery's pending count).
/// The later puts start once the stored values are through, so a slow
/// machine cannot turn the test (async-nats' own `watch_seen_current` puts
/// them on a timer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_seen_current() {
    for_each_flavor(BIN, seen_current_on).await;
}

async fn seen_current_on(f: Flavor) {
    let t = Js::start(&f).await;
    let kv = bucket(&t, "current", 15).await;
    for i in 0..10 {
        kv.put(format!("key.{i}"), i.to_string().into())
            .await
            .unwrap_or_else(|e| panic!("[{}] put: {e}", t.label));
    }
    let mut w = kv
        .watch_with_history("key.>")
        .await
        .unwrap_or_else(|e| panic!("[{}] watch: {e}", t.label));
    for i in 0..15 {
        if i == 10 {
            for j in 10..15 {
                kv.put(format!("key.{j}"), j.to_string().into())
                    .await
                    .unwrap_or_else(|e| panic!("[{}] put while watching: {e}", t.label));
            }
        }
        let e = next_entry(&mut w, "a watched key").await;
        assert_eq!(e.key, format!("key.{i}"), "[{}]", t.label);
        assert_eq!(e.seen_current, i >= 9, "[{}] key.{i}: {e:?}", t.label);
    }
}
