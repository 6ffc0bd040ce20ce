//! `sluice consume`: records to stdout, through librdkafka, as a kcat-like format string
//! or one JSON object a line; from the beginning, the end, an offset, N before the end or
//! a time; a count, to the end, or following; in a group (subscribed, committing what it
//! printed) or on partitions it assigns itself.

use std::collections::BTreeSet;
use std::io::{BufWriter, IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::json;

use super::error::CliError;
use super::output::{Format, Progress};
use super::spec::{parse_kv, parse_start, Start};
use super::Ctx;

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[arg(required = true)]
    pub topics: Vec<String>,
    /// Consume as this group: subscribe, and commit the offsets of the records printed.
    /// With a group, --from applies only where it has no committed offset, unless
    /// partitions are named with -p.
    #[arg(short, long)]
    pub group: Option<String>,
    /// Only these partitions (repeat for more); assigned, not subscribed.
    #[arg(short, long = "partition")]
    pub partitions: Vec<i32>,
    /// Where to start: beginning, end, stored, OFFSET, -N (N before the end), @TIME (ms or
    /// RFC 3339) or ago:DURATION. Default: beginning (stored with --group).
    #[arg(short = 'o', long = "from", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// Stop after this many records.
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// Keep waiting for new records at the end (default: stop at the end).
    #[arg(long)]
    pub follow: bool,
    /// kcat-like format: %t topic, %p partition, %o offset, %k key, %s value, %K key
    /// length, %S value length, %h headers (k=v,...), %T timestamp (ms), %%, \n, \t.
    /// Default "%s\n". Ignored with --output json (one JSON object a line).
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Only committed records of transactions (read_committed), or all (read_uncommitted).
    #[arg(long, default_value = "read_committed")]
    pub isolation: String,
    /// Extra librdkafka consumer property key=value (repeat for more).
    #[arg(short = 'X', long = "property")]
    pub properties: Vec<String>,
}

/// librdkafka's context, less its log line for every partition that reaches its end
/// (which `sluice consume` asks for, to know when to stop).
pub struct Quiet;

impl ClientContext for Quiet {
    fn error(&self, error: RdError, reason: &str) {
        if !matches!(error, RdError::PartitionEOF(_))
            && error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF)
        {
            tracing::warn!("librdkafka: {error}: {reason}");
        }
    }
}

impl ConsumerContext for Quiet {}

pub fn run(ctx: &Ctx, a: ConsumeArgs) -> Result<(), CliError> {
    let start = checked_start(&a)?;
    let mut admin = ctx.client()?;
    let assignment = assignment(&mut admin, &a)?;
    let ends = if a.topics.len() > 1 {
        admin.list_offsets(&assignment, super::client::LATEST)?
    } else {
        Default::default()
    };
    let consumer: BaseConsumer<Quiet> = consumer_config(ctx, &a, start)?
        .create_with_context(Quiet)
        .map_err(|e| CliError::usage(format!("consumer: {e}")))?;
    let subscribe = a.group.is_some()
        && a.partitions.is_empty()
        && matches!(start, Start::Stored | Start::Beginning | Start::End);
    if subscribe {
        let topics: Vec<&str> = a.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| CliError::other(format!("subscribe: {e}")))?;
    } else {
        assign(&consumer, &mut admin, &assignment, start)?;
    }
    let mut reader = Reader {
        ctx,
        a: &a,
        consumer: &consumer,
        ends,
        at_end: BTreeSet::new(),
        n: 0,
    };
    let result = reader.read();
    if a.group.is_some() && reader.n > 0 {
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            if !matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::NoOffset)) {
                return Err(CliError::other(format!("commit: {e}")));
            }
        }
    }
    result
}

/// Where to start, from --from and --group, with --isolation checked.
fn checked_start(a: &ConsumeArgs) -> Result<Start, CliError> {
    let start = match &a.from {
        Some(s) => parse_start(s)?,
        None if a.group.is_some() => Start::Stored,
        None => Start::Beginning,
    };
    if start == Start::Stored && a.group.is_none() {
        return Err(CliError::usage("--from stored needs --group"));
    }
    if !["read_committed", "read_uncommitted"].contains(&a.isolation.as_str()) {
        return Err(CliError::usage(
            "--isolation: read_committed or read_uncommitted",
        ));
    }
    Ok(start)
}

