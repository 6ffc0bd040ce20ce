//! What other shards may ask of the share group coordinator, answered on the group's
//! owner shard. A message for a group this shard does not own is answered
//! NOT_COORDINATOR.

use std::rc::Rc;

use super::configs::Overrides;
use super::{Coordinator, Described, HeartbeatRequest, HeartbeatResult};
use crate::kafka::{ErrorCode, KafkaError};
use crate::partition::share::ShareConfig;
use crate::runtime::Message;

fn not_coordinator(group: &str) -> KafkaError {
    KafkaError::new(
        ErrorCode::NotCoordinator,
        format!("this shard does not coordinate share group {group}"),
    )
}

/// ShareGroupHeartbeat.
pub struct Heartbeat {
    pub group: String,
    pub request: HeartbeatRequest,
}

impl Message for Heartbeat {
    type Service = Coordinator;
    type Reply = Result<HeartbeatResult, KafkaError>;
    const NAME: &'static str = "share.heartbeat";

    async fn handle(self, c: Rc<Coordinator>) -> Self::Reply {
        if !c.owns(&self.group) {
            return Err(not_coordinator(&self.group));
        }
        c.heartbeat(&self.group, self.request)
    }
}

/// The resolved configs of a group, for the owners of its partitions.
pub struct GetShareConfig {
    pub group: String,
}

impl Message for GetShareConfig {
    type Service = Coordinator;
    type Reply = ShareConfig;
    const NAME: &'static str = "share.get_config";

    async fn handle(self, c: Rc<Coordinator>) -> Self::Reply {
        c.share_config(&self.group)
    }
}

/// DescribeConfigs of resource type GROUP: the overrides.
pub struct GetOverrides {
    pub group: String,
}

impl Message for GetOverrides {
    type Service = Coordinator;
    type Reply = Overrides;
    const NAME: &'static str = "share.get_overrides";

    async fn handle(self, c: Rc<Coordinator>) -> Self::Reply {
        c.overrides(&self.group)
    }
}

/// IncrementalAlterConfigs of resource type GROUP: the new overrides, validated.
pub struct SetOverrides {
    pub group: String,
    pub overrides: Overrides,
}

impl Message for SetOverrides {
    type Service = Coordinator;
    type Reply = Result<(), KafkaError>;
    const NAME: &'static str = "share.set_overrides";

    async fn handle(self, c: Rc<Coordinator>) -> Self::Reply {
        if !c.owns(&self.group) {
            return Err(not_coordinator(&self.group));
        }
        c.set_overrides(&self.group, self.overrides).await
    }
}

/// ShareGroupDescribe / DescribeGroups of one group (None: no such share group).
pub struct Describe {
    pub group: String,
}

impl Message for Describe {
    type Service = Coordinator;
    type Reply = Option<Described>;
    const NAME: &'static str = "share.describe";

    async fn handle(self, c: Rc<Coordinator>) -> Self::Reply {
        c.describe(&self.group)
    }
}

/// ListGroups: the share groups of this shard.
#[derive(Clone)]
pub struct List;

impl Message for List {
    type Service = Coordinator;
    type Reply = Vec<Described>;
    const NAME: &'static str = "share.list";

    async fn handle(self, c: Rc<Coordinator>) -> Self::Reply {
        c.list()
    }
}

/// DeleteGroups of a share group.
pub struct Delete {
    pub group: String,
}

impl Message for Delete {
    type Service = Coordinator;
    type Reply = ErrorCode;
    const NAME: &'static str = "share.delete";

    async fn handle(self, c: Rc<Coordinator>) -> Self::Reply {
        c.delete(&self.group).await
    }
}
