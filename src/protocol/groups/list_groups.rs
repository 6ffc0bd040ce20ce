//! ListGroups, with the state and type filters (KIP-518, KIP-848).

use super::*;

/// ListGroups shows every group to a principal that may DESCRIBE the cluster, else
/// the groups it may DESCRIBE (Kafka's rule).
pub async fn list_groups(
    ctx: &Context,
    az: &Authz<'_>,
    req: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let mut all = Vec::new();
    let mut code = ErrorCode::None;
    for r in ctx.mesh.call_all(gm::List {}).await {
        match r {
            Ok(Ok(l)) => all.extend(l),
            Ok(Err(c)) => code = c,
            Err(_) => code = ErrorCode::CoordinatorNotAvailable,
        }
    }
    for r in ctx
        .mesh
        .call_all(crate::coordinator::share::messages::List {})
        .await
    {
        match r {
            // Kafka lists a share group with protocol type "share" (ListGroups v0+).
            Ok(l) => all.extend(l.into_iter().map(|d| group::Listed {
                group: d.group,
                protocol_type: "share".to_string(),
                state: d.state.to_string(),
                group_type: "share".to_string(),
            })),
            Err(_) => code = ErrorCode::CoordinatorNotAvailable,
        }
    }
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let every = az.cluster(DESCRIBE).is_ok();
    let groups = all
        .into_iter()
        .filter(|l| every || az.group(&l.group, DESCRIBE).is_ok())
        .filter(|l| states.is_empty() || states.contains(&l.state.to_lowercase()))
        .filter(|l| types.is_empty() || types.contains(&l.group_type))
        .map(|l| {
            let mut g = ListedGroup::default()
                .with_group_id(GroupId(sb(&l.group)))
                .with_protocol_type(sb(&l.protocol_type));
            if version >= 4 {
                g = g.with_group_state(sb(&l.state));
            }
            if version >= 5 {
                g = g.with_group_type(sb(&l.group_type));
            }
            g
        })
        .collect();
    ListGroupsResponse::default()
        .with_error_code(code.code())
        .with_groups(groups)
}
