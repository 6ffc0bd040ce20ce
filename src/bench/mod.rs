//! `sluice bench`: an open-loop load generator for any Kafka broker (librdkafka through
//! `rdkafka`) or for Redis Streams, with HDR histograms of produce-acknowledgement and
//! end-to-end latency.
//!
//! Every message has an intended send time from the schedule (`schedule.rs`); its
//! produce latency runs from that time to its acknowledgement and its end-to-end latency
//! from that time to a consumer reading it (the time travels in the payload's first
//! bytes, `payload.rs`), so a stalled broker shows in the figures instead of slowing the
//! schedule down (coordinated omission). Messages intended during the warm-up are sent
//! and consumed but left out of every figure.
//!
//! This is a client: it runs plain threads, not glommio shards, and never touches the
//! broker's code.

mod kafka;
mod payload;
mod redis_streams;
mod schedule;
mod stats;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use schedule::Schedule;
use stats::{curve, fmt_us, rate, summary, Shared, QUANTILES};

/// What `sluice bench` talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// Any Kafka broker (Sluice, Kafka, Redpanda, Tansu …) through librdkafka.
    Kafka,
    /// Redis Streams: XADD and XREADGROUP (partitions are streams `<topic>-<n>`).
    Redis,
}

/// `sluice bench` options.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Kafka (librdkafka) or Redis Streams.
    #[arg(long, value_enum, default_value = "kafka")]
    pub target: Target,
    /// Redis server for `--target redis`.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Topic (created with --partitions if missing); default: a new one per run.
    #[arg(long, default_value = "")]
    pub topic: String,
    /// Bytes of each message's value (at least 16: the header with the send time).
    #[arg(long, default_value_t = 1024)]
    pub message_bytes: usize,
    /// Distinct message keys, used round-robin (0: no keys).
    #[arg(long, default_value_t = 0)]
    pub keys: usize,
    /// Partitions of the topic (created by the bench when it does not exist).
    #[arg(long, default_value_t = 1)]
    pub partitions: usize,
    /// Producer batch size in bytes (librdkafka `batch.size`).
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_bytes: usize,
    /// Producer linger in ms (librdkafka `linger.ms`).
    #[arg(long, default_value_t = 5.0)]
    pub linger_ms: f64,
    /// Producer acks: 0, 1 or all.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// Producer compression: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// Producer threads (one client each).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumer threads (one client each; partitions are dealt round-robin).
    #[arg(long, default_value_t = 0)]
    pub consumers: usize,
    /// Target rate in messages/s over all producers (open loop); 0: as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Send this many messages in all (warm-up included) instead of running for a time.
    #[arg(long)]
    pub messages: Option<u64>,
    /// Seconds at the start whose messages are left out of every figure.
    #[arg(long, default_value_t = 1.0)]
    pub warmup_s: f64,
    /// Seconds to wait for outstanding acknowledgements and consumers at the end.
    #[arg(long, default_value_t = 30.0)]
    pub drain_timeout_s: f64,
    /// Seconds the topic's creation may take (a broker that does not answer fails the
    /// bench after this long).
    #[arg(long, default_value_t = 30.0)]
    pub request_timeout_s: f64,
    /// Redis only: most XADDs pipelined in one round trip per producer.
    #[arg(long, default_value_t = 1000)]
    pub redis_pipeline: usize,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// With --json: add the HDR percentile distributions (for plots).
    #[arg(long)]
    pub curves: bool,
}

fn key_names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("key-{i}")).collect()
}

fn check(args: &BenchArgs) -> Result<(), String> {
    if args.producers == 0 {
        return Err("--producers must be at least 1".into());
    }
    if args.partitions == 0 {
        return Err("--partitions must be at least 1".into());
    }
    if !["0", "1", "all", "-1"].contains(&args.acks.as_str()) {
        return Err(format!("--acks {}: use 0, 1 or all", args.acks));
    }
    if args.acks == "0" && args.target == Target::Kafka {
        eprintln!("sluice bench: acks=0: latency is to the client's send, not to the broker");
    }
    if args.rate < 0.0 || args.duration_s <= 0.0 || args.warmup_s < 0.0 {
        return Err("--rate, --duration-s and --warmup-s must not be negative".into());
    }
    Ok(())
}

fn new_run_id() -> u32 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (t ^ (t >> 32) ^ u64::from(std::process::id()).rotate_left(16)) as u32
}

