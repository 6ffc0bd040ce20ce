//! Fetch: pull-based with long-polling. The partitions of a request are grouped by
//! owner shard; each owner reads its partitions in request order within the
//! response's byte budget (one message per owner, not per partition). If fewer than
//! `min_bytes` came back, the request waits until an append to one of its partitions
//! (an owner wakes only that partition's waiters) or `max_wait_ms`, then reads again.
//!
//! Which bytes go out by `sendfile` and which are copied is the owners' decision
//! (`partition::read`); this shard only says how many copied bytes it can still hold
//! (its fetch budget) and holds them until the response is sent.

use std::time::{Duration, Instant};

use futures_util::future::{join_all, select_all, LocalBoxFuture};
use futures_util::FutureExt;
use kafka_protocol::messages::*;

use super::fetch_response::{PartitionOut, TopicOut};
use super::route::owner_gone;
use crate::kafka::{ErrorCode, KafkaError, ShardId};
use crate::partition::messages::{ReadPartitions, WaitForData};
use crate::partition::read::{CopyAllowance, Read, ReadOut};
use crate::partition::Records;
use crate::protocol::authorized::{Authz, READ};
use crate::protocol::context::{Context, FetchHold};

/// The most record bytes one response carries, as Kafka's broker `fetch.max.bytes`.
const FETCH_MAX_BYTES: usize = 57_671_680;
/// How long a fetch whose reads were deferred (fetch budget full) waits to retry.
const DEFER_BACKOFF: Duration = Duration::from_millis(5);

type PartResult = Result<ReadOut, KafkaError>;
/// Every requested partition: (topic i, partition j) → its owner and what to read.
type Plan = Vec<Vec<Result<(ShardId, Read), KafkaError>>>;

/// One owner's share of a request: positions (topic i, partition j) and what to read.
#[derive(Default)]
struct OwnerBatch {
    positions: Vec<(usize, usize)>,
    reads: Vec<Read>,
}

fn plan(ctx: &Context, az: &Authz<'_>, req: &FetchRequest, version: i16) -> Plan {
    let reg = ctx.cluster.registry();
    let by_id = version >= 13;
    let committed = req.isolation_level == 1;
    req.topics
        .iter()
        .map(|t| {
            let meta = if by_id {
                reg.topic_by_id(&t.topic_id)
            } else {
                reg.topic(t.topic.as_str())
            };
            let name = meta.map_or(t.topic.as_str(), |m| &m.name);
            let denied = az.topic(name, READ).err();
            t.partitions
                .iter()
                .map(|p| {
                    if let Some(e) = &denied {
                        return Err(e.clone());
                    }
                    let meta = meta.ok_or_else(|| {
                        if by_id {
                            KafkaError::new(ErrorCode::UnknownTopicId, "unknown topic id")
                        } else {
                            super::route::unknown_topic(t.topic.as_str())
                        }
                    })?;
                    let (topic, owner) = super::route::owner_in(meta, p.partition)?;
                    let read = Read {
                        topic,
                        partition: p.partition,
                        offset: p.fetch_offset,
                        max_bytes: p.partition_max_bytes.max(0) as usize,
                        committed,
                    };
                    Ok((owner, read))
                })
                .collect()
        })
        .collect()
}

/// The response's topics, and the fetch budget its copied bytes hold until it is sent.
pub async fn handle(
    ctx: &Context,
    az: &Authz<'_>,
    req: FetchRequest,
    version: i16,
) -> (Vec<TopicOut>, Option<FetchHold>) {
    let plan = plan(ctx, az, &req, version);
    // Kafka caps a response at the broker's fetch.max.bytes whatever the request asks.
    let max_bytes = if req.max_bytes <= 0 {
        FETCH_MAX_BYTES
    } else {
        (req.max_bytes as usize).min(FETCH_MAX_BYTES)
    };
    let min_bytes = req.min_bytes.max(0) as usize;
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);

    let (mut results, mut hold) = read_all(ctx, &plan, max_bytes).await;
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
        if total >= min_bytes || errored || now >= deadline || ctx.shutdown.is_fired() {
            break;
        }
        // What was read does not count against the budget while the request waits.
        drop(results);
        drop(hold);
        if deferred {
            // Data is there but the budget is full: an append would not help, so
            // retry after a short pause (under memory pressure only).
            glommio::timer::sleep(DEFER_BACKOFF.min(deadline - now)).await;
        } else {
            wait_any(ctx, &plan, deadline - now).await;
        }
        (results, hold) = read_all(ctx, &plan, max_bytes).await;
    }
    (response(req, results), hold)
}

