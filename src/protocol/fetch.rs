//! Fetch: pull-based with long-polling. The partitions of a request are grouped by
//! owner shard; each owner reads its partitions in request order within the
//! response's byte budget (one hop per owner, not per partition). If fewer than
//! `min_bytes` came back, the request waits until an append to one of its partitions
//! (an owner wakes only that partition's waiters) or `max_wait_ms`, then reads again.

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{join_all, select, select_all, LocalBoxFuture};
use futures_util::FutureExt;
use kafka_protocol::messages::*;

use super::errors::{self, KafkaError};
use super::fetch_response::{PartitionOut, Records, TopicOut};
use super::owned_partition;
use crate::log::FetchSlice;
use crate::producer::txn;
use crate::shard::{Partition, Shard};

/// The most record bytes one response carries, as Kafka's broker `fetch.max.bytes`.
const FETCH_MAX_BYTES: usize = 57_671_680;
/// How long a fetch whose reads were deferred (fetch budget full) waits to retry.
const DEFER_BACKOFF: Duration = Duration::from_millis(5);

/// One partition of the request, resolved to its owner.
#[derive(Clone)]
struct Want {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    /// isolation_level 1 (read_committed): nothing at or beyond the last stable offset.
    committed: bool,
}

/// What an owner read for one partition.
struct Got {
    records: Records,
    /// The records were left out because the shard's fetch budget was full.
    deferred: bool,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    /// read_committed only: (producer id, first offset) of the aborted transactions
    /// overlapping the records.
    aborted: Option<Vec<(i64, i64)>>,
}

type PartResult = Result<Got, KafkaError>;

/// One owner's share of a request: positions (topic i, partition j) and what to read.
type OwnerBatch = (Vec<(usize, usize)>, Vec<Want>);

/// Read `wants` in order on their owner, stopping once `budget` bytes are used.
/// The first partition with data may exceed the budget by one batch (KIP-74).
async fn read_owned(
    shard: Rc<Shard>,
    wants: Vec<Want>,
    mut budget: usize,
    first: bool,
) -> Vec<PartResult> {
    let mut out = Vec::with_capacity(wants.len());
    let mut any = !first;
    for w in wants {
        let r = async {
            let part = owned_partition(&shard, &w.topic, w.partition)?;
            let log = &part.log;
            let (hwm, start) = (log.high_watermark(), log.log_start_offset());
            let lso = txn::last_stable_offset(&part);
            let end = if w.committed { lso } else { hwm };
            let limit = w.max_bytes.min(budget);
            let mut records = Some(Records::Empty);
            if limit > 0 || !any {
                let slice = log.read_below(w.offset, limit.max(1), end).await?;
                if !slice.is_empty() && (slice.len() <= limit || !any) {
                    records = take_records(&shard, slice).await?;
                }
            }
            let records = records.map(|r| (r.len(), r));
            Ok(Got {
                deferred: records.is_none(),
                aborted: w.committed.then(|| match &records {
                    Some((n, _)) if *n > 0 => aborted(&part, w.offset, end),
                    _ => Vec::new(),
                }),
                records: records.map(|(_, r)| r).unwrap_or_default(),
                high_watermark: hwm,
                last_stable_offset: lso,
                log_start_offset: start,
            })
        }
        .await;
        if let Ok(g) = &r {
            if g.records.len() > 0 {
                any = true;
                budget = budget.saturating_sub(g.records.len());
            }
        }
        out.push(r);
    }
    shard.metrics.record_fetch(
        out.iter()
            .map(|r| r.as_ref().map(|g| g.records.len()).unwrap_or(0))
            .sum(),
    );
    out
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

/// The slice as file ranges for `sendfile` when its bytes are in the page cache (so the
/// send cannot block the connection's shard on the disk), else read into memory
/// through io_uring. `fetch_zero_copy = false` always copies (kept to measure against).
///
/// Copied bytes count against the shard's fetch budget (`fetch_budget_bytes_per_shard`)
/// until the response that holds them is sent. Over budget, the partition answers with
/// no records this time (the consumer fetches again); a read always goes ahead when
/// nothing else is held, so consumers always progress. `None`: deferred.
async fn take_records(shard: &Shard, slice: FetchSlice) -> Result<Option<Records>, KafkaError> {
    let len = slice.len();
    if shard.config.fetch_zero_copy && slice.is_cached() {
        return Ok(Some(Records::Files {
            ranges: slice.into_send_ranges(),
            len,
        }));
    }
    let held = COPY_HELD.with(Arc::clone);
    let before = held.load(Ordering::Relaxed);
    if before > 0 && before + len > shard.config.fetch_budget_bytes_per_shard() {
        shard.metrics.record_fetch_deferred();
        return Ok(None);
    }
    held.fetch_add(len, Ordering::Relaxed);
    // From here `copy` gives its count back when dropped, on any path.
    let mut copy = Held {
        data: Vec::with_capacity(len),
        counter: held,
        counted: len,
    };
    slice.read_to_vec(&mut copy.data).await?;
    shard.metrics.record_fetch_copied(len);
    Ok(Some(Records::Mem(Bytes::from_owner(copy))))
}

thread_local! {
    /// Copied fetch bytes this shard has read and not yet seen sent. Responses are sent
    /// (and dropped) on the connection's shard, so the count is atomic: one add and
    /// one sub per copied partition read, on the copy path only.
    static COPY_HELD: Arc<AtomicUsize> = Arc::new(AtomicUsize::new(0));
}

/// Copied record bytes that give their count back to their shard's budget when dropped.
struct Held {
    data: Vec<u8>,
    counter: Arc<AtomicUsize>,
    counted: usize,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.counted, Ordering::Relaxed);
    }
}

