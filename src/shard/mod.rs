//! Shards: one glommio executor per core, pinned. Each shard owns some partitions
//! (and, later, groups and transactional ids); only the owner touches their state.
//! Other shards reach them with `Shard::invoke_on`, a visible hop over the mesh.
//!
//! Only this module creates executors or crosses cores.

pub mod controller;
pub mod mesh;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::oneshot;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};
use tracing::{error, info, warn};

use crate::config::BrokerConfig;
use crate::log::{LogError, PartitionLog};
use crate::meta::{partition_dir, Registry, TopicConfigDefaults, TopicMeta};
use crate::metrics::ShardMetrics;
use crate::producer::state::ProducerTable;
use crate::producer::IdBlock;
pub use mesh::MeshClosed;
use mesh::{Job, Mesh, Msg};

/// The longest a missed cross-thread wake-up can stall a shard (see `shard_main`).
const WAKE_TICK: Duration = Duration::from_millis(50);

/// Owner of partitions, groups and transactional ids: an index in `0..shards`.
pub type ShardId = usize;

/// A one-shot broadcast that local tasks can wait on (shutdown).
///
/// A wait registers its task's waker once, keyed, and unregisters it when dropped: loops
/// that race every read against `shutdown.wait()` (a connection reads thousands of times)
/// must not leave a waker behind per iteration. They did once, and ~32k leftover clones
/// of one task's waker overflowed glommio's 16-bit task refcount, which panicked inside
/// glommio's wake-up and hung the shard (found by `sluice bench` at 10k Produce
/// requests/s on one connection).
#[derive(Default)]
pub struct Signal {
    fired: Cell<bool>,
    next_id: Cell<u64>,
    waiters: RefCell<HashMap<u64, std::task::Waker>>,
}

impl Signal {
    pub fn fire(&self) {
        self.fired.set(true);
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, w) in waiters {
            w.wake();
        }
    }

    pub fn is_fired(&self) -> bool {
        self.fired.get()
    }

    /// Resolves once `fire` was called; cancel-safe (dropping it unregisters it).
    pub fn wait(&self) -> SignalWait<'_> {
        SignalWait {
            signal: self,
            id: None,
        }
    }

    /// Sleeps for `d`: true when the time passed, false if the signal fired first (the
    /// pace of every background loop, which must stop at shutdown).
    pub async fn sleep(&self, d: std::time::Duration) -> bool {
        let sleep = async {
            glommio::timer::sleep(d).await;
            true
        };
        let stop = async {
            self.wait().await;
            false
        };
        futures_lite::future::or(sleep, stop).await
    }

    /// Wakers registered right now (for tests and leak checks).
    pub fn waiter_count(&self) -> usize {
        self.waiters.borrow().len()
    }
}

/// The future of `Signal::wait`.
pub struct SignalWait<'a> {
    signal: &'a Signal,
    id: Option<u64>,
}

impl Future for SignalWait<'_> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let this = self.get_mut();
        if this.signal.fired.get() {
            if let Some(id) = this.id.take() {
                this.signal.waiters.borrow_mut().remove(&id);
            }
            return std::task::Poll::Ready(());
        }
        let id = *this.id.get_or_insert_with(|| {
            let id = this.signal.next_id.get() + 1;
            this.signal.next_id.set(id);
            id
        });
        let mut waiters = this.signal.waiters.borrow_mut();
        match waiters.get_mut(&id) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => *w = cx.waker().clone(),
            None => {
                waiters.insert(id, cx.waker().clone());
            }
        }
        std::task::Poll::Pending
    }
}

impl Drop for SignalWait<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.signal.waiters.borrow_mut().remove(&id);
        }
    }
}

/// A partition this shard owns: its log and its idempotent producers.
pub struct Partition {
    pub log: Rc<PartitionLog>,
    pub producers: RefCell<ProducerTable>,
}

/// Owned partitions by topic name, then partition index.
type OwnedLogs = HashMap<Arc<str>, Vec<Option<Rc<Partition>>>>;