/// The partitions to read: every partition of the topics, or those named with -p (each
/// of which must exist).
fn assignment(
    admin: &mut super::client::Client,
    a: &ConsumeArgs,
) -> Result<Vec<(String, i32)>, CliError> {
    let infos = admin.topics(Some(&a.topics))?;
    let assignment: Vec<(String, i32)> = infos
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.clone(), p.0)))
        .filter(|(_, p)| a.partitions.is_empty() || a.partitions.contains(p))
        .collect();
    if let Some(p) = a
        .partitions
        .iter()
        .find(|p| !assignment.iter().any(|(_, q)| q == *p))
    {
        return Err(CliError::not_found(format!(
            "partition {p} does not exist in {}: UNKNOWN_TOPIC_OR_PARTITION (3)",
            a.topics.join(",")
        )));
    }
    Ok(assignment)
}

fn consumer_config(ctx: &Ctx, a: &ConsumeArgs, start: Start) -> Result<ClientConfig, CliError> {
    let reset = if start == Start::End {
        "latest"
    } else {
        "earliest"
    };
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &ctx.brokers)
        .set("enable.partition.eof", "true")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", &a.isolation)
        .set("auto.offset.reset", reset);
    match &a.group {
        Some(g) => cfg.set("group.id", g).set("enable.auto.commit", "true"),
        None => cfg
            .set("group.id", "sluice-consume")
            .set("enable.auto.commit", "false"),
    };
    for p in &a.properties {
        let (k, v) = parse_kv(p)?;
        cfg.set(k, v);
    }
    Ok(cfg)
}

/// Assign `assignment`, each partition at the offset `start` names there.
fn assign(
    consumer: &BaseConsumer<Quiet>,
    admin: &mut super::client::Client,
    assignment: &[(String, i32)],
    start: Start,
) -> Result<(), CliError> {
    let by_time = match start {
        Start::Time(ts) => Some(admin.list_offsets(assignment, ts)?),
        _ => None,
    };
    let mut tpl = TopicPartitionList::new();
    for tp in assignment {
        let off = match start {
            Start::Beginning => Offset::Beginning,
            Start::End => Offset::End,
            Start::Stored => Offset::Stored,
            Start::Offset(n) => Offset::Offset(n),
            Start::FromEnd(n) => Offset::OffsetTail(n),
            Start::Time(_) => match by_time.as_ref().and_then(|m| m.get(tp)).copied() {
                Some(o) if o >= 0 => Offset::Offset(o),
                _ => Offset::End,
            },
        };
        tpl.add_partition_offset(&tp.0, tp.1, off)
            .map_err(|e| CliError::other(e.to_string()))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| CliError::other(format!("assign: {e}")))
}

/// The read loop: records to stdout until the count, the end of every assigned
/// partition, or (with --follow) an interrupt.
struct Reader<'a> {
    ctx: &'a Ctx,
    a: &'a ConsumeArgs,
    consumer: &'a BaseConsumer<Quiet>,
    /// The end offsets seen at the start (with several topics only).
    ends: std::collections::BTreeMap<(String, i32), i64>,
    at_end: BTreeSet<(String, i32)>,
    /// Records printed.
    n: u64,
}

