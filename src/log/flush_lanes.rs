//! The interval flushes of one shard take turns in a few FIFO lanes, so at most
//! `LANES` of them run at once.
//!
//! Every partition under `flush=interval` has its own timer, and partitions created
//! together tick together: with 5,000 dirty partitions on a shard, each tick submitted
//! 5,000 fdatasyncs at once. io_uring runs them in its worker pool, and the appends'
//! page-cache writes that need a worker queued behind them (`perf/partitions.py`: Produce
//! p50 4.8 ms, p90 88 ms with 10,000 partitions, against 0.17 / 0.45 ms under
//! `flush=never`). A lane is a `FifoGate`, so a partition waits behind at most the
//! partitions that asked before it, and none is passed over for long.

use std::cell::Cell;
use std::rc::Rc;

use crate::runtime::FifoGate;

/// Interval flushes running at once per shard.
pub const LANES: usize = 8;

thread_local! {
    static GATES: Rc<Vec<FifoGate>> = Rc::new((0..LANES).map(|_| FifoGate::default()).collect());
    static NEXT: Cell<usize> = const { Cell::new(0) };
}

/// This shard's lanes and the one the caller should use (dealt round-robin).
pub fn assign() -> (Rc<Vec<FifoGate>>, usize) {
    let lane = NEXT.with(|n| {
        let l = n.get();
        n.set(l.wrapping_add(1));
        l % LANES
    });
    (GATES.with(Rc::clone), lane)
}
