//! IncrementalAlterConfigs: SET and DELETE on a topic's overrides; APPEND and SUBTRACT
//! on its list-valued ones (`cleanup.policy`), from the value it has now.

use super::*;
use crate::cluster::topic_config::{edit_list, is_list_config};

/// The value a topic's list config `key` has after APPEND (2) or SUBTRACT (3) of `items`:
/// its override, else its default, edited.
fn list_edit(
    ctx: &Context,
    topic: &str,
    key: &str,
    op: i8,
    items: &str,
) -> Result<String, KafkaError> {
    if !is_list_config(key) {
        return Err(KafkaError::new(
            ErrorCode::InvalidConfig,
            format!(
                "config operation {op} (APPEND/SUBTRACT) does not apply to {key}: it is not a list"
            ),
        ));
    }
    let reg = ctx.cluster.registry();
    let t = reg.topic(topic).ok_or_else(|| {
        KafkaError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("unknown topic {topic}"),
        )
    })?;
    let current = TopicConfigDefaults::describe(&t.log_config, &t.overrides)
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .unwrap_or_default();
    Ok(edit_list(&current, items, op == 3))
}

pub async fn incremental_alter_configs(
    ctx: &Context,
    az: &Authz<'_>,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let planned = req
        .resources
        .iter()
        .map(|r| {
            let name = r.resource_name.as_str();
            authorize_resource(az, r.resource_type, name, ALTER_CONFIGS)?;
            let set = r
                .configs
                .iter()
                .map(|c| match c.config_operation {
                    0 => Ok((c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))),
                    1 => Ok((c.name.to_string(), None)),
                    op @ (2 | 3) if r.resource_type == RESOURCE_TOPIC => {
                        let items = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                        let v =
                            list_edit(ctx, r.resource_name.as_str(), c.name.as_str(), op, &items)?;
                        Ok((c.name.to_string(), Some(v)))
                    }
                    op => Err(KafkaError::new(
                        ErrorCode::InvalidConfig,
                        format!(
                            "config operation {op} does not apply to {}",
                            c.name.as_str()
                        ),
                    )),
                })
                .collect::<Result<BTreeMap<_, _>, _>>();
            topic_change(r.resource_type, &r.resource_name, set, true)
        })
        .collect();
    let mut outcomes = apply(ctx, planned, req.validate_only).await;
    for (i, r) in req.resources.iter().enumerate() {
        let name = r.resource_name.as_str();
        let allowed = authorize_resource(az, r.resource_type, name, ALTER_CONFIGS).is_ok();
        if group_configs::is_group(r.resource_type) && allowed {
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
