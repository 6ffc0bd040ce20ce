//! Operator commands that are Kafka clients (librdkafka through `rdkafka`): they work
//! the same against any broker that keeps the headers they read.
//!
//! - [`redrive`]: `sluice redrive`, move dead-letter records back to their source topic
//!   (SQS's StartMessageMoveTask, for KIP-1191 DLQ topics).

pub mod redrive;
