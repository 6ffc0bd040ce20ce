//! Share group APIs (KIP-932), one file each: ShareGroupHeartbeat, ShareGroupDescribe,
//! ShareFetch (with share sessions), ShareAcknowledge and the share group offsets
//! (Describe/Alter/DeleteShareGroupOffsets). Membership goes to the group's owner shard
//! (`coordinator::share::messages`); records and acks go to the partitions' owners
//! (`partition::messages::Share*`).

mod acknowledge;
mod describe;
mod fetch;
mod heartbeat;
mod offsets;
pub mod session;

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::join_all;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::coordinator::group::owner_shard;
use crate::coordinator::share::messages as sm;
use crate::kafka::{ErrorCode, ShardId};
use crate::partition::messages as pm;
use crate::partition::share::{ShareAcks, ShareConfig, ShareRead};
use crate::protocol::context::Context;
use session::SessionPartition;

pub use acknowledge::handle as share_acknowledge;
pub use describe::handle as share_group_describe;
pub use fetch::handle as share_fetch;
pub use heartbeat::handle as share_group_heartbeat;
pub use offsets::describe as describe_share_group_offsets;
pub use offsets::{alter as alter_share_group_offsets, delete as delete_share_group_offsets};

/// (group, member).
pub type SessionKey = (String, String);

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The group's configs: cached on the member's session, else from the coordinator.
async fn config_for(ctx: &Context, key: &SessionKey) -> ShareConfig {
    if let Some(c) = ctx.share_sessions.cached_config(key) {
        return c;
    }
    let owner = owner_shard(&key.0, ctx.shards());
    let msg = sm::GetShareConfig {
        group: key.0.clone(),
    };
    let c = ctx.mesh.call(owner, msg).await.unwrap_or_default();
    ctx.share_sessions.cache_config(key, c.clone());
    c
}

fn owner_of(ctx: &Context, topic: &str, partition: i32) -> Option<ShardId> {
    ctx.cluster.registry().topic(topic)?.owner(partition)
}

/// Send each partition's acks to its owner (one message per owner); per partition the
/// answer (NONE once durable).
async fn ack_on_owners(
    ctx: &Context,
    group: &Arc<str>,
    member: &Arc<str>,
    config: &ShareConfig,
    acks: Vec<(SessionPartition, ShareAcks)>,
) -> Vec<((Uuid, i32), ErrorCode)> {
    let mut out = Vec::new();
    let mut by_owner: HashMap<usize, Vec<(SessionPartition, ShareAcks)>> = HashMap::new();
    for (sp, a) in acks {
        match owner_of(ctx, &sp.1, sp.2) {
            Some(s) => by_owner.entry(s.0).or_default().push((sp, a)),
            None => out.push(((sp.0, sp.2), ErrorCode::UnknownTopicOrPartition)),
        }
    }
    let calls = by_owner.into_iter().map(|(shard, list)| async move {
        let keys: Vec<(Uuid, i32)> = list.iter().map(|(sp, _)| (sp.0, sp.2)).collect();
        let msg = pm::ShareAck {
            group: group.clone(),
            member: member.clone(),
            config: config.clone(),
            acks: list.into_iter().map(|(_, a)| a).collect(),
        };
        let codes = match ctx.mesh.call(ShardId(shard), msg).await {
            Ok(c) => c,
            Err(_) => vec![ErrorCode::NotLeaderOrFollower; keys.len()],
        };
        keys.into_iter().zip(codes).collect::<Vec<_>>()
    });
    for r in join_all(calls).await {
        out.extend(r);
    }
    out
}

/// The member's session closed: its records on these partitions go back.
async fn release_on_owners(
    ctx: &Context,
    group: &Arc<str>,
    member: &Arc<str>,
    config: &ShareConfig,
    parts: &[SessionPartition],
) {
    let mut by_owner: HashMap<usize, Vec<ShareRead>> = HashMap::new();
    for sp in parts {
        if let Some(s) = owner_of(ctx, &sp.1, sp.2) {
            by_owner.entry(s.0).or_default().push(ShareRead {
                topic: sp.1.clone(),
                partition: sp.2,
                delay_ms: 0,
            });
        }
    }
    let calls = by_owner.into_iter().map(|(shard, reads)| {
        let msg = pm::ShareRelease {
            group: group.clone(),
            member: member.clone(),
            config: config.clone(),
            reads,
        };
        ctx.mesh.call(ShardId(shard), msg)
    });
    join_all(calls).await;
}
