//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (resource
//! type 2); the broker (type 4) is described read-only: its settings are static.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::admin::{SOURCE_DEFAULT, SOURCE_TOPIC};
use super::errors::{self, KafkaError};
use super::metadata::NODE_ID;
use crate::meta::TopicConfigDefaults;
use crate::shard::controller::Change;
use crate::shard::Shard;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_STATIC_BROKER: i8 = 4;

/// Kafka's ConfigType of each topic config (DescribeConfigs v3+).
fn config_type(key: &str) -> i8 {
    match key {
        "retention.ms" | "retention.bytes" | "segment.ms" | "max.queue.bytes" => 5, // LONG
        "segment.bytes" | "max.message.bytes" | "index.interval.bytes" | "min.insync.replicas" => 3, // INT
        "cleanup.policy" => 7, // LIST
        _ => 2,                // STRING
    }
}

fn entry(name: &str, value: String, source: i8, read_only: bool) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value)))
        .with_read_only(read_only)
        .with_config_source(source)
        .with_config_type(config_type(name))
}

/// config_type exists from v3 on.
fn for_version(
    mut e: DescribeConfigsResourceResult,
    version: i16,
) -> DescribeConfigsResourceResult {
    if version < 3 {
        e.config_type = 0;
    }
    e
}

fn broker_configs(shard: &Shard) -> Vec<DescribeConfigsResourceResult> {
    let c = &shard.config;
    let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-1".into());
    vec![
        entry(
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            SOURCE_STATIC_BROKER,
            true,
        ),
        entry(
            "num.partitions",
            c.default_partitions.to_string(),
            SOURCE_STATIC_BROKER,
            true,
        ),
        entry(
            "log.segment.bytes",
            c.segment_bytes.to_string(),
            SOURCE_STATIC_BROKER,
            true,
        ),
        entry(
            "log.retention.ms",
            opt(c.retention_ms),
            SOURCE_STATIC_BROKER,
            true,
        ),
        entry(
            "log.retention.bytes",
            opt(c.retention_bytes),
            SOURCE_STATIC_BROKER,
            true,
        ),
        entry(
            "flush.policy",
            c.flush.to_string(),
            SOURCE_STATIC_BROKER,
            true,
        ),
        entry(
            "message.max.bytes",
            "1048588".into(),
            SOURCE_STATIC_BROKER,
            true,
        ),
    ]
}

pub async fn describe_configs(
    shard: &Rc<Shard>,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let reg = shard.registry();
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let res = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let configs = match r.resource_type {
                RESOURCE_TOPIC => match reg.topic(r.resource_name.as_str()) {
                    Some(t) => Ok(TopicConfigDefaults::describe(&t.log_config)
                        .into_iter()
                        .map(|(k, v)| {
                            let src = if t.overrides.contains_key(k) {
                                SOURCE_TOPIC
                            } else {
                                SOURCE_DEFAULT
                            };
                            entry(k, v, src, false)
                        })
                        .collect::<Vec<_>>()),
                    None => Err(KafkaError::new(
                        errors::UNKNOWN_TOPIC_OR_PARTITION,
                        "unknown topic",
                    )),
                },
                RESOURCE_BROKER => {
                    if r.resource_name.as_str().is_empty()
                        || r.resource_name.as_str() == NODE_ID.to_string()
                    {
                        Ok(broker_configs(shard))
                    } else {
                        Err(KafkaError::new(
                            errors::INVALID_REQUEST,
                            format!("the only broker is {NODE_ID}"),
                        ))
                    }
                }
                t => Err(KafkaError::new(
                    errors::INVALID_REQUEST,
                    format!("resource type {t} is not supported"),
                )),
            };
            match configs {
                Ok(mut cs) => {
                    if let Some(keys) = &r.configuration_keys {
                        cs.retain(|c| keys.contains(&c.name));
                    }
                    res.with_configs(cs.into_iter().map(|e| for_version(e, version)).collect())
                }
                Err(e) => res
                    .with_error_code(e.code)
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// One resource's change, or why it cannot be made.
fn topic_change(
    resource_type: i8,
    name: &StrBytes,
    set: Result<BTreeMap<String, Option<String>>, KafkaError>,
    incremental: bool,
) -> Result<Change, KafkaError> {
    match resource_type {
        RESOURCE_TOPIC => Ok(Change::AlterConfigs {
            name: name.to_string(),
            set: set?,
            incremental,
        }),
        RESOURCE_BROKER => Err(KafkaError::new(
            errors::INVALID_REQUEST,
            "broker configs are static: set them on the command line or in the config file",
        )),
        t => Err(KafkaError::new(
            errors::INVALID_REQUEST,
            format!("resource type {t} is not supported"),
        )),
    }
}

/// Apply planned changes; results in input order (planning errors kept in place).
async fn apply(
    shard: &Rc<Shard>,
    planned: Vec<Result<Change, KafkaError>>,
    validate_only: bool,
) -> Vec<Result<(), KafkaError>> {
    let changes: Vec<Change> = planned
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    let mut outcomes = shard
        .change_registry(changes, validate_only)
        .await
        .into_iter();
    planned
        .into_iter()
        .map(|p| match p {
            Ok(_) => outcomes
                .next()
                .unwrap_or_else(|| {
                    Err(KafkaError::new(
                        errors::UNKNOWN_SERVER_ERROR,
                        "missing result",
                    ))
                })
                .map(|_| ()),
            Err(e) => Err(e),
        })
        .collect()
}

pub async fn alter_configs(
    shard: &Rc<Shard>,
    req: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    let planned = req
        .resources
        .iter()
        .map(|r| {
            let set = Ok(r
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), Some(v.to_string())))
                })
                .collect());
            topic_change(r.resource_type, &r.resource_name, set, false)
        })
        .collect();
    let outcomes = apply(shard, planned, req.validate_only).await;
    let responses = req
        .resources
        .into_iter()
        .zip(outcomes)
        .map(|(r, o)| {
            let res = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            match o {
                Ok(()) => res,
                Err(e) => res
                    .with_error_code(e.code)
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter_configs(
    shard: &Rc<Shard>,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let planned = req
        .resources
        .iter()
        .map(|r| {
            let set = r
                .configs
                .iter()
                .map(|c| match c.config_operation {
                    0 => Ok((c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))),
                    1 => Ok((c.name.to_string(), None)),
                    op => Err(KafkaError::new(
                        errors::INVALID_CONFIG,
                        format!("config operation {op} (APPEND/SUBTRACT) does not apply to {}: no list-valued topic configs are supported", c.name.as_str()),
                    )),
                })
                .collect::<Result<BTreeMap<_, _>, _>>();
            topic_change(r.resource_type, &r.resource_name, set, true)
        })
        .collect();
    let outcomes = apply(shard, planned, req.validate_only).await;
    let responses = req
        .resources
        .into_iter()
        .zip(outcomes)
        .map(|(r, o)| {
            let res = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            match o {
                Ok(()) => res,
                Err(e) => res
                    .with_error_code(e.code)
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
