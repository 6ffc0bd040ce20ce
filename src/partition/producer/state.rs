//! Per-partition idempotent-producer state (KIP-98, KIP-360), kept by the partition's
//! owner shard next to its log.
//!
//! For each producer id: its epoch and the sequence ranges and offsets of its last 5
//! batches. A batch is checked (and its sequence range reserved) synchronously, before
//! the log assigns offsets, so pipelined batches of one producer are judged in the
//! order they arrive; the offsets are filled in when the append completes.
//!
//! Transactions (KIP-98) add, per partition: the first offset of each producer's
//! ongoing transaction (which bounds the last stable offset) and the aborted
//! transaction index that read_committed fetches report. Both change when offsets are
//! reserved (`begin_txn`, `end_txn`, called from the log's append hook), so they follow
//! the log's offset order exactly; `txn.rs` is the partition-level surface.
//!
//! The state survives restarts as a snapshot file in the partition directory plus a
//! replay of the batch headers the log holds after the snapshot's offset.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use rkyv::{Archive, Deserialize, Serialize};

use crate::kafka::{ErrorCode, KafkaError};

/// Kafka keeps the metadata of the last 5 batches per producer and partition, the
/// most `max.in.flight.requests.per.connection` an idempotent producer may use.
pub const BATCHES_KEPT: usize = 5;
/// Versioned by name: a snapshot of another layout (before transactions: `producer-state`)
/// is never read as this one; the state is then rebuilt from the log.
const SNAPSHOT_FILE: &str = "producer-state-v2";

/// A batch's sequence range and where it landed (offsets -1 while the append runs).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct SeqBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_update_ms: i64,
    pub batches: VecDeque<SeqBatch>,
    /// The first offset of this producer's ongoing transaction on the partition.
    pub txn_first_offset: Option<i64>,
}

/// An aborted transaction: its first offset and the offset of its ABORT marker.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// A transaction whose marker has its offset but may not be below the high watermark
/// yet: it still bounds the last stable offset (as Kafka's unreplicated transactions
/// do), and a snapshot taken before the marker shows it ongoing.
#[derive(Debug, Clone, Copy, PartialEq)]
struct EndingTxn {
    producer_id: i64,
    first_offset: i64,
    marker_offset: i64,
}

/// What is saved: the entries, valid for the log up to `offset` (exclusive).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ProducerSnapshot {
    pub offset: i64,
    pub entries: Vec<ProducerEntry>,
    /// Ordered by `last_offset`.
    pub aborted: Vec<AbortedTxn>,
}

/// The idempotence fields of a produce record set (all its batches must agree).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    /// Attributes bit 4: the batches belong to a transaction.
    pub transactional: bool,
}