/// The state of one shard. Lives on its executor's thread only (`Rc`, never `Send`).
pub struct Shard {
    pub id: ShardId,
    pub count: usize,
    pub config: Arc<BrokerConfig>,
    pub defaults: TopicConfigDefaults,
    registry: RefCell<Arc<Registry>>,
    /// Logs of the partitions this shard owns: topic name → partition index → log.
    logs: RefCell<OwnedLogs>,
    pub(crate) mesh: Mesh,
    pub metrics: ShardMetrics,
    pub shutdown: Signal,
    /// Serializes registry changes; used on shard 0 only (the controller).
    pub(crate) controller_lock: glommio::sync::Semaphore,
    /// Connections currently open on this shard.
    pub connections: Cell<usize>,
    /// This shard's block of producer ids (and, on the controller, the next block).
    pub producer_ids: IdBlock,
    /// The consumer groups this shard coordinates (`group::owner_shard`).
    pub groups: crate::group::Coordinator,
    /// The transactional ids this shard coordinates (`txn::owner_shard`).
    pub txns: crate::txn::Coordinator,
    /// Produce credit of this shard's connections (`net::credit`).
    pub produce_credit: Rc<crate::net::CreditPool>,
    /// Produce byte-rate quotas of this shard's clients (`net::quota`).
    pub produce_quotas: crate::net::ProduceQuotas,
}

