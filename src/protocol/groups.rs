//! Consumer group APIs: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! OffsetFetch, DescribeGroups, ListGroups, DeleteGroups, OffsetDelete,
//! ConsumerGroupHeartbeat and ConsumerGroupDescribe.
//!
//! Each request goes to the owner shard of its group (`group::owner_shard`) and the
//! answer comes back as plain data, turned into the response of the request's version
//! here. Fields a version lacks are set only for versions that have them (the encoder
//! refuses a non-default value in a version without the field).

use std::rc::Rc;

use futures_util::future::join_all;
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

use super::errors::{self, KafkaError};
use super::on_owner;
use crate::group::classic::{JoinRequest, JoinResult, SyncRequest, SyncResult};
use crate::group::{self, consumer, CommitPartition, CommitRequest, FetchedTopics, TopicCodes};
use crate::shard::Shard;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn owner(shard: &Shard, group: &str) -> usize {
    group::owner_shard(group, shard.count)
}

/// The group's owner is shutting down: the client looks for the coordinator again.
fn not_coordinator(e: KafkaError) -> i16 {
    if e.code == errors::NOT_LEADER_OR_FOLLOWER {
        errors::NOT_COORDINATOR
    } else {
        e.code
    }
}

async fn on_group<T, F, Fut>(shard: &Rc<Shard>, group: &str, f: F) -> Result<T, i16>
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, i16>> + 'static,
    T: Send + 'static,
{
    let target = owner(shard, group);
    let name = group.to_string();
    let r = on_owner(shard, target, move |s| async move {
        // Only the owner coordinates a group. Requests are always forwarded there, so
        // this cannot fail while the shard count is fixed; the answer stays correct.
        if group::owner_shard(&name, s.count) != s.id {
            return Ok(Err(errors::NOT_COORDINATOR));
        }
        Ok(f(s).await)
    })
    .await;
    match r {
        Ok(inner) => inner,
        Err(e) => Err(not_coordinator(e)),
    }
}

// --- JoinGroup ---

pub async fn join_group(
    shard: &Rc<Shard>,
    req: JoinGroupRequest,
    version: i16,
    client_id: String,
) -> JoinGroupResponse {
    let group = req.group_id.to_string();
    let r = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id,
        client_host: String::new(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: it is the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let member = r.member_id.clone();
    let g = group.clone();
    let res = on_group(shard, &group, move |s| async move {
        let rx = s.groups.join(&g, r);
        Ok(rx
            .await
            .unwrap_or_else(|_| JoinResult::error(errors::UNKNOWN_MEMBER_ID, "")))
    })
    .await
    .unwrap_or_else(|code| JoinResult::error(code, &member));
    join_response(res, version)
}

fn join_response(r: JoinResult, version: i16) -> JoinGroupResponse {
    let members = r
        .members
        .into_iter()
        .map(|m| {
            let jm = JoinGroupResponseMember::default()
                .with_member_id(sb(&m.member_id))
                .with_metadata(m.metadata);
            if version >= 5 {
                jm.with_group_instance_id(m.instance_id.map(|i| sb(&i)))
            } else {
                jm
            }
        })
        .collect();
    let mut resp = JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation)
        .with_leader(sb(&r.leader))
        .with_member_id(sb(&r.member_id))
        .with_members(members);
    resp = if version >= 7 {
        resp.with_protocol_type(r.protocol_type.map(|s| sb(&s)))
            .with_protocol_name(r.protocol_name.map(|s| sb(&s)))
    } else {
        resp.with_protocol_name(Some(sb(&r.protocol_name.unwrap_or_default())))
    };
    if version >= 9 {
        resp = resp.with_skip_assignment(r.skip_assignment);
    }
    resp
}

// --- SyncGroup ---

