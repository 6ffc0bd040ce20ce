//! ListTransactions (KIP-664): every transactional id of every shard's coordinator,
//! filtered by state, producer id and (v1) how long the transaction has been open
//! (kafka-transactions.sh list).

use kafka_protocol::messages::list_transactions_response::TransactionState;

use super::*;
use crate::runtime::now_ms;

/// Kafka's names of the transaction states (`TransactionState.stateName`).
pub(super) fn state_name(phase: txn::Phase) -> &'static str {
    match phase {
        txn::Phase::Empty => "Empty",
        txn::Phase::Ongoing => "Ongoing",
        txn::Phase::PrepareCommit => "PrepareCommit",
        txn::Phase::PrepareAbort => "PrepareAbort",
        txn::Phase::CompleteCommit => "CompleteCommit",
        txn::Phase::CompleteAbort => "CompleteAbort",
    }
}

/// Every state name Kafka knows (a filter naming another is reported back unknown).
const STATES: &[&str] = &[
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

pub async fn list_transactions(
    ctx: &Context,
    az: &Authz<'_>,
    req: ListTransactionsRequest,
    _version: i16,
) -> ListTransactionsResponse {
    let unknown: Vec<StrBytes> = req
        .state_filters
        .iter()
        .filter(|s| !STATES.contains(&s.as_str()))
        .cloned()
        .collect();
    let now = now_ms();
    let mut states = Vec::new();
    for shard in ctx.mesh.call_all(tm::ListTxns {}).await {
        let Ok(entries) = shard else {
            return ListTransactionsResponse::default()
                .with_error_code(ErrorCode::CoordinatorNotAvailable.code());
        };
        for e in entries {
            let state = state_name(e.phase);
            let by_state = req.state_filters.is_empty()
                || req.state_filters.iter().any(|s| s.as_str() == state);
            let by_producer = req.producer_id_filters.is_empty()
                || req.producer_id_filters.contains(&ProducerId(e.producer_id));
            let by_duration = req.duration_filter < 0
                || (e.phase == txn::Phase::Ongoing && now - e.started_ms >= req.duration_filter);
            let described = az.transactional_id(&e.transactional_id, DESCRIBE).is_ok();
            if by_state && by_producer && by_duration && described {
                states.push(
                    TransactionState::default()
                        .with_transactional_id(TransactionalId(StrBytes::from_string(
                            e.transactional_id,
                        )))
                        .with_producer_id(ProducerId(e.producer_id))
                        .with_transaction_state(StrBytes::from_static_str(state)),
                );
            }
        }
    }
    states.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}
