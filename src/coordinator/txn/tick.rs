//! The coordinator's background work: abort transactions open longer than their
//! timeout, finish Prepare phases left unfinished (with backoff), forget idle ids, and
//! after a restart tell the partitions of open transactions which producers may write.

use std::rc::Rc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::operations::unmark_on_error;
use super::state::{Phase, TxnEntry};
use super::{Coordinator, Retry, TICK};
use crate::runtime::{now_ms, Signal};

/// Producers that vanish mid-transaction cause these at any rate.
static TIMED_OUT_LOG: crate::metrics::log_limit::LogLimit =
    crate::metrics::log_limit::LogLimit::per_second();

impl Coordinator {
    /// Abort transactions open longer than their timeout (bumping the epoch, so the stalled
    /// producer is fenced), and finish Prepare phases left unfinished.
    pub(super) async fn tick(&self) {
        let now = now_ms();
        let txns = self;
        // Under the gate: only saved state is seen, and no change is half done.
        self.expire(now).await;
        let (timed_out, unfinished) = {
            let _lock = txns.gate.lock().await;
            let entries = txns.entries.borrow();
            let mut completing = txns.completing.borrow_mut();
            let retry = txns.retry.borrow();
            let at = Instant::now();
            let mut timed_out = Vec::new();
            let mut unfinished = Vec::new();
            for e in entries.values() {
                match e.phase {
                    Phase::Ongoing if now - e.started_ms > i64::from(e.timeout_ms) => {
                        timed_out.push((e.transactional_id.clone(), e.epoch, e.timeout_ms));
                    }
                    Phase::PrepareCommit | Phase::PrepareAbort => {
                        let due = retry.get(&e.transactional_id).is_none_or(|r| r.at <= at);
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
                if let Some(held_back) = TIMED_OUT_LOG.admit() {
                    info!(transactional_id = %id, timeout_ms, held_back,
                      "transaction timed out: aborting it and fencing its producer");
                }
                self.finish(n).await;
            }
        }
        for e in unfinished {
            self.finish(e).await;
        }
    }

    /// Forget ids without a transaction for `transactional_id_expiration_ms` (Kafka's
    /// transactional.id.expiration.ms): their next InitProducerId starts afresh.
    pub(super) async fn expire(&self, now: i64) {
        let txns = self;
        let ttl = self.expiration_ms;
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
        let removed = match txns.store() {
            Ok(store) => store.remove(&gone).await,
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            warn!("saving transaction state after expiring ids failed: {e}");
            return;
        }
        {
            let mut entries = txns.entries.borrow_mut();
            for id in &gone {
                entries.remove(id);
            }
        }
        info!(count = gone.len(), "expired idle transactional ids");
    }

    /// `complete` for the tick: a failure is retried later, backing off up to 30 s.
    pub(super) async fn finish(&self, e: TxnEntry) {
        let id = e.transactional_id.clone();
        if let Err(code) = self.complete(e).await {
            let mut retry = self.retry.borrow_mut();
            let backoff = retry
                .get(&id)
                .map_or(TICK, |r| (r.backoff * 2).min(Duration::from_secs(30)));
            let at = Instant::now() + backoff;
            retry.insert(id.clone(), Retry { at, backoff });
            warn!(transactional_id = %id, retry_in_ms = backoff.as_millis() as u64,
              "finishing the transaction failed with code {code}");
        }
    }

    /// Timeouts and unfinished Prepare phases, until shutdown. Runs once every shard serves
    /// (markers go to other shards' partitions).
    pub fn spawn_background(self: &Rc<Self>, shutdown: Rc<Signal>) {
        let me = self.clone();
        glommio::spawn_local(async move {
            // The partitions forgot on restart which producers their open transactions cover.
            let open: Vec<TxnEntry> = me
                .entries
                .borrow()
                .values()
                .filter(|e| e.phase == Phase::Ongoing)
                .cloned()
                .collect();
            for e in open {
                let failed = me
                    .allow_on_partitions(&e.partitions, e.producer_id, e.epoch)
                    .await;
                for (t, p, code) in failed {
                    warn!(transactional_id = %e.transactional_id, topic = %t, partition = p,
                      "could not restore the open transaction's partition (code {code})");
                }
            }
            while shutdown.sleep(TICK).await {
                me.tick().await;
            }
        })
        .detach();
    }
}
