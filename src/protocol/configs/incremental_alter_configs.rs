//! IncrementalAlterConfigs: SET and DELETE on a topic's overrides.

use super::*;

pub async fn incremental_alter_configs(
    ctx: &Context,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let planned = req
        .resources
        .iter()
        .map(|r| {
            let set = r
                .configs
                .iter()
                .map(|c| match c.config_operation {
                    0 => Ok((c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))),
                    1 => Ok((c.name.to_string(), None)),
                    op => Err(KafkaError::new(
                        ErrorCode::InvalidConfig,
                        format!("config operation {op} (APPEND/SUBTRACT) does not apply to {}: no list-valued topic configs are supported", c.name.as_str()),
                    )),
                })
                .collect::<Result<BTreeMap<_, _>, _>>();
            topic_change(r.resource_type, &r.resource_name, set, true)
        })
        .collect();
    let mut outcomes = apply(ctx, planned, req.validate_only).await;
    for (i, r) in req.resources.iter().enumerate() {
        if group_configs::is_group(r.resource_type) {
            let ops: Vec<(String, i8, Option<String>)> = r
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect();
            outcomes[i] =
                group_configs::alter(ctx, r.resource_name.as_str(), &ops, req.validate_only).await;
        }
    }
    let responses = req
        .resources
        .into_iter()
        .zip(outcomes)
        .map(|(r, o)| {
            let res = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
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
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
