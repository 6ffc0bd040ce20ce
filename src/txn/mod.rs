//! Transaction coordinator (KIP-98): transactional ids, their producer id and epoch, the
//! partitions and consumer groups of the open transaction, and its end.
//!
//! Every transactional id has one owner shard, `owner_shard(id)` (the same stable hash as
//! groups); only the owner touches its entry. Ending a transaction is two-phase, as in
//! Kafka: the entry moves to PrepareCommit/PrepareAbort and is saved, then a marker (a
//! control batch) is appended to every partition of the transaction on that partition's
//! owner and, on commit, the transaction's consumer offsets are committed; then the entry
//! moves to CompleteCommit/CompleteAbort and is saved again. An entry found in a Prepare
//! phase (a crash or a failed marker write in between) is completed again by the
//! background tick, which also aborts transactions open longer than their timeout.
//!
//! State: one rkyv file per shard, `txn/shard-N.state`, rewritten atomically on every
//! change (`meta::store`). That costs two fsyncs per change; a transaction makes three or
//! four changes, which bounds one shard to a few hundred transactions a second.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use rkyv::{Archive, Deserialize, Serialize};
use tracing::{info, warn};

use crate::fifo_gate::FifoGate;
use crate::group::{CommitPartition, CommitRequest};
use crate::meta::store;
use crate::protocol::errors::*;
use crate::shard::Shard;

/// How often timeouts and unfinished Prepare phases are checked.
pub const TICK: Duration = Duration::from_millis(500);
/// Kafka's `transaction.max.timeout.ms` default: a longer InitProducerId timeout is refused.
pub const MAX_TIMEOUT_MS: i32 = 900_000;
/// Kafka's `offset.metadata.max.bytes`, as for OffsetCommit.
const MAX_METADATA_BYTES: usize = 4096;

/// The owner shard of a transactional id (stable across runs and processes).
pub fn owner_shard(transactional_id: &str, shards: usize) -> usize {
    crate::crc::crc32c(transactional_id.as_bytes()) as usize % shards.max(1)
}

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
    fn clear(&mut self) {
        self.partitions.clear();
        self.groups.clear();
        self.offsets.clear();
    }
}

/// What one shard saves.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct TxnFile {
    pub entries: Vec<TxnEntry>,
}

fn state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("txn")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// PRODUCER_FENCED exists from Kafka 2.7 (KIP-588); older request versions get
/// INVALID_PRODUCER_EPOCH for the same condition.
pub fn fenced(version: i16, first_version_with_fenced: i16) -> i16 {
    if version >= first_version_with_fenced {
        PRODUCER_FENCED
    } else {
        INVALID_PRODUCER_EPOCH
    }
}

/// Producer id, epoch, and the partitions whose marker for them is written.
type Marked = (i64, i16, HashSet<(String, i32)>);

/// The transactions one shard coordinates.
#[derive(Default)]
pub struct Coordinator {
    entries: RefCell<HashMap<String, TxnEntry>>,
    /// Orders changes and their saves.
    gate: FifoGate,
    path: RefCell<Option<PathBuf>>,
    loaded: Cell<bool>,
    /// Ids whose Prepare phase a task is completing right now. Set in the same change
    /// that saves the Prepare phase (or by the tick, under the gate), so only one task
    /// ever writes an entry's markers.
    completing: RefCell<HashSet<String>>,
    /// Partitions whose marker is written, per id and (producer id, epoch): a retry
    /// writes only the missing ones.
    marked: RefCell<HashMap<String, Marked>>,
    /// When the tick may retry an id whose completion failed, and the next backoff.
    retry_at: RefCell<HashMap<String, (Instant, Duration)>>,
    /// Entries of this shard's own file that another shard owns now (the shard count
    /// changed): written back unchanged, so no id is ever in no file; the owner's copy
    /// has the higher version once it changes.
    foreign: RefCell<Vec<TxnEntry>>,
}

/// The result of a state change: done, or a Prepare phase that must now be completed.
enum Next<T> {
    Done(T),
    Complete(TxnEntry),
}

impl Coordinator {
    pub fn new() -> Coordinator {
        Coordinator::default()
    }

