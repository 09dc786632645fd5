//! A stream's `subject_transform`: configuration checks, the subjects
//! messages are stored under, and the implicit republish of transformed
//! subjects, against nats-server and (per the flavor switch in
//! `common/js.rs`) tribune-broker: both must answer the same.

mod common;

use common::js::{same_on_every_flavor, Flavor, Js, WAIT};
use futures::StreamExt;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_tribune-broker");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_transform() {
    same_on_every_flavor(BIN, subject_transform_on).await;
}

async fn subject_transform_on(f: Flavor) -> Vec<String> {
    let t = Js::start(&f).await;
    let mut out = Vec::new();
    for (name, tr) in [
        ("BADSRC", json!({"src": "in..x", "dest": "out"})),
        ("RANGE", json!({"src": "in.*", "dest": "out.$2"})),
        ("STAR", json!({"src": "in.*", "dest": "out.*"})),
        ("ARGS", json!({"src": "in.*", "dest": "out.{{wildcard()}}"})),
        ("EMPTY", json!({"src": "in.>", "dest": ""})),
    ] {
        let body = json!({"name": name, "subjects": ["in.>"], "subject_transform": tr});
        let v = t
            .api(&format!("$JS.API.STREAM.CREATE.{name}"), &body.to_string())
            .await;
        out.push(match v.get("error") {
            Some(e) => format!("{name}: error {e}"),
            None => format!("{name}: {}", v["config"]["subject_transform"]),
        });
        t.api(&format!("$JS.API.STREAM.DELETE.{name}"), "").await;
    }

    let body = json!({
        "name": "T",
        "subjects": ["in.>"],
        "subject_transform": {"src": "in.*.*", "dest": "stored.$2.{{wildcard(1)}}"},
    });
    let v = t.api("$JS.API.STREAM.CREATE.T", &body.to_string()).await;
    out.push(format!("T: {}", v["config"]["subject_transform"]));
    for s in ["in.a.b", "in.x", "in.c.d.e", "in.a.b"] {
        let ack = t.js.publish(s, s.into()).await.unwrap().await.unwrap();
        let m = t
            .api(
                "$JS.API.STREAM.MSG.GET.T",
                &json!({"seq": ack.sequence}).to_string(),
            )
            .await;
        out.push(format!(
            "{s} -> seq {} {}",
            ack.sequence, m["message"]["subject"]
        ));
    }
    let v = t
        .api(
            "$JS.API.STREAM.INFO.T",
            &json!({"subjects_filter": ">"}).to_string(),
        )
        .await;
    out.push(format!("subjects {}", v["state"]["subjects"]));

    // Every mapping function nats-server offers (but random), and the
    // partition hash.
    for (name, src, dest, subjects) in [
        (
            "F",
            "fn.*.*",
            "{{splitFromLeft(1,2)}}.{{SliceFromRight(2,2)}}.{{left(1,1)}}.{{right(2,1)}}.{{partition(5,1,2)}}",
            &["fn.hello.abcde", "fn.x.y", "fn.abcdef.ghijklm"][..],
        ),
        (
            "G",
            "fs.*",
            "g.{{split(1,-)}}.{{sliceFromLeft(1,3)}}.{{splitFromRight(1,1)}}.{{partition(7)}}",
            &["fs.-ab--c-", "fs.q", "fs.one-two"][..],
        ),
    ] {
        let body = json!({
            "name": name,
            "subjects": [format!("{}.>", &src[..2])],
            "subject_transform": {"src": src, "dest": dest},
        });
        let v = t
            .api(&format!("$JS.API.STREAM.CREATE.{name}"), &body.to_string())
            .await;
        if let Some(e) = v.get("error") {
            out.push(format!("{name}: error {e}"));
            continue;
        }
        for s in subjects {
            let ack = t.js.publish(*s, "x".into()).await.unwrap().await.unwrap();
            let m = t
                .api(
                    &format!("$JS.API.STREAM.MSG.GET.{name}"),
                    &json!({"seq": ack.sequence}).to_string(),
                )
                .await;
            out.push(format!("{name} {s} -> {}", m["message"]["subject"]));
        }
    }

    // `republish` of `>` to `>` follows the transform on a stream whose
    // only subject is the transform's source.
    let mut sub = t.nc.subscribe("dst.>").await.unwrap();
    t.nc.flush().await.unwrap();
    let body = json!({
        "name": "R",
        "subjects": ["src.>"],
        "subject_transform": {"src": "src.>", "dest": "dst.>"},
        "republish": {"src": ">", "dest": ">"},
    });
    let v = t.api("$JS.API.STREAM.CREATE.R", &body.to_string()).await;
    out.push(format!("R: {}", v["config"]["republish"]));
    t.js.publish("src.k", "v".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let m = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("republished in time")
        .expect("subscription open");
    let h = m.headers.clone().unwrap_or_default();
    out.push(format!(
        "republished {} subject header {:?}",
        m.subject,
        h.get("Nats-Subject").map(|v| v.as_str().to_string())
    ));
    if f.label == "nats-server" {
        assert!(out[0].contains("10155"), "{out:#?}");
        assert!(out[1].contains("10156"), "{out:#?}");
        assert!(out[6].contains("\"stored.b.a\""), "{out:#?}");
    }
    out
}
