//! The requests of a transaction, on the coordinator of its transactional id:
//! InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn.

use futures_util::future::join_all;
use tracing::{info, warn};

use super::state::{bump_epoch, check_producer, fenced, opened, PendingOffset, Phase, TxnEntry};
use super::{Coordinator, Next, MAX_METADATA_BYTES, MAX_TIMEOUT_MS};
use crate::coordinator::group::CommitPartition;
use crate::kafka::{ErrorCode, TopicPartition};

/// What one InitProducerId step does: the entry to save (if it changed) and what comes
/// next, `Done((producer_id, epoch))` or the abort to complete first.
type InitChange = (Option<TxnEntry>, Next<(i64, i16)>);

impl Coordinator {
    /// InitProducerId with a transactional id. A first call gets a new producer id, epoch 0;
    /// a later one bumps the epoch (fencing every older producer of the id) after aborting the
    /// transaction the old producer left open. `producer_id`/`epoch` are -1 except when a
    /// KIP-360 client asks to bump its own epoch, which must then be the current one.
    pub async fn init_producer_id(
        &self,
        id: String,
        timeout_ms: i32,
        producer_id: i64,
        epoch: i16,
        version: i16,
    ) -> Result<(i64, i16), ErrorCode> {
        if id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > MAX_TIMEOUT_MS {
            return Err(ErrorCode::InvalidTransactionTimeout);
        }
        let ask = InitAsk {
            timeout_ms,
            producer_id,
            epoch,
            version,
        };
        for _ in 0..3 {
            // A fresh producer id is needed for a new id, or when the epoch would overflow.
            let fresh = match self.entry(&id) {
                Some(e) if e.epoch < i16::MAX - 2 => None,
                _ => Some(self.peers.new_producer_id().await.map_err(|e| e.code)?),
            };
            let next = self
                .update(&id, |old| self.init_step(&id, old, fresh, &ask))
                .await;
            match unmark_on_error(self, &id, next)? {
                Next::Done(out) => return Ok(out),
                Next::Complete(entry) => {
                    info!(
                        transactional_id = %id,
                        producer_id = entry.producer_id,
                        "a new producer took over the transactional id: aborting its open transaction"
                    );
                    self.complete(entry).await?;
                }
            }
        }
        Err(ErrorCode::ConcurrentTransactions)
    }

    /// One InitProducerId change of the id's entry `old`: a new entry, a retry answered
    /// as before (KIP-360), a bumped epoch, or the abort of what the old producer left
    /// open (then `Next::Complete`, and the caller tries again).
    fn init_step(
        &self,
        id: &str,
        old: Option<&TxnEntry>,
        fresh: Option<i64>,
        ask: &InitAsk,
    ) -> Result<InitChange, ErrorCode> {
        let Some(e) = old else {
            let pid = fresh.ok_or(ErrorCode::ConcurrentTransactions)?;
            let n = TxnEntry::new(id, pid, ask.timeout_ms);
            return Ok((Some(n), Next::Done((pid, 0))));
        };
        let idle = matches!(
            e.phase,
            Phase::Empty | Phase::CompleteCommit | Phase::CompleteAbort
        );
        let kip360 = ask.producer_id >= 0;
        if kip360 && ask.producer_id == e.producer_id && ask.epoch == e.last_epoch && idle {
            return Ok((None, Next::Done((e.producer_id, e.epoch))));
        }
        if kip360 && (ask.producer_id != e.producer_id || ask.epoch != e.epoch) {
            return Err(fenced(ask.version, 4));
        }
        let mut n = e.clone();
        n.last_epoch = e.epoch;
        match e.phase {
            Phase::PrepareCommit | Phase::PrepareAbort => Err(ErrorCode::ConcurrentTransactions),
            Phase::Ongoing => {
                // Fence the old producer and abort what it left open, under its own
                // producer id (the markers must end its transactions); a new producer
                // id, if the epoch runs out, comes on the next pass.
                if n.epoch < i16::MAX - 1 {
                    n.epoch += 1;
                }
                n.phase = Phase::PrepareAbort;
                self.completing.borrow_mut().insert(id.to_string());
                Ok((Some(n.clone()), Next::Complete(n)))
            }
            Phase::Empty | Phase::CompleteCommit | Phase::CompleteAbort => {
                bump_epoch(&mut n, fresh);
                n.clear();
                n.phase = Phase::Empty;
                n.timeout_ms = ask.timeout_ms;
                let out = (n.producer_id, n.epoch);
                Ok((Some(n), Next::Done(out)))
            }
        }
    }

