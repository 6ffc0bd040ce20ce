//! What every handler of one shard works with (`Context`), and the fetch budget its
//! connections hold copied record bytes against.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use crate::cluster::Cluster;
use crate::config::BrokerConfig;
use crate::kafka::ShardId;
use crate::metrics::ShardMetrics;
use crate::runtime::{Mesh, Signal};

/// What the handlers of one shard work with: this shard's view of the cluster, the mesh
/// to the owners, its metrics and its fetch budget. Built once per shard by `broker.rs`.
pub struct Context {
    pub config: Arc<BrokerConfig>,
    pub cluster: Rc<Cluster>,
    pub mesh: Rc<Mesh>,
    pub metrics: Rc<ShardMetrics>,
    pub shutdown: Rc<Signal>,
    /// Copied fetch bytes this shard holds until they are sent (`fetch`).
    pub fetch_budget: FetchBudget,
    /// Share sessions of the members fetching on this shard (KIP-932).
    pub share_sessions: crate::protocol::share::session::Sessions,
    /// The sequence number of the last fetch parked on the owners from here.
    pub fetch_waits: Cell<u64>,
}

impl Context {
    pub fn shard(&self) -> ShardId {
        self.mesh.shard()
    }

    pub fn shards(&self) -> usize {
        self.mesh.shards()
    }

    /// A new id for a fetch parked on the owners.
    pub fn next_fetch_wait(&self) -> crate::partition::long_poll::WaitId {
        let seq = self.fetch_waits.get() + 1;
        self.fetch_waits.set(seq);
        crate::partition::long_poll::WaitId {
            shard: self.shard(),
            seq,
        }
    }
}

/// Copied fetch bytes a shard's connections hold until they are sent: the bytes are
/// read on the partitions' owners but held and dropped here, on the connection's shard,
/// so the count needs no atomics. `fetch_budget_bytes_per_shard` bounds it.
pub struct FetchBudget {
    limit: usize,
    held: Rc<Cell<usize>>,
}

impl FetchBudget {
    pub fn new(limit: usize) -> FetchBudget {
        FetchBudget {
            limit,
            held: Rc::new(Cell::new(0)),
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.get()
    }

    /// Reserve what is left of the budget for a read. `empty_before`: nothing was held,
    /// so the read may go over it once (consumers always progress).
    pub(crate) fn reserve(&self) -> FetchHold {
        let held = self.held.get();
        let bytes = self.limit.saturating_sub(held);
        self.held.set(held + bytes);
        FetchHold {
            held: self.held.clone(),
            bytes,
            empty_before: held == 0,
        }
    }
}

/// Bytes of the fetch budget held by one response until it is sent (dropped).
pub struct FetchHold {
    held: Rc<Cell<usize>>,
    pub(crate) bytes: usize,
    pub(crate) empty_before: bool,
}

impl FetchHold {
    /// Keep exactly `bytes` (what the reads copied) and give the rest back.
    pub(crate) fn settle(&mut self, bytes: usize) {
        let held = self.held.get() - self.bytes + bytes;
        self.held.set(held);
        self.bytes = bytes;
    }
}

impl Drop for FetchHold {
    fn drop(&mut self) {
        self.held.set(self.held.get().saturating_sub(self.bytes));
    }
}

/// Who sent a group membership request: the header's client id, and the host the way
/// Kafka describes a member's (`InetAddress.toString()`, "/127.0.0.1").
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub id: String,
    pub host: String,
}
