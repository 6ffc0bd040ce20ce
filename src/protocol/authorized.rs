//! Authorized operations (KIP-430): the bit field of `AclOperation` codes a client may
//! ask for in Metadata, DescribeCluster, DescribeGroups, ConsumerGroupDescribe and
//! DescribeTopicPartitions. Sluice has no authorizer, so it answers what Kafka answers
//! without one (`AuthHelper.authorizedOperations`): every operation the resource type
//! supports (`AclEntry.supportedOperations`).

/// Kafka's `AclOperation` codes.
const READ: i32 = 3;
const WRITE: i32 = 4;
const CREATE: i32 = 5;
const DELETE: i32 = 6;
const ALTER: i32 = 7;
const DESCRIBE: i32 = 8;
const CLUSTER_ACTION: i32 = 9;
const DESCRIBE_CONFIGS: i32 = 10;
const ALTER_CONFIGS: i32 = 11;
const IDEMPOTENT_WRITE: i32 = 12;

/// "Authorized operations not requested" (Kafka's INT32_MIN sentinel).
pub const NOT_REQUESTED: i32 = i32::MIN;

const fn bits(ops: &[i32]) -> i32 {
    let mut out = 0;
    let mut i = 0;
    while i < ops.len() {
        out |= 1 << ops[i];
        i += 1;
    }
    out
}

/// A topic: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
pub const TOPIC: i32 = bits(&[
    READ,
    WRITE,
    CREATE,
    DELETE,
    ALTER,
    DESCRIBE,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
]);
/// A group: READ, DESCRIBE, DELETE.
pub const GROUP: i32 = bits(&[READ, DESCRIBE, DELETE]);
/// The cluster: CREATE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
/// IDEMPOTENT_WRITE, ALTER, DESCRIBE.
pub const CLUSTER: i32 = bits(&[
    CREATE,
    CLUSTER_ACTION,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
    IDEMPOTENT_WRITE,
    ALTER,
    DESCRIBE,
]);

/// `ops` if the client asked for them, else the sentinel.
pub fn if_requested(requested: bool, ops: i32) -> i32 {
    if requested {
        ops
    } else {
        NOT_REQUESTED
    }
}

#[cfg(test)]
mod tests {
    use crate::protocol::authorized as ops;

    #[test]
    fn the_bit_fields_are_kafkas() {
        // The values a Kafka 4.1 broker without an authorizer answers.
        assert_eq!(ops::TOPIC, 3576);
        assert_eq!(ops::GROUP, 328);
        assert_eq!(ops::CLUSTER, 8096);
    }
}
