//! Sluice: a single-node, thread-per-core message broker that speaks the Kafka protocol.
//!
//! A request's path, top-down: `net::connection` cuts a frame off the socket,
//! `protocol` decodes it and calls the owner shard of each partition through
//! `shard::Shard::invoke_on`, the owner calls `log`, and the response travels back the
//! same way to be written in request order. See ARCHITECTURE.md.

pub mod bench;
pub mod config;
pub mod crc;
pub(crate) mod fifo_gate;
pub mod group;
pub mod log;
pub mod meta;
pub mod metrics;
pub mod net;
pub mod producer;
pub mod protocol;
pub mod server;
pub mod shard;
pub mod store;
pub mod txn;
