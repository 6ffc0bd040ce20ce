//! DescribeProducers (KIP-664): the idempotent and transactional producers with state on
//! each partition, asked of the partition's owner (kafka-transactions.sh
//! describe-producers, and its hanging-transaction search).

use futures_util::future::join_all;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};

use super::*;
use crate::partition::messages::{DescribeProducers, ProducerInfo};
use crate::protocol::route::{owner_gone, partition_owner};

pub async fn describe_producers(
    ctx: &Context,
    az: &Authz<'_>,
    req: DescribeProducersRequest,
    _version: i16,
) -> DescribeProducersResponse {
    let reg = ctx.cluster.registry();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.to_string();
        let denied = az.topic(&name, READ).err();
        let parts = t.partition_indexes.iter().map(|&index| {
            let (reg, name, denied) = (&reg, &name, denied.clone());
            async move {
                let r = async {
                    if let Some(e) = denied {
                        return Err(e);
                    }
                    let (topic, owner) = partition_owner(reg, name, index)?;
                    let msg = DescribeProducers {
                        topic,
                        partition: index,
                    };
                    ctx.mesh.call(owner, msg).await.map_err(owner_gone)?
                }
                .await;
                let out = PartitionResponse::default().with_partition_index(index);
                match r {
                    Ok(producers) => out
                        .with_active_producers(producers.into_iter().map(producer_state).collect()),
                    Err(e) => out
                        .with_error_code(e.wire_code())
                        .with_error_message(Some(StrBytes::from_string(e.message))),
                }
            }
        });
        topics.push(
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(join_all(parts).await),
        );
    }
    DescribeProducersResponse::default().with_topics(topics)
}

fn producer_state(p: ProducerInfo) -> ProducerState {
    ProducerState::default()
        .with_producer_id(ProducerId(p.producer_id))
        .with_producer_epoch(p.epoch as i32)
        .with_last_sequence(p.last_sequence)
        .with_last_timestamp(p.last_timestamp_ms)
        // Sluice's markers carry no coordinator epoch worth reporting.
        .with_coordinator_epoch(-1)
        .with_current_txn_start_offset(p.txn_start_offset)
}
