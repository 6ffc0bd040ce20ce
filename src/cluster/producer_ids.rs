//! Producer ids (InitProducerId): handed to shards in blocks by the controller, which
//! saves the end of the last block it gave out before handing it over, so an id is
//! never handed out twice, across restarts too.

use std::cell::Cell;

use rkyv::{Archive, Deserialize, Serialize};

/// Ids per block.
pub const ID_BLOCK: i64 = 1000;

/// What `<data-dir>/meta/producer-ids.state` holds.
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
}

impl IdBlock {
    /// The next id of the block, or None when it is used up.
    pub fn take(&self) -> Option<i64> {
        let id = self.next.get();
        if id >= self.end.get() {
            return None;
        }
        self.next.set(id + 1);
        Some(id)
    }

    /// Start using the block that begins at `start`.
    pub fn refill(&self, start: i64) {
        self.next.set(start);
        self.end.set(start + ID_BLOCK);
    }
}
