//! tribune-broker: a NATS-compatible message broker.
//!
//! The crate is laid out one module per concern: [`protocol`] parses the
//! client protocol, [`subject`] and [`sublist`] match subjects, [`client`]
//! drives a connection, [`server`] owns listeners and life cycle,
//! [`websocket`] carries that protocol in WebSocket frames,
//! [`accounts`] and [`auth`] decide who may do what, [`monitor`] serves the
//! HTTP endpoints, and [`config`]/[`cli`] turn files and flags into
//! [`options::Options`].

pub mod accounts;
pub mod auth;
pub mod callout;
pub mod cli;
pub mod client;
pub mod config;
pub mod discovery;
pub mod expiring;
pub mod internal;
pub mod jetstream;
pub mod limits;
pub mod listener;
pub mod logging;
pub mod monitor;
pub mod nuid;
pub mod operator;
pub mod options;
pub mod permissions;
pub mod ports;
pub mod protocol;
pub mod raft;
pub mod redact;
pub mod route;
pub mod server;
pub mod signals;
pub mod subject;
pub mod sublist;
pub mod sublist_watch;
pub mod subscription;
pub mod system;
pub mod tls;
pub mod websocket;

/// Tribune's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit this binary was built from (empty outside a checkout).
pub const GIT_COMMIT: &str = env!("TRIBUNE_GIT_COMMIT");
