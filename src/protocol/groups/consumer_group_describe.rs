//! ConsumerGroupDescribe (KIP-848).

use super::*;

pub async fn consumer_group_describe(
    ctx: &Context,
    az: &Authz<'_>,
    req: ConsumerGroupDescribeRequest,
    _version: i16,
) -> ConsumerGroupDescribeResponse {
    let with_ops = req.include_authorized_operations;
    let work = req.group_ids.into_iter().map(|g| {
        let id = g.to_string();
        async move {
            // The group operations the principal may do (KIP-430).
            let ops = az.group_operations(with_ops, &id);
            let msg = gm::ConsumerDescribe { group: id.clone() };
            let d = on_group_as(ctx, az, DESCRIBE, &id, msg)
                .await
                .unwrap_or_else(|code| group::ConsumerDescribed {
                    error: code,
                    group: id.clone(),
                    ..Default::default()
                });
            consumer_described(d).with_authorized_operations(ops)
        }
    });
    ConsumerGroupDescribeResponse::default().with_groups(join_all(work).await)
}

pub(super) fn cgd_assignment(a: Vec<(uuid::Uuid, String, Vec<i32>)>) -> cgd::Assignment {
    cgd::Assignment::default().with_topic_partitions(
        a.into_iter()
            .map(|(id, name, ps)| {
                cgd::TopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(TopicName(sb(&name)))
                    .with_partitions(ps)
            })
            .collect(),
    )
}

pub(super) fn consumer_described(d: group::ConsumerDescribed) -> cgd::DescribedGroup {
    let g = cgd::DescribedGroup::default()
        .with_error_code(d.error.code())
        .with_group_id(GroupId(sb(&d.group)));
    if d.error != ErrorCode::None {
        return g;
    }
    g.with_group_state(sb(&d.state))
        .with_group_epoch(d.epoch)
        .with_assignment_epoch(d.assignment_epoch)
        .with_assignor_name(sb(&d.assignor))
        .with_members(
            d.members
                .into_iter()
                .map(|m| {
                    cgd::Member::default()
                        .with_member_id(sb(&m.member_id))
                        .with_instance_id(m.instance_id.map(|i| sb(&i)))
                        .with_rack_id(m.rack_id.map(|i| sb(&i)))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(sb(&m.client_id))
                        .with_client_host(sb(&m.client_host))
                        .with_subscribed_topic_names(
                            m.subscribed.iter().map(|t| TopicName(sb(t))).collect(),
                        )
                        .with_subscribed_topic_regex(m.regex.as_deref().map(sb))
                        .with_assignment(cgd_assignment(m.assignment))
                        .with_target_assignment(cgd_assignment(m.target))
                })
                .collect(),
        )
}
