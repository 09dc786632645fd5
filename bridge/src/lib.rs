//! tribune-bridge: the provider's MQTT feed into NATS JetStream, without loss.
//!
//! Modules by concern: [`config`] (TOML, secrets), [`payload`] (defensive
//! parsing + the normalised schema), [`subject`] (subject validation),
//! [`process`] (one MQTT message -> NATS messages with dedup ids), [`mqtt`]
//! (rumqttc loop), [`nats`] (connection, streams), [`pipeline`] (publish, wait
//! for the JetStream ack, then ack MQTT), [`metrics`]/[`http`], plus the tools:
//! [`sim`] (feed simulator), [`tail`], [`bench`], [`keygen`].

pub mod bench;
pub mod bridge;
pub mod config;
pub mod devtoken;
pub mod http;
pub mod keygen;
pub mod metrics;
pub mod mqtt;
pub mod nats;
pub mod payload;
pub mod pipeline;
pub mod process;
pub mod sim;
pub mod subject;
pub mod tail;
pub mod tls;
