//! Share partitions (KIP-932) on the owner: acquire (read the log, hand out records),
//! acknowledge (answered once the new window is fdatasync'd, group-committed with other
//! acks), release a member's records, describe and reset start offsets. The state and
//! its journal are the rest of `share/`; this file joins them with the partition's log.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use super::{
    dlq, Archived, BatchSpan, ShareAcks, ShareAsk, ShareConfig, ShareOut, SharePartition,
    ShareRead, ShareView, SpKey,
};
use crate::kafka::{ErrorCode, KafkaError};
use crate::log::batch;
use crate::partition::producer::state::AbortedTxn;
use crate::partition::{txn, Partition, PartitionManager};
use crate::runtime::now_ms;

impl PartitionManager {
    /// Copy archived records to the group's DLQ topic (KIP-1191), before their archived
    /// state is made durable by the caller. A failed write is logged and counted; the
    /// record is archived anyway (it cannot be retried forever).
    async fn dead_letter(&self, k: &SpKey, c: &ShareConfig, archived: Vec<Archived>) {
        let (Some(topic), false) = (c.dlq_topic.clone(), archived.is_empty()) else {
            return;
        };
        let Some(sink) = self.shares().dlq_sink() else {
            return;
        };
        let Some(part) = self.find(&k.0, k.1) else {
            return;
        };
        let src = dlq::Source {
            topic: &k.0,
            partition: k.1,
            group: &k.2,
            copy_record: c.dlq_copy_record,
        };
        let n = archived.len() as u64;
        let written = match dlq::build(&part.log, &src, &archived).await {
            Ok(batch) => sink(topic.clone(), batch).await,
            Err(e) => Err(e),
        };
        let shares = self.shares();
        match written {
            Ok(()) => shares.dlq_writes.set(shares.dlq_writes.get() + n),
            Err(e) => {
                shares.dlq_failures.set(shares.dlq_failures.get() + n);
                tracing::warn!(group = %k.2, dlq = %topic, "dead-letter write failed: {}", e.message);
            }
        }
    }

    /// The share partition of `group` on `topic`-`partition`, created (and made
    /// durable) at the latest or earliest offset on first use.
    async fn share_partition(
        &self,
        part: &Partition,
        k: &SpKey,
        c: &ShareConfig,
    ) -> Result<Rc<RefCell<SharePartition>>, KafkaError> {
        let shares = self.shares();
        if let Some(sp) = shares.find(k) {
            sp.borrow_mut().clamp_to(part.log.log_start_offset());
            return Ok(sp);
        }
        let start = if c.reset_earliest {
            part.log.log_start_offset()
        } else if c.committed {
            txn::last_stable_offset(part)
        } else {
            part.log.high_watermark()
        };
        let sp = Rc::new(RefCell::new(SharePartition::new(start)));
        shares.insert(k.clone(), sp.clone());
        shares.persist(std::slice::from_ref(k)).await?;
        Ok(sp)
    }

    /// ShareFetch on this owner: acquire records of each partition for the member, in
    /// order, until `max_records` are acquired or `max_bytes` are read (the first
    /// partition with records always gets its first batch whole).
    pub async fn share_fetch(&self, ask: ShareAsk) -> Vec<Result<ShareOut, KafkaError>> {
        let mut left = Left {
            records: ask.max_records.max(1),
            bytes: ask.max_bytes.max(1),
        };
        let member: Rc<str> = Rc::from(&*ask.member);
        let mut out = Vec::with_capacity(ask.reads.len());
        let mut archived_keys: Vec<(SpKey, Vec<Archived>)> = Vec::new();
        for r in &ask.reads {
            let k: SpKey = (r.topic.clone(), r.partition, ask.group.clone());
            let got = self
                .share_fetch_one(&ask, r, &k, &member, left, &mut archived_keys)
                .await;
            if let Ok(g) = &got {
                let n: i64 = g.acquired.iter().map(|a| a.1 - a.0 + 1).sum();
                left.records = left.records.saturating_sub(n as usize);
                left.bytes = left.bytes.saturating_sub(g.records.len());
            }
            out.push(got);
            if left.records == 0 || left.bytes == 0 {
                break;
            }
        }
        while out.len() < ask.reads.len() {
            out.push(Ok(ShareOut::default()));
        }
        if !archived_keys.is_empty() {
            let mut keys = Vec::new();
            for (k, a) in archived_keys {
                self.dead_letter(&k, &ask.config, a).await;
                keys.push(k);
            }
            if let Err(e) = self.shares().persist(&keys).await {
                tracing::warn!("saving share state after lock expiry failed: {}", e.message);
            }
        }
        out
    }

