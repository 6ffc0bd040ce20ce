//! Counters shared by the load generator's threads, latency histograms, and the report
//! (text table or one JSON object).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Latencies are recorded in microseconds, 1 µs .. 1 h, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid")
}

/// What every producer and consumer thread of one run shares.
pub struct Shared {
    /// Time zero of the run: intended send times are nanoseconds since it.
    pub epoch: Instant,
    /// Marks this run's messages, so a consumer of a topic with older data skips those.
    pub run_id: u32,
    /// Messages intended before this (ns since epoch) are warm-up: sent, never counted.
    pub warmup_end_ns: u64,
    /// Acknowledged messages, warm-up included.
    pub acked_total: AtomicU64,
    /// Acknowledged messages intended after warm-up.
    pub acked: AtomicU64,
    /// Latest acknowledgement time (ns since epoch) of a measured message.
    pub last_ack_ns: AtomicU64,
    pub produce_errors: AtomicU64,
    /// Messages of this run consumed, warm-up included.
    pub consumed_total: AtomicU64,
    /// Consumed messages intended after warm-up.
    pub consumed: AtomicU64,
    pub last_consume_ns: AtomicU64,
    pub consume_errors: AtomicU64,
    /// Messages of other runs (or other writers) that consumers skipped.
    pub foreign: AtomicU64,
    pub first_error: Mutex<Option<String>>,
    pub produce_latency: Mutex<Histogram<u64>>,
    pub e2e_latency: Mutex<Histogram<u64>>,
}

impl Shared {
    pub fn new(run_id: u32, warmup_end_ns: u64) -> Self {
        Shared {
            epoch: Instant::now(),
            run_id,
            warmup_end_ns,
            acked_total: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            last_ack_ns: AtomicU64::new(0),
            produce_errors: AtomicU64::new(0),
            consumed_total: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            last_consume_ns: AtomicU64::new(0),
            consume_errors: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
            first_error: Mutex::new(None),
            produce_latency: Mutex::new(new_histogram()),
            e2e_latency: Mutex::new(new_histogram()),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn note_error(&self, what: String) {
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(what);
        }
    }

    /// An acknowledgement at `now_ns` of a message intended at `intended_ns`.
    pub fn record_ack(&self, local: &mut Histogram<u64>, intended_ns: u64, now_ns: u64) {
        self.acked_total.fetch_add(1, Ordering::Relaxed);
        if intended_ns < self.warmup_end_ns {
            return;
        }
        self.acked.fetch_add(1, Ordering::Relaxed);
        self.last_ack_ns.fetch_max(now_ns, Ordering::Relaxed);
        local.saturating_record(micros(now_ns.saturating_sub(intended_ns)));
    }

    /// A message of this run read by a consumer at `now_ns`.
    pub fn record_consumed(&self, local: &mut Histogram<u64>, intended_ns: u64, now_ns: u64) {
        self.consumed_total.fetch_add(1, Ordering::Relaxed);
        if intended_ns < self.warmup_end_ns {
            return;
        }
        self.consumed.fetch_add(1, Ordering::Relaxed);
        self.last_consume_ns.fetch_max(now_ns, Ordering::Relaxed);
        local.saturating_record(micros(now_ns.saturating_sub(intended_ns)));
    }

    /// Adds a thread's histogram into the run's (each thread keeps its own while it runs).
    pub fn merge_produce(&self, h: &Histogram<u64>) {
        let mut m = self
            .produce_latency
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let _ = m.add(h);
    }

    pub fn merge_e2e(&self, h: &Histogram<u64>) {
        let mut m = self.e2e_latency.lock().unwrap_or_else(|p| p.into_inner());
        let _ = m.add(h);
    }
}

fn micros(ns: u64) -> u64 {
    (ns / 1000).max(1)
}

/// The percentiles every report shows.
pub const QUANTILES: [(&str, f64); 6] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99_9", 0.999),
    ("p99_99", 0.9999),
    ("max", 1.0),
];

/// Percentiles of `h` in microseconds (null when it is empty).
pub fn summary(h: &Histogram<u64>) -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert("count".into(), json!(h.len()));
    for (name, q) in QUANTILES {
        let v = if h.is_empty() {
            Value::Null
        } else if q >= 1.0 {
            json!(h.max())
        } else {
            json!(h.value_at_quantile(q))
        };
        obj.insert(name.into(), v);
    }
    if !h.is_empty() {
        obj.insert("mean".into(), json!((h.mean() * 10.0).round() / 10.0));
    }
    Value::Object(obj)
}

/// The HDR percentile distribution (percentile, µs), as HdrHistogram plots draw it: points
/// get denser towards the tail (5 per halving of the remaining fraction).
pub fn curve(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!([]);
    }
    let points: Vec<Value> = h
        .iter_quantiles(5)
        .map(|v| {
            let pct = (v.quantile_iterated_to() * 100.0 * 1e6).round() / 1e6;
            json!([pct, v.value_iterated_to()])
        })
        .collect();
    json!(points)
}

/// Messages per second over `[from_ns, to_ns]`.
pub fn rate(count: u64, from_ns: u64, to_ns: u64) -> f64 {
    let secs = to_ns.saturating_sub(from_ns) as f64 / 1e9;
    if secs <= 0.0 {
        0.0
    } else {
        count as f64 / secs
    }
}

/// `us` as a short human figure.
pub fn fmt_us(v: &Value) -> String {
    match v.as_u64() {
        None => "-".into(),
        Some(us) if us < 1000 => format!("{us} µs"),
        Some(us) if us < 1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        Some(us) => format!("{:.2} s", us as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_messages_are_counted_in_totals_only() {
        let s = Shared::new(1, 1_000_000_000);
        let mut h = new_histogram();
        s.record_ack(&mut h, 500_000_000, 600_000_000);
        s.record_ack(&mut h, 1_500_000_000, 1_502_000_000);
        assert_eq!(s.acked_total.load(Ordering::Relaxed), 2);
        assert_eq!(s.acked.load(Ordering::Relaxed), 1);
        assert_eq!(h.len(), 1);
        assert_eq!(h.max(), h.highest_equivalent(2000));
    }

    #[test]
    fn latency_is_measured_from_the_intended_time() {
        // A message intended at 2 s but acknowledged at 2.5 s waited 500 ms, however
        // late the producer actually sent it: coordinated omission cannot hide it.
        let s = Shared::new(1, 0);
        let mut h = new_histogram();
        s.record_ack(&mut h, 2_000_000_000, 2_500_000_000);
        let sum = summary(&h);
        assert_eq!(sum["p50"], json!(h.highest_equivalent(500_000)));
        assert_eq!(sum["count"], json!(1));
    }

    #[test]
    fn empty_histograms_report_null_percentiles() {
        let sum = summary(&new_histogram());
        assert_eq!(sum["p99"], Value::Null);
        assert_eq!(curve(&new_histogram()), json!([]));
    }

    #[test]
    fn curve_reaches_the_maximum() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let c = curve(&h);
        let last = c.as_array().unwrap().last().unwrap();
        assert_eq!(last[0], json!(100.0));
        assert_eq!(last[1], json!(h.highest_equivalent(10_000)));
    }
}
