//! ShareFetch (KIP-932): update the member's share session, apply the acknowledgements
//! it carries (answered once durable), then acquire records on the partitions' owners
//! (one message per owner), waiting up to `max_wait_ms` when nothing could be acquired.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{ShareFetchRequest, ShareFetchResponse};
use uuid::Uuid;

use super::session::SessionPartition;
use super::{ack_on_owners, config_for, release_on_owners, sb, SessionKey};
use crate::kafka::{ErrorCode, KafkaError};
use crate::partition::messages as pm;
use crate::partition::share::{ShareAcks, ShareAsk, ShareConfig, ShareOut, ShareRead};
use crate::partition::Read;
use crate::protocol::arrivals::Later;
use crate::protocol::authorized::{Authz, READ};
use crate::protocol::context::Context;
use crate::protocol::metadata::NODE_ID;
use crate::protocol::route::owner_in;
use crate::runtime::now_ms;

/// Longest a fetch that found nothing sleeps before it looks again (a release or an
/// expiry elsewhere does not wake it).
const RECHECK: Duration = Duration::from_millis(50);

/// Per partition: what the response says about it.
#[derive(Default)]
struct Answer {
    error: Option<KafkaError>,
    ack: Option<ErrorCode>,
    out: Option<ShareOut>,
}

type Answers = HashMap<(Uuid, i32), Answer>;

fn top_error(code: ErrorCode, msg: &str) -> ShareFetchResponse {
    ShareFetchResponse::default()
        .with_error_code(code.code())
        .with_error_message(Some(sb(msg)))
}

/// READ on the group (else GROUP_AUTHORIZATION_FAILED for the request) and on each
/// topic (else TOPIC_AUTHORIZATION_FAILED for its partitions, which join no session).
pub async fn handle(
    ctx: &Context,
    az: &Authz<'_>,
    req: ShareFetchRequest,
    _version: i16,
    later: &Later,
) -> ShareFetchResponse {
    let group = req
        .group_id
        .as_ref()
        .map(|g| g.to_string())
        .unwrap_or_default();
    let member = req
        .member_id
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    if group.is_empty() || member.is_empty() {
        return top_error(
            ErrorCode::InvalidRequest,
            "group_id and member_id are required",
        );
    }
    if let Err(e) = az.group(&group, READ) {
        return top_error(e.code, &e.message);
    }
    let epoch = req.share_session_epoch;
    let reg = ctx.cluster.registry();
    let mut answers = Answers::new();
    let mut add: Vec<SessionPartition> = Vec::new();
    let mut acks: Vec<(SessionPartition, ShareAcks)> = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let Some(meta) = reg.topic_by_id(&t.topic_id) else {
                answers
                    .entry((t.topic_id, p.partition_index))
                    .or_default()
                    .error = Some(KafkaError::new(
                    ErrorCode::UnknownTopicId,
                    "no topic with this id",
                ));
                continue;
            };
            if let Err(e) = az.topic(&meta.name, READ) {
                answers
                    .entry((t.topic_id, p.partition_index))
                    .or_default()
                    .error = Some(e);
                continue;
            }
            let sp = (t.topic_id, meta.name.clone(), p.partition_index);
            add.push(sp.clone());
            if !p.acknowledgement_batches.is_empty() {
                let batches = p
                    .acknowledgement_batches
                    .iter()
                    .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                    .collect();
                let a = ShareAcks {
                    topic: meta.name.clone(),
                    partition: p.partition_index,
                    batches,
                };
                acks.push((sp, a));
            }
        }
    }
    if epoch == 0 && !acks.is_empty() {
        return top_error(
            ErrorCode::InvalidRequest,
            "a new share session carries no acknowledgements",
        );
    }
    let forget: Vec<(Uuid, i32)> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
        .collect();
    let key: SessionKey = (group.clone(), member.clone());
    let session = match ctx.share_sessions.update(key.clone(), epoch, &add, &forget) {
        Ok(s) => s,
        Err(code) => return top_error(code, "share session"),
    };
    let config = config_for(ctx, &key).await;
    let (g, m): (Arc<str>, Arc<str>) = (group.as_str().into(), member.as_str().into());
    let acked = ack_on_owners(ctx, &g, &m, &config, acks).await;
    for ((id, p), code) in acked {
        answers.entry((id, p)).or_default().ack = Some(code);
    }
    if epoch == -1 {
        release_on_owners(ctx, &g, &m, &config, &session.partitions).await;
    } else {
        let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
        let ask = Ask {
            group: g,
            member: m,
            config: config.clone(),
            max_records: req.max_records.clamp(1, 10_000) as usize,
            max_bytes: (req.max_bytes.max(1) as usize)
                .min(ctx.config.fetch_budget_bytes_per_shard()),
        };
        fetch_until(ctx, &ask, &session.partitions, (wait, later), &mut answers).await;
    }
    let full = epoch == 0;
    respond(answers, &session.partitions, full, config.lock_ms)
}

