//! AddPartitionsToTxn (v0-v3; v4+ is broker-to-broker).

use super::*;

pub async fn add_partitions(
    ctx: &Context,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let id = req.v3_and_below_transactional_id.to_string();
    let pid = req.v3_and_below_producer_id.0;
    let epoch = req.v3_and_below_producer_epoch;
    let topics: Vec<(String, Vec<i32>)> = req
        .v3_and_below_topics
        .iter()
        .map(|t| (t.name.to_string(), t.partitions.clone()))
        .collect();
    let asked = topics.clone();
    let msg = tm::AddPartitions {
        transactional_id: id.clone(),
        producer_id: pid,
        epoch,
        topics,
        version,
    };
    let r = on_txn(ctx, &id, msg).await;
    let results = r.unwrap_or_else(|code| {
        asked
            .into_iter()
            .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, code)).collect()))
            .collect()
    });
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(
        results
            .into_iter()
            .map(|(t, ps)| {
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(StrBytes::from_string(t)))
                    .with_results_by_partition(
                        ps.into_iter()
                            .map(|(p, c)| {
                                AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(p)
                                    .with_partition_error_code(c.code())
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
