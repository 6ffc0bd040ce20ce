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
//! The parts: `state` (an id's entry and the checks on it), `store` (making it durable),
//! `operations` (the requests), `markers` (the second phase), `tick` (timeouts, unfinished
//! phases, expiry), `peers` (the narrow handle on partitions, groups and producer ids),
//! `messages` (what other shards may ask).

pub mod markers;
pub mod messages;
pub mod operations;
pub mod peers;
pub mod state;
pub mod store;
pub mod tick;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::kafka::{ErrorCode, ShardId, TopicPartition};
use crate::runtime::{now_ms, FifoGate};
pub use peers::{MeshPeers, Peers};
pub use state::{fenced, PendingOffset, Phase, TxnEntry};
use store::TxnStore;

/// How often timeouts and unfinished Prepare phases are checked.
pub const TICK: Duration = Duration::from_millis(500);
/// Kafka's `transaction.max.timeout.ms` default: a longer InitProducerId timeout is refused.
pub const MAX_TIMEOUT_MS: i32 = 900_000;
/// Kafka's `offset.metadata.max.bytes`, as for OffsetCommit.
const MAX_METADATA_BYTES: usize = 4096;

/// The owner shard of a transactional id (the same hash as groups).
pub use super::owner_shard;

/// The partitions of one producer's transaction whose marker is written: a retry writes
/// only the missing ones.
#[derive(Debug, Clone)]
struct MarkedPartitions {
    producer_id: i64,
    epoch: i16,
    done: HashSet<TopicPartition>,
}

/// When the tick may retry an id whose completion failed, and the backoff after that.
#[derive(Debug, Clone, Copy)]
struct Retry {
    at: Instant,
    backoff: Duration,
}

/// The transactions one shard coordinates.
pub struct Coordinator {
    shard: ShardId,
    shards: usize,
    /// Ids idle this long are forgotten (Kafka's `transactional.id.expiration.ms`).
    expiration_ms: i64,
    peers: Rc<dyn Peers>,
    entries: RefCell<HashMap<String, TxnEntry>>,
    /// Orders changes and their saves.
    gate: FifoGate,
    store: RefCell<Option<Rc<TxnStore>>>,
    loaded: Cell<bool>,
    /// Ids whose Prepare phase a task is completing right now. Set in the same change
    /// that saves the Prepare phase (or by the tick, under the gate), so only one task
    /// ever writes an entry's markers.
    completing: RefCell<HashSet<String>>,
    /// Partitions whose marker is written, per id.
    marked: RefCell<HashMap<String, MarkedPartitions>>,
    /// When the tick may retry an id whose completion failed.
    retry: RefCell<HashMap<String, Retry>>,
}

/// The result of a state change: done, or a Prepare phase that must now be completed.
enum Next<T> {
    Done(T),
    Complete(TxnEntry),
}

impl Coordinator {
    pub fn new(shard: ShardId, shards: usize, expiration_ms: i64, peers: Rc<dyn Peers>) -> Self {
        Coordinator {
            shard,
            shards,
            expiration_ms,
            peers,
            entries: RefCell::new(HashMap::new()),
            gate: FifoGate::default(),
            store: RefCell::new(None),
            loaded: Cell::new(false),
            completing: RefCell::new(HashSet::new()),
            marked: RefCell::new(HashMap::new()),
            retry: RefCell::new(HashMap::new()),
        }
    }

    /// Whether this shard coordinates `transactional_id`.
    pub fn owns(&self, transactional_id: &str) -> bool {
        owner_shard(transactional_id, self.shards) == self.shard
    }

