//! Transaction requests (KIP-98), one file each: AddPartitionsToTxn, AddOffsetsToTxn,
//! TxnOffsetCommit and EndTxn, each sent to the transactional id's coordinator
//! (`coordinator::txn::owner_shard`) as a message of `coordinator::txn::messages`.
//! InitProducerId with a transactional id comes through `init_producer_id`. The
//! KIP-664 views: DescribeProducers (on the partitions' owners), ListTransactions and
//! DescribeTransactions (on the coordinators).

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod describe_producers;
mod describe_transactions;
mod end_txn;
mod list_transactions;
mod txn_offset_commit;

use crate::coordinator::group::messages::ValidateCommit;
use crate::coordinator::group::{self, CommitRequest, TopicCodes};
use crate::coordinator::txn::{self, messages as tm};
use crate::kafka::ErrorCode;
use crate::protocol::authorized::{Authz, DESCRIBE, READ, WRITE};
use crate::protocol::context::Context;
use crate::protocol::route::coordinator_gone;
use crate::runtime::Message;
pub use add_offsets_to_txn::add_offsets;
pub use add_partitions_to_txn::add_partitions;
pub use describe_producers::describe_producers;
pub use describe_transactions::describe_transactions;
pub use end_txn::end_txn;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
pub use list_transactions::list_transactions;
pub use txn_offset_commit::txn_offset_commit;

/// Send `msg` to the coordinator of transactional id `id`; a shard shutting down
/// answers NOT_COORDINATOR, so the client looks for the coordinator again.
pub(crate) async fn on_txn<M, T>(ctx: &Context, id: &str, msg: M) -> Result<T, ErrorCode>
where
    M: Message<Reply = Result<T, ErrorCode>>,
{
    let owner = txn::owner_shard(id, ctx.shards());
    ctx.mesh.call(owner, msg).await.map_err(coordinator_gone)?
}
