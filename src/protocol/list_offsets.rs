//! ListOffsets: earliest (-2), latest (-1), earliest local (-4), max timestamp (-3),
//! or the first offset whose timestamp is at or after a given time. With
//! isolation_level 1 (read_committed, v2+) latest is the last stable offset (KIP-98).

use std::rc::Rc;

use futures_util::future::join_all;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::*;

use super::errors::{self, KafkaError};
use super::{on_owner, owned_log};
use crate::producer::txn;
use crate::shard::Shard;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

/// (offset, timestamp) for `ts` on the owner shard.
async fn lookup(
    shard: Rc<Shard>,
    topic: std::sync::Arc<str>,
    partition: i32,
    ts: i64,
    committed: bool,
) -> Result<(i64, i64), KafkaError> {
    if ts == LATEST && committed {
        if let Some(part) = shard.partition(&topic, partition) {
            return Ok((txn::last_stable_offset(&part), -1));
        }
    }
    let log = owned_log(&shard, &topic, partition)?;
    match ts {
        LATEST => Ok((log.high_watermark(), -1)),
        EARLIEST | EARLIEST_LOCAL => Ok((log.log_start_offset(), -1)),
        MAX_TIMESTAMP => Err(KafkaError::new(
            errors::UNSUPPORTED_VERSION,
            "ListOffsets by max timestamp (-3) is not supported yet",
        )),
        ts if ts < 0 => Err(KafkaError::new(
            errors::INVALID_REQUEST,
            format!("unknown special timestamp {ts}"),
        )),
        ts => match log.offset_for_timestamp(ts).await? {
            None => Ok((-1, -1)),
            Some((base, max_ts)) => Ok(first_record_at(&log, base, ts)
                .await?
                .unwrap_or((base, max_ts))),
        },
    }
}

/// The log finds the batch; Kafka answers with the first *record* at or after `ts`,
/// so look inside that batch (decompressing it: ListOffsets is not the hot path).
async fn first_record_at(
    log: &crate::log::PartitionLog,
    base: i64,
    ts: i64,
) -> Result<Option<(i64, i64)>, KafkaError> {
    let slice = log.read(base, 1).await?;
    let mut buf = Vec::new();
    slice.read_to_vec(&mut buf).await?;
    let mut bytes = bytes::Bytes::from(buf);
    let set = match kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes) {
        Ok(set) => set,
        Err(e) => {
            tracing::warn!("cannot decode batch at offset {base} for a timestamp lookup: {e}");
            return Ok(None);
        }
    };
    let start = log.log_start_offset();
    Ok(set
        .records
        .iter()
        .find(|r| r.offset >= start && r.offset >= base && r.timestamp >= ts)
        .map(|r| (r.offset, r.timestamp)))
}

pub async fn handle(
    shard: &Rc<Shard>,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let reg = shard.registry();
    let committed = req.isolation_level == 1;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let meta = reg.topic(t.name.as_str()).cloned();
        let parts = t.partitions.iter().map(|p| {
            let meta = meta.clone();
            let index = p.partition_index;
            let ts = p.timestamp;
            async move {
                let r = match meta.as_ref().and_then(|m| m.owner(index).map(|o| (m, o))) {
                    None => Err(KafkaError::new(
                        errors::UNKNOWN_TOPIC_OR_PARTITION,
                        "unknown topic or partition",
                    )),
                    Some((m, owner)) => {
                        let topic = m.name.clone();
                        on_owner(shard, owner, move |s| {
                            lookup(s, topic, index, ts, committed)
                        })
                        .await
                    }
                };
                let resp = ListOffsetsPartitionResponse::default().with_partition_index(index);
                match r {
                    Ok((offset, timestamp)) => {
                        let r = resp.with_offset(offset).with_timestamp(timestamp);
                        if version >= 4 {
                            r.with_leader_epoch(0)
                        } else {
                            r
                        }
                    }
                    Err(e) => resp
                        .with_error_code(e.code)
                        .with_offset(-1)
                        .with_timestamp(-1),
                }
            }
        });
        let partitions = join_all(parts).await;
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}
