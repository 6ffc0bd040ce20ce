//! At most one log line a second for events a client can cause at any rate: a flood
//! of refused connections, malformed frames or stalled requests must not turn the
//! broker's log (and the disk under it) into the attacker's amplifier.
//!
//! Each call site has its own `static` limiter, shared by every shard. A line that
//! is let through carries how many of its kind were held back since the last one;
//! those are also counted in `sluice_log_lines_suppressed_total`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Log lines held back by any limiter, process-wide since start.
static SUPPRESSED: AtomicU64 = AtomicU64::new(0);

/// Lines held back by every limiter since start.
pub fn suppressed_lines() -> u64 {
    SUPPRESSED.load(Ordering::Relaxed)
}

/// Lets one line of its kind through per `interval_ms`.
pub struct LogLimit {
    interval_ms: u64,
    /// Milliseconds since the epoch before which lines are held back.
    next_ms: AtomicU64,
    /// Lines held back since the last one let through.
    held: AtomicU64,
}

impl LogLimit {
    /// One line a second.
    pub const fn per_second() -> LogLimit {
        LogLimit {
            interval_ms: 1000,
            next_ms: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one)` when a line may be written now.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(crate::runtime::now_ms().max(0) as u64)
    }

    fn admit_at(&self, now: u64) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Relaxed);
        let won = now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + self.interval_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if won {
            return Some(self.held.swap(0, Ordering::Relaxed));
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_goes_through_and_says_how_many_were_held_back() {
        let limit = LogLimit::per_second();
        let before = suppressed_lines();
        assert_eq!(limit.admit_at(10_000), Some(0));
        assert_eq!(limit.admit_at(10_001), None);
        assert_eq!(limit.admit_at(10_999), None);
        assert_eq!(limit.admit_at(11_000), Some(2));
        assert_eq!(limit.admit_at(11_500), None);
        assert_eq!(limit.admit_at(13_000), Some(1));
        assert!(suppressed_lines() >= before + 3);
    }
}
