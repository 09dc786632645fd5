//! MQTT over WebSocket: the bridge (the binary) reads the feed from a real
//! broker serving `wss://` (rumqttd's WebSocket listener with TLS, see
//! support/ws_broker.rs), the simulator publishes over `wss://` too.
//! Everything the TCP transports guarantee holds: N updates in, exactly N
//! once in the stream; the PUBACKs the bridge writes itself reach the broker;
//! `kill -9` mid-feed and restart loses nothing. A wrong CA is refused with a
//! certificate error, and plaintext `ws://` is accepted only to loopback.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::crash::{acks_reach_the_mqtt_broker, kill9_mid_stream};
use support::pki::pki;
use support::ws_broker::ws_broker;
use support::*;

const N: u64 = 2000;

/// The `[mqtt]` lines of a bridge reading from `url`, verified with `ca`.
fn wss_lines(url: &str, ca: &std::path::Path) -> String {
    format!("url = \"{url}\"\nca_file = \"{}\"", ca.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_n_in_exactly_n_out() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let broker = ws_broker(dir.path()).await;
    let nats = NatsServer::start(dir.path(), None);
    let bridge = BridgeProc::start(
        dir.path(),
        &bridge_config_mqtt(
            &wss_lines(&broker.wss_url, &broker.ca_file),
            &[nats.url()],
            "bridge-wss-e2e",
            "",
        ),
    );
    bridge.wait_healthy().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());

    let report = run_sim_ca(&broker.wss_url, Some(&broker.ca_file), N, 0.0, 0, 61).await;
    assert_eq!(report.updates, N);
    wait_for("stream holds N", Duration::from_secs(60), || async {
        stream_messages(&js, "SPORTS").await >= N
    })
    .await;
    wait_for(
        "every MQTT message acked",
        Duration::from_secs(60),
        || async { bridge.metric("tribune_bridge_mqtt_acks_total") == report.messages },
    )
    .await;
    let ids = stream_msg_ids(&js, "SPORTS").await;
    assert_eq!(ids.len() as u64, N, "stream message count");
    assert_unique(&ids);
    assert_eq!(bridge.metric("tribune_bridge_updates_published_total"), N);
    assert_eq!(bridge.metric("tribune_bridge_duplicates_total"), 0);
    assert_states_are_whole(&client, 61, N).await;
    let log = bridge.log_text();
    let named = log.lines().any(|l| {
        l.contains("MQTT endpoint")
            && l.contains(&format!("url=wss://localhost:{}/mqtt", broker.wss_port))
            && l.contains("tls=true")
    });
    assert!(named, "the bridge names its endpoint; log:\n{log}");
    assert!(!log.contains("MQTT connection failed"), "log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_acks_reach_the_broker() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let broker = ws_broker(dir.path()).await;
    acks_reach_the_mqtt_broker(
        &wss_lines(&broker.wss_url, &broker.ca_file),
        &broker.wss_url,
        Some(&broker.ca_file),
        "wss",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_kill9_mid_stream_loses_nothing() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let broker = ws_broker(dir.path()).await;
    kill9_mid_stream(
        &wss_lines(&broker.wss_url, &broker.ca_file),
        &broker.wss_url,
        Some(&broker.ca_file),
        "wss",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_wrong_ca_is_refused_with_a_certificate_error() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let broker = ws_broker(dir.path()).await;
    let nats = NatsServer::start(dir.path(), None);
    let mut bridge = BridgeProc::start(
        dir.path(),
        &bridge_config_mqtt(
            &wss_lines(&broker.wss_url, &broker.other_ca_file),
            &[nats.url()],
            "bridge-wss-badca",
            "",
        ),
    );
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let log = bridge.log_text();
        let refused = log
            .lines()
            .filter(|l| l.contains("MQTT connection failed"))
            .filter(|l| l.contains("invalid peer certificate"))
            .count();
        // Twice: refused, and retried with backoff rather than given up.
        if refused >= 2 {
            break;
        }
        assert!(
            Instant::now() < end,
            "no certificate error for the wrong CA; log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(bridge.alive());
    assert!(
        http_get(bridge.http_port, "/healthz").is_none(),
        "must not be healthy with the wrong CA"
    );
    assert_eq!(bridge.metric("tribune_bridge_mqtt_connected"), 0);
    // Nothing got through: a message published meanwhile is not stored.
    run_sim(&broker.mqtt_url, 10, 0.0, 0, 62).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    assert_eq!(stream_messages(&js, "SPORTS").await, 0);
    assert!(bridge.terminate(), "clean exit while disconnected");
}

/// `tribune-bridge run --check` on a config with these `[mqtt]` lines:
/// (success, stdout + stderr).
fn check(dir: &std::path::Path, name: &str, mqtt_lines: &str) -> (bool, String) {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        bridge_config_mqtt(mqtt_lines, &["nats://127.0.0.1:4222".into()], name, ""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tribune-bridge"))
        .args(["run", "--check", "-c"])
        .arg(&path)
        .env("NO_COLOR", "1")
        .output()
        .expect("running tribune-bridge");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_ws_only_to_loopback() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pki(d, "check-");

    // Refused at the config check, before any connection.
    let (ok, out) = check(
        d,
        "remote-ws",
        "url = \"ws://mqtt.example.com/mqtt\"\nallow_plaintext = true",
    );
    assert!(!ok, "ws:// to a remote host accepted:\n{out}");
    assert!(out.contains("only to a loopback host"), "{out}");
    let (ok, out) = check(d, "local-ws-no-plain", "url = \"ws://127.0.0.1:9001/mqtt\"");
    assert!(!ok, "ws:// without allow_plaintext accepted:\n{out}");
    assert!(out.contains("plaintext ws://"), "{out}");
    for (name, lines) in [
        (
            "local-ws",
            "url = \"ws://127.0.0.1:9001/mqtt\"\nallow_plaintext = true",
        ),
        (
            "localhost-ws",
            "url = \"ws://localhost:9001\"\nallow_plaintext = true",
        ),
        (
            "remote-wss",
            &format!(
                "url = \"wss://mqtt.example.com/mqtt\"\nca_file = \"{}\"",
                d.join("check-ca.pem").display()
            ),
        ),
    ] {
        let (ok, out) = check(d, name, lines);
        assert!(ok && out.contains("config ok"), "{name}:\n{out}");
    }

    // And it carries the feed: plaintext WebSocket on loopback.
    let broker = ws_broker(d).await;
    let nats = NatsServer::start(d, None);
    let bridge = BridgeProc::start(
        d,
        &bridge_config(&broker.ws_url, &[nats.url()], "bridge-ws-local", ""),
    );
    bridge.wait_healthy().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let report = run_sim(&broker.ws_url, 300, 0.0, 0, 63).await;
    assert_eq!(report.updates, 300);
    wait_for(
        "300 updates over ws://",
        Duration::from_secs(60),
        || async { stream_messages(&js, "SPORTS").await >= 300 },
    )
    .await;
    let ids = stream_msg_ids(&js, "SPORTS").await;
    assert_eq!(ids.len(), 300);
    assert_unique(&ids);
}
