//! The controller: shard 0 owns the topic registry. Every change (create, delete,
//! add partitions, alter configs) runs there one at a time: build the next snapshot,
//! save it durably, then install it on every shard and wait until all have opened or
//! removed their logs. Other shards call in with `invoke_on(0, …)`.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use tracing::{info, warn};

use super::{Shard, ShardId};
use crate::meta::{
    new_topic_id, place_partition, registry_path, store, validate_topic_name, Registry, TopicMeta,
};
use crate::protocol::errors::{self, KafkaError};

pub const CONTROLLER_SHARD: ShardId = 0;

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker default.
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

/// One registry change.
#[derive(Debug, Clone)]
pub enum Change {
    Create(NewTopic),
    Delete {
        name: String,
    },
    AddPartitions {
        name: String,
        total: i32,
    },
    /// Replace (incremental = false) or patch (value None deletes the key) the overrides.
    AlterConfigs {
        name: String,
        set: BTreeMap<String, Option<String>>,
        incremental: bool,
    },
}

impl Shard {
    /// Apply `changes` (each independently) on the controller. Returns one result per change.
    /// `validate_only` checks without changing anything.
    pub async fn change_registry(
        self: &Rc<Self>,
        changes: Vec<Change>,
        validate_only: bool,
    ) -> Vec<Result<Arc<TopicMeta>, KafkaError>> {
        let r = self
            .invoke_on(CONTROLLER_SHARD, move |c| async move {
                c.controller_apply(changes, validate_only).await
            })
            .await;
        match r {
            Ok(v) => v,
            Err(_) => vec![Err(KafkaError::new(
                errors::UNKNOWN_SERVER_ERROR,
                "broker is shutting down",
            ))],
        }
    }

    async fn controller_apply(
        self: &Rc<Self>,
        changes: Vec<Change>,
        validate_only: bool,
    ) -> Vec<Result<Arc<TopicMeta>, KafkaError>> {
        let _permit = self.controller_lock.acquire_permit(1).await;
        let mut next = (*self.registry()).clone();
        let mut results = Vec::with_capacity(changes.len());
        for change in changes {
            match self.plan(&next, change) {
                Ok((reg, topic)) => {
                    results.push(Ok(topic));
                    if !validate_only {
                        next = reg;
                    }
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if !validate_only && results.iter().any(|r| r.is_ok()) {
            if let Err(e) = self.install(Arc::new(next)).await {
                warn!("registry change failed: {}", e.message);
                return results.into_iter().map(|_| Err(e.clone())).collect();
            }
        }
        results
    }

    /// Save `next` and install it on every shard.
    async fn install(self: &Rc<Self>, next: Arc<Registry>) -> Result<(), KafkaError> {
        let path = registry_path(&self.config.data_dir);
        store::save(&path, &next.to_record())
            .await
            .map_err(|e| KafkaError::new(errors::KAFKA_STORAGE_ERROR, e.to_string()))?;
        let mut waits = Vec::new();
        for s in 0..self.count {
            let next = next.clone();
            waits.push(self.invoke_on(s, move |shard| async move {
                shard.apply_registry(next).await.map_err(|e| e.to_string())
            }));
        }
        for r in futures_util::future::join_all(waits).await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(KafkaError::new(errors::KAFKA_STORAGE_ERROR, e)),
                Err(_) => {
                    return Err(KafkaError::new(
                        errors::UNKNOWN_SERVER_ERROR,
                        "broker is shutting down",
                    ))
                }
            }
        }
        Ok(())
    }

    /// The registry after `change`, or why the change is refused.
    fn plan(
        &self,
        reg: &Registry,
        change: Change,
    ) -> Result<(Registry, Arc<TopicMeta>), KafkaError> {
        match change {
            Change::Create(t) => {
                validate_topic_name(&t.name)
                    .map_err(|m| KafkaError::new(errors::INVALID_TOPIC_EXCEPTION, m))?;
                if reg.topic(&t.name).is_some() {
                    return Err(KafkaError::new(
                        errors::TOPIC_ALREADY_EXISTS,
                        format!("topic '{}' already exists", t.name),
                    ));
                }
                let partitions = if t.partitions == -1 {
                    self.config.default_partitions
                } else {
                    t.partitions
                };
                if !(1..=100_000).contains(&partitions) {
                    return Err(KafkaError::new(
                        errors::INVALID_PARTITIONS,
                        format!("number of partitions must be 1..=100000, got {partitions}"),
                    ));
                }
                let log_config = self
                    .defaults
                    .log_config(&t.configs)
                    .map_err(|e| KafkaError::new(errors::INVALID_CONFIG, e.0))?;
                info!(topic = %t.name, partitions, "creating topic");
                Ok(with_topic(
                    reg,
                    TopicMeta {
                        partition_shards: (0..partitions)
                            .map(|p| place_partition(&t.name, p, self.count))
                            .collect(),
                        name: t.name.as_str().into(),
                        id: new_topic_id(),
                        overrides: t.configs,
                        log_config,
                    },
                ))
            }
            Change::Delete { name } => {
                let t = reg
                    .topic(&name)
                    .ok_or_else(|| unknown_topic(&name))?
                    .clone();
                info!(topic = %name, "deleting topic");
                Ok((reg.without_topic(&name), t))
            }
            Change::AddPartitions { name, total } => {
                let t = reg.topic(&name).ok_or_else(|| unknown_topic(&name))?;
                let have = t.partition_count();
                if total <= have || total > 100_000 {
                    return Err(KafkaError::new(
                        errors::INVALID_PARTITIONS,
                        format!("topic '{name}' has {have} partitions; the new count must be larger (and ≤ 100000), got {total}"),
                    ));
                }
                let mut t = (**t).clone();
                t.partition_shards
                    .extend((have..total).map(|p| place_partition(&name, p, self.count)));
                info!(topic = %name, from = have, to = total, "adding partitions");
                Ok(with_topic(reg, t))
            }
            Change::AlterConfigs {
                name,
                set,
                incremental,
            } => {
                let t = reg.topic(&name).ok_or_else(|| unknown_topic(&name))?;
                let mut overrides = if incremental {
                    t.overrides.clone()
                } else {
                    BTreeMap::new()
                };
                for (k, v) in set {
                    match v {
                        Some(v) => overrides.insert(k, v),
                        None => overrides.remove(&k),
                    };
                }
                let log_config = self
                    .defaults
                    .log_config(&overrides)
                    .map_err(|e| KafkaError::new(errors::INVALID_CONFIG, e.0))?;
                let mut t = (**t).clone();
                t.overrides = overrides;
                t.log_config = log_config;
                Ok(with_topic(reg, t))
            }
        }
    }
}

fn unknown_topic(name: &str) -> KafkaError {
    KafkaError::new(
        errors::UNKNOWN_TOPIC_OR_PARTITION,
        format!("topic '{name}' does not exist"),
    )
}

fn with_topic(reg: &Registry, t: TopicMeta) -> (Registry, Arc<TopicMeta>) {
    let name = t.name.clone();
    let next = reg.with_topic(t);
    let t = next.topics[&name].clone();
    (next, t)
}
