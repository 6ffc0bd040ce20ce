//! DescribeShareGroupOffsets (the share-partition start offsets), AlterShareGroupOffsets
//! (start anew at an offset; only while the group has no members) and
//! DeleteShareGroupOffsets (forget the share partitions of a topic).

use std::sync::Arc;

use futures_util::future::join_all;
use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition as AltPart,
    AlterShareGroupOffsetsResponseTopic as AltTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic as DelTopic;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup as DGroup,
    DescribeShareGroupOffsetsResponsePartition as DPart,
    DescribeShareGroupOffsetsResponseTopic as DTopic,
};
use kafka_protocol::messages::*;

use super::sb;
use crate::coordinator::group::owner_shard;
use crate::coordinator::share::messages as sm;
use crate::kafka::{ErrorCode, KafkaError};
use crate::partition::messages as pm;
use crate::partition::share::ShareView;
use crate::protocol::authorized::{Authz, DELETE, DESCRIBE, READ};
use crate::protocol::context::Context;
use crate::protocol::route::partition_owner;

/// Every share partition of `group`, from every shard.
async fn views(ctx: &Context, group: &str) -> Vec<ShareView> {
    let msg = pm::ShareDescribe {
        group: Some(group.to_string()),
    };
    ctx.mesh
        .call_all(msg)
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect()
}

pub async fn describe(
    ctx: &Context,
    az: &Authz<'_>,
    req: DescribeShareGroupOffsetsRequest,
    _version: i16,
) -> DescribeShareGroupOffsetsResponse {
    let reg = ctx.cluster.registry();
    let mut groups = Vec::new();
    for g in req.groups {
        let id = g.group_id.to_string();
        if let Err(e) = az.group(&id, DESCRIBE) {
            groups.push(
                DGroup::default()
                    .with_group_id(GroupId(sb(&id)))
                    .with_error_code(e.code.code())
                    .with_error_message(Some(sb(&e.message))),
            );
            continue;
        }
        let all = views(ctx, &id).await;
        let asked: Vec<(String, Vec<i32>)> = match g.topics {
            Some(ts) => ts
                .into_iter()
                .map(|t| (t.topic_name.to_string(), t.partitions))
                .collect(),
            None => {
                let mut ts: Vec<(String, Vec<i32>)> = Vec::new();
                for v in &all {
                    match ts.iter_mut().find(|(t, _)| **t == *v.topic) {
                        Some((_, ps)) => ps.push(v.partition),
                        None => ts.push((v.topic.to_string(), vec![v.partition])),
                    }
                }
                ts
            }
        };
        let topics = asked
            .into_iter()
            .filter(|(t, _)| az.topic(t, DESCRIBE).is_ok())
            .map(|(t, ps)| {
                let tid = reg.topic(&t).map(|m| m.id).unwrap_or_default();
                let parts = ps
                    .into_iter()
                    .map(|p| {
                        let start = all
                            .iter()
                            .find(|v| *v.topic == *t && v.partition == p)
                            .map_or(-1, |v| v.start);
                        DPart::default()
                            .with_partition_index(p)
                            .with_start_offset(start)
                            .with_leader_epoch(0)
                    })
                    .collect();
                DTopic::default()
                    .with_topic_name(TopicName(sb(&t)))
                    .with_topic_id(tid)
                    .with_partitions(parts)
            })
            .collect();
        groups.push(
            DGroup::default()
                .with_group_id(GroupId(sb(&id)))
                .with_topics(topics),
        );
    }
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}

/// Offsets change only while the group has no members (Kafka: NON_EMPTY_GROUP).
async fn check_empty(ctx: &Context, group: &str) -> Result<(), KafkaError> {
    let owner = owner_shard(group, ctx.shards());
    let d = ctx
        .mesh
        .call(
            owner,
            sm::Describe {
                group: group.to_string(),
            },
        )
        .await
        .map_err(|_| KafkaError::new(ErrorCode::NotCoordinator, "coordinator shutting down"))?;
    match d {
        Some(d) if !d.members.is_empty() => Err(KafkaError::new(
            ErrorCode::NonEmptyGroup,
            "the share group has members; offsets change only while it is empty",
        )),
        _ => Ok(()),
    }
}

