//! Per-shard counters and HDR latency histograms, merged on scrape, and the admin
//! HTTP endpoint that serves them as Prometheus text at `/metrics`.

mod http;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use kafka_protocol::messages::ApiKey;

pub use http::serve_admin;

/// Request latency histograms cover 1 µs .. 60 s with 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid")
}

/// Named counter values.
pub type Counters = Vec<(&'static str, u64)>;
/// Request latency (µs) by API key.
pub type RequestHistograms = BTreeMap<i16, Histogram<u64>>;

/// Counters and histograms of one shard; touched only by that shard.
pub struct ShardMetrics {
    pub shard: usize,
    pub produced_bytes: Cell<u64>,
    pub produced_records: Cell<u64>,
    pub fetched_bytes: Cell<u64>,
    /// Fetched record bytes sent from the page cache with sendfile (zero copy).
    pub fetch_sendfile_bytes: Cell<u64>,
    /// Fetched record bytes read into memory first (uncached data, or zero copy off).
    pub fetch_copied_bytes: Cell<u64>,
    /// Times a zero-copy send found the socket full and waited for it to drain.
    pub fetch_socket_waits: Cell<u64>,
    /// Partition reads answered empty because the shard's fetch budget was held by
    /// copied responses not yet sent.
    pub fetch_budget_deferrals: Cell<u64>,
    pub cross_shard_calls: Cell<u64>,
    pub connections_accepted: Cell<u64>,
    pub connections_refused: Cell<u64>,
    pub protocol_errors: Cell<u64>,
    /// Produce requests that had to wait for credit (`net::credit`).
    pub produce_credit_waits: Cell<u64>,
    requests: RefCell<BTreeMap<i16, Histogram<u64>>>,
}

/// A copy of one shard's metrics, sent to the shard that renders a scrape.
pub struct Snapshot {
    pub shard: usize,
    pub counters: Counters,
    pub requests: RequestHistograms,
    /// (topic, partition, high watermark, log start offset, bytes)
    pub partitions: Vec<(String, i32, i64, i64, u64)>,
    pub connections: usize,
    /// Committed offsets of the groups this shard coordinates:
    /// (group, topic, partition, committed offset).
    pub group_offsets: Vec<(String, String, i32, i64)>,
    /// Produce credit granted and not yet returned (bytes).
    pub produce_credit_in_use_bytes: u64,
}

fn bump(c: &Cell<u64>, by: u64) {
    c.set(c.get().wrapping_add(by));
}

impl ShardMetrics {
    pub fn new(shard: usize) -> Self {
        ShardMetrics {
            shard,
            produced_bytes: Cell::new(0),
            produced_records: Cell::new(0),
            fetched_bytes: Cell::new(0),
            fetch_sendfile_bytes: Cell::new(0),
            fetch_copied_bytes: Cell::new(0),
            fetch_socket_waits: Cell::new(0),
            fetch_budget_deferrals: Cell::new(0),
            cross_shard_calls: Cell::new(0),
            connections_accepted: Cell::new(0),
            connections_refused: Cell::new(0),
            protocol_errors: Cell::new(0),
            produce_credit_waits: Cell::new(0),
            requests: RefCell::new(BTreeMap::new()),
        }
    }

    pub fn record_request(&self, key: ApiKey, took: Duration) {
        let us = (took.as_micros() as u64).clamp(1, 60_000_000);
        self.requests
            .borrow_mut()
            .entry(key as i16)
            .or_insert_with(new_histogram)
            .saturating_record(us);
    }

    pub fn record_append(&self, bytes: usize, records: i64) {
        bump(&self.produced_bytes, bytes as u64);
        bump(&self.produced_records, records.max(0) as u64);
    }

    pub fn record_fetch(&self, bytes: usize) {
        bump(&self.fetched_bytes, bytes as u64);
    }

    pub fn record_fetch_deferred(&self) {
        bump(&self.fetch_budget_deferrals, 1);
    }

    pub fn record_fetch_copied(&self, bytes: usize) {
        bump(&self.fetch_copied_bytes, bytes as u64);
    }

    pub fn record_sendfile(&self, bytes: usize, socket_waits: u64) {
        bump(&self.fetch_sendfile_bytes, bytes as u64);
        bump(&self.fetch_socket_waits, socket_waits);
    }

    pub fn snapshot(&self) -> (Counters, RequestHistograms) {
        let counters = vec![
            ("sluice_produced_bytes_total", self.produced_bytes.get()),
            ("sluice_produced_records_total", self.produced_records.get()),
            ("sluice_fetched_bytes_total", self.fetched_bytes.get()),
            (
                "sluice_fetch_sendfile_bytes_total",
                self.fetch_sendfile_bytes.get(),
            ),
            (
                "sluice_fetch_copied_bytes_total",
                self.fetch_copied_bytes.get(),
            ),
            (
                "sluice_fetch_socket_waits_total",
                self.fetch_socket_waits.get(),
            ),
            (
                "sluice_fetch_budget_deferrals_total",
                self.fetch_budget_deferrals.get(),
            ),
            (
                "sluice_cross_shard_calls_total",
                self.cross_shard_calls.get(),
            ),
            (
                "sluice_connections_accepted_total",
                self.connections_accepted.get(),
            ),
            (
                "sluice_connections_refused_total",
                self.connections_refused.get(),
            ),
            ("sluice_protocol_errors_total", self.protocol_errors.get()),
            (
                "sluice_produce_credit_waits_total",
                self.produce_credit_waits.get(),
            ),
        ];
        (counters, self.requests.borrow().clone())
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Consumer lag: high watermark − committed offset, per group and partition (0 when the
/// committed offset is at or past the end).
fn render_group_lag(out: &mut String, snaps: &[Snapshot]) {
    use std::fmt::Write;
    let hwm: std::collections::HashMap<(&str, i32), i64> = snaps
        .iter()
        .flat_map(|s| {
            s.partitions
                .iter()
                .map(|(t, p, h, _, _)| ((t.as_str(), *p), *h))
        })
        .collect();
    let _ = writeln!(out, "# TYPE sluice_group_lag gauge");
    for s in snaps {
        for (g, t, p, committed) in &s.group_offsets {
            let Some(h) = hwm.get(&(t.as_str(), *p)) else {
                continue;
            };
            let _ = writeln!(
                out,
                "sluice_group_lag{{group=\"{}\",topic=\"{}\",partition=\"{p}\"}} {}",
                esc(g),
                esc(t),
                (h - committed).max(0)
            );
        }
    }
}

/// Render snapshots of every shard as Prometheus text.
pub fn render(snaps: &[Snapshot]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if let Some(first) = snaps.first() {
        for (i, (name, _)) in first.counters.iter().enumerate() {
            let _ = writeln!(out, "# TYPE {name} counter");
            for s in snaps {
                let _ = writeln!(out, "{name}{{shard=\"{}\"}} {}", s.shard, s.counters[i].1);
            }
        }
    }
    let _ = writeln!(out, "# TYPE sluice_connections gauge");
    for s in snaps {
        let _ = writeln!(
            out,
            "sluice_connections{{shard=\"{}\"}} {}",
            s.shard, s.connections
        );
    }
    let _ = writeln!(out, "# TYPE sluice_produce_credit_in_use_bytes gauge");
    for s in snaps {
        let _ = writeln!(
            out,
            "sluice_produce_credit_in_use_bytes{{shard=\"{}\"}} {}",
            s.shard, s.produce_credit_in_use_bytes
        );
    }
    let _ = writeln!(out, "# TYPE sluice_partition_high_watermark gauge");
    for s in snaps {
        for (t, p, hwm, _, _) in &s.partitions {
            let _ = writeln!(
                out,
                "sluice_partition_high_watermark{{topic=\"{}\",partition=\"{p}\",shard=\"{}\"}} {hwm}",
                esc(t),
                s.shard
            );
        }
    }
    let _ = writeln!(out, "# TYPE sluice_partition_log_start_offset gauge");
    for s in snaps {
        for (t, p, _, start, _) in &s.partitions {
            let _ = writeln!(
                out,
                "sluice_partition_log_start_offset{{topic=\"{}\",partition=\"{p}\",shard=\"{}\"}} {start}",
                esc(t),
                s.shard
            );
        }
    }
    let _ = writeln!(out, "# TYPE sluice_partition_size_bytes gauge");
    for s in snaps {
        for (t, p, _, _, size) in &s.partitions {
            let _ = writeln!(
                out,
                "sluice_partition_size_bytes{{topic=\"{}\",partition=\"{p}\",shard=\"{}\"}} {size}",
                esc(t),
                s.shard
            );
        }
    }
    render_group_lag(&mut out, snaps);
    // Request latency: merged over shards, as a summary with HDR quantiles.
    let mut merged: BTreeMap<i16, Histogram<u64>> = BTreeMap::new();
    for s in snaps {
        for (k, h) in &s.requests {
            let m = merged.entry(*k).or_insert_with(new_histogram);
            let _ = m.add(h);
        }
    }
    let _ = writeln!(out, "# TYPE sluice_request_latency_seconds summary");
    for (k, h) in &merged {
        let api = ApiKey::try_from(*k)
            .map(|a| format!("{a:?}"))
            .unwrap_or_else(|_| k.to_string());
        for q in [0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            let _ = writeln!(
                out,
                "sluice_request_latency_seconds{{api=\"{api}\",quantile=\"{q}\"}} {}",
                h.value_at_quantile(q) as f64 / 1e6
            );
        }
        let _ = writeln!(
            out,
            "sluice_request_latency_seconds_count{{api=\"{api}\"}} {}",
            h.len()
        );
    }
    out
}
