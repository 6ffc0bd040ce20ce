//! AlterPartitionReassignments (KIP-455): the only replica set a partition can have is
//! broker 1 alone, which it has; asking for it succeeds at once and anything else is
//! INVALID_REPLICA_ASSIGNMENT, as Kafka answers for brokers that are not registered.
//! Cancelling (null replicas) finds nothing in progress: NO_REASSIGNMENT_IN_PROGRESS.

use super::*;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};

pub async fn alter_partition_reassignments(
    ctx: &Context,
    az: &Authz<'_>,
    req: AlterPartitionReassignmentsRequest,
    _version: i16,
) -> AlterPartitionReassignmentsResponse {
    if let Err(e) = az.cluster(ALTER) {
        return AlterPartitionReassignmentsResponse::default()
            .with_error_code(e.code.code())
            .with_error_message(Some(StrBytes::from_string(e.message)));
    }
    let reg = ctx.cluster.registry();
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let meta = reg.topic(t.name.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let index = p.partition_index;
                    let known = meta.is_some_and(|m| m.owner(index).is_some());
                    let r = ReassignablePartitionResponse::default().with_partition_index(index);
                    match reassign(known, p.replicas.as_deref()) {
                        Ok(()) => r,
                        Err(e) => r
                            .with_error_code(e.wire_code())
                            .with_error_message(msg(e.message)),
                    }
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default().with_responses(responses)
}

fn reassign(known: bool, replicas: Option<&[BrokerId]>) -> Result<(), KafkaError> {
    if !known {
        return Err(KafkaError::new(
            ErrorCode::UnknownTopicOrPartition,
            "no such partition",
        ));
    }
    match replicas {
        None => Err(KafkaError::new(
            ErrorCode::NoReassignmentInProgress,
            "no reassignment is in progress",
        )),
        Some([BrokerId(NODE_ID)]) => Ok(()),
        Some(other) => Err(KafkaError::new(
            ErrorCode::InvalidReplicaAssignment,
            format!(
                "replicas {:?}: broker {NODE_ID} is the only broker, and a partition has one replica",
                other.iter().map(|b| b.0).collect::<Vec<_>>()
            ),
        )),
    }
}
