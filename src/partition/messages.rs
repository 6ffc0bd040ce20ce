//! What other shards may ask of the partitions a shard owns: every operation on a
//! partition that crosses cores is one of these messages, answered by the owner's
//! `PartitionManager`. A call to the own shard runs inline (no hop).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::read::{CopyAllowance, Read, ReadBatch};
use super::{long_poll, share, txn, PartitionManager};
use crate::kafka::KafkaError;
use crate::log::AppendInfo;
use crate::runtime::Message;

/// Produce: append a record set (a slice of the request frame, not copied) and, with
/// acks=all, wait for the flush policy's durability.
pub struct Append {
    pub topic: Arc<str>,
    pub partition: i32,
    pub records: Bytes,
    pub acks: i16,
}

impl Message for Append {
    type Service = PartitionManager;
    type Reply = Result<AppendInfo, KafkaError>;
    const NAME: &'static str = "partition.append";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        pm.append(&self.topic, self.partition, self.records, self.acks)
            .await
    }
}

/// Metadata: the partitions this owner cannot append to now, with whether their log is
/// offline until a restart (an I/O error) rather than out of space for now.
#[derive(Clone, Copy)]
pub struct ListOffline;

impl Message for ListOffline {
    type Service = PartitionManager;
    type Reply = Vec<(Arc<str>, i32, bool)>;
    const NAME: &'static str = "partition.list_offline";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        pm.offline()
    }
}

/// Fetch: read these partitions in order within `budget` bytes (one message per owner,
/// not per partition).
pub struct ReadPartitions {
    pub reads: Vec<Read>,
    pub budget: usize,
    /// This owner has the request's first partition (KIP-74: its first batch comes back
    /// whole whatever the limits).
    pub first: bool,
    pub allowance: CopyAllowance,
}

impl Message for ReadPartitions {
    type Service = PartitionManager;
    type Reply = ReadBatch;
    const NAME: &'static str = "partition.read";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        pm.read(&self.reads, self.budget, self.first, self.allowance)
            .await
    }
}

/// Fetch that waits on the owner (`long_poll`): read without copying; until the reads
/// bring `min_bytes`, wait for an append, the deadline or `CancelWait`, and read again.
pub struct ReadOrWait(pub long_poll::ParkedRead);

impl Message for ReadOrWait {
    type Service = PartitionManager;
    type Reply = ReadBatch;
    const NAME: &'static str = "partition.read_or_wait";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        pm.read_or_wait(self.0).await
    }
}

/// A `ReadOrWait` answers now with what it has (another owner of its fetch answered).
pub struct CancelWait(pub long_poll::WaitId);

impl Message for CancelWait {
    type Service = PartitionManager;
    type Reply = ();
    const NAME: &'static str = "partition.cancel_wait";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        pm.parked.cancel(self.0)
    }
}

/// A long-poll: resolves when any of the partitions has data past its offset, after
/// `timeout`, or at shutdown; with `share`, also at the next share acknowledgement or
/// release on the owner (a ShareFetch waiting for a freed lock).
pub struct WaitForData {
    pub reads: Vec<Read>,
    pub timeout: Duration,
    pub share: bool,
}

impl Message for WaitForData {
    type Service = PartitionManager;
    type Reply = ();
    const NAME: &'static str = "partition.wait";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        pm.wait_any(&self.reads, self.timeout, self.share).await
    }
}

/// ListOffsets of one partition: (offset, timestamp) for a timestamp or a special one.
pub struct ListOffset {
    pub topic: Arc<str>,
    pub partition: i32,
    pub timestamp: i64,
    pub committed: bool,
}

impl Message for ListOffset {
    type Service = PartitionManager;
    type Reply = Result<(i64, i64), KafkaError>;
    const NAME: &'static str = "partition.list_offset";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        let part = pm.get(&self.topic, self.partition)?;
        part.offset_for_time(self.timestamp, self.committed).await
    }
}

/// DeleteRecords of one partition: the new low watermark.
pub struct DeleteRecords {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

impl Message for DeleteRecords {
    type Service = PartitionManager;
    type Reply = Result<i64, KafkaError>;
    const NAME: &'static str = "partition.delete_records";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        pm.get(&self.topic, self.partition)?
            .delete_records(self.offset)
            .await
    }
}

/// From the transaction coordinator: the producer (id, epoch) may write transactional
/// batches to the partition until its next marker (KIP-890's verification).
pub struct AllowTxn {
    pub topic: Arc<str>,
    pub partition: i32,
    pub producer_id: i64,
    pub epoch: i16,
}

impl Message for AllowTxn {
    type Service = PartitionManager;
    type Reply = Result<(), KafkaError>;
    const NAME: &'static str = "partition.allow_txn";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        let part = pm.get(&self.topic, self.partition)?;
        part.producers
            .borrow_mut()
            .allow_txn(self.producer_id, self.epoch);
        Ok(())
    }
}

