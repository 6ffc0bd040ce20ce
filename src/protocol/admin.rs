//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords.
//! Registry changes run on the controller (shard 0); DeleteRecords on the owners.

use std::collections::BTreeMap;
use std::rc::Rc;

use futures_util::future::join_all;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::errors::{self, KafkaError};
use super::metadata::NODE_ID;
use super::{on_owner, owned_log};
use crate::meta::{TopicConfigDefaults, TopicMeta};
use crate::shard::controller::{Change, NewTopic};
use crate::shard::Shard;

/// DescribeConfigs config sources.
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_DEFAULT: i8 = 5;

fn msg(s: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(s))
}

/// Check what a single node can honour of a CreateTopics entry.
fn new_topic(t: &create_topics_request::CreatableTopic) -> Result<NewTopic, KafkaError> {
    if t.replication_factor != -1 && t.replication_factor != 1 {
        return Err(KafkaError::new(
            errors::INVALID_REPLICATION_FACTOR,
            format!(
                "replication factor {} is larger than the 1 broker available",
                t.replication_factor
            ),
        ));
    }
    let mut partitions = t.num_partitions;
    if !t.assignments.is_empty() {
        if t.num_partitions != -1 {
            return Err(KafkaError::new(
                errors::INVALID_REQUEST,
                "give either num_partitions or assignments, not both",
            ));
        }
        if t.assignments
            .iter()
            .any(|a| a.broker_ids.iter().any(|b| b.0 != NODE_ID))
        {
            return Err(KafkaError::new(
                errors::INVALID_REPLICA_ASSIGNMENT,
                format!("the only broker is {NODE_ID}"),
            ));
        }
        partitions = t.assignments.len() as i32;
    }
    let configs: BTreeMap<String, String> = t
        .configs
        .iter()
        .filter_map(|c| {
            c.value
                .as_ref()
                .map(|v| (c.name.to_string(), v.to_string()))
        })
        .collect();
    Ok(NewTopic {
        name: t.name.to_string(),
        partitions,
        configs,
    })
}

fn described_configs(t: &TopicMeta) -> Vec<CreatableTopicConfigs> {
    TopicConfigDefaults::describe(&t.log_config)
        .into_iter()
        .map(|(k, v)| {
            let source = if t.overrides.contains_key(k) {
                SOURCE_TOPIC
            } else {
                SOURCE_DEFAULT
            };
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(k))
                .with_value(Some(StrBytes::from_string(v)))
                .with_config_source(source)
        })
        .collect()
}

pub async fn create_topics(
    shard: &Rc<Shard>,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut results: Vec<Option<CreatableTopicResult>> = vec![None; req.topics.len()];
    let mut changes = Vec::new();
    let mut positions = Vec::new();
    for (i, t) in req.topics.iter().enumerate() {
        let dup = req.topics.iter().filter(|o| o.name == t.name).count() > 1;
        let planned = if dup {
            Err(KafkaError::new(
                errors::INVALID_REQUEST,
                "topic named twice in one request",
            ))
        } else {
            new_topic(t)
        };
        match planned {
            Ok(n) => {
                changes.push(Change::Create(n));
                positions.push(i);
            }
            Err(e) => {
                results[i] = Some(
                    CreatableTopicResult::default()
                        .with_name(t.name.clone())
                        .with_error_code(e.code)
                        .with_error_message(msg(e.message))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                )
            }
        }
    }
    let outcomes = shard.change_registry(changes, req.validate_only).await;
    for (i, r) in positions.into_iter().zip(outcomes) {
        let name = req.topics[i].name.clone();
        results[i] = Some(match r {
            Ok(meta) => {
                let mut res = CreatableTopicResult::default().with_name(name);
                if version >= 5 {
                    res = res
                        .with_num_partitions(meta.partition_count())
                        .with_replication_factor(1)
                        .with_configs(Some(described_configs(&meta)));
                }
                if version >= 7 {
                    res = res.with_topic_id(meta.id);
                }
                res
            }
            Err(e) => CreatableTopicResult::default()
                .with_name(name)
                .with_error_code(e.code)
                .with_error_message(msg(e.message))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        });
    }
    CreateTopicsResponse::default().with_topics(results.into_iter().flatten().collect())
}