    /// Read every shard's state file and keep the entries this shard owns under the
    /// current shard count (the newest copy of an id wins if the count changed).
    /// Blocking; runs while the shard starts.
    pub fn load(&self, data_dir: &Path, shard: usize, shards: usize) -> Result<(), String> {
        let dir = state_dir(data_dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut found: HashMap<String, TxnEntry> = HashMap::new();
        let own_file = format!("shard-{shard}.state");
        let mut foreign = Vec::new();
        let listing =
            std::fs::read_dir(&dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
        for f in listing {
            let f = f.map_err(|e| format!("listing {}: {e}", dir.display()))?;
            let path = f.path();
            if path.extension().and_then(|e| e.to_str()) != Some("state") {
                continue;
            }
            let file: TxnFile = store::load(&path)
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            let own = path.file_name().and_then(|n| n.to_str()) == Some(own_file.as_str());
            for e in file.entries {
                if owner_shard(&e.transactional_id, shards) != shard {
                    if own {
                        foreign.push(e);
                    }
                    continue;
                }
                let newer = found
                    .get(&e.transactional_id)
                    .is_none_or(|old| e.version > old.version);
                if newer {
                    found.insert(e.transactional_id.clone(), e);
                }
            }
        }
        if !found.is_empty() {
            info!(
                shard,
                transactional_ids = found.len(),
                "transactions loaded"
            );
        }
        *self.entries.borrow_mut() = found;
        *self.foreign.borrow_mut() = foreign;
        *self.path.borrow_mut() = Some(dir.join(format!("shard-{shard}.state")));
        self.loaded.set(true);
        Ok(())
    }

    /// (topic, partition) of `group` with an offset in a transaction that has not ended.
    pub fn pending_partitions(&self, group: &str) -> Vec<(String, i32)> {
        self.entries
            .borrow()
            .values()
            .filter(|e| {
                matches!(
                    e.phase,
                    Phase::Ongoing | Phase::PrepareCommit | Phase::PrepareAbort
                )
            })
            .flat_map(|e| e.offsets.iter())
            .filter(|o| o.group == group)
            .map(|o| (o.topic.clone(), o.partition))
            .collect()
    }

    pub fn entry(&self, transactional_id: &str) -> Option<TxnEntry> {
        self.entries.borrow().get(transactional_id).cloned()
    }

    async fn save(&self) -> Result<(), String> {
        let Some(path) = self.path.borrow().clone() else {
            return Err("transaction state is not loaded".into());
        };
        let mut entries: Vec<TxnEntry> = self.entries.borrow().values().cloned().collect();
        entries.extend(self.foreign.borrow().iter().cloned());
        entries.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        store::save(&path, &TxnFile { entries })
            .await
            .map_err(|e| e.to_string())
    }

    /// Change one entry under the gate and save it; on a failed save the old entry is
    /// put back and the client told KAFKA_STORAGE_ERROR.
    async fn update<T>(
        &self,
        id: &str,
        f: impl FnOnce(Option<&TxnEntry>) -> Result<(Option<TxnEntry>, T), i16>,
    ) -> Result<T, i16> {
        if !self.loaded.get() {
            return Err(COORDINATOR_LOAD_IN_PROGRESS);
        }
        let _lock = self.gate.lock().await;
        let old = self.entry(id);
        let (new, out) = f(old.as_ref())?;
        let Some(mut new) = new else {
            return Ok(out);
        };
        if old.as_ref() == Some(&new) {
            return Ok(out);
        }
        new.updated_ms = now_ms();
        new.version = old.as_ref().map_or(0, |o| o.version) + 1;
        self.entries.borrow_mut().insert(id.to_string(), new);
        if let Err(e) = self.save().await {
            warn!(
                transactional_id = id,
                "saving transaction state failed: {e}"
            );
            let mut entries = self.entries.borrow_mut();
            match old {
                Some(o) => entries.insert(id.to_string(), o),
                None => entries.remove(id),
            };
            return Err(KAFKA_STORAGE_ERROR);
        }
        Ok(out)
    }
}

/// Checks shared by the requests of an open transaction: the id is known, the producer
/// id is its own, the epoch current, and no Prepare phase is running.
fn check_producer(
    e: Option<&TxnEntry>,
    producer_id: i64,
    epoch: i16,
    fenced_code: i16,
) -> Result<&TxnEntry, i16> {
    let e = e.ok_or(INVALID_PRODUCER_ID_MAPPING)?;
    if e.producer_id != producer_id {
        return Err(INVALID_PRODUCER_ID_MAPPING);
    }
    if e.epoch != epoch {
        return Err(fenced_code);
    }
    if matches!(e.phase, Phase::PrepareCommit | Phase::PrepareAbort) {
        return Err(CONCURRENT_TRANSACTIONS);
    }
    Ok(e)
}

/// The entry with its transaction open (a new one starts if none was).
fn opened(e: &TxnEntry) -> TxnEntry {
    let mut n = e.clone();
    if n.phase != Phase::Ongoing {
        n.clear();
        n.phase = Phase::Ongoing;
        n.started_ms = now_ms();
    }
    n
}

/// InitProducerId with a transactional id. A first call gets a new producer id, epoch 0;
/// a later one bumps the epoch (fencing every older producer of the id) after aborting the
/// transaction the old producer left open. `producer_id`/`epoch` are -1 except when a
/// KIP-360 client asks to bump its own epoch, which must then be the current one.
pub async fn init_producer_id(
    shard: &Rc<Shard>,
    id: String,
    timeout_ms: i32,
    producer_id: i64,
    epoch: i16,
    version: i16,
) -> Result<(i64, i16), i16> {
    if id.is_empty() {
        return Err(INVALID_REQUEST);
    }
    if timeout_ms <= 0 || timeout_ms > MAX_TIMEOUT_MS {
        return Err(INVALID_TRANSACTION_TIMEOUT);
    }
    let txns = &shard.txns;
    for _ in 0..3 {
        // A fresh producer id is needed for a new id, or when the epoch would overflow.
        let fresh = match txns.entry(&id) {
            Some(e) if e.epoch < i16::MAX - 2 => None,
            _ => Some(shard.new_producer_id().await.map_err(|e| e.code)?),
        };
        let next = txns
            .update(&id, |old| {
                let Some(e) = old else {
                    let pid = fresh.ok_or(CONCURRENT_TRANSACTIONS)?;
                    let n = TxnEntry {
                        transactional_id: id.clone(),
                        producer_id: pid,
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
                    };
                    return Ok((Some(n), Next::Done((pid, 0))));
                };
                let idle = matches!(
                    e.phase,
                    Phase::Empty | Phase::CompleteCommit | Phase::CompleteAbort
                );
                if producer_id >= 0 && producer_id == e.producer_id && epoch == e.last_epoch && idle
                {
                    return Ok((None, Next::Done((e.producer_id, e.epoch))));
                }
                if producer_id >= 0 && (producer_id != e.producer_id || epoch != e.epoch) {
                    return Err(fenced(version, 4));
                }
                let mut n = e.clone();
                n.last_epoch = e.epoch;
                match e.phase {
                    Phase::PrepareCommit | Phase::PrepareAbort => Err(CONCURRENT_TRANSACTIONS),
                    Phase::Ongoing => {
                        // Fence the old producer and abort what it left open, under its
                        // own producer id (the markers must end its transactions); a new
                        // producer id, if the epoch runs out, comes on the next pass.
                        if n.epoch < i16::MAX - 1 {
                            n.epoch += 1;
                        }
                        n.phase = Phase::PrepareAbort;
                        txns.completing.borrow_mut().insert(id.clone());
                        Ok((Some(n.clone()), Next::Complete(n)))
                    }
                    Phase::Empty | Phase::CompleteCommit | Phase::CompleteAbort => {
                        bump_epoch(&mut n, fresh);
                        n.clear();
                        n.phase = Phase::Empty;
                        n.timeout_ms = timeout_ms;
                        let out = (n.producer_id, n.epoch);
                        Ok((Some(n), Next::Done(out)))
                    }
                }
            })
            .await;
        let next = unmark_on_error(txns, &id, next)?;
        match next {
            Next::Done(out) => return Ok(out),
            Next::Complete(entry) => {
                info!(
                    transactional_id = %id,
                    producer_id = entry.producer_id,
                    "a new producer took over the transactional id: aborting its open transaction"
                );
                complete(shard, entry).await?;
            }
        }
    }
    Err(CONCURRENT_TRANSACTIONS)
}

/// Resolves `update` for a change that saved a Prepare phase and marked the id as
/// completing: if the save failed, the mark goes too.
fn unmark_on_error<T>(txns: &Coordinator, id: &str, r: Result<T, i16>) -> Result<T, i16> {
    if r.is_err() {
        txns.completing.borrow_mut().remove(id);
    }
    r
}

fn bump_epoch(e: &mut TxnEntry, fresh: Option<i64>) {
    match fresh {
        Some(pid) if e.epoch >= i16::MAX - 2 => {
            e.producer_id = pid;
            e.epoch = 0;
        }
        _ => e.epoch += 1,
    }
}

/// AddPartitionsToTxn (v0–v3). Unknown partitions fail the whole request: they get
/// UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED, as in Kafka.
pub async fn add_partitions(
    shard: &Rc<Shard>,
    id: String,
    producer_id: i64,
    epoch: i16,
    topics: Vec<(String, Vec<i32>)>,
    version: i16,
) -> Vec<(String, Vec<(i32, i16)>)> {
    let reg = shard.registry();
    let exists = |t: &str, p: i32| reg.topic(t).is_some_and(|m| m.owner(p).is_some());
    let all = |code: &dyn Fn(&str, i32) -> i16| {
        topics
            .iter()
            .map(|(t, ps)| (t.clone(), ps.iter().map(|&p| (p, code(t, p))).collect()))
            .collect::<Vec<_>>()
    };
    if topics
        .iter()
        .any(|(t, ps)| ps.iter().any(|&p| !exists(t, p)))
    {
        return all(&|t, p| {
            if exists(t, p) {
                OPERATION_NOT_ATTEMPTED
            } else {
                UNKNOWN_TOPIC_OR_PARTITION
            }
        });
    }
    let r = shard
        .txns
        .update(&id, |old| {
            let e = check_producer(old, producer_id, epoch, fenced(version, 2))?;
            let mut n = opened(e);
            for (t, ps) in &topics {
                for &p in ps {
                    n.partitions.push((t.clone(), p));
                }
            }
            n.partitions.sort();
            n.partitions.dedup();
            Ok((Some(n), ()))
        })
        .await;
    if let Err(code) = r {
        return all(&|_, _| code);
    }
    // Only now may the producer's transactional batches go to these partitions; the
    // client sends none before this answer.
    let parts: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |&p| (t.clone(), p)))
        .collect();
    let failed = allow_on_partitions(shard, &parts, producer_id, epoch).await;
    all(&|t, p| {
        failed
            .iter()
            .find(|(ft, fp, _)| ft == t && *fp == p)
            .map_or(NONE, |f| f.2)
    })
}