pub async fn sync_group(
    shard: &Rc<Shard>,
    req: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let group = req.group_id.to_string();
    let r = SyncRequest {
        member_id: req.member_id.to_string(),
        generation: req.generation_id,
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        protocol_type: req.protocol_type.map(|s| s.to_string()),
        protocol_name: req.protocol_name.map(|s| s.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let g = group.clone();
    let res = on_group(shard, &group, move |s| async move {
        let rx = s.groups.sync(&g, r);
        Ok(rx
            .await
            .unwrap_or_else(|_| SyncResult::error(errors::UNKNOWN_MEMBER_ID)))
    })
    .await
    .unwrap_or_else(SyncResult::error);
    sync_response(res, version)
}

fn sync_response(r: SyncResult, version: i16) -> SyncGroupResponse {
    let resp = SyncGroupResponse::default()
        .with_error_code(r.error)
        .with_assignment(r.assignment);
    if version >= 5 {
        resp.with_protocol_type(r.protocol_type.map(|s| sb(&s)))
            .with_protocol_name(r.protocol_name.map(|s| sb(&s)))
    } else {
        resp
    }
}

// --- Heartbeat and LeaveGroup ---

pub async fn heartbeat(
    shard: &Rc<Shard>,
    req: HeartbeatRequest,
    _version: i16,
) -> HeartbeatResponse {
    let group = req.group_id.to_string();
    let member = req.member_id.to_string();
    let instance = req.group_instance_id.map(|s| s.to_string());
    let generation = req.generation_id;
    let g = group.clone();
    let code = on_group(shard, &group, move |s| async move {
        Ok(s.groups
            .heartbeat(&g, &member, generation, instance.as_deref()))
    })
    .await
    .unwrap_or_else(|c| c);
    HeartbeatResponse::default().with_error_code(code)
}

pub async fn leave_group(
    shard: &Rc<Shard>,
    req: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group = req.group_id.to_string();
    let who: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let w = who.clone();
    let g = group.clone();
    let res = on_group(
        shard,
        &group,
        move |s| async move { s.groups.leave(&g, &w) },
    )
    .await;
    match res {
        Err(code) => LeaveGroupResponse::default().with_error_code(code),
        Ok(codes) if version >= 3 => LeaveGroupResponse::default().with_members(
            who.into_iter()
                .zip(codes)
                .map(|((id, inst), code)| {
                    MemberResponse::default()
                        .with_member_id(sb(&id))
                        .with_group_instance_id(inst.map(|i| sb(&i)))
                        .with_error_code(code)
                })
                .collect(),
        ),
        Ok(codes) => LeaveGroupResponse::default()
            .with_error_code(codes.first().copied().unwrap_or(errors::NONE)),
    }
}

// --- OffsetCommit ---

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
                    .map(|p| crate::group::CommitPartition {
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
            .collect::<Vec<(String, Vec<crate::group::CommitPartition>)>>()
    };
}
pub(super) use commit_topics;

/// The codes of a commit, or its one error on every partition asked.
pub(super) fn codes_or_error(
    res: Result<TopicCodes, i16>,
    asked: Vec<(String, Vec<CommitPartition>)>,
) -> TopicCodes {
    res.unwrap_or_else(|code| {
        asked
            .into_iter()
            .map(|(t, ps)| (t, ps.into_iter().map(|p| (p.partition, code)).collect()))
            .collect()
    })
}

pub async fn offset_commit(
    shard: &Rc<Shard>,
    req: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let group = req.group_id.to_string();
    let topics = commit_topics!(req.topics, version >= 6);
    let r = CommitRequest {
        group: group.clone(),
        member_id: req.member_id.to_string(),
        generation_or_epoch: req.generation_id_or_member_epoch,
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        topics: topics.clone(),
    };
    let res = on_group(shard, &group, move |s| async move {
        let reg = s.registry();
        s.groups.commit(&reg, r).await
    })
    .await;
    commit_response(codes_or_error(res, topics))
}

fn commit_response(codes: TopicCodes) -> OffsetCommitResponse {
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
                                    .with_error_code(c)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

// --- OffsetFetch ---

type FetchAsk = Option<Vec<(String, Vec<i32>)>>;

async fn fetch_one(
    shard: &Rc<Shard>,
    group: String,
    member: Option<(String, i32)>,
    topics: FetchAsk,
) -> Result<FetchedTopics, i16> {
    let g = group.clone();
    on_group(shard, &group, move |s| async move {
        s.groups
            .fetch(&g, member.as_ref().map(|(m, e)| (m.as_str(), *e)), topics)
    })
    .await
}

pub async fn offset_fetch(
    shard: &Rc<Shard>,
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
                let mut r = fetch_one(shard, id.clone(), member, topics).await;
                if let (true, Ok(fetched)) = (stable, r.as_mut()) {
                    mark_unstable(shard, &id, fetched).await;
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
    let mut r = fetch_one(shard, group_id.clone(), None, topics).await;
    if let (true, Ok(fetched)) = (stable, r.as_mut()) {
        mark_unstable(shard, &group_id, fetched).await;
    }
    fetch_response_v1_7(r, asked, version)
}

/// Partitions with an offset committed by a transaction that has not ended get
/// UNSTABLE_OFFSET_COMMIT and no offset (the client asks again). Transactions live on
/// the owner shard of their transactional id, so every shard is asked.
async fn mark_unstable(shard: &Rc<Shard>, group: &str, fetched: &mut group::FetchedTopics) {
    let asks = (0..shard.count).map(|target| {
        let g = group.to_string();
        on_owner(shard, target, move |s| async move {
            Ok(s.txns.pending_partitions(&g))
        })
    });
    let mut pending = std::collections::HashSet::new();
    let mut unknown = false;
    for r in join_all(asks).await {
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
                p.error = errors::UNSTABLE_OFFSET_COMMIT;
            }
        }
    }
}

fn fetch_group_v8(group: String, r: Result<FetchedTopics, i16>) -> OffsetFetchResponseGroup {
    let g = OffsetFetchResponseGroup::default().with_group_id(GroupId(sb(&group)));
    match r {
        Err(code) => g.with_error_code(code),
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
                                        .with_error_code(p.error)
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}

fn fetch_response_v1_7(
    r: Result<FetchedTopics, i16>,
    asked: FetchAsk,
    version: i16,
) -> OffsetFetchResponse {
    let (topics, code) = match r {
        Ok(t) => (t, errors::NONE),
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
                                .with_error_code(p.error);
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
        resp.with_error_code(code)
    } else {
        resp
    }
}

// --- DescribeGroups, ListGroups, DeleteGroups, OffsetDelete ---

pub async fn describe_groups(
    shard: &Rc<Shard>,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let work = req.groups.into_iter().map(|g| {
        let id = g.to_string();
        async move {
            let gid = id.clone();
            let d = on_group(
                shard,
                &id,
                move |s| async move { Ok(s.groups.describe(&gid)) },
            )
            .await
            .unwrap_or_else(|code| group::Described {
                error: code,
                group: id.clone(),
                ..Default::default()
            });
            described_group(d, version)
        }
    });
    DescribeGroupsResponse::default().with_groups(join_all(work).await)
}

fn described_group(d: group::Described, version: i16) -> DescribedGroup {
    let members = d
        .members
        .into_iter()
        .map(|m| {
            let dm = DescribedGroupMember::default()
                .with_member_id(sb(&m.member_id))
                .with_client_id(sb(&m.client_id))
                .with_client_host(sb(&m.client_host))
                .with_member_metadata(m.metadata)
                .with_member_assignment(m.assignment);
            if version >= 4 {
                dm.with_group_instance_id(m.instance_id.map(|i| sb(&i)))
            } else {
                dm
            }
        })
        .collect();
    let g = DescribedGroup::default()
        .with_error_code(d.error)
        .with_group_id(GroupId(sb(&d.group)))
        .with_group_state(sb(&d.state))
        .with_protocol_type(sb(&d.protocol_type))
        .with_protocol_data(sb(&d.protocol))
        .with_members(members);
    if version >= 6 && d.error == errors::GROUP_ID_NOT_FOUND {
        g.with_error_message(Some(sb("the group does not exist")))
    } else {
        g
    }
}

pub async fn list_groups(
    shard: &Rc<Shard>,
    req: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let mut all = Vec::new();
    let mut code = errors::NONE;
    for s in 0..shard.count {
        match shard
            .invoke_on(s, |sh| async move { sh.groups.list() })
            .await
        {
            Ok(Ok(l)) => all.extend(l),
            Ok(Err(c)) => code = c,
            Err(_) => code = errors::COORDINATOR_NOT_AVAILABLE,
        }
    }
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let groups = all
        .into_iter()
        .filter(|l| states.is_empty() || states.contains(&l.state.to_lowercase()))
        .filter(|l| types.is_empty() || types.contains(&l.group_type))
        .map(|l| {
            let mut g = ListedGroup::default()
                .with_group_id(GroupId(sb(&l.group)))
                .with_protocol_type(sb(&l.protocol_type));
            if version >= 4 {
                g = g.with_group_state(sb(&l.state));
            }
            if version >= 5 {
                g = g.with_group_type(sb(&l.group_type));
            }
            g
        })
        .collect();
    ListGroupsResponse::default()
        .with_error_code(code)
        .with_groups(groups)
}

pub async fn delete_groups(
    shard: &Rc<Shard>,
    req: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let work = req.groups_names.into_iter().map(|g| {
        let id = g.to_string();
        async move {
            let gid = id.clone();
            let code = on_group(shard, &id, move |s| async move {
                Ok(s.groups.delete_group(&gid).await)
            })
            .await
            .unwrap_or_else(|c| c);
            DeletableGroupResult::default()
                .with_group_id(GroupId(sb(&id)))
                .with_error_code(code)
        }
    });
    DeleteGroupsResponse::default().with_results(join_all(work).await)
}

pub async fn offset_delete(
    shard: &Rc<Shard>,
    req: OffsetDeleteRequest,
    _version: i16,
) -> OffsetDeleteResponse {
    let group = req.group_id.to_string();
    let topics: Vec<(String, Vec<i32>)> = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let g = group.clone();
    let res = on_group(shard, &group, move |s| async move {
        s.groups.delete_offsets(&g, topics).await
    })
    .await;
    match res {
        Err(code) => OffsetDeleteResponse::default().with_error_code(code),
        Ok(codes) => OffsetDeleteResponse::default().with_topics(
            codes
                .into_iter()
                .map(|(t, ps)| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(TopicName(sb(&t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, c)| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(c)
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}

// --- KIP-848 ---

pub async fn consumer_group_heartbeat(
    shard: &Rc<Shard>,
    req: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: String,
) -> ConsumerGroupHeartbeatResponse {
    let group = req.group_id.to_string();
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
        client_id,
        client_host: String::new(),
    };
    let g = group.clone();
    let target = owner(shard, &group);
    let res = on_owner(shard, target, move |s| async move {
        let reg = s.registry();
        Ok(s.groups.consumer_heartbeat(&reg, &g, r))
    })
    .await
    .unwrap_or_else(|e| Err(KafkaError::new(not_coordinator(e.clone()), e.message)));
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
            .with_error_code(e.code)
            .with_error_message(Some(sb(&e.message))),
    }
}

pub async fn consumer_group_describe(
    shard: &Rc<Shard>,
    req: ConsumerGroupDescribeRequest,
    _version: i16,
) -> ConsumerGroupDescribeResponse {
    let work = req.group_ids.into_iter().map(|g| {
        let id = g.to_string();
        async move {
            let gid = id.clone();
            let d = on_group(shard, &id, move |s| async move {
                let reg = s.registry();
                Ok(s.groups.consumer_describe(&reg, &gid))
            })
            .await
            .unwrap_or_else(|code| group::ConsumerDescribed {
                error: code,
                group: id.clone(),
                ..Default::default()
            });
            consumer_described(d)
        }
    });
    ConsumerGroupDescribeResponse::default().with_groups(join_all(work).await)
}

fn cgd_assignment(a: Vec<(uuid::Uuid, String, Vec<i32>)>) -> cgd::Assignment {
    cgd::Assignment::default().with_topic_partitions(
        a.into_iter()
            .map(|(id, name, ps)| {
                cgd::TopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(TopicName(sb(&name)))
                    .with_partitions(ps)
            })
            .collect(),
    )
}

fn consumer_described(d: group::ConsumerDescribed) -> cgd::DescribedGroup {
    let g = cgd::DescribedGroup::default()
        .with_error_code(d.error)
        .with_group_id(GroupId(sb(&d.group)));
    if d.error != errors::NONE {
        return g;
    }
    g.with_group_state(sb(&d.state))
        .with_group_epoch(d.epoch)
        .with_assignment_epoch(d.assignment_epoch)
        .with_assignor_name(sb(&d.assignor))
        .with_members(
            d.members
                .into_iter()
                .map(|m| {
                    cgd::Member::default()
                        .with_member_id(sb(&m.member_id))
                        .with_instance_id(m.instance_id.map(|i| sb(&i)))
                        .with_rack_id(m.rack_id.map(|i| sb(&i)))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(sb(&m.client_id))
                        .with_client_host(sb(&m.client_host))
                        .with_subscribed_topic_names(
                            m.subscribed.iter().map(|t| TopicName(sb(t))).collect(),
                        )
                        .with_assignment(cgd_assignment(m.assignment))
                        .with_target_assignment(cgd_assignment(m.target))
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    //! Every response, filled with every kind of value, encodes at every advertised
    //! version (the encoder refuses fields a version lacks).
    use super::*;
    use crate::group::classic::JoinedMember;
    use crate::protocol::api_versions::supported_range;
    use bytes::Bytes;
    use kafka_protocol::protocol::Encodable;

    fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
        let (min, max) = supported_range(key).expect("advertised");
        min..=max
    }

    fn enc<R: Encodable>(key: ApiKey, v: i16, r: &R) {
        let mut buf = bytes::BytesMut::new();
        r.encode(&mut buf, v)
            .unwrap_or_else(|e| panic!("{key:?} v{v}: {e}"));
    }

    #[test]
    fn group_responses_encode_at_every_advertised_version() {
        let join = JoinResult {
            error: 0,
            generation: 3,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            leader: "a".into(),
            member_id: "a".into(),
            members: vec![JoinedMember {
                member_id: "a".into(),
                instance_id: Some("i".into()),
                metadata: Bytes::from_static(b"m"),
            }],
            skip_assignment: true,
        };
        for v in versions(ApiKey::JoinGroup) {
            enc(ApiKey::JoinGroup, v, &join_response(join.clone(), v));
            enc(
                ApiKey::JoinGroup,
                v,
                &join_response(JoinResult::error(79, "x"), v),
            );
        }
        let sync = SyncResult {
            error: 0,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignment: Bytes::from_static(b"a"),
        };
        for v in versions(ApiKey::SyncGroup) {
            enc(ApiKey::SyncGroup, v, &sync_response(sync.clone(), v));
        }
        for v in versions(ApiKey::Heartbeat) {
            enc(
                ApiKey::Heartbeat,
                v,
                &HeartbeatResponse::default().with_error_code(27),
            );
        }
        for v in versions(ApiKey::LeaveGroup) {
            let r = if v >= 3 {
                LeaveGroupResponse::default().with_members(vec![MemberResponse::default()
                    .with_member_id(sb("a"))
                    .with_group_instance_id(Some(sb("i")))])
            } else {
                LeaveGroupResponse::default().with_error_code(25)
            };
            enc(ApiKey::LeaveGroup, v, &r);
        }
        let codes = vec![("t".to_string(), vec![(0, 0), (1, 3)])];
        for v in versions(ApiKey::OffsetCommit) {
            enc(ApiKey::OffsetCommit, v, &commit_response(codes.clone()));
        }
        let fetched = vec![(
            "t".to_string(),
            vec![group::FetchedOffset {
                partition: 0,
                offset: 5,
                leader_epoch: 2,
                metadata: Some("m".into()),
                error: 0,
            }],
        )];
        for v in versions(ApiKey::OffsetFetch) {
            let r = if v >= 8 {
                OffsetFetchResponse::default().with_groups(vec![
                    fetch_group_v8("g".into(), Ok(fetched.clone())),
                    fetch_group_v8("h".into(), Err(14)),
                ])
            } else {
                fetch_response_v1_7(Ok(fetched.clone()), None, v)
            };
            enc(ApiKey::OffsetFetch, v, &r);
            if v < 8 {
                let asked = Some(vec![("t".to_string(), vec![0])]);
                enc(
                    ApiKey::OffsetFetch,
                    v,
                    &fetch_response_v1_7(Err(14), asked, v),
                );
            }
        }
        let described = group::Described {
            error: 0,
            group: "g".into(),
            state: "Stable".into(),
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            members: vec![group::DescribedMember {
                member_id: "a".into(),
                instance_id: Some("i".into()),
                ..Default::default()
            }],
        };
        for v in versions(ApiKey::DescribeGroups) {
            enc(
                ApiKey::DescribeGroups,
                v,
                &DescribeGroupsResponse::default()
                    .with_groups(vec![described_group(described.clone(), v)]),
            );
        }
        for v in versions(ApiKey::ListGroups) {
            let mut g = ListedGroup::default().with_group_id(GroupId(sb("g")));
            if v >= 4 {
                g = g.with_group_state(sb("Stable"));
            }
            if v >= 5 {
                g = g.with_group_type(sb("classic"));
            }
            enc(
                ApiKey::ListGroups,
                v,
                &ListGroupsResponse::default().with_groups(vec![g]),
            );
        }
        for v in versions(ApiKey::DeleteGroups) {
            enc(
                ApiKey::DeleteGroups,
                v,
                &DeleteGroupsResponse::default()
                    .with_results(vec![DeletableGroupResult::default().with_error_code(68)]),
            );
        }
        for v in versions(ApiKey::OffsetDelete) {
            enc(
                ApiKey::OffsetDelete,
                v,
                &OffsetDeleteResponse::default().with_error_code(69),
            );
        }
        for v in versions(ApiKey::ConsumerGroupHeartbeat) {
            let r = ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(sb("m")))
                .with_member_epoch(3)
                .with_assignment(Some(cgh::Assignment::default().with_topic_partitions(
                    vec![
                    cgh::TopicPartitions::default()
                        .with_topic_id(uuid::Uuid::from_u128(1))
                        .with_partitions(vec![0, 1]),
                ],
                )));
            enc(ApiKey::ConsumerGroupHeartbeat, v, &r);
        }
        let cd = group::ConsumerDescribed {
            error: 0,
            group: "g".into(),
            state: "Stable".into(),
            epoch: 2,
            assignment_epoch: 2,
            assignor: "uniform".into(),
            members: vec![group::ConsumerMemberView {
                member_id: "m".into(),
                assignment: vec![(uuid::Uuid::from_u128(1), "t".into(), vec![0])],
                ..Default::default()
            }],
        };
        for v in versions(ApiKey::ConsumerGroupDescribe) {
            enc(
                ApiKey::ConsumerGroupDescribe,
                v,
                &ConsumerGroupDescribeResponse::default()
                    .with_groups(vec![consumer_described(cd.clone())]),
            );
        }
    }
}
