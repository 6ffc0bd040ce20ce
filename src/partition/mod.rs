//! The owner side of a partition: everything that runs on the shard that owns it,
//! behind one facade.
//!
//! Offers:
//! - [`Partition`]: one partition's log and producer state, with `append` (idempotence
//!   and transaction checks, then the log), `read` (zero-copy file ranges or copied
//!   bytes, within the fetch allowance the caller holds), `wait_target`,
//!   `offset_for_time`, `delete_records`, transaction markers, the last stable offset
//!   and the aborted transactions (`txn`), retention and the producer-state snapshot;
//! - [`PartitionManager`]: the partitions a shard owns — opened, closed and removed as
//!   the registry changes, and their background work (retention, snapshots);
//! - [`messages`]: what other shards may ask of a partition (the only way in from
//!   another core).
//!
//! Nothing here knows the wire format of a request; errors are `KafkaError`s because
//! they go to a client as they are.

pub mod cleaner;
pub mod codec;
pub mod compress;
pub mod error;
pub mod long_poll;
pub mod manager;
pub mod messages;
pub mod producer;
pub mod read;
pub mod share;
#[cfg(test)]
pub(crate) mod test_support;
pub mod txn;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::Bytes;
use tracing::warn;

use crate::cluster::Compression;
use crate::kafka::{ErrorCode, KafkaError};
use crate::log::{AppendInfo, PartitionLog};
use crate::runtime::now_ms;
use producer::state::{Check, ProducerTable};

pub use manager::PartitionManager;
pub use read::{Read, ReadOut, Records};

/// ListOffsets' special timestamps.
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;

/// A partition this shard owns: its log and its idempotent producers.
pub struct Partition {
    pub log: Rc<PartitionLog>,
    pub producers: RefCell<ProducerTable>,
    /// The topic's compression.type: batches in another codec are recompressed
    /// before they are written (`compress`).
    compression: Cell<Compression>,
    /// Where compaction stands (`cleanup.policy=compact`).
    pub cleaner: cleaner::CleanerState,
    /// The fingerprint of the producer-state snapshot on disk (a stop skips writing it
    /// again unchanged).
    snapshot_on_disk: Option<u32>,
    /// Record bytes handed to consumers (Fetch and ShareFetch), for the console's fetch
    /// rate per topic.
    pub fetched_bytes: Cell<u64>,
}

impl Partition {
    /// Open (and recover) the log in `dir`, its producer state and where its cleaner
    /// left it.
    pub async fn open(
        dir: &std::path::Path,
        config: crate::log::LogConfig,
    ) -> Result<Partition, KafkaError> {
        let log = PartitionLog::open(dir, config).await?;
        let (table, snapshot_on_disk) = producer::recovery::load(&log).await?;
        let cleaner = cleaner::checkpoint::load(&log);
        Ok(Partition {
            log,
            producers: RefCell::new(table),
            compression: Cell::new(Compression::Producer),
            cleaner,
            snapshot_on_disk,
            fetched_bytes: Cell::new(0),
        })
    }

    /// What a cleaning pass would take of this compacted partition now (None: not
    /// compacted, or nothing cleanable).
    pub fn cleanable(&self, now: i64) -> Option<cleaner::Cleanable> {
        let lso = txn::last_stable_offset(self);
        cleaner::cleanable(&self.log, &self.cleaner, lso, now)
    }

    /// The dirty ratio of a compacted partition due for cleaning, else None.
    pub fn cleaning_due(&self, now: i64) -> Option<f64> {
        let c = self.cleanable(now)?;
        cleaner::due(&self.log, &self.cleaner, &c, now)
    }

    /// One cleaning pass (`cleaner`); None when there was nothing to clean.
    pub async fn clean(
        &self,
        config: cleaner::CleanerConfig,
        now: i64,
    ) -> Result<Option<cleaner::PassStats>, KafkaError> {
        let lso = txn::last_stable_offset(self);
        let stats =
            cleaner::clean(&self.log, &self.cleaner, &self.producers, lso, config, now).await?;
        if stats.is_some_and(|s| s.aborts_forgotten > 0) {
            // The forgotten entries must not come back from an older snapshot.
            self.save_producer_snapshot().await?;
        }
        Ok(stats)
    }