    async fn share_fetch_one(
        &self,
        ask: &ShareAsk,
        r: &ShareRead,
        k: &SpKey,
        member: &Rc<str>,
        left: Left,
        archived_keys: &mut Vec<(SpKey, Vec<Archived>)>,
    ) -> Result<ShareOut, KafkaError> {
        let part = self.get(&k.0, k.1)?;
        let c = &ask.config;
        let sp = self.share_partition(&part, k, c).await?;
        let now = now_ms();
        let (from, wait_from, acquirable) = {
            let mut s = sp.borrow_mut();
            let archived = s.expire(now, c);
            if !archived.is_empty() {
                archived_keys.push((k.clone(), archived));
            }
            (s.next_read(now, c), s.end(), s.acquirable(now, c))
        };
        let end = if c.committed {
            txn::last_stable_offset(&part)
        } else {
            part.log.high_watermark()
        };
        let mut out = ShareOut {
            wait_from,
            window_full: from.is_none(),
            ..ShareOut::default()
        };
        if let Some(from) = from.filter(|&f| f < end) {
            let max_bytes = read_budget(&part, left.records.min(acquirable), left.bytes);
            // In the step that picks the segments, as `partition::read` does: a cleaning
            // pass forgets an aborted entry as it switches segments.
            let aborted = match c.committed {
                true => txn::aborted_transactions(&part, from, end),
                false => Vec::new(),
            };
            let slice = part.log.read_below(from, max_bytes, end).await?;
            let mut data = Vec::with_capacity(slice.len());
            slice.read_to_vec(&mut data).await?;
            let data = Bytes::from(data);
            let batches = spans(&data, &aborted);
            let spans: Vec<BatchSpan> = batches
                .iter()
                .map(|b| BatchSpan {
                    not_before_ms: match r.delay_ms {
                        0 => 0,
                        delay => b.max_timestamp.saturating_add(delay),
                    },
                    ..b.span
                })
                .collect();
            let (acquired, used) =
                sp.borrow_mut()
                    .acquire(member, &spans, left.records, now_ms(), c);
            out.records = keep_batches(&data, &batches, &used);
            part.fetched_bytes
                .set(part.fetched_bytes.get() + out.records.len() as u64);
            out.acquired = acquired;
        }
        out.wake_at_ms = sp.borrow().next_deadline();
        Ok(out)
    }

    /// ShareAcknowledge (or the acks of a ShareFetch) on this owner: apply each
    /// partition's acks, then make the new windows durable (one group commit) before
    /// answering. Per partition: NONE or the error.
    pub async fn share_ack(
        &self,
        group: &Arc<str>,
        member: &str,
        config: &ShareConfig,
        acks: Vec<ShareAcks>,
    ) -> Vec<ErrorCode> {
        let shares = self.shares();
        let now = now_ms();
        let mut codes = Vec::with_capacity(acks.len());
        let mut keys = Vec::new();
        let mut dead = Vec::new();
        for a in &acks {
            let k: SpKey = (a.topic.clone(), a.partition, group.clone());
            let code = match shares.find(&k) {
                None if self.find(&a.topic, a.partition).is_none() => {
                    ErrorCode::UnknownTopicOrPartition
                }
                None => ErrorCode::InvalidRecordState,
                Some(sp) => {
                    let mut s = sp.borrow_mut();
                    let mut archived = s.expire(now, config);
                    let code = match s.acknowledge(member, &a.batches, now, config) {
                        Ok(more) => {
                            archived.extend(more);
                            ErrorCode::None
                        }
                        Err(code) => code,
                    };
                    dead.push((k.clone(), archived));
                    code
                }
            };
            if code == ErrorCode::None {
                keys.push(k);
            }
            codes.push(code);
        }
        for (k, archived) in dead {
            if !keys.contains(&k) && !archived.is_empty() {
                keys.push(k.clone());
            }
            self.dead_letter(&k, config, archived).await;
        }
        if let Err(e) = shares.persist(&keys).await {
            tracing::warn!("saving share acknowledgements failed: {}", e.message);
            for c in codes.iter_mut() {
                if *c == ErrorCode::None {
                    *c = ErrorCode::KafkaStorageError;
                }
            }
        }
        shares.wake_fetchers();
        codes
    }

    /// A member's share session closed: what it holds on these partitions goes back.
    pub async fn share_release(
        &self,
        group: &Arc<str>,
        member: &str,
        config: &ShareConfig,
        reads: &[ShareRead],
    ) {
        let shares = self.shares();
        let now = now_ms();
        let mut keys = Vec::new();
        for r in reads {
            let k: SpKey = (r.topic.clone(), r.partition, group.clone());
            if let Some(sp) = shares.find(&k) {
                let archived = sp.borrow_mut().release_member(member, now, config);
                self.dead_letter(&k, config, archived).await;
                keys.push(k);
            }
        }
        if let Err(e) = shares.persist(&keys).await {
            tracing::warn!("saving released share records failed: {}", e.message);
        }
        shares.wake_fetchers();
    }

