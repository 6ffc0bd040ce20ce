//! SyncGroup: the leader's assignment to every member.

use super::*;

// --- SyncGroup ---

pub async fn sync_group(
    ctx: &Context,
    az: &Authz<'_>,
    req: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let group = req.group_id.to_string();
    let r = SyncRequest {
        member_id: req.member_id.to_string(),
        generation: req.generation_id,
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        protocol_type: req.protocol_type.map(|s| s.to_string()),
        protocol_name: req.protocol_name.map(|s| s.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let msg = gm::Sync {
        group: group.clone(),
        request: r,
    };
    let res = on_group_as(ctx, az, READ, &group, msg)
        .await
        .unwrap_or_else(SyncResult::error);
    sync_response(res, version)
}

pub(super) fn sync_response(r: SyncResult, version: i16) -> SyncGroupResponse {
    let resp = SyncGroupResponse::default()
        .with_error_code(r.error.code())
        .with_assignment(r.assignment);
    if version >= 5 {
        resp.with_protocol_type(r.protocol_type.map(|s| sb(&s)))
            .with_protocol_name(r.protocol_name.map(|s| sb(&s)))
    } else {
        resp
    }
}
