//! Finding the owner: which shard owns a partition (the registry's placement), a group
//! or a transactional id (a stable hash), and what a client is told when it is gone.

use std::sync::Arc;

use crate::cluster::{Registry, TopicMeta};
use crate::kafka::{ErrorCode, KafkaError, ShardId};
use crate::runtime::MeshError;

/// The topic and the owner shard of `topic`-`partition`, or UNKNOWN_TOPIC_OR_PARTITION.
pub fn partition_owner(
    reg: &Registry,
    topic: &str,
    partition: i32,
) -> Result<(Arc<str>, ShardId), KafkaError> {
    let meta = reg.topic(topic).ok_or_else(|| unknown_topic(topic))?;
    owner_in(meta, partition)
}

/// The owner shard of a partition of a known topic.
pub fn owner_in(meta: &TopicMeta, partition: i32) -> Result<(Arc<str>, ShardId), KafkaError> {
    let owner = meta.owner(partition).ok_or_else(|| {
        KafkaError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("partition {}-{partition} does not exist", meta.name),
        )
    })?;
    Ok((meta.name.clone(), owner))
}

pub fn unknown_topic(topic: &str) -> KafkaError {
    KafkaError::new(
        ErrorCode::UnknownTopicOrPartition,
        format!("topic '{topic}' does not exist"),
    )
}

/// A partition's owner did not answer: it is shutting down.
pub fn owner_gone(_: MeshError) -> KafkaError {
    KafkaError::new(
        ErrorCode::NotLeaderOrFollower,
        "the owner shard is shutting down",
    )
}

/// A coordinator's shard did not answer: the client looks for the coordinator again.
pub fn coordinator_gone(_: MeshError) -> ErrorCode {
    ErrorCode::NotCoordinator
}
