//! Producers: producer id allocation (InitProducerId), the per-partition
//! idempotence and transaction state (`state`, saved and replayed by `recovery`), and
//! the partition side of transactions: markers, last stable offset, aborted
//! transactions (`txn`).

pub mod recovery;
pub mod state;
pub mod txn;

use std::cell::Cell;
use std::rc::Rc;

use rkyv::{Archive, Deserialize, Serialize};

use crate::meta::store;
use crate::protocol::errors::{self, KafkaError};
use crate::shard::controller::CONTROLLER_SHARD;
use crate::shard::Shard;

/// Producer ids are handed to shards in blocks; the controller saves the end of the
/// last block it gave out before handing it over, so ids are never reused.
pub const ID_BLOCK: i64 = 1000;

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct IdBlockRecord {
    /// The first id not yet handed out.
    pub next: i64,
}

/// A shard's current block of producer ids: `next..end`.
#[derive(Default)]
pub struct IdBlock {
    next: Cell<i64>,
    end: Cell<i64>,
    /// Controller only: the first id it has not handed out (None until loaded).
    controller_next: Cell<Option<i64>>,
}

fn path(shard: &Shard) -> std::path::PathBuf {
    shard
        .config
        .data_dir
        .join("meta")
        .join("producer-ids.state")
}

impl Shard {
    /// A producer id never handed out before, durably.
    pub async fn new_producer_id(self: &Rc<Self>) -> Result<i64, KafkaError> {
        let b = &self.producer_ids;
        if b.next.get() >= b.end.get() {
            let start = self
                .invoke_on(
                    CONTROLLER_SHARD,
                    |c| async move { c.allocate_id_block().await },
                )
                .await
                .map_err(|_| {
                    KafkaError::new(errors::UNKNOWN_SERVER_ERROR, "broker is shutting down")
                })??;
            b.next.set(start);
            b.end.set(start + ID_BLOCK);
        }
        let id = b.next.get();
        b.next.set(id + 1);
        Ok(id)
    }

    /// On the controller: the start of a fresh block, saved before it is returned.
    async fn allocate_id_block(self: &Rc<Self>) -> Result<i64, KafkaError> {
        let _permit = self.controller_lock.acquire_permit(1).await;
        let storage =
            |e: store::StateError| KafkaError::new(errors::KAFKA_STORAGE_ERROR, e.to_string());
        let p = path(self);
        let start = match self.producer_ids.controller_next.get() {
            Some(n) => n,
            None => store::load::<IdBlockRecord>(&p)
                .map_err(storage)?
                .map(|r| r.next)
                .unwrap_or(0),
        };
        let next = start + ID_BLOCK;
        store::save(&p, &IdBlockRecord { next })
            .await
            .map_err(storage)?;
        self.producer_ids.controller_next.set(Some(next));
        Ok(start)
    }
}
