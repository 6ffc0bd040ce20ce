//! InitProducerId (KIP-98). Without a transactional id Kafka always hands out a fresh
//! producer id with epoch 0, also when a KIP-360 client sends its current id and epoch to
//! recover from an error; Sluice does the same. With one, the transactional id's owner shard
//! answers (`txn::init_producer_id`): the id's producer id with a bumped epoch.

use kafka_protocol::messages::*;

use super::txn::on_txn;
use crate::coordinator::txn::messages::InitProducerId as InitTxnProducerId;
use crate::kafka::ErrorCode;
use crate::protocol::authorized::{Authz, IDEMPOTENT_WRITE, WRITE};
use crate::protocol::context::Context;

/// A transactional id needs its WRITE; an idempotent producer needs IDEMPOTENT_WRITE on
/// the cluster or WRITE on some topic (KIP-679).
fn refused(az: &Authz<'_>, transactional_id: Option<&str>) -> Option<ErrorCode> {
    match transactional_id {
        Some(id) => az.transactional_id(id, WRITE).err().map(|e| e.code),
        None if az.cluster(IDEMPOTENT_WRITE).is_ok() => None,
        None if az.allows_some(crate::cluster::acl::resource::TOPIC, WRITE) => None,
        None => Some(ErrorCode::ClusterAuthorizationFailed),
    }
}

pub async fn handle(
    ctx: &Context,
    az: &Authz<'_>,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    if let Some(code) = refused(az, req.transactional_id.as_deref().map(|s| s.as_str())) {
        return InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    if let Some(id) = req.transactional_id {
        let id = id.to_string();
        let (timeout, pid, epoch) = (
            req.transaction_timeout_ms,
            req.producer_id.0,
            req.producer_epoch,
        );
        let msg = InitTxnProducerId {
            transactional_id: id.clone(),
            timeout_ms: timeout,
            producer_id: pid,
            epoch,
            version,
        };
        let r = on_txn(ctx, &id, msg).await;
        return match r {
            Ok((pid, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            // No error message field exists in this response: the code is all clients see.
            Err(code) => InitProducerIdResponse::default()
                .with_error_code(code.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        };
    }
    match ctx.cluster.new_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(e.wire_code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}
