//! Produce: each partition's record set goes to its owner shard as it arrived (a
//! `Bytes` slice of the request frame, no copy), is validated and appended there;
//! the answers are merged in request order. acks=0 gets no response at all.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::errors::{self, KafkaError};
use super::on_owner;
use crate::log::{batch, AppendInfo};
use crate::producer::state::Check;
use crate::shard::Shard;

/// Append on the owner shard; with acks=all also wait for the flush policy's durability.
/// An idempotent batch is checked against its producer's sequence first (synchronously,
/// so pipelined batches are judged in arrival order); a duplicate is answered with the
/// offsets of the copy already in the log.
async fn append_owned(
    shard: Rc<Shard>,
    topic: Arc<str>,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> Result<AppendInfo, KafkaError> {
    let part = super::owned_partition(&shard, &topic, partition)?;
    let log = &part.log;
    let check = part.producers.borrow_mut().check(&records, now_ms())?;
    let info = match check {
        Check::Duplicate {
            base_offset,
            last_offset,
        } => AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms: -1,
            log_start_offset: log.log_start_offset(),
        },
        Check::Plain => log.append(&records).await?,
        // A transactional batch starts its producer's transaction here when its offsets
        // are reserved, before any reader can see it (one branch when not).
        Check::Append(pb) => match log
            .append_with(&records, |base, _| {
                if pb.transactional {
                    part.producers.borrow_mut().begin_txn(&pb, base, now_ms());
                }
            })
            .await
        {
            Ok(info) => {
                part.producers
                    .borrow_mut()
                    .complete(&pb, info.base_offset, info.last_offset);
                info
            }
            Err(e) => {
                part.producers.borrow_mut().abort(&pb);
                return Err(e.into());
            }
        },
    };
    if !matches!(check, Check::Duplicate { .. }) {
        shard
            .metrics
            .record_append(records.len(), info.last_offset - info.base_offset + 1);
    }
    if acks == -1 {
        log.wait_durable(info.last_offset).await?;
    }
    Ok(info)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

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
                .with_error_code(e.code)
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

/// A transactional Produce (records with the transactional bit, KIP-98): the partitions
/// of the request are all transactional with one producer id and epoch, or none is, and
/// the request names its transactional id. The first batch header of each partition is
/// enough: the owner refuses a record set whose batches disagree (`producer_batch`), and
/// checks that the partition is in the producer's open transaction (`ProducerTable::check`,
/// KIP-890's verification, set by AddPartitionsToTxn and cleared by the marker).
fn verify_transaction(req: &ProduceRequest) -> Result<(), KafkaError> {
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
                    errors::INVALID_RECORD,
                    "a produce request mixes transactional and other batches, or producers",
                ));
            }
            Some(_) => {}
        }
    }
    if !matches!(txn, Some((true, _, _))) {
        return Ok(());
    }
    if req.transactional_id.as_ref().is_none_or(|id| id.is_empty()) {
        return Err(KafkaError::new(
            errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            "transactional records without a transactional id",
        ));
    }
    Ok(())
}

/// `None` when acks=0: the client expects no response. `throttle_time_ms` (v1+) is
/// what the connection measured: time waited for produce credit, or a quota's
/// throttle (KIP-219).
pub async fn handle(
    shard: &Rc<Shard>,
    req: ProduceRequest,
    version: i16,
    throttle_time_ms: i32,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let bad_acks = !matches!(acks, -1..=1);
    let txn_refused = verify_transaction(&req).err();
    let reg = shard.registry();
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for t in req.topic_data {
        let meta = reg.topic(t.name.as_str()).cloned();
        let work = t.partition_data.into_iter().map(|p| {
            let meta = meta.clone();
            let txn_refused = txn_refused.clone();
            let topic_name = t.name.0.as_str().to_string();
            async move {
                let index = p.index;
                let r = async {
                    if bad_acks {
                        return Err(KafkaError::new(
                            errors::INVALID_REQUIRED_ACKS,
                            format!("acks must be 0, 1 or -1, got {acks}"),
                        ));
                    }
                    if let Some(e) = txn_refused {
                        return Err(e);
                    }
                    let meta = meta.ok_or_else(|| {
                        KafkaError::new(
                            errors::UNKNOWN_TOPIC_OR_PARTITION,
                            format!("topic '{topic_name}' does not exist"),
                        )
                    })?;
                    let owner = meta.owner(index).ok_or_else(|| {
                        KafkaError::new(
                            errors::UNKNOWN_TOPIC_OR_PARTITION,
                            format!("partition {topic_name}-{index} does not exist"),
                        )
                    })?;
                    let records = p.records.ok_or_else(|| {
                        KafkaError::new(errors::INVALID_RECORD, "produce without records")
                    })?;
                    let topic = meta.name.clone();
                    on_owner(shard, owner, move |s| {
                        append_owned(s, topic, index, records, acks)
                    })
                    .await
                }
                .await;
                partition_response(index, r, version)
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
