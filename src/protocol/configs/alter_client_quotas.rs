//! AlterClientQuotas (KIP-546): set or remove `producer_byte_rate` of a client id (or
//! of the default client id), the byte-rate quota Sluice enforces on produce. The
//! controller saves the quotas (`store::atomic`) and installs them on every shard
//! before the answer. Other keys and entity types (user, ip) are refused: Sluice
//! would not enforce them.

use super::describe_client_quotas::{CLIENT_ID, ENTITY_TYPES};
use super::*;
use crate::cluster::QuotaChange;
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

/// The changes one entry asks for, or why it is refused.
fn plan(asked: &Asked) -> Result<Vec<QuotaChange>, KafkaError> {
    let [entity] = asked.entity.as_slice() else {
        return Err(invalid(
            "Sluice keeps quotas of a client-id entity alone; name exactly one entity".into(),
        ));
    };
    let t = entity.entity_type.as_str();
    if !ENTITY_TYPES.contains(&t) {
        return Err(invalid(format!("unknown entity type '{t}'")));
    }
    if t != CLIENT_ID {
        return Err(invalid(format!(
            "{t} quotas are not enforced by Sluice (it has no authenticated users); use client-id"
        )));
    }
    let client_id = entity.entity_name.as_ref().map(|n| n.to_string());
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
                client_id: client_id.clone(),
                producer_byte_rate: rate,
            })
        })
        .collect()
}
