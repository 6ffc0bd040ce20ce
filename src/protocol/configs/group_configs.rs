//! Group configs (KIP-932 share groups, KIP-1191 dead-letter topics) through
//! DescribeConfigs / IncrementalAlterConfigs with resource type GROUP. Kafka's wire value
//! is 32; librdkafka sends its own enum value 3 for GROUP, so both are read as GROUP.
//! The overrides live with the group's coordinator (`coordinator::share::configs`).

use super::*;
use crate::coordinator::group::owner_shard;
use crate::coordinator::share::configs::{self as gc, Overrides};
use crate::coordinator::share::messages as sm;

/// Kafka's ConfigSource GROUP_CONFIG.
const SOURCE_GROUP: i8 = 8;

pub fn is_group(resource_type: i8) -> bool {
    resource_type == 32 || resource_type == 3
}

fn gone() -> KafkaError {
    KafkaError::new(
        ErrorCode::NotCoordinator,
        "the group's coordinator is shutting down",
    )
}

async fn overrides(ctx: &Context, group: &str) -> Result<Overrides, KafkaError> {
    let owner = owner_shard(group, ctx.shards());
    let msg = sm::GetOverrides {
        group: group.to_string(),
    };
    ctx.mesh.call(owner, msg).await.map_err(|_| gone())
}

/// Every group config with its value for `group` (DescribeConfigs).
pub async fn describe(
    ctx: &Context,
    group: &str,
) -> Result<Vec<DescribeConfigsResourceResult>, KafkaError> {
    let o = overrides(ctx, group).await?;
    Ok(gc::DEFAULTS
        .iter()
        .map(|(name, _)| {
            let src = if o.contains_key(*name) {
                SOURCE_GROUP
            } else {
                SOURCE_DEFAULT
            };
            describe_configs::entry(name, gc::value(&o, name).to_string(), src, false)
        })
        .collect())
}

/// SET (0) and DELETE (1) on a group's overrides, each value validated first.
pub async fn alter(
    ctx: &Context,
    group: &str,
    ops: &[(String, i8, Option<String>)],
    validate_only: bool,
) -> Result<(), KafkaError> {
    let mut o = overrides(ctx, group).await?;
    for (name, op, value) in ops {
        match (op, value) {
            (0, Some(v)) => {
                gc::validate(name, v).map_err(|m| KafkaError::new(ErrorCode::InvalidConfig, m))?;
                o.insert(name.clone(), v.clone());
            }
            (0, None) => {
                return Err(KafkaError::new(
                    ErrorCode::InvalidConfig,
                    format!("{name}: no value to set"),
                ))
            }
            (1, _) => {
                gc::validate(name, gc::value(&Overrides::new(), name))
                    .map_err(|m| KafkaError::new(ErrorCode::InvalidConfig, m))?;
                o.remove(name);
            }
            (op, _) => {
                return Err(KafkaError::new(
                    ErrorCode::InvalidConfig,
                    format!("config operation {op} does not apply to group config {name}"),
                ))
            }
        }
    }
    if validate_only {
        return Ok(());
    }
    let owner = owner_shard(group, ctx.shards());
    let msg = sm::SetOverrides {
        group: group.to_string(),
        overrides: o,
    };
    ctx.mesh.call(owner, msg).await.map_err(|_| gone())?
}
