//! DescribeGroups.

use super::*;

// --- DescribeGroups, ListGroups, DeleteGroups, OffsetDelete ---

pub async fn describe_groups(
    ctx: &Context,
    az: &Authz<'_>,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let with_ops = req.include_authorized_operations;
    let work = req.groups.into_iter().map(|g| {
        let id = g.to_string();
        async move {
            // KIP-430 (v3+): the group operations the principal may do.
            let ops = az.group_operations(with_ops, &id);
            let msg = gm::Describe { group: id.clone() };
            let mut d = on_group_as(ctx, az, DESCRIBE, &id, msg)
                .await
                .unwrap_or_else(|code| group::Described {
                    error: code,
                    group: id.clone(),
                    ..Default::default()
                });
            if d.state == "Dead" {
                if let Some(s) = share_group(ctx, &id).await {
                    d = s;
                }
            }
            described_group(d, version).with_authorized_operations(ops)
        }
    });
    DescribeGroupsResponse::default().with_groups(join_all(work).await)
}

/// A share group in DescribeGroups' terms (protocol type "share", members without
/// metadata), if `id` is one.
async fn share_group(ctx: &Context, id: &str) -> Option<group::Described> {
    let owner = group::owner_shard(id, ctx.shards());
    let msg = crate::coordinator::share::messages::Describe {
        group: id.to_string(),
    };
    let d = ctx.mesh.call(owner, msg).await.ok()??;
    Some(group::Described {
        group: d.group,
        state: d.state.to_string(),
        protocol_type: "share".into(),
        members: d
            .members
            .into_iter()
            .map(|m| group::DescribedMember {
                member_id: m.id,
                client_id: m.client_id,
                client_host: m.client_host,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

pub(super) fn described_group(d: group::Described, version: i16) -> DescribedGroup {
    let members = d
        .members
        .into_iter()
        .map(|m| {
            let dm = DescribedGroupMember::default()
                .with_member_id(sb(&m.member_id))
                .with_client_id(sb(&m.client_id))
                .with_client_host(sb(&m.client_host))
                .with_member_metadata(m.metadata)
                .with_member_assignment(m.assignment);
            if version >= 4 {
                dm.with_group_instance_id(m.instance_id.map(|i| sb(&i)))
            } else {
                dm
            }
        })
        .collect();
    let g = DescribedGroup::default()
        .with_error_code(d.error.code())
        .with_group_id(GroupId(sb(&d.group)))
        .with_group_state(sb(&d.state))
        .with_protocol_type(sb(&d.protocol_type))
        .with_protocol_data(sb(&d.protocol))
        .with_members(members);
    if version >= 6 && d.error == ErrorCode::GroupIdNotFound {
        g.with_error_message(Some(sb("the group does not exist")))
    } else {
        g
    }
}
