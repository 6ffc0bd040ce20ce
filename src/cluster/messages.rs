//! What other shards ask of the controller (shard 0). Every registry change and every
//! producer-id block crosses cores through these, and only these.

use std::rc::Rc;
use std::sync::Arc;

use super::controller::{Change, Controller};
use super::{
    AclChange, AclChangeResult, Acls, ClientQuotas, Cluster, QuotaChange, ScramChange, ScramUsers,
    TopicMeta,
};
use crate::kafka::KafkaError;
use crate::runtime::Message;

/// Apply registry changes on the controller (CreateTopics, DeleteTopics,
/// CreatePartitions, AlterConfigs, auto-creation by Metadata).
pub struct ChangeRegistry {
    pub changes: Vec<Change>,
    pub validate_only: bool,
}

impl Message for ChangeRegistry {
    type Service = Controller;
    type Reply = Vec<Result<Arc<TopicMeta>, KafkaError>>;
    const NAME: &'static str = "cluster.change_registry";

    async fn handle(self, c: Rc<Controller>) -> Self::Reply {
        c.apply(self.changes, self.validate_only).await
    }
}

/// A fresh block of producer ids, durable before it is answered.
pub struct AllocateIdBlock;

impl Message for AllocateIdBlock {
    type Service = Controller;
    type Reply = Result<i64, KafkaError>;
    const NAME: &'static str = "cluster.allocate_id_block";

    async fn handle(self, c: Rc<Controller>) -> Self::Reply {
        c.allocate_id_block().await
    }
}

/// AlterClientQuotas: change the client quotas, save them and install them on every
/// shard.
pub struct AlterQuotas {
    pub changes: Vec<QuotaChange>,
    pub validate_only: bool,
}

impl Message for AlterQuotas {
    type Service = Controller;
    type Reply = Result<(), KafkaError>;
    const NAME: &'static str = "cluster.alter_quotas";

    async fn handle(self, c: Rc<Controller>) -> Self::Reply {
        c.alter_quotas(self.changes, self.validate_only).await
    }
}

/// From the controller: measure produce against these quotas from now on.
#[derive(Clone)]
pub struct InstallQuotas(pub Arc<ClientQuotas>);

impl Message for InstallQuotas {
    type Service = Cluster;
    type Reply = ();
    const NAME: &'static str = "cluster.install_quotas";

    async fn handle(self, c: Rc<Cluster>) -> Self::Reply {
        c.set_quotas(self.0);
    }
}

/// AlterUserScramCredentials: change credentials, save them and install them on every
/// shard; one result per change.
pub struct AlterScram {
    pub changes: Vec<ScramChange>,
}

impl Message for AlterScram {
    type Service = Controller;
    type Reply = Vec<Result<(), KafkaError>>;
    const NAME: &'static str = "cluster.alter_scram";

    async fn handle(self, c: Rc<Controller>) -> Self::Reply {
        c.alter_scram(self.changes).await
    }
}

/// From the controller: authenticate with these credentials from now on.
#[derive(Clone)]
pub struct InstallScram(pub Arc<ScramUsers>);

impl Message for InstallScram {
    type Service = Cluster;
    type Reply = ();
    const NAME: &'static str = "cluster.install_scram";

    async fn handle(self, c: Rc<Cluster>) -> Self::Reply {
        c.set_scram(self.0);
    }
}

/// CreateAcls and DeleteAcls: change the ACLs, save them and install them on every shard.
pub struct AlterAcls {
    pub change: AclChange,
}

impl Message for AlterAcls {
    type Service = Controller;
    type Reply = Result<AclChangeResult, KafkaError>;
    const NAME: &'static str = "cluster.alter_acls";

    async fn handle(self, c: Rc<Controller>) -> Self::Reply {
        c.alter_acls(self.change).await
    }
}

/// From the controller: authorize with these ACLs from now on.
#[derive(Clone)]
pub struct InstallAcls(pub Arc<Acls>);

impl Message for InstallAcls {
    type Service = Cluster;
    type Reply = ();
    const NAME: &'static str = "cluster.install_acls";

    async fn handle(self, c: Rc<Cluster>) -> Self::Reply {
        c.set_acls(self.0);
    }
}
