//! `sluice dlq inspect|redrive`: look inside a dead-letter topic (KIP-1191 records with
//! the `__dlq.errors.*` context headers) and move its records back
//! ([`super::redrive`]; `sluice redrive` is the same command under its old name).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Subcommand;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

use super::client::{EARLIEST, LATEST};
use super::error::CliError;
use super::output::{emit, or_dash, Progress, Table};
use super::redrive::RedriveArgs;
use super::Ctx;
use crate::kafka::dlq;

#[derive(Subcommand, Debug)]
pub enum DlqCmd {
    /// Count a DLQ's records by source topic, group and reason, and show the first ones.
    Inspect {
        /// The DLQ topic.
        dlq: String,
        /// Only records dead-lettered by this share group.
        #[arg(long)]
        group: Option<String>,
        /// Show at most this many records (all are counted).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// First offset to read (per partition).
        #[arg(long, default_value_t = 0)]
        from_offset: i64,
    },
    /// Move dead-letter records back to their source topics (all, one group's, or a range).
    Redrive(RedriveArgs),
}

pub fn run(ctx: &Ctx, cmd: DlqCmd) -> Result<(), CliError> {
    match cmd {
        DlqCmd::Redrive(a) => super::redrive::run(ctx, a),
        DlqCmd::Inspect {
            dlq,
            group,
            limit,
            from_offset,
        } => inspect(ctx, &dlq, group.as_deref(), limit, from_offset),
    }
}

fn header(m: &BorrowedMessage<'_>, name: &str) -> Option<String> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
}

fn preview(b: Option<&[u8]>) -> Option<String> {
    b.map(|b| {
        let s = String::from_utf8_lossy(b);
        if s.chars().count() > 80 {
            format!("{}…", s.chars().take(80).collect::<String>())
        } else {
            s.into_owned()
        }
    })
}

fn inspect(
    ctx: &Ctx,
    topic: &str,
    group: Option<&str>,
    limit: usize,
    from: i64,
) -> Result<(), CliError> {
    let mut c = ctx.client()?;
    let info = c
        .topics(Some(&[topic.to_string()]))?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::not_found(format!("DLQ topic {topic} does not exist")))?;
    let parts: Vec<(String, i32)> = info
        .partitions
        .iter()
        .map(|p| (topic.to_string(), p.0))
        .collect();
    let starts = c.list_offsets(&parts, EARLIEST)?;
    let ends = c.list_offsets(&parts, LATEST)?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &ctx.brokers)
        .set("group.id", "sluice-dlq-inspect")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| CliError::other(format!("consumer: {e}")))?;
    let mut tpl = TopicPartitionList::new();
    let mut left: BTreeMap<i32, i64> = BTreeMap::new();
    let mut total = 0i64;
    for tp in &parts {
        let start = starts.get(tp).copied().unwrap_or(0).max(from);
        let end = ends.get(tp).copied().unwrap_or(0);
        if start < end {
            tpl.add_partition_offset(topic, tp.1, Offset::Offset(start))
                .map_err(|e| CliError::other(e.to_string()))?;
            left.insert(tp.1, end);
            total += end - start;
        }
    }
    consumer
        .assign(&tpl)
        .map_err(|e| CliError::other(format!("assign: {e}")))?;
    let mut by_source: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_group: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    let (mut counted, mut no_copy, mut seen) = (0u64, 0u64, 0u64);
    let mut shown: Vec<Value> = Vec::new();
    let mut progress = Progress::new(&format!("reading {topic}"));
    let mut idle = Instant::now();
    while !left.is_empty() {
        if idle.elapsed() > ctx.timeout * 3 {
            return Err(CliError::unreachable(format!(
                "reading {topic}: no records for {:?}",
                ctx.timeout * 3
            )));
        }
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.map_err(|e| CliError::other(format!("consume {topic}: {e}")))?;
        idle = Instant::now();
        let Some(&end) = left.get(&m.partition()) else {
            continue;
        };
        if m.offset() + 1 >= end {
            left.remove(&m.partition());
        }
        if m.offset() >= end {
            continue;
        }
        seen += 1;
        progress.update(seen, Some(total as u64));
        let g = header(&m, dlq::H_GROUP);
        if group.is_some() && g.as_deref() != group {
            continue;
        }
        counted += 1;
        let source = header(&m, dlq::H_TOPIC).unwrap_or_else(|| "?".into());
        *by_source.entry(source.clone()).or_default() += 1;
        *by_group
            .entry(g.clone().unwrap_or_else(|| "?".into()))
            .or_default() += 1;
        let reason = header(&m, dlq::H_REASON).unwrap_or_else(|| "?".into());
        *by_reason.entry(reason.clone()).or_default() += 1;
        if m.payload().is_none() {
            no_copy += 1;
        }
        if shown.len() < limit {
            shown.push(json!({
                "partition": m.partition(), "offset": m.offset(),
                "timestamp": m.timestamp().to_millis(),
                "source_topic": source,
                "source_partition": header(&m, dlq::H_PARTITION).and_then(|p| p.parse::<i64>().ok()),
                "source_offset": header(&m, dlq::H_OFFSET).and_then(|p| p.parse::<i64>().ok()),
                "group": g, "delivery_count": header(&m, dlq::H_DELIVERY_COUNT).and_then(|p| p.parse::<i64>().ok()),
                "reason": reason, "key": preview(m.key()), "value": preview(m.payload()),
            }));
        }
    }
    progress.finish();
    let json = json!({
        "dlq": topic, "records": counted, "without_copy": no_copy,
        "by_source_topic": by_source, "by_group": by_group, "by_reason": by_reason,
        "shown": shown,
    });
    emit(ctx.format, &json, || {
        let mut out = format!("DLQ {topic}: {counted} record(s), {no_copy} without a copy of the original (cannot be redriven)\n\n");
        let mut t = Table::new(&["SOURCE-TOPIC", "RECORDS"]);
        for (k, v) in &by_source {
            t.row(vec![k.clone(), v.to_string()]);
        }
        out.push_str(&t.render());
        let mut t = Table::new(&["GROUP", "RECORDS"]);
        for (k, v) in &by_group {
            t.row(vec![k.clone(), v.to_string()]);
        }
        out.push('\n');
        out.push_str(&t.render());
        let mut t = Table::new(&["REASON", "RECORDS"]);
        for (k, v) in &by_reason {
            t.row(vec![k.clone(), v.to_string()]);
        }
        out.push('\n');
        out.push_str(&t.render());
        let mut t = Table::new(&["OFFSET", "SOURCE", "GROUP", "DELIVERIES", "REASON", "VALUE"]);
        for r in &shown {
            t.row(vec![
                format!("{}:{}", r["partition"], r["offset"]),
                format!(
                    "{}-{}@{}",
                    r["source_topic"].as_str().unwrap_or("?"),
                    or_dash(&r["source_partition"]),
                    or_dash(&r["source_offset"])
                ),
                r["group"].as_str().unwrap_or("-").into(),
                or_dash(&r["delivery_count"]),
                r["reason"].as_str().unwrap_or("-").into(),
                r["value"].as_str().unwrap_or("(no copy)").into(),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
        out
    });
    Ok(())
}
