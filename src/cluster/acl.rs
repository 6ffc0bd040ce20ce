//! Access control lists (Kafka's `StandardAuthorizer` rules): bindings of a resource
//! pattern (topic, group, transactional id or the cluster; a literal name, `*`, or a
//! prefix) to a principal, a host, an operation and ALLOW or DENY. Like the SCRAM
//! credentials, an immutable snapshot changed only by the controller, saved with
//! `store::atomic` (`<data-dir>/meta/acls.state`) and installed on every shard, where
//! each request is checked against it (`protocol::authorize`).
//!
//! A principal is authorized for an operation on a resource when it is a super user, or
//! no DENY binding matches and an ALLOW binding matches the operation or one that
//! implies it (READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
//! DESCRIBE_CONFIGS; ALL implies everything). A resource no binding names at all is
//! open only with `allow.everyone.if.no.acl.found`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rkyv::{Archive, Deserialize, Serialize};

pub use crate::kafka::acl::{op, pattern, permission, resource};

/// The one name the cluster resource has.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The literal name and the principal that match every name and every user.
pub const WILDCARD: &str = "*";
pub const ANY_USER: &str = "User:*";

/// The operations each resource type has (Kafka's `AclEntry.supportedOperations`).
pub fn supported_operations(resource_type: i8) -> &'static [i8] {
    use op::*;
    match resource_type {
        resource::TOPIC => &[
            READ,
            WRITE,
            CREATE,
            DELETE,
            ALTER,
            DESCRIBE,
            DESCRIBE_CONFIGS,
            ALTER_CONFIGS,
        ],
        resource::GROUP => &[READ, DESCRIBE, DELETE],
        resource::CLUSTER => &[
            CREATE,
            CLUSTER_ACTION,
            DESCRIBE_CONFIGS,
            ALTER_CONFIGS,
            IDEMPOTENT_WRITE,
            ALTER,
            DESCRIBE,
        ],
        resource::TRANSACTIONAL_ID => &[DESCRIBE, WRITE],
        _ => &[],
    }
}

/// One ACL binding.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclBinding {
    pub resource_type: i8,
    pub name: String,
    pub pattern: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

impl AclBinding {
    /// Why Kafka would refuse to create this binding, if it would.
    pub fn invalid(&self) -> Option<String> {
        if !matches!(
            self.resource_type,
            resource::TOPIC | resource::GROUP | resource::CLUSTER | resource::TRANSACTIONAL_ID
        ) {
            return Some(format!(
                "resource type {} cannot hold ACLs",
                self.resource_type
            ));
        }
        if !matches!(self.pattern, pattern::LITERAL | pattern::PREFIXED) {
            return Some("the pattern type must be LITERAL or PREFIXED".into());
        }
        if self.resource_type == resource::CLUSTER
            && (self.name != CLUSTER_NAME || self.pattern != pattern::LITERAL)
        {
            return Some(format!(
                "the cluster resource is the literal {CLUSTER_NAME}"
            ));
        }
        if self.name.is_empty() {
            return Some("the resource name must not be empty".into());
        }
        if self.operation != op::ALL
            && !supported_operations(self.resource_type).contains(&self.operation)
        {
            return Some(format!(
                "operation {} does not apply to resource type {}",
                self.operation, self.resource_type
            ));
        }
        if !matches!(self.permission, permission::ALLOW | permission::DENY) {
            return Some("the permission type must be ALLOW or DENY".into());
        }
        match self.principal.split_once(':') {
            Some(("User", name)) if !name.is_empty() => None,
            _ => Some(format!("principal {:?} is not User:<name>", self.principal)),
        }
    }

    /// Whether this binding's pattern covers the resource `name`.
    fn covers(&self, name: &str) -> bool {
        match self.pattern {
            pattern::LITERAL => self.name == name || self.name == WILDCARD,
            pattern::PREFIXED => name.starts_with(&self.name),
            _ => false,
        }
    }

    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == ANY_USER)
            && (self.host == host || self.host == WILDCARD)
    }
}