/// Tells each partition's owner that `producer_id` at `epoch` may write transactional
/// batches there (until its next marker). The partitions that could not be told, with
/// the error code.
async fn allow_on_partitions(
    shard: &Rc<Shard>,
    parts: &[(String, i32)],
    producer_id: i64,
    epoch: i16,
) -> Vec<(String, i32, i16)> {
    let reg = shard.registry();
    let calls = parts.iter().map(|(t, p)| {
        let (topic, partition) = (t.clone(), *p);
        let owner = reg.topic(t).and_then(|m| m.owner(partition));
        async move {
            let Some(owner) = owner else {
                return Some((topic, partition, UNKNOWN_TOPIC_OR_PARTITION));
            };
            let (t2, p2) = (topic.clone(), partition);
            let r = crate::protocol::on_owner(shard, owner, move |s| async move {
                let part = crate::protocol::owned_partition(&s, &t2, p2)?;
                part.producers.borrow_mut().allow_txn(producer_id, epoch);
                Ok(())
            })
            .await;
            r.err().map(|e| (topic, partition, e.code))
        }
    });
    join_all(calls).await.into_iter().flatten().collect()
}

/// AddOffsetsToTxn: the group's offsets will be committed with the transaction.
pub async fn add_offsets(
    shard: &Rc<Shard>,
    id: String,
    producer_id: i64,
    epoch: i16,
    group: String,
    version: i16,
) -> Result<(), i16> {
    if group.is_empty() {
        return Err(INVALID_GROUP_ID);
    }
    shard
        .txns
        .update(&id, |old| {
            let e = check_producer(old, producer_id, epoch, fenced(version, 2))?;
            let mut n = opened(e);
            if !n.groups.contains(&group) {
                n.groups.push(group.clone());
            }
            Ok((Some(n), ()))
        })
        .await
}

