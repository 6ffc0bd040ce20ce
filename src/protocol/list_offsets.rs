//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3, KIP-734, v7+), earliest
//! local (-4, KIP-405, v8+: earliest, there is no tiered storage), latest tiered (-5,
//! KIP-1005, v9+: -1), or the first offset whose timestamp is at or after a given time. With
//! isolation_level 1 (read_committed, v2+) latest is the last stable offset (KIP-98).

use futures_util::future::join_all;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::*;

use super::route::{owner_gone, partition_owner};
use crate::partition::messages::ListOffset;
use crate::protocol::context::Context;

pub async fn handle(
    ctx: &Context,
    az: &crate::protocol::authorized::Authz<'_>,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let reg = ctx.cluster.registry();
    let committed = req.isolation_level == 1;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.to_string();
        let denied = az.topic(&name, crate::protocol::authorized::DESCRIBE).err();
        let parts = t.partitions.iter().map(|p| {
            let (reg, name, denied) = (&reg, &name, denied.clone());
            let index = p.partition_index;
            let ts = p.timestamp;
            async move {
                let r = async {
                    if let Some(e) = denied {
                        return Err(e);
                    }
                    let (topic, owner) = partition_owner(reg, name, index)?;
                    let msg = ListOffset {
                        topic,
                        partition: index,
                        timestamp: ts,
                        committed,
                    };
                    ctx.mesh.call(owner, msg).await.map_err(owner_gone)?
                }
                .await;
                let resp = ListOffsetsPartitionResponse::default().with_partition_index(index);
                match r {
                    Ok((offset, timestamp)) => {
                        let r = resp.with_offset(offset).with_timestamp(timestamp);
                        if version >= 4 {
                            r.with_leader_epoch(0)
                        } else {
                            r
                        }
                    }
                    Err(e) => resp
                        .with_error_code(e.wire_code())
                        .with_offset(-1)
                        .with_timestamp(-1),
                }
            }
        });
        let partitions = join_all(parts).await;
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}
