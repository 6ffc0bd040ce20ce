//! ShareAcknowledge: the acks of a member's records, answered per partition once the
//! share partitions' new state is durable (group-committed on each owner).

use kafka_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch, PartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::{ShareAcknowledgeRequest, ShareAcknowledgeResponse};

use super::{ack_on_owners, config_for, release_on_owners, sb, SessionKey};
use crate::kafka::ErrorCode;
use crate::partition::share::ShareAcks;
use crate::protocol::authorized::{Authz, READ};
use crate::protocol::context::Context;
use crate::protocol::metadata::NODE_ID;

pub async fn handle(
    ctx: &Context,
    az: &Authz<'_>,
    req: ShareAcknowledgeRequest,
    _version: i16,
) -> ShareAcknowledgeResponse {
    let group = req
        .group_id
        .as_ref()
        .map(|g| g.to_string())
        .unwrap_or_default();
    let member = req
        .member_id
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    let top = |code: ErrorCode, msg: &str| {
        ShareAcknowledgeResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(sb(msg)))
    };
    if group.is_empty() || member.is_empty() {
        return top(
            ErrorCode::InvalidRequest,
            "group_id and member_id are required",
        );
    }
    if let Err(e) = az.group(&group, READ) {
        return top(e.code, &e.message);
    }
    let key: SessionKey = (group.clone(), member.clone());
    let epoch = req.share_session_epoch;
    let closed = match ctx.share_sessions.check_ack(&key, epoch) {
        Ok(parts) => parts,
        Err(code) => return top(code, "share session"),
    };
    let reg = ctx.cluster.registry();
    let mut acks = Vec::new();
    let mut unknown = Vec::new();
    let mut denied = Vec::new();
    for t in &req.topics {
        let Some(meta) = reg.topic_by_id(&t.topic_id) else {
            unknown.extend(t.partitions.iter().map(|p| (t.topic_id, p.partition_index)));
            continue;
        };
        if az.topic(&meta.name, READ).is_err() {
            denied.extend(t.partitions.iter().map(|p| (t.topic_id, p.partition_index)));
            continue;
        }
        for p in &t.partitions {
            let batches = p
                .acknowledgement_batches
                .iter()
                .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                .collect();
            let sp = (t.topic_id, meta.name.clone(), p.partition_index);
            let a = ShareAcks {
                topic: meta.name.clone(),
                partition: p.partition_index,
                batches,
            };
            acks.push((sp, a));
        }
    }
    let mut parts: Vec<_> = acks.iter().map(|(sp, _)| sp.clone()).collect();
    parts.extend(closed);
    let config = config_for(ctx, &key).await;
    let (g, m) = (group.as_str().into(), member.as_str().into());
    let mut codes = ack_on_owners(ctx, &g, &m, &config, acks).await;
    if epoch == -1 {
        release_on_owners(ctx, &g, &m, &config, &parts).await;
    }
    codes.extend(unknown.into_iter().map(|k| (k, ErrorCode::UnknownTopicId)));
    codes.extend(
        denied
            .into_iter()
            .map(|k| (k, ErrorCode::TopicAuthorizationFailed)),
    );
    let mut topics: Vec<ShareAcknowledgeTopicResponse> = Vec::new();
    for ((id, p), code) in codes {
        let pd = PartitionData::default()
            .with_partition_index(p)
            .with_error_code(code.code())
            .with_current_leader(
                LeaderIdAndEpoch::default()
                    .with_leader_id(NODE_ID)
                    .with_leader_epoch(0),
            );
        match topics.iter_mut().find(|t| t.topic_id == id) {
            Some(t) => t.partitions.push(pd),
            None => topics.push(
                ShareAcknowledgeTopicResponse::default()
                    .with_topic_id(id)
                    .with_partitions(vec![pd]),
            ),
        }
    }
    ShareAcknowledgeResponse::default().with_responses(topics)
}