/// One TxnOffsetCommit, already checked against the group's membership by the caller.
pub struct TxnCommit {
    pub id: String,
    pub group: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub topics: Vec<(String, Vec<CommitPartition>)>,
}

/// TxnOffsetCommit: keep the offsets with the transaction until it ends.
pub async fn txn_offset_commit(
    shard: &Rc<Shard>,
    c: TxnCommit,
    version: i16,
) -> Result<Vec<(String, Vec<(i32, i16)>)>, i16> {
    let reg = shard.registry();
    shard
        .txns
        .update(&c.id, |old| {
            let e = check_producer(old, c.producer_id, c.epoch, fenced(version, 3))?;
            if e.phase != Phase::Ongoing || !e.groups.contains(&c.group) {
                // AddOffsetsToTxn must come first (the client always sends it).
                return Err(INVALID_TXN_STATE);
            }
            let mut n = e.clone();
            let mut codes = Vec::with_capacity(c.topics.len());
            for (t, ps) in &c.topics {
                let meta = reg.topic(t);
                let mut pc = Vec::with_capacity(ps.len());
                for p in ps {
                    let code = if meta.is_none_or(|m| m.owner(p.partition).is_none()) {
                        UNKNOWN_TOPIC_OR_PARTITION
                    } else if p
                        .metadata
                        .as_ref()
                        .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
                    {
                        OFFSET_METADATA_TOO_LARGE
                    } else {
                        n.offsets.retain(|o| {
                            !(o.group == c.group && o.topic == *t && o.partition == p.partition)
                        });
                        n.offsets.push(PendingOffset {
                            group: c.group.clone(),
                            topic: t.clone(),
                            partition: p.partition,
                            offset: p.offset,
                            leader_epoch: p.leader_epoch,
                            metadata: p.metadata.clone(),
                        });
                        NONE
                    };
                    pc.push((p.partition, code));
                }
                codes.push((t.clone(), pc));
            }
            Ok((Some(n), codes))
        })
        .await
}

