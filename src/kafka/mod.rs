//! The vocabulary of Kafka that every other part speaks: the leaf of the layering.
//!
//! - [`ErrorCode`]: every error code of Apache Kafka 4.1 (`Errors.java`), with Kafka's exact
//!   name, its default message, and whether Kafka's Java client treats it as retriable.
//! - [`KafkaError`]: an error for one part of a request, a code plus a message for the client;
//!   [`Result`] is the result type that carries it.
//! - Newtypes for ids and units where a mix-up is possible: [`Offset`], [`ProducerId`],
//!   [`ProducerEpoch`], [`PartitionId`], [`ShardId`], and [`TopicPartition`].
//! - [`dlq`]: the context headers of a dead-letter record.
//!
//! `kafka/` imports nothing from the rest of the crate, so any part may use it without
//! creating a cycle.

pub mod acl;
pub mod dlq;
mod error;
mod error_code;
mod ids;

pub use error::{KafkaError, Result};
pub use error_code::ErrorCode;
pub use ids::{Offset, PartitionId, ProducerEpoch, ProducerId, ShardId, TopicPartition};
