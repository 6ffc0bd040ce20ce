//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (resource
//! type 2); the broker (type 4) is described read-only: its settings are static.
//! DescribeClientQuotas and AlterClientQuotas for the client-id byte-rate quotas.

mod alter_client_quotas;
mod alter_configs;
mod describe_client_quotas;
mod describe_configs;
mod group_configs;
mod incremental_alter_configs;

use crate::cluster::quotas::PRODUCER_BYTE_RATE;
use crate::cluster::Change;
use crate::cluster::TopicConfigDefaults;
use crate::kafka::{ErrorCode, KafkaError};
use crate::protocol::admin::{SOURCE_DEFAULT, SOURCE_TOPIC};
use crate::protocol::authorized::{Authz, ALTER_CONFIGS, DESCRIBE_CONFIGS};
use crate::protocol::context::Context;
use crate::protocol::metadata::NODE_ID;
pub use alter_client_quotas::alter_client_quotas;
pub use alter_configs::alter_configs;
pub use describe_client_quotas::describe_client_quotas;
pub use describe_configs::describe_configs;
pub use incremental_alter_configs::incremental_alter_configs;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

const RESOURCE_TOPIC: i8 = 2;

const RESOURCE_BROKER: i8 = 4;

const SOURCE_STATIC_BROKER: i8 = 4;

/// Whether the principal may do `operation` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on a
/// config resource: a topic's configs are the topic's, a group's the group's, the
/// broker's the cluster's (Kafka's rule).
fn authorize_resource(
    az: &Authz<'_>,
    resource_type: i8,
    name: &str,
    operation: i8,
) -> Result<(), KafkaError> {
    match resource_type {
        RESOURCE_TOPIC => az.topic(name, operation),
        t if group_configs::is_group(t) => az.group(name, operation),
        _ => az.cluster(operation),
    }
}

/// One resource's change, or why it cannot be made.
fn topic_change(
    resource_type: i8,
    name: &StrBytes,
    set: Result<BTreeMap<String, Option<String>>, KafkaError>,
    incremental: bool,
) -> Result<Change, KafkaError> {
    match resource_type {
        RESOURCE_TOPIC => Ok(Change::AlterConfigs {
            name: name.to_string(),
            set: set?,
            incremental,
        }),
        RESOURCE_BROKER => Err(KafkaError::new(
            ErrorCode::InvalidRequest,
            "broker configs are static: set them on the command line or in the config file",
        )),
        t => Err(KafkaError::new(
            ErrorCode::InvalidRequest,
            format!("resource type {t} is not supported"),
        )),
    }
}

/// Apply planned changes; results in input order (planning errors kept in place).
async fn apply(
    ctx: &Context,
    planned: Vec<Result<Change, KafkaError>>,
    validate_only: bool,
) -> Vec<Result<(), KafkaError>> {
    let outcomes = ctx.cluster.change_planned(planned, validate_only).await;
    outcomes.into_iter().map(|r| r.map(|_| ())).collect()
}
