//! JoinGroup (classic protocol; KIP-394 member ids, KIP-345 static members).

use super::*;

// --- JoinGroup ---

pub async fn join_group(
    ctx: &Context,
    az: &Authz<'_>,
    req: JoinGroupRequest,
    version: i16,
    client: Client,
) -> JoinGroupResponse {
    let group = req.group_id.to_string();
    let r = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id: client.id,
        client_host: client.host,
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: it is the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let member = r.member_id.clone();
    let msg = gm::Join {
        group: group.clone(),
        request: r,
    };
    let res = on_group_as(ctx, az, READ, &group, msg)
        .await
        .unwrap_or_else(|code| JoinResult::error(code, &member));
    join_response(res, version)
}

pub(super) fn join_response(r: JoinResult, version: i16) -> JoinGroupResponse {
    let members = r
        .members
        .into_iter()
        .map(|m| {
            let jm = JoinGroupResponseMember::default()
                .with_member_id(sb(&m.member_id))
                .with_metadata(m.metadata);
            if version >= 5 {
                jm.with_group_instance_id(m.instance_id.map(|i| sb(&i)))
            } else {
                jm
            }
        })
        .collect();
    let mut resp = JoinGroupResponse::default()
        .with_error_code(r.error.code())
        .with_generation_id(r.generation)
        .with_leader(sb(&r.leader))
        .with_member_id(sb(&r.member_id))
        .with_members(members);
    resp = if version >= 7 {
        resp.with_protocol_type(r.protocol_type.map(|s| sb(&s)))
            .with_protocol_name(r.protocol_name.map(|s| sb(&s)))
    } else {
        resp.with_protocol_name(Some(sb(&r.protocol_name.unwrap_or_default())))
    };
    if version >= 9 {
        resp = resp.with_skip_assignment(r.skip_assignment);
    }
    resp
}
