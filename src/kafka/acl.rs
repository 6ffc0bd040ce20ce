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

/// `pub const NAME: i8 = code;` for each pair, and `NAMES`, the table of them by name.
macro_rules! codes {
    ($($name:ident = $code:expr),* $(,)?) => {
        $(pub const $name: i8 = $code;)*
        pub const NAMES: super::Names = &[$(($name, stringify!($name))),*];
    };
}

pub mod resource {
    codes!(
        ANY = 1,
        TOPIC = 2,
        GROUP = 3,
        CLUSTER = 4,
        TRANSACTIONAL_ID = 5,
    );
}

pub mod pattern {
    codes!(ANY = 1, MATCH = 2, LITERAL = 3, PREFIXED = 4,);
}

pub mod op {
    codes!(
        ANY = 1,
        ALL = 2,
        READ = 3,
        WRITE = 4,
        CREATE = 5,
        DELETE = 6,
        ALTER = 7,
        DESCRIBE = 8,
        CLUSTER_ACTION = 9,
        DESCRIBE_CONFIGS = 10,
        ALTER_CONFIGS = 11,
        IDEMPOTENT_WRITE = 12,
    );
}

pub mod permission {
    codes!(ANY = 1, DENY = 2, ALLOW = 3,);
}