    /// Open this shard's journal from what `store::recover` read, and import the ids
    /// it owns from the state files of before the journal (`store::legacy_entries`).
    pub async fn load(&self, data_dir: &Path, recovered: store::Recovered) -> Result<(), String> {
        let store = TxnStore::open(data_dir, self.shard, recovered).await?;
        let mut entries = store.entries();
        let legacy: Vec<TxnEntry> = store::legacy_entries(data_dir, self.shard, self.shards)?
            .into_iter()
            .filter(|e| {
                entries
                    .get(&e.transactional_id)
                    .is_none_or(|have| e.version > have.version)
            })
            .collect();
        if !legacy.is_empty() {
            store.put(legacy.clone()).await?;
            info!(
                shard = self.shard.0,
                transactional_ids = legacy.len(),
                "imported transaction state into the journal"
            );
        }
        for e in legacy {
            entries.insert(e.transactional_id.clone(), e);
        }
        if !entries.is_empty() {
            info!(
                shard = self.shard.0,
                transactional_ids = entries.len(),
                "transactions loaded"
            );
        }
        *self.entries.borrow_mut() = entries;
        *self.store.borrow_mut() = Some(Rc::new(store));
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

    /// Topics were deleted (or re-created under a new id): drop the offsets open
    /// transactions hold for them, so a commit cannot apply them to a re-created topic
    /// (Kafka removes pending transactional offsets of deleted partitions too).
    pub async fn forget_topics(&self, gone: &dyn Fn(&str) -> bool) -> Result<(), String> {
        if !self.loaded.get() {
            return Ok(());
        }
        let ids: Vec<String> = self
            .entries
            .borrow()
            .values()
            .filter(|e| !matches!(e.phase, Phase::CompleteCommit | Phase::CompleteAbort))
            .filter(|e| e.offsets.iter().any(|o| gone(&o.topic)))
            .map(|e| e.transactional_id.clone())
            .collect();
        for id in ids {
            self.update(&id, |e| {
                let mut n = e.cloned();
                if let Some(n) = n.as_mut() {
                    n.offsets.retain(|o| !gone(&o.topic));
                }
                Ok((n, ()))
            })
            .await
            .map_err(|code| format!("dropping offsets of deleted topics failed: {code:?}"))?;
        }
        Ok(())
    }

    pub fn entry(&self, transactional_id: &str) -> Option<TxnEntry> {
        self.entries.borrow().get(transactional_id).cloned()
    }

    /// Every entry (for the tick and for DescribeTransactions-like views).
    pub fn entries(&self) -> Vec<TxnEntry> {
        self.entries.borrow().values().cloned().collect()
    }

    fn store(&self) -> Result<Rc<TxnStore>, String> {
        let store = self.store.borrow().clone();
        store.ok_or_else(|| "transaction state is not loaded".to_string())
    }

    /// Change one entry under the gate: it is written to the journal and, once durable,
    /// becomes the entry everyone sees; on a failed write nothing changes and the client
    /// is told KAFKA_STORAGE_ERROR.
    async fn update<T>(
        &self,
        id: &str,
        f: impl FnOnce(Option<&TxnEntry>) -> Result<(Option<TxnEntry>, T), ErrorCode>,
    ) -> Result<T, ErrorCode> {
        if !self.loaded.get() {
            return Err(ErrorCode::CoordinatorLoadInProgress);
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
        let saved = match self.store() {
            Ok(store) => store.put(vec![new.clone()]).await,
            Err(e) => Err(e),
        };
        if let Err(e) = saved {
            warn!(
                transactional_id = id,
                "saving transaction state failed: {e}"
            );
            return Err(ErrorCode::KafkaStorageError);
        }
        self.entries.borrow_mut().insert(id.to_string(), new);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::store::{state_dir, TxnFile};
    use super::*;
    use crate::runtime::test_run as run;
    use crate::store::atomic;

    /// A coordinator that reaches nothing outside its own state.
    struct NoPeers;

    impl Peers for NoPeers {
        fn registry(&self) -> std::sync::Arc<crate::cluster::Registry> {
            std::sync::Arc::default()
        }
        fn new_producer_id(
            &self,
        ) -> futures_util::future::LocalBoxFuture<'_, Result<i64, crate::kafka::KafkaError>>
        {
            Box::pin(async { Ok(1) })
        }
        fn allow_txn(
            &self,
            _: TopicPartition,
            _: i64,
            _: i16,
        ) -> futures_util::future::LocalBoxFuture<'_, Result<(), crate::kafka::KafkaError>>
        {
            Box::pin(async { Ok(()) })
        }
        fn write_marker(
            &self,
            _: TopicPartition,
            _: peers::Marker,
        ) -> futures_util::future::LocalBoxFuture<'_, Result<(), crate::kafka::KafkaError>>
        {
            Box::pin(async { Ok(()) })
        }
        fn commit_offsets(
            &self,
            _: crate::coordinator::group::CommitRequest,
        ) -> futures_util::future::LocalBoxFuture<
            '_,
            Result<crate::coordinator::group::TopicCodes, ErrorCode>,
        > {
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    fn coordinator(shard: usize) -> Coordinator {
        Coordinator::new(ShardId(shard), 2, i64::MAX, Rc::new(NoPeers))
    }

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

    /// The state files of before the journal are imported once: every shard takes the
    /// newest copy of each id it owns under the current shard count (also when the count
    /// changed since they were saved), the files go, and a restart reads it all back
    /// from the journal.
    #[test]
    fn legacy_state_files_are_imported_into_the_journal_once() {
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
            atomic::save(&d.join("shard-0.state"), &new).await.unwrap();
            atomic::save(&d.join("shard-3.state"), &old).await.unwrap();
            for round in 0..2 {
                let recovered = store::recover(&data, 2).unwrap();
                let mut seen = 0;
                for (shard, rec) in recovered.into_iter().enumerate() {
                    let c = coordinator(shard);
                    c.load(&data, rec).await.unwrap();
                    for id in &ids {
                        match c.entry(id) {
                            Some(e) => {
                                assert_eq!(owner_shard(id, 2), ShardId(shard));
                                assert_eq!((e.epoch, e.phase), (2, Phase::CompleteCommit));
                                assert_eq!(e, entry(id, 2, Phase::CompleteCommit, 200));
                                seen += 1;
                            }
                            None => assert_ne!(owner_shard(id, 2), ShardId(shard)),
                        }
                    }
                }
                assert_eq!(seen, ids.len(), "round {round}");
                store::remove_legacy(&data).unwrap();
                assert!(!d.join("shard-0.state").exists());
            }
        });
    }

    #[test]
    fn pending_partitions_are_those_of_transactions_not_ended() {
        let c = coordinator(0);
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

    /// What the coordinator asked of the rest of the broker, and a partition whose
    /// marker fails while `fail` holds it.
    #[derive(Default)]
    struct Recording {
        allowed: RefCell<Vec<TopicPartition>>,
        markers: RefCell<Vec<(TopicPartition, bool)>>,
        commits: RefCell<Vec<crate::coordinator::group::CommitRequest>>,
        fail: RefCell<Option<TopicPartition>>,
    }

    impl Peers for Recording {
        fn registry(&self) -> std::sync::Arc<crate::cluster::Registry> {
            let defaults = crate::cluster::TopicConfigDefaults::default();
            let t = crate::cluster::TopicMeta {
                name: "t".into(),
                id: uuid::Uuid::from_u128(7),
                partition_shards: vec![ShardId(0); 4],
                overrides: Default::default(),
                log_config: defaults.log_config(&Default::default()).unwrap(),
            };
            std::sync::Arc::new(crate::cluster::Registry::default().with_topic(t))
        }
        fn new_producer_id(
            &self,
        ) -> futures_util::future::LocalBoxFuture<'_, Result<i64, crate::kafka::KafkaError>>
        {
            Box::pin(async { Ok(1000) })
        }
        fn allow_txn(
            &self,
            tp: TopicPartition,
            _: i64,
            _: i16,
        ) -> futures_util::future::LocalBoxFuture<'_, Result<(), crate::kafka::KafkaError>>
        {
            self.allowed.borrow_mut().push(tp);
            Box::pin(async { Ok(()) })
        }
        fn write_marker(
            &self,
            tp: TopicPartition,
            m: peers::Marker,
        ) -> futures_util::future::LocalBoxFuture<'_, Result<(), crate::kafka::KafkaError>>
        {
            let fails = self.fail.borrow().as_ref() == Some(&tp);
            if !fails {
                self.markers.borrow_mut().push((tp, m.commit));
            }
            Box::pin(async move {
                if fails {
                    Err(crate::kafka::KafkaError::new(
                        ErrorCode::KafkaStorageError,
                        "disk",
                    ))
                } else {
                    Ok(())
                }
            })
        }
        fn commit_offsets(
            &self,
            r: crate::coordinator::group::CommitRequest,
        ) -> futures_util::future::LocalBoxFuture<
            '_,
            Result<crate::coordinator::group::TopicCodes, ErrorCode>,
        > {
            let codes = r
                .topics
                .iter()
                .map(|(t, ps)| {
                    (
                        t.clone(),
                        ps.iter().map(|p| (p.partition, ErrorCode::None)).collect(),
                    )
                })
                .collect();
            self.commits.borrow_mut().push(r);
            Box::pin(async move { Ok(codes) })
        }
    }

    /// A transaction of three partitions and one group's offsets commits: a marker
    /// on each partition, the offsets in their group, the end saved. A marker that
    /// fails leaves the transaction prepared (the client is told it committed); the
    /// tick then writes only the missing marker, and the outcome survives a restart.
    #[test]
    fn a_commit_marks_every_partition_once_even_when_a_marker_has_to_be_retried() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        run(move || async move {
            let peers = Rc::new(Recording::default());
            let c = Coordinator::new(ShardId(0), 1, i64::MAX, peers.clone());
            c.load(&data, store::recover(&data, 1).unwrap().remove(0))
                .await
                .unwrap();
            let id = "orders-tx".to_string();
            let (pid, epoch) = c
                .init_producer_id(id.clone(), 60_000, -1, -1, 4)
                .await
                .unwrap();
            assert_eq!((pid, epoch), (1000, 0));
            let codes = c
                .add_partitions(id.clone(), pid, epoch, vec![("t".into(), vec![0, 1, 2])], 3)
                .await;
            assert!(codes[0].1.iter().all(|(_, code)| *code == ErrorCode::None));
            assert_eq!(peers.allowed.borrow().len(), 3, "each partition told");
            c.add_offsets(id.clone(), pid, epoch, "g".into(), 3)
                .await
                .unwrap();
            let commit = operations::TxnCommit {
                id: id.clone(),
                group: "g".into(),
                producer_id: pid,
                epoch,
                topics: vec![(
                    "t".into(),
                    vec![crate::coordinator::group::CommitPartition {
                        partition: 0,
                        offset: 42,
                        leader_epoch: -1,
                        metadata: None,
                    }],
                )],
            };
            c.txn_offset_commit(commit, 3).await.unwrap();
            *peers.fail.borrow_mut() = Some(TopicPartition::new("t", 2));
            c.end_txn(id.clone(), pid, epoch, true, 3).await.unwrap();
            assert_eq!(c.entry(&id).unwrap().phase, Phase::PrepareCommit);
            assert_eq!(peers.markers.borrow().len(), 2);
            assert!(
                peers.commits.borrow().is_empty(),
                "offsets wait for every marker"
            );

            *peers.fail.borrow_mut() = None;
            glommio::timer::sleep(TICK + Duration::from_millis(100)).await;
            c.tick().await;
            assert_eq!(c.entry(&id).unwrap().phase, Phase::CompleteCommit);
            let marked: Vec<i32> = peers
                .markers
                .borrow()
                .iter()
                .map(|(tp, _)| tp.partition)
                .collect();
            assert_eq!(
                marked,
                vec![0, 1, 2],
                "the retry wrote only the missing marker"
            );
            assert!(peers.markers.borrow().iter().all(|(_, commit)| *commit));
            {
                let commits = peers.commits.borrow();
                assert_eq!(commits.len(), 1);
                assert_eq!(
                    (commits[0].group.as_str(), commits[0].topics[0].1[0].offset),
                    ("g", 42)
                );
            }

            let again = Coordinator::new(ShardId(0), 1, i64::MAX, Rc::new(Recording::default()));
            again
                .load(&data, store::recover(&data, 1).unwrap().remove(0))
                .await
                .unwrap();
            let e = again.entry(&id).unwrap();
            assert_eq!(
                (e.phase, e.producer_id, e.epoch),
                (Phase::CompleteCommit, 1000, 0)
            );
        });
    }

    #[test]
    fn fencing_code_follows_the_request_version() {
        assert_eq!(fenced(1, 2), ErrorCode::InvalidProducerEpoch);
        assert_eq!(fenced(2, 2), ErrorCode::ProducerFenced);
    }
}
