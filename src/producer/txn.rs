//! The partition side of transactions (KIP-98): transaction markers, the last stable
//! offset and the aborted transactions a read_committed fetch reports.
//!
//! Everything here runs on the partition's owner shard. The transaction coordinator
//! (on the shard that owns the transactional id) calls `write_marker` there, over the
//! mesh, once per partition of an ending transaction.
//!
//! Order: a marker and a data batch of the same producer change the producer state in
//! the order of their offsets, because both do it in the log's append hook, which runs
//! when the offsets are reserved (strictly in call order). The fence (epoch check) of
//! a marker runs when it is called, like the sequence check of a data batch.

use super::recovery::CONTROL_COMMIT;
use super::state::AbortedTxn;
use crate::log::batch::BatchBuilder;
use crate::protocol::errors::KafkaError;
use crate::shard::Partition;

/// Appends a transaction marker (control batch) for `producer_id` to the partition and
/// ends its ongoing transaction there. Returns the marker's offset. Waits for durability
/// as the topic's flush policy requires for acks=all (flush=always: the fdatasync).
///
/// Refused with PRODUCER_FENCED when the partition knows the producer with a newer
/// epoch; otherwise the producer's epoch here is raised to `epoch`. An ABORT of an
/// ongoing transaction adds `(producer_id, first offset, marker offset)` to the
/// aborted index. A marker for a producer with no transaction here is still written,
/// as Kafka does.
pub async fn write_marker(
    part: &Partition,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
) -> Result<i64, KafkaError> {
    let now = now_ms();
    part.producers
        .borrow_mut()
        .fence_for_marker(producer_id, epoch, now)?;
    let marker = marker_batch(producer_id, epoch, commit, coordinator_epoch, now);
    let end = |offset: i64, _| {
        part.producers
            .borrow_mut()
            .end_txn(producer_id, commit, offset)
    };
    let info = part.log.append_with(&marker, end).await?;
    debug_assert_eq!(info.base_offset, info.last_offset, "a marker takes one offset");
    part.producers
        .borrow_mut()
        .prune(part.log.log_start_offset(), part.log.high_watermark());
    part.log.wait_durable(info.last_offset).await?;
    Ok(info.base_offset)
}

/// The control batch of a marker: RecordBatch v2, attributes transactional | control,
/// baseSequence -1, one record with key `0, type` and value `0, coordinator_epoch`.
pub fn marker_batch(
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    now_ms: i64,
) -> Vec<u8> {
    let mut b = BatchBuilder::new(now_ms);
    b.producer_id = producer_id;
    b.producer_epoch = epoch;
    let batch = b.build_control(commit, coordinator_epoch);
    debug_assert_eq!(
        super::recovery::control_type(&batch),
        Some(if commit { CONTROL_COMMIT } else { 0 })
    );
    batch
}

/// KIP-98: `min(first offset of every ongoing transaction, high watermark)`.
pub fn last_stable_offset(part: &Partition) -> i64 {
    let log = &part.log;
    part.producers
        .borrow()
        .last_stable_offset(log.high_watermark(), log.log_start_offset())
}

/// The aborted transactions overlapping fetched data `[from, to)`: `last_offset >=
/// from` and `first_offset < to` (Kafka's rule for read_committed fetches).
pub fn aborted_transactions(part: &Partition, from: i64, to: i64) -> Vec<AbortedTxn> {
    part.producers.borrow().aborted_in(from, to)
}

/// For a read_committed long-poll at `offset`: wait until the high watermark passes
/// the returned offset. The last stable offset only moves when the high watermark does
/// (a marker ends its transaction for the LSO once it is below the high watermark), so
/// waiting for the next append cannot miss an advance, and does not spin.
pub fn committed_wait_target(part: &Partition, offset: i64) -> i64 {
    if last_stable_offset(part) > offset {
        // The LSO passed `offset` since the read (so did the high watermark): at once.
        return offset;
    }
    offset.max(part.log.high_watermark())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
