//! An embedded MQTT broker (rumqttd) so the simulator, `make run` and the tests
//! need no external broker.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Messages a connection may have unacknowledged. Large, so that the broker's
/// window is not what limits bridge throughput (the bridge bounds its own).
pub const MAX_INFLIGHT: usize = 4096;

/// Starts rumqttd on `addr` in background threads and waits until it accepts
/// connections. It runs until the process exits (rumqttd has no stop call).
pub fn start(addr: SocketAddr) -> Result<()> {
    // Fail fast and clearly if the port is taken: rumqttd only logs that.
    std::net::TcpListener::bind(addr)
        .with_context(|| format!("embedded MQTT broker: cannot listen on {addr}"))?;
    let server = ServerSettings {
        name: "tribune-sim".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 1 << 20,
            max_inflight_count: MAX_INFLIGHT,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: MAX_INFLIGHT as u64,
            max_segment_size: 100 << 20,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .context("spawning the embedded MQTT broker")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answers_connect(addr) {
        if Instant::now() > deadline {
            bail!("embedded MQTT broker did not start answering on {addr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::info!(%addr, "embedded MQTT broker (rumqttd) listening");
    Ok(())
}

/// True once the broker answers an MQTT CONNECT with a successful CONNACK (a
/// bare TCP probe would make rumqttd log an error for the aborted handshake).
fn answers_connect(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    // CONNECT, MQTT 3.1.1, clean session, keep-alive 10 s, client id "probe".
    let connect: [u8; 19] = [
        0x10, 17, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10, 0, 5, b'p', b'r', b'o', b'b', b'e',
    ];
    let mut connack = [0u8; 4];
    let ok = s.write_all(&connect).is_ok()
        && s.read_exact(&mut connack).is_ok()
        && connack[0] == 0x20
        && connack[3] == 0;
    let _ = s.write_all(&[0xe0, 0]); // DISCONNECT
    ok
}
