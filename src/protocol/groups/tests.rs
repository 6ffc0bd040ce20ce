//! Every response, filled with every kind of value, encodes at every advertised
//! version (the encoder refuses fields a version lacks).

use super::consumer_group_describe::consumer_described;
use super::describe_groups::described_group;
use super::join_group::join_response;
use super::offset_commit::commit_response;
use super::offset_fetch::{fetch_group_v8, fetch_response_v1_7};
use super::sync_group::sync_response;
use super::*;
use crate::coordinator::group::classic::JoinedMember;
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
        error: ErrorCode::None,
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
            &join_response(JoinResult::error(ErrorCode::MemberIdRequired, "x"), v),
        );
    }
    let sync = SyncResult {
        error: ErrorCode::None,
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
    let codes = vec![(
        "t".to_string(),
        vec![
            (0, ErrorCode::None),
            (1, ErrorCode::UnknownTopicOrPartition),
        ],
    )];
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
            error: ErrorCode::None,
        }],
    )];
    for v in versions(ApiKey::OffsetFetch) {
        let r = if v >= 8 {
            OffsetFetchResponse::default().with_groups(vec![
                fetch_group_v8("g".into(), Ok(fetched.clone())),
                fetch_group_v8("h".into(), Err(ErrorCode::CoordinatorLoadInProgress)),
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
                &fetch_response_v1_7(Err(ErrorCode::CoordinatorLoadInProgress), asked, v),
            );
        }
    }
    let described = group::Described {
        error: ErrorCode::None,
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
        error: ErrorCode::None,
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
