//! Dead-letter records (KIP-1191): a record a consumer REJECTs, or that reaches the
//! delivery count limit, is copied to the group's DLQ topic before its archived state
//! is made durable, so a crash in between at worst writes the copy again.
//!
//! The copy carries context headers (names below; `__dlq.errors.*`, in the style of
//! Kafka Connect's `__connect.errors.*`) and, with `errors.deadletterqueue.copy.record.enable`,
//! the original key, value and headers. The write itself goes through a [`DlqSink`]
//! that `broker.rs` gives the partition manager (it checks the DLQ topic, creates it if
//! allowed, and appends on its owner with acks=all).

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures_util::future::LocalBoxFuture;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::state::Archived;
use crate::kafka::{ErrorCode, KafkaError};
use crate::log::PartitionLog;
use crate::runtime::now_ms;

pub use crate::kafka::dlq::{H_DELIVERY_COUNT, H_GROUP, H_OFFSET, H_PARTITION, H_REASON, H_TOPIC};

/// Appends a record batch to a DLQ topic durably, or says why not.
pub type DlqSink = Rc<dyn Fn(String, Bytes) -> LocalBoxFuture<'static, Result<(), KafkaError>>>;

/// What one DLQ write is about.
pub struct Source<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub group: &'a str,
    pub copy_record: bool,
}

fn header(k: &str, v: String) -> (StrBytes, Option<Bytes>) {
    (StrBytes::from_string(k.to_string()), Some(Bytes::from(v)))
}

/// The original record at `offset`, if the log still has it.
async fn original(log: &PartitionLog, offset: i64) -> Option<Record> {
    let slice = log.read(offset, 1).await.ok()?;
    let mut buf = Vec::new();
    slice.read_to_vec(&mut buf).await.ok()?;
    let mut bytes = Bytes::from(buf);
    while !bytes.is_empty() {
        let set = RecordBatchDecoder::decode(&mut bytes).ok()?;
        if let Some(r) = set.records.into_iter().find(|r| r.offset == offset) {
            return Some(r);
        }
    }
    None
}

/// One batch with a dead-letter record per archived record.
pub async fn build(
    log: &PartitionLog,
    src: &Source<'_>,
    archived: &[Archived],
) -> Result<Bytes, KafkaError> {
    let mut records = Vec::with_capacity(archived.len());
    for (i, a) in archived.iter().enumerate() {
        let orig = if src.copy_record {
            original(log, a.offset).await
        } else {
            None
        };
        let mut headers: IndexMap<StrBytes, Option<Bytes>> = IndexMap::new();
        let context = [
            header(H_TOPIC, src.topic.to_string()),
            header(H_PARTITION, src.partition.to_string()),
            header(H_OFFSET, a.offset.to_string()),
            header(H_GROUP, src.group.to_string()),
            header(H_DELIVERY_COUNT, a.delivery_count.to_string()),
            header(H_REASON, a.reason.as_str().to_string()),
        ];
        let (key, value) = match orig {
            Some(r) => {
                headers.extend(r.headers);
                (r.key, r.value)
            }
            None => (None, None),
        };
        headers.extend(context);
        records.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now_ms(),
            key,
            value,
            headers,
        });
    }
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &opts).map_err(|e| {
        KafkaError::new(
            ErrorCode::UnknownServerError,
            format!("encoding dead-letter records: {e}"),
        )
    })?;
    Ok(buf.freeze())
}
