//! `sluice acl list|create|delete`: ACLs through CreateAcls, DescribeAcls and DeleteAcls
//! (KIP-140), against any broker with an authorizer — Kafka's `kafka-acls.sh`, rpk's
//! `rpk security acl`.

use clap::{Args, Subcommand, ValueEnum};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use serde_json::{json, Value};

use super::client::s;
use super::error::CliError;
use super::output::{emit, Table};
use super::Ctx;

/// Kafka's codes (`ResourceType`, `PatternType`, `AclOperation`, `AclPermissionType`).
const RESOURCES: [(i8, &str); 5] = [
    (1, "ANY"),
    (2, "TOPIC"),
    (3, "GROUP"),
    (4, "CLUSTER"),
    (5, "TRANSACTIONAL_ID"),
];
const PATTERNS: [(i8, &str); 4] = [(1, "ANY"), (2, "MATCH"), (3, "LITERAL"), (4, "PREFIXED")];
const OPERATIONS: [(i8, &str); 12] = [
    (1, "ANY"),
    (2, "ALL"),
    (3, "READ"),
    (4, "WRITE"),
    (5, "CREATE"),
    (6, "DELETE"),
    (7, "ALTER"),
    (8, "DESCRIBE"),
    (9, "CLUSTER_ACTION"),
    (10, "DESCRIBE_CONFIGS"),
    (11, "ALTER_CONFIGS"),
    (12, "IDEMPOTENT_WRITE"),
];

