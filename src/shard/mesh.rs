//! The cross-shard mesh: every shard can run a closure on any other shard and await
//! its result. Built on glommio's channel mesh (one SPSC channel per ordered pair of
//! shards). Both the job and its reply travel over the mesh: glommio wakes a peer
//! through its own notifier, and the reply completes a oneshot on the caller's own
//! thread. No `Waker` ever crosses threads — glommio 0.9's foreign-waker path races
//! the task's reference count (it crashed the broker with double frees under load).
//! A hop costs a cross-core wake-up (~45 µs measured here), so callers keep the common
//! case local.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use futures_channel::oneshot;
use glommio::channels::channel_mesh::{Receivers, Senders};

use super::Shard;
use crate::fifo_gate::FifoGate;

/// A job's result, type-erased for the trip back.
pub type Reply = Box<dyn Any + Send>;

/// Work sent to another shard: runs there with that shard's state.
pub type Job = Box<dyn FnOnce(Rc<Shard>) -> Pin<Box<dyn Future<Output = Reply>>> + Send>;

/// What travels on the mesh.
pub enum Msg {
    Call { id: u64, from: usize, job: Job },
    Reply { id: u64, value: Reply },
}

/// The mesh closed: a shard is gone (only during shutdown).
#[derive(Debug, Clone, Copy)]
pub struct MeshClosed;

impl std::fmt::Display for MeshClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard mesh closed")
    }
}

pub struct Mesh {
    senders: Senders<Msg>,
    /// One per peer: calls to a peer leave in the order they were made. glommio's
    /// channel lets a new sender overtake blocked ones, and wakes blocked senders in
    /// reverse order, when a full channel drains; pipelined Produce requests of one
    /// connection to a partition of that peer must not be reordered.
    send_order: Vec<FifoGate>,
    next_id: Cell<u64>,
    /// Calls of this shard waiting for their reply, by id.
    pending: RefCell<HashMap<u64, oneshot::Sender<Reply>>>,
}

impl Mesh {
    pub fn new(senders: Senders<Msg>) -> Mesh {
        let peers = senders.nr_consumers();
        Mesh {
            send_order: (0..peers).map(|_| FifoGate::default()).collect(),
            senders,
            next_id: Cell::new(0),
            pending: RefCell::new(HashMap::new()),
        }
    }

    /// Run `job` on `target` and wait for its reply.
    pub async fn call(&self, from: usize, target: usize, job: Job) -> Result<Reply, MeshClosed> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        // If this future is dropped, the reply finds no waiter and is discarded.
        let guard = PendingGuard { mesh: self, id };
        let in_order = self.send_order[target].lock().await;
        if self
            .senders
            .send_to(target, Msg::Call { id, from, job })
            .await
            .is_err()
        {
            return Err(MeshClosed);
        }
        drop(in_order);
        let r = rx.await.map_err(|_| MeshClosed);
        drop(guard);
        r
    }

    fn resolve(&self, id: u64, value: Reply) {
        if let Some(tx) = self.pending.borrow_mut().remove(&id) {
            let _ = tx.send(value);
        }
    }

    pub fn close(&self) {
        self.senders.close();
        self.pending.borrow_mut().clear();
    }
}

/// Forgets a pending call when its caller goes away.
struct PendingGuard<'a> {
    mesh: &'a Mesh,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.mesh.pending.borrow_mut().remove(&self.id);
    }
}

/// One task per peer: run every call it sends, each in its own task so a slow job
/// (a long-polling fetch) never holds up the next, and route replies to their callers.
pub fn serve_peers(mut receivers: Receivers<Msg>, shard: Rc<Shard>) {
    for (_peer, stream) in receivers.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = stream.recv().await {
                match msg {
                    Msg::Reply { id, value } => shard.mesh.resolve(id, value),
                    Msg::Call { id, from, job } => {
                        let shard = shard.clone();
                        glommio::spawn_local(async move {
                            let value = job(shard.clone()).await;
                            // The caller may be gone (shutdown): nothing to do then.
                            let _ = shard
                                .mesh
                                .senders
                                .send_to(from, Msg::Reply { id, value })
                                .await;
                        })
                        .detach();
                    }
                }
            }
        })
        .detach();
    }
}
