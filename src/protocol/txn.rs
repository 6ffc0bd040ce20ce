//! Transaction requests (KIP-98): AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and
//! EndTxn, each run on the transactional id's owner shard (`txn::owner_shard`). InitProducerId
//! with a transactional id comes through `init_producer_id`.

use std::rc::Rc;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::errors::{self, KafkaError};
use super::on_owner;
use crate::group::CommitRequest;
use crate::shard::Shard;
use crate::txn;

/// Run `f` on the owner shard of transactional id `id`; a shard shutting down answers
/// NOT_COORDINATOR so the client looks for the coordinator again.
pub(crate) async fn on_txn<T, F, Fut>(shard: &Rc<Shard>, id: &str, f: F) -> Result<T, i16>
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, i16>> + 'static,
    T: Send + 'static,
{
    let owner = txn::owner_shard(id, shard.count);
    match on_owner(shard, owner, move |s| async move { Ok(f(s).await) }).await {
        Ok(r) => r,
        Err(e) if e.code == errors::NOT_LEADER_OR_FOLLOWER => Err(errors::NOT_COORDINATOR),
        Err(KafkaError { code, .. }) => Err(code),
    }
}

pub async fn add_partitions(
    shard: &Rc<Shard>,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let id = req.v3_and_below_transactional_id.to_string();
    let pid = req.v3_and_below_producer_id.0;
    let epoch = req.v3_and_below_producer_epoch;
    let topics: Vec<(String, Vec<i32>)> = req
        .v3_and_below_topics
        .iter()
        .map(|t| (t.name.to_string(), t.partitions.clone()))
        .collect();
    let asked = topics.clone();
    let r = on_txn(shard, &id.clone(), move |s| async move {
        Ok(txn::add_partitions(&s, id, pid, epoch, topics, version).await)
    })
    .await;
    let results = r.unwrap_or_else(|code| {
        asked
            .into_iter()
            .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, code)).collect()))
            .collect()
    });
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(
        results
            .into_iter()
            .map(|(t, ps)| {
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(StrBytes::from_string(t)))
                    .with_results_by_partition(
                        ps.into_iter()
                            .map(|(p, c)| {
                                AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(p)
                                    .with_partition_error_code(c)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

pub async fn add_offsets(
    shard: &Rc<Shard>,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let id = req.transactional_id.to_string();
    let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
    let group = req.group_id.to_string();
    let r = on_txn(shard, &id.clone(), move |s| async move {
        txn::add_offsets(&s, id, pid, epoch, group, version).await
    })
    .await;
    AddOffsetsToTxnResponse::default().with_error_code(r.err().unwrap_or(errors::NONE))
}

pub async fn end_txn(shard: &Rc<Shard>, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let id = req.transactional_id.to_string();
    let (pid, epoch, commit) = (req.producer_id.0, req.producer_epoch, req.committed);
    let r = on_txn(shard, &id.clone(), move |s| async move {
        txn::end_txn(&s, id, pid, epoch, commit, version).await
    })
    .await;
    EndTxnResponse::default().with_error_code(r.err().unwrap_or(errors::NONE))
}

pub async fn txn_offset_commit(
    shard: &Rc<Shard>,
    req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let group = req.group_id.to_string();
    let topics = super::groups::commit_topics!(req.topics, version >= 2);
    let asked = topics.clone();
    let r = async {
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
            let owner = crate::group::owner_shard(&group, shard.count);
            on_owner(shard, owner, move |s| async move {
                Ok(s.groups.validate_commit(&check))
            })
            .await
            .map_err(|e| e.code)??;
        }
        let c = txn::TxnCommit {
            id: req.transactional_id.to_string(),
            group: group.clone(),
            producer_id: req.producer_id.0,
            epoch: req.producer_epoch,
            topics,
        };
        let id = c.id.clone();
        on_txn(shard, &id, move |s| async move {
            txn::txn_offset_commit(&s, c, version).await
        })
        .await
    }
    .await;
    let codes = super::groups::codes_or_error(r, asked);
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
                                    .with_error_code(c)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
