//! OffsetDelete: committed offsets of partitions no member subscribes to.

use super::*;

pub async fn offset_delete(
    ctx: &Context,
    az: &Authz<'_>,
    req: OffsetDeleteRequest,
    _version: i16,
) -> OffsetDeleteResponse {
    let group = req.group_id.to_string();
    let topics: Vec<(String, Vec<i32>)> = req
        .topics
        .iter()
        .filter(|t| az.topic(t.name.as_str(), READ).is_ok())
        .map(|t| {
            (
                t.name.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let msg = gm::DeleteOffsets {
        group: group.clone(),
        topics,
    };
    let res = on_group_as(ctx, az, DELETE, &group, msg).await;
    match res {
        Err(code) => OffsetDeleteResponse::default().with_error_code(code.code()),
        Ok(codes) => OffsetDeleteResponse::default().with_topics(
            codes
                .into_iter()
                .map(|(t, ps)| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(TopicName(sb(&t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, c)| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(c.code())
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}