/// Resolves when any of `wants` has data past its offset, or after `timeout`.
async fn wait_owned(shard: Rc<Shard>, wants: Vec<Want>, timeout: Duration) {
    let mut waits: Vec<LocalBoxFuture<'static, ()>> = Vec::new();
    for w in wants {
        if let Some(part) = shard.partition(&w.topic, w.partition) {
            // read_committed waits on the last stable offset, which moves only with the
            // high watermark: wait for the next append past what is already there.
            let target = if w.committed {
                txn::committed_wait_target(&part, w.offset)
            } else {
                w.offset
            };
            let log = part.log.clone();
            waits.push(async move { log.wait_for_append(target).await }.boxed_local());
        }
    }
    let timer = glommio::timer::Timer::new(timeout).boxed_local();
    if waits.is_empty() {
        timer.await;
        return;
    }
    let shutdown = async move { shard.shutdown.wait().await }.boxed_local();
    let _ = select(select(timer, shutdown), select_all(waits)).await;
}

pub async fn handle(shard: &Rc<Shard>, req: FetchRequest, version: i16) -> Vec<TopicOut> {
    let reg = shard.registry();
    let by_id = version >= 13;
    // Resolve every requested partition: (topic index, partition index) → owner and Want.
    let mut plan: Vec<Vec<Result<(usize, Want), KafkaError>>> = Vec::new();
    let committed = req.isolation_level == 1;
    for t in &req.topics {
        let meta = if by_id {
            reg.topic_by_id(&t.topic_id)
        } else {
            reg.topic(t.topic.as_str())
        };
        let parts = t
            .partitions
            .iter()
            .map(|p| {
                let meta = meta.ok_or_else(|| {
                    if by_id {
                        KafkaError::new(errors::UNKNOWN_TOPIC_ID, "unknown topic id")
                    } else {
                        KafkaError::new(
                            errors::UNKNOWN_TOPIC_OR_PARTITION,
                            format!("topic '{}' does not exist", t.topic.as_str()),
                        )
                    }
                })?;
                let owner = meta.owner(p.partition).ok_or_else(|| {
                    KafkaError::new(
                        errors::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("partition {}-{} does not exist", meta.name, p.partition),
                    )
                })?;
                Ok((
                    owner,
                    Want {
                        topic: meta.name.clone(),
                        partition: p.partition,
                        offset: p.fetch_offset,
                        max_bytes: p.partition_max_bytes.max(0) as usize,
                        committed,
                    },
                ))
            })
            .collect();
        plan.push(parts);
    }
    // Kafka caps a response at the broker's fetch.max.bytes whatever the request asks.
    let max_bytes = if req.max_bytes <= 0 {
        FETCH_MAX_BYTES
    } else {
        (req.max_bytes as usize).min(FETCH_MAX_BYTES)
    };
    let min_bytes = req.min_bytes.max(0) as usize;
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);

    let mut results = read_all(shard, &plan, max_bytes).await;
    loop {
        let total: usize = results
            .iter()
            .flatten()
            .map(|r| r.as_ref().map(|g| g.records.len()).unwrap_or(0))
            .sum();
        let errored = results.iter().flatten().any(|r| r.is_err());
        let deferred = results
            .iter()
            .flatten()
            .any(|r| r.as_ref().map(|g| g.deferred).unwrap_or(false));
        let now = Instant::now();
        if total >= min_bytes || errored || now >= deadline || shard.shutdown.is_fired() {
            break;
        }
        // What was read does not count against the budget while the request waits.
        drop(results);
        if deferred {
            // Data is there but the budget is full: an append would not help, so
            // retry after a short pause (under memory pressure only).
            glommio::timer::sleep(DEFER_BACKOFF.min(deadline - now)).await;
        } else {
            wait_any(shard, &plan, deadline - now).await;
        }
        results = read_all(shard, &plan, max_bytes).await;
    }

    req.topics
        .into_iter()
        .zip(results)
        .map(|(t, parts)| TopicOut {
            topic: t.topic.0.to_string(),
            topic_id: *t.topic_id.as_bytes(),
            partitions: t
                .partitions
                .iter()
                .zip(parts)
                .map(|(p, r)| partition_out(p.partition, r))
                .collect(),
        })
        .collect()
}

