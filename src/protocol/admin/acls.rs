//! CreateAcls, DescribeAcls and DeleteAcls (KIP-140, prefixed patterns KIP-290). Changes
//! go to the controller, which saves the ACLs and installs them on every shard before
//! answering (`cluster::acl`). Creating and deleting need ALTER on the cluster,
//! describing DESCRIBE; without an authorizer all three answer SECURITY_DISABLED, as
//! Kafka does.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::*;
use crate::cluster::acl::{op, pattern, permission, resource};
use crate::cluster::{AclBinding, AclChange, AclFilter};

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Why an ACL request cannot be served at all: no authorizer, or the principal may not.
fn refused(ctx: &Context, az: &Authz<'_>, operation: i8) -> Result<(), KafkaError> {
    if !ctx.cluster.has_authorizer() {
        return Err(KafkaError::new(
            ErrorCode::SecurityDisabled,
            "No Authorizer is configured (start sluice with --authorizer true)",
        ));
    }
    az.cluster(operation)
}

fn binding(c: &AclCreation) -> Result<AclBinding, KafkaError> {
    let b = AclBinding {
        resource_type: c.resource_type,
        name: c.resource_name.to_string(),
        pattern: c.resource_pattern_type,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: c.operation,
        permission: c.permission_type,
    };
    match b.invalid() {
        None => Ok(b),
        Some(why) => Err(KafkaError::new(ErrorCode::InvalidRequest, why)),
    }
}

pub async fn create_acls(
    ctx: &Context,
    az: &Authz<'_>,
    req: CreateAclsRequest,
    _version: i16,
) -> CreateAclsResponse {
    let planned: Vec<Result<AclBinding, KafkaError>> = match refused(ctx, az, ALTER) {
        Err(e) => req.creations.iter().map(|_| Err(e.clone())).collect(),
        Ok(()) => req.creations.iter().map(binding).collect(),
    };
    let valid: Vec<AclBinding> = planned.iter().filter_map(|p| p.clone().ok()).collect();
    let applied = match valid.is_empty() {
        true => Ok(Vec::new()),
        false => ctx.cluster.alter_acls(AclChange::Create(valid)).await,
    };
    let results = planned
        .into_iter()
        .map(|p| match p.and(applied.clone().map(|_| ())) {
            Ok(()) => AclCreationResult::default(),
            Err(e) => AclCreationResult::default()
                .with_error_code(e.wire_code())
                .with_error_message(Some(sb(&e.message))),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// A filter's fields, checked as Kafka checks them (no UNKNOWN codes).
fn filter(
    rt: i8,
    name: Option<&StrBytes>,
    pat: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    (operation, perm): (i8, i8),
) -> Result<AclFilter, KafkaError> {
    let known = (resource::ANY..=resource::TRANSACTIONAL_ID).contains(&rt)
        && (pattern::ANY..=pattern::PREFIXED).contains(&pat)
        && (op::ANY..=op::IDEMPOTENT_WRITE).contains(&operation)
        && (permission::ANY..=permission::ALLOW).contains(&perm);
    if !known {
        return Err(KafkaError::new(
            ErrorCode::InvalidRequest,
            "the filter has an unknown resource type, pattern type, operation or permission",
        ));
    }
    Ok(AclFilter {
        resource_type: rt,
        name: name.map(|n| n.to_string()),
        pattern: pat,
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation,
        permission: perm,
    })
}

pub async fn describe_acls(
    ctx: &Context,
    az: &Authz<'_>,
    req: DescribeAclsRequest,
    _version: i16,
) -> DescribeAclsResponse {
    let f = refused(ctx, az, DESCRIBE).and_then(|()| {
        filter(
            req.resource_type_filter,
            req.resource_name_filter.as_ref(),
            req.pattern_type_filter,
            req.principal_filter.as_ref(),
            req.host_filter.as_ref(),
            (req.operation, req.permission_type),
        )
    });
    let f = match f {
        Ok(f) => f,
        Err(e) => {
            return DescribeAclsResponse::default()
                .with_error_code(e.wire_code())
                .with_error_message(Some(sb(&e.message)))
        }
    };
    let acls = ctx.cluster.acls();
    let mut by_resource: BTreeMap<(i8, &str, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in acls.matching(&f) {
        by_resource
            .entry((b.resource_type, &b.name, b.pattern))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(sb(&b.principal))
                    .with_host(sb(&b.host))
                    .with_operation(b.operation)
                    .with_permission_type(b.permission),
            );
    }
    let resources = by_resource
        .into_iter()
        .map(|((rt, name, pat), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(rt)
                .with_resource_name(sb(name))
                .with_pattern_type(pat)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

fn delete_filter(f: &DeleteAclsFilter) -> Result<AclFilter, KafkaError> {
    filter(
        f.resource_type_filter,
        f.resource_name_filter.as_ref(),
        f.pattern_type_filter,
        f.principal_filter.as_ref(),
        f.host_filter.as_ref(),
        (f.operation, f.permission_type),
    )
}

fn matching_acl(b: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(b.resource_type)
        .with_resource_name(sb(&b.name))
        .with_pattern_type(b.pattern)
        .with_principal(sb(&b.principal))
        .with_host(sb(&b.host))
        .with_operation(b.operation)
        .with_permission_type(b.permission)
}

pub async fn delete_acls(
    ctx: &Context,
    az: &Authz<'_>,
    req: DeleteAclsRequest,
    _version: i16,
) -> DeleteAclsResponse {
    let planned: Vec<Result<AclFilter, KafkaError>> = match refused(ctx, az, ALTER) {
        Err(e) => req.filters.iter().map(|_| Err(e.clone())).collect(),
        Ok(()) => req.filters.iter().map(delete_filter).collect(),
    };
    let valid: Vec<AclFilter> = planned.iter().filter_map(|p| p.clone().ok()).collect();
    let mut removed = match valid.is_empty() {
        true => Ok(Vec::new()),
        false => ctx.cluster.alter_acls(AclChange::Delete(valid)).await,
    }
    .map(|r| r.into_iter());
    let results = planned
        .into_iter()
        .map(|p| {
            let gone = p.and_then(|_| match &mut removed {
                Ok(it) => Ok(it.next().unwrap_or_default()),
                Err(e) => Err(e.clone()),
            });
            match gone {
                Ok(list) => DeleteAclsFilterResult::default()
                    .with_matching_acls(list.iter().map(matching_acl).collect()),
                Err(e) => DeleteAclsFilterResult::default()
                    .with_error_code(e.wire_code())
                    .with_error_message(Some(sb(&e.message))),
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