fn name_of(table: &[(i8, &'static str)], code: i8) -> &'static str {
    table
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("UNKNOWN", |(_, n)| n)
}

fn operation(name: &str) -> Result<i8, CliError> {
    let up = name.trim().to_uppercase().replace('-', "_");
    OPERATIONS
        .iter()
        .find(|(_, n)| *n == up)
        .map(|(c, _)| *c)
        .ok_or_else(|| CliError::usage(format!("unknown operation {name:?}")))
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Permission {
    Allow,
    Deny,
}

/// The resource an ACL is about (exactly one for create; none lists all).
#[derive(Args, Debug, Clone, Default)]
pub struct Resource {
    #[arg(long)]
    topic: Option<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long = "transactional-id")]
    transactional_id: Option<String>,
    /// The cluster resource (kafka-cluster).
    #[arg(long)]
    cluster: bool,
    /// The name is a prefix (PREFIXED pattern) rather than a literal name.
    #[arg(long)]
    prefixed: bool,
}

impl Resource {
    /// (resource type, name, pattern), or None when none is named.
    fn spec(&self) -> Result<Option<(i8, String, i8)>, CliError> {
        let named: Vec<(i8, String)> = [
            self.topic.clone().map(|n| (2, n)),
            self.group.clone().map(|n| (3, n)),
            self.transactional_id.clone().map(|n| (5, n)),
            self.cluster.then(|| (4, "kafka-cluster".to_string())),
        ]
        .into_iter()
        .flatten()
        .collect();
        let pattern = if self.prefixed { 4 } else { 3 };
        match named.as_slice() {
            [] => Ok(None),
            [(t, n)] => Ok(Some((*t, n.clone(), pattern))),
            _ => Err(CliError::usage(
                "name one of --topic, --group, --transactional-id, --cluster",
            )),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum AclCmd {
    /// ACLs, all or those of a resource (any pattern covering it) or a principal.
    List {
        #[command(flatten)]
        resource: Resource,
        #[arg(long)]
        principal: Option<String>,
    },
    /// Add ACLs: each operation given, for one principal on one resource.
    Create {
        #[command(flatten)]
        resource: Resource,
        /// User:<name>, or User:* for everyone.
        #[arg(long)]
        principal: String,
        /// Operations, comma separated: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
        /// DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, CLUSTER_ACTION, ALL.
        #[arg(long, value_delimiter = ',', required = true)]
        operation: Vec<String>,
        #[arg(long, value_enum, default_value = "allow")]
        permission: Permission,
        #[arg(long, default_value = "*")]
        host: String,
    },
    /// Remove the ACLs that match (a resource, a principal, an operation).
    Delete {
        #[command(flatten)]
        resource: Resource,
        #[arg(long)]
        principal: Option<String>,
        #[arg(long)]
        operation: Option<String>,
    },
}

pub fn run(ctx: &Ctx, cmd: AclCmd) -> Result<(), CliError> {
    match cmd {
        AclCmd::List {
            resource,
            principal,
        } => list(ctx, &resource, principal),
        AclCmd::Create {
            resource,
            principal,
            operation,
            permission,
            host,
        } => create(ctx, &resource, &principal, &operation, permission, &host),
        AclCmd::Delete {
            resource,
            principal,
            operation,
        } => delete(ctx, &resource, principal, operation),
    }
}

fn acl_json(rt: i8, name: &str, pat: i8, who: &str, host: &str, op: i8, perm: i8) -> Value {
    json!({
        "resource_type": name_of(&RESOURCES, rt), "name": name,
        "pattern": name_of(&PATTERNS, pat), "principal": who, "host": host,
        "operation": name_of(&OPERATIONS, op),
        "permission": if perm == 2 { "DENY" } else if perm == 3 { "ALLOW" } else { "ANY" },
    })
}

fn table(acls: &[Value]) -> String {
    let mut t = Table::new(&[
        "PRINCIPAL",
        "HOST",
        "PERMISSION",
        "OPERATION",
        "RESOURCE",
        "PATTERN",
        "NAME",
    ]);
    for a in acls {
        let cell = |k: &str| a[k].as_str().unwrap_or("").to_string();
        t.row(
            [
                "principal",
                "host",
                "permission",
                "operation",
                "resource_type",
                "pattern",
                "name",
            ]
            .iter()
            .map(|k| cell(k))
            .collect(),
        );
    }
    t.render()
}

fn list(ctx: &Ctx, r: &Resource, principal: Option<String>) -> Result<(), CliError> {
    let (rt, name, pat) = match r.spec()? {
        Some((t, n, p)) => (t, Some(s(n)), if r.prefixed { p } else { 2 }),
        None => (1, None, 1),
    };
    let req = DescribeAclsRequest::default()
        .with_resource_type_filter(rt)
        .with_resource_name_filter(name)
        .with_pattern_type_filter(pat)
        .with_principal_filter(principal.map(s))
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1);
    let mut c = ctx.client()?;
    let resp = c.controller()?.call(&req, 3)?;
    if let Some(e) = CliError::kafka_opt(resp.error_code, resp.error_message.as_deref(), "ACLs") {
        return Err(e);
    }
    let acls: Vec<Value> = resp
        .resources
        .iter()
        .flat_map(|res| {
            res.acls.iter().map(move |a| {
                acl_json(
                    res.resource_type,
                    &res.resource_name,
                    res.pattern_type,
                    &a.principal,
                    &a.host,
                    a.operation,
                    a.permission_type,
                )
            })
        })
        .collect();
    emit(ctx.format, &json!({ "acls": acls }), || table(&acls));
    Ok(())
}

fn create(
    ctx: &Ctx,
    r: &Resource,
    principal: &str,
    ops: &[String],
    permission: Permission,
    host: &str,
) -> Result<(), CliError> {
    let (rt, name, pat) = r.spec()?.ok_or_else(|| {
        CliError::usage("name the resource: --topic, --group, --transactional-id or --cluster")
    })?;
    let perm = match permission {
        Permission::Allow => 3,
        Permission::Deny => 2,
    };
    let creations = ops
        .iter()
        .map(|o| {
            Ok(AclCreation::default()
                .with_resource_type(rt)
                .with_resource_name(s(name.clone()))
                .with_resource_pattern_type(pat)
                .with_principal(s(principal))
                .with_host(s(host))
                .with_operation(operation(o)?)
                .with_permission_type(perm))
        })
        .collect::<Result<Vec<_>, CliError>>()?;
    let made: Vec<Value> = creations
        .iter()
        .map(|a| acl_json(rt, &name, pat, principal, host, a.operation, perm))
        .collect();
    let mut c = ctx.client()?;
    let resp = c
        .controller()?
        .call(&CreateAclsRequest::default().with_creations(creations), 3)?;
    for res in &resp.results {
        if let Some(e) = CliError::kafka_opt(res.error_code, res.error_message.as_deref(), "ACL") {
            return Err(e);
        }
    }
    emit(ctx.format, &json!({ "created": made }), || table(&made));
    Ok(())
}

fn delete(
    ctx: &Ctx,
    r: &Resource,
    principal: Option<String>,
    op: Option<String>,
) -> Result<(), CliError> {
    let (rt, name, pat) = match r.spec()? {
        Some((t, n, p)) => (t, Some(s(n)), p),
        None => (1, None, 1),
    };
    let filter = DeleteAclsFilter::default()
        .with_resource_type_filter(rt)
        .with_resource_name_filter(name)
        .with_pattern_type_filter(pat)
        .with_principal_filter(principal.map(s))
        .with_host_filter(None)
        .with_operation(op.as_deref().map_or(Ok(1), operation)?)
        .with_permission_type(1);
    let mut c = ctx.client()?;
    let resp = c
        .controller()?
        .call(&DeleteAclsRequest::default().with_filters(vec![filter]), 3)?;
    let mut gone = Vec::new();
    for res in &resp.filter_results {
        if let Some(e) = CliError::kafka_opt(res.error_code, res.error_message.as_deref(), "ACLs") {
            return Err(e);
        }
        gone.extend(res.matching_acls.iter().map(|a| {
            acl_json(
                a.resource_type,
                &a.resource_name,
                a.pattern_type,
                &a.principal,
                &a.host,
                a.operation,
                a.permission_type,
            )
        }));
    }
    emit(ctx.format, &json!({ "deleted": gone }), || table(&gone));
    Ok(())
}
