//! What other shards may ask of the share group coordinator, answered on the group's
//! owner shard. A message for a group this shard does not own is answered
//! NOT_COORDINATOR.

use super::configs::Overrides;
use super::{Coordinator, Described, HeartbeatRequest, HeartbeatResult};
use crate::kafka::{ErrorCode, KafkaError};
use crate::partition::share::ShareConfig;

fn not_coordinator(group: &str) -> KafkaError {
    KafkaError::new(
        ErrorCode::NotCoordinator,
        format!("this shard does not coordinate share group {group}"),
    )
}

macro_rules! share_message {
    ($($t:tt)*) => { crate::message! { Coordinator; $($t)* } };
}

share_message! {
    /// ShareGroupHeartbeat.
    Heartbeat { group: String, request: HeartbeatRequest } -> Result<HeartbeatResult, KafkaError>,
    "share.heartbeat", |c, m| {
        if !c.owns(&m.group) {
            return Err(not_coordinator(&m.group));
        }
        c.heartbeat(&m.group, m.request)
    }
}

share_message! {
    /// The resolved configs of a group, for the owners of its partitions.
    GetShareConfig { group: String } -> ShareConfig, "share.get_config",
    |c, m| c.share_config(&m.group)
}

share_message! {
    /// DescribeConfigs of resource type GROUP: the overrides.
    GetOverrides { group: String } -> Overrides, "share.get_overrides",
    |c, m| c.overrides(&m.group)
}

share_message! {
    /// IncrementalAlterConfigs of resource type GROUP: the new overrides, validated.
    SetOverrides { group: String, overrides: Overrides } -> Result<(), KafkaError>,
    "share.set_overrides", |c, m| {
        if !c.owns(&m.group) {
            return Err(not_coordinator(&m.group));
        }
        c.set_overrides(&m.group, m.overrides).await
    }
}

share_message! {
    /// ShareGroupDescribe / DescribeGroups of one group (None: no such share group).
    Describe { group: String } -> Option<Described>, "share.describe",
    |c, m| c.describe(&m.group)
}

share_message! {
    /// ListGroups: the share groups of this shard.
    List {} -> Vec<Described>, "share.list", |c, _m| c.list()
}

share_message! {
    /// DeleteGroups of a share group.
    Delete { group: String } -> ErrorCode, "share.delete", |c, m| c.delete(&m.group).await
}
