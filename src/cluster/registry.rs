//! The topic registry: names, topic ids, partition → shard placement, per-topic config
//! overrides. Immutable snapshots (`Arc<Registry>`) are built by the controller on
//! shard 0, saved with rkyv (`store::atomic`), and handed to every shard; shards read
//! their own copy without locks.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rkyv::{Archive, Deserialize, Serialize};
use uuid::Uuid;

use super::topic_config::{Compression, ConfigError, TopicConfigDefaults};
use crate::kafka::ShardId;
use crate::log::LogConfig;

/// What is written to `<data-dir>/meta/topics.state`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RegistryRecord {
    pub topics: Vec<TopicRecord>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TopicRecord {
    pub name: String,
    pub id: [u8; 16],
    /// Owner shard of each partition, by partition index.
    pub partition_shards: Vec<u16>,
    /// Explicit config overrides (Kafka names), sorted by key.
    pub configs: Vec<(String, String)>,
}

/// A topic as every shard sees it.
#[derive(Debug, Clone)]
pub struct TopicMeta {
    pub name: Arc<str>,
    pub id: Uuid,
    pub partition_shards: Vec<ShardId>,
    pub overrides: BTreeMap<String, String>,
    pub log_config: LogConfig,
}

impl TopicMeta {
    pub fn partition_count(&self) -> i32 {
        self.partition_shards.len() as i32
    }

    /// The topic's `compression.type` and codec level (the overrides were validated
    /// when set, so a failure here cannot happen; it would mean "as produced").
    pub fn compression(&self) -> Compression {
        Compression::from_overrides(&self.overrides).unwrap_or_default()
    }

    pub fn owner(&self, partition: i32) -> Option<ShardId> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.partition_shards.get(p).copied())
    }
}

/// An immutable snapshot of all topics.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub topics: HashMap<Arc<str>, Arc<TopicMeta>>,
    pub by_id: HashMap<Uuid, Arc<TopicMeta>>,
}

impl Registry {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicMeta>> {
        self.by_id.get(id)
    }

    /// Topics sorted by name (stable Metadata output).
    pub fn sorted(&self) -> Vec<&Arc<TopicMeta>> {
        let mut v: Vec<_> = self.topics.values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn with_topic(&self, topic: TopicMeta) -> Registry {
        let mut r = self.clone();
        if let Some(old) = r.topics.get(&topic.name) {
            let old_id = old.id;
            r.by_id.remove(&old_id);
        }
        let t = Arc::new(topic);
        r.by_id.insert(t.id, t.clone());
        r.topics.insert(t.name.clone(), t);
        r
    }

    pub fn without_topic(&self, name: &str) -> Registry {
        let mut r = self.clone();
        if let Some(old) = r.topics.remove(name) {
            r.by_id.remove(&old.id);
        }
        r
    }

    pub fn to_record(&self) -> RegistryRecord {
        let topics = self
            .sorted()
            .into_iter()
            .map(|t| TopicRecord {
                name: t.name.to_string(),
                id: *t.id.as_bytes(),
                partition_shards: t.partition_shards.iter().map(|s| s.0 as u16).collect(),
                configs: t
                    .overrides
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            })
            .collect();
        RegistryRecord { topics }
    }

    /// Rebuild from the saved record. Partitions placed on shards that no longer exist
    /// (the broker restarted with fewer shards) move to `shard % shards`.
    pub fn from_record(
        rec: &RegistryRecord,
        defaults: &TopicConfigDefaults,
        shards: usize,
    ) -> Result<Registry, ConfigError> {
        let mut r = Registry::default();
        for t in &rec.topics {
            let overrides: BTreeMap<String, String> = t.configs.iter().cloned().collect();
            let log_config = defaults.log_config(&overrides)?;
            r = r.with_topic(TopicMeta {
                name: t.name.as_str().into(),
                id: Uuid::from_bytes(t.id),
                partition_shards: t
                    .partition_shards
                    .iter()
                    .map(|&s| ShardId(s as usize % shards))
                    .collect(),
                overrides,
                log_config,
            });
        }
        Ok(r)
    }
}

/// Where the registry lives inside the data directory.
pub fn registry_path(data_dir: &Path) -> PathBuf {
    data_dir.join("meta").join("topics.state")
}

/// Where a partition's log lives.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// Stable placement: consecutive partitions of a topic go to consecutive shards,
/// starting from a shard picked by the topic name's hash.
pub fn place_partition(topic: &str, partition: i32, shards: usize) -> ShardId {
    ShardId((crate::crc::crc32c(topic.as_bytes()) as usize + partition as usize) % shards.max(1))
}

/// Kafka's rule for topic names: 1..=249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 249 {
        return Err(format!(
            "topic name must be 1 to 249 characters, got {}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err("topic name cannot be '.' or '..'".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name '{name}' has an illegal character {c:?}: only [a-zA-Z0-9._-] are allowed"
        ));
    }
    Ok(())
}

/// A fresh random, non-zero topic id (KIP-516).
pub fn new_topic_id() -> Uuid {
    loop {
        let id = Uuid::new_v4();
        if !id.is_nil() {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::atomic as store;

    #[test]
    fn registry_round_trips_through_rkyv_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topics.state");
        let defaults = TopicConfigDefaults::default();
        let mut overrides = BTreeMap::new();
        overrides.insert("retention.ms".to_string(), "1000".to_string());
        let reg = Registry::default().with_topic(TopicMeta {
            name: "orders".into(),
            id: new_topic_id(),
            partition_shards: vec![ShardId(0), ShardId(1), ShardId(0)],
            log_config: defaults.log_config(&overrides).unwrap(),
            overrides,
        });
        let rec = reg.to_record();
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(1 << 20)
            .spawn({
                let path = path.clone();
                let rec = rec.clone();
                move || async move { store::save(&path, &rec).await.unwrap() }
            })
            .unwrap()
            .join()
            .unwrap();
        let loaded: RegistryRecord = store::load(&path).unwrap().unwrap();
        assert_eq!(loaded, rec);
        let back = Registry::from_record(&loaded, &defaults, 2).unwrap();
        let t = back.topic("orders").unwrap();
        assert_eq!(t.partition_shards, vec![ShardId(0), ShardId(1), ShardId(0)]);
        assert_eq!(t.log_config.retention_ms, Some(1000));
        assert!(back.topic_by_id(&t.id).is_some());
    }

    #[test]
    fn corrupt_state_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topics.state");
        std::fs::write(&path, b"SLUICEST garbage garbage garbage").unwrap();
        let err = store::load::<RegistryRecord>(&path).unwrap_err();
        assert!(err.to_string().contains("topics.state"), "{err}");
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-y").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    #[test]
    fn placement_spreads_consecutive_partitions() {
        let shards: Vec<ShardId> = (0..4).map(|p| place_partition("t", p, 2)).collect();
        assert_ne!(shards[0], shards[1]);
        assert_eq!(shards[0], shards[2]);
    }
}
