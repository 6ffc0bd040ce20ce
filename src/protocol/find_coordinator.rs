//! FindCoordinator: this node coordinates every group (key type 0) and transactional id
//! (key type 1); v4+ asks for several keys at once.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::*;

use super::metadata::{str_bytes, NODE_ID};
use crate::kafka::{ErrorCode, KafkaError};
use crate::protocol::context::Context;

pub async fn handle(
    ctx: &Context,
    req: FindCoordinatorRequest,
    version: i16,
    listener: usize,
) -> FindCoordinatorResponse {
    let (host, port) = ctx.config.advertised_on(listener);
    let check = |key_type: i8| -> Result<(), KafkaError> {
        match key_type {
            // 2: a share coordinator key (KIP-932), "group:topic_id:partition".
            0..=2 => Ok(()),
            t => Err(KafkaError::new(
                ErrorCode::InvalidRequest,
                format!("unknown coordinator key type {t}"),
            )),
        }
    };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key);
                match check(req.key_type) {
                    Ok(()) => c
                        .with_node_id(BrokerId(NODE_ID))
                        .with_host(str_bytes(&host))
                        .with_port(port),
                    Err(e) => c
                        .with_node_id(BrokerId(-1))
                        .with_error_code(e.wire_code())
                        .with_error_message(Some(str_bytes(&e.message))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match check(req.key_type) {
        Ok(()) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(NODE_ID))
            .with_host(str_bytes(&host))
            .with_port(port),
        Err(e) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(-1))
            .with_error_code(e.wire_code())
            .with_error_message((version >= 1).then(|| str_bytes(&e.message))),
    }
}
