//! `Barrier`: every shard arrives, then all go on. Used twice in a run: at startup once
//! every shard has loaded its partitions and groups (if one failed, all stop), and at
//! shutdown once every shard has drained its connections. Startup and shutdown only, so
//! a short poll is fine, and the atomics here never touch a request.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

pub struct Barrier {
    left: AtomicUsize,
    failed: AtomicBool,
}

impl Barrier {
    pub fn new(shards: usize) -> Self {
        Barrier {
            left: AtomicUsize::new(shards),
            failed: AtomicBool::new(false),
        }
    }

    /// This shard is there; `ok = false` makes every waiter fail.
    pub fn arrive(&self, ok: bool) {
        if !ok {
            self.failed.store(true, Ordering::Release);
        }
        self.left.fetch_sub(1, Ordering::AcqRel);
    }

    /// Resolves once every shard arrived, or with an error once one arrived failed.
    pub async fn wait(&self) -> Result<(), String> {
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