fn partition_out(partition: i32, r: PartResult) -> PartitionOut {
    match r {
        Ok(g) => PartitionOut {
            partition_index: partition,
            error_code: 0,
            high_watermark: g.high_watermark,
            last_stable_offset: g.last_stable_offset,
            log_start_offset: g.log_start_offset,
            aborted_transactions: g.aborted,
            records: g.records,
        },
        Err(e) => PartitionOut {
            partition_index: partition,
            error_code: e.code,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted_transactions: None,
            records: Records::Empty,
        },
    }
}

/// Read every partition of the plan: one call per owner shard, merged in request order.
async fn read_all(
    shard: &Rc<Shard>,
    plan: &[Vec<Result<(usize, Want), KafkaError>>],
    max_bytes: usize,
) -> Vec<Vec<PartResult>> {
    // Per owner: the positions (topic i, partition j) and wants, in request order.
    let mut per_owner: Vec<OwnerBatch> = vec![(Vec::new(), Vec::new()); shard.count];
    let mut results: Vec<Vec<Option<PartResult>>> = plan
        .iter()
        .map(|parts| parts.iter().map(|_| None).collect())
        .collect();
    for (i, parts) in plan.iter().enumerate() {
        for (j, p) in parts.iter().enumerate() {
            match p {
                Ok((owner, w)) => {
                    per_owner[*owner].0.push((i, j));
                    per_owner[*owner].1.push(w.clone());
                }
                Err(e) => results[i][j] = Some(Err(e.clone())),
            }
        }
    }
    // The owners read at the same time, so each gets an equal share of `max_bytes`
    // and the response stays within it (librdkafka refuses a response larger than
    // its receive.message.max.bytes, 100 MB). As in Kafka, the first batch of the
    // first partition asked for is returned whole even when over every limit
    // (KIP-74), so its owner gets that exception; clients rotate their partition
    // order, so every partition gets its turn.
    let first_owner = plan.iter().flatten().flatten().map(|(o, _)| *o).next();
    let owners = per_owner.iter().filter(|(pos, _)| !pos.is_empty()).count();
    let max_bytes = (max_bytes / owners.max(1)).max(1);
    let calls = per_owner
        .into_iter()
        .enumerate()
        .filter(|(_, (pos, _))| !pos.is_empty())
        .map(|(owner, (pos, wants))| {
            let first = Some(owner) == first_owner;
            async move {
                let reads = shard
                    .invoke_on(owner, move |s| read_owned(s, wants, max_bytes, first))
                    .await;
                (pos, reads)
            }
        });
    for (pos, reads) in join_all(calls).await {
        match reads {
            Ok(reads) => {
                for ((i, j), r) in pos.into_iter().zip(reads) {
                    results[i][j] = Some(r);
                }
            }
            Err(_) => {
                for (i, j) in pos {
                    results[i][j] = Some(Err(KafkaError::new(
                        errors::NOT_LEADER_OR_FOLLOWER,
                        "the owner shard is shutting down",
                    )));
                }
            }
        }
    }
    results
        .into_iter()
        .map(|parts| {
            parts
                .into_iter()
                .map(|r| r.expect("every position filled above"))
                .collect()
        })
        .collect()
}

/// Wait until any partition of the plan gets an append, or the timeout passes.
async fn wait_any(
    shard: &Rc<Shard>,
    plan: &[Vec<Result<(usize, Want), KafkaError>>],
    timeout: Duration,
) {
    let mut per_owner: Vec<Vec<Want>> = vec![Vec::new(); shard.count];
    for (owner, w) in plan.iter().flatten().flatten() {
        per_owner[*owner].push(w.clone());
    }
    let waits: Vec<LocalBoxFuture<'_, ()>> = per_owner
        .into_iter()
        .enumerate()
        .filter(|(_, w)| !w.is_empty())
        .map(|(owner, wants)| {
            async move {
                let _ = shard
                    .invoke_on(owner, move |s| wait_owned(s, wants, timeout))
                    .await;
            }
            .boxed_local()
        })
        .collect();
    if waits.is_empty() {
        glommio::timer::Timer::new(timeout).await;
        return;
    }
    let _ = select_all(waits).await;
}
