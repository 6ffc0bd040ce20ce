//! Heartbeat (classic protocol).

use super::*;

// --- Heartbeat and LeaveGroup ---

pub async fn heartbeat(
    ctx: &Context,
    az: &Authz<'_>,
    req: HeartbeatRequest,
    _version: i16,
) -> HeartbeatResponse {
    let group = req.group_id.to_string();
    if let Err(e) = az.group(&group, READ) {
        return HeartbeatResponse::default().with_error_code(e.code.code());
    }
    let member = req.member_id.to_string();
    let instance = req.group_instance_id.map(|s| s.to_string());
    let generation = req.generation_id;
    let msg = gm::Heartbeat {
        group: group.clone(),
        member_id: member,
        generation,
        instance_id: instance,
    };
    let owner = group::owner_shard(&group, ctx.shards());
    let code = ctx
        .mesh
        .call(owner, msg)
        .await
        .unwrap_or_else(coordinator_gone);
    HeartbeatResponse::default().with_error_code(code.code())
}
