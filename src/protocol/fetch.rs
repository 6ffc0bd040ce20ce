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
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use kafka_protocol::messages::*;

use super::fetch_response::{PartitionOut, TopicOut};
use super::route::owner_gone;
use crate::kafka::{ErrorCode, KafkaError, ShardId};
use crate::partition::long_poll::ParkedRead;
use crate::partition::messages::{CancelWait, ReadOrWait, ReadPartitions, WaitForData};
use crate::partition::read::{Brought, CopyAllowance, Read, ReadBatch, ReadOut};
use crate::partition::Records;
use crate::protocol::authorized::{Authz, READ};
use crate::protocol::context::{Context, FetchHold};
use crate::runtime::MeshError;

/// The most record bytes one response carries, as Kafka's broker `fetch.max.bytes`.
const FETCH_MAX_BYTES: usize = 57_671_680;
/// How long a fetch whose reads were deferred (fetch budget full) waits to retry.
const DEFER_BACKOFF: Duration = Duration::from_millis(5);

type PartResult = Result<ReadOut, KafkaError>;
/// Every requested partition: (topic i, partition j) → its owner and what to read.
type Plan = Vec<Vec<Result<(ShardId, Read), KafkaError>>>;

/// What a fetch waits for.
#[derive(Clone, Copy)]
struct Wait {
    min_bytes: usize,
    deadline: Instant,
}

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

    let zero_copy = ctx.config.fetch_zero_copy;
    let mut parked = zero_copy;
    let mut per_owner = Vec::new();
    let wait = Wait {
        min_bytes,
        deadline,
    };
    let (mut results, mut hold) = match parked {
        true => (
            park_and_read(ctx, &plan, max_bytes, wait, &mut per_owner).await,
            None,
        ),
        false => read_all(ctx, &plan, max_bytes).await,
    };
    loop {
        let seen = Brought::of(results.iter().flatten());
        let now = Instant::now();
        if seen.bytes >= min_bytes || seen.errored || now >= deadline || ctx.shutdown.is_fired() {
            break;
        }
        // What was read does not count against the budget while the request waits.
        drop(results);
        drop(hold);
        if seen.deferred && parked {
            // Records not in the page cache (the owners copy nothing for a parked
            // fetch): read them now, with this shard's budget.
            parked = false;
        } else if seen.deferred {
            // Data is there but the budget is full: an append would not help, so
            // retry after a short pause (under memory pressure only).
            glommio::timer::sleep(DEFER_BACKOFF.min(deadline - now)).await;
        } else if zero_copy {
            parked = true;
            let parked_reads = park_and_read(ctx, &plan, max_bytes, wait, &mut per_owner).await;
            (results, hold) = (parked_reads, None);
            continue;
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

/// A plan's reads by owner, with what each owner may read.
struct Split {
    /// (owner, its batch), owners with reads only.
    owners: Vec<(ShardId, OwnerBatch)>,
    /// Bytes each owner may read.
    budget: usize,
    /// The owner of the request's first partition (KIP-74).
    first_owner: Option<ShardId>,
}

/// Split the plan by owner, filling the planning errors in `results`. The owners read at
/// the same time, so each gets an equal share of `max_bytes` (and of the fetch budget)
/// and the response stays within it (librdkafka refuses a response larger than its
/// receive.message.max.bytes, 100 MB). As in Kafka, the first batch of the first
/// partition asked for is returned whole even when over every limit (KIP-74), so its
/// owner gets that exception; clients rotate their partition order, so every partition
/// gets its turn.
fn split(
    ctx: &Context,
    plan: &Plan,
    max_bytes: usize,
    results: &mut [Vec<Option<PartResult>>],
) -> Split {
    let owners: Vec<(ShardId, OwnerBatch)> = by_owner(ctx, plan, results)
        .into_iter()
        .enumerate()
        .filter(|(_, b)| !b.positions.is_empty())
        .map(|(owner, b)| (ShardId(owner), b))
        .collect();
    Split {
        budget: (max_bytes / owners.len().max(1)).max(1),
        first_owner: plan.iter().flatten().flatten().map(|(o, _)| *o).next(),
        owners,
    }
}

fn unanswered(plan: &Plan) -> Vec<Vec<Option<PartResult>>> {
    plan.iter()
        .map(|parts| parts.iter().map(|_| None).collect())
        .collect()
}

/// One owner's answer put in place, or its error on each of its positions.
fn fill(
    results: &mut [Vec<Option<PartResult>>],
    positions: Vec<(usize, usize)>,
    reads: Result<ReadBatch, MeshError>,
) {
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

fn answered(results: Vec<Vec<Option<PartResult>>>) -> Vec<Vec<PartResult>> {
    results
        .into_iter()
        .map(|parts| {
            parts
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(lost())))
                .collect()
        })
        .collect()
}

/// Read every partition of the plan: one message per owner shard, merged in request
/// order; with the fetch budget the copied bytes hold.
async fn read_all(
    ctx: &Context,
    plan: &Plan,
    max_bytes: usize,
) -> (Vec<Vec<PartResult>>, Option<FetchHold>) {
    let mut results = unanswered(plan);
    let split = split(ctx, plan, max_bytes, &mut results);
    let owners = split.owners.len().max(1);
    let mut hold = ctx.fetch_budget.reserve();
    let allowance = CopyAllowance {
        bytes: hold.bytes / owners,
        may_exceed: hold.empty_before,
    };
    let calls = split.owners.into_iter().map(|(owner, b)| {
        let msg = ReadPartitions {
            reads: b.reads,
            budget: split.budget,
            first: Some(owner) == split.first_owner,
            allowance,
        };
        async move { (b.positions, ctx.mesh.call(owner, msg).await) }
    });
    for (positions, reads) in join_all(calls).await {
        fill(&mut results, positions, reads);
    }
    let results = answered(results);
    let copied = results
        .iter()
        .flatten()
        .map(|r| r.as_ref().map(|g| g.records.copied()).unwrap_or(0))
        .sum();
    hold.settle(copied);
    (results, (copied > 0).then_some(hold))
}

/// Read every partition of the plan on its owner, each owner waiting there for an
/// append until its reads bring something (`partition::long_poll`); the first owner to
/// answer ends the others' waits, and the caller's loop adds them up. Copies nothing
/// (no fetch budget is held while the owners wait): records not in the page cache come
/// back deferred.
async fn park_and_read(
    ctx: &Context,
    plan: &Plan,
    max_bytes: usize,
    wait: Wait,
    before: &mut Vec<usize>,
) -> Vec<Vec<PartResult>> {
    let mut results = unanswered(plan);
    let split = split(ctx, plan, max_bytes, &mut results);
    let id = ctx.next_fetch_wait();
    // One owner waits for the request's min_bytes itself. Several each answer with more
    // than they brought the last time (`before`, by owner shard): the caller adds them up, and an owner
    // that has some bytes, not yet enough, does not answer again at once.
    let single = split.owners.len() == 1;
    if !single {
        before.resize(ctx.shards(), 0);
    }
    let owner_min = |owner: ShardId| match single {
        true => wait.min_bytes,
        false => wait.min_bytes.min(before[owner.0] + 1),
    };
    let mut waiting: Vec<ShardId> = split.owners.iter().map(|(o, _)| *o).collect();
    let mut calls: FuturesUnordered<_> = split
        .owners
        .into_iter()
        .map(|(owner, b)| {
            let msg = ReadOrWait(ParkedRead {
                id,
                reads: b.reads,
                budget: split.budget,
                first: Some(owner) == split.first_owner,
                min_bytes: owner_min(owner),
                deadline: wait.deadline,
            });
            async move { (owner, b.positions, ctx.mesh.call(owner, msg).await) }
        })
        .collect();
    while let Some((owner, positions, reads)) = calls.next().await {
        if let (Ok(batch), false) = (&reads, single) {
            before[owner.0] = batch.brought().bytes;
        }
        fill(&mut results, positions, reads);
        waiting.retain(|o| *o != owner);
        // The first answer: the others answer now with what they have.
        let cancels = waiting.drain(..).map(|o| ctx.mesh.call(o, CancelWait(id)));
        join_all(cancels).await;
    }
    answered(results)
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