    /// AddPartitionsToTxn (v0–v3). Unknown partitions fail the whole request: they get
    /// UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED, as in Kafka.
    pub async fn add_partitions(
        &self,
        id: String,
        producer_id: i64,
        epoch: i16,
        topics: Vec<(String, Vec<i32>)>,
        version: i16,
    ) -> Vec<(String, Vec<(i32, ErrorCode)>)> {
        let reg = self.peers.registry();
        let exists = |t: &str, p: i32| reg.topic(t).is_some_and(|m| m.owner(p).is_some());
        let all = |code: &dyn Fn(&str, i32) -> ErrorCode| {
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
                    ErrorCode::OperationNotAttempted
                } else {
                    ErrorCode::UnknownTopicOrPartition
                }
            });
        }
        let r = self
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
        let failed = self.allow_on_partitions(&parts, producer_id, epoch).await;
        all(&|t, p| {
            failed
                .iter()
                .find(|(ft, fp, _)| ft == t && *fp == p)
                .map_or(ErrorCode::None, |f| f.2)
        })
    }

    /// Tells each partition's owner that `producer_id` at `epoch` may write transactional
    /// batches there (until its next marker). The partitions that could not be told, with
    /// the error code.
    pub(super) async fn allow_on_partitions(
        &self,
        parts: &[(String, i32)],
        producer_id: i64,
        epoch: i16,
    ) -> Vec<(String, i32, ErrorCode)> {
        let calls = parts.iter().map(|(t, p)| async move {
            let tp = TopicPartition::new(t.as_str(), *p);
            let r = self.peers.allow_txn(tp, producer_id, epoch).await;
            r.err().map(|e| (t.clone(), *p, e.code))
        });
        join_all(calls).await.into_iter().flatten().collect()
    }

    /// AddOffsetsToTxn: the group's offsets will be committed with the transaction.
    pub async fn add_offsets(
        &self,
        id: String,
        producer_id: i64,
        epoch: i16,
        group: String,
        version: i16,
    ) -> Result<(), ErrorCode> {
        if group.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        self.update(&id, |old| {
            let e = check_producer(old, producer_id, epoch, fenced(version, 2))?;
            let mut n = opened(e);
            if !n.groups.contains(&group) {
                n.groups.push(group.clone());
            }
            Ok((Some(n), ()))
        })
        .await
    }

    /// TxnOffsetCommit: keep the offsets with the transaction until it ends.
    pub async fn txn_offset_commit(
        &self,
        c: TxnCommit,
        version: i16,
    ) -> Result<Vec<(String, Vec<(i32, ErrorCode)>)>, ErrorCode> {
        let reg = self.peers.registry();
        self.update(&c.id, |old| {
            let e = check_producer(old, c.producer_id, c.epoch, fenced(version, 3))?;
            if e.phase != Phase::Ongoing || !e.groups.contains(&c.group) {
                // AddOffsetsToTxn must come first (the client always sends it).
                return Err(ErrorCode::InvalidTxnState);
            }
            let mut n = e.clone();
            let mut codes = Vec::with_capacity(c.topics.len());
            for (t, ps) in &c.topics {
                let meta = reg.topic(t);
                let mut pc = Vec::with_capacity(ps.len());
                for p in ps {
                    let code = if meta.is_none_or(|m| m.owner(p.partition).is_none()) {
                        ErrorCode::UnknownTopicOrPartition
                    } else if p
                        .metadata
                        .as_ref()
                        .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
                    {
                        ErrorCode::OffsetMetadataTooLarge
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
                        ErrorCode::None
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
        &self,
        id: String,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        version: i16,
    ) -> Result<(), ErrorCode> {
        let next = self
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
                        self.completing.borrow_mut().insert(id.clone());
                        Ok((Some(n.clone()), Next::Complete(n)))
                    }
                    (Phase::CompleteCommit, true) | (Phase::CompleteAbort, false) => {
                        Ok((None, Next::Done(())))
                    }
                    _ => Err(ErrorCode::InvalidTxnState),
                }
            })
            .await;
        match unmark_on_error(self, &id, next)? {
            Next::Done(()) => Ok(()),
            Next::Complete(entry) => {
                // The outcome is decided and saved: the client is told so even if a marker
                // could not be written yet (the tick writes the missing ones), as Kafka answers
                // once its Prepare record is written.
                if let Err(code) = self.complete(entry).await {
                    warn!(transactional_id = %id, "the transaction is decided but finishing it failed with code {code}; the tick will retry");
                }
                Ok(())
            }
        }
    }
}

/// Resolves `update` for a change that saved a Prepare phase and marked the id as
/// completing: if the save failed, the mark goes too.
pub(super) fn unmark_on_error<T>(
    txns: &Coordinator,
    id: &str,
    r: Result<T, ErrorCode>,
) -> Result<T, ErrorCode> {
    if r.is_err() {
        txns.completing.borrow_mut().remove(id);
    }
    r
}

/// One TxnOffsetCommit, already checked against the group's membership by the caller.
#[derive(Debug, Clone)]
pub struct TxnCommit {
    pub id: String,
    pub group: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub topics: Vec<(String, Vec<CommitPartition>)>,
}

/// What an InitProducerId asks, besides the id.
struct InitAsk {
    timeout_ms: i32,
    producer_id: i64,
    epoch: i16,
    version: i16,
}
