//! `sluice mirror --from A --to B`: the way out when one machine is not enough. A Kafka
//! client on both sides, so it works between any two Kafka-protocol clusters:
//!
//! 1. **Topics**: each chosen topic is created on B with A's partition count and the
//!    configs A has set on it (source `topic`), or given more partitions to match;
//!    checked again every `--topic-check-s`.
//! 2. **Records**: read from A (read_committed) and written to B into the same
//!    partition, with key, value, headers and timestamp, in transactions: each
//!    transaction also commits the mirror's progress — the next source offset of every
//!    partition, and in the offset's metadata the target offset it maps to — to the
//!    group `sluice-mirror.<name>` **on B** (TxnOffsetCommit). Records and progress
//!    become visible together, so a mirror killed at any point resumes from its last
//!    commit with nothing copied twice (for read_committed consumers of B) and nothing
//!    lost.
//! 3. **Group offsets**: every `--sync-interval-s`, the committed offsets on A of the
//!    chosen consumer groups are translated to B's offsets (from the source→target
//!    offset runs of what was copied, and the progress point it resumed from) and
//!    committed to the same group on B — only while that group has no members on B and
//!    never moving it backwards, as MirrorMaker 2's checkpoints do. A consumer switched
//!    from A to B resumes where it left off on A.
//! 4. **Offset syncs**: those runs are persisted on B, in each transaction with the
//!    records they describe, to the compacted topic `sluice-mirror.<name>.offset-syncs`
//!    (one partition; key `<topic>/<partition>/<chunk>`, value the chunk's runs, see
//!    `encode_runs`), and read back at start: translation survives restarts, exactly,
//!    for every offset a run copied (the newest MAX_RUNS runs a partition).
//! 5. **Lag**: a status line every `--report-interval-s`: records copied, their rate,
//!    and records on A not yet on B.
//!
//! SIGINT/SIGTERM end the current transaction and stop. `--once` stops by itself when B
//! has caught up with A's end as it was at start (and offsets were synced).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::json;

use super::client::{Client, EARLIEST, LATEST};
use super::error::CliError;
use super::output::Format;
use super::{group, topic};

#[derive(Args, Debug)]
pub struct MirrorArgs {
    /// Source cluster bootstrap brokers.
    #[arg(long)]
    pub from: String,
    /// Target cluster bootstrap brokers.
    #[arg(long)]
    pub to: String,
    /// Topics to mirror (repeat for more).
    #[arg(short, long = "topic")]
    pub topics: Vec<String>,
    /// Mirror every topic whose name matches this regex (internal ones and `dlq.` excluded
    /// unless they match explicitly).
    #[arg(long)]
    pub topics_regex: Option<String>,
    /// Consumer groups whose offsets to translate (repeat; default: every group of A with
    /// offsets on a mirrored topic).
    #[arg(short, long = "group")]
    pub groups: Vec<String>,
    /// Do not translate any group offsets.
    #[arg(long, conflicts_with = "groups")]
    pub no_groups: bool,
    /// The mirror's name: its transactional id and progress group on B are
    /// `sluice-mirror.<name>`. One running mirror per name.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Where a partition with no progress yet starts: beginning or end.
    #[arg(long, default_value = "beginning")]
    pub start: String,
    /// Commit a transaction at least this often (ms).
    #[arg(long, default_value_t = 500)]
    pub commit_interval_ms: u64,
    /// Translate group offsets this often (s).
    #[arg(long, default_value_t = 5.0)]
    pub sync_interval_s: f64,
    /// Print a status line this often (s).
    #[arg(long, default_value_t = 10.0)]
    pub report_interval_s: f64,
    /// Look for new topics and partitions this often (s).
    #[arg(long, default_value_t = 30.0)]
    pub topic_check_s: f64,
    /// Stop once B has caught up with A's end as of the start, after a last offset sync.
    #[arg(long)]
    pub once: bool,
    /// table: human status lines; json: one JSON object a line.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Seconds to wait for a broker's answer.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
}

type Tp = (String, i32);

/// Where B stands for one partition: the next source offset to copy and the target
/// offset the next copied record lands at or after.
#[derive(Debug, Clone, Copy)]
struct Point {
    src: i64,
    dst: i64,
}

/// (src_start, dst_start, len): `len` consecutive source offsets from `src_start`
/// copied to consecutive target offsets from `dst_start`. A zero-length run keeps a
/// point where copying began (a floor for `translate`).
type Run = (i64, i64, i64);

/// Source → target offsets of the records copied: runs of consecutive source offsets
/// landing at consecutive target offsets, plus the point this run resumed from. The
/// runs are persisted on the target, in chunks of `CHUNK_RUNS`, by every transaction
/// (see `OffsetMap::take_syncs`), so they outlive the process.
#[derive(Debug, Default)]
struct OffsetMap {
    start: Option<Point>,
    runs: Vec<Run>,
    next: Option<Point>,
    /// The index of `runs[0]` among every run this mirror ever recorded for the
    /// partition: run `i` is in chunk `i / CHUNK_RUNS`. Always a multiple of CHUNK_RUNS.
    base: u64,
    /// The lowest run index changed since the last `take_syncs`.
    dirty: Option<u64>,
    /// Chunks dropped from memory (the MAX_RUNS cap) and not yet deleted on the target.
    dropped: Vec<u64>,
}

const MAX_RUNS: usize = 100_000;
/// The prefix of a mirror's transactional id, progress group and syncs topic.
const MIRROR_PREFIX: &str = "sluice-mirror.";
/// Runs per persisted chunk. Divides MAX_RUNS / 10, so dropping the oldest tenth
/// drops whole chunks.
const CHUNK_RUNS: u64 = 100;
/// The first byte of a chunk's value: the encoding's version.
const SYNC_VERSION: u8 = 1;

impl OffsetMap {
    fn record(&mut self, src: i64, dst: i64) {
        self.push_run((src, dst, 1));
    }

