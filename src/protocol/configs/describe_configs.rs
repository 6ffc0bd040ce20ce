//! DescribeConfigs: topic configs with their source, the broker's static ones.

use super::*;

/// Kafka's ConfigType of each topic config (DescribeConfigs v3+).
pub(super) fn config_type(key: &str) -> i8 {
    match key {
        "retention.ms"
        | "retention.bytes"
        | "segment.ms"
        | "max.queue.bytes"
        | "min.compaction.lag.ms"
        | "max.compaction.lag.ms"
        | "delete.retention.ms" => 5, // LONG
        "min.cleanable.dirty.ratio" => 6, // DOUBLE
        "segment.bytes" | "max.message.bytes" | "index.interval.bytes" | "min.insync.replicas" => 3, // INT
        "cleanup.policy" => 7, // LIST
        _ => 2,                // STRING
    }
}

pub(super) fn entry(
    name: &str,
    value: String,
    source: i8,
    read_only: bool,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value)))
        .with_read_only(read_only)
        .with_config_source(source)
        .with_config_type(config_type(name))
}

/// config_type exists from v3 on.
pub(super) fn for_version(
    mut e: DescribeConfigsResourceResult,
    version: i16,
) -> DescribeConfigsResourceResult {
    if version < 3 {
        e.config_type = 0;
    }
    e
}

pub(super) fn broker_configs(ctx: &Context) -> Vec<DescribeConfigsResourceResult> {
    let c = &ctx.config;
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
    ctx: &Context,
    az: &Authz<'_>,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let reg = ctx.cluster.registry();
    let mut groups = Vec::new();
    let denied: Vec<Option<KafkaError>> = req
        .resources
        .iter()
        .map(|r| {
            authorize_resource(
                az,
                r.resource_type,
                r.resource_name.as_str(),
                DESCRIBE_CONFIGS,
            )
            .err()
        })
        .collect();
    for (r, d) in req.resources.iter().zip(&denied) {
        if group_configs::is_group(r.resource_type) && d.is_none() {
            groups.push(group_configs::describe(ctx, r.resource_name.as_str()).await);
        }
    }
    let mut groups = groups.into_iter();
    let results = req
        .resources
        .into_iter()
        .zip(denied)
        .map(|(r, denied)| {
            let res = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let configs = match (denied, r.resource_type) {
                (Some(e), _) => Err(e),
                (None, t) if group_configs::is_group(t) => groups.next().unwrap_or_else(|| {
                    Err(KafkaError::new(
                        ErrorCode::UnknownServerError,
                        "missing result",
                    ))
                }),
                (None, RESOURCE_TOPIC) => match reg.topic(r.resource_name.as_str()) {
                    Some(t) => Ok(TopicConfigDefaults::describe(&t.log_config, &t.overrides)
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
                        ErrorCode::UnknownTopicOrPartition,
                        "unknown topic",
                    )),
                },
                (None, RESOURCE_BROKER) => {
                    if r.resource_name.as_str().is_empty()
                        || r.resource_name.as_str() == NODE_ID.to_string()
                    {
                        Ok(broker_configs(ctx))
                    } else {
                        Err(KafkaError::new(
                            ErrorCode::InvalidRequest,
                            format!("the only broker is {NODE_ID}"),
                        ))
                    }
                }
                (None, t) => Err(KafkaError::new(
                    ErrorCode::InvalidRequest,
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
                    .with_error_code(e.wire_code())
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
