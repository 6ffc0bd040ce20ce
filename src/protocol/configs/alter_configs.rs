//! AlterConfigs: replace a topic's overrides.

use super::*;

pub async fn alter_configs(
    ctx: &Context,
    az: &Authz<'_>,
    req: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    let planned = req
        .resources
        .iter()
        .map(|r| {
            let name = r.resource_name.as_str();
            authorize_resource(az, r.resource_type, name, ALTER_CONFIGS)?;
            let set = Ok(r
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), Some(v.to_string())))
                })
                .collect());
            topic_change(r.resource_type, &r.resource_name, set, false)
        })
        .collect();
    let outcomes = apply(ctx, planned, req.validate_only).await;
    let responses = req
        .resources
        .into_iter()
        .zip(outcomes)
        .map(|(r, o)| {
            let res = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            match o {
                Ok(()) => res,
                Err(e) => res
                    .with_error_code(e.wire_code())
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}
