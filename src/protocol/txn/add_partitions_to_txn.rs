//! AddPartitionsToTxn (v0-v3; v4+ is broker-to-broker).

use super::*;

/// With the transactional id's WRITE, and WRITE on every topic: a topic the principal
/// may not write gets TOPIC_AUTHORIZATION_FAILED and the others OPERATION_NOT_ATTEMPTED
/// (nothing is added), as Kafka answers. None: all allowed.
fn refused(az: &Authz<'_>, id: &str, asked: &[(String, Vec<i32>)]) -> Option<TopicCodes> {
    let txn_denied = az.transactional_id(id, WRITE).err().map(|e| e.code);
    let code = |t: &str| match (txn_denied, az.topic(t, WRITE)) {
        (Some(c), _) => Some(c),
        (None, Ok(())) => None,
        (None, Err(e)) => Some(e.code),
    };
    if asked.iter().all(|(t, _)| code(t).is_none()) {
        return None;
    }
    let code = |t: &str| code(t).unwrap_or(ErrorCode::OperationNotAttempted);
    let codes = asked
        .iter()
        .map(|(t, ps)| (t.clone(), ps.iter().map(|&p| (p, code(t))).collect()))
        .collect();
    Some(codes)
}

pub async fn add_partitions(
    ctx: &Context,
    az: &Authz<'_>,
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
    let r = match refused(az, &id, &asked) {
        Some(codes) => Ok(codes),
        None => on_txn(ctx, &id, msg).await,
    };
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
