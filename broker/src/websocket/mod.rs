//! WebSocket: another transport for the client protocol, compatible with
//! nats-server's `websocket {}` listener, so browsers (`nats.ws`,
//! `@nats-io/nats-core` `wsconnect`) and other WebSocket clients connect as
//! they connect to nats-server.
//!
//! After an HTTP/1.1 upgrade ([`handshake`]), the connection is an ordinary
//! client connection: the same state machine (`crate::client`) reads the
//! protocol bytes the client's frames carry ([`WsReader`], an `AsyncRead`)
//! and hands the bytes it queues to [`WsWriter`] (a
//! [`crate::client::TransportWriter`]), which frames them. Nothing here
//! knows about the server; `server::websocket` wires the listener in.
//!
//! Framing is our own ([`decode`], [`frame`]), because nats-server's
//! behaviour is part of the contract (its checks, their order, its close
//! codes and texts, streaming payloads into the parser without buffering
//! whole messages) and because none of the Rust WebSocket crates
//! (tungstenite, fastwebsockets, tokio-websockets) implements
//! permessage-deflate, which needs RSV1 handled inside the framing layer.
//! DEFLATE itself is flate2's ([`deflate`]).

pub mod decode;
pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod inbound;
mod options;
pub mod origin;
mod stream;

pub use options::{WebsocketOptions, DEFAULT_HANDSHAKE_TIMEOUT};
pub use stream::{split, Framing, WsReader, WsWriter, BROWSER_FRAME_SIZE};
