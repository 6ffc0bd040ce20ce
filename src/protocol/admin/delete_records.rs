//! DeleteRecords: move each partition's log start, on its owner.

use super::*;

pub async fn delete_records(
    ctx: &Context,
    az: &Authz<'_>,
    req: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let reg = ctx.cluster.registry();
    let mut topics = Vec::new();
    for t in req.topics {
        let meta = reg.topic(t.name.as_str()).cloned();
        let denied = az.topic(t.name.as_str(), DELETE).err();
        let parts = t.partitions.iter().map(|p| {
            let meta = meta.clone();
            let denied = denied.clone();
            let (index, offset) = (p.partition_index, p.offset);
            async move {
                let r = async {
                    if let Some(e) = denied {
                        return Err(e);
                    }
                    let meta = meta.ok_or_else(|| {
                        KafkaError::new(ErrorCode::UnknownTopicOrPartition, "unknown partition")
                    })?;
                    let (topic, owner) = crate::protocol::route::owner_in(&meta, index)?;
                    let msg = DeleteRecords {
                        topic,
                        partition: index,
                        offset,
                    };
                    ctx.mesh.call(owner, msg).await.map_err(owner_gone)?
                }
                .await;
                let res = DeleteRecordsPartitionResult::default().with_partition_index(index);
                match r {
                    Ok(low) => res.with_low_watermark(low),
                    Err(e) => res.with_error_code(e.wire_code()).with_low_watermark(-1),
                }
            }
        });
        let partitions = join_all(parts).await;
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