/// A filter of DescribeAcls and DeleteAcls (`None`: any).
#[derive(Debug, Clone, Default)]
pub struct AclFilter {
    pub resource_type: i8,
    pub name: Option<String>,
    pub pattern: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclFilter {
    pub fn matches(&self, b: &AclBinding) -> bool {
        let typed = self.resource_type == resource::ANY || self.resource_type == b.resource_type;
        let named = match (&self.name, self.pattern) {
            (None, p) => p == pattern::ANY || p == pattern::MATCH || p == b.pattern,
            (Some(n), pattern::MATCH) => b.covers(n),
            (Some(n), pattern::ANY) => &b.name == n,
            (Some(n), p) => &b.name == n && p == b.pattern,
        };
        let who = self.principal.as_ref().is_none_or(|p| p == &b.principal);
        let host = self.host.as_ref().is_none_or(|h| h == &b.host);
        let op = self.operation == op::ANY || self.operation == b.operation;
        let perm = self.permission == permission::ANY || self.permission == b.permission;
        typed && named && who && host && op && perm
    }
}

/// One change of CreateAcls or DeleteAcls (bindings checked by `AclBinding::invalid`).
#[derive(Debug, Clone)]
pub enum AclChange {
    Create(Vec<AclBinding>),
    Delete(Vec<AclFilter>),
}

/// Per DeleteAcls filter, the bindings it removed (empty for CreateAcls).
pub type AclChangeResult = Vec<Vec<AclBinding>>;

/// What `<data-dir>/meta/acls.state` holds.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct AclRecord {
    pub bindings: Vec<AclBinding>,
}

pub fn acls_path(data_dir: &Path) -> PathBuf {
    data_dir.join("meta").join("acls.state")
}

/// Every shard's view of the ACLs, indexed for the request path: a check looks up the
/// resource's literal name, `*`, and each prefix of the name, never scanning every
/// binding (1,000 ACLs cost a request what 10 do).
#[derive(Debug, Clone, Default)]
pub struct Acls {
    bindings: BTreeSet<AclBinding>,
    /// (resource type, pattern) → name → its bindings.
    index: HashMap<(i8, i8), HashMap<String, Vec<AclBinding>>>,
}

impl PartialEq for Acls {
    fn eq(&self, other: &Acls) -> bool {
        self.bindings == other.bindings
    }
}

impl Acls {
    pub fn from_record(r: &AclRecord) -> Acls {
        Acls::of(r.bindings.iter().cloned().collect())
    }

    fn of(bindings: BTreeSet<AclBinding>) -> Acls {
        let mut index: HashMap<(i8, i8), HashMap<String, Vec<AclBinding>>> = HashMap::new();
        for b in &bindings {
            index
                .entry((b.resource_type, b.pattern))
                .or_default()
                .entry(b.name.clone())
                .or_default()
                .push(b.clone());
        }
        Acls { bindings, index }
    }

    fn named(&self, resource_type: i8, pattern: i8, name: &str) -> &[AclBinding] {
        self.index
            .get(&(resource_type, pattern))
            .and_then(|m| m.get(name))
            .map_or(&[], Vec::as_slice)
    }

    pub fn to_record(&self) -> AclRecord {
        AclRecord {
            bindings: self.bindings.iter().cloned().collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// Make `change`; what each delete filter removed.
    pub fn apply(&mut self, change: &AclChange) -> AclChangeResult {
        let mut bindings = std::mem::take(&mut self.bindings);
        let removed = match change {
            AclChange::Create(new) => {
                bindings.extend(new.iter().cloned());
                Vec::new()
            }
            AclChange::Delete(filters) => filters
                .iter()
                .map(|f| {
                    let gone: Vec<AclBinding> =
                        bindings.iter().filter(|b| f.matches(b)).cloned().collect();
                    gone.iter().for_each(|b| {
                        bindings.remove(b);
                    });
                    gone
                })
                .collect(),
        };
        *self = Acls::of(bindings);
        removed
    }

    #[cfg(test)]
    fn add(&mut self, b: AclBinding) {
        self.apply(&AclChange::Create(vec![b]));
    }

    pub fn matching<'a>(&'a self, f: &'a AclFilter) -> impl Iterator<Item = &'a AclBinding> {
        self.bindings.iter().filter(move |b| f.matches(b))
    }

    /// The bindings of resources of `resource_type` whose pattern covers `name`: its
    /// literal name, the literal `*`, and every prefix of it.
    fn covering<'a>(
        &'a self,
        resource_type: i8,
        name: &'a str,
    ) -> impl Iterator<Item = &'a AclBinding> {
        let literal = self.named(resource_type, pattern::LITERAL, name);
        let wildcard = match name == WILDCARD {
            true => &[][..],
            false => self.named(resource_type, pattern::LITERAL, WILDCARD),
        };
        let prefixes = self.index.get(&(resource_type, pattern::PREFIXED));
        let prefixed = prefixes.into_iter().flat_map(move |m| {
            (1..=name.len())
                .filter(move |&i| name.is_char_boundary(i))
                .filter_map(move |i| m.get(&name[..i]))
                .flatten()
        });
        literal.iter().chain(wildcard).chain(prefixed)
    }

