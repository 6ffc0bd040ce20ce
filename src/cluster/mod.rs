//! The cluster of one node: which topics exist, how their partitions are placed on
//! shards, their configs, and the controller that changes all that.
//!
//! Offers:
//! - [`Registry`] / [`TopicMeta`]: an immutable snapshot of every topic (`registry`);
//! - [`TopicConfigDefaults`] and the Kafka topic configs Sluice understands
//!   (`topic_config`);
//! - [`Cluster`]: one shard's view — the registry snapshot it routes with, its block of
//!   producer ids, and the way to ask the controller for a change;
//! - [`Controller`]: shard 0's service that changes the registry one change at a time
//!   and hands out producer-id blocks (`controller`, reached through `messages`);
//! - [`ClientQuotas`]: the client-id byte-rate quotas (`quotas`), changed by the
//!   controller like the registry and installed on every shard;
//! - [`ScramUsers`]: the SCRAM credentials SASL authenticates with (`scram`), the same way.

pub mod acl;
pub mod controller;
pub mod messages;
pub mod producer_ids;
pub mod quotas;
pub mod registry;
pub mod scram;
pub mod topic_config;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

pub use acl::{
    acls_path, AclBinding, AclChange, AclChangeResult, AclFilter, AclRecord, Acls, Authorizer,
    Principal,
};
pub use controller::{Change, Controller, Installer, NewTopic, CONTROLLER_SHARD};
pub use quotas::{
    legacy_quotas_path, quotas_path, ClientQuotas, LegacyQuotaRecord, QuotaChange, QuotaEntity,
    QuotaRecord,
};
pub use registry::{
    new_topic_id, partition_dir, place_partition, registry_path, validate_topic_name, Registry,
    RegistryRecord, TopicMeta,
};
pub use scram::{scram_path, ScramChange, ScramRecord, ScramUsers};
pub use topic_config::{Compression, ConfigError, TopicConfigDefaults};

use crate::kafka::{ErrorCode, KafkaError, ShardId};
use crate::runtime::{Mesh, MeshError};
use producer_ids::IdBlock;

/// One shard's view of the cluster. Lives on its shard only.
pub struct Cluster {
    mesh: Rc<Mesh>,
    registry: RefCell<Arc<Registry>>,
    quotas: RefCell<Arc<ClientQuotas>>,
    scram: RefCell<Arc<ScramUsers>>,
    acls: RefCell<Arc<Acls>>,
    /// Set when requests are checked against the ACLs.
    authorizer: RefCell<Option<Authorizer>>,
    defaults: TopicConfigDefaults,
    producer_ids: IdBlock,
}

fn shutting_down(_: MeshError) -> KafkaError {
    KafkaError::new(ErrorCode::UnknownServerError, "broker is shutting down")
}

impl Cluster {
    pub fn new(mesh: Rc<Mesh>, defaults: TopicConfigDefaults) -> Cluster {
        Cluster {
            mesh,
            registry: RefCell::new(Arc::new(Registry::default())),
            quotas: RefCell::new(Arc::new(ClientQuotas::default())),
            scram: RefCell::new(Arc::new(ScramUsers::default())),
            acls: RefCell::new(Arc::new(Acls::default())),
            authorizer: RefCell::new(None),
            defaults,
            producer_ids: IdBlock::default(),
        }
    }

    /// This shard.
    pub fn shard(&self) -> ShardId {
        self.mesh.shard()
    }

    /// How many shards there are.
    pub fn shards(&self) -> usize {
        self.mesh.shards()
    }

