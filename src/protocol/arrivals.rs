//! A connection's count of the requests it has read, so that a long poll can tell when a
//! later request waits behind it (responses leave in request order): `Conn::arrivals`,
//! `Request::later`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::runtime::wait::{OffsetWait, Waiters};

/// How many requests a connection has read, and whether it stopped reading: a
/// `runtime::wait` level, so that a request can wait for the next one without polling.
/// Per request it costs two cells and a look at an empty waiter map.
#[derive(Default)]
pub struct Arrivals {
    read: Cell<i64>,
    stopped: Cell<bool>,
    waiters: RefCell<Waiters>,
}

impl Arrivals {
    /// A request was read: its number on the connection. Wakes the earlier requests
    /// that wait for a later one.
    pub fn arrived(&self) -> i64 {
        let n = self.read.get() + 1;
        self.read.set(n);
        self.waiters.borrow_mut().wake_below(n);
        n
    }

    /// The connection reads no more: every wait ends.
    pub fn stop(&self) {
        self.stopped.set(true);
        self.waiters.borrow_mut().wake_all();
    }
}

impl std::fmt::Debug for Arrivals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arrivals")
            .field("read", &self.read.get())
            .field("stopped", &self.stopped.get())
            .finish()
    }
}

/// Request `seq` of its connection, asking about the ones after it.
#[derive(Default)]
pub struct Later {
    arrivals: Rc<Arrivals>,
    seq: i64,
}

impl Later {
    pub fn new(arrivals: Rc<Arrivals>, seq: i64) -> Later {
        Later { arrivals, seq }
    }

    /// A later request was read, or the connection stopped reading.
    pub fn came(&self) -> bool {
        self.arrivals.read.get() > self.seq || self.arrivals.stopped.get()
    }

    /// Resolves once `came`; cancel-safe.
    pub(crate) fn wait(&self) -> OffsetWait<'_> {
        let a = &*self.arrivals;
        OffsetWait::new(&a.waiters, &a.read, &a.stopped, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::rc::Rc;

    use futures_lite::future::or;

    use crate::protocol::arrivals::{Arrivals, Later};

    /// How `wait` ended within 50 ms: true when a later request (or the stop) came.
    async fn ends(later: &Later) -> bool {
        let timer = async {
            glommio::timer::sleep(Duration::from_millis(50)).await;
            false
        };
        let waited = async {
            later.wait().await;
            true
        };
        or(waited, timer).await
    }

    #[test]
    fn a_request_waits_for_the_next_one_and_not_for_its_own() {
        crate::runtime::test_run(|| async {
            let arrivals = Rc::new(Arrivals::default());
            let first = Later::new(arrivals.clone(), arrivals.arrived());
            assert!(!first.came());
            assert!(!ends(&first).await, "its own arrival does not end its wait");
            let second = Later::new(arrivals.clone(), arrivals.arrived());
            assert!(first.came() && !second.came());
            assert!(ends(&first).await);
            assert!(!ends(&second).await);
            arrivals.stop();
            assert!(second.came() && ends(&second).await);
            assert_eq!(
                arrivals.waiters.borrow().len(),
                0,
                "waits leave no waker behind"
            );
        });
    }

    #[test]
    fn a_parked_wait_is_woken_by_the_next_arrival() {
        crate::runtime::test_run(|| async {
            let arrivals = Rc::new(Arrivals::default());
            let first = Later::new(arrivals.clone(), arrivals.arrived());
            // The wait runs in a task of its own: only its waker can get it polled again.
            let parked = glommio::spawn_local(async move { first.wait().await });
            glommio::timer::sleep(Duration::from_millis(5)).await;
            assert_eq!(arrivals.waiters.borrow().len(), 1, "the wait is parked");
            arrivals.arrived();
            let timer = async {
                glommio::timer::sleep(Duration::from_secs(5)).await;
                false
            };
            let woken = async {
                parked.await;
                true
            };
            assert!(
                or(woken, timer).await,
                "the arrival did not wake the parked wait"
            );
        });
    }
}
