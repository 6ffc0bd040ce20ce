//! Authorization of one request (Kafka's `AuthHelper`): whether the connection's
//! principal may do an operation on a topic, group, transactional id or the cluster,
//! by the ACLs this shard holds (`cluster::acl`), and the protocol's error for each
//! refusal. Handlers ask it per resource, so a Produce to two topics can write one and
//! answer TOPIC_AUTHORIZATION_FAILED for the other, as Kafka does.
//!
//! It also fills the authorized-operations bit fields (KIP-430) a client may ask for in
//! Metadata, DescribeCluster, DescribeGroups, ConsumerGroupDescribe and
//! DescribeTopicPartitions: the operations of the resource type the principal may do.
//! With no authorizer every operation is allowed, so they are what Kafka answers without
//! one (`AclEntry.supportedOperations`).

use crate::cluster::acl::{op, resource, supported_operations, CLUSTER_NAME};
use crate::cluster::{Cluster, Principal};
use crate::kafka::{ErrorCode, KafkaError};

pub use crate::cluster::acl::op::*;

/// "Authorized operations not requested" (Kafka's INT32_MIN sentinel).
pub const NOT_REQUESTED: i32 = i32::MIN;

/// One request's principal and address against this shard's ACLs.
pub struct Authz<'a> {
    cluster: &'a Cluster,
    principal: &'a str,
    /// The client's address as ACL hosts name it.
    host: &'a str,
}

impl<'a> Authz<'a> {
    pub fn new(cluster: &'a Cluster, principal: &'a str, host: &'a str) -> Self {
        Authz {
            cluster,
            principal,
            host,
        }
    }

    fn who(&self) -> Principal<'_> {
        Principal {
            name: self.principal,
            host: self.host,
        }
    }

    pub fn principal(&self) -> &str {
        self.principal
    }

    pub fn allows(&self, resource_type: i8, name: &str, operation: i8) -> bool {
        self.cluster
            .authorize(&self.who(), resource_type, name, operation)
    }

    /// Whether some resource of the type allows `operation` (Kafka's
    /// `authorizeByResourceType`).
    pub fn allows_some(&self, resource_type: i8, operation: i8) -> bool {
        self.cluster
            .authorize_any(&self.who(), resource_type, operation)
    }

    pub fn topic(&self, name: &str, operation: i8) -> Result<(), KafkaError> {
        self.check(
            resource::TOPIC,
            name,
            operation,
            ErrorCode::TopicAuthorizationFailed,
        )
    }

    pub fn group(&self, id: &str, operation: i8) -> Result<(), KafkaError> {
        self.check(
            resource::GROUP,
            id,
            operation,
            ErrorCode::GroupAuthorizationFailed,
        )
    }

    pub fn transactional_id(&self, id: &str, operation: i8) -> Result<(), KafkaError> {
        self.check(
            resource::TRANSACTIONAL_ID,
            id,
            operation,
            ErrorCode::TransactionalIdAuthorizationFailed,
        )
    }

    pub fn cluster(&self, operation: i8) -> Result<(), KafkaError> {
        self.check(
            resource::CLUSTER,
            CLUSTER_NAME,
            operation,
            ErrorCode::ClusterAuthorizationFailed,
        )
    }

    fn check(&self, rt: i8, name: &str, operation: i8, code: ErrorCode) -> Result<(), KafkaError> {
        if self.allows(rt, name, operation) {
            return Ok(());
        }
        Err(KafkaError::new(
            code,
            format!(
                "{} may not {} {name}",
                self.principal,
                crate::kafka::acl::name(op::NAMES, operation)
            ),
        ))
    }

    /// The bit field of the operations the principal may do on the resource, or the
    /// sentinel when the client did not ask.
    pub fn operations(&self, requested: bool, resource_type: i8, name: &str) -> i32 {
        if !requested {
            return NOT_REQUESTED;
        }
        bits(resource_type, |o| self.allows(resource_type, name, o))
    }

    pub fn topic_operations(&self, requested: bool, name: &str) -> i32 {
        self.operations(requested, resource::TOPIC, name)
    }

    pub fn group_operations(&self, requested: bool, id: &str) -> i32 {
        self.operations(requested, resource::GROUP, id)
    }

    pub fn cluster_operations(&self, requested: bool) -> i32 {
        self.operations(requested, resource::CLUSTER, CLUSTER_NAME)
    }
}

/// The bit field of the operations of `resource_type` that `allowed` lets through.
fn bits(resource_type: i8, allowed: impl Fn(i8) -> bool) -> i32 {
    supported_operations(resource_type)
        .iter()
        .filter(|&&o| allowed(o))
        .fold(0, |bits, &o| bits | (1 << o))
}

#[cfg(test)]
mod tests {
    use crate::cluster::acl::{op::READ, resource};
    use crate::protocol::authorized::bits;

    #[test]
    fn with_every_operation_allowed_the_bit_fields_are_kafkas() {
        // The values a Kafka 4.1 broker without an authorizer answers.
        assert_eq!(bits(resource::TOPIC, |_| true), 3576);
        assert_eq!(bits(resource::GROUP, |_| true), 328);
        assert_eq!(bits(resource::CLUSTER, |_| true), 8096);
        assert_eq!(bits(resource::TOPIC, |o| o == READ), 1 << READ);
    }
}
