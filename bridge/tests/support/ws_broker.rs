//! A real MQTT broker serving MQTT over WebSocket with TLS: rumqttd with its
//! `websocket` and `use-rustls` features, which bridge/Cargo.toml enables
//! for test builds only (a dev-dependency), so the bridge binary's own
//! embedded broker stays without them.
//!
//! One broker, three listeners on loopback: `wss://` (the provider's shape,
//! certificate from a test CA), `ws://` (plaintext WebSocket, loopback) and
//! plain `mqtt://`. The router and its sessions are shared, so a message
//! published on one listener reaches a subscriber on another.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings, TlsConfig};

use super::free_port;
use super::pki::pki;

/// Where the test broker listens, and the CAs to verify it with.
pub struct WsBroker {
    /// `wss://localhost:<port>/mqtt`.
    pub wss_url: String,
    /// `ws://127.0.0.1:<port>/mqtt`.
    pub ws_url: String,
    /// `mqtt://127.0.0.1:<port>`.
    pub mqtt_url: String,
    /// `mqtts://localhost:<port>`.
    pub mqtts_url: String,
    /// The CA that signed the broker's certificate.
    pub ca_file: PathBuf,
    /// A CA that did not.
    pub other_ca_file: PathBuf,
    /// The wss listener's port.
    pub wss_port: u16,
}

fn listener(name: &str, port: u16, tls: Option<TlsConfig>) -> ServerSettings {
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    ServerSettings {
        name: name.into(),
        listen,
        tls,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 1 << 20,
            max_inflight_count: tribune_bridge::sim::embedded::MAX_INFLIGHT,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    }
}

/// Starts the broker (it runs until the test process exits: rumqttd has no
/// stop call) and returns once every listener answers an MQTT CONNECT.
pub async fn ws_broker(dir: &Path) -> WsBroker {
    pki(dir, "ws-good-");
    pki(dir, "ws-other-");
    let (wss, ws, tcp, mqtts) = (free_port(), free_port(), free_port(), free_port());
    let tls = TlsConfig::Rustls {
        capath: None,
        certpath: dir.join("ws-good-server.pem").display().to_string(),
        keypath: dir.join("ws-good-server-key.pem").display().to_string(),
    };
    let max = tribune_bridge::sim::embedded::MAX_INFLIGHT as u64;
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: max,
            max_segment_size: 100 << 20,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([
            ("tcp".to_owned(), listener("test-tcp", tcp, None)),
            (
                "mqtts".to_owned(),
                listener("test-mqtts", mqtts, Some(tls.clone())),
            ),
        ])),
        ws: Some(HashMap::from([
            ("wss".to_owned(), listener("test-wss", wss, Some(tls))),
            ("ws".to_owned(), listener("test-ws", ws, None)),
        ])),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("rumqttd-ws".into())
        .spawn(move || {
            if let Err(e) = Broker::new(config).start() {
                eprintln!("test rumqttd stopped: {e}");
            }
        })
        .expect("spawning rumqttd");
    let broker = WsBroker {
        wss_url: format!("wss://localhost:{wss}/mqtt"),
        ws_url: format!("ws://127.0.0.1:{ws}/mqtt"),
        mqtt_url: format!("mqtt://127.0.0.1:{tcp}"),
        mqtts_url: format!("mqtts://localhost:{mqtts}"),
        ca_file: dir.join("ws-good-ca.pem"),
        other_ca_file: dir.join("ws-other-ca.pem"),
        wss_port: wss,
    };
    for url in [
        &broker.mqtt_url,
        &broker.mqtts_url,
        &broker.ws_url,
        &broker.wss_url,
    ] {
        wait_connack(url, &broker.ca_file).await;
    }
    broker
}

/// Connects with rumqttc over `url`'s transport until a CONNACK arrives.
async fn wait_connack(url: &str, ca_file: &Path) {
    use rumqttc::{AsyncClient, Event, Packet};
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let opts = tribune_bridge::endpoint::Endpoint::parse(url)
            .expect("url")
            .mqtt_options(&format!("probe-{}", free_port()), Some(ca_file))
            .expect("options");
        let (client, mut events) = AsyncClient::new(opts, 10);
        let got = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await;
        match got {
            Ok(Ok(())) => {
                let _ = client.try_disconnect();
                let _ = tokio::time::timeout(Duration::from_secs(1), events.poll()).await;
                return;
            }
            Ok(Err(e)) if Instant::now() > end => panic!("test broker at {url}: {e}"),
            Err(_) if Instant::now() > end => panic!("test broker at {url}: no CONNACK"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
