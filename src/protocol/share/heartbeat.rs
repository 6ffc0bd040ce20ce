//! ShareGroupHeartbeat: join (epoch 0), keep alive, learn the assignment, leave (-1).

use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse};

use super::sb;
use crate::coordinator::group::owner_shard;
use crate::coordinator::share::messages as sm;
use crate::coordinator::share::HeartbeatRequest;
use crate::kafka::{ErrorCode, KafkaError};
use crate::protocol::authorized::{Authz, DESCRIBE, READ};
use crate::protocol::context::Client;
use crate::protocol::context::Context;

pub async fn handle(
    ctx: &Context,
    az: &Authz<'_>,
    req: ShareGroupHeartbeatRequest,
    _version: i16,
    client: Client,
) -> ShareGroupHeartbeatResponse {
    let group = req.group_id.to_string();
    let denied = az.group(&group, READ).err().or_else(|| {
        let names = req.subscribed_topic_names.iter().flatten();
        names.map(|t| az.topic(t, DESCRIBE)).find_map(Result::err)
    });
    if let Some(e) = denied {
        return ShareGroupHeartbeatResponse::default()
            .with_error_code(e.wire_code())
            .with_error_message(Some(sb(&e.message)));
    }
    let r = HeartbeatRequest {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack_id: req.rack_id.map(|s| s.to_string()),
        subscribed: req
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.to_string()).collect()),
        client_id: client.id,
        client_host: client.host,
    };
    let owner = owner_shard(&group, ctx.shards());
    let msg = sm::Heartbeat { group, request: r };
    let res = ctx.mesh.call(owner, msg).await.unwrap_or_else(|_| {
        Err(KafkaError::new(
            ErrorCode::NotCoordinator,
            "the group's coordinator is shutting down",
        ))
    });
    match res {
        Ok(r) => ShareGroupHeartbeatResponse::default()
            .with_member_id(Some(sb(&r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(r.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(t, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(t)
                                .with_partitions(ps)
                        })
                        .collect(),
                )
            })),
        Err(e) => ShareGroupHeartbeatResponse::default()
            .with_error_code(e.wire_code())
            .with_error_message(Some(sb(&e.message))),
    }
}
