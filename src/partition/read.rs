//! Reads for a fetch, on the owner: the partitions of one request in order, within the
//! response's byte budget, each answered with file ranges (`sendfile` from the page
//! cache, no user-space copy) or with bytes copied through io_uring when its pages are
//! not cached — the zero-copy decision lives here, next to the log.
//!
//! Copied bytes are memory the connection's shard holds until it has sent them, so the
//! caller says how much it may take (`CopyAllowance`): the fetch budget is counted on the
//! connection's shard, where the bytes are held and dropped, without atomics.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use super::{txn, Partition, PartitionManager};
use crate::kafka::KafkaError;
use crate::log::{FetchSlice, SendRange};

/// One partition a fetch asks for.
#[derive(Debug, Clone)]
pub struct Read {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub max_bytes: usize,
    /// isolation_level 1 (read_committed): nothing at or beyond the last stable offset.
    pub committed: bool,
}

/// A partition's record set in a response.
#[derive(Debug, Default)]
pub enum Records {
    #[default]
    Empty,
    /// Bytes in memory (the copy path, or a read of pages not in the page cache).
    Mem(Bytes),
    /// Ranges of segment files, sent from the page cache without a user-space copy.
    Files { ranges: Vec<SendRange>, len: usize },
}

impl Records {
    pub fn len(&self) -> usize {
        match self {
            Records::Empty => 0,
            Records::Mem(b) => b.len(),
            Records::Files { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of this set held in memory (what counts against the fetch budget).
    pub fn copied(&self) -> usize {
        match self {
            Records::Mem(b) => b.len(),
            _ => 0,
        }
    }
}

/// What the owner read for one partition.
#[derive(Debug)]
pub struct ReadOut {
    pub records: Records,
    /// The records were left out because the copy allowance was used up.
    pub deferred: bool,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// read_committed only: (producer id, first offset) of the aborted transactions
    /// overlapping the records.
    pub aborted: Option<Vec<(i64, i64)>>,
}

/// How many bytes a read may copy into memory. `may_exceed`: the caller holds no copied
/// bytes, so one partition's read goes ahead even over the allowance (consumers always
/// progress).
#[derive(Debug, Clone, Copy)]
pub struct CopyAllowance {
    pub bytes: usize,
    pub may_exceed: bool,
}

/// The result of reading the partitions of one owner.
pub struct ReadBatch {
    pub reads: Vec<Result<ReadOut, KafkaError>>,
}

/// What a set of partition reads brought, summed (one owner's, or a whole request's).
#[derive(Debug, Default, Clone, Copy)]
pub struct Brought {
    pub bytes: usize,
    pub errored: bool,
    /// Records left out: the copy allowance was used up (or a parked read copies nothing).
    pub deferred: bool,
}

impl Brought {
    pub fn of<'a>(reads: impl IntoIterator<Item = &'a Result<ReadOut, KafkaError>>) -> Brought {
        let mut b = Brought::default();
        for r in reads {
            match r {
                Ok(g) => {
                    b.bytes += g.records.len();
                    b.deferred |= g.deferred;
                }
                Err(_) => b.errored = true,
            }
        }
        b
    }
}

impl ReadBatch {
    pub fn brought(&self) -> Brought {
        Brought::of(&self.reads)
    }
}

impl PartitionManager {
    /// Read `reads` in order, stopping once `budget` bytes are used. The first partition
    /// with data may exceed the budget by one batch when `first` (KIP-74).
    pub async fn read(
        &self,
        reads: &[Read],
        budget: usize,
        first: bool,
        allowance: CopyAllowance,
    ) -> ReadBatch {
        let lookup = |r: &Read, _| self.get(&r.topic, r.partition);
        self.read_with(reads, lookup, budget, first, allowance)
            .await
    }

    /// The partitions of `reads` (or the error each gets).
    pub(super) fn resolve(&self, reads: &[Read]) -> Vec<Result<Rc<Partition>, KafkaError>> {
        reads
            .iter()
            .map(|r| self.get(&r.topic, r.partition))
            .collect()
    }

    /// `read`, the partition of the i-th read from `lookup(read, i)` (a parked fetch
    /// looks its partitions up once and reads them again after each append).
    pub(super) async fn read_with(
        &self,
        reads: &[Read],
        lookup: impl Fn(&Read, usize) -> Result<Rc<Partition>, KafkaError>,
        mut budget: usize,
        first: bool,
        mut allowance: CopyAllowance,
    ) -> ReadBatch {
        let mut out = Vec::with_capacity(reads.len());
        let mut any = !first;
        for (i, r) in reads.iter().enumerate() {
            let got = match lookup(r, i) {
                Err(e) => Err(e),
                Ok(part) => self.read_one(&part, r, budget, any, &mut allowance).await,
            };
            if let Ok(g) = &got {
                if !g.records.is_empty() {
                    any = true;
                    budget = budget.saturating_sub(g.records.len());
                }
            }
            out.push(got);
        }
        let batch = ReadBatch { reads: out };
        self.metrics().record_fetch(batch.brought().bytes);
        batch
    }

    async fn read_one(
        &self,
        part: &Partition,
        r: &Read,
        budget: usize,
        any: bool,
        allowance: &mut CopyAllowance,
    ) -> Result<ReadOut, KafkaError> {
        let log = &part.log;
        let (hwm, start) = (log.high_watermark(), log.log_start_offset());
        let lso = txn::last_stable_offset(part);
        let end = if r.committed { lso } else { hwm };
        let limit = r.max_bytes.min(budget);
        let mut records = Some(Records::Empty);
        // Taken in the step that picks the segments (read_below's first await comes after
        // that): a cleaning pass that drops an ABORT marker forgets its entry as it
        // switches segments, so the entries agree with the segments read either way.
        let aborted_now = r.committed.then(|| aborted(part, r.offset, end));
        if limit > 0 || !any {
            let slice = log.read_below(r.offset, limit.max(1), end).await?;
            if !slice.is_empty() && (slice.len() <= limit || !any) {
                records = self.take_records(slice, allowance).await?;
            }
        }
        if let Some(rs) = &records {
            part.fetched_bytes
                .set(part.fetched_bytes.get() + rs.len() as u64);
        }
        let aborted = aborted_now.map(|a| match &records {
            Some(rs) if !rs.is_empty() => a,
            _ => Vec::new(),
        });
        Ok(ReadOut {
            deferred: records.is_none(),
            aborted,
            records: records.unwrap_or_default(),
            high_watermark: hwm,
            last_stable_offset: lso,
            log_start_offset: start,
        })
    }

    /// The slice as file ranges for `sendfile` when its bytes are in the page cache (so
    /// the send cannot block the connection's shard on the disk), else read into memory
    /// through io_uring. Zero copy off (`--fetch-zero-copy false`) always copies (kept to
    /// measure against). Over the copy allowance the partition answers with no records
    /// this time (the consumer fetches again). `None`: deferred.
    async fn take_records(
        &self,
        slice: FetchSlice,
        allowance: &mut CopyAllowance,
    ) -> Result<Option<Records>, KafkaError> {
        let len = slice.len();
        if self.zero_copy() && slice.is_cached() {
            return Ok(Some(Records::Files {
                ranges: slice.into_send_ranges(),
                len,
            }));
        }
        if len > allowance.bytes && !allowance.may_exceed {
            self.metrics().record_fetch_deferred();
            return Ok(None);
        }
        allowance.bytes = allowance.bytes.saturating_sub(len);
        allowance.may_exceed = false;
        let mut data = Vec::with_capacity(len);
        slice.read_to_vec(&mut data).await?;
        self.metrics().record_fetch_copied(len);
        Ok(Some(Records::Mem(Bytes::from(data))))
    }
}

/// The aborted transactions a read_committed response carries for records read from
/// `from`. Kafka bounds them by the offset after the last batch returned; the slice
/// does not know that offset, so this bounds them by where the read stopped looking
/// (the LSO): a superset by entries that start after the returned records, which
/// clients skip (they apply an entry only once a batch of its producer reaches its
/// first offset).
fn aborted(part: &Partition, from: i64, upper: i64) -> Vec<(i64, i64)> {
    txn::aborted_transactions(part, from, upper)
        .into_iter()
        .map(|t| (t.producer_id, t.first_offset))
        .collect()
}