    /// Append a run, or extend the last one when it continues it exactly.
    fn push_run(&mut self, (src, dst, len): Run) {
        let last = self.runs.len();
        match self.runs.last_mut() {
            Some((s, d, n)) if *s + *n == src && *d + *n == dst => {
                *n += len;
                if len > 0 {
                    self.touch(last as u64 - 1);
                }
            }
            _ => {
                self.runs.push((src, dst, len));
                self.touch(last as u64);
                if self.runs.len() > MAX_RUNS {
                    self.drop_oldest(MAX_RUNS / 10);
                }
            }
        }
    }

    fn touch(&mut self, i: u64) {
        let i = self.base + i;
        self.dirty = Some(self.dirty.map_or(i, |d| d.min(i)));
    }

    /// Forget the oldest `n` runs (callers give a multiple of CHUNK_RUNS, below the
    /// number of runs, so `base` stays a multiple), keeping the newest.
    fn drop_oldest(&mut self, n: usize) {
        let n = n.min(self.runs.len());
        self.runs.drain(..n);
        let first = self.base / CHUNK_RUNS;
        self.base += n as u64;
        self.dropped.extend(first..self.base / CHUNK_RUNS);
        self.dirty = self.dirty.map(|d| d.max(self.base));
    }

    /// The point after the last record copied (for tests: `next` outside them).
    #[cfg(test)]
    fn next_point(&self) -> Point {
        let (s, d, n) = self.runs.last().copied().unwrap_or_default();
        Point {
            src: s + n,
            dst: d + n,
        }
    }

    /// Where the last run ends on the source (None without runs).
    fn end(&self) -> Option<i64> {
        self.runs.last().map(|(s, _, n)| s + n)
    }

    /// Begin copying at `p`: a zero-length run marks it (merged into the last run when
    /// it continues it, as a resume point does). A point behind the runs known (the
    /// mirror's progress was reset on the target) starts a new history.
    fn begin_at(&mut self, p: Point) {
        if self.end().is_some_and(|e| p.src < e) {
            let end = self.base + self.runs.len() as u64;
            self.dropped
                .extend(self.base / CHUNK_RUNS..end.div_ceil(CHUNK_RUNS));
            self.runs.clear();
            self.base = end.div_ceil(CHUNK_RUNS) * CHUNK_RUNS;
            self.dirty = None;
        }
        self.start = Some(p);
        self.next = Some(p);
        self.push_run((p.src, p.dst, 0));
    }

    /// What the target's syncs topic must get for what changed since the last call:
    /// (chunk, Some(every run of the chunk)) to write, (chunk, None) to delete.
    fn take_syncs(&mut self) -> Vec<(u64, Option<Vec<u8>>)> {
        let mut out: Vec<_> = self.dropped.drain(..).map(|c| (c, None)).collect();
        let end = self.base + self.runs.len() as u64;
        if let Some(from) = self.dirty.take().filter(|&f| f < end) {
            for c in from / CHUNK_RUNS..=(end - 1) / CHUNK_RUNS {
                let lo = (c * CHUNK_RUNS).max(self.base) - self.base;
                let hi = ((c + 1) * CHUNK_RUNS).min(end) - self.base;
                out.push((c, Some(encode_runs(&self.runs[lo as usize..hi as usize]))));
            }
        }
        out
    }

    /// The runs persisted on the target, {chunk: runs}: the newest chunks that follow
    /// each other (every one but the last full), at most MAX_RUNS runs.
    fn rebuild(chunks: &BTreeMap<u64, Vec<Run>>) -> OffsetMap {
        let mut kept: Vec<(&u64, &Vec<Run>)> = Vec::new();
        for (c, runs) in chunks.iter().rev() {
            let follows = kept.last().is_none_or(|(next, _)| *c + 1 == **next);
            if !follows || (!kept.is_empty() && runs.len() as u64 != CHUNK_RUNS) {
                break;
            }
            kept.push((c, runs));
        }
        let mut m = OffsetMap::default();
        let Some((first, _)) = kept.last() else {
            return m;
        };
        m.base = **first * CHUNK_RUNS;
        m.runs = kept
            .iter()
            .rev()
            .flat_map(|(_, r)| r.iter().copied())
            .collect();
        if m.runs.len() > MAX_RUNS {
            let excess = (m.runs.len() - MAX_RUNS) as u64;
            m.drop_oldest((excess.div_ceil(CHUNK_RUNS) * CHUNK_RUNS) as usize);
        }
        // Chunks on the target not kept in memory: deleted there with the next sync.
        let first_kept = m.base / CHUNK_RUNS;
        m.dropped = chunks.keys().copied().filter(|&c| c < first_kept).collect();
        m
    }

    /// The target offset for a group committed at source offset `c` (the next record it
    /// would read), when known: the target offset of the first copied record at or after
    /// `c`, or the progress point when `c` is exactly there. None when `c` is before what
    /// this run knows, or past what has been copied.
    fn translate(&self, c: i64) -> Option<i64> {
        if let Some(p) = self.next {
            if c == p.src {
                return Some(p.dst);
            }
            if c > p.src {
                return None;
            }
        }
        if let Some(p) = self.start {
            if c == p.src {
                return Some(p.dst);
            }
        }
        let first = self.runs.first()?;
        let floor = self.start.map_or(first.0, |p| p.src.min(first.0));
        if c < floor {
            return None;
        }
        let i = self.runs.partition_point(|(s, _, n)| s + n <= c);
        let (s, d, _) = *self.runs.get(i)?;
        Some(if c >= s { d + (c - s) } else { d })
    }
}

/// A chunk of runs as the value of a record of the syncs topic: the version byte, then
/// per run its source start, target start and length, each a big-endian i64. Fixed
/// binary rather than JSON: 24 bytes a run, no parsing, and a chunk is rewritten by
/// every transaction that extends it, so its size is what the syncs cost.
fn encode_runs(runs: &[Run]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + runs.len() * 24);
    out.push(SYNC_VERSION);
    for (s, d, n) in runs {
        for v in [s, d, n] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    out
}

/// The runs of `encode_runs`; None for anything else.
fn decode_runs(b: &[u8]) -> Option<Vec<Run>> {
    let (&version, body) = b.split_first()?;
    if version != SYNC_VERSION || body.len() % 24 != 0 {
        return None;
    }
    let int = |c: &[u8]| i64::from_be_bytes(c.try_into().unwrap_or([0; 8]));
    Some(
        body.chunks_exact(24)
            .map(|r| (int(&r[..8]), int(&r[8..16]), int(&r[16..])))
            .collect(),
    )
}

