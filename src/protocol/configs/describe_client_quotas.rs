//! DescribeClientQuotas (KIP-546): the client-id quotas (`cluster::ClientQuotas`)
//! matching the filter. Sluice keeps quotas for client-id entities only (it has no
//! authenticated users), so a filter on user or ip matches nothing.

use super::*;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};

/// The entity types Kafka knows.
pub(super) const ENTITY_TYPES: &[&str] = &["user", "client-id", "ip"];
pub(super) const CLIENT_ID: &str = "client-id";
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
        .filter(|(client, _)| matches(&req.components, req.strict, client.as_deref()))
        .map(|(client, rate)| {
            EntryData::default()
                .with_entity(vec![EntityData::default()
                    .with_entity_type(StrBytes::from_static_str(CLIENT_ID))
                    .with_entity_name(client.map(StrBytes::from_string))])
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

/// Whether the client-id entity `client` (None: the default) passes the filter: every
/// component must match it; with `strict` the filter must name no other entity type.
fn matches(components: &[ComponentData], strict: bool, client: Option<&str>) -> bool {
    let mut named_client_id = false;
    for c in components {
        if c.entity_type.as_str() != CLIENT_ID {
            return false;
        }
        named_client_id = true;
        let ok = match c.match_type {
            MATCH_EXACT => client == c._match.as_ref().map(|m| m.as_str()),
            MATCH_DEFAULT => client.is_none(),
            _ => client.is_some(),
        };
        if !ok {
            return false;
        }
    }
    named_client_id || !strict
}
