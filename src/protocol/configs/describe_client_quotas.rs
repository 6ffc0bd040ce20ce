//! DescribeClientQuotas (KIP-546): the quotas (`cluster::ClientQuotas`) of the user,
//! client-id and user + client-id entities matching the filter. Sluice keeps no ip
//! quotas, so a filter on ip matches nothing.

use super::*;
use crate::cluster::QuotaEntity;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};

/// The entity types Kafka knows.
pub(super) const ENTITY_TYPES: &[&str] = &["user", "client-id", "ip"];
pub(super) const CLIENT_ID: &str = "client-id";
pub(super) const USER: &str = "user";
/// `match_type`: exactly the name in `match`, the default entity, any named entity.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

pub async fn describe_client_quotas(
    ctx: &Context,
    az: &Authz<'_>,
    req: DescribeClientQuotasRequest,
    _version: i16,
) -> DescribeClientQuotasResponse {
    if let Err(e) = az
        .cluster(DESCRIBE_CONFIGS)
        .and_then(|()| check_filter(&req.components))
    {
        return DescribeClientQuotasResponse::default()
            .with_error_code(e.wire_code())
            .with_error_message(Some(StrBytes::from_string(e.message)));
    }
    let quotas = ctx.cluster.quotas();
    let entries = quotas
        .entries()
        .into_iter()
        .filter(|(e, _)| matches(&req.components, req.strict, e))
        .map(|(e, rate)| {
            let part = |t: &'static str, name: Option<String>| {
                EntityData::default()
                    .with_entity_type(StrBytes::from_static_str(t))
                    .with_entity_name(name.map(StrBytes::from_string))
            };
            let parts = [
                e.user.map(|u| part(USER, u)),
                e.client_id.map(|c| part(CLIENT_ID, c)),
            ];
            EntryData::default()
                .with_entity(parts.into_iter().flatten().collect())
                .with_values(vec![ValueData::default()
                    .with_key(StrBytes::from_static_str(PRODUCER_BYTE_RATE))
                    .with_value(rate as f64)])
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

fn check_filter(components: &[ComponentData]) -> Result<(), KafkaError> {
    let mut seen = Vec::new();
    for c in components {
        let t = c.entity_type.as_str();
        if !ENTITY_TYPES.contains(&t) {
            return Err(KafkaError::new(
                ErrorCode::InvalidRequest,
                format!("unknown entity type '{t}'"),
            ));
        }
        if seen.contains(&t) {
            return Err(KafkaError::new(
                ErrorCode::InvalidRequest,
                format!("entity type '{t}' is named twice"),
            ));
        }
        seen.push(t);
        if !matches!(c.match_type, MATCH_EXACT | MATCH_DEFAULT | MATCH_SPECIFIED) {
            return Err(KafkaError::new(
                ErrorCode::InvalidRequest,
                format!("unknown match type {}", c.match_type),
            ));
        }
    }
    Ok(())
}

/// Whether the entity passes the filter: every component must match it (the entity has
/// that component, named as asked); with `strict` it has no other component.
fn matches(components: &[ComponentData], strict: bool, e: &QuotaEntity) -> bool {
    let mut named = (false, false);
    for c in components {
        let part = match c.entity_type.as_str() {
            USER => {
                named.0 = true;
                &e.user
            }
            CLIENT_ID => {
                named.1 = true;
                &e.client_id
            }
            _ => return false,
        };
        let Some(name) = part else {
            return false;
        };
        let ok = match c.match_type {
            MATCH_EXACT => name.as_deref() == c._match.as_ref().map(|m| m.as_str()),
            MATCH_DEFAULT => name.is_none(),
            _ => name.is_some(),
        };
        if !ok {
            return false;
        }
    }
    !strict || ((named.0 || e.user.is_none()) && (named.1 || e.client_id.is_none()))
}