/// From the transaction coordinator: write the marker that ends the producer's
/// transaction on the partition, durably. A partition deleted meanwhile has nothing to
/// mark (Ok).
pub struct WriteMarker {
    pub topic: Arc<str>,
    pub partition: i32,
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

impl Message for WriteMarker {
    type Service = PartitionManager;
    type Reply = Result<(), KafkaError>;
    const NAME: &'static str = "partition.write_marker";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        let Some(part) = pm.find(&self.topic, self.partition) else {
            return Ok(());
        };
        txn::write_marker(
            &part,
            self.producer_id,
            self.epoch,
            self.commit,
            self.coordinator_epoch,
        )
        .await
        .map(|_| ())
    }
}

/// ShareFetch (KIP-932): acquire records of these partitions for a member of a share
/// group (one message per owner).
pub struct ShareFetch(pub share::ShareAsk);

impl Message for ShareFetch {
    type Service = PartitionManager;
    type Reply = Vec<Result<share::ShareOut, KafkaError>>;
    const NAME: &'static str = "partition.share_fetch";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        pm.share_fetch(self.0).await
    }
}

/// ShareAcknowledge, or the acknowledgements a ShareFetch carries: answered once the
/// share partitions' new state is durable.
pub struct ShareAck {
    pub group: Arc<str>,
    pub member: Arc<str>,
    pub config: share::ShareConfig,
    pub acks: Vec<share::ShareAcks>,
}

impl Message for ShareAck {
    type Service = PartitionManager;
    type Reply = Vec<crate::kafka::ErrorCode>;
    const NAME: &'static str = "partition.share_ack";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        pm.share_ack(&self.group, &self.member, &self.config, self.acks)
            .await
    }
}

/// A member's share session closed: its acquired records on these partitions go back.
pub struct ShareRelease {
    pub group: Arc<str>,
    pub member: Arc<str>,
    pub config: share::ShareConfig,
    pub reads: Vec<share::ShareRead>,
}

impl Message for ShareRelease {
    type Service = PartitionManager;
    type Reply = ();
    const NAME: &'static str = "partition.share_release";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        pm.share_release(&self.group, &self.member, &self.config, &self.reads)
            .await
    }
}

/// The share partitions this shard owns (of one group, or all).
#[derive(Clone)]
pub struct ShareDescribe {
    pub group: Option<String>,
}

impl Message for ShareDescribe {
    type Service = PartitionManager;
    type Reply = Vec<share::ShareView>;
    const NAME: &'static str = "partition.share_describe";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        pm.share_views(self.group.as_deref())
    }
}

/// AlterShareGroupOffsets (Some) / DeleteShareGroupOffsets (None) of one partition.
pub struct ShareReset {
    pub group: Arc<str>,
    pub topic: Arc<str>,
    pub partition: i32,
    pub start: Option<i64>,
}

impl Message for ShareReset {
    type Service = PartitionManager;
    type Reply = Result<(), KafkaError>;
    const NAME: &'static str = "partition.share_reset";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        pm.share_reset(&self.group, &self.topic, self.partition, self.start)
            .await
    }
}

/// DescribeLogDirs: the bytes on disk of every partition this shard owns, and the
/// space of the file system holding the data directory.
#[derive(Clone)]
pub struct PartitionSizes;

/// What `PartitionSizes` answers.
#[derive(Debug, Clone, Default)]
pub struct LogDirReport {
    /// (topic, partition, bytes of its segments).
    pub partitions: Vec<(Arc<str>, i32, u64)>,
    /// Size and free space (for an unprivileged user) of the file system, if known.
    pub total_bytes: Option<u64>,
    pub usable_bytes: Option<u64>,
}

impl Message for PartitionSizes {
    type Service = PartitionManager;
    type Reply = LogDirReport;
    const NAME: &'static str = "partition.sizes";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        let partitions = pm
            .owned()
            .into_iter()
            .map(|(t, p, part)| (t, p, part.log.size_bytes()))
            .collect();
        let space = super::manager::file_system_space(pm.data_dir());
        LogDirReport {
            partitions,
            total_bytes: space.map(|s| s.0),
            usable_bytes: space.map(|s| s.1),
        }
    }
}

/// One producer with state on a partition (DescribeProducers, KIP-664).
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub epoch: i16,
    /// The sequence of its last record here, -1 if none.
    pub last_sequence: i32,
    pub last_timestamp_ms: i64,
    /// The first offset of its open transaction here, -1 if none.
    pub txn_start_offset: i64,
}

/// DescribeProducers of one partition: its active producers.
pub struct DescribeProducers {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl Message for DescribeProducers {
    type Service = PartitionManager;
    type Reply = Result<Vec<ProducerInfo>, KafkaError>;
    const NAME: &'static str = "partition.describe_producers";

    async fn handle(self, pm: Rc<PartitionManager>) -> Self::Reply {
        let part = pm.get(&self.topic, self.partition)?;
        let table = part.producers.borrow();
        Ok(table
            .entries()
            .into_iter()
            .map(|e| ProducerInfo {
                producer_id: e.producer_id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp_ms: e.last_update_ms,
                txn_start_offset: e.txn_first_offset.unwrap_or(-1),
            })
            .collect())
    }
}
