//! Per-shard counters and HDR latency histograms, merged on scrape, and the admin
//! HTTP endpoint that serves them as Prometheus text at `/metrics`, as JSON under
//! `/api/` (`api.rs`) and as the web console at `/` (`console/`, embedded).

pub mod api;
pub mod http;
pub mod log_json;
pub mod log_limit;
pub mod log_sink;

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
    /// SASL sessions renewed by re-authentication (KIP-368), and those closed because
    /// they expired without it.
    pub sasl_reauthentications: Cell<u64>,
    pub sasl_sessions_expired: Cell<u64>,
    /// Produce requests that had to wait for credit (`net::credit`).
    pub produce_credit_waits: Cell<u64>,
    /// The compaction cleaner: bytes read and written by its passes, passes, and the time
    /// they took (µs); the throughput of the last pass (bytes read per second).
    pub cleaner_bytes_read: Cell<u64>,
    pub cleaner_bytes_written: Cell<u64>,
    pub cleaner_passes: Cell<u64>,
    pub cleaner_time_us: Cell<u64>,
    pub cleaner_last_bytes_per_sec: Cell<u64>,
    requests: RefCell<BTreeMap<i16, Histogram<u64>>>,
    /// Time from a frame being cut off the socket to its handler starting (µs).
    queued: RefCell<Histogram<u64>>,
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
    /// fdatasync latency of segment data on this shard (µs), from `runtime::sync_latency`.
    pub fsync: Histogram<u64>,
    /// Group-commit fdatasync latency of this shard's journals (µs), from
    /// `runtime::sync_latency`.
    pub journal_fsync: Histogram<u64>,
    /// Request time queued (µs): frame cut to handler start.
    pub queued: Histogram<u64>,
    /// Messages this shard sent to other shards, by name (`runtime::Mesh::hops`).
    pub mesh_calls: Vec<(&'static str, u64)>,
    /// Share partitions (KIP-932) this shard owns.
    pub shares: Vec<ShareMetric>,
    /// Dead-letter records written by this shard's share partitions, and failed writes.
    pub dlq_writes: u64,
    pub dlq_failures: u64,
    /// Compacted partitions: (topic, partition, dirty ratio of the cleanable log).
    pub dirty_ratios: Vec<(String, i32, f64)>,
    /// Bytes per second the last cleaning pass of this shard read.
    pub cleaner_bytes_per_sec: u64,
    /// (topic, partition, record bytes handed to consumers) of the partitions it owns.
    pub partition_fetched: Vec<(String, i32, u64)>,
    /// (share group, its DLQ topic) of the share groups this shard coordinates.
    pub share_dlqs: Vec<(String, String)>,
}

/// The cleaner's gauges: the dirty ratio of every compacted partition, the last pass's
/// throughput per shard.
fn render_cleaner(out: &mut String, snaps: &[Snapshot]) {
    use std::fmt::Write;
    let _ = writeln!(out, "# TYPE sluice_cleaner_dirty_ratio gauge");
    for s in snaps {
        for (t, p, r) in &s.dirty_ratios {
            let _ = writeln!(
                out,
                "sluice_cleaner_dirty_ratio{{topic=\"{}\",partition=\"{p}\",shard=\"{}\"}} {r}",
                esc(t),
                s.shard
            );
        }
    }
    let _ = writeln!(
        out,
        "# TYPE sluice_cleaner_last_pass_bytes_per_second gauge"
    );
    for s in snaps {
        let _ = writeln!(
            out,
            "sluice_cleaner_last_pass_bytes_per_second{{shard=\"{}\"}} {}",
            s.shard, s.cleaner_bytes_per_sec
        );
    }
}

/// One share partition: records in its window by state, and its counters.
#[derive(Debug, Clone, Default)]
pub struct ShareMetric {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub start_offset: i64,
    pub available: u64,
    pub acquired: u64,
    pub archived_total: u64,
    pub delivery_limit_hits: u64,
    pub lock_expiries: u64,
}

