//! Share groups on the partition's owner (KIP-932): every share partition (one share
//! group's view of one partition) lives on the shard that owns the partition, next to
//! its log, so acquiring records and reading them is one step with no lock.
//!
//! - [`state`]: the in-flight window and its state machine (pure);
//! - [`store`]: its durable form on the share-state journal;
//! - this file: the share partitions of a shard with their journal, and the types of
//!   the messages; `owner.rs` runs acquire (read the log, hand out records),
//!   acknowledge (answered once the new window is fdatasync'd, group-committed with
//!   other acks), release, describe and reset on the owner.
//!
//! Durability: a window record is written on every acknowledgement and whenever records
//! are archived, never on acquisition; an acquired record is saved as available. After
//! a crash nothing acknowledged is handed out again, and what was acquired and not
//! acknowledged is available again (its delivery count as of the last write).

pub mod dlq;
mod owner;
pub mod state;
pub mod store;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use futures_channel::oneshot;

use crate::kafka::{ErrorCode, KafkaError};
pub use state::{
    ArchiveReason, Archived, BatchSpan, RecordState, ShareConfig, ShareCounts, SharePartition,
};
use store::{Run, ShareJournal, ShareRecord};

/// (topic, partition, group).
pub type SpKey = (Arc<str>, i32, Arc<str>);

/// The share partitions one shard owns and their journal.
#[derive(Default)]
pub struct ShareStates {
    journal: RefCell<Option<Rc<ShareJournal>>>,
    parts: RefCell<HashMap<SpKey, Rc<RefCell<SharePartition>>>>,
    dlq: RefCell<Option<dlq::DlqSink>>,
    /// Dead-letter records written, and writes that failed (the record is archived
    /// without its copy).
    pub dlq_writes: Cell<u64>,
    pub dlq_failures: Cell<u64>,
    /// ShareFetches waiting on this shard, woken when an acknowledgement or a release may
    /// have made records acquirable (a freed lock, a record available again).
    fetchers: RefCell<Vec<oneshot::Sender<()>>>,
}

/// One partition a ShareFetch reads.
#[derive(Debug, Clone)]
pub struct ShareRead {
    pub topic: Arc<str>,
    pub partition: i32,
    /// Sluice's delayed delivery (topic config `sluice.delivery.delay.ms`): a record is
    /// acquired only this long after its batch's timestamp. 0: at once.
    pub delay_ms: i64,
}

/// What one member asks of one owner in a ShareFetch.
#[derive(Debug, Clone)]
pub struct ShareAsk {
    pub group: Arc<str>,
    pub member: Arc<str>,
    pub config: ShareConfig,
    pub max_records: usize,
    pub max_bytes: usize,
    pub reads: Vec<ShareRead>,
}

/// What a ShareFetch gets for one partition.
#[derive(Debug, Default)]
pub struct ShareOut {
    /// The whole batches holding the acquired records.
    pub records: Bytes,
    /// (first offset, last offset, delivery count).
    pub acquired: Vec<(i64, i64, i16)>,
    /// A fetch that got nothing may wait for the log to pass this offset...
    pub wait_from: i64,
    /// ...or until this time (a lock expires, a held-back record is due).
    pub wake_at_ms: Option<i64>,
    /// Every record of the window is held by some member (the lock cap is reached):
    /// only an acknowledgement or a lock expiry can free one.
    pub window_full: bool,
}

/// One partition's acknowledgements: (first, last, types).
#[derive(Debug, Clone)]
pub struct ShareAcks {
    pub topic: Arc<str>,
    pub partition: i32,
    pub batches: Vec<(i64, i64, Vec<i8>)>,
}

/// A share partition as DescribeShareGroupOffsets shows it.
#[derive(Debug, Clone)]
pub struct ShareView {
    pub topic: Arc<str>,
    pub partition: i32,
    pub group: Arc<str>,
    pub start: i64,
    pub counts: ShareCounts,
    pub lock_expiries: u64,
    pub delivery_limit_hits: u64,
    pub archived_total: u64,
}

fn storage(e: impl std::fmt::Display) -> KafkaError {
    KafkaError::new(ErrorCode::KafkaStorageError, e.to_string())
}

impl ShareStates {
    /// Resolves at the next acknowledgement or release on this shard (with `Canceled` if
    /// the states are dropped first, which a waiter takes as a wake-up too).
    pub fn changed(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut fetchers = self.fetchers.borrow_mut();
        fetchers.retain(|f| !f.is_canceled()); // waits that timed out
        fetchers.push(tx);
        rx
    }

    /// Wake every ShareFetch waiting here: records may be acquirable now.
    fn wake_fetchers(&self) {
        for f in self.fetchers.borrow_mut().drain(..) {
            let _ = f.send(());
        }
    }

