//! OffsetForLeaderEpoch (KIP-101, KIP-320): the end offset of a leader epoch, which a
//! consumer asks to validate its position after a leader change. One node leads every
//! partition at leader epoch 0 (every batch is stamped with it), so epoch 0 ends at the
//! log end offset and any other epoch is unknown, as Kafka's `LeaderEpochFileCache`
//! answers for epochs above the latest.

use futures_util::future::join_all;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::*;

use super::route::{owner_gone, partition_owner};
use crate::kafka::{ErrorCode, KafkaError};
use crate::partition::messages::ListOffset;
use crate::partition::LATEST_TIMESTAMP;
use crate::protocol::context::Context;

/// The only leader epoch there is.
const LEADER_EPOCH: i32 = 0;

pub async fn handle(
    ctx: &Context,
    az: &crate::protocol::authorized::Authz<'_>,
    req: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let reg = ctx.cluster.registry();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.topic.to_string();
        let denied = az.topic(&name, crate::protocol::authorized::DESCRIBE).err();
        let parts = t.partitions.iter().map(|p| {
            let (reg, name, denied) = (&reg, &name, denied.clone());
            let (index, current, epoch) = (p.partition, p.current_leader_epoch, p.leader_epoch);
            async move {
                let r = async {
                    if let Some(e) = denied {
                        return Err(e);
                    }
                    let (topic, owner) = partition_owner(reg, name, index)?;
                    check_current_epoch(current)?;
                    if epoch != LEADER_EPOCH {
                        return Ok((-1, -1));
                    }
                    let msg = ListOffset {
                        topic,
                        partition: index,
                        timestamp: LATEST_TIMESTAMP,
                        committed: false,
                    };
                    let (end, _) = ctx.mesh.call(owner, msg).await.map_err(owner_gone)??;
                    Ok::<_, KafkaError>((LEADER_EPOCH, end))
                }
                .await;
                let out = EpochEndOffset::default().with_partition(index);
                match r {
                    Ok((e, end)) => out.with_leader_epoch(e).with_end_offset(end),
                    Err(e) => out
                        .with_error_code(e.wire_code())
                        .with_leader_epoch(-1)
                        .with_end_offset(-1),
                }
            }
        });
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(join_all(parts).await),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// The client's idea of the current leader epoch (-1: not checked): newer than ours is
/// UNKNOWN_LEADER_EPOCH, older FENCED_LEADER_EPOCH (KIP-320).
fn check_current_epoch(current: i32) -> Result<(), KafkaError> {
    match current {
        c if c < 0 || c == LEADER_EPOCH => Ok(()),
        c if c > LEADER_EPOCH => Err(KafkaError::new(
            ErrorCode::UnknownLeaderEpoch,
            format!("leader epoch {c} is newer than the current one ({LEADER_EPOCH})"),
        )),
        c => Err(KafkaError::new(
            ErrorCode::FencedLeaderEpoch,
            format!("leader epoch {c} is older than the current one ({LEADER_EPOCH})"),
        )),
    }
}
