//! The per-partition storage engine: Kafka RecordBatch v2 bytes kept exactly as received, in
//! segment files with sparse offset and time indexes, group-committed fdatasync, recovery
//! from a checkpoint, and retention.
//!
//! `log/` knows nothing about the network or Kafka request types: it takes a produce
//! request's records blob and hands out file ranges for fetches. Everything here runs on one
//! glommio executor (`Rc`, `Cell`, `!Send`): the owner shard of the partition.

pub mod batch;
pub(crate) mod checkpoint;
pub mod cleaner;
pub mod config;
pub mod error;
mod flush_lanes;
pub mod index;
pub mod partition;
mod recovery;
mod retired;
mod segment;
mod tail;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
pub(crate) mod tests;

pub use config::{CleanupPolicy, FlushPolicy, LogConfig, TimestampType};
pub use error::LogError;
pub use partition::{
    AppendInfo, AppendWait, Availability, FetchSlice, FileRange, PartitionLog, RetentionReport,
    SendRange,
};
#[cfg(any(test, fuzzing))]
pub(crate) use segment::{index_path, log_path, time_index_path};
