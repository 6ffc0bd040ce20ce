//! FindCoordinator: this node coordinates every group (key type 0) and transactional id
//! (key type 1); v4+ asks for several keys at once.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::*;

use super::metadata::{str_bytes, NODE_ID};
use crate::kafka::{ErrorCode, KafkaError};
use crate::protocol::context::Context;

/// A group's coordinator needs DESCRIBE on the group, a transactional id's on the id.
pub async fn handle(
    ctx: &Context,
    az: &crate::protocol::authorized::Authz<'_>,
    req: FindCoordinatorRequest,
    version: i16,
    listener: usize,
) -> FindCoordinatorResponse {
    use crate::protocol::authorized::DESCRIBE;
    let (host, port) = ctx.config.advertised_on(listener);
    let check = |key_type: i8, key: &str| -> Result<(), KafkaError> {
        match key_type {
            0 => az.group(key, DESCRIBE),
            1 => az.transactional_id(key, DESCRIBE),
            // 2: a share coordinator key (KIP-932), "group:topic_id:partition".
            2 => az.group(key.split(':').next().unwrap_or(key), DESCRIBE),
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
                let checked = check(req.key_type, key.as_str());
                let c = Coordinator::default().with_key(key);
                match checked {
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
    match check(req.key_type, req.key.as_str()) {
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
