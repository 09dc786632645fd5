//! JetStream: persistent streams and consumers.
//!
//! [`store`] is the storage engine under a stream: an append-only message log
//! (on disk or in memory) that enforces the stream's retention limits and
//! answers the queries the stream and consumer layers need (load by sequence,
//! next/last by subject filter, pending counts), plus durable consumer state.
pub mod store;
