//! The controller: shard 0 owns the topic registry and the producer-id blocks. Every
//! change (create, delete, add partitions, alter configs) runs there one at a time:
//! build the next snapshot, save it durably, then install it on every shard (through
//! the installer `broker.rs` gives it) and wait until all have opened or removed their
//! partitions. Other shards reach it with the messages of `cluster::messages`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use tracing::{info, warn};

use super::messages::{InstallAcls, InstallQuotas, InstallScram};
use super::producer_ids::{IdBlockRecord, ID_BLOCK};
use super::registry::{new_topic_id, place_partition, registry_path, validate_topic_name};
use super::{
    acls_path, quotas_path, scram_path, AclChange, AclChangeResult, Cluster, QuotaChange, Registry,
    ScramChange, TopicMeta,
};
use crate::kafka::{ErrorCode, KafkaError, ShardId};
use crate::runtime::FifoGate;
use crate::store::atomic as store;

/// The shard the controller runs on.
pub const CONTROLLER_SHARD: ShardId = ShardId(0);
/// The most partitions a topic may have.
const MAX_PARTITIONS: i32 = 100_000;

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

/// Installs a saved registry on every shard and resolves once all have it (given by
/// `broker.rs`, which knows what a shard must do with a new registry).
pub type Installer = Rc<dyn Fn(Arc<Registry>) -> LocalBoxFuture<'static, Result<(), KafkaError>>>;

/// The controller service (shard 0 only).
pub struct Controller {
    /// Shard 0's view: the registry as last installed.
    cluster: Rc<Cluster>,
    data_dir: PathBuf,
    default_partitions: i32,
    /// One change, or one id-block allocation, at a time.
    gate: FifoGate,
    install: Installer,
    /// The first producer id not handed out yet (None until loaded).
    next_producer_id: Cell<Option<i64>>,
}

impl Controller {
    pub fn new(
        cluster: Rc<Cluster>,
        data_dir: PathBuf,
        default_partitions: i32,
        install: Installer,
    ) -> Controller {
        Controller {
            cluster,
            data_dir,
            default_partitions,
            gate: FifoGate::default(),
            install,
            next_producer_id: Cell::new(None),
        }
    }

