//! The partitions one shard owns: opened (and recovered) when the registry gives them to
//! this shard, reconfigured when their topic's configs change, removed when their topic
//! is deleted, closed at shutdown; and their background work (retention, producer
//! snapshots) in a low-share task queue, so it never stalls produce or fetch.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use glommio::{Latency, Shares};
use tracing::warn;

use super::Partition;
use crate::cluster::{partition_dir, Registry, TopicMeta};
use crate::kafka::{ErrorCode, KafkaError, ShardId};
use crate::log::{AppendInfo, Availability};
use crate::metrics::ShardMetrics;
use crate::runtime::{now_ms, Signal};
use crate::store::atomic::{FileSystem, Staged};

/// Partitions closed at once at shutdown (each holds a few file descriptors and buffers
/// while it closes).
const CLOSE_CONCURRENCY: usize = 64;

/// One owned partition: (topic, partition index, the partition).
type Owned1 = (Arc<str>, i32, Rc<Partition>);

/// Owned partitions by topic name, then partition index.
type Owned = HashMap<Arc<str>, Vec<Option<Rc<Partition>>>>;

/// What the manager needs from the broker's config.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub data_dir: PathBuf,
    /// Send cached fetch data with `sendfile` (false: always copy, to measure against).
    pub fetch_zero_copy: bool,
    pub producer_id_expiration_ms: i64,
    pub retention_check_interval_ms: u64,
    /// The compaction cleaner: its map size and I/O pace, and how long it sleeps when no
    /// partition is due (Kafka's log.cleaner.backoff.ms).
    pub cleaner: super::cleaner::CleanerConfig,
    pub cleaner_backoff_ms: u64,
}

/// The cleaner's task queue shares: a busy shard gives it about 2% of its time (the
/// default queue, where requests run, has 1000), an idle one all of it.
const CLEANER_SHARES: usize = 20;

pub struct PartitionManager {
    shard: ShardId,
    config: ManagerConfig,
    metrics: Rc<ShardMetrics>,
    pub(super) shutdown: Rc<Signal>,
    partitions: RefCell<Owned>,
    /// The share partitions of the owned partitions (KIP-932) and their journal.
    shares: super::share::ShareStates,
    /// Fetches long-polling on this shard (`long_poll`).
    pub(super) parked: super::long_poll::Parked,
}

impl PartitionManager {
    pub fn new(
        shard: ShardId,
        config: ManagerConfig,
        metrics: Rc<ShardMetrics>,
        shutdown: Rc<Signal>,
    ) -> Self {
        PartitionManager {
            shard,
            config,
            metrics,
            shutdown,
            partitions: RefCell::new(HashMap::new()),
            shares: super::share::ShareStates::default(),
            parked: super::long_poll::Parked::default(),
        }
    }

    pub(crate) fn metrics(&self) -> &ShardMetrics {
        &self.metrics
    }

    pub fn shares(&self) -> &super::share::ShareStates {
        &self.shares
    }

