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
    let (consumer, mut left, total) = assign_dlq(ctx, topic, from)?;
    let mut tally = Tally::default();
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
        tally.seen += 1;
        progress.update(tally.seen, Some(total as u64));
        tally.add(&m, group, limit);
    }
    progress.finish();
    let json = json!({
        "dlq": topic, "records": tally.counted, "without_copy": tally.no_copy,
        "by_source_topic": tally.by_source, "by_group": tally.by_group,
        "by_reason": tally.by_reason, "shown": tally.shown,
    });
    emit(ctx.format, &json, || inspect_text(topic, &tally));
    Ok(())
}

/// A consumer of the DLQ topic assigned from `from` (or each partition's log start) to
/// the end as of now; the end of each partition with records to read, and their count.
fn assign_dlq(
    ctx: &Ctx,
    topic: &str,
    from: i64,
) -> Result<(BaseConsumer, BTreeMap<i32, i64>, i64), CliError> {
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
    Ok((consumer, left, total))
}

/// What `inspect` counts of the dead-lettered records it reads.
#[derive(Default)]
struct Tally {
    by_source: BTreeMap<String, u64>,
    by_group: BTreeMap<String, u64>,
    by_reason: BTreeMap<String, u64>,
    /// Records of the chosen group (all without --group).
    counted: u64,
    /// Of those, records without a copy of the original value (cannot be redriven).
    no_copy: u64,
    /// Records read.
    seen: u64,
    /// The first `limit` records, as JSON.
    shown: Vec<Value>,
}

impl Tally {
    fn add(&mut self, m: &BorrowedMessage<'_>, group: Option<&str>, limit: usize) {
        let g = header(m, dlq::H_GROUP);
        if group.is_some() && g.as_deref() != group {
            return;
        }
        self.counted += 1;
        let source = header(m, dlq::H_TOPIC).unwrap_or_else(|| "?".into());
        *self.by_source.entry(source.clone()).or_default() += 1;
        *self
            .by_group
            .entry(g.clone().unwrap_or_else(|| "?".into()))
            .or_default() += 1;
        let reason = header(m, dlq::H_REASON).unwrap_or_else(|| "?".into());
        *self.by_reason.entry(reason.clone()).or_default() += 1;
        if m.payload().is_none() {
            self.no_copy += 1;
        }
        if self.shown.len() < limit {
            let number = |h| header(m, h).and_then(|p| p.parse::<i64>().ok());
            self.shown.push(json!({
                "partition": m.partition(), "offset": m.offset(),
                "timestamp": m.timestamp().to_millis(),
                "source_topic": source,
                "source_partition": number(dlq::H_PARTITION),
                "source_offset": number(dlq::H_OFFSET),
                "group": g, "delivery_count": number(dlq::H_DELIVERY_COUNT),
                "reason": reason, "key": preview(m.key()), "value": preview(m.payload()),
            }));
        }
    }
}

fn inspect_text(topic: &str, tally: &Tally) -> String {
    let mut out = format!(
        "DLQ {topic}: {} record(s), {} without a copy of the original (cannot be redriven)\n\n",
        tally.counted, tally.no_copy
    );
    for (title, counts) in [
        ("SOURCE-TOPIC", &tally.by_source),
        ("GROUP", &tally.by_group),
        ("REASON", &tally.by_reason),
    ] {
        let mut t = Table::new(&[title, "RECORDS"]);
        for (k, v) in counts {
            t.row(vec![k.clone(), v.to_string()]);
        }
        out.push_str(&t.render());
        out.push('\n');
    }
    let mut t = Table::new(&["OFFSET", "SOURCE", "GROUP", "DELIVERIES", "REASON", "VALUE"]);
    for r in &tally.shown {
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
    out.push_str(&t.render());
    out
}