/// The key of a chunk's record: `<topic>/<partition>/<chunk>` (no topic name holds
/// a `/`), so that compaction keeps the latest version of every chunk.
fn sync_key(tp: &Tp, chunk: u64) -> String {
    format!("{}/{}/{chunk}", tp.0, tp.1)
}

fn parse_sync_key(k: &str) -> Option<(Tp, u64)> {
    let mut it = k.rsplitn(3, '/');
    let chunk = it.next()?.parse().ok()?;
    let p = it.next()?.parse().ok()?;
    Some(((it.next()?.to_string(), p), chunk))
}

#[derive(Default)]
struct Delivered {
    /// (topic, partition, source offset, target offset)
    ok: Mutex<Vec<(String, i32, i64, i64)>>,
    failed: Mutex<Option<String>>,
}

impl ClientContext for Delivered {}

impl ProducerContext for Delivered {
    type DeliveryOpaque = Box<i64>;
    fn delivery(&self, r: &DeliveryResult<'_>, src: Box<i64>) {
        match r {
            Ok(m) => self.ok.lock().unwrap_or_else(|p| p.into_inner()).push((
                m.topic().to_string(),
                m.partition(),
                *src,
                m.offset(),
            )),
            Err((e, _)) => {
                self.failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Topic configs that only Sluice knows: left out when the target refuses them.
const SLUICE_ONLY: &[&str] = &[
    "flush.policy",
    "max.queue.bytes",
    "sluice.delivery.delay.ms",
];

struct Mirror {
    a: MirrorArgs,
    timeout: Duration,
    progress_group: String,
    /// `sluice-mirror.<name>.offset-syncs` on B: the persisted offset runs.
    syncs_topic: String,
    src: Client,
    dst: Client,
    topics_re: Option<regex::Regex>,
    topics: BTreeMap<String, usize>,
    maps: BTreeMap<Tp, OffsetMap>,
    copied: u64,
    groups_synced: BTreeMap<String, usize>,
}

fn cfg_err(what: &str) -> impl Fn(rdkafka::error::KafkaError) -> CliError + '_ {
    move |e| CliError::other(format!("{what}: {e}"))
}

pub fn run(a: MirrorArgs) -> Result<(), CliError> {
    if a.from == a.to {
        return Err(CliError::usage("--from and --to are the same cluster"));
    }
    if a.topics.is_empty() && a.topics_regex.is_none() {
        return Err(CliError::usage(
            "say what to mirror: --topic T (repeatable) or --topics-regex R",
        ));
    }
    if let Some(t) = a.topics.iter().find(|t| t.starts_with(MIRROR_PREFIX)) {
        return Err(CliError::usage(format!(
            "{t}: a mirror's own topic (its offset syncs) is never mirrored"
        )));
    }
    if !["beginning", "end"].contains(&a.start.as_str()) {
        return Err(CliError::usage("--start: beginning or end"));
    }
    let topics_re = match &a.topics_regex {
        Some(r) => Some(
            regex::Regex::new(r).map_err(|e| CliError::usage(format!("--topics-regex: {e}")))?,
        ),
        None => None,
    };
    let timeout = Duration::from_secs_f64(a.timeout.clamp(0.1, 3600.0));
    let src = Client::connect(&a.from, timeout).map_err(|e| CliError {
        message: format!("source: {}", e.message),
        ..e
    })?;
    let dst = Client::connect(&a.to, timeout).map_err(|e| CliError {
        message: format!("target: {}", e.message),
        ..e
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| CliError::other(format!("signal handler: {e}")))?;
    }
    let mut m = Mirror {
        progress_group: format!("{MIRROR_PREFIX}{}", a.name),
        syncs_topic: format!("{MIRROR_PREFIX}{}.offset-syncs", a.name),
        a,
        timeout,
        src,
        dst,
        topics_re,
        topics: BTreeMap::new(),
        maps: BTreeMap::new(),
        copied: 0,
        groups_synced: BTreeMap::new(),
    };
    m.run(&stop)
}

impl Mirror {
    fn status(&self, event: &str, fields: serde_json::Value) {
        match self.a.output {
            Format::Json => println!(
                "{}",
                json!({ "event": event, "mirror": self.a.name, "detail": fields })
            ),
            Format::Table => {
                let text = match fields.as_object() {
                    Some(o) => o
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    None => fields.to_string(),
                };
                println!("mirror {}: {event} {text}", self.a.name);
            }
        }
    }

    /// Topics to mirror now, with their partition counts on A.
    fn chosen(&mut self) -> Result<BTreeMap<String, usize>, CliError> {
        let mut out = BTreeMap::new();
        if !self.a.topics.is_empty() {
            for t in self.src.topics(Some(&self.a.topics))? {
                out.insert(t.name.clone(), t.partitions.len());
            }
        }
        if let Some(re) = &self.topics_re {
            for t in self.src.topics(None)? {
                let hidden = t.internal || t.name.starts_with("__") || t.name.starts_with("dlq.");
                let explicit = re.as_str().starts_with("__") || re.as_str().starts_with("dlq");
                let own = t.name.starts_with(MIRROR_PREFIX); // a mirror's offset syncs
                if re.is_match(&t.name) && (!hidden || explicit) && !own {
                    out.insert(t.name.clone(), t.partitions.len());
                }
            }
        }
        Ok(out)
    }

    /// Create or grow the topics on B; returns those whose partition count changed.
    fn sync_topics(&mut self) -> Result<bool, CliError> {
        let want = self.chosen()?;
        let mut changed = false;
        for (name, &parts) in &want {
            if self.topics.get(name) == Some(&parts) {
                continue;
            }
            let have = match self.dst.topics(Some(std::slice::from_ref(name))) {
                Ok(t) => t.first().map(|t| t.partitions.len()),
                Err(e) if e.kind == super::error::Kind::NotFound => None,
                Err(e) => return Err(e),
            };
            match have {
                None => {
                    let src_desc = topic::describe(&mut self.src, name)?;
                    let configs: Vec<(String, String)> = src_desc["configs"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|c| c["source"] == "topic" && !c["value"].is_null())
                        .map(|c| {
                            (
                                c["name"].as_str().unwrap_or("").to_string(),
                                c["value"].as_str().unwrap_or("").to_string(),
                            )
                        })
                        .collect();
                    self.create_on_target(name, parts, &configs)?;
                    self.status(
                        "created-topic",
                        json!({ "topic": name, "partitions": parts, "configs": configs.len() }),
                    );
                }
                Some(n) if n < parts => {
                    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
                    let req = kafka_protocol::messages::CreatePartitionsRequest::default()
                        .with_timeout_ms(self.timeout.as_millis() as i32)
                        .with_topics(vec![CreatePartitionsTopic::default()
                            .with_name(super::client::topic_name(name.clone()))
                            .with_count(parts as i32)
                            .with_assignments(None)]);
                    let resp = self.dst.controller()?.call(&req, 3)?;
                    for r in resp.results {
                        if let Some(e) = CliError::kafka_opt(
                            r.error_code,
                            r.error_message.as_deref(),
                            &format!("target: add partitions to {name}"),
                        ) {
                            return Err(e);
                        }
                    }
                    self.status(
                        "added-partitions",
                        json!({ "topic": name, "partitions": parts }),
                    );
                }
                Some(n) if n > parts => {
                    return Err(CliError::other(format!(
                        "target topic {name} has {n} partitions, the source {parts}: records would not keep their partitions"
                    )));
                }
                Some(_) => {}
            }
            self.topics.insert(name.clone(), parts);
            changed = true;
        }
        Ok(changed)
    }

    fn create_on_target(
        &mut self,
        name: &str,
        parts: usize,
        configs: &[(String, String)],
    ) -> Result<(), CliError> {
        use kafka_protocol::messages::create_topics_request::{
            CreatableTopic, CreatableTopicConfig,
        };
        let attempt = |dst: &mut Client,
                       configs: &[(String, String)],
                       timeout_ms: i32|
         -> Result<i16, CliError> {
            let req = kafka_protocol::messages::CreateTopicsRequest::default()
                .with_timeout_ms(timeout_ms)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(super::client::topic_name(name))
                    .with_num_partitions(parts as i32)
                    .with_replication_factor(-1)
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, v)| {
                                CreatableTopicConfig::default()
                                    .with_name(super::client::s(k.clone()))
                                    .with_value(Some(super::client::s(v.clone())))
                            })
                            .collect(),
                    )]);
            let resp = dst.controller()?.call(&req, 7)?;
            let r = resp
                .topics
                .into_iter()
                .next()
                .ok_or_else(|| CliError::other("CreateTopics: empty answer"))?;
            match r.error_code {
                0 | 36 => Ok(0),
                code => Ok(code),
            }
        };
        let t = self.timeout.as_millis() as i32;
        let code = attempt(&mut self.dst, configs, t)?;
        if code == crate::kafka::ErrorCode::InvalidConfig.code() {
            let kept: Vec<_> = configs
                .iter()
                .filter(|(k, _)| !SLUICE_ONLY.contains(&k.as_str()))
                .cloned()
                .collect();
            let code = attempt(&mut self.dst, &kept, t)?;
            if let Some(e) =
                CliError::kafka_opt(code, None, &format!("target: create topic {name}"))
            {
                return Err(e);
            }
            self.status(
                "configs-dropped",
                json!({ "topic": name, "dropped": configs.len() - kept.len() }),
            );
            return Ok(());
        }
        if let Some(e) = CliError::kafka_opt(code, None, &format!("target: create topic {name}")) {
            return Err(e);
        }
        Ok(())
    }

    /// The progress committed on B: {partition: point}.
    fn load_progress(&mut self) -> Result<BTreeMap<Tp, Point>, CliError> {
        let group = self.progress_group.clone();
        let committed = match group::committed_with_metadata(&mut self.dst, &group) {
            Ok(c) => c,
            Err(e) if e.kind == super::error::Kind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        let mut out = BTreeMap::new();
        for (tp, (src, meta)) in committed {
            let dst = meta
                .strip_prefix("dst=")
                .and_then(|d| d.parse::<i64>().ok())
                .ok_or_else(|| {
                    CliError::other(format!(
                        "progress of {}-{} on the target has no target offset ({meta:?})",
                        tp.0, tp.1
                    ))
                })?;
            out.insert(tp, Point { src, dst });
        }
        Ok(out)
    }

    fn run(&mut self, stop: &AtomicBool) -> Result<(), CliError> {
        self.sync_topics()?;
        let progress = self.load_progress()?;
        self.ensure_syncs_topic()?;
        let (consumer, cgm, producer) = self.clients()?;
        self.load_syncs()?;
        let mut assigned: BTreeSet<Tp> = BTreeSet::new();
        let mut positions: BTreeMap<Tp, i64> = BTreeMap::new();
        let targets_at_start: BTreeMap<Tp, i64>;
        {
            let all: Vec<Tp> = self.partitions();
            targets_at_start = self.src.list_offsets(&all, LATEST)?;
        }
        self.assign(&consumer, &progress, &mut assigned, &mut positions)?;
        let mut in_txn = false;
        let mut last_record = Instant::now();
        let mut txn_started = Instant::now();
        let mut pending: BTreeMap<Tp, i64> = BTreeMap::new();
        let mut last_sync = Instant::now() - Duration::from_secs(3600);
        let mut last_report = Instant::now();
        let mut last_topic_check = Instant::now();
        let mut copied_at_report = 0u64;
        let commit_every = Duration::from_millis(self.a.commit_interval_ms.max(10));
        self.status("started", json!({ "from": self.a.from, "to": self.a.to, "topics": self.topics.keys().collect::<Vec<_>>(), "resumed_partitions": progress.len() }));
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            if !stopping {
                if let Some(msg) = consumer.poll(Duration::from_millis(50)) {
                    let msg = msg.map_err(cfg_err("source: consume"))?;
                    last_record = Instant::now();
                    if !in_txn {
                        producer
                            .begin_transaction()
                            .map_err(cfg_err("target: begin transaction"))?;
                        in_txn = true;
                        txn_started = Instant::now();
                    }
                    forward(&producer, &msg)?;
                    let tp = (msg.topic().to_string(), msg.partition());
                    pending.insert(tp.clone(), msg.offset() + 1);
                    positions.insert(tp, msg.offset() + 1);
                }
                producer.poll(Duration::ZERO);
            }
            if in_txn && (stopping || txn_started.elapsed() >= commit_every) {
                self.commit(&producer, &cgm, &mut pending)?;
                in_txn = false;
            }
            if stopping {
                self.sync_groups()?;
                self.report(&positions, "stopped", 0.0)?;
                return Ok(());
            }
            // --once: every partition copied up to A's end as of the start, or (an end
            // that is a transaction marker, which no consumer ever sees) nothing more
            // arrived for a while.
            let caught_up = self.a.once
                && !in_txn
                && (last_record.elapsed() >= Duration::from_secs(3)
                    || targets_at_start.iter().all(|(tp, end)| {
                        self.maps
                            .get(tp)
                            .and_then(|m| m.next)
                            .is_some_and(|p| p.src >= *end)
                    }));
            if last_sync.elapsed().as_secs_f64() >= self.a.sync_interval_s || caught_up {
                self.sync_groups()?;
                last_sync = Instant::now();
            }
            if last_report.elapsed().as_secs_f64() >= self.a.report_interval_s {
                let secs = last_report.elapsed().as_secs_f64();
                let rate = (self.copied - copied_at_report) as f64 / secs;
                copied_at_report = self.copied;
                last_report = Instant::now();
                self.report(&positions, "status", rate)?;
            }
            if caught_up {
                self.report(&positions, "caught-up", 0.0)?;
                return Ok(());
            }
            if last_topic_check.elapsed().as_secs_f64() >= self.a.topic_check_s {
                last_topic_check = Instant::now();
                if !in_txn && self.sync_topics()? {
                    self.assign(&consumer, &progress, &mut assigned, &mut positions)?;
                }
            }
        }
    }

    /// The source consumer, the target group's metadata (the progress commits go to
    /// this group on B) and the target's transactional producer, its transactions begun.
    fn clients(
        &self,
    ) -> Result<(BaseConsumer, ConsumerGroupMetadata, BaseProducer<Delivered>), CliError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.a.from)
            .set("group.id", &self.progress_group)
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false")
            .create()
            .map_err(cfg_err("source consumer"))?;
        // Only for its group metadata: the progress commits go to this group on B.
        let meta_consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.a.to)
            .set("group.id", &self.progress_group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(cfg_err("target consumer"))?;
        let cgm = meta_consumer
            .group_metadata()
            .ok_or_else(|| CliError::other("no consumer group metadata"))?;
        let producer: BaseProducer<Delivered> = ClientConfig::new()
            .set("bootstrap.servers", &self.a.to)
            .set("transactional.id", &self.progress_group)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set("transaction.timeout.ms", "60000")
            .create_with_context(Delivered::default())
            .map_err(cfg_err("target producer"))?;
        producer
            .init_transactions(self.timeout * 3)
            .map_err(cfg_err(
                "target: init transactions (is another mirror of this name running?)",
            ))?;
        Ok((consumer, cgm, producer))
    }

    fn partitions(&self) -> Vec<Tp> {
        self.topics
            .iter()
            .flat_map(|(t, &n)| (0..n as i32).map(move |p| (t.clone(), p)))
            .collect()
    }

    /// Assign every mirrored partition not yet assigned, from its progress (or --start).
    fn assign(
        &mut self,
        consumer: &BaseConsumer,
        progress: &BTreeMap<Tp, Point>,
        assigned: &mut BTreeSet<Tp>,
        positions: &mut BTreeMap<Tp, i64>,
    ) -> Result<(), CliError> {
        let new: Vec<Tp> = self
            .partitions()
            .into_iter()
            .filter(|tp| !assigned.contains(tp))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let fresh: Vec<Tp> = new
            .iter()
            .filter(|tp| !progress.contains_key(*tp))
            .cloned()
            .collect();
        let starts = self.src.list_offsets(
            &fresh,
            if self.a.start == "end" {
                LATEST
            } else {
                EARLIEST
            },
        )?;
        let dst_ends = self.dst.list_offsets(&fresh, LATEST)?;
        for tp in &new {
            let point = match progress.get(tp) {
                Some(p) => *p,
                None => Point {
                    src: starts.get(tp).copied().unwrap_or(0),
                    dst: dst_ends.get(tp).copied().unwrap_or(0),
                },
            };
            self.maps.entry(tp.clone()).or_default().begin_at(point);
            positions.insert(tp.clone(), point.src);
            assigned.insert(tp.clone());
        }
        let mut tpl = TopicPartitionList::new();
        for tp in assigned.iter() {
            let at = positions.get(tp).copied().unwrap_or(0);
            tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(at))
                .map_err(cfg_err("assign"))?;
        }
        consumer.assign(&tpl).map_err(cfg_err("source: assign"))?;
        Ok(())
    }

    /// Wait for what the transaction sent; the records copied as (topic, partition,
    /// source offset, target offset). Aborts the transaction when anything failed.
    fn flush(
        &self,
        producer: &BaseProducer<Delivered>,
    ) -> Result<Vec<(String, i32, i64, i64)>, CliError> {
        producer
            .flush(self.timeout * 3)
            .map_err(cfg_err("target: flush"))?;
        let ctx = producer.context();
        if let Some(e) = ctx.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = producer.abort_transaction(self.timeout);
            return Err(CliError::other(format!("target: a record was not written: {e} (run again: the mirror resumes from its last commit)")));
        }
        let mut delivered = std::mem::take(&mut *ctx.ok.lock().unwrap_or_else(|p| p.into_inner()));
        delivered.retain(|(_, _, src, _)| *src >= 0); // the syncs' own records
        Ok(delivered)
    }

    /// Wait for the transaction's records, add the offset syncs and the progress for
    /// them, commit.
    fn commit(
        &mut self,
        producer: &BaseProducer<Delivered>,
        cgm: &rdkafka::consumer::ConsumerGroupMetadata,
        pending: &mut BTreeMap<Tp, i64>,
    ) -> Result<(), CliError> {
        let delivered = self.flush(producer)?;
        let mut last: BTreeMap<Tp, (i64, i64)> = BTreeMap::new();
        for (t, p, src, dst) in &delivered {
            last.insert((t.clone(), *p), (*src, *dst));
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, next_src) in pending.iter() {
            let Some(&(src, dst)) = last.get(tp) else {
                continue;
            };
            debug_assert_eq!(src + 1, *next_src);
            tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(src + 1))
                .map_err(cfg_err("progress"))?;
            if let Some(mut e) = tpl.find_partition(&tp.0, tp.1) {
                e.set_metadata(format!("dst={}", dst + 1));
            }
        }
        // The maps first (a failed commit ends the run, so they never run ahead of B),
        // then what changed in them goes to the syncs topic in the same transaction.
        for (t, p, src, dst) in delivered {
            let map = self.maps.entry((t, p)).or_default();
            map.record(src, dst);
            map.next = Some(Point {
                src: src + 1,
                dst: dst + 1,
            });
            self.copied += 1;
        }
        self.send_syncs(producer)?;
        self.flush(producer)?;
        producer
            .send_offsets_to_transaction(&tpl, cgm, self.timeout * 3)
            .map_err(cfg_err("target: commit progress"))?;
        producer
            .commit_transaction(self.timeout * 3)
            .map_err(cfg_err("target: commit transaction"))?;
        pending.clear();
        Ok(())
    }

    /// Every chunk of runs changed since the last transaction, and a tombstone for every
    /// chunk dropped, to the syncs topic (in the open transaction).
    fn send_syncs(&mut self, producer: &BaseProducer<Delivered>) -> Result<(), CliError> {
        for (tp, map) in self.maps.iter_mut() {
            for (chunk, value) in map.take_syncs() {
                let key = sync_key(tp, chunk);
                let mut rec = BaseRecord::<str, [u8], Box<i64>>::with_opaque_to(
                    &self.syncs_topic,
                    Box::new(-1),
                )
                .partition(0)
                .key(key.as_str());
                if let Some(v) = &value {
                    rec = rec.payload(v.as_slice());
                }
                send(producer, rec)?;
            }
        }
        Ok(())
    }

    /// Create the syncs topic on B when missing: one partition, compacted (a key per
    /// chunk of runs, and chunks dropped under MAX_RUNS deleted), so it stays bounded.
    fn ensure_syncs_topic(&mut self) -> Result<(), CliError> {
        let name = self.syncs_topic.clone();
        let configs = [("cleanup.policy".to_string(), "compact".to_string())];
        self.create_on_target(&name, 1, &configs)
    }

    /// Rebuild the runs of earlier runs from the syncs topic on B: read_committed, from
    /// its beginning to its end. After `clients()`, whose init_transactions ended any
    /// transaction a killed predecessor left open.
    fn load_syncs(&mut self) -> Result<(), CliError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.a.to)
            .set("group.id", &self.progress_group)
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .create()
            .map_err(cfg_err("target consumer"))?;
        let (low, high) = consumer
            .fetch_watermarks(&self.syncs_topic, 0, self.timeout)
            .map_err(cfg_err("target: offset syncs' end"))?;
        let mut chunks: BTreeMap<Tp, BTreeMap<u64, Vec<Run>>> = BTreeMap::new();
        if high > low {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&self.syncs_topic, 0, Offset::Beginning)
                .map_err(cfg_err("assign"))?;
            consumer
                .assign(&tpl)
                .map_err(cfg_err("target: read offset syncs"))?;
            let mut idle_since = Instant::now();
            loop {
                match consumer.poll(Duration::from_millis(100)) {
                    None if idle_since.elapsed() > self.timeout * 3 => {
                        return Err(CliError::other(
                            "target: the offset syncs were not read to their end",
                        ));
                    }
                    None => continue,
                    Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                    Some(Err(e)) => return Err(cfg_err("target: read offset syncs")(e)),
                    Some(Ok(m)) => {
                        idle_since = Instant::now();
                        apply_sync(&mut chunks, m.key(), m.payload());
                        if m.offset() + 1 >= high {
                            break;
                        }
                    }
                }
            }
        }
        let mut runs = 0;
        for (tp, c) in &chunks {
            let map = OffsetMap::rebuild(c);
            runs += map.runs.len();
            self.maps.insert(tp.clone(), map);
        }
        self.status(
            "loaded-offset-syncs",
            json!({ "partitions": chunks.len(), "runs": runs }),
        );
        Ok(())
    }

    /// Groups whose offsets to translate: those named, or every group of A with offsets
    /// on a mirrored topic (not the mirror's own).
    fn groups(&mut self) -> Result<Vec<String>, CliError> {
        if self.a.no_groups {
            return Ok(Vec::new());
        }
        if !self.a.groups.is_empty() {
            return Ok(self.a.groups.clone());
        }
        Ok(group::list_groups(&mut self.src)?
            .into_iter()
            .filter(|g| g.kind != "share" && !g.id.starts_with(MIRROR_PREFIX))
            .map(|g| g.id)
            .collect())
    }

    fn sync_groups(&mut self) -> Result<(), CliError> {
        use kafka_protocol::messages::offset_commit_request::{
            OffsetCommitRequestPartition, OffsetCommitRequestTopic,
        };
        for g in self.groups()? {
            let on_src = match group::committed(&mut self.src, &g) {
                Ok(c) => c,
                Err(e) if e.kind == super::error::Kind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut want: BTreeMap<Tp, i64> = BTreeMap::new();
            for (tp, c) in on_src {
                if let Some(d) = self.maps.get(&tp).and_then(|m| m.translate(c)) {
                    want.insert(tp, d);
                }
            }
            if want.is_empty() {
                continue;
            }
            let (state, _, members) = match group::members(&mut self.dst, &g) {
                Ok(x) => x,
                Err(e) if e.kind == super::error::Kind::NotFound => {
                    (String::from("Dead"), String::new(), Vec::new())
                }
                Err(e) => return Err(e),
            };
            if !members.is_empty()
                || !(state.eq_ignore_ascii_case("empty") || state.eq_ignore_ascii_case("dead"))
            {
                continue; // consumers run on B: B's offsets are theirs now
            }
            let on_dst = match group::committed(&mut self.dst, &g) {
                Ok(c) => c,
                Err(e) if e.kind == super::error::Kind::NotFound => BTreeMap::new(),
                Err(e) => return Err(e),
            };
            want.retain(|tp, d| on_dst.get(tp).is_none_or(|cur| *d > *cur));
            if want.is_empty() {
                continue;
            }
            let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
            for ((t, p), d) in &want {
                by_topic.entry(t.as_str()).or_default().push(
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(*p)
                        .with_committed_offset(*d)
                        .with_committed_leader_epoch(-1)
                        .with_committed_metadata(Some(super::client::s("sluice mirror"))),
                );
            }
            let req = kafka_protocol::messages::OffsetCommitRequest::default()
                .with_group_id(super::client::group_id(g.clone()))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(super::client::s(""))
                .with_retention_time_ms(-1)
                .with_topics(
                    by_topic
                        .into_iter()
                        .map(|(t, ps)| {
                            OffsetCommitRequestTopic::default()
                                .with_name(super::client::topic_name(t))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
            let resp = self.dst.coordinator(&g)?.call(&req, 8)?;
            let mut n = 0;
            for t in resp.topics {
                for p in t.partitions {
                    if p.error_code == 0 {
                        n += 1;
                    } else if let Some(e) = CliError::kafka_opt(
                        p.error_code,
                        None,
                        &format!("target: commit offsets of {g}"),
                    ) {
                        // A group that became active meanwhile: next round.
                        self.status(
                            "group-sync-skipped",
                            json!({ "group": g, "error": e.message }),
                        );
                    }
                }
            }
            *self.groups_synced.entry(g.clone()).or_default() += n;
            self.status("synced-group", json!({ "group": g, "partitions": n }));
        }
        Ok(())
    }

    fn report(
        &mut self,
        positions: &BTreeMap<Tp, i64>,
        event: &str,
        rate: f64,
    ) -> Result<(), CliError> {
        let parts: Vec<Tp> = positions.keys().cloned().collect();
        let ends = self.src.list_offsets(&parts, LATEST).unwrap_or_default();
        let mut lag_total = 0i64;
        let mut per: BTreeMap<String, i64> = BTreeMap::new();
        for tp in &parts {
            let done = self.maps.get(tp).and_then(|m| m.next).map_or(0, |p| p.src);
            let lag = (ends.get(tp).copied().unwrap_or(done) - done).max(0);
            lag_total += lag;
            *per.entry(tp.0.clone()).or_default() += lag;
        }
        self.status(
            event,
            json!({
                "copied": self.copied, "records_per_s": (rate * 10.0).round() / 10.0,
                "lag": lag_total, "lag_by_topic": per, "groups_synced": self.groups_synced.len(),
            }),
        );
        Ok(())
    }
}

/// One record of the syncs topic into {partition: {chunk: runs}}: a chunk written
/// replaces the one before, a tombstone deletes it. Unreadable records are skipped.
fn apply_sync(
    chunks: &mut BTreeMap<Tp, BTreeMap<u64, Vec<Run>>>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let Some((tp, chunk)) = key
        .and_then(|k| std::str::from_utf8(k).ok())
        .and_then(parse_sync_key)
    else {
        return;
    };
    let of_tp = chunks.entry(tp).or_default();
    match value.map(decode_runs) {
        None => {
            of_tp.remove(&chunk);
        }
        Some(Some(runs)) => {
            of_tp.insert(chunk, runs);
        }
        Some(None) => {}
    }
}

/// One record of A to the same partition of B, with its key, headers and timestamp; its
/// source offset rides along as the delivery's opaque.
fn forward(producer: &BaseProducer<Delivered>, msg: &BorrowedMessage<'_>) -> Result<(), CliError> {
    let mut headers = OwnedHeaders::new();
    if let Some(hs) = msg.headers() {
        for h in hs.iter() {
            headers = headers.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    let mut rec =
        BaseRecord::<[u8], [u8], Box<i64>>::with_opaque_to(msg.topic(), Box::new(msg.offset()))
            .partition(msg.partition())
            .headers(headers);
    if let Some(k) = msg.key() {
        rec = rec.key(k);
    }
    if let Some(v) = msg.payload() {
        rec = rec.payload(v);
    }
    if let Some(ts) = msg.timestamp().to_millis() {
        rec = rec.timestamp(ts);
    }
    send(producer, rec)
}

/// Send, waiting while the producer's queue is full.
fn send<K: rdkafka::message::ToBytes + ?Sized>(
    producer: &BaseProducer<Delivered>,
    rec: BaseRecord<'_, K, [u8], Box<i64>>,
) -> Result<(), CliError> {
    let mut rec = Some(rec);
    while let Some(r) = rec.take() {
        match producer.send(r) {
            Ok(()) => {}
            Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                producer.poll(Duration::from_millis(20));
                rec = Some(r);
            }
            Err((e, _)) => {
                return Err(CliError::other(format!("target: produce: {e}")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_translate_through_runs_and_gaps() {
        let mut m = OffsetMap {
            start: Some(Point { src: 10, dst: 100 }),
            ..OffsetMap::default()
        };
        // 10,11,12 → 100,101,102; a commit marker at 103; 13,14 → 104,105; source gap 15..17.
        for (s, d) in [
            (10, 100),
            (11, 101),
            (12, 102),
            (13, 104),
            (14, 105),
            (17, 106),
        ] {
            m.record(s, d);
        }
        m.next = Some(Point { src: 18, dst: 107 });
        assert_eq!(m.runs.len(), 3);
        assert_eq!(m.translate(10), Some(100));
        assert_eq!(m.translate(12), Some(102));
        assert_eq!(m.translate(13), Some(104));
        assert_eq!(
            m.translate(15),
            Some(106),
            "a gap maps to the next copied record"
        );
        assert_eq!(
            m.translate(18),
            Some(107),
            "all consumed: the target's next offset"
        );
        assert_eq!(m.translate(19), None, "not copied yet");
        assert_eq!(m.translate(9), None, "before this run knows");
    }

    #[test]
    fn a_resumed_mirror_translates_its_resume_point() {
        let mut m = OffsetMap::default();
        m.start = Some(Point { src: 50, dst: 70 });
        m.next = m.start;
        assert_eq!(m.translate(50), Some(70));
        assert_eq!(m.translate(49), None);
        assert_eq!(m.translate(51), None);
    }

    #[test]
    fn runs_encode_and_decode() {
        let runs = vec![(0, 5, 0), (1, 5, 3), (i64::MAX - 1, -1, 1 << 40)];
        let b = encode_runs(&runs);
        assert_eq!(b.len(), 1 + 3 * 24);
        assert_eq!(decode_runs(&b), Some(runs));
        assert_eq!(decode_runs(&encode_runs(&[])), Some(vec![]));
        assert_eq!(decode_runs(&b[..b.len() - 1]), None, "truncated");
        assert_eq!(decode_runs(&[2]), None, "unknown version");
        assert_eq!(decode_runs(&[]), None);
        let tp = ("orders.eu-1".to_string(), 7);
        assert_eq!(sync_key(&tp, 12), "orders.eu-1/7/12");
        assert_eq!(parse_sync_key("orders.eu-1/7/12"), Some((tp, 12)));
        assert_eq!(parse_sync_key("orders/x/12"), None);
    }

    /// What a transaction persists, applied to the records of the syncs topic.
    fn persist(m: &mut OffsetMap, tp: &Tp, topic: &mut BTreeMap<Tp, BTreeMap<u64, Vec<Run>>>) {
        for (chunk, v) in m.take_syncs() {
            let key = sync_key(tp, chunk);
            apply_sync(topic, Some(key.as_bytes()), v.as_deref());
        }
    }

    #[test]
    fn a_restarted_mirror_translates_what_earlier_runs_copied() {
        let tp: Tp = ("t".into(), 0);
        let mut topic = BTreeMap::new();
        let mut first = OffsetMap::default();
        first.begin_at(Point { src: 0, dst: 0 });
        // 1..=250 copied (source 0 a marker), a target commit marker every 10 records.
        for src in 1..=250i64 {
            first.record(src, src - 1 + (src - 1) / 10);
            if src % 10 == 0 {
                persist(&mut first, &tp, &mut topic);
            }
        }
        persist(&mut first, &tp, &mut topic);
        assert!(first.take_syncs().is_empty(), "nothing changed since");
        assert_eq!(topic[&tp].len(), 1, "26 runs: one chunk");
        let end = first.next_point();
        first.next = Some(end);
        let mut again = OffsetMap::rebuild(&topic[&tp]);
        assert_eq!(again.runs, first.runs);
        again.begin_at(end);
        assert_eq!(
            again.runs, first.runs,
            "the resume point continues the last run"
        );
        for c in 0..=251 {
            assert_eq!(again.translate(c), first.translate(c), "offset {c}");
        }
        assert_eq!(again.translate(0), Some(0));
        assert_eq!(again.translate(125), Some(124 + 12));
        assert!(again.take_syncs().is_empty(), "resuming writes nothing");
    }

    #[test]
    fn chunks_follow_the_runs_and_loading_keeps_the_newest_within_the_cap() {
        let tp: Tp = ("t".into(), 1);
        let mut topic = BTreeMap::new();
        let mut m = OffsetMap::default();
        // Every record its own run (a gap after each), persisted every 37 runs.
        let total = MAX_RUNS as i64 + 250;
        for i in 0..total {
            m.record(2 * i, 3 * i);
            if i % 37 == 0 {
                persist(&mut m, &tp, &mut topic);
            }
        }
        persist(&mut m, &tp, &mut topic);
        assert!(m.runs.len() <= MAX_RUNS);
        assert_eq!(m.base % CHUNK_RUNS, 0);
        let chunks = &topic[&tp];
        assert_eq!(
            *chunks.keys().next().unwrap(),
            m.base / CHUNK_RUNS,
            "dropped chunks deleted"
        );
        let loaded = OffsetMap::rebuild(chunks);
        assert_eq!(loaded.runs, m.runs);
        assert_eq!(loaded.base, m.base);
        assert!(loaded.dropped.is_empty());

        // More runs on the target than the cap (e.g. an older, larger cap): the newest.
        let mut big: BTreeMap<u64, Vec<Run>> = BTreeMap::new();
        let n_chunks = MAX_RUNS as u64 / CHUNK_RUNS + 3;
        for c in 0..n_chunks {
            let runs = (0..CHUNK_RUNS as i64).map(|r| {
                let i = c as i64 * CHUNK_RUNS as i64 + r;
                (2 * i, 3 * i, 1)
            });
            big.insert(c, runs.collect());
        }
        big.get_mut(&(n_chunks - 1)).unwrap().truncate(10);
        let loaded = OffsetMap::rebuild(&big);
        assert!(loaded.runs.len() <= MAX_RUNS);
        assert_eq!(loaded.base, 3 * CHUNK_RUNS);
        assert_eq!(loaded.runs.last(), big[&(n_chunks - 1)].last());
        assert_eq!(loaded.dropped, vec![0, 1, 2], "to delete on the target");
        let newest = (n_chunks - 1) * CHUNK_RUNS + 9;
        assert_eq!(loaded.translate(2 * newest as i64), Some(3 * newest as i64));

        // A gap in the chunks: only those after it.
        big.remove(&500);
        let loaded = OffsetMap::rebuild(&big);
        assert_eq!(loaded.base, 501 * CHUNK_RUNS);
        assert_eq!(loaded.dropped.len(), 500);
    }

    #[test]
    fn a_progress_point_behind_the_runs_starts_a_new_history() {
        let mut m = OffsetMap::default();
        m.begin_at(Point { src: 0, dst: 0 });
        for i in 0..150 {
            m.record(2 * i, i); // 150 runs: chunks 0 and 1
        }
        let _ = m.take_syncs();
        m.begin_at(Point { src: 0, dst: 161 });
        assert_eq!(m.base, 2 * CHUNK_RUNS);
        assert_eq!(m.runs, vec![(0, 161, 0)]);
        let syncs = m.take_syncs();
        assert_eq!(syncs[..2], [(0, None), (1, None)]);
        assert_eq!(syncs[2], (2, Some(encode_runs(&[(0, 161, 0)]))));
        assert_eq!(m.translate(0), Some(161));
    }
}