async fn reset(
    ctx: &Context,
    group: &Arc<str>,
    topic: &str,
    p: i32,
    start: Option<i64>,
) -> Result<(), KafkaError> {
    let (topic, owner) = partition_owner(&ctx.cluster.registry(), topic, p)?;
    let msg = pm::ShareReset {
        group: group.clone(),
        topic,
        partition: p,
        start,
    };
    ctx.mesh
        .call(owner, msg)
        .await
        .map_err(crate::protocol::route::owner_gone)?
}

pub async fn alter(
    ctx: &Context,
    az: &Authz<'_>,
    req: AlterShareGroupOffsetsRequest,
    _version: i16,
) -> AlterShareGroupOffsetsResponse {
    let id = req.group_id.to_string();
    let checked = match az.group(&id, READ) {
        Ok(()) => check_empty(ctx, &id).await,
        Err(e) => Err(e),
    };
    if let Err(e) = checked {
        return AlterShareGroupOffsetsResponse::default()
            .with_error_code(e.wire_code())
            .with_error_message(Some(sb(&e.message)));
    }
    let group: Arc<str> = id.as_str().into();
    let reg = ctx.cluster.registry();
    let mut topics = Vec::new();
    for t in req.topics {
        let name = t.topic_name.to_string();
        let denied = az.topic(&name, READ).err();
        let work = t.partitions.iter().map(|p| {
            let (g, name, denied) = (group.clone(), name.clone(), denied.clone());
            let (idx, start) = (p.partition_index, p.start_offset);
            async move {
                let r = match denied {
                    Some(e) => Err(e),
                    None => reset(ctx, &g, &name, idx, Some(start)).await,
                };
                let part = AltPart::default().with_partition_index(idx);
                match r {
                    Ok(()) => part,
                    Err(e) => part
                        .with_error_code(e.wire_code())
                        .with_error_message(Some(sb(&e.message))),
                }
            }
        });
        let parts = join_all(work).await;
        let tid = reg.topic(&name).map(|m| m.id).unwrap_or_default();
        topics.push(
            AltTopic::default()
                .with_topic_name(TopicName(sb(&name)))
                .with_topic_id(tid)
                .with_partitions(parts),
        );
    }
    AlterShareGroupOffsetsResponse::default().with_responses(topics)
}

pub async fn delete(
    ctx: &Context,
    az: &Authz<'_>,
    req: DeleteShareGroupOffsetsRequest,
    _version: i16,
) -> DeleteShareGroupOffsetsResponse {
    let id = req.group_id.to_string();
    let checked = match az.group(&id, DELETE) {
        Ok(()) => check_empty(ctx, &id).await,
        Err(e) => Err(e),
    };
    if let Err(e) = checked {
        return DeleteShareGroupOffsetsResponse::default()
            .with_error_code(e.wire_code())
            .with_error_message(Some(sb(&e.message)));
    }
    let group: Arc<str> = id.as_str().into();
    let reg = ctx.cluster.registry();
    let mut topics = Vec::new();
    for t in req.topics {
        let name = t.topic_name.to_string();
        let found = match az.topic(&name, READ) {
            Ok(()) => reg.topic(&name).ok_or(ErrorCode::UnknownTopicOrPartition),
            Err(e) => Err(e.code),
        };
        let meta = match found {
            Ok(meta) => meta,
            Err(code) => {
                topics.push(
                    DelTopic::default()
                        .with_topic_name(TopicName(sb(&name)))
                        .with_error_code(code.code()),
                );
                continue;
            }
        };
        let mut code = ErrorCode::None;
        for p in 0..meta.partition_count() {
            if let Err(e) = reset(ctx, &group, &name, p, None).await {
                code = e.code;
            }
        }
        topics.push(
            DelTopic::default()
                .with_topic_name(TopicName(sb(&name)))
                .with_topic_id(meta.id)
                .with_error_code(code.code()),
        );
    }
    DeleteShareGroupOffsetsResponse::default().with_responses(topics)
}
