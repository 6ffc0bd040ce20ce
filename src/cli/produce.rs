//! `sluice produce`: records from stdin, a file or the command line, one a line, through
//! librdkafka (idempotent, acks as asked, compression), with their delivery reports
//! counted per partition.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message};
use serde_json::json;

use super::error::CliError;
use super::output::{emit, Progress};
use super::spec::parse_kv;
use super::Ctx;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    pub topic: String,
    /// Read records from this file (default: stdin).
    #[arg(short = 'F', long)]
    pub file: Option<std::path::PathBuf>,
    /// Produce these values instead of reading lines (repeat for more).
    #[arg(short = 'v', long = "value")]
    pub values: Vec<String>,
    /// Split each line at the first SEP into key and value (kcat -K).
    #[arg(short = 'K', long)]
    pub key_separator: Option<String>,
    /// One key for every record.
    #[arg(short = 'k', long, conflicts_with = "key_separator")]
    pub key: Option<String>,
    /// A header key=value on every record (repeat for more).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// The partition to write to (default: by key, or spread).
    #[arg(short, long)]
    pub partition: Option<i32>,
    /// Acknowledgements: all, 1 or 0.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(short = 'z', long, default_value = "none")]
    pub compression: String,
    /// Record delimiter of the input (default: newline); \0 for NUL.
    #[arg(short = 'D', long, default_value = "\n")]
    pub delimiter: String,
    /// Extra librdkafka producer property key=value (repeat for more).
    #[arg(short = 'X', long = "property")]
    pub properties: Vec<String>,
}

#[derive(Default)]
struct Deliveries {
    /// partition → (first offset, last offset, count)
    ok: Mutex<BTreeMap<i32, (i64, i64, u64)>>,
    errors: Mutex<Vec<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(m) => {
                let mut ok = self.ok.lock().unwrap_or_else(|p| p.into_inner());
                let e = ok
                    .entry(m.partition())
                    .or_insert((m.offset(), m.offset(), 0));
                e.0 = e.0.min(m.offset());
                e.1 = e.1.max(m.offset());
                e.2 += 1;
            }
            Err((e, _)) => {
                let mut errs = self.errors.lock().unwrap_or_else(|p| p.into_inner());
                if errs.len() < 20 {
                    errs.push(e.to_string());
                }
            }
        }
    }
}

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n")
        .replace("\\t", "\t")
        .replace("\\0", "\0")
}

pub fn run(ctx: &Ctx, a: ProduceArgs) -> Result<(), CliError> {
    check_args(&a)?;
    let headers: Vec<(String, String)> = a
        .headers
        .iter()
        .map(|h| parse_kv(h))
        .collect::<Result<_, _>>()?;
    check_partition(ctx, &a)?;
    let producer: BaseProducer<Deliveries> = producer_config(ctx, &a)?
        .create_with_context(Deliveries::default())
        .map_err(|e| CliError::usage(format!("producer: {e}")))?;
    let mut sender = Sender {
        a: &a,
        producer: &producer,
        headers,
        key_sep: a.key_separator.as_deref().map(unescape),
        progress: Progress::new(&format!("producing to {}", a.topic)),
        sent: 0,
    };
    if a.values.is_empty() {
        read_input(&a, |line| sender.send(line))?;
    } else {
        for v in &a.values {
            sender.send(v.as_bytes())?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30).max(ctx.timeout * 3);
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        producer.poll(Duration::from_millis(50));
    }
    let _ = producer.flush(Duration::from_secs(1));
    sender.progress.finish();
    report(ctx, &a, &producer, sender.sent)
}

fn check_args(a: &ProduceArgs) -> Result<(), CliError> {
    if !["all", "-1", "1", "0"].contains(&a.acks.as_str()) {
        return Err(CliError::usage(format!(
            "--acks {}: use all, 1 or 0",
            a.acks
        )));
    }
    if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&a.compression.as_str()) {
        return Err(CliError::usage(format!(
            "--compression {}: use none, gzip, snappy, lz4 or zstd",
            a.compression
        )));
    }
    Ok(())
}

/// Fail fast, with the Kafka error, on a topic that does not exist or a bad partition.
fn check_partition(ctx: &Ctx, a: &ProduceArgs) -> Result<(), CliError> {
    let mut admin = ctx.client()?;
    let info = admin.topics(Some(std::slice::from_ref(&a.topic)))?;
    if let (Some(p), Some(t)) = (a.partition, info.first()) {
        if p < 0 || p as usize >= t.partitions.len() {
            return Err(CliError::not_found(format!(
                "partition {}-{p} does not exist (the topic has {}): UNKNOWN_TOPIC_OR_PARTITION (3)",
                a.topic,
                t.partitions.len()
            )));
        }
    }
    Ok(())
}