/// EndTxn: commit or abort the open transaction. A retried EndTxn of a transaction that
/// already ended the same way succeeds again.
pub async fn end_txn(
    shard: &Rc<Shard>,
    id: String,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    version: i16,
) -> Result<(), i16> {
    let next = shard
        .txns
        .update(&id, |old| {
            let e = check_producer(old, producer_id, epoch, fenced(version, 2))?;
            match (e.phase, commit) {
                (Phase::Ongoing, _) => {
                    let mut n = e.clone();
                    n.phase = if commit {
                        Phase::PrepareCommit
                    } else {
                        Phase::PrepareAbort
                    };
                    shard.txns.completing.borrow_mut().insert(id.clone());
                    Ok((Some(n.clone()), Next::Complete(n)))
                }
                (Phase::CompleteCommit, true) | (Phase::CompleteAbort, false) => {
                    Ok((None, Next::Done(())))
                }
                _ => Err(INVALID_TXN_STATE),
            }
        })
        .await;
    match unmark_on_error(&shard.txns, &id, next)? {
        Next::Done(()) => Ok(()),
        Next::Complete(entry) => {
            // The outcome is decided and saved: the client is told so even if a marker
            // could not be written yet (the tick writes the missing ones), as Kafka answers
            // once its Prepare record is written.
            if let Err(code) = complete(shard, entry).await {
                warn!(transactional_id = %id, "the transaction is decided but finishing it failed with code {code}; the tick will retry");
            }
            Ok(())
        }
    }
}

/// Second phase of an entry saved in PrepareCommit/PrepareAbort: write the markers (and
/// the offsets, on commit), then save it as CompleteCommit/CompleteAbort. On an error the
/// entry stays in its Prepare phase and the tick tries again.
///
/// The caller has put the id in `completing` (in the change that saved the Prepare
/// phase, or under the gate); this removes it when done.
async fn complete(shard: &Rc<Shard>, entry: TxnEntry) -> Result<(), i16> {
    let id = entry.transactional_id.clone();
    let r = complete_marked(shard, &entry).await;
    shard.txns.completing.borrow_mut().remove(&id);
    if r.is_ok() {
        shard.txns.marked.borrow_mut().remove(&id);
        shard.txns.retry_at.borrow_mut().remove(&id);
    }
    r
}

async fn complete_marked(shard: &Rc<Shard>, entry: &TxnEntry) -> Result<(), i16> {
    let id = entry.transactional_id.clone();
    // Only the saved state counts: an entry that changed since (finished by another
    // path) is left alone.
    let current = shard.txns.entry(&id);
    let same = |e: &TxnEntry| {
        e.producer_id == entry.producer_id && e.epoch == entry.epoch && e.phase == entry.phase
    };
    if !current.as_ref().is_some_and(same) {
        return Ok(());
    }
    write_markers_and_offsets(shard, entry).await?;
    let commit = entry.phase == Phase::PrepareCommit;
    shard
        .txns
        .update(&id, |old| {
            let Some(e) = old else { return Ok((None, ())) };
            if e.producer_id != entry.producer_id
                || e.epoch != entry.epoch
                || e.phase != entry.phase
            {
                return Ok((None, ())); // someone else finished it
            }
            let mut n = e.clone();
            n.clear();
            n.phase = if commit {
                Phase::CompleteCommit
            } else {
                Phase::CompleteAbort
            };
            Ok((Some(n), ()))
        })
        .await
}

