//! ElectLeaders (KIP-183, KIP-460): one node already leads every partition, so every
//! partition named is answered ELECTION_NOT_NEEDED, as Kafka answers for a partition
//! whose preferred leader leads (admin clients and kafka-leader-election.sh take it as
//! success). Asked for every partition (null), Kafka lists only the partitions it
//! elected: none.

use super::*;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};

pub async fn elect_leaders(
    ctx: &Context,
    az: &Authz<'_>,
    req: ElectLeadersRequest,
    _version: i16,
) -> ElectLeadersResponse {
    if let Err(e) = az.cluster(ALTER) {
        return ElectLeadersResponse::default().with_error_code(e.code.code());
    }
    let reg = ctx.cluster.registry();
    let results = req
        .topic_partitions
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let meta = reg.topic(t.topic.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|&p| {
                    let known = meta.is_some_and(|m| m.owner(p).is_some());
                    let (code, text) = if known {
                        (ErrorCode::ElectionNotNeeded, "broker 1 already leads it")
                    } else {
                        (ErrorCode::UnknownTopicOrPartition, "no such partition")
                    };
                    PartitionResult::default()
                        .with_partition_id(p)
                        .with_error_code(code.code())
                        .with_error_message(msg(text.to_string()))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(t.topic)
                .with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}
