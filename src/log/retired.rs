//! Segments that have left the log (replaced by a cleaned one, deleted by retention or
//! DeleteRecords) and whose blocks are still to be freed.
//!
//! Their files are unlinked when they leave the log; the blocks go when the last
//! descriptor closes. On a filesystem mounted with `discard` (this VM's root is), freeing
//! a file's blocks issues a synchronous discard of all of them in that one call, on the
//! thread that makes it: here ~0.25 ms per MiB plus ~0.1 ms per call, 16 ms for a 64 MiB
//! segment, which was the shard's produce stall while cleaning (perf/RESULTS.md).
//!
//! So a retired segment is kept until nothing reads it any more (a fetch's range or the
//! cleaner's reader), then shrunk `STEP` bytes per `ftruncate` on glommio's blocking
//! thread (left unpinned by `runtime`), each step followed by a pause, and dropped at
//! length zero. The shard thread never waits for a discard, and every discard and every
//! filesystem handle is small.

use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use super::partition::PartitionLog;
use super::segment::Segment;

/// Bytes freed per `ftruncate`: ~0.2 ms of discard here.
const STEP: u64 = 512 << 10;
/// The least pause between two steps.
const MIN_PAUSE: Duration = Duration::from_micros(100);
/// How often a segment still read by a fetch is looked at again.
const IN_USE_RECHECK: Duration = Duration::from_millis(50);

impl PartitionLog {
    /// Takes segments that left the log: they are freed stepwise once unused.
    pub(super) fn retire(&self, segments: impl IntoIterator<Item = Rc<Segment>>) {
        self.retired.borrow_mut().extend(segments);
        if self.retired.borrow().is_empty() || self.freeing.replace(true) {
            return;
        }
        glommio::spawn_local(free_retired(self.me.clone())).detach();
    }

    /// Retired segments not freed yet (a fetch still reads them, or the freeing is under
    /// way).
    pub fn retired_segments(&self) -> usize {
        self.retired.borrow().len()
    }
}

/// Frees the log's retired segments one after another until none is left, or the log
/// closes (then the rest are dropped whole).
async fn free_retired(log: Weak<PartitionLog>) {
    loop {
        let Some(seg) = next_unused(&log).await else {
            return;
        };
        if let Err(e) = shrink(&seg, &log).await {
            tracing::warn!(path = %seg.path().display(), error = %e,
                "could not shrink a retired segment stepwise; closing it whole");
        }
    }
}

/// The first retired segment nothing else holds, taken out of the list; waits while all
/// are in use. None when the list is empty or the log is gone or closed.
async fn next_unused(log: &Weak<PartitionLog>) -> Option<Rc<Segment>> {
    loop {
        let l = log.upgrade()?;
        if l.closed.get() || l.retired.borrow().is_empty() {
            l.retired.borrow_mut().clear();
            l.freeing.set(false);
            return None;
        }
        let free = {
            let mut retired = l.retired.borrow_mut();
            let i = retired
                .iter()
                .position(|s| Rc::strong_count(s) == 1 && !s.file_in_use());
            i.map(|i| retired.swap_remove(i))
        };
        if free.is_some() {
            return free;
        }
        drop(l);
        glommio::timer::sleep(IN_USE_RECHECK).await;
    }
}

/// Truncates the unlinked, unused segment to zero `STEP` bytes at a time on glommio's
/// blocking thread, pausing after each step as long as it took.
///
/// Not on the shard thread: under the cleaner's own disk traffic one 512 KiB discard took
/// up to 15 ms here, and the shard would sit in D state for it. The steps keep each
/// filesystem handle short (a whole segment's truncation on another thread held up the
/// shard's appends for 100 ms), and the pauses leave the disk to the appends.
async fn shrink(seg: &Segment, log: &Weak<PartitionLog>) -> std::io::Result<()> {
    let mut file = std::fs::File::from(seg.dup_fd()?);
    let mut len = file.metadata()?.len();
    while len > 0 {
        if log.upgrade().is_none_or(|l| l.closed.get()) {
            return Ok(());
        }
        len = len.saturating_sub(STEP);
        let started = Instant::now();
        let (back, res) = glommio::executor()
            .spawn_blocking(move || {
                let res = file.set_len(len);
                (file, res)
            })
            .await;
        file = back;
        res?;
        glommio::timer::sleep(started.elapsed().max(MIN_PAUSE)).await;
    }
    Ok(())
}
