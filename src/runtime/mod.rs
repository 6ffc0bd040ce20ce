//! The runtime: one glommio executor per core, pinned, and what shards share to work
//! together without locks.
//!
//! Offers:
//! - [`run`]: start the shards, hand each its [`ShardContext`], join them;
//! - [`mesh`]: typed messages to a named service on another shard (the only way to
//!   cross cores: `mesh.call(owner, msg).await`);
//! - [`Signal`] (shutdown, and the sleep of every background loop), [`Barrier`]
//!   (start-up and shutdown rendezvous), [`FifoGate`] (a lock handed out in call order);
//! - [`clock::now_ms`], Kafka's wall-clock unit; [`sync_latency`], this shard's
//!   fdatasync latencies; [`wait`], cancel-safe waits for a monotonic level to pass a
//!   target (the log's high watermark, a connection's request count).
//!
//! Only this part creates executors or crosses cores. It knows nothing of partitions,
//! groups or the protocol: `broker.rs` registers the services and gives each shard its
//! work.

pub mod barrier;
pub mod clock;
pub mod fifo_gate;
pub mod mesh;
pub mod signal;
pub mod sync_latency;
pub mod wait;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::oneshot;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};
use tracing::info;

pub use barrier::Barrier;
pub use clock::now_ms;
pub use fifo_gate::FifoGate;
pub use mesh::{Mesh, MeshError, Message};
pub use signal::Signal;

use crate::kafka::ShardId;

/// The longest a missed cross-thread wake-up can stall a shard (see `shard_main`).
const WAKE_TICK: Duration = Duration::from_millis(50);
/// Messages that may wait in one shard-to-shard channel.
const MESH_CHANNEL_CAPACITY: usize = 1024;

/// How many shards, and the io_uring buffer memory of each.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeSpec {
    pub shards: usize,
    pub io_memory_bytes: usize,
}

/// What a shard starts with: who it is, the mesh to its peers, its shutdown signal,
/// and the two rendezvous of a run.
pub struct ShardContext {
    pub id: ShardId,
    pub count: usize,
    pub mesh: Rc<Mesh>,
    pub shutdown: Rc<Signal>,
    starting: Arc<Barrier>,
    draining: Arc<Barrier>,
}

impl ShardContext {
    /// This shard has loaded its state (`ok`) or failed to: wait until every shard has.
    /// No shard should serve before: a request forwarded to an owner still recovering
    /// would find no partition there.
    pub async fn ready(&self, ok: bool) -> Result<(), String> {
        self.starting.arrive(ok);
        self.starting.wait().await
    }

    /// This shard has drained its connections: wait until every shard has, so nothing
    /// is forwarded here any more when its partitions close.
    pub async fn drained(&self) {
        self.draining.arrive(true);
        let _ = self.draining.wait().await; // no shard arrives failed here
    }
}

/// What a shard runs, from its context and its share of the start-up state.
pub type ShardMain<T> = fn(ShardContext, T) -> Pin<Box<dyn Future<Output = Result<(), String>>>>;

/// Start one pinned executor per element of `inits` (`spec.shards` of them), each running
/// `main` with its init value; `stops[i]` fires shard i's shutdown signal. Blocks until
/// every shard has exited.
pub fn run<T: Send + 'static>(
    spec: RuntimeSpec,
    inits: Vec<T>,
    stops: Vec<oneshot::Receiver<()>>,
    main: ShardMain<T>,
) -> Result<(), String> {
    let count = spec.shards;
    if inits.len() != count || stops.len() != count {
        return Err(format!("{count} shards need {count} init values and stops"));
    }
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mesh_builder: MeshBuilder<mesh::Envelope, _> =
        MeshBuilder::full(count, MESH_CHANNEL_CAPACITY);
    let starting = Arc::new(Barrier::new(count));
    let draining = Arc::new(Barrier::new(count));
    let mut handles = Vec::with_capacity(count);
    for (id, (init, stop)) in inits.into_iter().zip(stops).enumerate() {
        let placement = match cores.get(id % cores.len().max(1)) {
            Some(core) if count <= cores.len() => Placement::Fixed(core.id),
            _ => Placement::Unbound,
        };
        let start = Start {
            id: ShardId(id),
            count,
            mesh_builder: mesh_builder.clone(),
            starting: starting.clone(),
            draining: draining.clone(),
            stop,
        };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{id}"))
            .io_memory(spec.io_memory_bytes)
            .preempt_timer(Duration::from_millis(10))
            // The blocking pool runs syscalls that sleep in the kernel (file opens,
            // removals, the stepwise freeing of retired segments): left to the scheduler,
            // so that it does not take the pinned shard's own core from it.
            .blocking_thread_pool_placement(PoolPlacement::Unbound(1))
            .spawn(move || async move { shard_main(start, init, main).await })
            .map_err(|e| format!("cannot start shard {id}: {e}"))?;
        handles.push(handle);
    }
    let mut result = Ok(());
    for (id, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(format!("shard {id}: {e}")),
            Err(e) => result = Err(format!("shard {id} failed: {e}")),
        }
    }
    result
}

/// What `run` gives each executor.
struct Start {
    id: ShardId,
    count: usize,
    mesh_builder: MeshBuilder<mesh::Envelope, glommio::channels::channel_mesh::Full>,
    starting: Arc<Barrier>,
    draining: Arc<Barrier>,
    stop: oneshot::Receiver<()>,
}

async fn shard_main<T>(start: Start, init: T, main: ShardMain<T>) -> Result<(), String> {
    // glommio 0.9 can miss a wake-up sent from another thread (its blocking-syscall
    // thread, a peer shard) when the executor parks while the cores are contended: seen
    // here as a shard that never finished starting (both executors asleep in io_uring,
    // the blocking thread idle with its answer delivered). A parked executor with a
    // timer pending wakes at the timer and collects what it missed, so this tick bounds
    // such a stall to WAKE_TICK. Cost: 1000/WAKE_TICK_MS wake-ups a second per shard.
    glommio::spawn_local(async {
        loop {
            glommio::timer::sleep(WAKE_TICK).await;
        }
    })
    .detach();
    let (senders, receivers) = start
        .mesh_builder
        .join()
        .await
        .map_err(|_| "cannot join the shard mesh".to_string())?;
    let mesh = Rc::new(Mesh::new(start.id, senders));
    mesh::serve_peers(receivers, mesh.clone());
    let shutdown = Rc::new(Signal::default());
    {
        let shutdown = shutdown.clone();
        let stop = start.stop;
        glommio::spawn_local(async move {
            let _ = stop.await;
            shutdown.fire();
        })
        .detach();
    }
    let ctx = ShardContext {
        id: start.id,
        count: start.count,
        mesh: mesh.clone(),
        shutdown,
        starting: start.starting,
        draining: start.draining,
    };
    let result = main(ctx, init).await;
    mesh.close();
    info!(shard = start.id.0, "shard stopped");
    result
}

/// Runs a test body on a fresh glommio executor, with io memory sized for tests (the
/// locked-memory limit is 8 MiB here): the one runner of every part's tests (and of the
/// fuzz targets that need an executor).
#[cfg(any(test, fuzzing))]
pub(crate) fn test_run<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(f)
        .expect("executor starts")
        .join()
        .expect("test body ran");
}
