//! The context headers of a dead-letter record (KIP-1191 names none we could find, so
//! these are Sluice's, in the style of Kafka Connect's `__connect.errors.*`): written by
//! the broker (`partition::share::dlq`), read back by `sluice redrive` (`cli/`), and by any
//! tool that wants to know where a dead letter came from.

/// Every context header starts with this.
pub const HEADER_PREFIX: &str = "__dlq.errors.";
pub const H_TOPIC: &str = "__dlq.errors.topic";
pub const H_PARTITION: &str = "__dlq.errors.partition";
pub const H_OFFSET: &str = "__dlq.errors.offset";
pub const H_GROUP: &str = "__dlq.errors.group.id";
pub const H_DELIVERY_COUNT: &str = "__dlq.errors.delivery.count";
pub const H_REASON: &str = "__dlq.errors.reason";