    /// Follow the topic's compression.type from the next append on.
    pub fn set_compression(&self, c: Compression) {
        self.compression.set(c);
    }

    /// Append a record set; with acks=all also wait for the flush policy's durability.
    /// An idempotent batch is checked against its producer's sequence first
    /// (synchronously, so pipelined batches are judged in arrival order); a duplicate is
    /// answered with the offsets of the copy already in the log. The second value says
    /// whether records were appended (false for a duplicate). A topic with a
    /// compression.type gets the batches in its codec (`compress`).
    pub async fn append(
        &self,
        records: &Bytes,
        acks: i16,
    ) -> Result<(AppendInfo, bool), KafkaError> {
        let recompressed = compress::recompress(records, self.compression.get())?;
        let records = recompressed.as_ref().unwrap_or(records);
        let log = &self.log;
        let check = self.producers.borrow_mut().check(records, now_ms())?;
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
            Check::Plain => log.append(records).await?,
            // A transactional batch starts its producer's transaction here when its
            // offsets are reserved, before any reader can see it.
            Check::Append(pb) => match log
                .append_with(records, |base, _| {
                    if pb.transactional {
                        self.producers.borrow_mut().begin_txn(&pb, base, now_ms());
                    }
                })
                .await
            {
                Ok(info) => {
                    self.producers
                        .borrow_mut()
                        .complete(&pb, info.base_offset, info.last_offset);
                    info
                }
                Err(e) => {
                    self.producers.borrow_mut().abort(&pb);
                    return Err(e.into());
                }
            },
        };
        if acks == -1 && is_transactional(records) {
            // Durable whatever the flush policy, as the markers are: the client commits
            // only after every record is acknowledged, and the coordinator's journal is
            // always synced, so a record lost to a power cut after its answer would leave
            // a transaction committed without it (its COMMIT marker written after the
            // restart where the lost records had been).
            log.sync_through(info.last_offset).await?;
        } else if acks == -1 {
            log.wait_durable(info.last_offset).await?;
        }
        Ok((info, !matches!(check, Check::Duplicate { .. })))
    }

    /// The offset a long-poll at `offset` waits to see passed (read_committed waits on
    /// the last stable offset, which moves only with the high watermark).
    pub fn wait_target(&self, offset: i64, committed: bool) -> i64 {
        if committed {
            txn::committed_wait_target(self, offset)
        } else {
            offset
        }
    }

    /// ListOffsets: (offset, timestamp) for a timestamp or one of the special ones.
    /// With `committed` (read_committed) latest is the last stable offset (KIP-98).
    /// Max timestamp (KIP-734) is the first record with the largest timestamp; without
    /// tiered storage earliest local (KIP-405) is earliest and latest tiered (KIP-1005)
    /// is -1, as Kafka answers when remote storage is off.
    pub async fn offset_for_time(
        &self,
        ts: i64,
        committed: bool,
    ) -> Result<(i64, i64), KafkaError> {
        let log = &self.log;
        match ts {
            LATEST_TIMESTAMP if committed => Ok((txn::last_stable_offset(self), -1)),
            LATEST_TIMESTAMP => Ok((log.high_watermark(), -1)),
            EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => Ok((log.log_start_offset(), -1)),
            LATEST_TIERED_TIMESTAMP => Ok((-1, -1)),
            MAX_TIMESTAMP => match log.max_timestamp() {
                None => Ok((-1, -1)),
                Some(max) => self.first_at_or_after(max).await,
            },
            ts if ts < 0 => Err(KafkaError::new(
                ErrorCode::InvalidRequest,
                format!("unknown special timestamp {ts}"),
            )),
            ts => self.first_at_or_after(ts).await,
        }
    }

    /// The first record whose timestamp is at or after `ts`, or (-1, -1).
    async fn first_at_or_after(&self, ts: i64) -> Result<(i64, i64), KafkaError> {
        match self.log.offset_for_timestamp(ts).await? {
            None => Ok((-1, -1)),
            Some((base, max_ts)) => Ok(self
                .first_record_at(base, ts)
                .await?
                .unwrap_or((base, max_ts))),
        }
    }

    /// The log finds the batch; Kafka answers with the first *record* at or after `ts`,
    /// so look inside that batch (decompressing it: ListOffsets is not the hot path).
    async fn first_record_at(&self, base: i64, ts: i64) -> Result<Option<(i64, i64)>, KafkaError> {
        let log = &self.log;
        let slice = log.read(base, 1).await?;
        let mut buf = Vec::new();
        slice.read_to_vec(&mut buf).await?;
        let mut bytes = Bytes::from(buf);
        let set = match kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes) {
            Ok(set) => set,
            Err(e) => {
                warn!("cannot decode batch at offset {base} for a timestamp lookup: {e}");
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

    /// DeleteRecords: move the log start to `offset` (-1: the high watermark, Kafka's
    /// convention). Returns the new low watermark.
    pub async fn delete_records(&self, offset: i64) -> Result<i64, KafkaError> {
        let log = &self.log;
        let before = if offset == -1 {
            log.high_watermark()
        } else {
            offset
        };
        if before < 0 || before > log.high_watermark() {
            return Err(KafkaError::new(
                ErrorCode::OffsetOutOfRange,
                format!(
                    "offset {offset} is beyond the high watermark {}",
                    log.high_watermark()
                ),
            ));
        }
        Ok(log.delete_records(before).await?)
    }

    /// Expire idle producers and snapshot the rest, so a restart replays little of the
    /// log. Writes nothing when nothing changed.
    pub async fn save_producer_state(&self, expiration_ms: i64) -> Result<(), KafkaError> {
        self.producers.borrow_mut().expire(now_ms(), expiration_ms);
        self.save_producer_snapshot().await
    }

    async fn save_producer_snapshot(&self) -> Result<(), KafkaError> {
        let snapshot = {
            let mut table = self.producers.borrow_mut();
            table.prune(self.log.log_start_offset(), self.log.high_watermark());
            if !table.is_dirty() {
                return Ok(());
            }
            table.snapshot(self.log.high_watermark())
        };
        let path = producer::state::snapshot_path(self.log.dir());
        crate::store::save(&path, &snapshot)
            .await
            .map_err(|e| KafkaError::new(ErrorCode::KafkaStorageError, e.to_string()))
    }

    /// Flush and close the log and save the producer state (graceful shutdown); what
    /// fails is logged, and the rest is still done.
    pub async fn close(&self, topic: &str, partition: i32) {
        if let Err(e) = self.log.close().await {
            tracing::error!(%topic, partition, "closing the log failed: {e}");
        }
        let mut table = std::mem::take(&mut *self.producers.borrow_mut());
        if let Err(e) = producer::recovery::save(&self.log, &mut table).await {
            tracing::error!(%topic, partition, "saving producer state failed: {e}");
        }
    }
}

impl Partition {
    /// `close`'s first half for a stop of many partitions (`PartitionManager::close_all`):
    /// the log's, unsynced. False: nothing more to do (closed already, or it failed,
    /// logged).
    pub async fn close_unsynced(&self, topic: &str, partition: i32) -> bool {
        self.log.close_unsynced().await.unwrap_or_else(|e| {
            tracing::error!(%topic, partition, "closing the log failed: {e}");
            false
        })
    }

    /// The second half, after the file system was synced: the log's checkpoint, and the
    /// producer state staged for the caller to sync and install.
    pub async fn close_synced(
        &self,
        topic: &str,
        partition: i32,
    ) -> Option<crate::store::atomic::Staged> {
        if let Err(e) = self.log.close_synced(false).await {
            tracing::error!(%topic, partition, "closing the log failed: {e}");
        }
        let mut table = std::mem::take(&mut *self.producers.borrow_mut());
        producer::recovery::stage(&self.log, &mut table, self.snapshot_on_disk)
            .await
            .map_err(|e| tracing::error!(%topic, partition, "saving producer state failed: {e}"))
            .ok()
            .flatten()
    }
}

/// Whether a record set is a transactional producer's (the first batch says it for all:
/// a produce request carries one batch per partition).
fn is_transactional(records: &[u8]) -> bool {
    use crate::log::batch;
    records.len() >= batch::HEADER_LEN && batch::attributes(records) & batch::TRANSACTIONAL_BIT != 0
}