struct Ask {
    group: Arc<str>,
    member: Arc<str>,
    config: ShareConfig,
    max_records: usize,
    max_bytes: usize,
}

/// Acquire on every owner; when nothing came back, wait for new data, a lock expiry,
/// the deadline or the connection's next request (`later`: its response would wait
/// behind this one, and it is most often the member's own ShareAcknowledge), and try
/// again.
async fn fetch_until(
    ctx: &Context,
    ask: &Ask,
    parts: &[SessionPartition],
    (wait, later): (Duration, &Later),
    answers: &mut Answers,
) {
    let mut deadline = Instant::now() + wait;
    loop {
        let (got, waits, wake) = fetch_once(ctx, ask, parts).await;
        let any = got
            .iter()
            .any(|(_, r)| !matches!(r, Ok(o) if o.acquired.is_empty()));
        let now = Instant::now();
        // Every window full: the acks that would free it may be queued behind this very
        // request on the member's connection (responses leave in request order), so do
        // not hold it for max_wait_ms — one short recheck, then answer.
        let full = !got.is_empty() && got.iter().all(|(_, r)| matches!(r, Ok(o) if o.window_full));
        if full {
            deadline = deadline.min(now + RECHECK);
        }
        if any || now >= deadline || ctx.shutdown.is_fired() || later.came() {
            for (k, r) in got {
                let a = answers.entry(k).or_default();
                match r {
                    Ok(o) => a.out = Some(o),
                    Err(e) => a.error = Some(e),
                }
            }
            return;
        }
        let mut left = deadline - now;
        if let Some(at) = wake {
            let until = Duration::from_millis((at - now_ms()).max(1) as u64);
            left = left.min(until);
        }
        left = left.min(RECHECK);
        let owners = wait_on_owners(ctx, waits, left, ask.config.committed);
        futures_lite::future::or(owners, later.wait()).await;
        // Whatever ended the wait, let the shard's other tasks run before looking again:
        // a loop that never waits would hold the shard (mesh messages included).
        futures_lite::future::yield_now().await;
    }
}

type Fetched = Vec<((Uuid, i32), Result<ShareOut, KafkaError>)>;

/// Per partition fetched: its owner, and the read to wait on (None: its window is full,
/// only a change of share state can free it).
type Waits = Vec<(usize, Option<Read>)>;

async fn fetch_once(
    ctx: &Context,
    ask: &Ask,
    parts: &[SessionPartition],
) -> (Fetched, Waits, Option<i64>) {
    let reg = ctx.cluster.registry();
    let mut by_owner: HashMap<usize, Vec<&SessionPartition>> = HashMap::new();
    let mut out: Fetched = Vec::new();
    for sp in parts {
        let owner = reg
            .topic(&sp.1)
            .ok_or_else(|| KafkaError::new(ErrorCode::UnknownTopicId, "the topic is gone"))
            .and_then(|meta| owner_in(meta, sp.2));
        match owner {
            Ok((_, shard)) => by_owner.entry(shard.0).or_default().push(sp),
            Err(e) => out.push(((sp.0, sp.2), Err(e))),
        }
    }
    // The owners share max_bytes, as in Fetch (a client refuses a larger response).
    let max_bytes = (ask.max_bytes / by_owner.len().max(1)).max(1);
    let reg = &reg;
    let calls = by_owner.into_iter().map(|(shard, sps)| async move {
        let msg = pm::ShareFetch(ShareAsk {
            group: ask.group.clone(),
            member: ask.member.clone(),
            config: ask.config.clone(),
            max_records: ask.max_records,
            max_bytes,
            reads: sps
                .iter()
                .map(|sp| ShareRead {
                    topic: sp.1.clone(),
                    partition: sp.2,
                    delay_ms: delay_of(reg, &sp.1),
                })
                .collect(),
        });
        let replies = match ctx.mesh.call(crate::kafka::ShardId(shard), msg).await {
            Ok(r) => r,
            Err(e) => (0..sps.len())
                .map(|_| Err(crate::protocol::route::owner_gone(e)))
                .collect(),
        };
        (shard, sps, replies)
    });
    let mut waits = Vec::new();
    let mut wake: Option<i64> = None;
    for (shard, sps, replies) in join_all(calls).await {
        for (sp, r) in sps.into_iter().zip(replies) {
            if let Ok(o) = &r {
                // A full window waits for an ack, a release or an expiry, not for new
                // records: the log has records past the window's end, so a wait for an
                // append would end at once and the fetch would spin on the owner.
                let read = (!o.window_full).then(|| read_at(sp, o.wait_from));
                waits.push((shard, read));
                if let Some(w) = o.wake_at_ms {
                    wake = Some(wake.map_or(w, |x: i64| x.min(w)));
                }
            }
            out.push(((sp.0, sp.2), r));
        }
    }
    (out, waits, wake)
}