/// Runs the benchmark and prints its report. Errors: the setup failed or nothing was
/// acknowledged.
pub fn run(mut args: BenchArgs) -> Result<(), String> {
    check(&args)?;
    let run_id = new_run_id();
    if args.topic.is_empty() {
        args.topic = format!("sluice-bench-{run_id:08x}");
    }
    let fresh_topic = match args.target {
        Target::Kafka => kafka::create_topic(&args)?,
        Target::Redis => false,
    };
    let warmup_end_ns = (args.warmup_s * 1e9) as u64;
    let (end_ns, total_limit) = match args.messages {
        Some(n) => (u64::MAX, n),
        None => (warmup_end_ns + (args.duration_s * 1e9) as u64, u64::MAX),
    };
    if args.target == Target::Redis {
        redis_streams::setup(&args, run_id)?;
    }
    let consumers = make_consumers(&args, run_id, fresh_topic)?;
    // Time zero is after the setup, so topic creation and assignment are not measured.
    let shared = Arc::new(Shared::new(run_id, warmup_end_ns));
    let stop_consumers = AtomicBool::new(false);
    let stop_progress = AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        let progress = s.spawn(|| progress(&shared, &stop_progress));
        let mut consumer_threads = Vec::new();
        for (i, c) in consumers.into_iter().enumerate() {
            let (args, shared, stop) = (&args, shared.clone(), &stop_consumers);
            consumer_threads.push(s.spawn(move || match c {
                Client::Kafka(c) => kafka::consume(c, shared, stop),
                Client::Redis(c) => redis_streams::consume(args, c, shared, i, stop),
            }));
        }
        let mut producer_threads = Vec::new();
        for i in 0..args.producers {
            let limit = total_limit / args.producers as u64
                + u64::from((i as u64) < total_limit % args.producers as u64);
            let sched = Schedule::new(args.rate, args.producers, i, end_ns, limit);
            let (args, shared) = (&args, shared.clone());
            producer_threads.push(s.spawn(move || match args.target {
                Target::Kafka => kafka::produce(args, shared, sched, i as u64 + 1),
                Target::Redis => redis_streams::produce(args, shared, sched, i),
            }));
        }
        for t in producer_threads {
            let _ = t.join();
        }
        let produce_end_ns = shared.now_ns();
        drain(&args, &shared);
        stop_consumers.store(true, Ordering::Relaxed);
        for t in consumer_threads {
            let _ = t.join();
        }
        stop_progress.store(true, Ordering::Relaxed);
        let _ = progress.join();
        report(&args, &shared, produce_end_ns)
    });
    print_report(&args, &report);
    if report["produced"].as_u64().unwrap_or(0) == 0 {
        return Err(format!(
            "no message was acknowledged{}",
            report["first_error"]
                .as_str()
                .map(|e| format!(" (first error: {e})"))
                .unwrap_or_default()
        ));
    }
    Ok(())
}

enum Client {
    Kafka(rdkafka::consumer::BaseConsumer),
    Redis(redis::Connection),
}

fn make_consumers(args: &BenchArgs, run_id: u32, fresh: bool) -> Result<Vec<Client>, String> {
    (0..args.consumers)
        .map(|i| match args.target {
            Target::Kafka => kafka::consumer(args, run_id, i, fresh).map(Client::Kafka),
            Target::Redis => redis_streams::consumer(args).map(Client::Redis),
        })
        .collect()
}

/// With consumers: waits until they have read every acknowledged message, or until
/// they made no progress for the drain timeout.
fn drain(args: &BenchArgs, shared: &Shared) {
    if args.consumers == 0 {
        return;
    }
    let mut last = shared.consumed_total.load(Ordering::Relaxed);
    let mut idle = Duration::ZERO;
    let step = Duration::from_millis(20);
    while shared.consumed_total.load(Ordering::Relaxed) < shared.acked_total.load(Ordering::Relaxed)
        && idle.as_secs_f64() < args.drain_timeout_s
    {
        std::thread::sleep(step);
        let now = shared.consumed_total.load(Ordering::Relaxed);
        idle = if now == last {
            idle + step
        } else {
            Duration::ZERO
        };
        last = now;
    }
}

/// A line a second on stderr while the run goes on.
fn progress(shared: &Shared, stop: &AtomicBool) {
    let (mut acked, mut consumed) = (0u64, 0u64);
    let mut tick = 1u64;
    while !stop.load(Ordering::Relaxed) {
        let next = Duration::from_secs(tick);
        let now = shared.epoch.elapsed();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        let a = shared.acked_total.load(Ordering::Relaxed);
        let c = shared.consumed_total.load(Ordering::Relaxed);
        let warm = if tick as f64 * 1e9 <= shared.warmup_end_ns as f64 {
            " (warm-up)"
        } else {
            ""
        };
        eprintln!(
            "[{tick:>4} s] acked {:>9} msg/s, consumed {:>9} msg/s, total {a} acked, {c} consumed, {} errors{warm}",
            a - acked,
            c - consumed,
            shared.produce_errors.load(Ordering::Relaxed) + shared.consume_errors.load(Ordering::Relaxed),
        );
        let _ = std::io::stderr().flush();
        (acked, consumed) = (a, c);
        tick += 1;
    }
}

