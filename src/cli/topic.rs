//! `sluice topic create|list|describe|delete|add-partitions|alter-config`.

use std::collections::BTreeMap;

use clap::Subcommand;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    DescribeLogDirsRequest, IncrementalAlterConfigsRequest,
};
use serde_json::{json, Value};

use super::client::{s, topic_name, Client, EARLIEST, LATEST};
use super::error::CliError;
use super::output::{emit, human_bytes, Table};
use super::spec::parse_kv;
use super::Ctx;

const RESOURCE_TOPIC: i8 = 2;

#[derive(Subcommand, Debug)]
pub enum TopicCmd {
    /// Create topics.
    Create {
        #[arg(required = true)]
        names: Vec<String>,
        /// Partitions of each (-1: the broker's default).
        #[arg(short, long, default_value_t = 1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replication factor (-1: the broker's default; Sluice has one replica).
        #[arg(short, long, default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i16,
        /// A topic config, key=value (repeat for more): -c retention.ms=3600000.
        #[arg(short = 'c', long = "config")]
        configs: Vec<String>,
        /// Succeed without change when the topic already exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List topics with their partition counts.
    List {
        /// Include internal topics.
        #[arg(long)]
        internal: bool,
    },
    /// Partitions (leader, log start, high watermark, size on disk) and configs with their
    /// source.
    Describe {
        #[arg(required = true)]
        names: Vec<String>,
        /// Show every config, defaults included (default: only those not at their default,
        /// in the table; JSON always has all).
        #[arg(long)]
        all_configs: bool,
    },
    /// Delete topics and their data.
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
        /// Succeed when a topic does not exist.
        #[arg(long)]
        if_exists: bool,
    },
    /// Raise a topic's partition count (to a total).
    AddPartitions {
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        total: i32,
    },
    /// Set or delete topic configs.
    AlterConfig {
        name: String,
        /// key=value to set (repeat for more).
        #[arg(long = "set")]
        set: Vec<String>,
        /// A key to return to its default (repeat for more).
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
}

pub fn run(ctx: &Ctx, cmd: TopicCmd) -> Result<(), CliError> {
    let mut c = ctx.client()?;
    match cmd {
        TopicCmd::Create {
            names,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
        } => create(
            ctx,
            &mut c,
            names,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
        ),
        TopicCmd::List { internal } => list(ctx, &mut c, internal),
        TopicCmd::Describe { names, all_configs } => {
            let mut docs = Vec::new();
            for n in &names {
                docs.push(describe(&mut c, n)?);
            }
            let json = if docs.len() == 1 {
                docs[0].clone()
            } else {
                Value::Array(docs.clone())
            };
            emit(ctx.format, &json, || {
                docs.iter()
                    .map(|d| describe_text(d, all_configs))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        TopicCmd::Delete { names, if_exists } => delete(ctx, &mut c, names, if_exists),
        TopicCmd::AddPartitions { name, total } => add_partitions(ctx, &mut c, &name, total),
        TopicCmd::AlterConfig { name, set, delete } => alter(ctx, &mut c, &name, set, delete),
    }
}

fn create(
    ctx: &Ctx,
    c: &mut Client,
    names: Vec<String>,
    partitions: i32,
    rf: i16,
    configs: Vec<String>,
    if_not_exists: bool,
) -> Result<(), CliError> {
    if partitions == 0 || partitions < -1 {
        return Err(CliError::usage(format!(
            "--partitions {partitions}: a topic needs at least 1 partition (-1: the broker's default)"
        )));
    }
    let configs: Vec<(String, String)> = configs
        .iter()
        .map(|c| parse_kv(c))
        .collect::<Result<_, _>>()?;
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(ctx.timeout_ms())
        .with_topics(
            names
                .iter()
                .map(|n| {
                    CreatableTopic::default()
                        .with_name(topic_name(n.clone()))
                        .with_num_partitions(partitions)
                        .with_replication_factor(rf)
                        .with_configs(
                            configs
                                .iter()
                                .map(|(k, v)| {
                                    CreatableTopicConfig::default()
                                        .with_name(s(k.clone()))
                                        .with_value(Some(s(v.clone())))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let resp = c.controller()?.call(&req, 7)?;
    let mut results = Vec::new();
    let mut first_err = None;
    for t in &resp.topics {
        let name = t.name.0.to_string();
        let exists = t.error_code == crate::kafka::ErrorCode::TopicAlreadyExists.code();
        let err = if exists && if_not_exists {
            None
        } else {
            CliError::kafka_opt(
                t.error_code,
                t.error_message.as_deref(),
                &format!("create topic {name}"),
            )
        };
        results.push(json!({
            "topic": name,
            "created": t.error_code == 0,
            "existed": exists,
            "partitions": if t.error_code == 0 { json!(t.num_partitions) } else { Value::Null },
            "topic_id": if t.error_code == 0 { json!(t.topic_id.to_string()) } else { Value::Null },
            "error": err.as_ref().map(|e| e.message.clone()),
        }));
        if let Some(e) = err {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    emit(ctx.format, &json!({ "topics": results }), || {
        results
            .iter()
            .map(|r| {
                if r["created"].as_bool() == Some(true) {
                    format!(
                        "created topic {} ({} partitions)\n",
                        r["topic"].as_str().unwrap_or(""),
                        r["partitions"]
                    )
                } else {
                    format!(
                        "topic {} already exists\n",
                        r["topic"].as_str().unwrap_or("")
                    )
                }
            })
            .collect()
    });
    Ok(())
}

fn list(ctx: &Ctx, c: &mut Client, internal: bool) -> Result<(), CliError> {
    let topics: Vec<_> = c
        .topics(None)?
        .into_iter()
        .filter(|t| internal || !t.internal)
        .collect();
    let json = json!({
        "topics": topics.iter().map(|t| json!({
            "topic": t.name,
            "topic_id": t.id,
            "partitions": t.partitions.len(),
            "replicas": t.partitions.first().map_or(0, |p| p.2.len()),
            "internal": t.internal,
        })).collect::<Vec<_>>()
    });
    emit(ctx.format, &json, || {
        let mut tb = Table::new(&["TOPIC", "PARTITIONS", "REPLICAS"]);
        for t in &topics {
            tb.row(vec![
                t.name.clone(),
                t.partitions.len().to_string(),
                t.partitions.first().map_or(0, |p| p.2.len()).to_string(),
            ]);
        }
        tb.render()
    });
    Ok(())
}

/// Size on disk of every partition of `topic`, summed over the log dirs of every broker.
pub fn partition_sizes(c: &mut Client, topic: &str, parts: &[i32]) -> BTreeMap<i32, i64> {
    let mut out = BTreeMap::new();
    let req =
        DescribeLogDirsRequest::default()
            .with_topics(Some(vec![DescribableLogDirTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(parts.to_vec())]));
    for id in c.node_ids() {
        let Ok(conn) = c.node(id) else { continue };
        let Ok(resp) = conn.call(&req, 4) else {
            continue;
        };
        for d in resp.results {
            for t in d.topics.iter().filter(|t| t.name.0.as_str() == topic) {
                for p in &t.partitions {
                    *out.entry(p.partition_index).or_insert(0) += p.partition_size;
                }
            }
        }
    }
    out
}

pub fn config_source(src: i8) -> &'static str {
    match src {
        1 => "topic",
        2 => "broker (dynamic)",
        3 => "broker default (dynamic)",
        4 => "broker (static)",
        5 => "default",
        6 => "broker logger",
        7 => "client metrics",
        8 => "group",
        _ => "unknown",
    }
}

/// Describe one topic as JSON.
pub fn describe(c: &mut Client, name: &str) -> Result<Value, CliError> {
    let t = c
        .topics(Some(&[name.to_string()]))?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::not_found(format!("topic {name} does not exist")))?;
    let parts: Vec<(String, i32)> = t
        .partitions
        .iter()
        .map(|p| (name.to_string(), p.0))
        .collect();
    let starts = c.list_offsets(&parts, EARLIEST)?;
    let ends = c.list_offsets(&parts, LATEST)?;
    let ids: Vec<i32> = t.partitions.iter().map(|p| p.0).collect();
    let sizes = partition_sizes(c, name, &ids);
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(s(name))
            .with_configuration_keys(None)]);
    let resp = c.bootstrap().call(&req, 4)?;
    let mut configs = Vec::new();
    for r in resp.results {
        if let Some(e) = CliError::kafka_opt(
            r.error_code,
            r.error_message.as_deref(),
            &format!("configs of {name}"),
        ) {
            return Err(e);
        }
        for cfg in r.configs {
            configs.push(json!({
                "name": cfg.name.as_str(),
                "value": if cfg.is_sensitive { Value::Null } else { json!(cfg.value.as_deref()) },
                "source": config_source(cfg.config_source),
                "read_only": cfg.read_only,
                "sensitive": cfg.is_sensitive,
            }));
        }
    }
    configs.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let partitions: Vec<Value> = t
        .partitions
        .iter()
        .map(|(p, leader, replicas, isr)| {
            let start = starts.get(&(name.to_string(), *p)).copied().unwrap_or(-1);
            let end = ends.get(&(name.to_string(), *p)).copied().unwrap_or(-1);
            json!({
                "partition": p,
                "leader": leader,
                "replicas": replicas,
                "isr": isr,
                "log_start_offset": start,
                "high_watermark": end,
                "records": (end - start).max(0),
                "size_bytes": sizes.get(p).copied(),
            })
        })
        .collect();
    Ok(json!({
        "topic": name,
        "topic_id": t.id,
        "internal": t.internal,
        "partition_count": t.partitions.len(),
        "records": partitions.iter().map(|p| p["records"].as_i64().unwrap_or(0)).sum::<i64>(),
        "size_bytes": partitions.iter().map(|p| p["size_bytes"].as_i64().unwrap_or(0)).sum::<i64>(),
        "partitions": partitions,
        "configs": configs,
    }))
}

fn describe_text(d: &Value, all: bool) -> String {
    let mut out = format!(
        "TOPIC {}  id {}  partitions {}  records {}  size {}\n\n",
        d["topic"].as_str().unwrap_or(""),
        d["topic_id"].as_str().unwrap_or(""),
        d["partition_count"],
        d["records"],
        human_bytes(d["size_bytes"].as_u64().unwrap_or(0)),
    );
    let mut tb = Table::new(&[
        "PARTITION",
        "LEADER",
        "LOG-START",
        "HIGH-WATERMARK",
        "RECORDS",
        "SIZE",
    ]);
    for p in d["partitions"].as_array().into_iter().flatten() {
        tb.row(vec![
            p["partition"].to_string(),
            p["leader"].to_string(),
            p["log_start_offset"].to_string(),
            p["high_watermark"].to_string(),
            p["records"].to_string(),
            p["size_bytes"].as_u64().map_or("-".into(), human_bytes),
        ]);
    }
    out.push_str(&tb.render());
    let mut tb = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
    for cfg in d["configs"].as_array().into_iter().flatten() {
        if !all && cfg["source"] == "default" {
            continue;
        }
        tb.row(vec![
            cfg["name"].as_str().unwrap_or("").to_string(),
            match &cfg["value"] {
                Value::String(v) => v.clone(),
                Value::Null if cfg["sensitive"] == true => "(sensitive)".into(),
                _ => "(null)".into(),
            },
            cfg["source"].as_str().unwrap_or("").to_string(),
        ]);
    }
    out.push('\n');
    out.push_str(&tb.render());
    out
}

fn delete(ctx: &Ctx, c: &mut Client, names: Vec<String>, if_exists: bool) -> Result<(), CliError> {
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(ctx.timeout_ms())
        .with_topic_names(names.iter().map(|n| topic_name(n.clone())).collect());
    let resp = c.controller()?.call(&req, 5)?;
    let mut results = Vec::new();
    for r in &resp.responses {
        let name = r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        let missing = r.error_code == crate::kafka::ErrorCode::UnknownTopicOrPartition.code();
        if !(missing && if_exists) {
            if let Some(e) = CliError::kafka_opt(
                r.error_code,
                r.error_message.as_deref(),
                &format!("delete topic {name}"),
            ) {
                return Err(e);
            }
        }
        results.push(json!({ "topic": name, "deleted": r.error_code == 0, "existed": !missing }));
    }
    emit(ctx.format, &json!({ "topics": results }), || {
        results
            .iter()
            .map(|r| {
                let t = r["topic"].as_str().unwrap_or("");
                if r["deleted"] == true {
                    format!("deleted topic {t}\n")
                } else {
                    format!("topic {t} does not exist\n")
                }
            })
            .collect()
    });
    Ok(())
}

fn add_partitions(ctx: &Ctx, c: &mut Client, name: &str, total: i32) -> Result<(), CliError> {
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(ctx.timeout_ms())
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(name))
            .with_count(total)
            .with_assignments(None)]);
    let resp = c.controller()?.call(&req, 3)?;
    for r in &resp.results {
        if let Some(e) = CliError::kafka_opt(
            r.error_code,
            r.error_message.as_deref(),
            &format!("add partitions to {name}"),
        ) {
            return Err(e);
        }
    }
    emit(
        ctx.format,
        &json!({ "topic": name, "partitions": total }),
        || format!("topic {name} now has {total} partitions\n"),
    );
    Ok(())
}

fn alter(
    ctx: &Ctx,
    c: &mut Client,
    name: &str,
    set: Vec<String>,
    delete: Vec<String>,
) -> Result<(), CliError> {
    if set.is_empty() && delete.is_empty() {
        return Err(CliError::usage(
            "nothing to change: give --set key=value or --delete key",
        ));
    }
    let mut configs = Vec::new();
    let mut changes = Vec::new();
    for kv in &set {
        let (k, v) = parse_kv(kv)?;
        changes.push(json!({ "name": k, "op": "set", "value": v }));
        configs.push(
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(0)
                .with_value(Some(s(v))),
        );
    }
    for k in &delete {
        changes.push(json!({ "name": k, "op": "delete" }));
        configs.push(
            AlterableConfig::default()
                .with_name(s(k.clone()))
                .with_config_operation(1)
                .with_value(None),
        );
    }
    // Fail on an unknown topic with its own error, not a config one.
    c.topics(Some(&[name.to_string()]))?;
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(s(name))
            .with_configs(configs),
    ]);
    let resp = c.controller()?.call(&req, 1)?;
    for r in &resp.responses {
        if let Some(e) = CliError::kafka_opt(
            r.error_code,
            r.error_message.as_deref(),
            &format!("alter configs of {name}"),
        ) {
            return Err(e);
        }
    }
    emit(
        ctx.format,
        &json!({ "topic": name, "changes": changes }),
        || {
            changes
                .iter()
                .map(|ch| match ch["op"].as_str() {
                    Some("set") => format!(
                        "{name}: set {}={}\n",
                        ch["name"].as_str().unwrap_or(""),
                        ch["value"].as_str().unwrap_or("")
                    ),
                    _ => format!(
                        "{name}: {} back to its default\n",
                        ch["name"].as_str().unwrap_or("")
                    ),
                })
                .collect()
        },
    );
    Ok(())
}
