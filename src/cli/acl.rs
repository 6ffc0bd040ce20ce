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

use crate::kafka::acl::{code, name, op, pattern, permission, resource};

fn operation(text: &str) -> Result<i8, CliError> {
    code(op::NAMES, text).ok_or_else(|| CliError::usage(format!("unknown operation {text:?}")))
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
            self.topic.clone().map(|n| (resource::TOPIC, n)),
            self.group.clone().map(|n| (resource::GROUP, n)),
            self.transactional_id
                .clone()
                .map(|n| (resource::TRANSACTIONAL_ID, n)),
            self.cluster
                .then(|| (resource::CLUSTER, "kafka-cluster".to_string())),
        ]
        .into_iter()
        .flatten()
        .collect();
        let pattern = if self.prefixed {
            pattern::PREFIXED
        } else {
            pattern::LITERAL
        };
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

fn acl_json(
    rt: i8,
    resource_name: &str,
    pat: i8,
    who: &str,
    host: &str,
    operation: i8,
    perm: i8,
) -> Value {
    json!({
        "resource_type": name(resource::NAMES, rt), "name": resource_name,
        "pattern": name(pattern::NAMES, pat), "principal": who, "host": host,
        "operation": name(op::NAMES, operation),
        "permission": name(permission::NAMES, perm),
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
        Some((t, n, p)) => (t, Some(s(n)), if r.prefixed { p } else { pattern::MATCH }),
        None => (resource::ANY, None, pattern::ANY),
    };
    let req = DescribeAclsRequest::default()
        .with_resource_type_filter(rt)
        .with_resource_name_filter(name)
        .with_pattern_type_filter(pat)
        .with_principal_filter(principal.map(s))
        .with_host_filter(None)
        .with_operation(op::ANY)
        .with_permission_type(permission::ANY);
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
        Permission::Allow => permission::ALLOW,
        Permission::Deny => permission::DENY,
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
        None => (resource::ANY, None, pattern::ANY),
    };
    let filter = DeleteAclsFilter::default()
        .with_resource_type_filter(rt)
        .with_resource_name_filter(name)
        .with_pattern_type_filter(pat)
        .with_principal_filter(principal.map(s))
        .with_host_filter(None)
        .with_operation(op.as_deref().map_or(Ok(op::ANY), operation)?)
        .with_permission_type(permission::ANY);
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