impl Shard {
    /// The current registry snapshot.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.borrow().clone()
    }

    /// An owned partition, if this shard owns it and it is open.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Rc<Partition>> {
        let logs = self.logs.borrow();
        let p = usize::try_from(partition).ok()?;
        logs.get(topic)?.get(p)?.clone()
    }

    /// The log of an owned partition, if this shard owns it and it is open.
    pub fn log(&self, topic: &str, partition: i32) -> Option<Rc<PartitionLog>> {
        self.partition(topic, partition).map(|p| p.log.clone())
    }

    /// Every owned partition (for metrics and background work).
    pub fn owned_partitions(&self) -> Vec<(Arc<str>, i32, Rc<Partition>)> {
        let logs = self.logs.borrow();
        let mut out = Vec::new();
        for (t, parts) in logs.iter() {
            for (p, l) in parts.iter().enumerate() {
                if let Some(l) = l {
                    out.push((t.clone(), p as i32, l.clone()));
                }
            }
        }
        out
    }

    /// Every owned partition's log.
    pub fn owned_logs(&self) -> Vec<(Arc<str>, i32, Rc<PartitionLog>)> {
        self.owned_partitions()
            .into_iter()
            .map(|(t, p, part)| (t, p, part.log.clone()))
            .collect()
    }

    /// Run `f` on shard `target` with that shard's state and await its result.
    /// Local calls run inline, without a hop.
    pub async fn invoke_on<T, F, Fut>(
        self: &Rc<Self>,
        target: ShardId,
        f: F,
    ) -> Result<T, MeshClosed>
    where
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        if target == self.id {
            return Ok(f(self.clone()).await);
        }
        self.metrics
            .cross_shard_calls
            .set(self.metrics.cross_shard_calls.get() + 1);
        let job: Job = Box::new(move |shard| {
            Box::pin(async move {
                let reply: mesh::Reply = Box::new(f(shard).await);
                reply
            })
        });
        let reply = self.mesh.call(self.id, target, job).await?;
        // The job above boxed a `T`, so the downcast cannot fail.
        Ok(*reply.downcast::<T>().map_err(|_| MeshClosed)?)
    }

    /// Install a new registry snapshot: open logs of newly owned partitions, apply
    /// config changes, remove logs of deleted topics. The snapshot becomes visible
    /// only once the new partitions are open.
    pub async fn apply_registry(self: &Rc<Self>, next: Arc<Registry>) -> Result<(), LogError> {
        let prev = self.registry();
        // Topics that disappeared, or were re-created under a new id: remove their logs.
        for (name, old) in prev.topics.iter() {
            let gone = next.topic(name).map(|t| t.id != old.id).unwrap_or(true);
            if gone {
                let removed = self.logs.borrow_mut().remove(name);
                for part in removed.into_iter().flatten().flatten() {
                    if let Err(e) = part.log.remove().await {
                        warn!(topic = %name, "removing the log of a deleted topic failed: {e}");
                    }
                }
            }
        }
        for topic in next.topics.values() {
            self.open_owned(topic).await?;
        }
        *self.registry.borrow_mut() = next;
        Ok(())
    }

    async fn open_owned(&self, topic: &TopicMeta) -> Result<(), LogError> {
        for (p, &owner) in topic.partition_shards.iter().enumerate() {
            if owner != self.id {
                continue;
            }
            if let Some(log) = self.log(&topic.name, p as i32) {
                log.set_config(topic.log_config.clone());
                continue;
            }
            let dir = partition_dir(&self.config.data_dir, &topic.name, p as i32);
            let log = PartitionLog::open(&dir, topic.log_config.clone()).await?;
            let producers = RefCell::new(crate::producer::recovery::load(&log).await?);
            let log = Rc::new(Partition { log, producers });
            let mut logs = self.logs.borrow_mut();
            let parts = logs.entry(topic.name.clone()).or_default();
            if parts.len() <= p {
                parts.resize(p + 1, None);
            }
            parts[p] = Some(log);
        }
        Ok(())
    }

    /// Flush and close every owned log and save its producer state (graceful shutdown).
    pub async fn close_logs(&self) {
        for (topic, p, part) in self.owned_partitions() {
            if let Err(e) = part.log.close().await {
                error!(%topic, partition = p, "closing the log failed: {e}");
            }
            let mut table = std::mem::take(&mut *part.producers.borrow_mut());
            if let Err(e) = crate::producer::recovery::save(&part.log, &mut table).await {
                error!(%topic, partition = p, "saving producer state failed: {e}");
            }
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Shard>>> = const { RefCell::new(None) };
}

/// The shard running on this thread.
pub fn current() -> Rc<Shard> {
    CURRENT.with(|c| {
        c.borrow()
            .clone()
            .expect("shard::current() called outside a shard executor")
    })
}

/// What each shard runs once its state is ready: accept connections, serve the admin
/// endpoint, run background work, until `shutdown` fires.
pub type ShardMain = fn(Rc<Shard>) -> std::pin::Pin<Box<dyn Future<Output = ()>>>;

/// Start `config.shards` pinned executors, each loading its partitions from `registry`,
/// then running `main`. Blocks until every shard has exited; `stop` fires shutdown.
pub fn run(
    config: Arc<BrokerConfig>,
    registry: Arc<Registry>,
    main: ShardMain,
    stop: Vec<oneshot::Receiver<()>>,
) -> Result<(), String> {
    let count = config.shards;
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mesh_builder: MeshBuilder<Msg, _> = MeshBuilder::full(count, 1024);
    let mut handles = Vec::with_capacity(count);
    let draining = Arc::new(Barrier::new(count));
    let starting = Arc::new(Barrier::new(count));
    let mut groups = crate::group::recover(&config.data_dir, count)?.into_iter();
    for (id, stop) in stop.into_iter().enumerate() {
        let groups = groups.next().unwrap_or_default();
        let placement = match cores.get(id % cores.len().max(1)) {
            Some(core) if count <= cores.len() => Placement::Fixed(core.id),
            _ => Placement::Unbound,
        };
        let config = config.clone();
        let registry = registry.clone();
        let mesh_builder = mesh_builder.clone();
        let draining = draining.clone();
        let starting = starting.clone();
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{id}"))
            .io_memory(config.io_memory_bytes)
            .preempt_timer(Duration::from_millis(10))
            .spawn(move || async move {
                shard_main(ShardStart {
                    id,
                    count,
                    config,
                    registry,
                    mesh_builder,
                    main,
                    stop,
                    draining,
                    starting,
                    groups,
                })
                .await
            })
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

/// Every shard arrives, then all go on: at startup once every shard has loaded its
/// partitions and groups (if one failed, all stop), at shutdown once every shard has
/// drained its connections. Startup and shutdown only, so a short poll is fine.
struct Barrier {
    left: std::sync::atomic::AtomicUsize,
    failed: std::sync::atomic::AtomicBool,
}

impl Barrier {
    fn new(shards: usize) -> Self {
        Barrier {
            left: std::sync::atomic::AtomicUsize::new(shards),
            failed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn arrive(&self, ok: bool) {
        use std::sync::atomic::Ordering;
        if !ok {
            self.failed.store(true, Ordering::Release);
        }
        self.left.fetch_sub(1, Ordering::AcqRel);
    }

    async fn wait(&self) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        loop {
            if self.failed.load(Ordering::Acquire) {
                return Err("another shard failed".into());
            }
            if self.left.load(Ordering::Acquire) == 0 {
                return Ok(());
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Everything a shard starts from.
struct ShardStart {
    id: ShardId,
    count: usize,
    config: Arc<BrokerConfig>,
    registry: Arc<Registry>,
    mesh_builder: MeshBuilder<Msg, glommio::channels::channel_mesh::Full>,
    main: ShardMain,
    stop: oneshot::Receiver<()>,
    draining: Arc<Barrier>,
    /// Shards that have not finished loading their partitions and groups yet.
    starting: Arc<Barrier>,
    groups: crate::group::Recovered,
}

async fn shard_main(start: ShardStart) -> Result<(), String> {
    let ShardStart {
        id,
        count,
        config,
        registry,
        mesh_builder,
        main,
        stop,
        draining,
        starting,
        groups,
    } = start;
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
    let (senders, receivers) = mesh_builder
        .join()
        .await
        .map_err(|_| "cannot join the shard mesh".to_string())?;
    let produce_credit = crate::net::CreditPool::new(config.produce_budget_bytes_per_shard());
    let produce_quotas = crate::net::ProduceQuotas::new(config.producer_byte_rate);
    let shard = Rc::new(Shard {
        id,
        count,
        defaults: TopicConfigDefaults::from_broker(&config),
        config,
        registry: RefCell::new(Arc::new(Registry::default())),
        logs: RefCell::new(HashMap::new()),
        mesh: Mesh::new(senders),
        metrics: ShardMetrics::new(id),
        shutdown: Signal::default(),
        controller_lock: glommio::sync::Semaphore::new(1),
        connections: Cell::new(0),
        producer_ids: IdBlock::default(),
        groups: crate::group::Coordinator::new(),
        txns: crate::txn::Coordinator::new(),
        produce_credit,
        produce_quotas,
    });
    CURRENT.with(|c| *c.borrow_mut() = Some(shard.clone()));
    mesh::serve_peers(receivers, shard.clone());
    let loaded = async {
        shard
            .apply_registry(registry)
            .await
            .map_err(|e| format!("recovering partitions failed: {e}"))?;
        crate::group::start(&shard, groups)
            .await
            .map_err(|e| format!("loading consumer groups failed: {e}"))?;
        crate::txn::start(&shard)
            .await
            .map_err(|e| format!("loading transactions failed: {e}"))
    }
    .await;
    starting.arrive(loaded.is_ok());
    loaded?;
    info!(
        shard = id,
        partitions = shard.owned_logs().len(),
        "shard ready"
    );
    {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            let _ = stop.await;
            shard.shutdown.fire();
        })
        .detach();
    }
    // No shard accepts clients before every shard has opened its logs: a request
    // forwarded to an owner still recovering would find no partition there.
    starting.wait().await?;
    main(shard.clone()).await;
    // Other shards may still forward in-flight requests to our partitions: close the
    // logs only once every shard has drained its connections.
    draining.arrive(true);
    let _ = draining.wait().await; // no shard arrives failed here
    shard.close_logs().await;
    shard.mesh.close();
    CURRENT.with(|c| *c.borrow_mut() = None);
    info!(shard = id, "shard stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    use super::Signal;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_connection_racing_40000_reads_against_shutdown_leaves_no_waker_behind() {
        // What the read loop does: a fresh wait per read, polled once, dropped when the
        // read wins. Before the fix every iteration left a waker clone in the signal.
        let signal = Signal::default();
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        for _ in 0..40_000 {
            let mut wait = pin!(signal.wait());
            assert_eq!(wait.as_mut().poll(&mut cx), Poll::Pending);
            assert_eq!(wait.as_mut().poll(&mut cx), Poll::Pending);
        }
        assert_eq!(signal.waiter_count(), 0);
        assert_eq!(
            Arc::strong_count(&counter),
            2,
            "no clone of the task's waker is kept"
        );
    }

    #[test]
    fn fire_wakes_every_pending_wait_once_and_later_waits_are_ready() {
        let signal = Signal::default();
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut a = pin!(signal.wait());
        let mut b = pin!(signal.wait());
        assert_eq!(a.as_mut().poll(&mut cx), Poll::Pending);
        assert_eq!(b.as_mut().poll(&mut cx), Poll::Pending);
        assert_eq!(signal.waiter_count(), 2);
        signal.fire();
        assert_eq!(counter.0.load(Ordering::Relaxed), 2);
        assert_eq!(a.as_mut().poll(&mut cx), Poll::Ready(()));
        assert_eq!(b.as_mut().poll(&mut cx), Poll::Ready(()));
        assert_eq!(pin!(signal.wait()).poll(&mut cx), Poll::Ready(()));
        assert_eq!(signal.waiter_count(), 0);
    }
}