fn report(args: &BenchArgs, shared: &Shared, produce_end_ns: u64) -> Value {
    let from = shared.warmup_end_ns;
    let acked = shared.acked.load(Ordering::Relaxed);
    let consumed = shared.consumed.load(Ordering::Relaxed);
    let produce_rate = rate(acked, from, shared.last_ack_ns.load(Ordering::Relaxed));
    let consume_rate = rate(
        consumed,
        from,
        shared.last_consume_ns.load(Ordering::Relaxed),
    );
    let mb = |r: f64| r * args.message_bytes as f64 / 1e6;
    let produce_h = shared
        .produce_latency
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let e2e_h = shared.e2e_latency.lock().unwrap_or_else(|p| p.into_inner());
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut out = json!({
        "target": match args.target { Target::Kafka => "kafka", Target::Redis => "redis" },
        "address": match args.target { Target::Kafka => &args.brokers, Target::Redis => &args.redis_url },
        "topic": args.topic,
        "config": {
            "message_bytes": args.message_bytes.max(payload::HEADER_BYTES),
            "keys": args.keys,
            "partitions": args.partitions,
            "acks": args.acks,
            "compression": args.compression,
            "linger_ms": args.linger_ms,
            "batch_bytes": args.batch_bytes,
            "producers": args.producers,
            "consumers": args.consumers,
            "rate": args.rate,
            "duration_s": args.duration_s,
            "messages": args.messages,
            "warmup_s": args.warmup_s,
        },
        "elapsed_s": produce_end_ns as f64 / 1e9,
        "produced": acked,
        "produced_total": shared.acked_total.load(Ordering::Relaxed),
        "produce_errors": shared.produce_errors.load(Ordering::Relaxed),
        "consumed": consumed,
        "consumed_total": shared.consumed_total.load(Ordering::Relaxed),
        "consume_errors": shared.consume_errors.load(Ordering::Relaxed),
        "foreign_skipped": shared.foreign.load(Ordering::Relaxed),
        "produce_msgs_per_sec": produce_rate.round() as u64,
        "produce_mb_per_sec": (mb(produce_rate) * 100.0).round() / 100.0,
        "consume_msgs_per_sec": consume_rate.round() as u64,
        "consume_mb_per_sec": (mb(consume_rate) * 100.0).round() / 100.0,
        "produce_latency_us": summary(&produce_h),
        "e2e_latency_us": if args.consumers > 0 { summary(&e2e_h) } else { Value::Null },
        "first_error": first_error,
    });
    if args.curves {
        out["curves"] = json!({
            "produce_latency_us": curve(&produce_h),
            "e2e_latency_us": if args.consumers > 0 { curve(&e2e_h) } else { json!([]) },
        });
    }
    out
}

fn print_report(args: &BenchArgs, r: &Value) {
    if args.json {
        println!("{r}");
        return;
    }
    let c = &r["config"];
    let rate = if args.rate > 0.0 {
        format!("{} msg/s", args.rate)
    } else {
        "unlimited".into()
    };
    println!(
        "{} {} topic {}: {} partitions, {} B, keys {}, acks={}, compression {}, {} producer(s), {} consumer(s), rate {rate}",
        r["target"].as_str().unwrap_or(""),
        r["address"].as_str().unwrap_or(""),
        args.topic,
        c["partitions"],
        c["message_bytes"],
        args.keys,
        args.acks,
        args.compression,
        args.producers,
        args.consumers,
    );
    println!(
        "produced {:>10} msgs  {:>10} msg/s  {:>8} MB/s  errors {}",
        r["produced"], r["produce_msgs_per_sec"], r["produce_mb_per_sec"], r["produce_errors"]
    );
    if args.consumers > 0 {
        println!(
            "consumed {:>10} msgs  {:>10} msg/s  {:>8} MB/s  errors {}  (all of this run: {} of {} acked)",
            r["consumed"],
            r["consume_msgs_per_sec"],
            r["consume_mb_per_sec"],
            r["consume_errors"],
            r["consumed_total"],
            r["produced_total"]
        );
    }
    print!("{:<12}", "latency");
    for (name, _) in QUANTILES {
        print!("{:>11}", name.replace('_', "."));
    }
    println!();
    for (label, key) in [
        ("produce-ack", "produce_latency_us"),
        ("end-to-end", "e2e_latency_us"),
    ] {
        if r[key].is_null() {
            continue;
        }
        print!("{label:<12}");
        for (name, _) in QUANTILES {
            print!("{:>11}", fmt_us(&r[key][name]));
        }
        println!();
    }
    if let Some(e) = r["first_error"].as_str() {
        println!("first error: {e}");
    }
}
