//! Produce credit: each shard has a byte budget for produce data that is accepted
//! but not yet appended (and, for acks=all under `flush=always`, not yet synced),
//! shared out among the connections producing to it.
//!
//! A connection asks for credit for a Produce frame as soon as it has read the
//! frame's length and api key, before reading the rest of it; while it waits, the
//! socket is not read and TCP pushes back on the producer. The grant is an RAII
//! [`CreditGuard`] that travels with the request's task, so credit returns when the
//! request is done, fails or is cancelled — on every path.
//!
//! Rules (all on one shard's thread: `Cell`/`RefCell`, no locks):
//! - The pool never hands out more than `budget` bytes. A frame larger than the
//!   whole budget asks for the whole budget, so it proceeds once it is alone.
//! - Fair share: a connection that already holds credit may take more only while it
//!   stays within `budget / active connections` (active: holding or waiting). A
//!   connection that holds nothing is never refused for its share, so every
//!   connection always gets one request through.
//! - Waiters are served in arrival order for pool space: a waiter that does not fit
//!   the pool stops the queue (a large frame is not starved by a stream of small
//!   ones); a waiter held back only by its own share is skipped, since its own
//!   releases will wake it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// One shard's produce credit.
pub struct CreditPool {
    budget: usize,
    in_use: Cell<usize>,
    /// Connections holding or waiting for credit (the divisor of the fair share).
    active: Cell<usize>,
    queue: RefCell<VecDeque<Rc<Waiter>>>,
    /// Requests that could not be granted at once (for metrics and tests).
    waits: Cell<u64>,
}

/// A connection's account with the pool. A connection waits for at most one grant at
/// a time (its reader is sequential), so `waiting` is a flag, not a count.
#[derive(Default)]
pub struct ConnCredit {
    held: Cell<usize>,
    waiting: Cell<bool>,
}

impl ConnCredit {
    pub fn new() -> Rc<ConnCredit> {
        Rc::new(ConnCredit::default())
    }

    /// Bytes of credit this connection's requests hold now.
    pub fn held(&self) -> usize {
        self.held.get()
    }

    fn is_active(&self) -> bool {
        self.held.get() > 0 || self.waiting.get()
    }
}

