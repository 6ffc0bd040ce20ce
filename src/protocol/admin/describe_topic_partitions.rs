//! DescribeTopicPartitions (KIP-966): what the Java admin client's describeTopics sends
//! since Kafka 3.7 — topics by name (all topics if none is named), sorted by name,
//! paged by `response_partition_limit` with a cursor. One node leads every partition
//! at leader epoch 0; there are no eligible leader replicas beyond it.

use super::*;
use crate::protocol::authorized;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition as Partition,
    DescribeTopicPartitionsResponseTopic as Topic,
};

/// Kafka's `max.request.partition.size.limit` default: the most partitions one
/// response holds whatever the client asks.
const MAX_PARTITIONS: i32 = 2000;

/// Like Metadata: a listing shows only the topics the principal may DESCRIBE; one
/// asked for by name gets TOPIC_AUTHORIZATION_FAILED.
pub async fn describe_topic_partitions(
    ctx: &Context,
    az: &Authz<'_>,
    req: DescribeTopicPartitionsRequest,
    _version: i16,
) -> DescribeTopicPartitionsResponse {
    let reg = ctx.cluster.registry();
    let mut names: Vec<String> = if req.topics.is_empty() {
        reg.sorted()
            .iter()
            .filter(|t| az.topic(&t.name, DESCRIBE).is_ok())
            .map(|t| t.name.to_string())
            .collect()
    } else {
        req.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (from_topic, from_partition) = match &req.cursor {
        Some(c) => (Some(c.topic_name.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    let mut budget = req.response_partition_limit.clamp(1, MAX_PARTITIONS);
    let mut topics = Vec::new();
    let mut next_cursor = None;
    let mut rest = names.into_iter().peekable();
    while let Some(name) = rest.next() {
        if from_topic.as_ref().is_some_and(|f| name < *f) {
            continue;
        }
        let found = match az.topic(&name, DESCRIBE) {
            Err(e) => Err(e.code),
            Ok(()) => reg.topic(&name).ok_or(ErrorCode::UnknownTopicOrPartition),
        };
        let meta = match found {
            Ok(meta) => meta,
            Err(code) => {
                topics.push(
                    Topic::default()
                        .with_error_code(code.code())
                        .with_name(Some(TopicName(StrBytes::from_string(name))))
                        .with_topic_authorized_operations(authorized::NOT_REQUESTED),
                );
                continue;
            }
        };
        let first = if from_topic.as_deref() == Some(&*name) {
            from_partition
        } else {
            0
        };
        let count = meta.partition_count();
        let end = count.min(first + budget);
        if end < count {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(StrBytes::from_string(name.clone())))
                    .with_partition_index(end),
            );
        }
        budget -= end - first.min(end);
        topics.push(topic(
            meta,
            first..end,
            az.topic_operations(true, &meta.name),
        ));
        if next_cursor.is_none() && budget == 0 {
            next_cursor = rest.peek().map(|next| {
                Cursor::default()
                    .with_topic_name(TopicName(StrBytes::from_string(next.clone())))
                    .with_partition_index(0)
            });
        }
        if next_cursor.is_some() || budget == 0 {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn topic(meta: &TopicMeta, range: std::ops::Range<i32>, ops: i32) -> Topic {
    let one = vec![BrokerId(NODE_ID)];
    let partitions = range
        .map(|p| {
            Partition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(NODE_ID))
                .with_leader_epoch(0)
                .with_replica_nodes(one.clone())
                .with_isr_nodes(one.clone())
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
        })
        .collect();
    Topic::default()
        .with_name(Some(TopicName(StrBytes::from_string(
            meta.name.to_string(),
        ))))
        .with_topic_id(meta.id)
        .with_partitions(partitions)
        .with_topic_authorized_operations(ops)
}