async fn write_markers_and_offsets(shard: &Rc<Shard>, e: &TxnEntry) -> Result<(), i16> {
    let commit = e.phase == Phase::PrepareCommit;
    let reg = shard.registry();
    let (pid, epoch) = (e.producer_id, e.epoch);
    let id = e.transactional_id.clone();
    let done: HashSet<(String, i32)> = match shard.txns.marked.borrow().get(&id) {
        Some((p, ep, done)) if *p == pid && *ep == epoch => done.clone(),
        _ => HashSet::new(),
    };
    let markers = e
        .partitions
        .iter()
        .filter(|tp| !done.contains(*tp))
        .filter_map(|(t, p)| {
            // A partition deleted since it joined the transaction has nothing to mark.
            let owner = reg.topic(t)?.owner(*p)?;
            let (topic, partition) = (t.clone(), *p);
            Some(async move {
                let r = crate::protocol::on_owner(shard, owner, move |s| async move {
                    match s.partition(&topic, partition) {
                        Some(part) => {
                            crate::producer::txn::write_marker(&part, pid, epoch, commit, 0)
                                .await
                                .map(|_| ())
                        }
                        None => Ok(()),
                    }
                })
                .await;
                (t.clone(), *p, r)
            })
        });
    let mut failed = None;
    let results = join_all(markers).await;
    {
        let mut marked = shard.txns.marked.borrow_mut();
        let slot = marked
            .entry(id)
            .or_insert_with(|| (pid, epoch, HashSet::new()));
        if (slot.0, slot.1) != (pid, epoch) {
            *slot = (pid, epoch, HashSet::new());
        }
        for (t, p, r) in results {
            match r {
                Ok(()) => {
                    slot.2.insert((t, p));
                }
                // The partition knows a newer epoch of this producer: its transaction there
                // was ended by a later marker already.
                Err(err) if err.code == PRODUCER_FENCED => {
                    warn!(transactional_id = %e.transactional_id, topic = %t, partition = p,
                          "transaction marker fenced by a newer epoch; counted as written");
                    slot.2.insert((t, p));
                }
                Err(err) => {
                    warn!(transactional_id = %e.transactional_id, topic = %t, partition = p,
                          "writing the transaction marker failed: {}", err.message);
                    failed = Some(err.code);
                }
            }
        }
    }
    if let Some(code) = failed {
        return Err(code);
    }
    if commit && !e.offsets.is_empty() {
        let mut by_group: HashMap<&str, Vec<&PendingOffset>> = HashMap::new();
        for o in &e.offsets {
            by_group.entry(&o.group).or_default().push(o);
        }
        for (group, offsets) in by_group {
            let mut topics: Vec<(String, Vec<CommitPartition>)> = Vec::new();
            for o in offsets {
                let cp = CommitPartition {
                    partition: o.partition,
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata.clone(),
                };
                match topics.iter_mut().find(|(t, _)| *t == o.topic) {
                    Some((_, ps)) => ps.push(cp),
                    None => topics.push((o.topic.clone(), vec![cp])),
                }
            }
            let req = CommitRequest {
                group: group.to_string(),
                member_id: String::new(),
                generation_or_epoch: -1,
                instance_id: None,
                topics,
            };
            let owner = crate::group::owner_shard(group, shard.count);
            let r = crate::protocol::on_owner(shard, owner, move |s| async move {
                let reg = s.registry();
                Ok(s.groups.commit_unchecked(&reg, req).await)
            })
            .await
            .map_err(|e| e.code)?;
            let codes = r?;
            if let Some(code) = codes
                .iter()
                .flat_map(|(_, ps)| ps.iter().map(|&(_, c)| c))
                .find(|&c| c != NONE && c != UNKNOWN_TOPIC_OR_PARTITION)
            {
                warn!(transactional_id = %e.transactional_id, group,
                      "committing the transaction's offsets failed with code {code}");
                return Err(code);
            }
        }
    }
    Ok(())
}

