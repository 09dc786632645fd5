//! The reads against a memory store holding the board the integration tests
//! also use, with expectations captured from nats-server 2.15.1 (time stamps
//! left out: they are the store's).

use super::*;
use crate::jetstream::store::{MemStore, StoreLimits};

/// sports.football.a=1, b=2, tennis.x=3 (with a header), a=4, c=5, b=6.
fn board() -> MemStore {
    let mut s = MemStore::new(StoreLimits::default());
    let msgs = [
        "sports.football.a",
        "sports.football.b",
        "sports.tennis.x",
        "sports.football.a",
        "sports.football.c",
        "sports.football.b",
    ];
    for (i, subject) in msgs.iter().enumerate() {
        let hdr: &[u8] = if i == 2 {
            b"NATS/1.0\r\nX-H: 2\r\n\r\n"
        } else {
            b""
        };
        let payload = format!("v{}", i + 1);
        s.store_msg(subject, hdr, payload.as_bytes(), 1_000 + i as i64)
            .expect("store");
    }
    s
}

const TARGET: Target<'static> = Target {
    stream: "SPORTS",
    file_store: false,
    max_pending: 64 * 1024 * 1024,
};

fn req(json: &str) -> Request {
    Request::from_body(json.as_bytes()).expect("valid request")
}

/// Each reply as one line: headers without the time stamp, `|`, payload.
fn lines(out: &Replies) -> Vec<String> {
    out.iter()
        .map(|(h, p)| {
            let h = String::from_utf8_lossy(h)
                .split("\r\n")
                .filter(|l| !l.starts_with("Nats-Time-Stamp:") && !l.is_empty())
                .collect::<Vec<_>>()
                .join(";");
            format!("{h}|{}", String::from_utf8_lossy(p))
        })
        .collect()
}

fn seq_read(store: &dyn MsgStore, r: &Request) -> Vec<String> {
    let mut out = Replies::default();
    let mut read = SeqRead::new(r, &TARGET);
    while read.fill(store, r, &TARGET, &mut out) == Progress::More {}
    lines(&out)
}

fn multi(store: &dyn MsgStore, r: &Request, t: &Target<'_>) -> Vec<String> {
    let mut out = Replies::default();
    multi_last(store, r, t, &mut out);
    lines(&out)
}

const HEAD: &str = "NATS/1.0;Nats-Stream: SPORTS";

fn msg(subject: &str, seq: u64, batch: Option<(u64, u64)>, payload: &str) -> String {
    let counts = batch
        .map(|(p, l)| format!(";Nats-Num-Pending: {p};Nats-Last-Sequence: {l}"))
        .unwrap_or_default();
    format!("{HEAD};Nats-Subject: {subject};Nats-Sequence: {seq}{counts}|{payload}")
}

fn eob(pending: u64, last: u64) -> String {
    format!("NATS/1.0 204 EOB;Nats-Num-Pending: {pending};Nats-Last-Sequence: {last}|")
}

