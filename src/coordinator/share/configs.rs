//! Group configs (KIP-932's `share.*`, KIP-1191's `errors.deadletterqueue.*`, and
//! Sluice's own `sluice.share.*`), set with IncrementalAlterConfigs on resource type
//! GROUP, validated here, durable on the group-config journal
//! (`<data-dir>/share-groups/shard-<N>.log`, magic `SLSHGCF1`) of the group's owner.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rkyv::{Archive, Deserialize, Serialize};

use crate::partition::share::ShareConfig;
use crate::store::journal::{self, Journal, JournalRecord, JournalState};

const MAGIC: &[u8; 8] = b"SLSHGCF1";
const ROLL_BYTES: u64 = 1 << 20;

pub const AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";
pub const LOCK_DURATION_MS: &str = "share.record.lock.duration.ms";
pub const DELIVERY_COUNT_LIMIT: &str = "share.delivery.count.limit";
pub const MAX_RECORD_LOCKS: &str = "share.partition.max.record.locks";
pub const ISOLATION_LEVEL: &str = "share.isolation.level";
pub const SESSION_TIMEOUT_MS: &str = "share.session.timeout.ms";
pub const HEARTBEAT_INTERVAL_MS: &str = "share.heartbeat.interval.ms";
pub const DLQ_TOPIC: &str = "errors.deadletterqueue.topic.name";
pub const DLQ_COPY_RECORD: &str = "errors.deadletterqueue.copy.record.enable";
pub const BACKOFF_MS: &str = "sluice.share.redelivery.backoff.ms";
pub const BACKOFF_MAX_MS: &str = "sluice.share.redelivery.backoff.max.ms";
/// KIP-1191's broker config: DLQ topic names must start with it.
pub const DLQ_PREFIX: &str = "dlq.";

/// Every group config with its default (what DescribeConfigs lists).
pub const DEFAULTS: &[(&str, &str)] = &[
    (AUTO_OFFSET_RESET, "latest"),
    (LOCK_DURATION_MS, "30000"),
    (DELIVERY_COUNT_LIMIT, "5"),
    (MAX_RECORD_LOCKS, "2000"),
    (ISOLATION_LEVEL, "read_uncommitted"),
    (SESSION_TIMEOUT_MS, "45000"),
    (HEARTBEAT_INTERVAL_MS, "5000"),
    (DLQ_TOPIC, ""),
    (DLQ_COPY_RECORD, "false"),
    (BACKOFF_MS, "0"),
    (BACKOFF_MAX_MS, "60000"),
];

fn int_in(name: &str, v: &str, min: i64, max: i64) -> Result<(), String> {
    match v.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(()),
        _ => Err(format!(
            "{name} must be an integer from {min} to {max}, not '{v}'"
        )),
    }
}

fn one_of(name: &str, v: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&v) {
        Ok(())
    } else {
        Err(format!("{name} must be one of {allowed:?}, not '{v}'"))
    }
}

/// Check one group config; the message says why a value is refused (INVALID_CONFIG).
pub fn validate(name: &str, v: &str) -> Result<(), String> {
    match name {
        AUTO_OFFSET_RESET => one_of(name, v, &["latest", "earliest"]),
        // Kafka bounds these by broker configs (15 s to 60 s for locks, 2 to 10
        // deliveries); Sluice allows a wider range, named here.
        LOCK_DURATION_MS => int_in(name, v, 100, 3_600_000),
        DELIVERY_COUNT_LIMIT => int_in(name, v, 1, 100),
        MAX_RECORD_LOCKS => int_in(name, v, 1, 100_000),
        ISOLATION_LEVEL => one_of(name, v, &["read_uncommitted", "read_committed"]),
        SESSION_TIMEOUT_MS => int_in(name, v, 1_000, 3_600_000),
        HEARTBEAT_INTERVAL_MS => int_in(name, v, 100, 3_600_000),
        DLQ_TOPIC if v.is_empty() || v.starts_with(DLQ_PREFIX) => Ok(()),
        DLQ_TOPIC => Err(format!(
            "{name} must start with the broker's errors.deadletterqueue.topic.name.prefix '{DLQ_PREFIX}', not '{v}'"
        )),
        DLQ_COPY_RECORD => one_of(name, v, &["true", "false"]),
        BACKOFF_MS | BACKOFF_MAX_MS => int_in(name, v, 0, 86_400_000),
        _ => Err(format!("'{name}' is not a group config")),
    }
}