    /// The data directory the partitions live under.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.config.data_dir
    }

    pub(crate) fn zero_copy(&self) -> bool {
        self.config.fetch_zero_copy
    }

    /// An owned partition, if this shard owns it and it is open.
    pub fn find(&self, topic: &str, partition: i32) -> Option<Rc<Partition>> {
        let parts = self.partitions.borrow();
        let p = usize::try_from(partition).ok()?;
        parts.get(topic)?.get(p)?.clone()
    }

    /// An owned partition, or the error a client should see.
    pub fn get(&self, topic: &str, partition: i32) -> Result<Rc<Partition>, KafkaError> {
        self.find(topic, partition).ok_or_else(|| {
            KafkaError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("partition {topic}-{partition} does not exist"),
            )
        })
    }

    /// Every owned partition (for metrics and background work).
    pub fn owned(&self) -> Vec<(Arc<str>, i32, Rc<Partition>)> {
        let parts = self.partitions.borrow();
        let mut out = Vec::new();
        for (t, ps) in parts.iter() {
            for (p, part) in ps.iter().enumerate() {
                if let Some(part) = part {
                    out.push((t.clone(), p as i32, part.clone()));
                }
            }
        }
        out
    }

    /// Owned partitions whose log takes no appends, for Metadata: (topic, partition,
    /// offline until a restart) — else out of space for now, still readable.
    /// Asked on every Metadata request: walks the owned partitions in place and copies
    /// only the (rare) ones that are not online.
    pub fn offline(&self) -> Vec<(Arc<str>, i32, bool)> {
        let parts = self.partitions.borrow();
        let mut out = Vec::new();
        for (t, ps) in parts.iter() {
            for (p, part) in ps.iter().enumerate() {
                let Some(part) = part else { continue };
                match part.log.availability() {
                    Availability::Online => {}
                    Availability::NoSpace(_) => out.push((t.clone(), p as i32, false)),
                    Availability::Offline(_) => out.push((t.clone(), p as i32, true)),
                }
            }
        }
        out
    }

    /// Produce to an owned partition, counted in the shard's metrics.
    pub async fn append(
        &self,
        topic: &str,
        partition: i32,
        records: Bytes,
        acks: i16,
    ) -> Result<AppendInfo, KafkaError> {
        let part = self.get(topic, partition)?;
        let (info, appended) = part.append(&records, acks).await?;
        if appended {
            self.metrics
                .record_append(records.len(), info.last_offset - info.base_offset + 1);
        }
        Ok(info)
    }

    /// Follow the registry from `prev` to `next`: remove the partitions of topics that
    /// disappeared (or were re-created under a new id), open the newly owned ones, apply
    /// config changes to the open ones.
    pub async fn apply(&self, prev: &Registry, next: &Registry) -> Result<(), KafkaError> {
        for (name, old) in prev.topics.iter() {
            let gone = next.topic(name).map(|t| t.id != old.id).unwrap_or(true);
            if gone {
                let removed = self.partitions.borrow_mut().remove(name);
                for part in removed.into_iter().flatten().flatten() {
                    if let Err(e) = part.log.remove().await {
                        warn!(topic = %name, "removing the log of a deleted topic failed: {e}");
                    }
                }
            }
        }
        for topic in next.topics.values() {
            self.open_owned(topic).await?;
        }
        Ok(())
    }

    async fn open_owned(&self, topic: &TopicMeta) -> Result<(), KafkaError> {
        for (p, &owner) in topic.partition_shards.iter().enumerate() {
            if owner != self.shard {
                continue;
            }
            if let Some(part) = self.find(&topic.name, p as i32) {
                part.log.set_config(topic.log_config.clone());
                part.set_compression(topic.compression());
                continue;
            }
            let dir = partition_dir(&self.config.data_dir, &topic.name, p as i32);
            let part = Rc::new(Partition::open(&dir, topic.log_config.clone()).await?);
            part.set_compression(topic.compression());
            let mut parts = self.partitions.borrow_mut();
            let slots = parts.entry(topic.name.clone()).or_default();
            if slots.len() <= p {
                slots.resize(p + 1, None);
            }
            slots[p] = Some(part);
        }
        Ok(())
    }

    /// Flush and close every owned log and save its producer state (graceful shutdown).
    /// With thousands of partitions, one sync of the file system replaces each file's
    /// own (five fdatasyncs a partition): every log is closed unsynced
    /// (`CLOSE_CONCURRENCY` at a time), the file system synced, the checkpoints written
    /// and the producer states staged, synced again, the states installed, synced a last
    /// time. A failed sync leaves the checkpoints as they were, so the next start
    /// recovers those logs as after a crash.
    pub async fn close_all(&self) {
        let started = std::time::Instant::now();
        let fs = match FileSystem::open(&self.config.data_dir) {
            Ok(fs) => fs,
            Err(e) => {
                warn!("{e}; closing the partitions one by one");
                return self.close_one_by_one().await;
            }
        };
        let open: Vec<Owned1> = stream::iter(self.owned())
            .map(|(topic, p, part)| async move {
                part.close_unsynced(&topic, p)
                    .await
                    .then_some((topic, p, part))
            })
            .buffer_unordered(CLOSE_CONCURRENCY)
            .filter_map(std::future::ready)
            .collect()
            .await;
        let closed = started.elapsed();
        let why = "the next start recovers these partitions from their last checkpoints";
        if let Err(e) = fs.sync() {
            return tracing::error!("graceful stop: {e}; {why}");
        }
        let synced = started.elapsed();
        let partitions = open.len();
        let staged: Vec<Staged> = stream::iter(open)
            .map(|(topic, p, part)| async move { part.close_synced(&topic, p).await })
            .buffer_unordered(CLOSE_CONCURRENCY)
            .filter_map(std::future::ready)
            .collect()
            .await;
        if let Err(e) = fs.sync() {
            return tracing::error!("graceful stop: {e}; {why}");
        }
        for file in staged {
            if let Err(e) = file.install() {
                tracing::error!("graceful stop: {e}");
            }
        }
        if let Err(e) = fs.sync() {
            tracing::error!("graceful stop: {e}; producer states are read from the log");
        }
        tracing::info!(
            partitions,
            closed_ms = closed.as_millis() as u64,
            first_sync_ms = (synced - closed).as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "partitions closed"
        );
    }

    /// Each partition closed with its own syncs, `CLOSE_CONCURRENCY` at a time.
    async fn close_one_by_one(&self) {
        stream::iter(self.owned())
            .for_each_concurrent(CLOSE_CONCURRENCY, |(topic, p, part)| async move {
                part.close(&topic, p).await;
            })
            .await;
    }

    /// Retention and producer snapshots, in their own low-share task queue, until
    /// `shutdown`.
    pub fn spawn_background(self: &Rc<Self>) {
        let tq = glommio::executor().create_task_queue(
            Shares::Static(50),
            Latency::NotImportant,
            "retention",
        );
        let every = Duration::from_millis(self.config.retention_check_interval_ms.max(100));
        let me = self.clone();
        let task = glommio::spawn_local_into(
            async move {
                while me.shutdown.sleep(every).await {
                    me.background_pass().await;
                }
            },
            tq,
        );
        match task {
            Ok(t) => {
                t.detach();
            }
            Err(e) => warn!("cannot start retention: {e}"),
        }
    }

    /// The compaction cleaner, in a task queue of its own with few shares, until
    /// `shutdown`: dirtiest due partition first, one pass at a time, until none is due.
    pub fn spawn_cleaner(self: &Rc<Self>) {
        let tq = glommio::executor().create_task_queue(
            Shares::Static(CLEANER_SHARES),
            Latency::NotImportant,
            "cleaner",
        );
        let every = Duration::from_millis(self.config.cleaner_backoff_ms.max(10));
        let me = self.clone();
        let task = glommio::spawn_local_into(
            async move {
                while me.shutdown.sleep(every).await {
                    while let Some((topic, p, part)) = me.dirtiest() {
                        me.clean_one(&topic, p, &part).await;
                        if me.shutdown.is_fired() {
                            return;
                        }
                    }
                }
            },
            tq,
        );
        match task {
            Ok(t) => {
                t.detach();
            }
            Err(e) => warn!("cannot start the cleaner: {e}"),
        }
    }

    /// (topic, partition, dirty ratio) of every owned compacted partition with a
    /// cleanable log, for `/metrics`.
    pub fn dirty_ratios(&self) -> Vec<(String, i32, f64)> {
        let now = now_ms();
        self.owned()
            .into_iter()
            .filter_map(|(t, p, part)| {
                let c = part.cleanable(now)?;
                Some((t.to_string(), p, c.dirty_ratio()))
            })
            .collect()
    }

    /// The due compacted partition with the highest dirty ratio.
    fn dirtiest(&self) -> Option<Owned1> {
        let now = now_ms();
        let mut best: Option<(f64, Owned1)> = None;
        for (t, p, part) in self.owned() {
            let Some(ratio) = part.cleaning_due(now) else {
                continue;
            };
            if best.as_ref().is_none_or(|(r, _)| ratio > *r) {
                best = Some((ratio, (t, p, part)));
            }
        }
        best.map(|(_, x)| x)
    }

    async fn clean_one(&self, topic: &str, p: i32, part: &Partition) {
        let started = std::time::Instant::now();
        match part.clean(self.config.cleaner, now_ms()).await {
            Ok(Some(stats)) => {
                self.metrics
                    .record_clean(stats.bytes_read, stats.bytes_written, started.elapsed());
                tracing::info!(%topic, partition = p, read = stats.bytes_read, written = stats.bytes_written,
                    segments = stats.segments_cleaned, ms = started.elapsed().as_millis() as u64, "cleaned");
            }
            Ok(None) => {}
            Err(e) => warn!(%topic, partition = p, "cleaning failed: {}", e.message),
        }
    }

    async fn background_pass(&self) {
        let expiration = self.config.producer_id_expiration_ms;
        for (topic, p, part) in self.owned() {
            if let Err(e) = part.log.enforce_retention(now_ms()).await {
                warn!(%topic, partition = p, "retention failed: {e}");
            }
            if let Err(e) = part.save_producer_state(expiration).await {
                warn!(%topic, partition = p, "saving producer state failed: {}", e.message);
            }
        }
    }
}

