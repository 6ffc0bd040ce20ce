//! Consumer group APIs, one file each: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups, OffsetDelete,
//! ConsumerGroupHeartbeat and ConsumerGroupDescribe.
//!
//! Each request goes to the owner shard of its group (`group::owner_shard`) as a message
//! of `coordinator::group::messages`, and the answer comes back as plain data, turned
//! into the response of the request's version here. Fields a version lacks are set only
//! for versions that have them (the encoder refuses a non-default value in a version
//! without the field).

mod consumer_group_describe;
mod consumer_group_heartbeat;
mod delete_groups;
mod describe_groups;
mod heartbeat;
mod join_group;
mod leave_group;
mod list_groups;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod sync_group;

use crate::coordinator::group::classic::{JoinRequest, JoinResult, SyncRequest, SyncResult};
use crate::coordinator::group::messages::{self as gm, FetchAsk};
use crate::coordinator::group::{
    self, consumer, CommitPartition, CommitRequest, FetchedTopics, TopicCodes,
};
use crate::coordinator::txn::messages::PendingOffsets;
use crate::kafka::{ErrorCode, KafkaError};
use crate::protocol::authorized::{Authz, DELETE, DESCRIBE, READ};
use crate::protocol::context::Client;
use crate::protocol::context::Context;
use crate::protocol::route::coordinator_gone;
use crate::runtime::Message;
pub use consumer_group_describe::consumer_group_describe;
pub use consumer_group_heartbeat::consumer_group_heartbeat;
pub use delete_groups::delete_groups;
pub use describe_groups::describe_groups;
use futures_util::future::join_all;
pub use heartbeat::heartbeat;
pub use join_group::join_group;
use kafka_protocol::messages::consumer_group_describe_response as cgd;
use kafka_protocol::messages::consumer_group_heartbeat_response as cgh;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
pub use leave_group::leave_group;
pub use list_groups::list_groups;
pub use offset_commit::offset_commit;
pub use offset_delete::offset_delete;
pub use offset_fetch::offset_fetch;
pub use sync_group::sync_group;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Send `msg` to the coordinator of `group`; a shard shutting down answers
/// NOT_COORDINATOR, so the client looks for the coordinator again.
async fn on_group<M, T>(ctx: &Context, group: &str, msg: M) -> Result<T, ErrorCode>
where
    M: Message<Reply = Result<T, ErrorCode>>,
{
    let owner = group::owner_shard(group, ctx.shards());
    ctx.mesh.call(owner, msg).await.map_err(coordinator_gone)?
}

/// `on_group` once the principal may do `operation` on the group (else
/// GROUP_AUTHORIZATION_FAILED).
async fn on_group_as<M, T>(
    ctx: &Context,
    az: &Authz<'_>,
    operation: i8,
    group: &str,
    msg: M,
) -> Result<T, ErrorCode>
where
    M: Message<Reply = Result<T, ErrorCode>>,
{
    az.group(group, operation).map_err(|e| e.code)?;
    on_group(ctx, group, msg).await
}

/// The commit's topics split into those the principal may READ and the codes of the
/// rest (TOPIC_AUTHORIZATION_FAILED on each partition), as Kafka's OffsetCommit and
/// TxnOffsetCommit answer them.
pub(crate) fn readable_topics(
    az: &Authz<'_>,
    topics: Vec<(String, Vec<CommitPartition>)>,
) -> (Vec<(String, Vec<CommitPartition>)>, TopicCodes) {
    let (ok, denied): (Vec<_>, Vec<_>) = topics
        .into_iter()
        .partition(|(t, _)| az.topic(t, READ).is_ok());
    let code = ErrorCode::TopicAuthorizationFailed;
    let codes = denied
        .into_iter()
        .map(|(t, ps)| (t, ps.into_iter().map(|p| (p.partition, code)).collect()))
        .collect();
    (ok, codes)
}

/// The topics of an OffsetCommit or TxnOffsetCommit request (the same fields in two
/// generated types) as `CommitPartition`s; the leader epoch only when `$with_epoch`.
macro_rules! commit_topics {
    ($topics:expr, $with_epoch:expr) => {
        $topics
            .iter()
            .map(|t| {
                let parts = t
                    .partitions
                    .iter()
                    .map(|p| crate::coordinator::group::CommitPartition {
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: if $with_epoch {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    })
                    .collect::<Vec<_>>();
                (t.name.to_string(), parts)
            })
            .collect::<Vec<(String, Vec<crate::coordinator::group::CommitPartition>)>>()
    };
}
pub(crate) use commit_topics;

/// The codes of a commit, or its one error on every partition asked.
pub(super) fn codes_or_error(
    res: Result<TopicCodes, ErrorCode>,
    asked: Vec<(String, Vec<CommitPartition>)>,
) -> TopicCodes {
    res.unwrap_or_else(|code| {
        asked
            .into_iter()
            .map(|(t, ps)| (t, ps.into_iter().map(|p| (p.partition, code)).collect()))
            .collect()
    })
}

#[cfg(test)]
mod tests;
