//! The provider's side of the benchmark: QoS 1 PUBLISH packets, encoded with
//! rumqttc's own codec, written many per socket write.
//!
//! rumqttc's client flushes the socket once per publish. On a two-core box
//! that made the simulated provider (one write per message, and one read per
//! message in the MQTT broker) a large share of the CPU the benchmark is
//! meant to give the bridge. A real provider's broker is elsewhere; here it
//! only has to feed the embedded one as cheaply as MQTT allows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use rumqttc::{Connect, Packet, Publish, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

const MAX_PACKET: usize = 1 << 20;
/// Bytes gathered before a write when nothing forces one earlier.
const WRITE_AT: usize = 64 * 1024;

pub struct Provider {
    pub addr: SocketAddr,
    pub client_id: String,
    pub topic: String,
    pub qos: QoS,
    /// Most QoS 1 publishes unacknowledged at once (below 65535, the packet
    /// id space, which is reused in order).
    pub window: usize,
    /// Paced publishes per second; 0 = as fast as the window allows.
    pub rate: f64,
}

impl Provider {
    /// Publishes `n` messages, `payload(i)` each, calling `sent(i)` just
    /// before message `i` is written. Returns once all are written (QoS 1:
    /// and acknowledged by the broker).
    pub async fn publish(
        self,
        n: usize,
        t0: Instant,
        payload: impl Fn(usize) -> Vec<u8>,
        sent: impl Fn(usize),
    ) -> Result<()> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("bench provider: connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (mut rd, mut wr) = stream.into_split();
        let mut out = BytesMut::with_capacity(WRITE_AT + 4096);
        let mut connect = Connect::new(self.client_id.clone());
        connect.keep_alive = 60;
        Packet::Connect(connect).write(&mut out, MAX_PACKET)?;
        wr.write_all(&out).await?;
        out.clear();

        let mut inbound = BytesMut::with_capacity(64 * 1024);
        match read_packet(&mut rd, &mut inbound).await? {
            Packet::ConnAck(ack) if ack.code == rumqttc::ConnectReturnCode::Success => {}
            other => bail!("bench provider: expected a successful CONNACK, got {other:?}"),
        }

        let window = self.window.clamp(1, 65_000);
        let permits = Arc::new(Semaphore::new(window));
        let acks = {
            let permits = permits.clone();
            tokio::spawn(async move {
                loop {
                    match read_packet(&mut rd, &mut inbound).await {
                        Ok(Packet::PubAck(_)) => permits.add_permits(1),
                        Ok(_) => {}
                        Err(e) => return e,
                    }
                }
            })
        };

        let qos1 = self.qos != QoS::AtMostOnce;
        // Paced (latency) runs write every publish at once, so the buffer is
        // empty whenever they sleep; unpaced runs gather up to WRITE_AT.
        let paced = self.rate > 0.0;
        for i in 0..n {
            if paced {
                let due = t0 + Duration::from_secs_f64(i as f64 / self.rate);
                tokio::time::sleep_until(due.into()).await;
            }
            if qos1 {
                let permit = match permits.try_acquire() {
                    Ok(p) => p,
                    Err(_) => {
                        // The window is full: send what is gathered, then wait.
                        write_out(&mut wr, &mut out).await?;
                        permits.acquire().await?
                    }
                };
                permit.forget();
            }
            let mut publish = Publish::new(self.topic.as_str(), self.qos, payload(i));
            if qos1 {
                publish.pkid = (i % 65_535) as u16 + 1;
            }
            sent(i);
            Packet::Publish(publish).write(&mut out, MAX_PACKET)?;
            if paced || out.len() >= WRITE_AT {
                write_out(&mut wr, &mut out).await?;
            }
        }
        write_out(&mut wr, &mut out).await?;
        if qos1 {
            // Every publish acknowledged: all permits back.
            let all = permits.acquire_many(window as u32).await?;
            drop(all);
        }
        acks.abort();
        let _ = wr.write_all(&[0xe0, 0]).await; // DISCONNECT
        Ok(())
    }
}

/// Writes what `out` has gathered, if anything, and empties it.
async fn write_out(wr: &mut tokio::net::tcp::OwnedWriteHalf, out: &mut BytesMut) -> Result<()> {
    if !out.is_empty() {
        wr.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

/// The next MQTT packet from `rd`, reading more as needed.
async fn read_packet(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
) -> Result<Packet, anyhow::Error> {
    loop {
        match Packet::read(buf, MAX_PACKET) {
            Ok(p) => return Ok(p),
            Err(rumqttc::Error::InsufficientBytes(_)) => {}
            Err(e) => bail!("bench provider: bad packet from the broker: {e}"),
        }
        if rd.read_buf(buf).await? == 0 {
            bail!("bench provider: the broker closed the connection");
        }
    }
}
