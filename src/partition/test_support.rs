//! What the partition layer's tests build on: a manager owning a topic, record batches.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::cluster::{new_topic_id, Registry, TopicMeta};
use crate::kafka::ShardId;
use crate::log::batch::{BatchBuilder, Record};
use crate::log::{FlushPolicy, LogConfig};
use crate::metrics::ShardMetrics;
use crate::partition::cleaner::CleanerConfig;
use crate::partition::manager::ManagerConfig;
use crate::partition::PartitionManager;
use crate::runtime::Signal;

/// A manager on shard 0 owning topic "t" with `partitions` partitions, in `dir`.
pub async fn manager(dir: &std::path::Path, partitions: usize) -> Rc<PartitionManager> {
    let config = ManagerConfig {
        data_dir: dir.to_path_buf(),
        fetch_zero_copy: true,
        producer_id_expiration_ms: i64::MAX / 2,
        retention_check_interval_ms: 1 << 30,
        cleaner: CleanerConfig {
            map_bytes: 1 << 20,
            io_bytes_per_sec: 0,
        },
        cleaner_backoff_ms: 1 << 30,
    };
    let metrics = Rc::new(ShardMetrics::new(0));
    let pm = Rc::new(PartitionManager::new(
        ShardId(0),
        config,
        metrics,
        Rc::new(Signal::default()),
    ));
    let topic = TopicMeta {
        name: "t".into(),
        id: new_topic_id(),
        partition_shards: vec![ShardId(0); partitions],
        overrides: BTreeMap::new(),
        log_config: LogConfig {
            flush: FlushPolicy::Never,
            ..LogConfig::default()
        },
    };
    let reg = Registry::default().with_topic(topic);
    pm.apply(&Registry::default(), &reg).await.unwrap();
    pm
}

/// A batch of `n` records of 100 bytes.
pub fn batch(n: usize) -> bytes::Bytes {
    let value = [7u8; 100];
    let recs: Vec<Record<'_>> = (0..n)
        .map(|_| Record {
            value: Some(&value),
            ..Default::default()
        })
        .collect();
    BatchBuilder::new(1).build(&recs).into()
}

/// An idempotent producer's batch: `n` records from producer `pid`, epoch 0, sequence `seq`.
pub fn idempotent_batch(pid: i64, seq: i32, n: usize) -> bytes::Bytes {
    let recs: Vec<Record<'_>> = (0..n)
        .map(|_| Record {
            value: Some(b"v"),
            ..Default::default()
        })
        .collect();
    producer_batch(1, pid, seq, &recs, false).into()
}

/// A transactional batch of one record per key from producer `pid`, epoch 0, at `seq`.
pub fn transactional_batch(pid: i64, seq: i32, keys: &[&str]) -> Vec<u8> {
    let recs: Vec<Record<'_>> = keys
        .iter()
        .map(|k| Record {
            key: Some(k.as_bytes()),
            value: Some(b"v"),
            ..Default::default()
        })
        .collect();
    producer_batch(1_000, pid, seq, &recs, true)
}

fn producer_batch(
    timestamp: i64,
    pid: i64,
    seq: i32,
    recs: &[Record<'_>],
    transactional: bool,
) -> Vec<u8> {
    let mut b = BatchBuilder::new(timestamp);
    b.producer_id = pid;
    b.producer_epoch = 0;
    b.base_sequence = seq;
    if transactional {
        b.attributes |= crate::log::batch::TRANSACTIONAL_BIT;
    }
    b.build(recs)
}
