//! The console's JSON API under `/api/` (read-only), computed from the same per-shard
//! snapshots as `/metrics`: `overview` (with a short history for the live graphs),
//! `topics`, `groups` (committed offsets and lag), `shares` (share partitions: records
//! available / acquired / archived), `shards`, and `all` (everything, one request a poll).
//! Every document carries `"broker": "sluice"`, by which `sluice` commands know the
//! endpoint is Sluice's.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use super::Snapshot;
use crate::config::BrokerConfig;

/// Samples kept for the graphs: one at most every `SAMPLE_EVERY_MS` an API call was
/// made, for `HISTORY` samples (10 minutes at one every 2 s while the console is open).
const HISTORY: usize = 300;
const SAMPLE_EVERY_MS: u64 = 1000;

/// Totals at one moment, from which the page draws rates.
#[derive(Clone, Debug)]
pub struct Sample {
    pub t_ms: u64,
    pub produced_bytes: u64,
    pub produced_records: u64,
    pub fetched_bytes: u64,
    pub connections: u64,
    pub requests: u64,
    /// Records in each topic's log (sum of high watermarks).
    pub topic_offsets: BTreeMap<String, i64>,
    /// Record bytes each topic has handed to consumers (Fetch and ShareFetch).
    pub topic_fetched: BTreeMap<String, u64>,
    /// Sum of each group's lag.
    pub group_lag: BTreeMap<String, i64>,
}

/// What the admin endpoint keeps between requests (on shard 0 only).
pub struct ApiState {
    pub started: Instant,
    pub history: VecDeque<Sample>,
}

impl Default for ApiState {
    fn default() -> Self {
        ApiState {
            started: Instant::now(),
            history: VecDeque::new(),
        }
    }
}

fn counter(s: &Snapshot, name: &str) -> u64 {
    s.counters
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, v)| *v)
}

fn merged<'a>(hists: impl Iterator<Item = &'a Histogram<u64>>) -> Histogram<u64> {
    let mut m = super::new_histogram();
    for h in hists {
        let _ = m.add(h);
    }
    m
}

