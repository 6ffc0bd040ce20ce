//! Sparse offset index lookups: a full 1 GiB segment of 4 KiB batches (Kafka's "more than
//! index_interval_bytes since the last entry" rule gives an entry every 2 batches: 131,071).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sluice::log::index::SegmentIndex;

fn lookups(c: &mut Criterion) {
    let mut idx = SegmentIndex::default();
    let mut pos = 0u32;
    let mut rel = 0u32;
    // 1 GiB of 4 KiB batches of 4 records each.
    while (pos as u64) < (1u64 << 30) - 4096 {
        idx.on_batch(rel, pos, 4096, rel as i64, 4096);
        pos += 4096;
        rel += 4;
    }
    let n = idx.offsets.len() as u32;
    let mut g = c.benchmark_group("log_index");
    let mut x = 12345u32;
    g.bench_function(format!("lookup_offset/{n}_entries"), |b| {
        b.iter(|| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            idx.lookup_offset(black_box(x % rel))
        })
    });
    g.bench_function(format!("lookup_position/{n}_entries"), |b| {
        b.iter(|| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            idx.lookup_position(black_box(x % pos))
        })
    });
    g.bench_function(format!("lookup_time/{}_entries", idx.times.len()), |b| {
        b.iter(|| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            idx.lookup_time(black_box((x % rel) as i64))
        })
    });
    g.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
