//! DeleteGroups: only empty groups go.

use super::*;

pub async fn delete_groups(
    ctx: &Context,
    az: &Authz<'_>,
    req: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let work = req.groups_names.into_iter().map(|g| {
        let id = g.to_string();
        async move {
            if let Err(e) = az.group(&id, DELETE) {
                return DeletableGroupResult::default()
                    .with_group_id(GroupId(sb(&id)))
                    .with_error_code(e.code.code());
            }
            let owner = group::owner_shard(&id, ctx.shards());
            let msg = gm::DeleteGroup { group: id.clone() };
            let mut code = ctx
                .mesh
                .call(owner, msg)
                .await
                .unwrap_or_else(coordinator_gone);
            if code == ErrorCode::GroupIdNotFound {
                code = delete_share_group(ctx, &id).await;
            }
            DeletableGroupResult::default()
                .with_group_id(GroupId(sb(&id)))
                .with_error_code(code.code())
        }
    });
    DeleteGroupsResponse::default().with_results(join_all(work).await)
}

/// DeleteGroups of a share group: its membership and configs on the coordinator, then
/// its share partitions on every owner.
async fn delete_share_group(ctx: &Context, id: &str) -> ErrorCode {
    use crate::partition::messages::{ShareDescribe, ShareReset};
    let owner = group::owner_shard(id, ctx.shards());
    let msg = crate::coordinator::share::messages::Delete {
        group: id.to_string(),
    };
    let code = ctx
        .mesh
        .call(owner, msg)
        .await
        .unwrap_or(ErrorCode::NotCoordinator);
    if code != ErrorCode::None && code != ErrorCode::GroupIdNotFound {
        return code;
    }
    let ask = ShareDescribe {
        group: Some(id.to_string()),
    };
    let views: Vec<_> = ctx
        .mesh
        .call_all(ask)
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    let found = !views.is_empty();
    for v in views {
        let Some(shard) = ctx
            .cluster
            .registry()
            .topic(&v.topic)
            .and_then(|t| t.owner(v.partition))
        else {
            continue;
        };
        let reset = ShareReset {
            group: v.group.clone(),
            topic: v.topic.clone(),
            partition: v.partition,
            start: None,
        };
        if let Ok(Err(e)) = ctx.mesh.call(shard, reset).await {
            return e.code;
        }
    }
    if code == ErrorCode::GroupIdNotFound && found {
        ErrorCode::None
    } else {
        code
    }
}
