//! The cross-shard mesh: typed messages to a named service on another shard.
//!
//! Every call that crosses cores is a [`Message`]: a struct declared in the
//! `messages.rs` of the part that answers it, naming the service type that handles it on
//! the target shard and the type of its reply (as Redpanda's
//! `partition_manager.invoke_on(shard, …)`, but with the operation a named type). So the
//! list of what crosses cores is the list of `impl Message` blocks, and each hop is
//! counted by message name (`Mesh::hops`, at `/metrics`).
//!
//! `Mesh::call(target, msg)` runs the message inline when the target is this shard (no
//! hop, no allocation for the trip) and otherwise sends it over glommio's channel mesh
//! (one SPSC channel per ordered pair of shards). Both the message and its reply travel
//! over the mesh: glommio wakes a peer through its own notifier, and the reply completes
//! a oneshot on the caller's own thread. No `Waker` ever crosses threads — glommio 0.9's
//! foreign-waker path races the task's reference count (it crashed the broker with
//! double frees under load). A hop costs a cross-core wake-up (~45 µs measured here), so
//! callers keep the common case local.

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::rc::Rc;

use futures_channel::oneshot;
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use glommio::channels::channel_mesh::{Receivers, Senders};

use super::fifo_gate::FifoGate;
use crate::kafka::ShardId;

/// An operation on a service of one shard, sent from any shard.
pub trait Message: Send + Sized + 'static {
    /// The service that answers the message on the target shard.
    type Service: 'static;
    /// What the caller gets back.
    type Reply: Send + 'static;
    /// The message's name in metrics and logs.
    const NAME: &'static str;
    /// Runs on the target shard, with that shard's instance of the service.
    fn handle(self, service: Rc<Self::Service>) -> impl Future<Output = Self::Reply> + 'static;
}

/// Declares a message a service answers: a struct with public fields and its `Message`
/// impl, the body run on the owner with the service as `$svc` and the message as `$m`.
/// Used only in a part's `messages.rs` (checked by `scripts/check_layers.py`), so those
/// files stay the list of what crosses cores.
///
/// ```text
/// crate::message! { Coordinator;
///     /// Doc of the message.
///     Join { group: String } -> Result<(), ErrorCode>, "group.join", |c, m| c.join(m.group).await
/// }
/// ```
#[macro_export]
macro_rules! message {
    ($service:ty; $(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? } -> $reply:ty,
     $label:literal, |$c:ident, $m:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name { $(pub $field: $ty),* }

        impl $crate::runtime::Message for $name {
            type Service = $service;
            type Reply = $reply;
            const NAME: &'static str = $label;

            async fn handle(self, $c: std::rc::Rc<$service>) -> Self::Reply {
                let $m = self;
                $body
            }
        }
    };
}

/// Why a call got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshError {
    /// A shard is gone (only during shutdown).
    Closed,
    /// The target shard has no such service (a wiring bug in `broker.rs`).
    NoService(&'static str),
}

impl std::fmt::Display for MeshError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MeshError::Closed => write!(f, "shard mesh closed"),
            MeshError::NoService(m) => write!(f, "no service answers {m} on the target shard"),
        }
    }
}

impl std::error::Error for MeshError {}

/// A reply, type-erased for the trip back.
type Reply = Box<dyn Any + Send>;
/// A message boxed with its handler, run on the target shard against its services.
type Job = Box<dyn FnOnce(&Services) -> Result<LocalBoxFuture<'static, Reply>, MeshError> + Send>;

/// What travels on the mesh.
pub enum Envelope {
    Call {
        id: u64,
        from: ShardId,
        job: Job,
    },
    Reply {
        id: u64,
        value: Result<Reply, MeshError>,
    },
}

/// The services of one shard, found by type. Registered once at start-up by
/// `broker.rs`; read by every message that arrives.
#[derive(Default)]
pub struct Services {
    map: RefCell<HashMap<TypeId, Rc<dyn Any>>>,
}

impl Services {
    fn get<S: 'static>(&self) -> Option<Rc<S>> {
        let any = self.map.borrow().get(&TypeId::of::<S>())?.clone();
        any.downcast::<S>().ok()
    }
}

pub struct Mesh {
    shard: ShardId,
    senders: Senders<Envelope>,
    /// One per peer: calls to a peer leave in the order they were made. glommio's
    /// channel lets a new sender overtake blocked ones, and wakes blocked senders in
    /// reverse order, when a full channel drains; pipelined Produce requests of one
    /// connection to a partition of that peer must not be reordered.
    send_order: Vec<FifoGate>,
    next_id: Cell<u64>,
    /// Calls of this shard waiting for their reply, by id.
    pending: RefCell<HashMap<u64, oneshot::Sender<Result<Reply, MeshError>>>>,
    services: Services,
    /// Calls sent to other shards, by message name.
    hops: RefCell<BTreeMap<&'static str, u64>>,
}

