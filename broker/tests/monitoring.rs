//! The HTTP monitoring endpoints of the real `tribune-broker` binary, driven
//! by async-nats clients, plus a differential check of the JSON key sets
//! against the reference nats-server.
//!
//! HTTP requests use a tiny HTTP/1.0 client on `std::net::TcpStream` (no HTTP
//! client crate). Nothing here asserts on timing: counters are polled until
//! they reach the expected values, with generous deadlines.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use common::{nats_server_bin, tribune_bin, Server, ServerSpec};

const DEADLINE: Duration = Duration::from_secs(20);

fn tribune() -> std::path::PathBuf {
    tribune_bin(env!("CARGO_BIN_EXE_tribune-broker"))
}

fn start(bin: std::path::PathBuf) -> Server {
    ServerSpec::new(bin)
        .args(["-m", "-1"])
        .start()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `127.0.0.1:<monitoring port>`. The port is taken from the ports file; the
/// host is always loopback (the listener may be bound to a wildcard address).
fn http_addr(s: &Server) -> String {
    let a = s
        .addr_of("monitoring")
        .expect("ports file lists a monitoring URL");
    let port = a.rsplit(':').next().unwrap().trim_end_matches('/');
    format!("127.0.0.1:{port}")
}

struct HttpResponse {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// `GET path HTTP/1.0`; the server closes the connection after answering.
fn http_get(addr: &str, path: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("read {path}: {e}"));
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

fn get_json(addr: &str, path: &str) -> Value {
    let r = http_get(addr, path);
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("application/json"),
        "GET {path}"
    );
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", r.body))
}

/// Poll `path` until `ok` holds for its JSON, or fail with the last answer.
fn poll_json(addr: &str, path: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + DEADLINE;
    loop {
        let v = get_json(addr, path);
        if ok(&v) {
            return v;
        }
        if Instant::now() > end {
            panic!("GET {path}: gave up waiting for {what}; last answer:\n{v:#}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

async fn connect(s: &Server, name: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .name(name)
        .connect(s.client_url())
        .await
        .expect("connect")
}

/// `flush()` in async-nats only writes the socket; it does not wait for the
/// server. Before another connection publishes, wait until the server lists
/// the subscriptions of `client`.
fn wait_for_subs(http: &str, client: &async_nats::Client, n: u64) {
    let cid = client.server_info().client_id;
    poll_json(
        http,
        &format!("/connz?cid={cid}"),
        "the subscriptions to be registered",
        |v| conns(v).first().is_some_and(|c| c["subscriptions"] == n),
    );
}

fn conns(v: &Value) -> &Vec<Value> {
    v["connections"]
        .as_array()
        .expect("connections is an array")
}

fn cids(v: &Value) -> Vec<u64> {
    conns(v)
        .iter()
        .map(|c| c["cid"].as_u64().unwrap())
        .collect()
}

fn is_rfc3339(s: &Value) -> bool {
    let s = s.as_str().unwrap_or("");
    s.len() >= 20 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T' && s.ends_with('Z')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varz_counts_traffic() {
    let s = start(tribune());
    let http = http_addr(&s);
    let a = connect(&s, "sub").await;
    let b = connect(&s, "pub").await;
    let mut sub = a.subscribe("foo").await.unwrap();
    a.flush().await.unwrap();
    wait_for_subs(&http, &a, 1);
    for _ in 0..3 {
        b.publish("foo", "hello".into()).await.unwrap();
    }
    b.flush().await.unwrap();
    for _ in 0..3 {
        tokio::time::timeout(DEADLINE, sub.next())
            .await
            .expect("message")
            .expect("stream open");
    }

    let v = poll_json(&http, "/varz", "3 messages in and out", |v| {
        v["in_msgs"] == 3 && v["out_msgs"] == 3
    });
    assert_eq!(v["in_bytes"], 15);
    assert_eq!(v["out_bytes"], 15);
    assert_eq!(v["in_client_msgs"], 3);
    assert_eq!(v["out_client_bytes"], 15);
    assert_eq!(v["connections"], 2);
    assert!(v["total_connections"].as_u64().unwrap() >= 2);
    assert!(v["subscriptions"].as_u64().unwrap() >= 1);
    assert_eq!(v["version"], tribune_broker::server::NATS_COMPAT_VERSION);
    assert_eq!(v["port"].as_u64().unwrap(), u64::from(s.port));
    assert_eq!(
        v["ping_interval"].as_u64(),
        Some(120_000_000_000),
        "Go encodes durations in nanoseconds"
    );
    assert_eq!(v["write_deadline"].as_u64(), Some(10_000_000_000));
    assert_eq!(
        v["auth_timeout"].as_u64(),
        Some(2),
        "whole float seconds, as Go prints them"
    );
    assert_eq!(v["max_payload"], 1_048_576);
    assert!(is_rfc3339(&v["start"]) && is_rfc3339(&v["now"]) && is_rfc3339(&v["config_load_time"]));
    let uptime = v["uptime"].as_str().unwrap();
    assert!(
        uptime.ends_with('s')
            && uptime[..uptime.len() - 1]
                .chars()
                .all(|c| c.is_ascii_alphanumeric()),
        "{uptime}"
    );
    assert!(v["mem"].as_u64().unwrap() > 0);
    assert!(v["cores"].as_u64().unwrap() >= 1);
    assert!(v["cpu"].as_f64().unwrap() >= 0.0);
    assert!(v["http_req_stats"]["/varz"].as_u64().unwrap() >= 1);
    for empty in ["gateway", "leaf", "mqtt", "websocket", "jetstream"] {
        assert_eq!(v[empty], serde_json::json!({}), "{empty}");
    }
    assert_eq!(v["slow_consumer_stats"]["clients"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connz_details_paging_sorting_and_closed() {
    let s = start(tribune());
    let http = http_addr(&s);
    let a = connect(&s, "conn-a").await;
    let b = connect(&s, "conn-b").await;
    let c = connect(&s, "conn-c").await;
    let (cid_a, cid_b, cid_c) = (
        a.server_info().client_id,
        b.server_info().client_id,
        c.server_info().client_id,
    );
    let _s1 = a.subscribe("foo").await.unwrap();
    let _s2 = a.queue_subscribe("bar.*", "workers".into()).await.unwrap();
    a.flush().await.unwrap();
    wait_for_subs(&http, &a, 2);
    for _ in 0..5 {
        b.publish("nobody", "x".into()).await.unwrap();
    }
    b.flush().await.unwrap();

    let v = poll_json(
        &http,
        "/connz?subs=detail",
        "3 connections and conn-b's messages",
        |v| {
            v["num_connections"] == 3
                && conns(v)
                    .iter()
                    .any(|c| c["name"] == "conn-b" && c["in_msgs"] == 5)
        },
    );
    assert_eq!(v["total"], 3);
    assert_eq!(v["offset"], 0);
    assert_eq!(v["limit"], 1024);
    assert_eq!(
        cids(&v),
        vec![cid_a, cid_b, cid_c],
        "default order is by cid"
    );
    let ca = conns(&v).iter().find(|c| c["cid"] == cid_a).unwrap();
    assert_eq!(ca["kind"], "Client");
    assert_eq!(ca["type"], "nats");
    assert_eq!(ca["ip"], "127.0.0.1");
    assert_eq!(ca["lang"], "rust");
    assert_eq!(ca["subscriptions"], 2);
    assert!(is_rfc3339(&ca["start"]) && is_rfc3339(&ca["last_activity"]));
    let details = ca["subscriptions_list_detail"]
        .as_array()
        .expect("detail list");
    let foo = details
        .iter()
        .find(|d| d["subject"] == "foo")
        .expect("foo listed");
    assert_eq!(foo["cid"], cid_a);
    assert!(foo["sid"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(foo.get("qgroup").is_none());
    let bar = details
        .iter()
        .find(|d| d["subject"] == "bar.*")
        .expect("bar.* listed");
    assert_eq!(bar["qgroup"], "workers");
    assert!(ca.get("subscriptions_list").is_none());
    assert!(ca.get("authorized_user").is_none() && ca.get("account").is_none());

    let v = get_json(&http, "/connz?subs=1");
    let ca = conns(&v).iter().find(|c| c["cid"] == cid_a).unwrap();
    let mut subjects: Vec<&str> = ca["subscriptions_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    subjects.sort();
    assert_eq!(subjects, vec!["bar.*", "foo"]);

    let v = get_json(&http, "/connz?auth=true");
    assert!(conns(&v).iter().all(|c| c["name_tag"] == "$G"));

    // Paging.
    let v = get_json(&http, "/connz?offset=1&limit=1");
    assert_eq!(
        (
            v["num_connections"].as_u64(),
            v["total"].as_u64(),
            v["offset"].as_u64(),
            v["limit"].as_u64()
        ),
        (Some(1), Some(3), Some(1), Some(1))
    );
    assert_eq!(cids(&v), vec![cid_b]);
    let v = get_json(&http, "/connz?offset=10");
    assert_eq!(v["num_connections"], 0);
    assert_eq!(v["total"], 3);

    // Sorting: descending except by cid.
    assert_eq!(cids(&get_json(&http, "/connz?sort=subs"))[0], cid_a);
    assert_eq!(cids(&get_json(&http, "/connz?sort=msgs_from"))[0], cid_b);
    assert_eq!(cids(&get_json(&http, "/connz?sort=bytes_from"))[0], cid_b);
    for by in [
        "start", "pending", "msgs_to", "bytes_to", "last", "idle", "uptime", "rtt",
    ] {
        let v = get_json(&http, &format!("/connz?sort={by}"));
        let mut got = cids(&v);
        got.sort();
        assert_eq!(
            got,
            vec![cid_a, cid_b, cid_c],
            "sort={by} lists every connection"
        );
    }

    // One connection by cid.
    let v = get_json(&http, &format!("/connz?cid={cid_c}"));
    assert_eq!(cids(&v), vec![cid_c]);
    assert_eq!(v["limit"], 1);

    // Bad parameters: nats-server's texts, status 400.
    for (path, text) in [
        ("/connz?sort=bogus", "invalid sorting option: bogus"),
        (
            "/connz?sort=stop",
            "sort by stop only valid on closed connections",
        ),
        (
            "/connz?sort=reason&state=any",
            "sort by reason only valid on closed connections",
        ),
        ("/connz?state=xx", "Error decoding state for xx"),
        (
            "/connz?auth=maybe",
            r#"Error decoding boolean for 'auth': strconv.ParseBool: parsing "maybe": invalid syntax"#,
        ),
        (
            "/connz?limit=x",
            r#"Error decoding int for 'limit': strconv.Atoi: parsing "x": invalid syntax"#,
        ),
        (
            "/connz?cid=-1",
            r#"Error decoding uint64 for 'cid': strconv.ParseUint: parsing "-1": invalid syntax"#,
        ),
    ] {
        let r = http_get(&http, path);
        assert_eq!((r.status, r.body.as_str()), (400, text), "GET {path}");
    }

    // A closed connection shows up under state=closed, with why and when.
    c.drain().await.unwrap();
    drop(c);
    let v = poll_json(&http, "/connz?state=closed", "conn-c closed", |v| {
        cids(v).contains(&cid_c)
    });
    let cc = conns(&v).iter().find(|c| c["cid"] == cid_c).unwrap();
    assert_eq!(cc["name"], "conn-c");
    assert!(is_rfc3339(&cc["stop"]));
    assert!(cc["reason"].as_str().is_some_and(|r| !r.is_empty()));
    let v = poll_json(&http, "/connz", "2 open connections", |v| {
        v["num_connections"] == 2
    });
    assert!(!cids(&v).contains(&cid_c));
    let v = get_json(&http, "/connz?state=any&sort=cid");
    assert_eq!(cids(&v), vec![cid_a, cid_b, cid_c]);
    let v = get_json(&http, "/connz?state=closed&sort=stop");
    assert_eq!(cids(&v), vec![cid_c]);
    let v = get_json(&http, &format!("/connz?state=closed&cid={cid_c}"));
    assert_eq!(cids(&v), vec![cid_c]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subsz_counts_and_test_filter() {
    let s = start(tribune());
    let http = http_addr(&s);
    let a = connect(&s, "subs").await;
    let cid = a.server_info().client_id;
    let _x = a.subscribe("foo.*").await.unwrap();
    let _y = a.subscribe("foo.bar").await.unwrap();
    let _z = a.queue_subscribe("baz", "q".into()).await.unwrap();
    let w = a.subscribe("gone").await.unwrap();
    a.flush().await.unwrap();
    drop(w);
    a.flush().await.unwrap();

    let v = poll_json(&http, "/subsz", "3 subscriptions", |v| {
        v["num_subscriptions"] == 3 && v["num_removes"] == 1
    });
    assert_eq!(v["num_inserts"], 4);
    assert_eq!(v["total"], 0, "without subs=1 nothing is listed");
    assert!(v.get("subscriptions_list").is_none());
    for k in [
        "num_cache",
        "num_matches",
        "cache_hit_rate",
        "max_fanout",
        "avg_fanout",
        "offset",
        "limit",
        "server_id",
        "now",
    ] {
        assert!(v.get(k).is_some(), "{k}");
    }

    let v = get_json(&http, "/subsz?subs=1");
    assert_eq!(v["total"], 3);
    let list = v["subscriptions_list"].as_array().unwrap();
    let baz = list.iter().find(|d| d["subject"] == "baz").unwrap();
    assert_eq!(
        (
            baz["qgroup"].as_str(),
            baz["account"].as_str(),
            baz["cid"].as_u64()
        ),
        (Some("q"), Some("$G"), Some(cid))
    );

    let v = get_json(&http, "/subscriptionsz?subs=1&test=foo.bar");
    assert_eq!(v["total"], 2);
    let subjects: BTreeSet<&str> = v["subscriptions_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, BTreeSet::from(["foo.*", "foo.bar"]));

    let v = get_json(&http, "/subsz?subs=1&offset=1&limit=1");
    assert_eq!(
        (
            v["total"].as_u64(),
            v["subscriptions_list"].as_array().map(Vec::len)
        ),
        (Some(3), Some(1))
    );

    let r = http_get(&http, "/subsz?test=foo.*");
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            "invalid test subject, must be valid publish subject: foo.*"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_routez_root_and_unknown_paths() {
    let s = start(tribune());
    let http = http_addr(&s);

    let r = http_get(&http, "/healthz");
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"status":"ok"}"#));
    assert_eq!(
        r.headers
            .get("access-control-allow-origin")
            .map(String::as_str),
        Some("*")
    );
    for q in ["js-enabled-only=true", "js-server-only=1"] {
        let r = http_get(&http, &format!("/healthz?{q}"));
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, r#"{"status":"ok"}"#),
            "{q}"
        );
    }
    let r = http_get(&http, "/healthz?stream=s");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        r#"{"status":"error","error":"\"account\" must not be empty when checking stream health"}"#
    );

    let v = get_json(&http, "/routez");
    assert_eq!(v["num_routes"], 0);
    assert_eq!(v["routes"], serde_json::json!([]));
    assert!(v["server_id"]
        .as_str()
        .is_some_and(|id| id.starts_with('N')));

    let r = http_get(&http, "/");
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].starts_with("text/html"));
    for ep in ["varz", "connz", "subsz", "routez", "healthz", "metrics"] {
        assert!(r.body.contains(&format!("./{ep}")), "index links {ep}");
    }

    for path in ["/nope", "/varz/", "/varzz", "/connz/x"] {
        assert_eq!(http_get(&http, path).status, 404, "{path}");
    }
    let v = get_json(&http, "/varz");
    assert!(v["http_req_stats"]["/healthz"].as_u64().unwrap() >= 4);
    assert_eq!(v["http_req_stats"]["/"], 1);
}

/// In lame-duck mode the client listener is closed, and nats-server's
/// `/healthz` then fails its readiness check with status 500.
#[test]
fn healthz_fails_in_lame_duck_mode() {
    let s = ServerSpec::new(tribune())
        .args(["-m", "-1"])
        .config("lame_duck_duration: \"60s\"\nlame_duck_grace_period: \"30s\"\n")
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let http = http_addr(&s);
    assert_eq!(http_get(&http, "/healthz").status, 200);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid() as i32),
        nix::sys::signal::Signal::SIGUSR2,
    )
    .unwrap();
    let end = Instant::now() + DEADLINE;
    let r = loop {
        let r = http_get(&http, "/healthz");
        if r.status != 200 || Instant::now() > end {
            break r;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(
        r.body,
        r#"{"status":"error","error":"failed to be ready for connections after 1ms: server"}"#
    );
    let r = http_get(&http, "/healthz?details=true");
    assert_eq!(
        r.body,
        r#"{"status":"error","errors":[{"type":"CONNECTION","error":"failed to be ready for connections after 1ms: server"}]}"#
    );
    let m = common::prometheus::parse(&http_get(&http, "/metrics").body);
    assert_eq!(m["tribune_lame_duck"], 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_path_prefixes_every_endpoint() {
    let s = ServerSpec::new(tribune())
        .args(["-m", "-1"])
        .config("http_base_path: /mon\n")
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let http = http_addr(&s);
    assert_eq!(http_get(&http, "/mon").status, 200);
    assert_eq!(get_json(&http, "/mon/varz")["http_base_path"], "/mon");
    assert_eq!(http_get(&http, "/mon/healthz").status, 200);
    assert_eq!(http_get(&http, "/mon/metrics").status, 200);
    assert_eq!(http_get(&http, "/varz").status, 404);
    assert_eq!(http_get(&http, "/").status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_is_prometheus_text() {
    let s = start(tribune());
    let http = http_addr(&s);
    let a = connect(&s, "m").await;
    let mut sub = a.subscribe("m").await.unwrap();
    a.publish("m", "abc".into()).await.unwrap();
    a.flush().await.unwrap();
    tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("message")
        .expect("stream open");
    poll_json(&http, "/varz", "the message counted", |v| v["in_msgs"] == 1);

    let r = http_get(&http, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4")
    );
    let m = common::prometheus::parse(&r.body);
    let server_id = get_json(&http, "/varz")["server_id"]
        .as_str()
        .unwrap()
        .to_string();
    let info = m
        .keys()
        .find(|k| k.starts_with("tribune_info{"))
        .expect("tribune_info");
    assert!(
        info.contains(&format!("server_id=\"{server_id}\"")),
        "{info}"
    );
    assert!(
        info.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );
    assert_eq!(m[info], 1.0);
    assert_eq!(m["tribune_connections"], 1.0);
    assert_eq!(m["tribune_messages_received_total"], 1.0);
    assert_eq!(m["tribune_messages_sent_total"], 1.0);
    assert_eq!(m["tribune_bytes_received_total"], 3.0);
    assert_eq!(m["tribune_subscriptions"], 1.0);
    assert_eq!(m["tribune_lame_duck"], 0.0);
    assert!(m["tribune_resident_memory_bytes"] > 0.0);
    assert!(m["tribune_uptime_seconds"] >= 0.0);
    for name in [
        "tribune_connections_total",
        "tribune_slow_consumers_total",
        "tribune_auth_errors_total",
        "tribune_cpu_seconds_total",
        "tribune_max_connections",
    ] {
        assert!(m.contains_key(name), "{name}");
    }
    assert!(m.contains_key("tribune_http_requests_total{path=\"/metrics\"}"));
}

// ------------------------------------------------------------ differential

/// Key paths of a JSON object: `a`, and `a.b` for keys of nested objects.
/// Arrays are not descended into (their entries are compared separately).
fn key_paths(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    fn walk(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
        if let Value::Object(map) = v {
            for (k, child) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                // Maps keyed by data, not by schema.
                if path != "http_req_stats" {
                    walk(&path, child, out);
                }
                out.insert(path);
            }
        }
    }
    walk("", v, &mut out);
    out
}

/// Same traffic against a server: a subscriber with a plain, a queue and an
/// auto-unsubscribe subscription, a publisher, and a client that comes and
/// goes. Returns the clients so they stay connected.
async fn differential_traffic(
    s: &Server,
    http: &str,
) -> (
    async_nats::Client,
    async_nats::Client,
    Vec<async_nats::Subscriber>,
) {
    let a = connect(s, "diff-sub").await;
    let b = connect(s, "diff-pub").await;
    let mut subs = vec![
        a.subscribe("foo").await.unwrap(),
        a.queue_subscribe("foo.*", "q".into()).await.unwrap(),
    ];
    let mut limited = a.subscribe("bar").await.unwrap();
    limited.unsubscribe_after(10).await.unwrap();
    subs.push(limited);
    a.flush().await.unwrap();
    wait_for_subs(http, &a, 3);
    b.publish("foo", "hello".into()).await.unwrap();
    b.publish("foo.x", "abc".into()).await.unwrap();
    b.flush().await.unwrap();
    let c = connect(s, "diff-gone").await;
    let _gone = c.subscribe("zzz").await.unwrap();
    c.flush().await.unwrap();
    c.drain().await.unwrap();
    (a, b, subs)
}

struct Shapes {
    varz: BTreeSet<String>,
    connz: BTreeSet<String>,
    conn: BTreeSet<String>,
    conn_sub: BTreeSet<String>,
    closed_conn: BTreeSet<String>,
    subsz: BTreeSet<String>,
    subsz_sub: BTreeSet<String>,
    routez: BTreeSet<String>,
    healthz: BTreeSet<String>,
}

async fn shapes(bin: std::path::PathBuf) -> Shapes {
    let s = start(bin);
    let http = http_addr(&s);
    let (a, _b, _subs) = differential_traffic(&s, &http).await;
    let cid = a.server_info().client_id;
    poll_json(&http, "/connz?state=closed", "the departed client", |v| {
        conns(v).iter().any(|c| c["name"] == "diff-gone")
    });
    let connz = poll_json(&http, "/connz?subs=detail&auth=1", "2 messages out", |v| {
        conns(v)
            .iter()
            .any(|c| c["cid"] == cid && c["out_msgs"] == 2)
    });
    let conn = conns(&connz)
        .iter()
        .find(|c| c["cid"] == cid)
        .unwrap()
        .clone();
    let conn_sub = conn["subscriptions_list_detail"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["subject"] == "foo.*")
        .unwrap()
        .clone();
    let closed = get_json(&http, "/connz?state=closed");
    let closed_conn = conns(&closed)
        .iter()
        .find(|c| c["name"] == "diff-gone")
        .unwrap()
        .clone();
    let subsz = get_json(&http, "/subsz?subs=1&test=foo.x");
    let subsz_sub = subsz["subscriptions_list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["subject"] == "foo.*")
        .unwrap()
        .clone();
    let h = http_get(&http, "/healthz");
    assert_eq!(h.status, 200);
    Shapes {
        varz: key_paths(&get_json(&http, "/varz")),
        connz: key_paths(&connz),
        conn: key_paths(&conn),
        conn_sub: key_paths(&conn_sub),
        closed_conn: key_paths(&closed_conn),
        subsz: key_paths(&subsz),
        subsz_sub: key_paths(&subsz_sub),
        routez: key_paths(&get_json(&http, "/routez")),
        healthz: key_paths(&serde_json::from_str(&h.body).unwrap()),
    }
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

/// Run identical traffic against nats-server and tribune-broker and compare
/// the key sets of every endpoint's JSON.
///
/// The one known difference, in /varz and nats-server-only:
/// `feature_flags`, JetStream/Raft feature toggles Tribune lacks.
///
/// Everything else matches, including nested objects (`cluster`, `gateway`,
/// `leaf`, `mqtt`, `websocket`, `jetstream` empty as with the features off;
/// `slow_consumer_stats`, `stale_connection_stats`, `disk_io_wait_stats`).
/// Values such as `rtt` exist on both sides but Tribune's is always "0s"
/// (it does not measure RTT yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_sets_match_nats_server() {
    let reference = shapes(nats_server_bin()).await;
    let ours = shapes(tribune()).await;

    let nats_only_varz = set(&["feature_flags"]);
    let feature_flag_keys: BTreeSet<String> = reference
        .varz
        .iter()
        .filter(|k| k.starts_with("feature_flags."))
        .cloned()
        .collect();
    let expected_missing: BTreeSet<String> =
        nats_only_varz.union(&feature_flag_keys).cloned().collect();
    let missing: BTreeSet<String> = reference.varz.difference(&ours.varz).cloned().collect();
    let extra: BTreeSet<String> = ours.varz.difference(&reference.varz).cloned().collect();
    assert_eq!(
        missing, expected_missing,
        "/varz keys nats-server has and tribune lacks"
    );
    assert!(extra.is_empty(), "/varz keys only tribune has: {extra:?}");

    for (what, r, o) in [
        ("/connz", &reference.connz, &ours.connz),
        ("/connz connection", &reference.conn, &ours.conn),
        (
            "/connz subscription detail",
            &reference.conn_sub,
            &ours.conn_sub,
        ),
        ("/subsz", &reference.subsz, &ours.subsz),
        ("/subsz subscription", &reference.subsz_sub, &ours.subsz_sub),
        ("/routez", &reference.routez, &ours.routez),
        ("/healthz", &reference.healthz, &ours.healthz),
    ] {
        assert_eq!(r, o, "{what}: key sets differ");
    }
    // Closed connections: nats-server keeps the subscription count of a
    // closed client; both always carry the stop/reason pair.
    for k in [
        "stop",
        "reason",
        "uptime",
        "idle",
        "subscriptions",
        "in_msgs",
        "out_msgs",
    ] {
        assert!(
            reference.closed_conn.contains(k) && ours.closed_conn.contains(k),
            "closed connection key {k}"
        );
    }
    let extra: BTreeSet<&String> = ours
        .closed_conn
        .difference(&reference.closed_conn)
        .collect();
    assert!(
        extra.is_empty(),
        "closed connection keys only tribune has: {extra:?}"
    );
}

/// Who `/connz?auth=true` says a client is: the user name, the nkey, and
/// for a token user `[REDACTED]`, never the token; the same on both servers.
#[test]
fn connz_authorized_user_never_shows_a_token() {
    for (label, bin) in common::both_servers() {
        let server = ServerSpec::new(bin)
            .args(["-m", "-1"])
            .config("authorization { token: s3cret-token }\n")
            .start()
            .unwrap();
        let mut c = common::raw::RawConn::open(server.port);
        c.send("CONNECT {\"verbose\":false,\"auth_token\":\"s3cret-token\"}\r\n");
        assert_eq!(c.ping(), ["PONG\r\n"], "{label}");
        let http = http_addr(&server);
        let v = get_json(&http, "/connz?auth=true");
        assert_eq!(conns(&v)[0]["authorized_user"], "[REDACTED]", "{label}");
        assert!(
            !http_get(&http, "/connz?auth=true").body.contains("s3cret"),
            "{label}"
        );
    }
}
