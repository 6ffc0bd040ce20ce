//! The state of a transactional id (KIP-98): its producer id and epoch, the phase of
//! its transaction, the partitions and groups in it and the offsets it will commit; and
//! the checks every request of an open transaction makes against it.

use rkyv::{Archive, Deserialize, Serialize};

use crate::kafka::ErrorCode;
use crate::runtime::now_ms;

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

/// An offset committed by TxnOffsetCommit, applied to its group when the transaction
/// commits and dropped when it aborts.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PendingOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TxnEntry {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub timeout_ms: i32,
    pub phase: Phase,
    /// Partitions of the open transaction (sorted, unique).
    pub partitions: Vec<(String, i32)>,
    /// Groups added by AddOffsetsToTxn.
    pub groups: Vec<String>,
    pub offsets: Vec<PendingOffset>,
    /// When the open transaction started (its first AddPartitions/AddOffsets).
    pub started_ms: i64,
    pub updated_ms: i64,
    /// Raised by every saved change: the newest copy of an id wins when several shards'
    /// files hold one (the shard count changed).
    pub version: u64,
    /// The epoch before the last bump (-1: none). A KIP-360 InitProducerId carrying it
    /// is the fenced-by-timeout producer recovering, or a retry whose answer was lost:
    /// it gets the current epoch instead of PRODUCER_FENCED, as in Kafka.
    pub last_epoch: i16,
}

impl TxnEntry {
    /// A transactional id seen for the first time: its producer id at epoch 0.
    pub(super) fn new(id: &str, producer_id: i64, timeout_ms: i32) -> TxnEntry {
        TxnEntry {
            transactional_id: id.to_string(),
            producer_id,
            epoch: 0,
            timeout_ms,
            phase: Phase::Empty,
            partitions: Vec::new(),
            groups: Vec::new(),
            offsets: Vec::new(),
            started_ms: 0,
            updated_ms: 0,
            version: 0,
            last_epoch: -1,
        }
    }

    pub(super) fn clear(&mut self) {
        self.partitions.clear();
        self.groups.clear();
        self.offsets.clear();
    }
}

/// PRODUCER_FENCED exists from Kafka 2.7 (KIP-588); older request versions get
/// INVALID_PRODUCER_EPOCH for the same condition.
pub fn fenced(version: i16, first_version_with_fenced: i16) -> ErrorCode {
    if version >= first_version_with_fenced {
        ErrorCode::ProducerFenced
    } else {
        ErrorCode::InvalidProducerEpoch
    }
}

/// Checks shared by the requests of an open transaction: the id is known, the producer
/// id is its own, the epoch current, and no Prepare phase is running.
pub(super) fn check_producer(
    e: Option<&TxnEntry>,
    producer_id: i64,
    epoch: i16,
    fenced_code: ErrorCode,
) -> Result<&TxnEntry, ErrorCode> {
    let e = e.ok_or(ErrorCode::InvalidProducerIdMapping)?;
    if e.producer_id != producer_id {
        return Err(ErrorCode::InvalidProducerIdMapping);
    }
    if e.epoch != epoch {
        return Err(fenced_code);
    }
    if matches!(e.phase, Phase::PrepareCommit | Phase::PrepareAbort) {
        return Err(ErrorCode::ConcurrentTransactions);
    }
    Ok(e)
}

/// The entry with its transaction open (a new one starts if none was).
pub(super) fn opened(e: &TxnEntry) -> TxnEntry {
    let mut n = e.clone();
    if n.phase != Phase::Ongoing {
        n.clear();
        n.phase = Phase::Ongoing;
        n.started_ms = now_ms();
    }
    n
}

/// The next epoch of the id, or a fresh producer id at epoch 0 when the epoch would
/// run out.
pub(super) fn bump_epoch(e: &mut TxnEntry, fresh: Option<i64>) {
    match fresh {
        Some(pid) if e.epoch >= i16::MAX - 2 => {
            e.producer_id = pid;
            e.epoch = 0;
        }
        _ => e.epoch += 1,
    }
}
