//! ConsumerGroupHeartbeat (KIP-848): membership, server-side assignment, reconciliation.

use super::*;

// --- KIP-848 ---

pub async fn consumer_group_heartbeat(
    ctx: &Context,
    az: &Authz<'_>,
    req: ConsumerGroupHeartbeatRequest,
    version: i16,
    client: Client,
) -> ConsumerGroupHeartbeatResponse {
    let group = req.group_id.to_string();
    let denied = az.group(&group, READ).err().or_else(|| {
        let names = req.subscribed_topic_names.iter().flatten();
        names.map(|t| az.topic(t, DESCRIBE)).find_map(Result::err)
    });
    if let Some(e) = denied {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.wire_code())
            .with_error_message(Some(sb(&e.message)));
    }
    let mut member_id = req.member_id.to_string();
    if version == 0 && member_id.is_empty() && req.member_epoch == 0 {
        // v0: the coordinator names new members (v1 clients name themselves, KIP-1082).
        member_id = uuid::Uuid::new_v4().to_string();
    }
    let r = consumer::HeartbeatRequest {
        member_id,
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed: req
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.to_string()).collect()),
        regex: req.subscribed_topic_regex.map(|s| s.to_string()),
        assignor: req.server_assignor.map(|s| s.to_string()),
        owned: req.topic_partitions.map(|tps| {
            tps.into_iter()
                .flat_map(|t| {
                    let id = t.topic_id;
                    t.partitions.into_iter().map(move |p| (id, p))
                })
                .collect()
        }),
        client_id: client.id,
        client_host: client.host,
    };
    let owner = group::owner_shard(&group, ctx.shards());
    let msg = gm::ConsumerHeartbeat {
        group: group.clone(),
        request: r,
    };
    let res = ctx.mesh.call(owner, msg).await.unwrap_or_else(|e| {
        Err(KafkaError::new(
            coordinator_gone(e),
            "the group's coordinator is shutting down",
        ))
    });
    match res {
        Ok(r) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(sb(&r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(r.assignment.map(|a| {
                cgh::Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(t, ps)| {
                            cgh::TopicPartitions::default()
                                .with_topic_id(t)
                                .with_partitions(ps)
                        })
                        .collect(),
                )
            })),
        Err(e) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.wire_code())
            .with_error_message(Some(sb(&e.message))),
    }
}
