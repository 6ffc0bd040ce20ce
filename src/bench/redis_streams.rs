//! The same workload against Redis Streams, with the same schedule and histograms.
//!
//! A partition is a stream (`<topic>-<partition>`); a produce is `XADD <stream> * d
//! <payload> [k <key>]`. Each producer thread owns one connection and pipelines every
//! message that is due (up to `--redis-pipeline`) as one round trip, which is what
//! librdkafka's batching does for Kafka; a message's latency runs from its intended time
//! to the reply of its pipeline. Durability is Redis's own (`appendonly yes` and
//! `appendfsync always|everysec`, set by whoever started it): Redis has no acks.
//! Consumers read with `XREADGROUP … NOACK` (no per-message XACK, as Kafka consumers
//! commit offsets, not messages).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{Commands, Connection, Value};

use super::schedule::Schedule;
use super::stats::{new_histogram, Shared};
use super::{payload, BenchArgs};

fn connect(args: &BenchArgs) -> Result<Connection, String> {
    redis::Client::open(args.redis_url.as_str())
        .and_then(|c| c.get_connection())
        .map_err(|e| format!("redis {}: {e}", args.redis_url))
}

fn stream(args: &BenchArgs, p: usize) -> String {
    format!("{}-{p}", args.topic)
}

fn group(run_id: u32) -> String {
    format!("sluice-bench-{run_id}")
}

/// Creates the consumer group of this run on every stream, at its current end, before
/// anything is produced.
pub fn setup(args: &BenchArgs, run_id: u32) -> Result<(), String> {
    if args.consumers == 0 {
        return Ok(());
    }
    let mut conn = connect(args)?;
    for p in 0..args.partitions {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream(args, p))
            .arg(group(run_id))
            .arg("$")
            .arg("MKSTREAM")
            .query(&mut conn)
            .map_err(|e| format!("XGROUP CREATE {}: {e}", stream(args, p)))?;
    }
    Ok(())
}

/// One producer thread (see the module comment).
pub fn produce(args: &BenchArgs, shared: Arc<Shared>, mut sched: Schedule, index: usize) {
    let mut conn = match connect(args) {
        Ok(c) => c,
        Err(e) => {
            shared.produce_errors.fetch_add(1, Ordering::Relaxed);
            shared.note_error(e);
            return;
        }
    };
    let mut hist = new_histogram();
    let mut buf = payload::template(args.message_bytes, index as u64 + 1);
    let keys = super::key_names(args.keys);
    let mut due_times = Vec::with_capacity(args.redis_pipeline);
    loop {
        let now = shared.now_ns();
        let Some(first) = sched.next_due(now) else {
            break;
        };
        if first > now {
            std::thread::sleep(Duration::from_nanos((first - now).min(1_000_000)));
            continue;
        }
        let mut pipe = redis::pipe();
        due_times.clear();
        while due_times.len() < args.redis_pipeline.max(1) {
            let Some(due) = sched.next_due(now) else {
                break;
            };
            if due > now {
                break;
            }
            let n = sched.sent() as usize;
            payload::stamp(&mut buf, shared.run_id, due);
            let p = if keys.is_empty() {
                (n + index) % args.partitions
            } else {
                (n % keys.len()) % args.partitions
            };
            let cmd = pipe
                .cmd("XADD")
                .arg(stream(args, p))
                .arg("*")
                .arg("d")
                .arg(&buf[..]);
            if !keys.is_empty() {
                cmd.arg("k").arg(keys[n % keys.len()].as_bytes());
            }
            due_times.push(due);
            sched.advance();
        }
        match pipe.query::<Vec<Value>>(&mut conn) {
            Ok(_) => {
                let at = shared.now_ns();
                for &due in &due_times {
                    shared.record_ack(&mut hist, due, at);
                }
            }
            Err(e) => {
                shared
                    .produce_errors
                    .fetch_add(due_times.len() as u64, Ordering::Relaxed);
                shared.note_error(format!("XADD: {e}"));
            }
        }
    }
    shared.merge_produce(&hist);
}

/// Connects consumer `index` (before producers start, so a failure stops the run early).
pub fn consumer(args: &BenchArgs) -> Result<Connection, String> {
    connect(args)
}

/// One consumer thread: `XREADGROUP` on its streams until `stop`.
pub fn consume(
    args: &BenchArgs,
    mut conn: Connection,
    shared: Arc<Shared>,
    index: usize,
    stop: &AtomicBool,
) {
    let streams: Vec<String> = (index..args.partitions)
        .step_by(args.consumers)
        .map(|p| stream(args, p))
        .collect();
    if streams.is_empty() {
        return;
    }
    let ids = vec![">"; streams.len()];
    let opts = StreamReadOptions::default()
        .group(group(shared.run_id), format!("c{index}"))
        .count(1000)
        .block(100)
        .noack();
    let mut hist = new_histogram();
    while !stop.load(Ordering::Relaxed) {
        let reply: StreamReadReply = match conn.xread_options(&streams, &ids, &opts) {
            Ok(r) => r,
            Err(e) => {
                shared.consume_errors.fetch_add(1, Ordering::Relaxed);
                shared.note_error(format!("XREADGROUP: {e}"));
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let now = shared.now_ns();
        for entry in reply.keys.iter().flat_map(|k| k.ids.iter()) {
            let intended = match entry.map.get("d") {
                Some(Value::BulkString(d)) => payload::read(d, shared.run_id),
                _ => None,
            };
            match intended {
                Some(t) => shared.record_consumed(&mut hist, t, now),
                None => {
                    shared.foreign.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    shared.merge_e2e(&hist);
}
