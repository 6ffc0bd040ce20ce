//! `Signal`: a one-shot broadcast that local tasks wait on (shutdown), and the sleep
//! every background loop paces itself with.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;

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
