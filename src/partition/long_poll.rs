//! Long-polling fetches, parked on the owner: a fetch that found too little waits here for
//! an append to one of its partitions and reads again on the spot, so a consumer at the
//! tail costs one trip to the owner per response (the read that found nothing, the wait
//! and the read after it were three before). A fetch whose partitions have several
//! owners parks on each; the first owner to answer makes the caller cancel the others
//! (`CancelWait`), which then answer at once with what they have.
//!
//! Nothing is copied while parked: the caller holds none of its shard's fetch budget
//! while it waits, so records not in the page cache come back `deferred` and the caller
//! reads them itself, with budget.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::future::select;
use futures_util::FutureExt;

use super::read::{Brought, CopyAllowance, Read, ReadBatch};
use super::{Partition, PartitionManager};
use crate::kafka::ShardId;

/// A parked fetch: the shard it came from and that shard's sequence number for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WaitId {
    pub shard: ShardId,
    pub seq: u64,
}

/// What one owner reads for a fetch that waits: `ReadPartitions` without copies, and how
/// long and for how many bytes to wait.
pub struct ParkedRead {
    pub id: WaitId,
    pub reads: Vec<Read>,
    pub budget: usize,
    pub first: bool,
    /// Answer once this owner's reads bring this many bytes (0: at once).
    pub min_bytes: usize,
    pub deadline: Instant,
}

/// The fetches parked on this shard, by id: whether each was cancelled, and the waker of
/// its wait.
#[derive(Default)]
pub struct Parked {
    fetches: RefCell<HashMap<WaitId, (bool, Option<Waker>)>>,
}

impl Parked {
    /// `CancelWait`: the fetch answers now. A fetch that already answered (its reply and
    /// the cancel crossed) is not here: nothing to do.
    pub fn cancel(&self, id: WaitId) {
        if let Some((cancelled, waker)) = self.fetches.borrow_mut().get_mut(&id) {
            *cancelled = true;
            if let Some(w) = waker.take() {
                w.wake();
            }
        }
    }

    fn is_cancelled(&self, id: WaitId) -> bool {
        self.fetches.borrow().get(&id).is_some_and(|(c, _)| *c)
    }

