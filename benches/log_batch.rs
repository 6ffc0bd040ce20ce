//! Produce-path validation of RecordBatch v2: lengths, magic, CRC-32C, record walk.
//! Throughput in bytes (criterion prints GiB/s).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice::log::batch;

fn batch_with(records: usize, value_len: usize) -> Vec<u8> {
    let v = vec![0x5au8; value_len];
    let vals: Vec<&[u8]> = (0..records).map(|_| v.as_slice()).collect();
    batch::build_batch(1_700_000_000_000, &vals)
}

fn validate(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_validate_batches");
    // rdkafka_performance's shape (990 x 1000 B), small records, and one big value.
    for (name, records, value_len) in [
        ("990x1000B", 990, 1000),
        ("1000x100B", 1000, 100),
        ("1x1MiB", 1, 1 << 20),
    ] {
        let b = batch_with(records, value_len);
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_with_input(BenchmarkId::new("validate", name), &b, |bench, b| {
            bench.iter(|| batch::validate_batches(black_box(b), 2 << 20).map(|v| v.len()))
        });
    }
    let b = batch_with(990, 1000);
    g.throughput(Throughput::Bytes(b.len() as u64));
    g.bench_function("crc32c_only/990x1000B", |bench| {
        bench.iter(|| batch::compute_crc(black_box(&b)))
    });
    g.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