/// The verdict on a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    /// Not idempotent (producer id -1): append as is.
    Plain,
    /// A new batch whose sequence range is now reserved: append it, then `complete`.
    Append(ProducerBatch),
    /// Already in the log: answer with its original offsets, do not write it again.
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// The next sequence after `seq`; sequences wrap from i32::MAX to 0 (KIP-98).
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// The sequence of the last record of a batch starting at `first` with `count` offsets.
pub fn last_seq(first: i32, last_offset_delta: i32) -> i32 {
    ((first as i64 + last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
}

/// Read the idempotence fields of a record set (one or more batches) without
/// validating it (the log does that). `None` when it is not idempotent. Batches of one
/// set must come from one producer with contiguous sequences.
pub fn producer_batch(records: &[u8]) -> Result<Option<ProducerBatch>, KafkaError> {
    use crate::log::batch as b;
    let mut pos = 0;
    let mut out: Option<ProducerBatch> = None;
    while pos + b::HEADER_LEN <= records.len() {
        let batch = &records[pos..];
        let len = b::batch_length(batch);
        if len < b::MIN_BATCH_LENGTH {
            break; // the log refuses it with CORRUPT_MESSAGE
        }
        let pid = b::producer_id(batch);
        let attributes = b::attributes(batch);
        let this = ProducerBatch {
            producer_id: pid,
            epoch: b::producer_epoch(batch),
            first_seq: b::base_sequence(batch),
            last_seq: last_seq(b::base_sequence(batch), b::last_offset_delta(batch)),
            transactional: attributes & b::TRANSACTIONAL_BIT != 0,
        };
        if attributes & b::CONTROL_BIT != 0 {
            // Kafka: only the transaction coordinator writes control batches.
            return Err(KafkaError::new(
                ErrorCode::InvalidRecord,
                "control batches are written by the transaction coordinator, not by producers",
            ));
        }
        if this.transactional && pid < 0 {
            return Err(KafkaError::new(
                ErrorCode::InvalidRecord,
                "a transactional batch needs a producer id",
            ));
        }
        out = match out {
            None if pid < 0 => None,
            None => Some(this),
            Some(prev) => {
                if pid != prev.producer_id
                    || this.epoch != prev.epoch
                    || this.first_seq != next_seq(prev.last_seq)
                    || this.transactional != prev.transactional
                {
                    return Err(KafkaError::new(
                        ErrorCode::InvalidRecord,
                        "the batches of one partition in a produce request must come from one producer with contiguous sequences, all transactional or none",
                    ));
                }
                Some(ProducerBatch {
                    last_seq: this.last_seq,
                    ..prev
                })
            }
        };
        pos += len as usize + b::LOG_OVERHEAD;
    }
    if let Some(pb) = out {
        if pb.first_seq < 0 || pb.epoch < 0 {
            return Err(KafkaError::new(
                ErrorCode::InvalidRecord,
                format!(
                    "producer {} sent sequence {} epoch {}",
                    pb.producer_id, pb.first_seq, pb.epoch
                ),
            ));
        }
    }
    Ok(out)
}

/// The producers of one partition. An idle partition holds empty collections only
/// (none of them allocates before its first element).
#[derive(Debug, Default)]
pub struct ProducerTable {
    entries: HashMap<i64, ProducerEntry>,
    /// (first offset, producer id) of every ongoing transaction: an index of the
    /// entries' `txn_first_offset`, so the last stable offset is one lookup.
    ongoing: BTreeSet<(i64, i64)>,
    /// Ended transactions whose marker may still be at or above the high watermark.
    ending: Vec<EndingTxn>,
    /// The aborted transaction index, ordered by `last_offset` (markers are appended in
    /// offset order). Pruned below the log start offset.
    aborted: Vec<AbortedTxn>,
    /// Producers whose transaction coordinator added this partition to their open
    /// transaction (AddPartitionsToTxn), with the epoch (KIP-890's verification): a
    /// transactional batch needs this, and a marker clears it. Not saved: after a restart
    /// the coordinator sends it again for its open transactions.
    verified: HashMap<i64, i16>,
    /// Changed since the last snapshot.
    dirty: bool,
}

impl ProducerTable {
    /// AddPartitionsToTxn added this partition to the open transaction of
    /// `producer_id` at `epoch`.
    pub fn allow_txn(&mut self, producer_id: i64, epoch: i16) {
        self.verified.insert(producer_id, epoch);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The producers with state on this partition, by producer id (DescribeProducers,
    /// KIP-664).
    pub fn entries(&self) -> Vec<&ProducerEntry> {
        let mut v: Vec<&ProducerEntry> = self.entries.values().collect();
        v.sort_by_key(|e| e.producer_id);
        v
    }

    /// Judge a record set before it is appended; on `Check::Append` its range is reserved.
    pub fn check(&mut self, records: &[u8], now_ms: i64) -> Result<Check, KafkaError> {
        let Some(pb) = producer_batch(records)? else {
            return Ok(Check::Plain);
        };
        self.check_verified(&pb)?;
        let reserve = SeqBatch {
            first_seq: pb.first_seq,
            last_seq: pb.last_seq,
            base_offset: -1,
            last_offset: -1,
        };
        self.dirty = true;
        let Some(e) = self.entries.get_mut(&pb.producer_id) else {
            return self.first_batch(pb, reserve, now_ms);
        };
        if let Some(answer) = judge_sequence(e, &pb)? {
            return Ok(answer);
        }
        e.last_update_ms = now_ms;
        e.batches.push_back(reserve);
        while e.batches.len() > BATCHES_KEPT {
            e.batches.pop_front();
        }
        Ok(Check::Append(pb))
    }

    /// KIP-890: a transactional batch goes in only while its producer's transaction is
    /// open on this partition (a fenced epoch is refused later, with
    /// INVALID_PRODUCER_EPOCH, as Kafka does).
    fn check_verified(&self, pb: &ProducerBatch) -> Result<(), KafkaError> {
        let stale = self
            .entries
            .get(&pb.producer_id)
            .is_some_and(|e| pb.epoch < e.epoch);
        if pb.transactional && !stale && self.verified.get(&pb.producer_id) != Some(&pb.epoch) {
            // Not (or no longer) part of an open transaction of this producer here: a
            // batch let in now would open a transaction no coordinator will end.
            return Err(KafkaError::new(
                ErrorCode::InvalidTxnState,
                format!(
                    "producer {} epoch {} has no open transaction on this partition (AddPartitionsToTxn first)",
                    pb.producer_id, pb.epoch
                ),
            ));
        }
        Ok(())
    }

    /// The first batch of a producer this partition does not know: it must start at
    /// sequence 0.
    fn first_batch(
        &mut self,
        pb: ProducerBatch,
        reserve: SeqBatch,
        now_ms: i64,
    ) -> Result<Check, KafkaError> {
        if pb.first_seq != 0 {
            // KIP-360: the client resets its sequence (or bumps its epoch) and retries.
            return Err(KafkaError::new(
                ErrorCode::UnknownProducerId,
                format!("producer {} is not known to this partition (its state expired or was never written); sequence {} cannot be checked", pb.producer_id, pb.first_seq),
            ));
        }
        self.entries.insert(
            pb.producer_id,
            ProducerEntry {
                producer_id: pb.producer_id,
                epoch: pb.epoch,
                last_update_ms: now_ms,
                batches: VecDeque::from([reserve]),
                txn_first_offset: None,
            },
        );
        Ok(Check::Append(pb))
    }

    /// The append of a reserved batch succeeded at these offsets.
    pub fn complete(&mut self, pb: &ProducerBatch, base_offset: i64, last_offset: i64) {
        if let Some(e) = self.entries.get_mut(&pb.producer_id) {
            if let Some(b) = e
                .batches
                .iter_mut()
                .rev()
                .find(|b| b.first_seq == pb.first_seq && b.base_offset < 0)
            {
                b.base_offset = base_offset;
                b.last_offset = last_offset;
            }
        }
    }

    /// The append of a reserved batch failed: release its range so a retry is not
    /// mistaken for a duplicate.
    pub fn abort(&mut self, pb: &ProducerBatch) {
        if let Some(e) = self.entries.get_mut(&pb.producer_id) {
            e.batches
                .retain(|b| !(b.first_seq == pb.first_seq && b.base_offset < 0));
        }
    }

    /// Rebuild from a batch read back from the log (recovery replay): no checks, the
    /// log already holds it.
    pub fn replay(
        &mut self,
        pb: &ProducerBatch,
        base_offset: i64,
        last_offset: i64,
        timestamp_ms: i64,
    ) {
        let e = self
            .entries
            .entry(pb.producer_id)
            .or_insert_with(|| new_entry(pb.producer_id, pb.epoch, timestamp_ms));
        raise_epoch(e, pb.epoch);
        e.last_update_ms = e.last_update_ms.max(timestamp_ms);
        e.batches.push_back(SeqBatch {
            first_seq: pb.first_seq,
            last_seq: pb.last_seq,
            base_offset,
            last_offset,
        });
        while e.batches.len() > BATCHES_KEPT {
            e.batches.pop_front();
        }
        self.dirty = true;
        if pb.transactional {
            self.begin_txn(pb, base_offset, timestamp_ms);
        }
    }

    /// A transactional batch of `pb` got `base_offset`: it starts the producer's
    /// transaction on this partition unless one is ongoing. Runs in the log's append
    /// hook (offset order), or in the recovery replay.
    pub fn begin_txn(&mut self, pb: &ProducerBatch, base_offset: i64, now_ms: i64) {
        let e = self
            .entries
            .entry(pb.producer_id)
            .or_insert_with(|| new_entry(pb.producer_id, pb.epoch, now_ms));
        if e.txn_first_offset.is_none() {
            e.txn_first_offset = Some(base_offset);
            self.ongoing.insert((base_offset, pb.producer_id));
            self.dirty = true;
        }
    }

    /// Before a transaction marker of `producer_id` is appended (synchronously, so in
    /// the order of appends): refuse it with PRODUCER_FENCED if the producer has a
    /// newer epoch here, else raise the producer's epoch to `epoch`, so batches of an
    /// older epoch are refused from now on. A marker bypasses the sequence check.
    pub fn fence_for_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        now_ms: i64,
    ) -> Result<(), KafkaError> {
        let e = self
            .entries
            .entry(producer_id)
            .or_insert_with(|| new_entry(producer_id, epoch, now_ms));
        if epoch < e.epoch {
            return Err(KafkaError::new(
                ErrorCode::ProducerFenced,
                format!(
                    "transaction marker for producer {producer_id} has epoch {epoch}, older than its current epoch {}",
                    e.epoch
                ),
            ));
        }
        raise_epoch(e, epoch);
        e.last_update_ms = e.last_update_ms.max(now_ms);
        // Batches that arrive after the marker was called belong to no open transaction.
        self.verified.remove(&producer_id);
        self.dirty = true;
        Ok(())
    }

    /// The marker of `producer_id` got `marker_offset`: its ongoing transaction (if
    /// any) ends there, and an ABORT adds it to the aborted index. Runs in the log's
    /// append hook (offset order), or in the recovery replay.
    pub fn end_txn(&mut self, producer_id: i64, commit: bool, marker_offset: i64) {
        let Some(first) = self
            .entries
            .get_mut(&producer_id)
            .and_then(|e| e.txn_first_offset.take())
        else {
            return; // Kafka writes a marker for a producer with nothing ongoing here too.
        };
        self.ongoing.remove(&(first, producer_id));
        self.ending.push(EndingTxn {
            producer_id,
            first_offset: first,
            marker_offset,
        });
        if !commit {
            self.aborted.push(AbortedTxn {
                producer_id,
                first_offset: first,
                last_offset: marker_offset,
            });
        }
        self.dirty = true;
    }

    /// Recovery: a marker read back from the log.
    pub fn replay_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        marker_offset: i64,
        timestamp_ms: i64,
    ) {
        let e = self
            .entries
            .entry(producer_id)
            .or_insert_with(|| new_entry(producer_id, epoch, timestamp_ms));
        raise_epoch(e, epoch);
        e.last_update_ms = e.last_update_ms.max(timestamp_ms);
        self.end_txn(producer_id, commit, marker_offset);
        self.dirty = true;
    }

    /// KIP-98: `min(first offset of every ongoing transaction, high watermark)`, and
    /// never below the log start offset (as Kafka, after DeleteRecords past an open
    /// transaction).
    pub fn last_stable_offset(&self, high_watermark: i64, log_start_offset: i64) -> i64 {
        let ongoing = self.ongoing.first().map_or(i64::MAX, |&(first, _)| first);
        let ending = self
            .ending
            .iter()
            .filter(|t| t.marker_offset >= high_watermark)
            .map(|t| t.first_offset)
            .min()
            .unwrap_or(i64::MAX);
        ongoing
            .min(ending)
            .min(high_watermark)
            .max(log_start_offset)
    }

    /// The aborted transactions that overlap the fetched range `[from, to)`: Kafka's
    /// `last_offset >= from && first_offset < to`.
    pub fn aborted_in(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|t| t.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|t| t.first_offset < to)
            .copied()
            .collect()
    }

    /// Forget the aborted transactions whose marker in `[from, to)` is not among `kept`
    /// ((producer id, offset) of the markers a cleaning pass kept there): the pass
    /// removed the marker with the last of the transaction's records. Returns how many.
    pub fn forget_aborted_between(
        &mut self,
        from: i64,
        to: i64,
        kept: &HashSet<(i64, i64)>,
    ) -> usize {
        let before = self.aborted.len();
        self.aborted.retain(|t| {
            !(from..to).contains(&t.last_offset) || kept.contains(&(t.producer_id, t.last_offset))
        });
        let n = before - self.aborted.len();
        self.dirty |= n > 0;
        n
    }

    /// Forget aborted transactions whose marker fell below the log start offset
    /// (retention, DeleteRecords), and ended transactions whose marker is below the
    /// high watermark. Returns how many aborted entries went.
    pub fn prune(&mut self, log_start_offset: i64, high_watermark: i64) -> usize {
        let n = self
            .aborted
            .partition_point(|t| t.last_offset < log_start_offset);
        if n > 0 {
            self.aborted.drain(..n);
            self.dirty = true;
        }
        self.ending.retain(|t| t.marker_offset >= high_watermark);
        if self.aborted.is_empty() && self.aborted.capacity() > 0 {
            self.aborted = Vec::new();
        }
        if self.ending.is_empty() && self.ending.capacity() > 0 {
            self.ending = Vec::new();
        }
        n
    }

    /// Forget producers idle for longer than `expiration_ms` (Kafka's
    /// `producer.id.expiration.ms`), except those with a transaction ongoing or ending
    /// here (as Kafka). Returns how many were removed.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.entries.len();
        let ending = &self.ending;
        self.entries.retain(|pid, e| {
            now_ms - e.last_update_ms <= expiration_ms
                || e.txn_first_offset.is_some()
                || ending.iter().any(|t| t.producer_id == *pid)
        });
        let removed = before - self.entries.len();
        if removed > 0 {
            self.dirty = true;
        }
        removed
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The state as of log offset `offset` (completed batches only), for a replay from
    /// `offset`. Appends at or above it may have changed the transactions already
    /// (their hooks run when offsets are reserved): a transaction started there is left
    /// out, one ended there is shown ongoing, its aborted entry left out; the replay
    /// redoes both. `offset` must not be below an earlier `prune`'s high watermark.
    pub fn snapshot(&mut self, offset: i64) -> ProducerSnapshot {
        self.dirty = false;
        let mut entries: Vec<ProducerEntry> = self
            .entries
            .values()
            .map(|e| ProducerEntry {
                batches: e
                    .batches
                    .iter()
                    .filter(|b| b.base_offset >= 0 && b.last_offset < offset)
                    .copied()
                    .collect(),
                txn_first_offset: self.txn_first_offset_at(e, offset),
                ..e.clone()
            })
            .collect();
        entries.sort_by_key(|e| e.producer_id);
        let aborted = self
            .aborted
            .iter()
            .filter(|t| t.last_offset < offset)
            .copied()
            .collect();
        ProducerSnapshot {
            offset,
            entries,
            aborted,
        }
    }

    /// The producer's ongoing transaction as of log offset `offset`.
    fn txn_first_offset_at(&self, e: &ProducerEntry, offset: i64) -> Option<i64> {
        let ended_later = self
            .ending
            .iter()
            .filter(|t| t.producer_id == e.producer_id && t.marker_offset >= offset)
            .map(|t| t.first_offset)
            .min();
        ended_later
            .or(e.txn_first_offset)
            .filter(|&first| first < offset)
    }

    pub fn from_snapshot(s: ProducerSnapshot) -> ProducerTable {
        let ongoing = s
            .entries
            .iter()
            .filter_map(|e| e.txn_first_offset.map(|f| (f, e.producer_id)))
            .collect();
        ProducerTable {
            entries: s.entries.into_iter().map(|e| (e.producer_id, e)).collect(),
            ongoing,
            ending: Vec::new(),
            aborted: s.aborted,
            verified: HashMap::new(),
            dirty: false,
        }
    }
}

fn new_entry(producer_id: i64, epoch: i16, now_ms: i64) -> ProducerEntry {
    ProducerEntry {
        producer_id,
        epoch,
        last_update_ms: now_ms,
        batches: VecDeque::new(),
        txn_first_offset: None,
    }
}

/// A known producer's batch against its epoch and its last batches: `Some` is the
/// answer for a duplicate; `None` lets the batch in (a newer epoch starts afresh).
fn judge_sequence(e: &mut ProducerEntry, pb: &ProducerBatch) -> Result<Option<Check>, KafkaError> {
    if pb.epoch < e.epoch {
        // Transactional batches too: since Kafka 2.7 (KIP-588) a fenced epoch on
        // Produce is INVALID_PRODUCER_EPOCH, which lets the producer abort and go
        // on; PRODUCER_FENCED (fatal) comes from the coordinator.
        return Err(KafkaError::new(
            ErrorCode::InvalidProducerEpoch,
            format!(
                "producer {} epoch {} is older than the current epoch {}",
                pb.producer_id, pb.epoch, e.epoch
            ),
        ));
    }
    if pb.epoch > e.epoch {
        if pb.first_seq != 0 {
            return Err(KafkaError::new(
                ErrorCode::OutOfOrderSequenceNumber,
                format!(
                    "producer {} started epoch {} at sequence {}, not 0",
                    pb.producer_id, pb.epoch, pb.first_seq
                ),
            ));
        }
        e.epoch = pb.epoch;
        e.batches.clear();
        return Ok(None);
    }
    if let Some(b) = e
        .batches
        .iter()
        .find(|b| b.first_seq == pb.first_seq && b.last_seq == pb.last_seq)
    {
        // KIP-98: a duplicate within the last 5 batches gets its original offsets.
        if b.base_offset < 0 {
            return Err(KafkaError::new(
                ErrorCode::RequestTimedOut,
                "the first copy of this batch is still being written; retry",
            ));
        }
        return Ok(Some(Check::Duplicate {
            base_offset: b.base_offset,
            last_offset: b.last_offset,
        }));
    }
    let expected = e.batches.back().map(|b| next_seq(b.last_seq)).unwrap_or(0);
    if pb.first_seq != expected {
        return Err(KafkaError::new(
            ErrorCode::OutOfOrderSequenceNumber,
            format!(
                "producer {} sent sequence {}, expected {expected}",
                pb.producer_id, pb.first_seq
            ),
        ));
    }
    Ok(None)
}

/// A newer epoch (bumped by a marker) starts the sequences again at 0.
fn raise_epoch(e: &mut ProducerEntry, epoch: i16) {
    if epoch > e.epoch {
        e.epoch = epoch;
        e.batches.clear();
    }
}

pub fn snapshot_path(partition_dir: &Path) -> PathBuf {
    partition_dir.join(SNAPSHOT_FILE)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::log::batch::{BatchBuilder, Record};

    fn batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
        let recs: Vec<Record<'_>> = (0..n)
            .map(|_| Record {
                key: None,
                value: Some(b"v"),
                headers: Vec::new(),
                timestamp_delta: 0,
            })
            .collect();
        let mut b = BatchBuilder::new(0);
        b.producer_id = pid;
        b.producer_epoch = epoch;
        b.base_sequence = seq;
        b.build(&recs)
    }

    #[test]
    fn a_duplicate_within_the_last_five_batches_gets_its_original_offsets() {
        let mut t = ProducerTable::default();
        let mut offset = 0;
        for i in 0..6 {
            let r = batch(7, 0, i * 3, 3);
            let Check::Append(pb) = t.check(&r, 0).unwrap() else {
                panic!("not appended")
            };
            t.complete(&pb, offset, offset + 2);
            offset += 3;
        }
        // Batch 1 (seq 3..=5) is the oldest of the last five.
        assert_eq!(
            t.check(&batch(7, 0, 3, 3), 0).unwrap(),
            Check::Duplicate {
                base_offset: 3,
                last_offset: 5
            }
        );
        // Batch 0 fell out of the window: it is out of order now.
        assert_eq!(
            t.check(&batch(7, 0, 0, 3), 0).unwrap_err().code,
            ErrorCode::OutOfOrderSequenceNumber
        );
    }

    #[test]
    fn gaps_stale_epochs_and_unknown_producers_are_refused() {
        let mut t = ProducerTable::default();
        assert_eq!(
            t.check(&batch(1, 0, 5, 1), 0).unwrap_err().code,
            ErrorCode::UnknownProducerId
        );
        let Check::Append(pb) = t.check(&batch(1, 1, 0, 2), 0).unwrap() else {
            panic!()
        };
        t.complete(&pb, 0, 1);
        assert_eq!(
            t.check(&batch(1, 1, 3, 1), 0).unwrap_err().code,
            ErrorCode::OutOfOrderSequenceNumber
        );
        assert_eq!(
            t.check(&batch(1, 0, 2, 1), 0).unwrap_err().code,
            ErrorCode::InvalidProducerEpoch
        );
        // A bumped epoch starts again at sequence 0 (KIP-360).
        assert!(matches!(
            t.check(&batch(1, 2, 0, 1), 0).unwrap(),
            Check::Append(_)
        ));
        assert_eq!(
            t.check(&batch(2, 0, 0, 1), 0)
                .map(|c| matches!(c, Check::Append(_))),
            Ok(true)
        );
        assert_eq!(t.check(&batch(-1, -1, -1, 1), 0).unwrap(), Check::Plain);
    }

    #[test]
    fn pipelined_batches_are_judged_in_arrival_order_and_aborts_release_the_range() {
        let mut t = ProducerTable::default();
        let Check::Append(a) = t.check(&batch(9, 0, 0, 2), 0).unwrap() else {
            panic!()
        };
        let Check::Append(b) = t.check(&batch(9, 0, 2, 2), 0).unwrap() else {
            panic!()
        };
        // A retry of `a` while it is still being written is told to retry later.
        assert_eq!(
            t.check(&batch(9, 0, 0, 2), 0).unwrap_err().code,
            ErrorCode::RequestTimedOut
        );
        t.complete(&a, 10, 11);
        t.abort(&b);
        assert!(matches!(
            t.check(&batch(9, 0, 2, 2), 0).unwrap(),
            Check::Append(_)
        ));
    }

    /// What the coordinator's AddPartitionsToTxn tells the partition.
    pub(crate) fn allow_if_transactional(t: &mut ProducerTable, records: &[u8]) {
        use crate::log::batch;
        if batch::attributes(records) & batch::TRANSACTIONAL_BIT != 0 {
            t.allow_txn(batch::producer_id(records), batch::producer_epoch(records));
        }
    }

    #[test]
    fn a_transactional_batch_needs_its_partition_added_to_the_open_transaction() {
        let mut t = ProducerTable::default();
        let code = |r: Result<Check, KafkaError>| r.err().map(|e| e.code);
        // No AddPartitionsToTxn yet: a batch here would open a transaction nobody ends.
        assert_eq!(
            code(t.check(&txn_batch(5, 0, 0, 2), 0)),
            Some(ErrorCode::InvalidTxnState)
        );
        t.allow_txn(5, 0);
        let pb = append(&mut t, &txn_batch(5, 0, 0, 2), 0);
        assert!(pb.transactional);
        // Another epoch of the same producer is not covered.
        assert_eq!(
            code(t.check(&txn_batch(5, 1, 0, 2), 0)),
            Some(ErrorCode::InvalidTxnState)
        );
        // The marker ends the transaction: later batches need a new AddPartitionsToTxn.
        t.fence_for_marker(5, 0, 0).unwrap();
        t.end_txn(5, true, 2);
        assert_eq!(
            code(t.check(&txn_batch(5, 0, 2, 2), 0)),
            Some(ErrorCode::InvalidTxnState)
        );
        t.allow_txn(5, 0);
        assert!(matches!(
            t.check(&txn_batch(5, 0, 2, 2), 0),
            Ok(Check::Append(_))
        ));
        // Plain idempotent batches never need it.
        assert!(matches!(
            t.check(&batch(6, 0, 0, 1), 0),
            Ok(Check::Append(_))
        ));
    }

    fn txn_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
        let mut b = batch(pid, epoch, seq, n);
        let attrs = crate::log::batch::attributes(&b) | crate::log::batch::TRANSACTIONAL_BIT;
        b[21..23].copy_from_slice(&attrs.to_be_bytes());
        let crc = crate::log::batch::compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// AddPartitionsToTxn (for a transactional batch), then check + the append hook +
    /// complete, as `produce::append_owned` does them.
    fn append(t: &mut ProducerTable, records: &[u8], base: i64) -> ProducerBatch {
        allow_if_transactional(t, records);
        let Check::Append(pb) = t.check(records, 0).unwrap() else {
            panic!("not appended")
        };
        let last = base + crate::log::batch::last_offset_delta(records) as i64;
        if pb.transactional {
            t.begin_txn(&pb, base, 0);
        }
        t.complete(&pb, base, last);
        pb
    }

    #[test]
    fn the_last_stable_offset_waits_for_the_oldest_open_transaction_and_its_marker() {
        let mut t = ProducerTable::default();
        assert_eq!(t.last_stable_offset(10, 0), 10, "no transactions: the hwm");
        append(&mut t, &txn_batch(1, 0, 0, 2), 10); // 10..=11
        append(&mut t, &txn_batch(2, 0, 0, 1), 12);
        append(&mut t, &txn_batch(1, 0, 2, 1), 13); // same transaction, first stays 10
        assert_eq!(t.last_stable_offset(14, 0), 10);
        assert_eq!(t.last_stable_offset(5, 0), 5, "never above the hwm");
        // Producer 1 commits at 14; until the hwm passes the marker the LSO holds.
        t.fence_for_marker(1, 0, 0).unwrap();
        t.end_txn(1, true, 14);
        assert_eq!(t.last_stable_offset(14, 0), 10);
        assert_eq!(t.last_stable_offset(15, 0), 12, "producer 2 is still open");
        t.fence_for_marker(2, 0, 0).unwrap();
        t.end_txn(2, false, 15);
        assert_eq!(t.last_stable_offset(16, 0), 16);
        assert_eq!(
            t.aborted_in(0, 16),
            vec![AbortedTxn {
                producer_id: 2,
                first_offset: 12,
                last_offset: 15
            }]
        );
        // A marker for a producer with nothing open adds no aborted entry.
        t.fence_for_marker(3, 0, 0).unwrap();
        t.end_txn(3, false, 16);
        assert_eq!(t.aborted_in(0, 100).len(), 1);
        // DeleteRecords past an open transaction: the LSO is not below the log start.
        append(&mut t, &txn_batch(1, 0, 3, 1), 17);
        assert_eq!(t.last_stable_offset(18, 17), 17);
        assert_eq!(t.last_stable_offset(18, 18), 18);
    }

    #[test]
    fn fetch_ranges_see_only_the_aborted_transactions_they_overlap_and_pruning_drops_old_ones() {
        let mut t = ProducerTable::default();
        let mut next = 0;
        for (pid, len) in [(1, 3), (2, 5), (3, 2)] {
            append(&mut t, &txn_batch(pid, 0, 0, len), next);
            t.end_txn(pid, false, next + len as i64);
            next += len as i64 + 1;
        }
        // (1, 0..=3), (2, 4..=9), (3, 10..=12)
        let pids = |v: Vec<AbortedTxn>| v.iter().map(|a| a.producer_id).collect::<Vec<_>>();
        assert_eq!(pids(t.aborted_in(0, 13)), vec![1, 2, 3]);
        assert_eq!(pids(t.aborted_in(3, 4)), vec![1], "its marker is at 3");
        assert_eq!(pids(t.aborted_in(4, 10)), vec![2], "3 starts at 10");
        assert_eq!(pids(t.aborted_in(4, 11)), vec![2, 3]);
        assert_eq!(pids(t.aborted_in(13, 20)), Vec::<i64>::new());
        assert_eq!(t.prune(4, 13), 1, "the first marker is below the log start");
        assert_eq!(pids(t.aborted_in(0, 13)), vec![2, 3]);
        assert_eq!(t.prune(13, 13), 2);
        assert_eq!(t.aborted.capacity(), 0, "an idle partition holds nothing");
        assert_eq!(t.ending.capacity(), 0);
    }

    #[test]
    fn markers_fence_older_epochs_and_stale_transactional_batches_are_refused() {
        let mut t = ProducerTable::default();
        append(&mut t, &txn_batch(5, 3, 0, 1), 0);
        assert_eq!(
            t.fence_for_marker(5, 2, 0).unwrap_err().code,
            ErrorCode::ProducerFenced
        );
        // An abort with a bumped epoch (coordinator timeout): the old epoch is fenced.
        t.fence_for_marker(5, 4, 0).unwrap();
        t.end_txn(5, false, 1);
        assert_eq!(
            t.check(&txn_batch(5, 3, 1, 1), 0).unwrap_err().code,
            ErrorCode::InvalidProducerEpoch
        );
        // The new epoch starts again at sequence 0 and opens a new transaction.
        append(&mut t, &txn_batch(5, 4, 0, 1), 2);
        assert_eq!(t.last_stable_offset(3, 0), 2);
        // Clients never write control batches, nor transactions without a producer id.
        let mut marker = BatchBuilder::new(0);
        marker.producer_id = 5;
        marker.producer_epoch = 4;
        assert_eq!(
            t.check(&marker.build_control(true, 0), 0).unwrap_err().code,
            ErrorCode::InvalidRecord
        );
        assert_eq!(
            t.check(&txn_batch(-1, -1, -1, 1), 0).unwrap_err().code,
            ErrorCode::InvalidRecord
        );
    }

    #[test]
    fn a_snapshot_shows_the_transactions_as_of_its_offset() {
        let mut t = ProducerTable::default();
        append(&mut t, &txn_batch(1, 0, 0, 1), 0);
        append(&mut t, &txn_batch(2, 0, 0, 1), 1);
        t.end_txn(2, false, 2);
        append(&mut t, &txn_batch(3, 0, 0, 1), 3);
        // Offsets 2 (producer 2's abort) and 3 are reserved but not below the hwm (2).
        t.end_txn(1, false, 4);
        let snap = t.snapshot(2);
        assert_eq!(
            snap.aborted,
            vec![],
            "the abort at 2 is replayed, not saved"
        );
        let back = ProducerTable::from_snapshot(snap);
        let open: Vec<(i64, i64)> = back.ongoing.iter().copied().collect();
        assert_eq!(open, vec![(0, 1), (1, 2)], "both open as of 2; 3 not yet");
        // With everything below the hwm, the snapshot is the state itself.
        t.prune(0, 5);
        let back = ProducerTable::from_snapshot(t.snapshot(5));
        assert_eq!(
            back.ongoing.iter().copied().collect::<Vec<_>>(),
            vec![(3, 3)]
        );
        assert_eq!(back.aborted_in(0, 5).len(), 2);
        assert_eq!(back.last_stable_offset(5, 0), 3);
    }

    #[test]
    fn producers_with_an_open_transaction_do_not_expire() {
        let mut t = ProducerTable::default();
        append(&mut t, &txn_batch(1, 0, 0, 1), 0);
        append(&mut t, &batch(2, 0, 0, 1), 1);
        assert_eq!(t.expire(1_000_000, 10), 1);
        assert_eq!(t.last_stable_offset(2, 0), 0);
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(last_seq(i32::MAX, 1), 0);
        assert_eq!(next_seq(i32::MAX), 0);
    }

    #[test]
    fn snapshots_keep_completed_batches_and_expiry_forgets_idle_producers() {
        let mut t = ProducerTable::default();
        let Check::Append(pb) = t.check(&batch(3, 0, 0, 1), 100).unwrap() else {
            panic!()
        };
        t.complete(&pb, 0, 0);
        let Check::Append(_) = t.check(&batch(4, 0, 0, 1), 5_000).unwrap() else {
            panic!()
        };
        let snap = t.snapshot(1);
        let mut back = ProducerTable::from_snapshot(snap);
        assert_eq!(
            back.check(&batch(3, 0, 0, 1), 0).unwrap(),
            Check::Duplicate {
                base_offset: 0,
                last_offset: 0
            }
        );
        assert_eq!(back.expire(10_000, 6_000), 1);
        assert_eq!(back.len(), 1);
    }
}
