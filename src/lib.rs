//! Sluice: a single-node, thread-per-core message broker that speaks the Kafka protocol.
//!
//! The parts, from the bottom up (each uses only those listed before it; see
//! ARCHITECTURE.md and `scripts/check_layers.py`):
//! `kafka` (error codes, ids) and `crc` → `runtime` (executors, mesh, signals) → `log`
//! (record batches on disk) and `store` (the broker's own durable state) → `config` →
//! `metrics` → `cluster` (topics, the controller) → `partition` (the owner side of a
//! partition) → `coordinator` (groups, transactions) → `protocol` (decode, route,
//! encode) → `net` (connections) → `broker` (wires every service of a shard) and
//! `server` (`sluice serve`). `bench` is a client and uses none of them.
//!
//! A Produce, top-down: `net::connection` cuts a frame off the socket, `protocol`
//! decodes it and sends each partition's records to its owner shard as a
//! `partition::messages::Append`, the owner's `partition::Partition` checks the
//! producer and appends to its `log::PartitionLog`, and the answer travels back to be
//! written in request order.

#[cfg(feature = "clients")]
pub mod bench;
pub mod broker;
#[cfg(feature = "clients")]
pub mod cli;
pub mod cluster;
pub mod config;
pub mod coordinator;
pub mod crc;
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzzing;
pub mod kafka;
pub mod log;
pub mod metrics;
pub mod net;
pub mod partition;
pub mod protocol;
pub mod runtime;
pub mod server;
pub mod store;