/// Share groups: per share partition, and the DLQ writes per shard.
fn render_shares(out: &mut String, snaps: &[Snapshot]) {
    use std::fmt::Write;
    type Get = fn(&ShareMetric) -> u64;
    let series: [(&str, &str, Get); 6] = [
        ("sluice_share_records_available", "gauge", |m| m.available),
        ("sluice_share_records_acquired", "gauge", |m| m.acquired),
        ("sluice_share_records_archived_total", "counter", |m| {
            m.archived_total
        }),
        ("sluice_share_delivery_limit_hits_total", "counter", |m| {
            m.delivery_limit_hits
        }),
        ("sluice_share_lock_expiries_total", "counter", |m| {
            m.lock_expiries
        }),
        ("sluice_share_start_offset", "gauge", |m| {
            m.start_offset.max(0) as u64
        }),
    ];
    for (name, kind, get) in series {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for m in snaps.iter().flat_map(|s| s.shares.iter()) {
            let _ = writeln!(
                out,
                "{name}{{group=\"{}\",topic=\"{}\",partition=\"{}\"}} {}",
                esc(&m.group),
                esc(&m.topic),
                m.partition,
                get(m)
            );
        }
    }
    for (name, get) in [
        (
            "sluice_share_dlq_writes_total",
            (|s: &Snapshot| s.dlq_writes) as fn(&Snapshot) -> u64,
        ),
        ("sluice_share_dlq_write_failures_total", |s: &Snapshot| {
            s.dlq_failures
        }),
    ] {
        let _ = writeln!(out, "# TYPE {name} counter");
        for s in snaps {
            let _ = writeln!(out, "{name}{{shard=\"{}\"}} {}", s.shard, get(s));
        }
    }
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
            sasl_reauthentications: Cell::new(0),
            sasl_sessions_expired: Cell::new(0),
            produce_credit_waits: Cell::new(0),
            cleaner_bytes_read: Cell::new(0),
            cleaner_bytes_written: Cell::new(0),
            cleaner_passes: Cell::new(0),
            cleaner_time_us: Cell::new(0),
            cleaner_last_bytes_per_sec: Cell::new(0),
            requests: RefCell::new(BTreeMap::new()),
            queued: RefCell::new(new_histogram()),
        }
    }

    /// A request's handler started `waited` after its frame was cut off the socket.
    pub fn record_queued(&self, waited: Duration) {
        let us = (waited.as_micros() as u64).clamp(1, 60_000_000);
        self.queued.borrow_mut().saturating_record(us);
    }

    pub fn queued_snapshot(&self) -> Histogram<u64> {
        self.queued.borrow().clone()
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

    /// One cleaning pass: `read` bytes of log in, `written` out, in `took`.
    pub fn record_clean(&self, read: u64, written: u64, took: Duration) {
        bump(&self.cleaner_bytes_read, read);
        bump(&self.cleaner_bytes_written, written);
        bump(&self.cleaner_passes, 1);
        bump(&self.cleaner_time_us, took.as_micros() as u64);
        let secs = took.as_secs_f64().max(1e-6);
        self.cleaner_last_bytes_per_sec
            .set((read as f64 / secs) as u64);
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
                "sluice_sasl_reauthentications_total",
                self.sasl_reauthentications.get(),
            ),
            (
                "sluice_sasl_sessions_expired_total",
                self.sasl_sessions_expired.get(),
            ),
            (
                "sluice_produce_credit_waits_total",
                self.produce_credit_waits.get(),
            ),
            (
                "sluice_cleaner_bytes_read_total",
                self.cleaner_bytes_read.get(),
            ),
            (
                "sluice_cleaner_bytes_written_total",
                self.cleaner_bytes_written.get(),
            ),
            ("sluice_cleaner_passes_total", self.cleaner_passes.get()),
            ("sluice_cleaner_time_us_total", self.cleaner_time_us.get()),
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
    render_shares(&mut out, snaps);
    render_cleaner(&mut out, snaps);
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
    let _ = writeln!(out, "# TYPE sluice_mesh_calls_total counter");
    for s in snaps {
        for (name, n) in &s.mesh_calls {
            let _ = writeln!(
                out,
                "sluice_mesh_calls_total{{shard=\"{}\",message=\"{name}\"}} {n}",
                s.shard
            );
        }
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
    render_process_counter(
        &mut out,
        "sluice_log_lines_dropped_total",
        "log lines dropped because stderr failed (full disk, closed pipe)",
        log_sink::dropped_lines(),
    );
    render_process_counter(
        &mut out,
        "sluice_log_lines_suppressed_total",
        "log lines held back by the one-a-second limit on client-caused events",
        log_limit::suppressed_lines(),
    );
    render_group_lag(&mut out, snaps);
    render_request_latency(&mut out, snaps);
    render_summary(
        &mut out,
        "sluice_fsync_latency_seconds",
        "fdatasync of segment data (group commit, flush, seal)",
        snaps.iter().map(|s| &s.fsync),
    );
    render_summary(
        &mut out,
        "sluice_journal_fsync_latency_seconds",
        "group-commit fdatasync of the journals (offsets, transactions, share state)",
        snaps.iter().map(|s| &s.journal_fsync),
    );
    render_summary(
        &mut out,
        "sluice_request_queued_seconds",
        "time from a request frame being cut off the socket to its handler starting",
        snaps.iter().map(|s| &s.queued),
    );
    out
}

/// HDR quantiles shown for every latency summary.
const QUANTILES: [f64; 6] = [0.5, 0.9, 0.99, 0.999, 0.9999, 1.0];

/// One latency summary (µs histograms merged over shards, rendered in seconds).
/// A counter of the whole process (no shard label).
fn render_process_counter(out: &mut String, name: &str, help: &str, value: u64) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {value}");
}

