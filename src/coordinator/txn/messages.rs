//! What other shards may ask of the transaction coordinator: every transaction request
//! that crosses cores is one of these messages, answered on the transactional id's
//! owner shard (`owner_shard`); another shard answers NOT_COORDINATOR.

use super::operations::TxnCommit;
use super::Coordinator;
use crate::kafka::ErrorCode;

fn owned(c: &Coordinator, id: &str) -> Result<(), ErrorCode> {
    if c.owns(id) {
        Ok(())
    } else {
        Err(ErrorCode::NotCoordinator)
    }
}

macro_rules! txn_message {
    ($($t:tt)*) => { crate::message! { Coordinator; $($t)* } };
}

txn_message! {
    /// InitProducerId with a transactional id: its producer id and a bumped epoch.
    InitProducerId {
        transactional_id: String,
        timeout_ms: i32,
        producer_id: i64,
        epoch: i16,
        version: i16,
    } -> Result<(i64, i16), ErrorCode>,
    "txn.init_producer_id", |c, m| {
        owned(&c, &m.transactional_id)?;
        c.init_producer_id(m.transactional_id, m.timeout_ms, m.producer_id, m.epoch, m.version)
            .await
    }
}

txn_message! {
    /// AddPartitionsToTxn (v0–v3): one code per partition.
    AddPartitions {
        transactional_id: String,
        producer_id: i64,
        epoch: i16,
        topics: Vec<(String, Vec<i32>)>,
        version: i16,
    } -> Result<Vec<(String, Vec<(i32, ErrorCode)>)>, ErrorCode>,
    "txn.add_partitions", |c, m| {
        owned(&c, &m.transactional_id)?;
        Ok(c.add_partitions(m.transactional_id, m.producer_id, m.epoch, m.topics, m.version)
            .await)
    }
}

txn_message! {
    /// AddOffsetsToTxn: the group's offsets will be committed with the transaction.
    AddOffsets {
        transactional_id: String,
        producer_id: i64,
        epoch: i16,
        group: String,
        version: i16,
    } -> Result<(), ErrorCode>,
    "txn.add_offsets", |c, m| {
        owned(&c, &m.transactional_id)?;
        c.add_offsets(m.transactional_id, m.producer_id, m.epoch, m.group, m.version)
            .await
    }
}

txn_message! {
    /// TxnOffsetCommit: keep the offsets with the transaction until it ends.
    CommitOffsets { commit: TxnCommit, version: i16 }
        -> Result<Vec<(String, Vec<(i32, ErrorCode)>)>, ErrorCode>,
    "txn.offset_commit", |c, m| {
        owned(&c, &m.commit.id)?;
        c.txn_offset_commit(m.commit, m.version).await
    }
}

txn_message! {
    /// EndTxn: commit or abort the open transaction.
    EndTxn {
        transactional_id: String,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        version: i16,
    } -> Result<(), ErrorCode>,
    "txn.end", |c, m| {
        owned(&c, &m.transactional_id)?;
        c.end_txn(m.transactional_id, m.producer_id, m.epoch, m.commit, m.version)
            .await
    }
}

txn_message! {
    /// OffsetFetch with require_stable (KIP-447): the partitions of `group` with an
    /// offset in a transaction of this shard that has not ended (sent to every shard).
    PendingOffsets { group: String } -> Vec<(String, i32)>,
    "txn.pending_offsets", |c, m| c.pending_partitions(&m.group)
}

txn_message! {
    /// ListTransactions (KIP-664): every transactional id this shard coordinates (sent to
    /// every shard; the caller filters).
    ListTxns {} -> Vec<super::TxnEntry>,
    "txn.list", |c, _m| c.entries()
}

txn_message! {
    /// DescribeTransactions (KIP-664): the state of one transactional id, on its owner.
    DescribeTxn { transactional_id: String } -> Result<Option<super::TxnEntry>, ErrorCode>,
    "txn.describe", |c, m| {
        owned(&c, &m.transactional_id)?;
        Ok(c.entry(&m.transactional_id))
    }
}
