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

pub mod bench;
pub mod bridge;
pub mod config;
pub mod devtoken;
pub mod endpoint;
pub mod http;
pub mod keygen;
pub mod lease;
pub mod metrics;
pub mod mqtt;
pub mod nats;
pub mod payload;
pub mod pipeline;
pub mod process;
pub mod publish;
pub mod replay;
pub mod sim;
pub mod snapshot;
pub mod sport_metrics;
pub mod state;
pub mod subject;
pub mod tail;
pub mod tls;