fn render_summary<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    hists: impl Iterator<Item = &'a Histogram<u64>>,
) {
    use std::fmt::Write;
    let mut merged = new_histogram();
    for h in hists {
        let _ = merged.add(h);
    }
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} summary");
    for q in QUANTILES {
        let _ = writeln!(
            out,
            "{name}{{quantile=\"{q}\"}} {}",
            merged.value_at_quantile(q) as f64 / 1e6
        );
    }
    let _ = writeln!(out, "{name}_count {}", merged.len());
}

/// Request latency: merged over shards, as a summary with HDR quantiles by API.
fn render_request_latency(out: &mut String, snaps: &[Snapshot]) {
    use std::fmt::Write;
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
        for q in QUANTILES {
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
        // The histogram's mean times its count: within its precision (3 significant
        // digits), enough for a mean over a window from two scrapes.
        let _ = writeln!(
            out,
            "sluice_request_latency_seconds_sum{{api=\"{api}\"}} {}",
            h.mean() * h.len() as f64 / 1e6
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values_us: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for v in values_us {
            h.record(*v).unwrap();
        }
        h
    }

    fn snap(shard: usize, fsync: &[u64], queued: &[u64]) -> Snapshot {
        let m = ShardMetrics::new(shard);
        m.record_append(1000, 10);
        m.record_request(
            ApiKey::Produce,
            Duration::from_micros(300 * (shard as u64 + 1)),
        );
        let (counters, requests) = m.snapshot();
        Snapshot {
            shard,
            counters,
            requests,
            partitions: vec![(format!("t{shard}"), 0, 100, 5, 4096)],
            connections: 1,
            group_offsets: vec![("g".into(), format!("t{shard}"), 0, 40)],
            produce_credit_in_use_bytes: 0,
            fsync: hist(fsync),
            journal_fsync: hist(fsync),
            queued: hist(queued),
            mesh_calls: vec![("partition.append", 3)],
            shares: vec![ShareMetric {
                group: "sg".into(),
                topic: format!("t{shard}"),
                partition: 0,
                available: 7,
                ..ShareMetric::default()
            }],
            dlq_writes: 2,
            dlq_failures: 0,
            dirty_ratios: vec![(format!("c{shard}"), 0, 0.25)],
            cleaner_bytes_per_sec: 0,
            partition_fetched: vec![],
            share_dlqs: vec![],
        }
    }

    /// The value of the one sample line that starts with `prefix` (name and labels).
    fn sample(text: &str, prefix: &str) -> f64 {
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
        assert_eq!(
            lines.len(),
            1,
            "one line starting with {prefix:?} in:\n{text}"
        );
        lines[0].rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn fsync_and_queued_latencies_are_merged_across_shards() {
        let text = render(&[snap(0, &[200, 300], &[5]), snap(1, &[4000], &[7, 9000])]);
        assert_eq!(sample(&text, "sluice_fsync_latency_seconds_count"), 3.0);
        let max = sample(&text, "sluice_fsync_latency_seconds{quantile=\"1\"}");
        assert!((max - 0.004).abs() < 0.00001, "fsync max {max}");
        let p50 = sample(&text, "sluice_fsync_latency_seconds{quantile=\"0.5\"}");
        assert!((p50 - 0.0003).abs() < 0.000001, "fsync p50 {p50}");
        assert_eq!(sample(&text, "sluice_request_queued_seconds_count"), 3.0);
        let qmax = sample(&text, "sluice_request_queued_seconds{quantile=\"1\"}");
        assert!((qmax - 0.009).abs() < 0.00001, "queued max {qmax}");
        assert!(text.contains("# TYPE sluice_fsync_latency_seconds summary"));
        assert!(text.contains("# TYPE sluice_request_queued_seconds summary"));
        // The journals' syncs are their own summary (the test snapshots reuse `fsync`).
        assert_eq!(
            sample(&text, "sluice_journal_fsync_latency_seconds_count"),
            3.0
        );
        let jmax = sample(
            &text,
            "sluice_journal_fsync_latency_seconds{quantile=\"1\"}",
        );
        assert!((jmax - 0.004).abs() < 0.00001, "journal fsync max {jmax}");
    }

    #[test]
    fn request_latency_counters_sizes_and_lag_are_still_rendered() {
        let text = render(&[snap(0, &[], &[]), snap(1, &[], &[])]);
        assert_eq!(
            sample(
                &text,
                "sluice_request_latency_seconds_count{api=\"Produce\"}"
            ),
            2.0
        );
        assert_eq!(
            sample(&text, "sluice_produced_bytes_total{shard=\"1\"}"),
            1000.0
        );
        assert_eq!(
            sample(
                &text,
                "sluice_partition_size_bytes{topic=\"t1\",partition=\"0\",shard=\"1\"}"
            ),
            4096.0
        );
        // Lag is the high watermark (100) less the committed offset (40).
        assert_eq!(
            sample(
                &text,
                "sluice_group_lag{group=\"g\",topic=\"t0\",partition=\"0\"}"
            ),
            60.0
        );
        // 300 µs on shard 0 and 600 µs on shard 1.
        let sum = sample(&text, "sluice_request_latency_seconds_sum{api=\"Produce\"}");
        assert!((sum - 0.0009).abs() < 1e-5, "{sum}");
        // No fsync yet: an empty summary with a zero count, not a missing metric.
        assert_eq!(sample(&text, "sluice_fsync_latency_seconds_count"), 0.0);
    }

    #[test]
    fn time_queued_is_recorded_per_shard() {
        let m = ShardMetrics::new(0);
        m.record_queued(Duration::from_micros(42));
        m.record_queued(Duration::ZERO);
        let h = m.queued_snapshot();
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1, "zero waits are clamped to the 1 µs floor");
        assert_eq!(h.max(), h.highest_equivalent(42));
    }
}