    /// The registry snapshot this shard routes with now.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.borrow().clone()
    }

    /// Route with `next` from now on (once this shard has opened its partitions).
    pub fn set_registry(&self, next: Arc<Registry>) {
        *self.registry.borrow_mut() = next;
    }

    /// The client quotas this shard measures produce against now.
    pub fn quotas(&self) -> Arc<ClientQuotas> {
        self.quotas.borrow().clone()
    }

    /// The producer byte rate quota of `client_id` (its own, else the default client
    /// id's), looked up in place: on the produce path, without cloning the snapshot.
    pub fn producer_byte_rate<'a>(
        &self,
        user: &str,
        client_id: &'a str,
    ) -> Option<quotas::Applied<'a>> {
        self.quotas.borrow().producer_byte_rate(user, client_id)
    }

    /// Whether any client quota is set.
    pub fn has_quotas(&self) -> bool {
        !self.quotas.borrow().is_empty()
    }

    pub fn set_quotas(&self, next: Arc<ClientQuotas>) {
        *self.quotas.borrow_mut() = next;
    }

    /// The SCRAM credentials this shard authenticates with now.
    pub fn scram(&self) -> Arc<ScramUsers> {
        self.scram.borrow().clone()
    }

    pub fn set_scram(&self, next: Arc<ScramUsers>) {
        *self.scram.borrow_mut() = next;
    }

    /// The ACLs this shard authorizes with now.
    pub fn acls(&self) -> Arc<Acls> {
        self.acls.borrow().clone()
    }

    pub fn set_acls(&self, next: Arc<Acls>) {
        *self.acls.borrow_mut() = next;
    }

    /// Check requests with `a` from now on (None: every request is allowed).
    pub fn set_authorizer(&self, a: Option<Authorizer>) {
        *self.authorizer.borrow_mut() = a;
    }

    pub fn has_authorizer(&self) -> bool {
        self.authorizer.borrow().is_some()
    }

    /// Whether `who` may do `operation` on the resource; always with no authorizer.
    pub fn authorize(
        &self,
        who: &Principal<'_>,
        resource_type: i8,
        name: &str,
        operation: i8,
    ) -> bool {
        match &*self.authorizer.borrow() {
            None => true,
            Some(a) => a.authorize(&self.acls.borrow(), who, resource_type, name, operation),
        }
    }

    /// Kafka's `authorizeByResourceType`: whether `who` may do `operation` on some
    /// resource of the type (a super user always; with no ACL at all, the default).
    pub fn authorize_any(&self, who: &Principal<'_>, resource_type: i8, operation: i8) -> bool {
        match &*self.authorizer.borrow() {
            None => true,
            Some(a) if a.super_users.iter().any(|u| u == who.name) => true,
            Some(a) => {
                let acls = self.acls.borrow();
                acls.allows_some(who, resource_type, operation)
                    || (a.allow_everyone_if_no_acl_found && acls.is_empty())
            }
        }
    }

    /// Change the ACLs on the controller, durably and on every shard before it answers.
    pub async fn alter_acls(&self, change: AclChange) -> Result<AclChangeResult, KafkaError> {
        self.mesh
            .call(CONTROLLER_SHARD, messages::AlterAcls { change })
            .await
            .map_err(shutting_down)?
    }

    /// Change SCRAM credentials on the controller, durably and on every shard before it
    /// answers; one result per change.
    pub async fn alter_scram(&self, changes: Vec<ScramChange>) -> Vec<Result<(), KafkaError>> {
        let n = changes.len();
        match self
            .mesh
            .call(CONTROLLER_SHARD, messages::AlterScram { changes })
            .await
        {
            Ok(r) => r,
            Err(e) => vec![Err(shutting_down(e)); n],
        }
    }

    /// Change the client quotas on the controller (all or none), durably and on every
    /// shard before it answers.
    pub async fn alter_quotas(
        &self,
        changes: Vec<QuotaChange>,
        validate_only: bool,
    ) -> Result<(), KafkaError> {
        let msg = messages::AlterQuotas {
            changes,
            validate_only,
        };
        self.mesh
            .call(CONTROLLER_SHARD, msg)
            .await
            .map_err(shutting_down)?
    }

    pub fn defaults(&self) -> &TopicConfigDefaults {
        &self.defaults
    }

    /// Apply `changes` on the controller; one result per change.
    pub async fn change(
        &self,
        changes: Vec<Change>,
        validate_only: bool,
    ) -> Vec<Result<Arc<TopicMeta>, KafkaError>> {
        let n = changes.len();
        let msg = messages::ChangeRegistry {
            changes,
            validate_only,
        };
        match self.mesh.call(CONTROLLER_SHARD, msg).await {
            Ok(v) => v,
            Err(e) => (0..n.max(1)).map(|_| Err(shutting_down(e))).collect(),
        }
    }

    /// Apply the planned changes that are `Ok` on the controller (none: no call) and
    /// answer in the order planned, a planning error kept in its place.
    pub async fn change_planned(
        &self,
        planned: Vec<Result<Change, KafkaError>>,
        validate_only: bool,
    ) -> Vec<Result<Arc<TopicMeta>, KafkaError>> {
        let changes: Vec<Change> = planned
            .iter()
            .filter_map(|c| c.as_ref().ok().cloned())
            .collect();
        let mut outcomes = if changes.is_empty() {
            Vec::new()
        } else {
            self.change(changes, validate_only).await
        }
        .into_iter();
        let missing = || KafkaError::new(ErrorCode::UnknownServerError, "missing result");
        planned
            .into_iter()
            .map(|p| p.and_then(|_| outcomes.next().unwrap_or_else(|| Err(missing()))))
            .collect()
    }

    /// A producer id never handed out before, durably.
    pub async fn new_producer_id(&self) -> Result<i64, KafkaError> {
        if let Some(id) = self.producer_ids.take() {
            return Ok(id);
        }
        let start = self
            .mesh
            .call(CONTROLLER_SHARD, messages::AllocateIdBlock)
            .await
            .map_err(shutting_down)??;
        self.producer_ids.refill(start);
        self.producer_ids
            .take()
            .ok_or_else(|| KafkaError::new(ErrorCode::UnknownServerError, "empty id block"))
    }
}