/// Abort transactions open longer than their timeout (bumping the epoch, so the stalled
/// producer is fenced), and finish Prepare phases left unfinished.
async fn tick(shard: &Rc<Shard>) {
    let now = now_ms();
    let txns = &shard.txns;
    // Under the gate: only saved state is seen, and no change is half done.
    expire(shard, now).await;
    let (timed_out, unfinished) = {
        let _lock = txns.gate.lock().await;
        let entries = txns.entries.borrow();
        let mut completing = txns.completing.borrow_mut();
        let retry = txns.retry_at.borrow();
        let at = Instant::now();
        let mut timed_out = Vec::new();
        let mut unfinished = Vec::new();
        for e in entries.values() {
            match e.phase {
                Phase::Ongoing if now - e.started_ms > i64::from(e.timeout_ms) => {
                    timed_out.push((e.transactional_id.clone(), e.epoch, e.timeout_ms));
                }
                Phase::PrepareCommit | Phase::PrepareAbort => {
                    let due = retry
                        .get(&e.transactional_id)
                        .is_none_or(|(when, _)| *when <= at);
                    if due && completing.insert(e.transactional_id.clone()) {
                        unfinished.push(e.clone());
                    }
                }
                _ => {}
            }
        }
        (timed_out, unfinished)
    };
    for (id, epoch, timeout_ms) in timed_out {
        let r = txns
            .update(&id, |old| {
                let Some(cur) = old else {
                    return Ok((None, None));
                };
                if cur.phase != Phase::Ongoing || cur.epoch != epoch {
                    return Ok((None, None));
                }
                let mut n = cur.clone();
                n.last_epoch = cur.epoch;
                if n.epoch < i16::MAX - 1 {
                    n.epoch += 1;
                }
                n.phase = Phase::PrepareAbort;
                txns.completing.borrow_mut().insert(id.clone());
                Ok((Some(n.clone()), Some(n)))
            })
            .await;
        if let Ok(Some(n)) = unmark_on_error(txns, &id, r) {
            info!(transactional_id = %id, timeout_ms,
                  "transaction timed out: aborting it and fencing its producer");
            finish(shard, n).await;
        }
    }
    for e in unfinished {
        finish(shard, e).await;
    }
}

/// Forget ids without a transaction for `transactional_id_expiration_ms` (Kafka's
/// transactional.id.expiration.ms): their next InitProducerId starts afresh.
async fn expire(shard: &Rc<Shard>, now: i64) {
    let txns = &shard.txns;
    let ttl = i64::try_from(shard.config.transactional_id_expiration_ms).unwrap_or(i64::MAX);
    let _lock = txns.gate.lock().await;
    let gone: Vec<String> = txns
        .entries
        .borrow()
        .values()
        .filter(|e| {
            matches!(
                e.phase,
                Phase::Empty | Phase::CompleteCommit | Phase::CompleteAbort
            ) && now.saturating_sub(e.updated_ms) > ttl
        })
        .map(|e| e.transactional_id.clone())
        .collect();
    if gone.is_empty() {
        return;
    }
    let removed: Vec<TxnEntry> = {
        let mut entries = txns.entries.borrow_mut();
        gone.iter().filter_map(|id| entries.remove(id)).collect()
    };
    if let Err(e) = txns.save().await {
        warn!("saving transaction state after expiring ids failed: {e}");
        let mut entries = txns.entries.borrow_mut();
        for e in removed {
            entries.insert(e.transactional_id.clone(), e);
        }
        return;
    }
    info!(count = removed.len(), "expired idle transactional ids");
}

/// `complete` for the tick: a failure is retried later, backing off up to 30 s.
async fn finish(shard: &Rc<Shard>, e: TxnEntry) {
    let id = e.transactional_id.clone();
    if let Err(code) = complete(shard, e).await {
        let mut retry = shard.txns.retry_at.borrow_mut();
        let backoff = retry
            .get(&id)
            .map_or(TICK, |(_, b)| (*b * 2).min(Duration::from_secs(30)));
        retry.insert(id.clone(), (Instant::now() + backoff, backoff));
        warn!(transactional_id = %id, retry_in_ms = backoff.as_millis() as u64,
              "finishing the transaction failed with code {code}");
    }
}

/// Load this shard's transactions and save them in its own file before the shard
/// serves: if the shard count changed, the ids this shard now owns may sit in another
/// shard's file, which that shard will rewrite without them.
pub async fn start(shard: &Rc<Shard>) -> Result<(), String> {
    let txns = &shard.txns;
    txns.load(&shard.config.data_dir, shard.id, shard.count)?;
    if txns.entries.borrow().is_empty() {
        return Ok(());
    }
    let _lock = txns.gate.lock().await;
    txns.save().await
}

