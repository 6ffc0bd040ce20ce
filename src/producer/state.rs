//! Per-partition idempotent-producer state (KIP-98, KIP-360), kept by the partition's
//! owner shard next to its log.
//!
//! For each producer id: its epoch and the sequence ranges and offsets of its last 5
//! batches. A batch is checked (and its sequence range reserved) synchronously, before
//! the log assigns offsets, so pipelined batches of one producer are judged in the
//! order they arrive; the offsets are filled in when the append completes.
//!
//! The state survives restarts as a snapshot file in the partition directory plus a
//! replay of the batch headers the log holds after the snapshot's offset.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use rkyv::{Archive, Deserialize, Serialize};

use crate::protocol::errors::{self, KafkaError};

/// Kafka keeps the metadata of the last 5 batches per producer and partition, the
/// most `max.in.flight.requests.per.connection` an idempotent producer may use.
pub const BATCHES_KEPT: usize = 5;
const SNAPSHOT_FILE: &str = "producer-state";

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
}

/// What is saved: the entries, valid for the log up to `offset` (exclusive).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ProducerSnapshot {
    pub offset: i64,
    pub entries: Vec<ProducerEntry>,
}

/// The idempotence fields of a produce record set (all its batches must agree).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
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
        let this = ProducerBatch {
            producer_id: pid,
            epoch: b::producer_epoch(batch),
            first_seq: b::base_sequence(batch),
            last_seq: last_seq(b::base_sequence(batch), b::last_offset_delta(batch)),
        };
        out = match out {
            None if pid < 0 => None,
            None => Some(this),
            Some(prev) => {
                if pid != prev.producer_id
                    || this.epoch != prev.epoch
                    || this.first_seq != next_seq(prev.last_seq)
                {
                    return Err(KafkaError::new(
                        errors::INVALID_RECORD,
                        "the batches of one partition in a produce request must come from one producer with contiguous sequences",
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
                errors::INVALID_RECORD,
                format!(
                    "producer {} sent sequence {} epoch {}",
                    pb.producer_id, pb.first_seq, pb.epoch
                ),
            ));
        }
    }
    Ok(out)
}

/// The producers of one partition.
#[derive(Debug, Default)]
pub struct ProducerTable {
    entries: HashMap<i64, ProducerEntry>,
    /// Changed since the last snapshot.
    dirty: bool,
}

impl ProducerTable {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Judge a record set before it is appended; on `Check::Append` its range is reserved.
    pub fn check(&mut self, records: &[u8], now_ms: i64) -> Result<Check, KafkaError> {
        let Some(pb) = producer_batch(records)? else {
            return Ok(Check::Plain);
        };
        let reserve = SeqBatch {
            first_seq: pb.first_seq,
            last_seq: pb.last_seq,
            base_offset: -1,
            last_offset: -1,
        };
        self.dirty = true;
        let Some(e) = self.entries.get_mut(&pb.producer_id) else {
            if pb.first_seq != 0 {
                // KIP-360: the client resets its sequence (or bumps its epoch) and retries.
                return Err(KafkaError::new(
                    errors::UNKNOWN_PRODUCER_ID,
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
                },
            );
            return Ok(Check::Append(pb));
        };
        if pb.epoch < e.epoch {
            return Err(KafkaError::new(
                errors::INVALID_PRODUCER_EPOCH,
                format!(
                    "producer {} epoch {} is older than the current epoch {}",
                    pb.producer_id, pb.epoch, e.epoch
                ),
            ));
        }
        if pb.epoch > e.epoch {
            if pb.first_seq != 0 {
                return Err(KafkaError::new(
                    errors::OUT_OF_ORDER_SEQUENCE_NUMBER,
                    format!(
                        "producer {} started epoch {} at sequence {}, not 0",
                        pb.producer_id, pb.epoch, pb.first_seq
                    ),
                ));
            }
            e.epoch = pb.epoch;
            e.batches.clear();
        } else if let Some(b) = e
            .batches
            .iter()
            .find(|b| b.first_seq == pb.first_seq && b.last_seq == pb.last_seq)
        {
            // KIP-98: a duplicate within the last 5 batches gets its original offsets.
            if b.base_offset < 0 {
                return Err(KafkaError::new(
                    errors::REQUEST_TIMED_OUT,
                    "the first copy of this batch is still being written; retry",
                ));
            }
            return Ok(Check::Duplicate {
                base_offset: b.base_offset,
                last_offset: b.last_offset,
            });
        } else {
            let expected = e.batches.back().map(|b| next_seq(b.last_seq)).unwrap_or(0);
            if pb.first_seq != expected {
                return Err(KafkaError::new(
                    errors::OUT_OF_ORDER_SEQUENCE_NUMBER,
                    format!(
                        "producer {} sent sequence {}, expected {expected}",
                        pb.producer_id, pb.first_seq
                    ),
                ));
            }
        }
        e.last_update_ms = now_ms;
        e.batches.push_back(reserve);
        while e.batches.len() > BATCHES_KEPT {
            e.batches.pop_front();
        }
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
            .or_insert_with(|| ProducerEntry {
                producer_id: pb.producer_id,
                epoch: pb.epoch,
                last_update_ms: timestamp_ms,
                batches: VecDeque::new(),
            });
        if pb.epoch > e.epoch {
            e.epoch = pb.epoch;
            e.batches.clear();
        }
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
    }

    /// Forget producers idle for longer than `expiration_ms` (Kafka's
    /// `producer.id.expiration.ms`). Returns how many were removed.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|_, e| now_ms - e.last_update_ms <= expiration_ms);
        let removed = before - self.entries.len();
        if removed > 0 {
            self.dirty = true;
        }
        removed
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The state as of log offset `offset` (completed batches only).
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
                ..e.clone()
            })
            .collect();
        entries.sort_by_key(|e| e.producer_id);
        ProducerSnapshot { offset, entries }
    }

    pub fn from_snapshot(s: ProducerSnapshot) -> ProducerTable {
        ProducerTable {
            entries: s.entries.into_iter().map(|e| (e.producer_id, e)).collect(),
            dirty: false,
        }
    }
}

pub fn snapshot_path(partition_dir: &Path) -> PathBuf {
    partition_dir.join(SNAPSHOT_FILE)
}

#[cfg(test)]
mod tests {
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
            errors::OUT_OF_ORDER_SEQUENCE_NUMBER
        );
    }

    #[test]
    fn gaps_stale_epochs_and_unknown_producers_are_refused() {
        let mut t = ProducerTable::default();
        assert_eq!(
            t.check(&batch(1, 0, 5, 1), 0).unwrap_err().code,
            errors::UNKNOWN_PRODUCER_ID
        );
        let Check::Append(pb) = t.check(&batch(1, 1, 0, 2), 0).unwrap() else {
            panic!()
        };
        t.complete(&pb, 0, 1);
        assert_eq!(
            t.check(&batch(1, 1, 3, 1), 0).unwrap_err().code,
            errors::OUT_OF_ORDER_SEQUENCE_NUMBER
        );
        assert_eq!(
            t.check(&batch(1, 0, 2, 1), 0).unwrap_err().code,
            errors::INVALID_PRODUCER_EPOCH
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
            errors::REQUEST_TIMED_OUT
        );
        t.complete(&a, 10, 11);
        t.abort(&b);
        assert!(matches!(
            t.check(&batch(9, 0, 2, 2), 0).unwrap(),
            Check::Append(_)
        ));
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
