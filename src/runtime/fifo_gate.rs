//! A lock for one executor that is handed to waiters strictly in call order. Used
//! where order is the point: a partition log's offset reservations, and each shard's
//! sends to a peer over the mesh (glommio's channel wakes blocked senders in reverse
//! order).
//!
//! glommio 0.9's `Semaphore` is not FIFO under contention: a release takes the first
//! waiter off its queue and wakes it without handing it the permit, so a caller that
//! arrives before the woken task runs finds the queue empty and the permit free, and
//! goes first. In the partition log that reordered appends: two pipelined Produce
//! requests waiting behind a segment preallocation could get their offsets in the
//! opposite order of arrival (seen in a test as a record of one batch stored at the
//! offsets of a later one). Here a release hands the lock to the first waiter
//! itself, and a newcomer queues whenever anyone is waiting.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct FifoGate {
    held: Cell<bool>,
    waiters: RefCell<VecDeque<Rc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    granted: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// The lock, held until dropped.
pub struct GateGuard<'a> {
    gate: &'a FifoGate,
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        self.gate.release();
    }
}

impl FifoGate {
    /// Waits for the lock behind everyone who asked before.
    pub fn lock(&self) -> Lock<'_> {
        Lock {
            gate: self,
            slot: None,
            done: false,
        }
    }

    /// Hands the lock to the first waiter, or frees it.
    fn release(&self) {
        let next = self.waiters.borrow_mut().pop_front();
        match next {
            Some(slot) => {
                slot.granted.set(true);
                if let Some(w) = slot.waker.borrow_mut().take() {
                    w.wake();
                }
            }
            None => self.held.set(false),
        }
    }
}

/// The future of `FifoGate::lock`; dropping it gives up its place (or passes the lock
/// on, if it had already been handed over).
pub struct Lock<'a> {
    gate: &'a FifoGate,
    slot: Option<Rc<Slot>>,
    done: bool,
}

impl<'a> Future for Lock<'a> {
    type Output = GateGuard<'a>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<GateGuard<'a>> {
        let this = self.get_mut();
        let gate = this.gate;
        match &this.slot {
            None if !gate.held.get() && gate.waiters.borrow().is_empty() => {
                gate.held.set(true);
                this.done = true;
                Poll::Ready(GateGuard { gate })
            }
            None => {
                let slot = Rc::new(Slot::default());
                *slot.waker.borrow_mut() = Some(cx.waker().clone());
                gate.waiters.borrow_mut().push_back(slot.clone());
                this.slot = Some(slot);
                Poll::Pending
            }
            Some(slot) if slot.granted.get() => {
                this.done = true;
                Poll::Ready(GateGuard { gate })
            }
            Some(slot) => {
                *slot.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(slot) = self.slot.take() {
            if slot.granted.get() {
                self.gate.release();
            } else {
                self.gate
                    .waiters
                    .borrow_mut()
                    .retain(|s| !Rc::ptr_eq(s, &slot));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::LocalExecutorBuilder;

    /// The lock goes to waiters in call order even when a newcomer asks at the moment
    /// it is released, before the first waiter has run (glommio's Semaphore let the
    /// newcomer in first).
    #[test]
    fn a_newcomer_never_overtakes_a_woken_waiter() {
        LocalExecutorBuilder::default()
            .spawn(|| async {
                let gate = Rc::new(FifoGate::default());
                let order = Rc::new(RefCell::new(Vec::new()));
                let first = gate.lock().await;
                let mut tasks = Vec::new();
                for i in 1..=2 {
                    let (gate, order) = (gate.clone(), order.clone());
                    tasks.push(glommio::spawn_local(async move {
                        let _g = gate.lock().await;
                        order.borrow_mut().push(i);
                    }));
                    futures_lite::future::yield_now().await; // it runs and queues
                }
                drop(first); // handed to waiter 1, which has not run yet
                             // A newcomer asking now must queue behind 1 and 2.
                let mut late = Box::pin(gate.lock());
                assert!(futures_lite::future::poll_once(&mut late).await.is_none());
                for t in tasks {
                    t.await;
                }
                let _g = late.await;
                order.borrow_mut().push(3);
                assert_eq!(*order.borrow(), vec![1, 2, 3]);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// A waiter that gives up passes its place on; one handed the lock and then
    /// dropped passes the lock on.
    #[test]
    fn dropped_waiters_neither_block_nor_leak_the_lock() {
        LocalExecutorBuilder::default()
            .spawn(|| async {
                let gate = FifoGate::default();
                let held = gate.lock().await;
                let mut a = Box::pin(gate.lock());
                let mut b = Box::pin(gate.lock());
                assert!(futures_lite::future::poll_once(&mut a).await.is_none());
                assert!(futures_lite::future::poll_once(&mut b).await.is_none());
                drop(held); // handed to `a`
                drop(a); // `a` never ran: the lock goes on to `b`
                let g = b.await;
                drop(g);
                assert!(!gate.held.get());
                assert!(gate.waiters.borrow().is_empty());
                let _again = gate.lock().await;
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