fn response(req: FetchRequest, results: Vec<Vec<PartResult>>) -> Vec<TopicOut> {
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
            error_code: e.wire_code(),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted_transactions: None,
            records: Records::Empty,
        },
    }
}

/// Per owner: the positions (topic i, partition j) and reads, in request order; the
/// planning errors filled in `results`.
fn by_owner(
    ctx: &Context,
    plan: &Plan,
    results: &mut [Vec<Option<PartResult>>],
) -> Vec<OwnerBatch> {
    let mut per_owner: Vec<OwnerBatch> = (0..ctx.shards()).map(|_| OwnerBatch::default()).collect();
    for (i, parts) in plan.iter().enumerate() {
        for (j, p) in parts.iter().enumerate() {
            match p {
                Ok((owner, r)) => {
                    per_owner[owner.0].positions.push((i, j));
                    per_owner[owner.0].reads.push(r.clone());
                }
                Err(e) => results[i][j] = Some(Err(e.clone())),
            }
        }
    }
    per_owner
}

/// Read every partition of the plan: one message per owner shard, merged in request
/// order; with the fetch budget the copied bytes hold.
async fn read_all(
    ctx: &Context,
    plan: &Plan,
    max_bytes: usize,
) -> (Vec<Vec<PartResult>>, Option<FetchHold>) {
    let mut results: Vec<Vec<Option<PartResult>>> = plan
        .iter()
        .map(|parts| parts.iter().map(|_| None).collect())
        .collect();
    let per_owner = by_owner(ctx, plan, &mut results);
    // The owners read at the same time, so each gets an equal share of `max_bytes` (and
    // of the fetch budget) and the response stays within it (librdkafka refuses a
    // response larger than its receive.message.max.bytes, 100 MB). As in Kafka, the
    // first batch of the first partition asked for is returned whole even when over
    // every limit (KIP-74), so its owner gets that exception; clients rotate their
    // partition order, so every partition gets its turn.
    let first_owner = plan.iter().flatten().flatten().map(|(o, _)| *o).next();
    let owners = per_owner
        .iter()
        .filter(|b| !b.positions.is_empty())
        .count()
        .max(1);
    let budget = (max_bytes / owners).max(1);
    let mut hold = ctx.fetch_budget.reserve();
    let allowance = CopyAllowance {
        bytes: hold.bytes / owners,
        may_exceed: hold.empty_before,
    };
    let calls = per_owner
        .into_iter()
        .enumerate()
        .filter(|(_, b)| !b.positions.is_empty())
        .map(|(owner, b)| {
            let msg = ReadPartitions {
                reads: b.reads,
                budget,
                first: Some(ShardId(owner)) == first_owner,
                allowance,
            };
            async move { (b.positions, ctx.mesh.call(ShardId(owner), msg).await) }
        });
    for (positions, reads) in join_all(calls).await {
        match reads {
            Ok(batch) => {
                for ((i, j), r) in positions.into_iter().zip(batch.reads) {
                    results[i][j] = Some(r);
                }
            }
            Err(e) => {
                for (i, j) in positions {
                    results[i][j] = Some(Err(owner_gone(e)));
                }
            }
        }
    }
    let results: Vec<Vec<PartResult>> = results
        .into_iter()
        .map(|parts| {
            parts
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(lost())))
                .collect()
        })
        .collect();
    let copied = results
        .iter()
        .flatten()
        .map(|r| r.as_ref().map(|g| g.records.copied()).unwrap_or(0))
        .sum();
    hold.settle(copied);
    (results, (copied > 0).then_some(hold))
}

/// A position no owner answered for (cannot happen: every planned read has an owner).
fn lost() -> KafkaError {
    KafkaError::new(
        ErrorCode::UnknownServerError,
        "no owner answered for the partition",
    )
}

/// Wait until any partition of the plan gets an append, or the timeout passes.
async fn wait_any(ctx: &Context, plan: &Plan, timeout: Duration) {
    let mut per_owner: Vec<Vec<Read>> = vec![Vec::new(); ctx.shards()];
    for (owner, r) in plan.iter().flatten().flatten() {
        per_owner[owner.0].push(r.clone());
    }
    let waits: Vec<LocalBoxFuture<'_, ()>> = per_owner
        .into_iter()
        .enumerate()
        .filter(|(_, w)| !w.is_empty())
        .map(|(owner, reads)| {
            async move {
                let msg = WaitForData {
                    reads,
                    timeout,
                    share: false,
                };
                let _ = ctx.mesh.call(ShardId(owner), msg).await;
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
