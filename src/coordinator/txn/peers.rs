//! The transaction coordinator's narrow handle on the rest of the broker: the topics, new
//! producer ids, and the three things it asks of other owners — allow a producer on a
//! partition, write a marker there, commit a group's offsets. `MeshPeers` does them with
//! the messages of `partition` and `coordinator::group`; tests may give the coordinator
//! something else.

use std::rc::Rc;
use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;

use crate::cluster::{Cluster, Registry};
use crate::coordinator::group::messages::CommitTxnOffsets;
use crate::coordinator::group::{owner_shard as group_owner, CommitRequest, TopicCodes};
use crate::kafka::{ErrorCode, KafkaError, TopicPartition};
use crate::partition::messages::{AllowTxn, WriteMarker};
use crate::runtime::{Mesh, MeshError};

/// A transaction marker to write: which producer's transaction ends, and how.
#[derive(Debug, Clone, Copy)]
pub struct Marker {
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
}

/// What the coordinator needs from outside its own state.
pub trait Peers {
    /// The topics as this shard sees them now.
    fn registry(&self) -> Arc<Registry>;
    /// A producer id never handed out before.
    fn new_producer_id(&self) -> LocalBoxFuture<'_, Result<i64, KafkaError>>;
    /// The producer (id, epoch) may write transactional batches to `tp` until its next
    /// marker there (KIP-890's verification).
    fn allow_txn(
        &self,
        tp: TopicPartition,
        producer_id: i64,
        epoch: i16,
    ) -> LocalBoxFuture<'_, Result<(), KafkaError>>;
    /// Write `marker` to `tp`, durably (a deleted partition has nothing to mark: Ok).
    fn write_marker(
        &self,
        tp: TopicPartition,
        marker: Marker,
    ) -> LocalBoxFuture<'_, Result<(), KafkaError>>;
    /// Commit a committed transaction's offsets to their group.
    fn commit_offsets(
        &self,
        request: CommitRequest,
    ) -> LocalBoxFuture<'_, Result<TopicCodes, ErrorCode>>;
}

/// The real peers: other shards over the mesh.
pub struct MeshPeers {
    pub mesh: Rc<Mesh>,
    pub cluster: Rc<Cluster>,
}

fn owner_gone(_: MeshError) -> KafkaError {
    KafkaError::new(
        ErrorCode::NotLeaderOrFollower,
        "the owner shard is shutting down",
    )
}

impl MeshPeers {
    fn owner(&self, tp: &TopicPartition) -> Result<crate::kafka::ShardId, KafkaError> {
        self.cluster
            .registry()
            .topic(&tp.topic)
            .and_then(|m| m.owner(tp.partition))
            .ok_or_else(|| {
                KafkaError::new(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("partition {tp} does not exist"),
                )
            })
    }
}

impl Peers for MeshPeers {
    fn registry(&self) -> Arc<Registry> {
        self.cluster.registry()
    }

    fn new_producer_id(&self) -> LocalBoxFuture<'_, Result<i64, KafkaError>> {
        self.cluster.new_producer_id().boxed_local()
    }

    fn allow_txn(
        &self,
        tp: TopicPartition,
        producer_id: i64,
        epoch: i16,
    ) -> LocalBoxFuture<'_, Result<(), KafkaError>> {
        async move {
            let owner = self.owner(&tp)?;
            let msg = AllowTxn {
                topic: tp.topic,
                partition: tp.partition,
                producer_id,
                epoch,
            };
            self.mesh.call(owner, msg).await.map_err(owner_gone)?
        }
        .boxed_local()
    }

    fn write_marker(
        &self,
        tp: TopicPartition,
        marker: Marker,
    ) -> LocalBoxFuture<'_, Result<(), KafkaError>> {
        async move {
            // A partition deleted since it joined the transaction has nothing to mark.
            let Ok(owner) = self.owner(&tp) else {
                return Ok(());
            };
            let msg = WriteMarker {
                topic: tp.topic,
                partition: tp.partition,
                producer_id: marker.producer_id,
                epoch: marker.epoch,
                commit: marker.commit,
                coordinator_epoch: 0,
            };
            self.mesh.call(owner, msg).await.map_err(owner_gone)?
        }
        .boxed_local()
    }

    fn commit_offsets(
        &self,
        request: CommitRequest,
    ) -> LocalBoxFuture<'_, Result<TopicCodes, ErrorCode>> {
        async move {
            let owner = group_owner(&request.group, self.mesh.shards());
            self.mesh
                .call(owner, CommitTxnOffsets { request })
                .await
                .map_err(|e| owner_gone(e).code)?
        }
        .boxed_local()
    }
}
