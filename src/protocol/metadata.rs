//! Metadata: a single node that leads every partition (auto-creating topics where the
//! client and the config allow it).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::cluster::{Change, NewTopic};
use crate::cluster::{Registry, TopicMeta};
use crate::kafka::ErrorCode;
use crate::partition::messages::ListOffline;
use crate::protocol::authorized::{self, Authz, CREATE, DESCRIBE};
use crate::protocol::context::Context;

/// This broker's node id in every response.
pub const NODE_ID: i32 = 1;
pub const CLUSTER_ID: &str = "sluice-single-node";

pub(super) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Create the named topics if auto-creation allows it; returns the registry after.
pub async fn auto_create(ctx: &Context, names: Vec<String>) -> Arc<Registry> {
    if !names.is_empty() && ctx.config.auto_create_topics {
        let changes = names
            .into_iter()
            .map(|name| {
                Change::Create(NewTopic {
                    name,
                    partitions: -1,
                    configs: BTreeMap::new(),
                })
            })
            .collect();
        // Errors (invalid name, a concurrent create) show in the lookup that follows.
        let _ = ctx.cluster.change(changes, false).await;
    }
    ctx.cluster.registry()
}

fn topic_response(t: &TopicMeta, version: i16, ops: i32) -> MetadataResponseTopic {
    let partitions = (0..t.partition_count())
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(NODE_ID))
                .with_leader_epoch(if version >= 7 { 0 } else { -1 })
                .with_replica_nodes(vec![BrokerId(NODE_ID)])
                .with_isr_nodes(vec![BrokerId(NODE_ID)])
        })
        .collect();
    let mut r = MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&t.name))))
        .with_partitions(partitions)
        .with_topic_authorized_operations(ops);
    if version >= 10 {
        r = r.with_topic_id(t.id);
    }
    r
}

/// Partitions whose log takes no appends. One offline after an I/O error (until a
/// restart; it serves nothing) is reported as Kafka reports a partition whose only
/// replica's log dir failed: LEADER_NOT_AVAILABLE, leader -1, the replica offline.
/// One out of space for now keeps its leader, so consumers go on reading what it has,
/// with KAFKA_STORAGE_ERROR on the partition, so clients and tools see why produce
/// fails; it is healthy again once space returns.
async fn mark_offline(ctx: &Context, topics: &mut [MetadataResponseTopic]) {
    if topics.iter().all(|t| t.partitions.is_empty()) {
        return;
    }
    let mut offline: HashMap<(Arc<str>, i32), bool> = HashMap::new();
    for list in ctx.mesh.call_all(ListOffline).await.into_iter().flatten() {
        offline.extend(list.into_iter().map(|(t, p, gone)| ((t, p), gone)));
    }
    if offline.is_empty() {
        return;
    }
    for t in topics.iter_mut() {
        let Some(name) = t.name.as_ref().map(|n| Arc::<str>::from(n.as_str())) else {
            continue;
        };
        for p in t.partitions.iter_mut() {
            match offline.get(&(name.clone(), p.partition_index)) {
                Some(true) => {
                    p.error_code = ErrorCode::LeaderNotAvailable.code();
                    p.leader_id = BrokerId(-1);
                    p.offline_replicas = vec![BrokerId(NODE_ID)];
                }
                Some(false) => p.error_code = ErrorCode::KafkaStorageError.code(),
                None => {}
            }
        }
    }
}

fn topic_error(name: Option<&str>, id: uuid::Uuid, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name.map(|n| TopicName(str_bytes(n))))
        .with_topic_id(id)
        .with_topic_authorized_operations(authorized::NOT_REQUESTED)
}

/// Whether `az` may create the topic: CREATE on the cluster or on the topic.
fn may_create(az: &Authz<'_>, name: &str) -> bool {
    az.cluster(CREATE).is_ok() || az.topic(name, CREATE).is_ok()
}

/// Metadata shows only the topics the principal may DESCRIBE: a listing leaves the
/// others out, a topic asked for by name gets TOPIC_AUTHORIZATION_FAILED (whether or not
/// it exists), and a missing one is auto-created only with CREATE.
pub async fn handle(
    ctx: &Context,
    az: &Authz<'_>,
    req: MetadataRequest,
    version: i16,
    listener: usize,
) -> MetadataResponse {
    let (host, port) = ctx.config.advertised_on(listener);
    let all = match &req.topics {
        None => true,
        Some(t) => version == 0 && t.is_empty(),
    };
    let mut reg = ctx.cluster.registry();
    // KIP-430 (v8+): the operations the principal may do.
    let with_ops = req.include_topic_authorized_operations;
    let topic_ops = |name: &str| az.topic_operations(with_ops, name);
    let cluster_ops = az.cluster_operations(req.include_cluster_authorized_operations);
    let described = |name: &str| az.allows(crate::cluster::acl::resource::TOPIC, name, DESCRIBE);
    let mut topics = Vec::new();
    if all {
        topics.extend(
            reg.sorted()
                .into_iter()
                .filter(|t| described(&t.name))
                .map(|t| topic_response(t, version, topic_ops(&t.name))),
        );
    } else {
        let wanted = req.topics.unwrap_or_default();
        let allow_create = version < 4 || req.allow_auto_topic_creation;
        let missing: Vec<String> = wanted
            .iter()
            .filter_map(|t| t.name.as_ref())
            .filter(|n| reg.topic(n.as_str()).is_none())
            .filter(|n| described(n.as_str()) && may_create(az, n.as_str()))
            .map(|n| n.to_string())
            .collect();
        let mut created = Vec::new();
        if allow_create && !missing.is_empty() {
            reg = auto_create(ctx, missing.clone()).await;
            created = missing;
        }
        for t in &wanted {
            if let Some(n) = t.name.as_ref().filter(|n| !described(n.as_str())) {
                let code = ErrorCode::TopicAuthorizationFailed;
                topics.push(topic_error(Some(n.as_str()), t.topic_id, code));
                continue;
            }
            let found = match &t.name {
                // Kafka (KRaft) answers the request that starts a creation with
                // UNKNOWN_TOPIC_OR_PARTITION and shows the topic from the next one; clients
                // retry on it, and those that asked not to wait (rskafka's
                // UnknownTopicHandling::Error) get the error they expect.
                Some(n) if created.iter().any(|c| c == n.as_str()) => None,
                Some(n) => reg.topic(n.as_str()),
                None => reg.topic_by_id(&t.topic_id),
            };
            topics.push(match (found, &t.name) {
                (Some(meta), _) if !described(&meta.name) => {
                    topic_error(None, t.topic_id, ErrorCode::TopicAuthorizationFailed)
                }
                (Some(meta), _) => topic_response(meta, version, topic_ops(&meta.name)),
                (None, Some(n)) => {
                    let code = if crate::cluster::validate_topic_name(n.as_str()).is_err() {
                        ErrorCode::InvalidTopicException
                    } else {
                        ErrorCode::UnknownTopicOrPartition
                    };
                    topic_error(Some(n.as_str()), t.topic_id, code)
                }
                (None, None) => topic_error(None, t.topic_id, ErrorCode::UnknownTopicId),
            });
        }
    }
    mark_offline(ctx, &mut topics).await;
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(NODE_ID))
            .with_host(str_bytes(&host))
            .with_port(port)])
        .with_cluster_id((version >= 2).then(|| str_bytes(CLUSTER_ID)))
        .with_controller_id(BrokerId(if version >= 1 { NODE_ID } else { -1 }))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops)
}