/// One group's overrides.
pub type Overrides = BTreeMap<String, String>;

/// The value of `name` for a group: its override or the default.
pub fn value<'a>(o: &'a Overrides, name: &str) -> &'a str {
    if let Some(v) = o.get(name) {
        return v;
    }
    DEFAULTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .unwrap_or("")
}

fn num(o: &Overrides, name: &str) -> i64 {
    value(o, name).parse().unwrap_or(0)
}

/// What the owners of the group's partitions need.
pub fn share_config(o: &Overrides) -> ShareConfig {
    ShareConfig {
        lock_ms: num(o, LOCK_DURATION_MS),
        delivery_limit: num(o, DELIVERY_COUNT_LIMIT).clamp(1, i16::MAX as i64) as i16,
        max_locks: num(o, MAX_RECORD_LOCKS).max(1) as usize,
        committed: value(o, ISOLATION_LEVEL) == "read_committed",
        reset_earliest: value(o, AUTO_OFFSET_RESET) == "earliest",
        backoff_ms: num(o, BACKOFF_MS),
        backoff_max_ms: num(o, BACKOFF_MAX_MS),
        dlq_topic: Some(value(o, DLQ_TOPIC).to_string()).filter(|t| !t.is_empty()),
        dlq_copy_record: value(o, DLQ_COPY_RECORD) == "true",
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ConfigRecord {
    Set {
        seq: u64,
        group: String,
        configs: Vec<(String, String)>,
    },
    Delete {
        seq: u64,
        group: String,
    },
}

impl JournalRecord for ConfigRecord {
    fn seq(&self) -> u64 {
        match self {
            ConfigRecord::Set { seq, .. } | ConfigRecord::Delete { seq, .. } => *seq,
        }
    }

    fn key(&self) -> &str {
        match self {
            ConfigRecord::Set { group, .. } | ConfigRecord::Delete { group, .. } => group,
        }
    }
}

#[derive(Debug, Default)]
pub struct AllConfigs(pub HashMap<String, (u64, Overrides)>);

impl JournalState for AllConfigs {
    type Record = ConfigRecord;

    fn apply(&mut self, rec: &ConfigRecord) {
        match rec {
            ConfigRecord::Set {
                seq,
                group,
                configs,
            } => {
                self.0
                    .insert(group.clone(), (*seq, configs.iter().cloned().collect()));
            }
            ConfigRecord::Delete { group, .. } => {
                self.0.remove(group);
            }
        }
    }

    fn live_records(&self) -> Vec<ConfigRecord> {
        self.0
            .iter()
            .map(|(g, (seq, o))| ConfigRecord::Set {
                seq: *seq,
                group: g.clone(),
                configs: o.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            })
            .collect()
    }
}

pub type Recovered = journal::Recovered<AllConfigs>;
pub type ConfigJournal = Journal<AllConfigs>;

fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("share-groups")
}

/// Read every shard's group-config journal, split by the groups' owners. Blocking.
pub fn recover(data_dir: &Path, shards: usize) -> Result<Vec<Recovered>, String> {
    journal::recover(&dir(data_dir), MAGIC, shards, |g| {
        crate::coordinator::group::owner_shard(g, shards).0
    })
    .map_err(|e| e.to_string())
}

pub async fn open(
    data_dir: &Path,
    shard: usize,
    recovered: Recovered,
) -> Result<ConfigJournal, String> {
    Journal::open(&dir(data_dir), shard, MAGIC, recovered, ROLL_BYTES)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_say_why() {
        assert!(validate(LOCK_DURATION_MS, "abc")
            .unwrap_err()
            .contains("integer"));
        assert!(validate(DLQ_TOPIC, "errors").unwrap_err().contains("dlq."));
        assert!(validate("share.nope", "1").is_err());
        assert!(validate(AUTO_OFFSET_RESET, "earliest").is_ok());
    }

    #[test]
    fn defaults_resolve() {
        let c = share_config(&Overrides::new());
        assert_eq!(c.lock_ms, 30_000);
        assert_eq!(c.delivery_limit, 5);
        assert_eq!(c.max_locks, 2000);
        assert!(!c.reset_earliest);
        assert!(c.dlq_topic.is_none());
    }
}
