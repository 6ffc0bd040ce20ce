//! AlterClientQuotas (KIP-546): set or remove `producer_byte_rate` of a user, a client
//! id, or a user's client id (each named or the default), the byte-rate quota Sluice
//! enforces on produce. The controller saves the quotas (`store::atomic`) and installs
//! them on every shard before the answer. Other keys and the ip entity are refused:
//! Sluice would not enforce them.

use super::describe_client_quotas::{CLIENT_ID, ENTITY_TYPES, USER};
use super::*;
use crate::cluster::{QuotaChange, QuotaEntity};
use kafka_protocol::messages::alter_client_quotas_request::EntryData as Asked;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};

pub async fn alter_client_quotas(
    ctx: &Context,
    az: &Authz<'_>,
    req: AlterClientQuotasRequest,
    _version: i16,
) -> AlterClientQuotasResponse {
    let allowed = az.cluster(ALTER_CONFIGS);
    let planned: Vec<Result<Vec<QuotaChange>, KafkaError>> = req
        .entries
        .iter()
        .map(|e| allowed.clone().and_then(|()| plan(e)))
        .collect();
    let changes: Vec<QuotaChange> = planned
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .flatten()
        .cloned()
        .collect();
    let applied = if changes.is_empty() {
        Ok(())
    } else {
        ctx.cluster.alter_quotas(changes, req.validate_only).await
    };
    let entries = req
        .entries
        .iter()
        .zip(planned)
        .map(|(asked, plan)| {
            let entity = asked
                .entity
                .iter()
                .map(|e| {
                    EntityData::default()
                        .with_entity_type(e.entity_type.clone())
                        .with_entity_name(e.entity_name.clone())
                })
                .collect();
            let out = EntryData::default().with_entity(entity);
            match plan.and(applied.clone()) {
                Ok(()) => out,
                Err(e) => out
                    .with_error_code(e.wire_code())
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

fn invalid(text: String) -> KafkaError {
    KafkaError::new(ErrorCode::InvalidRequest, text)
}

/// The entity an entry names: a user, a client id, or both (each named or the default).
pub(super) fn entity(asked: &[(&str, Option<String>)]) -> Result<QuotaEntity, KafkaError> {
    let mut e = QuotaEntity {
        user: None,
        client_id: None,
    };
    for (t, name) in asked {
        let slot = match *t {
            USER => &mut e.user,
            CLIENT_ID => &mut e.client_id,
            t if ENTITY_TYPES.contains(&t) => {
                return Err(invalid(format!(
                    "{t} quotas are not enforced by Sluice; use user and/or client-id"
                )))
            }
            t => return Err(invalid(format!("unknown entity type '{t}'"))),
        };
        if slot.replace(name.clone()).is_some() {
            return Err(invalid(format!("entity type '{t}' is named twice")));
        }
    }
    if e.user.is_none() && e.client_id.is_none() {
        return Err(invalid("an entry names no entity".into()));
    }
    Ok(e)
}

/// The changes one entry asks for, or why it is refused.
fn plan(asked: &Asked) -> Result<Vec<QuotaChange>, KafkaError> {
    let parts: Vec<(&str, Option<String>)> = asked
        .entity
        .iter()
        .map(|e| {
            (
                e.entity_type.as_str(),
                e.entity_name.as_ref().map(|n| n.to_string()),
            )
        })
        .collect();
    let entity = entity(&parts)?;
    asked
        .ops
        .iter()
        .map(|op| {
            if op.key.as_str() != PRODUCER_BYTE_RATE {
                return Err(invalid(format!(
                    "quota '{}' is not enforced by Sluice; it enforces {PRODUCER_BYTE_RATE}",
                    op.key.as_str()
                )));
            }
            let rate = if op.remove {
                None
            } else if op.value >= 1.0 && op.value.fract() == 0.0 && op.value < u64::MAX as f64 {
                Some(op.value as u64)
            } else {
                return Err(invalid(format!(
                    "{PRODUCER_BYTE_RATE} must be a whole number of bytes per second ≥ 1, got {}",
                    op.value
                )));
            };
            Ok(QuotaChange {
                entity: entity.clone(),
                producer_byte_rate: rate,
            })
        })
        .collect()
}
