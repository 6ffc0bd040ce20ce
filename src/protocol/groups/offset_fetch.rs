//! OffsetFetch: one group (v1-v7) or several (v8+), `require_stable` (KIP-447).

use super::*;

// --- OffsetFetch ---

async fn fetch_one(
    ctx: &Context,
    az: &Authz<'_>,
    group: String,
    member: Option<(String, i32)>,
    topics: FetchAsk,
) -> Result<FetchedTopics, ErrorCode> {
    let all_topics = topics.is_none();
    let msg = gm::FetchOffsets {
        group: group.clone(),
        member,
        topics,
    };
    let mut fetched = on_group_as(ctx, az, DESCRIBE, &group, msg).await?;
    // A topic the principal may not DESCRIBE shows no offset: TOPIC_AUTHORIZATION_FAILED
    // on each partition asked, nothing when all were asked (Kafka's rule).
    fetched.retain_mut(|(t, ps)| {
        if az.topic(t, DESCRIBE).is_ok() {
            return true;
        }
        for p in ps.iter_mut() {
            (p.offset, p.leader_epoch, p.metadata) = (-1, -1, Some(String::new()));
            p.error = ErrorCode::TopicAuthorizationFailed;
        }
        !all_topics
    });
    Ok(fetched)
}

pub async fn offset_fetch(
    ctx: &Context,
    az: &Authz<'_>,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    // KIP-447 require_stable (v7+): offsets of a transaction that has not ended yet are
    // unstable, and a consumer that asks for stable offsets must wait for them.
    let stable = version >= 7 && req.require_stable;
    if version >= 8 {
        let work = req.groups.into_iter().map(|g| {
            let id = g.group_id.to_string();
            let member = g
                .member_id
                .as_ref()
                .filter(|m| !m.is_empty())
                .map(|m| (m.to_string(), g.member_epoch));
            let topics: FetchAsk = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes))
                    .collect()
            });
            async move {
                let mut r = fetch_one(ctx, az, id.clone(), member, topics).await;
                if let (true, Ok(fetched)) = (stable, r.as_mut()) {
                    mark_unstable(ctx, &id, fetched).await;
                }
                fetch_group_v8(id, r)
            }
        });
        return OffsetFetchResponse::default().with_groups(join_all(work).await);
    }
    let topics: FetchAsk = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let asked = topics.clone();
    let group_id = req.group_id.to_string();
    let mut r = fetch_one(ctx, az, group_id.clone(), None, topics).await;
    if let (true, Ok(fetched)) = (stable, r.as_mut()) {
        mark_unstable(ctx, &group_id, fetched).await;
    }
    fetch_response_v1_7(r, asked, version)
}

/// Partitions with an offset committed by a transaction that has not ended get
/// UNSTABLE_OFFSET_COMMIT and no offset (the client asks again). Transactions live on
/// the owner shard of their transactional id, so every shard is asked.
async fn mark_unstable(ctx: &Context, group: &str, fetched: &mut group::FetchedTopics) {
    let ask = PendingOffsets {
        group: group.to_string(),
    };
    let mut pending = std::collections::HashSet::new();
    let mut unknown = false;
    for r in ctx.mesh.call_all(ask).await {
        match r {
            Ok(p) => pending.extend(p),
            // A shard that cannot answer may hold a pending offset: nothing is stable.
            Err(_) => unknown = true,
        }
    }
    if pending.is_empty() && !unknown {
        return;
    }
    for (t, ps) in fetched.iter_mut() {
        for p in ps.iter_mut() {
            if unknown || pending.contains(&(t.clone(), p.partition)) {
                p.offset = -1;
                p.metadata = None;
                p.error = ErrorCode::UnstableOffsetCommit;
            }
        }
    }
}

pub(super) fn fetch_group_v8(
    group: String,
    r: Result<FetchedTopics, ErrorCode>,
) -> OffsetFetchResponseGroup {
    let g = OffsetFetchResponseGroup::default().with_group_id(GroupId(sb(&group)));
    match r {
        Err(code) => g.with_error_code(code.code()),
        Ok(topics) => g.with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(sb(&t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|p| {
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p.partition)
                                        .with_committed_offset(p.offset)
                                        .with_committed_leader_epoch(p.leader_epoch)
                                        .with_metadata(p.metadata.map(|m| sb(&m)))
                                        .with_error_code(p.error.code())
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}

pub(super) fn fetch_response_v1_7(
    r: Result<FetchedTopics, ErrorCode>,
    asked: FetchAsk,
    version: i16,
) -> OffsetFetchResponse {
    let (topics, code) = match r {
        Ok(t) => (t, ErrorCode::None),
        // v1 has no top-level error: it goes on every asked partition.
        Err(code) => (
            asked
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| {
                    let v = ps
                        .into_iter()
                        .map(|p| group::FetchedOffset {
                            partition: p,
                            offset: -1,
                            leader_epoch: -1,
                            metadata: Some(String::new()),
                            error: code,
                        })
                        .collect();
                    (t, v)
                })
                .collect(),
            code,
        ),
    };
    let topics = topics
        .into_iter()
        .map(|(t, ps)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(sb(&t)))
                .with_partitions(
                    ps.into_iter()
                        .map(|p| {
                            let r = OffsetFetchResponsePartition::default()
                                .with_partition_index(p.partition)
                                .with_committed_offset(p.offset)
                                .with_metadata(p.metadata.map(|m| sb(&m)))
                                .with_error_code(p.error.code());
                            if version >= 5 {
                                r.with_committed_leader_epoch(p.leader_epoch)
                            } else {
                                r
                            }
                        })
                        .collect(),
                )
        })
        .collect();
    let resp = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        resp.with_error_code(code.code())
    } else {
        resp
    }
}
