//! Direct gets (`$JS.API.DIRECT.GET`, ADR-31) on one server, run the same
//! way on nats-server and (per the flavor switch in `common/js.rs`)
//! tribune-broker:
//!
//! - `raw_bytes_match_nats_server`: every kind of request (single, batch,
//!   `multi_last`, the subject form, each refusal) sent over a raw
//!   connection; what comes back, header block byte for byte (time stamps
//!   aside), must be the same on both servers, for a file and a memory
//!   stream. A few answers are also pinned here, so the nats-server run
//!   keeps the test honest.
//! - `scores_board`: many matches updated in turn; `multi_last` over
//!   `sports.football.*` must give exactly the last message of each, in
//!   sequence order, also as of an earlier sequence and page by page.
//! - `too_many_subjects`: more than 1024 subjects is `413 Too Many Results`.

mod common;

use std::collections::BTreeMap;

use common::direct_get::replies;
use common::js::{flavors, start_js, Flavor, Js};
use common::raw::{RawConn, RawMsg};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");
const DG: &str = "$JS.API.DIRECT.GET.SPORTS";

/// `(subject, header block, body)` of each raw request; an empty subject
/// is [`DG`].
type Case = (&'static str, &'static str, &'static str);

const LEVEL_99: &str = "NATS/1.0\r\nNats-Required-Api-Level: 99\r\n\r\n";
const LEVEL_1: &str = "NATS/1.0\r\nNats-Required-Api-Level: 1\r\n\r\n";

/// Sent on the board `sports.football.a b`, `sports.tennis.x` (with a
/// header), `sports.football.a c b` (sequences 1 to 6).
const CASES: &[Case] = &[
    ("", "", r#"{"seq":1}"#),
    ("", "", r#"{"seq":3}"#),
    ("", "", r#"{"seq":99}"#),
    ("", "", r#"{"last_by_subj":"sports.football.a"}"#),
    ("", "", r#"{"last_by_subj":"sports.*.x"}"#),
    ("", "", r#"{"next_by_subj":"sports.football.*","seq":2}"#),
    ("", "", r#"{"next_by_subj":"sports.football.a","seq":5}"#),
    ("", "", r#"{"start_time":"2000-01-01T00:00:00Z"}"#),
    ("", "", r#"{"start_time":"2100-01-01T00:00:00Z"}"#),
    ("", "", r#"{"seq":1,"no_hdr":true}"#),
    ("", "", r#"{"SEQ":2,"unknown":[1]}"#),
    // Batches.
    ("", "", r#"{"batch":3,"seq":1}"#),
    ("", "", r#"{"batch":10,"seq":4}"#),
    ("", "", r#"{"batch":1,"seq":1}"#),
    ("", "", r#"{"batch":3,"next_by_subj":"sports.football.*"}"#),
    ("", "", r#"{"batch":2,"next_by_subj":"sports.tennis.*"}"#),
    ("", "", r#"{"batch":2,"seq":99}"#),
    ("", "", r#"{"batch":3,"seq":1,"max_bytes":5}"#),
    ("", "", r#"{"batch":3,"seq":1,"max_bytes":40}"#),
    ("", "", r#"{"batch":3,"seq":1,"max_bytes":-1}"#),
    ("", "", r#"{"batch":2,"start_time":"2000-01-01T00:00:00Z"}"#),
    ("", "", r#"{"batch":2,"start_time":"2100-01-01T00:00:00Z"}"#),
    ("", "", r#"{"batch":2,"seq":1,"no_hdr":true}"#),
    ("", "", r#"{"batch":-1,"seq":1}"#),
    ("", "", r#"{"batch":5,"seq":1,"up_to_seq":3}"#),
    // multi_last.
    ("", "", r#"{"multi_last":["sports.football.*"]}"#),
    ("", "", r#"{"multi_last":["sports.football.*"],"batch":2}"#),
    (
        "",
        "",
        r#"{"multi_last":["sports.football.*"],"up_to_seq":4}"#,
    ),
    (
        "",
        "",
        r#"{"multi_last":["sports.football.*"],"up_to_seq":2,"batch":1}"#,
    ),
    ("", "", r#"{"multi_last":["sports.football.*"],"seq":5}"#),
    ("", "", r#"{"multi_last":["sports.football.*"],"seq":99}"#),
    (
        "",
        "",
        r#"{"multi_last":["sports.football.*"],"max_bytes":5}"#,
    ),
    ("", "", r#"{"multi_last":["sports.>","sports.football.*"]}"#),
    ("", "", r#"{"multi_last":[">"],"no_hdr":true}"#),
    ("", "", r#"{"multi_last":["nothing.*"]}"#),
    ("", "", r#"{"multi_last":["","sports..x"]}"#),
    (
        "",
        "",
        r#"{"multi_last":["sports.football.c"],"up_to_seq":4}"#,
    ),
    (
        "",
        "",
        r#"{"multi_last":["sports.football.*"],"up_to_seq":99}"#,
    ),
    (
        "",
        "",
        r#"{"multi_last":["sports.football.*"],"up_to_time":"2000-01-01T00:00:00Z"}"#,
    ),
    (
        "",
        "",
        r#"{"multi_last":["sports.football.*"],"up_to_time":"2100-01-01T00:00:00Z"}"#,
    ),
    // Refusals.
    ("", "", ""),
    ("", "", " "),
    ("", "", "nope"),
    ("", "", "null"),
    ("", "", "{}"),
    ("", "", r#"{"batch":2}"#),
    ("", "", r#"{"multi_last":[]}"#),
    ("", "", r#"{"seq":-1}"#),
    ("", "", r#"{"seq":1.5}"#),
    ("", "", r#"{"multi_last":"x"}"#),
    ("", "", r#"{"start_time":"bad"}"#),
    ("", "", r#"{"seq":1,"last_by_subj":"a"}"#),
    ("", "", r#"{"seq":1,"start_time":"2000-01-01T00:00:00Z"}"#),
    ("", "", r#"{"last_by_subj":"a","batch":2}"#),
    ("", "", r#"{"last_by_subj":"a","multi_last":["x"]}"#),
    ("", "", r#"{"next_by_subj":"a","multi_last":["x"]}"#),
    (
        "",
        "",
        r#"{"multi_last":["x"],"up_to_seq":1,"up_to_time":"2000-01-01T00:00:00Z"}"#,
    ),
    ("", LEVEL_1, r#"{"seq":1}"#),
    ("", LEVEL_99, r#"{"seq":1}"#),
    // The subject form: the last message on the subject.
    ("$JS.API.DIRECT.GET.SPORTS.sports.football.a", "", ""),
    ("$JS.API.DIRECT.GET.SPORTS.sports.football.a", "", "null"),
    (
        "$JS.API.DIRECT.GET.SPORTS.sports.football.a",
        "",
        r#"{"no_hdr":true}"#,
    ),
    (
        "$JS.API.DIRECT.GET.SPORTS.sports.football.a",
        "",
        r#"{"max_bytes":3}"#,
    ),
    (
        "$JS.API.DIRECT.GET.SPORTS.sports.football.a",
        "",
        r#"{"batch":2}"#,
    ),
    (
        "$JS.API.DIRECT.GET.SPORTS.sports.football.a",
        "",
        r#"{"seq":2}"#,
    ),
    (
        "$JS.API.DIRECT.GET.SPORTS.sports.football.a",
        "",
        r#"{"multi_last":["x"]}"#,
    ),
    (
        "$JS.API.DIRECT.GET.SPORTS.sports.football.a",
        "",
        r#"{"up_to_seq":3}"#,
    ),
    ("$JS.API.DIRECT.GET.SPORTS.sports.football.a", "", " "),
    ("$JS.API.DIRECT.GET.SPORTS.sports.nothing", "", ""),
    ("$JS.API.DIRECT.GET.NOPE", "", r#"{"seq":1}"#),
];

/// After message 2 is deleted: single gets miss it, batches step over it.
const AFTER_DELETE: &[Case] = &[
    ("", "", r#"{"seq":2}"#),
    ("", "", r#"{"batch":3,"seq":1}"#),
    (
        "",
        "",
        r#"{"multi_last":["sports.football.*"],"up_to_seq":3}"#,
    ),
    ("$JS.API.DIRECT.GET.SPORTS.sports.football.b", "", ""),
];

/// One raw reply, comparable across servers: the header block (its time
/// stamp, checked to be RFC 3339, replaced by `T`) and the payload.
fn shown(m: &RawMsg) -> String {
    let hdr = String::from_utf8_lossy(&m.headers);
    let hdr: Vec<String> = hdr
        .split("\r\n")
        .map(|l| match l.strip_prefix("Nats-Time-Stamp: ") {
            Some(ts) => {
                assert!(
                    chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
                    "time stamp {ts:?}"
                );
                "Nats-Time-Stamp: T".to_string()
            }
            None => l.to_string(),
        })
        .collect();
    format!(
        "{:?} {:?}",
        hdr.join("\r\n"),
        String::from_utf8_lossy(&m.payload)
    )
}

/// A raw client subscribed to `_R.>` (answers) and `_S.>` (sentinels).
fn open(port: u16) -> RawConn {
    let mut c = RawConn::open(port);
    c.send("CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\n");
    c.send("SUB _R.> 1\r\nSUB _S.> 2\r\n");
    c
}

fn publish(c: &mut RawConn, subject: &str, reply: &str, hdr: &str, body: &str) {
    if hdr.is_empty() {
        c.send(&format!(
            "PUB {subject} {reply} {}\r\n{body}\r\n",
            body.len()
        ));
    } else {
        let total = hdr.len() + body.len();
        c.send(&format!(
            "HPUB {subject} {reply} {} {total}\r\n{hdr}{body}\r\n",
            hdr.len()
        ));
    }
}

/// Send `body` and wait for its answer (JSON API requests, acked publishes).
fn call(c: &mut RawConn, subject: &str, hdr: &str, body: &str, tag: &str) -> String {
    let reply = format!("_S.{tag}");
    publish(c, subject, &reply, hdr, body);
    let got = c.until_msg_on(&reply);
    let last = got.last().expect("an answer");
    String::from_utf8_lossy(&last.payload).into_owned()
}

/// Each case's replies, in order. Every request is followed by a direct
/// get on the same stream whose answer comes after all of the request's
/// (both servers answer one stream's direct gets in order).
fn transcript(c: &mut RawConn, cases: &[Case], first: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (subject, hdr, body)) in cases.iter().enumerate() {
        let n = first + i;
        let subject = if subject.is_empty() { DG } else { subject };
        publish(c, subject, &format!("_R.{n}"), hdr, body);
        publish(c, DG, &format!("_S.{n}"), "", r#"{"seq":1}"#);
        out.push(format!("== {subject} {hdr:?} {body}"));
        for m in c.until_msg_on(&format!("_S.{n}")) {
            if m.subject == format!("_R.{n}") {
                out.push(shown(&m));
            }
        }
    }
    out
}

/// The whole raw scenario on a fresh server: the board, every case, a
/// delete, the cases after it.
fn raw_scenario(f: &Flavor, storage: &str) -> Vec<String> {
    let server = start_js(&f.bin);
    let mut c = open(server.port);
    let cfg =
        json!({"name":"SPORTS","subjects":["sports.>"],"allow_direct":true,"storage":storage});
    let created = call(
        &mut c,
        "$JS.API.STREAM.CREATE.SPORTS",
        "",
        &cfg.to_string(),
        "c",
    );
    assert!(!created.contains("\"error\""), "[{}] {created}", f.label);
    let board = [
        ("sports.football.a", ""),
        ("sports.football.b", ""),
        ("sports.tennis.x", "NATS/1.0\r\nX-H: 2\r\n\r\n"),
        ("sports.football.a", ""),
        ("sports.football.c", ""),
        ("sports.football.b", ""),
    ];
    for (i, (subject, hdr)) in board.iter().enumerate() {
        let ack = call(
            &mut c,
            subject,
            hdr,
            &format!("v{}", i + 1),
            &format!("p{i}"),
        );
        assert!(ack.contains("\"seq\""), "[{}] {ack}", f.label);
    }
    let mut out = transcript(&mut c, CASES, 0);
    let deleted = call(
        &mut c,
        "$JS.API.STREAM.MSG.DELETE.SPORTS",
        "",
        r#"{"seq":2}"#,
        "d",
    );
    assert!(
        deleted.contains("\"success\":true"),
        "[{}] {deleted}",
        f.label
    );
    out.extend(transcript(&mut c, AFTER_DELETE, CASES.len()));
    out
}

/// Answers pinned from nats-server 2.15.1 (the rest only has to agree).
fn check_pinned(label: &str, t: &[String]) {
    let after = |case: &str| -> Vec<&String> {
        let at = t
            .iter()
            .position(|l| l.ends_with(case) && l.starts_with("== "))
            .unwrap_or_else(|| panic!("[{label}] case {case} missing"));
        t[at + 1..]
            .iter()
            .take_while(|l| !l.starts_with("== "))
            .collect()
    };
    let eob = r#""NATS/1.0 204 EOB\r\nNats-Num-Pending: 3\r\nNats-Last-Sequence: 3\r\n\r\n" """#;
    assert_eq!(after(r#"{"batch":3,"seq":1}"#)[3], eob, "[{label}]");
    let multi = after(r#"{"multi_last":["sports.football.*"]}"#);
    assert_eq!(multi.len(), 4, "[{label}] {multi:?}");
    assert_eq!(
        multi[0],
        r#""NATS/1.0\r\nNats-Stream: SPORTS\r\nNats-Subject: sports.football.a\r\nNats-Sequence: 4\r\nNats-Time-Stamp: T\r\nNats-Num-Pending: 2\r\nNats-Last-Sequence: 0\r\n\r\n" "v4""#,
        "[{label}]"
    );
    assert_eq!(
        multi[3],
        r#""NATS/1.0 204 EOB\r\nNats-Num-Pending: 0\r\nNats-Last-Sequence: 6\r\nNats-UpTo-Sequence: 6\r\n\r\n" """#,
        "[{label}]"
    );
    for (case, status) in [
        (r#"{"seq":99}"#, "404 Message Not Found"),
        (r#"{"multi_last":["nothing.*"]}"#, "404 No Results"),
        ("{}", "408 Empty Request"),
        ("nope", "408 Malformed Request"),
        (r#"{"last_by_subj":"a","batch":2}"#, "408 Bad Request"),
    ] {
        let got = after(case);
        assert_eq!(
            got,
            [&format!("\"NATS/1.0 {status}\\r\\n\\r\\n\" \"\"")],
            "[{label}] {case}"
        );
    }
}

#[test]
fn raw_bytes_match_nats_server() {
    for storage in ["file", "memory"] {
        let mut first: Option<(&str, Vec<String>)> = None;
        for f in flavors(BIN) {
            eprintln!("=== {} ({storage})", f.label);
            let t = raw_scenario(&f, storage);
            check_pinned(f.label, &t);
            match &first {
                None => first = Some((f.label, t)),
                Some((label, want)) => {
                    for (i, (w, g)) in want.iter().zip(&t).enumerate() {
                        assert_eq!(w, g, "line {i}: {label} vs {} ({storage})", f.label);
                    }
                    assert_eq!(want.len(), t.len(), "{label} vs {} ({storage})", f.label);
                }
            }
        }
    }
}

/// A server with the stream `SPORTS` on `sports.>`, direct gets allowed.
async fn sports_stream(f: &Flavor) -> Js {
    let js = Js::start(f).await;
    let cfg = json!({"name":"SPORTS","subjects":["sports.>"],"allow_direct":true});
    let v = js
        .api("$JS.API.STREAM.CREATE.SPORTS", &cfg.to_string())
        .await;
    assert!(v.get("error").is_none(), "{v}");
    js
}

/// The scores of five football matches, each updated several times,
/// between tennis updates: `multi_last` answers the last score of every
/// match, in sequence order, whatever happened before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_board() {
    for f in flavors(BIN) {
        eprintln!("=== {}", f.label);
        let js = sports_stream(&f).await;
        // seq -> (subject, payload), and the last seq of each match.
        let mut log: BTreeMap<u64, (String, String)> = BTreeMap::new();
        for round in 0..4 {
            for m in [3, 1, 4, 5, 2] {
                if (round + m) % 3 == 0 {
                    continue; // not every match scores every round
                }
                for (subject, payload) in [
                    (format!("sports.football.m{m}"), format!("{m}:{round}")),
                    (format!("sports.tennis.t{m}"), format!("set {round}")),
                ] {
                    let ack = js
                        .js
                        .publish(subject.clone(), payload.clone().into())
                        .await
                        .expect("publish")
                        .await
                        .expect("ack");
                    log.insert(ack.sequence, (subject, payload));
                }
            }
        }
        let last_seq = *log.keys().last().expect("published");
        let want = |up_to: u64| -> Vec<String> {
            let mut last: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
            for (seq, (subject, payload)) in log.range(..=up_to) {
                if subject.starts_with("sports.football.") {
                    last.insert(subject, (*seq, payload));
                }
            }
            let mut by_seq: Vec<(u64, &str, &str)> =
                last.into_iter().map(|(s, (q, p))| (q, s, p)).collect();
            by_seq.sort_unstable();
            let n = by_seq.len() as u64;
            let mut prev = 0;
            let mut out = Vec::new();
            for (i, (seq, subject, payload)) in by_seq.iter().enumerate() {
                let np = n - i as u64 - 1;
                out.push(format!("{subject}#{seq} {payload} np={np} last={prev}"));
                prev = *seq;
            }
            out.push(format!("204 EOB np=0 last={prev} upto={up_to}"));
            out
        };
        let multi = |body: String| {
            let nc = js.nc.clone();
            async move { replies(&nc, "SPORTS", DG, &body, true).await }
        };
        let football = r#""multi_last":["sports.football.*"]"#;
        let got = multi(format!("{{{football}}}")).await;
        assert_eq!(got, want(last_seq), "[{}]", f.label);
        assert_eq!(got.len(), 6, "five matches and the EOB");
        let mid = last_seq / 2;
        let got = multi(format!("{{{football},\"up_to_seq\":{mid}}}")).await;
        assert_eq!(got, want(mid), "[{}] as of {mid}", f.label);
        // Page by page, as a client does: two at a time, each page from
        // after the last sequence seen, pinned to the first page's up_to.
        let mut paged = Vec::new();
        let mut from = 0;
        loop {
            let page = multi(format!(
                "{{{football},\"batch\":2,\"seq\":{from},\"up_to_seq\":{last_seq}}}"
            ))
            .await;
            let (eob, msgs) = page.split_last().expect("an EOB");
            assert!(eob.starts_with("204 EOB"), "[{}] {page:?}", f.label);
            paged.extend(
                msgs.iter()
                    .map(|l| l.split(" np=").next().unwrap_or("").to_string()),
            );
            if eob.contains(" np=0 ") {
                break;
            }
            let last: u64 = eob
                .split(" last=")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .expect("Nats-Last-Sequence");
            from = last + 1;
        }
        let whole: Vec<String> = want(last_seq)
            .iter()
            .filter(|l| !l.starts_with("204"))
            .map(|l| l.split(" np=").next().unwrap_or("").to_string())
            .collect();
        assert_eq!(paged, whole, "[{}] pages", f.label);
        // One match's whole history, and its last score by subject.
        let m1: Vec<String> = log
            .iter()
            .filter(|(_, (s, _))| s == "sports.football.m1")
            .map(|(q, (s, p))| format!("{s}#{q} {p}"))
            .collect();
        let got = multi(r#"{"batch":100,"next_by_subj":"sports.football.m1"}"#.to_string()).await;
        let got: Vec<String> = got
            .iter()
            .filter(|l| !l.starts_with("204"))
            .map(|l| l.split(" np=").next().unwrap_or("").to_string())
            .collect();
        assert_eq!(got, m1, "[{}]", f.label);
        let last = replies(
            &js.nc,
            "SPORTS",
            &format!("{DG}.sports.football.m1"),
            "",
            false,
        )
        .await;
        assert_eq!(
            last,
            [m1.last().cloned().unwrap_or_default()],
            "[{}]",
            f.label
        );
    }
}

/// `multi_last` answers at most 1024 subjects: one more is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_subjects() {
    for f in flavors(BIN) {
        eprintln!("=== {}", f.label);
        let js = sports_stream(&f).await;
        let mut acks = Vec::new();
        for i in 0..1025 {
            let ack = js
                .js
                .publish(format!("sports.match.{i}"), "0-0".into())
                .await
                .expect("publish");
            acks.push(ack);
        }
        for ack in acks {
            ack.await.expect("ack");
        }
        let all = r#"{"multi_last":["sports.match.*"]}"#;
        let got = replies(&js.nc, "SPORTS", DG, all, true).await;
        assert_eq!(got, ["413 Too Many Results"], "[{}]", f.label);
        let upto = r#"{"multi_last":["sports.match.*"],"up_to_seq":1024}"#;
        let got = replies(&js.nc, "SPORTS", DG, upto, true).await;
        assert_eq!(got.len(), 1025, "[{}] 1024 and the EOB", f.label);
        assert_eq!(
            got.last().map(String::as_str),
            Some("204 EOB np=0 last=1024 upto=1024")
        );
    }
}