#[test]
fn single_gets() {
    let s = board();
    assert_eq!(
        seq_read(&s, &req(r#"{"seq":1}"#)),
        [msg("sports.football.a", 1, None, "v1")]
    );
    assert_eq!(
        seq_read(&s, &req(r#"{"seq":3}"#)),
        ["NATS/1.0;X-H: 2;Nats-Stream: SPORTS;Nats-Subject: sports.tennis.x;Nats-Sequence: 3|v3"]
    );
    assert_eq!(
        seq_read(&s, &req(r#"{"seq":99}"#)),
        ["NATS/1.0 404 Message Not Found|"]
    );
    assert_eq!(
        seq_read(&s, &req(r#"{"last_by_subj":"sports.football.a"}"#)),
        [msg("sports.football.a", 4, None, "v4")]
    );
    assert_eq!(
        seq_read(&s, &req(r#"{"next_by_subj":"sports.football.*","seq":3}"#)),
        [msg("sports.football.a", 4, None, "v4")]
    );
    assert_eq!(
        seq_read(
            &s,
            &req(r#"{"start_time":"1970-01-01T00:00:00.000001003Z"}"#)
        ),
        [msg("sports.football.a", 4, None, "v4")],
        "the first message at or after the time"
    );
    assert_eq!(seq_read(&s, &req(r#"{"seq":1,"no_hdr":true}"#)), ["|v1"]);
    assert_eq!(
        seq_read(
            &s,
            &Request::last_for("sports.football.b", b"").expect("req")
        ),
        [msg("sports.football.b", 6, None, "v6")]
    );
}

#[test]
fn batches_count_down_and_end_with_eob() {
    let s = board();
    assert_eq!(
        seq_read(&s, &req(r#"{"batch":3,"seq":1}"#)),
        [
            msg("sports.football.a", 1, Some((5, 0)), "v1"),
            msg("sports.football.b", 2, Some((4, 1)), "v2"),
            "NATS/1.0;X-H: 2;Nats-Stream: SPORTS;Nats-Subject: sports.tennis.x;\
             Nats-Sequence: 3;Nats-Num-Pending: 3;Nats-Last-Sequence: 2|v3"
                .to_string(),
            eob(3, 3),
        ]
    );
    assert_eq!(
        seq_read(
            &s,
            &req(r#"{"batch":3,"next_by_subj":"sports.football.*"}"#)
        ),
        [
            msg("sports.football.a", 1, Some((4, 0)), "v1"),
            msg("sports.football.b", 2, Some((3, 1)), "v2"),
            msg("sports.football.a", 4, Some((2, 2)), "v4"),
            eob(2, 4),
        ]
    );
    // Running out of messages ends the batch early, still with its EOB.
    assert_eq!(
        seq_read(&s, &req(r#"{"batch":10,"seq":5}"#)),
        [
            msg("sports.football.c", 5, Some((1, 0)), "v5"),
            msg("sports.football.b", 6, Some((0, 5)), "v6"),
            eob(0, 6),
        ]
    );
    // Finding nothing at all is a 404 without EOB.
    assert_eq!(
        seq_read(&s, &req(r#"{"batch":2,"seq":99}"#)),
        ["NATS/1.0 404 Message Not Found|"]
    );
    // max_bytes stops after the message that reaches it (subject 17 +
    // payload 2 bytes each).
    assert_eq!(
        seq_read(&s, &req(r#"{"batch":3,"seq":1,"max_bytes":5}"#)),
        [msg("sports.football.a", 1, Some((5, 0)), "v1"), eob(5, 1)]
    );
    assert_eq!(
        seq_read(&s, &req(r#"{"batch":9,"seq":1,"max_bytes":38}"#)).len(),
        3,
        "two messages reach 38 bytes"
    );
    // nats-server counts pending down only for messages with headers.
    assert_eq!(
        seq_read(&s, &req(r#"{"seq":1,"batch":2,"no_hdr":true}"#)),
        ["|v1", "|v2", &eob(6, 2)]
    );
    // A negative batch is a batch of nothing.
    assert_eq!(seq_read(&s, &req(r#"{"batch":-1,"seq":1}"#)), [eob(6, 0)]);
}

#[test]
fn big_batches_are_read_in_chunks_and_recount_what_arrived_meanwhile() {
    let mut s = MemStore::new(StoreLimits::default());
    for i in 0..600 {
        s.store_msg("m.x", b"", b"p", i).expect("store");
    }
    let r = req(r#"{"batch":1000,"seq":1}"#);
    let mut out = Replies::default();
    let mut read = SeqRead::new(&r, &TARGET);
    let mut chunks = 0;
    let mut sent = 0;
    loop {
        let progress = read.fill(&s, &r, &TARGET, &mut out);
        chunks += 1;
        sent += out.iter().count();
        out.clear();
        if chunks == 1 {
            // A write between chunks, as the stream's writer may make.
            s.store_msg("m.x", b"", b"p", 700).expect("store");
        }
        if progress == Progress::Done {
            break;
        }
    }
    assert!(chunks >= 3, "{chunks} chunks");
    assert_eq!(sent, 601 + 1, "every message, the new one too, then EOB");
    // The last EOB saw the new message too: nothing pending.
    let mut out = Replies::default();
    let mut read = SeqRead::new(&req(r#"{"batch":2,"seq":600}"#), &TARGET);
    read.fill(&s, &req(r#"{"batch":2,"seq":600}"#), &TARGET, &mut out);
    assert_eq!(lines(&out).last().map(String::as_str), Some(&*eob(0, 601)));
}

#[test]
fn multi_last_answers_each_subject_once_in_sequence_order() {
    let s = board();
    let football = r#""multi_last":["sports.football.*"]"#;
    assert_eq!(
        multi(&s, &req(&format!("{{{football}}}")), &TARGET),
        [
            msg("sports.football.a", 4, Some((2, 0)), "v4"),
            msg("sports.football.c", 5, Some((1, 4)), "v5"),
            msg("sports.football.b", 6, Some((0, 5)), "v6"),
            format!(
                "{};Nats-UpTo-Sequence: 6|",
                &eob(0, 6)[..eob(0, 6).len() - 1]
            ),
        ]
    );
    let as_of_4 = multi(
        &s,
        &req(&format!("{{{football},\"up_to_seq\":4}}")),
        &TARGET,
    );
    assert_eq!(as_of_4[0], msg("sports.football.b", 2, Some((1, 0)), "v2"));
    assert_eq!(as_of_4[1], msg("sports.football.a", 4, Some((0, 2)), "v4"));
    assert!(as_of_4[2].ends_with("Nats-UpTo-Sequence: 4|"));
    // `seq` skips answers below it but they count as pending.
    let from_5 = multi(&s, &req(&format!("{{{football},\"seq\":5}}")), &TARGET);
    assert_eq!(from_5[0], msg("sports.football.c", 5, Some((1, 0)), "v5"));
    // `batch` and `max_bytes` stop early; the EOB says what is left.
    let two = multi(&s, &req(&format!("{{{football},\"batch\":2}}")), &TARGET);
    assert_eq!(two.len(), 3);
    assert!(two[2].starts_with(&eob(1, 5)[..eob(1, 5).len() - 1]));
    let one = multi(
        &s,
        &req(&format!("{{{football},\"max_bytes\":5}}")),
        &TARGET,
    );
    assert_eq!(one.len(), 2);
    // Headers are always sent, no_hdr or not.
    let all = multi(&s, &req(r#"{"multi_last":[">"],"no_hdr":true}"#), &TARGET);
    assert_eq!(all.len(), 5);
    assert!(all[0].starts_with("NATS/1.0;X-H: 2;"));
}

#[test]
fn multi_last_statuses() {
    let s = board();
    let no_results = ["NATS/1.0 404 No Results|"];
    for r in [
        r#"{"multi_last":["nothing.*"]}"#,
        r#"{"multi_last":[""]}"#,
        r#"{"multi_last":["sports..x"]}"#,
        r#"{"multi_last":["sports.football.*"],"up_to_time":"1970-01-01T00:00:00.000001Z"}"#,
    ] {
        assert_eq!(multi(&s, &req(r), &TARGET), no_results, "{r}");
    }
    // Past the end: the memory store answers as of its last message, the
    // file store (nats-server's quirk) with nothing.
    let past = req(r#"{"multi_last":["sports.football.*"],"up_to_seq":99}"#);
    assert!(multi(&s, &past, &TARGET)[3].ends_with("Nats-UpTo-Sequence: 99|"));
    let file = Target {
        file_store: true,
        ..TARGET
    };
    assert_eq!(multi(&s, &past, &file), no_results);
    // up_to_time: as of the last message before the time.
    let before_5 = multi(
        &s,
        &req(
            r#"{"multi_last":["sports.football.*"],"up_to_time":"1970-01-01T00:00:00.000001004Z"}"#,
        ),
        &TARGET,
    );
    assert!(before_5
        .last()
        .is_some_and(|l| l.ends_with("Nats-UpTo-Sequence: 4|")));
    let mut many = MemStore::new(StoreLimits::default());
    for i in 0..=MAX_MULTI {
        many.store_msg(&format!("m.{i}"), b"", b"", 0)
            .expect("store");
    }
    assert_eq!(
        multi(&many, &req(r#"{"multi_last":["m.*"]}"#), &TARGET),
        ["NATS/1.0 413 Too Many Results|"]
    );
    assert_eq!(
        multi(
            &many,
            &req(r#"{"multi_last":["m.*"],"up_to_seq":1024}"#),
            &TARGET
        )
        .len(),
        MAX_MULTI + 1,
        "1024 subjects as of 1024"
    );
}
