//! TxnOffsetCommit: offsets kept with the transaction; a zombie member is refused (KIP-447).

use super::*;

pub async fn txn_offset_commit(
    ctx: &Context,
    az: &Authz<'_>,
    req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let group = req.group_id.to_string();
    let all = crate::protocol::groups::commit_topics!(req.topics, version >= 2);
    let (topics, mut denied) = crate::protocol::groups::readable_topics(az, all);
    let asked = topics.clone();
    let r = async {
        az.transactional_id(req.transactional_id.as_str(), WRITE)
            .and(az.group(&group, READ))
            .map_err(|e| e.code)?;
        // KIP-447 (v3): a zombie member of the consumer group must not commit. The
        // membership lives with the group's owner; the offsets with the transaction's.
        if version >= 3 && (req.generation_id >= 0 || !req.member_id.is_empty()) {
            let check = CommitRequest {
                group: group.clone(),
                member_id: req.member_id.to_string(),
                generation_or_epoch: req.generation_id,
                instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
                topics: Vec::new(),
            };
            let owner = group::owner_shard(&group, ctx.shards());
            let msg = ValidateCommit { request: check };
            ctx.mesh
                .call(owner, msg)
                .await
                .map_err(coordinator_gone)??;
        }
        let c = txn::operations::TxnCommit {
            id: req.transactional_id.to_string(),
            group: group.clone(),
            producer_id: req.producer_id.0,
            epoch: req.producer_epoch,
            topics,
        };
        let id = c.id.clone();
        on_txn(ctx, &id, tm::CommitOffsets { commit: c, version }).await
    }
    .await;
    let mut codes = crate::protocol::groups::codes_or_error(r, asked);
    codes.append(&mut denied);
    TxnOffsetCommitResponse::default().with_topics(
        codes
            .into_iter()
            .map(|(t, ps)| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t)))
                    .with_partitions(
                        ps.into_iter()
                            .map(|(p, c)| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_error_code(c.code())
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
