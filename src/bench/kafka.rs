//! Producers and consumers against a Kafka broker through librdkafka (`rdkafka`, no
//! tokio): one `ThreadedProducer` per producer thread (its own poll thread serves the
//! delivery reports as they come: `BaseProducer::poll(0)` serves one event per call, so a
//! sending thread that polls between sends falls behind and would show its own backlog as
//! broker latency), one `BaseConsumer` per consumer thread.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::schedule::Schedule;
use super::stats::{new_histogram, Shared};
use super::{payload, BenchArgs};

/// Creates the topic with `--partitions` partitions. Returns whether it was created now
/// (a new topic is read from its beginning; an existing one from its current end).
pub fn create_topic(args: &BenchArgs) -> Result<bool, String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .create()
        .map_err(|e| format!("admin client: {e}"))?;
    let topic = NewTopic::new(
        &args.topic,
        args.partitions as i32,
        TopicReplication::Fixed(1),
    );
    let timeout = Duration::from_secs_f64(args.request_timeout_s.max(0.1));
    let opts = AdminOptions::new().request_timeout(Some(timeout));
    let results = futures_lite::future::block_on(admin.create_topics([&topic], &opts))
        .map_err(|e| format!("CreateTopics {}: {e}", args.topic))?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((t, code))) => Err(format!("CreateTopics {t}: {code}")),
        None => Err("CreateTopics: no result".into()),
    }
}

fn producer_config(args: &BenchArgs) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &args.brokers)
        .set("acks", &args.acks)
        .set("compression.type", &args.compression)
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_bytes.to_string())
        // At an unlimited rate the client queue fills up to this bound (and latency then
        // includes the wait in it): 32 MiB per producer keeps 16 producers under 512 MiB.
        .set("queue.buffering.max.messages", "100000")
        .set("queue.buffering.max.kbytes", "32768")
        .set(
            "message.max.bytes",
            (args.message_bytes + 4096).max(1_000_000).to_string(),
        )
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "60000");
    c
}

/// Records each acknowledgement, on the producer's poll thread.
struct DeliveryCtx {
    shared: Arc<Shared>,
    /// Locked by the poll thread, and once by the producer thread at the end.
    hist: Mutex<Histogram<u64>>,
}

impl ClientContext for DeliveryCtx {}

impl ProducerContext for DeliveryCtx {
    /// The message's intended send time, ns since the run's epoch.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, intended_ns: usize) {
        let now = self.shared.now_ns();
        match result {
            Ok(_) => {
                let mut h = self.hist.lock().unwrap_or_else(|p| p.into_inner());
                self.shared.record_ack(&mut h, intended_ns as u64, now);
            }
            Err((e, _)) => {
                self.shared.produce_errors.fetch_add(1, Ordering::Relaxed);
                self.shared.note_error(format!("delivery failed: {e}"));
            }
        }
    }
}

/// One producer thread: sends on schedule until it ends, then waits for every
/// acknowledgement (up to the drain timeout).
pub fn produce(args: &BenchArgs, shared: Arc<Shared>, mut sched: Schedule, seed: u64) {
    let ctx = DeliveryCtx {
        shared: shared.clone(),
        hist: Mutex::new(new_histogram()),
    };
    let producer: ThreadedProducer<DeliveryCtx> =
        match producer_config(args).create_with_context(ctx) {
            Ok(p) => p,
            Err(e) => {
                shared.produce_errors.fetch_add(1, Ordering::Relaxed);
                shared.note_error(format!("producer: {e}"));
                return;
            }
        };
    let mut buf = payload::template(args.message_bytes, seed);
    let keys = super::key_names(args.keys);
    loop {
        let now = shared.now_ns();
        let Some(due) = sched.next_due(now) else {
            break;
        };
        if due > now {
            // The poll thread serves acknowledgements meanwhile.
            std::thread::sleep(Duration::from_nanos(due - now));
            continue;
        }
        payload::stamp(&mut buf, shared.run_id, due);
        let n = sched.sent() as usize;
        let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(&args.topic, due as usize)
            .payload(&buf[..]);
        if !keys.is_empty() {
            record = record.key(keys[n % keys.len()].as_bytes());
        }
        match producer.send(record) {
            Ok(()) => sched.advance(),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                // The client's queue is full: retry this message, with its original
                // intended time, once some acknowledgements came back.
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((e, _)) => {
                shared.produce_errors.fetch_add(1, Ordering::Relaxed);
                shared.note_error(format!("send: {e}"));
                sched.advance();
            }
        }
    }
    if let Err(e) = producer.flush(Duration::from_secs_f64(args.drain_timeout_s)) {
        shared.note_error(format!(
            "flush: {e} ({} messages unacknowledged)",
            producer.in_flight_count()
        ));
        shared
            .produce_errors
            .fetch_add(producer.in_flight_count().max(0) as u64, Ordering::Relaxed);
    }
    let h = producer
        .context()
        .hist
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    shared.merge_produce(&h);
}

/// The partitions consumer `index` of `consumers` reads, each from `start`.
fn assignment(
    args: &BenchArgs,
    index: usize,
    consumers: usize,
    fresh_topic: bool,
    consumer: &BaseConsumer,
) -> Result<TopicPartitionList, String> {
    let mut tpl = TopicPartitionList::new();
    for p in (index..args.partitions).step_by(consumers) {
        let offset = if fresh_topic {
            Offset::Beginning
        } else {
            let (_, high) = consumer
                .fetch_watermarks(&args.topic, p as i32, Duration::from_secs(10))
                .map_err(|e| format!("watermarks of {}-{p}: {e}", args.topic))?;
            Offset::Offset(high)
        };
        tpl.add_partition_offset(&args.topic, p as i32, offset)
            .map_err(|e| format!("assign {}-{p}: {e}", args.topic))?;
    }
    Ok(tpl)
}

/// Creates consumer `index` and assigns it its partitions (manual assignment: no group
/// rebalance delays the start; this consumer reads partitions `index`, `index + C`, …).
pub fn consumer(
    args: &BenchArgs,
    run_id: u32,
    index: usize,
    fresh_topic: bool,
) -> Result<BaseConsumer, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", format!("sluice-bench-{run_id}"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.min.bytes", "1")
        .set(
            "fetch.message.max.bytes",
            (args.message_bytes + 4096).max(1_048_576).to_string(),
        )
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    let tpl = assignment(args, index, args.consumers, fresh_topic, &consumer)?;
    consumer
        .assign(&tpl)
        .map_err(|e| format!("consumer assign: {e}"))?;
    Ok(consumer)
}

/// One consumer thread: reads until `stop` says the run is over.
pub fn consume(consumer: BaseConsumer, shared: Arc<Shared>, stop: &std::sync::atomic::AtomicBool) {
    let mut hist = new_histogram();
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let now = shared.now_ns();
                match m.payload().and_then(|p| payload::read(p, shared.run_id)) {
                    Some(intended) => shared.record_consumed(&mut hist, intended, now),
                    None => {
                        shared.foreign.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Some(Err(e)) => {
                shared.consume_errors.fetch_add(1, Ordering::Relaxed);
                shared.note_error(format!("consume: {e}"));
            }
        }
    }
    shared.merge_e2e(&hist);
}
