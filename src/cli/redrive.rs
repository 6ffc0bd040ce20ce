//! `sluice redrive`: read a DLQ topic (KIP-1191 dead-letter records with the
//! `__dlq.errors.*` context headers) from a start offset to its end as of now (or an end
//! offset), and produce each record that carries its original value back to the source
//! topic and partition its headers name, with its key, value and original headers (the
//! `__dlq.errors.*` ones removed). Records without a copy of the original
//! (`errors.deadletterqueue.copy.record.enable=false`) cannot be redriven and are counted
//! as skipped. Reports counts per source topic.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::dlq::{self, HEADER_PREFIX as DLQ_HEADER_PREFIX};

#[derive(Args, Debug, Clone)]
pub struct RedriveArgs {
    /// Bootstrap servers (from --brokers / SLUICE_BROKERS).
    #[arg(skip)]
    pub bootstrap: String,
    /// The DLQ topic to read.
    #[arg(long)]
    pub dlq: String,
    /// Only records dead-lettered by this share group (header `__dlq.errors.group.id`).
    #[arg(long)]
    pub group: Option<String>,
    /// First DLQ offset to move (per partition).
    #[arg(long, default_value_t = 0)]
    pub from_offset: i64,
    /// Stop before this DLQ offset (default: the end of each partition when started).
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// Produce to this topic instead of the one in the headers.
    #[arg(long)]
    pub to_topic: Option<String>,
    /// How long to wait for the broker at most.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub moved: BTreeMap<String, u64>,
    pub skipped_no_copy: u64,
    pub skipped_other_group: u64,
}

fn header_str(m: &BorrowedMessage<'_>, name: &str) -> Option<String> {
    let hs = m.headers()?;
    hs.iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
}

/// The DLQ partitions with the range to read: (partition, from, to).
fn ranges(c: &BaseConsumer, a: &RedriveArgs) -> Result<Vec<(i32, i64, i64)>, String> {
    let t = Duration::from_secs(a.timeout_s);
    let md = c
        .fetch_metadata(Some(&a.dlq), t)
        .map_err(|e| format!("metadata of {}: {e}", a.dlq))?;
    let topic = md
        .topics()
        .first()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .ok_or_else(|| format!("DLQ topic {} not found", a.dlq))?;
    let mut out = Vec::new();
    for p in topic.partitions() {
        let (low, high) = c
            .fetch_watermarks(&a.dlq, p.id(), t)
            .map_err(|e| format!("watermarks of {}-{}: {e}", a.dlq, p.id()))?;
        let from = a.from_offset.max(low);
        let to = a.to_offset.map_or(high, |o| o.min(high));
        if from < to {
            out.push((p.id(), from, to));
        }
    }
    Ok(out)
}

pub fn run(ctx: &super::Ctx, mut a: RedriveArgs) -> Result<(), super::error::CliError> {
    a.bootstrap = ctx.brokers.clone();
    // The DLQ topic must exist: say so with the Kafka error and exit code 4.
    ctx.client()?.topics(Some(&[a.dlq.clone()]))?;
    let report = redrive(&a)?;
    let total: u64 = report.moved.values().sum();
    let json = serde_json::json!({
        "dlq": a.dlq,
        "moved": total,
        "by_topic": report.moved,
        "skipped_no_copy": report.skipped_no_copy,
        "skipped_other_group": report.skipped_other_group,
    });
    super::output::emit(ctx.format, &json, || {
        let mut s = format!("redrive {}: moved {total}\n", a.dlq);
        for (t, n) in &report.moved {
            s.push_str(&format!("  {t}: {n}\n"));
        }
        s.push_str(&format!(
            "  skipped: {} without a copy of the record, {} of other groups\n",
            report.skipped_no_copy, report.skipped_other_group
        ));
        s
    });
    Ok(())
}

pub fn redrive(a: &RedriveArgs) -> Result<Report, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("group.id", "sluice-redrive")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .map_err(|e| format!("producer: {e}"))?;
    let ranges = ranges(&consumer, a)?;
    let mut tpl = TopicPartitionList::new();
    for &(p, from, _) in &ranges {
        tpl.add_partition_offset(&a.dlq, p, Offset::Offset(from))
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&tpl).map_err(|e| format!("assign: {e}"))?;
    let mut left: BTreeMap<i32, i64> = ranges.iter().map(|&(p, _, to)| (p, to)).collect();
    let mut report = Report::default();
    let total: i64 = ranges.iter().map(|&(_, from, to)| to - from).sum();
    let mut seen = 0u64;
    let mut progress = super::output::Progress::new(&format!("redriving {}", a.dlq));
    let deadline = Instant::now() + Duration::from_secs(a.timeout_s);
    while !left.is_empty() {
        if Instant::now() > deadline {
            return Err(format!("timed out; so far {report:?}"));
        }
        producer.poll(Duration::ZERO);
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.map_err(|e| format!("consume: {e}"))?;
        let Some(&to) = left.get(&m.partition()) else {
            continue;
        };
        if m.offset() >= to {
            left.remove(&m.partition());
            continue;
        }
        move_one(&producer, a, &m, &mut report)?;
        seen += 1;
        progress.update(seen, Some(total as u64));
        if m.offset() + 1 >= to {
            left.remove(&m.partition());
        }
    }
    producer
        .flush(Duration::from_secs(a.timeout_s))
        .map_err(|e| format!("flush: {e}"))?;
    progress.finish();
    Ok(report)
}

fn move_one(
    producer: &BaseProducer,
    a: &RedriveArgs,
    m: &BorrowedMessage<'_>,
    report: &mut Report,
) -> Result<(), String> {
    if let Some(g) = &a.group {
        if header_str(m, dlq::H_GROUP).as_deref() != Some(g.as_str()) {
            report.skipped_other_group += 1;
            return Ok(());
        }
    }
    let source = header_str(m, dlq::H_TOPIC);
    let (Some(source), Some(value)) = (source, m.payload()) else {
        report.skipped_no_copy += 1;
        return Ok(());
    };
    let topic = a.to_topic.clone().unwrap_or(source);
    let partition = header_str(m, dlq::H_PARTITION).and_then(|p| p.parse().ok());
    let mut headers = OwnedHeaders::new();
    if let Some(hs) = m.headers() {
        for h in hs.iter().filter(|h| !h.key.starts_with(DLQ_HEADER_PREFIX)) {
            headers = headers.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    let mut rec = BaseRecord::<[u8], [u8]>::to(&topic)
        .payload(value)
        .headers(headers);
    if let Some(k) = m.key() {
        rec = rec.key(k);
    }
    if a.to_topic.is_none() {
        if let Some(p) = partition {
            rec = rec.partition(p);
        }
    }
    let mut rec = Some(rec);
    while let Some(r) = rec.take() {
        match producer.send(r) {
            Ok(()) => {}
            Err((e, r))
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
            {
                producer.poll(Duration::from_millis(50));
                rec = Some(r);
            }
            Err((e, _)) => return Err(format!("produce to {topic}: {e}")),
        }
    }
    *report.moved.entry(topic).or_default() += 1;
    Ok(())
}