/// Timeouts and unfinished Prepare phases, until shutdown. Runs once every shard serves
/// (markers go to other shards' partitions).
pub fn spawn_background(shard: Rc<Shard>) {
    glommio::spawn_local(async move {
        // The partitions forgot on restart which producers their open transactions cover.
        let open: Vec<TxnEntry> = shard
            .txns
            .entries
            .borrow()
            .values()
            .filter(|e| e.phase == Phase::Ongoing)
            .cloned()
            .collect();
        for e in open {
            let failed = allow_on_partitions(&shard, &e.partitions, e.producer_id, e.epoch).await;
            for (t, p, code) in failed {
                warn!(transactional_id = %e.transactional_id, topic = %t, partition = p,
                      "could not restore the open transaction's partition (code {code})");
            }
        }
        while shard.shutdown.sleep(TICK).await {
            tick(&shard).await;
        }
    })
    .detach();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::tests::run;

    fn entry(id: &str, epoch: i16, phase: Phase, updated_ms: i64) -> TxnEntry {
        TxnEntry {
            transactional_id: id.into(),
            producer_id: 7,
            epoch,
            timeout_ms: 60_000,
            phase,
            partitions: vec![("t".into(), 0), ("t".into(), 3)],
            groups: vec!["g".into()],
            offsets: vec![PendingOffset {
                group: "g".into(),
                topic: "in".into(),
                partition: 1,
                offset: 42,
                leader_epoch: -1,
                metadata: Some("m".into()),
            }],
            started_ms: 1,
            updated_ms,
            version: updated_ms as u64,
            last_epoch: -1,
        }
    }

    /// Every shard reads every file: an id keeps its newest copy and lands on its owner
    /// under the current shard count, also when the count changed since it was saved.
    #[test]
    fn load_keeps_the_newest_copy_of_each_owned_id() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        run(move || async move {
            let d = state_dir(&data);
            std::fs::create_dir_all(&d).unwrap();
            let ids: Vec<String> = (0..20).map(|i| format!("txn-{i}")).collect();
            let old = TxnFile {
                entries: ids
                    .iter()
                    .map(|i| entry(i, 1, Phase::Ongoing, 100))
                    .collect(),
            };
            let new = TxnFile {
                entries: ids
                    .iter()
                    .map(|i| entry(i, 2, Phase::CompleteCommit, 200))
                    .collect(),
            };
            store::save(&d.join("shard-0.state"), &new).await.unwrap();
            store::save(&d.join("shard-3.state"), &old).await.unwrap();
            let mut seen = 0;
            for shard in 0..2 {
                let c = Coordinator::new();
                c.load(&data, shard, 2).unwrap();
                for id in &ids {
                    match c.entry(id) {
                        Some(e) => {
                            assert_eq!(owner_shard(id, 2), shard);
                            assert_eq!((e.epoch, e.phase), (2, Phase::CompleteCommit));
                            assert_eq!(e, entry(id, 2, Phase::CompleteCommit, 200));
                            seen += 1;
                        }
                        None => assert_ne!(owner_shard(id, 2), shard),
                    }
                }
                if shard == 0 {
                    // Shard 0's own file keeps the ids shard 1 owns now: saving it must
                    // not drop them before shard 1 has saved them in its own file.
                    c.save().await.unwrap();
                    let back: TxnFile = store::load(&d.join("shard-0.state")).unwrap().unwrap();
                    assert_eq!(back.entries.len(), ids.len());
                }
            }
            assert_eq!(seen, ids.len());
        });
    }

    #[test]
    fn pending_partitions_are_those_of_transactions_not_ended() {
        let c = Coordinator::new();
        for (id, phase) in [
            ("a", Phase::Ongoing),
            ("b", Phase::PrepareCommit),
            ("c", Phase::CompleteCommit),
            ("d", Phase::CompleteAbort),
        ] {
            let mut e = entry(id, 0, phase, 0);
            e.offsets[0].partition = id.as_bytes()[0] as i32;
            c.entries.borrow_mut().insert(id.into(), e);
        }
        let mut p = c.pending_partitions("g");
        p.sort();
        assert_eq!(p, vec![("in".to_string(), 97), ("in".to_string(), 98)]);
        assert!(c.pending_partitions("other").is_empty());
    }

    #[test]
    fn fencing_code_follows_the_request_version() {
        assert_eq!(fenced(1, 2), INVALID_PRODUCER_EPOCH);
        assert_eq!(fenced(2, 2), PRODUCER_FENCED);
    }
}