    /// Open the journal and rebuild the share partitions it holds.
    pub async fn load(
        &self,
        data_dir: &std::path::Path,
        shard: usize,
        recovered: store::Recovered,
    ) -> Result<(), String> {
        let mut parts = HashMap::new();
        for (key, (_, start, runs)) in &recovered.state.0 {
            let Some((t, p, g)) = store::parse_key(key) else {
                continue;
            };
            let runs: Vec<_> = runs
                .iter()
                .map(|r| (r.first, r.last, r.state, r.delivery_count))
                .collect();
            let sp = SharePartition::restore(*start, &runs);
            parts.insert((t.into(), p, g.into()), Rc::new(RefCell::new(sp)));
        }
        let journal = store::open(data_dir, shard, recovered)
            .await
            .map_err(|e| e.to_string())?;
        *self.parts.borrow_mut() = parts;
        *self.journal.borrow_mut() = Some(Rc::new(journal));
        Ok(())
    }

    /// Where dead-letter records go (set once by `broker.rs`).
    pub fn set_dlq_sink(&self, sink: dlq::DlqSink) {
        *self.dlq.borrow_mut() = Some(sink);
    }

    pub fn dlq_sink(&self) -> Option<dlq::DlqSink> {
        self.dlq.borrow().clone()
    }

    pub fn insert(&self, k: SpKey, sp: Rc<RefCell<SharePartition>>) {
        self.parts.borrow_mut().insert(k, sp);
    }

    /// Forget a share partition, durably.
    pub async fn remove(&self, k: &SpKey) -> Result<(), KafkaError> {
        if self.parts.borrow_mut().remove(k).is_none() {
            return Ok(());
        }
        let journal = self.journal()?;
        let rec = ShareRecord::Delete {
            seq: journal.next_seq(),
            key: store::key(&k.0, k.1, &k.2),
        };
        journal.append(vec![rec]).await.map_err(storage)
    }

    /// Forget the share partitions of the topics `gone` says are deleted, durably (one
    /// journal append): a topic re-created under the same name starts its share groups
    /// afresh, as its consumer groups' offsets do.
    pub async fn forget_topics(&self, gone: &dyn Fn(&str) -> bool) -> Result<(), KafkaError> {
        let keys: Vec<SpKey> = {
            let mut parts = self.parts.borrow_mut();
            let keys: Vec<SpKey> = parts.keys().filter(|k| gone(&k.0)).cloned().collect();
            keys.iter().for_each(|k| {
                parts.remove(k);
            });
            keys
        };
        if keys.is_empty() {
            return Ok(());
        }
        let journal = self.journal()?;
        let records = keys
            .iter()
            .map(|k| ShareRecord::Delete {
                seq: journal.next_seq(),
                key: store::key(&k.0, k.1, &k.2),
            })
            .collect();
        journal.append(records).await.map_err(storage)
    }

    fn journal(&self) -> Result<Rc<ShareJournal>, KafkaError> {
        self.journal
            .borrow()
            .clone()
            .ok_or_else(|| KafkaError::new(ErrorCode::CoordinatorLoadInProgress, "loading"))
    }

    pub fn find(&self, k: &SpKey) -> Option<Rc<RefCell<SharePartition>>> {
        self.parts.borrow().get(k).cloned()
    }

    /// Write the windows of `keys` as they are now (one record each, one group commit).
    pub async fn persist(&self, keys: &[SpKey]) -> Result<(), KafkaError> {
        let journal = self.journal()?;
        let records: Vec<ShareRecord> = keys
            .iter()
            .filter_map(|k| {
                let sp = self.find(k)?;
                let sp = sp.borrow();
                Some(ShareRecord::Window {
                    seq: journal.next_seq(),
                    key: store::key(&k.0, k.1, &k.2),
                    start: sp.start(),
                    runs: sp
                        .runs()
                        .into_iter()
                        .map(|(first, last, state, delivery_count)| Run {
                            first,
                            last,
                            state,
                            delivery_count,
                        })
                        .collect(),
                })
            })
            .collect();
        journal.append(records).await.map_err(storage)
    }

    /// Every share partition (metrics, describe).
    pub fn views(&self) -> Vec<ShareView> {
        self.parts
            .borrow()
            .iter()
            .map(|(k, sp)| {
                let sp = sp.borrow();
                ShareView {
                    topic: k.0.clone(),
                    partition: k.1,
                    group: k.2.clone(),
                    start: sp.start(),
                    counts: sp.counts(),
                    lock_expiries: sp.lock_expiries,
                    delivery_limit_hits: sp.delivery_limit_hits,
                    archived_total: sp.archived_total,
                }
            })
            .collect()
    }
}
