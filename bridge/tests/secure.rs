//! Production-shaped transport security: MQTT over TLS with verified
//! certificates and provider credentials (mosquitto), NATS over TLS with an
//! NKEY user. Secrets never reach the log; a wrong CA is refused.

mod support;

use std::process::Command;
use std::time::Duration;

use support::pki::pki;
use support::*;

const PROVIDER_SECRET: &str = "pr0vider-s3cret-do-not-log";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_both_sides_nkey_and_provider_credentials() {
    init();
    let Some(bin) = mosquitto_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    pki(d, "good-");
    pki(d, "other-");

    // mosquitto: TLS + password listener for the bridge, plaintext anonymous
    // loopback listener for the simulator.
    let passwd = d.join("passwd");
    let st = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["provider-user", PROVIDER_SECRET])
        .status()
        .expect("mosquitto_passwd (package mosquitto)");
    assert!(st.success());
    let (tls_port, plain_port) = (free_port(), free_port());
    let dp = d.display();
    let _mosq = Mosquitto::start_with_config(
        &bin,
        d,
        tls_port,
        &format!(
            "per_listener_settings true\npersistence false\nmax_queued_messages 100000\n\
             listener {tls_port} 127.0.0.1\ncafile {dp}/good-ca.pem\ncertfile {dp}/good-server.pem\nkeyfile {dp}/good-server-key.pem\n\
             allow_anonymous false\npassword_file {}\n\
             listener {plain_port} 127.0.0.1\nallow_anonymous true\n",
            passwd.display()
        ),
    );

    // NATS: TLS required, one NKEY user.
    let seed_file = d.join("bridge.nk");
    let (seed, public) = tribune_bridge::keygen::generate("user").unwrap();
    tribune_bridge::keygen::write_seed(&seed_file, &seed).unwrap();
    let (tail_seed, tail_public) = tribune_bridge::keygen::generate("user").unwrap();
    let conf = d.join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "tls {{ cert_file: \"{dp}/good-server.pem\", key_file: \"{dp}/good-server-key.pem\" }}\n\
             authorization {{ users: [ {{ nkey: {public} }}, {{ nkey: {tail_public} }} ] }}\n"
        ),
    )
    .unwrap();
    let nats = NatsServer::start(d, Some(&conf));
    std::fs::write(d.join("secret"), PROVIDER_SECRET).unwrap();

    let config = |mqtt_ca: &str, nats_ca: &str| {
        format!(
            r#"
[mqtt]
url = "mqtts://localhost:{tls_port}"
client_id = "bridge-secure-{mqtt_ca}{nats_ca}"
ca_file = "{dp}/{mqtt_ca}ca.pem"
username = {{ value = "provider-user" }}
password = {{ file = "{dp}/secret" }}
reconnect_min_ms = 50
reconnect_max_ms = 500
[[mqtt.subscriptions]]
topic = "thesports/+/match/v1"
[nats]
servers = ["tls://localhost:{}"]
tls_ca_file = "{dp}/{nats_ca}ca.pem"
nkey_seed = {{ file = "{}" }}
"#,
            nats.port,
            seed_file.display()
        )
    };
    let mut bridge = BridgeProc::start(d, &config("good-", "good-"));
    bridge.wait_healthy().await;

    let client = async_nats::ConnectOptions::new()
        .nkey(tail_seed.clone())
        .add_root_certificates(d.join("good-ca.pem"))
        .require_tls(true)
        .connect(format!("tls://localhost:{}", nats.port))
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let report = run_sim(&format!("mqtt://127.0.0.1:{plain_port}"), 300, 0.0, 0, 51).await;
    assert_eq!(report.updates, 300);
    wait_for("updates over TLS", Duration::from_secs(60), || async {
        stream_messages(&js, "SPORTS").await >= 300
    })
    .await;
    assert_eq!(stream_messages(&js, "SPORTS").await, 300);
    assert!(bridge.terminate());

    // Wrong CA on either side: no connection, a certificate error in the log.
    for (mqtt_ca, nats_ca) in [("other-", "good-"), ("good-", "other-")] {
        let mut bad = BridgeProc::start(d, &config(mqtt_ca, nats_ca));
        let end = std::time::Instant::now() + Duration::from_secs(60);
        while !bad.log_text().to_lowercase().contains("certificate") {
            assert!(
                std::time::Instant::now() < end,
                "no certificate error for {mqtt_ca}/{nats_ca}; log:\n{}",
                bad.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            http_get(bad.http_port, "/healthz").is_none(),
            "must not be healthy with the wrong CA"
        );
        bad.kill9();
        assert!(!bad.log_text().contains(PROVIDER_SECRET));
        assert!(!bad.log_text().contains(&seed));
    }
    let log = bridge.log_text();
    assert!(!log.contains(PROVIDER_SECRET), "provider secret in the log");
    assert!(!log.contains(&seed), "NKEY seed in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_provider_password_is_refused_and_retried() {
    init();
    let Some(bin) = mosquitto_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let passwd = d.join("passwd");
    assert!(Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["provider-user", "right"])
        .status()
        .unwrap()
        .success());
    let port = free_port();
    let _mosq = Mosquitto::start_with_config(
        &bin,
        d,
        port,
        &format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
            passwd.display()
        ),
    );
    let nats = NatsServer::start(d, None);
    let cfg = bridge_config(&format!("mqtt://127.0.0.1:{port}"), &[nats.url()], "bridge-badpw", "")
        .replace("allow_plaintext = true", "allow_plaintext = true\nusername = { value = \"provider-user\" }\npassword = { value = \"wrong-pw-zz\" }");
    let mut bridge = BridgeProc::start(d, &cfg);
    wait_for(
        "refusal logged twice (backoff retries)",
        Duration::from_secs(60),
        || {
            let n = bridge.log_text().matches("MQTT connection failed").count();
            async move { n >= 2 }
        },
    )
    .await;
    assert!(bridge.alive());
    assert!(!bridge.log_text().contains("wrong-pw-zz"));
    assert!(bridge.terminate(), "clean exit while disconnected");
}
