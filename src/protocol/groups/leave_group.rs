//! LeaveGroup: one member (v0-v2) or a batch of members (v3+, KIP-345).

use super::*;

pub async fn leave_group(
    ctx: &Context,
    az: &Authz<'_>,
    req: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group = req.group_id.to_string();
    let who: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let msg = gm::Leave {
        group: group.clone(),
        members: who.clone(),
    };
    let res = on_group_as(ctx, az, READ, &group, msg).await;
    match res {
        Err(code) => LeaveGroupResponse::default().with_error_code(code.code()),
        Ok(codes) if version >= 3 => LeaveGroupResponse::default().with_members(
            who.into_iter()
                .zip(codes)
                .map(|((id, inst), code)| {
                    MemberResponse::default()
                        .with_member_id(sb(&id))
                        .with_group_instance_id(inst.map(|i| sb(&i)))
                        .with_error_code(code.code())
                })
                .collect(),
        ),
        Ok(codes) => LeaveGroupResponse::default()
            .with_error_code((codes.first().copied().unwrap_or(ErrorCode::None)).code()),
    }
}
