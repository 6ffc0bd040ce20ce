//! CreatePartitions: more partitions for a topic.

use super::*;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;

/// A manual assignment must name one replica per new partition, on the one broker there
/// is; Kafka answers INVALID_REPLICA_ASSIGNMENT otherwise (as CreateTopics does).
fn check_assignment(t: &CreatePartitionsTopic, current: Option<i32>) -> Result<(), KafkaError> {
    let Some(assignments) = &t.assignments else {
        return Ok(());
    };
    let invalid = |m: String| KafkaError::new(ErrorCode::InvalidReplicaAssignment, m);
    for a in assignments {
        if let Some(b) = a.broker_ids.iter().find(|b| b.0 != NODE_ID) {
            return Err(invalid(format!(
                "the manual partition assignment includes broker {}, but no broker with that id exists (the only broker is {NODE_ID})",
                b.0
            )));
        }
        if a.broker_ids.len() != 1 {
            return Err(invalid(format!(
                "an assignment names {} replicas; the topic has replication factor 1",
                a.broker_ids.len()
            )));
        }
    }
    if let Some(current) = current {
        let added = i64::from(t.count) - i64::from(current);
        if added > 0 && added != assignments.len() as i64 {
            return Err(invalid(format!(
                "attempted to add {added} additional partition(s), but {} assignment(s) were given",
                assignments.len()
            )));
        }
    }
    Ok(())
}

pub async fn create_partitions(
    ctx: &Context,
    az: &Authz<'_>,
    req: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let reg = ctx.cluster.registry();
    // Refused here, before the controller, when the assignment cannot be honoured.
    let planned: Vec<Result<Change, KafkaError>> = req
        .topics
        .iter()
        .map(|t| {
            az.topic(t.name.as_str(), ALTER)?;
            let current = reg.topic(t.name.as_str()).map(|m| m.partition_count());
            check_assignment(t, current).map(|()| Change::AddPartitions {
                name: t.name.to_string(),
                total: t.count,
            })
        })
        .collect();
    let outcomes = ctx.cluster.change_planned(planned, req.validate_only).await;
    let results = req
        .topics
        .into_iter()
        .zip(outcomes)
        .map(|(t, r)| {
            let res = CreatePartitionsTopicResult::default().with_name(t.name);
            match r {
                Ok(_) => res,
                Err(e) => res
                    .with_error_code(e.wire_code())
                    .with_error_message(msg(e.message)),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