    /// Whether `principal` from `host` may do `operation` on the resource, by the rules
    /// of the module doc (super users and the no-ACL default are the authorizer's).
    pub fn decide(
        &self,
        who: &Principal<'_>,
        resource_type: i8,
        name: &str,
        operation: i8,
    ) -> Decision {
        let mut any = false;
        let mut allowed = false;
        for b in self.covering(resource_type, name) {
            any = true;
            if !b.applies_to(who.name, who.host) {
                continue;
            }
            let exact = b.operation == operation || b.operation == op::ALL;
            if b.permission == permission::DENY && exact {
                return Decision::Denied;
            }
            allowed |=
                b.permission == permission::ALLOW && (exact || implies(b.operation, operation));
        }
        match (any, allowed) {
            (_, true) => Decision::Allowed,
            (false, false) => Decision::NoAcl,
            (true, false) => Decision::Denied,
        }
    }

    /// Whether some ALLOW binding lets `principal` do `operation` on some resource of
    /// `resource_type`, with no DENY of the same pattern against it (Kafka's
    /// `authorizeByResourceType`, used for idempotent producers: WRITE on any topic).
    pub fn allows_some(&self, who: &Principal<'_>, resource_type: i8, operation: i8) -> bool {
        let denied: Vec<&AclBinding> = self
            .bindings
            .iter()
            .filter(|b| {
                b.resource_type == resource_type
                    && b.permission == permission::DENY
                    && (b.operation == operation || b.operation == op::ALL)
                    && b.applies_to(who.name, who.host)
            })
            .collect();
        self.bindings.iter().any(|b| {
            b.resource_type == resource_type
                && b.permission == permission::ALLOW
                && (b.operation == operation || b.operation == op::ALL)
                && b.applies_to(who.name, who.host)
                && !denied
                    .iter()
                    .any(|d| d.covers(&b.name) || d.name == WILDCARD)
        })
    }
}

/// The authorizer's own settings: super users and the no-ACL default.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    pub super_users: Vec<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

impl Authorizer {
    pub fn authorize(
        &self,
        acls: &Acls,
        who: &Principal<'_>,
        resource_type: i8,
        name: &str,
        operation: i8,
    ) -> bool {
        if self.super_users.iter().any(|u| u == who.name) {
            return true;
        }
        match acls.decide(who, resource_type, name, operation) {
            Decision::Allowed => true,
            Decision::Denied => false,
            Decision::NoAcl => self.allow_everyone_if_no_acl_found,
        }
    }
}

/// What the ACLs say of one request for one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied,
    /// No binding names the resource at all.
    NoAcl,
}

/// Who asks: the principal (`User:<name>`) and the client's address.
#[derive(Debug, Clone, Copy)]
pub struct Principal<'a> {
    pub name: &'a str,
    pub host: &'a str,
}

