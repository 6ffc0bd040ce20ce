//! Append throughput of a partition log into a real file (flush=never: page cache), and the
//! read path: offset lookup + file range for a fetch.

use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};
use sluice::log::{batch, FlushPolicy, LogConfig, PartitionLog};

fn executor() -> LocalExecutor {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("executor")
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 << 20,
        retention_ms: None,
        retention_bytes: Some(512 << 20),
        max_message_bytes: 2 << 20,
        flush: FlushPolicy::Never,
        ..LogConfig::default()
    }
}

fn batch_of(records: usize, value_len: usize) -> Vec<u8> {
    let v = vec![0x5au8; value_len];
    let vals: Vec<&[u8]> = (0..records).map(|_| v.as_slice()).collect();
    batch::build_batch(1_700_000_000_000, &vals)
}

fn append(c: &mut Criterion) {
    let ex = executor();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let log: Rc<PartitionLog> =
        ex.run(async move { PartitionLog::open(&dir, config()).await.expect("open") });
    let mut g = c.benchmark_group("log_append");
    g.measurement_time(Duration::from_secs(5));
    for (name, b) in [
        ("1MiB", batch_of(1, 1 << 20)),
        ("16KiB", batch_of(16, 1000)),
        ("1KiB", batch_of(1, 1000)),
    ] {
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let log = log.clone();
                let b = b.clone();
                ex.run(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        log.append(&b).await.expect("append");
                    }
                    let t = start.elapsed();
                    log.enforce_retention(0).await.expect("retention");
                    t
                })
            })
        });
    }
    let hwm = log.high_watermark();
    g.throughput(Throughput::Elements(1));
    g.bench_function("read_1MiB_at_random_offset", |bench| {
        bench.iter_custom(|iters| {
            let log = log.clone();
            ex.run(async move {
                let start = Instant::now();
                let mut x = 7u64;
                for _ in 0..iters {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let from = log.log_start_offset();
                    let off = from + (x >> 33) as i64 % (hwm - from);
                    let s = log.read(off, 1 << 20).await.expect("read");
                    assert!(!s.is_empty());
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