/// (total, available to unprivileged users) bytes of the file system holding `dir`
/// (`statvfs(3)`), or None if it cannot be asked.
pub fn file_system_space(dir: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `st` a live, writable statvfs;
    // both outlive the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let block = st.f_frsize as u64;
    Some((st.f_blocks as u64 * block, st.f_bavail as u64 * block))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    use crate::partition::test_support::{batch, idempotent_batch, manager};
    use crate::runtime::test_run as run;

    /// Every file name under `dir`, recursively.
    fn files(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let path = e.path();
            match path.is_dir() {
                true => out.extend(files(&path)),
                false => out.push(path.display().to_string()),
            }
        }
        out
    }

    fn inode(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().ino()
    }

    #[test]
    fn a_stop_with_one_file_system_sync_keeps_logs_and_producer_state_and_skips_unchanged_files() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let pm = manager(dir.path(), 2).await;
            pm.append("t", 0, idempotent_batch(7, 0, 3), 1)
                .await
                .unwrap();
            pm.append("t", 1, batch(2), 1).await.unwrap();
            pm.close_all().await;
            let names = files(dir.path());
            assert!(
                !names.iter().any(|n| n.ends_with(".tmp")),
                "temp files left: {names:?}"
            );

            let pm = manager(dir.path(), 2).await;
            let p0 = pm.get("t", 0).unwrap();
            assert_eq!(p0.log.high_watermark(), 3);
            assert_eq!(pm.get("t", 1).unwrap().log.high_watermark(), 2);
            // The producer state came back from its snapshot: the same batch again is a
            // duplicate, not a new append.
            let (info, appended) = p0.append(&idempotent_batch(7, 0, 3), 1).await.unwrap();
            assert!(!appended, "a retry after the stop was appended again");
            assert_eq!((info.base_offset, info.last_offset), (0, 2));
            let snapshot = crate::partition::producer::state::snapshot_path(p0.log.dir());
            let before = inode(&snapshot);
            pm.close_all().await;
            // Nothing changed: the snapshot file is the same one (a rewrite renames a new
            // file over it).
            assert_eq!(inode(&snapshot), before);

            let pm = manager(dir.path(), 2).await;
            let p0 = pm.get("t", 0).unwrap();
            p0.append(&idempotent_batch(7, 3, 1), 1).await.unwrap();
            pm.close_all().await;
            assert_ne!(
                inode(&snapshot),
                before,
                "a changed producer state is saved"
            );
            let pm = manager(dir.path(), 2).await;
            assert_eq!(pm.get("t", 0).unwrap().log.high_watermark(), 4);
        });
    }
}
