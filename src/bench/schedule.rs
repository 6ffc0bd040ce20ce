//! The open-loop send schedule of one producer thread.
//!
//! At a target rate every message has an intended send time fixed in advance
//! (`phase + i × interval`); latency is measured from it, so a producer that falls behind
//! (a stalled broker, a full client queue) shows the stall in every message it delays
//! instead of hiding it (coordinated omission). Without a rate the next message is due at
//! once, and its intended time is the moment of its first send attempt.

/// When each message of one producer is due.
pub struct Schedule {
    /// Nanoseconds between messages of this producer; 0 means as fast as possible.
    interval_ns: f64,
    /// This producer's first intended time (producers are spread over one interval).
    phase_ns: f64,
    /// No message is intended at or after this (ns since the run's epoch).
    end_ns: u64,
    /// No more than this many messages.
    limit: u64,
    sent: u64,
    /// Unlimited rate: the intended time of a message whose send must be retried.
    pinned: Option<u64>,
}

impl Schedule {
    /// The schedule of producer `index` of `producers` sharing `rate` msg/s (0: unlimited).
    pub fn new(rate: f64, producers: usize, index: usize, end_ns: u64, limit: u64) -> Self {
        let interval_ns = if rate > 0.0 {
            1e9 * producers as f64 / rate
        } else {
            0.0
        };
        Schedule {
            interval_ns,
            phase_ns: interval_ns * index as f64 / producers.max(1) as f64,
            end_ns,
            limit,
            sent: 0,
            pinned: None,
        }
    }

    /// The intended time of the next message, or `None` when this producer is done.
    pub fn next_due(&mut self, now_ns: u64) -> Option<u64> {
        if self.sent >= self.limit {
            return None;
        }
        let due = if self.interval_ns > 0.0 {
            (self.phase_ns + self.sent as f64 * self.interval_ns) as u64
        } else {
            *self.pinned.get_or_insert(now_ns)
        };
        (due < self.end_ns).then_some(due)
    }

    /// The message last returned by `next_due` was handed to the client.
    pub fn advance(&mut self) {
        self.sent += 1;
        self.pinned = None;
    }

    pub fn sent(&self) -> u64 {
        self.sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_fixes_every_intended_time_in_advance() {
        // 1000 msg/s over two producers: each sends every 2 ms, the second 1 ms later.
        let mut a = Schedule::new(1000.0, 2, 0, u64::MAX, u64::MAX);
        let mut b = Schedule::new(1000.0, 2, 1, u64::MAX, u64::MAX);
        assert_eq!(a.next_due(0), Some(0));
        assert_eq!(b.next_due(0), Some(1_000_000));
        a.advance();
        // However late the producer asks, the next message was due at 2 ms.
        assert_eq!(a.next_due(50_000_000), Some(2_000_000));
    }

    #[test]
    fn unlimited_rate_keeps_the_first_attempt_time_across_retries() {
        let mut s = Schedule::new(0.0, 1, 0, u64::MAX, u64::MAX);
        assert_eq!(s.next_due(10), Some(10));
        assert_eq!(s.next_due(99), Some(10), "a retry keeps its intended time");
        s.advance();
        assert_eq!(s.next_due(120), Some(120));
    }

    #[test]
    fn the_schedule_ends_at_its_end_time_or_count() {
        let mut s = Schedule::new(1000.0, 1, 0, 3_000_000, u64::MAX);
        let mut n = 0;
        while s.next_due(0).is_some() {
            s.advance();
            n += 1;
        }
        assert_eq!(n, 3);
        let mut c = Schedule::new(0.0, 1, 0, u64::MAX, 2);
        c.next_due(0);
        c.advance();
        c.next_due(0);
        c.advance();
        assert_eq!(c.next_due(0), None);
        assert_eq!(c.sent(), 2);
    }
}