    /// The share partitions of `group` this shard owns.
    pub fn share_views(&self, group: Option<&str>) -> Vec<ShareView> {
        let mut v = self.shares().views();
        if let Some(g) = group {
            v.retain(|s| &*s.group == g);
        }
        v
    }

    /// AlterShareGroupOffsets / DeleteShareGroupOffsets: start the share partition
    /// anew at `start` (None: forget it; the next fetch starts per the reset policy).
    pub async fn share_reset(
        &self,
        group: &Arc<str>,
        topic: &Arc<str>,
        partition: i32,
        start: Option<i64>,
    ) -> Result<(), KafkaError> {
        self.get(topic, partition)?;
        let shares = self.shares();
        let k: SpKey = (topic.clone(), partition, group.clone());
        match start {
            Some(s) => {
                let sp = Rc::new(RefCell::new(SharePartition::new(s)));
                shares.insert(k.clone(), sp);
                shares.persist(&[k]).await
            }
            None => shares.remove(&k).await,
        }
    }
}

/// The most one ShareFetch reads from one share partition's log. The bytes are copied
/// into memory (ShareFetch carries records inline) and only the batches acquired are
/// kept, so this bounds what a fetch holds per partition whatever max_bytes the client
/// asks for (librdkafka asks 50 MiB): with 1 M records outstanding that read was the
/// broker's peak RSS (perf/RESULTS.md). 4 MiB covers a full window of 2,000 1 KiB
/// records; the first batch is read whole even when larger (KIP-74).
const SHARE_READ_MAX_BYTES: usize = 4 << 20;

/// Bytes read beyond the estimate, for batch headers and records larger than average.
const READ_SLACK: u64 = 64 << 10;

/// What a ShareFetch reads to find `records` records: the partition's average bytes per
/// offset times `records`, a quarter more and `READ_SLACK`, within `max_bytes` and
/// `SHARE_READ_MAX_BYTES`. Only acquired batches are kept, so reading a full 4 MiB for a
/// window with room for a few records copied megabytes per fetch for nothing: with 16
/// members on one partition that copying held the owner's core (perf/RESULTS.md).
fn read_budget(part: &Partition, records: usize, max_bytes: usize) -> usize {
    let offsets = (part.log.high_watermark() - part.log.log_start_offset()).max(1) as u64;
    let per_offset = (part.log.size_bytes() / offsets).max(1);
    let estimate = per_offset.saturating_mul(records.max(1) as u64) / 4 * 5 + READ_SLACK;
    let estimate = usize::try_from(estimate).unwrap_or(usize::MAX);
    max_bytes.min(SHARE_READ_MAX_BYTES).min(estimate)
}

/// What is left of a ShareFetch's limits on this owner.
#[derive(Clone, Copy)]
struct Left {
    records: usize,
    bytes: usize,
}

/// One batch of the bytes read: what acquisition needs of it and where it lies.
struct ReadBatch {
    span: BatchSpan,
    max_timestamp: i64,
    bytes: std::ops::Range<usize>,
}

/// The batches of `data` (whole batches read from `from`) as acquisition sees them:
/// control batches and the batches of the `aborted` transactions (read_committed) skipped.
fn spans(data: &[u8], aborted: &[AbortedTxn]) -> Vec<ReadBatch> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + batch::HEADER_LEN <= data.len() {
        let info = batch::header_info(&data[pos..], pos);
        let base = batch::base_offset(&data[pos..]);
        let last = base + info.last_offset_delta as i64;
        let in_aborted = info.is_transactional()
            && aborted.iter().any(|t| {
                t.producer_id == info.producer_id && t.first_offset <= base && base <= t.last_offset
            });
        let span = BatchSpan {
            base,
            last,
            skip: info.is_control() || in_aborted,
            not_before_ms: 0,
        };
        let len = info.len.max(batch::HEADER_LEN);
        out.push(ReadBatch {
            span,
            max_timestamp: info.max_timestamp,
            bytes: pos..(pos + len).min(data.len()),
        });
        pos += len;
    }
    out
}

/// The batches of `data` whose records were acquired: a slice of `data` when they are
/// back to back (the usual case), else one new buffer.
fn keep_batches(data: &Bytes, batches: &[ReadBatch], used: &[bool]) -> Bytes {
    let kept: Vec<&std::ops::Range<usize>> = batches
        .iter()
        .zip(used)
        .filter(|(_, &u)| u)
        .map(|(b, _)| &b.bytes)
        .collect();
    let (Some(first), Some(last)) = (kept.first(), kept.last()) else {
        return Bytes::new();
    };
    if kept.windows(2).all(|w| w[0].end == w[1].start) {
        return data.slice(first.start..last.end);
    }
    let mut out = Vec::with_capacity(kept.iter().map(|r| r.len()).sum());
    for r in kept {
        out.extend_from_slice(&data[r.clone()]);
    }
    Bytes::from(out)
}