impl Reader<'_> {
    fn read(&mut self) -> Result<(), CliError> {
        let fmt = self.a.format.clone().unwrap_or_else(|| "%s\\n".into());
        let stdout = std::io::stdout();
        let to_terminal = stdout.is_terminal();
        let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
        let mut progress = Progress::new(&format!("consumed from {}", self.a.topics.join(",")));
        let mut last_flush = Instant::now();
        let idle_limit = self.ctx.timeout * 3;
        let mut last_progress = Instant::now();
        let result = loop {
            if self.a.count.is_some_and(|c| self.n >= c) {
                break Ok(());
            }
            let assigned = self.assigned();
            if !self.a.follow && !assigned.is_empty() && assigned.is_subset(&self.at_end) {
                break Ok(());
            }
            if !self.a.follow && assigned.is_empty() && last_progress.elapsed() > idle_limit {
                break Err(CliError::unreachable(format!(
                    "no partitions assigned after {idle_limit:?}: is the group rebalancing, or the broker gone?"
                )));
            }
            match self.consumer.poll(Duration::from_millis(100)) {
                None => continue,
                Some(Err(RdError::PartitionEOF(p))) => self.reached_end(p, &assigned),
                Some(Err(e)) => break Err(consume_error(e)),
                Some(Ok(m)) => {
                    if !self.print(&m, &fmt, &mut out) {
                        break Ok(()); // stdout closed (| head): stop quietly
                    }
                    if !to_terminal {
                        progress.update(self.n, None);
                    }
                    if to_terminal || last_flush.elapsed() > Duration::from_millis(200) {
                        let _ = out.flush();
                        last_flush = Instant::now();
                    }
                }
            }
            last_progress = Instant::now();
        };
        let _ = out.flush();
        progress.finish();
        result
    }

    fn assigned(&self) -> BTreeSet<(String, i32)> {
        self.consumer
            .assignment()
            .map(|l| {
                l.elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// librdkafka names only the partition: with several topics, the one at its end is
    /// the one whose position reached the end seen at the start.
    fn reached_end(&mut self, p: i32, assigned: &BTreeSet<(String, i32)>) {
        let same: Vec<_> = assigned.iter().filter(|tp| tp.1 == p).cloned().collect();
        if same.len() == 1 {
            self.at_end.extend(same);
        } else if let Ok(pos) = self.consumer.position() {
            for tp in same {
                let at = pos
                    .find_partition(&tp.0, tp.1)
                    .and_then(|e| e.offset().to_raw());
                let end = self.ends.get(&tp).copied().unwrap_or(0);
                if at.is_some_and(|o| o >= end) {
                    self.at_end.insert(tp);
                }
            }
        }
    }

    /// Print one record (and store its offset for the group); false: stdout is closed.
    fn print(&mut self, m: &BorrowedMessage<'_>, fmt: &str, out: &mut impl Write) -> bool {
        self.at_end.remove(&(m.topic().to_string(), m.partition()));
        let line = if self.ctx.format == Format::Json {
            json_line(m)
        } else {
            render(fmt, m)
        };
        if out.write_all(&line).is_err() {
            return false;
        }
        if self.a.group.is_some() {
            let _ = self.consumer.store_offset_from_message(m);
        }
        self.n += 1;
        true
    }
}

fn consume_error(e: RdError) -> CliError {
    let unknown = matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic)
    );
    if unknown {
        CliError::not_found(format!("consume: {e}"))
    } else {
        CliError::other(format!("consume: {e}"))
    }
}

fn headers_text(m: &BorrowedMessage<'_>) -> String {
    m.headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    format!(
                        "{}={}",
                        h.key,
                        h.value.map(String::from_utf8_lossy).unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn render(fmt: &str, m: &BorrowedMessage<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '%' => match chars.next() {
                Some('t') => out.extend_from_slice(m.topic().as_bytes()),
                Some('p') => out.extend_from_slice(m.partition().to_string().as_bytes()),
                Some('o') => out.extend_from_slice(m.offset().to_string().as_bytes()),
                Some('k') => out.extend_from_slice(m.key().unwrap_or_default()),
                Some('s') => out.extend_from_slice(m.payload().unwrap_or_default()),
                Some('K') => out.extend_from_slice(
                    m.key()
                        .map_or(-1, |k| k.len() as i64)
                        .to_string()
                        .as_bytes(),
                ),
                Some('S') => out.extend_from_slice(
                    m.payload()
                        .map_or(-1, |v| v.len() as i64)
                        .to_string()
                        .as_bytes(),
                ),
                Some('h') => out.extend_from_slice(headers_text(m).as_bytes()),
                Some('T') => out.extend_from_slice(
                    m.timestamp()
                        .to_millis()
                        .unwrap_or(-1)
                        .to_string()
                        .as_bytes(),
                ),
                Some('%') => out.push(b'%'),
                Some(o) => {
                    out.push(b'%');
                    out.extend_from_slice(o.to_string().as_bytes());
                }
                None => out.push(b'%'),
            },
            '\\' => match chars.next() {
                Some('n') => out.push(b'\n'),
                Some('t') => out.push(b'\t'),
                Some('r') => out.push(b'\r'),
                Some('0') => out.push(0),
                Some('\\') => out.push(b'\\'),
                Some(o) => {
                    out.push(b'\\');
                    out.extend_from_slice(o.to_string().as_bytes());
                }
                None => out.push(b'\\'),
            },
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out
}

fn json_line(m: &BorrowedMessage<'_>) -> Vec<u8> {
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    let headers: Vec<_> = m
        .headers()
        .map(|hs| hs.iter().map(|h| json!([h.key, text(h.value)])).collect())
        .unwrap_or_default();
    let mut v = serde_json::to_vec(&json!({
        "topic": m.topic(),
        "partition": m.partition(),
        "offset": m.offset(),
        "timestamp": m.timestamp().to_millis(),
        "key": text(m.key()),
        "value": text(m.payload()),
        "headers": headers,
    }))
    .unwrap_or_default();
    v.push(b'\n');
    v
}
