//! OffsetCommit: committed offsets, durable when answered.

use super::*;

pub async fn offset_commit(
    ctx: &Context,
    az: &Authz<'_>,
    req: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let group = req.group_id.to_string();
    let asked = commit_topics!(req.topics, version >= 6);
    if let Err(e) = az.group(&group, READ) {
        return commit_response(codes_or_error(Err(e.code), asked));
    }
    let (topics, mut denied) = readable_topics(az, asked);
    let r = CommitRequest {
        group: group.clone(),
        member_id: req.member_id.to_string(),
        generation_or_epoch: req.generation_id_or_member_epoch,
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        topics: topics.clone(),
    };
    let res = on_group(ctx, &group, gm::Commit { request: r }).await;
    let mut codes = codes_or_error(res, topics);
    codes.append(&mut denied);
    commit_response(codes)
}

pub(super) fn commit_response(codes: TopicCodes) -> OffsetCommitResponse {
    OffsetCommitResponse::default().with_topics(
        codes
            .into_iter()
            .map(|(t, ps)| {
                OffsetCommitResponseTopic::default()
                    .with_name(TopicName(sb(&t)))
                    .with_partitions(
                        ps.into_iter()
                            .map(|(p, c)| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_error_code(c.code())
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
