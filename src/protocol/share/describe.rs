//! ShareGroupDescribe: members, their assignments and epochs.

use futures_util::future::join_all;
use kafka_protocol::messages::share_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    GroupId, ShareGroupDescribeRequest, ShareGroupDescribeResponse, TopicName,
};

use super::sb;
use crate::coordinator::group::owner_shard;
use crate::coordinator::share::{messages as sm, Described};
use crate::kafka::ErrorCode;
use crate::protocol::authorized::{Authz, DESCRIBE};
use crate::protocol::context::Context;

pub async fn handle(
    ctx: &Context,
    az: &Authz<'_>,
    req: ShareGroupDescribeRequest,
    _version: i16,
) -> ShareGroupDescribeResponse {
    let reg = ctx.cluster.registry();
    let work = req.group_ids.into_iter().map(|g| {
        let id = g.to_string();
        let reg = reg.clone();
        async move {
            if let Err(e) = az.group(&id, DESCRIBE) {
                return DescribedGroup::default()
                    .with_group_id(GroupId(sb(&id)))
                    .with_error_code(e.code.code())
                    .with_error_message(Some(sb(&e.message)));
            }
            let owner = owner_shard(&id, ctx.shards());
            let d = ctx
                .mesh
                .call(owner, sm::Describe { group: id.clone() })
                .await;
            match d {
                Ok(Some(d)) => described(&reg, d),
                Ok(None) => DescribedGroup::default()
                    .with_group_id(GroupId(sb(&id)))
                    .with_error_code(ErrorCode::GroupIdNotFound.code())
                    .with_error_message(Some(sb("no such share group"))),
                Err(_) => DescribedGroup::default()
                    .with_group_id(GroupId(sb(&id)))
                    .with_error_code(ErrorCode::NotCoordinator.code()),
            }
        }
    });
    ShareGroupDescribeResponse::default().with_groups(join_all(work).await)
}

fn described(reg: &crate::cluster::Registry, d: Described) -> DescribedGroup {
    let members = d
        .members
        .into_iter()
        .map(|m| {
            let tps = m
                .assigned
                .iter()
                .map(|(id, ps)| {
                    let name = reg
                        .topic_by_id(id)
                        .map(|t| t.name.to_string())
                        .unwrap_or_default();
                    TopicPartitions::default()
                        .with_topic_id(*id)
                        .with_topic_name(TopicName(sb(&name)))
                        .with_partitions(ps.clone())
                })
                .collect();
            Member::default()
                .with_member_id(sb(&m.id))
                .with_rack_id(m.rack_id.as_deref().map(sb))
                .with_member_epoch(m.epoch)
                .with_client_id(sb(&m.client_id))
                .with_client_host(sb(&m.client_host))
                .with_subscribed_topic_names(
                    m.subscribed.iter().map(|t| TopicName(sb(t))).collect(),
                )
                .with_assignment(Assignment::default().with_topic_partitions(tps))
        })
        .collect();
    DescribedGroup::default()
        .with_group_id(GroupId(sb(&d.group)))
        .with_group_state(sb(d.state))
        .with_group_epoch(d.epoch)
        .with_assignment_epoch(d.epoch)
        .with_assignor_name(sb("simple"))
        .with_members(members)
}
