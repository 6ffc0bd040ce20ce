//! CreateTopics: validated here, created by the controller.

use super::*;

/// Check what a single node can honour of a CreateTopics entry.
pub(super) fn new_topic(t: &create_topics_request::CreatableTopic) -> Result<NewTopic, KafkaError> {
    if t.replication_factor != -1 && t.replication_factor != 1 {
        return Err(KafkaError::new(
            ErrorCode::InvalidReplicationFactor,
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
                ErrorCode::InvalidRequest,
                "give either num_partitions or assignments, not both",
            ));
        }
        if t.assignments
            .iter()
            .any(|a| a.broker_ids.iter().any(|b| b.0 != NODE_ID))
        {
            return Err(KafkaError::new(
                ErrorCode::InvalidReplicaAssignment,
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

pub(super) fn described_configs(t: &TopicMeta) -> Vec<CreatableTopicConfigs> {
    TopicConfigDefaults::describe(&t.log_config, &t.overrides)
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
    ctx: &Context,
    az: &Authz<'_>,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut results: Vec<Option<CreatableTopicResult>> = vec![None; req.topics.len()];
    let mut changes = Vec::new();
    let mut positions = Vec::new();
    for (i, t) in req.topics.iter().enumerate() {
        let dup = req.topics.iter().filter(|o| o.name == t.name).count() > 1;
        let may_create = az.cluster(CREATE).is_ok() || az.topic(t.name.as_str(), CREATE).is_ok();
        let planned = if dup {
            Err(KafkaError::new(
                ErrorCode::InvalidRequest,
                "topic named twice in one request",
            ))
        } else if !may_create {
            Err(az.topic(t.name.as_str(), CREATE).unwrap_err())
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
                        .with_error_code(e.wire_code())
                        .with_error_message(msg(e.message))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                )
            }
        }
    }
    let outcomes = ctx.cluster.change(changes, req.validate_only).await;
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
                .with_error_code(e.wire_code())
                .with_error_message(msg(e.message))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        });
    }
    CreateTopicsResponse::default().with_topics(results.into_iter().flatten().collect())
}
