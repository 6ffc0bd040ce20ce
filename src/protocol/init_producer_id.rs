//! InitProducerId for idempotent producers (KIP-98). Without a transactional id Kafka
//! always hands out a fresh producer id with epoch 0, also when a KIP-360 client
//! sends its current id and epoch to recover from an error; Sluice does the same.
//! Transactional ids are refused until transactions are implemented.

use std::rc::Rc;

use kafka_protocol::messages::*;

use super::errors;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    req: InitProducerIdRequest,
    _version: i16,
) -> InitProducerIdResponse {
    if req.transactional_id.is_some() {
        // No error message field exists in this response: the code is all clients see.
        return InitProducerIdResponse::default()
            .with_error_code(errors::INVALID_REQUEST)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    match shard.new_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(e.code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}