/// Whether an ALLOW of `granted` also allows `wanted` (Kafka's implied operations).
fn implies(granted: i8, wanted: i8) -> bool {
    match wanted {
        op::DESCRIBE => matches!(granted, op::READ | op::WRITE | op::DELETE | op::ALTER),
        op::DESCRIBE_CONFIGS => granted == op::ALTER_CONFIGS,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(name: &str, pat: i8, who: &str, operation: i8, perm: i8) -> AclBinding {
        AclBinding {
            resource_type: resource::TOPIC,
            name: name.into(),
            pattern: pat,
            principal: who.into(),
            host: WILDCARD.into(),
            operation,
            permission: perm,
        }
    }

    const ALICE: Principal<'static> = Principal {
        name: "User:alice",
        host: "127.0.0.1",
    };

    #[test]
    fn literal_prefixed_and_wildcard_patterns_with_deny_first_and_implied_describe() {
        let mut acls = Acls::default();
        acls.add(binding(
            "orders",
            pattern::LITERAL,
            "User:alice",
            op::READ,
            permission::ALLOW,
        ));
        acls.add(binding(
            "pay-",
            pattern::PREFIXED,
            "User:*",
            op::WRITE,
            permission::ALLOW,
        ));
        acls.add(binding(
            "pay-secret",
            pattern::LITERAL,
            "User:alice",
            op::ALL,
            permission::DENY,
        ));
        use Decision::*;
        assert_eq!(
            acls.decide(&ALICE, resource::TOPIC, "orders", op::READ),
            Allowed
        );
        assert_eq!(
            acls.decide(&ALICE, resource::TOPIC, "orders", op::DESCRIBE),
            Allowed
        );
        assert_eq!(
            acls.decide(&ALICE, resource::TOPIC, "orders", op::WRITE),
            Denied
        );
        assert_eq!(
            acls.decide(&ALICE, resource::TOPIC, "pay-in", op::WRITE),
            Allowed
        );
        assert_eq!(
            acls.decide(&ALICE, resource::TOPIC, "pay-secret", op::WRITE),
            Denied
        );
        assert_eq!(
            acls.decide(&ALICE, resource::TOPIC, "other", op::READ),
            NoAcl
        );
        assert_eq!(
            acls.decide(&ALICE, resource::GROUP, "orders", op::READ),
            NoAcl
        );
        let bob = Principal {
            name: "User:bob",
            host: "10.0.0.1",
        };
        assert_eq!(
            acls.decide(&bob, resource::TOPIC, "orders", op::READ),
            Denied
        );
        assert_eq!(
            acls.decide(&bob, resource::TOPIC, "pay-secret", op::WRITE),
            Allowed
        );
        acls.add(binding(
            "*",
            pattern::LITERAL,
            "User:bob",
            op::READ,
            permission::ALLOW,
        ));
        assert_eq!(
            acls.decide(&bob, resource::TOPIC, "anything", op::READ),
            Allowed
        );
        assert!(acls.allows_some(&ALICE, resource::TOPIC, op::WRITE));
        assert!(!acls.allows_some(&ALICE, resource::TOPIC, op::DELETE));
    }

    #[test]
    fn filters_match_as_describe_and_delete_acls_do_and_the_record_round_trips() {
        let mut acls = Acls::default();
        acls.add(binding(
            "orders",
            pattern::LITERAL,
            "User:alice",
            op::READ,
            permission::ALLOW,
        ));
        acls.add(binding(
            "ord",
            pattern::PREFIXED,
            "User:bob",
            op::READ,
            permission::ALLOW,
        ));
        let any = AclFilter {
            resource_type: resource::ANY,
            pattern: pattern::ANY,
            operation: op::ANY,
            permission: permission::ANY,
            ..AclFilter::default()
        };
        assert_eq!(acls.matching(&any).count(), 2);
        let matching = AclFilter {
            name: Some("orders".into()),
            pattern: pattern::MATCH,
            ..any.clone()
        };
        assert_eq!(acls.matching(&matching).count(), 2);
        let literal = AclFilter {
            name: Some("orders".into()),
            pattern: pattern::LITERAL,
            ..any.clone()
        };
        assert_eq!(acls.matching(&literal).count(), 1);
        assert_eq!(Acls::from_record(&acls.to_record()), acls);
        let bob = AclFilter {
            principal: Some("User:bob".into()),
            ..any
        };
        let removed = acls.apply(&AclChange::Delete(vec![bob]));
        assert_eq!(removed.iter().map(Vec::len).collect::<Vec<_>>(), vec![1]);
        assert_eq!(acls.len(), 1);
    }

    #[test]
    fn bindings_kafka_refuses_are_refused() {
        let ok = binding("t", pattern::LITERAL, "User:a", op::READ, permission::ALLOW);
        assert_eq!(ok.invalid(), None);
        for bad in [
            AclBinding {
                pattern: pattern::MATCH,
                ..ok.clone()
            },
            AclBinding {
                principal: "alice".into(),
                ..ok.clone()
            },
            AclBinding {
                operation: op::IDEMPOTENT_WRITE,
                ..ok.clone()
            },
            AclBinding {
                permission: permission::ANY,
                ..ok.clone()
            },
            AclBinding {
                resource_type: resource::CLUSTER,
                ..ok.clone()
            },
        ] {
            assert!(bad.invalid().is_some(), "{bad:?}");
        }
    }
}
