//! Kafka's ACL codes (`ResourceType`, `PatternType`, `AclOperation`,
//! `AclPermissionType`) and their names, for the broker's authorizer (`cluster::acl`)
//! and for the clients (`cli/acl.rs`) alike.

/// A code table: (code, Kafka's name).
pub type Names = &'static [(i8, &'static str)];

/// Kafka's name of `code` in `table`, "UNKNOWN" if it has none.
pub fn name(table: Names, code: i8) -> &'static str {
    table
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("UNKNOWN", |(_, n)| n)
}

/// The code of `name` in `table` (case and `-`/`_` ignored).
pub fn code(table: Names, name: &str) -> Option<i8> {
    let up = name.trim().to_uppercase().replace('-', "_");
    table.iter().find(|(_, n)| *n == up).map(|(c, _)| *c)
}

pub mod resource {
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
    pub const NAMES: super::Names = &[
        (ANY, "ANY"),
        (TOPIC, "TOPIC"),
        (GROUP, "GROUP"),
        (CLUSTER, "CLUSTER"),
        (TRANSACTIONAL_ID, "TRANSACTIONAL_ID"),
    ];
}

pub mod pattern {
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
    pub const NAMES: super::Names = &[
        (ANY, "ANY"),
        (MATCH, "MATCH"),
        (LITERAL, "LITERAL"),
        (PREFIXED, "PREFIXED"),
    ];
}

pub mod op {
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const DELETE: i8 = 6;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const CLUSTER_ACTION: i8 = 9;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const ALTER_CONFIGS: i8 = 11;
    pub const IDEMPOTENT_WRITE: i8 = 12;
    pub const NAMES: super::Names = &[
        (ANY, "ANY"),
        (ALL, "ALL"),
        (READ, "READ"),
        (WRITE, "WRITE"),
        (CREATE, "CREATE"),
        (DELETE, "DELETE"),
        (ALTER, "ALTER"),
        (DESCRIBE, "DESCRIBE"),
        (CLUSTER_ACTION, "CLUSTER_ACTION"),
        (DESCRIBE_CONFIGS, "DESCRIBE_CONFIGS"),
        (ALTER_CONFIGS, "ALTER_CONFIGS"),
        (IDEMPOTENT_WRITE, "IDEMPOTENT_WRITE"),
    ];
}

pub mod permission {
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
    pub const NAMES: super::Names = &[(ANY, "ANY"), (DENY, "DENY"), (ALLOW, "ALLOW")];
}