/// The topic's `sluice.delivery.delay.ms` (0 when unset).
fn delay_of(reg: &crate::cluster::Registry, topic: &str) -> i64 {
    reg.topic(topic)
        .and_then(|t| {
            t.overrides
                .get(crate::cluster::topic_config::DELIVERY_DELAY_MS)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn read_at(sp: &SessionPartition, offset: i64) -> Read {
    Read {
        topic: sp.1.clone(),
        partition: sp.2,
        offset,
        max_bytes: 1,
        committed: false,
    }
}

/// Wait, on each owner at once, for an append past a read or any change of share state
/// there (`share: true`), at most `timeout`.
async fn wait_on_owners(ctx: &Context, waits: Waits, timeout: Duration, committed: bool) {
    let mut by_owner: HashMap<usize, Vec<Read>> = HashMap::new();
    for (s, r) in waits {
        let reads = by_owner.entry(s).or_default();
        if let Some(mut r) = r {
            r.committed = committed;
            reads.push(r);
        }
    }
    if by_owner.is_empty() {
        glommio::timer::sleep(timeout).await;
        return;
    }
    let calls = by_owner.into_iter().map(|(s, reads)| {
        let msg = pm::WaitForData {
            reads,
            timeout,
            share: true,
        };
        ctx.mesh.call(crate::kafka::ShardId(s), msg)
    });
    // Any owner's wake-up is enough: race them.
    let _ = futures_util::future::select_all(calls.map(Box::pin)).await;
}

fn respond(
    mut answers: Answers,
    parts: &[SessionPartition],
    full: bool,
    lock_ms: i64,
) -> ShareFetchResponse {
    let mut order: Vec<(Uuid, i32)> = parts.iter().map(|sp| (sp.0, sp.2)).collect();
    for k in answers.keys() {
        if !order.contains(k) {
            order.push(*k);
        }
    }
    let mut topics: Vec<ShareFetchableTopicResponse> = Vec::new();
    for k in order {
        let a = answers.remove(&k).unwrap_or_default();
        let has_records = a.out.as_ref().is_some_and(|o| !o.acquired.is_empty());
        if !(full || has_records || a.error.is_some() || a.ack.is_some()) {
            continue;
        }
        let pd = partition_data(k.1, a);
        match topics.iter_mut().find(|t| t.topic_id == k.0) {
            Some(t) => t.partitions.push(pd),
            None => topics.push(
                ShareFetchableTopicResponse::default()
                    .with_topic_id(k.0)
                    .with_partitions(vec![pd]),
            ),
        }
    }
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(lock_ms.clamp(0, i32::MAX as i64) as i32)
        .with_responses(topics)
}

fn partition_data(partition: i32, a: Answer) -> PartitionData {
    let mut pd = PartitionData::default()
        .with_partition_index(partition)
        .with_current_leader(
            LeaderIdAndEpoch::default()
                .with_leader_id(NODE_ID)
                .with_leader_epoch(0),
        );
    if let Some(e) = a.error {
        pd = pd
            .with_error_code(e.wire_code())
            .with_error_message(Some(sb(&e.message)));
    }
    if let Some(code) = a.ack {
        pd = pd.with_acknowledge_error_code(code.code());
    }
    if let Some(o) = a.out {
        let acquired = o
            .acquired
            .iter()
            .map(|&(first, last, count)| {
                AcquiredRecords::default()
                    .with_first_offset(first)
                    .with_last_offset(last)
                    .with_delivery_count(count)
            })
            .collect();
        pd = pd
            .with_records(Some(o.records))
            .with_acquired_records(acquired);
    }
    pd
}
