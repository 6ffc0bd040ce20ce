//! Produce byte-rate quotas per quota entity, computed like Kafka's client quota manager
//! (KIP-13, KIP-219): the rate is measured over `SAMPLES` windows of `WINDOW_MS`; a
//! client over its quota is told to wait
//! `(rate - quota) / quota × window size` ms in `throttle_time_ms`, and the broker
//! does not read that connection for that long (KIP-219 muting).
//!
//! State is per shard (connections of one client id on two shards are measured
//! separately), kept in a `RefCell` on the shard's thread, by the key the quota names
//! (`cluster::quotas::Applied`: the client id, or the user and client id). The quota is
//! the user's or client id's set with AlterClientQuotas (`cluster::ClientQuotas`, by
//! Kafka's precedence), else the broker's `producer_byte_rate`.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

/// Kafka's quota.window.num and quota.window.size.seconds defaults.
const SAMPLES: usize = 11;
const WINDOW_MS: u64 = 1000;
/// A client idle for longer than every sample is forgotten (bounds the table).
const FORGET_AFTER_MS: u64 = SAMPLES as u64 * WINDOW_MS;
/// Sweep forgotten clients when the table grows past this.
const SWEEP_AT_CLIENTS: usize = 1024;

/// One shard's produce quota accounting.
#[derive(Default)]
pub struct ProduceQuotas {
    clients: RefCell<HashMap<String, Rate>>,
}

/// Bytes recorded per sample window: (window start ms, bytes).
#[derive(Default)]
struct Rate {
    samples: VecDeque<(u64, u64)>,
}

impl Rate {
    fn record(&mut self, now_ms: u64, bytes: u64) {
        self.purge(now_ms);
        match self.samples.back_mut() {
            Some((start, b)) if now_ms < *start + WINDOW_MS => *b += bytes,
            _ => self.samples.push_back((now_ms, bytes)),
        }
    }

    fn purge(&mut self, now_ms: u64) {
        while self
            .samples
            .front()
            .is_some_and(|(start, _)| start + FORGET_AFTER_MS <= now_ms)
        {
            self.samples.pop_front();
        }
    }

    /// Kafka's `Rate.windowSize`: time since the oldest sample, but at least
    /// `SAMPLES - 1` full windows, so a fresh client is not throttled for one burst.
    fn window_ms(&self, now_ms: u64) -> u64 {
        let oldest = self.samples.front().map(|s| s.0).unwrap_or(now_ms);
        let elapsed = now_ms.saturating_sub(oldest);
        elapsed.max((SAMPLES as u64 - 1) * WINDOW_MS)
    }

    fn bytes_per_s(&self, now_ms: u64) -> f64 {
        let total: u64 = self.samples.iter().map(|s| s.1).sum();
        total as f64 * 1000.0 / self.window_ms(now_ms) as f64
    }
}

impl ProduceQuotas {
    /// Record `bytes` of produce from `client_id` at `now_ms` against its quota of
    /// `bytes_per_s` (0: none); returns the throttle time in ms (0 within quota),
    /// capped at the whole measured window.
    pub fn record(&self, client_id: &str, bytes: u64, now_ms: u64, bytes_per_s: u64) -> u64 {
        if bytes_per_s == 0 {
            return 0;
        }
        let mut clients = self.clients.borrow_mut();
        if clients.len() >= SWEEP_AT_CLIENTS && !clients.contains_key(client_id) {
            clients.retain(|_, r| {
                r.purge(now_ms);
                !r.samples.is_empty()
            });
        }
        // A client already in the table (every Produce but its first) is found by `&str`,
        // without allocating its id again.
        let rate = match clients.get_mut(client_id) {
            Some(rate) => rate,
            None => clients.entry(client_id.to_owned()).or_default(),
        };
        rate.record(now_ms, bytes);
        let observed = rate.bytes_per_s(now_ms);
        let quota = bytes_per_s as f64;
        if observed <= quota {
            return 0;
        }
        let throttle = (observed - quota) / quota * rate.window_ms(now_ms) as f64;
        (throttle as u64).min(SAMPLES as u64 * WINDOW_MS)
    }

    /// Clients with samples in the table (for tests).
    pub fn tracked_clients(&self) -> usize {
        self.clients.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_quotas_never_throttle() {
        let q = ProduceQuotas::default();
        assert_eq!(q.record("c", u64::MAX / 2, 0, 0), 0);
        assert_eq!(q.tracked_clients(), 0);
    }

    #[test]
    fn a_client_within_its_rate_is_not_throttled() {
        let q = ProduceQuotas::default();
        let rate = 1000;
        // 900 bytes each second for 30 s.
        for s in 0..30 {
            assert_eq!(q.record("c", 900, s * 1000, rate), 0, "second {s}");
        }
    }

    #[test]
    fn throttle_time_is_the_excess_over_the_quota_times_the_window() {
        let q = ProduceQuotas::default();
        let rate = 1000;
        // 20,000 bytes at once: over a 10 s minimum window that is 2,000 B/s, twice
        // the quota: Kafka throttles (2000 - 1000) / 1000 × 10 s = 10 s.
        assert_eq!(q.record("c", 20_000, 5_000, rate), 10_000);
        // Another client is measured on its own.
        assert_eq!(q.record("d", 500, 5_000, rate), 0);
    }

    #[test]
    fn the_throttle_fades_as_old_samples_leave_the_window() {
        let q = ProduceQuotas::default();
        let rate = 1000;
        assert!(q.record("c", 30_000, 0, rate) > 0);
        // Eleven windows later the burst is forgotten.
        assert_eq!(q.record("c", 10, 11_000, rate), 0);
    }

    #[test]
    fn throttle_is_capped_at_the_whole_window() {
        let q = ProduceQuotas::default();
        let rate = 1;
        assert_eq!(q.record("c", 1 << 40, 0, rate), SAMPLES as u64 * WINDOW_MS);
    }

    #[test]
    fn idle_clients_are_swept_when_the_table_grows() {
        let q = ProduceQuotas::default();
        let rate = 1000;
        for i in 0..SWEEP_AT_CLIENTS {
            q.record(&format!("client-{i}"), 1, 0, rate);
        }
        assert_eq!(q.tracked_clients(), SWEEP_AT_CLIENTS);
        q.record("late", 1, FORGET_AFTER_MS + 1, rate);
        assert_eq!(q.tracked_clients(), 1);
    }
}