    /// Resolves once `id` is cancelled.
    async fn cancelled(&self, id: WaitId) {
        poll_fn(|cx| match self.fetches.borrow_mut().get_mut(&id) {
            Some((true, _)) | None => Poll::Ready(()),
            Some((false, waker)) => {
                *waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// Unregisters a parked fetch however its task ends.
struct ParkGuard<'a> {
    parked: &'a Parked,
    id: WaitId,
}

impl Drop for ParkGuard<'_> {
    fn drop(&mut self) {
        self.parked.fetches.borrow_mut().remove(&self.id);
    }
}

/// Whether an owner has something to answer with: `min_bytes`, an error, or records left
/// out for the caller to copy.
fn enough(b: Brought, min_bytes: usize) -> bool {
    b.errored || b.deferred || b.bytes >= min_bytes
}

impl PartitionManager {
    /// `ReadOrWait`: read; until the reads bring enough, wait for an append (or the
    /// deadline, shutdown, a cancel) and read again.
    pub async fn read_or_wait(&self, ask: ParkedRead) -> ReadBatch {
        // Registered before the first await: a cancel sent after this message finds it
        // (the mesh runs a peer's messages in the order sent).
        self.parked
            .fetches
            .borrow_mut()
            .insert(ask.id, (false, None));
        let _guard = ParkGuard {
            parked: &self.parked,
            id: ask.id,
        };
        let no_copy = CopyAllowance {
            bytes: 0,
            may_exceed: false,
        };
        let parts = self.resolve(&ask.reads);
        let lookup = |_: &Read, i: usize| parts[i].clone();
        loop {
            let batch = self
                .read_with(&ask.reads, lookup, ask.budget, ask.first, no_copy)
                .await;
            let now = Instant::now();
            if enough(batch.brought(), ask.min_bytes)
                || now >= ask.deadline
                || self.shutdown.is_fired()
                || self.parked.is_cancelled(ask.id)
            {
                return batch;
            }
            // Wait for more than this read saw: the next append past its high watermark
            // (waiting past the fetch offset alone returns at once when some bytes, not
            // yet min_bytes, are there, and spins).
            let targets = ask
                .reads
                .iter()
                .zip(&parts)
                .zip(&batch.reads)
                .filter_map(|((r, p), got)| {
                    let (part, t) = target(p.as_ref().ok()?, r);
                    let seen = got.as_ref().map_or(t, |g| g.high_watermark);
                    Some((part, t.max(seen)))
                })
                .collect();
            drop(batch);
            self.wait_until(targets, ask.deadline - now, false, Some(ask.id))
                .await;
        }
    }

    /// Resolves when any of `reads` has data past its offset, after `timeout`, or at
    /// shutdown (a long-poll parks here, on the owner); with `share`, also at the next
    /// share acknowledgement or release here.
    pub async fn wait_any(&self, reads: &[Read], timeout: Duration, share: bool) {
        let targets = reads
            .iter()
            .filter_map(|r| self.find(&r.topic, r.partition).map(|p| target(&p, r)))
            .collect();
        self.wait_until(targets, timeout, share, None).await
    }

    /// `wait_any` on (partition, offset to pass), also ended by cancelling `cancel`.
    async fn wait_until(
        &self,
        parts: Vec<(Rc<Partition>, i64)>,
        timeout: Duration,
        share: bool,
        cancel: Option<WaitId>,
    ) {
        let mut appends: Vec<_> = parts
            .iter()
            .map(|(p, t)| p.log.wait_for_append(*t))
            .collect();
        // One future over every partition: each registers the same waker with its log;
        // the first to see data past its target ends the wait (the rest unregister as
        // they are dropped).
        let appended =
            poll_fn(
                |cx| match appends.iter_mut().any(|w| Pin::new(w).poll(cx).is_ready()) {
                    true => Poll::Ready(()),
                    false => Poll::Pending,
                },
            );
        let changed = share.then(|| self.shares().changed());
        let share_changed = async move {
            match changed {
                Some(rx) => rx.await.unwrap_or(()),
                None => std::future::pending().await,
            }
        };
        let timer = glommio::timer::Timer::new(timeout).boxed_local();
        let shutdown = self.shutdown.clone();
        let stop = async move { shutdown.wait().await }.boxed_local();
        let cancelled = async move {
            match cancel {
                Some(id) => self.parked.cancelled(id).await,
                None => std::future::pending().await,
            }
        };
        let ends = select(
            select(timer, stop),
            select(share_changed.boxed_local(), cancelled.boxed_local()),
        );
        // With no partition, `appended` stays pending and one of the ends answers.
        let _ = select(ends, appended).await;
    }
}

/// The partition and the offset its high watermark must pass for `r` to find data.
fn target(part: &Rc<Partition>, r: &Read) -> (Rc<Partition>, i64) {
    (part.clone(), part.wait_target(r.offset, r.committed))
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use super::{ParkedRead, WaitId};
    use crate::kafka::ShardId;
    use crate::partition::read::{ReadBatch, Records};
    use crate::partition::test_support::{batch, manager};
    use crate::partition::{PartitionManager, Read};
    use crate::runtime::test_run as run;

    fn ask(seq: u64, offset: i64, min_bytes: usize, wait: Duration) -> ParkedRead {
        ParkedRead {
            id: WaitId {
                shard: ShardId(1),
                seq,
            },
            reads: vec![Read {
                topic: "t".into(),
                partition: 0,
                offset,
                max_bytes: 1 << 20,
                committed: false,
            }],
            budget: 1 << 20,
            first: true,
            min_bytes,
            deadline: Instant::now() + wait,
        }
    }

    fn bytes(b: &ReadBatch) -> usize {
        b.reads
            .iter()
            .map(|r| r.as_ref().unwrap().records.len())
            .sum()
    }

    /// Appends `n`-record batches after each delay, in the background.
    fn append_later(pm: &Rc<PartitionManager>, batches: Vec<(u64, usize)>) {
        let pm = pm.clone();
        glommio::spawn_local(async move {
            for (ms, n) in batches {
                glommio::timer::sleep(Duration::from_millis(ms)).await;
                pm.append("t", 0, batch(n), 1).await.unwrap();
            }
        })
        .detach();
    }

    #[test]
    fn a_parked_read_answers_with_the_append_that_woke_it() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let pm = manager(dir.path(), 1).await;
            append_later(&pm, vec![(30, 3)]);
            let started = Instant::now();
            let got = pm.read_or_wait(ask(1, 0, 1, Duration::from_secs(10))).await;
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "woken by the append"
            );
            assert!(
                bytes(&got) > 300,
                "the appended batch came back: {}",
                bytes(&got)
            );
            let out = got.reads[0].as_ref().unwrap();
            assert!(
                matches!(out.records, Records::Files { .. }),
                "sent from the page cache"
            );
            assert_eq!(out.high_watermark, 3);
            assert!(pm.parked.fetches.borrow().is_empty(), "unregistered");
        });
    }

    #[test]
    fn a_parked_read_waits_until_its_min_bytes_or_the_deadline() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let pm = manager(dir.path(), 1).await;
            let one = batch(2).len();
            append_later(&pm, vec![(20, 2), (40, 2)]);
            let got = pm
                .read_or_wait(ask(1, 0, one + 1, Duration::from_secs(10)))
                .await;
            assert!(bytes(&got) >= 2 * one, "waited for the second batch");
            // Nothing more comes: the deadline answers, empty.
            let started = Instant::now();
            let got = pm
                .read_or_wait(ask(2, 4, 1, Duration::from_millis(80)))
                .await;
            assert_eq!(bytes(&got), 0);
            assert!(started.elapsed() >= Duration::from_millis(80));
            // min_bytes 0 is answered at once, with nothing to wait for.
            let started = Instant::now();
            let got = pm.read_or_wait(ask(3, 4, 0, Duration::from_secs(10))).await;
            assert_eq!(bytes(&got), 0);
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "min_bytes 0 waited"
            );
        });
    }

    #[test]
    fn a_cancel_answers_a_parked_read_at_once_and_a_late_cancel_is_harmless() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let pm = manager(dir.path(), 1).await;
            let id = ask(7, 0, 1, Duration::ZERO).id;
            let canceller = pm.clone();
            glommio::spawn_local(async move {
                glommio::timer::sleep(Duration::from_millis(30)).await;
                canceller.parked.cancel(id);
            })
            .detach();
            let started = Instant::now();
            let got = pm.read_or_wait(ask(7, 0, 1, Duration::from_secs(10))).await;
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the cancel ended the wait"
            );
            assert_eq!(bytes(&got), 0);
            // A cancel for a fetch that already answered leaves nothing behind.
            pm.parked.cancel(id);
            assert!(pm.parked.fetches.borrow().is_empty());
            // And does not cut short the next fetch from the same shard.
            append_later(&pm, vec![(30, 1)]);
            let got = pm.read_or_wait(ask(8, 0, 1, Duration::from_secs(10))).await;
            assert!(bytes(&got) > 0);
        });
    }
}