    /// Apply `changes` (each independently). Returns one result per change.
    /// `validate_only` checks without changing anything.
    pub async fn apply(
        &self,
        changes: Vec<Change>,
        validate_only: bool,
    ) -> Vec<Result<Arc<TopicMeta>, KafkaError>> {
        let _turn = self.gate.lock().await;
        let mut next = (*self.cluster.registry()).clone();
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
            if let Err(e) = self.save_and_install(Arc::new(next)).await {
                warn!("registry change failed: {}", e.message);
                return results.into_iter().map(|_| Err(e.clone())).collect();
            }
        }
        results
    }

    /// Save `next` and install it on every shard.
    async fn save_and_install(&self, next: Arc<Registry>) -> Result<(), KafkaError> {
        let path = registry_path(&self.data_dir);
        store::save(&path, &next.to_record())
            .await
            .map_err(|e| KafkaError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        (self.install)(next).await
    }

    /// The start of a fresh block of producer ids, saved before it is returned, so ids
    /// are never reused.
    pub async fn allocate_id_block(&self) -> Result<i64, KafkaError> {
        let _turn = self.gate.lock().await;
        let storage =
            |e: store::StateError| KafkaError::new(ErrorCode::KafkaStorageError, e.to_string());
        let p = self.data_dir.join("meta").join("producer-ids.state");
        let start = match self.next_producer_id.get() {
            Some(n) => n,
            None => store::load::<IdBlockRecord>(&p)
                .map_err(storage)?
                .map(|r| r.next)
                .unwrap_or(0),
        };
        let next = start + ID_BLOCK;
        store::save(&p, &IdBlockRecord { next })
            .await
            .map_err(storage)?;
        self.next_producer_id.set(Some(next));
        Ok(start)
    }

    /// Apply client-quota changes (all or none), save them and install them on every
    /// shard (`messages::InstallQuotas`) before answering.
    pub async fn alter_quotas(
        &self,
        changes: Vec<QuotaChange>,
        validate_only: bool,
    ) -> Result<(), KafkaError> {
        let _turn = self.gate.lock().await;
        let now = self.cluster.quotas();
        let mut next = (*now).clone();
        changes.iter().for_each(|c| next.apply(c));
        if validate_only || next == *now {
            return Ok(());
        }
        store::save(&quotas_path(&self.data_dir), &next.to_record())
            .await
            .map_err(|e| KafkaError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        info!(?changes, "client quotas changed");
        self.install_everywhere(InstallQuotas(Arc::new(next))).await
    }

    /// Send a snapshot to every shard's `Cluster` and wait until all have it.
    async fn install_everywhere<M>(&self, msg: M) -> Result<(), KafkaError>
    where
        M: crate::runtime::Message<Service = Cluster, Reply = ()> + Clone,
    {
        for r in self.cluster.mesh.call_all(msg).await {
            if r.is_err() {
                return Err(KafkaError::new(
                    ErrorCode::UnknownServerError,
                    "broker is shutting down",
                ));
            }
        }
        Ok(())
    }

    /// Apply SCRAM credential changes, save them and install them on every shard
    /// (`messages::InstallScram`) before answering. Deleting a credential that is not
    /// there is RESOURCE_NOT_FOUND for that change alone.
    pub async fn alter_scram(&self, changes: Vec<ScramChange>) -> Vec<Result<(), KafkaError>> {
        let _turn = self.gate.lock().await;
        let mut next = (*self.cluster.scram()).clone();
        let mut results: Vec<Result<(), KafkaError>> = changes
            .iter()
            .map(|c| {
                if next.apply(c) {
                    Ok(())
                } else {
                    Err(KafkaError::new(
                        ErrorCode::ResourceNotFound,
                        "Attempt to delete a user credential that does not exist",
                    ))
                }
            })
            .collect();
        if results.iter().all(|r| r.is_err()) {
            return results;
        }
        let failed = |e: String| {
            let e = KafkaError::new(ErrorCode::UnknownServerError, e);
            changes.iter().map(|_| Err(e.clone())).collect::<Vec<_>>()
        };
        if let Err(e) = store::save(&scram_path(&self.data_dir), &next.to_record()).await {
            return failed(e.to_string());
        }
        let users: Vec<_> = changes
            .iter()
            .map(|c| match c {
                ScramChange::Upsert {
                    user, mechanism, ..
                } => ("set", user, mechanism.name()),
                ScramChange::Delete { user, mechanism } => ("deleted", user, mechanism.name()),
            })
            .collect();
        info!(?users, "SCRAM credentials changed");
        if let Err(e) = self.install_everywhere(InstallScram(Arc::new(next))).await {
            results = failed(e.message);
        }
        results
    }

    /// Apply an ACL change, save the ACLs and install them on every shard
    /// (`messages::InstallAcls`) before answering: a binding takes effect at once
    /// everywhere.
    pub async fn alter_acls(&self, change: AclChange) -> Result<AclChangeResult, KafkaError> {
        let _turn = self.gate.lock().await;
        let now = self.cluster.acls();
        let mut next = (*now).clone();
        let removed = next.apply(&change);
        if next == *now {
            return Ok(removed);
        }
        store::save(&acls_path(&self.data_dir), &next.to_record())
            .await
            .map_err(|e| KafkaError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        info!(?change, acls = next.len(), "ACLs changed");
        self.install_everywhere(InstallAcls(Arc::new(next))).await?;
        Ok(removed)
    }

    /// The registry after `change`, or why the change is refused.
    fn plan(
        &self,
        reg: &Registry,
        change: Change,
    ) -> Result<(Registry, Arc<TopicMeta>), KafkaError> {
        match change {
            Change::Create(t) => self.plan_create(reg, t),
            Change::Delete { name } => {
                let t = reg
                    .topic(&name)
                    .ok_or_else(|| unknown_topic(&name))?
                    .clone();
                info!(topic = %name, "deleting topic");
                Ok((reg.without_topic(&name), t))
            }
            Change::AddPartitions { name, total } => self.plan_add_partitions(reg, &name, total),
            Change::AlterConfigs {
                name,
                set,
                incremental,
            } => self.plan_alter_configs(reg, &name, set, incremental),
        }
    }

    fn plan_create(
        &self,
        reg: &Registry,
        t: NewTopic,
    ) -> Result<(Registry, Arc<TopicMeta>), KafkaError> {
        validate_topic_name(&t.name)
            .map_err(|m| KafkaError::new(ErrorCode::InvalidTopicException, m))?;
        if reg.topic(&t.name).is_some() {
            return Err(KafkaError::new(
                ErrorCode::TopicAlreadyExists,
                format!("topic '{}' already exists", t.name),
            ));
        }
        let partitions = if t.partitions == -1 {
            self.default_partitions
        } else {
            t.partitions
        };
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(KafkaError::new(
                ErrorCode::InvalidPartitions,
                format!("number of partitions must be 1..={MAX_PARTITIONS}, got {partitions}"),
            ));
        }
        let log_config = self.log_config(&t.configs)?;
        info!(topic = %t.name, partitions, "creating topic");
        let shards = self.cluster.shards();
        Ok(with_topic(
            reg,
            TopicMeta {
                partition_shards: (0..partitions)
                    .map(|p| place_partition(&t.name, p, shards))
                    .collect(),
                name: t.name.as_str().into(),
                id: new_topic_id(),
                overrides: t.configs,
                log_config,
            },
        ))
    }

    fn plan_add_partitions(
        &self,
        reg: &Registry,
        name: &str,
        total: i32,
    ) -> Result<(Registry, Arc<TopicMeta>), KafkaError> {
        let t = reg.topic(name).ok_or_else(|| unknown_topic(name))?;
        let have = t.partition_count();
        if total <= have || total > MAX_PARTITIONS {
            return Err(KafkaError::new(
                ErrorCode::InvalidPartitions,
                format!("topic '{name}' has {have} partitions; the new count must be larger (and ≤ {MAX_PARTITIONS}), got {total}"),
            ));
        }
        let mut t = (**t).clone();
        let shards = self.cluster.shards();
        t.partition_shards
            .extend((have..total).map(|p| place_partition(name, p, shards)));
        info!(topic = %name, from = have, to = total, "adding partitions");
        Ok(with_topic(reg, t))
    }

    /// Replace (`incremental` false) or patch (a `None` value deletes the key) the
    /// topic's overrides.
    fn plan_alter_configs(
        &self,
        reg: &Registry,
        name: &str,
        set: BTreeMap<String, Option<String>>,
        incremental: bool,
    ) -> Result<(Registry, Arc<TopicMeta>), KafkaError> {
        let t = reg.topic(name).ok_or_else(|| unknown_topic(name))?;
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
        let log_config = self.log_config(&overrides)?;
        let mut t = (**t).clone();
        t.overrides = overrides;
        t.log_config = log_config;
        Ok(with_topic(reg, t))
    }

    fn log_config(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<crate::log::LogConfig, KafkaError> {
        self.cluster
            .defaults()
            .log_config(overrides)
            .map_err(|e| KafkaError::new(ErrorCode::InvalidConfig, e.0))
    }
}

fn unknown_topic(name: &str) -> KafkaError {
    KafkaError::new(
        ErrorCode::UnknownTopicOrPartition,
        format!("topic '{name}' does not exist"),
    )
}

fn with_topic(reg: &Registry, t: TopicMeta) -> (Registry, Arc<TopicMeta>) {
    let name = t.name.clone();
    let next = reg.with_topic(t);
    let t = next.topics[&name].clone();
    (next, t)
}
