//! DescribeTransactions (KIP-664): the state of each transactional id, asked of its
//! coordinator (kafka-transactions.sh describe).

use futures_util::future::join_all;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use std::collections::BTreeMap;

use super::list_transactions::state_name;
use super::*;

pub async fn describe_transactions(
    ctx: &Context,
    az: &Authz<'_>,
    req: DescribeTransactionsRequest,
    _version: i16,
) -> DescribeTransactionsResponse {
    let work = req.transactional_ids.into_iter().map(|id| async move {
        let name = id.to_string();
        let msg = tm::DescribeTxn {
            transactional_id: name.clone(),
        };
        let out = TransactionState::default().with_transactional_id(id);
        if let Err(e) = az.transactional_id(&name, DESCRIBE) {
            return out.with_error_code(e.code.code());
        }
        match on_txn(ctx, &name, msg).await {
            Ok(Some(e)) => described(out, e),
            Ok(None) => out.with_error_code(ErrorCode::TransactionalIdNotFound.code()),
            Err(code) => out.with_error_code(code.code()),
        }
    });
    DescribeTransactionsResponse::default().with_transaction_states(join_all(work).await)
}

fn described(out: TransactionState, e: txn::TxnEntry) -> TransactionState {
    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in &e.partitions {
        topics.entry(t.clone()).or_default().push(*p);
    }
    let open = !matches!(e.phase, txn::Phase::Empty);
    out.with_transaction_state(StrBytes::from_static_str(state_name(e.phase)))
        .with_transaction_timeout_ms(e.timeout_ms)
        .with_transaction_start_time_ms(if open { e.started_ms } else { -1 })
        .with_producer_id(ProducerId(e.producer_id))
        .with_producer_epoch(e.epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    TopicData::default()
                        .with_topic(TopicName(StrBytes::from_string(t)))
                        .with_partitions(ps)
                })
                .collect(),
        )
}
