//! What other shards may ask of the group coordinator: every group operation that
//! crosses cores is one of these messages, answered on the group's owner shard
//! (`owner_shard`). A message for a group this shard does not own is answered
//! NOT_COORDINATOR (the client looks the coordinator up again).

use super::classic::{JoinRequest, JoinResult, SyncRequest, SyncResult};
use super::consumer::{HeartbeatRequest, HeartbeatResult};
use super::{
    CommitRequest, ConsumerDescribed, Coordinator, Described, FetchedTopics, Listed, TopicCodes,
};
use crate::kafka::{ErrorCode, KafkaError};

/// Which offsets an OffsetFetch asks for: None is every committed offset of the group.
pub type FetchAsk = Option<Vec<(String, Vec<i32>)>>;

fn owned(c: &Coordinator, group: &str) -> Result<(), ErrorCode> {
    if c.owns(group) {
        Ok(())
    } else {
        Err(ErrorCode::NotCoordinator)
    }
}

macro_rules! group_message {
    ($($t:tt)*) => { crate::message! { Coordinator; $($t)* } };
}

group_message! {
    /// JoinGroup (classic protocol); resolves when the join phase ends.
    Join { group: String, request: JoinRequest } -> Result<JoinResult, ErrorCode>,
    "group.join", |c, m| {
        owned(&c, &m.group)?;
        let rx = c.join(&m.group, m.request);
        Ok(rx
            .await
            .unwrap_or_else(|_| JoinResult::error(ErrorCode::UnknownMemberId, "")))
    }
}

group_message! {
    /// SyncGroup (classic protocol); resolves when the leader's assignment is in.
    Sync { group: String, request: SyncRequest } -> Result<SyncResult, ErrorCode>,
    "group.sync", |c, m| {
        owned(&c, &m.group)?;
        let rx = c.sync(&m.group, m.request);
        Ok(rx
            .await
            .unwrap_or_else(|_| SyncResult::error(ErrorCode::UnknownMemberId)))
    }
}

group_message! {
    /// Heartbeat (classic protocol).
    Heartbeat {
        group: String,
        member_id: String,
        generation: i32,
        instance_id: Option<String>,
    } -> ErrorCode,
    "group.heartbeat", |c, m| {
        if let Err(code) = owned(&c, &m.group) {
            return code;
        }
        c.heartbeat(&m.group, &m.member_id, m.generation, m.instance_id.as_deref())
    }
}

group_message! {
    /// LeaveGroup: one code per member, or a group-level error.
    Leave { group: String, members: Vec<(String, Option<String>)> }
        -> Result<Vec<ErrorCode>, ErrorCode>,
    "group.leave", |c, m| {
        owned(&c, &m.group)?;
        c.leave(&m.group, &m.members)
    }
}

group_message! {
    /// OffsetCommit, checked against the group's membership, durable when answered.
    Commit { request: CommitRequest } -> Result<TopicCodes, ErrorCode>,
    "group.commit", |c, m| {
        owned(&c, &m.request.group)?;
        let reg = c.registry();
        c.commit(&reg, m.request).await
    }
}

group_message! {
    /// The offsets of a committed transaction (checked when TxnOffsetCommit arrived).
    CommitTxnOffsets { request: CommitRequest } -> Result<TopicCodes, ErrorCode>,
    "group.commit_txn_offsets", |c, m| {
        owned(&c, &m.request.group)?;
        let reg = c.registry();
        c.commit_unchecked(&reg, m.request).await
    }
}

group_message! {
    /// OffsetFetch of one group; `member` (KIP-848, v9+) is checked in consumer groups.
    FetchOffsets { group: String, member: Option<(String, i32)>, topics: FetchAsk }
        -> Result<FetchedTopics, ErrorCode>,
    "group.fetch_offsets", |c, m| {
        owned(&c, &m.group)?;
        let member = m.member.as_ref().map(|(id, e)| (id.as_str(), *e));
        c.fetch(&m.group, member, m.topics)
    }
}

group_message! {
    /// DescribeGroups of one group.
    Describe { group: String } -> Result<Described, ErrorCode>,
    "group.describe", |c, m| {
        owned(&c, &m.group)?;
        Ok(c.describe(&m.group))
    }
}

group_message! {
    /// ListGroups: the groups this shard coordinates (sent to every shard).
    List {} -> Result<Vec<Listed>, ErrorCode>,
    "group.list", |c, _m| c.list()
}

group_message! {
    /// DeleteGroups of one group: only an empty group can go.
    DeleteGroup { group: String } -> ErrorCode,
    "group.delete", |c, m| {
        if let Err(code) = owned(&c, &m.group) {
            return code;
        }
        c.delete_group(&m.group).await
    }
}

group_message! {
    /// OffsetDelete: committed offsets of partitions no member subscribes to.
    DeleteOffsets { group: String, topics: Vec<(String, Vec<i32>)> }
        -> Result<TopicCodes, ErrorCode>,
    "group.delete_offsets", |c, m| {
        owned(&c, &m.group)?;
        c.delete_offsets(&m.group, m.topics).await
    }
}

group_message! {
    /// ConsumerGroupHeartbeat (KIP-848).
    ConsumerHeartbeat { group: String, request: HeartbeatRequest }
        -> Result<HeartbeatResult, KafkaError>,
    "group.consumer_heartbeat", |c, m| {
        owned(&c, &m.group).map_err(|code| KafkaError::new(code, "not the group's coordinator"))?;
        let reg = c.registry();
        c.consumer_heartbeat(&reg, &m.group, m.request)
    }
}

group_message! {
    /// ConsumerGroupDescribe (KIP-848) of one group.
    ConsumerDescribe { group: String } -> Result<ConsumerDescribed, ErrorCode>,
    "group.consumer_describe", |c, m| {
        owned(&c, &m.group)?;
        let reg = c.registry();
        Ok(c.consumer_describe(&reg, &m.group))
    }
}

group_message! {
    /// TxnOffsetCommit (KIP-447, v3): is the member allowed to commit for the group? The
    /// offsets themselves stay with the transaction until it commits.
    ValidateCommit { request: CommitRequest } -> Result<(), ErrorCode>,
    "group.validate_commit", |c, m| {
        owned(&c, &m.request.group)?;
        c.validate_commit(&m.request)
    }
}
