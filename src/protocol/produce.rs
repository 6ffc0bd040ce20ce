//! Produce: each partition's record set goes to its owner shard as it arrived (a
//! `Bytes` slice of the request frame, no copy), is validated and appended there;
//! the answers are merged in request order. acks=0 gets no response at all.

use futures_util::future::join_all;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::route::owner_gone;
use crate::kafka::{ErrorCode, KafkaError};
use crate::log::{batch, AppendInfo};
use crate::partition::messages::Append;
use crate::protocol::authorized::{Authz, WRITE};
use crate::protocol::context::Context;

/// Fields exist from a version on (log_start_offset v5, error_message v8); the
/// encoder refuses a set field the version lacks, so set only what it has.
fn partition_response(
    index: i32,
    r: Result<AppendInfo, KafkaError>,
    version: i16,
) -> PartitionProduceResponse {
    let p = PartitionProduceResponse::default().with_index(index);
    match r {
        Ok(info) => {
            let p = p
                .with_base_offset(info.base_offset)
                .with_log_append_time_ms(info.log_append_time_ms);
            if version >= 5 {
                p.with_log_start_offset(info.log_start_offset)
            } else {
                p
            }
        }
        Err(e) => {
            let p = p
                .with_error_code(e.wire_code())
                .with_base_offset(-1)
                .with_log_append_time_ms(-1);
            if version >= 8 {
                p.with_error_message(Some(StrBytes::from_string(e.message)))
            } else {
                p
            }
        }
    }
}

/// A compacted topic takes only records with a key (Kafka's LogValidator): a record set
/// with keyless records is refused whole with INVALID_RECORD, and Produce v8+ names each
/// keyless record in `record_errors` (its position in the set).
fn check_keys(
    records: &bytes::Bytes,
    topic: &str,
    partition: i32,
    record_errors: &mut Vec<BatchIndexAndErrorMessage>,
) -> Result<(), KafkaError> {
    let keyless = crate::partition::cleaner::records::keyless(records)?;
    if keyless.is_empty() {
        return Ok(());
    }
    let msg = format!(
        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
    );
    *record_errors = keyless
        .into_iter()
        .map(|i| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(i)
                .with_batch_index_error_message(Some(StrBytes::from_string(msg.clone())))
        })
        .collect();
    Err(KafkaError::new(ErrorCode::InvalidRecord, msg))
}

/// A transactional Produce (records with the transactional bit, KIP-98): the partitions
/// of the request are all transactional with one producer id and epoch, or none is, and
/// the request names its transactional id. The first batch header of each partition is
/// enough: the owner refuses a record set whose batches disagree (`producer_batch`), and
/// checks that the partition is in the producer's open transaction (`ProducerTable::check`,
/// KIP-890's verification, set by AddPartitionsToTxn and cleared by the marker).
fn verify_transaction(az: &Authz<'_>, req: &ProduceRequest) -> Result<(), KafkaError> {
    let mut txn: Option<(bool, i64, i16)> = None;
    let firsts = req
        .topic_data
        .iter()
        .flat_map(|t| t.partition_data.iter())
        .filter_map(|p| {
            p.records
                .as_deref()
                .filter(|r| r.len() >= batch::HEADER_LEN)
        });
    for b in firsts {
        let this = (
            batch::attributes(b) & batch::TRANSACTIONAL_BIT != 0,
            batch::producer_id(b),
            batch::producer_epoch(b),
        );
        match txn {
            None => txn = Some(this),
            Some(first) if first.0 != this.0 || (this.0 && first != this) => {
                return Err(KafkaError::new(
                    ErrorCode::InvalidRecord,
                    "a produce request mixes transactional and other batches, or producers",
                ));
            }
            Some(_) => {}
        }
    }
    if !matches!(txn, Some((true, _, _))) {
        return Ok(());
    }
    match req.transactional_id.as_ref().filter(|id| !id.is_empty()) {
        None => Err(KafkaError::new(
            ErrorCode::TransactionalIdAuthorizationFailed,
            "transactional records without a transactional id",
        )),
        Some(id) => az.transactional_id(id, WRITE),
    }
}

/// `None` when acks=0: the client expects no response. `throttle_time_ms` (v1+) is
/// what the connection measured: time waited for produce credit, or a quota's
/// throttle (KIP-219).
pub async fn handle(
    ctx: &Context,
    az: &Authz<'_>,
    req: ProduceRequest,
    version: i16,
    throttle_time_ms: i32,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let bad_acks = !matches!(acks, -1..=1);
    let txn_refused = verify_transaction(az, &req).err();
    let reg = ctx.cluster.registry();
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for t in req.topic_data {
        let meta = reg.topic(t.name.as_str()).cloned();
        let denied = az.topic(t.name.as_str(), WRITE).err();
        let work = t.partition_data.into_iter().map(|p| {
            let meta = meta.clone();
            let txn_refused = txn_refused.clone();
            let denied = denied.clone();
            let topic_name = t.name.0.as_str().to_string();
            async move {
                let index = p.index;
                let mut record_errors = Vec::new();
                let r = async {
                    if bad_acks {
                        return Err(KafkaError::new(
                            ErrorCode::InvalidRequiredAcks,
                            format!("acks must be 0, 1 or -1, got {acks}"),
                        ));
                    }
                    if let Some(e) = txn_refused.or(denied) {
                        return Err(e);
                    }
                    let meta = meta.ok_or_else(|| super::route::unknown_topic(&topic_name))?;
                    let (topic, owner) = super::route::owner_in(&meta, index)?;
                    let records = p.records.ok_or_else(|| {
                        KafkaError::new(ErrorCode::InvalidRecord, "produce without records")
                    })?;
                    if meta.log_config.cleanup.compact {
                        check_keys(&records, &topic_name, index, &mut record_errors)?;
                    }
                    let msg = Append {
                        topic,
                        partition: index,
                        records,
                        acks,
                    };
                    ctx.mesh.call(owner, msg).await.map_err(owner_gone)?
                }
                .await;
                let resp = partition_response(index, r, version);
                if version >= 8 {
                    resp.with_record_errors(record_errors)
                } else {
                    resp
                }
            }
        });
        let partition_responses = join_all(work).await;
        topics.push(
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_topic_id(t.topic_id)
                .with_partition_responses(partition_responses),
        );
    }
    if acks == 0 {
        return None;
    }
    let resp = ProduceResponse::default().with_responses(topics);
    if version >= 1 {
        Some(resp.with_throttle_time_ms(throttle_time_ms))
    } else {
        Some(resp)
    }
}