impl Mesh {
    pub fn new(shard: ShardId, senders: Senders<Envelope>) -> Mesh {
        let peers = senders.nr_consumers();
        Mesh {
            shard,
            send_order: (0..peers).map(|_| FifoGate::default()).collect(),
            senders,
            next_id: Cell::new(0),
            pending: RefCell::new(HashMap::new()),
            services: Services::default(),
            hops: RefCell::new(BTreeMap::new()),
        }
    }

    /// This shard.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// How many shards there are.
    pub fn shards(&self) -> usize {
        self.senders.nr_consumers()
    }

    /// Every shard, in order.
    pub fn all(&self) -> impl Iterator<Item = ShardId> {
        (0..self.shards()).map(ShardId)
    }

    /// Make `service` answer the messages addressed to its type on this shard.
    pub fn register<S: 'static>(&self, service: Rc<S>) {
        self.services
            .map
            .borrow_mut()
            .insert(TypeId::of::<S>(), service as Rc<dyn Any>);
    }

    /// Send `msg` to its service on `target` and wait for the reply; inline when
    /// `target` is this shard.
    pub async fn call<M: Message>(&self, target: ShardId, msg: M) -> Result<M::Reply, MeshError> {
        if target == self.shard {
            let service = self
                .services
                .get::<M::Service>()
                .ok_or(MeshError::NoService(M::NAME))?;
            return Ok(msg.handle(service).await);
        }
        *self.hops.borrow_mut().entry(M::NAME).or_default() += 1;
        let job: Job = Box::new(move |services: &Services| {
            let service = services
                .get::<M::Service>()
                .ok_or(MeshError::NoService(M::NAME))?;
            Ok(async move { Box::new(msg.handle(service).await) as Reply }.boxed_local())
        });
        let reply = self.send(target, job).await?;
        // The job above boxed an `M::Reply`, so the downcast cannot fail.
        reply
            .downcast::<M::Reply>()
            .map(|r| *r)
            .map_err(|_| MeshError::NoService(M::NAME))
    }

    /// Send a copy of `msg` to every shard (this one inline) and wait for every reply,
    /// in shard order.
    pub async fn call_all<M: Message + Clone>(&self, msg: M) -> Vec<Result<M::Reply, MeshError>> {
        let calls = self.all().map(|s| self.call(s, msg.clone()));
        futures_util::future::join_all(calls).await
    }

    async fn send(&self, target: ShardId, job: Job) -> Result<Reply, MeshError> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        // If this future is dropped, the reply finds no waiter and is discarded.
        let guard = PendingGuard { mesh: self, id };
        let gate = self.send_order.get(target.0).ok_or(MeshError::Closed)?;
        let in_order = gate.lock().await;
        let call = Envelope::Call {
            id,
            from: self.shard,
            job,
        };
        if self.senders.send_to(target.0, call).await.is_err() {
            return Err(MeshError::Closed);
        }
        drop(in_order);
        let r = rx.await.map_err(|_| MeshError::Closed);
        drop(guard);
        r?
    }

    /// Calls sent to other shards so far, by message name.
    pub fn hops(&self) -> Vec<(&'static str, u64)> {
        self.hops.borrow().iter().map(|(k, v)| (*k, *v)).collect()
    }

    fn resolve(&self, id: u64, value: Result<Reply, MeshError>) {
        if let Some(tx) = self.pending.borrow_mut().remove(&id) {
            let _ = tx.send(value);
        }
    }

    /// Stop: no more calls out, pending ones fail, and the services are let go (they
    /// may hold the mesh themselves).
    pub fn close(&self) {
        self.senders.close();
        self.pending.borrow_mut().clear();
        self.services.map.borrow_mut().clear();
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

/// One task per peer: run every message it sends, each in its own task so a slow one
/// (a long-polling fetch) never holds up the next, and route replies to their callers.
pub fn serve_peers(mut receivers: Receivers<Envelope>, mesh: Rc<Mesh>) {
    for (_peer, stream) in receivers.streams() {
        let mesh = mesh.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = stream.recv().await {
                match msg {
                    Envelope::Reply { id, value } => mesh.resolve(id, value),
                    Envelope::Call { id, from, job } => {
                        let mesh = mesh.clone();
                        glommio::spawn_local(async move {
                            let value = match job(&mesh.services) {
                                Ok(fut) => Ok(fut.await),
                                Err(e) => Err(e),
                            };
                            // The caller may be gone (shutdown): nothing to do then.
                            let reply = Envelope::Reply { id, value };
                            let _ = mesh.senders.send_to(from.0, reply).await;
                        })
                        .detach();
                    }
                }
            }
        })
        .detach();
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::{Arc, Mutex};

    use glommio::channels::channel_mesh::MeshBuilder;
    use glommio::{LocalExecutorBuilder, Placement};

    use super::*;

    /// A service that remembers which shard it lives on and what it was sent.
    struct Counter {
        shard: usize,
        seen: Cell<u64>,
        order: RefCell<Vec<u64>>,
    }

    #[derive(Clone)]
    struct Add(u64);

    impl Message for Add {
        type Service = Counter;
        type Reply = (usize, u64);
        const NAME: &'static str = "test.add";

        async fn handle(self, c: Rc<Counter>) -> Self::Reply {
            c.seen.set(c.seen.get() + self.0);
            c.order.borrow_mut().push(self.0);
            (c.shard, c.seen.get())
        }
    }

    struct Unregistered;

    struct Ping;

    impl Message for Ping {
        type Service = Unregistered;
        type Reply = ();
        const NAME: &'static str = "test.ping";

        async fn handle(self, _: Rc<Unregistered>) {}
    }

    /// Two shards joined by a real channel mesh; `body` runs on shard 0 while shard 1
    /// serves until shard 0 is done.
    fn two_shards<F, Fut>(body: F) -> Vec<u64>
    where
        F: FnOnce(Rc<Mesh>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let builder: MeshBuilder<Envelope, _> = MeshBuilder::full(2, 16);
        let done = Arc::new(Barrier2::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        let mut body = Some(body);
        for id in 0..2usize {
            let builder = builder.clone();
            let done = done.clone();
            let order = order.clone();
            let body = if id == 0 { body.take() } else { None };
            let h = LocalExecutorBuilder::new(Placement::Unbound)
                .io_memory(1 << 20)
                .spawn(move || async move {
                    let (senders, receivers) = builder.join().await.unwrap();
                    let mesh = Rc::new(Mesh::new(ShardId(id), senders));
                    let counter = Rc::new(Counter {
                        shard: id,
                        seen: Cell::new(0),
                        order: RefCell::new(Vec::new()),
                    });
                    mesh.register(counter.clone());
                    serve_peers(receivers, mesh.clone());
                    if let Some(body) = body {
                        body(mesh.clone()).await;
                        done.0.store(true, std::sync::atomic::Ordering::Release);
                    } else {
                        while !done.0.load(std::sync::atomic::Ordering::Acquire) {
                            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                        }
                        *order.lock().unwrap() = counter.order.borrow().clone();
                    }
                    mesh.close();
                })
                .unwrap();
            handles.push(h);
        }
        for h in handles {
            h.join().unwrap();
        }
        let v = order.lock().unwrap().clone();
        v
    }

    #[derive(Default)]
    struct Barrier2(std::sync::atomic::AtomicBool);

    #[test]
    fn a_local_call_runs_inline_and_a_remote_one_is_one_hop_counted_by_name() {
        two_shards(|mesh| async move {
            assert_eq!(mesh.call(ShardId(0), Add(5)).await.unwrap(), (0, 5));
            assert!(mesh.hops().is_empty(), "a local call is no hop");
            assert_eq!(mesh.call(ShardId(1), Add(7)).await.unwrap(), (1, 7));
            assert_eq!(mesh.hops(), vec![("test.add", 1)]);
            let all = mesh.call_all(Add(1)).await;
            let all: Vec<_> = all.into_iter().map(|r| r.unwrap()).collect();
            assert_eq!(all, vec![(0, 6), (1, 8)], "every shard, in shard order");
            assert_eq!(
                mesh.call(ShardId(1), Ping).await.unwrap_err(),
                MeshError::NoService("test.ping"),
                "a service the target does not have is an error, not a panic"
            );
        });
    }

    #[test]
    fn calls_from_one_shard_to_another_arrive_in_the_order_they_were_made() {
        // More calls than the channel holds, made concurrently: some wait for room.
        let order = two_shards(|mesh| async move {
            let calls = (0..200u64).map(|i| mesh.call(ShardId(1), Add(i)));
            for r in futures_util::future::join_all(calls).await {
                r.unwrap();
            }
        });
        assert_eq!(order, (0..200).collect::<Vec<_>>());
    }
}
