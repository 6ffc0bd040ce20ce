//! ApiVersions (KIP-35, KIP-511) and the table of what Sluice serves.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::kafka::ErrorCode;

/// Every API Sluice serves with the version range it advertises. Ranges follow Kafka
/// 4.1 where a client depends on it (KAFKA-COMPAT.md §4): Produce and FindCoordinator
/// advertise min 0 because librdkafka < 2.11.1 tests for those single versions.
/// Produce v0–v2 are advertised but refused (no client here sends them).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    // What admin tools ask of a cluster (admin/, configs/): log dirs, KIP-966
    // describeTopics, leader election and reassignment on the one broker, quotas.
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    // KIP-320 offset validation: leader epoch 0 ends at the log end offset.
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::InitProducerId, 0, 5),
    // Transactions (txn/): the client versions; AddPartitionsToTxn v4+ is broker-to-broker.
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    // KIP-664 (kafka-transactions.sh). ListTransactions v2 adds a Java regex on the id.
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    // Consumer groups (group/): classic protocol and KIP-848. librdkafka enables
    // KIP-848 only with ConsumerGroupHeartbeat, OffsetCommit >= 9 and OffsetFetch >= 9.
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // Share groups (KIP-932; share/): v1 is the first released version (Kafka 4.1).
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    (ApiKey::ShareFetch, 1, 1),
    (ApiKey::ShareAcknowledge, 1, 1),
    (ApiKey::DescribeShareGroupOffsets, 0, 0),
    (ApiKey::AlterShareGroupOffsets, 0, 0),
    (ApiKey::DeleteShareGroupOffsets, 0, 0),
    // SASL (sasl/): v0 handshakes are followed by raw tokens, v1 by SaslAuthenticate.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // ACLs (KIP-140; v1 adds prefixed patterns, KIP-290, the oldest Kafka 4 serves).
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

/// The advertised range of `key`, if Sluice serves it.
pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

fn table() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(k, min, max)| {
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

/// Feature flags (KIP-584) as a Kafka 4.1 broker reports them in ApiVersions v3+:
/// (name, supported min, supported max, finalized level; 0 is not finalized).
/// group.version 1 is the KIP-848 consumer protocol, which Sluice serves.
/// transaction.version stays 0: level 2 would make Java 4.x producers use KIP-890
/// part 2 (EndTxn v5, AddPartitionsToTxn v5), which Sluice does not serve.
/// metadata.version 27 is 4.1-IV1, the level a fresh 4.1 cluster finalizes.
pub const FEATURES: &[(&str, i16, i16, i16)] = &[
    ("metadata.version", 7, 27, 27),
    ("group.version", 0, 1, 1),
    ("transaction.version", 0, 0, 0),
    ("kraft.version", 0, 0, 0),
];
/// The epoch of the finalized features: they never change.
const FINALIZED_FEATURES_EPOCH: i64 = 1;

pub fn handle(_req: ApiVersionsRequest, version: i16) -> ApiVersionsResponse {
    // KIP-511 asks brokers to validate ClientSoftwareName/Version; Kafka answers
    // INVALID_REQUEST on a mismatch, which only makes librdkafka retry with v0.
    // Sluice accepts any value: the fields are informational.
    let r = ApiVersionsResponse::default().with_api_keys(table());
    if version < 3 {
        return r;
    }
    let supported = FEATURES
        .iter()
        .map(|&(name, min, max, _)| {
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(name))
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    let finalized = FEATURES
        .iter()
        .filter(|f| f.3 > 0)
        .map(|&(name, _, _, level)| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str(name))
                .with_min_version_level(level)
                .with_max_version_level(level)
        })
        .collect();
    r.with_supported_features(supported)
        .with_finalized_features_epoch(FINALIZED_FEATURES_EPOCH)
        .with_finalized_features(finalized)
}

/// The answer to an ApiVersions request of a version newer than Sluice knows: a v0
/// header and a v0 body with UNSUPPORTED_VERSION and the ApiVersions range (KIP-511),
/// built before (and without) parsing the request body.
pub fn unsupported_version_frame(correlation_id: i32) -> BytesMut {
    let (min, max) = supported_range(ApiKey::ApiVersions).expect("ApiVersions is served");
    let mut b = BytesMut::with_capacity(4 + 4 + 2 + 4 + 6);
    b.put_i32(4 + 2 + 4 + 6);
    b.put_i32(correlation_id);
    b.put_i16(ErrorCode::UnsupportedVersion.code());
    b.put_i32(1);
    b.put_i16(ApiKey::ApiVersions as i16);
    b.put_i16(min);
    b.put_i16(max);
    b
}