pub async fn delete_topics(
    shard: &Rc<Shard>,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let reg = shard.registry();
    // (name as asked, topic id as asked, resolved name or error)
    let asked: Vec<(Option<TopicName>, uuid::Uuid, Result<String, KafkaError>)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| {
                let resolved = match &t.name {
                    Some(n) => Ok(n.to_string()),
                    None => reg
                        .topic_by_id(&t.topic_id)
                        .map(|m| m.name.to_string())
                        .ok_or_else(|| {
                            KafkaError::new(errors::UNKNOWN_TOPIC_ID, "unknown topic id")
                        }),
                };
                (t.name, t.topic_id, resolved)
            })
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| {
                let s = n.to_string();
                (Some(n), uuid::Uuid::nil(), Ok(s))
            })
            .collect()
    };
    let changes: Vec<Change> = asked
        .iter()
        .filter_map(|(_, _, r)| {
            r.as_ref()
                .ok()
                .map(|name| Change::Delete { name: name.clone() })
        })
        .collect();
    let mut outcomes = shard.change_registry(changes, false).await.into_iter();
    let responses =
        asked
            .into_iter()
            .map(|(name, id, resolved)| {
                let r = match resolved {
                    Ok(_) => outcomes.next().unwrap_or_else(|| {
                        Err(KafkaError::new(
                            errors::UNKNOWN_SERVER_ERROR,
                            "missing result",
                        ))
                    }),
                    Err(e) => Err(e),
                };
                let res = DeletableTopicResult::default()
                    .with_name(name)
                    .with_topic_id(id);
                match r {
                    Ok(meta) if version >= 6 => res.with_topic_id(meta.id).with_name(Some(
                        TopicName(StrBytes::from_string(meta.name.to_string())),
                    )),
                    Ok(_) => res,
                    Err(e) if version >= 5 => res
                        .with_error_code(e.code)
                        .with_error_message(msg(e.message)),
                    Err(e) => res.with_error_code(e.code),
                }
            })
            .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    shard: &Rc<Shard>,
    req: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let changes = req
        .topics
        .iter()
        .map(|t| Change::AddPartitions {
            name: t.name.to_string(),
            total: t.count,
        })
        .collect();
    let outcomes = shard.change_registry(changes, req.validate_only).await;
    let results = req
        .topics
        .into_iter()
        .zip(outcomes)
        .map(|(t, r)| {
            let res = CreatePartitionsTopicResult::default().with_name(t.name);
            match r {
                Ok(_) => res,
                Err(e) => res
                    .with_error_code(e.code)
                    .with_error_message(msg(e.message)),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

async fn delete_records_owned(
    shard: Rc<Shard>,
    topic: std::sync::Arc<str>,
    partition: i32,
    offset: i64,
) -> Result<i64, KafkaError> {
    let log = owned_log(&shard, &topic, partition)?;
    // -1: everything up to the high watermark (Kafka's DeleteRecords convention).
    let before = if offset == -1 {
        log.high_watermark()
    } else {
        offset
    };
    if before < 0 || before > log.high_watermark() {
        return Err(KafkaError::new(
            errors::OFFSET_OUT_OF_RANGE,
            format!(
                "offset {offset} is beyond the high watermark {}",
                log.high_watermark()
            ),
        ));
    }
    Ok(log.delete_records(before).await?)
}

pub async fn delete_records(
    shard: &Rc<Shard>,
    req: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let reg = shard.registry();
    let mut topics = Vec::new();
    for t in req.topics {
        let meta = reg.topic(t.name.as_str()).cloned();
        let parts = t.partitions.iter().map(|p| {
            let meta = meta.clone();
            let (index, offset) = (p.partition_index, p.offset);
            async move {
                let r = match meta
                    .as_ref()
                    .and_then(|m| m.owner(index).map(|o| (m.name.clone(), o)))
                {
                    None => Err(KafkaError::new(
                        errors::UNKNOWN_TOPIC_OR_PARTITION,
                        "unknown partition",
                    )),
                    Some((topic, owner)) => {
                        on_owner(shard, owner, move |s| {
                            delete_records_owned(s, topic, index, offset)
                        })
                        .await
                    }
                };
                let res = DeleteRecordsPartitionResult::default().with_partition_index(index);
                match r {
                    Ok(low) => res.with_low_watermark(low),
                    Err(e) => res.with_error_code(e.code).with_low_watermark(-1),
                }
            }
        });
        let partitions = join_all(parts).await;
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
