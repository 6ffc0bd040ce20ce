//! Cancel-safe waits on a monotonic level ("high watermark > x", "durable > x", "a
//! connection has read more than x requests") without polling: waiters register a waker
//! keyed by their target and are woken in target order.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub(crate) struct Waiters {
    next_id: u64,
    map: BTreeMap<(i64, u64), Waker>,
}

impl Waiters {
    /// Wakes every waiter whose target is below `level`.
    pub fn wake_below(&mut self, level: i64) {
        let rest = self.map.split_off(&(level, 0));
        for (_, w) in std::mem::replace(&mut self.map, rest) {
            w.wake();
        }
    }

    pub fn wake_all(&mut self) {
        for (_, w) in std::mem::take(&mut self.map) {
            w.wake();
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
}

/// Resolves when `level > target` or `stop` is set. Dropping it unregisters the waker.
pub(crate) struct OffsetWait<'a> {
    pub waiters: &'a RefCell<Waiters>,
    pub level: &'a Cell<i64>,
    pub stop: &'a Cell<bool>,
    pub target: i64,
    pub key: Option<(i64, u64)>,
}

impl<'a> OffsetWait<'a> {
    pub fn new(
        waiters: &'a RefCell<Waiters>,
        level: &'a Cell<i64>,
        stop: &'a Cell<bool>,
        target: i64,
    ) -> Self {
        OffsetWait {
            waiters,
            level,
            stop,
            target,
            key: None,
        }
    }
}

impl Future for OffsetWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.level.get() > self.target || self.stop.get() {
            if let Some(k) = self.key.take() {
                self.waiters.borrow_mut().map.remove(&k);
            }
            return Poll::Ready(());
        }
        let mut w = self.waiters.borrow_mut();
        let key = match self.key {
            Some(k) => k,
            None => {
                w.next_id += 1;
                (self.target, w.next_id)
            }
        };
        w.map.insert(key, cx.waker().clone());
        drop(w);
        self.key = Some(key);
        Poll::Pending
    }
}

impl Drop for OffsetWait<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.waiters.borrow_mut().map.remove(&k);
        }
    }
}
