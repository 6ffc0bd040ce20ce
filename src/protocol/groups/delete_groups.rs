//! DeleteGroups: only empty groups go.

use super::*;

pub async fn delete_groups(
    ctx: &Context,
    req: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let work = req.groups_names.into_iter().map(|g| {
        let id = g.to_string();
        async move {
            let owner = group::owner_shard(&id, ctx.shards());
            let msg = gm::DeleteGroup { group: id.clone() };
            let code = ctx
                .mesh
                .call(owner, msg)
                .await
                .unwrap_or_else(coordinator_gone);
            DeletableGroupResult::default()
                .with_group_id(GroupId(sb(&id)))
                .with_error_code(code.code())
        }
    });
    DeleteGroupsResponse::default().with_results(join_all(work).await)
}
