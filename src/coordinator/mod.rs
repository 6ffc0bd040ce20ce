//! Coordinators: the state machines that live on the owner shard of a group id or a
//! transactional id, below the wire (no Kafka request types here).
//!
//! - [`group`]: consumer groups — the classic protocol, KIP-848, committed offsets;
//! - [`txn`]: transactions — producer ids and epochs of transactional ids, the
//!   two-phase end with markers on the partitions' owners.
//!
//! Each gets its own state and a narrow handle to reach what it needs outside it (the
//! registry snapshot; for `txn`, `txn::Peers`), never the broker; `txn` may use `group`
//! (a committed transaction commits offsets), never the reverse.

pub mod group;
pub mod share;
pub mod txn;

use crate::kafka::ShardId;

/// The owner shard of a group id or a transactional id: CRC-32C of the id, modulo the
/// shard count. Stable across runs and processes (unlike `std`'s hasher), so a journal
/// record finds its owner again after a restart.
pub fn owner_shard(id: &str, shards: usize) -> ShardId {
    ShardId(crate::crc::crc32c(id.as_bytes()) as usize % shards.max(1))
}