struct Waiter {
    conn: Rc<ConnCredit>,
    bytes: usize,
    granted: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// Credit held by one request; returned to the pool on drop.
pub struct CreditGuard {
    pool: Rc<CreditPool>,
    conn: Rc<ConnCredit>,
    bytes: usize,
}

impl CreditGuard {
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for CreditGuard {
    fn drop(&mut self) {
        self.pool.release(&self.conn, self.bytes);
    }
}

impl CreditPool {
    /// A pool of `budget` bytes (at least 1).
    pub fn new(budget: usize) -> Rc<CreditPool> {
        Rc::new(CreditPool {
            budget: budget.max(1),
            in_use: Cell::new(0),
            active: Cell::new(0),
            queue: RefCell::new(VecDeque::new()),
            waits: Cell::new(0),
        })
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes granted and not yet returned.
    pub fn in_use(&self) -> usize {
        self.in_use.get()
    }

    /// How many requests had to wait for credit since the start.
    pub fn waits(&self) -> u64 {
        self.waits.get()
    }

    /// Connections holding or waiting for credit.
    pub fn active_connections(&self) -> usize {
        self.active.get()
    }

    /// Credit for `bytes` on behalf of `conn`; waits until the rules above allow it.
    /// Returns the guard and whether it had to wait. A request for more than the
    /// budget is cut to the budget. Dropping the future gives back anything granted.
    pub fn acquire(self: &Rc<Self>, conn: &Rc<ConnCredit>, bytes: usize) -> Acquire {
        let waiter = Rc::new(Waiter {
            conn: conn.clone(),
            bytes: bytes.clamp(1, self.budget),
            granted: Cell::new(false),
            waker: RefCell::new(None),
        });
        self.set_waiting(conn, true);
        self.queue.borrow_mut().push_back(waiter.clone());
        self.dispatch();
        let waited = !waiter.granted.get();
        if waited {
            self.waits.set(self.waits.get() + 1);
        }
        Acquire {
            pool: self.clone(),
            waiter: Some(waiter),
            waited,
        }
    }

    fn set_waiting(&self, conn: &ConnCredit, waiting: bool) {
        let was = conn.is_active();
        conn.waiting.set(waiting);
        self.note_activity(was, conn.is_active());
    }

    fn note_activity(&self, was: bool, is: bool) {
        match (was, is) {
            (false, true) => self.active.set(self.active.get() + 1),
            (true, false) => self.active.set(self.active.get() - 1),
            _ => {}
        }
    }

    /// The fair share of one connection now.
    fn share(&self) -> usize {
        self.budget / self.active.get().max(1)
    }

    /// Grant queued waiters in order, as the rules allow.
    fn dispatch(&self) {
        let mut queue = self.queue.borrow_mut();
        let mut i = 0;
        while i < queue.len() {
            let w = &queue[i];
            let held = w.conn.held.get();
            if held > 0 && held + w.bytes > self.share() {
                i += 1; // over its own share: its own releases will wake it
                continue;
            }
            if self.in_use.get() + w.bytes > self.budget {
                break; // first come, first served for pool space
            }
            let w = queue.remove(i).expect("index checked against len");
            self.in_use.set(self.in_use.get() + w.bytes);
            let was = w.conn.is_active();
            w.conn.held.set(held + w.bytes);
            w.conn.waiting.set(false);
            self.note_activity(was, w.conn.is_active());
            w.granted.set(true);
            let waker = w.waker.borrow_mut().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    fn release(&self, conn: &ConnCredit, bytes: usize) {
        debug_assert!(self.in_use.get() >= bytes && conn.held.get() >= bytes);
        self.in_use.set(self.in_use.get().saturating_sub(bytes));
        let was = conn.is_active();
        conn.held.set(conn.held.get().saturating_sub(bytes));
        self.note_activity(was, conn.is_active());
        self.dispatch();
    }

    /// A waiter whose future was dropped: take it out of the queue, or give back
    /// what it was granted after its last poll.
    fn cancel(&self, w: &Rc<Waiter>) {
        if w.granted.get() {
            self.release(&w.conn, w.bytes);
            return;
        }
        self.queue.borrow_mut().retain(|q| !Rc::ptr_eq(q, w));
        self.set_waiting(&w.conn, false);
        // A waiter that blocked the queue head may have been this one.
        self.dispatch();
    }
}

/// The future of [`CreditPool::acquire`].
pub struct Acquire {
    pool: Rc<CreditPool>,
    waiter: Option<Rc<Waiter>>,
    waited: bool,
}

impl Future for Acquire {
    /// The guard, and whether the request had to wait for it.
    type Output = (CreditGuard, bool);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(w) = self.waiter.as_ref() else {
            panic!("Acquire polled after completion");
        };
        if !w.granted.get() {
            *w.waker.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let w = self.waiter.take().expect("checked above");
        let guard = CreditGuard {
            pool: self.pool.clone(),
            conn: w.conn.clone(),
            bytes: w.bytes,
        };
        Poll::Ready((guard, self.waited))
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if let Some(w) = self.waiter.take() {
            self.pool.cancel(&w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::{block_on, poll_once};

    /// Poll once; `Some` if granted.
    fn try_now(a: &mut Acquire) -> Option<(CreditGuard, bool)> {
        block_on(poll_once(a))
    }

    #[test]
    fn credit_returns_when_the_guard_drops() {
        let pool = CreditPool::new(1000);
        let conn = ConnCredit::new();
        let (g, waited) = block_on(pool.acquire(&conn, 300));
        assert!(!waited);
        assert_eq!(
            (pool.in_use(), conn.held(), pool.active_connections()),
            (300, 300, 1)
        );
        drop(g);
        assert_eq!(
            (pool.in_use(), conn.held(), pool.active_connections()),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_full_pool_makes_the_next_request_wait_until_credit_returns() {
        let pool = CreditPool::new(1000);
        let (a, b) = (ConnCredit::new(), ConnCredit::new());
        let (ga, _) = block_on(pool.acquire(&a, 800));
        let mut wb = pool.acquire(&b, 300);
        assert!(try_now(&mut wb).is_none(), "800 + 300 is over the budget");
        assert_eq!(pool.waits(), 1);
        assert_eq!(pool.active_connections(), 2);
        drop(ga);
        let (gb, waited) = try_now(&mut wb).expect("granted once A's credit returned");
        assert!(waited);
        assert_eq!(pool.in_use(), 300);
        drop(gb);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn a_frame_larger_than_the_budget_takes_the_whole_budget_when_alone() {
        let pool = CreditPool::new(1000);
        let (a, b) = (ConnCredit::new(), ConnCredit::new());
        let (small, _) = block_on(pool.acquire(&a, 10));
        let mut big = pool.acquire(&b, 5000);
        assert!(try_now(&mut big).is_none());
        drop(small);
        let (g, _) = try_now(&mut big).expect("alone, the big frame gets the whole budget");
        assert_eq!(g.bytes(), 1000);
        assert_eq!(pool.in_use(), 1000);
        drop(g);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn a_waiting_big_frame_is_not_overtaken_by_later_small_ones() {
        let pool = CreditPool::new(1000);
        let (a, b, c) = (ConnCredit::new(), ConnCredit::new(), ConnCredit::new());
        let (ga, _) = block_on(pool.acquire(&a, 400));
        let mut big = pool.acquire(&b, 900);
        // 100 bytes would fit the pool, but the big frame came first.
        let mut small = pool.acquire(&c, 100);
        assert!(try_now(&mut big).is_none());
        assert!(try_now(&mut small).is_none());
        drop(ga);
        let (gbig, _) = try_now(&mut big).expect("the big frame is served first");
        let (gsmall, _) = try_now(&mut small).expect("then the small one, which fits beside it");
        assert_eq!(pool.in_use(), 1000);
        drop((gbig, gsmall));
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn a_connection_over_its_fair_share_waits_while_others_proceed() {
        let pool = CreditPool::new(1000);
        let (a, b) = (ConnCredit::new(), ConnCredit::new());
        let (ga1, _) = block_on(pool.acquire(&a, 400));
        let (gb1, _) = block_on(pool.acquire(&b, 100));
        // Two active connections: a share is 500. A holds 400 and asks 200 more.
        let mut a2 = pool.acquire(&a, 200);
        assert!(
            try_now(&mut a2).is_none(),
            "A would hold 600 > its share of 500"
        );
        // B is within its share and the pool has room: it is not held behind A.
        let mut b2 = pool.acquire(&b, 300);
        let (gb2, waited) = try_now(&mut b2).expect("B is within its share");
        assert!(!waited);
        // When A's first request completes, A is back within its share.
        drop(ga1);
        let (ga2, waited) = try_now(&mut a2).expect("A's own release woke it");
        assert!(waited);
        assert_eq!(pool.in_use(), 600);
        drop((ga2, gb1, gb2));
        assert_eq!((pool.in_use(), pool.active_connections()), (0, 0));
    }

    #[test]
    fn a_connection_holding_nothing_is_never_refused_for_its_share() {
        let pool = CreditPool::new(1000);
        let conns: Vec<_> = (0..10).map(|_| ConnCredit::new()).collect();
        // Ten connections, share 100 each; one asks 700 while holding nothing.
        let (held, _) = block_on(pool.acquire(&conns[0], 50));
        let mut big = pool.acquire(&conns[1], 700);
        let (g, waited) = try_now(&mut big).expect("fits the pool; the share does not apply");
        assert!(!waited);
        drop((held, g));
    }

    #[test]
    fn a_cancelled_wait_leaves_the_queue_and_unblocks_those_behind_it() {
        let pool = CreditPool::new(1000);
        let (a, b, c) = (ConnCredit::new(), ConnCredit::new(), ConnCredit::new());
        let (ga, _) = block_on(pool.acquire(&a, 500));
        let mut big = pool.acquire(&b, 900);
        let mut small = pool.acquire(&c, 200);
        assert!(try_now(&mut big).is_none());
        assert!(try_now(&mut small).is_none(), "queued behind the big frame");
        drop(big); // e.g. the connection was closed while it waited
        assert!(!b.is_active());
        let (gs, _) = try_now(&mut small).expect("no longer behind anyone");
        assert_eq!(pool.in_use(), 700);
        drop((ga, gs));
        assert_eq!((pool.in_use(), pool.active_connections()), (0, 0));
    }

    #[test]
    fn credit_granted_to_a_future_dropped_before_its_next_poll_is_returned() {
        let pool = CreditPool::new(1000);
        let (a, b) = (ConnCredit::new(), ConnCredit::new());
        let (ga, _) = block_on(pool.acquire(&a, 1000));
        let mut wb = pool.acquire(&b, 600);
        assert!(try_now(&mut wb).is_none());
        drop(ga); // grants B inside the release
        assert_eq!(pool.in_use(), 600);
        drop(wb); // B gave up before it saw the grant
        assert_eq!(
            (pool.in_use(), b.held(), pool.active_connections()),
            (0, 0, 0)
        );
    }

    #[test]
    fn many_producers_all_progress_and_the_budget_is_never_exceeded() {
        // A deterministic churn: 8 connections, random sizes (some over the budget),
        // requests completing in a scrambled order.
        let pool = CreditPool::new(10_000);
        let conns: Vec<_> = (0..8).map(|_| ConnCredit::new()).collect();
        let mut pending: Vec<(usize, Acquire)> = Vec::new();
        let mut held: Vec<CreditGuard> = Vec::new();
        let mut granted = [0u32; 8];
        let mut seed = 0x2545_f491_u64;
        let mut rand = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for step in 0..5_000 {
            // Each connection has at most one request waiting (its reader waits on it).
            let c = rand(8) as usize;
            if !pending.iter().any(|(pc, _)| *pc == c) {
                let bytes = if rand(50) == 0 {
                    20_000
                } else {
                    1 + rand(3000) as usize
                };
                pending.push((c, pool.acquire(&conns[c], bytes)));
            }
            let mut i = 0;
            while i < pending.len() {
                if let Some((g, _)) = try_now(&mut pending[i].1) {
                    granted[pending[i].0] += 1;
                    held.push(g);
                    pending.swap_remove(i);
                } else {
                    i += 1;
                }
            }
            assert!(pool.in_use() <= pool.budget(), "step {step}");
            if !held.is_empty() && rand(3) > 0 {
                let k = rand(held.len() as u64) as usize;
                held.swap_remove(k);
            }
        }
        held.clear();
        for (_, mut a) in pending.drain(..) {
            assert!(
                try_now(&mut a).is_some(),
                "everything fits once nothing is held"
            );
        }
        assert!(
            granted.iter().all(|&g| g > 100),
            "every connection progressed: {granted:?}"
        );
        assert_eq!((pool.in_use(), pool.active_connections()), (0, 0));
    }
}