fn producer_config(ctx: &Ctx, a: &ProduceArgs) -> Result<ClientConfig, CliError> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &ctx.brokers)
        .set("acks", &a.acks)
        .set("compression.type", &a.compression)
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            (ctx.timeout.as_millis() as u64 * 3).max(10_000).to_string(),
        );
    if a.acks == "all" || a.acks == "-1" {
        cfg.set("enable.idempotence", "true");
    }
    for p in &a.properties {
        let (k, v) = parse_kv(p)?;
        cfg.set(k, v);
    }
    Ok(cfg)
}

/// Each line of the file (or stdin), cut at --delimiter, given to `send`.
fn read_input(
    a: &ProduceArgs,
    mut send: impl FnMut(&[u8]) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let delim = unescape(&a.delimiter).into_bytes();
    let input: Box<dyn std::io::Read> = match &a.file {
        Some(p) => Box::new(
            std::fs::File::open(p)
                .map_err(|e| CliError::usage(format!("cannot open {}: {e}", p.display())))?,
        ),
        None => Box::new(std::io::stdin()),
    };
    let mut r = BufReader::with_capacity(1 << 16, input);
    let last = *delim.last().unwrap_or(&b'\n');
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = r
            .read_until(last, &mut buf)
            .map_err(|e| CliError::other(format!("reading input: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        if buf.ends_with(&delim) {
            buf.truncate(buf.len() - delim.len());
        }
        if buf.last() == Some(&b'\r') && delim == b"\n" {
            buf.pop();
        }
        send(&buf)?;
    }
}

/// Turns input lines into records and hands them to the producer.
struct Sender<'a> {
    a: &'a ProduceArgs,
    producer: &'a BaseProducer<Deliveries>,
    headers: Vec<(String, String)>,
    key_sep: Option<String>,
    progress: Progress,
    sent: u64,
}

impl Sender<'_> {
    fn send(&mut self, line: &[u8]) -> Result<(), CliError> {
        let a = self.a;
        let (key, value): (Option<&[u8]>, &[u8]) = match &self.key_sep {
            Some(sep) => match find(line, sep.as_bytes()) {
                Some(i) => (Some(&line[..i]), &line[i + sep.len()..]),
                None => (None, line),
            },
            None => (a.key.as_deref().map(str::as_bytes), line),
        };
        let mut hs = OwnedHeaders::new();
        for (k, v) in &self.headers {
            hs = hs.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let mut rec = BaseRecord::<[u8], [u8]>::to(&a.topic)
            .payload(value)
            .headers(hs);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if let Some(p) = a.partition {
            rec = rec.partition(p);
        }
        let mut rec = Some(rec);
        while let Some(r) = rec.take() {
            match self.producer.send(r) {
                Ok(()) => {}
                Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    self.producer.poll(Duration::from_millis(20));
                    rec = Some(r);
                }
                Err((e, _)) => return Err(CliError::other(format!("produce to {}: {e}", a.topic))),
            }
        }
        self.sent += 1;
        self.producer.poll(Duration::ZERO);
        self.progress.update(self.sent, None);
        Ok(())
    }
}

/// What was delivered where, or the error of what was not.
fn report(
    ctx: &Ctx,
    a: &ProduceArgs,
    producer: &BaseProducer<Deliveries>,
    sent: u64,
) -> Result<(), CliError> {
    let deliveries = producer.context();
    let ok = deliveries
        .ok
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let errors = deliveries
        .errors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let delivered: u64 = ok.values().map(|v| v.2).sum();
    if delivered < sent {
        return Err(CliError::other(format!(
            "produce to {}: {} of {sent} records not delivered: {}",
            a.topic,
            sent - delivered,
            errors
                .first()
                .cloned()
                .unwrap_or_else(|| "timed out".into())
        )));
    }
    let json = json!({
        "topic": a.topic,
        "produced": delivered,
        "failed": sent - delivered,
        "partitions": ok.iter().map(|(p, (first, last, n))| json!({"partition": p, "first_offset": first, "last_offset": last, "count": n})).collect::<Vec<_>>(),
        "errors": errors,
    });
    emit(ctx.format, &json, || {
        let mut s = format!("produced {delivered} record(s) to {}\n", a.topic);
        for (p, (first, last, n)) in &ok {
            s.push_str(&format!(
                "  partition {p}: {n} at offsets {first}..{last}\n"
            ));
        }
        s
    });
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}
