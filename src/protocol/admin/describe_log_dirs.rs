//! DescribeLogDirs (KIP-113): the one log directory (the data directory) with the size
//! of each partition in it, gathered from every shard's partitions. Used by
//! kafka-log-dirs.sh, AKHQ, Cruise Control and consoles.

use super::*;
use crate::partition::messages::{LogDirReport, PartitionSizes};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};

pub async fn describe_log_dirs(
    ctx: &Context,
    az: &Authz<'_>,
    req: DescribeLogDirsRequest,
    version: i16,
) -> DescribeLogDirsResponse {
    if let Err(e) = az.cluster(DESCRIBE) {
        // v3+ has a top-level code; before, Kafka answers no log dirs.
        let resp = DescribeLogDirsResponse::default();
        return if version >= 3 {
            resp.with_error_code(e.code.code())
        } else {
            resp
        };
    }
    let mut report = LogDirReport::default();
    for r in ctx.mesh.call_all(PartitionSizes).await {
        let Ok(r) = r else {
            let dir = ctx.config.data_dir.display().to_string();
            let failed = DescribeLogDirsResult::default()
                .with_error_code(ErrorCode::KafkaStorageError.code())
                .with_log_dir(StrBytes::from_string(dir));
            return DescribeLogDirsResponse::default().with_results(vec![failed]);
        };
        report.partitions.extend(r.partitions);
        report.total_bytes = report.total_bytes.or(r.total_bytes);
        report.usable_bytes = report.usable_bytes.or(r.usable_bytes);
    }
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect()
    });
    let mut topics: BTreeMap<Arc<str>, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for (topic, partition, size) in report.partitions {
        let asked = match &wanted {
            None => true,
            Some(w) => w.get(&*topic).is_some_and(|ps| ps.contains(&partition)),
        };
        if asked {
            topics.entry(topic).or_default().push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(partition)
                    .with_partition_size(size as i64)
                    .with_offset_lag(0),
            );
        }
    }
    let topics = topics
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partitions(partitions)
        })
        .collect();
    let dir = std::path::absolute(&ctx.config.data_dir).unwrap_or(ctx.config.data_dir.clone());
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(report.total_bytes.map_or(-1, |b| b as i64))
        .with_usable_bytes(report.usable_bytes.map_or(-1, |b| b as i64));
    DescribeLogDirsResponse::default().with_results(vec![result])
}