fn quantiles_us(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({ "count": 0 });
    }
    json!({
        "count": h.len(),
        "p50": h.value_at_quantile(0.5),
        "p99": h.value_at_quantile(0.99),
        "p999": h.value_at_quantile(0.999),
        "max": h.max(),
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// (topic, partition) → record bytes fetched, over every shard.
fn fetched(snaps: &[Snapshot]) -> HashMap<(&str, i32), u64> {
    snaps
        .iter()
        .flat_map(|s| {
            s.partition_fetched
                .iter()
                .map(|(t, p, b)| ((t.as_str(), *p), *b))
        })
        .collect()
}

/// (topic, partition) → high watermark, over every shard.
fn hwms(snaps: &[Snapshot]) -> HashMap<(&str, i32), i64> {
    snaps
        .iter()
        .flat_map(|s| {
            s.partitions
                .iter()
                .map(|(t, p, h, _, _)| ((t.as_str(), *p), *h))
        })
        .collect()
}

pub fn topics(snaps: &[Snapshot]) -> Value {
    let fetched = fetched(snaps);
    let mut by_topic: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for s in snaps {
        for (t, p, hwm, start, size) in &s.partitions {
            by_topic.entry(t.as_str()).or_default().push(json!({
                "partition": p, "shard": s.shard, "high_watermark": hwm,
                "log_start_offset": start, "records": (hwm - start).max(0), "size_bytes": size,
                "fetched_bytes": fetched.get(&(t.as_str(), *p)).copied().unwrap_or(0),
            }));
        }
    }
    let topics: Vec<Value> = by_topic
        .into_iter()
        .map(|(t, mut parts)| {
            parts.sort_by_key(|p| p["partition"].as_i64());
            let sum = |k: &str| {
                parts
                    .iter()
                    .map(|p| p[k].as_i64().unwrap_or(0))
                    .sum::<i64>()
            };
            json!({
                "topic": t, "partition_count": parts.len(),
                "records": sum("records"), "size_bytes": sum("size_bytes"),
                "high_watermark_sum": sum("high_watermark"), "fetched_bytes": sum("fetched_bytes"),
                "partitions": parts,
            })
        })
        .collect();
    json!(topics)
}

pub fn groups(snaps: &[Snapshot]) -> Value {
    let hw = hwms(snaps);
    let mut by_group: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for s in snaps {
        for (g, t, p, committed) in &s.group_offsets {
            let end = hw.get(&(t.as_str(), *p)).copied();
            by_group.entry(g.as_str()).or_default().push(json!({
                "topic": t, "partition": p, "committed": committed, "end": end,
                "lag": end.map(|e| (e - committed).max(0)), "coordinator_shard": s.shard,
            }));
        }
    }
    let groups: Vec<Value> = by_group
        .into_iter()
        .map(|(g, mut parts)| {
            parts.sort_by(|a, b| {
                (a["topic"].as_str(), a["partition"].as_i64())
                    .cmp(&(b["topic"].as_str(), b["partition"].as_i64()))
            });
            let lag: i64 = parts.iter().map(|p| p["lag"].as_i64().unwrap_or(0)).sum();
            let mut topics: Vec<&str> = parts.iter().filter_map(|p| p["topic"].as_str()).collect();
            topics.dedup();
            json!({ "group": g, "total_lag": lag, "topics": topics, "partitions": parts })
        })
        .collect();
    json!(groups)
}

/// Records waiting in `topic` (end minus log start, over its partitions).
fn depth(snaps: &[Snapshot], topic: &str) -> Option<i64> {
    let parts: Vec<i64> = snaps
        .iter()
        .flat_map(|s| s.partitions.iter())
        .filter(|p| p.0 == topic)
        .map(|p| (p.2 - p.3).max(0))
        .collect();
    (!parts.is_empty()).then(|| parts.iter().sum())
}

pub fn shares(snaps: &[Snapshot]) -> Value {
    let hw = hwms(snaps);
    let dlqs: HashMap<&str, (&str, Option<i64>)> = snaps
        .iter()
        .flat_map(|s| s.share_dlqs.iter())
        .map(|(g, t)| (g.as_str(), (t.as_str(), depth(snaps, t))))
        .collect();
    let mut rows: Vec<Value> = snaps
        .iter()
        .flat_map(|s| {
            let (hw, dlqs) = (&hw, &dlqs);
            s.shares.iter().map(move |m| {
                let end = hw.get(&(m.topic.as_str(), m.partition)).copied();
                let (dlq_topic, dlq_depth) = dlqs.get(m.group.as_str()).copied().unzip();
                json!({
                    "group": m.group, "topic": m.topic, "partition": m.partition, "shard": s.shard,
                    "start_offset": m.start_offset, "end": end,
                    "not_yet_acquired": end.map(|e| (e - m.start_offset).max(0) as u64)
                        .map(|n| n.saturating_sub(m.acquired)),
                    "available": m.available, "acquired": m.acquired,
                    "archived_total": m.archived_total, "delivery_limit_hits": m.delivery_limit_hits,
                    "lock_expiries": m.lock_expiries,
                    "dlq_topic": dlq_topic, "dlq_depth": dlq_depth.flatten(),
                })
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        (
            a["group"].as_str(),
            a["topic"].as_str(),
            a["partition"].as_i64(),
        )
            .cmp(&(
                b["group"].as_str(),
                b["topic"].as_str(),
                b["partition"].as_i64(),
            ))
    });
    json!(rows)
}

pub fn shards(snaps: &[Snapshot]) -> Value {
    json!(snaps
        .iter()
        .map(|s| {
            let requests: u64 = s.requests.values().map(|h| h.len()).sum();
            json!({
                "shard": s.shard,
                "partitions": s.partitions.len(),
                "connections": s.connections,
                "produced_bytes": counter(s, "sluice_produced_bytes_total"),
                "produced_records": counter(s, "sluice_produced_records_total"),
                "fetched_bytes": counter(s, "sluice_fetched_bytes_total"),
                "fetch_sendfile_bytes": counter(s, "sluice_fetch_sendfile_bytes_total"),
                "connections_refused": counter(s, "sluice_connections_refused_total"),
                "protocol_errors": counter(s, "sluice_protocol_errors_total"),
                "requests": requests,
                "size_bytes": s.partitions.iter().map(|p| p.4).sum::<u64>(),
                "produce_credit_in_use_bytes": s.produce_credit_in_use_bytes,
                "fsync_us": quantiles_us(&s.fsync),
                "journal_fsync_us": quantiles_us(&s.journal_fsync),
                "queued_us": quantiles_us(&s.queued),
                "cross_shard_calls": s.mesh_calls.iter().map(|(_, n)| n).sum::<u64>(),
                "dlq_writes": s.dlq_writes,
            })
        })
        .collect::<Vec<_>>())
}

/// Request latency by API, merged over shards.
fn requests(snaps: &[Snapshot]) -> Value {
    let mut by_api: BTreeMap<i16, Histogram<u64>> = BTreeMap::new();
    for s in snaps {
        for (k, h) in &s.requests {
            let _ = by_api.entry(*k).or_insert_with(super::new_histogram).add(h);
        }
    }
    json!(by_api
        .iter()
        .map(|(k, h)| {
            let api = kafka_protocol::messages::ApiKey::try_from(*k)
                .map(|a| format!("{a:?}"))
                .unwrap_or_else(|_| k.to_string());
            json!({ "api": api, "latency_us": quantiles_us(h) })
        })
        .collect::<Vec<_>>())
}

fn sample(snaps: &[Snapshot]) -> Sample {
    let sum = |name: &str| snaps.iter().map(|s| counter(s, name)).sum::<u64>();
    let mut topic_offsets = BTreeMap::new();
    let mut topic_fetched = BTreeMap::new();
    for s in snaps {
        for (t, _, h, _, _) in &s.partitions {
            *topic_offsets.entry(t.clone()).or_insert(0) += h;
        }
        for (t, _, b) in &s.partition_fetched {
            *topic_fetched.entry(t.clone()).or_insert(0) += b;
        }
    }
    let hw = hwms(snaps);
    let mut group_lag = BTreeMap::new();
    for s in snaps {
        for (g, t, p, c) in &s.group_offsets {
            if let Some(e) = hw.get(&(t.as_str(), *p)) {
                *group_lag.entry(g.clone()).or_insert(0) += (e - c).max(0);
            }
        }
    }
    Sample {
        t_ms: now_ms(),
        produced_bytes: sum("sluice_produced_bytes_total"),
        produced_records: sum("sluice_produced_records_total"),
        fetched_bytes: sum("sluice_fetched_bytes_total"),
        connections: snaps.iter().map(|s| s.connections as u64).sum(),
        requests: snaps
            .iter()
            .flat_map(|s| s.requests.values())
            .map(|h| h.len())
            .sum(),
        topic_offsets,
        topic_fetched,
        group_lag,
    }
}

fn sample_json(s: &Sample) -> Value {
    json!({
        "t": s.t_ms, "produced_bytes": s.produced_bytes, "produced_records": s.produced_records,
        "fetched_bytes": s.fetched_bytes, "connections": s.connections, "requests": s.requests,
        "topics": s.topic_offsets, "topics_fetched": s.topic_fetched, "groups": s.group_lag,
    })
}

/// The overview, recording a sample for the graphs first.
pub fn overview(snaps: &[Snapshot], config: &BrokerConfig, state: &mut ApiState) -> Value {
    let now = sample(snaps);
    let due = state
        .history
        .back()
        .is_none_or(|last| now.t_ms >= last.t_ms + SAMPLE_EVERY_MS);
    if due {
        state.history.push_back(now.clone());
        while state.history.len() > HISTORY {
            state.history.pop_front();
        }
    }
    let size: u64 = snaps
        .iter()
        .flat_map(|s| s.partitions.iter())
        .map(|p| p.4)
        .sum();
    let topics: std::collections::BTreeSet<&str> = snaps
        .iter()
        .flat_map(|s| s.partitions.iter().map(|p| p.0.as_str()))
        .collect();
    let groups: std::collections::BTreeSet<&str> = snaps
        .iter()
        .flat_map(|s| s.group_offsets.iter().map(|g| g.0.as_str()))
        .collect();
    let share_groups: std::collections::BTreeSet<&str> = snaps
        .iter()
        .flat_map(|s| s.shares.iter().map(|m| m.group.as_str()))
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "shards": snaps.len(),
        "uptime_s": state.started.elapsed().as_secs(),
        "listen": config.listen.to_string(),
        "admin_addr": config.admin_addr.to_string(),
        "data_dir": config.data_dir.display().to_string(),
        "flush": config.flush.to_string(),
        "max_connections": config.max_connections,
        "connections": now.connections,
        "topics": topics.len(),
        "partitions": snaps.iter().map(|s| s.partitions.len()).sum::<usize>(),
        "groups": groups.len(),
        "share_groups": share_groups.len(),
        "size_bytes": size,
        "produced_bytes": now.produced_bytes,
        "produced_records": now.produced_records,
        "fetched_bytes": now.fetched_bytes,
        "requests": now.requests,
        "fsync_us": quantiles_us(&merged(snaps.iter().map(|s| &s.fsync))),
        "journal_fsync_us": quantiles_us(&merged(snaps.iter().map(|s| &s.journal_fsync))),
        "dlq_writes": snaps.iter().map(|s| s.dlq_writes).sum::<u64>(),
        "dlq_failures": snaps.iter().map(|s| s.dlq_failures).sum::<u64>(),
        "history": state.history.iter().map(sample_json).collect::<Vec<_>>(),
    })
}

/// The document for `path` (`/api/...`), or None for an unknown one.
pub fn document(
    path: &str,
    snaps: &[Snapshot],
    config: &BrokerConfig,
    state: &mut ApiState,
) -> Option<Value> {
    let mut doc = Map::new();
    doc.insert("broker".into(), json!("sluice"));
    match path.trim_end_matches('/') {
        "/api" | "/api/all" => {
            doc.insert("overview".into(), overview(snaps, config, state));
            doc.insert("topics".into(), topics(snaps));
            doc.insert("groups".into(), groups(snaps));
            doc.insert("shares".into(), shares(snaps));
            doc.insert("shards".into(), shards(snaps));
            doc.insert("requests".into(), requests(snaps));
        }
        "/api/overview" => {
            if let Value::Object(o) = overview(snaps, config, state) {
                doc.extend(o);
            }
        }
        "/api/topics" => {
            doc.insert("topics".into(), topics(snaps));
        }
        "/api/groups" => {
            doc.insert("groups".into(), groups(snaps));
        }
        "/api/shares" => {
            doc.insert("shares".into(), shares(snaps));
        }
        "/api/shards" => {
            doc.insert("shards".into(), shards(snaps));
            doc.insert("requests".into(), requests(snaps));
        }
        _ => return None,
    }
    Some(Value::Object(doc))
}

#[cfg(test)]
mod tests {
    use super::super::{ShardMetrics, ShareMetric};
    use super::*;

    fn snap(shard: usize) -> Snapshot {
        let m = ShardMetrics::new(shard);
        m.record_append(1000, 10);
        let (counters, requests) = m.snapshot();
        Snapshot {
            shard,
            counters,
            requests,
            partitions: vec![("t".into(), shard as i32, 100, 5, 4096)],
            connections: 1,
            group_offsets: vec![("g".into(), "t".into(), shard as i32, 40)],
            produce_credit_in_use_bytes: 0,
            fsync: super::super::new_histogram(),
            journal_fsync: super::super::new_histogram(),
            queued: super::super::new_histogram(),
            mesh_calls: vec![],
            dirty_ratios: vec![],
            cleaner_bytes_per_sec: 0,
            partition_fetched: vec![("t".into(), shard as i32, 1000)],
            share_dlqs: match shard {
                0 => vec![("sg".into(), "t".into())],
                _ => vec![],
            },
            shares: vec![ShareMetric {
                group: "sg".into(),
                topic: "t".into(),
                partition: shard as i32,
                start_offset: 90,
                available: 7,
                acquired: 3,
                ..ShareMetric::default()
            }],
            dlq_writes: 0,
            dlq_failures: 0,
        }
    }

    #[test]
    fn documents_add_up_over_shards() {
        let snaps = [snap(0), snap(1)];
        let mut st = ApiState::default();
        let cfg = BrokerConfig::default();
        let all = document("/api/all", &snaps, &cfg, &mut st).unwrap();
        assert_eq!(all["broker"], "sluice");
        let t = &all["topics"][0];
        assert_eq!(t["topic"], "t");
        assert_eq!(t["partition_count"], 2);
        assert_eq!(t["records"], 190);
        assert_eq!(t["size_bytes"], 8192);
        assert_eq!(t["fetched_bytes"], 2000);
        assert_eq!(t["partitions"][1]["fetched_bytes"], 1000);
        let g = &all["groups"][0];
        assert_eq!(g["group"], "g");
        assert_eq!(g["total_lag"], 120);
        assert_eq!(all["shares"][1]["partition"], 1);
        assert_eq!(all["shares"][1]["not_yet_acquired"], 7);
        // The group's DLQ topic (coordinated on shard 0) and its depth over both shards.
        assert_eq!(all["shares"][1]["dlq_topic"], "t");
        assert_eq!(all["shares"][1]["dlq_depth"], 190);
        assert_eq!(all["overview"]["history"][0]["topics_fetched"]["t"], 2000);
        assert_eq!(all["overview"]["produced_records"], 20);
        assert_eq!(all["overview"]["history"].as_array().unwrap().len(), 1);
        assert_eq!(all["shards"][1]["produced_bytes"], 1000);
        // A second call within the second records no second sample.
        document("/api/overview", &snaps, &cfg, &mut st).unwrap();
        assert_eq!(st.history.len(), 1);
        assert!(document("/api/nope", &snaps, &cfg, &mut st).is_none());
    }
}
