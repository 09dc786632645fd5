//! tribune-bridge: the provider's MQTT feed into NATS JetStream, without loss.
//!
//! Modules by concern: [`config`] (TOML, secrets), [`payload`] (defensive
//! parsing + the normalised schema), [`subject`] (subject validation),
//! [`process`] (one MQTT message -> match updates with dedup ids, dead
//! letters), [`state`] (each match's merged state, the published message),
//! [`endpoint`] (`mqtt.url`: transport and TLS), [`mqtt`] (rumqttc loop),
//! [`nats`] (connection, streams), [`publish`] (JetStream I/O with retries),
//! [`pipeline`] (in arrival order: merge, publish, wait for the JetStream
//! ack, then ack MQTT), [`metrics`] (with [`sport_metrics`])/[`http`], plus
//! the tools: [`sim`] (feed simulator), [`tail`] and [`snapshot`] (readers),
//! [`replay`] (the dead letters again, after a parser fix), [`bench`],
//! [`keygen`].
//!
//! Without the default `service` feature only the provider-payload path is
//! built: [`payload`], [`subject`], [`process`] and `state::{merge, held}`
//! (Cargo.toml says why).

#[cfg(feature = "service")]
pub mod bench;
#[cfg(feature = "service")]
pub mod bridge;
#[cfg(feature = "service")]
pub mod config;
#[cfg(feature = "service")]
pub mod devtoken;
#[cfg(feature = "service")]
pub mod endpoint;
#[cfg(feature = "service")]
pub mod http;
#[cfg(feature = "service")]
pub mod keygen;
#[cfg(feature = "service")]
pub mod lease;
#[cfg(feature = "service")]
pub mod metrics;
#[cfg(feature = "service")]
pub mod mqtt;
#[cfg(feature = "service")]
pub mod nats;
pub mod payload;
#[cfg(feature = "service")]
pub mod pipeline;
pub mod process;
#[cfg(feature = "service")]
pub mod publish;
#[cfg(feature = "service")]
pub mod replay;
#[cfg(feature = "service")]
pub mod sim;
#[cfg(feature = "service")]
pub mod snapshot;
#[cfg(feature = "service")]
pub mod sport_metrics;
pub mod state;
pub mod subject;
#[cfg(feature = "service")]
pub mod tail;
#[cfg(feature = "service")]
pub mod tls;
